"""Triton kernels for one-bit (sign) layers, read straight from packed bits.

Computes ``out = act(alpha * x @ sign(W).T)`` for ``x`` of shape ``(n, m)`` (fp16, bf16
or fp32), packed ``words`` of shape ``(k, ceil(m/32))`` in the layout of
:mod:`validation.onebit`, ``alpha = scale / sqrt(m)``; accumulation is fp32 and the
result has ``x``'s dtype.

Two kernels:

* ``_onebit_gemv_kernel`` (batch 1 by default): one program per
  (batch row, block of output rows).  No unpacking to +-1 at all: for each bit ``j``
  of a word the kernel flips the IEEE sign bit of ``-x`` with one shift and one
  and/xor (``bits(-x) ^ ((word << (31 - j)) & 0x80000000)``) and adds, so each weight
  costs ~3 simple instructions and the 1-bit weights are read once.
* ``_onebit_gemm_kernel`` (larger batches): unpacks a ``(BLOCK_K, 32*BLOCK_W)`` tile of
  +-1 in registers and feeds it to ``tl.dot`` (tensor cores for fp16/bf16; IEEE fp32
  for fp32 inputs), activation fused in the epilogue.

Both work under ``TRITON_INTERPRET=1`` on CPU (used by the tests); on a GPU they are
autotuned over a few block shapes.  ``import`` of this module needs torch and triton.
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton
import triton.language as tl

from .onebit import WORD_BITS, packed_words

__all__ = ["ACTIVATIONS", "STRATEGIES", "apply_activation", "choose_strategy", "clear_scratch", "interpreting",
           "onebit_linear", "reference_linear", "unpack_signs_triton"]

#: Built-in activations: name -> code used by the kernels.
ACTIVATIONS = {"linear": 0, "relu": 1, "tanh": 2, "sign": 3}
DEFAULT_GEMV_MAX_BATCH = 1


def interpreting() -> bool:
    """True when Triton runs in interpreter mode (``TRITON_INTERPRET=1``, CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def apply_activation(y: torch.Tensor, activation: str) -> torch.Tensor:
    """Torch implementation of the built-in activations (same definitions as the kernels)."""
    if activation == "linear":
        return y
    if activation == "relu":
        return torch.relu(y)
    if activation == "tanh":
        return torch.tanh(y)
    if activation == "sign":
        return torch.sign(y)
    raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


@triton.jit
def _act(y, ACT: tl.constexpr):
    if ACT == 1:
        y = tl.maximum(y, 0.0)
    elif ACT == 2:
        y = 1.0 - 2.0 / (tl.exp(2.0 * y) + 1.0)
    elif ACT == 3:
        y = tl.where(y > 0, 1.0, tl.where(y < 0, -1.0, 0.0))
    return y


@triton.jit
def _onebit_gemv_kernel(x_ptr, w_ptr, out_ptr, M, K, NW, stride_xn, stride_wk, stride_on, alpha,
                        ACT: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    kmask = rk < K
    x_row = x_ptr + pid_n * stride_xn
    acc = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
    for w0 in range(0, NW, BLOCK_W):
        cw = w0 + rw
        words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :],
                        mask=kmask[:, None] & (cw[None, :] < NW), other=0)
        for j in tl.static_range(32):
            col = cw * 32 + j
            xj = tl.load(x_row + col, mask=col < M, other=0.0).to(tl.float32)
            xneg = (-xj).to(tl.int32, bitcast=True)
            flip = (words << (31 - j)) & -2147483648
            acc += (xneg[None, :] ^ flip).to(tl.float32, bitcast=True)
    y = _act(tl.sum(acc, axis=1) * alpha, ACT)
    tl.store(out_ptr + pid_n * stride_on + rk, y.to(out_ptr.dtype.element_ty), mask=kmask)


