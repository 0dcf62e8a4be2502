"""Pinned numerics: the kernel settings and thread count that every number of the suite is computed under.

A model trained from scratch amplifies round-off: two builds of the embedded target that differ only in the CPU
kernel path (AVX-512 vs AVX2) or the thread count end up with different weights, and an unlearning run on each
gives a different board. So the suite computes under one setting on every path (``ubench run``, the pool and Ray
workers, pytest, ``ubench build-models``), and every record stores the setting it actually ran under:

* kernels: ATen's vectorised CPU kernels at ``avx2`` (``ATEN_CPU_CAPABILITY``; every x86-64 CPU since 2013 has
  it, so an AVX-512 machine and an AVX2 machine take the same code path), MKL's conditional numerical
  reproducibility mode ``MKL_CBWR=AVX2`` (matrix products give the same bits on any CPU with AVX2) and oneDNN capped
  at the same ISA (``DNNL_MAX_CPU_ISA``). They are environment variables read when torch first loads, so they are
  set when ``bench`` is imported (``pin_kernels``) and only where the user has not set them; a process that
  imported torch before ``bench`` keeps its own, and its records say so (``numerics_env``);
* threads: ``UBENCH_THREADS`` (default 1) intra-op threads for every computation, whatever the entry point
  and the machine's core count; parallelism comes from worker processes (``ubench run -j``), which do not change
  a number.

GPU runs are not bit-reproducible across GPU models (cuBLAS picks kernels per device); their records name the
device and agree to the printed precision at best.
"""

from __future__ import annotations

import os
import platform

THREADS_ENV = "UBENCH_THREADS"
X86 = platform.machine().lower() in ("x86_64", "amd64")
PINNED_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"} if X86 else {}


def pin_kernels() -> None:
    """Set the pinned kernel variables (``PINNED_KERNEL_ENV``) where the environment leaves them unset; must run
    before torch is imported to take effect (``bench/__init__.py`` calls it)."""
    for name, value in PINNED_KERNEL_ENV.items():
        os.environ.setdefault(name, value)


def compute_threads() -> int:
    """Intra-op threads of every computation: ``$UBENCH_THREADS`` or 1."""
    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}: expected a positive integer, got {value!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_ENV}: expected a positive integer, got {value!r}")
    return threads


def pin_threads() -> int:
    """Set torch's intra-op thread count to ``compute_threads()`` and return it."""
    import torch  # here, not at the top: ``bench/__init__`` imports this module to pin the kernels before torch loads

    threads = compute_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def numerics_env() -> dict[str, object]:
    """What a record stores about the numerics it ran under: the kernel variables as set, torch's CPU capability
    in use, the thread count, and the CPU model."""
    import torch  # here, not at the top: ``bench/__init__`` imports this module to pin the kernels before torch loads

    return {"threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "kernel_env": {name: os.environ.get(name, "") for name in ("ATEN_CPU_CAPABILITY", "MKL_CBWR",
                                                                     "DNNL_MAX_CPU_ISA")},
            "cpu": cpu_model(), "machine": platform.machine()}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
