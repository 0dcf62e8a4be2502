"""Specifications: the frozen, validated vocabulary (RunSpec, Budget, ControlSpec, LeaderboardSpec, budget
tiers) built from plain YAML mappings. No torch: everything above reads its inputs from here."""