@triton.jit
def _onebit_gemv3_kernel(x_ptr, w_ptr, out_ptr, M, K, NW, stride_xn, stride_wk, stride_on, alpha,
                         ACT: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr):
    # Same arithmetic as _onebit_gemv_kernel, but the 32 bits of a word are a tensor axis:
    # the x chunk is one contiguous (BLOCK_W, 32) load instead of 32 strided ones.
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    rb = tl.arange(0, 32)
    kmask = rk < K
    x_row = x_ptr + pid_n * stride_xn
    acc = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
    for w0 in range(0, NW, BLOCK_W):
        cw = w0 + rw
        words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :],
                        mask=kmask[:, None] & (cw[None, :] < NW), other=0)
        cols = cw[:, None] * 32 + rb[None, :]
        xt = tl.load(x_row + cols, mask=cols < M, other=0.0).to(tl.float32)
        xneg = (-xt).to(tl.int32, bitcast=True)
        flip = (words[:, :, None] << (31 - rb)[None, None, :]) & -2147483648
        acc += tl.sum((xneg[None, :, :] ^ flip).to(tl.float32, bitcast=True), axis=2)
    y = _act(tl.sum(acc, axis=1) * alpha, ACT)
    tl.store(out_ptr + pid_n * stride_on + rk, y.to(out_ptr.dtype.element_ty), mask=kmask)


@triton.jit
def _unpack_kernel(w_ptr, out_ptr, K, M, NW, stride_wk, stride_ok,
                   BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr):
    # packed bits -> dense +-1 (k, m) in out's dtype (for the unpack + cuBLAS strategy)
    pid_k = tl.program_id(0)
    pid_w = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    cw = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    rb = tl.arange(0, 32)
    kmask = rk < K
    words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :],
                    mask=kmask[:, None] & (cw[None, :] < NW), other=0)
    bits = (words[:, :, None] >> rb[None, None, :]) & 1
    v = tl.reshape(tl.where(bits != 0, 1.0, -1.0), (BLOCK_K, BLOCK_W * 32))
    cols = pid_w * BLOCK_W * 32 + tl.arange(0, BLOCK_W * 32)
    tl.store(out_ptr + rk[:, None] * stride_ok + cols[None, :], v.to(out_ptr.dtype.element_ty),
             mask=kmask[:, None] & (cols[None, :] < M))


@triton.jit
def _onebit_gemm_kernel(x_ptr, w_ptr, out_ptr, N, M, K, NW, stride_xn, stride_wk, stride_on, alpha,
                        ACT: tl.constexpr, IEEE: tl.constexpr, UPCAST: tl.constexpr,
                        BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr, GROUP: tl.constexpr):
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    num_k = tl.cdiv(K, BLOCK_K)
    # grouped ordering: GROUP blocks of output rows share the streamed x tiles in L2
    per_group = GROUP * num_n
    group_id = pid // per_group
    first_k = group_id * GROUP
    group_size = tl.minimum(num_k - first_k, GROUP)
    pid_k = first_k + (pid % per_group) % group_size
    pid_n = (pid % per_group) // group_size

    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    rb = tl.arange(0, 32)
    rm = tl.arange(0, BLOCK_W * 32)
    nmask = rn < N
    kmask = rk < K
    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
    for w0 in range(0, NW, BLOCK_W):
        cw = w0 + rw
        words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :],
                        mask=kmask[:, None] & (cw[None, :] < NW), other=0)
        bits = (words[:, :, None] >> rb[None, None, :]) & 1
        wt = tl.where(bits != 0, 1.0, -1.0).to(x_ptr.dtype.element_ty)
        wt = tl.reshape(wt, (BLOCK_K, BLOCK_W * 32))
        cols = w0 * 32 + rm
        xt = tl.load(x_ptr + rn[None, :] * stride_xn + cols[:, None],
                     mask=(cols[:, None] < M) & nmask[None, :], other=0.0)
        if UPCAST:  # interpreter work-around: its bf16 tl.dot returns garbage (triton 3.9)
            acc = tl.dot(wt.to(tl.float32), xt.to(tl.float32), acc, input_precision="ieee")
        elif IEEE:
            acc = tl.dot(wt, xt, acc, input_precision="ieee")
        else:
            acc = tl.dot(wt, xt, acc)
    y = _act(acc * alpha, ACT)
    tl.store(out_ptr + rn[None, :] * stride_on + rk[:, None], y.to(out_ptr.dtype.element_ty),
             mask=kmask[:, None] & nmask[None, :])


