"""The data of one draw: inputs ``x ~ N(0, Sigma)`` and the teacher vector (``docs/theory.md``, section 7).

For a model with ``Sigma = I`` (``model.structured`` is false) a draw uses

- inputs ``x ~ N(0, I_d)`` (rows of standard normals from the draw's input stream);
- the teacher ``g = theta . x / sqrt(d)`` with ``theta ~ N(0, I_d)`` from the
  ``theta`` stream,

exactly as before structured inputs existed (same streams, same order, the
same numbers).  For a structured model (eigenvalues ``lambda_i`` of
``Sigma`` from ``model.input_spectrum``) a draw uses

- inputs ``x = U diag(sqrt(lambda)) xi`` with ``xi ~ N(0, I_d)`` from the
  same input stream, so ``Cov x = Sigma = U diag(lambda) U^T``;
- the teacher ``beta = U (sqrt(beta2_i) s_i)_i`` with ``beta2`` from
  ``model.teacher.squared_coefficients(lambda)`` rescaled so that
  ``Var g = (1/d) sum_i beta2_i lambda_i = 1`` exactly, and independent
  random signs ``s_i = +-1`` from the ``theta`` stream; ``g = beta . x / sqrt(d)``.

The *basis* places ``Sigma``:

- ``axis``: ``U = I`` (``Sigma`` diagonal in the input coordinates, the
  coordinates the weights act on);
- ``rotated``: ``U`` Haar-distributed on the orthogonal group, drawn for
  each draw from its own stream (:func:`rotation_generator`, child 6 of
  the draw's seed sequence; the six data and weight streams are children
  0-5 and do not change).

Gaussian weights are rotation invariant (``W U`` has the law of ``W``), so
the basis matters only for quantized weights: ``sign(W) U`` is no longer a
``+-1`` matrix.  With ``Sigma = I`` the basis changes nothing and no
rotation is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfq_theory.checks import InputError
from rfq_theory.model import DeepRF

__all__ = [
    "BASES",
    "check_basis",
    "rotation_generator",
    "haar_orthogonal",
    "InputLaw",
    "input_law",
    "teacher_vector",
]

#: Where ``Sigma`` is diagonal: the input coordinates (``axis``) or a Haar-random basis (``rotated``).
BASES = ("axis", "rotated")

#: spawn key of the rotation stream (after the six streams of ``trial_generators``)
_ROTATION_CHILD = 6


def check_basis(basis) -> str:
    """``basis`` if it is one of :data:`BASES`, else an :class:`~rfq_theory.checks.InputError` naming it."""
    if basis not in BASES:
        raise InputError(f"basis must be one of {', '.join(BASES)}, got {basis!r}")
    return str(basis)


def rotation_generator(seed: int, trial: int) -> np.random.Generator:
    """The generator of draw ``trial``'s rotation: child 6 of ``SeedSequence([seed, trial])``."""
    ss = np.random.SeedSequence([int(seed), int(trial)], spawn_key=(_ROTATION_CHILD,))
    return np.random.default_rng(ss)


def haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed ``d x d`` orthogonal matrix: ``Q`` of the QR factorisation of a Gaussian
    matrix with the columns' signs fixed by ``diag(R) > 0`` (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


@dataclass(frozen=True)
class InputLaw:
    """The input covariance of one draw: ``Sigma = U diag(lams) U^T``.

    ``lams`` is ``None`` for ``Sigma = I``; ``rotation`` (``U``) is ``None``
    in the axis basis.  ``beta2`` holds the teacher's squared coefficients
    in the eigenbasis, rescaled so that ``(1/d) sum beta2 lams = 1``
    (``None`` for ``Sigma = I``, where ``theta ~ N(0, I)`` gives
    ``E theta theta^T = I``).
    """

    input_dim: int
    lams: np.ndarray | None = None
    beta2: np.ndarray | None = None
    rotation: np.ndarray | None = None

    @property
    def structured(self) -> bool:
        return self.lams is not None

    def inputs(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` inputs (rows) from the input stream ``rng``: ``xi`` for ``Sigma = I``, else ``U diag(sqrt(lams)) xi``."""
        xi = rng.standard_normal((count, self.input_dim))
        if self.lams is None:
            return xi
        x = xi * np.sqrt(self.lams)
        return x if self.rotation is None else x @ self.rotation.T

    def eigenbasis(self, matrix: np.ndarray) -> np.ndarray:
        """``matrix U`` (columns mapped to the eigenbasis of ``Sigma``); ``matrix`` itself when ``U = I``."""
        return matrix if self.rotation is None else matrix @ self.rotation

    def teacher_columns(self) -> np.ndarray | None:
        """``diag(sqrt(beta2))``'s diagonal: ``E beta beta^T = U diag(beta2) U^T`` over the teacher's signs."""
        return None if self.beta2 is None else np.sqrt(self.beta2)


def input_law(model: DeepRF, seed: int = 0, trial: int = 0, basis: str = "axis") -> InputLaw:
    """The :class:`InputLaw` of draw ``(seed, trial)`` of ``model`` in ``basis`` (module docstring)."""
    basis = check_basis(basis)
    d = int(model.input_dim)
    if not model.structured:
        return InputLaw(d)
    lams = np.asarray(model.input_spectrum.eigenvalues(d), dtype=float)
    beta2 = np.asarray(model.teacher.squared_coefficients(lams), dtype=float)
    norm = math.fsum((beta2 * lams).tolist()) / d
    if not norm > 0:
        raise InputError("the teacher has no weight on the directions with positive variance: Var g = 0")
    rotation = haar_orthogonal(d, rotation_generator(seed, trial)) if basis == "rotated" else None
    return InputLaw(d, lams, beta2 / norm, rotation)


def teacher_vector(law: InputLaw, rng: np.random.Generator) -> np.ndarray:
    """``beta / sqrt(d)`` from the ``theta`` stream ``rng``, so that ``g = x . teacher_vector``.

    ``Sigma = I``: ``theta / sqrt(d)`` with ``theta ~ N(0, I_d)``; structured:
    ``U (sqrt(beta2_i) s_i) / sqrt(d)`` with signs ``s_i`` from ``rng``.
    """
    d = law.input_dim
    if law.beta2 is None:
        return rng.standard_normal(d) / math.sqrt(d)
    signs = np.where(rng.random(d) < 0.5, -1.0, 1.0)
    beta = np.sqrt(law.beta2) * signs
    if law.rotation is not None:
        beta = law.rotation @ beta
    return beta / math.sqrt(d)
