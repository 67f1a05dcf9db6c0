"""``rfq coefficients``, ``rfq layers`` and ``rfq list``."""

from __future__ import annotations

import json

from .common import fmt, split_list

EXAMPLES_COEFFICIENTS = """\
examples:
  rfq coefficients --activation gelu --variance 0.7 --digits 40 --json
  rfq coefficients --activation 'u*tanh(u)' --variance 1.3
  rfq coefficients --activation relu --variance 2 --quantizer sign-scaled --exact
"""

EXAMPLES_LAYERS = """\
examples:
  rfq layers --activations tanh,relu --quantizers sign,none
  rfq layers --activations erf --quantizers ternary:0.5 --digits 30 --json
"""


def register(sub):
    """Add ``coefficients``, ``layers`` and ``list`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "coefficients",
        help="Gaussian-equivalent coefficients of one activation",
        description="Gaussian-equivalent coefficients mu0, mu1, mu_star of an activation at "
        "preactivation variance v (closed forms where they exist, quadrature otherwise).",
        epilog=EXAMPLES_COEFFICIENTS,
    )
    p.add_argument("--activation", required=True, metavar="SPEC",
                   help="built-in name (see 'rfq list'), name:param, or expression in u")
    p.add_argument("--variance", default="1", metavar="V", help="preactivation variance v > 0 (decimal strings are exact; default 1)")
    p.add_argument("--quantizer", default=None, metavar="SPEC",
                   help="weight quantizer: multiplies the variance by its s^2 and adds s2, kappa1")
    p.add_argument("--digits", type=int, default=15, help="significant digits (default 15)")
    p.add_argument("--exact", action="store_true", help="also print closed forms (SymPy and LaTeX)")
    p.add_argument("--json", action="store_true", help="print one JSON object, numbers as strings with every digit")
    p.set_defaults(func=run_coefficients)

    p = sub.add_parser(
        "layers",
        help="per-layer propagation of a deep model",
        description="Propagate the preactivation variance through the layers and print each layer's "
        "s^2, variance, mu0, mu1, mu_star and the effective coefficients kappa1, kappa_star.",
        epilog=EXAMPLES_LAYERS,
    )
    p.add_argument("--activations", required=True, metavar="SPEC[,SPEC...]",
                   help="one activation for all layers, or one per layer")
    p.add_argument("--quantizers", default="none", metavar="SPEC[,SPEC...]",
                   help="one quantizer for all layers, or one per layer (default none)")
    p.add_argument("--digits", type=int, default=15, help="significant digits (default 15)")
    p.add_argument("--json", action="store_true", help="print one JSON object, numbers as strings")
    p.set_defaults(func=run_layers)

    p = sub.add_parser(
        "list",
        help="the built-in activations and quantizers, and the expression syntax",
        description="List every built-in activation and quantizer name and the forms an expression may take.",
        epilog="example:\n  rfq list\n",
    )
    p.set_defaults(func=run_list)


def run_coefficients(args):
    """``rfq coefficients``."""
    import mpmath

    from ..activations import get_activation
    from ..checks import check_digits, to_mpf_exactly
    from ..coefficients import closed_forms, coefficients
    from ..quantizers import get_quantizer

    digits = check_digits(args.digits)
    act = get_activation(args.activation)
    out = {"activation": act.name, "input_variance": args.variance}
    variance = args.variance
    quant = s2 = kappa1 = None
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
    exact_forms = closed_forms(act) if args.exact else None
    if args.json:
        out.update({k: fmt(v, digits) for k, v in values.items()})
        out.update({"exact": c.exact, "digits": digits})
        if quant is not None:
            out["quantizer"] = quant.name
        if exact_forms is not None:
            out["closed_forms"] = {k: (None if f is None else {"sympy": str(f), "latex": _latex(f)})
                                   for k, f in exact_forms.items()}
        print(json.dumps(out, indent=2))
        return 0
    title = f"activation {act.name}"
    if quant is not None:
        title += f", quantizer {quant.name} (variance scaled by s^2)"
    print(title)
    width = max(len(k) for k in values)
    for key, val in values.items():
        print(f"  {key:<{width}} = {fmt(val, digits)}")
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


def run_layers(args):
    """``rfq layers``."""
    from ..checks import check_digits
    from ..equivalence import propagate

    digits = check_digits(args.digits)
    acts = split_list(args.activations, "activations")
    quants = split_list(args.quantizers, "quantizers")
    layers = propagate(acts, quants if len(quants) > 1 else quants[0], digits)
    if args.json:
        print(json.dumps({"digits": digits, "layers": [lc.as_dict(digits) for lc in layers]}, indent=2))
        return 0
    print_layers(layers, digits)
    return 0


def print_layers(layers, digits):
    """The per-layer coefficient table (shared by ``layers`` and ``predict``)."""
    cols = ("s2", "variance", "mu0", "mu1", "mu_star", "kappa1", "kappa_star")
    w = max(digits + 7, 10)
    print(f"{'layer':<6}{'activation':<14}{'quantizer':<13}" + "".join(f"{c:>{w}}" for c in cols))
    for lc in layers:
        print(
            f"{lc.index:<6}{lc.activation[:13]:<14}{lc.quantizer[:12]:<13}"
            + "".join(f"{fmt(getattr(lc, c), digits):>{w}}" for c in cols)
        )


def run_list(args):
    """``rfq list``: the names and forms accepted by --activation(s) and --quantizer(s)."""
    from ..activations import builtin_activations
    from ..expressions import ALLOWED_FUNCTIONS
    from ..quantizers import builtin_quantizers

    print("activations (--activation, --activations, --target):")
    print("  " + ", ".join(builtin_activations()))
    print("  or an expression in u, for example 'u*tanh(u)' or 'Max(u, 0.1*u)'")
    print()
    print("quantizers (--quantizer, --quantizers):")
    print("  " + ", ".join(builtin_quantizers()) + ", expr:<expression in g>")
    print("  a quantizer must have mean zero, for example 'expr:sign(g)*Min(abs(g),1)'")
    print()
    print("expressions: numbers, the variable (u for activations, g for quantizers), pi, E,")
    print("  + - * / ** and the functions " + ", ".join(sorted(set(ALLOWED_FUNCTIONS))))
    return 0
