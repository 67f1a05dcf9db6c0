"""Limiting eigenvalue densities of every layer and of the conjugate kernel (``docs/spectra.md``).

With ``a_l = kappa1_l^2``, ``c_l = kappastar_l^2`` and ``F_l`` of i.i.d.
unit-variance entries over ``sqrt(k_{l-1})``, the Gaussian-equivalent
feature covariances are

    Omega_0 = I_d,    Omega_l = a_l F_l Omega_{l-1} F_l^T + c_l I_{k_l}.

The solver's layer chain (``rfq_theory.solver``) holds for complex
arguments.  Writing ``D_l = df1_l(kappa_l) = tr Omega_l (Omega_l + kappa_l)^-1``,

    D_0 = k_0 c_0 / (c_0 + kappa_0),
    kappa_l = a_l kappa_{l-1} (k_l - D_{l-1}) / k_{l-1} - c_l,
    D_l     = D_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1})

(the last line is ``D_l = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})``
rewritten without cancellation).  The Stieltjes transform
``m_l(z) = (1/k_l) tr (Omega_l - z)^-1`` follows from
``df1_l(-z) = k_l (1 + z m_l(z))``: solve ``kappa_l(kappa_0) = -z`` for the
complex ``kappa_0`` on the branch with ``Im m_l > 0`` (continued in
``eta = Im z`` from large ``eta`` where the branch is unique) and read

    m_l(z) = (D_l / k_l - 1) / z,       density_l(x) = Im m_l(x + i0) / pi.

The conjugate kernel ``K = Z Z^T / k_L`` of ``n`` feature vectors (rows of
``Z`` Gaussian-equivalent to ``N(0, Omega_L)``) is one more layer with
``k = n``, ``a = 1``, ``c = 0``.

Moments ``M_j(l) = (1/k_l) tr Omega_l^j``, ``j = 1..4``, are exact: the free
cumulants of ``B_l = F_l Omega_{l-1} F_l^T`` are
``r_j = (k_l / k_{l-1})^{j-1} M_j(l-1)`` (a compound free Poisson law), its
moments follow from the moment-cumulant formula on non-crossing
partitions, and ``Omega_l = a_l B_l + c_l I`` by the binomial theorem.

The walk is :func:`rfq_theory.chain.walk_state` in its complex arithmetic.
Two number paths share these equations: a float path vectorized over the
grid of ``x`` (NumPy complex arrays, adaptive continuation in ``eta`` per
point) and an mpmath path at any precision, run in the calling thread's
private mpmath context (:mod:`rfq_theory.precision`), so that several
threads may compute spectra at different precisions at once.  The public
entries add :data:`GUARD` digits once; the chain's coefficients are
computed to that working precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .chain import COMPLEX, Chain, SolverError, build_chain, omega_rank, walk_state
from .checks import InputError, check_digits, check_positive, format_number
from .model import DeepRF
from .precision import freeze, is_mpf
from .precision import mp as mpmath
from .results import result_repr

__all__ = [
    "LayerSpectrum",
    "Spectrum",
    "spectrum",
    "layer_spectrum",
    "cdf",
    "spectrum_chain",
    "spectral_moments",
    "stieltjes",
    "density_at",
    "support_bound",
]

GUARD = 10  # extra digits of the mpmath path
_COARSE_UNIFORM = 320
_COARSE_LOG = 80
_REFINE_POINTS = 24
_REFINE_ROUNDS = 3


# --------------------------------------------------------------------------
# Chains for each layer and for the conjugate kernel
# --------------------------------------------------------------------------


def _check_model(model):
    if not isinstance(model, DeepRF):
        raise InputError(f"model must be a DeepRF, got {type(model).__name__}")


def _check_samples(samples, dps=30):
    if samples is None:
        return None
    return check_positive(samples, "samples", dps)


def spectrum_chain(model: DeepRF, layer: int, samples=None, digits: int | None = None) -> Chain:
    """The layer chain whose top matrix is ``Omega_layer`` (or the kernel when ``samples`` is given).

    ``layer`` is ``0..L``; the coefficients of layers ``1..layer`` enter (a
    layer with ``kappa1 = 0`` restarts the chain from ``kappastar^2 I``).
    With ``samples = n`` one noiseless linear layer ``(k_layer, n, 1, 0)`` is
    appended: ``K = Z Z^T / k_layer``.  Numbers are floats when ``digits``
    is ``None``, else mpf frozen at ``digits + GUARD`` digits (arithmetic on
    them runs at that precision in any thread, see :mod:`rfq_theory.precision`).
    """
    _check_model(model)
    L = model.depth
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer <= L:
        raise InputError(f"layer must be an integer between 0 and {L}, got {layer!r}")
    layer = int(layer)
    if digits is not None:
        digits = check_digits(digits)

    def conv(v):
        # floats, or numbers of fixed precision digits + GUARD whatever the caller's context
        return float(v) if digits is None else freeze(v, digits + GUARD)

    sizes = [conv(k) for k in model.sizes(digits + GUARD if digits else 30)]
    coeffs = model.layers(digits + GUARD if digits else 15)[:layer]
    measure = model.base_measure(None if digits is None else digits + GUARD)
    chain = build_chain(sizes[: layer + 1], coeffs, to_number=conv, measure=measure)
    if samples is not None:
        n = conv(_check_samples(samples))
        top = chain.layers[-1][1] if chain.layers else chain.base_dim
        chain = Chain(
            chain.base_dim,
            chain.base_scale,
            chain.signal,
            chain.layers + ((top, n, conv(1), conv(0)),),
            chain.first,
            min(n, chain.rank),
            chain.measure,
        )
    return chain


def _top_size(chain):
    return chain.top_size


def _atoms(chain):
    """Point masses ``[(location, mass)]`` of the top matrix of ``chain``.

    ``Omega_l = a B + c I`` with ``rank B = min(k_l, rank Omega_{l-1})``: an
    atom of mass ``1 - rank Omega_{l-1} / k_l`` sits at ``c``.  A chain
    without layers is ``c_0 I``: all the mass at ``c_0``.
    """
    if not chain.layers:
        if chain.measure is not None:
            return chain.measure.atoms()
        return [(chain.base_scale, chain.base_scale * 0 + 1)]
    base_rank = chain.base_dim if chain.measure is None else chain.measure.rank
    rank = omega_rank(base_rank, chain.layers[:-1])
    k_prev, k, a, c = chain.layers[-1]
    if rank < k:
        return [(c, 1 - rank / k)]
    return []


def support_bound(chain):
    """``(lower, upper)`` bounds of the spectrum of the chain's top matrix.

    ``||F_l||^2 -> (1 + sqrt(k_l / k_{l-1}))^2`` gives
    ``R_l = a_l (1 + sqrt(k_l/k_{l-1}))^2 R_{l-1} + c_l``, ``R_0 = c_0``; and
    ``Omega_l >= c_l I``.
    """
    sqrt = mpmath.sqrt if is_mpf(chain.base_dim) else math.sqrt
    upper = chain.base_scale
    lower = chain.base_scale
    if chain.measure is not None:  # Omega_0 = Sigma
        upper, lower = max(chain.measure.lams), min(chain.measure.lams)
        if not is_mpf(chain.base_dim):
            upper, lower = float(upper), float(lower)
    for k_prev, k, a, c in chain.layers:
        upper = a * (1 + sqrt(k / k_prev)) ** 2 * upper + c
        lower = c
    return lower, upper


# --------------------------------------------------------------------------
# Exact moments
# --------------------------------------------------------------------------


def _moments_from_cumulants(r):
    r1, r2, r3, r4 = r
    return (
        r1,
        r2 + r1**2,
        r3 + 3 * r1 * r2 + r1**3,
        r4 + 4 * r1 * r3 + 2 * r2**2 + 6 * r1**2 * r2 + r1**4,
    )


def spectral_moments(chain) -> tuple:
    """``M_j = (1/k) tr Omega^j``, ``j = 1..4``, of the chain's top matrix (exact).

    Recursion: ``M_j(0) = c_0^j``; free cumulants of ``B_l = F_l Omega_{l-1} F_l^T``
    ``r_j = (k_l/k_{l-1})^{j-1} M_j(l-1)``; ``M(B_l)`` from the moment-cumulant
    formula (non-crossing partitions); ``M_j(l) = sum_i C(j,i) a^i c^(j-i) M_i(B_l)``.
    """
    one = chain.base_scale * 0 + 1
    M = [chain.base_scale**j for j in range(1, 5)]
    if chain.measure is not None:  # M_j(0) = (1/d) tr Sigma^j
        M = [one * chain.measure.moments(j) for j in range(1, 5)]
    for k_prev, k, a, c in chain.layers:
        ratio = k / k_prev
        r = [ratio ** (j - 1) * M[j - 1] for j in range(1, 5)]
        B = [one] + list(_moments_from_cumulants(r))
        M = [sum(math.comb(j, i) * a**i * c ** (j - i) * B[i] for i in range(j + 1)) for j in range(1, 5)]
    return tuple(M)


# --------------------------------------------------------------------------
# The complex chain
# --------------------------------------------------------------------------


def _walk(chain, k0):
    """``(kappa_top, d kappa_top / d kappa_0, D_top)`` at complex ``kappa_0`` (arrays or mpc)."""
    st = walk_state(chain, k0, COMPLEX)
    return st.kappa, st.dkappa, st.df1


def _m_from(chain, z, D):
    return (D / _top_size(chain) - 1) / z


def _initial_guess(chain, z):
    """``kappa_0`` for ``|z|`` large: invert each layer with ``D`` neglected."""
    kap = -z
    for k_prev, k, a, c in reversed(chain.layers):
        kap = (kap + c) * k_prev / (a * k)
    return kap


def _newton_float(chain, k0, z, iters, tol):
    """Vectorized Newton on ``kappa_top(kappa_0) + z = 0``; returns (k0, converged, dk)."""
    conv = np.zeros(k0.shape, dtype=bool)
    dk = np.ones_like(k0)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            kap, dk, _ = _walk(chain, k0)
            f = kap + z
            step = f / dk
            k0 = k0 - step
            # a step at the rounding level of f (near a double root |dk| is
            # small and the step cannot shrink below eps / |dk|)
            small = (np.abs(step) <= tol * (np.abs(k0) + 1e-300)) | (np.abs(f) <= 8e-16 * np.abs(z))
            conv = small & np.isfinite(k0)
            if conv.all():
                break
        kap, dk, _ = _walk(chain, k0)
    return k0, conv & np.isfinite(dk), dk


@dataclass
class _Solution:
    m: np.ndarray
    k0: np.ndarray
    eta: np.ndarray
    converged: np.ndarray
    steps: int


def _solve_float(chain, x, eta_final, scale) -> _Solution:
    """Physical-branch ``kappa_0`` at ``z = x + i eta_final`` for every ``x`` (then ``eta -> 0``).

    Continuation in ``eta`` from ``10 * scale``, with a step per point that
    grows after success and shrinks after failure (Newton not converged,
    ``Im m <= 0`` or a corrector larger than a third of the step).
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    tol = 1e-13
    eta = np.full(n, 10.0 * scale)
    z = x + 1j * eta
    k0, ok, dk = _newton_float(chain, _initial_guess(chain, z).astype(complex), z, 60, tol)
    if not ok.all():
        raise SolverError("spectral continuation could not start: Newton failed at large eta")
    ratio = np.full(n, 0.2)
    failed = np.zeros(n, dtype=bool)
    steps = 0
    while True:
        active = np.flatnonzero((eta > eta_final) & ~failed)
        if active.size == 0:
            break
        steps += 1
        if steps > 4000:
            raise SolverError("spectral continuation in eta did not finish")
        e_old = eta[active]
        e_new = np.maximum(e_old * ratio[active], eta_final)
        zt = x[active] + 1j * e_new
        with np.errstate(all="ignore"):
            pred = k0[active] - 1j * (e_new - e_old) / dk[active]
        kn, okn, dkn = _newton_float(chain, pred, zt, 8, tol)
        with np.errstate(all="ignore"):
            _, _, D = _walk(chain, kn)
            im = _m_from(chain, zt, D).imag
            corr = np.abs(kn - pred)
            move = np.abs(kn - k0[active])
        good = okn & (im > 0) & (corr <= 0.34 * move + 1e-12 * np.abs(kn))
        acc = active[good]
        k0[acc], dk[acc], eta[acc] = kn[good], dkn[good], e_new[good]
        ratio[acc] = np.maximum(ratio[acc] ** 1.5, 1e-3)
        rej = active[~good]
        ratio[rej] = np.sqrt(ratio[rej])
        failed[rej[ratio[rej] > 0.9999]] = True
    # eta -> 0: Newton at eta = 0 from the continued point (accepted when it
    # stays close and Im m >= 0 up to rounding)
    z0 = x + 0j
    kz, okz, _ = _newton_float(chain, k0.copy(), z0, 20, tol)
    with np.errstate(all="ignore"):
        _, _, Dz = _walk(chain, kz)
        mz = _m_from(chain, z0, Dz)
        _, _, Df = _walk(chain, k0)
        mf = _m_from(chain, x + 1j * eta, Df)
    close = np.abs(kz - k0) <= 1e-3 * np.abs(k0) + 1e-300
    use0 = okz & close & np.isfinite(mz) & (mz.imag >= -1e-9 * np.abs(mz))
    m = np.where(use0, mz, mf)
    k = np.where(use0, kz, k0)
    eta_used = np.where(use0, 0.0, eta)
    return _Solution(m, k, eta_used, ~failed, steps)


