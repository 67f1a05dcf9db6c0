"""The layer chain (rfq_theory.chain): one walk in every arithmetic, checked against independent routes.

- a one-layer linear model is a Marchenko-Pastur law: the walk and the spectra against its closed-form resolvent;
- the cancellation-free ``D_l`` update against the defining form ``D_l = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})``
  evaluated with 60 digits, at a point where that form loses digits in floats;
- float, mpmath, NumPy lanes, double-double lanes and complex numbers walk the same chain to their precision;
- spectra and predictions at 20-50 digits computed in 8 threads equal the serial ones to every digit.
"""

import threading

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory import DeepRF, predict
from rfq_theory._ddwalk import DD, DD_LANES
from rfq_theory.chain import COMPLEX, FLOAT, LANES, Chain, omega_rank, real, walk, walk_state
from rfq_theory.precision import context
from rfq_theory.spectra import density_at, stieltjes


def _mp_stieltjes(z, y):
    """Marchenko-Pastur ``m(z)`` of ratio ``y`` (unit scale): the root of ``y z m^2 + (z + y - 1) m + 1 = 0``
    that is the Stieltjes transform (``Im m > 0`` above the axis, ``m > 0`` for real ``z < 0``)."""
    a, b, c = y * z, z + y - 1, 1
    disc = mpmath.sqrt(b * b - 4 * a * c)
    roots = [(-b + disc) / (2 * a), (-b - disc) / (2 * a)]
    if mpmath.im(z) > 0:
        return max(roots, key=lambda m: mpmath.im(m))
    return max(roots, key=lambda m: mpmath.re(m))  # z < 0: the roots have opposite signs, m(z) > 0


# ------------------------------------------------------------ independent: Marchenko-Pastur


@pytest.mark.parametrize("d, k", [(1000, 500), (400, 600)])
def test_one_linear_layer_walk_is_the_marchenko_pastur_resolvent(d, k):
    # Omega_1 = F F^T (F: k x d, variance 1/d), so df1_1(kappa) = k (1 - kappa m(-kappa)) with the MP law of y = k/d
    ctx = context()
    with ctx.workdps(40), mpmath.workdps(40):
        y = mpmath.mpf(k) / d
        chain = Chain(ctx.mpf(d), ctx.mpf(1), True, ((ctx.mpf(d), ctx.mpf(k), ctx.mpf(1), ctx.mpf(0)),), 0, k)
        for k0 in ("1.01", "1.5", "3", "20", "500"):  # the branch: kappa_0 > d/k - 1
            st_ = walk(chain, ctx.mpf(k0), real(ctx))
            kappa = st_.kappa
            want = k * (1 - kappa * _mp_stieltjes(-mpmath.mpf(kappa), y))
            assert abs(st_.df1 - want) <= mpmath.mpf(10) ** -34 * want


def test_one_linear_layer_spectrum_is_marchenko_pastur():
    d, k = 1000, 600
    model = DeepRF(d, (k,), ("linear",), "none")
    with mpmath.workdps(40):
        y = mpmath.mpf(k) / d
        z = mpmath.mpc("1.3", "0.2")
        m = stieltjes(model, z, layer=1, digits=30)
        assert abs(m - _mp_stieltjes(z, y)) <= mpmath.mpf(10) ** -28 * abs(m)
        lo, hi = (1 - mpmath.sqrt(y)) ** 2, (1 + mpmath.sqrt(y)) ** 2
        for x in ("0.5", "1.1", "2.2"):
            xv = mpmath.mpf(x)
            rho = mpmath.sqrt((hi - xv) * (xv - lo)) / (2 * mpmath.pi * y * xv)
            got = density_at(model, x, layer=1, digits=30)
            assert abs(got - rho) <= mpmath.mpf(10) ** -27 * rho
            assert abs(density_at(model, float(x), layer=1, digits=None) - float(rho)) <= 1e-10 * float(rho)


# ------------------------------------------------------------ independent: the D update


def _old_df1(chain, kappa0):
    """``D_L`` from the defining form ``D_l = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})`` (cancels when D_l << k_l)."""
    D = chain.base_dim * chain.base_scale / (chain.base_scale + kappa0)
    kap = kappa0
    for k_prev, k, a, c in chain.layers:
        new = a * kap * (k - D) / k_prev - c
        D = k - k_prev * new / (a * kap)
        kap = new
    return D


def test_cancellation_free_update_keeps_the_digits_the_defining_form_loses():
    # a large kappa_0: every D_l is ~1e-7 of k_l, so k_l - (...) cancels about 7 digits
    layers = ((1000.0, 2000.0, 0.36, 0.03), (2000.0, 1500.0, 0.25, 0.04), (1500.0, 1000.0, 0.5, 0.01))
    chain_f = Chain(1000.0, 1.0, True, layers, 0, 1000.0)
    k0 = 3.0e9
    ctx = context()
    with ctx.workdps(60):
        chain_mp = Chain(
            ctx.mpf(1000), ctx.mpf(1), True, tuple(tuple(ctx.mpf(v) for v in lay) for lay in layers), 0, 1000
        )
        exact = _old_df1(chain_mp, ctx.mpf(k0))  # 60 digits: the cancellation costs ~7 of them
        new = walk(chain_f, k0, FLOAT).df1
        old = _old_df1(chain_f, k0)
        err_new = float(abs(ctx.mpf(new) - exact) / exact)
        err_old = float(abs(ctx.mpf(old) - exact) / exact)
    assert err_old > 1e-12  # the point is ill-conditioned for the defining form
    assert err_new < 1e-14


