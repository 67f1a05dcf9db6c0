"""One-bit (sign) layer format: pack sign(W) into bits, unpack for reference.

Layout
------
A layer ``W`` of shape ``(k, m)`` (``k`` outputs, ``m`` inputs; the model computes
``act(scale * sign(W) @ x / sqrt(m))``) is stored row by row as an LSB-first bit
stream.  Each row is padded to a multiple of 32 bits:

* ``words[i, w]`` (``int32``, shape ``(k, ceil(m / 32))``): bit ``j`` (``j = 0`` is the
  least significant bit) is ``1`` iff ``W[i, 32 * w + j] >= 0``, i.e. a set bit
  means ``+1`` and a clear bit means ``-1``; ``sign(0)`` is taken as ``+1``.
* Padding bits (``32 * w + j >= m``) are ``0``.  Kernels must mask the
  corresponding inputs (they contribute nothing), never trust those bits.
* Viewed as bytes on a little-endian machine the same buffer is the
  "8 weights per byte" format: bit ``j`` of byte ``b`` of row ``i`` is weight
  ``W[i, 8 * b + j]``.  :func:`as_bytes` returns that ``uint8`` view.

Memory is exactly ``k * 32 * ceil(m / 32)`` bits, i.e. one bit per weight plus
at most 31 bits of padding per row.  An optional per-layer ``scale`` (a float,
default ``1.0``) multiplies the layer's pre-activation.

The numpy functions work without torch; the ``*_torch`` functions import torch lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "WORD_BITS",
    "OneBitLayer",
    "packed_words",
    "pack_signs",
    "unpack_signs",
    "as_bytes",
    "pack_signs_torch",
    "unpack_signs_torch",
    "packed_nbytes",
]

WORD_BITS = 32
_SHIFTS = np.arange(WORD_BITS, dtype=np.uint32)


def packed_words(m: int) -> int:
    """Number of 32-bit words per packed row of ``m`` weights (``ceil(m / 32)``)."""
    if int(m) != m or m < 1:
        raise ValueError(f"m (number of inputs) must be a positive integer, got {m!r}")
    return (int(m) + WORD_BITS - 1) // WORD_BITS


def packed_nbytes(k: int, m: int) -> int:
    """Bytes used by a packed ``(k, m)`` layer: ``4 * k * ceil(m / 32)``."""
    if int(k) != k or k < 1:
        raise ValueError(f"k (number of outputs) must be a positive integer, got {k!r}")
    return 4 * int(k) * packed_words(m)


def _check_matrix(w: Any, name: str = "w") -> np.ndarray:
    arr = np.asarray(w)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D array (k, m), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def pack_signs(w: Any) -> np.ndarray:
    """Pack ``sign(w)`` of a ``(k, m)`` array into ``int32`` words ``(k, ceil(m/32))``.

    Bit ``j`` of ``words[i, w]`` is 1 iff ``w[i, 32*w + j] >= 0``; padding bits are 0.
    """
    arr = _check_matrix(w)
    k, m = arr.shape
    nw = packed_words(m)
    bits = np.zeros((k, nw * WORD_BITS), dtype=np.uint32)
    bits[:, :m] = arr >= 0
    words = (bits.reshape(k, nw, WORD_BITS) << _SHIFTS).sum(axis=2, dtype=np.uint64)
    return words.astype(np.uint32).view(np.int32)


def unpack_signs(words: Any, m: int, dtype: Any = np.float32) -> np.ndarray:
    """Inverse of :func:`pack_signs`: return the ``(k, m)`` matrix of ``+-1`` in ``dtype``."""
    arr = np.asarray(words)
    if arr.ndim != 2:
        raise ValueError(f"words must be 2-D (k, ceil(m/32)), got shape {arr.shape}")
    if arr.dtype not in (np.int32, np.uint32):
        raise ValueError(f"words must be int32 or uint32, got {arr.dtype}")
    nw = packed_words(m)
    if arr.shape[1] != nw:
        raise ValueError(f"words has {arr.shape[1]} columns but m={m} needs {nw}")
    u = arr.view(np.uint32)
    bits = (u[:, :, None] >> _SHIFTS) & 1
    bits = bits.reshape(arr.shape[0], nw * WORD_BITS)[:, :m]
    return (2.0 * bits - 1.0).astype(dtype)


def as_bytes(words: Any) -> np.ndarray:
    """The "8 weights per byte" ``uint8`` view ``(k, 4*ceil(m/32))`` of packed words."""
    arr = np.ascontiguousarray(np.asarray(words))
    if arr.dtype not in (np.int32, np.uint32):
        raise ValueError(f"words must be int32 or uint32, got {arr.dtype}")
    return arr.astype("<u4", copy=False).view(np.uint8).reshape(arr.shape[0], -1)


def pack_signs_torch(w: Any):
    """Torch version of :func:`pack_signs`; keeps the device of ``w`` (int32 result)."""
    import torch

    if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.numel() == 0:
        raise ValueError("w must be a non-empty 2-D torch.Tensor (k, m)")
    k, m = w.shape
    nw = packed_words(m)
    bits = torch.zeros((k, nw * WORD_BITS), dtype=torch.int64, device=w.device)
    bits[:, :m] = (w >= 0).to(torch.int64)
    shifts = torch.arange(WORD_BITS, device=w.device, dtype=torch.int64)
    words = (bits.view(k, nw, WORD_BITS) << shifts).sum(dim=2)
    words = torch.where(words >= 2**31, words - 2**32, words)  # two's complement
    return words.to(torch.int32).contiguous()


def unpack_signs_torch(words: Any, m: int, dtype: Any = None):
    """Torch inverse of :func:`pack_signs_torch`: ``(k, m)`` tensor of ``+-1`` in ``dtype``.

    This is the pure-PyTorch reference path (no Triton): ``unpack + matmul``.
    """
    import torch

    if not isinstance(words, torch.Tensor) or words.dim() != 2 or words.dtype != torch.int32:
        raise ValueError("words must be a 2-D int32 torch.Tensor (k, ceil(m/32))")
    nw = packed_words(m)
    if words.shape[1] != nw:
        raise ValueError(f"words has {words.shape[1]} columns but m={m} needs {nw}")
    dtype = torch.float32 if dtype is None else dtype
    shifts = torch.arange(WORD_BITS, device=words.device, dtype=torch.int32)
    bits = (words.unsqueeze(-1) >> shifts) & 1
    bits = bits.reshape(words.shape[0], nw * WORD_BITS)[:, :m]
    return (2 * bits - 1).to(dtype)


@dataclass
class OneBitLayer:
    """A packed one-bit layer: ``z = act(scale * sign(W) @ x / sqrt(m))``.

    Attributes: ``words`` (int32 ``(k, ceil(m/32))``, numpy or torch), ``k``, ``m``,
    ``scale`` (per-layer multiplier, default 1).
    """

    words: Any
    k: int
    m: int
    scale: float = 1.0

    @classmethod
    def from_dense(cls, w: Any, scale: float = 1.0) -> OneBitLayer:
        """Pack a dense ``(k, m)`` numpy array or torch tensor."""
        if not math.isfinite(scale):
            raise ValueError(f"scale must be finite, got {scale!r}")
        try:
            import torch

            if isinstance(w, torch.Tensor):
                return cls(pack_signs_torch(w), int(w.shape[0]), int(w.shape[1]), float(scale))
        except ImportError:
            pass
        arr = _check_matrix(w)
        return cls(pack_signs(arr), arr.shape[0], arr.shape[1], float(scale))

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights (1 bit per weight plus row padding)."""
        return packed_nbytes(self.k, self.m)

    @property
    def alpha(self) -> float:
        """Total multiplier applied to ``sign(W) @ x``: ``scale / sqrt(m)``."""
        return self.scale / math.sqrt(self.m)

    def signs(self, dtype: Any = None):
        """Unpacked ``(k, m)`` ``+-1`` matrix (numpy or torch, like ``words``)."""
        if isinstance(self.words, np.ndarray):
            return unpack_signs(self.words, self.m, np.float32 if dtype is None else dtype)
        return unpack_signs_torch(self.words, self.m, dtype)
