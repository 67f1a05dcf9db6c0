"""No user text reaches eval/exec/sympify/parse_expr: source scan and the code-execution reproduction."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DANGEROUS = {"eval", "exec", "sympify", "parse_expr", "S", "compile", "__import__"}


def _calls(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in DANGEROUS:
                yield name, node


def _constant(node):
    """True when the argument is a literal the code itself wrote (number or string constant)."""
    return isinstance(node, ast.Constant) or (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


def test_no_dangerous_call_on_non_constants():
    offenders = []
    for top in ("rfq_theory", "validation"):
        for path in (ROOT / top).rglob("*.py"):
            for name, node in _calls(path):
                if all(_constant(a) for a in node.args) and not node.keywords:
                    continue
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}(...)")
    assert not offenders, "calls that may evaluate text: " + "; ".join(offenders)


def test_piecewise_strings_do_not_execute(tmp_path):
    target = tmp_path / "PWNED"
    payload = f"-1 if __import__('os').system('touch {target}') else -1"
    code = (
        "from rfq_theory import Quantizer\n"
        "try:\n"
        f"    Quantizer.piecewise('q', ['0'], [{payload!r}, '1'])\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "refused" in out.stdout, out.stderr
    assert not target.exists()


@pytest.mark.parametrize("bad", ["__import__('os')", "().__class__", "lambda: 1", "(x := 1)", "'a'*3", "[1][0]"])
def test_quantizer_levels_refuse_code(bad):
    from rfq_theory import Quantizer, QuantizerError

    with pytest.raises(QuantizerError):
        Quantizer.piecewise("q", [0], [bad, 1])


def test_piecewise_accepts_numbers_and_safe_text():
    from fractions import Fraction

    import sympy as sp

    from rfq_theory import Quantizer

    q = Quantizer.piecewise("q", ["0"], ["-sqrt(2/pi)", sp.sqrt(2 / sp.pi)]).check_centered()
    assert abs(float(q.second_moment()) - 2 / 3.141592653589793) < 1e-15
    q2 = Quantizer.piecewise("q2", [Fraction(-1, 2), 0.5], [-1, 0, 1]).check_centered()
    assert 0 < float(q2.second_moment()) < 1
