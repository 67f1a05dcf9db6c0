"""Multi-layer fixed-point solver: reference values, closed forms, limits, invariants."""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rfq_theory import DeepRF, InputError, predict

# ---------------------------------------------------------------- reference


def test_reference_theory_values_30_digits(reference):
    for case in reference["cases"]:
        model = DeepRF(case["input_dim"], case["widths"], case["activations"], case["quantizers"])
        pred = predict(model, case["samples"], case["ridge"], case["noise"], case["target"], digits=30)
        with mpmath.workdps(40):
            for field, got in (("test_error", pred.test_error), ("effective_ridge", pred.effective_ridge)):
                want = mpmath.mpf(case["theory"][field])
                assert abs(got - want) <= mpmath.mpf(10) ** -27 * abs(want), (case, field)
            want = mpmath.mpf(case["theory"]["train_error"])
            if want > mpmath.mpf(10) ** -40:
                assert abs(pred.train_error - want) <= mpmath.mpf(10) ** -27 * want
            else:  # ridgeless, overparameterized: interpolates the training set
                assert pred.train_error == 0


def test_reference_monte_carlo_within_error_bars(reference):
    for case in reference["cases"]:
        model = DeepRF(case["input_dim"], case["widths"], case["activations"], case["quantizers"])
        pred = predict(model, case["samples"], case["ridge"], case["noise"], case["target"])
        mc = case["monte_carlo"]
        assert abs(mc["test_error_mean"] - pred.test_error) < 3.5 * mc["standard_error"], case


# ---------------------------------------------------- single linear layer


def _marchenko_pastur_route(d, k, n, lam, noise):
    """Ridge on z = F x (F = W / sqrt d, k x d), linear target, from the MP law alone.

    With A = F^T F = (k/d) B and B = W^T W / k Marchenko-Pastur of ratio g = d/k,
    m_B(z) solves g z m^2 - (1 - g - z) m + 1 = 0;
    df1(kap) = d - kap (d/c) m_B(-kap/c), s = df1 / d (Phi = F), c = k/d.
    """
    d, k, n, lam, noise = map(mpmath.mpf, (d, k, n, lam, noise))
    g, c = d / k, k / d

    def m_b(z):  # z < 0: the root with m > 0
        b = -(1 - g - z)
        disc = mpmath.sqrt(b * b - 4 * g * z)
        roots = [(-b + disc) / (2 * g * z), (-b - disc) / (2 * g * z)]
        return max(r for r in roots if r > 0)

    def df1(kap):
        return d - kap * (d / c) * m_b(-kap / c)

    kap = mpmath.findroot(
        lambda x: x * (1 - df1(x) / n) - lam, (mpmath.mpf("1e-6"), mpmath.mpf(100)), solver="anderson"
    )
    ddf1 = mpmath.diff(df1, kap)
    df2 = df1(kap) + kap * ddf1
    s, ds = df1(kap) / d, ddf1 / d
    var_y = 1 + noise
    return (var_y - (s - kap * ds)) / (1 - df2 / n), kap


@pytest.mark.parametrize(
    "d, k, n, lam, noise",
    [
        (100, 150, 120, "0.1", "0.2"),
        (100, 60, 300, "0.01", "0"),
        (50, 200, 40, "1", "0.5"),
        (100, 100, 80, "0.3", "0.1"),
    ],
)
def test_single_linear_layer_matches_marchenko_pastur(d, k, n, lam, noise):
    with mpmath.workdps(40):
        want, kap = _marchenko_pastur_route(d, k, n, lam, noise)
    pred = predict(DeepRF(d, [k], "linear"), n, lam, noise, digits=30)
    with mpmath.workdps(40):
        assert abs(pred.test_error - want) < mpmath.mpf(10) ** -25 * want
        assert abs(pred.effective_ridge - kap) < mpmath.mpf(10) ** -25 * kap


# ------------------------------------------------------------------ limits


def test_large_ridge_and_few_samples_give_var_y():
    model = DeepRF(100, [200, 150], ["tanh", "relu"], "sign")
    for noise in (0, 0.3):
        assert abs(predict(model, 150, 1e9, noise).test_error - (1 + noise)) < 1e-6
        assert abs(predict(model, 1e-6, 1e-2, noise).test_error - (1 + noise)) < 1e-6


