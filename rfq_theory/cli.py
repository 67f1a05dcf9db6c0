"""Command-line interface: ``rfq <command>`` (also ``python -m rfq_theory``).

Commands: ``coefficients``, ``layers``, ``predict``, ``curve``, ``theorem``,
``validate``, ``demo``, ``bench``.  Every command calls the same library
functions as the Python API.  Bad input prints one line on standard error
and exits with code 2; a solver failure exits with code 3.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import List, Optional

import mpmath

from . import __version__
from .activations import V, get_activation
from .checks import InputError, check_digits, format_number, to_mpf_exactly
from .coefficients import NotExactError, coefficients
from .equivalence import propagate
from .model import DeepRF
from .quantizers import get_quantizer
from .solver import SolverError, predict
from .sweeps import VARY_CHOICES, one_bit_theorem, optimal_ridge, sweep

__all__ = ["main", "build_parser"]

EXIT_INPUT = 2
EXIT_SOLVER = 3


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message):  # noqa: D401 - argparse API
        raise _UsageError(f"{self.prog}: error: {message}")


def _fmt(x, digits):
    return "-" if x is None else format_number(x, digits)


def _split(text, name):
    items = [t.strip() for t in _split_top_level(text)]
    if not items or any(not t for t in items):
        raise InputError(f"--{name} must be a comma-separated list, got {text!r}")
    return items


def _split_top_level(text):
    """Split on commas that are not inside parentheses (expressions may hold commas)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def parse_grid(text: str, name="grid"):
    """A grid: ``a,b,c`` or ``start:stop:num`` (linear) or ``start:stop:num:log``."""
    import numpy as np

    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
            raise InputError(f"--{name} must be 'a,b,c' or 'start:stop:num[:log]', got {text!r}")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise InputError(f"--{name} must be 'a,b,c' or 'start:stop:num[:log]', got {text!r}") from None
        if num < 1 or num > 100000:
            raise InputError(f"--{name}: number of points must be between 1 and 100000, got {num}")
        if len(parts) == 4 and parts[3] == "log":
            if start <= 0 or stop <= 0:
                raise InputError(f"--{name}: a log grid needs positive ends, got {text!r}")
            return [float(x) for x in np.geomspace(start, stop, num)]
        return [float(x) for x in np.linspace(start, stop, num)]
    out = []
    for item in _split(text, name):
        try:
            out.append(float(item))
        except ValueError:
            raise InputError(f"--{name} values must be numbers, got {item!r}") from None
    return out


# --------------------------------------------------------------------------
# coefficients / layers
# --------------------------------------------------------------------------


def _cmd_coefficients(args):
    digits = check_digits(args.digits)
    act = get_activation(args.activation)
    out = {"activation": act.name, "input_variance": args.variance}
    variance = args.variance
    s2 = kappa1 = None
    if args.quantizer:
        quant = get_quantizer(args.quantizer)
        with mpmath.workdps(digits + 10):
            s2 = quant.second_moment(digits + 10)
            variance = s2 * to_mpf_exactly(args.variance, "variance", digits + 10)
    c = coefficients(act, variance, digits)
    if s2 is not None:
        with mpmath.workdps(digits + 10):
            kappa1 = mpmath.sqrt(s2) * c.mu1
    values = {
        "variance": c.variance,
        "mu0": c.mu0,
        "mu1": c.mu1,
        "mu_star": c.mu_star,
        "second_moment": c.second_moment,
    }
    if s2 is not None:
        values.update({"s2": s2, "kappa1": kappa1})
    exact_forms = _closed_forms(act) if args.exact else None
    if args.json:
        out.update({k: _fmt(v, digits) for k, v in values.items()})
        out.update({"exact": c.exact, "digits": digits})
        if args.quantizer:
            out["quantizer"] = get_quantizer(args.quantizer).name
        if exact_forms is not None:
            out["closed_forms"] = {k: (None if f is None else {"sympy": str(f), "latex": _latex(f)})
                                   for k, f in exact_forms.items()}
        print(json.dumps(out, indent=2))
        return 0
    title = f"activation {act.name}"
    if args.quantizer:
        title += f", quantizer {get_quantizer(args.quantizer).name} (variance scaled by s^2)"
    print(title)
    width = max(len(k) for k in values)
    for key, val in values.items():
        print(f"  {key:<{width}} = {_fmt(val, digits)}")
    print(f"  ({'closed forms' if c.exact else 'quadrature'}; {digits} significant digits)")
    if exact_forms is not None:
        print("closed forms in v (u ~ N(0, v)):")
        for key, f in exact_forms.items():
            if f is None:
                print(f"  {key}: no closed form (computed by quadrature)")
            else:
                print(f"  {key} = {f}")
                print(f"  {' ' * len(key)}   LaTeX: {_latex(f)}")
    return 0


