"""The convex-loss saddle point over many lanes at once (float, NumPy): the batched solver of phase maps.

The equations are those of :mod:`rfq_theory.glm` (``docs/classification.md``)
in the unknowns ``x = (log kappa_0, m, q)`` per lane; the feature side is the
vectorized walk of :mod:`rfq_theory.batch`, the channel integrals are
Gauss-Legendre sums over ``t = omega / sqrt(q)`` on ``[-T, T]`` split at the
same break points as the scalar solver (the label kink at ``t = 0``, the
scale ``1 / |b|`` of ``Z(y | t)``, the hinge kinks, the training threshold)
and on a uniform grid fine enough for the largest ``q`` of the batch; every
lane has the same number of nodes (empty pieces weigh nothing), so one
array operation serves all lanes.

The iteration is the scalar float path's: Newton steps with a forward
difference Jacobian and backtracking on the scaled residual, from the
ridge solution with the same ``E y^2`` and ``E[y g]``.  Lanes that do not
reach the tolerance are re-solved one by one with
:func:`rfq_theory.glm.predict_glm` (flagged in ``BatchResult.fallback``);
those that fail there are NaN with ``converged`` False.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .batch import ChainModel, _lane_chain, _walk
from .chain import Chain
from .checks import InputError
from .model import DeepRF
from .observables import chain_readout, sign_label_error

__all__ = ["solve_glm_lanes", "optimal_ridge_glm_lanes"]

_NODES = 16
_T = 12.0
_TOL = 1e-13
_MAX_NEWTON = 60
#: lanes per pass (a pass holds a few arrays of lanes x nodes)
_CHUNK = 1024


@dataclass
class _Setup:
    ch: ChainModel
    sizes: list  # per-lane sizes k_0..k_L
    n: np.ndarray
    lam: np.ndarray
    delta: np.ndarray
    var_y: np.ndarray
    c: np.ndarray
    loss: str
    labels: str
    ids: np.ndarray | None = None  # lane indices into the cache's rows
    cache: dict | None = None  # the last proximal points of each lane (warm starts)

    @cached_property
    def chain(self) -> Chain:
        """The lanes' :class:`~rfq_theory.chain.Chain` (built once per set of lanes, walked at every step)."""
        return _lane_chain(self.ch, self.sizes)

    def take(self, idx):
        ids = np.arange(self.n.shape[0]) if self.ids is None else self.ids
        return _Setup(
            self.ch,
            [s[idx] for s in self.sizes],
            self.n[idx],
            self.lam[idx],
            self.delta[idx],
            self.var_y[idx],
            self.c[idx],
            self.loss,
            self.labels,
            ids[idx],
            self.cache,
        )


def _features(st: _Setup, k0):
    """``kappa_L, dkappa_L/dkappa_0, df1, df2, s, s_plus`` at arrays ``k0`` and a validity mask."""
    with np.errstate(all="ignore"):
        wk = _walk(st.chain, k0)
        k = wk.kappa
        df2, s, sp = chain_readout(k0, k, wk.dkappa, wk.df1, wk.ddf1, st.ch.signal, st.ch.measure)
    ok = wk.valid & (k > 0) & np.isfinite(k)
    return k, wk.dkappa, wk.df1, df2, s, s + k * sp, sp, ok


# --------------------------------------------------------------------------
# the channel
# --------------------------------------------------------------------------


def _gl(n):
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


_GL = _gl(_NODES)


def _nodes(breaks, max_len):
    """Nodes ``t`` and weights ``w phi(t)`` per lane: ``breaks`` (lanes x K) plus a uniform grid of step <= max_len."""
    N = breaks.shape[0]
    G = int(math.ceil(2 * _T / max_len))
    grid = np.broadcast_to(np.linspace(-_T, _T, G + 1), (N, G + 1))
    pts = np.sort(np.concatenate([np.clip(breaks, -_T, _T), grid], axis=1), axis=1)
    lo, hi = pts[:, :-1], pts[:, 1:]
    half = 0.5 * (hi - lo)
    x, w = _GL
    t = (lo + half)[:, :, None] + half[:, :, None] * x
    wt = half[:, :, None] * w
    t = t.reshape(N, -1)
    wt = wt.reshape(N, -1) * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    return t, wt


