"""``rfq spectrum``: limiting eigenvalue densities of every layer and of the conjugate kernel."""

from __future__ import annotations

import json

from ..options import add_input_arguments
from .common import (
    SLOW_SPECTRUM_DIGITS,
    check_output_path,
    fmt,
    model_from_args,
    model_header,
    note,
    note_slow_digits,
    split_list,
)

EXAMPLES = """\
examples:
  rfq spectrum --input-dim 1000 --widths 2000,1500,1000 --activations tanh,relu,erf \\
      --quantizers sign --samples 1200 --plot spectra.png
  rfq spectrum --input-dim 1000 --widths 500 --activations linear --points 200 --json
  rfq spectrum --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\
      --layers 2 --points 20 --digits 30 --json
  rfq spectrum --input-dim 1000 --widths 1500 --activations tanh --input-spectrum power:0.7 \
      --points 200 --plot structured.png
"""


def register(sub):
    """Add ``spectrum`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "spectrum",
        help="eigenvalue densities of the layers' feature covariances and of the conjugate kernel",
        description="Limiting spectral densities of the Gaussian-equivalent feature covariance Omega_l of "
        "every layer and, with --samples, of the conjugate kernel K = Z Z^T / k_L of n feature vectors, "
        "from the complex continuation of the solver's layer chain. Reports the support edges, point "
        "masses (an atom at zero where a layer is rank-deficient), the exact first four moments "
        "(1/k) tr M^j and the density on a grid clustered near the edges. Without --digits the float "
        "path is used; with --digits every number is computed with mpmath at that precision.",
        epilog=EXAMPLES,
    )
    p.add_argument("--input-dim", required=True, metavar="D", help="input dimension d (any positive real)")
    p.add_argument("--widths", required=True, metavar="K1,K2,...", help="comma-separated widths k_1,...,k_L")
    p.add_argument(
        "--activations",
        required=True,
        metavar="SPEC[,SPEC...]",
        help="one activation for all layers or one per layer (see 'rfq list')",
    )
    p.add_argument(
        "--quantizers",
        default="none",
        metavar="SPEC[,SPEC...]",
        help="one weight quantizer for all layers or one per layer (default none)",
    )
    p.add_argument(
        "--samples",
        default=None,
        metavar="N",
        help="number of feature vectors n: adds the spectrum of the conjugate kernel Z Z^T / k_L",
    )
    p.add_argument(
        "--layers",
        default=None,
        metavar="L1,L2,...",
        help="layers to report, integers 0..L (default: every layer 1..L)",
    )
    add_input_arguments(p)
    p.add_argument("--points", default="400", metavar="P", help="grid points per density (default 400)")
    p.add_argument(
        "--digits",
        type=int,
        default=None,
        help="significant digits, computed with mpmath (default: float path, 15 digits shown)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, numbers as strings")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="draw the densities to this image file")
    p.set_defaults(func=run_spectrum)


def _int_list(text, name, depth):
    from ..checks import InputError

    out = []
    for item in split_list(text, name):
        try:
            value = int(item)
        except ValueError:
            raise InputError(f"--{name} values must be integers between 0 and {depth}, got {item!r}") from None
        if not 0 <= value <= depth:
            raise InputError(f"--{name} values must be integers between 0 and {depth}, got {value}")
        out.append(value)
    return out


def run_spectrum(args):
    """``rfq spectrum``."""
    from ..checks import check_digits, check_scalar
    from ..outputs import write_output
    from ..spectra import spectrum

    model = model_from_args(args)
    digits = check_digits(args.digits) if args.digits is not None else None
    points = check_scalar(args.points, "points", int, min_val=2, max_val=100000)
    layers = _int_list(args.layers, "layers", model.depth) if args.layers is not None else None
    plot = check_output_path(args.plot, "plot", ".png") if args.plot else None
    note_slow_digits("spectrum", digits, SLOW_SPECTRUM_DIGITS, "the spectrum")
    for text in model.notes():
        note("spectrum", text)
    res = spectrum(model, samples=args.samples, layers=layers, points=points, digits=digits)
    shown = digits or 15
    if args.json:
        out = res.as_dict(shown)
        out.update(
            {
                "input_dim": str(args.input_dim),
                "widths": [str(w) for w in model.widths],
                "activations": list(model.activations),
                "quantizers": list(model.quantizers),
                "samples": None if args.samples is None else str(args.samples),
                "digits": digits,
                "path": "float" if digits is None else "mpmath",
            }
        )
        print(json.dumps(out, indent=2))
    else:
        print(model_header(args, model))
        show = min(shown, 12)
        for s in res.layers + ((res.gram,) if res.gram is not None else ()):
            name = f"layer {s.layer}" if s.layer != "gram" else f"conjugate kernel (n={args.samples})"
            print(f"{name}: size {fmt(s.size, show)}")
            print("  moments (1/k) tr M^j, j=1..4: " + ", ".join(fmt(m, show) for m in s.moments))
            print("  support: " + (" U ".join(f"[{fmt(a, show)}, {fmt(b, show)}]" for a, b in s.support) or "-"))
            atoms = ", ".join(f"{fmt(w, show)} at {fmt(loc, show)}" for loc, w in s.atoms)
            print(f"  atoms: {atoms or 'none'}")
            if len(s.x):
                i = max(range(len(s.density)), key=lambda j: s.density[j])
                print(
                    f"  density: {len(s.x)} points, maximum {fmt(s.density[i], show)} at x = {fmt(s.x[i], show)}"
                    f"; integrated mass with atoms {fmt(s.mass, 8)}"
                )
        print("(--json prints the grids and densities)")
    if plot:
        write_output(plot, "plot", lambda tmp: _plot(res, model, tmp), ".png")
        if not args.json:
            print(f"wrote {plot}")
    return 0


def _plot(res, model, path):
    """Draw :func:`spectrum_figure` to ``path``."""
    import matplotlib.pyplot as plt

    fig = spectrum_figure(res, model)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _log_axis(s) -> bool:
    """Whether the continuous support of ``s`` spans more than a decade (then the eigenvalue axis is logarithmic)."""
    lows = [float(a) for a, _ in s.support if float(a) > 0]
    highs = [float(b) for _, b in s.support]
    if not lows or not highs:
        xs = [float(v) for v in s.x if float(v) > 0]
        return bool(xs) and max(xs) / min(xs) > 10
    return max(highs) / min(lows) > 10


def spectrum_figure(res, model):
    """The figure of ``rfq spectrum --plot``: one panel per layer and one for the conjugate kernel.

    Panels whose support spans more than a decade use a logarithmic
    eigenvalue axis; point masses are drawn as vertical lines (an atom at
    zero, invisible on a logarithmic axis, is named in the panel title).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    items = list(res.layers) + ([res.gram] if res.gram is not None else [])
    fig, axes = plt.subplots(1, len(items), figsize=(3.8 * len(items), 3.4), squeeze=False)
    for ax, s in zip(axes[0], items):
        x = [float(v) for v in s.x]
        d = [float(v) for v in s.density]
        log = _log_axis(s)
        if log:
            keep = [i for i, v in enumerate(x) if v > 0]
            x, d = [x[i] for i in keep], [d[i] for i in keep]
            ax.set_xscale("log")
            # 1-2-5 ticks over up to two decades; over more, one tick a decade (labels would overlap)
            many = bool(x) and max(x) / min(x) > 150
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if many else (1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.plot(x, d, color="C0", lw=1.5)
        top = max(d) if d else 1.0
        hidden = []
        for loc, w in s.atoms:
            if log and float(loc) <= 0:
                hidden.append(f"atom {float(w):.3g} at {float(loc):g}")
                continue
            ax.vlines(float(loc), 0, top, color="C3", lw=1.2)
            ax.annotate(
                f"atom {float(w):.3g}",
                (float(loc), top),
                fontsize=8,
                color="C3",
                xytext=(3, -10),
                textcoords="offset points",
            )
        if s.layer == "gram":
            label = f"conjugate kernel K = Z Z^T / k_L (n = {float(s.size):g})"
        else:
            label = f"layer {s.layer}: Omega_{s.layer} ({_act(model, s.layer)}, k = {float(s.size):g})"
        if hidden:
            label += "\n" + "; ".join(hidden)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("eigenvalue (log scale)" if log else "eigenvalue")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("density")
    fig.suptitle(_model_title(model, res.gram.size if res.gram is not None else None), fontsize=10)
    fig.tight_layout()
    return fig


def _model_title(model, samples) -> str:
    widths = ", ".join(f"{float(k):g}" for k in model.widths)
    text = (
        f"d = {float(model.input_dim):g}, widths {widths}, activations {', '.join(map(str, model.activations))}, "
        f"quantizers {', '.join(map(str, model.quantizers))}"
    )
    if samples is not None:
        text = f"{text}, n = {float(samples):g}"
    if model.structured:
        text = f"{text}, input spectrum {model.input_spectrum.spec}"
    import textwrap

    # one line of the title per ~45 characters of a single-panel figure: it never runs off the page
    return "\n".join(textwrap.wrap(text, 45 if model.depth + (samples is not None) <= 1 else 90))


def _act(model, layer):
    return "input" if layer == 0 else f"{model.activations[layer - 1]}, {model.quantizers[layer - 1]}"
