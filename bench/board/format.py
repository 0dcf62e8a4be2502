"""How a board writes things: its row labels, direction arrows and cells (``value [low, high]``, ``mean ± std``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.grid.columns import is_text, number_format, run_only

REFERENCE_LABELS = {"target": "target (before unlearning)", "oracle": "retain oracle"}
ARROWS = {"higher": "↑", "lower": "↓", "zero": "→0", "half": "→½", "none": "·"}
UTILITY_NAMES = {"retain_es": "retain ES", "retain_rouge": "retain ROUGE-L", "model_utility": "model utility"}


def _format(value: float, std: float, spec: str = ".3f", low: float = np.nan, high: float = np.nan) -> str:
    """``value [low, high]`` with the hierarchical bootstrap 95% interval (over seeds and items) where it is known,
    else ``value ± std`` over seeds, else the value."""
    if np.isnan(value):
        return "—"
    if not (np.isnan(low) or np.isnan(high)):
        return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"
    if not np.isnan(std):
        return f"{value:{spec}} ± {std:{spec}}"
    return f"{value:{spec}}"


def cell_text(row: pd.Series, column: str) -> str:
    """A method or reference row's cell: blank for run-only columns on reference rows, the text of a text column,
    else the number as its key kind prints it (``bench.grid.columns.number_format``: 3 decimals; 1 for PrivLeak, a
    percentage; 3 significant digits for the cumulative G-effect, whose values span orders of magnitude); the
    hierarchical bootstrap 95% interval or the seed spread beside it."""
    if row["reference"] and run_only(column):
        return ""
    if is_text(column):
        return row[column] if isinstance(row[column], str) else "—"
    spec = number_format(column)
    low, high = row.get(f"{column} ci_low", np.nan), row.get(f"{column} ci_high", np.nan)
    return _format(row[column], row[f"{column} std"], spec, low, high)
