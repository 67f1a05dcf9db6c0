"""One drawn network of the canonical deep random-features model.

:class:`SimulatedNetwork` holds the quantized weights ``Q_l(W_l)`` of draw
``(seed, trial)`` (:func:`validation.montecarlo.simulate.draw_weights`) and
computes everything the validation experiments read off a drawn network:

- the features ``z_0 = x``, ``z_l = sigma_l(Q_l(W_l) z_{l-1} / sqrt(k_{l-1})) - m_l``
  with the theoretical centering ``m_l = E sigma_l(u)`` (:meth:`features`);
- the unit-variance rescaled weights ``F_l = Q_l(W_l) / (s_l sqrt(k_{l-1}))``,
  ``s_l^2 = E Q_l(g)^2`` (:meth:`unit_variance`);
- the realized Gaussian-equivalent covariances
  ``Omega_0 = Sigma``, ``Omega_l = kappa1_l^2 F_l Omega_{l-1} F_l^T + kappastar_l^2 I``
  and ``Phi_0 = Sigma``, ``Phi_l = kappa1_l F_l Phi_{l-1}`` (:meth:`omegas`, :meth:`omega_phi`),
  with ``Sigma = I_d`` for isotropic inputs and ``Sigma = U diag(lambda) U^T``
  of the draw's :class:`~validation.montecarlo.inputs.InputLaw` otherwise;
- the teacher-weighted cross-covariance ``B = Phi_L U diag(sqrt(beta2))``
  (:meth:`signal_matrix`; ``B = Phi_L`` for isotropic inputs), whose
  ``B B^T`` is ``E_beta Phi_L beta beta^T Phi_L^T`` over the teacher's signs;
- the conjugate kernels ``K_l = Z_l Z_l^T / k_l`` of the real features (:meth:`kernels`).

The Monte Carlo draws (ridge and convex losses), the finite-size route and
the spectrum check all use this class, so the network is written once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from rfq_theory.model import DeepRF

__all__ = ["SimulatedNetwork"]


class SimulatedNetwork:
    """The drawn network of ``model`` for draw ``(seed, trial)``.

    ``weights`` may pass the quantized matrices directly (shape ``k_l x k_{l-1}``);
    by default they are :func:`~validation.montecarlo.simulate.draw_weights`.
    ``ops`` is the backend of :meth:`features` (default NumPy float64).
    ``basis`` places ``Sigma`` of a structured model (``axis`` or ``rotated``,
    :mod:`validation.montecarlo.inputs`); ``law`` may pass the draw's input law.
    """

    def __init__(
        self, model: DeepRF, seed: int = 0, trial: int = 0, weights=None, ops=None, basis: str = "axis", law=None
    ):
        from .montecarlo.backends import get_backend
        from .montecarlo.inputs import check_basis
        from .montecarlo.simulate import draw_weights, network_sizes

        self.model = model
        self.sizes = network_sizes(model)
        self.seed, self.trial = seed, trial
        self.basis = check_basis(basis)
        self._law = law
        self.weights: list[np.ndarray] = list(draw_weights(model, seed, trial) if weights is None else weights)
        for l, W in enumerate(self.weights):
            expected = (self.sizes[l + 1], self.sizes[l])
            if W.shape != expected:
                raise ValueError(f"weights[{l}] has shape {W.shape}, expected {expected}")
        self.ops = ops if ops is not None else get_backend("numpy")
        self.layers = model.layers()
        # A_l = Q(W_l)^T / sqrt(k_{l-1}) so that Z_l = sigma(Z_{l-1} A_l) - m_l (rows are samples)
        self._mats: list | None = None
        self._acts = [self.ops.activation(a) for a in model.activations]
        self.means = [float(lc.mu0) for lc in self.layers]

    # ------------------------------------------------------------ features
    def layer_features(self, x) -> Iterator:
        """``Z_1, ..., Z_L`` of the inputs ``x`` (rows are samples), on the backend."""
        if self._mats is None:
            self._mats = [self.ops.asarray(W.T / math.sqrt(self.sizes[l])) for l, W in enumerate(self.weights)]
        mats = self._mats
        z = self.ops.asarray(x)
        for A, act, m in zip(mats, self._acts, self.means):
            z = act(z @ A) - m
            yield z

    def features(self, x):
        """The last layer's features ``Z_L`` of the inputs ``x`` (rows are samples)."""
        *_, last = self.layer_features(x)
        return last

    def kernels(self, x) -> list[np.ndarray]:
        """``K_l = Z_l Z_l^T / k_l`` (``n x n``) of the inputs ``x`` for ``l = 1..L``."""
        return [np.asarray(z @ z.T) / self.sizes[l + 1] for l, z in enumerate(self.layer_features(x))]

    # ------------------------------------------------------------ Gaussian equivalent
    @property
    def law(self):
        """The draw's :class:`~validation.montecarlo.inputs.InputLaw` (built on first use)."""
        if self._law is None:
            from .montecarlo.inputs import input_law

            self._law = input_law(self.model, self.seed, self.trial, self.basis)
        return self._law

    def _first_layer(self, F: np.ndarray):
        """``(F Sigma F^T, F U diag(lambda))``: the first layer's ``Omega`` and ``Phi`` before ``kappa1``.

        ``Phi`` is returned in the eigenbasis of ``Sigma`` (``Phi_input = Phi U^T``).
        """
        law = self.law
        G = law.eigenbasis(F)
        G_lam = G * law.lams
        return G_lam @ G.T, G_lam

    def unit_variance(self) -> list[np.ndarray]:
        """``F_l = Q_l(W_l) / (s_l sqrt(k_{l-1}))`` with ``s_l^2 = E Q_l(g)^2`` (theory value)."""
        out = []
        for l, (quant, W) in enumerate(zip(self.model.quantizer_objects, self.weights)):
            s = math.sqrt(float(quant.second_moment()))
            out.append(W / (s * math.sqrt(self.sizes[l])))
        return out

    def omegas(self) -> list[np.ndarray]:
        """The realized ``Omega_1, ..., Omega_L`` (symmetrised)."""
        structured = self.model.structured
        omega = np.eye(self.sizes[0])
        out = []
        for l, (lc, F) in enumerate(zip(self.layers, self.unit_variance())):
            a, c = float(lc.kappa1) ** 2, float(lc.kappa_star) ** 2
            omega = a * (self._first_layer(F)[0] if structured and l == 0 else F @ omega @ F.T)
            omega[np.diag_indices_from(omega)] += c
            omega = (omega + omega.T) / 2
            out.append(omega)
        return out

    def omega_phi(self, eigenbasis: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(Omega_L, Phi_L)`` of the last layer (``Omega_L`` symmetrised once, at the end).

        ``eigenbasis``: ``Phi_L U`` (columns in the eigenbasis of ``Sigma``)
        instead of ``Phi_L``; the same for isotropic inputs and the axis basis.
        """
        omega: np.ndarray | None = None
        phi: np.ndarray | None = None
        structured = self.model.structured
        for lc, F in zip(self.layers, self.unit_variance()):
            k1, ks = float(lc.kappa1), float(lc.kappa_star)
            if (omega is None or phi is None) and structured:  # Omega_0 = Phi_0 = Sigma
                o, p = self._first_layer(F)
                omega, phi = k1**2 * o, k1 * p
            elif omega is None or phi is None:  # Omega_0 = Phi_0 = I
                omega, phi = k1**2 * (F @ F.T), k1 * F
            else:
                omega, phi = k1**2 * (F @ omega @ F.T), k1 * (F @ phi)
            omega[np.diag_indices_from(omega)] += ks**2
        assert omega is not None and phi is not None  # a model has at least one layer
        if structured and not eigenbasis and self.law.rotation is not None:
            phi = phi @ self.law.rotation.T
        return (omega + omega.T) / 2, phi

    def signal_matrix(self, phi_eig: np.ndarray) -> np.ndarray:
        """``B = Phi_L U diag(sqrt(beta2))`` from ``Phi_L U`` (:meth:`omega_phi` with ``eigenbasis=True``).

        ``B B^T = E Phi_L beta beta^T Phi_L^T`` over the teacher's random
        signs (``E beta beta^T = U diag(beta2) U^T``); for isotropic inputs
        ``E theta theta^T = I`` and ``B = Phi_L``.
        """
        cols = self.law.teacher_columns() if self.model.structured else None
        return phi_eig if cols is None else phi_eig * cols


def unit_variance_matrices(model: DeepRF, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``F_l`` of :meth:`SimulatedNetwork.unit_variance` for given quantized ``weights``."""
    return SimulatedNetwork(model, weights=weights).unit_variance()
