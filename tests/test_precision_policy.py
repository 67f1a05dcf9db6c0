"""The precision policy, enforced on the source: one module owns mpmath.

Only ``rfq_theory/precision.py`` imports mpmath; every other module takes
numbers and contexts from it (this thread's private context, frozen-precision
numbers), so no code path can read or set the global ``mpmath.mp``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for pkg in ("rfq_theory", "validation") for p in (ROOT / pkg).rglob("*.py"))
OWNER = ROOT / "rfq_theory" / "precision.py"


def _mpmath_imports(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mpmath" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mpmath":
            lines.append(node.lineno)
    return lines


def _global_precision_writes(tree: ast.AST) -> list[int]:
    """Assignments to ``<something>.mp.dps`` / ``.mp.prec`` (the global context's precision)."""
    lines = []
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and t.attr in ("dps", "prec")
                and isinstance(t.value, ast.Attribute)
                and t.value.attr == "mp"
            ):
                lines.append(node.lineno)
    return lines


def test_the_scan_sees_the_package():
    assert OWNER in SOURCES and len(SOURCES) > 40


def test_the_scan_finds_what_it_looks_for():
    tree = ast.parse("import mpmath\nfrom mpmath import mpf\nimport mpmath.libmp as l\nmpmath.mp.dps = 50\n")
    assert _mpmath_imports(tree) == [1, 2, 3]
    assert _global_precision_writes(tree) == [4]


@pytest.mark.parametrize("path", [p for p in SOURCES if p != OWNER], ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_precision_module_imports_mpmath(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not _mpmath_imports(tree), f"{path.relative_to(ROOT)} imports mpmath: use rfq_theory.precision"
    assert not _global_precision_writes(tree), f"{path.relative_to(ROOT)} sets the global mpmath precision"
