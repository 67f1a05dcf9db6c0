"""Commands of the timing package: ``rfq bench``.

Registered with the ``rfq`` command line through the ``rfq.commands`` entry
point.  The harness (:mod:`validation.timing.bench`) owns its options; it is
light to import (standard library only at module level), so registering
the command imports it without loading PyTorch.
"""

from __future__ import annotations

from .bench import BENCH_EXAMPLES, add_bench_arguments, run_bench

__all__ = ["register", "add_bench_arguments"]


def register(sub) -> None:
    """Add ``bench`` to the ``rfq`` subparsers ``sub``."""
    p = sub.add_parser(
        "bench",
        help="one-bit inference timing harness (PyTorch/Triton, Numba on CPU)",
        description="Time an L-layer random-features network with dense and bit-packed one-bit weights "
        "side by side, after checking each variant against a float64 reference. Needs PyTorch: on a "
        "CPU-only machine install the CPU build with 'pip install torch==2.13.0'; the one-bit CPU kernel "
        "(onebit-cpu-fp32) needs Numba: pip install 'rfq-theory[cpu]'.",
        epilog=BENCH_EXAMPLES,
    )
    add_bench_arguments(p)
    p.set_defaults(func=_run_bench)


def _run_bench(args):
    return run_bench(args)