_GEMV_CONFIGS = [
    triton.Config({"BLOCK_K": bk, "BLOCK_W": bw}, num_warps=nw)
    for bk, bw, nw in [(16, 16, 4), (32, 8, 4), (32, 16, 4), (32, 32, 8), (64, 8, 4),
                       (64, 16, 8), (16, 32, 4), (128, 8, 8)]
]
_GEMV3_CONFIGS = [
    triton.Config({"BLOCK_K": bk, "BLOCK_W": bw}, num_warps=nw)
    for bk, bw, nw in [(8, 8, 4), (16, 4, 4), (16, 8, 4), (32, 4, 4), (32, 8, 8), (64, 4, 8),
                       (16, 16, 8), (8, 16, 4)]
]
_GEMM_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_W": bw, "GROUP": 8}, num_warps=nw, num_stages=ns)
    for bn, bk, bw, nw, ns in [(128, 128, 2, 8, 3), (128, 256, 2, 8, 3), (64, 128, 2, 4, 4),
                               (256, 128, 2, 8, 3), (32, 128, 2, 4, 4), (16, 128, 2, 4, 4),
                               (16, 64, 4, 4, 4), (64, 256, 1, 8, 4), (256, 128, 4, 8, 3),
                               (128, 128, 4, 8, 3), (128, 256, 4, 8, 3)]
]
_INTERP_GEMV = {"BLOCK_K": 16, "BLOCK_W": 2}
_INTERP_GEMM = {"BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_W": 1, "GROUP": 2}
_tuned: dict = {}


def _tuned_kernels():
    if not _tuned:
        _tuned["gemv"] = triton.autotune(_GEMV_CONFIGS, key=["M", "K"])(_onebit_gemv_kernel)
        _tuned["gemv3"] = triton.autotune(_GEMV3_CONFIGS, key=["M", "K"])(_onebit_gemv3_kernel)
        _tuned["gemm"] = triton.autotune(_GEMM_CONFIGS, key=["N", "M", "K"])(_onebit_gemm_kernel)
    return _tuned


def _check_inputs(x: torch.Tensor, words: torch.Tensor, m: int, activation: str,
                  allow_fp64: bool = False) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if x.dim() != 2 or x.shape[1] != m:
        raise ValueError(f"x must have shape (n, m={m}), got {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32) and not (
            allow_fp64 and x.dtype == torch.float64):
        raise ValueError(f"x dtype must be float16, bfloat16 or float32, got {x.dtype}")
    if words.dtype != torch.int32 or words.dim() != 2 or words.shape[1] != packed_words(m):
        raise ValueError(f"words must be int32 of shape (k, {packed_words(m)}), got "
                         f"{words.dtype} {tuple(words.shape)}")
    if words.device != x.device:
        raise ValueError(f"x is on {x.device} but words on {words.device}")


STRATEGIES = ("auto", "gemv", "gemv3", "gemm", "unpack")
DEFAULT_UNPACK_MIN_BATCH = 1024
_scratch: dict = {}


def clear_scratch() -> None:
    """Free the cached dense scratch buffers of the ``unpack`` strategy."""
    _scratch.clear()


