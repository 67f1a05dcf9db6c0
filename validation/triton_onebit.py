"""Triton kernels for one-bit (sign) layers, read straight from packed bits.

Computes ``out = act(alpha * x @ sign(W).T)`` for ``x`` of shape ``(n, m)`` (fp16, bf16
or fp32), packed ``words`` of shape ``(k, ceil(m/32))`` in the layout of
:mod:`validation.onebit`, ``alpha = scale / sqrt(m)``; accumulation is fp32 and the
result has ``x``'s dtype.

Two kernels:

* ``_onebit_gemv_kernel`` (small batches, default ``n <= 4``): one program per
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

__all__ = ["ACTIVATIONS", "apply_activation", "onebit_linear", "reference_linear", "interpreting"]

#: Built-in activations: name -> code used by the kernels.
ACTIVATIONS = {"linear": 0, "relu": 1, "tanh": 2, "sign": 3}
DEFAULT_GEMV_MAX_BATCH = 4


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
_GEMM_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_W": bw, "GROUP": 8}, num_warps=nw, num_stages=ns)
    for bn, bk, bw, nw, ns in [(128, 128, 2, 8, 3), (128, 256, 2, 8, 3), (64, 128, 2, 4, 4),
                               (256, 128, 2, 8, 3), (32, 128, 2, 4, 4), (16, 128, 2, 4, 4),
                               (16, 64, 4, 4, 4), (64, 256, 1, 8, 4)]
]
_INTERP_GEMV = {"BLOCK_K": 16, "BLOCK_W": 2}
_INTERP_GEMM = {"BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_W": 1, "GROUP": 2}
_tuned: dict = {}


def _tuned_kernels():
    if not _tuned:
        _tuned["gemv"] = triton.autotune(_GEMV_CONFIGS, key=["M", "K"])(_onebit_gemv_kernel)
        _tuned["gemm"] = triton.autotune(_GEMM_CONFIGS, key=["N", "M", "K"])(_onebit_gemm_kernel)
    return _tuned["gemv"], _tuned["gemm"]


def _check_inputs(x: torch.Tensor, words: torch.Tensor, m: int, activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if x.dim() != 2 or x.shape[1] != m:
        raise ValueError(f"x must have shape (n, m={m}), got {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"x dtype must be float16, bfloat16 or float32, got {x.dtype}")
    if words.dtype != torch.int32 or words.dim() != 2 or words.shape[1] != packed_words(m):
        raise ValueError(f"words must be int32 of shape (k, {packed_words(m)}), got "
                         f"{words.dtype} {tuple(words.shape)}")
    if words.device != x.device:
        raise ValueError(f"x is on {x.device} but words on {words.device}")


def onebit_linear(x: torch.Tensor, words: torch.Tensor, m: int, alpha: float,
                  activation: str = "relu", out: torch.Tensor | None = None,
                  gemv_max_batch: int = DEFAULT_GEMV_MAX_BATCH) -> torch.Tensor:
    """``act(alpha * x @ sign(W).T)`` from packed ``words`` with a Triton kernel.

    ``x``: ``(n, m)`` fp16/bf16/fp32 (made contiguous); ``words``: int32 ``(k, ceil(m/32))``.
    Uses the GEMV kernel for ``n <= gemv_max_batch`` and the tensor-core GEMM kernel
    otherwise.  Returns ``(n, k)`` in ``x.dtype`` (or writes into ``out``).
    """
    _check_inputs(x, words, m, activation)
    x = x.contiguous()
    words = words.contiguous()
    n = x.shape[0]
    k = words.shape[0]
    nw = words.shape[1]
    if out is None:
        out = torch.empty((n, k), dtype=x.dtype, device=x.device)
    act = ACTIVATIONS[activation]
    if interpreting():
        gemv, gemm = _onebit_gemv_kernel, _onebit_gemm_kernel
        gemv_cfg, gemm_cfg = _INTERP_GEMV, _INTERP_GEMM
    else:
        gemv, gemm = _tuned_kernels()
        gemv_cfg, gemm_cfg = {}, {}
    if n <= gemv_max_batch:
        def grid(meta):
            return (n, triton.cdiv(k, meta["BLOCK_K"]))
        gemv[grid](x, words, out, m, k, nw, x.stride(0), words.stride(0), out.stride(0),
                   float(alpha), ACT=act, **gemv_cfg)
    else:
        def grid(meta):
            return (triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(k, meta["BLOCK_K"]),)
        gemm[grid](x, words, out, n, m, k, nw, x.stride(0), words.stride(0), out.stride(0),
                   float(alpha), ACT=act, IEEE=x.dtype == torch.float32,
                   UPCAST=interpreting() and x.dtype == torch.bfloat16, **gemm_cfg)
    return out


def reference_linear(x: torch.Tensor, words: torch.Tensor, m: int, alpha: float,
                     activation: str = "relu", compute_dtype: Any = None) -> torch.Tensor:
    """Pure-PyTorch reference: unpack the bits to +-1 and matmul (no Triton).

    ``compute_dtype`` (default ``x.dtype``) is the dtype of the unpacked weights and of the
    matmul; the result is cast back to ``x.dtype``.
    """
    from .onebit import unpack_signs_torch

    _check_inputs(x, words, m, activation)
    cd = x.dtype if compute_dtype is None else compute_dtype
    s = unpack_signs_torch(words, m, cd)
    y = (x.to(cd) @ s.t()) * alpha
    return apply_activation(y, activation).to(x.dtype)

