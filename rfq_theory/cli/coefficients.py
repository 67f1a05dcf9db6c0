"""``rfq coefficients``, ``rfq layers`` and ``rfq list``."""

from __future__ import annotations

import json

from .common import ACTIVATION_HELP, QUANTIZER_HELP, fmt, names, split_list

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
        "preactivation variance v (closed forms where they exist, quadrature otherwise). With "
        "--quantizer, the variance is first multiplied by the quantizer's s^2, and s^2 and "
        "kappa1 = s mu1 are printed too.",
        epilog=EXAMPLES_COEFFICIENTS,
    )
    p.add_argument("--activation", required=True, metavar="SPEC", help=ACTIVATION_HELP)
    p.add_argument(
        "--variance",
        default="1",
        metavar="V",
        help="preactivation variance v > 0; decimal strings are exact (default 1)",
    )
    p.add_argument(
        "--quantizer",
        default=None,
        metavar="SPEC",
        help="weight quantizer: " + QUANTIZER_HELP + "; multiplies the variance by its s^2",
    )
    p.add_argument("--digits", type=int, default=15, metavar="N", help="significant digits (default 15)")
    p.add_argument(
        "--exact", action="store_true", help="also print the closed forms in v (SymPy and LaTeX) where they exist"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object, numbers as strings with every digit")
    p.set_defaults(func=run_coefficients)

    p = sub.add_parser(
        "layers",
        help="per-layer propagation of a deep model",
        description="Propagate the preactivation variance through the layers of a deep model and print, "
        "for each layer, the quantizer's s^2, the preactivation variance, the activation's mu0, mu1, "
        "mu_star and the layer's effective coefficients kappa1, kappa_star. The sizes of the model do "
        "not enter; 'rfq predict' prints the same table below its errors.",
        epilog=EXAMPLES_LAYERS,
    )
    p.add_argument(
        "--activations",
        required=True,
        metavar="SPEC[,SPEC...]",
        help="one activation for all layers, or one per layer (comma-separated; commas inside "
        "parentheses belong to the expression): " + ACTIVATION_HELP,
    )
    p.add_argument(
        "--quantizers",
        default="none",
        metavar="SPEC[,SPEC...]",
        help="one weight quantizer for all layers, or one per layer (default none): " + QUANTIZER_HELP,
    )
    p.add_argument("--digits", type=int, default=15, metavar="N", help="significant digits (default 15)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with one entry per layer, numbers as strings with every digit",
    )
    p.set_defaults(func=run_layers)

    p = sub.add_parser(
        "list",
        help="the built-in activations and quantizers, and the expression syntax",
        description="List every built-in activation and quantizer name, the forms an expression may "
        "take, and the list syntax of the options that take one entry per layer.",
        epilog="example:\n  rfq list\n",
    )
    p.set_defaults(func=run_list)


def run_coefficients(args):
    """``rfq coefficients``."""
    from ..activation_coefficients import closed_forms, coefficients
    from ..activations import get_activation
    from ..checks import check_digits, to_mpf_exactly
    from ..precision import mp as mpmath
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
            out["closed_forms"] = {
                k: (None if f is None else {"sympy": str(f), "latex": _latex(f)}) for k, f in exact_forms.items()
            }
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
    acts = [names([lc.activation])[0] for lc in layers]
    quants = [names([lc.quantizer])[0] for lc in layers]
    wa = max([len("activation"), *map(len, acts)]) + 2
    wq = max([len("quantizer"), *map(len, quants)]) + 2
    print(f"{'layer':<6}{'activation':<{wa}}{'quantizer':<{wq}}" + "".join(f"{c:>{w}}" for c in cols))
    for lc, a, q in zip(layers, acts, quants, strict=True):
        print(f"{lc.index:<6}{a:<{wa}}{q:<{wq}}" + "".join(f"{fmt(getattr(lc, c), digits):>{w}}" for c in cols))


def run_list(args):
    """``rfq list``: the names and forms accepted by --activation(s) and --quantizer(s).

    The names come from :mod:`rfq_theory.catalog` (plain text): listing them loads no SymPy.
    """
    import textwrap

    from ..catalog import (
        ACTIVATION_NAMES,
        EXPRESSION_FUNCTIONS,
        PARAMETERISED_ACTIVATIONS,
        PARAMETERISED_QUANTIZERS,
        QUANTIZER_NAMES,
    )

    def block(text):
        print(textwrap.fill(text, 78, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False))

    print("activations (--activation, --activations, --target):")
    block(", ".join(sorted(ACTIVATION_NAMES) + [f"{n}:<p>" for n in sorted(PARAMETERISED_ACTIVATIONS)]))
    block("or an expression in u, for example 'u*tanh(u)' or 'Max(u, 0.1*u)'")
    print()
    print("quantizers (--quantizer, --quantizers):")
    block(", ".join(sorted(QUANTIZER_NAMES) + list(PARAMETERISED_QUANTIZERS)) + ", expr:<expression in g>")
    block("a quantizer must have mean zero under g ~ N(0, 1), for example 'expr:sign(g)*Min(abs(g),1)'")
    print()
    print("expressions:")
    block(
        "numbers, the variable (u for activations, g for quantizers), pi, E, + - * / ** and the functions "
        + ", ".join(sorted(EXPRESSION_FUNCTIONS))
    )
    print()
    print("lists (--widths, --activations, --quantizers):")
    block("comma-separated; one entry for all layers or one per layer; commas inside parentheses belong to the entry:")
    print("    --activations 'tanh,Max(u,0.1*u)'")
    block("'rfq curve --compare' separates whole quantizer lists with ';':")
    print("    --compare 'none;sign,ternary:0.5'")
    return 0
