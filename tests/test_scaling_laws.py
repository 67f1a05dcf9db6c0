"""Scaling laws (rfq_theory.scaling_laws, ``rfq scaling``) against independent routes.

- the fit recovers planted power laws exactly (and, by Hypothesis, ``c x^-p + e`` gives ``p``);
- the local slope of a sum of two power laws is its closed form;
- one linear layer of huge width is ridge regression on ``x ~ N(0, Sigma)``: the classical
  anisotropic ridge formula, written here from scratch, gives the errors, the limit and the
  exponent, and for ``lambda_i ~ i^-a``, ``beta_i^2 ~ i^-b`` the ridgeless exponent ``a + b - 1``;
- sign weights (``s^2 = 1``) give the full-precision curve exactly; for ReLU the scaled sign only
  rescales the features, so at ridge 0 its curve is the full-precision one too.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from rfq_theory import DeepRF, fit_power_law, predict, predict_glm, scaling_law
from rfq_theory.cli import main
from rfq_theory.input_spectrum import input_spectrum, teacher_profile

# --------------------------------------------------------------------------- the classical formula


def power_law_data(d, a, b):
    """Eigenvalues ``lambda_i`` and teacher weights ``t_i`` (``sum t_i lambda_i = 1``)."""
    lam = np.array(input_spectrum(f"power:{a}").eigenvalues(d), dtype=float)
    beta2 = np.array(teacher_profile(f"power:{b}").squared_coefficients(lam), dtype=float)
    return lam, beta2 / np.sum(beta2 * lam)


def classical_ridge_error(lam, t, n, ridge, noise):
    """Ridge on x ~ N(0, diag(lam)) with teacher weights t, written from the textbook formula.

    kappa solves ridge = kappa (1 - sum lam/(lam + kappa) / n) (for ridge = 0: sum lam/(lam + kappa) = n, n < d);
    E = [kappa^2 sum t lam / (lam + kappa)^2 + noise] / (1 - sum lam^2 / (lam + kappa)^2 / n).
    """
    df1 = lambda k: float(np.sum(lam / (lam + k)))
    if ridge == 0:
        kappa = brentq(lambda k: df1(k) - n, 1e-30, 1e8, xtol=1e-300, rtol=1e-15)
    else:
        kappa = brentq(lambda k: k * (1 - df1(k) / n) - ridge, ridge, ridge + 1e8, xtol=1e-300, rtol=1e-15)
    bias = kappa**2 * np.sum(t * lam / (lam + kappa) ** 2)
    return float((bias + noise) / (1 - np.sum(lam**2 / (lam + kappa) ** 2) / n))


def ols_exponent(x, y):
    """Least-squares slope of log y against log x, negated (numpy's polyfit, not the package's fit)."""
    return -np.polyfit(np.log(x), np.log(y), 1)[0]


#: one linear layer this much wider than d is ridge regression on x (corrections ~ d / K)
HUGE = 1e7


def linear_model(d, a, b, quantizers="none"):
    return DeepRF(d, (HUGE * d,), "linear", quantizers, f"power:{a}", f"power:{b}")


# --------------------------------------------------------------------------- the fit


def test_fit_recovers_a_planted_power_law_exactly():
    x = np.geomspace(0.5, 5e4, 40)
    y = 3.7 * x**-0.83 + 0.25
    fit = fit_power_law(x, y, limit=0.25)
    assert fit.exponent == pytest.approx(0.83, rel=1e-12)
    assert fit.constant == pytest.approx(3.7, rel=1e-11)
    assert fit.exponent_stderr < 1e-12 and fit.max_residual < 1e-11
    assert np.allclose(fit.local_slope, 0.83, rtol=1e-9)
    assert fit.points == 40 and fit.used.all()
    assert np.allclose(fit.predict(x), y, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    c=st.floats(1e-3, 1e3),
    p=st.floats(0.05, 3.0),
    e=st.floats(-1.0, 1.0),
    lo=st.floats(-3.0, 2.0),
    decades=st.floats(0.5, 5.0),
    points=st.integers(3, 50),
)
def test_fit_slope_of_c_x_to_minus_p_plus_e_is_p(c, p, e, lo, decades, points):
    x = np.geomspace(10**lo, 10 ** (lo + decades), points)
    assume(c * x.max() ** -p > 1e-6 * max(abs(e), 1e-300))  # the excess stays far above rounding of e
    fit = fit_power_law(x, c * x**-p + e, limit=e)
    assert fit.points == points
    assert abs(fit.exponent - p) < 1e-6 * (1 + p)
    assert fit.constant == pytest.approx(c, rel=1e-5)
    assert np.allclose(fit.local_slope, p, atol=1e-5 * (1 + p))


def test_local_slope_of_two_power_laws_is_its_closed_form():
    x = np.geomspace(1e-2, 1e2, 400)
    fit = fit_power_law(x, x**-1.0 + x**-2.0)
    exact = (x**-1.0 + 2 * x**-2.0) / (x**-1.0 + x**-2.0)  # -d log(x^-1 + x^-2) / d log x
    assert np.allclose(fit.local_slope, exact, atol=2e-4)
    assert fit.slope_min == pytest.approx(exact.min(), abs=2e-4)
    assert fit.slope_max == pytest.approx(exact.max(), abs=2e-4)
    assert 1 < fit.exponent < 2 and fit.exponent_stderr > 1e-3  # not one power law: a real error bar


def test_points_without_excess_and_outside_the_range_are_left_out():
    x = np.geomspace(1, 100, 21)
    y = 2 * x**-1.5 + 1.0
    y[3] = 0.5  # below the limit
    y[5] = math.nan
    fit = fit_power_law(x, y, limit=1.0, fit_range=(1.0, 50.0))
    assert not fit.used[3] and not fit.used[5] and not fit.used[-1]
    assert math.isnan(fit.local_slope[3])
    assert fit.exponent == pytest.approx(1.5, rel=1e-10)
    assert fit.points == int(np.count_nonzero(x <= 50.0)) - 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=[1, 2, 3], y=[1, 2]), "same length"),
        (dict(x=[0, 1, 2], y=[1, 2, 3]), "positive"),
        (dict(x=[1, 2, 3], y=[3, 2, 1], limit="a"), "limit"),
        (dict(x=[1, 2, 3], y=[3, 2, 1], fit_range=(5, 1)), "fit_range"),
    ],
)
def test_fit_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(**kwargs)


# --------------------------------------------------------------------------- against ridge regression on x


def test_one_huge_linear_layer_is_classical_ridgeless_regression():
    d, a, b = 2000, 1.5, 1.0
    lam, t = power_law_data(d, a, b)
    grid = np.geomspace(d / 200, d / 20, 30)
    law = scaling_law(linear_model(d, a, b), "samples", grid, quantizers=("none",))
    direct = np.array([classical_ridge_error(lam, t, n, 0.0, 0.0) for n in grid])
    assert np.allclose(law.test_error[0], direct, rtol=1e-6)
    assert abs(law.limit[0]) < 1e-12  # a noiseless linear teacher is learned exactly once n > d
    assert law.exponent[0] == pytest.approx(ols_exponent(grid, direct), abs=1e-5)
    assert law.diagnostics.status == "ok"


def test_ridge_and_noise_limit_is_the_population_ridge_error():
    # n -> infinity at fixed ridge: kappa -> ridge, E_inf = kappa^2 sum t lam / (lam + kappa)^2 + noise
    d, a, b, ridge_x, noise = 1000, 1.2, 0.8, 1e-3, 0.05
    lam, t = power_law_data(d, a, b)
    grid = np.geomspace(5, 500, 25)
    law = scaling_law(linear_model(d, a, b), "samples", grid, ridge=ridge_x * HUGE, noise=noise, quantizers=("none",))
    direct = np.array([classical_ridge_error(lam, t, n, ridge_x, noise) for n in grid])
    assert np.allclose(law.test_error[0], direct, rtol=1e-5)
    limit = ridge_x**2 * np.sum(t * lam / (lam + ridge_x) ** 2) + noise
    assert law.limit[0] == pytest.approx(limit, rel=1e-6)
    assert law.limit_error[0] < 1e-9 * limit
    assert law.exponent[0] == pytest.approx(ols_exponent(grid, direct - limit), abs=1e-3)


def test_width_limit_is_ridgeless_regression_on_x():
    # k -> infinity at fixed ridge: the ridge per direction of x, ridge d / k, goes to 0
    d, a, b = 500, 1.5, 1.0
    n = d / 10
    lam, t = power_law_data(d, a, b)
    model = DeepRF(d, (2 * d,), "linear", "none", f"power:{a}", f"power:{b}")
    law = scaling_law(model, "width", np.geomspace(2 * d, 1000 * d, 20), samples=n, ridge=1e-3, quantizers=("none",))
    assert law.limit[0] == pytest.approx(classical_ridge_error(lam, t, n, 0.0, 0.0), rel=1e-6)
    assert np.all(law.excess[0] > 0) and law.fit_points[0] == 20


@pytest.mark.parametrize("a, b", [(2.0, 0.5), (1.5, 1.0)])
def test_ridgeless_exponent_is_a_plus_b_minus_one(a, b):
    # capacity lambda_i ~ i^-a, source t_i lambda_i ~ i^-(a+b): bias ~ sum_{i > n} i^-(a+b) ~ n^-(a+b-1) for 1 << n << d
    d = 20000
    law = scaling_law(linear_model(d, a, b), "samples", np.geomspace(d / 200, d / 20, 30), quantizers=("none",))
    assert law.exponent[0] == pytest.approx(a + b - 1, abs=0.05)
    assert law.slope_max[0] - law.slope_min[0] < 0.1


# --------------------------------------------------------------------------- quantizers


DEEP = DeepRF(1000, (2000, 1500), ("tanh", "relu"), "none", "power:1.5", "power:1")


def test_each_quantizer_row_is_the_scalar_prediction_of_its_model():
    grid = np.geomspace(2, 200, 20)
    law = scaling_law(DEEP, "samples", grid, ridge=1e-4, quantizers=("none", "sign", "sign-scaled"))
    assert law.quantizers == ("none", "sign", "sign-scaled")
    for row, quantizer in enumerate(law.quantizers):
        model = DEEP.with_quantizers(quantizer)
        for i in (0, 9, 19):  # n = x
            want = predict(model, grid[i], 1e-4, 0.0).test_error
            assert law.test_error[row, i] == pytest.approx(want, rel=1e-9), (quantizer, i)


def test_relu_scaled_sign_rescales_features_so_ridgeless_curves_agree():
    # ReLU is 1-homogeneous: sqrt(2/pi) sign weights multiply the features by a constant, which a ridge
    # of 0 does not see; at a ridge > 0 the curves differ (the ridge is rescaled)
    model = DeepRF(400, (800,), "relu", "none", "power:1.2", "power:1")
    grid = np.geomspace(2, 150, 12)
    flat = scaling_law(model, "samples", grid, quantizers=("none", "sign-scaled"))
    assert np.allclose(flat.test_error[1], flat.test_error[0], rtol=1e-9)
    ridged = scaling_law(model, "samples", grid, ridge=1e-1, quantizers=("none", "sign-scaled"))
    assert np.max(np.abs(ridged.test_error[1] / ridged.test_error[0] - 1)) > 1e-4


def test_per_layer_quantizers_and_labels():
    law = scaling_law(
        DEEP, "widths", [1, 3, 10, 30], samples=300, ridge=1e-3, quantizers=(("sign", "none"), "uniform:4")
    )
    assert law.quantizers == ("sign,none", "uniform:4")
    assert law.test_error.shape == (2, 4) and law.settings["samples"] == 300.0
    # each layer gets its own quantizer: the scaled sign on one layer only changes the error, and which
    # layer carries it matters (the rows equal scalar predictions of the per-layer models)
    per = scaling_law(
        DEEP,
        "widths",
        [1, 3, 10],
        samples=300,
        ridge=1e-3,
        quantizers=(("sign-scaled", "none"), ("none", "sign-scaled")),
    )
    for row, quants in enumerate((("sign-scaled", "none"), ("none", "sign-scaled"))):
        model = DEEP.with_quantizers(quants).with_widths(tuple(3 * w for w in DEEP.widths))
        assert per.test_error[row, 1] == pytest.approx(predict(model, 300, 1e-3).test_error, rel=1e-9)
    assert abs(per.test_error[0, 1] - per.test_error[1, 1]) > 1e-6


def test_given_limit_replaces_the_far_point():
    d, a, b = 2000, 1.5, 1.0
    grid = np.geomspace(10, 100, 10)
    auto = scaling_law(linear_model(d, a, b), "samples", grid, quantizers=("none",))
    zero = scaling_law(linear_model(d, a, b), "samples", grid, quantizers=("none",), limit=0)
    assert zero.limit[0] == 0 and zero.limit_error[0] == 0
    assert zero.exponent[0] == pytest.approx(auto.exponent[0], abs=1e-9)
    # with E_inf = 0 given, the exponent is the least-squares slope of the classical ridgeless errors
    lam, t = power_law_data(d, a, b)
    direct = np.array([classical_ridge_error(lam, t, n, 0.0, 0.0) for n in grid])
    assert zero.exponent[0] == pytest.approx(ols_exponent(grid, direct), abs=1e-5)


def test_far_point_ladder_falls_back_to_the_largest_converged_point():
    from rfq_theory.scaling_laws import _far_limit

    assert _far_limit([0.3, 0.2, 0.1], [1e3, 1e6, 1e9]) == (0.1, pytest.approx(0.1), "")
    limit, err, note = _far_limit([0.3, 0.2, math.nan], [1e3, 1e6, 1e9])
    assert (limit, err) == (0.2, pytest.approx(0.1)) and "1e+09 did not converge" in note
    limit, err, note = _far_limit([math.nan, 0.2, math.nan], [1e3, 1e6, 1e9])
    assert limit == 0.2 and math.isnan(err) and "no second far point" in note
    limit, err, note = _far_limit([math.nan] * 3, [1e3, 1e6, 1e9])
    assert math.isnan(limit) and "did not converge at any far point" in note


@pytest.mark.slow
def test_logistic_readout_scaling_law_learns_and_is_the_scalar_prediction():
    model = DeepRF(300, (600,), "tanh", "sign", "power:0.8")
    grid = np.geomspace(15, 600, 8)
    law = scaling_law(model, "samples", grid, ridge=1e-2, loss="logistic", labels="sign", quantizers=("sign",))
    assert np.all(np.isfinite(law.limit)) and np.all(law.fit_points == 8)
    assert np.all(np.diff(law.test_error[0]) < 0) and np.all(law.test_error[0] < 0.5)  # learns, below chance
    want = predict_glm(model, grid[3], 1e-2, 0.0, loss="logistic").test_error
    assert law.test_error[0, 3] == pytest.approx(want, rel=1e-9)


def test_optimal_ridge_is_below_every_fixed_ridge():
    model = DeepRF(200, (400,), "tanh", "none", "power:1.2", "power:1")
    grid = np.geomspace(5, 100, 6)
    best = scaling_law(model, "samples", grid, ridge="optimal", noise=0.1, quantizers=("none",))
    assert best.settings["ridge"] == "optimal" and np.all(best.ridge[0] >= 0)
    for lam in (1e-4, 1e-2, 1.0):
        fixed = scaling_law(model, "samples", grid, ridge=lam, noise=0.1, quantizers=("none",))
        assert np.all(best.test_error[0] <= fixed.test_error[0] * (1 + 1e-9))


# --------------------------------------------------------------------------- the result object


def test_result_conventions():
    law = scaling_law(DEEP, "samples", np.geomspace(2, 200, 15), ridge=1e-4, quantizers=("none", "uniform:4"))
    text = repr(law)
    assert text.startswith("ScalingLaw over 'samples': 15 points") and len(text.splitlines()) == 4
    assert "uniform:4" in text and "diagnostics = ok" in text
    obj = json.loads(json.dumps(law.as_dict()))
    assert [f["quantizers"] for f in obj["fits"]] == ["none", "uniform:4"]
    assert float(obj["fits"][0]["exponent"]) == pytest.approx(law.exponent[0], rel=1e-15)
    assert len(obj["curves"]["none"]["test_error"]) == 15
    assert law.fit("uniform:4") is law.fits[1]
    with pytest.raises(KeyError):
        law.fit("sign")
    assert len(law.rows()) == 30 and law.table()[1]["fit_points"] == 15
    pd = pytest.importorskip("pandas")
    df = law.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 30
    assert list(law.to_pandas("fits")["quantizers"]) == ["none", "uniform:4"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vary="depth", grid=[1, 2, 3]), "vary must be one of samples, width, widths"),
        (dict(grid=[1, 2]), "at least 3 points"),
        (dict(grid=[-1, 2, 3]), "positive"),
        (dict(grid=[1, 2, 2]), "distinct"),
        (dict(grid=[1, 2, 3], ridge=-1), "ridge must be"),
        (dict(grid=[1, 2, 3], ridge="best"), "ridge must be a number >= 0 or 'optimal'"),
        (dict(grid=[1, 2, 3], samples=10), "samples conflicts"),
        (dict(vary="width", grid=[1, 2, 3]), "samples is required"),
        (dict(grid=[1, 2, 3], limit="far"), "limit must be 'auto' or a number"),
        (dict(grid=[1, 2, 3], quantizers=("sign", "sign")), "distinct"),
        (dict(grid=[1, 2, 3], quantizers=("bogus",)), "bogus"),
        (dict(grid=[1, 2, 3], loss="logistic", ridge=0), "ridge must be > 0"),
    ],
)
def test_scaling_law_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaling_law(DEEP, **kwargs)


# --------------------------------------------------------------------------- the command


BASE = ["scaling", "--input-dim", "1000", "--widths", "2000,1500", "--activations", "tanh,relu"]
BASE += ["--input-spectrum", "power:1.5", "--teacher", "power:1"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_csv(capsys, tmp_path):
    argv = BASE + ["--vary", "samples", "--grid", "0.002:0.2:20", "--ridge", "1e-4", "--quantizers", "none,sign"]
    code, out, err = run(argv, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("deep RF: d=1000") and "quantizers" in lines[3]
    none_row, sign_row = lines[4].split(), lines[5].split()
    assert none_row[0] == "none" and sign_row[0] == "sign" and len(none_row) == len(sign_row)
    csv_path = tmp_path / "c.csv"
    code, out, _ = run(argv + ["--json", "--csv", str(csv_path)], capsys)
    assert code == 0
    obj = json.loads(out)
    assert obj["vary"] == "samples" and len(obj["values"]) == 20
    assert float(obj["applied"][0]) == pytest.approx(2.0)  # n = x d on the command line
    p = float(obj["fits"][0]["exponent"])
    assert p == pytest.approx(float(none_row[1]), rel=1e-4)
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("quantizers,x,value,test_error") and len(rows) == 41


def test_cli_plot(capsys, tmp_path):
    path = tmp_path / "fig"
    argv = BASE + ["--vary", "widths", "--grid", "1:100:12", "--samples", "300", "--ridge", "1e-3"]
    code, out, err = run(argv + ["--quantizers", "none,sign-scaled", "--plot", str(path)], capsys)
    assert code == 0 and f"wrote {path}.png" in out
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--vary", "samples", "--grid", "0.01:0.1:2"], "at least 3 points"),
        (["--vary", "samples", "--grid", "0:0.1:10"], "positive ends"),
        (["--vary", "samples", "--grid", "0.01:0.1:10:lin"], "log-spaced"),
        (["--vary", "samples", "--grid", "a:b:c"], "--grid start must be a decimal number"),
        (["--vary", "samples", "--grid", "0.01:0.1:\uff11\uff10"], "ASCII digits"),  # fullwidth 10
        (["--vary", "samples", "--grid", "0.01:0.1:5.5"], "whole number"),
        (["--vary", "depth", "--grid", "1:2:3"], "invalid choice"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--samples", "10"], "conflicts"),
        (["--vary", "widths", "--grid", "1:10:5"], "--samples is required"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--fit-range", "1"], "--fit-range"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--ridge", "abc"], "--ridge must be a decimal number"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--ridge", "1e-999999999"], "out of range"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--ridge", "1e400"], "too large for a float"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--fit-range", "0.01:\u0661"], "ASCII digits"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--quantizers", "sign,sign"], "distinct"),
        (["--vary", "samples", "--grid", "0.01:0.1:5", "--plot", "/nonexistent/dir/f.png"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(capsys, extra, match):
    code, out, err = run(BASE + extra, capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and match in err and err.startswith("rfq scaling: error:")


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["scaling", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "examples:" in out and "--vary" in out and "--fit-range" in out


def test_cli_help_of_every_option():
    import argparse

    from rfq_theory.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["scaling"]
    assert sub.description and "rfq scaling" in sub.epilog
    for action in sub._actions:
        assert action.dest == "help" or (action.help and len(action.help) > 10), action.dest
        if action.dest == "quantizers":
            for form in ("none", "sign", "sign-scaled", "ternary:", "uniform:", "expr:", "rfq list"):
                assert form in action.help, form


def test_cli_default_quantizers_are_the_library_default():
    import argparse

    from rfq_theory.cli import build_parser
    from rfq_theory.scaling_laws import DEFAULT_QUANTIZERS

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["scaling"]
    assert tuple(sub.get_default("quantizers").split(",")) == DEFAULT_QUANTIZERS