def _newton_mp(chain, k, z, tol, iters):
    """Newton on ``kappa_top(kappa_0) + z = 0`` from ``k`` (mpc) until a step is below ``tol`` relative.

    One more step follows the small one (quadratic convergence: it lands at
    the working precision).  Returns ``(kappa_0, steps)``, or
    ``(None, iters)`` when no step got small within ``iters``.
    """
    for it in range(iters):
        kap, dk, _ = _walk(chain, k)
        step = (kap + z) / dk
        k = k - step
        if abs(step) <= tol * abs(k):
            kap, dk, _ = _walk(chain, k)
            return k - (kap + z) / dk, it + 2
    return None, iters


def _solve_mp(chain, x, k0_start, eta_start, dps):
    """mpmath solve at ``z = x + i0`` from a float start; continuation in ``eta`` if Newton strays.

    Returns ``(m, eta_used, iterations)``.
    """
    # converged when the step is below 10^-(dps - GUARD/2) relative: the next
    # (quadratically convergent) step is then at the working precision, and
    # near a double root rounding keeps later steps from shrinking further
    tol = mpmath.mpf(10) ** (-(dps - GUARD // 2))
    x = mpmath.mpf(x)

    def newton(k, z):
        return _newton_mp(chain, k, z, tol, 80)

    start = mpmath.mpc(k0_start)
    if abs(start.imag) <= 1e-10 * abs(start):
        start = mpmath.mpc(start.real)  # outside the support: the real root
    z0 = mpmath.mpc(x)
    k, its = newton(start, z0)
    if k is not None and abs(k - start) <= 1e-3 * abs(start):
        _, _, D = _walk(chain, k)
        m = _m_from(chain, z0, D)
        if m.imag >= -tol * abs(m):
            return m, mpmath.mpf(0), its
    # continuation from the float eta down to 10^-dps
    eta = mpmath.mpf(max(eta_start, 1e-8))
    k = mpmath.mpc(k0_start)
    total = 0
    floor = mpmath.mpf(10) ** (-dps)
    while True:
        z = x + 1j * eta
        k_new, its = newton(k, z)
        total += its
        if k_new is None:
            raise SolverError(f"spectral continuation at x = {mpmath.nstr(x, 8)} did not converge")
        k = k_new
        if eta <= floor:
            break
        eta = max(eta / 8, floor)
    _, _, D = _walk(chain, k)
    return _m_from(chain, x + 1j * eta, D), eta, total


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerSpectrum:
    """Limiting spectrum of one layer's ``Omega_l`` (or of the conjugate kernel).

    Attributes
    ----------
    layer:
        ``l`` (``0..L``), or ``"gram"`` for the kernel ``K = Z Z^T / k_L``.
    size:
        Matrix size (``k_l``, or ``n`` for the kernel).
    moments:
        ``(1/size) tr M^j``, ``j = 1..4`` (exact recursion).
    support:
        Intervals ``(a, b)`` of the continuous part (edges where the density vanishes).
    atoms:
        Point masses ``(location, mass)``; ``atom_at_zero`` is the mass at ``0``.
    x, density:
        Grid (clustered near the edges) and the continuous density on it,
        as NumPy arrays (``float`` on the float path, ``object`` arrays of
        mpf with ``digits``).
    mass:
        Integral of the density on the grid plus the atoms (about 1; a check).
    converged, max_residual, eta:
        Every point converged; largest ``|kappa_top + z|`` relative to ``|z|``;
        largest ``Im z`` at which a point was read (0 after the ``eta -> 0`` step).
    digits:
        ``None`` for the float path, else the mpmath precision.
    continuation_steps:
        Rounds of the float continuation in ``eta`` on the output grid.
    """

    layer: object
    size: object
    moments: tuple
    support: tuple
    atoms: tuple
    x: np.ndarray
    density: np.ndarray
    mass: float
    converged: bool
    max_residual: float
    eta: float
    digits: int | None
    continuation_steps: int = 0

    _headline = ("layer", "size", "moments", "support", "atom_at_zero", "x", "density", "mass", "digits")
    __repr__ = result_repr

    def __post_init__(self):
        dtype = float if self.digits is None else object
        for name in ("x", "density"):
            value = getattr(self, name)
            arr = np.empty(len(value), dtype=dtype)
            arr[:] = list(value)
            object.__setattr__(self, name, arr)

    @property
    def diagnostics(self):
        """The :class:`~rfq_theory.results.Diagnostics` record (``residual`` is ``max_residual``)."""
        from .results import Diagnostics

        return Diagnostics(
            status="ok" if self.converged else "failed",
            converged=bool(self.converged),
            message="" if self.converged else "some points of the density did not converge",
            iterations=int(self.continuation_steps),
            residual=float(self.max_residual),
            working_digits=16 if self.digits is None else int(self.digits),
            fallback="float" if self.digits is None else "mpmath",
        )

    @property
    def atom_at_zero(self):
        """Mass of the atom at ``0`` (0 when the matrix has full rank)."""
        for loc, w in self.atoms:
            if loc == 0:
                return w
        return 0 * self.moments[0]

    def as_dict(self, digits=None):
        """JSON-ready dict, numbers as strings with ``digits`` significant digits."""
        d = digits or self.digits or 15

        def f(v):
            return format_number(v, d)

        return {
            "layer": self.layer,
            "size": f(self.size),
            "moments": [f(m) for m in self.moments],
            "support": [[f(a), f(b)] for a, b in self.support],
            "atom_at_zero": f(self.atom_at_zero),
            "atoms": [[f(a), f(w)] for a, w in self.atoms],
            "x": [f(v) for v in self.x],
            "density": [f(v) for v in self.density],
            "mass": f(self.mass),
            "converged": self.converged,
            "max_residual": f(self.max_residual),
        }


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Spectra of the selected layers and, given ``samples``, of the conjugate kernel."""

    layers: tuple[LayerSpectrum, ...]
    gram: LayerSpectrum | None
    samples: object
    digits: int | None

    _headline = ("layers", "gram", "samples", "digits")
    __repr__ = result_repr

    @property
    def diagnostics(self):
        """The worst layer's :class:`~rfq_theory.results.Diagnostics` (largest residual, failed if any failed)."""
        parts = list(self.layers) + ([self.gram] if self.gram is not None else [])
        ds = [p.diagnostics for p in parts]
        return max(ds, key=lambda d: (not d.converged, d.residual))

    def as_dict(self, digits=None):
        """JSON-ready dict in the format of ``rfq spectrum --json``."""
        out = {"layers": [s.as_dict(digits) for s in self.layers]}
        if self.gram is not None:
            out["gram"] = self.gram.as_dict(digits)
        return out


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def _intervals(x, positive):
    """Runs of positive points: list of index pairs (first, last)."""
    out, start = [], None
    for i, p in enumerate(positive):
        if p and start is None:
            start = i
        if not p and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(positive) - 1))
    return out


