"""Array backends for the Monte Carlo simulator: NumPy (default) and PyTorch.

Every random number is drawn by the caller with NumPy's ``Generator`` and
moved here with :meth:`Backend.asarray`, so one seed gives the same
network and data on every backend (up to float rounding).

PyTorch is optional and imported lazily by :func:`get_backend`.  An
activation is evaluated in torch by walking its SymPy expression
(:func:`torch_callable`): the built-ins (``tanh, erf, Max, Min, Abs,
sign, exp, log, sin, cos, sqrt, Heaviside, Piecewise`` and arithmetic)
map to torch functions; anything else falls back to the activation's
NumPy implementation (a round trip through host memory).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy as sp

from rfq_theory import get_activation
from rfq_theory.expressions import U

__all__ = ["Backend", "NumpyBackend", "TorchBackend", "get_backend", "torch_callable", "BACKENDS", "DTYPES"]

BACKENDS = ("numpy", "torch")
DEVICES = ("cpu", "cuda")
DTYPES = ("float64", "float32")


class Backend:
    """Minimal array interface the simulator needs (see the two subclasses)."""

    name = "abstract"

    def asarray(self, a: np.ndarray):  # pragma: no cover - interface
        raise NotImplementedError

    def to_numpy(self, a) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def activation(self, spec) -> Callable:  # pragma: no cover - interface
        raise NotImplementedError

    def solve(self, A, b):  # pragma: no cover - interface
        """Solve the symmetric positive-definite system ``A x = b``."""
        raise NotImplementedError

    def eigh(self, A):  # pragma: no cover - interface
        """Eigenvalues (ascending) and eigenvectors of the symmetric matrix ``A``."""
        raise NotImplementedError

    eps = 2.0**-52

    def eye(self, n):  # pragma: no cover - interface
        raise NotImplementedError

    def sum_squares(self, a) -> float:
        """``sum a_i^2`` accumulated in float64, as a Python float."""
        return float(np.sum(np.square(self.to_numpy(a).astype(np.float64))))


class NumpyBackend(Backend):
    """NumPy backend (float64 or float32)."""

    name = "numpy"

    def __init__(self, dtype="float64"):
        self.dtype = np.dtype(dtype)
        self.device = "cpu"
        self.eps = float(np.finfo(self.dtype).eps)

    def asarray(self, a):
        return np.ascontiguousarray(a, dtype=self.dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def activation(self, spec):
        act = get_activation(spec)
        dtype = self.dtype
        return lambda u: act.numpy(u).astype(dtype, copy=False)

    def solve(self, A, b):
        return np.linalg.solve(A, b)

    def eigh(self, A):
        return np.linalg.eigh(A)

    def eye(self, n):
        return np.eye(n, dtype=self.dtype)


class TorchBackend(Backend):
    """PyTorch backend on ``cpu`` or ``cuda`` (float64 or float32)."""

    name = "torch"

    def __init__(self, device="cpu", dtype="float64"):
        import torch  # lazy: torch is optional

        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' requested but torch.cuda.is_available() is False")
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        self.eps = float(torch.finfo(self.dtype).eps)

    def asarray(self, a):
        return self.torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)

    def to_numpy(self, a):
        return a.detach().to("cpu").numpy()

    def activation(self, spec):
        return torch_callable(get_activation(spec), self)

    def solve(self, A, b):
        return self.torch.linalg.solve(A, b)

    def eigh(self, A):
        return self.torch.linalg.eigh(A)

    def eye(self, n):
        return self.torch.eye(n, dtype=self.dtype, device=self.device)

    def sum_squares(self, a):
        return float((a.to(self.torch.float64) ** 2).sum().item())


def get_backend(backend="numpy", device="cpu", dtype="float64") -> Backend:
    """Backend object for ``backend`` in ``numpy|torch``, ``device`` in ``cpu|cuda``, ``dtype``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if backend == "numpy":
        if device != "cpu":
            raise ValueError("device='cuda' needs backend='torch'")
        return NumpyBackend(dtype)
    try:
        return TorchBackend(device, dtype)
    except ImportError:
        raise ValueError("backend='torch' needs PyTorch: pip install torch") from None


