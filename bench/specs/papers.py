"""A paper as a BibTeX ``@misc`` entry with its arXiv id: what a method class (``Method.bibtex``), a task YAML
(``papers:``) and the suite's protocol declare, and what ``ubench cite`` prints (``bench.release.citations``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ARXIV_ID = re.compile(r"\b(\d{4}\.\d{4,5})\b")


@dataclass(frozen=True)
class Paper:
    """One paper: BibTeX ``key``, authors as a BibTeX ``and`` list, title (braces protect capitals), year, arXiv
    ``eprint`` id (never an invented DOI) and an optional ``note`` (the venue)."""

    key: str
    author: str
    title: str
    year: int
    eprint: str
    note: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_:-]*", self.key):
            raise ValueError(f"key: a BibTeX key of letters, digits and _:- , got {self.key!r}")
        if not re.fullmatch(r"\d{4}\.\d{4,5}", self.eprint):
            raise ValueError(f"eprint: an arXiv id such as 2401.06121 (quoted in YAML), got {self.eprint!r}")
        for name in ("author", "title"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name}: must not be empty")
