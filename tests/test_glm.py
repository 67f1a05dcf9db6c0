"""Convex-loss readouts (rfq_theory.glm, rfq_theory.losses): reductions, precision, Monte Carlo, CLI."""

import json
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory import DeepRF, InputError, SolverError, predict
from rfq_theory import glm as G
from rfq_theory.glm import predict_glm
from rfq_theory.losses import margin_dprox, margin_prox, ops

MODEL2 = DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign")
MODEL1 = DeepRF(300, (450,), ("erf",), "none")


# ---------------------------------------------------------------- losses


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-60, 60), V=st.floats(1e-3, 200), loss=st.sampled_from(["square", "logistic", "hinge"]))
def test_prox_minimises_the_proximal_objective(a, V, loss):
    """u = prox(a) minimises ell(u) + (u - a)^2 / (2V): no grid point does better (an independent check)."""
    xp = ops("float")
    u = float(margin_prox(loss, np.array([a]), V, xp)[0])
    ell = {
        "square": lambda x: (1 - x) ** 2,
        "logistic": lambda x: np.logaddexp(0, -x),
        "hinge": lambda x: np.maximum(0, 1 - x),
    }[loss]
    obj = lambda x: ell(x) + (x - a) ** 2 / (2 * V)  # noqa: E731
    grid = np.linspace(min(a, u) - 2, max(a + V, u) + 2, 20001)
    assert obj(u) <= obj(grid).min() + 1e-9 * max(1.0, abs(obj(u)))


def test_prox_mp_matches_float_and_solves_the_optimality_condition():
    from rfq_theory.precision import mp as pmp

    a = np.linspace(-20, 20, 41)
    with pmp.workdps(40):  # the package computes in this thread's private context
        am = np.array([pmp.mpf(float(x)) for x in a], dtype=object)
        V = pmp.mpf(3)
        u = margin_prox("logistic", am, V, ops("mp"))
        for x, y in zip(u, am):
            assert abs(x - V / (1 + pmp.exp(x)) - y) < pmp.mpf(10) ** -36
    uf = margin_prox("logistic", a, 3.0, ops("float"))
    assert np.max(np.abs(uf - np.array([float(x) for x in u]))) < 1e-12
    du = margin_dprox("logistic", uf, a, 3.0, ops("float"))
    h = 1e-6
    num = (margin_prox("logistic", a + h, 3.0, ops("float")) - margin_prox("logistic", a - h, 3.0, ops("float"))) / (
        2 * h
    )
    assert np.max(np.abs(du - num)) < 1e-6


# ---------------------------------------------------------------- reductions


def test_square_loss_regression_labels_reproduce_ridge_at_30_digits():
    """The saddle point with square loss and regression labels is ridge regression (to 1e-20 at 30 digits)."""
    for model, n, lam, delta, target in ((MODEL2, 1200, "1e-3", "0.1", "linear"), (MODEL1, 700, "0.05", "0.3", "tanh")):
        g = predict_glm(model, n, lam, delta, target, labels="regression", loss="square", digits=30)
        p = predict(model, n, lam, delta, target, digits=30)
        assert abs(g.test_error - p.test_error) < mpmath.mpf("1e-20")
        assert abs(g.train_error - p.train_error) < mpmath.mpf("1e-20")
        assert abs(g.effective_ridge - p.effective_ridge) < mpmath.mpf("1e-20") * p.effective_ridge


def test_square_loss_sign_labels_is_ridge_on_pm1_labels():
    """Square loss on +-1 labels = ridge with Var y = 1 and rho = E[y g]^2 = 2/(pi (1 + Delta)).

    The mean squared error (test_loss) and the classification error
    arccos(m / sqrt(q (1 + Delta))) / pi follow from the ridge prediction's
    own functionals; the GLM path computes them through its quadrature channel.
    """
    delta = 0.1
    p = predict(MODEL2, 1200, 1e-2, 0, digits=None)
    rho = 2 / (math.pi * (1 + delta))
    s_minus = p.s - p.effective_ridge * p.s_prime
    mse = (1 - rho * s_minus) / (1 - p.df2 / 1200)
    m = math.sqrt(rho) * p.s
    q = rho * (p.s + p.effective_ridge * p.s_prime) + p.df2 / 1200 * mse
    g = predict_glm(MODEL2, 1200, 1e-2, delta, labels="sign", loss="square")
    assert g.test_loss == pytest.approx(mse, rel=1e-11)
    assert g.train_loss == pytest.approx((1e-2 / p.effective_ridge) ** 2 * mse, rel=1e-10)
    assert g.test_error == pytest.approx(math.acos(m / math.sqrt(q * (1 + delta))) / math.pi, rel=1e-11)


def test_large_ridge_limit_is_chance_level_with_the_loss_at_zero():
    """lambda -> infinity: w -> 0, test error -> 1/2 (the sign of a vanishing field), logistic loss -> log 2."""
    g = predict_glm(MODEL1, 600, 1e4, 0.0, labels="sign", loss="logistic")
    assert g.q < 1e-6
    assert g.test_loss == pytest.approx(math.log(2), rel=1e-4)
    assert g.train_loss == pytest.approx(math.log(2), rel=1e-4)


