"""The Numba kernels of :mod:`validation.timing.cpu_onebit` (imported only when Numba is present).

Module-level functions, so that ``cache=True`` finds its compiled code again in the next
process (a kernel defined inside a function refers to its helpers as closure variables,
which change from process to process and make every lookup miss).  The technique and the
layouts are documented in :mod:`validation.timing.cpu_onebit`.
"""

import math

import numpy as np
from numba import njit, prange, uint64

from .cpu_onebit import BATCH_TILES


@njit(cache=True)
def build(xp, parent, low, table):  # pragma: no cover - compiled
    # xp: (n, 8 * G) float32, zero past m; table: (G, 256, n) float32.  One thread: the
    # tables are small next to the lookups, and a parallel region costs more than it saves
    n = xp.shape[0]
    ngroups = table.shape[0]
    tmp = np.empty((256, n), dtype=np.float64)
    for g in range(ngroups):
        base = 8 * g
        for j in range(n):
            tot = 0.0
            for i in range(8):
                tot += xp[j, base + i]
            tmp[0, j] = -tot
            table[g, 0, j] = np.float32(-tot)
        for b in range(1, 256):
            p = parent[b]
            col = base + low[b]
            for j in range(n):
                v = tmp[p, j] + 2.0 * xp[j, col]
                tmp[b, j] = v
                table[g, b, j] = np.float32(v)


@njit(inline="always")
def act(y, code):  # pragma: no cover - compiled
    if code == 1:
        return y if y > 0 else np.float32(0.0)
    if code == 2:
        return np.float32(math.tanh(y))
    if code == 3:
        if y > 0:
            return np.float32(1.0)
        if y < 0:
            return np.float32(-1.0)
        return np.float32(0.0)
    return y


