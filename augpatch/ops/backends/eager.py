"""The eager backend: the warp in vectorised PyTorch operations (any device).

The eager kernel (:func:`eager_forward`, :func:`eager_backward`) computes, for every
output pixel of every box, the location it
reads (with the arithmetic of ``F.affine_grid`` + ``F.grid_sample``, operation
for operation), samples it from its *frame* (the object's patch, or the whole
image for ``padding_mode="image"``) and writes it into one working copy of the
batch, level by level (see :mod:`augpatch.ops.schedule`). Pixels are processed in row-aligned
chunks, so temporary memory is bounded whatever the total box area; the only
Python loops are over levels, chunks, taps (1, 4 or 16) and channels.

Nothing per pixel is kept for the backward pass except, when ``theta`` or the
boxes need a gradient, the two partial derivatives of the sampled values. The
backward pass walks the levels in reverse over one gradient buffer and reduces
the location gradients onto small per-column / per-row / per-object tables, and
those onto the ``[K, 14]`` per-object parameters; autograd takes it from there. Its
cost grows like the forward's: with the total box area plus one copy of the batch.

The plan (:class:`WarpPlan`) is per object. On the CPU the compiled kernel
(``backends/compiled/csrc/warp_cpu.cpp``) expands it into pixel rows and location
tables itself and runs the same per-pixel arithmetic in place of the chunk loop; it
keeps the derivatives only for levels that read earlier levels' output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.ops.backends.base import Backend, PasteKernel, WarpKernel
from augpatch.ops.layout import (
    CX,
    CY,
    KX,
    KY,
    LOCATION_PARAMS,
    T00,
    T01,
    T10,
    T11,
)
from augpatch.ops.plan import PastePlan, WarpPlan
from augpatch.ops.schedule import base_grid, fused_multiply_add

_CUBIC_A = -0.75  # the constant F.grid_sample and F.interpolate use for bicubic


def _taps_1d(coord: Tensor, mode: str) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """First tap index, tap weights and their derivatives along one axis."""
    if mode == "nearest":
        first = torch.round(coord)  # round half to even, as nearbyint in grid_sample
        return first.long(), [torch.ones_like(coord)], [torch.zeros_like(coord)]
    lo = torch.floor(coord)
    t = coord - lo
    if mode == "bilinear":
        # grid_sample's CPU kernel: w = x - floor(x) for the far tap, 1 - w for the near one
        return lo.long(), [1 - t, t], [torch.full_like(t, -1.0), torch.ones_like(t)]
    a = _CUBIC_A
    t1, t2, t3 = t + 1, 1 - t, 2 - t
    # cubic convolution: kernel 2 for |x| in (1, 2), kernel 1 for |x| <= 1
    w0 = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1
    w3 = ((a * t3 - 5 * a) * t3 + 8 * a) * t3 - 4 * a
    d0 = (3 * a * t1 - 10 * a) * t1 + 8 * a
    d1 = (3 * (a + 2) * t - 2 * (a + 3)) * t
    d2 = -((3 * (a + 2) * t2 - 2 * (a + 3)) * t2)
    d3 = -((3 * a * t3 - 10 * a) * t3 + 8 * a)
    return (lo - 1).long(), [w0, w1, w2, w3], [d0, d1, d2, d3]


def _bound(index: Tensor, size: Tensor, padding: str, align_corners: bool) -> tuple[Tensor, Tensor | None]:
    """Map tap indices into ``[0, size)``; return them and (zeros padding) which are real."""
    if padding == "zeros":
        clamped = index.clamp(min=0).minimum(size - 1)
        return clamped, clamped == index
    if padding == "reflection":
        # integer indices reflect about -0.5 and size - 0.5 (period 2 size), or
        # with align_corners about 0 and size - 1 (period 2 (size - 1))
        if align_corners:
            period = (2 * (size - 1)).clamp(min=1)
            r = torch.remainder(index, period)
            index = torch.where(size == 1, 0, torch.minimum(r, period - r))
        else:
            period = 2 * size
            r = torch.remainder(index, period)
            index = torch.minimum(r, period - 1 - r)
    return index.clamp(min=0).minimum(size - 1), None


def _pad_location(coord: Tensor, size: Tensor, padding: str, align_corners: bool) -> tuple[Tensor, Tensor]:
    """``grid_sample``'s border / reflection transform of a location, and its derivative."""
    size_f = size.to(coord.dtype)
    grad = torch.ones_like(coord)
    if padding == "reflection":
        if align_corners:
            low = 0.0
            twice_span = 2 * (size_f - 1)
        else:
            low = -0.5
            twice_span = 2 * size_f
        shifted = coord - low
        neg = shifted < 0
        mag = shifted.abs()
        safe = torch.where(twice_span > 0, twice_span, 1.0)
        extra = mag - torch.trunc(mag / safe) * safe
        reflected = safe - extra
        flip = extra > reflected
        grad = torch.where(flip ^ neg, -1.0, 1.0).to(coord.dtype)
        coord = torch.where(flip, reflected, extra) + low
        empty = twice_span <= 0
        coord = torch.where(empty, 0.0, coord)
        grad = torch.where(empty, 0.0, grad)
    max_val = size_f - 1
    inside = (coord > 0) & (coord < max_val)
    coord = torch.where(inside, coord, torch.where(coord <= 0, 0.0, max_val))
    return coord, grad * inside