def unpack_signs_triton(words: torch.Tensor, m: int, dtype: Any, out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton unpack of packed ``words`` to a dense ``(k, m)`` +-1 tensor in ``dtype``."""
    k, nw = words.shape
    if nw != packed_words(m):
        raise ValueError(f"words has {nw} columns but m={m} needs {packed_words(m)}")
    if out is None:
        out = torch.empty((k, m), dtype=dtype, device=words.device)
    bk, bw = (16, 2) if interpreting() else (32, 8)
    _unpack_kernel[(triton.cdiv(k, bk), triton.cdiv(nw, bw))](
        words, out, k, m, nw, words.stride(0), out.stride(0), BLOCK_K=bk, BLOCK_W=bw, num_warps=4)
    return out


def choose_strategy(n: int, strategy: str = "auto", gemv_max_batch: int = DEFAULT_GEMV_MAX_BATCH,
                    unpack_min_batch: int = DEFAULT_UNPACK_MIN_BATCH) -> str:
    """Kernel used for batch ``n``: ``auto`` -> ``gemv`` (n <= gemv_max_batch), ``unpack``
    (n >= unpack_min_batch) or the fused tensor-core ``gemm``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy != "auto":
        return strategy
    if n <= gemv_max_batch:
        return "gemv"
    if unpack_min_batch and n >= unpack_min_batch:
        return "unpack"
    return "gemm"


def onebit_linear(x: torch.Tensor, words: torch.Tensor, m: int, alpha: float,
                  activation: str = "relu", out: torch.Tensor | None = None,
                  gemv_max_batch: int = DEFAULT_GEMV_MAX_BATCH, strategy: str = "auto",
                  unpack_min_batch: int = DEFAULT_UNPACK_MIN_BATCH) -> torch.Tensor:
    """``act(alpha * x @ sign(W).T)`` from packed ``words`` with Triton kernels.

    ``x``: ``(n, m)`` fp16/bf16/fp32 (made contiguous); ``words``: int32 ``(k, ceil(m/32))``.
    ``strategy`` (see :func:`choose_strategy`): ``gemv``/``gemv3`` read the bits and flip the
    sign of x (no unpacking, small batches); ``gemm`` unpacks tiles in registers for
    ``tl.dot`` (fused activation); ``unpack`` expands the layer into a cached dense +-1
    scratch buffer with a Triton kernel and calls cuBLAS (large batches, where the matmul,
    not the weight bytes, is the cost).  Returns ``(n, k)`` in ``x.dtype``.
    """
    _check_inputs(x, words, m, activation)
    x = x.contiguous()
    words = words.contiguous()
    n = x.shape[0]
    k = words.shape[0]
    nw = words.shape[1]
    kind = choose_strategy(n, strategy, gemv_max_batch, unpack_min_batch)
    act = ACTIVATIONS[activation]
    if kind == "unpack":
        key = (k, m, x.dtype, x.device)
        if key not in _scratch:
            _scratch[key] = torch.empty((k, m), dtype=x.dtype, device=x.device)
        dense = unpack_signs_triton(words, m, x.dtype, out=_scratch[key])
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        if out is None:
            y = torch.addmm(zero, x, dense.t(), beta=0, alpha=float(alpha))
        else:
            y = torch.addmm(zero, x, dense.t(), beta=0, alpha=float(alpha), out=out)
        return apply_activation(y, activation) if activation != "relu" else y.relu_()
    if out is None:
        out = torch.empty((n, k), dtype=x.dtype, device=x.device)
    if interpreting():
        kernels = {"gemv": _onebit_gemv_kernel, "gemv3": _onebit_gemv3_kernel, "gemm": _onebit_gemm_kernel}
        cfgs = {"gemv": _INTERP_GEMV, "gemv3": _INTERP_GEMV, "gemm": _INTERP_GEMM}
    else:
        kernels = _tuned_kernels()
        cfgs = {"gemv": {}, "gemv3": {}, "gemm": {}}
    if kind in ("gemv", "gemv3"):
        def grid(meta):
            return (n, triton.cdiv(k, meta["BLOCK_K"]))
        kernels[kind][grid](x, words, out, m, k, nw, x.stride(0), words.stride(0), out.stride(0),
                            float(alpha), ACT=act, **cfgs[kind])
    else:
        def grid(meta):
            return (triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(k, meta["BLOCK_K"]),)
        kernels["gemm"][grid](x, words, out, n, m, k, nw, x.stride(0), words.stride(0), out.stride(0),
                              float(alpha), ACT=act, IEEE=x.dtype == torch.float32,
                              UPCAST=interpreting() and x.dtype == torch.bfloat16, **cfgs["gemm"])
    return out


def reference_linear(x: torch.Tensor, words: torch.Tensor, m: int, alpha: float,
                     activation: str = "relu", compute_dtype: Any = None) -> torch.Tensor:
    """Pure-PyTorch reference: unpack the bits to +-1 and matmul (no Triton).

    ``compute_dtype`` (default ``x.dtype``) is the dtype of the unpacked weights and of the
    matmul; the result is cast back to ``x.dtype``.
    """
    from .onebit import unpack_signs_torch

    _check_inputs(x, words, m, activation, allow_fp64=True)
    cd = x.dtype if compute_dtype is None else compute_dtype
    s = unpack_signs_torch(words, m, cd)
    y = (x.to(cd) @ s.t()) * alpha
    return apply_activation(y, activation).to(x.dtype)

