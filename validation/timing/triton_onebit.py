"""Triton kernels for one-bit (sign) layers, read straight from packed bits.

Computes ``out = act(alpha * x @ sign(W).T)`` for ``x`` of shape ``(n, m)`` (fp16, bf16
or fp32), packed ``words`` of shape ``(k, ceil(m/32))`` in the layout of
:mod:`validation.timing.onebit`, ``alpha = scale / sqrt(m)``; accumulation is fp32 and the
result has ``x``'s dtype.

Kernels:

* ``_onebit_gemv_kernel`` (batch 1 for fp32 and bf16 activations): one program per
  (batch row, block of output rows).  No unpacking to +-1 at all: for each bit ``j``
  of a word the kernel flips the IEEE sign bit of ``-x`` with one shift and one
  and/xor (``bits(-x) ^ ((word << (31 - j)) & 0x80000000)``) and adds, so each weight
  costs ~3 simple instructions and the 1-bit weights are read once.
* ``_onebit_gemm_kernel`` (larger batches, fp32 activations): unpacks a ``(BLOCK_K, 32*BLOCK_W)`` tile of
  +-1 in registers and feeds it to ``tl.dot`` (tensor cores for fp16/bf16; IEEE fp32
  for fp32 inputs), activation fused in the epilogue.

* ``_onebit_gemv2_kernel`` (batch 1, fp16; ``auto``'s GEMV): two weights per 32-bit op with
  packed half2 arithmetic in inline PTX, split-K with fp32 atomics (see the comment above it
  for the exact accumulation order).
* ``_onebit_gemm2_kernel`` (``auto``'s fused GEMM for fp16/bf16): x as the A operand, +-1 tile
  built with integer ops only.

All work under ``TRITON_INTERPRET=1`` on CPU (used by the tests); on a GPU they are
autotuned over a few block shapes.  ``import`` of this module needs torch and triton.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from .onebit import packed_words

__all__ = [
    "ACTIVATIONS",
    "STRATEGIES",
    "apply_activation",
    "choose_strategy",
    "clear_scratch",
    "interpreting",
    "onebit_linear",
    "unpack_signs_triton",
]

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
def _onebit_gemv_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    M,
    K,
    NW,
    stride_xn,
    stride_wk,
    stride_on,
    alpha,
    ACT: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    kmask = rk < K
    x_row = x_ptr + pid_n * stride_xn
    acc = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
    for w0 in range(0, NW, BLOCK_W):
        cw = w0 + rw
        words = tl.load(
            w_ptr + rk[:, None] * stride_wk + cw[None, :], mask=kmask[:, None] & (cw[None, :] < NW), other=0
        )
        for j in tl.static_range(32):
            col = cw * 32 + j
            xj = tl.load(x_row + col, mask=col < M, other=0.0).to(tl.float32)
            xneg = (-xj).to(tl.int32, bitcast=True)
            flip = (words << (31 - j)) & -2147483648
            acc += (xneg[None, :] ^ flip).to(tl.float32, bitcast=True)
    y = _act(tl.sum(acc, axis=1) * alpha, ACT)
    tl.store(out_ptr + pid_n * stride_on + rk, y.to(out_ptr.dtype.element_ty), mask=kmask)


@triton.jit
def _unpack_kernel(w_ptr, out_ptr, K, M, NW, stride_wk, stride_ok, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr):
    # packed bits -> dense +-1 (k, m) in out's dtype (for the unpack + cuBLAS strategy)
    pid_k = tl.program_id(0)
    pid_w = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    cw = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    rb = tl.arange(0, 32)
    kmask = rk < K
    words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :], mask=kmask[:, None] & (cw[None, :] < NW), other=0)
    bits = (words[:, :, None] >> rb[None, None, :]) & 1
    v = tl.reshape(tl.where(bits != 0, 1.0, -1.0), (BLOCK_K, BLOCK_W * 32))
    cols = pid_w * BLOCK_W * 32 + tl.arange(0, BLOCK_W * 32)
    tl.store(
        out_ptr + rk[:, None] * stride_ok + cols[None, :],
        v.to(out_ptr.dtype.element_ty),
        mask=kmask[:, None] & (cols[None, :] < M),
    )


@triton.jit
def _onebit_gemm_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    N,
    M,
    K,
    NW,
    stride_xn,
    stride_wk,
    stride_on,
    alpha,
    ACT: tl.constexpr,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_W: tl.constexpr,
    GROUP: tl.constexpr,
):
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
        words = tl.load(
            w_ptr + rk[:, None] * stride_wk + cw[None, :], mask=kmask[:, None] & (cw[None, :] < NW), other=0
        )
        bits = (words[:, :, None] >> rb[None, None, :]) & 1
        wt = tl.where(bits != 0, 1.0, -1.0).to(x_ptr.dtype.element_ty)
        wt = tl.reshape(wt, (BLOCK_K, BLOCK_W * 32))
        cols = w0 * 32 + rm
        xt = tl.load(
            x_ptr + rn[None, :] * stride_xn + cols[:, None], mask=(cols[:, None] < M) & nmask[None, :], other=0.0
        )
        if UPCAST:  # interpreter work-around: its bf16 tl.dot returns garbage (triton 3.9)
            acc = tl.dot(wt.to(tl.float32), xt.to(tl.float32), acc, input_precision="ieee")
        elif IEEE:
            acc = tl.dot(wt, xt, acc, input_precision="ieee")
        else:
            acc = tl.dot(wt, xt, acc)
    y = _act(acc * alpha, ACT)
    tl.store(
        out_ptr + rn[None, :] * stride_on + rk[:, None],
        y.to(out_ptr.dtype.element_ty),
        mask=kmask[:, None] & nmask[None, :],
    )


# --------------------------------------------------------------------------- packed half2 GEMV
#
# ``gemv2`` (fp16 / bf16 activations): two weights per 32-bit operation.  A small kernel
# first writes, for every packed word ``w`` and bit ``i < 16``, the int32 ``pair`` whose low
# half is the bit pattern of ``-x[32w + i]`` and whose high half that of ``-x[32w + 16 + i]``.
# Then ``(word << (15 - i)) & 0x80008000`` moves weight bits ``i`` and ``i + 16`` onto the
# two 16-bit sign positions, and XOR with ``pair`` turns ``-x`` into ``+x`` where the bit is
# set (weight +1), i.e. gives the two signed products ``s * x`` as a packed half2.
# Accumulation (documented precisely): per (output row, word) the 16 packed products are
# summed by 15 sequential ``add.rn.{f16,bf16}x2`` (a chain in the activation dtype, 16
# terms per lane), the two lanes are converted to fp32 and added, and that fp32 partial sum
# of 32 weights is added to a per-thread fp32 accumulator; the row total is an fp32 tree sum
# over the thread accumulators.  On a GPU the 16 steps run as one inline-PTX block
# (shl / and+xor -> lop3 / add.f16x2: ~1.5 instructions per weight instead of ~3); under
# the interpreter (USE_ASM=False) the same bit operations and fp16/bf16 adds run as Triton ops.

_HALF2_MASK = -2147450880  # 0x80008000 as int32


def _gemv2_asm(bf16: bool) -> str:
    add = "add.rn.bf16x2" if bf16 else "add.rn.f16x2"
    cvt = "cvt.f32.bf16" if bf16 else "cvt.f32.f16"
    lines = ["{", ".reg .b32 s, a;", ".reg .b16 lo, hi;", ".reg .f32 fl, fh;"]
    for i in range(16):
        if i < 15:
            lines.append(f"shl.b32 s, $1, {15 - i};")
            lines.append("and.b32 s, s, 0x80008000;")
        else:
            lines.append("and.b32 s, $1, 0x80008000;")
        if i == 0:
            lines.append(f"xor.b32 a, s, ${i + 2};")
        else:
            lines.append(f"xor.b32 s, s, ${i + 2};")
            lines.append(f"{add} a, a, s;")
    lines += ["mov.b32 {lo, hi}, a;", f"{cvt} fl, lo;", f"{cvt} fh, hi;", "add.f32 fl, fl, fh;", "mov.b32 $0, fl;", "}"]
    return "\n".join(lines)


_GEMV2_ASM_F16 = tl.constexpr(_gemv2_asm(False))
_GEMV2_ASM_BF16 = tl.constexpr(_gemv2_asm(True))


@triton.jit
def _pair_kernel(x_ptr, p_ptr, ws_ptr, M, NW, K, stride_xn, stride_pn, BLOCK_W: tl.constexpr, BLOCK_Z: tl.constexpr):
    # x (n, m) fp16/bf16 (int16 view) -> pairs (n, NW*16) int32: low half bits(-x[32w+i]), high half bits(-x[32w+16+i])
    pid_n = tl.program_id(0)
    pid_w = tl.program_id(1)
    cw = pid_w * BLOCK_W + tl.arange(0, BLOCK_W)
    ri = tl.arange(0, 16)
    col = cw[:, None] * 32 + ri[None, :]
    wmask = cw[:, None] < NW
    # x is passed as its int16 bit view: negation = flip of bit 15 (exact, no float op)
    xl = tl.load(x_ptr + pid_n * stride_xn + col, mask=wmask & (col < M), other=0).to(tl.int32)
    xh = tl.load(x_ptr + pid_n * stride_xn + col + 16, mask=wmask & (col + 16 < M), other=0).to(tl.int32)
    lo = (xl ^ 0x8000) & 0xFFFF
    hi = (xh ^ 0x8000) << 16
    tl.store(p_ptr + pid_n * stride_pn + cw[:, None] * 16 + ri[None, :], lo | hi, mask=wmask)
    # zero this program's slice of the fp32 split-K accumulator (n, K)
    rz = pid_w * BLOCK_Z + tl.arange(0, BLOCK_Z)
    tl.store(ws_ptr + pid_n * K + rz, tl.zeros((BLOCK_Z,), dtype=tl.float32), mask=rz < K)


@triton.jit
def _finish_kernel(ws_ptr, out_ptr, K, stride_on, alpha, ACT: tl.constexpr, BLOCK: tl.constexpr):
    # out = act(alpha * ws) in out's dtype (epilogue of the split-K gemv2)
    pid_n = tl.program_id(0)
    rk = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    y = _act(tl.load(ws_ptr + pid_n * K + rk, mask=rk < K, other=0.0) * alpha, ACT)
    tl.store(out_ptr + pid_n * stride_on + rk, y.to(out_ptr.dtype.element_ty), mask=rk < K)


@triton.jit
def _half2_step(acc_lo, acc_hi, words, pair, i: tl.constexpr, HALF: tl.constexpr):
    # interpreter twin of one PTX step: flip signs of the packed pair, add per lane with the
    # result rounded to HALF (fp16/bf16) after every add, like add.rn.{f16,bf16}x2; the running
    # sums are kept as fp32 values because the interpreter's bf16 arithmetic is unreliable
    s = ((words << (15 - i)) & -2147450880) ^ pair
    lo = (s & 0xFFFF).to(tl.int16).to(HALF, bitcast=True).to(tl.float32)
    hi = ((s >> 16) & 0xFFFF).to(tl.int16).to(HALF, bitcast=True).to(tl.float32)
    return (acc_lo + lo).to(HALF).to(tl.float32), (acc_hi + hi).to(HALF).to(tl.float32)


@triton.jit
def _onebit_gemv2_kernel(
    p_ptr,
    w_ptr,
    ws_ptr,
    K,
    NW,
    stride_pn,
    stride_wk,
    BF16: tl.constexpr,
    USE_ASM: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_W: tl.constexpr,
    SPLIT: tl.constexpr,
):
    # split-K: program (n, k-block, s) covers words [s*chunk, (s+1)*chunk) and atomically adds
    # its fp32 partial row sums into ws (zeroed by _pair_kernel); _finish_kernel applies act
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_s = tl.program_id(2)
    chunk = tl.cdiv(tl.cdiv(NW, SPLIT), BLOCK_W) * BLOCK_W
    w_lo = pid_s * chunk
    w_hi = tl.minimum(w_lo + chunk, NW)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    kmask = rk < K
    p_row = p_ptr + pid_n * stride_pn
    acc = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
    for w0 in range(w_lo, w_hi, BLOCK_W):
        cw = w0 + rw
        cmask = cw < w_hi
        words = tl.load(w_ptr + rk[:, None] * stride_wk + cw[None, :], mask=kmask[:, None] & cmask[None, :], other=0)
        pb = p_row + cw * 16
        p0 = tl.load(pb + 0, mask=cmask, other=0)
        p1 = tl.load(pb + 1, mask=cmask, other=0)
        p2 = tl.load(pb + 2, mask=cmask, other=0)
        p3 = tl.load(pb + 3, mask=cmask, other=0)
        p4 = tl.load(pb + 4, mask=cmask, other=0)
        p5 = tl.load(pb + 5, mask=cmask, other=0)
        p6 = tl.load(pb + 6, mask=cmask, other=0)
        p7 = tl.load(pb + 7, mask=cmask, other=0)
        p8 = tl.load(pb + 8, mask=cmask, other=0)
        p9 = tl.load(pb + 9, mask=cmask, other=0)
        p10 = tl.load(pb + 10, mask=cmask, other=0)
        p11 = tl.load(pb + 11, mask=cmask, other=0)
        p12 = tl.load(pb + 12, mask=cmask, other=0)
        p13 = tl.load(pb + 13, mask=cmask, other=0)
        p14 = tl.load(pb + 14, mask=cmask, other=0)
        p15 = tl.load(pb + 15, mask=cmask, other=0)
        if USE_ASM:
            if BF16:
                asm: tl.constexpr = _GEMV2_ASM_BF16
            else:
                asm: tl.constexpr = _GEMV2_ASM_F16
            part = tl.inline_asm_elementwise(
                asm,
                "=r,r,r,r,r,r,r,r,r,r,r,r,r,r,r,r,r,r",
                [
                    words,
                    p0[None, :],
                    p1[None, :],
                    p2[None, :],
                    p3[None, :],
                    p4[None, :],
                    p5[None, :],
                    p6[None, :],
                    p7[None, :],
                    p8[None, :],
                    p9[None, :],
                    p10[None, :],
                    p11[None, :],
                    p12[None, :],
                    p13[None, :],
                    p14[None, :],
                    p15[None, :],
                ],
                dtype=tl.int32,
                is_pure=True,
                pack=1,
            )
            acc += part.to(tl.float32, bitcast=True)
        else:
            a_lo = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
            a_hi = tl.zeros((BLOCK_K, BLOCK_W), dtype=tl.float32)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p0[None, :], 0, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p1[None, :], 1, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p2[None, :], 2, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p3[None, :], 3, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p4[None, :], 4, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p5[None, :], 5, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p6[None, :], 6, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p7[None, :], 7, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p8[None, :], 8, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p9[None, :], 9, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p10[None, :], 10, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p11[None, :], 11, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p12[None, :], 12, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p13[None, :], 13, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p14[None, :], 14, tl.bfloat16 if BF16 else tl.float16)
            a_lo, a_hi = _half2_step(a_lo, a_hi, words, p15[None, :], 15, tl.bfloat16 if BF16 else tl.float16)
            acc += a_lo + a_hi
    tl.atomic_add(ws_ptr + pid_n * K + rk, tl.sum(acc, axis=1), mask=kmask)


# --------------------------------------------------------------------------- fused GEMM, v2
#
# ``gemm2``: out tile (BLOCK_N batch rows, BLOCK_K outputs) = x tile @ unpacked(W tile)^T.
# x is the A operand (loaded straight from memory, software-pipelined by Triton); the
# +-1 weights are built in registers with integer ops only -- ``((bit << 15) ^ bits(-1.0))``
# truncated to 16 bits and bit-cast to fp16/bf16 (no compare/select/convert) -- as a
# (32*BLOCK_W, BLOCK_K) B operand; fp32 accumulation on tensor cores; activation fused.


@triton.jit
def _onebit_gemm2_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    N,
    M,
    K,
    NW,
    stride_xn,
    stride_wk,
    stride_on,
    alpha,
    ACT: tl.constexpr,
    NEG_ONE: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_W: tl.constexpr,
    GROUP: tl.constexpr,
):
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    num_k = tl.cdiv(K, BLOCK_K)
    per_group = GROUP * num_k
    group_id = pid // per_group
    first_n = group_id * GROUP
    group_size = tl.minimum(num_n - first_n, GROUP)
    pid_n = first_n + (pid % per_group) % group_size
    pid_k = (pid % per_group) // group_size

    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    rw = tl.arange(0, BLOCK_W)
    rb = tl.arange(0, 32)
    rm = tl.arange(0, BLOCK_W * 32)
    nmask = rn < N
    kmask = rk < K
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for w0 in range(0, NW, BLOCK_W):
        cw = w0 + rw
        words = tl.load(
            w_ptr + rk[None, :] * stride_wk + cw[:, None], mask=kmask[None, :] & (cw[:, None] < NW), other=0
        )
        v = (((words[:, None, :] >> rb[None, :, None]) & 1) << 15) ^ NEG_ONE
        wt = tl.reshape(v.to(tl.int16).to(x_ptr.dtype.element_ty, bitcast=True), (BLOCK_W * 32, BLOCK_K))
        cols = w0 * 32 + rm
        xt = tl.load(
            x_ptr + rn[:, None] * stride_xn + cols[None, :], mask=nmask[:, None] & (cols[None, :] < M), other=0.0
        )
        if UPCAST:  # interpreter: exact fp32 dot
            acc = tl.dot(xt.to(tl.float32), wt.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(xt, wt, acc)
    y = _act(acc * alpha, ACT)
    tl.store(
        out_ptr + rn[:, None] * stride_on + rk[None, :],
        y.to(out_ptr.dtype.element_ty),
        mask=nmask[:, None] & kmask[None, :],
    )


_GEMV_CONFIGS = [
    triton.Config({"BLOCK_K": bk, "BLOCK_W": bw}, num_warps=nw)
    for bk, bw, nw in [
        (16, 16, 4),
        (32, 8, 4),
        (32, 16, 4),
        (32, 32, 8),
        (64, 8, 4),
        (64, 16, 8),
        (16, 32, 4),
        (128, 8, 8),
    ]
]
_GEMM_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_W": bw, "GROUP": 8}, num_warps=nw, num_stages=ns)
    for bn, bk, bw, nw, ns in [
        (128, 128, 2, 8, 3),
        (128, 256, 2, 8, 3),
        (64, 128, 2, 4, 4),
        (256, 128, 2, 8, 3),
        (32, 128, 2, 4, 4),
        (16, 128, 2, 4, 4),
        (16, 64, 4, 4, 4),
        (64, 256, 1, 8, 4),
        (256, 128, 4, 8, 3),
        (128, 128, 4, 8, 3),
        (128, 256, 4, 8, 3),
    ]
]
_GEMV2_CONFIGS = [
    triton.Config({"BLOCK_K": bk, "BLOCK_W": bw, "SPLIT": sp}, num_warps=nw)
    for bk, bw, nw, sp in [
        (32, 8, 4, 1),
        (128, 8, 8, 1),
        (32, 16, 4, 1),
        (64, 8, 4, 1),
        (128, 8, 8, 4),
        (128, 8, 8, 8),
        (128, 8, 8, 16),
        (64, 8, 4, 4),
        (64, 8, 4, 8),
        (32, 16, 4, 4),
        (32, 16, 4, 8),
        (64, 16, 4, 8),
        (256, 8, 8, 8),
        (128, 16, 8, 8),
        (128, 4, 4, 16),
        (64, 16, 8, 16),
    ]
]
_GEMM2_CONFIGS = [
    triton.Config({"BLOCK_N": bn, "BLOCK_K": bk, "BLOCK_W": bw, "GROUP": 8}, num_warps=nw, num_stages=ns)
    for bn, bk, bw, nw, ns in [
        (128, 128, 2, 8, 3),
        (128, 256, 2, 8, 3),
        (256, 128, 2, 8, 3),
        (128, 128, 2, 4, 4),
        (128, 256, 2, 8, 4),
        (256, 128, 2, 8, 4),
        (64, 128, 2, 4, 4),
        (128, 64, 2, 4, 4),
        (16, 128, 2, 4, 4),
        (16, 64, 4, 4, 4),
        (32, 128, 2, 4, 4),
    ]
]
_INTERP_GEMV = {"BLOCK_K": 16, "BLOCK_W": 2}
_INTERP_GEMV2 = {"BLOCK_K": 16, "BLOCK_W": 2, "SPLIT": 2}
_INTERP_GEMM = {"BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_W": 1, "GROUP": 2}
_tuned: dict = {}


def _tuned_kernels():
    if not _tuned:
        _tuned["gemv"] = triton.autotune(_GEMV_CONFIGS, key=["M", "K"])(_onebit_gemv_kernel)
        _tuned["gemm"] = triton.autotune(_GEMM_CONFIGS, key=["N", "M", "K"])(_onebit_gemm_kernel)
        _tuned["gemv2"] = triton.autotune(_GEMV2_CONFIGS, key=["K", "NW"], reset_to_zero=["ws_ptr"])(
            _onebit_gemv2_kernel
        )
        _tuned["gemm2"] = triton.autotune(_GEMM2_CONFIGS, key=["N", "M", "K"])(_onebit_gemm2_kernel)
    return _tuned


def _check_inputs(x: torch.Tensor, words: torch.Tensor, m: int, activation: str, allow_fp64: bool = False) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if x.dim() != 2 or x.shape[1] != m:
        raise ValueError(f"x must have shape (n, m={m}), got {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32) and not (allow_fp64 and x.dtype == torch.float64):
        raise ValueError(f"x dtype must be float16, bfloat16 or float32, got {x.dtype}")
    if words.dtype != torch.int32 or words.dim() != 2 or words.shape[1] != packed_words(m):
        raise ValueError(f"words must be int32 of shape (k, {packed_words(m)}), got {words.dtype} {tuple(words.shape)}")
    if words.device != x.device:
        raise ValueError(f"x is on {x.device} but words on {words.device}")


STRATEGIES = ("auto", "gemv", "gemv2", "gemm", "gemm2", "unpack")
#: strategy -> (activation dtypes it supports, fallback): gemv2 is fp16 only (a 16-term
#: bf16 chain has ~1e-2 relative error: too coarse), gemm2 fp16/bf16
_RESTRICTED = {"gemv2": (("fp16",), "gemv"), "gemm2": (("fp16", "bf16"), "gemm")}
#: kernels picked by ``auto`` where the dtype allows them
AUTO_GEMV = "gemv2"
AUTO_GEMM = "gemm2"
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
        words, out, k, m, nw, words.stride(0), out.stride(0), BLOCK_K=bk, BLOCK_W=bw, num_warps=4
    )
    return out


def choose_strategy(
    n: int,
    strategy: str = "auto",
    gemv_max_batch: int = DEFAULT_GEMV_MAX_BATCH,
    unpack_min_batch: int = DEFAULT_UNPACK_MIN_BATCH,
    dtype: str = "fp16",
) -> str:
    """Kernel used for batch ``n``: ``auto`` -> GEMV (``AUTO_GEMV``, n <= gemv_max_batch),
    ``unpack`` (n >= unpack_min_batch) or the fused tensor-core GEMM (``AUTO_GEMM``).
    ``dtype`` ("fp16", "bf16", "fp32"): activation dtype; ``gemv2`` needs fp16 and ``gemm2``
    fp16/bf16, otherwise they fall back to ``gemv`` / ``gemm``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "auto":
        if n <= gemv_max_batch:
            strategy = AUTO_GEMV
        elif unpack_min_batch and n >= unpack_min_batch:
            strategy = "unpack"
        else:
            strategy = AUTO_GEMM
    if strategy in _RESTRICTED and dtype not in _RESTRICTED[strategy][0]:
        strategy = _RESTRICTED[strategy][1]
    return strategy