class _Chunk:
    """Everything about one chunk of pixels: locations, taps and output offsets."""

    def __init__(self, plan: WarpPlan, tables: tuple[Tensor, ...], bounds: tuple[int, int, int, int]) -> None:
        col_x, col_y, row_x, row_y, obj = tables
        r0, r1, p0, p1 = bounds
        row = plan.row
        dev = obj.device
        lens = row["len"][r0:r1]
        prow = torch.repeat_interleave(torch.arange(r0, r1, device=dev), lens, output_size=p1 - p0)
        jj = torch.arange(p0, p1, device=dev) - row["pix"].index_select(0, prow)
        ro = row["obj"].index_select(0, prow)
        col = row["col"].index_select(0, prow) + jj
        _, _, s_h, s_w = plan.strides
        self.out = row["out"].index_select(0, prow) + jj * s_w
        self.prow, self.col, self.ro = prow, col, ro
        # sampling locations: the bmm's (u * t0 + v * t1) + t2, then grid_sample's unnormalize
        ob = obj.index_select(0, ro)  # [P, 6]: t02, t12, scale_x, scale_y, off_x, off_y
        gx = col_x.index_select(0, col) + row_x.index_select(0, prow) + ob[:, 0]
        gy = col_y.index_select(0, col) + row_y.index_select(0, prow) + ob[:, 1]
        self.gx1, self.gy1 = gx + 1, gy + 1
        self.scale_x, self.scale_y = ob[:, 2], ob[:, 3]
        if plan.align_corners:
            ix = self.gx1 * ob[:, 2] + ob[:, 4]
            iy = self.gy1 * ob[:, 3] + ob[:, 5]
        else:  # grid_sample computes (g + 1) * size / 2 - 0.5 as one fused multiply-add
            ix = fused_multiply_add(self.gx1, ob[:, 2], -0.5) + ob[:, 4]
            iy = fused_multiply_add(self.gy1, ob[:, 3], -0.5) + ob[:, 5]
        fw = row["fw"].index_select(0, prow)
        fh = row["fh"].index_select(0, prow)
        self.dpad_x = self.dpad_y = None
        tap_padding = plan.padding_mode
        if plan.padding_mode == "image":
            ix = ix + row["fx"].index_select(0, prow)
            iy = iy + row["fy"].index_select(0, prow)
            tap_padding = "zeros"
        elif plan.mode != "bicubic" and plan.padding_mode != "zeros":
            ix, self.dpad_x = _pad_location(ix, fw, plan.padding_mode, plan.align_corners)
            iy, self.dpad_y = _pad_location(iy, fh, plan.padding_mode, plan.align_corners)
            tap_padding = "zeros"  # locations are inside; an edge's far tap has weight 0
        x0, wx, dwx = _taps_1d(ix, plan.mode)
        y0, wy, dwy = _taps_1d(iy, plan.mode)
        frame = row["frame"].index_select(0, prow)
        self.xoff, self.wx, self.dwx = self._axis(x0, wx, dwx, fw, s_w, tap_padding, plan.align_corners)
        yoff, self.wy, self.dwy = self._axis(y0, wy, dwy, fh, s_h, tap_padding, plan.align_corners)
        self.yoff = [frame + y for y in yoff]

    @staticmethod
    def _axis(first, w, dw, size, stride, padding, align_corners):
        offs, ws, dws = [], [], []
        for k in range(len(w)):
            idx, valid = _bound(first + k, size, padding, align_corners)
            offs.append(idx * stride)
            if valid is None:
                ws.append(w[k])
                dws.append(dw[k])
            else:
                ws.append(w[k] * valid)
                dws.append(dw[k] * valid)
        return offs, ws, dws

    def taps(self, derivatives: bool = True):
        """Yield ``(offset, weight, dweight_dx, dweight_dy)`` per tap, ``grid_sample``'s order.

        Without ``derivatives`` the last two are ``None`` (and not computed).
        """
        for m, yoff in enumerate(self.yoff):
            for k, xoff in enumerate(self.xoff):
                weight = self.wy[m] * self.wx[k]
                if not derivatives:
                    yield yoff + xoff, weight, None, None
                    continue
                yield yoff + xoff, weight, self.wy[m] * self.dwx[k], self.dwy[m] * self.wx[k]


