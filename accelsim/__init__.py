"""accelsim: a cycle-level simulator of CNN accelerators that exploit the values flowing through a network."""

import os

# OpenBLAS's idle worker threads spin for up to 2^28 cycles after each GEMM (OPENBLAS_THREAD_TIMEOUT's default) and,
# on a machine with few cores, take them from the Numba kernels that run between a run's GEMMs; 2^4 lets them sleep
# almost at once (SqueezeNet v1.1 exact, 200 images: 13 % less wall time, 18 % less CPU time, means of 4 runs;
# benchmarks/functional_speed.md). It only takes effect when accelsim is imported before NumPy (the CLI, `python -m
# accelsim`), and a value the user has set wins. It changes no result.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
