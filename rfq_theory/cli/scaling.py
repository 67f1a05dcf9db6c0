"""``rfq scaling``: power-law exponents of the error against samples or width, per quantizer."""

from __future__ import annotations

import csv
import json

from .common import add_model_arguments, check_output_path, fmt, model_from_args, names, short_repr, split_list
from .glm import add_glm_arguments

EXAMPLES = """\
examples:
  rfq scaling --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\
      --input-spectrum power:1.5 --teacher power:1 --vary samples --grid 0.002:0.2:100 \\
      --ridge 1e-4 --quantizers none,sign,sign-scaled,uniform:4 --plot scaling.png
  rfq scaling --input-dim 1000 --widths 2000,1500 --activations erf --input-spectrum power:0.8 \\
      --vary widths --grid 1:1000:60 --samples 300 --ridge 1e-3 --json
  rfq scaling --input-dim 1000 --widths 2000 --activations relu --input-spectrum power:1.5 \\
      --vary samples --grid 0.002:0.2:80 --ridge optimal --noise 0.1 --csv curves.csv

The grid 'LO:HI:POINTS' is log-spaced (also 'LO:HI:POINTS:log' or a list
'a,b,c'). Its values are ratios n/d (samples), k_L/d (width: the last width)
or factors multiplying every width (widths); the fit E - E_inf ~ C x^-p is
against these values, so C is in grid units. E_inf is the theory's error at
a far point, 1e9 times the largest of the grid's end and the model's other
sizes. The table lists p with its
least-squares standard error, C, E_inf and the range of the local slope
-d log(E - E_inf) / d log x over the fitted points: a narrow range means one
power law holds on the grid.
"""


