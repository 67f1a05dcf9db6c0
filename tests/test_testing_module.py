"""``rfq_theory.testing``: the rule, the messages, the strategies, the plugin, and the
docs/testing.md example run as a user would run it (outside the repository)."""

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from scipy.stats import t as student_t

from rfq_theory import DeepRF, predict
from rfq_theory.testing import (
    TheoryMismatch,
    assert_binary_weights,
    assert_matches_theory,
    assert_one_bit_equivalent,
    models,
    operating_points,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"


def _rule(values, theory, m):
    """The rule written out from its definition (Student-t, 3 sigma coverage, 2/m allowance)."""
    x = np.asarray(values, dtype=float)
    se = x.std(ddof=1) / math.sqrt(x.size)
    zc = student_t.ppf(norm.cdf(3.0), x.size - 1)
    return abs(x.mean() - theory) <= zc * se + 2.0 * abs(theory) / m


# --- assertions ------------------------------------------------------------------------------


def test_assertion_applies_the_rule_as_defined():
    rng = np.random.default_rng(5)
    cases = 0
    for _ in range(200):
        T = int(rng.integers(6, 20))
        values = 1.0 + rng.normal(0, 0.05, T)
        theory = 1.0 + rng.normal(0, 0.05)
        m = float(rng.integers(50, 500))
        expected = _rule(values, theory, m)
        try:
            assert_matches_theory(values, theory, sizes=(m, 2 * m))
            got = True
        except TheoryMismatch:
            got = False
        assert got == expected
        cases += not expected
    assert 10 < cases < 190  # both outcomes were exercised


def test_failure_message_names_every_number():
    model = DeepRF(100, (200,), "tanh", "sign")
    p = predict(model, 300, 0.1)
    draws = [1.1 * p.test_error + 0.001 * i for i in range(8)]
    with pytest.raises(TheoryMismatch) as info:
        assert_matches_theory(draws, p, model=model)
    msg = str(info.value)
    for word in ("measured", "predicted", "SE over 8 draws", "z = ", "The rule allows", "m = 100", "7 degrees"):
        assert word in msg, msg
    r = info.value.result
    assert r["m"] == 100 and r["draws"] == 8 and r["predicted"] == pytest.approx(float(p.test_error))
    assert r["z_crit"] == pytest.approx(student_t.ppf(norm.cdf(3.0), 7))


def test_too_few_draws_and_bad_input_are_errors_not_passes():
    with pytest.raises(ValueError, match="at least 6"):
        assert_matches_theory([0.5] * 5, 0.5)
    with pytest.raises(ValueError, match="finite"):
        assert_matches_theory([0.5] * 5 + [math.nan, 0.5], 0.5)
    with pytest.raises(ValueError, match="not finite"):
        assert_matches_theory([0.5] * 8, math.inf)
    with pytest.raises(ValueError, match="test_loss"):
        p = predict(DeepRF(100, (200,), "tanh"), 300, 0.1)
        assert_matches_theory([0.5] * 8, p, quantity="test_loss")
    with pytest.raises(ValueError, match="as many"):
        assert_one_bit_equivalent([0.5] * 8, [0.5] * 7)


def test_paired_assertion_uses_the_differences():
    rng = np.random.default_rng(1)
    common = 0.4 + rng.normal(0, 0.05, 10)  # large shared noise
    small = rng.normal(0, 1e-4, 10)
    r = assert_one_bit_equivalent(common, common + small)
    assert r["se"] < 1e-4  # the shared noise cancels
    with pytest.raises(TheoryMismatch, match="paired difference"):
        assert_one_bit_equivalent(common, common + 0.003 + small)  # 0.75 % off: far beyond the paired SE


def test_binary_weights():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((20, 10))
    assert_binary_weights([np.sign(W), np.sign(W[:3])])
    assert_binary_weights(math.sqrt(2 / math.pi) * np.sign(W), scale=None)
    with pytest.raises(TheoryMismatch, match="not one-bit: 200 of 200"):
        assert_binary_weights(W)


# --- strategies ------------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_drawn_models_and_points_solve_quickly(data):
    model = data.draw(models(input_dim=(60, 120), max_width=360))
    point = data.draw(operating_points(model, losses=("square", "logistic", "hinge")))
    assert model.depth in (1, 2, 3)
    sizes = (model.input_dim,) + model.widths
    assert all(isinstance(k, int) and 20 <= k <= 4 * model.input_dim for k in model.widths)
    assert all(abs(math.log(b / a)) >= math.log(1.2) for a, b in zip(sizes, sizes[1:]))
    assert abs(math.log(point.samples / model.widths[-1])) >= math.log(1.3)
    assert all(float(lc.mu1) != 0 for lc in model.layers())  # no even activation by default
    t0 = time.perf_counter()
    p = point.predict(model)
    assert math.isfinite(float(p.test_error)) and float(p.test_error) > 0
    assert time.perf_counter() - t0 < 20


def test_even_activations_only_on_request():
    from rfq_theory.testing import activations

    with pytest.raises(ValueError, match="even"):
        activations(["abs"])
    drawn = set()

    @settings(max_examples=40, database=None)
    @given(activations(allow_even=True))
    def collect(a):
        drawn.add(a)

    collect()
    assert drawn & {"abs", "quadratic", "cos"}


# --- plugin and imports ----------------------------------------------------------------------


def _run(args, cwd, env=None, timeout=300):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_core_import_loads_neither_hypothesis_nor_pytest(tmp_path):
    code = "import sys, rfq_theory, rfq_theory.testing.plugin; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = _run([sys.executable, "-c", code], tmp_path).stdout
    assert "hypothesis" not in out and "'numpy'" not in out
    out = _run([sys.executable, "-c", "import sys, rfq_theory; print('pytest' in sys.modules)"], tmp_path).stdout
    assert out.strip() == "False"


@pytest.mark.slow  # a user pytest run in a subprocess
def test_plugin_works_without_hypothesis(tmp_path):
    # a package named hypothesis that cannot be imported stands for an install without it
    block = tmp_path / "block"
    (block / "hypothesis").mkdir(parents=True)
    (block / "hypothesis" / "__init__.py").write_text("raise ImportError('hypothesis is not installed')\n")
    user = tmp_path / "user"
    user.mkdir()
    (user / "test_plain.py").write_text(
        "import pytest\nfrom rfq_theory.testing import assert_matches_theory\n\n"
        "@pytest.mark.rfq_simulation\ndef test_plain(rfq_rng):\n"
        "    assert_matches_theory(0.5 + 0.01 * rfq_rng.standard_normal(8), 0.5)\n\n"
        "def test_strategies_say_what_is_missing():\n"
        "    import rfq_theory.testing as t\n"
        "    with pytest.raises(ImportError):\n        t.models\n"
    )
    env = dict(os.environ, PYTHONPATH=str(block))
    proc = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-W", "error"],
        user,
        env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


@pytest.mark.slow  # a user pytest run in a subprocess
def test_marker_applies_the_profile(tmp_path):
    (tmp_path / "test_profile.py").write_text(
        "import pytest\nfrom hypothesis import given, strategies as st\n\nCALLS = []\n\n"
        "@pytest.mark.rfq_simulation(max_examples=3)\n@given(st.integers())\ndef test_marked(x):\n    CALLS.append(x)\n\n"
        "@pytest.mark.rfq_simulation\n@given(st.integers())\ndef test_default(x):\n    CALLS.append(x)\n\n"
        "def test_counts():\n    assert len(CALLS) <= 3 + 5, len(CALLS)\n"
    )
    proc = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-profile=rfq-simulation"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the documented example, run by a user outside the repository -----------------------------


def _doc_example() -> str:
    text = DOC.read_text()
    m = re.search(r"<!-- file: test_my_deep_rf.py -->\n```python\n(.*?)```", text, re.S)
    assert m, "docs/testing.md lost its example file"
    return m.group(1)


def _user_run(tmp_path, name, source, *select):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "test_my_deep_rf.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(pkg), *select]
    return _run(args, pkg, env, timeout=600)


def _mutate(source, old, new):
    assert source.count(old) == 1, old
    return source.replace(old, new)


@pytest.mark.slow
def test_documented_example_passes_as_written(tmp_path):
    assert not str(tmp_path).startswith(str(ROOT))
    proc = _user_run(tmp_path, "correct", _doc_example())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout


def _failure_sections(stdout):
    """``{test name: its failure report}`` from pytest's output."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", stdout, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.slow  # a user pytest run in a subprocess, simulating networks
def test_documented_example_catches_two_broken_implementations(tmp_path):
    """Two mutants of the example in one user run (one pytest start-up): a layer that forgets to centre
    fails the theory comparison at the pinned softplus case; Gaussian weights posing as one-bit fail the
    binary-weights check."""
    example = _doc_example()
    pkg = tmp_path / "mutants"
    pkg.mkdir()
    (pkg / "test_uncentred.py").write_text(_mutate(example, " - float(layer.mu0)", ""))
    (pkg / "test_gaussian.py").write_text(_mutate(example, "weights.append(quantizer.apply(W))", "weights.append(W)"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(pkg)]
    args += [
        "test_uncentred.py::test_ridge_readout_matches_theory",
        "test_gaussian.py::test_one_bit_weights_are_plus_minus_one",
    ]
    proc = _run(args, pkg, env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed" in proc.stdout, proc.stdout
    sections = _failure_sections(proc.stdout)
    uncentred = sections["test_ridge_readout_matches_theory"]
    assert "TheoryMismatch" in uncentred and "The rule allows" in uncentred
    assert "softplus" in uncentred  # the pinned case is the one that fails
    assert "is not one-bit" in sections["test_one_bit_weights_are_plus_minus_one"]