def _latex(expr):
    import sympy as sp

    return sp.latex(expr)


def _closed_forms(act):
    """Closed forms of mu0, mu1, mu_star, E sigma^2 where available (else None)."""
    import sympy as sp

    m0, m1, m2 = act.moments_exact(V)
    out = {"mu0": None if m0 is None else sp.simplify(m0), "mu1": None if m1 is None else sp.simplify(m1 / V)}
    if None not in (m0, m1, m2):
        out["mu_star"] = sp.sqrt(sp.simplify(m2 - m0**2 - m1**2 / V))
    else:
        out["mu_star"] = None
    out["second_moment"] = None if m2 is None else sp.simplify(m2)
    return out


def _model_from_args(args):
    widths = _split(args.widths, "widths")
    activations = _split(args.activations, "activations")
    quantizers = _split(args.quantizers, "quantizers")
    return DeepRF(args.input_dim, tuple(widths), tuple(activations), tuple(quantizers))


def _cmd_layers(args):
    digits = check_digits(args.digits)
    acts = _split(args.activations, "activations")
    quants = _split(args.quantizers, "quantizers")
    layers = propagate(acts, quants if len(quants) > 1 else quants[0], digits)
    if args.json:
        print(json.dumps({"digits": digits, "layers": [lc.as_dict(digits) for lc in layers]}, indent=2))
        return 0
    _print_layers(layers, digits)
    return 0


def _print_layers(layers, digits):
    cols = ("s2", "variance", "mu0", "mu1", "mu_star", "kappa1", "kappa_star")
    w = max(digits + 7, 10)
    print(f"{'layer':<6}{'activation':<14}{'quantizer':<13}" + "".join(f"{c:>{w}}" for c in cols))
    for lc in layers:
        print(
            f"{lc.index:<6}{lc.activation[:13]:<14}{lc.quantizer[:12]:<13}"
            + "".join(f"{_fmt(getattr(lc, c), digits):>{w}}" for c in cols)
        )


# --------------------------------------------------------------------------
# predict / curve / theorem
# --------------------------------------------------------------------------


def _cmd_predict(args):
    model = _model_from_args(args)
    digits = check_digits(args.digits) if args.digits is not None else None
    shown = digits or 15
    if args.optimal_ridge:
        lam, pred = optimal_ridge(model, args.samples, args.noise, args.target, digits=digits)
    else:
        lam, pred = None, predict(model, args.samples, args.ridge, args.noise, args.target, digits=digits)
    if args.json:
        out = pred.as_dict(shown)
        out.update(
            {
                "input_dim": args.input_dim,
                "widths": list(model.widths),
                "activations": list(model.activations),
                "quantizers": list(model.quantizers),
                "samples": args.samples,
                "ridge": repr(lam) if lam is not None else args.ridge,
                "noise": args.noise,
                "target": args.target,
                "digits": digits,
                "path": "float" if digits is None else "mpmath",
            }
        )
        print(json.dumps(out, indent=2))
    else:
        print(
            f"deep RF: d={args.input_dim}, widths={','.join(map(str, model.widths))}, "
            f"activations={','.join(model.activations)}, quantizers={','.join(model.quantizers)}"
        )
        print(f"samples={args.samples}, ridge={repr(lam) if lam is not None else args.ridge}, noise={args.noise}, target={args.target}")
        rows = [
            ("test_error", pred.test_error),
            ("train_error", pred.train_error),
            ("bias", pred.bias),
            ("noise_part", pred.noise_part),
            ("df1", pred.df1),
            ("df2", pred.df2),
        ] + [(f"kappa_{i}", k) for i, k in enumerate(pred.effective_ridges)]
        for key, val in rows:
            print(f"  {key:<12} = {_fmt(val, shown)}")
        print(f"  regime       = {pred.regime}" + (" (float path re-solved with mpmath)" if pred.precision_fallback else ""))
        print()
        _print_layers(pred.layers, min(shown, 12))
    if pred.message:
        print(f"rfq predict: note: {pred.message}", file=sys.stderr)
    return 0


