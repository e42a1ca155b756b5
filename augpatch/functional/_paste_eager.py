"""The eager kernel of :func:`augpatch.functional.paste_objects` (vectorised PyTorch).

A paste is the warp's sampling with the destination and the source decoupled: every
output pixel of a destination box computes the location it reads (the warp's
``_Chunk``, with ``F.affine_grid`` + ``F.grid_sample``'s arithmetic operation for
operation), samples the *source* frame there (the source box's pixels, or with
``padding_mode="image"`` the whole source image), optionally samples the object's alpha
with the same map, and composites ``alpha * new + (1 - alpha) * below`` into one working
copy of the batch. Objects whose destination boxes overlap in one image go to successive
levels (``_plan.schedule_levels``), so later objects land on top; everything else runs in
one pass of row-aligned chunks. The only Python loops are over levels, chunks, taps and
channels; memory is one copy of the batch plus, per pasted pixel, what the backward needs.

The plan (:class:`PastePlan`) is the warp's :class:`~augpatch.functional._sampler.WarpPlan`
whose rows are the destination boxes' rows and whose *frames* (where taps read) are the
source boxes; its ``strides`` are those of the buffer the taps read (the sources, or the
alphas), ``out_strides`` those of the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from augpatch.functional._sampler import (
    WarpPlan,
    _channel_views,
    _Chunk,
    _flat,
    _location_grads,
    _Locations,
    _store,
)


@dataclass
class PastePlan(WarpPlan):
    """A :class:`WarpPlan` whose taps read other frames than the rows they write.

    ``objects`` ``[K, 5]``: the destination rects (``x0, y0, width, height, image``), in
    processing order; ``frames`` ``[K, 5]``: the rect each object reads (``x0, y0,
    width, height, index of the frame`` in the read buffer); ``read_size`` the read
    buffer's ``(height, width)``; ``strides`` the read buffer's strides, ``out_strides``
    the output's.
    """

    frames: Tensor = None  # type: ignore[assignment]
    read_size: tuple[int, int] = (0, 0)
    out_strides: tuple[int, int, int, int] = (0, 0, 0, 0)

    @cached_property
    def _row_cpu(self) -> dict[str, Tensor]:
        row = WarpPlan._row_cpu.func(self)  # type: ignore[attr-defined]
        o_b, _, o_h, o_w = self.out_strides
        s_b, _, s_h, s_w = self.strides
        x0, y0, _, h, b = self.objects.unbind(1)
        obj = row["obj"]
        row_ii = torch.arange(obj.numel()) - (torch.cumsum(h, 0) - h)[obj]
        row["out"] = b[obj] * o_b + (y0[obj] + row_ii) * o_h + x0[obj] * o_w
        fx0, fy0, fw, fh, fb = (col[obj] for col in self.frames.unbind(1))
        if self.padding_mode == "image":
            row["frame"] = fb * s_b
            row["fw"] = torch.full_like(fw, self.read_size[1])
            row["fh"] = torch.full_like(fh, self.read_size[0])
            row["fx"], row["fy"] = fx0, fy0
        else:
            row["frame"] = fb * s_b + fy0 * s_h + fx0 * s_w
            row["fw"], row["fh"] = fw, fh
        return row

    def out_offsets(self, ch: _Chunk) -> Tensor:
        """Output element offsets of a chunk's pixels (``ch.out`` uses the read strides)."""
        row = self.row
        jj = ch.col - row["col"].index_select(0, ch.prow)
        return row["out"].index_select(0, ch.prow) + jj * self.out_strides[3]


def _sample(ch: _Chunk, views: list[Tensor], dtype: torch.dtype, need_loc: bool, shift: Tensor | None = None):
    """Sample every channel of ``views`` at the chunk's locations: ``(values, d/dx, d/dy)``.

    ``shift``: added to every tap's offset (the taps of another frame, see :func:`_alpha_shift`).
    """
    p = ch.col.numel()
    acc = torch.zeros(len(views), p, dtype=dtype, device=ch.col.device)
    dvdx = torch.zeros_like(acc) if need_loc else None
    dvdy = torch.zeros_like(acc) if need_loc else None
    for off, w, wdx, wdy in ch.taps(need_loc):
        if shift is not None:
            off = off + shift
        for c, view in enumerate(views):
            vals = view.index_select(0, off).to(dtype)
            acc[c].addcmul_(w, vals)
            if dvdx is not None and dvdy is not None:
                dvdx[c].addcmul_(wdx, vals)
                dvdy[c].addcmul_(wdy, vals)
    return acc, dvdx, dvdy