def register(sub):
    """Add ``scaling`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "scaling",
        help="scaling laws: power-law exponents of the error against samples or width, per quantizer",
        description="Theory test error on a log grid of the number of samples or the width, for several "
        "quantizers side by side, and the power-law fit E(x) - E_inf ~ C x^-p of each: the exponent p "
        "with its standard error, the constant C, the limit E_inf and the local slopes.",
        epilog=EXAMPLES,
    )
    add_model_arguments(p, samples_required=False)
    _set_help(
        p,
        "quantizers",
        "comma-separated quantizers compared side by side, each applied to every layer "
        "(default none,sign,sign-scaled,uniform:4): none, sign, sign-scaled, ternary:t, uniform:b[:clip] "
        "or expr:<expression in g> (see 'rfq list')",
    )
    _set_help(p, "samples", "number of training samples n (required unless --vary samples)")
    _set_help(
        p, "ridge", "ridge lambda >= 0 (default 0: minimum-norm interpolator), or 'optimal' (the best ridge per point)"
    )
    # rfq_theory.scaling_laws.DEFAULT_QUANTIZERS, written out: importing it here would load NumPy on every rfq call
    p.set_defaults(quantizers="none,sign,sign-scaled,uniform:4")
    p.add_argument(
        "--vary",
        required=True,
        choices=("samples", "width", "widths"),
        help="the axis: samples (n = x d), width (last width k_L = x d) or widths (every width times x)",
    )
    p.add_argument(
        "--grid",
        required=True,
        metavar="LO:HI:POINTS",
        help="log-spaced grid of x with POINTS >= 3 points (or 'a,b,c')",
    )
    p.add_argument(
        "--fit-range",
        default=None,
        metavar="LO:HI",
        help="fit only the grid points with LO <= x <= HI (default: all)",
    )
    p.add_argument("--json", action="store_true", help="print the fits, curves and settings as JSON")
    p.add_argument(
        "--csv", default=None, metavar="FILE.csv", help="write one row per quantizer and grid point to this file"
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw E - E_inf on log-log axes with the fitted lines, and the local slopes ('.png' is added "
        "to a new name without suffix)",
    )
    add_glm_arguments(p)
    p.set_defaults(func=run_scaling, ridge=None)


def _set_help(parser, dest, text) -> None:
    for action in parser._actions:
        if action.dest == dest:
            action.help = text


def parse_log_grid(text: str, name: str = "grid") -> list[float]:
    """``LO:HI:POINTS`` (log-spaced), ``LO:HI:POINTS:log`` or ``a,b,c``: at least 3 positive values."""
    from ..checks import InputError
    from ..options import parse_grid

    text = str(text).strip()
    parts = text.split(":")
    if ":" in text:
        if len(parts) == 4 and parts[3] == "lin":
            raise InputError(f"--{name}: a scaling grid is log-spaced; give LO:HI:POINTS, got {text!r}")
        if len(parts) == 3:
            text += ":log"
    values = parse_grid(text, name)
    if len(values) < 3:
        raise InputError(f"--{name} must hold at least 3 points to fit an exponent with an error bar, got {text!r}")
    if any(v <= 0 for v in values):
        raise InputError(f"--{name} values must be positive (a log grid), got {short_repr(text)}")
    if len(set(values)) != len(values):
        raise InputError(f"--{name} values must be distinct, got {short_repr(text)}")
    return values


def _fit_range(text):
    from ..checks import InputError

    if text is None:
        return None
    from ..options import read_float

    parts = str(text).split(":")
    if len(parts) != 2:
        raise InputError(f"--fit-range must be LO:HI (two numbers), got {short_repr(text)}")
    lo, hi = (read_float(v, "--fit-range") for v in parts)
    if not (0 <= lo < hi < float("inf")):
        raise InputError(f"--fit-range must satisfy 0 <= LO < HI, got {short_repr(text)}")
    return lo, hi


def run_scaling(args):
    """``rfq scaling``: the table of exponents (or JSON), optionally a CSV and a figure."""
    import sys

    from ..checks import InputError
    from ..outputs import check_distinct_outputs, write_output
    from ..readouts import readout_for
    from ..scaling_laws import scaling_law
    from .glm import wants_glm
    from .predict import note_model

    csv_path = check_output_path(args.csv, "csv") if args.csv is not None else None
    plot_path = check_output_path(args.plot, "plot", ".png") if args.plot is not None else None
    check_distinct_outputs({"csv": csv_path, "plot": plot_path})
    if args.vary == "samples" and args.samples is not None:
        raise InputError("--samples conflicts with --vary samples (the grid sets n); drop --samples")
    if args.vary != "samples" and args.samples is None:
        raise InputError("--samples is required unless --vary samples")
    grid = parse_log_grid(args.grid)
    fit_range = _fit_range(args.fit_range)
    variants = split_list(args.quantizers, "quantizers")
    if len(set(variants)) != len(variants):
        raise InputError(f"--quantizers must be distinct, got {short_repr(args.quantizers)}")
    ridge_text = "0" if args.ridge is None else str(args.ridge).strip()
    ridge = "optimal" if ridge_text.lower() == "optimal" else _number(ridge_text, "ridge")
    samples = None if args.samples is None else _number(args.samples, "samples")
    noise = _number(args.noise, "noise")
    wants_glm(args)
    readout = readout_for(args.loss, args.labels)
    quantizer_text = args.quantizers
    args.quantizers = "none"
    model = model_from_args(args)
    args.quantizers = quantizer_text
    note_model(model, "scaling")
    law = scaling_law(
        model,
        args.vary,
        grid,
        samples=samples,
        ridge=ridge,
        noise=noise,
        target=args.target,
        quantizers=variants,
        ratio=True,
        fit_range=fit_range,
        readout=readout,
    )
    if args.json:
        print(json.dumps(law.as_dict(), indent=2))
    else:
        print_table(args, model, law, ridge_text)
    for msg in law.messages:
        print(f"rfq scaling: note: {msg}", file=sys.stderr)
    if law.n_failed and law.n_failed >= law.test_error.size:
        print("rfq scaling: error: solver: no point converged", file=sys.stderr)
        return 3
    if csv_path:
        write_output(csv_path, "csv", lambda tmp: write_csv(law, tmp))
        if not args.json:
            print(f"wrote {law.test_error.size} rows to {csv_path}")
    if plot_path:
        title = _title(args, model, ridge_text, readout.name)
        write_output(plot_path, "plot", lambda tmp: plot_scaling_law(law, tmp, title), ".png")
        if not args.json:
            print(f"wrote {plot_path}")
    return 0


def _number(text, name) -> float:
    from ..checks import InputError
    from ..options import read_float

    value = read_float(text, f"--{name}")
    if value < 0:
        raise InputError(f"--{name} must be a finite number >= 0, got {short_repr(text)}")
    return value


AXIS_TEXT = {"samples": "n/d", "width": "k_L/d", "widths": "widths factor"}


def print_table(args, model, law, ridge_text) -> None:
    """The model line, the settings line and one row per quantizer."""
    from .common import model_header

    print(model_header(args, model).replace(f", quantizers={','.join(names(model.quantizers))}", ""))
    fixed = f"samples={args.samples}, " if args.vary != "samples" else ""
    print(
        f"vary {args.vary} (x = {AXIS_TEXT[args.vary]}), {law.values.size} points "
        f"{fmt(law.values.min(), 4)}..{fmt(law.values.max(), 4)}; {fixed}ridge={ridge_text}, noise={args.noise}, "
        f"target={args.target}"
    )
    print("fit: E(x) - E_inf ~ C x^-p by least squares on the log-log grid; E_inf = E at 1e9 x the largest size")
    width = max([len("quantizers")] + [len(q) for q in law.quantizers])
    head = f"  {'quantizers':<{width}}  {'p':>9}  {'+- SE':>8}  {'C':>11}  {'E_inf':>11}  {'local slope':>17}  points"
    print(head)
    for row in law.table():
        slope = f"{fmt(row['slope_min'], 4)}..{fmt(row['slope_max'], 4)}"
        print(
            f"  {row['quantizers']:<{width}}  {fmt(row['exponent'], 5):>9}  {fmt(row['exponent_stderr'], 2):>8}  "
            f"{fmt(row['constant'], 5):>11}  {fmt(row['limit'], 5):>11}  {slope:>17}  {row['fit_points']:>6}"
        )


def write_csv(law, path) -> None:
    """One row per quantizer and grid point (``ScalingLaw.rows``), floats round-trip."""
    rows = law.rows()
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})


def _title(args, model, ridge_text, readout) -> str:
    widths = " x ".join(str(w) for w in model.widths)
    spec = f", Sigma {model.input_spectrum.spec}, teacher {model.teacher.spec}" if model.structured else ""
    fixed = f", n {args.samples}" if args.vary != "samples" else ""
    extra = f", {readout}" if readout != "ridge" else ""
    return f"d {model.input_dim}, widths {widths}, {'/'.join(names(model.activations))}{spec}{fixed}, ridge {ridge_text}{extra}"


def plot_scaling_law(law, path, title: str = "") -> None:
    """Two panels: ``E - E_inf`` with the fitted lines (log-log) and the local slopes against ``x``."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.6), sharex=True, height_ratios=(3, 2))
    x = law.values
    styles = ["-", "--", ":", "-."]
    for i, q in enumerate(law.quantizers):
        ls = styles[i % len(styles)]
        fit = law.fits[i]
        ex = np.where(fit.excess > 0, fit.excess, np.nan)
        (line,) = top.plot(x, ex, ls, lw=2.0 if i == 0 else 1.6, alpha=0.6 if i == 0 else 1.0, label=q)
        if math.isfinite(fit.exponent):
            xs = x[fit.used]
            top.plot(
                xs,
                fit.constant * xs ** (-fit.exponent),
                color=line.get_color(),
                lw=0.8,
                alpha=0.9,
                ls=(0, (1, 2)),
                label=f"fit p = {fit.exponent:.3f} +- {fit.exponent_stderr:.1g}",
            )
            bottom.axhline(fit.exponent, color=line.get_color(), lw=0.6, alpha=0.5)
        bottom.plot(x, fit.local_slope, ls, color=line.get_color(), lw=1.6)
    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("E(x) - E_inf")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize=7)
    bottom.set_xlabel({"samples": "n / d", "width": "k_L / d", "widths": "widths factor"}[law.vary])
    bottom.set_ylabel("local slope -dlog(E-E_inf)/dlog x")
    bottom.grid(alpha=0.3)
    if title:
        top.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
