"""Scheduling of objects into levels, and PyTorch's exact base grid.

A *level* is a set of objects that can all read the batch, and then all write
it, without changing the result of the sequential loop of the SPEC. Object
``n`` goes to the lowest level that respects, for every earlier object ``m``
of the same image:

* ``m`` writes where ``n`` reads (read after write): ``level[n] > level[m]``;
* ``m`` writes where ``n`` writes (write after write): ``level[n] > level[m]``
  (so no two boxes of one level overlap and the index order is kept);
* ``m`` reads where ``n`` writes (write after read): ``level[n] >= level[m]``
  (a level reads everything before it writes anything).

With patch-relative padding an object reads only its own patch, so this is just
"boxes overlap"; with ``padding_mode="image"`` the read region is the bounding
box of the object's source footprint. Non-overlapping objects share level 0,
which makes ``sequential`` cost the same as ``parallel`` then, and a chain of
overlaps costs one pass per level, not per object.

The schedule is computed on the CPU from ``N``-sized metadata (one transfer);
nothing of size ``N x image`` is ever built.
"""

from __future__ import annotations

import torch
from torch import Tensor

_PAIR_CHUNK = 1 << 18  # pairs tested at once when looking for overlaps (a few MB of temporaries)
_DENSE_MAX = 96  # up to this many objects every pair is tested at once (fewer ops than a sweep)


