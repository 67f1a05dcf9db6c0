"""Monte Carlo simulator: definition on tiny cases, backends, and agreement with the theory."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rfq_theory import DeepRF, get_activation, predict
from validation.montecarlo.backends import get_backend
from validation.montecarlo.simulate import (
    _Network,
    draw_weights,
    fit_readout,
    network_sizes,
    simulate,
    simulate_trial,
    trial_generators,
)
from validation.montecarlo.tolerance import critical_z, verdict

REFERENCE = Path(__file__).parent / "data" / "reference_predictions.json"


# ---------------------------------------------------------------- definition


def test_draw_weights_is_quantized_gaussian_of_the_weight_stream():
    model = DeepRF(4, (3, 2), "tanh", ("sign", "sign-scaled"))
    Ws = draw_weights(model, seed=5, trial=2)
    rng = trial_generators(5, 2)["weights"]
    W1, W2 = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    np.testing.assert_array_equal(Ws[0], np.sign(W1))
    np.testing.assert_allclose(Ws[1], math.sqrt(2 / math.pi) * np.sign(W2))
    assert [W.shape for W in Ws] == [(3, 4), (2, 3)]
    again = draw_weights(model, seed=5, trial=2)
    other = draw_weights(model, seed=5, trial=3)
    assert all(np.array_equal(a, b) for a, b in zip(Ws, again))
    assert not np.array_equal(Ws[0], other[0])


def test_one_draw_matches_a_hand_written_simulation():
    """Tiny 2-layer net: features, centering, ridge readout, test and train error by hand."""
    d, k1, k2, n, nt, lam, delta = 3, 4, 2, 5, 7, 0.3, 0.25
    model = DeepRF(d, (k1, k2), ("relu", "tanh"), ("sign", "none"))
    seed, trial = 11, 1
    g = trial_generators(seed, trial)
    W1 = np.sign(g["weights"].standard_normal((k1, d)))
    W2 = g["weights"].standard_normal((k2, k1))
    theta = g["theta"].standard_normal(d)
    m1 = math.sqrt(1 / (2 * math.pi))  # E relu(u), u ~ N(0, s^2 q0 = 1)
    m2 = float(model.layers()[1].mu0)  # tanh is odd: 0

    def feats(X):
        z1 = np.maximum(X @ W1.T / math.sqrt(d), 0) - m1
        return np.tanh(z1 @ W2.T / math.sqrt(k1)) - m2

    X = g["train"].standard_normal((n, d))
    y = X @ theta / math.sqrt(d) + math.sqrt(delta) * g["train_noise"].standard_normal(n)
    Z = feats(X)
    w = np.linalg.solve(Z.T @ Z / n + lam * np.eye(k2), Z.T @ y / n)
    Xt = g["test"].standard_normal((nt, d))
    yt = Xt @ theta / math.sqrt(d) + math.sqrt(delta) * g["test_noise"].standard_normal(nt)
    want_test = np.mean((yt - feats(Xt) @ w) ** 2)
    want_train = np.mean((y - Z @ w) ** 2)
    assert m2 == 0.0
    test, train = simulate_trial(model, n, lam, delta, "linear", seed, trial, test_samples=nt, chunk_size=3)
    assert test == pytest.approx(want_test, rel=1e-12)
    assert train == pytest.approx(want_train, rel=1e-12)


def test_features_are_centered_with_the_theoretical_mean():
    model = DeepRF(50, (60, 40), ("relu", "abs"), "sign-scaled")
    ops = get_backend()
    theta = np.zeros(50)
    net = _Network(model, draw_weights(model, 0, 0), theta, "linear", ops)
    X = np.random.default_rng(0).standard_normal((20000, 50))
    Z = net.features(X)
    # uncentered features would have mean mu0 ~ 0.5; centred ones average to 0 up to O(1/sqrt(width))
    assert abs(Z.mean()) < 0.05
    assert model.layers()[1].mu0 > 0.2


def test_nonlinear_target_is_centered():
    model = DeepRF(30, (20,), "tanh")
    net = _Network(model, draw_weights(model, 0, 0), np.ones(30), "relu", get_backend())
    X = np.random.default_rng(1).standard_normal((40000, 30))
    y = net.labels(X, np.zeros(40000))
    assert net.target_mean == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert abs(y.mean()) < 0.02


@pytest.mark.parametrize("n,p", [(6, 3), (3, 6), (5, 5)])
def test_fit_readout_primal_dual_and_min_norm(n, p):
    rng = np.random.default_rng(n * 10 + p)
    Z, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    ops = get_backend()
    for lam in (0.7, 1e-3):
        want = np.linalg.solve(Z.T @ Z / n + lam * np.eye(p), Z.T @ y / n)
        np.testing.assert_allclose(fit_readout(ops, Z, y, lam), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit_readout(ops, Z, y, 0.0), np.linalg.pinv(Z) @ y, rtol=1e-7, atol=1e-9)


def test_min_norm_on_rank_deficient_features():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((8, 2)) @ rng.standard_normal((2, 5))  # rank 2, n=8 > p=5
    y = rng.standard_normal(8)
    np.testing.assert_allclose(fit_readout(get_backend(), Z, y, 0.0), np.linalg.pinv(Z) @ y, atol=1e-8)


def test_test_error_does_not_depend_on_chunk_size():
    model = DeepRF(20, (30,), "erf", "sign")
    a = simulate_trial(model, 25, 1e-2, 0.1, seed=3, trial=0, test_samples=500, chunk_size=7)
    b = simulate_trial(model, 25, 1e-2, 0.1, seed=3, trial=0, test_samples=500, chunk_size=500)
    assert a[0] == pytest.approx(b[0], rel=1e-12) and a[1] == b[1]


def test_simulate_reports_mean_se_and_draws():
    model = DeepRF(20, (30,), "tanh")
    r = simulate(model, 40, 1e-2, 0.1, trials=4, test_samples=300, seed=2)
    assert r.draws == 4 and len(r.train_errors) == 4
    assert r.test_mean == pytest.approx(np.mean(r.test_errors))
    assert r.test_se == pytest.approx(np.std(r.test_errors, ddof=1) / 2)
    assert len(set(r.test_errors)) == 4  # independent draws
    again = simulate(model, 40, 1e-2, 0.1, trials=4, test_samples=300, seed=2)
    assert again.test_errors == r.test_errors
    d = r.as_dict()
    assert d["test_errors"] == list(r.test_errors) and d["draws"] == 4


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(samples=10.5), "samples"),
        (dict(samples=0), "samples"),
        (dict(ridge=-1), "ridge"),
        (dict(noise=float("nan")), "noise"),
        (dict(test_samples=0), "test_samples"),
        (dict(trials=0), "trials"),
        (dict(backend="jax"), "backend"),
        (dict(dtype="float16"), "dtype"),
        (dict(seed=-1), "seed"),
    ],
)
def test_invalid_inputs_name_the_parameter(kwargs, word):
    model = DeepRF(10, (12,), "tanh")
    args = dict(samples=20, ridge=0.1, noise=0.1, trials=2, test_samples=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        simulate(model, **args)


def test_fractional_sizes_are_rejected():
    with pytest.raises(ValueError, match="widths"):
        network_sizes(DeepRF(10, (12.5,), "tanh"))


# ---------------------------------------------------------------- backends


@pytest.mark.slow  # imports torch; the NumPy backend simulations stay in the fast subset
def test_torch_backend_agrees_with_numpy():
    pytest.importorskip("torch")
    model = DeepRF(30, (40, 25), ("gelu", "leaky_relu:0.1"), ("sign", "ternary:0.5"))
    for lam in (1e-2, 0.0):
        a = simulate(model, 50, lam, 0.1, "tanh", trials=2, test_samples=200, seed=4, backend="numpy")
        b = simulate(model, 50, lam, 0.1, "tanh", trials=2, test_samples=200, seed=4, backend="torch")
        np.testing.assert_allclose(a.test_errors, b.test_errors, rtol=1e-8)
        np.testing.assert_allclose(a.train_errors, b.train_errors, rtol=1e-6, atol=1e-12)
    c = simulate(model, 50, 1e-2, 0.1, trials=2, test_samples=200, seed=4, backend="torch", dtype="float32")
    a = simulate(model, 50, 1e-2, 0.1, trials=2, test_samples=200, seed=4)
    np.testing.assert_allclose(c.test_errors, a.test_errors, rtol=1e-3)


def test_cuda_backend_agrees_with_numpy():
    """Same seeds -> same networks on the GPU (runs where CUDA is present)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = DeepRF(60, (80, 50), ("tanh", "relu"), "sign")
    for lam in (1e-2, 0.0):
        a = simulate(model, 70, lam, 0.1, trials=2, test_samples=300, seed=3, backend="numpy")
        b = simulate(model, 70, lam, 0.1, trials=2, test_samples=300, seed=3, backend="torch", device="cuda")
        np.testing.assert_allclose(a.test_errors, b.test_errors, rtol=1e-7)


