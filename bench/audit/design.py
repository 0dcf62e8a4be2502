"""What the audit varies, declared apart from the pools that apply it (``bench.audit.pools`` loads torch): the
``ubench audit`` command line shows these defaults without loading the stack."""

from __future__ import annotations

# (name, kind, strength, seed): fine-tuning steps at lr = strength on 16 retain pairs, or weight noise of std
# strength x each tensor's own std
VARIANTS: tuple[tuple[str, str, float, int], ...] = (
    ("ft-lr1e-4", "finetune", 1e-4, 1),
    ("ft-lr3e-4", "finetune", 3e-4, 2),
    ("ft-lr1e-3", "finetune", 1e-3, 3),
    ("noise-0.02", "noise", 0.02, 4),
)
FT_STEPS, FT_ITEMS, FT_BATCH = 10, 16, 8
UNLEARNING_METHODS = ("ga", "gd", "npo", "simnpo", "rmu", "idkpo")
