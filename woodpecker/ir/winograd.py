"""Winograd F(4x4, 3x3): the transform matrices, the weight transform done at compile time, and a NumPy form of the
blocked Winograd convolution (kernels/winograd.wpl) that the tests hold the generated kernel to.

Matrices from Lavin & Gray (2016), interpolation points 0, +-1, +-2 and infinity: Y = A^T [(G g G^T) . (B^T d B)] A
for a 4x4 output tile Y, its 6x6 input tile d and a 3x3 filter g.
"""

from __future__ import annotations

import numpy as np

TILE = 4  # outputs per tile side
ALPHA = TILE + 2  # input tile side: TILE + R - 1
POSITIONS = ALPHA * ALPHA

BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)


def tiles(extent: int) -> int:
    """Output tiles along one side of `extent` outputs."""
    return -(-extent // TILE)


def transform_weight(blocked: np.ndarray) -> np.ndarray:
    """A 3x3 conv2d_nchwc weight [K/OB, C/IB, 3, 3, IB, OB] as U = G g G^T in [36, K/OB, C/IB, IB, OB], computed in
    float64 and rounded once."""
    u = np.einsum("ar,kcrsio,bs->abkcio", G, blocked.astype(np.float64), G, optimize=True)
    return np.ascontiguousarray(u.reshape((POSITIONS,) + u.shape[2:]).astype(blocked.dtype))


def plain_weight(u: np.ndarray) -> np.ndarray:
    """The 3x3 conv2d_nchwc weight [K/OB, C/IB, 3, 3, IB, OB] that `u` was transformed from (G has full column rank,
    so its pseudo-inverse recovers g exactly up to rounding): what the interpreter and the vendors run."""
    gi = np.linalg.pinv(G)
    g = np.einsum("ra,abkcio,sb->kcrsio", gi, u.astype(np.float64).reshape((ALPHA, ALPHA) + u.shape[1:]), gi,
                  optimize=True)
    return np.ascontiguousarray(g.astype(u.dtype))


def reference(x: np.ndarray, u: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """The Winograd convolution of a blocked input [N, C/IB, H, W, IB] with a transformed weight (float64 inside):
    the same arithmetic as the kernel, for the tests."""
    n, cb, h, w, ib = x.shape
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    th, tw = tiles(oh), tiles(ow)
    xp = np.zeros((n, cb, th * TILE + 2, tw * TILE + 2, ib))
    rows, cols = min(h, th * TILE + 2 - pt), min(w, tw * TILE + 2 - pl)
    xp[:, :, pt:pt + rows, pl:pl + cols] = x[:, :, :rows, :cols]
    d = np.lib.stride_tricks.sliding_window_view(xp, (ALPHA, ALPHA), axis=(2, 3))[:, :, ::TILE, ::TILE]
    v = np.einsum("ar,ncyxirs,bs->abncyxi", BT, d, BT, optimize=True)  # [6, 6, n, cb, th, tw, ib]
    uu = u.astype(np.float64).reshape((ALPHA, ALPHA) + u.shape[1:])  # [6, 6, kb, cb, ib, ob]
    m = np.einsum("abncyxi,abkcio->abnkyxo", v, uu, optimize=True)
    y = np.einsum("ia,abnkyxo,jb->nkyixjo", AT, m, AT, optimize=True)  # [n, kb, th, 4, tw, 4, ob]
    y = y.reshape(n, y.shape[1], th * TILE, tw * TILE, y.shape[-1])[:, :, :oh, :ow]
    return np.ascontiguousarray(y.astype(x.dtype))