def test_torch_activation_mapping_matches_numpy():
    pytest.importorskip("torch")
    ops = get_backend("torch")
    u = np.linspace(-4, 4, 41)
    for spec in (
        "tanh",
        "relu",
        "erf",
        "sign",
        "abs",
        "gelu",
        "silu",
        "sigmoid",
        "sin",
        "cos",
        "cubic",
        "leaky_relu:0.2",
        "Heaviside(u)",
        "max(u, 0) - 0.3*min(u, 1)",
        "sqrt(abs(u)) + exp(-u**2)",
    ):
        got = ops.to_numpy(ops.activation(spec)(ops.asarray(u)))
        np.testing.assert_allclose(got, get_activation(spec).numpy(u), atol=1e-12, err_msg=spec)


# ---------------------------------------------------------------- vs theory

MC_CASES = [
    # (d, widths, activations, quantizers, n, ridge, noise, target)
    (200, (400,), "tanh", "none", 300, 1e-2, 0.1, "linear"),  # depth 1
    (200, (300, 250), ("relu", "erf"), "sign", 400, 1e-2, 0.2, "linear"),  # depth 2, one-bit
    (150, (200, 200, 200), "tanh", "sign-scaled", 300, 1e-2, 0.05, "tanh"),  # depth 3, nonlinear target
    (240, (80, 300), ("tanh", "relu"), "ternary:0.5", 300, 1e-2, 0.1, "linear"),  # bottleneck
    (200, (300,), "erf", "sign", 500, 1e-6, 0.1, "linear"),  # near-ridgeless
    (200, (400,), "relu", "uniform:2", 250, 0.0, 0.1, "linear"),  # ridgeless, overparam.
    (200, (300, 200), ("gelu", "tanh"), "none", 300, 1e-1, 0.1, "relu"),  # nonlinear target, big ridge
]