def _density_float(chain, x, scale, atoms):
    sol = _solve_float(chain, x, 1e-10 * scale, scale)
    dens = sol.m.imag / math.pi
    # remove the Lorentzian of an atom where a point was read at eta > 0
    for loc, w in atoms:
        loc = float(loc)
        w = float(w)
        with np.errstate(all="ignore"):
            lor = np.where(sol.eta > 0, w * sol.eta / ((x - loc) ** 2 + sol.eta**2) / math.pi, 0.0)
        dens = dens - lor
    dens = np.where(np.isfinite(dens) & (dens > 0), dens, 0.0)
    return dens, sol


def _edges_float(chain, lo, hi, scale, atoms):
    """Support intervals of the continuous part: coarse scan, then batched bisection."""
    span = hi - lo
    grid = np.unique(
        np.concatenate(
            [
                lo + span * np.linspace(0, 1, _COARSE_UNIFORM)[1:],
                lo + span * np.geomspace(1e-7, 1, _COARSE_LOG),
            ]
        )
    )
    for loc, _ in atoms:  # an atom is no part of the continuous support
        grid = grid[np.abs(grid - loc) > 1e-5 * span]
    dens, _ = _density_float(chain, grid, scale, atoms)
    peak = dens.max(initial=0.0)
    if peak <= 0:
        return [], []
    thresh = 1e-9 * peak
    pos = dens > thresh
    runs = _intervals(grid, pos)
    brackets = []  # (x_out, x_in, side)
    for i, j in runs:
        left_out = grid[i - 1] if i > 0 else lo
        right_out = grid[j + 1] if j + 1 < grid.size else hi
        brackets.append([left_out, grid[i]])
        brackets.append([grid[j], right_out])
    br = np.array(brackets, dtype=float)  # each row: [outside-or-inside ...]
    inside_right = np.array([k % 2 == 0 for k in range(len(brackets))])  # left edges: inside at right end
    for _ in range(_REFINE_ROUNDS):
        t = np.linspace(0, 1, _REFINE_POINTS + 2)[1:-1]
        pts = br[:, :1] + (br[:, 1:] - br[:, :1]) * t[None, :]
        d, _ = _density_float(chain, pts.ravel(), scale, atoms)
        d = d.reshape(pts.shape) > thresh
        for r in range(br.shape[0]):
            row = d[r]
            if inside_right[r]:
                # left edge: last outside point before the first inside one
                idx = np.flatnonzero(row)
                first_in = idx[0] if idx.size else row.size
                a = br[r, 0] if first_in == 0 else pts[r, first_in - 1]
                b = br[r, 1] if first_in == row.size else pts[r, first_in]
            else:
                idx = np.flatnonzero(~row)
                first_out = idx[0] if idx.size else row.size
                a = br[r, 0] if first_out == 0 else pts[r, first_out - 1]
                b = br[r, 1] if first_out == row.size else pts[r, first_out]
            br[r] = (a, b)
    edges = br.mean(axis=1)
    trap = getattr(np, "trapezoid", None) or np.trapz
    masses = [float(trap(dens[i : j + 1], grid[i : j + 1])) + 1e-300 for i, j in runs]
    support = []
    for k in range(0, len(edges), 2):
        a, b = float(edges[k]), float(edges[k + 1])
        if runs[k // 2][0] == 0 and grid[0] - lo <= 1e-6 * span and br[k, 0] <= lo + 1e-6 * span:
            a = float(lo)  # hard edge at the lower bound
        support.append((a, b))
    return support, masses


def _grid_on(support, points, masses=None):
    """``points`` Chebyshev nodes split over the support intervals (clustered at the edges).

    Each interval gets a share of the points proportional to the mean of its
    fraction of the total length and of the (coarse) continuous mass.
    """
    lengths = np.array([b - a for a, b in support], dtype=float)
    total = lengths.sum()
    if total <= 0:
        return np.array([])
    frac = lengths / total
    if masses is not None and len(masses) == len(support):
        mass = np.asarray(masses, dtype=float)
        frac = (frac + mass / mass.sum()) / 2
    share = np.maximum(np.floor(points * frac).astype(int), min(8, points))
    while share.sum() > points and share.max() > 1:
        share[np.argmax(share)] -= 1
    xs = []
    for (a, b), n in zip(support, share):
        t = (np.arange(n) + 0.5) / n
        xs.append(a + (b - a) * (1 - np.cos(np.pi * t)) / 2)
    return np.concatenate(xs)


def _mass(x, dens, support, atoms):
    total = float(sum(float(w) for _, w in atoms))
    for a, b in support:
        sel = (x >= a) & (x <= b)
        xs = np.concatenate([[a], x[sel], [b]])
        ds = np.concatenate([[0.0], dens[sel], [0.0]])
        total += float(np.trapezoid(ds, xs)) if hasattr(np, "trapezoid") else float(np.trapz(ds, xs))
    return total


def _layer_float(chain, label, points, x_user):
    atoms = [(float(l), float(w)) for l, w in _atoms(chain)]
    moments = tuple(float(m) for m in spectral_moments(chain))
    size = _top_size(chain)
    if not chain.layers:
        return LayerSpectrum(label, size, moments, (), tuple(atoms), (), (), 1.0, True, 0.0, 0.0, None)
    lo, hi = support_bound(chain)
    scale = max(hi, 1e-300)
    support, masses = _edges_float(chain, lo, hi, scale, atoms)
    support = [(a + 0.0, b + 0.0) for a, b in _refine_edges(chain, support, lo, scale)]  # no -0.0
    x = np.asarray(x_user, dtype=float) if x_user is not None else _grid_on(support, points, masses)
    if x.size:
        dens, sol = _density_float(chain, x, scale, atoms)
        with np.errstate(all="ignore"):
            kap, _, _ = _walk(chain, sol.k0)
            z = x + 1j * sol.eta
            res = float(np.max(np.abs(kap + z) / np.maximum(np.abs(z), scale * 1e-300)))
        conv, eta, steps = bool(sol.converged.all()), float(sol.eta.max()), sol.steps
    else:
        dens, res, conv, eta, steps = np.array([]), 0.0, True, 0.0, 0
    mass = _mass(x, dens, support, atoms) if x_user is None else float("nan")
    return LayerSpectrum(
        label,
        size,
        moments,
        tuple(support),
        tuple(atoms),
        tuple(x.tolist()),
        tuple(dens.tolist()),
        mass,
        conv,
        res,
        eta,
        None,
        steps,
    )


def _layer_mp(chain_f, chain_mp, label, points, x_user, digits):
    """mpmath layer spectrum: float layout (edges, grid, starts) polished at ``digits + GUARD``."""
    dps = digits + GUARD
    base = _layer_float(chain_f, label, points, x_user)
    atoms = tuple(_atoms(chain_mp))
    moments = spectral_moments(chain_mp)
    size = _top_size(chain_mp)
    if not chain_mp.layers:
        return LayerSpectrum(label, size, moments, (), atoms, (), (), mpmath.mpf(1), True, 0, 0, digits)
    x = [mpmath.mpf(v) for v in base.x] if x_user is None else [mpmath.mpf(v) for v in x_user]
    lo, hi = support_bound(chain_f)
    scale = max(hi, 1e-300)
    xs = np.array([float(v) for v in x])
    sol = _solve_float(chain_f, xs, 1e-10 * scale, scale) if len(xs) else None
    dens, res, eta_max = [], mpmath.mpf(0), mpmath.mpf(0)
    for i, xv in enumerate(x):
        m, eta, _ = _solve_mp(chain_mp, xv, complex(sol.k0[i]), float(sol.eta[i]) or 1e-10 * scale, dps)
        d = m.imag / mpmath.pi
        for loc, w in atoms:
            if eta > 0:
                d -= w * eta / ((xv - loc) ** 2 + eta**2) / mpmath.pi
        dens.append(d if d > 0 else mpmath.mpf(0))
        eta_max = max(eta_max, eta)
    support = tuple(_refine_edges(chain_mp, base.support, lo, scale, dps))
    return LayerSpectrum(
        label,
        size,
        moments,
        support,
        atoms,
        tuple(x),
        tuple(freeze(d, digits) for d in dens),
        base.mass,
        base.converged,
        res,
        eta_max,
        digits,
        base.continuation_steps,
    )


def _refine_edges(chain, support, lower_bound, scale, dps=None):
    """Edges to full precision: real critical points of ``kappa_0 -> kappa_top`` (double roots).

    At a soft edge two real roots of ``kappa_top(kappa_0) = -x`` merge, so
    ``d kappa_top / d kappa_0 = 0`` there; a secant search for that zero
    starts at the continued ``kappa_0`` of the bisected edge.  An edge at the
    lower bound (a hard edge) or one whose critical point is not found
    within ``1e-4 * scale`` of the bisected value is kept as it is.
    """
    chain_f = _float_chain(chain)
    out = []
    for a, b in support:
        pair = []
        for e in (a, b):
            if e == lower_bound:
                pair.append(e if dps is None else mpmath.mpf(e))
                continue
            pair.append(_critical_edge(chain, chain_f, e, scale, dps))
        out.append(tuple(pair))
    return out


def _critical_edge(chain, chain_f, edge, scale, dps):
    sol = _solve_float(chain_f, np.array([float(edge)]), 1e-10 * scale, scale)
    t0 = float(sol.k0[0].real)
    if dps is None:
        num, tol, iters = float, 1e-15, 60
    else:
        num, tol, iters = mpmath.mpf, mpmath.mpf(10) ** (-dps), 4 * dps + 60
    try:
        t_prev, t = num(t0), num(t0) * (1 + num(1e-7))
        f_prev = _walk(chain, t_prev)[1]
        for _ in range(iters):
            f = _walk(chain, t)[1]
            if f == f_prev:
                break
            t_new = t - f * (t - t_prev) / (f - f_prev)
            t_prev, f_prev, t = t, f, t_new
            if abs(t - t_prev) <= tol * abs(t):
                break
        x = -_walk(chain, t)[0]
        if abs(x - num(edge)) <= 1e-4 * scale and (x == x):
            return x
    except (ZeroDivisionError, ArithmeticError, ValueError):
        pass
    return edge if dps is None else mpmath.mpf(edge)


def _float_chain(chain):
    f = float
    return Chain(
        f(chain.base_dim),
        f(chain.base_scale),
        chain.signal,
        tuple(tuple(f(v) for v in lay) for lay in chain.layers),
        chain.first,
        f(chain.rank),
        None if chain.measure is None else chain.measure.as_float(),
    )


def _check_points(points):
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or not 2 <= points <= 100000:
        raise InputError(f"points must be an integer between 2 and 100000, got {points!r}")
    return int(points)


def _check_layers(layers, L):
    if layers is None:
        return list(range(1, L + 1))
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = [layers]
    out = []
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 0 <= l <= L:
            raise InputError(f"layers must list integers between 0 and {L}, got {l!r}")
        out.append(int(l))
    if not out:
        raise InputError("layers must list at least one layer")
    return out


def _check_x(x):
    if x is None:
        return None
    arr = np.atleast_1d(np.asarray(x, dtype=float))
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError("x must be a list of finite positive numbers")
    return arr


def spectrum(
    model: DeepRF,
    samples=None,
    layers: Sequence[int] | None = None,
    points: int = 400,
    digits: int | None = None,
    x=None,
) -> Spectrum:
    """Limiting spectra of ``Omega_l`` for the selected layers and of the kernel ``Z Z^T / k_L``.

    Parameters
    ----------
    model:
        A :class:`~rfq_theory.model.DeepRF`.
    samples:
        ``n``; when given, the spectrum of the conjugate kernel ``K = Z Z^T / k_L``
        (``n x n``) is added as ``gram``.  Its nonzero eigenvalues times
        ``k_L / n`` are those of the sample covariance ``Z^T Z / n``.
    layers:
        Layer indices ``0..L`` (default ``1..L``).
    points:
        Grid size per spectrum (Chebyshev nodes on each support interval).
    digits:
        ``None`` for the float path; else the mpmath precision of every number.
    x:
        Optional explicit grid of positive ``x`` (replaces the adaptive grid).

    Each density is ``Im m(x + i0) / pi`` with ``m`` from the complex layer
    chain of the module docstring; moments are the exact recursion.
    """
    _check_model(model)
    points = _check_points(points)
    sel = _check_layers(layers, model.depth)
    xs = _check_x(x)
    _check_samples(samples)
    if digits is None:
        out = [_layer_float(spectrum_chain(model, l), l, points, xs) for l in sel]
        gram = None
        if samples is not None:
            gram = _layer_float(spectrum_chain(model, model.depth, samples), "gram", points, xs)
        return Spectrum(tuple(out), gram, samples, None)
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD):
        out = [
            _layer_mp(spectrum_chain(model, l), spectrum_chain(model, l, digits=digits), l, points, xs, digits)
            for l in sel
        ]
        gram = None
        if samples is not None:
            gram = _layer_mp(
                spectrum_chain(model, model.depth, samples),
                spectrum_chain(model, model.depth, samples, digits=digits),
                "gram",
                points,
                xs,
                digits,
            )
    return Spectrum(tuple(out), gram, samples, digits)


