"""unlearning-bench: run, compare and cite LLM-unlearning methods under a shared budget and protocol."""

import logging

from bench.runtime.numerics import pin_kernels

pin_kernels()  # before anything imports torch: the kernel path every number is computed on (bench.runtime.numerics)

# torchao (the weight-quantization attack's library, bench.attacks.quantization) is imported by transformers on
# every model load once installed, and logs two warnings at import that concern GPU kernels (its CUDA extensions
# do not load on a CPU machine) and a torch.compile deprecation: not this project's concern, and noise on every
# command's stderr
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)

__version__ = "0.1.0"
