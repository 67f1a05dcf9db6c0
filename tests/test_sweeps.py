"""Sweeps, optimal ridge and the one-bit theorem helper."""

import math

import numpy as np
import pytest

from rfq_theory import DeepRF, InputError, one_bit_theorem, optimal_ridge, predict, sweep

MODEL = DeepRF(200, [300, 250], ["tanh", "relu"], "sign")


def test_sweep_equals_pointwise_predictions():
    grid = np.linspace(20, 900, 40)
    curve = sweep(MODEL, "samples", grid, ridge=1e-3, noise=0.1)
    for n, p in zip(grid, curve):
        assert math.isclose(p.test_error, predict(MODEL, n, 1e-3, 0.1).test_error, rel_tol=1e-12)
    widths = [100, 249, 251, 600]
    for k, p in zip(widths, sweep(MODEL, "width", widths, samples=250, ridge=0, noise=0.1)):
        q = predict(MODEL.with_widths((300, k)), 250, 0, 0.1)
        assert math.isclose(p.test_error, q.test_error, rel_tol=1e-12)  # warm starts: last-bit differences
    ridges = [0, 1e-6, 1e-2, 10]
    for lam, p in zip(ridges, sweep(MODEL, "ridge", ridges, samples=400, noise=0.1)):
        assert math.isclose(p.test_error, predict(MODEL, 400, lam, 0.1).test_error, rel_tol=1e-12)


def test_large_ridge_curve_decreases_towards_var_y():
    ridges = np.geomspace(1e2, 1e6, 10)
    errs = [p.test_error for p in sweep(MODEL, "ridge", ridges, samples=400, noise=0.1)]
    assert all(b >= a for a, b in zip(errs, errs[1:]))
    assert abs(errs[-1] - 1.1) < 1e-3


def test_optimal_ridge_beats_a_grid():
    lam, best = optimal_ridge(MODEL, 240, noise=0.5)
    grid = [0.0] + list(np.geomspace(1e-8, 1e3, 120))
    errs = [predict(MODEL, 240, g, 0.5).test_error for g in grid]
    assert best.test_error <= min(errs) * (1 + 1e-9)
    assert lam > 0  # with noise 0.5 near the threshold some ridge helps


def test_optimal_ridge_at_digits():
    lam, best = optimal_ridge(MODEL, 240, noise=0.5, digits=30)
    assert best.digits == 30 and math.isclose(
        float(best.test_error), optimal_ridge(MODEL, 240, 0.5)[1].test_error, rel_tol=1e-12
    )


def test_theorem_helper():
    """The helper's three twins are the predictions of the three quantizers, differences included."""
    res = one_bit_theorem(MODEL, 240, 1e-2, 0.1)
    for pred, q in ((res.full, "none"), (res.sign, "sign"), (res.sign_scaled, "sign-scaled")):
        assert pred.test_error == predict(MODEL.with_quantizers(q), 240, 1e-2, 0.1).test_error, q
    assert res.difference_scaled == res.sign_scaled.test_error - res.full.test_error != 0
    at_threshold = one_bit_theorem(MODEL, 250, 0, 0.1)
    assert math.isinf(at_threshold.full.test_error) and at_threshold.difference_sign == 0  # inf - inf is reported as 0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(vary="depth", values=[1]),
        dict(vary="samples", values=[]),
        dict(vary="width", values=[100]),
        dict(vary="samples", values=[-1]),
    ],
)
def test_sweep_rejects_bad_input(kwargs):
    with pytest.raises(InputError):
        sweep(MODEL, **kwargs)
