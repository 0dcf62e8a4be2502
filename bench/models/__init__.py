"""Model sources: the task's tiny checkpoints (built, scored and shipped), hub presets, LoRA adapters."""