def onebit_linear(
    x: torch.Tensor,
    words: torch.Tensor,
    m: int,
    alpha: float,
    activation: str = "relu",
    out: torch.Tensor | None = None,
    gemv_max_batch: int = DEFAULT_GEMV_MAX_BATCH,
    strategy: str = "auto",
    unpack_min_batch: int = DEFAULT_UNPACK_MIN_BATCH,
) -> torch.Tensor:
    """``act(alpha * x @ sign(W).T)`` from packed ``words`` with Triton kernels.

    ``x``: ``(n, m)`` fp16/bf16/fp32 (made contiguous); ``words``: int32 ``(k, ceil(m/32))``.
    ``strategy`` (see :func:`choose_strategy`): ``gemv`` reads the bits and flips the
    sign of x (no unpacking, small batches; ``gemv2`` is its packed-half2 fp16 form); ``gemm`` unpacks tiles in registers for
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
    dname = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(x.dtype, "fp32")
    kind = choose_strategy(n, strategy, gemv_max_batch, unpack_min_batch, dtype=dname)
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
        kernels = {
            "gemv": _onebit_gemv_kernel,
            "gemm": _onebit_gemm_kernel,
            "gemv2": _onebit_gemv2_kernel,
            "gemm2": _onebit_gemm2_kernel,
        }
        cfgs = {"gemv": _INTERP_GEMV, "gemm": _INTERP_GEMM, "gemv2": _INTERP_GEMV2, "gemm2": _INTERP_GEMM}
    else:
        kernels = _tuned_kernels()
        cfgs = {"gemv": {}, "gemm": {}, "gemv2": {}, "gemm2": {}}
    if kind == "gemv2":
        pairs = torch.empty((n, nw * 16), dtype=torch.int32, device=x.device)
        ws = torch.empty((n, k), dtype=torch.float32, device=x.device)
        bz = triton.next_power_of_2(triton.cdiv(k, triton.cdiv(nw, 64)))

        def prep():
            _pair_kernel[(n, triton.cdiv(nw, 64))](
                x.view(torch.int16), pairs, ws, m, nw, k, x.stride(0), pairs.stride(0), BLOCK_W=64, BLOCK_Z=bz
            )

        def grid(meta):
            return (n, triton.cdiv(k, meta["BLOCK_K"]), meta["SPLIT"])

        def main():
            kernels["gemv2"][grid](
                pairs,
                words,
                ws,
                k,
                nw,
                pairs.stride(0),
                words.stride(0),
                BF16=x.dtype == torch.bfloat16,
                USE_ASM=not interpreting(),
                **cfgs["gemv2"],
            )

        tuner = kernels["gemv2"]
        before = len(getattr(tuner, "cache", {}))
        prep()
        main()
        if len(getattr(tuner, "cache", {})) != before:  # autotuning just ran: its trials added into ws
            prep()
            main()
        _finish_kernel[(n, triton.cdiv(k, 1024))](ws, out, k, out.stride(0), float(alpha), ACT=act, BLOCK=1024)
    elif kind == "gemm2":

        def grid(meta):
            return (triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(k, meta["BLOCK_K"]),)

        kernels["gemm2"][grid](
            x,
            words,
            out,
            n,
            m,
            k,
            nw,
            x.stride(0),
            words.stride(0),
            out.stride(0),
            float(alpha),
            ACT=act,
            NEG_ONE=0xBF80 if x.dtype == torch.bfloat16 else 0xBC00,
            UPCAST=interpreting(),
            **cfgs["gemm2"],
        )
    elif kind == "gemv":

        def grid(meta):
            return (n, triton.cdiv(k, meta["BLOCK_K"]))

        kernels["gemv"][grid](
            x, words, out, m, k, nw, x.stride(0), words.stride(0), out.stride(0), float(alpha), ACT=act, **cfgs[kind]
        )
    else:

        def grid(meta):
            return (triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(k, meta["BLOCK_K"]),)

        kernels["gemm"][grid](
            x,
            words,
            out,
            n,
            m,
            k,
            nw,
            x.stride(0),
            words.stride(0),
            out.stride(0),
            float(alpha),
            ACT=act,
            IEEE=x.dtype == torch.float32,
            UPCAST=interpreting() and x.dtype == torch.bfloat16,
            **cfgs["gemm"],
        )
    return out