def layer_spectrum(
    model: DeepRF, layer: int, samples=None, points: int = 400, digits: int | None = None, x=None
) -> LayerSpectrum:
    """Spectrum of ``Omega_layer`` or, with ``samples = n``, of the kernel ``Z_l Z_l^T / k_layer``.

    ``Z_l`` holds ``n`` feature vectors of layer ``layer`` (``0..L``); see
    :func:`spectrum` for the other parameters.
    """
    _check_model(model)
    points = _check_points(points)
    xs = _check_x(x)
    _check_samples(samples)
    label = layer if samples is None else "gram"
    if digits is None:
        return _layer_float(spectrum_chain(model, layer, samples), label, points, xs)
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD):
        return _layer_mp(
            spectrum_chain(model, layer, samples),
            spectrum_chain(model, layer, samples, digits=digits),
            label,
            points,
            xs,
            digits,
        )


def cdf(spec: LayerSpectrum, values):
    """Predicted distribution function ``P(eigenvalue <= v)`` at each of ``values`` (floats).

    Atoms plus the trapezoidal integral of the density on the spectrum's grid
    (with zero density at the soft edges).
    """
    v = np.asarray(values, dtype=float)
    out = np.zeros(v.shape)
    for loc, w in spec.atoms:
        out += float(w) * (v >= float(loc))
    x = np.array([float(t) for t in spec.x])
    d = np.array([float(t) for t in spec.density])
    for a, b in spec.support:
        a, b = float(a), float(b)
        sel = (x > a) & (x < b)
        xs = np.concatenate([[a], x[sel], [b]])
        ds = np.concatenate([[0.0], d[sel], [0.0]])
        cum = np.concatenate([[0.0], np.cumsum((ds[1:] + ds[:-1]) / 2 * np.diff(xs))])
        out += np.interp(v, xs, cum, left=0.0, right=cum[-1])
    return out


