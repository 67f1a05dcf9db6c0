"""Convex-loss readouts (square, logistic, hinge) on deep random features: the saddle-point equations.

The readout ``w = argmin (1/n) sum_mu loss(y_mu, <w, z_mu>) + lambda ||w||^2``
is trained on features ``z`` that are Gaussian-equivalent to a Gaussian
covariate model with covariance ``Omega_L`` and teacher cross-covariance
``E[z g] = Phi_L theta / sqrt d`` (``docs/classification.md``).  With
``omega = <w, z>`` on a fresh point, the order parameters are

    m = E[omega g],   q = E[omega^2],   V  (the response of the fit),

and, with ``kappa = kappa_L`` the effective ridge of the top layer and the
chain's functionals ``df1``, ``df2``, ``s`` and ``s_plus = s + kappa s'``
at ``kappa`` (:func:`rfq_theory.chain.walk`), the equations are

    feature side:  kappa = 2 lambda / Vh,       V = df1 / (n Vh),
                   m = (mh / Vh) s,             q = (mh / Vh)^2 s_plus + qh df2 / (n Vh^2),
    channel side:  Vh = E[(1 - d prox / d omega) / V],
                   qh = E[((prox - omega) / V)^2],
                   mh = E[((prox - omega) / V) (g - E[g|omega]) / Var(g|omega)],

where the expectations are over ``omega ~ N(0, q)``, the teacher's
``g | omega ~ N(m omega / q, 1 - m^2/q)`` and the label ``y | g``, and
``prox`` is the proximal operator of ``V loss(y, .)`` at ``omega``
(:mod:`rfq_theory.losses`).  ``Vh``, ``mh``, ``qh`` are the conjugate
order parameters per training sample (the replica literature's
``hat V / n`` and so on).

The solver works in the unknowns ``x = (log kappa_0, m, q)``: ``kappa_0``
fixes the whole chain (``kappa = kappa_L``, ``df1``, ``df2``, ``s``,
``s'``) and ``V = df1 kappa / (2 n lambda)``; the residuals are
``log(Vh kappa / (2 lambda))`` and the ``m``, ``q`` equations.  A Newton
iteration with a finite-difference Jacobian and backtracking, preceded by
damped fixed-point steps when Newton does not make progress, solves them
on the float path; the mpmath path polishes the float solution with
Newton steps at the working precision.

Square loss with regression labels is ridge regression: the channel
integrals are Gaussian moments in closed form and the equations reduce to
those of :func:`rfq_theory.solver.predict` (tested to 20 digits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .chain import Chain, SolverError, build_chain, walk
from .checks import InputError, check_digits, check_nonnegative, check_positive
from .gaussian import GUARD_DIGITS
from .losses import check_loss, margin_dprox, margin_loss, margin_prox, margin_threshold, ops
from .model import DeepRF
from .observables import chain_readout, sign_label_error, target_moments
from .precision import freeze, gauss_legendre_nodes
from .precision import mp as mpmath
from .readouts import TheoremResult
from .results import Diagnostics, float_numbers, result_repr, to_jsonable

__all__ = [
    "LABELS",
    "MIN_RIDGE",
    "GLMPrediction",
    "GLMTheorem",
    "predict_glm",
    "glm_theorem",
    "glm_sweep",
    "optimal_ridge_glm",
    "failed_glm_prediction",
    "label_constants",
    "predict_glm_spectrum",
]

#: Label models: ``regression`` (``y = f*(g) - E f* + eps``) and ``sign`` (``y = sign(f*(g) + sqrt(Delta) xi)``).
LABELS = ("regression", "sign")

#: smallest ridge per loss: below it the float saddle point leaves the range the solver resolves
#: (the logistic readout's norm grows like log(1/lambda) on separable data and its margins outgrow the
#: channel quadrature; the response V ~ 1/lambda of the others approaches overflow); the hinge loss
#: at 1e-100 is its max-margin limit, the square loss its minimum-norm limit, to float precision
MIN_RIDGE = {"logistic": 1e-15, "hinge": 1e-100, "square": 1e-100}
_FLOAT_TOL = 1e-13
_FLOAT_NODES = 32
_MAX_NEWTON = 60
_MAX_PICARD = 3000


@dataclass(frozen=True)
class GLMPrediction:
    """Asymptotic errors of a convex-loss readout on deep random features.

    Numbers are ``float`` on the fast path (``digits=None``) and
    ``mpmath.mpf`` otherwise.

    Attributes
    ----------
    test_error:
        ``P(y != sign(<w, z>))`` on a fresh pair for sign labels (label
        noise included); the mean squared error for regression labels.
    test_loss, train_loss:
        Mean loss on a fresh pair and at the optimum on the training set
        (without the penalty).
    train_error:
        Training classification error (sign labels); training mean squared
        error (regression labels).
    m, q, V:
        Order parameters ``E[omega g]``, ``E[omega^2]`` and the response ``V``.
    m_hat, q_hat, V_hat:
        Conjugate order parameters per training sample.
    effective_ridges:
        ``(kappa_0, ..., kappa_L)`` (``None`` for layers before a restart).
    df1, df2, s, s_prime:
        The chain's functionals at ``kappa_L``.
    residuals:
        Relative residuals of the three equations at the solution.
    iterations, converged:
        Outer iterations (float path plus mpmath polishing) and whether
        the tolerance was met (:func:`predict_glm` raises instead; a curve
        keeps a failed point as NaNs with ``converged`` False and ``message``).
    quad_error:
        Largest change of any reported number when the channel quadrature
        is refined (0 where the channel is in closed form).
    """

    test_error: object
    test_loss: object
    train_loss: object
    train_error: object
    m: object
    q: object
    V: object
    m_hat: object
    q_hat: object
    V_hat: object
    effective_ridges: tuple
    df1: object
    df2: object
    s: object
    s_prime: object
    samples: object
    ridge: object
    noise: object
    loss: str
    labels: str
    target: str
    digits: int | None
    residuals: tuple = ()
    iterations: int = 0
    converged: bool = True
    quad_error: object = 0
    layers: tuple = ()
    kappa0: object = field(default=None, repr=False)
    message: str = ""
    working_digits: int = 16

    _headline = (
        "test_error",
        "train_error",
        "test_loss",
        "train_loss",
        "m",
        "q",
        "V",
        "effective_ridges",
        "samples",
        "ridge",
        "loss",
        "labels",
    )
    __repr__ = result_repr

    @property
    def effective_ridge(self):
        """``kappa_L``."""
        return self.effective_ridges[-1]

    @property
    def diagnostics(self) -> Diagnostics:
        """The :class:`~rfq_theory.results.Diagnostics` record of this prediction."""
        if not self.converged:
            return Diagnostics.failed(self.message or "the saddle-point iteration did not converge")
        res = [float(r) for r in self.residuals]
        return Diagnostics(
            status="ok",
            message=self.message,
            iterations=self.iterations,
            residual=max(res) if res else 0.0,
            working_digits=16 if self.digits is None else int(self.working_digits),
            fallback="float" if self.digits is None else "mpmath",
        )

    def as_dict(self, digits=None):
        """JSON-ready dict (:func:`rfq_theory.results.to_jsonable`); numbers as strings of ``digits`` digits."""
        return to_jsonable(self, digits or self.digits or 17)


def failed_glm_prediction(samples, ridge, noise, loss, labels, target, digits, message) -> GLMPrediction:
    """A :class:`GLMPrediction` of NaNs for a point whose solve failed (``diagnostics.converged`` is False)."""
    nan = math.nan
    return GLMPrediction(
        test_error=nan,
        test_loss=nan,
        train_loss=nan,
        train_error=nan,
        m=nan,
        q=nan,
        V=nan,
        m_hat=nan,
        q_hat=nan,
        V_hat=nan,
        effective_ridges=(nan,),
        df1=nan,
        df2=nan,
        s=nan,
        s_prime=nan,
        samples=float(samples),
        ridge=float(ridge),
        noise=float(noise),
        loss=loss,
        labels=labels,
        target=str(target),
        digits=digits,
        residuals=(nan, nan, nan),
        converged=False,
        quad_error=nan,
        message=message,
    )


# --------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------


def _is_linear(target) -> bool:
    from .activations import get_activation

    return get_activation(target).name in ("linear", "identity", "u")


def label_constants(labels, target="linear", noise=0, digits=30):
    """``(var_y, c)`` with ``var_y = E y^2`` and ``c = E[y g]`` (mpf).

    Regression labels: ``var_y = Var f*(g) + Delta``, ``c = mu1(f*)``.
    Sign labels: ``var_y = 1`` and ``c = E[g sign(f*(g) + sqrt(Delta) xi)]``,
    ``sqrt(2 / (pi (1 + Delta)))`` for the linear target.

    Raises :class:`InputError` when sign labels are constant (e.g. an even,
    non-negative target without noise) or when the target is not linear
    (sign labels are implemented for ``f*(g) = g``).
    """
    with mpmath.workdps(digits + 5):
        delta = check_nonnegative(noise, "noise", digits + 5)
        if labels == "regression":
            rho, var_f = target_moments(target, digits)
            return var_f + delta, mpmath.sqrt(rho) * (1 if _mu1_sign(target, digits) >= 0 else -1)
        if labels != "sign":
            raise InputError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
        if not _is_linear(target):
            _check_sign_labels_not_constant(target, delta)
            raise InputError(f"labels='sign' is implemented for the linear target f*(g) = g; got target {target!r}")
        return mpmath.mpf(1), mpmath.sqrt(2 / (mpmath.pi * (1 + delta)))


def _mu1_sign(target, digits):
    from .activation_coefficients import coefficients

    return coefficients(target, 1, digits).mu1


def _check_sign_labels_not_constant(target, delta):
    """Raise :class:`InputError` if ``sign(f*(g) + sqrt(Delta) xi)`` is almost surely constant."""
    from .activations import get_activation

    fn = get_activation(target).numpy
    g = np.linspace(-8, 8, 2001)
    with np.errstate(all="ignore"):
        vals = np.asarray(fn(g), dtype=float) * np.ones_like(g)
    if delta == 0 and (np.all(vals >= 0) or np.all(vals <= 0)):
        raise InputError(
            f"labels='sign' with target {target!r} and noise 0 gives constant labels "
            "(the target does not change sign); use an odd target or noise > 0"
        )


# --------------------------------------------------------------------------
# the feature side: the chain at kappa_0
# --------------------------------------------------------------------------


@dataclass
class _Features:
    kappa0: object
    kappas: list
    k: object
    df1: object
    df2: object
    s: object
    s_prime: object
    splus: object = None

    @property
    def s_plus(self):
        """``s + kappa s'`` (computed without cancellation by :func:`_features_precise` at large ``kappa``)."""
        return self.s + self.k * self.s_prime if self.splus is None else self.splus


