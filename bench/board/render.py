"""The HTML board's templates: jinja2 templates in ``bench/board/templates`` and the inlined stylesheet and script in
``bench/board/static`` (package data, read through ``importlib.resources``).

Autoescaping is on: every value a template prints is escaped unless it is markup already (a rendered template, a
macro, the static files). The escaping is ``html.escape`` (``&quot;``, ``&#x27;``), the entities the boards have
always used, so a page renders to the same bytes as when it was built from Python strings.
"""

from __future__ import annotations

import base64
import html
import re
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def _escaped(value: Any) -> Any:
    """What ``{{ value }}`` prints: markup as it is, anything else escaped by ``html.escape`` (``finalize`` runs
    before autoescaping, which leaves markup alone)."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


def inline_markdown(markdown: str) -> Markup:
    """Escaped HTML of a line of the board's markdown prose: ``**bold**`` and ```code``` only."""
    text = html.escape(markdown, quote=True)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", text))


def paragraph_texts(markdown: str) -> list[str]:
    """The paragraphs of markdown prose (separated by a blank line), stripped, empty ones left out."""
    return [p.strip() for p in markdown.split("\n\n") if p.strip()]


@cache
def environment() -> Environment:
    """The board's jinja2 environment (lines holding only a block tag leave no trace in the output)."""
    env = Environment(loader=PackageLoader("bench.board", "templates"), autoescape=True, finalize=_escaped,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)
    env.filters["inline"] = inline_markdown
    env.filters["paragraphs"] = paragraph_texts
    env.filters["base64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env


@cache
def static_text(name: str) -> Markup:
    """The text of ``bench/board/static/<name>``, to inline into the page as it is."""
    return Markup(files("bench.board").joinpath("static", name).read_text(encoding="utf-8"))


def render(template: str, **context: Any) -> Markup:
    """``bench/board/templates/<template>`` rendered with ``context`` (markup: safe to print in another template)."""
    return Markup(environment().get_template(template).render(**context))
