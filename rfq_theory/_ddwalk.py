"""Double-double (about 32 digits) arithmetic on NumPy arrays, and lanes re-solved in it.

A number is a pair ``(hi, lo)`` of float arrays with ``|lo| <= ulp(hi)/2``;
the error-free transformations are Knuth's two-sum and Dekker's two-product
(with Veltkamp splitting; no fused multiply-add is needed).  Used by
:mod:`rfq_theory.batch` to refine the lanes whose float walk amplifies
rounding errors too much: the walk, the root and the errors are recomputed
with about 32 significant digits, so an amplification ``A`` costs
``A * 1e-32`` instead of ``A * 1e-16``.  The walk and the equations are
those of :mod:`rfq_theory.chain` applied to :class:`DD` numbers.
"""

from __future__ import annotations

import numpy as np

from .chain import Arithmetic, Chain, ridge_equation, ridgeless_equation, walk_state
from .observables import chain_readout, error_terms, train_error

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


class DD:
    """Double-double numbers on lanes: arrays ``hi`` and ``lo`` with operators (for :mod:`rfq_theory.chain`).

    Floats, ints and float arrays mix in as double-doubles with ``lo = 0``;
    comparisons look at ``hi`` (exact for the sign, as ``|lo| <= ulp(hi)/2``).
    """

    __slots__ = ("hi", "lo")
    __array_ufunc__ = None  # NumPy defers to the reflected operators

    def __init__(self, hi, lo=None):
        self.hi, self.lo = dd(hi, lo)

    @classmethod
    def _of(cls, x):
        if isinstance(x, DD):
            return x
        return cls(x)

    @classmethod
    def _wrap(cls, pair):
        out = object.__new__(cls)
        out.hi, out.lo = pair
        return out

    def _pair(self):
        return self.hi, self.lo

    def __add__(self, other):
        return DD._wrap(add(self._pair(), DD._of(other)._pair()))

    __radd__ = __add__

    def __sub__(self, other):
        return DD._wrap(sub(self._pair(), DD._of(other)._pair()))

    def __rsub__(self, other):
        return DD._wrap(sub(DD._of(other)._pair(), self._pair()))

    def __mul__(self, other):
        return DD._wrap(mul(self._pair(), DD._of(other)._pair()))

    __rmul__ = __mul__

    def __truediv__(self, other):
        return DD._wrap(div(self._pair(), DD._of(other)._pair()))

    def __rtruediv__(self, other):
        return DD._wrap(div(DD._of(other)._pair(), self._pair()))

    def __neg__(self):
        return DD._wrap(neg(self._pair()))

    def __gt__(self, other):
        return (self - other).hi > 0

    def __lt__(self, other):
        return (self - other).hi < 0

    def __getitem__(self, idx):
        return DD._wrap((self.hi[idx], self.lo[idx]))


#: the chain's arithmetic on double-double lanes (no cancellation bound: the float walk supplies it)
DD_LANES = type("DDLanes", (Arithmetic,), {"lanes": True, "condition": False})()


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
    on the walk of :mod:`rfq_theory.chain` until the step is below ``1e-28``
    relative.  Returns a dict of float arrays ``test_error, train_error,
    kappa, kappa0, df1, df2, denom, s, s_prime`` and the masks ``converged``
    and ``valid``.
    """
    base_scale, ac, rho, var_f = coefficients(model, target, first)
    m = k0.shape[0]

    def full(p):
        return DD(np.full(m, p[0]), np.full(m, p[1]))

    sz = [DD(s) for s in sizes]
    layers = tuple((sz[j], sz[j + 1], full(a), full(c)) for j, (a, c) in enumerate(ac))
    chain = Chain(sz[0], full(base_scale), signal, layers, first, None)  # the rank is not needed here
    nn, ll, de = DD(n), DD(lam), DD(delta)
    x = DD(k0)
    conv = np.zeros(m, dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            st = walk_state(chain, x, DD_LANES)
            f_r, df_r = ridge_equation(st, nn, ll)
            f_o, df_o = ridgeless_equation(st, nn)
            f = DD(np.where(over, f_o.hi, f_r.hi), np.where(over, f_o.lo, f_r.lo))
            df = DD(np.where(over, df_o.hi, df_r.hi), np.where(over, df_o.lo, df_r.lo))
            step = f / df
            x = x - step
            conv = np.abs(step.hi) <= 1e-28 * np.abs(x.hi)
            if conv.all():
                break
        st = walk_state(chain, x, DD_LANES)
        kap = st.kappa
        df2, s, sp = chain_readout(x, kap, st.dkappa, st.df1, st.ddf1, signal)
        denom = 1 - df2 / nn
        rho_eff = full(rho) if signal else 0 * x
        _, _, test = error_terms(full(var_f), de, rho_eff, s - kap * sp, df2, nn, denom)
        train = train_error(test, nn, ll, kap, None)  # ridge lanes: the rank does not enter
    return {
        "test_error": test.hi,
        "train_error": np.where(over, 0.0, train.hi),
        "kappa": kap.hi,
        "kappa0": x.hi,
        "df1": st.df1.hi,
        "df2": df2.hi,
        "denom": denom.hi,
        "s": s.hi,
        "s_prime": sp.hi,
        "converged": conv & np.isfinite(test.hi),
        "valid": st.valid,
    }