def _store(values: Tensor, dtype: torch.dtype) -> Tensor:
    """Round computed values back to the buffer dtype (uint8: round half to even, clamp)."""
    if dtype == torch.uint8:
        return values.round().clamp(0, 255).to(torch.uint8)
    return values.to(dtype)


def _channel_views(flat: Tensor, channels: int, c_stride: int) -> list[Tensor]:
    """1-D views of ``flat`` shifted to each channel (offsets then address one channel)."""
    n = flat.numel()
    return [flat.narrow(0, c * c_stride, n - c * c_stride) for c in range(channels)]


def _flat(buffer: Tensor) -> Tensor:
    """A 1-D view over the dense storage of ``buffer`` (a fresh dense tensor)."""
    return buffer.as_strided((buffer.numel(),), (1,))


def eager_forward(images: Tensor, params: Tensor, plan: WarpPlan, need_loc: bool) -> tuple[Tensor, list[Tensor]]:
    """The eager kernel's forward: the warped batch and what its backward needs.

    ``params`` ``[K, 14]``: the per-object parameters in processing order (see
    ``_warp.object_params``), in the compute dtype; the kernel builds its location
    tables from them (:class:`_Locations`). With ``need_loc`` the two derivatives of every
    sampled value (``[C * pixels]`` each, compute dtype) are kept for the location
    gradient; otherwise nothing (two empty tensors).
    """
    compute_dtype = params.dtype
    work = torch.empty_strided(images.shape, plan.strides, dtype=images.dtype, device=images.device)
    work.copy_(images)  # the working copy: the only copy of the batch
    loc = _Locations(plan, params)
    tables = loc.tables
    views = _channel_views(_flat(work), plan.channels, plan.strides[1])
    shape = (plan.channels, plan.total)
    dvdx = torch.zeros(shape, dtype=compute_dtype, device=work.device) if need_loc else None
    dvdy = torch.zeros(shape, dtype=compute_dtype, device=work.device) if need_loc else None
    results: list[tuple[Tensor, Tensor]] = []
    for level in plan.chunks:
        for bounds in level:  # a level reads (parallel: every level reads), then writes
            ch = _Chunk(plan, tables, bounds)
            p0, p1 = bounds[2], bounds[3]
            acc = torch.zeros(plan.channels, p1 - p0, dtype=compute_dtype, device=work.device)
            for off, w, wdx, wdy in ch.taps(need_loc):
                for c, view in enumerate(views):
                    vals = view.index_select(0, off).to(compute_dtype)
                    acc[c].addcmul_(w, vals)
                    if dvdx is not None and dvdy is not None:
                        dvdx[c, p0:p1].addcmul_(wdx, vals)
                        dvdy[c, p0:p1].addcmul_(wdy, vals)
            results.append((ch.out, _store(acc, work.dtype)))
            del ch, acc  # free this chunk's temporaries before building the next
        if not plan.parallel:
            _write(views, results)
            results = []
    _write(views, results)  # parallel: in level order, so the higher index wins
    if dvdx is None or dvdy is None:
        return work, [params.new_empty(0), params.new_empty(0)]
    return work, [dvdx.reshape(-1), dvdy.reshape(-1)]


