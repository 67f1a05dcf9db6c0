"""Sphinx configuration of the rfq-theory documentation site.

Build (from the repository root): ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The pages are Markdown (MyST); the API reference comes from the docstrings (autodoc, numpy style);
``_ext/docs_exec.py`` runs the examples of every page while the site builds.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the checkout's package, not an installed copy; the local extensions
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import rfq_theory  # noqa: E402

project = "rfq-theory"
author = "rfq-theory contributors"
copyright = "rfq-theory contributors"
release = rfq_theory.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "docs_exec",
    "api_check",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# MyST: anchors for headings down to level 4, so that links such as
# ``validation.md#on-a-cluster`` resolve as on GitHub
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# Plain fences (no language) stay plain text
highlight_language = "none"

# autodoc + napoleon: numpy-style docstrings, signatures with their annotations
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
autoclass_content = "class"

# docs_exec: examples that take long are marked ``<!-- docs: no-run -->`` on the line before the fence
# (or ``bash no-run`` as the fence info); everything else runs, one namespace and one temporary
# folder per page (``-D docs_exec_enabled=0`` builds without running them, for drafts). Seconds allowed
# for one page's examples:
docs_exec_timeout = 300

html_theme = "furo"
html_title = f"rfq-theory {release}"
html_static_path = []
