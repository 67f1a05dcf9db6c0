"""A real data set as the structured-input model of the theory (``docs/real-data.md``).

The theory's data model (``docs/theory.md``, section 8) is ``x ~ N(0, Sigma)``
with eigenvalues ``lambda_i`` of ``Sigma``, a teacher ``g = beta . x / sqrt(d)``
whose squared coefficients ``beta_i^2`` in the eigenbasis of ``Sigma`` are scaled
so that ``Var g = (1/d) sum_i beta_i^2 lambda_i = 1``, and labels
``y = f*(g) + noise`` with noise variance ``Delta``.  This module reads those
quantities off a finite data set ``(X, y)`` (``N`` rows, ``d`` columns), taking
the data set itself as the population (every moment is an average over its
``N`` rows):

1. inputs: ``x <- (x - mean) / c`` with ``c^2 = tr Cov(x) / d``, so that the
   mean eigenvalue of ``Sigma = (1/N) sum_r x_r x_r^T`` is 1 (the first
   layer's pre-activation variance ``tr Sigma / d`` of the theory);
2. spectrum: ``Sigma = U diag(lambda) U^T`` (eigenvalues in decreasing
   order); eigenvalues below ``d * eps * lambda_max`` are set to 0 (a constant
   pixel has variance 0, and the theory allows zero eigenvalues);
3. teacher: the population least-squares fit of the centered labels
   ``y_c = y - mean(y)`` on ``x``, ``b = Sigma^+ E[x y_c]``; in the eigenbasis
   ``a_i = (U^T E[x y_c])_i / lambda_i`` (0 where ``lambda_i = 0``).  The
   fitted signal ``b . x`` has variance ``s^2 = sum_i lambda_i a_i^2`` and the
   residual ``y_c - b . x`` the variance ``Var y - s^2``, uncorrelated with
   ``x``;
4. the theory's units: ``g = b . x / s`` has ``Var g = 1``, so
   ``beta_i = sqrt(d) a_i / s`` (``(1/d) sum beta_i^2 lambda_i = 1``), and the
   labels are divided by ``s``: ``y~ = y_c / s = g + r`` with the residual ``r``
   of variance ``Delta = (Var y - s^2) / s^2``.  This is the theory's linear
   target ``f*(g) = g`` (``mu_1(f*)^2 = rho = 1``, ``Var f* = 1``) with label
   noise ``Delta``, so ``Var y~ = Var f* + Delta = 1 + Delta``; errors in these
   units times ``s^2`` are errors in the units of ``y``.

On Gaussian data the residual of a linear target is independent noise; on real
data it is a fixed function of ``x`` that is merely uncorrelated with it, and
the inputs are not Gaussian: the two places where the theory's Gaussian
equivalence can fail (:meth:`RealDataFit.gaussian_surrogate` draws data that
has neither problem, for comparison).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from rfq_theory.checks import InputError

__all__ = [
    "DIGITS_TARGETS",
    "RealDataFit",
    "standardize_inputs",
    "covariance_spectrum",
    "linear_teacher",
    "estimate_structure",
    "digits_dataset",
    "load_npz",
    "load_dataset",
]

#: Targets of the digits data set: ``lt5`` (+1 for digits 0-4, -1 for 5-9), ``parity``
#: (+1 even, -1 odd), ``regression`` (the digit value, standardized).
DIGITS_TARGETS = ("lt5", "parity", "regression")

#: fewest rows of a data set (a learning curve needs training and test rows)
MIN_ROWS = 20


def standardize_inputs(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(Xs, mean, c)``: the rows of ``X`` centered and divided by ``c = sqrt(tr Cov(X) / d)``.

    ``Cov`` is the population covariance of the rows (divisor ``N``), so
    ``Xs`` has column means 0 and ``sum_j Var(Xs[:, j]) / d = 1``.
    """
    X = np.asarray(X, dtype=float)
    mean = X.mean(axis=0)
    Xc = X - mean
    c = math.sqrt(float(np.mean(np.sum(Xc * Xc, axis=1))) / X.shape[1])
    if not c > 0:
        raise InputError("X: every column is constant; the inputs have no variance")
    return Xc / c, mean, c


