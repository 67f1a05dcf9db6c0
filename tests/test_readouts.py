"""Readouts (ridge, convex losses), the Diagnostics record and the convex-loss phase maps.

Independent routes: ridge regression for the square loss on regression
labels, the closed-form large-ridge limit of the classification error (a
vanishing readout points along the Hebbian direction ``mean(y z)``), the
scalar solver for the vectorized lanes, a finite difference of the test
error for the optimal ridge.
"""

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfq_theory import DeepRF, InputError, predict
from rfq_theory.cli import main
from rfq_theory.glm import MIN_RIDGE, glm_sweep, predict_glm
from rfq_theory.glm_lanes import solve_glm_lanes
from rfq_theory.phase import phase_map
from rfq_theory.readouts import ConvexLossReadout, RidgeReadout, curve, optimal_ridge, readout_for, theorem
from rfq_theory.results import Diagnostics, float_numbers, to_jsonable

SMALL = DeepRF(100, (200,), ("tanh",))
LINEAR = DeepRF(100, (200,), ("linear",))
ARGS = ["--input-dim", "100", "--widths", "200", "--activations", "tanh"]


def _rel(a, b):
    a, b = float(a), float(b)
    return 0.0 if a == b else abs(a - b) / abs(b)


# ------------------------------------------------------------ the interface


def test_readout_for_picks_the_family():
    assert isinstance(readout_for("square", None), RidgeReadout)
    assert isinstance(readout_for("square", "regression"), RidgeReadout)
    r = readout_for("hinge", None)
    assert isinstance(r, ConvexLossReadout) and (r.loss, r.labels) == ("hinge", "sign")
    with pytest.raises(InputError, match="labels 'sign'"):
        ConvexLossReadout("logistic", "regression")
    with pytest.raises(InputError, match="loss must be one of"):
        ConvexLossReadout("cubic")


def test_square_loss_on_regression_labels_is_ridge_predict():
    """Two solvers, two sets of equations: the convex-loss saddle point reduces to the ridge fixed point."""
    model = DeepRF(100, (200, 150), ("tanh", "relu"))
    conv = ConvexLossReadout("square", "regression").predict(model, 150, 0.05, 0.1)
    ridge = RidgeReadout().predict(model, 150, 0.05, 0.1)
    assert _rel(conv.test_error, ridge.test_error) < 1e-10
    assert _rel(conv.effective_ridge, ridge.effective_ridge) < 1e-10


# ------------------------------------------------------------ the Diagnostics record


def test_every_result_carries_diagnostics():
    p = predict(SMALL, 150, 1e-3, 0.1)
    g = predict_glm(SMALL, 150, 0.1, 0.1, loss="hinge")
    t = theorem(ConvexLossReadout("hinge"), SMALL, 150, 0.1, 0.1)
    for res in (p, g, t):
        d = res.diagnostics
        assert isinstance(d, Diagnostics) and d.converged and d.status == "ok"
        assert d.residual < 1e-12
    json.dumps(to_jsonable(g, 17))  # the generic conversion gives JSON
    assert "diagnostics" in p.as_dict() and "diagnostics" in g.as_dict()


def test_float_path_has_float_fields_everywhere():
    """After a precision fallback the float path still returns Python floats (samples, ridge, noise too)."""
    p = predict(SMALL, 200, 1e-12, 0.1)  # next to the threshold: re-solved with mpmath
    g = predict_glm(SMALL, 150, 0.1, 0.1, loss="logistic")
    import dataclasses

    from rfq_theory.results import is_number

    for res in (p, g):
        for name in ("test_error", "train_error", "samples", "ridge", "noise", "df1", "df2"):
            assert type(getattr(res, name)) is float, name
        assert all(type(k) is float for k in res.effective_ridges if k is not None)
        for f in dataclasses.fields(res):  # every number field, not only the listed ones
            v = getattr(res, f.name)
            if is_number(v) and f.name not in ("digits", "iterations", "function_calls", "working_digits"):
                assert type(v) is float, f.name
    assert float_numbers(p) == p


# ------------------------------------------------------------ legal inputs that used to fail


