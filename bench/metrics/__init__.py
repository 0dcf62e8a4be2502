"""Metrics: the scoring engine (``engine``) and registered metric functions that read its results."""
