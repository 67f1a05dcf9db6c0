"""Safe parsing: allowed expressions build the right SymPy tree; everything else is rejected."""

import pytest
import sympy as sp

from rfq_theory.expressions import ExpressionError, U, parse_expression

MALICIOUS = [
    "__import__('os').system('echo pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "u.__class__",
    "exec('1')",
    "eval('u')",
    "lambda: 1",
    "[u for u in range(3)]",
    "open('/etc/passwd')",
    "sympify('u')",
    "u if u else 1",
    "'u'",
    "u[0]",
    "f(u)",
    "tanh(u, evaluate=False)",
    "u; import os",
    "u == 1",
    "u**1000",
    "u @ u",
    "u // 2",
    "~u",
    "not u",
    "{u}",
    "(u, u)",
]

MALFORMED = ["", "   ", "u +", "tanh(", "2u", "exp()", "Max(u)", "1/0", "x**y", "sin(u", "u" * 3000]


@pytest.mark.parametrize("text", MALICIOUS)
def test_malicious_rejected(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_rejected(text):
    with pytest.raises(ExpressionError):
        parse_expression(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("u*tanh(u)", U * sp.tanh(U)),
        ("x**2 - 1", U**2 - 1),
        ("Max(u, 0.1*u)", sp.Max(U, U / 10)),
        ("-abs(u) + sqrt(2)*erf(u/2)", -sp.Abs(U) + sp.sqrt(2) * sp.erf(U / 2)),
        ("exp(-u**2/2) * cos(pi*u)", sp.exp(-(U**2) / 2) * sp.cos(sp.pi * U)),
        ("Heaviside(u)", sp.Heaviside(U, sp.Rational(1, 2))),
        ("1.5e-1*u", sp.Rational(3, 20) * U),
    ],
)
def test_allowed_expressions(text, expected):
    assert sp.simplify(parse_expression(text) - expected) == 0


def test_decimal_literals_are_exact():
    assert parse_expression("0.1*u") == U / 10
