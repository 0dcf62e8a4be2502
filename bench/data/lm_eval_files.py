"""The lm-eval task templates a task family ships, and the data files they read (rendered from its ``TaskData``).

Any task family can ship lm-eval task *templates*: every ``*.yaml`` in ``<tasks dir>/<family>/lm_eval/`` (the
folder of the family's task YAMLs) is an embedded lm-eval task named by its file stem (= its ``task:``), and it
declares the data file it reads as ``__DATA_DIR__/<file>.jsonl`` in its ``data_files``. The family registers the
function that gives those files' rows from its loaded ``TaskData`` with ``@lm_eval_data("<family>")`` (the
synthetic family's, below: ``world_facts.jsonl`` of ``mc_item`` rows; WMDP's: the mirrored or downloaded WMDP and
MMLU rows, see ``bench.data.wmdp``). A family without a template folder has no embedded tasks.

``render_task_dir`` writes the data files and the rendered YAMLs into a content-addressed folder of the cache, which
``bench.metrics.lm_eval_utility`` hands to lm-eval.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.data.tasks import TaskData
from bench.registry import TASKS
from bench.runtime.paths import REPO_ROOT, cache_dir, tasks_dir

EMBEDDED_TASKS = ("synthetic_world_mc", "synthetic_world_gen")  # the synthetic family's embedded tasks
PLACEHOLDER = "__DATA_DIR__"
DATA_FILE = "world_facts.jsonl"  # the synthetic family's data file
TEMPLATE_SUBDIR = "lm_eval"  # <tasks dir>/<family>/lm_eval holds a family's templates
# the data file a template reads: a path "__DATA_DIR__/<file>.jsonl" in its data_files
_DATA_REF = re.compile(re.escape(PLACEHOLDER) + r"/([A-Za-z0-9_.-]+\.jsonl)")
_TASK_LINE = re.compile(r"^task:\s*[\"']?([A-Za-z0-9_.-]+)", re.MULTILINE)

DataFiles = Callable[[TaskData], dict[str, list[dict]]]
_DATA_BUILDERS: dict[str, DataFiles] = {}


def _differing_words(a: str, b: str) -> tuple[str, str]:
    """The middle words where ``a`` and ``b`` differ, after removing their common word prefix and suffix."""
    x, y = a.split(), b.split()
    shortest = min(len(x), len(y))
    p = 0
    while p < shortest and x[p] == y[p]:
        p += 1
    s = 0
    while s < shortest - p and x[len(x) - 1 - s] == y[len(y) - 1 - s]:
        s += 1
    return " ".join(x[p:len(x) - s]), " ".join(y[p:len(y) - s])


def wrong_answers(answer: str, paraphrased_answer: str, perturbed_answers: Sequence[str]) -> list[str]:
    """The perturbed answers rewritten in the wording of ``answer``.

    A perturbed answer is the paraphrase with the true value v replaced by a wrong value w. A word-level diff of
    the paraphrase against it gives v and w (the common word prefix and suffix are the template); the wrong answer
    is ``answer`` with its one occurrence of v replaced by w. Raises ``ValueError`` when a perturbed answer does not
    differ from the paraphrase, when v does not occur exactly once in ``answer``, or when two choices coincide.
    """
    out = []
    for perturbed in perturbed_answers:
        v, w = _differing_words(paraphrased_answer, perturbed)
        if not v or not w:
            raise ValueError(f"perturbed answer {perturbed!r} does not differ from the paraphrase "
                             f"{paraphrased_answer!r} in a value")
        count = answer.count(v)
        if count != 1:
            raise ValueError(f"true value {v!r} (paraphrase {paraphrased_answer!r} vs {perturbed!r}) occurs {count} "
                             f"times in the answer {answer!r}; it must occur exactly once")
        out.append(answer.replace(v, w))
    if len({answer, *out}) != len(out) + 1:
        raise ValueError(f"answer {answer!r}: the wrong answers {out} are not all distinct from it and each other")
    return out


def mc_item(row: dict) -> dict:
    """One ``world_facts.jsonl`` record: id, question, answer, the shuffled choices and the gold index. The order is
    a permutation drawn from a ``random.Random`` seeded by the sha256 of the item id (stable across processes)."""
    choices = [row["answer"], *wrong_answers(row["answer"], row["paraphrased_answer"], row["perturbed_answers"])]
    seed = int.from_bytes(hashlib.sha256(row["id"].encode()).digest()[:8], "big")
    order = list(range(len(choices)))
    random.Random(seed).shuffle(order)
    return {"id": row["id"], "question": row["question"], "answer": row["answer"],
            "choices": [choices[i] for i in order], "gold": order.index(0)}


def lm_eval_data(family: str) -> Callable[[DataFiles], DataFiles]:
    """Decorator: ``fn(data) -> {file name: rows}`` gives the JSONL data files of ``family``'s lm-eval templates
    (each row one lm-eval document)."""

    def decorate(fn: DataFiles) -> DataFiles:
        if family in _DATA_BUILDERS:
            raise ValueError(f"lm-eval data of task family {family!r} is registered twice")
        _DATA_BUILDERS[family] = fn
        return fn

    return decorate


GENERAL_KNOWLEDGE_FILE = "general_knowledge.jsonl"


@lm_eval_data("synthetic")
def synthetic_data_files(data: TaskData) -> dict[str, list[dict]]:
    """``world_facts.jsonl``: one ``mc_item`` per world fact; ``general_knowledge.jsonl``: the fixed real-world
    questions shipped next to the templates (``general_knowledge_mc``, for pretrained presets)."""
    shipped = template_dir("synthetic") / GENERAL_KNOWLEDGE_FILE
    general = [json.loads(line) for line in shipped.read_text().splitlines() if line.strip()]
    return {DATA_FILE: [mc_item(row) for row in data.world_facts], GENERAL_KNOWLEDGE_FILE: general}


def template_dir(family: str = "synthetic") -> Path:
    """The folder of ``family``'s lm-eval templates: ``<tasks dir>/<family>/lm_eval``, else the checkout's copy."""
    sub = Path(family) / TEMPLATE_SUBDIR
    for root in (tasks_dir(), REPO_ROOT / "tasks"):
        if (root / sub).is_dir():
            return root / sub
    raise FileNotFoundError(f"lm-eval task templates not found under {tasks_dir() / sub}")


def _templates(family: str) -> dict[str, str]:
    """Task name -> template text of every YAML of ``family``'s template folder ({} where it has none). A template
    is named by its file stem, which must be its ``task:``, and holds the data-folder placeholder."""
    try:
        folder = template_dir(family)
    except FileNotFoundError:
        return {}
    texts = {}
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        if PLACEHOLDER not in text:
            raise ValueError(f"{path}: template has no {PLACEHOLDER} placeholder")
        task = _TASK_LINE.search(text)
        if task is None or task.group(1) != path.stem:
            raise ValueError(f"{path}: template's `task:` must be its file name {path.stem!r}")
        texts[path.stem] = text
    return texts


def embedded_tasks(family: str) -> tuple[str, ...]:
    """The lm-eval tasks ``family`` ships as templates (sorted names; empty without a template folder)."""
    return tuple(_templates(family))


def _data_files(data: TaskData, templates: dict[str, str]) -> dict[str, bytes]:
    """The JSONL bytes of every data file the templates read, from the family's registered ``lm_eval_data``."""
    family = data.config.family
    if family not in _DATA_BUILDERS:
        TASKS.get(family)  # imports the family's module, which registers its data files
    if family not in _DATA_BUILDERS:
        raise ValueError(f"task family {family!r} ships lm-eval templates in {template_dir(family)} but registers "
                         f"no data for them (@lm_eval_data({family!r}) in bench.data.lm_eval_files)")
    rows = _DATA_BUILDERS[family](data)
    for name, text in templates.items():
        missing = sorted(set(_DATA_REF.findall(text)) - set(rows))
        if missing:
            raise ValueError(f"lm-eval template {name}: reads {', '.join(missing)}, which task family {family!r} "
                             f"does not write (it writes {', '.join(sorted(rows))})")
    return {name: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in file_rows).encode()
            for name, file_rows in sorted(rows.items())}


