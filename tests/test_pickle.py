"""Models and results pickle (worker processes, Dask, joblib) without touching mpmath's global state."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import mpmath
import numpy as np
import pytest
import sympy as sp

from rfq_theory import DeepRF, Quantizer, predict
from rfq_theory.activations import Activation, get_activation
from rfq_theory.quantizers import get_quantizer

MODELS = [
    DeepRF(100, (200,), "tanh", "sign"),
    DeepRF("1000.5", (2000, 1500), ("tanh", "relu"), ("sign-scaled", "none")),
    DeepRF(100, (200, 150), ("Max(u,0.1*u)", "leaky_relu:0.2"), ("expr:sign(g)*Min(abs(g),1)", "uniform:3")),
    DeepRF(50, (60,), "hermite:3", "ternary:0.6"),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: ",".join(m.activations + m.quantizers))
def test_model_round_trip_predicts_the_same(model):
    again = pickle.loads(pickle.dumps(model))
    assert again == model
    assert (
        predict(again, samples=150, ridge="1e-2", digits=25).test_error
        == predict(model, samples=150, ridge="1e-2", digits=25).test_error
    )


def test_results_keep_value_and_precision():
    p = predict(MODELS[1], samples=1200, ridge="1e-3", digits=40)
    q = pickle.loads(pickle.dumps(p))
    assert str(q.test_error) == str(p.test_error) and len(str(q.test_error).replace(".", "")) >= 40
    assert q.effective_ridges == p.effective_ridges
    assert q.test_error * 3 == p.test_error * 3  # arithmetic at the frozen precision


def test_step_quantizer_built_in_code_round_trips():
    q = Quantizer.piecewise("three", ["-0.5", "0.5"], [-1, 0, 1])
    again = pickle.loads(pickle.dumps(q))
    assert again.steps == q.steps
    x = np.linspace(-2, 2, 41)
    np.testing.assert_array_equal(again.numpy(x), q.numpy(x))


def test_objects_built_in_code_refuse_with_a_clear_message():
    custom = Quantizer.custom("cube", sp.Symbol("u") ** 3)
    with pytest.raises(TypeError, match="built in code"):
        pickle.dumps(custom)
    relu = get_activation("relu")
    fake = Activation("mine", relu.expr**2, relu.numpy)
    with pytest.raises(TypeError, match="built in code"):
        pickle.dumps(fake)


def test_builtin_specs_pickle_as_themselves():
    for spec in ("none", "sign", "sign-scaled", "uniform:2", "ternary:0.6", "expr:sign(g)"):
        assert pickle.loads(pickle.dumps(get_quantizer(spec))).spec == spec


def test_cloudpickle_leaves_the_global_mpmath_context_working():
    cloudpickle = pytest.importorskip("cloudpickle")
    p = predict(MODELS[0], samples=150, ridge="1e-2", digits=30)
    for obj in (MODELS[0], p):
        again = pickle.loads(cloudpickle.dumps(obj))
        assert again == obj
    assert mpmath.mpf(1) + 1 == 2 and mpmath.mp.dps == 15


def _child_predict(model):
    return predict(model, samples=150, ridge="1e-2", digits=30)


@pytest.mark.slow  # a spawned process
def test_another_process_returns_the_same_prediction():
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote = pool.submit(_child_predict, MODELS[2]).result(timeout=120)
    assert str(remote.test_error) == str(_child_predict(MODELS[2]).test_error)
