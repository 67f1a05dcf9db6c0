"""``--labels`` / ``--loss`` options of ``rfq predict``, ``rfq theorem`` and ``rfq curve``.

With ``--labels sign`` or a loss other than ``square`` the commands solve
the saddle-point equations of :mod:`rfq_theory.glm` instead of the ridge
equations.  Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json

from .common import SLOW_GLM_DIGITS, fmt, model_from_args, model_header, note_slow_digits, prediction_settings

__all__ = ["add_glm_arguments", "wants_glm", "run_glm_predict", "run_glm_theorem"]

LABEL_CHOICES = ("regression", "sign")
LOSS_CHOICES = ("square", "logistic", "hinge")


def add_glm_arguments(parser):
    """Add ``--labels {regression,sign}`` and ``--loss {square,logistic,hinge}`` to ``parser``."""
    parser.add_argument(
        "--labels",
        choices=LABEL_CHOICES,
        default=None,
        help="regression: y = f*(g) - E f* + noise (the default with --loss square); "
        "sign: y = sign(g + sqrt(noise) xi), +-1 labels (the default with --loss logistic or hinge)",
    )
    parser.add_argument(
        "--loss",
        choices=LOSS_CHOICES,
        default="square",
        help="readout loss: square (default), logistic or hinge (the last two need --labels sign); "
        "the readout minimises mean loss + ridge ||w||^2",
    )
    return parser


def wants_glm(args) -> bool:
    """Whether the options ask for the convex-loss solver (fills in the default ``--labels``)."""
    loss = getattr(args, "loss", "square")
    if getattr(args, "labels", None) is None:
        args.labels = "regression" if loss == "square" else "sign"
    return args.labels != "regression" or loss != "square"


def _digits(args):
    from ..checks import check_digits

    return check_digits(args.digits) if getattr(args, "digits", None) is not None else None


def run_glm_predict(args):
    """``rfq predict --labels ... --loss ...``: one prediction as a table or JSON."""
    from ..readouts import ConvexLossReadout, optimal_ridge

    readout = ConvexLossReadout(args.loss, args.labels)
    model = model_from_args(args)
    digits = _digits(args)
    shown = digits or 15
    note_slow_digits("predict", digits, SLOW_GLM_DIGITS, "the convex-loss solve")
    if getattr(args, "optimal_ridge", False):
        lam, pred = optimal_ridge(readout, model, args.samples, args.noise, args.target, digits)
        ridge_text = fmt(lam, shown)
    else:
        pred = readout.predict(model, args.samples, args.ridge, args.noise, args.target, digits)
        ridge_text = str(args.ridge)
    if args.json:
        out = pred.as_dict(shown)
        out.update(prediction_settings(args, model, ridge_text, digits))
        print(json.dumps(out, indent=2))
        return 0
    print(model_header(args, model))
    print(f"samples={args.samples}, ridge={ridge_text}, noise={args.noise}, labels={args.labels}, loss={args.loss}")
    rows = [
        ("test_error", pred.test_error),
        ("test_loss", pred.test_loss),
        ("train_loss", pred.train_loss),
        ("train_error", pred.train_error),
        ("m", pred.m),
        ("q", pred.q),
        ("V", pred.V),
        ("m_hat", pred.m_hat),
        ("q_hat", pred.q_hat),
        ("V_hat", pred.V_hat),
    ] + [(f"ridge_eff_{i}", k) for i, k in enumerate(pred.effective_ridges)]
    for key, val in rows:
        print(f"  {key:<12} = {fmt(val, shown)}")
    print(
        f"  residuals    = {', '.join(fmt(r, 3) for r in pred.residuals)}  "
        f"(iterations {pred.iterations}, quadrature change {fmt(pred.quad_error, 3)})"
    )
    if args.labels == "sign":
        print("  (test_error / train_error: classification errors; losses without the penalty)")
    if pred.message:
        import sys

        print(f"rfq predict: note: {pred.message}", file=sys.stderr)
    return 0


def run_glm_theorem(args):
    """``rfq theorem --loss ...``: full precision, sign, scaled sign and the quantizers given side by side."""
    from ..readouts import ConvexLossReadout, theorem
    from .predict import given_twin

    model = model_from_args(args)
    digits = _digits(args)
    shown = digits or 15
    note_slow_digits("theorem", digits, SLOW_GLM_DIGITS, "the convex-loss solve")
    readout = ConvexLossReadout(args.loss, args.labels)
    res = theorem(readout, model, args.samples, args.ridge, args.noise, args.target, digits)
    given, diff_given, given_label = given_twin(
        model, res.full, lambda: readout.predict(model, args.samples, args.ridge, args.noise, args.target, digits)
    )
    same = res.difference_sign == 0
    if args.json:
        out = {
            "full_precision": res.full.as_dict(shown),
            "sign": res.sign.as_dict(shown),
            "sign_scaled": res.sign_scaled.as_dict(shown),
            "difference_sign": fmt(res.difference_sign, shown),
            "difference_sign_scaled": fmt(res.difference_scaled, shown),
            "labels": args.labels,
            "loss": args.loss,
        }
        if given is not None:
            out["given"] = given.as_dict(shown)
            out["difference_given"] = fmt(diff_given, shown)
        out.update(prediction_settings(args, model, str(args.ridge), digits))
        print(json.dumps(out, indent=2))
        return 0 if same else 1
    print(
        f"one-bit theorem check, {args.loss} loss, {args.labels} labels "
        f"({'float path' if digits is None else f'{digits} digits'})"
    )
    w = shown + 10
    print(f"  {'twin':<16}{'test_error':>{w}}{'train_loss':>{w}}{'difference vs full':>{w + 4}}")
    for name, p, diff in (
        ("full precision", res.full, None),
        ("sign", res.sign, res.difference_sign),
        ("sign-scaled", res.sign_scaled, res.difference_scaled),
    ) + (() if given is None else ((given_label[:16], given, diff_given),)):
        d = "" if diff is None else fmt(diff, shown)
        print(f"  {name:<16}{fmt(p.test_error, shown):>{w}}{fmt(p.train_loss, shown):>{w}}{d:>{w + 4}}")
    print(f"sign twin {'equals' if same else 'DIFFERS FROM'} full precision to every computed digit.")
    return 0 if same else 1
