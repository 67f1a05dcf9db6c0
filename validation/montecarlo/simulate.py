"""Monte Carlo simulation of the canonical deep random-features model.

One *draw* is

- weights ``W_l`` with i.i.d. ``N(0, 1)`` entries, shape ``k_l x k_{l-1}``,
  quantized entrywise, ``Q_l(W_l)``;
- features ``z_0 = x``, ``z_l = sigma_l(Q_l(W_l) z_{l-1} / sqrt(k_{l-1})) - m_l``
  with the theoretical centering ``m_l = E sigma_l(u)``, ``u ~ N(0, v_l)``;
- data ``x ~ N(0, I_d)``, ``y = f*(<theta, x>/sqrt(d)) - E f*(g) + eps``,
  ``theta ~ N(0, I_d)``, ``eps ~ N(0, Delta)``; for a structured model
  ``x ~ N(0, Sigma)`` and the teacher ``beta`` of
  :mod:`validation.montecarlo.inputs` (axis or rotated basis) instead;
- the ridge readout ``w = argmin (1/n)||y - Z w||^2 + lambda ||w||^2``:
  primal ``(Z^T Z / n + lambda I) w = Z^T y / n`` when ``p <= n``, dual
  ``w = Z^T (Z Z^T + n lambda I)^{-1} y`` otherwise; ``lambda = 0`` is the
  minimum-norm least-squares solution ``w = Z^+ y`` (pseudo-inverse of
  the smaller Gram matrix);
- test error ``mean (y - <w, z_L(x)>)^2`` over a fresh test set (noise
  included), streamed in chunks; train error ``(1/n)||y - Z w||^2``.

Randomness: draw ``t`` of seed ``s`` uses ``SeedSequence([s, t])`` split
into independent streams (weights, ``theta``, training inputs and noise,
test inputs and noise), all NumPy ``Generator`` s; a rotated basis draws its
rotation from a seventh stream (:func:`validation.montecarlo.inputs.rotation_generator`).  The weights therefore depend on
``(seed, trial)`` only (:func:`draw_weights`, shared with
:mod:`validation.montecarlo.finite_size`), and every backend sees the same numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rfq_theory.activation_coefficients import coefficients
from rfq_theory.activations import get_activation
from rfq_theory.model import DeepRF
from rfq_theory.quantizers import get_quantizer

from .backends import Backend, get_backend
from .inputs import InputLaw, input_law, teacher_vector

__all__ = [
    "MonteCarloResult",
    "network_sizes",
    "trial_generators",
    "draw_weights",
    "fit_readout",
    "simulate_trial",
    "simulate",
    "check_simulation_inputs",
    "draw_memory_bytes",
    "available_memory",
]

_STREAMS = ("weights", "theta", "train", "train_noise", "test", "test_noise")


def _as_int(value, name, minimum=1):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or f < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} for a simulation, got {value!r}")
    return int(f)


def network_sizes(model: DeepRF) -> tuple[int, ...]:
    """``(d, k_1, ..., k_L)`` of ``model`` as Python ints (a simulation needs whole sizes)."""
    if not isinstance(model, DeepRF):
        raise ValueError(f"model must be a rfq_theory.DeepRF, got {type(model).__name__}")
    d = _as_int(model.input_dim, "input_dim")
    return (d,) + tuple(_as_int(k, f"widths[{i}]") for i, k in enumerate(model.widths))


def _check_seed(seed, name="seed"):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def trial_generators(seed: int, trial: int) -> dict:
    """Independent NumPy generators of draw ``trial``, one per stream.

    The draw's seed sequence is ``SeedSequence([seed, trial])``; its six
    children (``spawn``, i.e. spawn keys ``(0,)..(5,)``) seed the streams.
    The numbers are a function of ``(seed, trial)`` alone, so a draw gives
    the same result in any process and in any order.  Rows of one run share
    draw ``trial``'s streams on purpose: variants and grid points are then
    paired (common random numbers).

    Streams: ``weights``, ``theta``, ``train`` (inputs), ``train_noise``,
    ``test`` (inputs), ``test_noise``; separate streams make the numbers
    independent of the test chunk size.
    """
    seed, trial = _check_seed(seed), _check_seed(trial, "trial")
    children = np.random.SeedSequence([seed, trial]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(ss) for name, ss in zip(_STREAMS, children)}


def draw_weights(model: DeepRF, seed: int = 0, trial: int = 0) -> list[np.ndarray]:
    """Quantized weight matrices ``Q_l(W_l)`` (float64, shape ``k_l x k_{l-1}``) of draw ``trial``.

    ``W_l`` has i.i.d. ``N(0, 1)`` entries drawn layer by layer from the
    draw's weight stream; the layer's quantizer is applied to the matrix.
    """
    sizes = network_sizes(model)
    rng = trial_generators(seed, trial)["weights"]
    out = []
    for l, qspec in enumerate(model.quantizers):
        W = rng.standard_normal((sizes[l + 1], sizes[l]))
        out.append(get_quantizer(qspec).apply(W))
    return out


@dataclass(frozen=True)
class MonteCarloResult:
    """Per-draw test and train errors of :func:`simulate` with their summaries.

    ``test_mean`` / ``train_mean`` are sample means over draws and
    ``test_se`` / ``train_se`` their standard errors ``std(ddof=1)/sqrt(draws)``.
    """

    test_errors: tuple[float, ...]
    train_errors: tuple[float, ...]
    samples: int
    ridge: float
    noise: float
    test_samples: int
    seed: int
    backend: str = "numpy"
    info: dict = field(default_factory=dict)

    @property
    def draws(self) -> int:
        return len(self.test_errors)

    @staticmethod
    def _se(values):
        v = np.asarray(values, dtype=float)
        return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")

    @property
    def test_mean(self) -> float:
        return float(np.mean(self.test_errors))

    @property
    def test_se(self) -> float:
        return self._se(self.test_errors)

    @property
    def train_mean(self) -> float:
        return float(np.mean(self.train_errors))

    @property
    def train_se(self) -> float:
        return self._se(self.train_errors)

    def as_dict(self) -> dict:
        """JSON-ready summary including the per-draw values."""
        return {
            "test_mean": self.test_mean,
            "test_se": self.test_se,
            "train_mean": self.train_mean,
            "train_se": self.train_se,
            "draws": self.draws,
            "test_errors": list(self.test_errors),
            "train_errors": list(self.train_errors),
            "samples": self.samples,
            "ridge": self.ridge,
            "noise": self.noise,
            "test_samples": self.test_samples,
            "seed": self.seed,
            "backend": self.backend,
        }


def check_simulation_inputs(samples, ridge, noise, test_samples=1):
    """Validate ``(samples, ridge, noise, test_samples)``; return them as ``(int, float, float, int)``."""
    n = _as_int(samples, "samples")
    nt = _as_int(test_samples, "test_samples")
    try:
        lam, delta = float(ridge), float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"ridge and noise must be numbers, got ridge={ridge!r}, noise={noise!r}") from None
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    if not math.isfinite(delta) or delta < 0:
        raise ValueError(f"noise must be a finite variance >= 0, got {noise!r}")
    return n, lam, delta, nt


class _Network:
    """A drawn network on a backend (:class:`validation.network.SimulatedNetwork`) and the target ``y(x, eps)``."""

    def __init__(
        self,
        model: DeepRF,
        weights: Sequence[np.ndarray],
        theta: np.ndarray | None,
        target: str,
        ops: Backend,
        teacher: np.ndarray | None = None,
    ):
        """``g = x . theta / sqrt(d)``, or ``g = x . teacher`` when ``teacher`` is given (then ``theta`` is unused)."""
        from ..network import SimulatedNetwork

        self.net = SimulatedNetwork(model, weights=weights, ops=ops)
        self.features = self.net.features
        if teacher is None:
            assert theta is not None
            teacher = theta / math.sqrt(self.net.sizes[0])
        self.theta_scaled = teacher
        self.target = get_activation(target).numpy
        self.target_mean = float(coefficients(target, 1).mu0)

    def labels(self, x_np: np.ndarray, eps: np.ndarray) -> np.ndarray:
        return self.target(x_np @ self.theta_scaled) - self.target_mean + eps


def fit_readout(ops: Backend, Z, y, ridge: float):
    """Ridge readout ``w = argmin (1/n)||y - Z w||^2 + ridge ||w||^2`` (min-norm LS at ``ridge = 0``).

    Solves the ``p x p`` primal system when ``p <= n`` and the ``n x n``
    dual system otherwise, never both.
    """
    n, p = Z.shape
    if ridge == 0:
        return _min_norm(ops, Z, y)
    if p <= n:
        G = Z.T @ Z
        G = G + (n * ridge) * ops.eye(p)
        return ops.solve(G, Z.T @ y)
    K = Z @ Z.T
    K = K + (n * ridge) * ops.eye(n)
    return Z.T @ ops.solve(K, y)


def _min_norm(ops: Backend, Z, y):
    """``w = Z^+ y`` from the eigendecomposition of the smaller Gram matrix.

    Eigenvalues below ``max(e) * max(n, p) * eps`` (the rank cut-off of
    ``numpy.linalg.lstsq`` applied to squared singular values) are dropped.
    """
    n, p = Z.shape
    primal = p <= n
    G = Z.T @ Z if primal else Z @ Z.T
    e, V = ops.eigh(G)
    cut = float(e[-1]) * max(n, p) * ops.eps
    keep = e > cut
    inv = 1.0 / e[keep]
    V = V[:, keep]
    if primal:
        return V @ (inv * (V.T @ (Z.T @ y)))
    return Z.T @ (V @ (inv * (V.T @ y)))


def simulate_trial(
    model: DeepRF,
    samples,
    ridge,
    noise,
    target="linear",
    seed: int = 0,
    trial: int = 0,
    test_samples: int = 4000,
    backend="numpy",
    device="cpu",
    dtype="float64",
    chunk_size: int = 2048,
    weights=None,
    basis: str = "axis",
    law: InputLaw | None = None,
) -> tuple[float, float]:
    """Test and train error of one draw (see the module docstring for the definition).

    ``backend`` is a name (``numpy``/``torch``) or a :class:`~validation.montecarlo.backends.Backend`.
    ``weights`` may pass precomputed :func:`draw_weights` output for the same ``(seed, trial)``;
    ``basis`` (``axis`` or ``rotated``) places ``Sigma`` of a structured model
    (:mod:`validation.montecarlo.inputs`); ``law`` may pass its
    :func:`~validation.montecarlo.inputs.input_law` for the same draw.
    """
    n, lam, delta, nt = check_simulation_inputs(samples, ridge, noise, test_samples)
    chunk = _as_int(chunk_size, "chunk_size")
    ops = backend if isinstance(backend, Backend) else get_backend(backend, device, dtype)
    network_sizes(model)  # whole sizes
    gens = trial_generators(seed, trial)
    if weights is None:
        weights = draw_weights(model, seed, trial)
    if law is None:
        law = input_law(model, seed, trial, basis)
    net = _Network(model, weights, None, target, ops, teacher=teacher_vector(law, gens["theta"]))
    sd = math.sqrt(delta)

    X = law.inputs(gens["train"], n)
    y_np = net.labels(X, sd * gens["train_noise"].standard_normal(n))
    Z = net.features(X)
    y = ops.asarray(y_np)
    w = fit_readout(ops, Z, y, lam)
    train = ops.sum_squares(y - Z @ w) / n
    del Z, X

    total, done = 0.0, 0
    while done < nt:
        c = min(chunk, nt - done)
        Xt = law.inputs(gens["test"], c)
        yt = ops.asarray(net.labels(Xt, sd * gens["test_noise"].standard_normal(c)))
        total += ops.sum_squares(yt - net.features(Xt) @ w)
        done += c
    return total / nt, train


def simulate(
    model: DeepRF,
    samples,
    ridge=0.0,
    noise=0.0,
    target="linear",
    trials: int = 8,
    test_samples: int = 4000,
    seed: int = 0,
    backend="numpy",
    device="cpu",
    dtype="float64",
    chunk_size: int = 2048,
    first_trial: int = 0,
    basis: str = "axis",
) -> MonteCarloResult:
    """Monte Carlo test/train error of ``model`` over ``trials`` independent draws.

    Draw ``t`` (``first_trial <= t < first_trial + trials``) is
    :func:`simulate_trial` with ``(seed, t)``; draws are independent
    (weights, ``theta``, training and test data, noise; ``basis`` as in
    :func:`simulate_trial`).  Returns a
    :class:`MonteCarloResult` with mean, standard error and per-draw values.
    """
    n, lam, delta, nt = check_simulation_inputs(samples, ridge, noise, test_samples)
    T = _as_int(trials, "trials")
    seed = _check_seed(seed)
    first = _check_seed(first_trial, "first_trial")
    get_activation(target)  # validate early
    ops = backend if isinstance(backend, Backend) else get_backend(backend, device, dtype)
    tests, trains = [], []
    for t in range(first, first + T):
        te, tr = simulate_trial(model, n, lam, delta, target, seed, t, nt, ops, chunk_size=chunk_size, basis=basis)
        tests.append(te)
        trains.append(tr)
    return MonteCarloResult(
        tuple(tests),
        tuple(trains),
        n,
        lam,
        delta,
        nt,
        seed,
        ops.name,
        {"device": str(ops.device), "dtype": str(ops.dtype)},
    )


def draw_memory_bytes(
    sizes: Sequence[int], samples: int, test_samples: int = 4000, chunk_size: int = 2048, itemsize: int = 8
) -> int:
    """Estimated peak memory (bytes) of one draw with sizes ``(d, k_1..k_L)`` and ``n = samples``.

    Counts the float64 weights (drawn, quantized, and the backend's copy),
    the training inputs and features, the Gram matrix of the readout with
    its factorisation, and one test chunk; a lower bound within a small factor.
    """
    sizes = [int(k) for k in sizes]
    d, ks, n = sizes[0], sizes[1:], int(samples)
    kmax, p = max(ks), ks[-1]
    c = min(int(chunk_size), max(1, int(test_samples)))
    weights = 3 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    train = n * d + 3 * n * kmax
    gram = 3 * min(n, p) ** 2
    test = c * (d + 2 * kmax)
    return 8 * weights + itemsize * (train + gram + test) + 8 * n * d


def available_memory() -> int | None:
    """Bytes this process can still allocate: ``MemAvailable`` bounded by ``ulimit -v`` (``None``: unknown)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
            used = 0
            try:
                with open("/proc/self/statm") as fh:
                    used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError):
                pass
            limit = max(0, soft - used)
            avail = limit if avail is None else min(avail, limit)
    except (ImportError, ValueError, OSError):
        pass
    return avail
