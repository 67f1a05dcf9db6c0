"""``rfq validate-spectrum``: layer spectra of drawn networks against the theory.

Registered through the ``rfq.commands`` entry point; this module only
defines options (light to import), the work is imported when the command runs.
"""

from __future__ import annotations

from ..options import add_execution_arguments, model_fields

__all__ = ["register"]

EXAMPLES = """\
examples:
  rfq validate-spectrum --input-dim 1000 --widths 2000,1500,1000 --activations tanh,relu,erf \\
      --samples 1200 --out spectra-check
  rfq validate-spectrum --input-dim 300 --widths 600,450,300 --activations relu \\
      --quantizers none,sign --samples 360 --trials 2 --out small
  rfq validate-spectrum ... --trials 8 --workers 2      # draws on a local Dask cluster
  rfq validate-spectrum ... --trials 16 --resume        # add draws to a finished run
"""


def register(sub) -> None:
    """Add ``validate-spectrum`` to the ``rfq`` subparsers ``sub``."""
    p = sub.add_parser(
        "validate-spectrum",
        help="eigenvalues of drawn networks vs the predicted layer spectra",
        description="Draw networks at the given sizes, once per quantizer, and compare (a) the eigenvalues of "
        "the realized Gaussian-equivalent Omega_l and (b) the eigenvalues of the conjugate kernel "
        "Z_l Z_l^T / k_l of the actual nonlinear features on n samples with the predicted densities: "
        "Kolmogorov-Smirnov distance and relative errors of the first four moments per layer, pass when "
        "KS <= 10/N and the error of the j-th moment <= 5 s j/N (N the smallest dimension of the matrix's chain, "
        "s its number of random stages: l for Omega_l, l + 1 for the kernel of layer l). "
        "Each draw is written to OUT/results.jsonl as it finishes (--resume reuses the stored draws of the "
        "same settings; one run at a time per OUT); draws can run on a Dask cluster (--workers, --scheduler); "
        "OUT/spectra.png shows histograms against the densities for every quantizer.",
        epilog=EXAMPLES,
    )
    p.add_argument("--input-dim", required=True, metavar="D", help="input dimension d (an integer)")
    p.add_argument("--widths", required=True, metavar="K1,K2,...", help="comma-separated integer widths")
    p.add_argument("--activations", required=True, metavar="SPEC[,SPEC...]", help="one activation or one per layer")
    p.add_argument(
        "--quantizers",
        default="none,sign,sign-scaled",
        metavar="Q1,Q2,...",
        help="quantizers to compare, one network each (default none,sign,sign-scaled); each applies to every layer",
    )
    p.add_argument("--samples", required=True, metavar="N", help="number of inputs n for the conjugate kernel")
    p.add_argument(
        "--trials",
        default="1",
        metavar="T",
        help="independent draws per quantizer (default 1); with more than one, the moment errors of the "
        "mean over the draws are printed and written to OUT/means.json",
    )
    p.add_argument("--seed", default="0", metavar="S", help="random seed (default 0)")
    p.add_argument("--points", default="800", metavar="P", help="grid points per predicted density (default 800)")
    add_execution_arguments(p, "spectrum-validation")
    p.set_defaults(func=_run)


def _build(args):
    from .spectrum_check import SpectrumConfig, SpectrumExperiment

    fields = model_fields(args)
    return SpectrumExperiment(SpectrumConfig(**fields, points=args.points))


def _run(args):
    from ..options import check_execution, run_command

    code = check_execution(args, "rfq validate-spectrum")
    if code is not None:
        return code

    return run_command(args, _build, "rfq validate-spectrum")
