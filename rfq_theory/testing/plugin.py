"""pytest plugin of rfq-theory (entry point ``pytest11``: loaded by every pytest run).

- Marker ``@pytest.mark.rfq_simulation``: a Monte Carlo test compared with
  the theory.  A Hypothesis test with this marker (and without its own
  ``@settings``) runs under the ``rfq-simulation`` profile; keyword
  arguments override profile settings, e.g.
  ``@pytest.mark.rfq_simulation(max_examples=3)``.
- Hypothesis profile ``rfq-simulation`` (:data:`PROFILE`): few examples, no
  deadline, no shrinking (every shrink step reruns a simulation),
  derandomized (a statistical test must not change its draws between runs).
  Select it for a whole run with ``--hypothesis-profile=rfq-simulation``.
- Fixture ``rfq_rng``: a NumPy ``Generator`` seeded from the test's node id
  (the same numbers on every run).

The plugin imports neither Hypothesis nor rfq-theory's solver: when Hypothesis
is absent, or a run uses no Hypothesis test, nothing is imported.
"""

from __future__ import annotations

import sys
import zlib
from typing import Any

import pytest

__all__ = ["PROFILE", "PROFILE_SETTINGS", "register_profile"]

#: Name of the Hypothesis profile for slow simulations.
PROFILE = "rfq-simulation"
#: Its settings (keyword arguments of ``hypothesis.settings``).
PROFILE_SETTINGS = {"max_examples": 5, "deadline": None, "derandomize": True, "database": None, "print_blob": True}


def register_profile(name: str = PROFILE, **overrides):
    """Register (and return) the Hypothesis profile for slow simulations; needs Hypothesis."""
    from hypothesis import HealthCheck, Phase, settings

    kwargs: dict[str, Any] = dict(PROFILE_SETTINGS)
    kwargs.update(
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    kwargs.update(overrides)
    settings.register_profile(name, **kwargs)
    return settings.get_profile(name)


def pytest_addoption(parser):
    parser.addini("rfq_simulation_examples", "max_examples of the rfq-simulation Hypothesis profile", default="")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "rfq_simulation(**settings): a Monte Carlo test compared with rfq-theory; Hypothesis tests run under "
        "the rfq-simulation profile (few examples, no deadline, no shrinking)",
    )
    # the profile must exist before Hypothesis's own plugin loads a profile named on the command line
    wanted = getattr(config.option, "hypothesis_profile", None)
    if wanted == PROFILE or "hypothesis" in sys.modules:
        _register(config)


def _register(config):
    examples = config.getini("rfq_simulation_examples")
    overrides = {"max_examples": int(examples)} if str(examples).strip() else {}
    return register_profile(**overrides)


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("rfq_simulation") is not None]
    if not marked or "hypothesis" not in sys.modules:
        return
    from hypothesis import settings

    profile = _register(config)
    for item in marked:
        fn = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        if not getattr(fn, "is_hypothesis_test", False):
            continue
        if getattr(fn, "_hypothesis_internal_settings_applied", False):
            continue  # the test's own @settings win
        marker = item.get_closest_marker("rfq_simulation")
        fn._hypothesis_internal_use_settings = settings(profile, **marker.kwargs) if marker.kwargs else profile


@pytest.fixture
def rfq_rng(request):
    """A NumPy ``Generator`` seeded from the test's node id."""
    import numpy as np

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
