"""Precision checks of the convex-loss solver: 30 vs 50 digits, float vs 50 digits, sign vs full precision.

Run ``python -m benchmarks.glm_precision [--json out.json]``.  For the
2-layer model of ``benchmarks/glm_benchmark.py`` and each loss it reports
the largest difference, over the reported numbers (test/train error and
loss, ``m``, ``q``, ``V``), between the 30- and 50-digit solutions and
between the float path and the 50-digit solution, the largest residual and
the difference between the sign twin and full precision at 30 digits.
"""

from __future__ import annotations

import argparse
import time

from validation.machine import report_json

KEYS = ("test_error", "test_loss", "train_loss", "train_error", "m", "q", "V")


def run():
    import mpmath

    from rfq_theory import DeepRF
    from rfq_theory.glm import predict_glm

    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": []}
    model = DeepRF(1000, (2000, 1500), ("tanh", "relu"), "none")
    for loss in ("logistic", "hinge", "square"):
        args = (1200, "1e-2", "0.1", "linear", "sign", loss)
        p30 = predict_glm(model, *args, digits=30)
        p50 = predict_glm(model, *args, digits=50)
        pf = predict_glm(model, *args)
        s30 = predict_glm(model.with_quantizers("sign"), *args, digits=30)
        row = {
            "loss": loss,
            "test_error_50_digits": mpmath.nstr(p50.test_error, 50),
            "max_diff_30_vs_50": float(max(abs(getattr(p30, k) - getattr(p50, k)) for k in KEYS)),
            "max_diff_float_vs_50": float(max(abs(getattr(pf, k) - getattr(p50, k)) for k in KEYS)),
            "max_residual_50": float(max(p50.residuals)),
            "quad_error_50": float(p50.quad_error),
            "sign_minus_full_30": float(max(abs(getattr(s30, k) - getattr(p30, k)) for k in KEYS)),
        }
        out["rows"].append(row)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    res = run()
    report_json(res, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
