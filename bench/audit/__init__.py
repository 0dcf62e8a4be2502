"""The metric audit (``ubench audit TASK``): which of the suite's metrics can be trusted to say whether a model still
holds the forget knowledge (faithfulness), and which keep saying it under attack (robustness)."""