# --------------------------------------------------------------------------
# SymPy -> torch
# --------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


def _torch_builder(torch):
    """Map SymPy expression nodes to torch operations (closures over tensors)."""

    def const(x):
        return float(x)

    def fold(parts, op):
        """``u -> op(...op(op(p0(u), p1(u)), p2(u))...)`` for n-ary Max/Min/And/Or."""

        def folded(u):
            out = parts[0](u)
            for p in parts[1:]:
                out = op(out, p(u))
            return out

        return folded

    unary = {
        sp.tanh: torch.tanh,
        sp.erf: torch.erf,
        sp.erfc: torch.erfc,
        sp.exp: torch.exp,
        sp.log: torch.log,
        sp.sin: torch.sin,
        sp.cos: torch.cos,
        sp.Abs: torch.abs,
        sp.sign: torch.sign,
    }

    def build(e):
        if e == U:
            return lambda u: u
        if e.is_Number or e.is_NumberSymbol:
            c = const(e)
            return lambda u, c=c: torch.full_like(u, c)
        if e.is_Add or e.is_Mul:
            parts = [build(a) for a in e.args]
            op = torch.add if e.is_Add else torch.mul

            def combine(u, parts=parts, op=op):
                out = parts[0](u)
                for p in parts[1:]:
                    out = op(out, p(u))
                return out

            return combine
        if e.is_Pow:
            base, expo = e.args
            b = build(base)
            if expo.is_Number:
                c = const(expo)
                if c == 0.5:
                    return lambda u: torch.sqrt(b(u))
                return lambda u: torch.pow(b(u), c)
            x = build(expo)
            return lambda u: torch.pow(b(u), x(u))
        if e.func in unary:
            (arg,) = e.args
            f, a = unary[e.func], build(arg)
            return lambda u: f(a(u))
        if isinstance(e, (sp.Max, sp.Min)):
            return fold([build(a) for a in e.args], torch.maximum if isinstance(e, sp.Max) else torch.minimum)
        if isinstance(e, sp.Heaviside):
            a = build(e.args[0])
            h0 = const(e.args[1]) if len(e.args) > 1 else 0.5
            return lambda u: torch.heaviside(a(u), torch.full_like(u, h0))
        if isinstance(e, sp.Piecewise):
            pieces = [(build(val), cond) for val, cond in e.args]
            conds = [build_cond(c) for _, c in pieces]

            def piecewise(u, pieces=pieces, conds=conds):
                out = pieces[-1][0](u)
                for (val, _), cond in zip(reversed(pieces[:-1]), reversed(conds[:-1])):
                    out = torch.where(cond(u), val(u), out)
                return out

            return piecewise
        raise _Unsupported(str(e.func))

    def build_cond(c):
        if c is sp.true:
            return lambda u: torch.ones_like(u, dtype=torch.bool)
        if isinstance(c, sp.core.relational.Relational):
            lhs, rhs = build(c.lhs), build(c.rhs)
            ops = {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne}
            if c.rel_op not in ops:
                raise _Unsupported(c.rel_op)
            op = ops[c.rel_op]
            return lambda u: op(lhs(u), rhs(u))
        if isinstance(c, (sp.And, sp.Or)):
            return fold(
                [build_cond(a) for a in c.args], torch.logical_and if isinstance(c, sp.And) else torch.logical_or
            )
        raise _Unsupported(str(c))

    return build


def torch_callable(act, backend: TorchBackend):
    """Torch implementation ``u -> sigma(u)`` of an :class:`~rfq_theory.Activation`.

    Built from ``act.expr`` node by node; when a node has no torch
    counterpart the activation is evaluated with ``act.numpy`` on the host
    and moved back (same values, slower).
    """
    torch = backend.torch
    try:
        fn = _torch_builder(torch)(act.expr)
    except _Unsupported:

        def fn(u):
            host = act.numpy(u.detach().to("cpu").to(torch.float64).numpy())
            return torch.as_tensor(host, dtype=u.dtype, device=u.device)

        fn.fallback = True
        return fn
    fn.fallback = False
    return fn
