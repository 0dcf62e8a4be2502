"""Unlearning methods: one file per objective, each registering itself in ``bench.registry.METHODS``."""