def test_hinge_and_logistic_more_data_helps():
    errs = [float(predict_glm(MODEL1, n, 1e-2, 0.0, labels="sign", loss="hinge").test_error) for n in (150, 600, 2400)]
    assert errs[0] > errs[1] > errs[2]


# ---------------------------------------------------------------- precision


@pytest.mark.slow
def test_float_path_matches_mpmath_at_20_digits():
    model = DeepRF(400, (600,), ("relu",), "none")
    f = predict_glm(model, 800, 0.1, 0.0, labels="sign", loss="logistic")
    m = predict_glm(model, 800, 0.1, 0.0, labels="sign", loss="logistic", digits=20)
    for key in ("test_error", "test_loss", "train_loss", "train_error"):
        assert abs(getattr(f, key) - float(getattr(m, key))) < 1e-8


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(ridge=0, loss="hinge"), "max-margin"),
        (dict(ridge=0, loss="logistic"), "max-margin"),
        (dict(labels="regression", loss="logistic"), "needs labels 'sign'"),
        (dict(target="u**2", noise=0), "constant labels"),
        (dict(loss="exp"), "loss must be one of"),
        (dict(labels="ordinal"), "labels must be one of"),
        (dict(ridge=-1), "ridge must be >= 0"),
    ],
)
def test_bad_input_is_one_clear_line(kwargs, words):
    args = dict(samples=500, ridge=0.1, noise=0.1, target="linear", labels="sign", loss="logistic")
    args.update(kwargs)
    with pytest.raises(InputError, match=words) as info:
        predict_glm(MODEL1, **args)
    assert "\n" not in str(info.value)


def test_non_convergence_raises_solver_error_with_the_residual(monkeypatch):
    monkeypatch.setattr(G, "_FLOAT_TOL", 0.0)
    monkeypatch.setattr(G, "_MAX_NEWTON", 3)
    monkeypatch.setattr(G, "_MAX_PICARD", 5)
    with pytest.raises(SolverError, match="residual"):
        predict_glm(MODEL1, 500, 0.1, 0.1, labels="sign", loss="logistic")


# ---------------------------------------------------------------- CLI


def _cli(argv, capsys):
    from rfq_theory.cli import main

    rc = main(argv)
    return rc, capsys.readouterr()


BASE = ["--input-dim", "300", "--widths", "450", "--activations", "erf", "--samples", "600", "--noise", "0.1"]


@pytest.mark.slow
def test_cli_predict_json_has_every_digit(capsys):
    rc, out = _cli(
        ["predict", *BASE, "--ridge", "0.05", "--labels", "sign", "--loss", "hinge", "--digits", "20", "--json"], capsys
    )
    assert rc == 0
    data = json.loads(out.out)
    for key in ("test_error", "test_loss", "train_loss", "train_error"):
        assert isinstance(data[key], str)
        assert len(data[key].replace("0.", "", 1).lstrip("0").replace(".", "")) >= 20


def test_cli_exit_codes(capsys, monkeypatch):
    rc, out = _cli(["predict", *BASE, "--ridge", "0", "--labels", "sign", "--loss", "hinge"], capsys)
    assert rc == 2 and out.err.count("\n") == 1 and "max-margin" in out.err
    rc, out = _cli(["predict", *BASE, "--ridge", "0.1", "--labels", "sign", "--target", "u**2", "--noise", "0"], capsys)
    assert rc == 2 and "constant labels" in out.err
    monkeypatch.setattr(G, "_FLOAT_TOL", 0.0)
    monkeypatch.setattr(G, "_MAX_NEWTON", 2)
    monkeypatch.setattr(G, "_MAX_PICARD", 3)
    rc, out = _cli(["predict", *BASE, "--ridge", "0.1", "--labels", "sign", "--loss", "logistic"], capsys)
    assert rc == 3 and "did not converge" in out.err


def test_cli_theorem_reports_the_api_twins(capsys):
    rc, out = _cli(["theorem", *BASE, "--ridge", "0.05", "--labels", "sign", "--loss", "logistic", "--json"], capsys)
    assert rc == 0
    data = json.loads(out.out)
    res = G.glm_theorem(DeepRF(300, (450,), ("erf",)), 600, 0.05, 0.1, labels="sign", loss="logistic")
    for key, pred in (("full_precision", res.full), ("sign", res.sign), ("sign_scaled", res.sign_scaled)):
        assert float(data[key]["test_error"]) == pytest.approx(float(pred.test_error), rel=1e-12), key


def test_cli_default_predict_is_the_ridge_prediction(capsys):
    """Without --labels/--loss, predict is ridge regression (the convex-loss options add nothing)."""
    rc, out = _cli(["predict", *BASE, "--ridge", "0.05", "--json"], capsys)
    assert rc == 0
    want = predict(DeepRF(300, (450,), ("erf",)), 600, 0.05, 0.1)
    assert float(json.loads(out.out)["test_error"]) == pytest.approx(want.test_error, rel=1e-12)


