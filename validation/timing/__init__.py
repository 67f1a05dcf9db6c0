"""One-bit inference: bit-packed sign matrices, kernels and the timing harness.

Modules: ``onebit`` (packing format), ``triton_onebit`` (GPU kernels, Triton),
``cpu_onebit`` (CPU lookup-table kernel, Numba), ``bench`` (the ``rfq bench`` harness).
"""