# ------------------------------------------------------------ one walk, every arithmetic


def _chain(sizes, acs, conv):
    layers = tuple((conv(sizes[i]), conv(sizes[i + 1]), conv(a), conv(c)) for i, (a, c) in enumerate(acs))
    return Chain(conv(sizes[0]), conv(1.0), True, layers, 0, omega_rank(conv(sizes[0]), layers))


sizes_st = st.lists(st.integers(50, 3000), min_size=2, max_size=4)


@settings(max_examples=25, deadline=None)
@given(
    sizes=sizes_st,
    coeffs=st.lists(st.tuples(st.floats(0.05, 2.0), st.floats(0.0, 0.5)), min_size=3, max_size=3),
    k0=st.floats(1e-3, 1e3),
)
def test_every_arithmetic_walks_the_same_chain(sizes, coeffs, k0):
    acs = coeffs[: len(sizes) - 1]
    chain_f = _chain(sizes, acs, float)
    ref_state = None
    ctx = context()
    with ctx.workdps(50):
        chain_mp = _chain(sizes, acs, ctx.mpf)
        ref_state = walk_state(chain_mp, ctx.mpf(k0), real(ctx))
        ref = [ref_state.kappa, ref_state.dkappa, ref_state.df1, ref_state.ddf1]
        kappas = [abs(x) for x in ref_state.kappas]
        if not ref_state.valid or min(kappas) < 1e-6 * max(kappas):
            return  # outside the branch (or within rounding of its edge): nothing to compare
        cplx = walk_state(chain_mp, ctx.mpc(k0, 0), COMPLEX)
        for r, v in zip(ref, (cplx.kappa, cplx.dkappa, cplx.df1, cplx.ddf1)):
            assert v.imag == 0 and abs(v.real - r) <= ctx.mpf(10) ** -45 * ref_state.cancellation * abs(r)
        tol_f = 1e-12 * float(ref_state.cancellation)
        fl = walk_state(chain_f, k0, FLOAT)
        lanes_chain = Chain(
            np.full(3, chain_f.base_dim),
            1.0,
            True,
            tuple((np.full(3, kp), np.full(3, k), a, c) for kp, k, a, c in chain_f.layers),
            0,
            None,
        )
        ln = walk_state(lanes_chain, np.full(3, k0), LANES)
        cf = walk_state(chain_f, np.full(3, complex(k0)), COMPLEX)
        dd_chain = Chain(
            DD(np.full(3, chain_f.base_dim)),
            DD(np.ones(3)),
            True,
            tuple(
                (DD(np.full(3, kp)), DD(np.full(3, k)), DD(np.full(3, a)), DD(np.full(3, c)))
                for kp, k, a, c in chain_f.layers
            ),
            0,
            None,
        )
        dd = walk_state(dd_chain, DD(np.full(3, k0)), DD_LANES)
        assert ln.valid.all() and dd.valid.all()
        for j, r in enumerate(ref):
            scale = abs(r)
            got_f = (fl.kappa, fl.dkappa, fl.df1, fl.ddf1)[j]
            got_l = (ln.kappa, ln.dkappa, ln.df1, ln.ddf1)[j]
            got_c = (cf.kappa, cf.dkappa, cf.df1, cf.ddf1)[j]
            got_d = (dd.kappa, dd.dkappa, dd.df1, dd.ddf1)[j]
            assert abs(got_f - r) <= tol_f * scale
            assert np.all(got_l == got_f)  # lanes and scalars: the same float operations
            assert np.all(np.abs(got_c.real - float(r)) <= tol_f * float(scale)) and np.all(got_c.imag == 0)
            dd_val = ctx.mpf(float(got_d.hi[0])) + ctx.mpf(float(got_d.lo[0]))
            assert abs(dd_val - r) <= ctx.mpf(1e-27) * float(ref_state.cancellation) * scale
    assert float(ref_state.cancellation) >= 1


# ------------------------------------------------------------ threads


MODEL = DeepRF(300, (450, 360), ("tanh", "relu"), "sign")
JOBS = [(20 + 10 * (i % 4), i) for i in range(8)]  # digits 20, 30, 40, 50


def _job(job, barrier=None):
    digits, i = job
    if barrier is not None:
        barrier.wait()  # every thread starts at once
    p = predict(MODEL, 200 + 40 * i, ("0", "0.01")[i % 2], "0.1", digits=digits)
    out = [p.test_error, p.effective_ridge]
    for x in ("0.05", "0.1", "0.2", "0.4", "0.6", "0.9"):
        out.append(density_at(MODEL, x, layer=1 + i % 2, digits=digits))
    return tuple(mpmath.nstr(x, digits + 5) for x in out)


@pytest.mark.slow
def test_threads_compute_spectra_and_predictions_to_every_digit():
    serial = [_job(j) for j in JOBS]
    before = (mpmath.mp.prec, mpmath.mp.dps)
    for _ in range(2):
        results = [None] * len(JOBS)
        errors = []
        barrier = threading.Barrier(len(JOBS))

        def work(i, results=results, errors=errors, barrier=barrier):
            try:
                results[i] = _job(JOBS[i], barrier)
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
