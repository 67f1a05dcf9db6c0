import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The same profiles everywhere (locally and in CI), derandomized, so a run that passes here passes there: 25
# examples a property in the full suite, 10 in the fast subset (-m "not slow").
settings.register_profile(
    "rfq", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "rfq-fast", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("rfq")


def pytest_configure(config):
    """The fast subset (``-m "not slow"``) draws 10 derandomized examples per property, the full suite 25."""
    if "not slow" in (config.getoption("markexpr", "") or ""):
        settings.load_profile("rfq-fast")


ROOT = Path(__file__).resolve().parents[1]
#: independent reference values, carried in the repository (see tests/data/README.md)
REFERENCE = Path(__file__).resolve().parent / "data" / "reference_predictions.json"


@pytest.fixture(scope="session")
def reference():
    """Independent reference values (``tests/data/reference_predictions.json``).

    The file is part of the repository, so a missing file is an error, not a skip.
    """
    return json.loads(REFERENCE.read_text())