def _features(chain, kappa0, one):
    st = walk(chain, kappa0)
    if st is None:
        return None
    df2, s, s_prime = chain_readout(kappa0, st.kappa, st.dkappa, st.df1, st.ddf1, chain.signal, chain.measure)
    return _Features(kappa0, list(st.kappas), st.kappa, st.df1, df2, s, s_prime)


#: above this ``kappa_0`` the float path walks the chain in extended precision
#: (``df1 = k - ...`` and ``s + kappa s'`` cancel by a factor of about ``kappa``)
PRECISE_WALK_ABOVE = 1e3
#: the effective ridge is capped at ``2 lambda / Vh`` with ``Vh >= 2 lambda / KAPPA_CAP``: when the
#: channel's curvature vanishes (hinge loss with every margin on its linear piece, at large ridges)
#: the readout is the ``kappa -> infinity`` limit, reached here to ``1 / KAPPA_CAP`` relative
KAPPA_CAP = 1e30


def _mp_chain(chain):
    """The float ``chain``'s numbers as mpf (exactly: the same model, walked in higher precision)."""
    f = mpmath.mpf
    return Chain(
        f(chain.base_dim),
        f(chain.base_scale),
        chain.signal,
        tuple(tuple(f(v) for v in layer) for layer in chain.layers),
        chain.first,
        f(chain.rank),
        None if chain.measure is None else chain.measure.as_mp(),
    )