def _logistic_prox(a, V, guess=None):
    """Root ``u`` of ``u - V sigmoid(-u) = a`` per node: Newton inside the bracket ``[a, a + V]``, active nodes only.

    ``guess`` (same shape, NaN where unknown) replaces the start ``a + V sigmoid(-a)``.
    """
    from scipy.special import expit

    V = np.broadcast_to(V, a.shape)
    u = a + V * expit(-a)
    lo, hi = a.copy(), a + V
    if guess is not None:
        u = np.where(np.isfinite(guess) & (guess > lo) & (guess < hi), guess, u)
    idx = np.arange(a.size)
    uf, lof, hif, af, Vf = u.ravel().copy(), lo.ravel(), hi.ravel(), a.ravel(), V.ravel()
    olderf = np.abs(hif - lof) * 4 + 1
    lastf = olderf.copy()
    for _ in range(200):
        if not idx.size:
            break
        uu, aa, vv = uf[idx], af[idx], Vf[idx]
        sg = expit(-uu)
        g = uu - vv * sg - aa
        step = g / (1 + vv * sg * (1 - sg))
        l, h = np.where(g < 0, uu, lof[idx]), np.where(g > 0, uu, hif[idx])
        lof[idx], hif[idx] = l, h
        new = uu - step
        # bisect where Newton leaves the bracket or does not halve the step before last (rtsafe rule)
        out = (new < l) | (new > h) | (2 * np.abs(step) > olderf[idx])
        olderf[idx], lastf[idx] = lastf[idx], np.abs(np.where(out, 0.5 * (l + h), new) - uu)
        done = ~np.isfinite(g) | (np.abs(step) <= 1e-14 * (np.abs(uu) + 1))
        uf[idx] = np.where(done, new, np.where(out, 0.5 * (l + h), new))
        idx = idx[~done]
    uf[idx] = np.nan  # not settled: the lane fails here and goes to the scalar solver
    return uf.reshape(a.shape)


def _prox(loss, a, V, guess=None):
    from .losses import margin_dprox, margin_prox, ops

    xp = ops("float")
    u = _logistic_prox(a, V, guess) if loss == "logistic" else margin_prox(loss, a, V, xp)
    return u, margin_dprox(loss, u, a, V, xp)


def _sign_channel(loss, m, q, V, delta, outputs=False, ids=None, cache=None):
    """Channel integrals of the sign labels per lane: ``Vh, mh, qh`` (and the outputs); NaN off the domain.

    Lanes are grouped by the uniform grid their ``q`` needs (piece length
    ``4 / max(1, sqrt(q) / 2)``, at least 0.05, as the scalar solver), the
    grid of a group rounded up to a power of two pieces.
    """
    with np.errstate(all="ignore"):
        sq = np.nan_to_num(np.sqrt(q), nan=1.0)
        max_len = np.maximum(0.05, 4.0 / np.maximum(1.0, sq / 2))
    G = np.ceil(2 * _T / max_len)
    bucket = 2.0 ** np.ceil(np.log2(np.maximum(G, 8)))
    groups = np.unique(bucket)
    if groups.size == 1:
        return _sign_channel_group(loss, m, q, V, delta, 2 * _T / groups[0], outputs, ids, cache)
    Vh, mh, qh = (np.full_like(q, np.nan) for _ in range(3))
    out = {k: np.full_like(q, np.nan) for k in ("test_loss", "train_loss", "train_error")}
    for b in groups:
        sel = np.flatnonzero(bucket == b)
        res = _sign_channel_group(
            loss, m[sel], q[sel], V[sel], delta[sel], 2 * _T / b, outputs, None if ids is None else ids[sel], cache
        )
        Vh[sel], mh[sel], qh[sel] = res[:3]
        if outputs:
            for k in out:
                out[k][sel] = res[3][k]
    return (Vh, mh, qh, out) if outputs else (Vh, mh, qh)


def _warm(cache, ids, omega, Vc):
    """Proximal starts from the lane's last solve at the same node count: ``u + du (omega - omega_last)``."""
    if cache is None or ids is None:
        return None
    got = cache.get(omega.shape[1])
    if got is None:
        return None
    om, u, du, Vl = got
    with np.errstate(all="ignore"):
        guess = u[ids] + du[ids] * (omega - om[ids])
    guess[~(np.abs(Vl[ids] - Vc[:, 0]) <= 1e-3 * Vc[:, 0])] = np.nan
    return guess