def _alpha_shift(plan: PastePlan, aplan: PastePlan | None, same_params: bool) -> Tensor | None:
    """Per row, what turns the image's tap offsets into the alpha's, where the alpha is read
    at the same locations in a frame of the same size and row / column strides (an alpha
    in the sources' frame): then the alpha costs no location work of its own."""
    if aplan is None or not same_params or aplan.strides[2:] != plan.strides[2:]:
        return None
    return aplan.row["frame"] - plan.row["frame"]


def dense(t: Tensor) -> Tensor:
    """``t`` itself if its storage is dense in its own layout, else a contiguous copy."""
    if tuple(t.stride()) == tuple(torch.empty_like(t, device="meta").stride()):
        return t
    return t.contiguous()


def paste_forward(
    images: Tensor, sources: Tensor, params: Tensor, plan: PastePlan, alpha: Tensor | None,
    aparams: Tensor | None, aplan: PastePlan | None, need_loc: bool, need_diff: bool,
) -> tuple[Tensor, list[Tensor]]:
    """The pasted batch and what the backward needs.

    ``sources`` must be dense with ``plan.strides``; ``alpha`` (``[N, 1, h, w]``, dense with
    ``aplan.strides``) is sampled with ``aplan``/``aparams``. Saved (compute dtype, flat,
    empty where not needed): the alpha of every pasted pixel ``[P]``, ``new - below``
    ``[C * P]`` (for the gradient of the alpha), the two derivatives of the sampled
    values ``[2 * C * P]`` and of the alpha ``[2 * P]`` (for the location gradient).
    """
    dtype = params.dtype
    dev = images.device
    work = torch.empty_strided(images.shape, plan.out_strides, dtype=images.dtype, device=dev)
    work.copy_(images)
    tables = _Locations(plan, params).tables
    atables = None
    if alpha is not None and aplan is not None and aparams is not None:
        atables = tables if aparams is params else _Locations(aplan, aparams).tables
    src_views = _channel_views(_flat(sources), plan.channels, plan.strides[1])
    out_views = _channel_views(_flat(work), plan.channels, plan.out_strides[1])
    a_views = [_flat(alpha)] if alpha is not None else None
    shift = _alpha_shift(plan, aplan, atables is tables)
    keep: dict[str, list[Tensor]] = {"a": [], "diff": [], "dv": [], "da": []}
    for level in plan.chunks:
        for bounds in level:
            ch = _Chunk(plan, tables, bounds)
            out = plan.out_offsets(ch)
            new, dvdx, dvdy = _sample(ch, src_views, dtype, need_loc)
            if dvdx is not None and dvdy is not None:
                keep["dv"].append(torch.stack([dvdx, dvdy]))
            if a_views is not None and aplan is not None and atables is not None:
                if shift is not None:
                    a, dadx, dady = _sample(ch, a_views, dtype, need_loc, shift.index_select(0, ch.prow))
                else:
                    a, dadx, dady = _sample(_Chunk(aplan, atables, bounds), a_views, dtype, need_loc)
                keep["a"].append(a[0])  # as sampled: the backward redoes the clamp
                a = a[0].clamp(0, 1)
                below = torch.stack([v.index_select(0, out) for v in out_views]).to(dtype)
                if need_diff:
                    keep["diff"].append(new - below)
                if dadx is not None and dady is not None:
                    keep["da"].append(torch.stack([dadx[0], dady[0]]))
                new = a * new + (1 - a) * below
            stored = _store(new, work.dtype)
            for c, view in enumerate(out_views):
                view.index_copy_(0, out, stored[c])
            del ch
    # per chunk [..., p] pieces, in pixel order: [P], [C, P], [2, C, P], [2, P]
    saved = [torch.cat(keep[k], -1).reshape(-1) if keep[k] else params.new_empty(0)
             for k in ("a", "diff", "dv", "da")]
    return work, saved