def _features_precise(chain, kappa0, kind):
    """The functionals at a large ``kappa_0`` with enough digits to cover the cancellations (rounded to ``kind``).

    ``df1 = k_L - ...``, its derivative and ``s_plus = s + kappa s'`` lose up
    to ``2 log10(kappa k_L)`` digits to cancellation; the walk runs with that
    many more digits.
    """
    big = max([float(chain.base_dim)] + [float(layer[1]) for layer in chain.layers])
    lost = 2 * math.log10(max(float(kappa0), 1.0)) + 2 * math.log10(max(big, 1.0))
    base = 17 if kind == "float" else mpmath.mp.dps
    with mpmath.workdps(int(base + lost + 10)):
        ch = _mp_chain(chain) if kind == "float" else chain
        k0 = mpmath.mpf(kappa0)
        st = walk(ch, k0)
        if st is None:
            return None
        df2, s, sp = chain_readout(k0, st.kappa, st.dkappa, st.df1, st.ddf1, ch.signal, ch.measure)
        vals = (st.kappa, st.df1, df2, s, sp, s + st.kappa * sp)
    conv = float if kind == "float" else (lambda v: +v)
    k, df1, df2, s, sp, splus = (conv(v) for v in vals)
    return _Features(kappa0, [conv(v) for v in st.kappas], k, df1, df2, s, sp, splus)


# --------------------------------------------------------------------------
# the channel
# --------------------------------------------------------------------------


class _Quadrature:
    """Gauss-Legendre nodes on pieces of ``[-T, T]`` (``t`` = ``omega / sqrt q``), float or mp."""

    _mp_cache: dict = {}
    _float_cache: dict = {}

    def __init__(self, kind, dps=None, level=0):
        self.kind = kind
        self.level = level
        if kind == "float":
            n = _FLOAT_NODES * (2 if level else 1)
            if n not in self._float_cache:
                self._float_cache[n] = np.polynomial.legendre.leggauss(n)
            self.base = self._float_cache[n]
            self.T = 12.0
            self.max_len = 4.0 / (1 + level)
        else:
            degree = (5 if dps <= 45 else 6 if dps <= 90 else 7) + level
            key = (degree, dps)
            if key not in self._mp_cache:
                nodes = gauss_legendre_nodes(degree)
                # frozen: shared by every thread, whatever its context's precision
                self._mp_cache[key] = ([freeze(x, dps) for x, _ in nodes], [freeze(w, dps) for _, w in nodes])
            xs, ws = self._mp_cache[key]
            self.base = (  # in this thread's context
                np.array([mpmath.mpf(x) for x in xs], dtype=object),
                np.array([mpmath.mpf(w) for w in ws], dtype=object),
            )
            self.T = mpmath.sqrt(2 * mpmath.log(10) * (dps + 8)) + 1
            self.max_len = mpmath.mpf(4) / (1 + level)

    def nodes(self, breaks, q):
        """Nodes ``t`` and weights ``w phi(t)`` over ``[-T, T]`` split at ``breaks`` (and pieces of bounded length)."""
        T = self.T
        pts = {-T, T}
        for b in breaks:
            if -T < b < T:
                pts.add(b)
        pts = sorted(pts)
        max_len = self.max_len / max(1, float(math.sqrt(float(q))) / 2)
        max_len = max(max_len, 0.05)
        xs, ws = [], []
        bx, bw = self.base
        for lo, hi in zip(pts[:-1], pts[1:]):
            pieces = max(1, int(math.ceil(float(hi - lo) / max_len)))
            step = (hi - lo) / pieces
            for j in range(pieces):
                a = lo + j * step
                half = step / 2
                xs.append(a + half + half * bx)
                ws.append(half * bw)
        t = np.concatenate(xs)
        w = np.concatenate(ws)
        xp = ops(self.kind)
        norm = math.sqrt(2 * math.pi) if self.kind == "float" else mpmath.sqrt(2 * mpmath.pi)
        return t, w * xp.exp(-t * t / 2) / norm