def _remember(cache, ids, omega, Vc, u, du):
    if cache is None or ids is None:
        return
    M = omega.shape[1]
    if M not in cache:
        n = cache["lanes"]
        cache[M] = (np.full((n, M), np.nan), np.full((n, M), np.nan), np.zeros((n, M)), np.full(n, np.nan))
    om, uu, dd, Vl = cache[M]
    om[ids], uu[ids], dd[ids], Vl[ids] = omega, u, du, Vc[:, 0]


def _sign_channel_group(loss, m, q, V, delta, max_len, outputs=False, ids=None, cache=None):
    from scipy.special import ndtr

    from .losses import margin_loss, margin_threshold, ops

    xp = ops("float")
    with np.errstate(all="ignore"):
        sq = np.sqrt(q)
        st2 = delta + 1 - m * m / q
        st = np.sqrt(st2)
        b = m / (sq * st)
        w0 = np.abs(1 / b)
        big = np.abs(b) > 0.5
        cols = [np.zeros_like(q), np.full_like(q, 3.0), np.full_like(q, -3.0)]
        for f in (1, 3, 6, 12):
            cols += [np.where(big, w0 * f, 0.0), np.where(big, -w0 * f, 0.0)]
        kinks = [np.ones_like(q), 1 - V] if loss == "hinge" else []
        a0 = margin_threshold(loss, V)
        for kk in kinks + ([a0] if outputs else []):
            cols += [kk / sq, -kk / sq]
        breaks = np.stack([np.where(np.isfinite(c), c, 0.0) for c in cols], axis=1)
        t, w = _nodes(breaks, max_len)
        omega = sq[:, None] * t
        bt = b[:, None] * t
        dens = np.exp(-0.5 * bt * bt) / math.sqrt(2 * math.pi) / st[:, None]
        Vc = V[:, None]
        Vh = np.zeros_like(q)
        mh = np.zeros_like(q)
        qh = np.zeros_like(q)
        out = {"test_loss": np.zeros_like(q), "train_loss": np.zeros_like(q), "train_error": np.zeros_like(q)}
        if loss == "logistic":
            u_plus, du_plus = _prox(loss, omega, Vc, _warm(cache, ids, omega, Vc))
            _remember(cache, ids, omega, Vc, u_plus, du_plus)
        else:
            u_plus, du_plus = _prox(loss, omega, Vc)
        # the label y = -1 at node t contributes what y = +1 contributes at -t (the channel is
        # symmetric under y, omega, g -> -y, -omega, -g and so are the nodes and weights): twice y = +1
        Z = ndtr(bt)
        a, u, du = omega, u_plus, du_plus
        r = (u - a) / Vc
        w2 = 2 * w
        Vh += np.sum(w2 * Z * (1 - du), axis=1) / V
        qh += np.sum(w2 * Z * r * r, axis=1)
        mh += np.sum(w2 * dens * r, axis=1)
        if outputs:
            out["test_loss"] += np.sum(w2 * Z * margin_loss(loss, a, xp), axis=1)
            out["train_loss"] += np.sum(w2 * Z * margin_loss(loss, u, xp), axis=1)
            out["train_error"] += np.sum(w2 * Z * (a < a0[:, None]), axis=1)
    bad = ~(st2 > 0)
    for arr in (Vh, mh, qh):
        arr[bad] = np.nan
    return (Vh, mh, qh, out) if outputs else (Vh, mh, qh)


def _hats(st: _Setup, m, q, V, outputs=False):
    if st.labels == "regression":
        E = st.var_y - 2 * st.c * m + q
        den = 1 + 2 * V
        res = (2 / den, 2 * st.c / den, 4 * E / (den * den))
        if outputs:
            train = E / den**2
            return (*res, {"test_loss": E, "train_loss": train, "train_error": train})
        return res
    return _sign_channel(st.loss, m, q, V, st.delta, outputs, st.ids, st.cache)


# --------------------------------------------------------------------------
# the fixed-point map and Newton's method over lanes
# --------------------------------------------------------------------------


