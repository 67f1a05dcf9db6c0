"""Commands of the Monte Carlo package: ``rfq validate`` and ``rfq demo``.

Registered with the ``rfq`` command line through the ``rfq.commands`` entry
point; this module only defines options (light to import), the work is
imported when a command runs.
"""

from __future__ import annotations

import argparse

from rfq_theory.axes import VARY_CHOICES

from ..options import add_execution_arguments, add_input_options, axis_help

__all__ = ["register", "add_validate_arguments", "add_demo_arguments"]

VALIDATE_EXAMPLES = """\
examples:
  rfq validate --input-dim 800 --widths 1600,1200 --activations tanh,relu \\
      --quantizers none,sign,sign-scaled --vary samples --grid 0.5,1,1.5,2,3 --trials 8
  rfq validate --input-dim 200 --widths 400 --activations 'Max(u,0.1*u)' \\
      --quantizers 'none,expr:sign(g)*Min(abs(g),1)' --grid 1,2 --trials 6 --out small
  rfq validate ... --workers 2                       # draws on a local Dask cluster
  rfq validate ... --scheduler tcp://host:8786       # draws on an existing Dask cluster
  rfq validate ... --resume                          # continue an interrupted run
  rfq validate --input-dim 300 --widths 450 --quantizers none,sign --input-spectrum power:0.7 \\
      --teacher power:1 --basis rotated --grid 1,2      # x ~ N(0, Sigma), Sigma in a random basis
"""

DEMO_EXAMPLES = """\
example:
  rfq demo --out results
"""


def register(sub) -> None:
    """Add ``validate`` and ``demo`` to the ``rfq`` subparsers ``sub``."""
    p = sub.add_parser(
        "validate",
        help="Monte Carlo and finite-size checks of the theory",
        description="Theory vs the finite-size route vs Monte Carlo simulations of real networks, "
        "row by row over a grid, with a pass/fail verdict per row. Rows are written as they finish "
        "(OUT/results.jsonl) and --resume skips finished draws. Draws can run on a Dask cluster "
        "(--workers, --scheduler).",
        epilog=VALIDATE_EXAMPLES,
    )
    add_validate_arguments(p)
    p.set_defaults(func=_run_validate)
    p = sub.add_parser(
        "demo",
        help="the main job: theory vs simulation for a small model",
        description="Simulate a small 2-layer one-bit network against the theory for full precision, "
        "sign and scaled-sign weights (about half a minute on 2 cores) and draw demo.png.",
        epilog=DEMO_EXAMPLES,
    )
    add_demo_arguments(p)
    p.set_defaults(func=_run_demo)


def _run_validate(args):
    from ..options import check_execution

    code = check_execution(args, "rfq validate")  # before the heavy imports: a wrong --scheduler fails fast
    if code is not None:
        return code
    from .compare import run_validate

    return run_validate(args)


def _run_demo(args):
    from .demo import run_demo

    return run_demo(args)


def add_validate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``rfq validate`` (see ``docs/validation.md``)."""
    a = parser.add_argument
    a("--input-dim", type=str, default="800", help="input dimension d (default 800)")
    a("--widths", type=str, default="1600,1200", help="comma-separated widths k_1..k_L (default 1600,1200)")
    a(
        "--activations",
        type=str,
        default="tanh",
        metavar="SPEC[,SPEC...]",
        help="one activation for every layer, or one per layer (default tanh, applied to every layer)",
    )
    a(
        "--quantizers",
        type=str,
        default="none,sign,sign-scaled",
        help="variants to compare, each applied to all layers (default none,sign,sign-scaled)",
    )
    a("--samples", type=str, default=None, help="n when samples are not varied (default d)")
    a("--ridge", type=str, default="1e-2", help="ridge lambda >= 0 (default 1e-2)")
    a("--noise", type=str, default="0.1", help="label-noise variance Delta (default 0.1)")
    a("--target", type=str, default="linear", help="target f* (activation spec, default linear)")
    add_input_options(parser)
    a(
        "--vary",
        choices=VARY_CHOICES,
        default="samples",
        help=axis_help() + " (default samples)",
    )
    a(
        "--grid",
        type=str,
        default="0.5,1,1.5,2,3",
        help="grid values g: 'a,b,c' or 'start:stop:num[:log]' (default 0.5,1,1.5,2,3)",
    )
    a("--trials", type=str, default="8", help="independent draws per row, >= 6 for a verdict (default 8)")
    a("--test-samples", type=str, default="4000", help="test points per draw (default 4000)")
    a("--seed", type=str, default="0", help="base seed (default 0)")
    a("--backend", choices=("numpy", "torch"), default="numpy", help="simulation backend (default numpy)")
    a("--device", choices=("cpu", "cuda"), default="cpu", help="torch device (default cpu)")
    a("--dtype", choices=("float64", "float32"), default="float64", help="simulation precision (default float64)")
    add_execution_arguments(parser, "validation-out")
    a("--scaling", action="store_true", help="also run the scaling check (growing d, fixed ratios)")
    a(
        "--labels",
        choices=("regression", "sign"),
        default=None,
        help="labels: regression (default with --loss square) or sign (+-1; default with --loss logistic/hinge)",
    )
    a("--loss", choices=("square", "logistic", "hinge"), default="square", help="readout loss (default square)")
    return parser


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``rfq demo``."""
    parser.add_argument("--out", type=str, default=".", help="directory for demo.png (default .)")
    parser.add_argument("--seed", type=str, default="0", help="base seed of the simulated networks (default 0)")
    parser.add_argument("--trials", type=str, default=None, help="draws per Monte Carlo point (default 8)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser
