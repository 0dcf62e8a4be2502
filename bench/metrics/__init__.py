"""Metrics: the scoring engine (``engine``), the registered metric functions that read its results, lm-eval
utility and the relearning attack."""