def _invert(st: _Setup, k_target, lk0):
    """``log kappa_0`` per lane with ``kappa_L(kappa_0) = k_target`` (Newton in logs inside a bracket); NaN if none."""
    with np.errstate(all="ignore"):
        lt = np.log(k_target)
        x = lk0.copy()
        lo = np.full_like(x, -np.inf)
        hi = np.full_like(x, np.inf)
        done = ~np.isfinite(lt) | ~np.isfinite(x)
        result = np.full_like(x, np.nan)
        for _ in range(500):
            act = ~done
            if not act.any():
                break
            k, dk, *_rest, ok = _features(st, np.exp(x))
            f = np.log(k) - lt
            good = ok & (k > 0)
            hit = act & good & (np.abs(f) <= 1e-15)
            result[hit] = x[hit]
            done |= hit
            act = ~done
            below = act & (~good | (f < 0))
            above = act & good & (f > 0)
            lo = np.where(below, x, lo)
            hi = np.where(above, x, hi)
            d = dk * np.exp(x) / k
            nx = np.where(good & (d > 0), x - f / d, np.nan)
            both = np.isfinite(lo) & np.isfinite(hi)
            narrow = act & both & (hi - lo <= 1e-15 * np.maximum(1, np.abs(hi)))
            result[narrow] = hi[narrow]
            done |= narrow
            inside = (nx > lo) & (nx < hi)
            nx = np.where(both & ~inside, 0.5 * (lo + hi), nx)
            one_side = ~both & (~np.isfinite(nx) | (nx <= lo) | (nx >= hi))
            nx = np.where(one_side, np.where(np.isfinite(hi), x - 1, x + 1), nx)
            x = np.where(done, x, nx)
        return result


def _gmap(st: _Setup, x):
    """``G(x)`` per lane (rows of ``x``: ``log kappa_0, m, q``) and ``(V, Vh, mh, qh)``; NaN rows off the domain."""
    lk0, m, q = x[:, 0], x[:, 1], x[:, 2]
    with np.errstate(all="ignore"):
        dom = (q > m * m) & (q > 0) & (lk0 < 700)
        k0 = np.exp(np.where(dom, lk0, 0.0))
        k, _, df1, *_r, ok = _features(st, k0)
        V = df1 * k / (2 * st.n * st.lam)
        dom &= ok & (V > 0)
        safe = lambda a, v: np.where(dom, a, v)  # noqa: E731
        Vh, mh, qh = _hats(st, safe(m, 0.0), safe(q, 1.0), safe(V, 1.0))
        dom &= Vh > 0
        lk_new = _invert(st, np.where(dom, 2 * st.lam / Vh, np.nan), lk0)
        dom &= np.isfinite(lk_new)
        _, _, _, df2, s, s_plus, _, ok2 = _features(st, np.exp(np.where(dom, lk_new, 0.0)))
        dom &= ok2
        ratio = mh / Vh
        m_new = ratio * s
        q_new = ratio * ratio * s_plus + qh * df2 / (st.n * Vh * Vh)
    g = np.stack([lk_new, m_new, q_new], axis=1)
    g[~dom] = np.nan
    return g, (V, Vh, mh, qh)


def _residual(st, x):
    g, aux = _gmap(st, x)
    return g - x, aux


def _norm(r, x):
    with np.errstate(all="ignore"):
        n = np.maximum(np.abs(r[:, 0]), np.maximum(np.abs(r[:, 1]) / np.sqrt(x[:, 2]), np.abs(r[:, 2]) / x[:, 2]))
    return np.where(np.isfinite(n), n, np.inf)


def _fd_jacobian(sub: _Setup, xa, ra):
    """Forward-difference Jacobian of the residual per lane (backward where the forward point leaves the domain)."""
    J = np.empty((xa.shape[0], 3, 3))
    scale = np.stack([np.maximum(1, np.abs(xa[:, 0])), np.sqrt(xa[:, 2]), xa[:, 2]], axis=1)
    ok = np.ones(xa.shape[0], dtype=bool)
    for i in range(3):
        h = 1e-7 * scale[:, i]
        xx = xa.copy()
        xx[:, i] += h
        rr, _ = _residual(sub, xx)
        bad = ~np.all(np.isfinite(rr), axis=1)
        if bad.any():
            xb = xa[bad].copy()
            xb[:, i] -= h[bad]
            rb, _ = _residual(sub.take(np.flatnonzero(bad)), xb)
            rr[bad] = rb
            h = np.where(bad, -h, h)
        J[:, :, i] = (rr - ra) / h[:, None]
        ok &= np.all(np.isfinite(rr), axis=1)
    return J, ok


