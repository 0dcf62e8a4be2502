"""Leaderboards: a pure function of (LeaderboardSpec, stored records) -> DataFrame -> markdown and CSV.

``plan`` turns a board into validated ``RunSpec``s (every name and hyper-parameter checked before anything runs);
``build_table`` reads only the store, never a model, so a board can be rebuilt anywhere from its records.

Column keys (see ``column_direction``):

- ``split/metric`` or ``metric``: the raw endpoint, from a record's ``metrics`` (e.g. ``forget/es``,
  ``forget_quality``);
- ``calibrated/<raw key>``: the same metric of the calibrated model theta(alpha*) (arXiv 2406.09179), from
  ``control.calibrated_metrics``; on reference rows (target, retain oracle) it equals the raw value;
- ``alpha``: the calibrated mixing weight alpha* (``control.calibration.alpha``), higher is better (less mixing
  with the target was needed; 1 means the raw endpoint already keeps the utility);
- ``tradeoff_auc``: the area under the forget-efficacy vs utility frontier (``control.tradeoff.auc``), higher is
  better. ``alpha`` and ``tradeoff_auc`` are blank on reference rows.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.control.controller import UTILITY_METRIC
from bench.data.tasks import load_task
from bench.metrics.base import ItemMetric
from bench.registry import METHODS, METRICS
from bench.runner import REFERENCE_KINDS, make_run_spec, reference_id
from bench.spec import LeaderboardSpec, MethodEntry, RunSpec, SpecError, TaskEntry
from bench.store import Store, atomic_write_text

REFERENCE_LABELS = {"target": "target (before unlearning)", "oracle": "retain oracle"}
ARROWS = {"higher": "↑", "lower": "↓"}
CALIBRATED = "calibrated/"
SPLITS = ("forget", "retain", "world_facts")
# Columns read from a run's control section that have no reference-row value, with their direction of better.
CONTROL_COLUMNS = {"alpha": "higher", "tradeoff_auc": "higher"}
UTILITY_NAMES = {"retain_es": "retain ES", "retain_rouge": "retain ROUGE-L", "model_utility": "model utility"}


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
                                         board.path, f"methods[{m_index}]", control=board.control)
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


def trials_per_cell(board: LeaderboardSpec) -> int:
    """Hyper-parameter trials each cell gets: the tier's allowance (1: the entry's own parameters only)."""
    from bench.control.tiers import tier_trials

    return tier_trials(board.budget.tier) if board.budget.tier else 1


def _search_args(cell: Cell, board: LeaderboardSpec) -> dict:
    return {"task": cell.task.task, "split": cell.task.split, "method": cell.method.method,
            "base_params": cell.method.params, "budget": board.budget, "seed": cell.seed, "control": board.control,
            "n_trials": trials_per_cell(board)}


def run_cell(cell: Cell, board: LeaderboardSpec, store: Store, reuse: bool = True) -> dict:
    """Run one board cell and return the record that represents it: the run itself, or, when the tier allows
    several trials, the selected trial of a calibrated search (arXiv 2406.09179) with ``search`` attached (the
    first trial's record when none succeeded)."""
    from bench.runner import execute

    if trials_per_cell(board) == 1:
        return execute(cell.spec, store, reuse=reuse)
    from bench.control.search import search

    result = search(**_search_args(cell, board), store=store)
    chosen = result.best or result.trials[0]
    record = dict(store.load("runs", chosen.run_id) or {})
    record["search"] = {"search_id": result.search_id, "selected": result.selected, "n_trials": result.n_trials}
    return record


def cell_record(cell: Cell, board: LeaderboardSpec, store: Store) -> dict | None:
    """The stored record that represents ``cell`` (see ``run_cell``), or None if it has not run."""
    if trials_per_cell(board) == 1:
        return store.load("runs", cell.spec.run_id)
    import json

    from bench.control.search import search_id_of

    args = _search_args(cell, board)
    search_id = search_id_of(cell.spec.task, args["split"], args["method"], args["base_params"], args["budget"],
                             args["seed"], args["control"], args["n_trials"])
    path = store.root / "searches" / f"{search_id}.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    trials = summary.get("trials") or []
    index = summary.get("selected")
    chosen = trials[index] if index is not None else (trials[0] if trials else None)
    return store.load("runs", chosen["run_id"]) if chosen else None


def column_direction(column: str) -> str:
    """Direction of better of a column key (see the module docstring): a metric's from its declaration, and the
    same for its ``calibrated/`` form; ``alpha`` and ``tradeoff_auc`` are higher-is-better."""
    if column in CONTROL_COLUMNS:
        return CONTROL_COLUMNS[column]
    split, _, name = column.removeprefix(CALIBRATED).rpartition("/")
    metric = METRICS.get(name)
    if isinstance(metric, ItemMetric):
        return metric.forget_direction if split == "forget" else metric.direction
    return metric.direction


def known_columns() -> list[str]:
    """Every valid column key: raw metric keys, their ``calibrated/`` forms, then ``alpha`` and ``tradeoff_auc``."""
    raw: list[str] = []
    for name in METRICS.names():
        if isinstance(METRICS.get(name), ItemMetric):
            raw.extend(f"{split}/{name}" for split in SPLITS)
        else:
            raw.append(name)
    return [*raw, *(CALIBRATED + key for key in raw), *CONTROL_COLUMNS]


def _column_problem(column: str) -> str | None:
    """Why ``column`` is not a valid column key (one line, with a did-you-mean), or None when it is valid."""
    if column in CONTROL_COLUMNS:
        return None
    raw = column.removeprefix(CALIBRATED)
    calibrated = raw != column
    if calibrated and raw in CONTROL_COLUMNS:
        return f"{raw} has no calibrated form; write {raw}"
    split, _, name = raw.rpartition("/")
    if name not in METRICS:
        close = difflib.get_close_matches(column, known_columns(), n=1, cutoff=0.6)
        if calibrated or (close and close[0] in CONTROL_COLUMNS):
            hint = (f"; did you mean {close[0]!r}?" if close else
                    f" (a column is split/metric, metric, {CALIBRATED}<column>, alpha or tradeoff_auc; metrics: "
                    f"{', '.join(METRICS.names())})")
            return f"unknown column {column!r}{hint}"
        try:
            METRICS.get(name)
        except LookupError as exc:
            return str(exc)
    prefix = CALIBRATED if calibrated else ""
    is_item = isinstance(METRICS.get(name), ItemMetric)
    if is_item and split not in SPLITS:
        return f"{name} is per split; write {', '.join(f'{prefix}{s}/{name}' for s in SPLITS[:-1])} or " \
               f"{prefix}{SPLITS[-1]}/{name}"
    if not is_item and split:
        return f"{name} is not per split; write {prefix}{name}"
    return None


def _check_columns(board: LeaderboardSpec) -> None:
    for i, column in enumerate((*board.columns, board.sort.by)):
        where = f"columns[{i}]" if i < len(board.columns) else "sort.by"
        problem = _column_problem(column)
        if problem:
            raise SpecError(f"{board.path}: {where}: {problem}")


def record_value(record: dict | None, column: str) -> float | None:
    """The value of ``column`` in an ``ok`` record, or None when the record lacks it.

    A reference record (``kind: reference``) has only raw metrics: its ``calibrated/`` value is the raw value and
    it has no ``alpha`` or ``tradeoff_auc``.
    """
    if not record or record.get("status") != "ok":
        return None
    reference = record.get("kind") == "reference"
    control = record.get("control") or {}
    if column in CONTROL_COLUMNS:
        if reference:
            return None
        section, field = ("calibration", "alpha") if column == "alpha" else ("tradeoff", "auc")
        value = (control.get(section) or {}).get(field)
    else:
        raw = column.removeprefix(CALIBRATED)
        source = record.get("metrics") if reference or raw == column else control.get("calibrated_metrics")
        value = ((source or {}).get(raw) or {}).get("value")
    return None if value is None else float(value)


def _metric_values(records: list[dict], column: str) -> list[float]:
    values = (record_value(r, column) for r in records)
    return [v for v in values if v is not None]


def build_table(board: LeaderboardSpec, store: Store) -> pd.DataFrame:
    """Rows: reference rows per task, then one row per (task, method entry) with the mean over seeds.

    Columns: ``task``, ``method``, ``reference``, ``seeds`` (ok / planned), ``status``, then each board column as
    ``<column>`` (mean) and ``<column> std`` (over seeds; NaN with one seed). Method rows are sorted by
    ``board.sort`` within each task; failed or missing entries sort last and say why in ``status``.
    """
    cells = plan(board)
    key = board.sort.by
    keys = list(dict.fromkeys((*board.columns, key)))
    rows: list[dict] = []
    for task in board.tasks:
        data = load_task(task.task, task.split)
        for kind in REFERENCE_KINDS:
            record = store.load("refs", reference_id(data, kind))
            row = {"task": f"{task.task}/{task.split}", "method": REFERENCE_LABELS[kind], "reference": True,
                   "seeds": "", "status": "ok" if record else "missing"}
            for column in keys:
                values = _metric_values([record] if record else [], column)
                row[column] = values[0] if values else np.nan
                row[f"{column} std"] = np.nan
            rows.append(row)
        method_rows = []
        for entry in board.methods:
            mine = [c for c in cells if c.task == task and c.method == entry]
            records = [cell_record(c, board, store) for c in mine]
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
            for column in keys:
                values = _metric_values(ok, column)
                row[column] = float(np.mean(values)) if values else np.nan
                row[f"{column} std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
            method_rows.append(row)
        ascending = not board.sort.descending
        method_rows.sort(key=lambda r: (np.isnan(r[key]), r[key] if ascending else -r[key]))
        rows.extend(method_rows)
    table = pd.DataFrame(rows)
    if key not in board.columns:
        table = table.drop(columns=[key, f"{key} std"])
    return table


def _format(value: float, std: float) -> str:
    if np.isnan(value):
        return "—"
    return f"{value:.3f}" if np.isnan(std) else f"{value:.3f} ± {std:.3f}"


def protocol_line(board: LeaderboardSpec) -> str:
    """One line stating the board's control protocol (kind, tau, utility measure, tolerance)."""
    control = board.control
    utility = f"{UTILITY_NAMES[control.utility]} (`{UTILITY_METRIC[control.utility]}`)"
    if control.kind == "mixing":
        return ("Control (arXiv 2406.09179): each unlearned model is mixed with the target, "
                "θ(α) = (1 − α)·θ_target + α·θ_unlearned, at the largest α with U(θ(α)) ≥ τ·U(target): "
                f"τ = {control.tau:g}, U = {utility}, bisection tolerance {control.tolerance:g}. "
                "`calibrated/…` columns are the metrics of θ(α*) (on reference rows: their raw values); `alpha` is "
                "α*, higher is better (less mixing needed; 1: the raw endpoint already keeps the utility); "
                "`tradeoff_auc` is the area under forget efficacy vs utility ratio over the probed α, higher is "
                "better.")
    if control.kind == "early_stop":
        return (f"Control (arXiv 2406.09179): early stopping: training stops at the first checkpoint (every "
                f"{board.budget.callback_every} steps) with U < τ·U(target) and keeps the last passing weights: "
                f"τ = {control.tau:g}, U = {utility}. No mixing calibration, so `calibrated/…`, `alpha` and "
                "`tradeoff_auc` are blank.")
    return "Control: none (raw endpoints only), so `calibrated/…`, `alpha` and `tradeoff_auc` are blank."


def _ga_label(board: LeaderboardSpec) -> str | None:
    """The board's plain gradient-ascent row: labelled ``GA``, else the ``ga`` entry without parameters."""
    entries = [m for m in board.methods if m.method == "ga" or m.display.lower() == "ga"]
    exact = [m for m in entries if m.display.lower() == "ga"]
    plain = [m for m in entries if m.method == "ga" and not m.params]
    pick = exact or plain or entries
    return pick[0].display if pick else None


def _names(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _best(names: Sequence[str]) -> str:
    return f"the best is {names[0]}" if len(names) == 1 else f"the best are {_names(names)} (tied)"


def _strength(tau: float) -> str:
    size = abs(tau)
    if size < 0.1:
        return "essentially unrelated"
    word = "strongly" if size >= 0.7 else "moderately" if size >= 0.4 else "weakly"
    return f"{word} {'concordant' if tau > 0 else 'reversed'}"


def finding(board: LeaderboardSpec, table: pd.DataFrame) -> str:
    """The "Finding" paragraph, computed from ``table``: how the order of methods by raw ``forget/es`` compares
    with the order by ``calibrated/forget/es`` (Kendall tau-b, the methods that move most), and GA's raw utility
    against the target's."""
    from scipy.stats import kendalltau, rankdata

    raw_key, cal_key = "forget/es", CALIBRATED + "forget/es"
    u_key = UTILITY_METRIC[board.control.utility]
    threshold_tau = board.control.tau
    ga = _ga_label(board)
    paragraphs = []
    for task_name, rows in table.groupby("task", sort=False):
        methods = rows[~rows["reference"].astype(bool)]
        target = rows[rows["method"] == REFERENCE_LABELS["target"]]
        parts = []
        if raw_key in rows and cal_key in rows:
            both = methods[np.isfinite(methods[raw_key].astype(float)) & np.isfinite(methods[cal_key].astype(float))]
            if len(both) >= 2:
                sign = 1.0 if column_direction(raw_key) == "lower" else -1.0
                names = list(both["method"])
                raw, cal = both[raw_key].to_numpy(float), both[cal_key].to_numpy(float)
                raw_rank = rankdata(sign * raw, method="min").astype(int)
                cal_rank = rankdata(sign * cal, method="min").astype(int)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = kendalltau(raw, cal)
                stat, pvalue = float(result.statistic), float(result.pvalue)
                if np.isfinite(stat):
                    agreement = f"Kendall τ_b = {stat:.2f} (p = {pvalue:.2g}), the orders are {_strength(stat)}"
                else:
                    agreement = "Kendall τ_b is undefined, one of the orders being all ties"
                parts.append(f"Ranking the {len(names)} methods by raw `{raw_key}` and by `{cal_key}` (forget "
                             f"efficacy at matched utility; {column_direction(raw_key)} is better): {agreement}.")
                best_raw = [n for n, r in zip(names, raw_rank) if r == 1]
                best_cal = [n for n, r in zip(names, cal_rank) if r == 1]
                parts.append(f"Raw, {_best(best_raw)} at {raw[raw_rank == 1][0]:.3f}; calibrated, "
                             f"{_best(best_cal)} at {cal[cal_rank == 1][0]:.3f}.")
                moves = sorted(zip(names, raw_rank, cal_rank), key=lambda m: (-abs(m[2] - m[1]), m[1], m[0]))
                moved = [m for m in moves if m[1] != m[2]][:3]
                if moved:
                    parts.append(f"Largest moves (rank raw → calibrated, of {len(names)}): " +
                                 "; ".join(f"{n} {r} → {c}" for n, r, c in moved) + ".")
                else:
                    parts.append("No method changes rank.")
            else:
                parts.append(f"Fewer than two methods have both `{raw_key}` and `{cal_key}`, so there is no "
                             "ranking to compare.")
        else:
            parts.append(f"Add `{raw_key}` and `{cal_key}` to the columns to compare the rankings.")
        ga_rows = methods[methods["method"] == ga] if ga else methods.iloc[0:0]
        if len(ga_rows) and u_key in rows and len(target) and np.isfinite(ga_rows[u_key].iloc[0]) and \
                np.isfinite(target[u_key].iloc[0]):
            u_ga, u_target = float(ga_rows[u_key].iloc[0]), float(target[u_key].iloc[0])
            threshold = threshold_tau * u_target
            share = f" ({100 * u_ga / u_target:.0f}% of it)" if u_target > 0 else ""
            side = "below" if u_ga < threshold else "at or above"
            text = (f"{ga}'s raw {UTILITY_NAMES[board.control.utility]} (`{u_key}`) is {u_ga:.3f} against the "
                    f"target's {u_target:.3f}{share}, {side} the calibration threshold τ·U(target) = "
                    f"{threshold:.3f}")
            if u_ga < threshold and raw_key in rows and np.isfinite(ga_rows[raw_key].iloc[0]):
                text += f": its raw `{raw_key}` of {float(ga_rows[raw_key].iloc[0]):.3f} is reached by losing " \
                        "retained knowledge too"
            if "alpha" in rows and cal_key in rows and np.isfinite(ga_rows["alpha"].iloc[0]) and \
                    np.isfinite(ga_rows[cal_key].iloc[0]):
                text += (f"; calibrated (α* = {float(ga_rows['alpha'].iloc[0]):.3f}) its `{raw_key}` is "
                         f"{float(ga_rows[cal_key].iloc[0]):.3f}")
            parts.append(text + ".")
        prefix = f"On `{task_name}`: " if table["task"].nunique() > 1 else ""
        paragraphs.append(f"**Finding.** {prefix}" + " ".join(parts))
    return "\n\n".join(paragraphs)


def to_markdown(board: LeaderboardSpec, table: pd.DataFrame, plots: Sequence[str] | None = None) -> str:
    """Markdown with direction arrows in the headers (↑ higher is better, ↓ lower is better), the control
    protocol, the "Finding" paragraph and links to the trade-off plots.

    ``plots``: file names (relative to ``board.out_dir``) of the trade-off plots to link; None links those of
    ``bench.plots.plot_paths`` that exist.
    """
    if plots is None:
        from bench.plots import PLOT_NAME, plot_paths

        plots = [p.name for p in plot_paths(board, board.out_dir / PLOT_NAME).values() if p.exists()]
    headers = ["task", "method", "seeds", *[f"{c} {ARROWS[column_direction(c)]}" for c in board.columns], "status"]
    body = []
    for _, row in table.iterrows():
        name = f"*{row['method']}*" if row["reference"] else row["method"]
        values = ["" if row["reference"] and c in CONTROL_COLUMNS else _format(row[c], row[f"{c} std"])
                  for c in board.columns]
        body.append([row["task"], name, row["seeds"], *values, row["status"]])
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
    protocol = protocol_line(board) + "\n\n"
    markdown = title + description + note + protocol
    markdown += tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    markdown += "\n" + finding(board, table) + "\n"
    if plots:
        markdown += "\n" + "\n\n".join(f"![trade-off]({name})" for name in plots) + "\n"
    return markdown


def write_tables(board: LeaderboardSpec, store: Store) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Build the table from stored records and write ``<out_dir>/board.md``, ``board.csv`` and the trade-off
    plot(s) (``bench.plots``; keys ``tradeoff...`` in the returned paths), each atomically."""
    from bench.plots import PLOT_NAME, plot_paths, tradeoff_plot

    table = build_table(board, store)
    out = board.out_dir
    paths = {"markdown": out / "board.md", "csv": out / "board.csv"}
    base = out / PLOT_NAME
    written = tradeoff_plot(board, store, base)
    for stale in set(plot_paths(board, base).values()) - set(written):
        stale.unlink(missing_ok=True)  # a plot of an earlier build whose task has no trade-off data now
    paths.update({p.stem: p for p in written})
    atomic_write_text(paths["markdown"], to_markdown(board, table, [p.name for p in written]))
    atomic_write_text(paths["csv"], table.to_csv(index=False, float_format="%.6g"))
    return table, paths