def _cmd_theorem(args):
    model = _model_from_args(args)
    digits = check_digits(args.digits) if args.digits is not None else None
    shown = digits or 15
    res = one_bit_theorem(model, args.samples, args.ridge, args.noise, args.target, digits=digits)
    if args.json:
        out = {
            "full_precision": res.full.as_dict(shown),
            "sign": res.sign.as_dict(shown),
            "sign_scaled": res.sign_scaled.as_dict(shown),
            "difference_sign": _fmt(res.difference_sign, shown),
            "difference_sign_scaled": _fmt(res.difference_scaled, shown),
            "digits": digits,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"one-bit theorem check ({'float path' if digits is None else f'{digits} digits'})")
    print(f"  {'twin':<16}{'test_error':>{shown + 10}}{'difference vs full':>{shown + 14}}")
    print(f"  {'full precision':<16}{_fmt(res.full.test_error, shown):>{shown + 10}}{'':>{shown + 14}}")
    print(f"  {'sign':<16}{_fmt(res.sign.test_error, shown):>{shown + 10}}{_fmt(res.difference_sign, shown):>{shown + 14}}")
    print(
        f"  {'sign-scaled':<16}{_fmt(res.sign_scaled.test_error, shown):>{shown + 10}}"
        f"{_fmt(res.difference_scaled, shown):>{shown + 14}}"
    )
    same = res.difference_sign == 0
    print(f"sign twin {'equals' if same else 'DIFFERS FROM'} full precision to every computed digit.")
    return 0 if same else 1