def eager_backward(
    grad_out: Tensor, images: Tensor, params: Tensor, plan: WarpPlan, saved: list[Tensor],
    need_img: bool, need_loc: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The eager kernel's backward: ``(grad_images, grad_params)`` (``None`` where not needed).

    Walks the levels in reverse over one gradient buffer (compute dtype, plan strides).
    """
    loc = _Locations(plan, params)
    tables = loc.tables
    dtype = params.dtype
    g_buf = torch.empty_strided(grad_out.shape, plan.strides, dtype=dtype, device=grad_out.device)
    g_buf.copy_(grad_out)
    views = _channel_views(_flat(g_buf), plan.channels, plan.strides[1])
    grads = [torch.zeros_like(t) for t in tables] if need_loc else None
    derivs = (saved[0].view(plan.channels, -1), saved[1].view(plan.channels, -1)) if need_loc else None
    pending: list[tuple[tuple[int, int, int, int], Tensor, int]] = []
    for lvl in range(len(plan.chunks) - 1, -1, -1):
        # gradient of this level's outputs; the state before it reaches them only via
        # reads. Only the offsets are needed here: chunks are rebuilt when scattering,
        # so that no more than one chunk's temporaries are alive at a time.
        for b in plan.chunks[lvl]:
            out = _chunk_out(plan, b)
            g = torch.stack([v.index_select(0, out) for v in views])
            for v in views:
                v.index_fill_(0, out, 0)
            pending.append((b, g, lvl))
        if not plan.parallel or lvl == 0:  # parallel: every level read the input
            _scatter(pending, views, grads, derivs, plan, tables, need_img)
            pending = []
    grad_images = g_buf.to(images.dtype) if need_img else None
    return grad_images, (loc.param_grads(grads) if grads is not None else None)


class _Locations:
    """The eager kernel's location tables, built from the per-object parameters.

    ``tables``: per patch column ``u * theta[0, 0]`` and ``u * theta[1, 0]``, per patch
    row ``v * theta[0, 1]`` and ``v * theta[1, 1]`` (``u = base * k + c``: ``F.affine_grid``'s
    base coordinates, bit for bit, mapped onto the continuous box), per object
    ``theta[:, 2]``, the unnormalize scales and the float-box offsets. The compiled
    kernel builds the same tables with the same arithmetic (``Locations`` in
    ``csrc/warp_cpu.cpp``).
    """

    def __init__(self, plan: WarpPlan, params: Tensor) -> None:
        num, dev, dtype = params.shape[0], params.device, params.dtype
        row_obj = plan.row["obj"]
        width, height = plan.objects[:, 2].to(dev), plan.objects[:, 3].to(dev)
        row_idx = torch.arange(row_obj.numel(), device=dev) - (torch.cumsum(height, 0) - height)[row_obj]
        col_obj = torch.repeat_interleave(torch.arange(num, device=dev), width)
        col_idx = torch.arange(col_obj.numel(), device=dev) - (torch.cumsum(width, 0) - width)[col_obj]
        self.col_obj, self.row_obj = col_obj, row_obj
        self.col_base = base_grid(col_idx, width[col_obj], plan.align_corners, dtype)
        self.row_base = base_grid(row_idx, height[row_obj], plan.align_corners, dtype)
        q = params.detach()
        self.params = q
        self.u = self.col_base * q[col_obj, KX] + q[col_obj, CX]
        self.v = self.row_base * q[row_obj, KY] + q[row_obj, CY]
        self.tables = (
            self.u * q[col_obj, T00], self.u * q[col_obj, T10], self.v * q[row_obj, T01],
            self.v * q[row_obj, T11], q[:, LOCATION_PARAMS],
        )

    def param_grads(self, grads: list[Tensor]) -> Tensor:
        """The gradient of ``params`` from those of the five tables (the chain rule)."""
        g_col_x, g_col_y, g_row_x, g_row_y, g_obj = grads
        q = self.params
        out = torch.zeros_like(q)
        gu = g_col_x * q[self.col_obj, T00] + g_col_y * q[self.col_obj, T10]
        cols = torch.stack([g_col_x * self.u, g_col_y * self.u, gu * self.col_base, gu], 1)
        out[:, [T00, T10, KX, CX]] = torch.zeros_like(q[:, :4]).index_add_(0, self.col_obj, cols)
        gv = g_row_x * q[self.row_obj, T01] + g_row_y * q[self.row_obj, T11]
        rows = torch.stack([g_row_x * self.v, g_row_y * self.v, gv * self.row_base, gv], 1)
        out[:, [T01, T11, KY, CY]] = torch.zeros_like(q[:, :4]).index_add_(0, self.row_obj, rows)
        out[:, LOCATION_PARAMS] = g_obj
        return out


def _write(views: list[Tensor], results: list[tuple[Tensor, Tensor]]) -> None:
    for out, stored in results:
        for c, view in enumerate(views):
            view.index_copy_(0, out, stored[c])


def _chunk_out(plan: WarpPlan, bounds: tuple[int, int, int, int]) -> Tensor:
    """Output offsets of a chunk's pixels (the first lines of ``_Chunk``, alone)."""
    r0, r1, p0, p1 = bounds
    row = plan.row
    dev = row["len"].device
    prow = torch.repeat_interleave(torch.arange(r0, r1, device=dev), row["len"][r0:r1], output_size=p1 - p0)
    jj = torch.arange(p0, p1, device=dev) - row["pix"].index_select(0, prow)
    return row["out"].index_select(0, prow) + jj * plan.strides[3]


def _scatter(pending, views, grads, derivs, plan: WarpPlan, tables, need_img: bool) -> None:
    """Route output gradients to the sampled locations and to the pixels that were read."""
    for b, g, lvl in pending:
        ch = _Chunk(plan, tables, b)
        if grads is not None:
            _location_grads(ch, g, derivs[0][:, b[2] : b[3]], derivs[1][:, b[2] : b[3]], grads)
        # values read here came from the input or (sequential) from earlier levels' writes
        if need_img or (lvl > 0 and not plan.parallel):
            for off, w, _, _ in ch.taps(derivatives=False):
                for c, v in enumerate(views):
                    v.index_add_(0, off, w * g[c])
        del ch


def _location_grads(ch: _Chunk, g: Tensor, dvdx: Tensor, dvdy: Tensor, grads: list[Tensor]) -> None:
    """Reduce d(loss)/d(location) of a chunk onto the column / row / object tables."""
    g_col_x, g_col_y, g_row_x, g_row_y, g_obj = grads
    gix = (g * dvdx).sum(0)
    giy = (g * dvdy).sum(0)
    if ch.dpad_x is not None:
        gix = gix * ch.dpad_x
        giy = giy * ch.dpad_y
    # ix = (gx + 1) * scale + off (- 0.5);  gx = col + row + t02
    dgx = gix * ch.scale_x
    dgy = giy * ch.scale_y
    g_col_x.index_add_(0, ch.col, dgx)
    g_col_y.index_add_(0, ch.col, dgy)
    g_row_x.index_add_(0, ch.prow, dgx)
    g_row_y.index_add_(0, ch.prow, dgy)
    per_obj = torch.stack([dgx, dgy, gix * ch.gx1, giy * ch.gy1, gix, giy], 1)
    g_obj.index_add_(0, ch.ro, per_obj)


# --- the paste's eager kernel (``augpatch.ops.paste``)
#
# A paste is the warp's sampling with the destination and the source decoupled: every
# output pixel of a destination box computes the location it reads (the warp's
# ``_Chunk``), samples the *source* frame there (the source box's pixels, or with
# ``padding_mode="image"`` the whole source image), optionally samples the object's alpha
# with the same map, and composites ``alpha * new + (1 - alpha) * below`` into one working
# copy of the batch, level by level (objects whose destination boxes overlap in one image
# are on successive levels). The plan is a :class:`~augpatch.ops.plan.PastePlan`.


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


def eager_paste_forward(
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


def eager_paste_backward(
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


class _EagerWarp(WarpKernel):
    def saved_dtypes(self, image_dtype, compute_dtype, padding_mode):
        return compute_dtype, compute_dtype

    def forward(self, images, params, plan, need_loc):
        return eager_forward(images, params, plan, need_loc)

    def backward(self, grad, images, params, plan, saved, need_img, need_loc):
        return eager_backward(grad, images, params, plan, saved, need_img, need_loc)


class _EagerPaste(PasteKernel):
    def forward(self, images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff):
        return eager_paste_forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)

    def backward(self, grad, sources, params, plan, alpha, aparams, aplan, saved, need_img, need_src,
                 need_loc, need_alpha):
        return eager_paste_backward(grad, sources, params, plan, alpha, aparams, aplan, saved, need_img,
                                    need_src, need_loc, need_alpha)


class EagerBackend(Backend):
    """Vectorised PyTorch operations: any device, always available (the fall-back)."""

    name = "eager"
    auto = {"*": 100}
    choosable = ("cpu", "cuda")
    kernels = ("warp", "paste")
    warp_kernel = _EagerWarp()
    paste_kernel = _EagerPaste()

    def kernel(self, op, device, strict):
        if op == "warp":
            return self.warp_kernel
        if op == "paste":
            return self.paste_kernel
        return super().kernel(op, device, strict)