def _newton(st: _Setup, x, tol=_TOL, max_iter=_MAX_NEWTON):
    """Quasi-Newton steps with backtracking, lane by lane; returns ``(x, norm, iterations)``.

    The Jacobian is a forward difference at the start and after a rejected
    step, Broyden's rank-one update after an accepted one (one evaluation of
    ``G`` per step instead of four).
    """
    N = x.shape[0]
    r, _ = _residual(st, x)
    norm = _norm(r, x)
    iters = np.zeros(N, dtype=np.int32)
    active = np.isfinite(norm) & (norm >= tol)
    J = np.zeros((N, 3, 3))
    fresh = np.zeros(N, dtype=bool)  # J of the lane is a finite difference at its current point
    for _ in range(3 * max_iter):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        sub = st.take(idx)
        xa, ra = x[idx], r[idx]
        iters[idx] += 1
        Ja = J[idx]
        okJ = np.ones(idx.size, dtype=bool)
        need = np.flatnonzero(~fresh[idx] & (iters[idx] == 1) | ~fresh[idx] & np.all(Ja == 0, axis=(1, 2)))
        need = np.union1d(need, np.flatnonzero(~np.isfinite(Ja).all(axis=(1, 2))))
        if need.size:
            Jn, okn = _fd_jacobian(sub.take(need), xa[need], ra[need])
            Ja[need], okJ[need] = Jn, okn
            fresh[idx[need]] = True
        with np.errstate(all="ignore"):
            det = np.linalg.det(np.where(okJ[:, None, None], Ja, np.eye(3)))
        okJ &= np.isfinite(det) & (det != 0)
        dx = np.zeros_like(xa)
        if okJ.any():
            dx[okJ] = np.linalg.solve(Ja[okJ], ra[okJ][:, :, None])[:, :, 0]
        na = norm[idx].copy()
        t = np.ones(idx.size)
        pending = okJ.copy()
        accepted = np.zeros(idx.size, dtype=bool)
        xnew, rnew = xa.copy(), ra.copy()
        tries = 30
        for k in range(tries):
            p = np.flatnonzero(pending)
            if not p.size:
                break
            if k == 3:  # a quasi-Newton direction that needs more halvings: refresh its Jacobian instead
                stale = p[~fresh[idx[p]]]
                pending[stale] = False
                p = np.flatnonzero(pending)
                if not p.size:
                    break
            nx = xa[p] - t[p, None] * dx[p]
            rn, _ = _residual(sub.take(p), nx)
            nn = _norm(rn, nx)
            acc = nn < na[p] * (1 - 1e-4 * t[p])
            ap = p[acc]
            xnew[ap], rnew[ap], na[ap] = nx[acc], rn[acc], nn[acc]
            accepted[ap] = True
            pending[ap] = False
            t[p[~acc]] /= 2
        # Broyden update for the accepted lanes; a fresh finite difference next time for the others
        sx = xnew - xa
        yr = rnew - ra
        with np.errstate(all="ignore"):
            denom = np.einsum("ij,ij->i", sx, sx)
            corr = (yr - np.einsum("ijk,ik->ij", Ja, sx)) / denom[:, None]
            Ja = np.where(accepted[:, None, None], Ja + corr[:, :, None] * sx[:, None, :], Ja)
        stalled = ~accepted & fresh[idx]
        J[idx] = Ja
        fresh[idx] = False
        J[idx[~accepted]] = 0.0  # forces a finite difference
        x[idx], r[idx], norm[idx] = xnew, rnew, na
        active[idx] = ~stalled & (na >= tol) & (iters[idx] < max_iter)
    return x, norm, iters


