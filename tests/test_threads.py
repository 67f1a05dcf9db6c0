"""Concurrent predictions agree with serial ones to every digit; the global mpmath state is never used."""

import threading

import mpmath
import pytest

from rfq_theory import DeepRF, clear_caches, coefficients, predict

MODELS = [
    DeepRF(100, (150, 120), ("tanh", "relu"), "sign"),
    DeepRF(100, (200,), ("erf",), "ternary:0.5"),
    DeepRF(80, (120, 90), ("gelu", "sin"), ("none", "sign-scaled")),
    DeepRF(60, (100,), ("softplus",), "expr:sign(g)*Min(abs(g),1)"),
]
JOBS = [(MODELS[i % len(MODELS)], 70 + 13 * i, ("0", "0.01")[i % 2], 15 + 5 * i) for i in range(8)]  # digits 15..50


def _run(job):
    model, n, ridge, digits = job
    p = predict(model, n, ridge, 0.1, digits=digits)
    return tuple(mpmath.nstr(x, digits) for x in (p.test_error, p.train_error, p.effective_ridge, p.df2))


@pytest.mark.slow
def test_concurrent_equals_serial_to_every_digit():
    clear_caches()
    serial = [_run(j) for j in JOBS]
    before = (mpmath.mp.prec, mpmath.mp.dps)
    for _ in range(2):
        clear_caches()  # cold caches: every thread builds its own activations/quantizers concurrently
        results = [None] * len(JOBS)
        errors = []

        def work(i, results=results, errors=errors):
            try:
                results[i] = _run(JOBS[i])
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(JOBS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert results == serial
    assert (mpmath.mp.prec, mpmath.mp.dps) == before


def test_user_precision_changes_nothing():
    model = DeepRF(100, (150, 120), ("tanh", "relu"), "sign")
    ref_f = predict(model, 90, 0, 0.1)
    ref_m = predict(model, 90, 0, 0.1, digits=30)
    ref_c = coefficients("tanh", "0.7", 25)
    old = mpmath.mp.dps
    try:
        mpmath.mp.dps = 3
        clear_caches()
        assert predict(model, 90, 0, 0.1) == ref_f
        p = predict(model, 90, 0, 0.1, digits=30)
        assert mpmath.nstr(p.test_error, 30) == mpmath.nstr(ref_m.test_error, 30)
        assert mpmath.nstr(coefficients("tanh", "0.7", 25).mu_star, 25) == mpmath.nstr(ref_c.mu_star, 25)
        assert mpmath.mp.dps == 3
    finally:
        mpmath.mp.dps = old


def test_results_print_with_their_precision():
    p = predict(DeepRF(100, (200,), ("tanh",)), 150, 0, 0.1, digits=30)
    text = str(p.test_error)
    assert len(text.replace(".", "").lstrip("0")) >= 29, text
    assert mpmath.mp.dps == 15


GLM_JOBS = [
    (DeepRF(100, (150,), ("tanh",), ("none", "sign")[i % 2]), ("hinge", "square", "logistic")[i % 3], 18 + 2 * i)
    for i in range(3)
]  # digits 18..22, every loss, both weight kinds


def _run_glm(job):
    from rfq_theory.glm import predict_glm

    model, loss, digits = job
    p = predict_glm(model, 150, "0.01", "0.1", loss=loss, digits=digits)
    return tuple(mpmath.nstr(x, digits) for x in (p.test_error, p.train_loss, p.m, p.q))


@pytest.mark.slow
def test_concurrent_convex_loss_solves_equal_serial_ones():
    serial = [_run_glm(j) for j in GLM_JOBS]
    before = (mpmath.mp.prec, mpmath.mp.dps)
    results, errors = [None] * len(GLM_JOBS), []

    def work(i, results=results, errors=errors):
        try:
            results[i] = _run_glm(GLM_JOBS[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(GLM_JOBS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == serial
    assert (mpmath.mp.prec, mpmath.mp.dps) == before