def test_var_y_uses_the_target_variance():
    model = DeepRF(100, [200], "relu")
    p = predict(model, 1e-8, 1.0, 0.1, target="tanh")
    assert abs(p.var_y - (0.394294490397841 + 0.1)) < 1e-12
    assert abs(p.test_error - p.var_y) < 1e-6


@pytest.mark.parametrize("k, want", [(300, 0.0), (40, 1 - 40 / 100)])
def test_many_samples_reach_the_approximation_error(k, want):
    """Linear layer: a k >= d projection represents the linear target exactly; k < d keeps k/d of it."""
    model = DeepRF(100, [k], "linear")
    noise = 0.25
    p = predict(model, 1e9, 1e-9, noise)
    assert abs(p.test_error - (want + noise)) < 1e-5


# --------------------------------------------------------- ridgeless cases


def test_interpolation_threshold_is_infinite_with_message():
    model = DeepRF(100, [200], "tanh")
    p = predict(model, 200, 0, 0.1)
    assert math.isinf(p.test_error) and p.test_error > 0
    assert "interpolation threshold" in p.message
    pm = predict(model, 200, 0, 0.1, digits=30)
    assert mpmath.isinf(pm.test_error)


def test_ridgeless_is_the_limit_of_small_ridge():
    model = DeepRF(100, [200, 150], ["tanh", "relu"], "sign")
    for n in (80, 400):
        p0 = predict(model, n, 0, 0.1, digits=30)
        p1 = predict(model, n, "1e-20", 0.1, digits=30)
        with mpmath.workdps(30):
            assert abs(p0.test_error - p1.test_error) < mpmath.mpf(10) ** -15
            assert abs(p0.train_error - p1.train_error) < mpmath.mpf(10) ** -15
        assert p0.regime.startswith("ridgeless")


def test_error_blows_up_near_threshold():
    model = DeepRF(100, [200], "relu")
    errs = [predict(model, n, 0, 0.1).test_error for n in (150, 190, 199, 199.9)]
    assert errs == sorted(errs) and errs[-1] > 100


# ----------------------------------------------------------- robustness


@pytest.mark.parametrize("ridge", ["1e-12", pytest.param("1e-8", marks=pytest.mark.slow), "1e-3"])
@pytest.mark.parametrize("n", [60, 170, pytest.param(500, marks=pytest.mark.slow)])  # below, at, above k
def test_tiny_ridges_float_and_mpmath_agree(ridge, n):
    model = DeepRF(100, [200, 170], ["tanh", "erf"], "sign")
    pf = predict(model, n, float(ridge), 0.1)
    pm = predict(model, n, ridge, 0.1, digits=30)
    assert math.isclose(pf.test_error, float(pm.test_error), rel_tol=1e-9)
    assert math.isclose(pf.train_error, float(pm.train_error), rel_tol=1e-9)
    assert max(pm.residuals) < mpmath.mpf(10) ** -25


@pytest.mark.parametrize(
    "model, n",
    [
        (DeepRF(500, [1000, 50, 800], ["relu", "tanh", "erf"], "sign"), 300),  # bottleneck
        (DeepRF(1, [1e4, 1e4], ["tanh", "relu"]), 3),  # wide
        pytest.param(DeepRF(100, [150] * 10, ["tanh"] * 10, "sign"), 120, marks=pytest.mark.slow),  # deep
    ],
    ids=["bottleneck", "wide", "deep"],
)
def test_bottleneck_wide_and_deep_models(model, n):
    for lam in (0, 1e-12, 1e-2):
        pf = predict(model, n, lam, 0.1)
        pm = predict(model, n, repr(lam), 0.1, digits=25)
        assert math.isfinite(pf.test_error) and pf.test_error > 0
        assert math.isclose(pf.test_error, float(pm.test_error), rel_tol=1e-9)
        assert all(k is None or k >= 0 for k in pm.effective_ridges)


