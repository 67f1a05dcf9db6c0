"""One drawn network of the canonical deep random-features model.

:class:`SimulatedNetwork` holds the quantized weights ``Q_l(W_l)`` of draw
``(seed, trial)`` (:func:`validation.montecarlo.simulate.draw_weights`) and
computes everything the validation experiments read off a drawn network:

- the features ``z_0 = x``, ``z_l = sigma_l(Q_l(W_l) z_{l-1} / sqrt(k_{l-1})) - m_l``
  with the theoretical centering ``m_l = E sigma_l(u)`` (:meth:`features`);
- the unit-variance rescaled weights ``F_l = Q_l(W_l) / (s_l sqrt(k_{l-1}))``,
  ``s_l^2 = E Q_l(g)^2`` (:meth:`unit_variance`);
- the realized Gaussian-equivalent covariances
  ``Omega_0 = I_d``, ``Omega_l = kappa1_l^2 F_l Omega_{l-1} F_l^T + kappastar_l^2 I``
  and ``Phi_0 = I_d``, ``Phi_l = kappa1_l F_l Phi_{l-1}`` (:meth:`omegas`, :meth:`omega_phi`);
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
    """

    def __init__(self, model: DeepRF, seed: int = 0, trial: int = 0, weights=None, ops=None):
        from .montecarlo.backends import get_backend
        from .montecarlo.simulate import draw_weights, network_sizes

        self.model = model
        self.sizes = network_sizes(model)
        self.seed, self.trial = seed, trial
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
    def unit_variance(self) -> list[np.ndarray]:
        """``F_l = Q_l(W_l) / (s_l sqrt(k_{l-1}))`` with ``s_l^2 = E Q_l(g)^2`` (theory value)."""
        out = []
        for l, (quant, W) in enumerate(zip(self.model.quantizer_objects, self.weights)):
            s = math.sqrt(float(quant.second_moment()))
            out.append(W / (s * math.sqrt(self.sizes[l])))
        return out

    def omegas(self) -> list[np.ndarray]:
        """The realized ``Omega_1, ..., Omega_L`` (symmetrised)."""
        omega = np.eye(self.sizes[0])
        out = []
        for lc, F in zip(self.layers, self.unit_variance()):
            a, c = float(lc.kappa1) ** 2, float(lc.kappa_star) ** 2
            omega = a * (F @ omega @ F.T)
            omega[np.diag_indices_from(omega)] += c
            omega = (omega + omega.T) / 2
            out.append(omega)
        return out

    def omega_phi(self) -> tuple[np.ndarray, np.ndarray]:
        """``(Omega_L, Phi_L)`` of the last layer (``Omega_L`` symmetrised once, at the end)."""
        omega: np.ndarray | None = None
        phi: np.ndarray | None = None
        for lc, F in zip(self.layers, self.unit_variance()):
            k1, ks = float(lc.kappa1), float(lc.kappa_star)
            if omega is None or phi is None:  # Omega_0 = Phi_0 = I
                omega, phi = k1**2 * (F @ F.T), k1 * F
            else:
                omega, phi = k1**2 * (F @ omega @ F.T), k1 * (F @ phi)
            omega[np.diag_indices_from(omega)] += ks**2
        assert omega is not None and phi is not None  # a model has at least one layer
        return (omega + omega.T) / 2, phi


def unit_variance_matrices(model: DeepRF, weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``F_l`` of :meth:`SimulatedNetwork.unit_variance` for given quantized ``weights``."""
    return SimulatedNetwork(model, weights=weights).unit_variance()