def _sign_channel(loss, m, q, V, delta, quad, want_outputs=False):
    """Channel integrals for ``y = sign(g + sqrt(Delta) xi)``; returns ``(Vh, mh, qh[, outputs])``."""
    xp = ops(quad.kind)
    one = xp.one
    sq = xp.sqrt(xp.asarray([q]))[0]
    st2 = delta + 1 - m * m / q
    if not st2 > 0:
        return None
    st = xp.sqrt(xp.asarray([st2]))[0]
    b = m / (sq * st)  # Z(y | t) = Phi(y b t)
    breaks = [0 * one, one * 3, -one * 3]
    if abs(b) > 0.5:  # Z(y | t) changes on the scale w0 = 1/|b| < 2 around t = 0
        w0 = abs(1 / b)
        for f in (1, 3, 6, 12):
            breaks += [w0 * f, -w0 * f]
    kinks = [one, one - V] if loss == "hinge" else []
    a0 = margin_threshold(loss, V)
    for kk in kinks + ([a0] if want_outputs else []):
        breaks += [kk / sq, -kk / sq]
    t, w = quad.nodes(breaks, q)
    omega = sq * t
    bt = b * t
    dens = xp.npdf(bt) / st
    Vh = mh = qh = 0 * one
    out = {"test_loss": 0 * one, "train_loss": 0 * one, "train_error": 0 * one}
    for y in (1, -1):
        Z = xp.ncdf(y * bt)
        a = y * omega
        u = margin_prox(loss, a, V, xp, guess=_float_guess(loss, a, V, xp))
        r = (u - a) / V
        du = margin_dprox(loss, u, a, V, xp)
        Vh += np.sum(w * Z * (1 - du)) / V
        qh += np.sum(w * Z * r * r)
        mh += np.sum(w * dens * r)
        if want_outputs:
            out["test_loss"] += np.sum(w * Z * margin_loss(loss, a, xp))
            out["train_loss"] += np.sum(w * Z * margin_loss(loss, u, xp))
            out["train_error"] += np.sum(w * Z * np.where(a < a0, one + 0 * a, 0 * a))
    if want_outputs:
        return Vh, mh, qh, out
    return Vh, mh, qh


def _float_guess(loss, a, V, xp):
    """Float-path proximal points as the starting point of the mp Newton iteration (logistic)."""
    if loss != "logistic" or xp.kind == "float":
        return None
    fa = np.array([float(v) for v in a])
    u = margin_prox(loss, fa, float(V), ops("float"))
    return np.array([mpmath.mpf(float(v)) for v in u], dtype=object)


def _regression_channel(m, q, V, var_y, c):
    """Square loss, real labels: Gaussian moments in closed form."""
    E = var_y - 2 * c * m + q
    den = 1 + 2 * V
    return 2 / den, 2 * c / den, 4 * E / (den * den), E


# --------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------