def covariance_spectrum(Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lambdas, U)``: eigenvalues (decreasing) and eigenvectors (columns) of ``Sigma = Xs^T Xs / N``.

    Eigenvalues below ``d * eps * lambda_max`` (rounding of a rank-deficient
    ``Sigma``) and negative rounding errors are set to exactly 0.
    """
    Xs = np.asarray(Xs, dtype=float)
    N, d = Xs.shape
    sigma = Xs.T @ Xs / N
    lam, U = np.linalg.eigh((sigma + sigma.T) / 2)
    order = np.argsort(lam)[::-1]
    lam, U = lam[order], U[:, order]
    cut = d * np.finfo(float).eps * max(float(lam[0]), 0.0) * 16
    lam = np.where(lam > cut, lam, 0.0)
    return lam, U


def linear_teacher(
    Xs: np.ndarray, y: np.ndarray, lambdas: np.ndarray, U: np.ndarray
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """``(beta2, signal_var, residual_var, a)`` of the least-squares fit of ``y`` on ``Xs``.

    ``a_i = (U^T E[x y_c])_i / lambda_i`` (0 where ``lambda_i = 0``) are the
    coefficients of ``b = Sigma^+ E[x y_c]`` in the eigenbasis;
    ``signal_var = s^2 = sum_i lambda_i a_i^2`` (the variance of ``b . x``),
    ``residual_var = Var y - s^2`` and ``beta2_i = d a_i^2 / s^2`` (so that
    ``(1/d) sum_i beta2_i lambda_i = 1``).
    """
    Xs, y = np.asarray(Xs, dtype=float), np.asarray(y, dtype=float)
    N, d = Xs.shape
    yc = y - y.mean()
    cross = U.T @ (Xs.T @ yc / N)
    pos = lambdas > 0
    a = np.zeros(d)
    a[pos] = cross[pos] / lambdas[pos]
    signal = float(np.sum(lambdas * a * a))
    if not signal > 0:
        raise InputError("y: the labels are uncorrelated with every input direction (no linear signal)")
    total = float(np.mean(yc * yc))
    residual = max(total - signal, 0.0)
    return d * a * a / signal, signal, residual, a


@dataclass(frozen=True)
class RealDataFit:
    """A data set in the theory's units (:func:`estimate_structure`).

    ``X``: the standardized inputs (``N x d``); ``y``: the labels centered and
    divided by the signal's standard deviation (``y = g + r``, ``Var g = 1``);
    ``eigenvalues`` (decreasing, mean 1) and ``basis`` (``U``) of ``Sigma``;
    ``beta2``: the teacher profile paired with ``eigenvalues``; ``noise``:
    ``Delta = Var r``; ``signal_sd``: ``s`` in label units; ``input_scale``:
    ``c``; ``direction``: ``b / s`` in input coordinates (``g = X @ direction``).
    """

    X: np.ndarray
    y: np.ndarray
    eigenvalues: np.ndarray
    basis: np.ndarray
    beta2: np.ndarray
    noise: float
    signal_sd: float
    input_scale: float
    direction: np.ndarray

    @property
    def rows(self) -> int:
        """``N``."""
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        """``d``."""
        return int(self.X.shape[1])

    @property
    def zero_eigenvalues(self) -> int:
        """Number of eigenvalues set to 0."""
        return int(np.sum(self.eigenvalues == 0))

    @property
    def explained(self) -> float:
        """Fraction of the label variance carried by the linear signal, ``1 / (1 + Delta)``."""
        return 1.0 / (1.0 + self.noise)

    def model(self, widths, activations, quantizer: str):
        """The theory's ``DeepRF`` of this data: ``d`` inputs, ``input_spectrum`` and ``teacher`` fitted."""
        from rfq_theory import DeepRF

        widths = tuple(int(k) for k in widths)
        acts = tuple(activations)
        if len(acts) == 1:
            acts = acts * len(widths)
        return DeepRF(
            self.dim,
            widths,
            acts,
            (quantizer,) * len(widths),
            input_spectrum=self.eigenvalues,
            teacher=self.beta2,
        )

    def gaussian_surrogate(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` draws ``x ~ N(0, Sigma)``, ``y = g + sqrt(Delta) eps`` with the fitted ``Sigma`` and teacher.

        The theory's own data model with this data set's spectrum, teacher and
        noise: what the real data would be if it were Gaussian with an
        independent residual.
        """
        z = rng.standard_normal((rows, self.dim))
        x = (z * np.sqrt(self.eigenvalues)) @ self.basis.T
        eps = rng.standard_normal(rows)
        return x, x @ self.direction + math.sqrt(self.noise) * eps

    def summary(self) -> dict:
        """JSON-ready description of the fit (eigenvalues and teacher profile included)."""
        lam = self.eigenvalues
        return {
            "rows": self.rows,
            "dim": self.dim,
            "noise": self.noise,
            "signal_sd": self.signal_sd,
            "explained": self.explained,
            "input_scale": self.input_scale,
            "zero_eigenvalues": self.zero_eigenvalues,
            "largest_eigenvalue": float(lam[0]),
            "participation_ratio": float(lam.sum() ** 2 / np.sum(lam * lam)),
            "eigenvalues": lam.tolist(),
            "beta2": self.beta2.tolist(),
        }


def estimate_structure(X, y) -> RealDataFit:
    """The spectrum, teacher profile and noise of ``(X, y)`` (steps 1-4 of the module docstring).

    Raises :class:`~rfq_theory.checks.InputError` for inputs that are not a
    finite ``N x d`` array with ``N`` labels, constant inputs, or labels with
    no linear signal.
    """
    X, y = _check_arrays(X, y)
    Xs, _, c = standardize_inputs(X)
    lam, U = covariance_spectrum(Xs)
    beta2, signal, residual, a = linear_teacher(Xs, y, lam, U)
    s = math.sqrt(signal)
    yc = (y - y.mean()) / s
    return RealDataFit(
        X=Xs,
        y=yc,
        eigenvalues=lam,
        basis=U,
        beta2=beta2,
        noise=residual / signal,
        signal_sd=s,
        input_scale=c,
        direction=U @ a / s,
    )


def _check_arrays(X, y) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise InputError("X and y must be numeric arrays") from None
    if X.ndim != 2:
        raise InputError(f"X must be a 2-d array (rows x features), got shape {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(f"y must be a 1-d array with one label per row of X ({X.shape[0]}), got shape {y.shape}")
    if X.shape[0] < MIN_ROWS:
        raise InputError(f"X must have at least {MIN_ROWS} rows, got {X.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise InputError("X and y must hold finite numbers (found NaN or infinity)")
    return X, y


def digits_dataset(target: str = "lt5") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1797 x 64, no download) with labels for ``target`` (:data:`DIGITS_TARGETS`).

    Raises :class:`ImportError` without scikit-learn (the ``[sklearn]`` extra).
    """
    if target not in DIGITS_TARGETS:
        raise InputError(f"target must be one of {', '.join(DIGITS_TARGETS)} for the digits data set, got {target!r}")
    from sklearn.datasets import load_digits

    data = load_digits()
    X, v = np.asarray(data.data, dtype=float), np.asarray(data.target, dtype=float)
    if target == "lt5":
        y = np.where(v < 5, 1.0, -1.0)
    elif target == "parity":
        y = np.where(v % 2 == 0, 1.0, -1.0)
    else:
        y = (v - v.mean()) / v.std()
    return X, y


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``y`` of the ``.npz`` file ``path`` (no pickled objects are read)."""
    if not os.path.isfile(path):
        raise InputError(f"dataset file {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("X", "y") if k not in data.files]
            if missing:
                raise InputError(f"dataset file {path!r} lacks the array(s) {', '.join(missing)} (needs X and y)")
            return np.asarray(data["X"]), np.asarray(data["y"])
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"dataset file {path!r} is not a readable .npz file ({type(exc).__name__})") from None


def load_dataset(spec: str, target: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of ``spec``: ``digits`` (with ``target``, default ``lt5``) or ``file:PATH.npz``.

    A file's labels are used as given (``target`` must be ``None``).
    """
    if not isinstance(spec, str):
        raise TypeError(f"dataset must be a string, got {type(spec).__name__}")
    if spec == "digits":
        return digits_dataset("lt5" if target is None else target)
    if spec.startswith("file:"):
        if target is not None:
            raise InputError(f"target applies to the digits data set only; a file's y is used as given, got {target!r}")
        return load_npz(spec[len("file:") :])
    raise InputError(f"dataset must be 'digits' or 'file:PATH.npz', got {spec!r}")