def paste_backward(
    grad_out: Tensor, sources: Tensor, params: Tensor, plan: PastePlan, alpha: Tensor | None,
    aparams: Tensor | None, aplan: PastePlan | None, saved: list[Tensor], need_img: bool,
    need_src: bool, need_loc: bool, need_alpha: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(grad_images, grad_sources, grad_alpha, grad_params, grad_aparams)`` (compute dtype).

    Walks the levels in reverse over one gradient buffer: a level's pixels pass
    ``(1 - alpha) * g`` to what was below them and ``alpha * g`` to what they sampled.
    """
    dtype = params.dtype
    dev = grad_out.device
    g_buf = torch.empty_strided(grad_out.shape, plan.out_strides, dtype=dtype, device=dev)
    g_buf.copy_(grad_out)
    g_views = _channel_views(_flat(g_buf), plan.channels, plan.out_strides[1])
    loc = _Locations(plan, params)
    tables = loc.tables
    aloc = None
    if alpha is not None and aplan is not None and aparams is not None:
        aloc = loc if aparams is params else _Locations(aplan, aparams)
    grad_src = None
    if need_src:
        grad_src = torch.empty_strided(sources.shape, plan.strides, dtype=dtype, device=dev).zero_()
    s_views = _channel_views(_flat(grad_src), plan.channels, plan.strides[1]) if grad_src is not None else None
    grad_alpha = None
    if need_alpha and alpha is not None and aplan is not None:
        grad_alpha = torch.empty_strided(alpha.shape, aplan.strides, dtype=dtype, device=dev).zero_()
    ga_view = _flat(grad_alpha) if grad_alpha is not None else None
    grads = [torch.zeros_like(t) for t in tables] if need_loc else None
    shift = _alpha_shift(plan, aplan, aloc is loc)
    agrads = None
    if need_loc and aloc is not None:
        agrads = grads if aloc is loc else [torch.zeros_like(t) for t in aloc.tables]
    channels = plan.channels
    a_raw = saved[0]
    diff = saved[1].view(channels, -1) if saved[1].numel() else None
    dv = saved[2].view(2, channels, -1) if saved[2].numel() else None
    da = saved[3].view(2, -1) if saved[3].numel() else None
    for lvl in range(len(plan.chunks) - 1, -1, -1):
        for bounds in plan.chunks[lvl]:
            p0, p1 = bounds[2], bounds[3]
            ch = _Chunk(plan, tables, bounds)
            out = plan.out_offsets(ch)
            g = torch.stack([v.index_select(0, out) for v in g_views])
            g_new = g
            g_a = None
            if aloc is not None and aplan is not None:
                # the clamp to [0, 1] passes the gradient where the sample was inside
                inside = (a_raw[p0:p1] >= 0) & (a_raw[p0:p1] <= 1)
                a = a_raw[p0:p1].clamp(0, 1)
                for c, v in enumerate(g_views):
                    v.index_copy_(0, out, (1 - a) * g[c])
                g_new = a * g
                if diff is not None:
                    g_a = (g * diff[:, p0:p1]).sum(0) * inside
            else:
                for v in g_views:
                    v.index_fill_(0, out, 0)
            if s_views is not None:
                for off, w, _, _ in ch.taps(derivatives=False):
                    for c, v in enumerate(s_views):
                        v.index_add_(0, off, w * g_new[c])
            if grads is not None and dv is not None:
                _location_grads(ch, g_new, dv[0, :, p0:p1], dv[1, :, p0:p1], grads)
            if g_a is not None and aplan is not None and aloc is not None:
                ach = ch if shift is not None else _Chunk(aplan, aloc.tables, bounds)
                if agrads is not None and da is not None:
                    _location_grads(ach, g_a[None], da[0:1, p0:p1], da[1:2, p0:p1], agrads)
                if ga_view is not None:
                    pixel_shift = shift.index_select(0, ch.prow) if shift is not None else 0
                    for off, w, _, _ in ach.taps(derivatives=False):
                        ga_view.index_add_(0, off + pixel_shift, w * g_a)
            del ch
    grad_params = loc.param_grads(grads) if grads is not None else None
    grad_aparams = None
    if agrads is not None and aloc is not None and aloc is not loc:
        grad_aparams = aloc.param_grads(agrads)
    return g_buf, grad_src, grad_alpha, grad_params, grad_aparams

