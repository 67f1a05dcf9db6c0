"""Commands of the timing package: ``rfq bench``.

Registered with the ``rfq`` command line through the ``rfq.commands`` entry
point; options only (light to import), the harness is imported when it runs.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "add_bench_arguments"]

BENCH_EXAMPLES = """\
examples:
  rfq bench                                   # default sizes for the device found
  rfq bench --device cpu --widths 1024 --batches 1,16 --json bench.json
  rfq bench --device cpu --widths 8192 --batches 1 --variants dense-fp32,onebit-cpu-fp32
"""


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
    from .bench import run_bench

    return run_bench(args)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``rfq bench`` options to ``parser``."""
    parser.add_argument(
        "--widths", default=None, help="comma-separated layer widths (default GPU: 1024,...,16384; CPU: 256,1024)"
    )
    parser.add_argument(
        "--batches", default=None, help="comma-separated batch sizes (default GPU: 1,16,256,4096; CPU: 1,16,256)"
    )
    parser.add_argument("--layers", default=3, help="number of random layers L (default 3)")
    parser.add_argument("--activation", default="relu", help="one of linear, relu, tanh, sign (default relu)")
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variants (dense-fp32, dense-fp16, dense-bf16, onebit-fp16, "
        "onebit-bf16, onebit-fp32, onebit-fused-fp16, onebit-cpu-fp32, reference-fp16, "
        "reference-bf16, reference-fp32, gemlite-w1-fp16)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--repeats", default=None, help="timed samples per case (default 25 GPU, 5 CPU)")
    parser.add_argument("--warmup", default=3, help="untimed warm-up calls per case (default 3)")
    parser.add_argument(
        "--min-sample-ms",
        default=None,
        help="each timed sample repeats the forward pass until it lasts this long (default 2 GPU, 0 CPU)",
    )
    parser.add_argument(
        "--max-case-seconds", default=4.0, help="cap on timing seconds per (variant, width, batch) (default 4)"
    )
    parser.add_argument("--no-graph", action="store_true", help="CUDA: time eager calls instead of a CUDA graph")
    parser.add_argument(
        "--gemv-max-batch", default=1, help="one-bit: batch sizes up to this use the bit-flip GEMV kernel (default 1)"
    )
    parser.add_argument(
        "--unpack-min-batch",
        default=1024,
        help="one-bit: batch sizes from this on unpack the layer (Triton) and call cuBLAS; "
        "0 disables (default 1024; the onebit-fused-* variants never unpack)",
    )
    parser.add_argument("--seed", default=0, help="random seed (default 0)")
    parser.add_argument(
        "--json",
        dest="json_path",
        default=None,
        help="write all results to this JSON file at the end; each case is also appended "
        "to <file>l (JSON lines, e.g. bench.jsonl) as soon as it finishes",
    )
    parser.add_argument(
        "--plot", dest="plot_path", default=None, help="write a speed-up vs batch size plot (PNG, needs matplotlib)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final table")
