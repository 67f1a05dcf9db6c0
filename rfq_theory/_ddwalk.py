"""Double-double (about 32 digits) arithmetic on NumPy arrays, and the chain walk in it.

A number is a pair ``(hi, lo)`` of float arrays with ``|lo| <= ulp(hi)/2``;
the error-free transformations are Knuth's two-sum and Dekker's two-product
(with Veltkamp splitting; no fused multiply-add is needed).  Used by
:mod:`rfq_theory.batch` to refine the lanes whose float walk amplifies
rounding errors too much: the walk, the root and the errors are recomputed
with about 32 significant digits, so an amplification ``A`` costs
``A * 1e-32`` instead of ``A * 1e-16``.
"""

from __future__ import annotations

import numpy as np

_SPLIT = 134217729.0  # 2^27 + 1


def two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def quick_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


def _split(a):
    t = _SPLIT * a
    hi = t - (t - a)
    return hi, a - hi


def two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def dd(x, lo=None):
    """A double-double from floats (``lo`` defaults to 0)."""
    x = np.asarray(x, dtype=float)
    return x, (np.zeros_like(x) if lo is None else np.broadcast_to(np.asarray(lo, float), x.shape).copy())


def add(a, b):
    s, e = two_sum(a[0], b[0])
    t, f = two_sum(a[1], b[1])
    e = e + t
    s, e = quick_two_sum(s, e)
    e = e + f
    return quick_two_sum(s, e)


def neg(a):
    return -a[0], -a[1]


def sub(a, b):
    return add(a, neg(b))


def mul(a, b):
    p, e = two_prod(a[0], b[0])
    e = e + (a[0] * b[1] + a[1] * b[0])
    return quick_two_sum(p, e)


def div(a, b):
    q1 = a[0] / b[0]
    r = sub(a, mul(b, (q1, np.zeros_like(q1))))
    q2 = r[0] / b[0]
    r = sub(r, mul(b, (q2, np.zeros_like(q2))))
    q3 = r[0] / b[0]
    q = quick_two_sum(q1, q2)
    return add(q, (q3, np.zeros_like(q3)))


def walk(base_dim, base_scale, layers, k0):
    """The chain walk of :func:`rfq_theory.batch._walk` in double-double.

    ``base_dim``: dd array ``k_first``; ``base_scale``: dd scalar pair;
    ``layers``: list of ``(k_prev, k, a, c)`` dd pairs; ``k0``: dd array.
    Returns ``(kappa_L, dkappa_L, df1, ddf1, valid)``.
    """
    one = dd(np.ones_like(k0[0]))
    kap, dkap = k0, one
    den = add(base_scale, k0)
    D = div(mul(base_dim, base_scale), den)
    dD = neg(div(D, den))
    valid = np.ones(k0[0].shape, dtype=bool)
    for kp, k, a, c in layers:
        gap = sub(k, D)
        akp = div(a, kp)
        new = sub(mul(mul(akp, kap), gap), c)
        valid &= new[0] > 0
        dnew = mul(akp, sub(mul(dkap, gap), mul(kap, dD)))
        D_new = sub(k, div(new, mul(akp, kap)))
        # dD = -(k_prev/a) (dnew kap - new dkap) / kap^2
        dD = neg(div(sub(mul(dnew, kap), mul(new, dkap)), mul(akp, mul(kap, kap))))
        D = D_new
        kap, dkap = new, dnew
    return kap, dkap, D, dD, valid


def _pair(x):
    """``(hi, lo)`` floats of an mpf (at the caller's working precision)."""
    from .precision import mp as mpmath

    hi = float(x)
    return hi, float(x - mpmath.mpf(hi))


def coefficients(model, target, first):
    """Layer numbers of ``model`` after the restart ``first`` and the target moments, as dd scalars.

    Computed at 34 digits, so that the coefficients themselves carry no
    float rounding (a rounding of ``kappastar_L^2`` would be amplified like
    any other).  Returns ``(base_scale, [(a, c)...], rho, var_f)``.
    """
    from .precision import mp as mpmath
    from .solver import target_moments

    layers = model.layers(34)
    with mpmath.workdps(40):
        rho, var_f = target_moments(target, 34)
        base = layers[first - 1].kappa_star ** 2 if first > 0 else mpmath.mpf(1)
        ac = [(_pair(lc.kappa1**2), _pair(lc.kappa_star**2)) for lc in layers[first:]]
        return _pair(base), ac, _pair(rho), _pair(var_f)


def refine(model, target, first, signal, sizes, n, lam, delta, over, k0, iterations=8):
    """Re-solve lanes in double-double from float roots ``k0``.

    ``sizes``: float arrays ``k_first..k_L`` of the lanes; ``over`` marks
    ridgeless over-parameterized lanes (equation ``df1_L = n``), the others
    solve ``kappa_L (1 - df1_L/n) = lambda``.  Newton steps in double-double
    until the step is below ``1e-28`` relative.  Returns a dict of float
    arrays ``test_error, train_error, kappa, df1, df2, denom`` and the masks
    ``converged`` and ``valid``.
    """
    base_scale, ac, rho, var_f = coefficients(model, target, first)
    m = k0.shape[0]

    def full(p):
        return np.full(m, p[0]), np.full(m, p[1])

    c0 = full(base_scale)
    sz = [dd(s) for s in sizes]
    layers = [(sz[j], sz[j + 1], full(a), full(c)) for j, (a, c) in enumerate(ac)]
    nn, ll, de = dd(n), dd(lam), dd(delta)
    one = dd(np.ones(m))
    x = dd(k0)
    conv = np.zeros(m, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            kap, dkap, D, dD, valid = walk(sz[0], c0, layers, x)
            q = sub(one, div(D, nn))
            f_r = sub(mul(kap, q), ll)
            df_r = sub(mul(dkap, q), div(mul(kap, dD), nn))
            f_o, df_o = sub(nn, D), neg(dD)
            f = (np.where(over, f_o[0], f_r[0]), np.where(over, f_o[1], f_r[1]))
            df = (np.where(over, df_o[0], df_r[0]), np.where(over, df_o[1], df_r[1]))
            step = div(f, df)
            x = sub(x, step)
            conv = np.abs(step[0]) <= 1e-28 * np.abs(x[0])
            if conv.all():
                break
        kap, dkap, D, dD, valid = walk(sz[0], c0, layers, x)
        df2 = add(D, div(mul(kap, dD), dkap))
        denom = sub(one, div(df2, nn))
        if signal:
            s = div(one, add(one, x))
            sp = neg(div(mul(s, s), dkap))
            s_minus = sub(s, mul(kap, sp))
            num = sub(full(var_f), mul(full(rho), s_minus))
        else:
            s = sp = dd(np.zeros(m))
            num = full(var_f)
        test = div(add(num, de), denom)
        ratio = div(ll, kap)
        train = mul(mul(ratio, ratio), test)
    return {
        "test_error": test[0],
        "train_error": np.where(over, 0.0, train[0]),
        "kappa": kap[0],
        "kappa0": x[0],
        "df1": D[0],
        "df2": df2[0],
        "denom": denom[0],
        "s": s[0],
        "s_prime": sp[0],
        "converged": conv & np.isfinite(test[0]),
        "valid": valid,
    }