def _picard(st: _Setup, x, damping=0.5, tol=1e-4, max_iter=3000):
    """Damped fixed-point steps ``x <- (1 - d) x + d G(x)`` per lane until the scaled change is below ``tol``."""
    x = x.copy()
    active = np.ones(x.shape[0], dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        xa = x[idx]
        g, _ = _gmap(st.take(idx), xa)
        err = _norm(g - xa, xa)
        off = ~np.all(np.isfinite(g), axis=1)
        new = (1 - damping) * xa + damping * g
        fix = ~(new[:, 2] > new[:, 1] ** 2)
        new[fix, 2] = new[fix, 1] ** 2 * 1.01 + 1e-12
        new[off] = xa[off]
        x[idx] = new
        active[idx] = ~off & ~(err < tol)
    return x


def _initial_guess(st: _Setup):
    """The ridge solution per lane for labels with the same ``E y^2`` and ``E[y g]`` (bisection in ``log kappa_0``)."""
    N = st.n.shape[0]
    lo = np.full(N, -40.0)
    hi = np.full(N, 40.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        k, _, df1, *_r, ok = _features(st, np.exp(mid))
        with np.errstate(all="ignore"):
            v = k * (1 - df1 / st.n)
        below = ~ok | ~(v >= st.lam)
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    k, _, _, df2, s, s_plus, sp, _ = _features(st, np.exp(hi))
    with np.errstate(all="ignore"):
        E = (st.var_y - st.c * st.c * (s - k * sp)) / (1 - df2 / st.n)
        m = st.c * s
        q = st.c * st.c * s_plus + df2 / st.n * E
    return np.stack([hi, m, q], axis=1)


def _outputs(st: _Setup, x):
    """The reported numbers at converged rows ``x``."""
    lk0, m, q = x[:, 0], x[:, 1], x[:, 2]
    k, _, df1, df2, *_r = _features(st, np.exp(lk0))
    V = df1 * k / (2 * st.n * st.lam)
    Vh, mh, qh, out = _hats(st, m, q, V, outputs=True)
    with np.errstate(all="ignore"):
        if st.labels == "sign":
            test = sign_label_error(m, q, st.delta)
        else:
            test = out["test_loss"]
    return dict(
        test_error=test,
        train_error=out["train_error"],
        train_loss=out["train_loss"],
        test_loss=out["test_loss"],
        m=m,
        q=q,
        V=V,
        kappa=k,
        kappa0=np.exp(lk0),
        df1=df1,
        df2=df2,
    )


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------

_KEYS = ("test_error", "train_error", "train_loss", "test_loss", "m", "q", "V", "kappa", "kappa0", "df1", "df2")


def _setup(model, samples, ridge, noise, target, labels, loss, input_dim, widths):
    from .batch import _lanes, chain_model
    from .glm import LABELS, label_constants
    from .losses import check_loss

    check_loss(loss)
    if labels not in LABELS:
        raise InputError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    if labels == "regression" and loss != "square":
        raise InputError(f"loss {loss!r} needs labels 'sign' (+-1 labels); regression labels use the square loss")
    ch = chain_model(model, target)
    shape, n, lam, delta, sizes = _lanes(model, samples, ridge, noise, input_dim, widths)
    from .glm import MIN_RIDGE

    if not np.all(lam >= MIN_RIDGE[loss] * (1 - 1e-12)):
        raise InputError(
            f"ridge must be >= {MIN_RIDGE[loss]:g} for the {loss} loss with {labels} labels, got min {lam.min()!r}"
        )
    var_y = np.empty_like(n)
    c = np.empty_like(n)
    for dv in np.unique(delta):
        vy, cc = label_constants(labels, target, repr(float(dv)), 30)
        var_y[delta == dv], c[delta == dv] = float(vy), float(cc)
    st = _Setup(ch, sizes, n, lam, delta, var_y, c, loss, labels)
    return shape, st, sizes


def _nearest(st: _Setup, which, among):
    """For each lane of ``which`` the index into ``among`` of the closest lane in the logarithms of its inputs."""
    feats = [np.log(st.n), np.log(st.lam), np.log1p(st.delta)] + [np.log(s) for s in st.sizes]
    F = np.stack(feats, axis=1)
    d = ((F[which][:, None, :] - F[among][None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def _solve_setup(st: _Setup, guess=None):
    """Solve every lane of ``st``; returns ``(outputs dict, x, norm, iterations)``."""
    N = st.n.shape[0]
    outs = {k: np.full(N, np.nan) for k in _KEYS}
    X = np.full((N, 3), np.nan)
    norms = np.full(N, np.inf)
    iters = np.zeros(N, dtype=np.int32)
    for start in range(0, N, _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, N))
        sub = st.take(idx)
        sub.ids, sub.cache = np.arange(idx.size), {"lanes": idx.size}
        x0 = _initial_guess(sub) if guess is None else guess[idx].copy()
        if guess is not None:  # lanes without a usable warm start start from the ridge solution
            cold = ~np.all(np.isfinite(x0), axis=1)
            if cold.any():
                x0[cold] = _initial_guess(sub.take(np.flatnonzero(cold)))
        x, norm, it = _newton(sub, x0)
        stalled = np.flatnonzero(~(norm < _TOL))
        solved = np.flatnonzero(norm < _TOL)
        if stalled.size and solved.size:  # start from the nearest solved lane (continuation across the map)
            ss = sub.take(stalled)
            near = solved[_nearest(sub, stalled, solved)]
            xs, ns, its = _newton(ss, x[near].copy())
            better = ns < norm[stalled]
            x[stalled[better]], norm[stalled[better]] = xs[better], ns[better]
            it[stalled] += its
            stalled = np.flatnonzero(~(norm < _TOL))
        if stalled.size:  # as the scalar path: damped fixed-point steps, then Newton again
            ss = sub.take(stalled)
            start = np.where(np.isfinite(norm[stalled])[:, None], x[stalled], x0[stalled])
            xs, ns, its = _newton(ss, _picard(ss, start))
            better = ns < norm[stalled]
            x[stalled[better]], norm[stalled[better]] = xs[better], ns[better]
            it[stalled] += its
        if guess is not None:
            retry = np.flatnonzero(~(norm < _TOL * 100))
            if retry.size:
                xr, nr, ir = _newton(sub.take(retry), _initial_guess(sub.take(retry)))
                better = nr < norm[retry]
                x[retry[better]], norm[retry[better]] = xr[better], nr[better]
                it[retry] += ir
        ok = norm < _TOL * 100
        X[idx], norms[idx], iters[idx] = x, norm, it
        if ok.any():
            o = _outputs(sub.take(np.flatnonzero(ok)), x[ok])
            for k in _KEYS:
                outs[k][idx[ok]] = o[k]
    return outs, X, norms, iters


def solve_glm_lanes(
    model: DeepRF,
    samples,
    ridge,
    noise=0.0,
    target="linear",
    labels="sign",
    loss="logistic",
    *,
    input_dim=None,
    widths=None,
    fallback: str = "scalar",
    progress: bool | None = None,
    warn: bool = True,
    guess=None,
):
    """The convex-loss readout at many points at once (float); a :class:`~rfq_theory.batch.BatchResult`.

    ``samples``, ``ridge`` (``> 0``), ``noise``, ``input_dim`` and the
    entries of ``widths`` broadcast as in :func:`rfq_theory.batch.solve_batch`.
    ``test_error`` is the classification error (sign labels) or the mean
    squared error (regression labels); ``extra`` holds ``train_loss``,
    ``test_loss``, ``m``, ``q`` and ``V``.  Lanes the vectorized Newton
    iteration does not settle are re-solved with the scalar
    :func:`rfq_theory.glm.predict_glm` (``fallback`` ``"scalar"``, marked in
    ``BatchResult.fallback``; any other value of ``fallback`` other than
    ``"none"`` means the same) or left NaN (``"none"``).
    """
    from .batch import RIDGE, BatchResult, _report_failures

    shape, st, sizes = _setup(model, samples, ridge, noise, target, labels, loss, input_dim, widths)
    N = st.n.shape[0]
    g = None if guess is None else np.asarray(guess, dtype=float).reshape(N, 3)
    outs, X, norms, iters = _solve_setup(st, g)
    conv = np.isfinite(outs["test_error"])
    fb = np.zeros(N, dtype=bool)
    messages = []
    todo = np.flatnonzero(~conv)
    if todo.size and fallback != "none":
        outs, conv, fb, X = _scalar_fallback(model, st, sizes, todo, target, outs, conv, fb, X)
        messages.append(f"{int(fb.sum())} lane(s) re-solved with the scalar convex-loss solver")
    _report_failures(conv, N, messages, warn)
    rank = st.chain.rank
    extra = {k: outs[k].reshape(shape) for k in ("train_loss", "test_loss", "m", "q", "V")}
    extra["x"] = X.reshape(shape + (3,))
    return BatchResult(
        test_error=outs["test_error"].reshape(shape),
        train_error=outs["train_error"].reshape(shape),
        effective_ridge=outs["kappa"].reshape(shape),
        kappa0=outs["kappa0"].reshape(shape),
        df1=outs["df1"].reshape(shape),
        df2=outs["df2"].reshape(shape),
        rank=rank.reshape(shape),
        regime=np.full(shape, RIDGE, dtype=np.int8),
        converged=conv.reshape(shape),
        iterations=iters.reshape(shape),
        fallback=fb.reshape(shape),
        residual=np.where(conv, np.minimum(norms, 1.0), np.nan).reshape(shape),
        double_double=np.zeros(shape, dtype=bool),
        extra=extra,
        messages=messages,
    )


def _scalar_fallback(model, st, sizes, todo, target, outs, conv, fb, X):
    from .batch import _exact, _lane_model
    from .glm import predict_glm
    from .solver import SolverError

    for i in todo:
        mdl = _lane_model(model, sizes[0][i], [s[i] for s in sizes[1:]])
        try:
            p = predict_glm(mdl, _exact(st.n[i]), _exact(st.lam[i]), _exact(st.delta[i]), target, st.labels, st.loss)
        except (SolverError, ArithmeticError, InputError):
            continue
        for k in ("test_error", "train_error", "train_loss", "test_loss", "m", "q", "V", "df1", "df2", "kappa0"):
            outs[k][i] = float(getattr(p, k))
        outs["kappa"][i] = float(p.effective_ridge)
        X[i] = (math.log(float(p.kappa0)), float(p.m), float(p.q))
        conv[i] = True
        fb[i] = True
    return outs, conv, fb, X


def optimal_ridge_glm_lanes(
    model: DeepRF,
    samples,
    noise=0.0,
    target="linear",
    labels="sign",
    loss="logistic",
    *,
    input_dim=None,
    widths=None,
    bounds=None,
    tol: float = 1e-6,
    fallback: str = "scalar",
    progress: bool | None = None,
    warn: bool = True,
):
    """The ridge minimising the test error per lane: a scan of ``log lambda`` then golden sections (warm-started).

    Returns an :class:`~rfq_theory.batch.OptimalRidgeResult`; ``ridge`` is
    ``lambda*`` within ``bounds`` (default
    :data:`rfq_theory.readouts.CONVEX_BOUNDS`), located to ``tol`` in
    ``log10 lambda``.
    """
    from .batch import OptimalRidgeResult, _report_failures
    from .readouts import CONVEX_BOUNDS

    lo_b, hi_b = bounds or CONVEX_BOUNDS
    shape, st, sizes = _setup(model, samples, 1.0, noise, target, labels, loss, input_dim, widths)
    N = st.n.shape[0]

    def err_at(loglam, guess):
        sub = _Setup(st.ch, st.sizes, st.n, 10.0**loglam, st.delta, st.var_y, st.c, st.loss, st.labels)
        o, x, _, it = _solve_setup(sub, guess)
        e = np.where(np.isfinite(o["test_error"]), o["test_error"], np.inf)
        return e, x, it

    grid = np.linspace(math.log10(lo_b), math.log10(hi_b), 10)
    errs, guess = [], None
    iters = np.zeros(N, dtype=np.int64)
    for g in grid:
        e, guess, it = err_at(np.full(N, g), guess)
        errs.append(e)
        iters += it
    err_grid = np.array(errs)
    j = np.argmin(err_grid, axis=0)
    a = grid[np.maximum(j - 1, 0)]
    b = grid[np.minimum(j + 1, grid.size - 1)]
    gr = (math.sqrt(5) - 1) / 2
    c = b - gr * (b - a)
    d = a + gr * (b - a)
    fc, xc, _ = err_at(c, None)
    fd, xd, _ = err_at(d, xc)
    while np.max(b - a) > tol:
        left = fc < fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        d_new = np.where(left, c, a + gr * (b - a))
        c_new = np.where(left, b - gr * (b - a), d)
        f_keep = np.where(left, fc, fd)
        x_keep = np.where(left[:, None], xc, xd)
        point = np.where(left, c_new, d_new)
        fp, xp, it = err_at(point, x_keep)
        iters += it
        fc, fd = np.where(left, fp, f_keep), np.where(left, f_keep, fp)
        xc, xd = np.where(left[:, None], xp, x_keep), np.where(left[:, None], x_keep, xp)
        c, d = c_new, d_new
    best = 0.5 * (a + b)
    e, _, _ = err_at(best, np.where((fc < fd)[:, None], xc, xd))
    conv = np.isfinite(e)
    if fallback != "none" and not conv.all():
        pass  # lanes without a finite error stay NaN
    ridge = np.where(conv, 10.0**best, np.nan)
    messages: list = []
    at_edge = conv & ((best <= grid[0] + 10 * tol) | (best >= grid[-1] - 10 * tol))
    if at_edge.any():
        messages.append(f"{int(at_edge.sum())} lane(s) have their minimum on the edge of the ridge bounds {bounds}")
    _report_failures(conv, N, messages, warn)
    rank = st.chain.rank
    return OptimalRidgeResult(
        ridge=ridge.reshape(shape),
        test_error=np.where(conv, e, np.nan).reshape(shape),
        converged=conv.reshape(shape),
        fallback=np.zeros(shape, dtype=bool),
        iterations=iters.reshape(shape),
        rank=rank.reshape(shape),
        messages=messages,
    )