class _Problem:
    layers: tuple = ()

    def __init__(self, chain, n, lam, delta, var_y, c, loss, labels, kind, dps=None):
        self.chain, self.n, self.lam, self.delta = chain, n, lam, delta
        self.var_y, self.c, self.loss, self.labels = var_y, c, loss, labels
        self.kind = kind
        self.one = 1.0 if kind == "float" else mpmath.mpf(1)
        self.quad = _Quadrature(kind, dps) if labels == "sign" else None

    def features(self, kappa0, precise=True):
        """The feature-side functionals at the parameter ``kappa_0`` (``None`` off the branch).

        ``precise=False`` skips the extended-precision walk at large ``kappa_0``
        (enough for a bracket search that only needs the sign of a difference).
        """
        if precise and kappa0 > PRECISE_WALK_ABOVE:
            return _features_precise(self.chain, kappa0, self.kind)
        return _features(self.chain, kappa0, self.one)

    def kappa_L(self, kappa0):
        st = walk(self.chain, kappa0)
        return None if st is None else (st.kappas[-1], st.dkappas[-1])

    def log(self, x):
        return math.log(x) if self.kind == "float" else mpmath.log(x)

    def exp(self, x):
        return math.exp(x) if self.kind == "float" else mpmath.exp(x)

    def hats(self, m, q, V, quad=None, outputs=False):
        if self.labels == "regression":
            Vh, mh, qh, E = _regression_channel(m, q, V, self.var_y, self.c)
            if outputs:
                train = E / (1 + 2 * V) ** 2
                return Vh, mh, qh, {"test_loss": E, "train_loss": train, "train_error": train}
            return Vh, mh, qh
        return _sign_channel(self.loss, m, q, V, self.delta, quad or self.quad, outputs)

    def gmap(self, x):
        """The fixed-point map ``G(x)`` at ``x = (log kappa_0, m, q)`` and the quantities it used.

        From ``kappa_0``: the chain gives ``kappa``, ``df1`` and ``V = df1 kappa / (2 n lambda)``;
        the channel gives ``Vh, mh, qh``; the new ``kappa_0`` solves ``kappa_L(kappa_0) = 2 lambda / Vh``
        and the new ``m``, ``q`` follow from the feature-side equations there.
        Returns ``None`` outside the domain (``q <= m^2``, off the chain's branch).
        """
        lk0, m, q = x
        if not q > m * m or not q > 0:
            return None
        try:
            kappa0 = self.exp(lk0)
        except OverflowError:
            return None
        feat = self.features(kappa0)
        if feat is None:
            return None
        V = feat.df1 * feat.k / (2 * self.n * self.lam)
        if not V > 0:
            return None
        h = self.hats(m, q, V)
        if h is None:
            return None
        Vh, mh, qh = h
        if not Vh >= 0:
            return None
        Vh = max(Vh, 2 * self.lam / KAPPA_CAP)
        lk_new = self.invert(2 * self.lam / Vh, lk0)
        if lk_new is None:
            return None
        f2 = self.features(self.exp(lk_new))
        if f2 is None:
            return None
        ratio = mh / Vh
        m_new = ratio * f2.s
        q_new = ratio * ratio * f2.s_plus + qh * f2.df2 / (self.n * Vh * Vh)
        return (lk_new, m_new, q_new), (feat, V, Vh, mh, qh)

    def evaluate(self, x):
        """Residual ``G(x) - x`` and the quantities at ``x`` (``None`` outside the domain)."""
        g = self.gmap(x)
        if g is None:
            return None
        new, aux = g
        return tuple(a - b for a, b in zip(new, x)), aux

    def scaled_norm(self, r, x):
        sq = math.sqrt(x[2]) if self.kind == "float" else mpmath.sqrt(x[2])
        return max(abs(r[0]), abs(r[1]) / sq, abs(r[2]) / x[2])

    def invert(self, k_target, lk0):
        """``log kappa_0`` with ``kappa_L(kappa_0) = k_target``: Newton in logs inside a bracket."""
        lt = self.log(k_target)
        tol = 1e-15 if self.kind == "float" else mpmath.mpf(10) ** (-(mpmath.mp.dps - 2))
        lo = hi = None
        x = lk0
        for _ in range(500):
            st = self.kappa_L(self.exp(x))
            nx = None
            if st is None or not st[0] > 0:
                lo = x
            else:
                f = self.log(st[0]) - lt
                if abs(f) <= tol:
                    return x
                if f < 0:
                    lo = x
                else:
                    hi = x
                d = st[1] * self.exp(x) / st[0]
                if d > 0:
                    nx = x - f / d
            if lo is not None and hi is not None:
                if hi - lo <= tol * max(1, abs(hi)):
                    return hi
                if nx is None or not lo < nx < hi:
                    nx = (lo + hi) / 2
            elif nx is None or (lo is not None and nx <= lo) or (hi is not None and nx >= hi):
                nx = x + 1 if hi is None else x - 1
            x = nx
        return None

    def picard(self, x, damping=0.5, tol=1e-6, max_iter=_MAX_PICARD):
        """Damped fixed-point steps ``x <- (1 - d) x + d G(x)``; returns ``(x, iterations, converged)``."""
        it = 0
        for it in range(1, max_iter + 1):
            g = self.gmap(x)
            if g is None:
                return x, it, False
            new = g[0]
            err = self.scaled_norm(tuple(a - b for a, b in zip(new, x)), x)
            x = tuple((1 - damping) * a + damping * b for a, b in zip(x, new))
            if not x[2] > x[1] ** 2:
                x = (x[0], x[1], x[1] ** 2 * 1.01 + 1e-12)
            if err < tol:
                return x, it, True
        return x, it, False

    def jacobian(self, x, r, step, central=False):
        """Finite-difference Jacobian of the residual (forward, or central with ``central=True``)."""
        cols = []
        for i in range(3):
            sq = math.sqrt(x[2]) if self.kind == "float" else mpmath.sqrt(x[2])
            h = step * (max(1, abs(x[0])) if i == 0 else sq if i == 1 else x[2])
            xx = list(x)
            xx[i] = x[i] + h
            ev = self.evaluate(tuple(xx))
            if central:
                xx[i] = x[i] - h
                ev2 = self.evaluate(tuple(xx))
                if ev is None or ev2 is None:
                    return None
                cols.append([(a - b) / (2 * h) for a, b in zip(ev[0], ev2[0])])
                continue
            if ev is None:
                xx[i] = x[i] - h
                h = -h
                ev = self.evaluate(tuple(xx))
                if ev is None:
                    return None
            cols.append([(a - b) / h for a, b in zip(ev[0], r)])
        return [[cols[j][i] for j in range(3)] for i in range(3)]

    def newton(self, x, tol, max_iter=_MAX_NEWTON, step=1e-7):
        """Newton steps with backtracking on the scaled residual; returns ``(x, iterations, norm)``."""
        ev = self.evaluate(x)
        if ev is None:
            return x, 0, None
        r = ev[0]
        norm = self.scaled_norm(r, x)
        it = 0
        for it in range(1, max_iter + 1):
            if norm < tol:
                return x, it - 1, norm
            J = self.jacobian(x, r, step)
            if J is None:
                return x, it, norm
            dx = self._solve3(J, r)
            if dx is None:
                return x, it, norm
            t = 1
            accepted = False
            for _ in range(30):
                nx = tuple(a - t * b for a, b in zip(x, dx))
                ev2 = self.evaluate(nx)
                if ev2 is not None:
                    n2 = self.scaled_norm(ev2[0], nx)
                    if n2 < norm * (1 - 1e-4 * t):
                        x, r, norm = nx, ev2[0], n2
                        accepted = True
                        break
                t /= 2
            if not accepted:
                return x, it, norm
        return x, it, norm

    def chord(self, x, J, tol, max_iter=12):
        """Newton steps with a fixed Jacobian ``J`` (from the float path); returns ``(x, iterations, norm)``."""
        norm = None
        for it in range(max_iter + 1):
            ev = self.evaluate(x)
            if ev is None:
                return x, it, None
            r = ev[0]
            new_norm = self.scaled_norm(r, x)
            if norm is not None and not new_norm < norm:
                return x, it, new_norm
            norm = new_norm
            if norm < tol:
                return x, it, norm
            dx = self._solve3(J, r)
            if dx is None:
                return x, it, norm
            x = tuple(a - b for a, b in zip(x, dx))
        return x, max_iter, norm

    def _solve3(self, J, r):
        if self.kind == "float":
            try:
                return list(np.linalg.solve(np.array(J, dtype=float), np.array(r, dtype=float)))
            except np.linalg.LinAlgError:
                return None
        try:
            sol = mpmath.lu_solve(mpmath.matrix(J), mpmath.matrix(list(r)))
        except ZeroDivisionError:
            return None
        return [sol[i] for i in range(3)]