# ---------------------------------------------------------------- Monte Carlo


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_theory_matches_real_classifiers(loss):
    pytest.importorskip("sklearn")
    from validation.montecarlo.glm_validate import GLMConfig, validate_row

    cfg = GLMConfig(150, (250,), ("tanh",), "sign", loss, 300, 0.05, 0.1, trials=6, test_samples=3000)
    row = validate_row(cfg, finite_size=True)
    assert row["test_error"]["status"] == "pass", row["test_error"]
    assert row["train_loss"]["status"] == "pass", row["train_loss"]
    # the finite-size route on the drawn spectrum is close to the limit
    assert abs(row["test_error"]["finite_size"] - row["test_error"]["theory"]) < 0.02


@settings(max_examples=40, deadline=None)
@given(m=st.floats(0.0, 2.0), extra=st.floats(0.05, 4.0), V=st.floats(0.01, 20.0), delta=st.floats(0.0, 1.0))
def test_sign_channel_quadrature_matches_gaussian_moments_for_square_loss(m, extra, V, delta):
    """Square loss on y = sign(g + sqrt(Delta) xi): the quadrature channel equals its closed form.

    With c = E[y g] = sqrt(2/(pi (1 + Delta))): V_hat = 2/(1+2V), m_hat = 2c/(1+2V),
    q_hat = 4 (1 - 2 c m + q)/(1+2V)^2 and test_loss = 1 - 2 c m + q.
    """
    q = m * m + extra
    c = math.sqrt(2 / (math.pi * (1 + delta)))
    quad = G._Quadrature("float")
    Vh, mh, qh, out = G._sign_channel("square", m, q, V, delta, quad, want_outputs=True)
    assert Vh == pytest.approx(2 / (1 + 2 * V), rel=1e-10)
    assert mh == pytest.approx(2 * c / (1 + 2 * V), rel=1e-9, abs=1e-12)
    mse = 1 - 2 * c * m + q
    assert qh == pytest.approx(4 * mse / (1 + 2 * V) ** 2, rel=1e-9)
    assert out["test_loss"] == pytest.approx(mse, rel=1e-9)
    assert out["train_loss"] == pytest.approx(mse / (1 + 2 * V) ** 2, rel=1e-9)


def test_cli_curve_with_a_loss(tmp_path, capsys):
    out = tmp_path / "c.csv"
    rc, res = _cli(
        [
            "curve",
            "--input-dim",
            "300",
            "--widths",
            "450",
            "--activations",
            "relu",
            "--vary",
            "samples",
            "--grid",
            "0.5,1,2",
            "--ridge",
            "0.01",
            "--noise",
            "0.1",
            "--loss",
            "hinge",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert rc == 0
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 3 * 3 and "test_error" in rows[0]
    errs = [float(r.split(",")[6]) for r in rows[1:4]]
    assert errs[0] > errs[1] > errs[2]


def test_validate_without_scikit_learn_says_how_to_install(monkeypatch, capsys):
    import importlib.util

    from rfq_theory.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    argv = [
        "validate",
        "--input-dim",
        "50",
        "--widths",
        "80",
        "--activations",
        "tanh",
        "--grid",
        "1",
        "--ridge",
        "1e-2",
        "--labels",
        "sign",
        "--loss",
        "logistic",
        "--no-progress",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'rfq-theory[sklearn]'" in err[0], err


@pytest.mark.parametrize(
    "extra,word",
    [(["--input-dim", "abc"], "input_dim"), (["--trials", "1"], "trials"), (["--ridge", "nan"], "ridge")],
)
def test_validate_glm_bad_options_one_line(extra, word, capsys):
    from rfq_theory.cli import main

    argv = [
        "validate",
        "--input-dim",
        "50",
        "--widths",
        "80",
        "--activations",
        "tanh",
        "--grid",
        "1",
        "--ridge",
        "1e-2",
        "--labels",
        "sign",
        "--loss",
        "square",
        "--no-progress",
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and word in err[0], err


@pytest.mark.slow
def test_validate_glm_store_keeps_rows_and_reports(tmp_path, capsys):
    from rfq_theory.cli import main

    out = tmp_path / "v"
    argv = [
        "validate",
        "--input-dim",
        "40",
        "--widths",
        "60",
        "--activations",
        "tanh",
        "--grid",
        "1",
        "--ridge",
        "1e-1",
        "--noise",
        "0.1",
        "--labels",
        "sign",
        "--loss",
        "square",
        "--trials",
        "6",
        "--test-samples",
        "200",
        "--no-progress",
        "--out",
        str(out),
    ]
    main(argv)
    text = capsys.readouterr().out
    assert "verdict:" in text and f"files: {out / 'results.jsonl'}" in text
    first = (out / "results.jsonl").read_text()
    with open(out / "results.jsonl", "a") as fh:
        fh.write('[1, 2]\n{"no key": 1}\n{"key": "torn')
    main(argv + ["--resume"])  # damaged lines are skipped, the finished row is reused
    capsys.readouterr()
    main(argv)  # a new run keeps the old file aside
    assert (out / "results.1.jsonl").read_text().startswith(first)
    assert main(argv[:-1] + [str(out / "results.jsonl")]) == 2  # --out onto a file: one line
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rfq validate: error: --out")
