"""What a theorist sees in a notebook: short reprs, columnar curves, the digits asked, one meaning per axis.

Numbers are checked against independent routes: a curve's columns against
cold, one-point ``predict`` solves; the 30 digits shown against a solve at
40 digits; the ratio axis against the absolute one and against ``rfq curve``;
a custom quantizer's moments against Gaussian moments in closed form.
"""

from __future__ import annotations

import csv
import json
import math
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from rfq_theory import (
    DeepRF,
    InputError,
    Quantizer,
    one_bit_theorem,
    optimal_ridge,
    optimal_ridge_batch,
    phase_map,
    predict,
    predict_glm,
    solve_batch,
    spectrum,
    sweep,
)
from rfq_theory.cli import main
from rfq_theory.results import Curve
from rfq_theory.spectra import density_at

MODEL = DeepRF(input_dim=100, widths=(200,), activations=("tanh",))
DEEP = DeepRF(input_dim=100, widths=(200, 150), activations=("tanh", "relu"))
REPR_LIMIT = 600


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------ 1. short reprs


def _results():
    yield "Prediction", predict(DEEP, 150, 0.01)
    yield "Prediction (30 digits)", predict(DEEP, 150, "0.01", digits=30)
    yield "GLMPrediction", predict_glm(MODEL, 150, 0.1)
    spec = spectrum(DEEP, samples=150)
    yield "Spectrum", spec
    yield "LayerSpectrum", spec.layers[0]
    yield "PhaseMap", phase_map(MODEL, "samples:0.5:2:4", "width:0.5:2:3", ridge=0.01)
    yield "BatchResult", solve_batch(MODEL, np.linspace(50, 300, 40), 0.01)
    yield "OptimalRidgeResult", optimal_ridge_batch(MODEL, np.array([80.0, 150.0]))
    yield "OptimalRidge", optimal_ridge(MODEL, 150)
    yield "TheoremResult", one_bit_theorem(DEEP, 150, 0.01)
    yield "Curve", sweep(MODEL, "samples", np.linspace(20, 300, 60), ridge=0.01)


def test_every_result_repr_is_short_and_names_its_headline():
    for label, result in _results():
        text = repr(result)
        assert len(text) < REPR_LIMIT, (label, len(text), text)
        assert str(result) == text, label
        assert text.count("\n") <= 16, label
        assert type(result).__name__ in text.splitlines()[0], label
        assert "diagnostics" in text, label


def test_arrays_are_summarised_by_shape_min_max():
    batch = solve_batch(MODEL, np.linspace(50, 300, 40), 0.01)
    line = next(ln for ln in repr(batch).splitlines() if ln.strip().startswith("test_error"))
    assert "shape=(40,)" in line
    lo = float(line.split("min=")[1].split(",")[0])
    hi = float(line.split("max=")[1].split(")")[0])
    # the two ends of the curve, solved one at a time
    ends = [float(predict(MODEL, n, 0.01).test_error) for n in (50.0, 300.0)]
    assert lo == pytest.approx(min(ends), rel=1e-5) and hi == pytest.approx(max(ends), rel=1e-5)


# ------------------------------------------------------------ 3. the digits asked


def test_prediction_str_shows_the_thirty_digits_asked():
    p30 = predict(DEEP, 150, "0.01", digits=30)
    p40 = predict(DEEP, 150, "0.01", digits=40)
    line = next(ln for ln in str(p30).splitlines() if ln.strip().startswith("test_error"))
    shown = line.split("=")[1].strip()
    assert len(shown.replace("0.", "", 1).lstrip("0").replace(".", "")) == 30
    # the 30 digits agree with an independent solve at 40 digits
    with mpmath.workdps(50):
        assert abs(mpmath.mpf(shown) - mpmath.mpf(p40.test_error)) <= mpmath.mpf(10) ** -29 * abs(p40.test_error)


def test_density_at_shows_the_digits_asked():
    d30 = density_at(MODEL, "0.3", digits=30)
    d40 = density_at(MODEL, "0.3", digits=40)
    digits = str(d30).replace("0.", "", 1).lstrip("0").replace(".", "")
    assert 28 <= len(digits) <= 30  # str() strips trailing zeros, never shows more than asked
    with mpmath.workdps(50):
        assert abs(mpmath.mpf(d30) - mpmath.mpf(d40)) <= mpmath.mpf(10) ** -29 * abs(d40)


# ------------------------------------------------------------ 2. columnar curves


def test_curve_is_a_sequence_with_columns_matching_cold_solves():
    grid = [80.0, 150.0, 250.0]
    c = sweep(DEEP, "samples", grid, ridge=0.01)
    assert isinstance(c, Curve) and len(c) == 3
    assert [p.samples for p in c] == [p.samples for p in list(c)]
    assert c[-1] is c[2] and len(c[0:2]) == 2
    cold = [predict(DEEP, n, 0.01) for n in grid]
    for name in ("test_error", "train_error", "df1", "df2", "effective_ridge"):
        col = getattr(c, name)
        assert isinstance(col, np.ndarray) and col.dtype == float and col.shape == (3,)
        np.testing.assert_allclose(col, [float(getattr(p, name)) for p in cold], rtol=1e-9)
    np.testing.assert_allclose(c.kappa0, [float(p.effective_ridges[0]) for p in cold], rtol=1e-9)
    assert c.effective_ridges.shape == (3, 3)
    np.testing.assert_allclose(c.effective_ridges[:, -1], c.effective_ridge)
    assert c.converged.dtype == bool and c.converged.all()
    assert list(c.status) == ["ok"] * 3
    assert c.axis == "samples" and np.array_equal(c.values, grid)