def _hebbian_error(psi, alpha, delta):
    """Classification error of the Hebbian readout ``w ~ mean(y z)`` on linear features.

    For ``z = W x / sqrt(d)`` with ``psi = k/d``, ``alpha = n/d``:
    ``E[omega g] ~ c psi``, ``E[omega^2] ~ c^2 psi (1 + psi) + psi (1 + psi) / alpha``
    (Marchenko-Pastur moments), ``c = E[y g] = sqrt(2 / (pi (1 + Delta)))``, so the
    error is ``arccos(E[omega g] / sqrt(E[omega^2] (1 + Delta))) / pi`` (scale-free in ``w``).
    """
    c = math.sqrt(2 / (math.pi * (1 + delta)))
    return math.acos(c * psi / math.sqrt((c * c * psi * (1 + psi) + psi * (1 + psi) / alpha) * (1 + delta))) / math.pi


@pytest.mark.parametrize("ridge", [10, 100, 1e6])
def test_hinge_at_large_ridges_is_exactly_hebbian(ridge):
    """Once every margin ``y omega`` is below 1 the hinge subgradient is ``-y z`` for every sample, so the
    hinge readout *is* ``mean(y z) / (2 lambda)``: from lambda = 10 on, the error is the closed form (to the
    Gaussian tail of margins above 1, below 1e-11 here).  The tanh model: converged, and the same error at
    every large ridge (the direction of ``w`` no longer moves)."""
    p = predict_glm(LINEAR, 150, ridge, 0.1, loss="hinge")
    assert p.diagnostics.converged and abs(p.test_error - _hebbian_error(2.0, 1.5, 0.1)) < 1e-11
    q = predict_glm(SMALL, 150, ridge, 0.1, loss="hinge")
    far = predict_glm(SMALL, 150, 1e8, 0.1, loss="logistic")  # another loss, the same limit
    assert q.diagnostics.converged and abs(q.test_error - far.test_error) < 1e-7


def test_hinge_at_width_ratio_one_tenth():
    """k/d = 0.1: the hinge readout of linear features is Hebbian from lambda = 1 on (closed form); the
    tanh model converges at lambda = 0.1 (where the hinge solver used to give up)."""
    narrow = DeepRF(100, (10,), ("linear",))
    limit = _hebbian_error(0.1, 1.5, 0.1)
    for ridge in (1.0, 3.0):
        assert abs(predict_glm(narrow, 150, ridge, 0.1, loss="hinge").test_error - limit) < 1e-7
    p = predict_glm(DeepRF(100, (10,), ("tanh",)), 150, 0.1, 0.1, loss="hinge")
    assert p.diagnostics.converged and 0 < p.test_error < 0.5


def test_large_ridge_limit_is_the_hebbian_readout():
    """As lambda -> infinity ``w -> mean(y z) / (2 lambda)`` for every loss (the gradient at ``w = 0``):
    the error tends to :func:`_hebbian_error`."""
    psi, alpha, delta = 2.0, 1.5, 0.1
    limit = _hebbian_error(psi, alpha, delta)
    for loss, tol in (("hinge", 1e-12), ("logistic", 1e-8), ("square", 1e-7)):
        p = predict_glm(LINEAR, 150, 1e8, delta, loss=loss)
        assert abs(p.test_error - limit) < tol, loss
    # the approach is monotone in lambda for the logistic loss (corrections O(1/lambda))
    e2, e4 = (predict_glm(LINEAR, 150, lam, delta, loss="logistic").test_error for lam in (1e2, 1e4))
    assert abs(e4 - limit) < abs(e2 - limit) / 50


def test_tiny_ridges_answer_or_name_the_limit():
    for loss in ("square", "hinge"):
        p = predict_glm(SMALL, 150, 1e-100, 0.1, loss=loss)
        assert all(math.isfinite(r) for r in p.residuals)
    for loss in ("square", "hinge", "logistic"):
        with pytest.raises(InputError, match=f"ridge must be >= {MIN_RIDGE[loss]:g}"):
            predict_glm(SMALL, 150, 1e-300, 0.1, loss=loss)