def _cmd_curve(args):
    model = _model_from_args(args)
    if args.vary not in VARY_CHOICES:
        raise InputError(f"--vary must be one of {', '.join(VARY_CHOICES)}")
    grid = parse_grid(args.grid)
    d = float(model.sizes(20)[0])
    if args.vary in ("samples", "width"):
        values = [g * d for g in grid]  # grid given as ratios n/d or k_L/d
    else:
        values = grid
    if args.vary != "samples" and args.samples is None:
        raise InputError("--samples is required unless --vary samples")
    variants = [v.strip() for v in (args.compare or ",".join(model.quantizers)).split("|") if v.strip()]
    rows = []
    results = {}
    for variant in variants:
        m = model.with_quantizers(tuple(_split(variant, "compare")))
        preds = sweep(m, args.vary, values, args.samples, args.ridge, args.noise, args.target, progress=args.progress)
        results[variant] = preds
        for g, v, p in zip(grid, values, preds):
            rows.append(
                {
                    "vary": args.vary,
                    "x": g,
                    "value": v,
                    "quantizers": variant,
                    "test_error": p.test_error,
                    "train_error": p.train_error,
                    "effective_ridge": p.effective_ridge,
                    "df1": p.df1,
                    "df2": p.df2,
                    "regime": p.regime,
                }
            )
    fields = list(rows[0])
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (repr(float(v)) if isinstance(v, (float, mpmath.mpf)) else v) for k, v in r.items()})
    print(f"wrote {len(rows)} rows to {args.out}")
    if args.plot:
        _plot_curve(args, grid, results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _plot_curve(args, grid, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"none": ("-", 3.0, 0.45), "sign": ("--", 1.6, 1.0), "sign-scaled": (":", 2.0, 1.0)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant, preds in results.items():
        ls, lw, alpha = styles.get(variant, ("-.", 1.5, 1.0))
        label = {"none": "full precision", "sign": "one-bit (sign)", "sign-scaled": "one-bit (scaled sign)"}.get(variant, variant)
        ys = [float(p.test_error) for p in preds]
        ax.plot(grid, ys, ls, lw=lw, alpha=alpha, label=label)
    xlabel = {"samples": "n / d", "width": "k_L / d", "ridge": "ridge lambda"}[args.vary]
    ax.set_xlabel(xlabel)
    ax.set_ylabel("asymptotic test error")
    if args.vary == "ridge":
        ax.set_xscale("log")
    finite = [float(p.test_error) for ps in results.values() for p in ps if mpmath.isfinite(p.test_error)]
    if finite:
        top = sorted(finite)[int(0.95 * (len(finite) - 1))]
        ax.set_ylim(0, max(top * 1.2, 1e-3))
    fixed = {"samples": f"ridge={args.ridge}", "width": f"n={args.samples}, ridge={args.ridge}",
             "ridge": f"n={args.samples}"}[args.vary]
    widths = args.widths + (" (k_L varied)" if args.vary == "width" else "")
    ax.set_title(f"d={args.input_dim}, widths={widths}, {args.activations}, {fixed}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------


def _add_model_args(p, samples_required=True):
    p.add_argument("--input-dim", required=True, help="input dimension d (any positive real)")
    p.add_argument("--widths", required=True, help="comma-separated widths k_1,...,k_L")
    p.add_argument("--activations", required=True, help="one activation, or one per layer (comma-separated)")
    p.add_argument("--quantizers", default="none", help="one quantizer, or one per layer (default: none)")
    p.add_argument("--samples", required=samples_required, help="number of training samples n")
    p.add_argument("--ridge", default="0", help="ridge lambda >= 0 (default 0: minimum-norm interpolator)")
    p.add_argument("--noise", default="0", help="label-noise variance Delta >= 0 (default 0)")
    p.add_argument("--target", default="linear", help="target f*: activation name or expression in u (default linear)")


def build_parser():
    """The ``rfq`` argument parser."""
    parser = _Parser(prog="rfq", description="Exact error predictions for one-bit quantized deep random features.")
    parser.add_argument("--version", action="version", version=f"rfq-theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)

    p = sub.add_parser("coefficients", help="Gaussian-equivalent coefficients of one activation")
    p.add_argument("--activation", required=True, help="built-in name, name:param, or expression in u")
    p.add_argument("--variance", default="1", help="preactivation variance v > 0 (decimal strings are exact)")
    p.add_argument("--quantizer", default=None, help="weight quantizer: multiplies the variance by its s^2")
    p.add_argument("--digits", type=int, default=15, help="significant digits (default 15)")
    p.add_argument("--exact", action="store_true", help="also print closed forms (SymPy and LaTeX)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_coefficients)

    p = sub.add_parser("layers", help="per-layer propagation of a deep model")
    p.add_argument("--activations", required=True)
    p.add_argument("--quantizers", default="none")
    p.add_argument("--digits", type=int, default=15)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("predict", help="asymptotic test and train error")
    _add_model_args(p)
    p.add_argument("--digits", type=int, default=None, help="mpmath precision (default: float fast path)")
    p.add_argument("--optimal-ridge", action="store_true", help="use the error-minimising ridge instead of --ridge")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("curve", help="learning / width / ridge curves to CSV (and a plot)")
    _add_model_args(p, samples_required=False)
    p.add_argument("--vary", required=True, choices=VARY_CHOICES)
    p.add_argument(
        "--grid",
        default="0.1:4:200",
        help="ratios n/d or k_L/d (or ridges): 'a,b,c' or 'start:stop:num[:log]' (default 0.1:4:200)",
    )
    p.add_argument(
        "--compare",
        default="none;sign;sign-scaled",
        type=lambda s: s.replace(";", "|"),
        help="quantizer variants separated by ';' (default 'none;sign;sign-scaled')",
    )
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--plot", default=None, help="PNG file for a plot")
    p.add_argument("--progress", action="store_true", default=None, help="force a progress bar")
    p.set_defaults(func=_cmd_curve)

    p = sub.add_parser("theorem", help="compare a model with its sign and scaled-sign twins")
    _add_model_args(p)
    p.add_argument("--digits", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_theorem)

    _add_validation_commands(sub)
    return parser


def _add_validation_commands(sub):
    """``validate``, ``demo`` and ``bench`` live in the validation package."""
    hooks = (
        ("validate", "Monte Carlo and finite-size checks of the theory", "validation.compare", "add_validate_arguments", "run_validate"),
        ("demo", "the main job: theory vs simulation for a small model", "validation.demo", "add_demo_arguments", "run_demo"),
        ("bench", "one-bit inference timing harness (PyTorch/Triton)", "validation.bench", "add_bench_arguments", "run_bench"),
    )
    import importlib

    for name, help_text, module, add, run in hooks:
        p = sub.add_parser(name, help=help_text)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - broken install
            p.set_defaults(func=lambda args, exc=exc, name=name: _unavailable(name, exc))
            continue
        getattr(mod, add)(p)
        p.set_defaults(func=lambda args, mod=mod, run=run: getattr(mod, run)(args))


def _unavailable(name, exc):
    print(f"rfq {name}: error: not available ({exc})", file=sys.stderr)
    return EXIT_INPUT


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``rfq`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_INPUT
        return int(args.func(args) or 0)
    except _UsageError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return EXIT_INPUT
    except SolverError as exc:
        print(f"rfq: solver error: {exc}", file=sys.stderr)
        return EXIT_SOLVER
    except (ValueError, NotExactError, ArithmeticError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"rfq: error: {msg}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("rfq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
