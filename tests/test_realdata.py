"""Real data sets as the structured-input model (validation.realdata) and ``rfq data``."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory.checks import InputError
from rfq_theory.cli import main
from validation.realdata import covariance_spectrum, estimate_structure, load_dataset


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _planted(rng, N, lam, beta, a=2.0, delta_raw=0.5, scale=3.0, shift=5.0):
    """Gaussian rows with covariance scale^2 U diag(lam) U^T, labels shift + a g + noise (Var g = 1)."""
    d = lam.size
    U = _rotation(rng, d)
    z = rng.standard_normal((N, d))
    x_eig = z * np.sqrt(lam)  # coordinates in the eigenbasis
    g = x_eig @ beta / math.sqrt(d)
    y = shift + a * g + math.sqrt(delta_raw) * rng.standard_normal(N)
    X = scale * (x_eig @ U.T) + rng.standard_normal(d)  # an arbitrary mean
    return X, y


def _planted_profile(d):
    lam = 1.6 ** -np.arange(d)  # well separated: sample eigenvectors mix by ~ 1 / (sqrt(N) gap)
    lam *= d / lam.sum()  # mean eigenvalue 1
    beta = np.cos(np.arange(d)) + 0.3
    beta *= math.sqrt(d / np.sum(beta**2 * lam))  # (1/d) sum beta^2 lambda = 1
    return lam, beta


def test_estimation_recovers_a_planted_spectrum_teacher_and_noise():
    rng = np.random.default_rng(1)
    d = 8
    lam, beta = _planted_profile(d)
    X, y = _planted(rng, 200_000, lam, beta, a=2.0, delta_raw=0.5, scale=3.0)
    fit = estimate_structure(X, y)
    # eigenvalues: sample covariance of 2e5 rows, relative error ~ sqrt(2/N) per eigenvalue
    assert np.allclose(fit.eigenvalues, lam, rtol=0.015)
    assert fit.input_scale == pytest.approx(3.0, rel=0.01)
    assert fit.signal_sd == pytest.approx(2.0, rel=0.01)
    assert fit.noise == pytest.approx(0.5 / 4.0, abs=0.005)
    assert np.allclose(fit.beta2, beta**2, atol=0.05)
    # the theory's normalisation Var g = (1/d) sum beta^2 lambda = 1
    assert np.sum(fit.beta2 * fit.eigenvalues) / d == pytest.approx(1.0, abs=1e-12)
    assert np.mean(fit.eigenvalues) == pytest.approx(1.0, abs=1e-12)
    # the learning curve of the fitted model is that of the planted one
    from rfq_theory import DeepRF
    from rfq_theory.batch import solve_batch

    planted = DeepRF(d, (40,), ("tanh",), ("sign",), input_spectrum=lam, teacher=beta**2)
    ns = np.array([5.0, 20.0, 80.0])
    a_curve = solve_batch(fit.model((40,), ("tanh",), "sign"), ns, 0.01, fit.noise, "linear").test_error
    b_curve = solve_batch(planted, ns, 0.01, fit.noise, "linear").test_error  # same noise: spectrum, teacher
    assert np.allclose(a_curve, b_curve, rtol=0.01)


def test_estimation_agrees_with_least_squares_on_the_finite_data():
    # independent route on the same rows: numpy's least squares with an intercept
    rng = np.random.default_rng(2)
    N, d = 400, 7
    X = rng.standard_normal((N, d)) @ rng.standard_normal((d, d)) + 4.0
    X = np.column_stack([X, np.full(N, 2.5)])  # a constant column: a zero eigenvalue
    y = np.tanh(X[:, 0]) + X[:, 1] ** 2 + 0.3 * rng.standard_normal(N)
    fit = estimate_structure(X, y)
    A = np.column_stack([np.ones(N), X[:, :d]])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    pred = A @ coef
    resid, signal = np.var(y - pred), np.var(pred)
    assert fit.noise == pytest.approx(resid / signal, rel=1e-9)
    assert fit.signal_sd == pytest.approx(math.sqrt(signal), rel=1e-9)
    assert fit.zero_eigenvalues == 1 and fit.eigenvalues[-1] == 0.0 and fit.beta2[-1] == 0.0
    # g = X direction reproduces the fitted signal in the theory's units, y = g + r with r uncorrelated
    g = fit.X @ fit.direction
    assert np.allclose(g, (pred - pred.mean()) / math.sqrt(signal), atol=1e-9)
    assert abs(np.mean((fit.y - g) * g)) < 1e-9
    assert np.trace(fit.X.T @ fit.X / N) / (d + 1) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.01, 100.0),
    label_scale=st.floats(0.1, 10.0) | st.floats(-10.0, -0.1),
    shift=st.floats(-50.0, 50.0),
)
def test_estimation_ignores_affine_changes_of_units(scale, label_scale, shift):
    # units of x and y are not part of the model: the spectrum, profile and noise stay put
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    y = X[:, 0] - X[:, 3] + np.sin(3 * X[:, 1])
    a, b = estimate_structure(X, y), estimate_structure(scale * X - 1.0, label_scale * y + shift)
    assert np.allclose(a.eigenvalues, b.eigenvalues, rtol=1e-8)
    assert np.allclose(a.beta2, b.beta2, rtol=1e-6, atol=1e-10)
    assert a.noise == pytest.approx(b.noise, rel=1e-8)
    assert np.allclose(a.y, np.sign(label_scale) * b.y, atol=1e-8)


def test_gaussian_surrogate_has_the_fitted_covariance_and_teacher():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    y = X[:, 0] + 0.5 * rng.standard_normal(500)
    fit = estimate_structure(X, y)
    x, ys = fit.gaussian_surrogate(np.random.default_rng(5), 200_000)
    lam, _ = covariance_spectrum(x - x.mean(0))
    assert np.allclose(lam, fit.eigenvalues, rtol=0.02)
    g = x @ fit.direction
    assert np.var(g) == pytest.approx(1.0, rel=0.02)
    assert np.var(ys - g) == pytest.approx(fit.noise, rel=0.02)


def test_estimation_refuses_bad_arrays():
    with pytest.raises(InputError, match="2-d"):
        estimate_structure(np.zeros(50), np.zeros(50))
    with pytest.raises(InputError, match="one label per row"):
        estimate_structure(np.zeros((50, 3)), np.zeros(49))
    with pytest.raises(InputError, match="no variance"):
        estimate_structure(np.ones((50, 3)), np.arange(50.0))
    with pytest.raises(InputError, match="finite"):
        estimate_structure(np.full((50, 3), np.nan), np.arange(50.0))
    with pytest.raises(InputError, match="dataset must be"):
        load_dataset("mnist")


# ------------------------------------------------------------------ rfq data


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _synthetic_npz(path, N=2400, d=40, seed=6):
    rng = np.random.default_rng(seed)
    lam = np.linspace(1.8, 0.2, d)  # mean 1, far from the heavy regime
    beta = 1.0 + 0.5 * np.cos(np.arange(d))
    beta *= math.sqrt(d / np.sum(beta**2 * lam))
    X, y = _planted(rng, N, lam, beta, a=1.5, delta_raw=0.45, scale=2.0, shift=1.0)
    np.savez(path, X=X, y=y)
    return lam, beta


@pytest.mark.slow
def test_synthetic_gaussian_data_follow_the_theory(tmp_path, capsys):
    # Gaussian rows with a planted covariance and linear teacher: the real-data arm is the theory's
    # own model, so the measured learning curve must agree with the prediction: within 3 standard
    # errors plus the project's finite-size allowance 2 |theory| / min(d, k, n) (the theory is the
    # proportional limit; at d = 60 the mean error of a finite network lies about 2% above it)
    path = tmp_path / "planted.npz"
    _synthetic_npz(path, N=8000, d=60)
    argv = [
        "data",
        "--dataset",
        f"file:{path}",
        "--widths",
        "300",
        "--activations",
        "tanh",
        "--grid",
        "150,600",
        "--draws",
        "10",
        "--surrogate-test",
        "0",
        "--ridge",
        "0.1",
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        "--json",
    ]
    code, out, err = _run(argv, capsys)
    report = json.loads(out)
    rows = report["rows"]
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"none", "sign"}
    for r in rows:
        allowance = 2 * abs(r["theory_test"]) / min(60, 300, r["samples"])
        assert r["allowance"] == pytest.approx(allowance)
        assert abs(r["mc_test"] - r["theory_test"]) <= 3 * r["mc_test_se"] + allowance, r
        assert abs(r["linear_test"] - r["theory_test"]) <= 3 * r["linear_test_se"] + allowance, r
        assert abs(r["relative_deviation"]) < 0.05
    assert code == 0 and report["summary"]["verdict"] == "pass"
    assert report["data"]["noise"] == pytest.approx(0.45 / 1.5**2, rel=0.1)
    # resume reuses every draw and reproduces the rows
    code2, out2, _ = _run(argv + ["--resume"], capsys)
    again = json.loads(out2)
    assert again["execution"]["draws_run"] == 0
    assert [r["mc_test"] for r in again["rows"]] == [r["mc_test"] for r in rows]


def test_table_csv_and_plot_outputs(tmp_path, capsys):
    path = tmp_path / "planted.npz"
    _synthetic_npz(path, N=600, d=12)
    csv_path, png = tmp_path / "t.csv", tmp_path / "c.png"
    code, out, err = _run(
        [
            "data",
            "--dataset",
            f"file:{path}",
            "--widths",
            "60",
            "--grid",
            "50,200",
            "--draws",
            "3",
            "--surrogate-test",
            "200",
            "--csv",
            str(csv_path),
            "--plot",
            str(png),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 1  # 3 draws: inconclusive, never a pass
    assert "theory none" in out and "measured sign" in out and "surrogate" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("variant,samples") and len(lines) == 5
    assert png.stat().st_size > 1000
    assert (tmp_path / "o" / "results.jsonl").exists()


def test_digits_structure_against_numpy_on_the_raw_pixels(tmp_path, capsys):
    """The digits run's spectrum, noise and counts, recomputed here from scikit-learn's raw arrays with
    NumPy: covariance eigenvalues over their mean, the least-squares residual of the +-1 parity labels."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    code, out, err = _run(
        [
            "data",
            "--dataset",
            "digits",
            "--target",
            "parity",
            "--widths",
            "40",
            "--grid",
            "60,200",
            "--draws",
            "2",
            "--surrogate-test",
            "100",
            "--no-plot",
            "--out",
            str(tmp_path / "d"),
            "--no-progress",
            "--json",
        ],
        capsys,
    )
    report = json.loads(out)
    assert code == 1 and report["summary"]["verdict"] == "inconclusive"  # 2 draws: no verdict
    digits = load_digits()
    X = digits.data - digits.data.mean(axis=0)
    y = np.where(digits.target % 2 == 0, 1.0, -1.0)
    y = y - y.mean()
    lam = np.sort(np.linalg.eigvalsh(X.T @ X))[::-1]
    lam = np.clip(lam / lam.mean(), 0, None)
    data = report["data"]
    assert (data["rows"], data["dim"]) == (1797, 64)
    assert data["zero_eigenvalues"] == int(np.sum(digits.data.std(axis=0) == 0))  # constant border pixels
    assert np.allclose(data["eigenvalues"], lam, rtol=1e-8, atol=1e-10)
    assert data["participation_ratio"] == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    signal, residual = X @ b, y - X @ b
    assert data["noise"] == pytest.approx(residual.var() / signal.var(), rel=1e-8)
    assert data["explained"] == pytest.approx(signal.var() / y.var(), rel=1e-8)
    assert [r["test_rows"] for r in report["rows"]] == [1797 - r["samples"] for r in report["rows"]]
    assert all(math.isfinite(r["mc_test"]) for r in report["rows"])