def test_curve_pickles_and_compares_with_its_list():
    import pickle

    c = sweep(MODEL, "samples", [80.0, 150.0], ridge=0.01)
    back = pickle.loads(pickle.dumps(c))
    assert isinstance(back, Curve) and back.axis == "samples"
    np.testing.assert_array_equal(back.test_error, c.test_error)
    assert c == list(c) and back == c


def test_curve_to_pandas_and_its_missing_dependency(monkeypatch):
    c = sweep(MODEL, "ridge", [1e-3, 1e-1], samples=150)
    pd = pytest.importorskip("pandas")
    df = c.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert {"ridge", "test_error", "train_error", "kappa0", "kappa_0", "kappa_1", "converged", "status"} <= set(
        df.columns
    )
    np.testing.assert_allclose(df["test_error"], [float(predict(MODEL, 150, r).test_error) for r in (1e-3, 1e-1)])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        c.to_pandas()


def test_failed_points_are_nan_in_the_columns():
    c = sweep(MODEL, "samples", [50.0, 200.0], ridge=0)  # n = 200 = k_L: the interpolation threshold
    assert math.isinf(c.test_error[1]) or math.isnan(c.test_error[1])
    assert math.isfinite(c.test_error[0])


def test_spectra_expose_arrays():
    from test_spectrum import mp_density

    s = spectrum(MODEL).layers[0]
    assert isinstance(s.x, np.ndarray) and s.x.dtype == float
    assert isinstance(s.density, np.ndarray) and s.density.shape == s.x.shape
    # the arrays of a linear layer are the Marchenko-Pastur law, float and 20-digit ones alike
    linear = DeepRF(200, (300,), ("linear",))
    lo = spectrum(linear, points=40).layers[0]
    np.testing.assert_allclose(lo.density, mp_density(lo.x, 1.5), rtol=1e-9, atol=1e-12)
    hi = spectrum(linear, points=5, digits=20).layers[0]
    assert isinstance(hi.density, np.ndarray) and hi.density.dtype == object
    x = np.array([float(v) for v in hi.x])
    np.testing.assert_allclose([float(v) for v in hi.density], mp_density(x, 1.5), rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------ 4. one meaning per axis


def test_ratio_axis_is_the_cli_meaning(tmp_path, capsys):
    d = 100
    ratios = [1.5, 2.5]
    by_ratio = sweep(MODEL, "width", ratios, samples=150, ridge=0.01, ratio=True)
    absolute = sweep(MODEL, "width", [g * d for g in ratios], samples=150, ridge=0.01)
    np.testing.assert_array_equal(by_ratio.test_error, absolute.test_error)
    np.testing.assert_array_equal(by_ratio.applied, [150.0, 250.0])
    np.testing.assert_array_equal(by_ratio.values, ratios)
    out = tmp_path / "w.csv"
    argv = ["curve", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--vary", "width"]
    argv += ["--samples", "150", "--ridge", "0.01", "--grid", "1.5,2.5", "--quantizers", "none", "--out", str(out)]
    code, _, _ = run(argv, capsys)
    assert code == 0
    rows = list(csv.DictReader(open(out)))
    np.testing.assert_allclose([float(r["test_error"]) for r in rows], by_ratio.test_error, rtol=1e-12)
    # widths and ridge read the same either way
    a = sweep(MODEL, "ridge", [0.1], samples=150, ratio=True)
    b = sweep(MODEL, "ridge", [0.1], samples=150)
    assert a.test_error[0] == b.test_error[0]


def test_api_errors_name_parameters_not_flags():
    with pytest.raises(InputError) as err:
        phase_map(MODEL, "bogus:1:2:3", "width:0.5:2:3")
    assert "--" not in str(err.value) and str(err.value).startswith("x")
    with pytest.raises(InputError) as err:
        sweep(MODEL, "depth", [1, 2], samples=100)
    msg = str(err.value)
    assert "--" not in msg and "k_L = value" in msg
    with pytest.raises(InputError) as err:
        predict_glm(MODEL, 150, 0.1, target="relu")
    assert "--" not in str(err.value)


# ------------------------------------------------------------ 5. custom quantizers


@pytest.mark.parametrize(
    "symbol",
    [
        sp.Symbol("g"),
        sp.Symbol("u"),
        sp.Symbol("g", real=True),
        sp.Symbol("u", real=True),
        sp.Symbol("z", complex=True),
    ],
)
def test_custom_quantizer_in_any_symbol(symbol):
    cube = Quantizer.custom("cube", symbol**3)
    assert float(cube.second_moment(20)) == pytest.approx(15.0, rel=1e-15)  # E g^6 = 15
    assert float(cube.mean(20)) == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_array_equal(cube.apply(np.array([-2.0, 0.5])), [-8.0, 0.125])
    sign = Quantizer.custom("sgn", sp.sign(symbol))
    assert float(sign.second_moment(15)) == pytest.approx(1.0, rel=1e-12)
    clip = Quantizer.custom("clip", sp.Min(sp.Abs(symbol), 1))
    # E min(|g|, 1)^2 = P(|g| > 1) + E[g^2; |g| < 1] = (1 - P) + (P - 2 phi(1)) = 1 - 2 phi(1)
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    p_in = math.erf(1 / math.sqrt(2))
    assert float(clip.second_moment(15)) == pytest.approx((1 - p_in) + (p_in - 2 * phi1), rel=1e-10)


def test_custom_quantizer_refuses_two_symbols():
    with pytest.raises(TypeError, match="one variable"):
        Quantizer.custom("two", sp.Symbol("a") * sp.Symbol("b"))


# ------------------------------------------------------------ 6. the command line

BASE = ["--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples", "150", "--ridge", "0.01"]


def test_theorem_compares_the_quantizers_given(capsys):
    code, out, _ = run(["theorem", *BASE, "--quantizers", "ternary:0.5"], capsys)
    assert code == 0
    row = next(ln for ln in out.splitlines() if ln.strip().startswith("ternary:0.5"))
    ternary = predict(MODEL.with_quantizers("ternary:0.5"), 150, 0.01)
    full = predict(MODEL, 150, 0.01)
    test_error, diff = (float(v) for v in row.split()[1:3])
    assert test_error == pytest.approx(float(ternary.test_error), rel=1e-13)
    assert diff == pytest.approx(float(ternary.test_error - full.test_error), rel=1e-12)


def test_convex_loss_theorem_compares_the_quantizers_given(capsys):
    glm = ["--ridge", "0.1", "--labels", "sign", "--loss", "logistic", "--quantizers", "ternary:0.5", "--json"]
    code, out, _ = run(["theorem", *BASE[:8], *glm], capsys)
    assert code == 0
    res = json.loads(out)
    ternary = predict_glm(MODEL.with_quantizers("ternary:0.5"), 150, 0.1)
    assert float(res["given"]["test_error"]) == pytest.approx(float(ternary.test_error), rel=1e-12)
    assert res["quantizers"] == ["ternary:0.5"] and res["input_dim"] == "100"


def test_theorem_json_has_the_model_keys_of_predict(capsys):
    _, out_p, _ = run(["predict", *BASE, "--json"], capsys)
    code, out_t, _ = run(["theorem", *BASE, "--quantizers", "ternary:0.5", "--json"], capsys)
    assert code == 0
    pred, theo = json.loads(out_p), json.loads(out_t)
    for key in ("input_dim", "widths", "activations", "samples", "ridge", "noise", "target", "digits", "path"):
        assert theo[key] == pred[key], key
    assert theo["quantizers"] == ["ternary:0.5"]
    assert theo["given"]["test_error"] != theo["full_precision"]["test_error"]


@pytest.mark.parametrize(
    "argv, word",
    [
        (["curve", *BASE[:6], "--vary", "samples", "--samples", "100", "--grid", "1,2", "--out", "X"], "--samples"),
        (["curve", *BASE[:6], "--vary", "ridge", "--samples", "100", "--ridge", "1", "--out", "X"], "--ridge"),
        (
            ["phase", *BASE[:6], "--x", "ridge:0.1:1:3", "--y", "samples:1:2:3", "--ridge", "1", "--out", "X.npz"],
            "--ridge",
        ),
        (["predict", *BASE, "--optimal-ridge"], "--ridge"),
    ],
)
def test_conflicting_options_are_refused(argv, word, capsys, tmp_path):
    argv = [str(tmp_path / a) if a in ("X", "X.npz") else a for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and word in err
    assert "conflicts with" in err or "not both" in err


@pytest.mark.parametrize("command", ["predict", "theorem", "curve"])
def test_even_activation_is_noted(command, capsys, tmp_path):
    argv = [command, "--input-dim", "100", "--widths", "200", "--activations", "u*tanh(u)", "--samples", "150"]
    if command == "curve":
        argv += ["--vary", "ridge", "--grid", "0.1", "--out", str(tmp_path / "c.csv")]
    code, _, err = run(argv, capsys)
    assert code == 0
    notes = [ln for ln in err.splitlines() if "forgets its input" in ln]
    assert len(notes) == 1 and "mu1 = 0" in notes[0]
    # an odd activation gets no such note
    code, _, err = run([a.replace("u*tanh(u)", "tanh") for a in argv], capsys)
    assert "forgets" not in err


def test_no_progress_bar_in_logs(capsys, tmp_path):
    argv = ["curve", *BASE[:6], "--vary", "samples", "--grid", "0.5:3:60", "--out", str(tmp_path / "c.csv")]
    code, _, err = run(argv, capsys)
    assert code == 0 and "\r" not in err
