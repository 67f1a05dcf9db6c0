"""``rfq phase``: a quantity over a plane of two axes (NumPy arrays, a CSV, a heatmap)."""

from __future__ import annotations

from .common import add_model_arguments, check_output_path, model_from_args, note_large_map
from .glm import add_glm_arguments

EXAMPLES = """\
examples:
  rfq phase --input-dim 1000 --widths 2000,1500,1000 --activations tanh,relu,erf \\
      --quantizers sign --x samples:0.1:4:300 --y width:0.1:4:300 --out map.npz --plot map.png
  rfq phase --input-dim 1000 --widths 2000,1500 --activations tanh,relu --quantizers sign-scaled \\
      --samples 1500 --x ridge:log:1e-6:10:200 --y widths:0.2:3:150 --quantity gap --out gap.npz
  rfq phase --input-dim 500 --widths 1000 --activations relu --x samples:log:0.05:10:200 \\
      --y depth:1:6:6 --quantity optimal_error --out depth.npz --csv depth.csv

Axes (NAME:START:STOP:POINTS linear, NAME:log:START:STOP:POINTS log-spaced):
  samples  n/d            width   last width k_L/d        widths  all widths times a factor
  ridge    lambda          depth   number of layers (integers; the last layer is repeated)
Quantities: test_error, train_error, gap (model's quantizers minus full precision),
optimal_ridge, optimal_error; with --labels sign --loss logistic|hinge|square also
train_loss and test_loss (test_error and train_error are then classification errors). The .npz holds arrays x, y (as given) and one array
named after the quantity, of shape (len(y), len(x)); NaN marks points that did not
converge (counted in a warning), inf the ridgeless interpolation threshold.
"""


def register(sub):
    """Add ``phase`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "phase",
        help="phase diagram: a quantity over two axes (npz, csv, heatmap)",
        description="Map the asymptotic test error, train error, quantization gap or optimal ridge over a\n"
        "plane of two axes, solving every point of the grid at once with the vectorized float\n"
        "solver (ill-conditioned points are re-solved together in double-double arithmetic, the\n"
        "rest of them with mpmath). Writes the map as .npz, optionally as CSV and as a heatmap with contour\n"
        "lines and the interpolation threshold.",
        epilog=EXAMPLES,
    )
    add_model_arguments(p, samples_required=False)
    p.add_argument("--x", required=True, metavar="AXIS", help="horizontal axis, e.g. samples:0.1:4:300")
    p.add_argument("--y", required=True, metavar="AXIS", help="vertical axis, e.g. width:log:0.1:10:200")
    p.add_argument(
        "--quantity",
        default="test_error",
        choices=("test_error", "train_error", "train_loss", "test_loss", "gap", "optimal_ridge", "optimal_error"),
        help="what to map (default test_error; train_loss and test_loss need --loss/--labels; with --labels "
        "sign, test_error and train_error are classification errors)",
    )
    p.add_argument("--out", required=True, help="the .npz file to write")
    p.add_argument("--csv", default=None, help="also write the map as CSV (one row per point)")
    p.add_argument("--plot", default=None, help="PNG heatmap ('.png' is added if the name has no suffix)")
    p.add_argument(
        "--fallback",
        default="dd",
        choices=("dd", "mpmath", "none"),
        help="ill-conditioned points (tiny ridges, next to the threshold): re-solve them all at once in "
        "double-double arithmetic and pass only those still ill-conditioned to mpmath (dd, the default), "
        "re-solve each with mpmath (tens of ms per point), or leave them NaN (none)",
    )
    p.add_argument("--progress", action="store_true", default=None, help="force a progress bar")
    add_glm_arguments(p)
    p.set_defaults(func=run_phase, ridge=None)  # None: not given (a ridge axis refuses --ridge)


def run_phase(args):
    """``rfq phase``."""
    import warnings

    from ..checks import InputError
    from ..outputs import check_distinct_outputs, write_output
    from ..phase import parse_range, phase_map, plot_phase
    from ..readouts import readout_for

    out_path = check_output_path(args.out, "out", ".npz")
    if not out_path.endswith(".npz"):
        raise InputError(f"--out must name a .npz file, got {args.out!r}")
    csv_path = check_output_path(args.csv, "csv") if args.csv is not None else None
    plot_path = check_output_path(args.plot, "plot", ".png") if args.plot is not None else None
    check_distinct_outputs({"out": out_path, "csv": csv_path, "plot": plot_path})
    x, y = parse_range(args.x, "--x"), parse_range(args.y, "--y")
    axes = (x.name, y.name)
    if "ridge" in axes and args.ridge is not None:
        raise InputError("--ridge conflicts with a ridge axis (the axis sets lambda); drop --ridge")
    if args.quantity.startswith("optimal") and args.ridge is not None:
        raise InputError(f"--ridge conflicts with --quantity {args.quantity} (it chooses the ridge); drop --ridge")
    if "samples" in axes and args.samples is not None:
        raise InputError("--samples conflicts with a samples axis (the axis sets n); drop --samples")
    if args.ridge is None:
        args.ridge = "0"
    model = model_from_args(args)
    from .predict import note_model

    note_model(model, "phase")
    readout = readout_for(args.loss, args.labels)
    if "samples" not in (x.name, y.name) and args.samples is None:
        raise InputError("--samples is required unless one axis is samples")
    note_large_map("phase", x.points * y.points)
    progress = args.progress  # None: a bar on a terminal for long maps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = phase_map(
            model,
            x,
            y,
            args.quantity,
            args.samples,
            args.ridge,
            args.noise,
            args.target,
            fallback=args.fallback,
            progress=progress,
            warn=False,
            readout=readout,
        )
    write_output(out_path, "out", pm.save_npz)
    print(f"wrote {pm.shape[0]} x {pm.shape[1]} map of {pm.quantity} to {out_path}")
    if pm.n_fallback:
        how = {
            "mpmath": "re-solved with mpmath",
            "dd": "re-solved in double-double or with mpmath",
            "none": "left as NaN (--fallback none)",
        }[args.fallback]
        print(f"{pm.n_fallback} ill-conditioned point(s) {how}")
    if pm.n_failed:
        import sys

        print(
            f"rfq phase: warning: {pm.n_failed} of {pm.values.size} point(s) did not converge; they are NaN",
            file=sys.stderr,
        )
    if csv_path:
        write_output(csv_path, "csv", pm.save_csv)
        print(f"wrote {csv_path}")
    if plot_path:
        m = model
        title = (
            f"d {m.input_dim}, widths {' x '.join(str(w) for w in m.widths)}, {'/'.join(m.activations)}, "
            f"{'/'.join(m.quantizers)}"
            + (f", n {args.samples}" if args.samples is not None else "")
            + (
                f", ridge {args.ridge}"
                if "ridge" not in (x.name, y.name) and not args.quantity.startswith("optimal")
                else ""
            )
            + (f", noise {args.noise}" if str(args.noise).strip() not in ("0", "0.0") else "")
            + (f", {readout.name}" if readout.name != "ridge" else "")
            + (f"\ninput spectrum {m.input_spectrum.spec}, teacher {m.teacher.spec}" if m.structured else "")
        )
        write_output(plot_path, "plot", lambda tmp: plot_phase(pm, tmp, title=title), ".png")
        print(f"wrote {plot_path}")
    return 0