def test_cli_tiny_ridge_is_one_line_exit_2(capsys):
    rc = main(["predict", *ARGS, "--samples", "150", "--ridge", "1e-300", "--loss", "hinge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "ridge must be >=" in err[0]


def test_failing_point_does_not_fail_the_curve(monkeypatch):
    """A point whose solve raises is NaN with failed diagnostics; the others are the scalar answers."""
    readout = ConvexLossReadout("hinge")
    real = readout.predict

    def flaky(model, samples, ridge, *a, **kw):
        if float(ridge) == 1.0:
            raise ArithmeticError("made to fail")
        return real(model, samples, ridge, *a, **kw)

    monkeypatch.setattr(readout, "predict", flaky)
    res = curve(readout, SMALL, "ridge", [0.1, 1.0, 10.0], samples=150, noise=0.1)
    assert [r.diagnostics.converged for r in res] == [True, False, True]
    assert math.isnan(res[1].test_error) and "made to fail" in res[1].diagnostics.message
    assert res[2].test_error == predict_glm(SMALL, 150, 10.0, 0.1, loss="hinge").test_error


@pytest.mark.slow
def test_ridge_curve_over_thirteen_decades():
    """Every point of 1e-9..1e4 answers, for the three losses, and the two ends are known: at lambda = 1e4
    every loss is the Hebbian readout (the hinge one at 1e8 as the limit); with n < k the sign labels are
    separable, and below some lambda the hinge readout is the hard-margin SVM, whose error no longer moves."""
    grid = np.geomspace(1e-9, 1e4, 8)
    hebbian = predict_glm(SMALL, 150, 1e8, 0.1, loss="hinge").test_error
    hard_margin = predict_glm(SMALL, 150, 1e-12, 0.1, loss="hinge").test_error
    for loss in ("logistic", "hinge", "square"):
        res = glm_sweep(SMALL, "ridge", grid, samples=150, noise=0.1, loss=loss)
        assert all(r.diagnostics.converged and 0 <= r.test_error <= 0.5 for r in res), loss
        assert abs(res[-1].test_error - hebbian) < 5e-5, (loss, res[-1].test_error, hebbian)
    hinge = glm_sweep(SMALL, "ridge", grid[:3], samples=150, noise=0.1, loss="hinge")
    assert all(abs(r.test_error - hard_margin) < 1e-9 for r in hinge), [r.test_error for r in hinge]


@given(
    n=st.floats(30, 600),
    lam=st.floats(-3, 1),
    loss=st.sampled_from(["logistic", "hinge"]),
)
def test_classification_error_between_bayes_and_chance(n, lam, loss):
    """No classifier beats the Bayes error of the labels ``sign(g + sqrt(Delta) xi)``: knowing ``g`` exactly
    errs with probability ``arccos(1 / sqrt(1 + Delta)) / pi``; a trained readout is no worse than chance."""
    p = predict_glm(SMALL, n, 10.0**lam, 0.1, loss=loss)
    bayes = math.acos(1 / math.sqrt(1.1)) / math.pi
    assert bayes < p.test_error <= 0.5, (p.test_error, bayes)
    assert 0 <= p.train_error <= 1


# ------------------------------------------------------------ the optimal ridge


@pytest.mark.slow  # a 1-D optimisation over convex-loss solves
def test_convex_optimal_ridge_lives_in_the_library():
    import rfq_theory.cli.glm as cli_glm

    assert not hasattr(cli_glm, "optimal_ridge_glm")
    r = optimal_ridge(ConvexLossReadout("logistic"), SMALL, 150, 0.1)
    assert r.at_bound is None and r.diagnostics.converged
    e = lambda lam: predict_glm(SMALL, 150, lam, 0.1, loss="logistic").test_error  # noqa: E731
    assert e(r.ridge) <= min(e(r.ridge * 1.1), e(r.ridge / 1.1))


@pytest.mark.slow
def test_polished_optimal_ridge_is_a_stationary_point():
    """With digits the slope of the 30-digit test error in log lambda vanishes at lambda* (finite difference)."""
    from rfq_theory.precision import mp as mpmath

    model = DeepRF(100, (200,), ("tanh",), "sign-scaled")
    r = optimal_ridge(RidgeReadout(), model, 150, 0.5, digits=20)
    assert r.polished
    h = 1e-4
    with mpmath.workdps(40):
        t = mpmath.log(mpmath.mpf(r.ridge))
        up = predict(model, 150, mpmath.nstr(mpmath.exp(t + h), 35), 0.5, digits=30).test_error
        dn = predict(model, 150, mpmath.nstr(mpmath.exp(t - h), 35), 0.5, digits=30).test_error
        mid = predict(model, 150, mpmath.nstr(mpmath.exp(t), 35), 0.5, digits=30).test_error
        slope = (up - dn) / (2 * h)
        curv = (up - 2 * mid + dn) / (h * h)
    # the location error is |slope / curvature| in log lambda
    assert abs(float(slope / curv)) < 1e-9


# ------------------------------------------------------------ lanes and maps


def test_lanes_equal_scalar_predictions_small():
    n = np.array([60.0, 150.0, 400.0])
    lam = np.array([1e-2, 0.1, 1.0])
    for loss in ("logistic", "hinge", "square"):
        r = solve_glm_lanes(SMALL, n, lam, 0.1, loss=loss)
        for i in range(3):
            p = predict_glm(SMALL, n[i], lam[i], 0.1, loss=loss)
            assert _rel(r.test_error[i], p.test_error) < 1e-9, (loss, i)
            assert _rel(r.extra["train_loss"][i], p.train_loss) < 1e-9 or abs(p.train_loss) < 1e-12


@pytest.mark.slow
def test_logistic_map_equals_scalar_at_40_random_cells():
    model = DeepRF(100, (200,), ("tanh",), "sign")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = phase_map(
            model, "samples:0.3:4:10", "ridge:log:1e-3:10:10", noise=0.1, readout=ConvexLossReadout("logistic")
        )
    assert pm.n_failed == 0
    rng = np.random.default_rng(7)
    cells = rng.choice(pm.values.size, 40, replace=False)
    for cell in cells:
        i, j = divmod(int(cell), pm.values.shape[1])
        p = predict_glm(model, pm.x[j] * 100, pm.y[i], 0.1, loss="logistic")
        assert _rel(pm.values[i, j], p.test_error) < 1e-9, (i, j)


def test_convex_phase_quantities():
    readout = ConvexLossReadout("hinge")
    pm = phase_map(SMALL, "samples:0.5:3:3", "ridge:log:0.01:1:2", "train_loss", noise=0.1, readout=readout)
    p = predict_glm(SMALL, 300, 1.0, 0.1, loss="hinge")
    assert _rel(pm.values[1, 2], p.train_loss) < 1e-9
    gap = phase_map(
        DeepRF(100, (200,), ("tanh",), "sign"),
        "samples:0.5:3:2",
        "ridge:log:0.01:1:2",
        "gap",
        noise=0.1,
        readout=readout,
    )
    assert np.all(np.abs(gap.values) < 1e-12)  # the sign twin equals full precision
    with pytest.raises(InputError, match="quantity must be one of"):
        phase_map(SMALL, "samples:0.5:3:3", "width:1:2:2", "train_loss", samples=None, ridge=0.1)


def test_cli_phase_with_loss(tmp_path, capsys):
    out = tmp_path / "m.npz"
    rc = main(
        ["phase", *ARGS, "--x", "samples:0.5:2:3", "--y", "ridge:log:0.01:1:2", "--labels", "sign", "--loss",
         "logistic", "--quantity", "test_error", "--noise", "0.1", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    data = np.load(out)
    p = predict_glm(SMALL, 200, 1.0, 0.1, loss="logistic")
    assert _rel(data["test_error"][1, 2], p.test_error) < 1e-9


def test_cli_curve_convex_grid_syntax(tmp_path):
    out = tmp_path / "c.csv"
    rc = main(
        ["curve", *ARGS, "--vary", "ridge", "--samples", "150", "--grid", "0.5:2:2", "--loss", "hinge",
         "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 and "status" in rows[0]


def test_batch_map_and_spectrum_results_carry_diagnostics():
    from rfq_theory import optimal_ridge_batch, solve_batch, spectrum

    results = [
        solve_batch(SMALL, np.array([80.0, 300.0]), 1e-2),
        optimal_ridge_batch(SMALL, np.array([80.0, 300.0]), 0.1),
        phase_map(SMALL, "samples:0.5:3:2", "width:1:2:2", ridge=1e-2),
        spectrum(SMALL, samples=150, points=30),
    ]
    for res in results:
        d = res.diagnostics
        assert isinstance(d, Diagnostics) and d.converged, type(res).__name__
    r = solve_glm_lanes(SMALL, np.array([80.0, 300.0]), 1e-2, 0.1, fallback="none")
    assert r.diagnostics.status == "ok" and r.diagnostics.residual < 1e-12
