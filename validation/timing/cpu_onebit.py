"""CPU one-bit layers read straight from the packed bits (lookup tables, Numba).

Computes ``out = act(alpha * x @ sign(W).T)`` for ``x`` of shape ``(n, m)`` (float32) and
packed ``words`` of shape ``(k, ceil(m/32))`` in the layout of :mod:`validation.timing.onebit`
(32 weights per int32, least significant bit first, set bit = +1, rows padded with clear
bits), ``alpha = scale / sqrt(m)``.  Meant for small batches (GEMV at ``n = 1`` and small
GEMMs, ``n`` up to a few tens): there the weight bytes are the cost, and the packed layer is
32x smaller than fp32.

Technique (lookup table): viewed as bytes, byte ``g`` of a packed row holds the signs of
inputs ``8g .. 8g+7`` (:func:`~validation.timing.onebit.as_bytes`).  For every group ``g``
of 8 inputs the kernel first builds, once per input vector, the 256 partial sums

    ``T[g, b] = sum_{i<8} (+1 if bit i of b else -1) * x[8g + i]``

incrementally in float64 (on one thread), ``T[g, 0] = -sum_i x[8g+i]`` and
``T[g, b] = T[g, b & (b - 1)] + 2 x[8g + ctz(b)]`` (the identity
``sum = 2 * sum(selected) - total``), rounded once to float32.  Each output row is then
one table lookup and one add per packed byte: ``y[r] = sum_g T[g, byte[r, g]]``.  Inputs
past ``m`` are zero, so the padding bits contribute nothing.

For a batch the table is laid out ``T[g, b, j]`` (``j`` the batch row), so one lookup
reads the ``n`` partial sums of all batch rows at once (contiguous, vectorised adds).

Weights layout (:func:`prepare_layer`, once per layer): the packed bytes of every row are
cut into tiles of :data:`TILE` = 32 bytes (256 inputs) and stored tile-major, so that the
bytes of one tile for all rows are contiguous.  Batch 1 (GEMV): threads split the output
rows (``numba.prange``); each walks the tiles in order, so the table slice of one tile
(32 groups x 256 float32 = 32 KiB) stays in the core's L1 cache while the bytes of its rows
stream through once; four independent float32 accumulators per row and tile, added
pairwise.  Batch ``n >= 2`` (small GEMM, tiles of 2, 4, 8 or 16 batch rows, the tile size a
compile-time constant so that the adds over the tile vectorise): one block of rows per
thread; for each chunk of 8 groups every row adds the pairwise sum of its 8 looked-up
vectors to a float32 accumulator.  The result is float32.

Numba is an optional dependency (``pip install 'rfq-theory[cpu]'`` or ``pip install
numba``); :func:`numba_unavailable` says whether it can be used, and everything else in
this module raises :class:`ImportError` with that line when it cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .onebit import as_bytes, packed_words

__all__ = [
    "ACTIVATIONS",
    "NUMBA_HINT",
    "numba_unavailable",
    "onebit_linear_cpu",
    "onebit_forward_cpu",
    "readout_cpu",
    "build_tables",
    "CpuOneBitLayer",
    "prepare_layer",
    "set_num_threads",
    "get_num_threads",
]

#: Built-in activations (the same names and definitions as the bench and the Triton kernels).
ACTIVATIONS = {"linear": 0, "relu": 1, "tanh": 2, "sign": 3}
NUMBA_HINT = "numba is not installed (pip install 'rfq-theory[cpu]', or pip install numba)"
#: batch tile sizes of the small-batch kernel (a batch is padded to the next one; larger
#: batches are cut into tiles of the largest)
BATCH_TILES = (2, 4, 8, 16)
#: bytes per packed row in one tile of the kernels' layout (:func:`prepare_layer`): the table
#: slice of a tile (TILE groups x 256 float32 = 32 KiB) fits a core's L1 data cache
TILE = 32
#: below this many table reads a call runs on one thread: waking
#: the worker threads costs more than it saves, and on a loaded machine much more
PARALLEL_MIN_WORK = 1 << 18

_kernels: dict = {}


def numba_unavailable() -> str | None:
    """``None`` when Numba can be imported, else a one-line reason with the install command."""
    import importlib.util

    try:
        found = importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["numba"] = None
        found = False
    return None if found else f"unavailable: {NUMBA_HINT}"


def _compile() -> dict:
    """The compiled kernels (lazy: importing this module never needs Numba).

    Compiled code is cached on disk (``cache=True``), so only the first process pays the JIT.
    """
    if _kernels:
        return _kernels
    reason = numba_unavailable()
    if reason:
        raise ImportError(reason)
    import numba

    from . import _cpu_kernels as k

    _kernels.update(
        build=k.build,
        build1=k.build1,
        gemv=k.gemv,
        readout=k.readout,
        parent=k.parent,
        low=k.low,
        numba=numba,
        gemm=k.gemm,
    )
    return _kernels


def set_num_threads(n: int) -> None:
    """Set the number of Numba worker threads used by the kernels (``1 .. NUMBA_NUM_THREADS``)."""
    _compile()["numba"].set_num_threads(int(n))


def get_num_threads() -> int:
    """Number of Numba worker threads the kernels use."""
    return int(_compile()["numba"].get_num_threads())


@dataclass(frozen=True)
class CpuOneBitLayer:
    """A packed one-bit layer in the kernels' layout (:func:`prepare_layer`).

    ``tiles``: uint8 ``(ceil(G / T), k, T)`` with ``G = 4 * ceil(m / 32)`` groups of 8
    inputs and ``T = min(TILE, G rounded up to a multiple of 8)``: byte ``g`` of row ``r``
    (the signs of inputs ``8g .. 8g+7``) is ``tiles[g // T, r, g % T]``; bytes past ``G`` are
    zero (their inputs are zero too).
    """

    tiles: np.ndarray
    m: int
    k: int

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights (including the zero padding to whole tiles)."""
        return int(self.tiles.nbytes)


def prepare_layer(words: Any, m: int) -> CpuOneBitLayer:
    """Cut packed ``words`` (int32 ``(k, ceil(m/32))``, :mod:`validation.timing.onebit` layout)
    into the tile-major layout of the kernels (one pass over the bits; do it once per layer).
    """
    w = _check_words(words, m)
    bits = as_bytes(w)
    k, ngroups = bits.shape
    width = min(TILE, -(-ngroups // 8) * 8)  # a multiple of 8 bytes; narrow layers are not padded to TILE
    ntiles = -(-ngroups // width)
    padded = np.zeros((k, ntiles * width), dtype=np.uint8)
    padded[:, :ngroups] = bits
    tiles = np.ascontiguousarray(padded.reshape(k, ntiles, width).transpose(1, 0, 2))
    return CpuOneBitLayer(tiles, int(m), int(k))


def _check_words(words: Any, m: int) -> np.ndarray:
    nw = packed_words(m)
    w = np.asarray(words)
    if w.ndim != 2 or w.dtype not in (np.int32, np.uint32) or w.shape[1] != nw or w.shape[0] < 1:
        raise ValueError(f"words must be an int32 array of shape (k, {nw}) for m={m}, got {w.dtype} {w.shape}")
    return w


def _check(x: Any, layer: Any, m: int, activation: str) -> tuple[np.ndarray, CpuOneBitLayer]:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if isinstance(layer, CpuOneBitLayer):
        if layer.m != m:
            raise ValueError(f"the prepared layer has m={layer.m}, not m={m}")
    else:
        layer = prepare_layer(layer, m)
    xa = np.asarray(x)
    if xa.ndim == 1:
        xa = xa[None, :]
    if xa.ndim != 2 or xa.shape[1] != m or xa.shape[0] < 1:
        raise ValueError(f"x must have shape (n, m={m}) with n >= 1, got {np.asarray(x).shape}")
    return xa, layer


def build_tables(x: Any, m: int, groups: int | None = None) -> np.ndarray:
    """The lookup tables ``T[g, b, j]`` (float32, shape ``(groups, 256, n)``) of ``x`` (n, m).

    ``T[g, b, j] = sum_{i<8} s_i x[j, 8g+i]`` with ``s_i = +1`` where bit ``i`` of ``b`` is set,
    else ``-1``; inputs past ``m`` count as zero.  Computed in float64, rounded once.
    ``groups`` defaults to ``4 * ceil(m / 32)`` (whole packed words); more groups are zero.
    """
    xa = np.asarray(x)
    if xa.ndim == 1:
        xa = xa[None, :]
    ks = _compile()
    n = xa.shape[0]
    ngroups = 4 * packed_words(m) if groups is None else int(groups)
    xp = np.zeros((n, 8 * ngroups), dtype=np.float32)
    xp[:, :m] = xa
    table = np.empty((ngroups, 256, n), dtype=np.float32)
    if n == 1:
        nchunks = 1 if ngroups * 256 < PARALLEL_MIN_WORK else get_num_threads()
        ks["build1"](xp[0], table.reshape(-1), nchunks)
    else:
        ks["build"](xp, ks["parent"], ks["low"], table)
    return table


class _threads_for:
    """Context: run on one Numba thread when ``work`` is below :data:`PARALLEL_MIN_WORK`."""

    def __init__(self, work: int):
        self.work = work
        self.saved = None

    def __enter__(self):
        if self.work < PARALLEL_MIN_WORK:
            nb = _compile()["numba"]
            self.saved = nb.get_num_threads()
            nb.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            _compile()["numba"].set_num_threads(self.saved)
        return False


def onebit_linear_cpu(
    x: Any, words: Any, m: int, alpha: float, activation: str = "relu", out: np.ndarray | None = None
) -> np.ndarray:
    """``act(alpha * x @ sign(W).T)`` from packed weights (lookup-table kernel, Numba, CPU).

    ``x``: ``(n, m)`` or ``(m,)`` array (converted to float32); ``words``: a
    :class:`CpuOneBitLayer` from :func:`prepare_layer` (prepare once, call many times), or
    int32 ``(k, ceil(m/32))`` words in the :mod:`validation.timing.onebit` layout (prepared
    on every call); ``alpha``: the layer's multiplier (``scale / sqrt(m)``); ``activation``:
    one of :data:`ACTIVATIONS`.  Returns float32 ``(n, k)`` (written into ``out`` when given,
    which must be C-contiguous float32 of that shape).  Batch 1 runs the GEMV kernel, larger
    batches the small-GEMM kernel in tiles of up to 16 rows (each tile builds its own
    tables).  Accumulation is float32; the per-group partial sums are float64 sums rounded
    once to float32.  Raises :class:`ImportError` without Numba and :class:`ValueError` for
    inconsistent shapes, a non-finite ``alpha`` or an unknown activation.
    """
    xa, layer = _check(x, words, m, activation)
    if not math.isfinite(float(alpha)):
        raise ValueError(f"alpha must be finite, got {alpha!r}")
    ks = _compile()
    n, k = xa.shape[0], layer.k
    tiles = layer.tiles
    groups = tiles.shape[0] * tiles.shape[2]
    if out is None:
        out = np.empty((n, k), dtype=np.float32)
    elif out.shape != (n, k) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {(n, k)}")
    code = ACTIVATIONS[activation]
    a32 = np.float32(alpha)
    nblocks = max(1, get_num_threads())
    top = BATCH_TILES[-1]
    for j0 in range(0, n, top):
        xt = xa[j0 : j0 + top]
        nt = xt.shape[0]
        if nt == 1:  # batch 1, or a lone last row: the GEMV kernel
            table = build_tables(xt, m, groups).reshape(-1)
            with _threads_for(k * groups) as ctx:
                ks["gemv"](table, tiles, a32, code, out[j0 : j0 + 1], 1 if ctx.saved else nblocks)
            continue
        nb = next(t for t in BATCH_TILES if t >= nt)
        xpad = np.zeros((nb, m), dtype=np.float32)
        xpad[:nt] = xt
        table = build_tables(xpad, m, groups)
        with _threads_for(k * groups * nb) as ctx:
            ks["gemm"][nb](table, tiles, a32, code, out[j0 : j0 + nt], nt, 1 if ctx.saved else nblocks)
    return out


def readout_cpu(z: np.ndarray, a: np.ndarray, scale: float) -> np.ndarray:
    """``scale * z @ a`` for float32 ``z`` (n, w) and ``a`` (w,), single-threaded (Numba)."""
    return _compile()["readout"](
        np.ascontiguousarray(z, dtype=np.float32), np.ascontiguousarray(a, dtype=np.float32), np.float32(scale)
    )


def onebit_forward_cpu(x: Any, layers: list, activation: str = "relu") -> np.ndarray:
    """Features of a stack of packed layers: ``z_l = act(alpha_l * z_{l-1} @ sign(W_l).T)``.

    ``layers``: :class:`~validation.timing.onebit.OneBitLayer` objects whose ``words`` are
    numpy int32 words or :class:`CpuOneBitLayer` objects (:func:`prepare_layer`; prepared
    layers skip the re-layout on every call), ``alpha = scale / sqrt(m)`` each; ``x``:
    ``(n, m_0)``.  Returns float32 ``(n, k_L)``.
    This is the entry point for small-batch feature maps of one-bit networks on a CPU.
    """
    z = np.asarray(x, dtype=np.float32)
    for layer in layers:
        z = onebit_linear_cpu(z, layer.words, layer.m, layer.alpha, activation)
    return z
