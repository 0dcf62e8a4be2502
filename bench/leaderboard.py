"""Leaderboards: a pure function of (LeaderboardSpec, stored records) -> DataFrame -> markdown and CSV.

``plan`` turns a board into validated ``RunSpec``s (every name and hyper-parameter checked before anything runs);
``build_table`` reads only the store, never a model, so a board can be rebuilt anywhere from its records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.tasks import load_task
from bench.metrics.base import ItemMetric
from bench.registry import METHODS, METRICS
from bench.runner import REFERENCE_KINDS, make_run_spec, reference_id
from bench.spec import LeaderboardSpec, MethodEntry, RunSpec, SpecError, TaskEntry
from bench.store import Store, atomic_write_text

REFERENCE_LABELS = {"target": "target (before unlearning)", "oracle": "retain oracle"}
ARROWS = {"higher": "↑", "lower": "↓"}


@dataclass(frozen=True)
class Cell:
    """One leaderboard entry: a (task, method, seed) with its RunSpec."""

    task: TaskEntry
    method: MethodEntry
    seed: int
    spec: RunSpec

    @property
    def name(self) -> str:
        """``task/split/method/seedN``: pytest splits node ids on ``::``, so a name must not contain it."""
        return f"{self.task.task}/{self.task.split}/{self.method.display}/seed{self.seed}"


def plan(board: LeaderboardSpec) -> list[Cell]:
    """Every cell of ``board``; raises SpecError/RegistryError naming the file and entry on any bad input."""
    _check_columns(board)
    cells = []
    for t_index, task in enumerate(board.tasks):
        for m_index, entry in enumerate(board.methods):
            if entry.plugin:
                METHODS.load_plugin_file(entry.plugin)
            for seed in board.seeds:
                try:
                    spec = make_run_spec(task.task, task.split, entry.method, entry.params, board.budget, seed,
                                         board.path, f"methods[{m_index}]")
                except SpecError as exc:
                    if "unknown task" in str(exc):
                        raise SpecError(f"{board.path}: tasks[{t_index}].task: {exc}") from exc
                    raise
                cells.append(Cell(task, entry, seed, spec))
    labels = [c.method.display for c in cells]
    dupes = {label for label in labels if labels.count(label) > len(board.seeds) * len(board.tasks)}
    if dupes:
        raise SpecError(f"{board.path}: methods: entries share a label {sorted(dupes)}; give each a distinct 'label'")
    return cells


def column_direction(column: str) -> str:
    """Direction of better for a column key ``split/metric`` or ``metric``, from the metric's declaration."""
    split, _, name = column.rpartition("/")
    metric = METRICS.get(name)
    if isinstance(metric, ItemMetric):
        return metric.forget_direction if split == "forget" else metric.direction
    return metric.direction


def _check_columns(board: LeaderboardSpec) -> None:
    for i, column in enumerate((*board.columns, board.sort.by)):
        where = f"columns[{i}]" if i < len(board.columns) else "sort.by"
        split, _, name = column.rpartition("/")
        if name not in METRICS:
            try:
                METRICS.get(name)
            except LookupError as exc:
                raise SpecError(f"{board.path}: {where}: {exc}") from exc
        if isinstance(METRICS.get(name), ItemMetric) and split not in ("forget", "retain", "world_facts"):
            raise SpecError(f"{board.path}: {where}: {name} is per split; write forget/{name}, retain/{name} "
                            f"or world_facts/{name}")


def _metric_values(records: list[dict], column: str) -> list[float]:
    return [r["metrics"][column]["value"] for r in records if r.get("status") == "ok" and column in r["metrics"]]


