"""Layer propagation of the Gaussian-equivalent description (``docs/theory.md``, section 2).

With ``q_0 = 1`` (inputs ``x ~ N(0, I_d)``) and for ``l = 1..L``:

    v_l          = s_l^2 q_{l-1}                 preactivation variance
    mu0, mu1, mu_star  at variance v_l            (see :mod:`rfq_theory.activation_coefficients`)
    q_l          = Var sigma_l(u) = mu1^2 v_l + mu_star^2
    kappa1_l     = s_l mu1(v_l)
    kappastar_l  = mu_star(v_l)

so layer ``l`` is equivalent to ``z_l = kappa1_l F_l z_{l-1} + kappastar_l xi_l``
with ``F_l`` of unit-variance entries over ``sqrt(k_{l-1})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from .activation_coefficients import NotExactError, coefficients_at, exact_coefficients
from .activations import Activation, get_activation
from .checks import MAX_WORKING_DIGITS, InputError, check_digits
from .gaussian import GUARD_DIGITS
from .precision import MPF, freeze
from .precision import mp as mpmath
from .quantizers import get_quantizer

__all__ = ["LayerCoefficients", "propagate", "propagate_exact", "broadcast_layers"]


@dataclass(frozen=True)
class LayerCoefficients:
    """Gaussian-equivalent description of one random layer (numbers are mpf)."""

    index: int
    activation: str
    quantizer: str
    s2: MPF
    variance: MPF
    mu0: MPF
    mu1: MPF
    mu_star: MPF
    q: MPF
    kappa1: MPF
    kappa_star: MPF
    exact: bool

    def as_dict(self, digits=15):
        """Plain dict with numbers as decimal strings of ``digits`` digits."""
        out = {"index": self.index, "activation": self.activation, "quantizer": self.quantizer, "exact": self.exact}
        for key in ("s2", "variance", "mu0", "mu1", "mu_star", "q", "kappa1", "kappa_star"):
            out[key] = mpmath.nstr(getattr(self, key), digits, strip_zeros=False)
        return out


def broadcast_layers(values, n_layers, name):
    """A per-layer list from one value or a list of ``n_layers`` values."""
    if isinstance(values, str) or values is None or not isinstance(values, Sequence):
        return [values] * n_layers
    values = list(values)
    if len(values) == 1:
        return values * n_layers
    if len(values) != n_layers:
        want = "1 entry" if n_layers == 1 else f"1 or {n_layers} entries (one per layer)"
        raise InputError(f"{name} must have {want}, got {len(values)}")
    return values


def propagate(activations, quantizers=None, digits=15, input_variance=1):
    """Per-layer coefficients of a deep RF model, to ``digits`` significant digits.

    Parameters
    ----------
    activations:
        One activation spec per layer (their number fixes ``L``).
    quantizers:
        One quantizer spec per layer, or a single one for all (default
        ``none``).
    input_variance:
        ``q_0 = tr Sigma / d``, the variance of an input coordinate on
        average (1 for ``x ~ N(0, I)`` and the normalized spectra).

    Notes
    -----
    Returns a tuple of :class:`LayerCoefficients`, layer 1 first.
    Implements ``v_l = s_l^2 q_{l-1}``, ``q_l = Var sigma_l``,
    ``kappa1_l = s_l mu1(v_l)``, ``kappastar_l = mu_star(v_l)``.
    """
    digits = check_digits(digits, MAX_WORKING_DIGITS)
    if isinstance(activations, (str, Activation)):
        activations = [activations]
    acts = [get_activation(a) for a in activations]
    if not acts:
        raise InputError("activations must name at least one layer")
    quants = [get_quantizer(q) for q in broadcast_layers(quantizers, len(acts), "quantizers")]
    work = digits + GUARD_DIGITS
    layers = []
    with mpmath.workdps(work):
        q_prev = mpmath.mpf(input_variance)
        exact_so_far = True
        for index, (act, quant) in enumerate(zip(acts, quants), start=1):
            s2 = quant.second_moment(work)
            v = s2 * q_prev
            if not v > 0:
                raise InputError(
                    f"layer {index}: preactivation variance is {mpmath.nstr(v, 5)} (the previous layer's "
                    "features are constant); the model carries no information"
                )
            c = coefficients_at(act, v, work, work)  # computed at work digits: no second guard
            q = c.variance_of_sigma
            exact_so_far = exact_so_far and c.exact and quant.is_exact
            layers.append(
                LayerCoefficients(
                    index=index,
                    activation=act.name,
                    quantizer=quant.spec or quant.name,
                    s2=freeze(s2, digits),
                    variance=freeze(v, digits),
                    mu0=freeze(c.mu0, digits),
                    mu1=freeze(c.mu1, digits),
                    mu_star=freeze(c.mu_star, digits),
                    q=freeze(q, digits),
                    kappa1=freeze(mpmath.sqrt(s2) * c.mu1, digits),
                    kappa_star=freeze(c.mu_star, digits),
                    exact=exact_so_far,
                )
            )
            q_prev = q
    return tuple(layers)


def propagate_exact(activations, quantizers=None):
    """Closed-form propagation: a list of dicts of SymPy expressions per layer.

    Keys: ``s2, variance, mu0, mu1, mu_star, q, kappa1, kappa_star``.
    Raises :class:`~rfq_theory.activation_coefficients.NotExactError` at the first
    layer whose activation or quantizer lacks a closed form.
    """
    if isinstance(activations, (str, Activation)):
        activations = [activations]
    acts = [get_activation(a) for a in activations]
    quants = [get_quantizer(q) for q in broadcast_layers(quantizers, len(acts), "quantizers")]
    q_prev = sp.Integer(1)
    out = []
    for index, (act, quant) in enumerate(zip(acts, quants), start=1):
        if quant.exact_second_moment is None:
            raise NotExactError(f"layer {index}: quantizer {quant.name!r} has no closed-form s^2")
        s2 = quant.exact_second_moment
        v = sp.simplify(s2 * q_prev)
        c = exact_coefficients(act, v)
        q = sp.simplify(c["second_moment"] - c["mu0"] ** 2)
        out.append(
            {
                "s2": s2,
                "variance": v,
                "mu0": c["mu0"],
                "mu1": c["mu1"],
                "mu_star": c["mu_star"],
                "q": q,
                "kappa1": sp.simplify(sp.sqrt(s2) * c["mu1"]),
                "kappa_star": c["mu_star"],
            }
        )
        q_prev = q
    return out