def stieltjes(model: DeepRF, z, layer: int | None = None, samples=None, digits: int = 30):
    """``m(z) = (1/k) tr (M - z)^-1`` at one complex ``z`` with ``Im z > 0`` (mpmath, any precision).

    ``M`` is ``Omega_layer`` (default the top layer) or, with ``samples``,
    the kernel.  Continuation in ``eta`` from ``|z| + scale`` down to ``Im z``.
    """
    _check_model(model)
    digits = check_digits(digits)
    layer = model.depth if layer is None else layer
    dps = digits + GUARD
    with mpmath.workdps(dps):
        z = mpmath.mpc(z)
        if not z.imag > 0:
            raise InputError(f"z must have a positive imaginary part, got {z}")
        chain = spectrum_chain(model, layer, samples, digits=digits)
        _, hi = support_bound(chain)
        eta = max(z.imag, 10 * hi, abs(z))
        k = _initial_guess(chain, z.real + 1j * eta)
        tol = mpmath.mpf(10) ** (-(dps - GUARD // 2))
        while True:
            zz = z.real + 1j * eta
            k, _ = _newton_mp(chain, k, zz, tol, 200)
            if k is None:
                raise SolverError(f"Newton did not converge at z = {mpmath.nstr(zz, 8)}")
            if eta == z.imag:
                break
            eta = max(eta / 2, z.imag)
        _, _, D = _walk(chain, k)
        m = _m_from(chain, z, D)
        return +m  # an mpc of this thread's context, rounded to the working precision


def density_at(model: DeepRF, x, layer: int | None = None, samples=None, digits: int | None = 30):
    """Density ``Im m(x + i0) / pi`` of the continuous part at one point ``x > 0``.

    ``digits=None`` gives a float; otherwise an mpf with ``digits`` correct
    digits (float continuation, then Newton at ``eta = 0`` at ``digits + 10``
    working digits).
    """
    _check_model(model)
    layer = model.depth if layer is None else layer
    xs = _check_x([x])
    chain_f = spectrum_chain(model, layer, samples)
    if not chain_f.layers:
        return 0.0 if digits is None else freeze(0, check_digits(digits))
    _, hi = support_bound(chain_f)
    atoms_f = [(float(l), float(w)) for l, w in _atoms(chain_f)]
    dens, sol = _density_float(chain_f, xs, hi, atoms_f)
    if digits is None:
        return float(dens[0])
    digits = check_digits(digits)
    with mpmath.workdps(digits + GUARD):
        chain = spectrum_chain(model, layer, samples, digits=digits)
        m, eta, _ = _solve_mp(chain, mpmath.mpf(x), complex(sol.k0[0]), float(sol.eta[0]) or 1e-10 * hi, digits + GUARD)
        d = m.imag / mpmath.pi
        for loc, w in _atoms(chain):
            if eta > 0:
                d -= w * eta / ((mpmath.mpf(x) - loc) ** 2 + eta**2) / mpmath.pi
        return freeze(d if d > 0 else 0, digits)  # computed at digits + GUARD, shown at the digits asked
