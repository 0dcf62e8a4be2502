"""Quiet library logging: what every entry point (``ubench``, worker processes, the pytest plug-in) turns off."""

from __future__ import annotations

import warnings

from transformers.utils import logging


def quiet() -> None:
    """No transformers progress bars or warnings below errors, and no ``FutureWarning`` noise."""
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
