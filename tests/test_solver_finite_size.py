"""Asymptotic solver vs the finite-size route (section 6) on drawn networks of a few thousand units."""

import numpy as np
import pytest

from rfq_theory import DeepRF, predict
from validation.montecarlo.finite_size import finite_size_spectrum

CASES = [
    # model, list of (samples, ridge, noise, target)
    (
        DeepRF(1000, [2000, 1500], ["tanh", "relu"], "sign"),
        [(1200, 1e-3, 0.1, "linear"), (3000, 0, 0.1, "linear"), (800, 0, 0.2, "linear"), (1500, 0.1, 0, "tanh")],
    ),
    (
        DeepRF(800, [1600, 400, 1200], ["erf", "relu", "gelu"], "sign-scaled"),
        [(1000, 1e-2, 0.1, "linear"), (500, 1e-4, 0.0, "linear")],
    ),
    (DeepRF(1000, [2000], ["sigmoid"], "ternary:0.5"), [(1800, 1e-2, 0.05, "linear")]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES)))
def test_within_one_percent_of_finite_size_route(case):
    model, points = CASES[case]
    spectra = [finite_size_spectrum(model, seed=7, trial=0)]
    for n, lam, noise, target in points:
        theory = predict(model, n, lam, noise, target)
        finite = np.mean([s.predict(n, lam, noise, target).test_error for s in spectra])
        assert abs(finite - theory.test_error) <= 0.01 * theory.test_error, (n, lam, finite, theory.test_error)
