"""Safe parsing of user expressions into SymPy.

User text never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
The text is parsed with :mod:`ast`, every node is checked against an
allowlist, and the SymPy expression is built node by node.

Allowed: numbers, the variable (``u`` or ``x`` for activations, ``g`` for
quantizers), ``pi`` and ``E``, the operators ``+ - * / **`` and unary
minus, and calls of the functions in :data:`ALLOWED_FUNCTIONS`.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

__all__ = ["ExpressionError", "parse_expression", "ALLOWED_FUNCTIONS"]

#: Variable every expression is written in (internally).
U = sp.Symbol("u", real=True)


class ExpressionError(ValueError):
    """A user expression was rejected (unsafe, malformed or unsupported)."""


def _heaviside(arg):
    # H(0) = 1/2: the Gaussian measure does not see the value at one point,
    # but the numerical evaluators need a definite one.
    return sp.Heaviside(arg, sp.Rational(1, 2))


#: Function names a user expression may call, with their SymPy builders.
ALLOWED_FUNCTIONS = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "sign": sp.sign,
    "tanh": sp.tanh,
    "erf": sp.erf,
    "sin": sp.sin,
    "cos": sp.cos,
    "Max": sp.Max,
    "max": sp.Max,
    "Min": sp.Min,
    "min": sp.Min,
    "Heaviside": _heaviside,
}

_ARITY = {"Max": (2, 8), "max": (2, 8), "Min": (2, 8), "min": (2, 8)}

_CONSTANTS = {"pi": sp.pi, "E": sp.E}

_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}

_MAX_LENGTH = 2000
_MAX_NODES = 500
#: Largest absolute value of an exponent in ``a ** b``.
_MAX_EXPONENT = 64
#: Largest polynomial degree (in the variable) an expression may reach, e.g. ``(u+1)**64``.
_MAX_DEGREE = 128
#: Most decimal digits a number built from literals may have (``9**64`` is fine, ``(9**64)**64`` is not).
_MAX_NUMBER_DIGITS = 1000
_MAX_INTEGER_BITS = 4000
#: Deepest nesting of ``exp`` allowed (``exp(exp(u))`` is fine).
_MAX_EXP_NESTING = 2


def _log10_abs(x):
    x = sp.Abs(x)
    if isinstance(x, sp.Integer):
        v = int(x)
        return (v.bit_length() - 1) * math.log10(2) if v.bit_length() > 1000 else math.log10(v)
    if isinstance(x, sp.Rational):
        return _log10_abs(sp.Integer(x.p)) - _log10_abs(sp.Integer(x.q))
    try:
        return math.log10(float(x))
    except (OverflowError, ValueError):
        return float("inf")


def _degree_bound(expr):
    """An upper bound of the polynomial degree of ``expr`` in ``u`` (transcendental functions count 1)."""
    if not expr.has(U):
        return 0
    if expr == U:
        return 1
    if isinstance(expr, sp.Add):
        return max(_degree_bound(a) for a in expr.args)
    if isinstance(expr, sp.Mul):
        return sum(_degree_bound(a) for a in expr.args)
    if isinstance(expr, sp.Pow):
        e = expr.args[1]
        k = abs(float(e)) if e.is_number else 1
        return int(math.ceil(_degree_bound(expr.args[0]) * max(k, 1)))
    return max(1, max(_degree_bound(a) for a in expr.args))


def _exp_depth(expr):
    inner = max((_exp_depth(a) for a in expr.args), default=0)
    return inner + 1 if isinstance(expr, sp.exp) and expr.has(U) else inner


def parse_expression(text: str, variables=("u", "x"), what="activation") -> sp.Expr:
    """Parse ``text`` into a SymPy expression in the symbol ``u``.

    Parameters
    ----------
    text:
        The expression, e.g. ``"u*tanh(u)"`` or ``"Max(x, 0.1*x)"``.
    variables:
        Names accepted for the variable; each is mapped to ``u``.
    what:
        Word used in error messages ("activation", "quantizer", "target").

    Raises
    ------
    ExpressionError
        With a one-line message naming the offending piece, for anything
        outside the allowlist: attribute access, subscripts, keywords,
        lambdas, unknown names, strings, comparisons, huge exponents...
    """
    if not isinstance(text, str):
        raise ExpressionError(f"{what} expression must be a string, got {type(text).__name__}")
    src = text.strip()
    if not src:
        raise ExpressionError(f"{what} expression is empty")
    if len(src) > _MAX_LENGTH:
        raise ExpressionError(f"{what} expression is longer than {_MAX_LENGTH} characters")
    if not src.isascii():
        bad = next(c for c in src if not c.isascii())
        raise ExpressionError(
            f"{what} expression {src[:40]!r} contains the non-ASCII character {bad!r} (U+{ord(bad):04X}); "
            "write names, digits and operators in ASCII"
        )
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{what} expression {src!r} is not valid syntax ({exc.msg})") from None
    n_nodes = sum(1 for _ in ast.walk(tree))
    if n_nodes > _MAX_NODES:
        raise ExpressionError(f"{what} expression {src!r} is too large ({n_nodes} nodes > {_MAX_NODES})")
    builder = _Builder(src, tuple(variables), what)
    expr = builder.build(tree.body)
    if not isinstance(expr, sp.Expr):
        raise ExpressionError(f"{what} expression {src!r} does not evaluate to a number")
    extra = expr.free_symbols - {U}
    if extra:  # cannot happen through the builder, kept as a guard
        raise ExpressionError(f"{what} expression {src!r} has unknown symbols {sorted(map(str, extra))}")
    return expr


class _Builder:
    def __init__(self, src, variables, what):
        self.src = src
        self.variables = variables
        self.what = what

    def _check_result(self, expr):
        if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            self.fail("the expression is undefined (division by zero or an infinite value)")
        degree = _degree_bound(expr)
        if degree > _MAX_DEGREE:
            self.fail(f"the expression's degree in the variable (about {degree}) exceeds {_MAX_DEGREE}")
        depth = _exp_depth(expr)
        if depth > _MAX_EXP_NESTING:
            self.fail(f"exp() nested {depth} deep (at most {_MAX_EXP_NESTING}): the moments overflow")

    def fail(self, detail):
        raise ExpressionError(f"{self.what} expression {self.src!r} rejected: {detail}")

    def build(self, node):
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(f"constant {value!r} is not a real number")
            literal = ast.get_source_segment(self.src, node) or repr(value)
            if isinstance(value, int):
                if value.bit_length() > _MAX_INTEGER_BITS:
                    self.fail(f"integer literal {literal[:20]}... has more than {_MAX_INTEGER_BITS} bits")
                return sp.Integer(value)
            # exact rational of the decimal literal as written, by the one number reader
            from .checks import InputError, read_decimal

            try:
                frac = read_decimal(literal, "number literal")
            except InputError as exc:
                self.fail(str(exc))
            return sp.Rational(frac.numerator, frac.denominator)
        if isinstance(node, ast.Name):
            if node.id in self.variables:
                return U
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            allowed = ", ".join(self.variables)
            self.fail(f"unknown name {node.id!r} (variables: {allowed}; constants: pi, E)")
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            self.fail(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                self.fail(f"operator {type(node.op).__name__} is not allowed (use + - * / **)")
            left = self.build(node.left)
            right = self.build(node.right)
            if isinstance(node.op, ast.Pow):
                if right.is_number and abs(complex(right)) > _MAX_EXPONENT:
                    shown = str(right) if len(str(right)) <= 20 else f"{str(right)[:12]}... ({len(str(right))} digits)"
                    self.fail(f"exponent {shown} is larger than {_MAX_EXPONENT} in absolute value")
                if left.is_number and left != 0 and right.is_number:
                    size = abs(float(right)) * abs(_log10_abs(left))
                    if size > _MAX_NUMBER_DIGITS:
                        self.fail(
                            f"a power of numbers would have about {size:.3g} digits (at most {_MAX_NUMBER_DIGITS})"
                        )
            if isinstance(node.op, ast.Div) and right.is_number and right == 0:
                self.fail("division by zero")
            result = op(left, right)
            self._check_result(result)
            return result
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.fail("only plain function names may be called (no attributes or lambdas)")
            name = node.func.id
            if name not in ALLOWED_FUNCTIONS:
                self.fail(f"function {name!r} is not allowed (allowed: {', '.join(sorted(set(ALLOWED_FUNCTIONS)))})")
            if node.keywords:
                self.fail(f"keyword arguments are not allowed in {name}()")
            lo, hi = _ARITY.get(name, (1, 1))
            if not lo <= len(node.args) <= hi:
                want = f"{lo}" if lo == hi else f"{lo} to {hi}"
                self.fail(f"{name}() takes {want} argument(s), got {len(node.args)}")
            args = [self.build(a) for a in node.args]
            result = ALLOWED_FUNCTIONS[name](*args)
            self._check_result(result)
            return result
        self.fail(f"{type(node).__name__} is not allowed")