def build_table(board: LeaderboardSpec, store: Store) -> pd.DataFrame:
    """Rows: reference rows per task, then one row per (task, method entry) with the mean over seeds.

    Columns: ``task``, ``method``, ``seeds`` (ok / planned), ``status``, then each board column as
    ``<column>`` (mean) and ``<column> std`` (over seeds; NaN with one seed). Method rows are sorted by
    ``board.sort`` within each task; failed or missing entries sort last and say why in ``status``.
    """
    cells = plan(board)
    rows: list[dict] = []
    for task in board.tasks:
        data = load_task(task.task, task.split)
        for kind in REFERENCE_KINDS:
            record = store.load("refs", reference_id(data, kind))
            row = {"task": f"{task.task}/{task.split}", "method": REFERENCE_LABELS[kind], "reference": True,
                   "seeds": "", "status": "ok" if record else "missing"}
            for column in board.columns:
                values = _metric_values([record] if record else [], column)
                row[column] = values[0] if values else np.nan
                row[f"{column} std"] = np.nan
            rows.append(row)
        method_rows = []
        for entry in board.methods:
            mine = [c for c in cells if c.task == task and c.method == entry]
            records = [store.load("runs", c.spec.run_id) for c in mine]
            done = [r for r in records if r is not None]
            ok = [r for r in done if r.get("status") == "ok"]
            failed = [r for r in done if r.get("status") != "ok"]
            if failed:
                error = failed[0].get("error") or {}
                status = f"{failed[0].get('status')}: {error.get('message', '')}"[:120]
            else:
                status = "ok" if len(ok) == len(mine) else f"missing {len(mine) - len(done)} of {len(mine)}"
            row = {"task": f"{task.task}/{task.split}", "method": entry.display, "reference": False,
                   "seeds": f"{len(ok)}/{len(mine)}", "status": status}
            for column in board.columns:
                values = _metric_values(ok, column)
                row[column] = float(np.mean(values)) if values else np.nan
                row[f"{column} std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
            method_rows.append(row)
        key = board.sort.by
        ascending = not board.sort.descending
        if key not in board.columns:
            for row in method_rows:
                recs = [store.load("runs", c.spec.run_id) for c in cells if c.task == task and c.method.display ==
                        row["method"]]
                values = _metric_values([r for r in recs if r], key)
                row[key] = float(np.mean(values)) if values else np.nan
        method_rows.sort(key=lambda r: (np.isnan(r[key]), r[key] if ascending else -r[key]))
        if key not in board.columns:
            for row in method_rows:
                row.pop(key)
        rows.extend(method_rows)
    return pd.DataFrame(rows)


def _format(value: float, std: float) -> str:
    if np.isnan(value):
        return "—"
    return f"{value:.3f}" if np.isnan(std) else f"{value:.3f} ± {std:.3f}"


def to_markdown(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """Markdown with direction arrows in the headers (↑ higher is better, ↓ lower is better)."""
    headers = ["task", "method", "seeds", *[f"{c} {ARROWS[column_direction(c)]}" for c in board.columns], "status"]
    body = []
    for _, row in table.iterrows():
        name = f"*{row['method']}*" if row["reference"] else row["method"]
        cells = [row["task"], name, row["seeds"], *[_format(row[c], row[f"{c} std"]) for c in board.columns],
                 row["status"]]
        body.append(cells)
    from tabulate import tabulate

    title = f"# {board.name} leaderboard (v{board.version})\n\n"
    description = f"{board.description.strip()}\n\n" if board.description else ""
    budget = board.budget
    tier = f"tier `{budget.tier}`: " if budget.tier else ""
    note = (f"Budget ({tier}AdamW): {budget.steps} steps, lr {budget.lr:g}, "
            f"batch {budget.batch_size} x {budget.grad_accum}, "
            f"seeds {list(board.seeds)}. Sorted by `{board.sort.by}` "
            f"({'descending' if board.sort.descending else 'ascending'}). Reference rows in italics. "
            "↑/↓: higher/lower is better; on the forget split less knowledge is better, except forget quality and "
            "truth ratio, which are best when they match the retain oracle.\n\n")
    return title + description + note + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n"


def write_tables(board: LeaderboardSpec, store: Store) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Build the table from stored records and write ``<out_dir>/board.md`` and ``board.csv`` atomically."""
    table = build_table(board, store)
    out = board.out_dir
    paths = {"markdown": out / "board.md", "csv": out / "board.csv"}
    atomic_write_text(paths["markdown"], to_markdown(board, table))
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    return table, paths