@pytest.mark.slow
@pytest.mark.parametrize("case", MC_CASES, ids=lambda c: f"{c[1]}-{c[3]}-n{c[4]}-l{c[5]}-{c[7]}")
def test_monte_carlo_matches_theory(case):
    d, widths, acts, quants, n, lam, noise, target = case
    model = DeepRF(d, widths, acts, quants)
    th = float(predict(model, n, lam, noise, target).test_error)
    mc = simulate(model, n, lam, noise, target, trials=8, test_samples=1500, seed=123)
    v = verdict(mc.test_mean, mc.test_se, th, mc.draws, (d,) + tuple(widths) + (n,))
    assert v["status"] == "pass", (th, mc.test_mean, mc.test_se, v)


def _reference_cases():
    data = json.loads(REFERENCE.read_text())
    # two cheap cases: a ReLU net narrower than d, and a sign-scaled tanh net
    return [c for c in data["cases"] if c["widths"] == [250] or c["quantizers"] == ["sign-scaled"]][:2]


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_reference_monte_carlo_means(index):
    cases = _reference_cases()
    assert len(cases) > index, "tests/data/reference_predictions.json lacks the two cheap cases"
    c = cases[index]
    model = DeepRF(c["input_dim"], c["widths"], c["activations"], c["quantizers"])
    mc = simulate(
        model, c["samples"], float(c["ridge"]), float(c["noise"]), c["target"], trials=6, test_samples=2000, seed=2026
    )
    ref = c["monte_carlo"]
    se = math.hypot(ref["standard_error"], mc.test_se)
    assert abs(mc.test_mean - ref["test_error_mean"]) <= critical_z(mc.draws) * se, (mc.test_mean, ref)
