"""unlearning-bench: run, compare and cite LLM-unlearning methods under a shared budget and protocol."""

__version__ = "0.1.0"