def render_task_dir(data: TaskData) -> Path | None:
    """Write the family's data files and rendered task YAMLs into ``cache_dir()/lm_eval/<hash>`` and return it
    (None when the family ships no templates).

    The hash covers the data bytes and the template texts, so the same data and templates always give the same
    folder, which is written once (into a temporary folder, then renamed: a concurrent writer winning is fine).
    When lm-eval first loads a JSONL, ``datasets`` puts its Arrow cache in the folder's ``hf_datasets/`` (the
    templates point ``cache_dir`` there) rather than in ``~/.cache/huggingface``.
    """
    templates = _templates(data.config.family)
    if not templates:
        return None
    files = _data_files(data, templates)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(b"\0" + name.encode() + b"\0" + files[name])
    for name in sorted(templates):
        digest.update(b"\0" + name.encode() + b"\0" + templates[name].encode())
    final = cache_dir() / "lm_eval" / digest.hexdigest()[:16]
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # A JSON string body is a valid YAML double-quoted string body (the placeholder sits inside double quotes).
    quoted_dir = json.dumps(str(final.resolve()))[1:-1]
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        for name, content in files.items():
            (tmp / name).write_bytes(content)
        for name, text in templates.items():
            (tmp / f"{name}.yaml").write_text(text.replace(PLACEHOLDER, quoted_dir))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