@njit(parallel=True, cache=True)
def build1(xp, table, nchunks):  # pragma: no cover - compiled
    # batch 1: xp (8 * G,) float32, zero past m; table (G * 256,) float32 (flat).  Chunks of
    # groups in parallel.  Per group, the 16 partial sums of the low and of the high four
    # inputs (float64, exact for float32 inputs), then T[16 h + l] = hi[h] + lo[l] rounded
    # once: a 16 x 16 outer sum that vectorises
    ngroups = table.shape[0] // 256
    per = (ngroups + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = np.empty(16, dtype=np.float64)
        hi = np.empty(16, dtype=np.float64)
        for g in range(c * per, min(ngroups, (c + 1) * per)):
            base = 8 * g
            x0 = np.float64(xp[base])
            x1 = np.float64(xp[base + 1])
            x2 = np.float64(xp[base + 2])
            x3 = np.float64(xp[base + 3])
            x4 = np.float64(xp[base + 4])
            x5 = np.float64(xp[base + 5])
            x6 = np.float64(xp[base + 6])
            x7 = np.float64(xp[base + 7])
            for b in range(16):
                lo[b] = ((x0 if b & 1 else -x0) + (x1 if b & 2 else -x1)) + (
                    (x2 if b & 4 else -x2) + (x3 if b & 8 else -x3)
                )
                hi[b] = ((x4 if b & 1 else -x4) + (x5 if b & 2 else -x5)) + (
                    (x6 if b & 4 else -x6) + (x7 if b & 8 else -x7)
                )
            t = 256 * g
            for h in range(16):
                hh = hi[h]
                for low4 in range(16):
                    table[t + 16 * h + low4] = np.float32(hh + lo[low4])


@njit(parallel=True, cache=True)
def gemv(table, tiles, alpha, code, out, nblocks):  # pragma: no cover - compiled
    # batch 1: table (G * 256,) float32 (flat); tiles (G / T, k, T) uint8, the packed rows cut
    # into tiles of T bytes, tile-major (tile_bits); out (1, k) float32.  Each thread owns
    # a range of rows and walks the tiles in order: the table slice of one tile (T KiB)
    # stays in the core's L1 cache while the bytes of every row stream through once.
    # Four independent accumulators per row and tile, added pairwise.
    ntiles, k, width = tiles.shape
    rb = (k + nblocks - 1) // nblocks
    for blk in prange(nblocks):
        r0 = blk * rb
        r1 = min(k, r0 + rb)
        if r1 <= r0:
            continue
        acc = np.zeros(r1 - r0, dtype=np.float32)
        for b in range(ntiles):
            tb = uint64(b) * uint64(width) * uint64(256)
            for r in range(r0, r1):
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                a2 = np.float32(0.0)
                a3 = np.float32(0.0)
                for q in range(0, width, 4):
                    qu = uint64(q)
                    t = tb + qu * uint64(256)
                    a0 += table[t + uint64(tiles[b, r, qu])]
                    a1 += table[t + uint64(256) + uint64(tiles[b, r, qu + uint64(1)])]
                    a2 += table[t + uint64(512) + uint64(tiles[b, r, qu + uint64(2)])]
                    a3 += table[t + uint64(768) + uint64(tiles[b, r, qu + uint64(3)])]
                acc[r - r0] += (a0 + a1) + (a2 + a3)
        for r in range(r0, r1):
            out[0, r] = act(np.float32(alpha * acc[r - r0]), code)


def make_gemm(nb):
    # batch tile of nb rows (a compile-time constant: the inner loop is unrolled/vectorised)
    @njit(parallel=True, cache=True)
    def gemm(table, tiles, alpha, code, out, n, nblocks):  # pragma: no cover - compiled
        # table (G, 256, nb) float32, tiles (G / T, k, T) uint8 (tile_bits), out (n, k)
        # float32 (n <= nb); a block of rows per thread; for each chunk of 8 groups (8 table
        # slices, inside one tile) every row of the block adds the tree sum of its 8
        # looked-up nb-vectors to its accumulator
        ntiles, k, width = tiles.shape
        rb = (k + nblocks - 1) // nblocks
        for blk in prange(nblocks):
            r0 = blk * rb
            r1 = min(k, r0 + rb)
            if r1 <= r0:
                continue
            acc = np.zeros((r1 - r0, nb), dtype=np.float32)
            for tb in range(ntiles):
                for co in range(0, width, 8):
                    c = tb * width + co
                    t0 = table[c]
                    t1 = table[c + 1]
                    t2 = table[c + 2]
                    t3 = table[c + 3]
                    t4 = table[c + 4]
                    t5 = table[c + 5]
                    t6 = table[c + 6]
                    t7 = table[c + 7]
                    for r in range(r0, r1):
                        a = acc[r - r0]
                        row = tiles[tb, r]
                        u0 = t0[row[co]]
                        u1 = t1[row[co + 1]]
                        u2 = t2[row[co + 2]]
                        u3 = t3[row[co + 3]]
                        u4 = t4[row[co + 4]]
                        u5 = t5[row[co + 5]]
                        u6 = t6[row[co + 6]]
                        u7 = t7[row[co + 7]]
                        for j in range(nb):
                            a[j] += ((u0[j] + u1[j]) + (u2[j] + u3[j])) + ((u4[j] + u5[j]) + (u6[j] + u7[j]))
            for r in range(r0, r1):
                for j in range(n):
                    out[j, r] = act(np.float32(alpha * acc[r - r0, j]), code)

    return gemm


@njit(cache=True)
def readout(z, a, scale):  # pragma: no cover - compiled
    n, w = z.shape
    y = np.empty(n, dtype=np.float32)
    for j in range(n):
        s = np.float32(0.0)
        for i in range(w):
            s += z[j, i] * a[i]
        y[j] = s * scale
    return y


#: ``b & (b - 1)``: the pattern ``b`` without its lowest set bit
parent = np.array([b & (b - 1) for b in range(256)], dtype=np.int64)
#: index of the lowest set bit of ``b`` (0 for ``b = 0``)
low = np.array([((b & -b).bit_length() - 1) if b else 0 for b in range(256)], dtype=np.int64)
#: the small-batch kernel, one per batch tile
gemm = {nb: make_gemm(nb) for nb in BATCH_TILES}
