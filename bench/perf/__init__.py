"""``ubench perf``: what the harness costs over bare PyTorch, one benchmark per module."""
