"""``rfq curve``: learning, width and ridge curves to CSV and a plot."""

from __future__ import annotations

import csv

from .common import (
    add_model_arguments,
    check_output_path,
    model_from_args,
    names,
    parse_grid,
    short_repr,
    split_list,
)
from .glm import add_glm_arguments, wants_glm

EXAMPLES = """\
examples:
  rfq curve --input-dim 1000 --widths 2000,1500 --activations tanh,relu --vary samples \\
      --grid 0.1:4:200 --ridge 1e-3 --out curve.csv --plot curve.png
  rfq curve --input-dim 1000 --widths 2000,1500 --activations tanh,relu --vary width \\
      --samples 1200 --grid 0.1:4:100 --compare 'none;ternary:0.5' --out width.csv

The grid holds ratios n/d (samples) or k_L/d (width), factors of all widths
(widths), or ridge values (ridge). The curve is drawn for --compare if given,
else for --quantizers if given, else for full precision, sign and scaled sign;
giving both --compare and --quantizers is an error.
"""

VARIANT_LABELS = {"none": "full precision", "sign": "one-bit (sign)", "sign-scaled": "one-bit (scaled sign)"}


def register(sub):
    """Add ``curve`` to the subparsers ``sub``."""
    from ..axes import VARY_CHOICES

    p = sub.add_parser(
        "curve",
        help="learning / width / ridge curves to CSV (and a plot)",
        description="Asymptotic test and train error over a grid of one axis, for one or more "
        "quantizer variants, written as CSV (and optionally a PNG plot).",
        epilog=EXAMPLES,
    )
    add_model_arguments(p, samples_required=False)
    p.set_defaults(quantizers=None)
    p.add_argument(
        "--vary",
        required=True,
        choices=VARY_CHOICES,
        help="the axis of the grid: samples (n = g d), width (k_L = g d), widths (every width "
        "times g) or ridge (lambda = g)",
    )
    p.add_argument(
        "--grid",
        default="0.1:4:200",
        metavar="GRID",
        help="ratios n/d or k_L/d, factors of all widths, or ridges: 'a,b,c' or 'start:stop:num[:log]' "
        "(default 0.1:4:200)",
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="VARIANT;VARIANT...",
        help="quantizer variants separated by ';', each a quantizer list as in --quantizers "
        "(default: --quantizers if given, else 'none;sign;sign-scaled')",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.csv",
        help="CSV file to write (one row per grid point and variant); its folder must exist",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also draw the test error to this PNG file ('.png' is added to a new name "
        "without suffix; must differ from --out)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="show a progress bar even when standard error is not a terminal",
    )
    add_glm_arguments(p)
    p.set_defaults(func=run_curve, ridge=None)  # None: not given (a ridge axis refuses --ridge)


def check_axis_options(vary, samples, ridge):
    """Refuse a fixed value for the axis being varied (one line, exit 2), instead of ignoring it."""
    from ..checks import InputError

    if vary == "samples" and samples is not None:
        raise InputError("--samples conflicts with --vary samples (the grid sets n); drop --samples")
    if vary == "ridge" and ridge is not None:
        raise InputError("--ridge conflicts with --vary ridge (the grid sets lambda); drop --ridge")


def _variants(args):
    from ..checks import InputError

    if args.compare is not None and args.quantizers is not None:
        raise InputError("give either --quantizers or --compare, not both (--compare lists the variants to draw)")
    if args.compare is not None:
        variants = [v.strip() for v in args.compare.split(";")]
        if any(not v for v in variants):
            raise InputError(
                f"--compare must be non-empty quantizer lists separated by ';', got {short_repr(args.compare)}"
            )
        for v in variants:
            split_list(v, "compare")
        return variants
    if args.quantizers is not None:
        return [args.quantizers]
    return ["none", "sign", "sign-scaled"]


def run_curve(args):
    """``rfq curve``: the asymptotic errors over a grid, one CSV row per point and variant.

    Ridge regression by default; with ``--labels``/``--loss`` the convex-loss readout
    (:func:`rfq_theory.glm.glm_sweep`) and its order parameters.
    """
    from ..checks import InputError
    from ..outputs import check_distinct_outputs, write_output
    from ..precision import is_mpf

    glm = wants_glm(args)
    out_path = check_output_path(args.out, "out")
    plot_path = check_output_path(args.plot, "plot", ".png") if args.plot is not None else None
    check_distinct_outputs({"out": out_path, "plot": plot_path})
    check_axis_options(args.vary, args.samples, args.ridge)
    if args.ridge is None:
        args.ridge = "0"
    variants = _variants(args)
    args.quantizers = variants[0]
    model = model_from_args(args)
    grid = parse_grid(args.grid)
    if args.vary != "samples" and args.samples is None:
        raise InputError("--samples is required unless --vary samples")
    from ..readouts import curve, readout_for
    from .predict import note_model

    note_model(model, "curve")

    readout = readout_for(args.loss, args.labels)
    rows, results, failed = [], {}, 0
    for variant in variants:
        m = model.with_quantizers(tuple(split_list(variant, "compare")))
        fixed = (args.samples, args.ridge, args.noise, args.target)
        preds = curve(readout, m, args.vary, grid, *fixed, progress=args.progress, ratio=True)
        results[variant] = preds
        for g, v, p in zip(grid, preds.applied, preds):
            row = {"vary": args.vary, "x": g, "value": v, "quantizers": variant}
            row.update(_glm_row(args, p) if glm else _ridge_row(p))
            row["status"] = p.diagnostics.status
            rows.append(row)
            failed += 0 if p.diagnostics.converged else 1

    def write_csv(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {k: (repr(float(v)) if (isinstance(v, float) or is_mpf(v)) else v) for k, v in r.items()}
                )

    write_output(out_path, "out", write_csv)
    print(f"wrote {len(rows)} rows to {out_path}")
    if failed:
        import sys

        print(
            f"rfq curve: note: {failed} of {len(rows)} point(s) did not converge; their rows hold nan "
            "and status 'failed'",
            file=sys.stderr,
        )
        if failed == len(rows):
            return 3  # nothing converged: a solver failure, as for one point
    if plot_path:
        write_output(plot_path, "plot", lambda tmp: plot_curve(args, model, grid, results, tmp), ".png")
        print(f"wrote {plot_path}")
    return 0


def _ridge_row(p):
    return {
        "test_error": p.test_error,
        "train_error": p.train_error,
        "effective_ridge": p.effective_ridge,
        "df1": p.df1,
        "df2": p.df2,
        "regime": p.regime,
    }


def _glm_row(args, p):
    return {
        "labels": args.labels,
        "loss": args.loss,
        "test_error": p.test_error,
        "test_loss": p.test_loss,
        "train_loss": p.train_loss,
        "train_error": p.train_error,
        "m": p.m,
        "q": p.q,
        "V": p.V,
    }


def plot_curve(args, model, grid, results, path):
    """Test error against the grid, one line per variant."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"none": ("-", 3.0, 0.45), "sign": ("--", 1.6, 1.0), "sign-scaled": (":", 2.0, 1.0)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant, preds in results.items():
        ls, lw, alpha = styles.get(variant, ("-.", 1.5, 1.0))
        ys = [float(p.test_error) for p in preds]
        ax.plot(grid, ys, ls, lw=lw, alpha=alpha, label=VARIANT_LABELS.get(variant, variant))
    xlabel = {"samples": "n / d", "width": "k_L / d", "widths": "widths factor", "ridge": "ridge lambda"}[args.vary]
    ax.set_xlabel(xlabel)
    if wants_glm(args):
        ax.set_ylabel("test classification error" if args.labels == "sign" else "test error")
    else:
        ax.set_ylabel("asymptotic test error")
    if args.vary == "ridge":
        ax.set_xscale("log")
    finite = [float(p.test_error) for ps in results.values() for p in ps if math.isfinite(float(p.test_error))]
    if finite:
        top = sorted(finite)[int(0.95 * (len(finite) - 1))]
        ax.set_ylim(0, max(top * 1.2, 1e-3))
    fixed = {
        "samples": f"ridge {args.ridge}",
        "width": f"n {args.samples}, ridge {args.ridge}",
        "widths": f"n {args.samples}, ridge {args.ridge}",
        "ridge": f"n {args.samples}",
    }[args.vary]
    widths = " x ".join(str(w) for w in model.widths) + (" (k_L varied)" if args.vary == "width" else "")
    readout = f", {args.loss} loss, {args.labels} labels" if wants_glm(args) else ""
    title = f"d {model.input_dim}, widths {widths}, {'/'.join(names(model.activations))}, {fixed}{readout}"
    if model.structured:
        title += f"\ninput spectrum {model.input_spectrum.spec}, teacher {model.teacher.spec}"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")  # the file named, even without a suffix
    plt.close(fig)