def test_digits_without_scikit_learn_names_the_extra(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    code, out, err = _run(["data", "--dataset", "digits", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "[sklearn]" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--dataset", "mnist"], "dataset must be"),
        (["--dataset", "file:/nonexistent/x.npz"], "does not exist"),
        (["--target", "lt5"], "target applies to the digits"),
        (["--grid", "50,595"], "fewer than 10"),
        (["--draws", "1"], "draws"),
        (["--widths", "0"], "widths[0]"),
        (["--ridge", "-1"], "ridge"),
        (["--grid", "1.5"], "whole numbers"),
        (["--quantizers", "none,bogus"], "bogus"),
        (["--draws", "nan"], "draws"),
        (["--grid", "1e999"], "grid"),
        (["--seed", "-1"], "seed"),
        (["--surrogate-test", "-5"], "surrogate_test"),
        (["--plot", "/nonexistent/dir/f.png"], "--plot: folder"),
        (["--csv", "/nonexistent/dir/t.csv"], "--csv: folder"),
        (["--activations", "tanh,relu"], "one per layer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, words):
    path = tmp_path / "p.npz"
    _synthetic_npz(path, N=600, d=8)
    argv = ["data", "--dataset", f"file:{path}", "--widths", "20", "--grid", "50", "--draws", "2"]
    argv += ["--out", str(tmp_path / "o"), "--no-progress"] + extra
    code, out, err = _run(argv, capsys)
    assert code == 2, (out, err)
    assert words in err and len(err.strip().splitlines()) == 1


def test_file_without_labels_is_refused(tmp_path, capsys):
    path = tmp_path / "nolabels.npz"
    np.savez(path, X=np.zeros((30, 3)))
    code, out, err = _run(["data", "--dataset", f"file:{path}", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "lacks the array(s) y" in err


def test_draws_are_paired_reproducible_and_picklable(tmp_path):
    import pickle

    from validation.montecarlo.realdata_check import RealDataConfig, RealDataExperiment
    from validation.montecarlo.simulate import draw_weights

    path = tmp_path / "p.npz"
    _synthetic_npz(path, N=300, d=6)
    exp = RealDataExperiment(
        RealDataConfig(dataset=f"file:{path}", widths=(30,), grid=(40, 100), trials=2, surrogate_test=50)
    )
    # full precision sees W, the one-bit network sign(W) of the same draw
    (w_none,), (w_sign,) = (draw_weights(exp.models[v], 0, 1) for v in ("none", "sign"))
    assert np.array_equal(np.sign(w_none), w_sign)
    task = exp.task("sign@n=40", 1)
    first = task.run()
    again = pickle.loads(pickle.dumps(task)).run()
    assert first == again and set(first) >= {"test_error", "linear_test", "surrogate_test"}
    # ridge 0 is the minimum-norm interpolator: zero training error below the width
    exp0 = RealDataExperiment(
        RealDataConfig(dataset=f"file:{path}", widths=(60,), grid=(40,), trials=2, ridge=0, surrogate_test=50)
    )
    res = exp0.task("none@n=40", 0).run()
    assert res["train_error"] < 1e-16 and res["linear_train"] < 1e-16 and res["surrogate_train"] < 1e-16


def test_errors_are_in_units_of_the_signal_variance(tmp_path):
    # an overwhelming ridge leaves the readout at 0: the test error is the labels' second moment on
    # the held-out rows, about Var y~ = 1 + Delta, and the theory gives 1 + Delta in that limit
    from validation.montecarlo.realdata_check import RealDataConfig, RealDataExperiment

    path = tmp_path / "p.npz"
    _synthetic_npz(path, N=3000, d=10)
    exp = RealDataExperiment(
        RealDataConfig(dataset=f"file:{path}", widths=(50,), grid=(100,), trials=2, ridge=1e8, surrogate_test=4000)
    )
    fit = exp.fit
    res = exp.task("none@n=100", 0).run()
    assert res["test_error"] == pytest.approx(1 + fit.noise, rel=0.08)
    assert res["surrogate_test"] == pytest.approx(1 + fit.noise, rel=0.08)
    assert exp.theory("none")[100][0] == pytest.approx(1 + fit.noise, rel=1e-4)


def test_a_run_that_does_not_fit_in_memory_is_refused(tmp_path, capsys, monkeypatch):
    import validation.montecarlo.simulate as simulate

    path = tmp_path / "p.npz"
    _synthetic_npz(path, N=600, d=8)
    monkeypatch.setattr(simulate, "available_memory", lambda: 10**6)
    code, out, err = _run(
        ["data", "--dataset", f"file:{path}", "--widths", "100", "--grid", "50", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "GiB of memory" in err and not (tmp_path / "o" / "results.jsonl").exists()