def _rects_intersect(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise intersection test of half-open pixel rects ``[x0, y0, x1, y1]``."""
    return (
        (torch.maximum(a[..., 0], b[..., 0]) < torch.minimum(a[..., 2], b[..., 2]))
        & (torch.maximum(a[..., 1], b[..., 1]) < torch.minimum(a[..., 3], b[..., 3]))
    )


def _sweep(touch: Tensor, image: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """The sweep along ``axis`` (0: x, 1: y): ``(order [K], count [K])``.

    ``order`` sorts the objects by image, then by their low edge along the axis;
    sorted position ``i`` is paired with positions ``i + 1 .. i + count[i]`` (the
    objects of its image whose low edge lies before its high edge).
    """
    k = touch.shape[0]
    low, high = touch[:, axis], touch[:, axis + 2]
    origin = int(low.min())
    span = int(high.max()) - origin + 1  # keys of two images never mix
    key, order = torch.sort(image * span + (low - origin), stable=True)
    end = image[order] * span + (high[order] - origin)
    stop = torch.searchsorted(key, end, side="left")
    return order, (stop - torch.arange(1, k + 1)).clamp(min=0)


def overlap_edges(
    write: Tensor, read: Tensor | None, image: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Dependency edges ``(src, dst, strict)`` between objects ``src < dst`` of one image.

    ``write``/``read`` are ``[K, 4]`` int64 pixel rects on the CPU; ``read=None``
    means every object reads exactly what it writes. ``strict`` edges: ``src`` writes
    where ``dst`` writes or reads; loose ones: ``src`` only reads where ``dst`` writes.

    A sweep along one axis finds the candidates: objects are sorted by image, then by the
    low edge of the rect they touch (written or read), and each is paired with the
    objects of its image whose low edge lies before its high edge (one
    ``searchsorted``); only those pairs are tested, in chunks of at most
    ``_PAIR_CHUNK``. Both axes are counted first and the one with fewer candidate pairs
    is swept, so a column of boxes (all sharing their x range) or a stack of wide strips
    costs about the pairs that really meet, not ``K^2``.
    """
    k = write.shape[0]
    empty = torch.zeros(0, dtype=torch.long)
    if k < 2:
        return empty, empty, empty
    if k <= _DENSE_MAX:
        return _dense_edges(write, read, image)
    touch = write if read is None else torch.cat([
        torch.minimum(write[:, :2], read[:, :2]), torch.maximum(write[:, 2:], read[:, 2:])
    ], 1)
    order, count = min((_sweep(touch, image, axis) for axis in (0, 1)),
                       key=lambda sweep: int(sweep[1].sum()))
    srcs, dsts, stricts = [], [], []
    ends = torch.cumsum(count, 0)
    start = 0
    while start < k:
        base = int(ends[start - 1]) if start else 0
        # as many positions as fit _PAIR_CHUNK pairs (at least one)
        stop_at = max(start + 1, int(torch.searchsorted(ends, base + _PAIR_CHUNK, side="right")))
        stop_at = min(stop_at, k)
        c = count[start:stop_at]
        pairs = int(ends[stop_at - 1]) - base  # output_size: repeat_interleave need not sum c
        i = torch.repeat_interleave(torch.arange(start, stop_at), c, output_size=pairs)
        j = i + 1 + (torch.arange(pairs) - (torch.cumsum(c, 0) - c).repeat_interleave(c, output_size=pairs))
        a, b = order[i], order[j]
        m, n = torch.minimum(a, b), torch.maximum(a, b)  # earlier, later object
        strict = _rects_intersect(write[m], write[n])
        if read is not None:
            strict |= _rects_intersect(write[m], read[n])
            loose = _rects_intersect(read[m], write[n]) & ~strict
            srcs.append(m[loose])
            dsts.append(n[loose])
            stricts.append(torch.zeros_like(m[loose]))
        srcs.append(m[strict])
        dsts.append(n[strict])
        stricts.append(torch.ones_like(m[strict]))
        start = stop_at
    return torch.cat(srcs), torch.cat(dsts), torch.cat(stricts)


def _dense_edges(write: Tensor, read: Tensor | None, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`overlap_edges` testing every pair ``m < n`` of one image at once (few objects)."""
    m, n = torch.triu_indices(write.shape[0], write.shape[0], 1)
    same = image[m] == image[n]
    m, n = m[same], n[same]
    strict = _rects_intersect(write[m], write[n])
    if read is None:
        return m[strict], n[strict], torch.ones_like(m[strict])
    strict |= _rects_intersect(write[m], read[n])
    loose = _rects_intersect(read[m], write[n]) & ~strict
    keep = strict | loose
    return m[keep], n[keep], strict[keep].long()


def schedule_levels(num: int, src: Tensor, dst: Tensor, strict: Tensor) -> Tensor:
    """Longest-path levels over the dependency DAG (vectorised relaxation).

    Each sweep is one ``scatter_reduce`` over the edges; the number of sweeps is
    the depth of the overlap chain (not the number of objects).
    """
    level = torch.zeros(num, dtype=torch.long)
    if src.numel() == 0:
        return level
    while True:
        cand = level[src] + strict
        new = level.scatter_reduce(0, dst, cand, reduce="amax", include_self=True)
        if torch.equal(new, level):
            return level
        level = new


def exact_base_grid(index: Tensor, size: Tensor, align_corners: bool, dtype: torch.dtype) -> Tensor:
    """``F.affine_grid``'s base coordinate of pixel ``index`` of ``size``, bit for bit.

    ``affine_grid`` builds ``linspace(-1, 1, size)`` (times ``(size - 1) / size``
    without ``align_corners``; ``0`` for ``size == 1``). ``linspace`` evaluates
    ``start + step * k`` with a fused multiply-add; we reproduce that single
    rounding (float32 through float64, float64 with an error-free product),
    so coordinates, and therefore floor/round decisions at ties, match the
    reference exactly. ``index``/``size`` are int64 tensors of equal shape.
    """
    n = size.to(dtype)
    step = (torch.ones((), dtype=dtype, device=index.device) * 2) / (n - 1).clamp(min=1)
    first_half = index < torch.div(size, 2, rounding_mode="floor")
    k = torch.where(first_half, index, size - 1 - index).to(dtype)
    start = torch.where(first_half, -1.0, 1.0).to(dtype)
    sign = torch.where(first_half, 1.0, -1.0).to(dtype)
    base = fused_multiply_add(sign * step, k, start)
    if not align_corners:
        base = base * (n - 1) / n
    return torch.where(size <= 1, torch.zeros_like(base), base)


_TABLE_MAX_SIZE = 1024  # a table up to this size holds 525k coordinates (4 MB in float64)
_TABLES: dict[tuple, tuple[Tensor, Tensor]] = {}


def base_grid(index: Tensor, size: Tensor, align_corners: bool, dtype: torch.dtype) -> Tensor:
    """:func:`exact_base_grid`, read from a cached table of every size up to a power of two.

    The table holds the base coordinates of all sizes ``0..cap`` back to back, so a
    call costs one gather instead of a dozen elementwise passes. Sizes above
    ``_TABLE_MAX_SIZE`` are computed directly.
    """
    largest = int(size.max()) if size.numel() else 0
    if largest > _TABLE_MAX_SIZE:
        return exact_base_grid(index, size, align_corners, dtype)
    cap = 1 << max(4, (largest - 1).bit_length())
    key = (cap, align_corners, dtype, index.device)
    if key not in _TABLES:
        if len(_TABLES) >= 16:
            _TABLES.pop(next(iter(_TABLES)))
        sizes = torch.arange(cap + 1)
        offsets = torch.cumsum(sizes, 0) - sizes
        size_of = torch.repeat_interleave(sizes, sizes)
        position = torch.arange(size_of.numel()) - offsets[size_of]
        values = exact_base_grid(position, size_of, align_corners, dtype)
        _TABLES[key] = (values.to(index.device), offsets.to(index.device))
    values, offsets = _TABLES[key]
    return values[offsets[size] + index]


def fused_multiply_add(a: Tensor, b: Tensor, c: Tensor | float) -> Tensor:
    """``a * b + c`` rounded once, as the fused multiply-add of PyTorch's compiled kernels.

    Exact when ``b`` has at most 26 significant bits (small integers, half-integers:
    pixel counts and half sizes): float32 is evaluated in float64 (the product is
    exact there), float64 with an error-free split of ``a`` (Veltkamp) and a two-sum.
    """
    if a.dtype != torch.float64:
        return (a.double() * b.double() + c).to(a.dtype)
    split = a * 134217729.0  # 2**27 + 1
    a_hi = split - (split - a)
    a_lo = a - a_hi
    p_hi = a_hi * b  # exact: 26 bits times at most 26 bits
    p_lo = a_lo * b  # exact likewise
    s = p_hi + c
    bb = s - p_hi
    err = (p_hi - (s - bb)) + (c - bb)  # two-sum error of p_hi + c
    return s + (err + p_lo)
