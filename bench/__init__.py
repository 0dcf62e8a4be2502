"""unlearning-bench: run, compare and cite LLM-unlearning methods under a shared budget and protocol."""

from bench.runtime.numerics import pin_kernels

pin_kernels()  # before anything imports torch: the kernel path every number is computed on (bench.runtime.numerics)

__version__ = "0.1.0"
