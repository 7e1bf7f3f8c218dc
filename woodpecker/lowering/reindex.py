"""Index maps between two row-major shapes of the same tensor (a view such as [M, N] <-> [M, N/16, 16])."""

from __future__ import annotations

import math
from collections.abc import Sequence

from woodpecker.dsl import ast
from woodpecker.dsl.transform import simplify


def dim_groups(src: Sequence[int], dst: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Split both shapes into consecutive groups of equal element count (unit dims join a neighbour)."""
    if math.prod(src) != math.prod(dst):
        raise ValueError(f"shapes {list(src)} and {list(dst)} differ in size")
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(src) or j < len(dst):
        gs, gd = [], []
        ps = pd = 1
        while True:
            if i < len(src) and (ps < pd or not gs or (ps == pd and src[i] == 1 and gd)):
                ps *= src[i]
                gs.append(i)
                i += 1
            elif j < len(dst) and (pd < ps or not gd or (ps == pd and dst[j] == 1)):
                pd *= dst[j]
                gd.append(j)
                j += 1
            else:
                break
        # absorb trailing unit dims so that the last group ends both shapes
        while i < len(src) and src[i] == 1 and ps == pd and (j >= len(dst) or dst[j] != 1):
            gs.append(i)
            i += 1
        while j < len(dst) and dst[j] == 1 and ps == pd and (i >= len(src) or src[i] != 1):
            gd.append(j)
            j += 1
        groups.append((gs, gd))
    return groups


def reindex(src_idx: Sequence[ast.Expr], src_shape: Sequence[int], dst_shape: Sequence[int]) -> list[ast.Expr]:
    """Indices into `dst_shape` of the element that `src_idx` addresses in `src_shape` (same memory order)."""
    if tuple(src_shape) == tuple(dst_shape):
        return list(src_idx)
    ranges = {}
    for e, d in zip(src_idx, src_shape):
        if isinstance(e, ast.Var):
            ranges[e.name] = (0, d - 1)
    out: list[ast.Expr] = [ast.IntLit(0)] * len(dst_shape)
    for gs, gd in dim_groups(src_shape, dst_shape):
        flat: ast.Expr = ast.IntLit(0)
        for i in gs:
            flat = ast.BinOp("+", ast.BinOp("*", flat, ast.IntLit(src_shape[i])), src_idx[i])
        flat = simplify(flat, ranges)
        stride = math.prod(dst_shape[j] for j in gd)
        for j in gd:
            stride //= dst_shape[j]
            e = ast.BinOp("%", ast.BinOp("//", flat, ast.IntLit(stride)), ast.IntLit(dst_shape[j]))
            out[j] = simplify(e, ranges)
    return out
