"""``rfq predict`` and ``rfq theorem``."""

from __future__ import annotations

import json
import sys

from .common import add_model_arguments, fmt, model_from_args, model_header, prediction_settings
from .glm import add_glm_arguments, run_glm_predict, run_glm_theorem, wants_glm

EXAMPLES_PREDICT = """\
examples:
  rfq predict --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\
      --quantizers sign --samples 1200 --ridge 1e-3 --digits 30 --json
  rfq predict --input-dim 500 --widths 250 --activations relu --samples 1000 --optimal-ridge
  rfq predict --input-dim 100 --widths 200 --activations 'Max(u,0.1*u)' \\
      --quantizers 'expr:sign(g)*Min(abs(g),1)' --samples 150 --noise 0.1

'rfq list' shows the activation and quantizer names and the expression syntax.
"""

EXAMPLES_THEOREM = """\
examples:
  rfq theorem --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\
      --samples 1200 --ridge 1e-3 --digits 40
  rfq theorem --input-dim 100 --widths 200 --activations erf --samples 150 --json
"""


def register(sub):
    """Add ``predict`` and ``theorem`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "predict",
        help="asymptotic test and train error",
        description="Asymptotic (proportional-limit) test and train error of a deep random-features "
        "model with a ridge readout, from the multi-layer fixed-point equations. Without --digits the "
        "fast float path is used; with --digits the equations are solved with mpmath at that precision "
        "(cost grows with the digits: ~0.1 s at 30, seconds at 100, about a minute at 300).",
        epilog=EXAMPLES_PREDICT,
    )
    add_model_arguments(p)
    p.add_argument(
        "--digits",
        type=int,
        default=None,
        metavar="N",
        help="significant digits, solved with mpmath at that precision (default: float fast path, "
        "15 digits shown); above 100 digits the command says up front that it is slow",
    )
    p.add_argument(
        "--optimal-ridge",
        action="store_true",
        help="minimise the test error over the ridge and report that ridge (ignores --ridge)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the errors, effective ridges and per-layer coefficients, "
        "numbers as strings with every requested digit",
    )
    add_glm_arguments(p)
    p.set_defaults(func=run_predict, ridge=None)

    p = sub.add_parser(
        "theorem",
        help="compare a model with its sign and scaled-sign twins",
        description="The one-bit theorem, numerically: the model's full-precision, sign and scaled-sign "
        "twins side by side, and the model with the --quantizers given (when they are not one of those "
        "three) against full precision. Sign weights give the full-precision error to every digit; scaled "
        "sign differs where the activation sees the rescaled input. Exit code 1 if the sign twin differs.",
        epilog=EXAMPLES_THEOREM,
    )
    add_model_arguments(p)
    p.add_argument(
        "--digits",
        type=int,
        default=None,
        metavar="N",
        help="significant digits, solved with mpmath at that precision (default: float fast path)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the twins' predictions and differences (and 'given', 'difference_given' "
        "for the --quantizers given), the model settings as in predict --json, numbers as strings",
    )
    add_glm_arguments(p)
    p.set_defaults(func=run_theorem)


def note_model(model, command):
    """One line on stderr per note of :meth:`rfq_theory.model.DeepRF.notes` (even layers, heavy input spectra)."""
    for text in model.notes():
        print(f"rfq {command}: note: {text}", file=sys.stderr)


def given_twin(model, full, solve):
    """The model with the quantizers given, when they are not one of the three twins.

    Returns ``(prediction, difference vs full precision, label)``, or
    ``(None, None, label)`` when the quantizers given are all ``none``, all
    ``sign`` or all ``sign-scaled`` (rows the comparison already has).
    """
    from .common import names

    given_names = names(model.quantizers)
    label = ",".join(given_names)
    if set(given_names) in ({"none"}, {"sign"}, {"sign-scaled"}):
        return None, None, label
    import math

    given = solve()
    if given.test_error == full.test_error:  # also inf == inf at the interpolation threshold
        return given, 0 * full.test_error if math.isfinite(float(full.test_error)) else 0.0, label
    return given, given.test_error - full.test_error, label


def _refuse_ridge_with_optimal(args):
    from ..checks import InputError

    if getattr(args, "optimal_ridge", False) and args.ridge is not None:
        raise InputError("give either --ridge or --optimal-ridge, not both (--optimal-ridge chooses the ridge)")
    if args.ridge is None:
        args.ridge = "0"


def _digits(args):
    from ..checks import check_digits

    return check_digits(args.digits) if args.digits is not None else None


#: from this many digits on, a command says up front that the solve is slow
SLOW_DIGITS = 100


def _notice_precision(digits, command):
    """Say up front what a high precision costs (the solve prints nothing until it ends)."""
    if digits is not None and digits > SLOW_DIGITS:
        print(
            f"rfq {command}: note: solving at {digits} digits; the cost grows steeply with the digits "
            "(seconds at 100, about a minute at 300), this can take a while",
            file=sys.stderr,
            flush=True,
        )


def run_predict(args):
    """``rfq predict``."""
    _refuse_ridge_with_optimal(args)
    model = model_from_args(args)
    note_model(model, "predict")
    if wants_glm(args):
        return run_glm_predict(args)
    from ..solver import predict
    from ..sweeps import optimal_ridge
    from .coefficients import print_layers

    digits = _digits(args)
    shown = digits or 15
    _notice_precision(digits, "predict")
    if args.optimal_ridge:
        opt = optimal_ridge(model, args.samples, args.noise, args.target, digits=digits)
        lam, pred = opt
    else:
        lam, pred = None, predict(model, args.samples, args.ridge, args.noise, args.target, digits=digits)
    ridge_text = fmt(lam, shown) if lam is not None else str(args.ridge)
    if args.json:
        out = pred.as_dict(shown)
        out.update(prediction_settings(args, model, ridge_text, digits))
        print(json.dumps(out, indent=2))
    else:
        print(model_header(args, model))
        print(f"samples={args.samples}, ridge={ridge_text}, noise={args.noise}, target={args.target}")
        rows = [
            ("test_error", pred.test_error),
            ("train_error", pred.train_error),
            ("bias", pred.bias),
            ("noise_part", pred.noise_part),
            ("df1", pred.df1),
            ("df2", pred.df2),
        ] + [(f"ridge_eff_{i}", k) for i, k in enumerate(pred.effective_ridges)]
        for key, val in rows:
            print(f"  {key:<12} = {fmt(val, shown)}")
        fallback = " (float path re-solved with mpmath)" if pred.precision_fallback else ""
        print(f"  regime       = {pred.regime}{fallback}")
        last = len(pred.effective_ridges) - 1
        print(f"  (ridge_eff_l: effective ridge kappa_l after layer l, 0 = input, {last} = readout;")
        print("   the table's kappa1, kappa_star are the layers' Gaussian-equivalent coefficients)")
        print()
        print_layers(pred.layers, min(shown, 12))
    if pred.message:
        print(f"rfq predict: note: {pred.message}", file=sys.stderr)
    if getattr(pred, "boundary_note", None):
        print(f"rfq predict: note: {pred.boundary_note}", file=sys.stderr)
    return 0


def run_theorem(args):
    """``rfq theorem``: full precision, sign, scaled sign and the quantizers given, side by side."""
    model = model_from_args(args)
    note_model(model, "theorem")
    if wants_glm(args):
        return run_glm_theorem(args)
    from ..solver import predict
    from ..sweeps import one_bit_theorem

    digits = _digits(args)
    shown = digits or 15
    _notice_precision(digits, "theorem")
    res = one_bit_theorem(model, args.samples, args.ridge, args.noise, args.target, digits=digits)
    given, diff_given, given_label = given_twin(
        model, res.full, lambda: predict(model, args.samples, args.ridge, args.noise, args.target, digits=digits)
    )
    if args.json:
        out = {
            "full_precision": res.full.as_dict(shown),
            "sign": res.sign.as_dict(shown),
            "sign_scaled": res.sign_scaled.as_dict(shown),
            "difference_sign": fmt(res.difference_sign, shown),
            "difference_sign_scaled": fmt(res.difference_scaled, shown),
        }
        if given is not None:
            out["given"] = given.as_dict(shown)
            out["difference_given"] = fmt(diff_given, shown)
        out.update(prediction_settings(args, model, str(args.ridge), digits))
        print(json.dumps(out, indent=2))
        return 0 if res.difference_sign == 0 else 1
    print(f"one-bit theorem check ({'float path' if digits is None else f'{digits} digits'})")
    print(f"  {'twin':<16}{'test_error':>{shown + 10}}{'difference vs full':>{shown + 14}}")
    print(f"  {'full precision':<16}{fmt(res.full.test_error, shown):>{shown + 10}}{'':>{shown + 14}}")
    print(
        f"  {'sign':<16}{fmt(res.sign.test_error, shown):>{shown + 10}}{fmt(res.difference_sign, shown):>{shown + 14}}"
    )
    print(
        f"  {'sign-scaled':<16}{fmt(res.sign_scaled.test_error, shown):>{shown + 10}}"
        f"{fmt(res.difference_scaled, shown):>{shown + 14}}"
    )
    if given is not None:
        label = given_label if len(given_label) <= 16 else given_label[:13] + "..."
        print(f"  {label:<16}{fmt(given.test_error, shown):>{shown + 10}}{fmt(diff_given, shown):>{shown + 14}}")
    same = res.difference_sign == 0
    print(f"sign twin {'equals' if same else 'DIFFERS FROM'} full precision to every computed digit.")
    return 0 if same else 1
