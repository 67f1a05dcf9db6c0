"""``rfq data``: learning curves of a real data set, theory against the real network.

Registered through the ``rfq.commands`` entry point; this module only
defines options (light to import), the work is imported when the command runs.
"""

from __future__ import annotations

import sys

from ..options import add_execution_arguments

__all__ = ["register"]

EXAMPLES = """\
examples:
  rfq data --dataset digits --target lt5 --widths 800 --activations tanh --draws 20 --out digits-lt5
  rfq data --dataset digits --target regression --grid 100:1200:8 --plot curve.png --csv curve.csv
  rfq data --dataset file:mydata.npz --widths 1000,500 --activations relu --ridge 0.1
  rfq data ... --resume                          # continue an interrupted run, or add draws
  rfq data ... --workers 2                       # draws on a local Dask cluster
"""

DESCRIPTION = (
    "Read a data set as the theory's structured-input model (covariance spectrum, teacher profile from the "
    "least-squares fit of the labels, residual variance as label noise Delta, errors in units of the linear "
    "signal's variance), predict the ridge readout's learning curve E(n) for each quantizer, and measure it: "
    "for every n, random training subsets of n rows and random weight draws (the same W for every quantizer), "
    "the drawn network's ridge readout trained on the real rows and tested on the held-out rest. The same "
    "network is also trained on Gaussian surrogate data x ~ N(0, Sigma) with the fitted teacher and noise "
    "(the theory's own model): the difference isolates the data's non-Gaussianity. Draws are written to "
    "OUT/results.jsonl as they finish (--resume reuses them). Exit 0 when every real-data row agrees with the "
    "theory (|measured - theory| <= z_crit SE + finite-size allowance), 1 otherwise, 2 on bad input, "
    "3 when the theory does not converge."
)


def register(sub) -> None:
    """Add ``data`` to the ``rfq`` subparsers ``sub``."""
    p = sub.add_parser(
        "data",
        help="learning curves of a real data set: theory vs the real network",
        description=DESCRIPTION,
        epilog=EXAMPLES,
    )
    a = p.add_argument
    a(
        "--dataset",
        default="digits",
        metavar="NAME",
        help="digits (scikit-learn's bundled 1797 x 64 digits; needs the [sklearn] extra) or file:PATH.npz "
        "with arrays X (rows x features) and y (one number per row) (default digits)",
    )
    a(
        "--target",
        default=None,
        metavar="T",
        help="labels of the digits: lt5 (+1 for 0-4, -1 for 5-9), parity (+1 even, -1 odd) or regression "
        "(the digit value, standardized) (default lt5); a file's y is used as given",
    )
    a("--widths", default="800", metavar="K1,K2,...", help="comma-separated widths k_1..k_L (default 800)")
    a(
        "--activations",
        default="tanh",
        metavar="SPEC[,SPEC...]",
        help="one activation for every layer, or one per layer (default tanh)",
    )
    a(
        "--quantizers",
        default="none,sign",
        metavar="Q1,Q2,...",
        help="weight quantizers compared, each applied to every layer (default none,sign)",
    )
    a(
        "--grid",
        default="100,200,300,450,600,800,1000,1200",
        metavar="N1,N2,...",
        help="training-set sizes n: 'a,b,c' or 'start:stop:num' (rounded to whole numbers; "
        "default 100,200,300,450,600,800,1000,1200)",
    )
    a("--ridge", default="0.1", metavar="LAMBDA", help="ridge lambda >= 0 of the readout (default 0.1)")
    a("--draws", default="20", metavar="T", help="Monte Carlo draws per point, >= 6 for a verdict (default 20)")
    a("--seed", default="0", metavar="S", help="base seed (default 0)")
    a(
        "--surrogate-test",
        default="2000",
        metavar="M",
        help="test rows of the Gaussian surrogate per draw; 0 skips the surrogate (default 2000)",
    )
    a("--csv", default=None, metavar="PATH", help="also write the table as CSV to PATH (OUT/results.csv always)")
    a("--plot", default=None, metavar="PATH", help="write the figure to PATH (default OUT/figure.png)")
    add_execution_arguments(p, "realdata-out")
    p.set_defaults(func=_run)


def _err(msg: str) -> int:
    print(f"rfq data: error: {msg}", file=sys.stderr)
    return 2


def _run(args) -> int:
    import importlib.util

    from ..options import check_execution

    code = check_execution(args, "rfq data")
    if code is not None:
        return code
    if args.dataset == "digits" and importlib.util.find_spec("sklearn") is None:
        return _err("--dataset digits needs scikit-learn: pip install 'rfq-theory[sklearn]'")
    from ..options import run_command

    def build(args):
        from rfq_theory.options import check_output_path, parse_grid, split_list

        from .realdata_check import RealDataConfig, RealDataExperiment

        if args.csv is not None:
            args.csv = check_output_path(args.csv, "csv", ".csv")
        if args.plot is not None:
            args.plot = check_output_path(args.plot, "plot", ".png")
        values = parse_grid(args.grid, "grid")
        grid = [int(round(g)) for g in values] if ":" in args.grid else values  # a list must be whole numbers
        config = RealDataConfig(
            dataset=args.dataset,
            target=args.target,
            widths=tuple(split_list(args.widths, "widths")),
            activations=tuple(split_list(args.activations, "activations")),
            variants=tuple(split_list(args.quantizers, "quantizers")),
            grid=tuple(dict.fromkeys(grid)),
            ridge=args.ridge,
            trials=args.draws,
            seed=args.seed,
            surrogate_test=args.surrogate_test,
        )
        return RealDataExperiment(config, plot_path=args.plot)

    def after(experiment, report):
        if args.csv is not None:
            import csv
            import io

            from .records import atomic_write_text

            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=experiment.csv_columns, extrasaction="ignore")
            w.writeheader()
            for row in report["rows"]:
                w.writerow({k: ("" if v is None else v) for k, v in row.items()})
            from pathlib import Path

            atomic_write_text(Path(args.csv), buf.getvalue())
            report["files"]["csv_copy"] = args.csv

    return run_command(args, build, "rfq data", after=after)
