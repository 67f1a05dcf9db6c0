"""rfq-theory: exact error predictions for one-bit quantized deep random-features models.

Public API
----------
- :class:`DeepRF` – immutable model description (sizes, activations, quantizers).
- :func:`predict` – asymptotic test/train error at any precision.
- :func:`sweep`, :func:`optimal_ridge`, :func:`one_bit_theorem` – derived quantities.
- :func:`coefficients`, :func:`exact_coefficients`, :func:`propagate` – Gaussian-equivalent
  coefficients of activations and layers.
- :func:`get_activation`, :func:`get_quantizer`, :class:`Quantizer` – registries.

Notation and equations: ``docs/theory.md``.
"""

__version__ = "0.1.0"

# Public names and the module that defines each; imported on first use, so that
# ``import rfq_theory`` (and ``rfq --help``) stays light.
_LAZY = {
    "Activation": "activations",
    "ActivationError": "activations",
    "builtin_activations": "activations",
    "get_activation": "activations",
    "InputError": "checks",
    "Coefficients": "activation_coefficients",
    "NotExactError": "activation_coefficients",
    "coefficients": "activation_coefficients",
    "exact_coefficients": "activation_coefficients",
    "LayerCoefficients": "equivalence",
    "propagate": "equivalence",
    "propagate_exact": "equivalence",
    "ExpressionError": "expressions",
    "parse_expression": "expressions",
    "GaussianIntegralError": "gaussian",
    "DeepRF": "model",
    "InputSpectrum": "input_spectrum",
    "TeacherProfile": "input_spectrum",
    "Quantizer": "quantizers",
    "QuantizerError": "quantizers",
    "builtin_quantizers": "quantizers",
    "get_quantizer": "quantizers",
    "Prediction": "solver",
    "SolverError": "solver",
    "predict": "solver",
    "TheoremResult": "sweeps",
    "one_bit_theorem": "sweeps",
    "optimal_ridge": "sweeps",
    "OptimalRidge": "sweeps",
    "sweep": "sweeps",
    "clear_caches": "caches",
    "LayerSpectrum": "spectra",
    "Spectrum": "spectra",
    "spectrum": "spectra",
    "BatchResult": "batch",
    "OptimalRidgeResult": "batch",
    "optimal_ridge_batch": "batch",
    "solve_batch": "batch",
    "PhaseMap": "phase",
    "phase_map": "phase",
    "GLMPrediction": "glm",
    "GLMTheorem": "glm",
    "predict_glm": "glm",
    "glm_theorem": "glm",
    "glm_sweep": "glm",
    "optimal_ridge_glm": "glm",
    "Readout": "readouts",
    "RidgeReadout": "readouts",
    "ConvexLossReadout": "readouts",
    "Diagnostics": "results",
    "PowerLawFit": "scaling_laws",
    "ScalingLaw": "scaling_laws",
    "fit_power_law": "scaling_laws",
    "scaling_law": "scaling_laws",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rfq_theory' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "ConvexLossReadout",
    "Diagnostics",
    "Readout",
    "RidgeReadout",
    "optimal_ridge_glm",
    "Activation",
    "ActivationError",
    "BatchResult",
    "OptimalRidgeResult",
    "PhaseMap",
    "Coefficients",
    "DeepRF",
    "GLMPrediction",
    "GLMTheorem",
    "ExpressionError",
    "GaussianIntegralError",
    "InputError",
    "InputSpectrum",
    "TeacherProfile",
    "LayerCoefficients",
    "LayerSpectrum",
    "NotExactError",
    "OptimalRidge",
    "Prediction",
    "Quantizer",
    "QuantizerError",
    "SolverError",
    "Spectrum",
    "TheoremResult",
    "builtin_activations",
    "builtin_quantizers",
    "clear_caches",
    "coefficients",
    "exact_coefficients",
    "get_activation",
    "get_quantizer",
    "glm_sweep",
    "glm_theorem",
    "one_bit_theorem",
    "optimal_ridge",
    "optimal_ridge_batch",
    "parse_expression",
    "phase_map",
    "predict",
    "predict_glm",
    "propagate",
    "propagate_exact",
    "spectrum",
    "solve_batch",
    "sweep",
    "PowerLawFit",
    "ScalingLaw",
    "fit_power_law",
    "scaling_law",
]