def _initial_guess(prob: _Problem):
    """The square-loss (ridge) solution for labels with the same ``E y^2`` and ``E[y g]``."""
    n, lam = prob.n, prob.lam

    def lam_of(lk0):
        f = prob.features(math.exp(lk0), precise=False)
        if f is None:
            return None
        return f.k * (1 - f.df1 / n)

    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        v = lam_of(mid)
        if v is None or v < lam:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14:
            break
    lk0 = hi
    feat = prob.features(math.exp(lk0))
    c, var_y = float(prob.c), float(prob.var_y)
    E = (var_y - c * c * (feat.s - feat.k * feat.s_prime)) / (1 - feat.df2 / n)
    m = c * feat.s
    q = c * c * feat.s_plus + feat.df2 / n * E
    return (lk0, m, q)


def _float_solve(prob: _Problem, guess=None):
    """Newton on ``G(x) - x`` from ``guess`` or the ridge solution; damped fixed-point steps if Newton stalls."""
    x0 = guess if guess is not None else _initial_guess(prob)
    total = 0
    x, it, norm = prob.newton(x0, _FLOAT_TOL)
    total += it
    if norm is None or not norm < _FLOAT_TOL:
        x, it, _ = prob.picard(x0 if norm is None else x, damping=0.5, tol=1e-4)
        total += it
        x, it, norm = prob.newton(x, _FLOAT_TOL)
        total += it
    if norm is None or not norm < _FLOAT_TOL * 100:
        raise SolverError(
            f"the saddle-point iteration did not converge (scaled residual {norm if norm is not None else 'undefined'} "
            f"after {total} iterations)"
        )
    return x, total, norm