def _network_test_error(last, draws=20, d=60, widths=(120, 90), n=60, ridge=0.1, noise=0.1, test=400):
    """Monte Carlo of real networks (written out here, independent of the package): tanh, then ``last``;
    Gaussian weights, a linear teacher ``y = x.theta / sqrt(d) + noise``, ridge readout with an intercept
    (features and labels centred on the training set).  Mean test error over ``draws`` and its standard error."""
    acts = (np.tanh, {"abs": np.abs, "tanh": np.tanh}[last])
    rng = np.random.default_rng(5)
    errors = []
    for _ in range(draws):
        weights, fan = [], d
        for k in widths:
            weights.append(rng.standard_normal((k, fan)) / math.sqrt(fan))
            fan = k

        def features(x):
            for w, act in zip(weights, acts):  # noqa: B023 - this draw's weights
                x = act(x @ w.T)
            return x

        theta = rng.standard_normal(d)
        x, xt = rng.standard_normal((n, d)), rng.standard_normal((test, d))
        y = x @ theta / math.sqrt(d) + math.sqrt(noise) * rng.standard_normal(n)
        yt = xt @ theta / math.sqrt(d) + math.sqrt(noise) * rng.standard_normal(test)
        z, zt = features(x), features(xt)
        zm, ym = z.mean(axis=0), y.mean()
        a = np.linalg.solve((z - zm).T @ (z - zm) / n + ridge * np.eye(widths[-1]), (z - zm).T @ (y - ym) / n)
        errors.append(np.mean((yt - ym - (zt - zm) @ a) ** 2))
    return float(np.mean(errors)), float(np.std(errors, ddof=1) / math.sqrt(draws))


def test_even_last_layer_has_no_signal():
    """An even last activation (abs) forgets the sign of its input, and with it the linear teacher: simulated
    networks cannot beat predicting the mean (test error >= Var y = 1 + noise), and the theory agrees with them;
    the same networks with an odd last activation (tanh) do beat it, so the simulation sees signal when there is."""
    var_y = 1 + 0.1
    even, even_se = _network_test_error("abs")
    odd, odd_se = _network_test_error("tanh")
    assert even > var_y - 3 * even_se
    assert odd < var_y - 5 * odd_se
    for last, mc, se in (("abs", even, even_se), ("tanh", odd, odd_se)):
        p = predict(DeepRF(60, [120, 90], ["tanh", last]), 60, 0.1, 0.1)
        assert p.var_y == pytest.approx(var_y)
        assert abs(p.test_error - mc) < 4 * se + 0.03 * mc, (last, p.test_error, mc, se)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(samples=0), "samples"),
        (dict(samples=-3), "samples"),
        (dict(ridge=-1), "ridge"),
        (dict(noise=-0.1), "noise"),
        (dict(ridge="abc"), "ridge"),
        (dict(samples=float("inf")), "samples"),
        (dict(digits=0), "digits"),
    ],
)
def test_bad_inputs_name_the_parameter(kwargs, match):
    args = dict(samples=100, ridge=0.1, noise=0.1)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        predict(DeepRF(100, [200], "relu"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(widths=[]), "widths"),
        (dict(widths=[100, -1]), "widths"),
        (dict(input_dim=0), "input_dim"),
        (dict(activations=["relu", "tanh", "erf"]), "activations"),
    ],
)
def test_bad_models_rejected(kwargs, match):
    args = dict(input_dim=100, widths=[200, 100], activations="relu")
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        DeepRF(**args)


# -------------------------------------------------------------- properties

ACTS = ["tanh", "relu", "erf", "gelu", "sign", "sigmoid", "leaky_relu:0.2"]
sizes = st.floats(min_value=0.05, max_value=20)


@st.composite
def models(draw, max_depth=3):
    depth = draw(st.integers(min_value=1, max_value=max_depth))
    d = 100.0
    widths = [d * draw(sizes) for _ in range(depth)]
    acts = [draw(st.sampled_from(ACTS)) for _ in range(depth)]
    quant = draw(st.sampled_from(["none", "sign", "sign-scaled", "ternary:0.5"]))
    return DeepRF(d, widths, acts, quant)


