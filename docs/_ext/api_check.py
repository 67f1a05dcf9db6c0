"""Sphinx extension: every public name of ``rfq_theory.__all__`` must appear in the API reference.

A name counts as documented when the Python domain holds ``rfq_theory.<name>`` or
``rfq_theory.<module>.<name>`` (for example through ``.. automodule:: rfq_theory.<module>``).
A missing name is a warning, so the ``-W`` build fails until the reference covers it.
"""

from __future__ import annotations

import importlib

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)


def undocumented(public: list[str], documented: set[str], package: str = "rfq_theory") -> list[str]:
    """Names of ``public`` documented neither as ``package.name`` nor as ``package.<module>.name``."""
    short = {}
    for full in documented:
        if full.startswith(package + "."):
            short.setdefault(full.rsplit(".", 1)[-1], set()).add(full)
    return [name for name in public if name not in short]


def _check(app: Sphinx, env: BuildEnvironment) -> None:
    package = importlib.import_module(app.config.api_check_package)
    top_level = {"function", "class", "exception", "data"}
    documented = {full for full, entry in env.get_domain("py").objects.items() if entry.objtype in top_level}
    for name in undocumented(list(package.__all__), documented, app.config.api_check_package):
        logger.warning(
            "public name %s.%s is missing from the API reference (add it to %s)",
            app.config.api_check_package,
            name,
            app.config.api_check_page,
            type="api_check",
        )


def setup(app: Sphinx) -> dict:
    app.add_config_value("api_check_package", "rfq_theory", "env")
    app.add_config_value("api_check_page", "docs/api-reference.md", "env")
    app.connect("env-check-consistency", _check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