def predict_glm(
    model: DeepRF,
    samples,
    ridge,
    noise=0,
    target="linear",
    labels="sign",
    loss="logistic",
    digits: int | None = None,
    guess=None,
) -> GLMPrediction:
    """Asymptotic test/train error and loss of a convex-loss readout on ``model``'s features.

    Parameters
    ----------
    model:
        A :class:`~rfq_theory.model.DeepRF`.
    samples:
        ``n > 0``.
    ridge:
        ``lambda > 0`` (the penalty is ``lambda ||w||^2`` next to the mean loss).
    noise:
        ``Delta >= 0``: the label-noise variance (regression) or the probit
        noise ``y = sign(g + sqrt(Delta) xi)`` (sign labels).
    target:
        ``f*`` (sign labels: the linear target).
    labels:
        ``"regression"`` or ``"sign"``.
    loss:
        ``"square"``, ``"logistic"`` or ``"hinge"`` (the last two need sign labels).
    digits:
        ``None`` for the float path, else the significant digits of the
        mpmath path.
    guess:
        Optional warm start ``(log kappa_0, m, q)`` (float), e.g. from the
        previous point of a sweep.

    Notes
    -----
    Solves the saddle-point equations of the module docstring and returns a
    :class:`GLMPrediction`.  Raises :class:`InputError` for bad input and
    :class:`~rfq_theory.solver.SolverError` when the iteration does not converge.
    """
    if not isinstance(model, DeepRF):
        raise InputError(f"model must be a DeepRF, got {type(model).__name__}")
    if labels not in LABELS:
        raise InputError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    check_loss(loss)
    if labels == "regression" and loss != "square":
        raise InputError(f"loss {loss!r} needs labels 'sign' (+-1 labels); regression labels use the square loss")
    if digits is not None:
        digits = check_digits(digits)
    check_positive(samples, "samples")
    lam_mp = check_nonnegative(ridge, "ridge")
    check_nonnegative(noise, "noise")
    if lam_mp == 0:
        if loss == "square" and labels == "regression":
            raise InputError("ridge must be > 0 here; for the ridgeless square-loss readout use rfq_theory.predict")
        raise InputError(
            f"ridge must be > 0 for the {loss} loss with {labels} labels: at ridge = 0 the {loss} readout is "
            "the max-margin limit in the separable regime, which is not implemented"
        )
    if float(lam_mp) < MIN_RIDGE[loss] * (1 - 1e-12):
        raise InputError(
            f"ridge must be >= {MIN_RIDGE[loss]:g} for the {loss} loss, got {ridge!r}: smaller ridges are "
            "outside the range the convex-loss solver resolves (see 'Limits' in docs/classification.md)"
        )
    extra = max(0, int(-mpmath.log10(lam_mp)) + 2)
    var_y_mp, c_mp = label_constants(labels, target, noise, max(30, (digits or 0) + GUARD_DIGITS + extra))
    # float path
    fprob = _make_problem(model, samples, ridge, noise, var_y_mp, c_mp, loss, labels, "float", 17)
    x, iters, norm = _float_solve(fprob, guess)
    if digits is None:
        return _finish(fprob, x, iters, None, target)
    work = digits + GUARD_DIGITS + min(extra, 400)
    with mpmath.workdps(work):
        prob = _make_problem(model, samples, ridge, noise, var_y_mp, c_mp, loss, labels, "mp", work)
        xm = (mpmath.mpf(x[0]), mpmath.mpf(x[1]), mpmath.mpf(x[2]))
        tol = mpmath.mpf(10) ** (-(work - 4))
        Jf = fprob.jacobian(x, None, 1e-5, central=True)
        if Jf is not None:
            J = [[mpmath.mpf(v) for v in row] for row in Jf]
            xm, it, norm = prob.chord(xm, J, tol)
            iters += it
        if Jf is None or norm is None or not norm < tol:
            step = mpmath.mpf(10) ** (-(work // 2))
            xm, it, norm = prob.newton(xm, tol, max_iter=30, step=step)
            iters += it
        if norm is None or not norm < tol:
            raise SolverError(
                f"the mpmath saddle-point iteration did not converge at {work} digits "
                f"(scaled residual {mpmath.nstr(norm, 5) if norm is not None else 'undefined'})"
            )
        pred = _finish(prob, xm, iters, digits, target)
    return pred


def _make_problem(model, samples, ridge, noise, var_y, c, loss, labels, kind, dps):
    to_number = float if kind == "float" else mpmath.mpf
    layers = model.layers(dps if kind == "mp" else 17)
    sizes = [to_number(k) for k in model.sizes(max(30, dps))]
    n = to_number(check_positive(samples, "samples", max(30, dps)))
    lam = to_number(check_nonnegative(ridge, "ridge", max(30, dps)))
    delta = to_number(check_nonnegative(noise, "noise", max(30, dps)))
    chain = build_chain(sizes, layers, to_number, measure=model.base_measure(dps if kind == "mp" else None))
    prob = _Problem(chain, n, lam, delta, to_number(var_y), to_number(c), loss, labels, kind, dps)
    prob.layers = tuple(layers)
    return prob


class _SpectrumProblem(_Problem):
    """The same equations with the functionals of a realized spectrum (parameter: ``kappa`` itself).

    ``df1(k) = sum w_i/(w_i + k)``, ``df2(k) = sum w_i^2/(w_i + k)^2``,
    ``s(k) = (1/d) sum r_i/(w_i + k)``, ``s'(k) = -(1/d) sum r_i/(w_i + k)^2``.
    """

    def __init__(self, omega, r, input_dim, *args):
        super().__init__(None, *args)
        self.omega = np.asarray(omega, dtype=float)
        self.r = np.asarray(r, dtype=float)
        self.d = float(input_dim)
        self.layers = ()

    def features(self, k, precise=True):
        if not k > 0:
            return None
        den = self.omega + k
        frac = self.omega / den
        s = float(np.sum(self.r / den)) / self.d
        sp = -float(np.sum(self.r / den**2)) / self.d
        return _Features(k, [k], k, float(np.sum(frac)), float(np.sum(frac * frac)), s, sp)

    def kappa_L(self, k):
        return (k, 1.0)


def predict_glm_spectrum(omega, r, input_dim, samples, ridge, noise=0, labels="sign", loss="logistic"):
    """The saddle point on a realized spectrum (float path): the finite-size route.

    ``omega`` are the eigenvalues of a drawn network's ``Omega_L`` and
    ``r_i = ||row_i(U^T Phi_L)||^2`` the teacher weights in its eigenbasis
    (``validation.montecarlo.finite_size.finite_size_spectrum``); the
    functionals are those of :class:`_SpectrumProblem`; sign labels use the
    linear target.
    """
    check_loss(loss)
    lam = float(check_positive(ridge, "ridge"))
    var_y, c = label_constants(labels, "linear", noise, 30)
    prob = _SpectrumProblem(
        omega, r, input_dim, float(samples), lam, float(noise), float(var_y), float(c), loss, labels, "float"
    )
    x, iters, _ = _float_solve(prob)
    return _finish(prob, x, iters, None, "linear")


def _outputs(prob, m, q, V, quad=None):
    Vh, mh, qh, out = prob.hats(m, q, V, quad=quad, outputs=True)
    if prob.labels == "sign":
        test = sign_label_error(m, q, prob.delta)
    else:
        test = out["test_loss"]
    return Vh, mh, qh, test, out


def _finish(prob: _Problem, x, iters, digits, target):
    ev = prob.evaluate(x)
    if ev is None:
        raise SolverError("the saddle-point solution left the physical domain")
    r, (feat, V, Vh, mh, qh) = ev
    m, q = x[1], x[2]
    Vh, mh, qh, test, out = _outputs(prob, m, q, V)
    quad_err = 0 * prob.one
    if prob.labels == "sign":
        fine = _Quadrature(prob.kind, None if prob.kind == "float" else mpmath.mp.dps, level=1)
        Vh2, mh2, qh2, _, out2 = _outputs(prob, m, q, V, quad=fine)
        diffs = [abs(Vh2 - Vh), abs(mh2 - mh), abs(qh2 - qh)] + [abs(out2[key] - out[key]) for key in out]
        quad_err = max(diffs)
        limit = 1e-12 if prob.kind == "float" else mpmath.mpf(10) ** (-(mpmath.mp.dps - GUARD_DIGITS + 3))
        if quad_err > limit:
            raise SolverError(
                f"the channel quadrature did not reach the requested accuracy (change on refinement {quad_err})"
            )
    residuals: tuple = (
        abs(r[0]),
        abs(r[1]) / max(abs(m), prob.one * 1e-300 if prob.kind == "float" else mpmath.mpf(10) ** -300)
        if m != 0
        else abs(r[1]),
        abs(r[2]) / q,
    )
    chain = prob.chain
    kappas = tuple([None] * chain.first + list(feat.kappas)) if chain is not None else (feat.k,)
    if prob.kind == "mp":  # numbers of fixed precision, independent of this thread's context from now on
        dps = mpmath.mp.dps
        fz = lambda v: None if v is None else freeze(v, dps)  # noqa: E731
        test, m, q, V, mh, qh, Vh, quad_err = (fz(v) for v in (test, m, q, V, mh, qh, Vh, quad_err))
        out = {key: fz(v) for key, v in out.items()}
        kappas = tuple(fz(v) for v in kappas)
        residuals = tuple(fz(v) for v in residuals)
        feat = _Features(
            fz(feat.kappa0), feat.kappas, fz(feat.k), fz(feat.df1), fz(feat.df2), fz(feat.s), fz(feat.s_prime)
        )
        prob.n, prob.lam, prob.delta = fz(prob.n), fz(prob.lam), fz(prob.delta)
    pred = GLMPrediction(
        test_error=test,
        test_loss=out["test_loss"],
        train_loss=out["train_loss"],
        train_error=out["train_error"],
        m=m,
        q=q,
        V=V,
        m_hat=mh,
        q_hat=qh,
        V_hat=Vh,
        effective_ridges=kappas,
        df1=feat.df1,
        df2=feat.df2,
        s=feat.s,
        s_prime=feat.s_prime,
        samples=prob.n,
        ridge=prob.lam,
        noise=prob.delta,
        loss=prob.loss,
        labels=prob.labels,
        target=str(target),
        digits=digits,
        residuals=residuals,
        iterations=iters,
        converged=True,
        quad_error=quad_err,
        layers=prob.layers,
        kappa0=feat.kappa0,
        working_digits=16 if prob.kind == "float" else int(mpmath.mp.dps),
        message=(
            "every training margin lies on the linear piece of the loss: the readout is its infinite-ridge "
            f"limit w = mean(y z) / (2 lambda) (kappa_L capped at {KAPPA_CAP:g})"
            if feat.k >= KAPPA_CAP * 0.5
            else ""
        ),
    )
    return float_numbers(pred) if prob.kind == "float" else pred


# --------------------------------------------------------------------------
# derived: theorem and sweep
# --------------------------------------------------------------------------


#: the one-bit comparison of a convex-loss readout (the same record as the ridge readout's)
GLMTheorem = TheoremResult


def glm_theorem(model: DeepRF, samples, ridge, noise=0, target="linear", labels="sign", loss="logistic", digits=None):
    """:func:`predict_glm` for ``model`` with every layer at full precision, ``sign`` and ``sign-scaled``.

    :func:`rfq_theory.readouts.theorem` with a :class:`~rfq_theory.readouts.ConvexLossReadout`.
    """
    from .readouts import ConvexLossReadout, theorem

    return theorem(ConvexLossReadout(loss, labels), model, samples, ridge, noise, target, digits)


def glm_sweep(
    model: DeepRF,
    vary,
    values,
    samples=None,
    ridge=None,
    noise=0,
    target="linear",
    labels="sign",
    loss="logistic",
    digits=None,
    progress=None,
    ratio: bool = False,
):
    """:func:`predict_glm` over a grid of one axis (``samples``, ``width``, ``widths``, ``ridge``), warm-started.

    :func:`rfq_theory.readouts.curve` with a :class:`~rfq_theory.readouts.ConvexLossReadout`
    (absolute values, or ratios to ``d`` for ``samples``/``width`` with ``ratio=True``);
    returns a :class:`~rfq_theory.results.Curve`.  A point that does not
    converge is NaN with ``diagnostics.converged`` False.
    """
    from .readouts import ConvexLossReadout, curve

    return curve(
        ConvexLossReadout(loss, labels),
        model,
        vary,
        values,
        samples,
        ridge,
        noise,
        target,
        digits,
        progress,
        ratio=ratio,
    )


def optimal_ridge_glm(
    model: DeepRF, samples, noise=0, target="linear", labels="sign", loss="logistic", digits=None, bounds=None
):
    """The ridge minimising the test (classification) error of a convex-loss readout.

    :func:`rfq_theory.readouts.optimal_ridge` with a :class:`~rfq_theory.readouts.ConvexLossReadout`
    (default search interval :data:`rfq_theory.readouts.CONVEX_BOUNDS`).
    """
    from .readouts import ConvexLossReadout, optimal_ridge

    return optimal_ridge(ConvexLossReadout(loss, labels), model, samples, noise, target, digits, bounds)