@given(model=models(), n=sizes, ridge=st.floats(min_value=1e-8, max_value=10))
def test_float_path_agrees_with_mpmath(model, n, ridge):
    assume(abs(n * 100 - float(model.widths[-1])) > 1e-3)
    pf = predict(model, 100 * n, ridge, 0.1)
    pm = predict(model, 100 * n, repr(ridge), 0.1, digits=25)
    assert math.isclose(pf.test_error, float(pm.test_error), rel_tol=1e-9)


@given(model=models(max_depth=2), n=sizes, scale=st.sampled_from([0.001, 0.5, 3, 1000]))
def test_only_ratios_matter(model, n, scale):
    scaled = DeepRF(model.input_dim * scale, [w * scale for w in model.widths], model.activations, model.quantizers)
    a = predict(model, 100 * n, 0.01, 0.1)
    b = predict(scaled, 100 * n * scale, 0.01, 0.1)
    assert math.isclose(a.test_error, b.test_error, rel_tol=1e-9)


# ------------------------------------------------------ scaled-sign twin


def test_scaled_sign_relu_is_full_precision_at_rescaled_ridge():
    """ReLU is 1-homogeneous: scaled sign multiplies the features by c = (2/pi)^(L/2),
    so E_scaled(lambda) = E_full(lambda / c^2) exactly (30 digits)."""
    full = DeepRF(200, [300, 250], ["relu", "leaky_relu:0.2"], "none")
    scaled = full.with_quantizers("sign-scaled")
    with mpmath.workdps(40):
        c2 = (2 / mpmath.pi) ** 2
        lam = mpmath.mpf("0.01")
        a = predict(scaled, 260, lam, "0.1", digits=30)
        b = predict(full, 260, lam / c2, "0.1", digits=30)
        assert abs(a.test_error - b.test_error) < mpmath.mpf(10) ** -27
        different = predict(full, 260, lam, "0.1", digits=30)
        assert abs(a.test_error - different.test_error) > mpmath.mpf(10) ** -6


def test_scaled_sign_relu_equal_at_optimal_ridge_but_not_tanh():
    from rfq_theory import optimal_ridge

    for acts, equal in ((["relu", "relu"], True), (["tanh", "tanh"], False)):
        full = DeepRF(200, [300, 250], acts)
        _, a = optimal_ridge(full, 400, 0.2)
        _, b = optimal_ridge(full.with_quantizers("sign-scaled"), 400, 0.2)
        assert math.isclose(a.test_error, b.test_error, rel_tol=1e-9) == equal


@pytest.mark.parametrize(
    "widths, acts, quant, n, ridge",
    [
        ([62953.6], ["linear"], "ternary:0.5", 785.98, 0),  # linear last layer at the branch edge
        ([8098.6, 107.4, 43.5], ["sign", "abs", "linear"], "none", 445.9, 0),
        pytest.param(
            [905.8, 289.6, 48951.9, 89.2, 331.5, 1.219, 1149.9],
            ["leaky_relu:0.2", "sign", "tanh", "erf", "gelu", "sigmoid", "silu"],
            "uniform:2",
            8194.1,
            1e-6,
            marks=pytest.mark.slow,  # depth 7: seconds; the two cases above stay in the fast subset
        ),
        pytest.param(
            [152.3, 11104.8, 8.44, 6902.4, 1.48, 1526.5, 13133.1],
            ["leaky_relu:0.2", "leaky_relu:0.2", "sigmoid", "sigmoid", "linear", "erf", "erf"],
            "sign",
            14.04,
            0,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_extreme_models_found_by_fuzzing(widths, acts, quant, n, ridge):
    """Regression cases: width ratios up to 1e4 and depth 7; float and mpmath paths agree to 1e-9."""
    model = DeepRF(100, widths, acts, quant)
    pf = predict(model, n, ridge, 0.1)
    pm = predict(model, n, repr(ridge), 0.1, digits=25)
    assert math.isclose(pf.test_error, float(pm.test_error), rel_tol=1e-9)
    assert max(pm.residuals) < mpmath.mpf(10) ** -20
