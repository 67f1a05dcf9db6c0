import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "predictions.json"


@pytest.fixture(scope="session")
def reference():
    """Independent reference values (shared/reference/predictions.json)."""
    if not REFERENCE.exists():
        pytest.skip(f"reference file {REFERENCE} not present")
    return json.loads(REFERENCE.read_text())
