"""Submitting an outside method to a board: entry checks (in a sandboxed subprocess) and scaffolding."""
