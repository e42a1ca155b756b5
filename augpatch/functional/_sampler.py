"""The sampling kernel behind :func:`augpatch.functional.warp_patches`.

``PatchSampler`` reads every output pixel of every box from a *frame* (the
object's patch, or the whole image for ``padding_mode="image"``) with the same
arithmetic as ``F.grid_sample`` and writes it into one working copy of the
batch, level by level (a level is a set of objects that can be applied at the
same time, see ``_plan.py``). Everything is vectorised over pixels; the only
Python loops are over levels, taps (1, 4 or 16) and channels.

Its backward is written by hand: it walks the levels in reverse order over one
gradient buffer, so the cost of the backward pass grows with the total box area
plus one copy of the batch, like the forward pass (autograd through an
out-of-place paste per level would copy the whole batch per level).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_CUBIC_A = -0.75  # the constant F.grid_sample and F.interpolate use for bicubic


@dataclass
class SamplePlan:
    """Per-pixel addressing of one warp, ordered by level.

    All index tensors are int64 element offsets into the working buffer, whose
    strides are ``strides`` (``[B, C, H, W]`` order).

    Attributes:
        out_off: ``[P]`` offset of the output pixel (channel 0).
        frame_off: ``[P]`` offset of the read frame's top-left pixel (channel 0).
        frame_w, frame_h: ``[P]`` frame size in pixels (int64).
        levels: ``L + 1`` boundaries into the pixel dimension, one range per level.
        mode: ``"bilinear" | "nearest" | "bicubic"``.
        tap_padding: how out-of-frame taps are read: ``"zeros"`` (read 0),
            ``"border"`` or ``"reflection"`` (bicubic only: the tap index is
            clipped or reflected, as ``grid_sample`` does).
        align_corners: selects the reflection rule of bicubic taps.
        strides: element strides of the working buffer.
        channels: number of channels ``C``.
    """

    out_off: Tensor
    frame_off: Tensor
    frame_w: Tensor
    frame_h: Tensor
    levels: list[int]
    mode: str
    tap_padding: str
    align_corners: bool
    strides: tuple[int, int, int, int]
    channels: int


def _taps_1d(coord: Tensor, mode: str) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """First tap index, tap weights and their derivatives along one axis."""
    if mode == "nearest":
        first = torch.round(coord)  # round half to even, as nearbyint in grid_sample
        one = torch.ones_like(coord)
        return first.long(), [one], [torch.zeros_like(coord)]
    lo = torch.floor(coord)
    t = coord - lo
    if mode == "bilinear":
        # grid_sample's CPU kernel: w = x - floor(x) for the far tap, 1 - w for the near one
        return lo.long(), [1 - t, t], [-torch.ones_like(t), torch.ones_like(t)]
    a = _CUBIC_A
    t1, t2, t3 = t + 1, 1 - t, 2 - t
    # cubic convolution 2 for |x| in (1, 2), 1 for |x| <= 1
    w0 = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1
    w3 = ((a * t3 - 5 * a) * t3 + 8 * a) * t3 - 4 * a
    d0 = (3 * a * t1 - 10 * a) * t1 + 8 * a
    d1 = (3 * (a + 2) * t - 2 * (a + 3)) * t
    d2 = -((3 * (a + 2) * t2 - 2 * (a + 3)) * t2)
    d3 = -((3 * a * t3 - 10 * a) * t3 + 8 * a)
    return (lo - 1).long(), [w0, w1, w2, w3], [d0, d1, d2, d3]


def _bound_taps(index: Tensor, size: Tensor, padding: str, align_corners: bool) -> tuple[Tensor, Tensor]:
    """Map tap indices into ``[0, size)`` and say which ones read a real pixel."""
    if padding == "zeros":
        valid = (index >= 0) & (index < size)
        return index.clamp(min=0).minimum(size - 1), valid
    if padding == "border":
        return index.clamp(min=0).minimum(size - 1), torch.ones_like(index, dtype=torch.bool)
    # reflection of integer indices: about -0.5 and size-0.5 (symmetric) without
    # align_corners, about 0 and size-1 with it; period 2*size or 2*(size-1)
    if align_corners:
        period = (2 * (size - 1)).clamp(min=1)
        r = torch.remainder(index, period)
        r = torch.minimum(r, period - r)
        r = torch.where(size == 1, torch.zeros_like(r), r)
    else:
        period = 2 * size
        r = torch.remainder(index, period)
        r = torch.minimum(r, period - 1 - r)
    return r.clamp(min=0).minimum(size - 1), torch.ones_like(index, dtype=torch.bool)


def _level_taps(plan: SamplePlan, ix: Tensor, iy: Tensor, sl: slice):
    """Yield ``(offset [P], weight [P], dweight_dx [P], dweight_dy [P])`` for every tap."""
    _, c_stride, h_stride, w_stride = plan.strides
    del c_stride
    fw, fh, base = plan.frame_w[sl], plan.frame_h[sl], plan.frame_off[sl]
    x0, wx, dwx = _taps_1d(ix, plan.mode)
    y0, wy, dwy = _taps_1d(iy, plan.mode)
    xs = [_bound_taps(x0 + k, fw, plan.tap_padding, plan.align_corners) for k in range(len(wx))]
    ys = [_bound_taps(y0 + m, fh, plan.tap_padding, plan.align_corners) for m in range(len(wy))]
    for m, (ky, vy) in enumerate(ys):
        row = base + ky * h_stride
        for k, (kx, vx) in enumerate(xs):
            valid = (vx & vy).to(ix.dtype)
            yield row + kx * w_stride, wy[m] * wx[k] * valid, wy[m] * dwx[k] * valid, dwy[m] * wx[k] * valid


def _flat(buffer: Tensor) -> Tensor:
    """A 1-D view over the dense storage of ``buffer`` (a fresh dense tensor)."""
    return buffer.as_strided((buffer.numel(),), (1,))


class _Gather:
    """Read / write / accumulate ``[P, C]`` pixel values at element offsets of a flat buffer.

    Uses ``index_select`` / ``index_copy_`` / ``index_add_`` on 1-D views, which are
    several times faster on the CPU than advanced indexing and ``index_put_``.
    """

    def __init__(self, plan: SamplePlan, device: torch.device) -> None:
        self.channels = plan.channels
        self.coffs = torch.arange(plan.channels, device=device) * plan.strides[1]

    def index(self, offsets: Tensor) -> Tensor:
        if self.channels == 1:
            return offsets
        return (offsets[:, None] + self.coffs).reshape(-1)

    def read(self, flat: Tensor, offsets: Tensor) -> Tensor:
        return flat.index_select(0, self.index(offsets)).view(-1, self.channels)

    def write(self, flat: Tensor, offsets: Tensor, values: Tensor) -> None:
        flat.index_copy_(0, self.index(offsets), values.reshape(-1))

    def add(self, flat: Tensor, offsets: Tensor, values: Tensor) -> None:
        flat.index_add_(0, self.index(offsets), values.reshape(-1))


def _store(values: Tensor, dtype: torch.dtype) -> Tensor:
    """Round computed values back to the buffer dtype (uint8: round half to even, clamp)."""
    if dtype == torch.uint8:
        return values.round().clamp(0, 255).to(torch.uint8)
    return values.to(dtype)


class PatchSampler(torch.autograd.Function):
    """``out = PatchSampler.apply(images, ix, iy, plan, compute_dtype)``.

    ``ix``/``iy`` ``[P]`` are the sampling locations of every output pixel in
    frame pixel units (``grid_sample`` index space after its padding transform
    for bilinear/nearest). Returns the warped batch (same strides as a
    ``clone`` of ``images``). Gradients flow to ``images`` and to ``ix``/``iy``.
    """

    @staticmethod
    def forward(ctx, images: Tensor, ix: Tensor, iy: Tensor, plan: SamplePlan, compute_dtype: torch.dtype):  # type: ignore[override]
        # the working copy (the only copy of the batch), laid out as the plan expects
        work = torch.empty_strided(images.shape, plan.strides, dtype=images.dtype, device=images.device)
        work.copy_(images)
        flat = _flat(work)
        io = _Gather(plan, work.device)
        need_coord_grad = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        dxs, dys = [], []
        for start, stop in zip(plan.levels[:-1], plan.levels[1:], strict=True):
            sl = slice(start, stop)
            lx, ly = ix[sl], iy[sl]
            acc = torch.zeros(stop - start, plan.channels, dtype=compute_dtype, device=work.device)
            dx = torch.zeros_like(acc) if need_coord_grad else None
            dy = torch.zeros_like(acc) if need_coord_grad else None
            for off, w, wdx, wdy in _level_taps(plan, lx, ly, sl):
                vals = io.read(flat, off).to(compute_dtype)
                acc += w[:, None] * vals
                if need_coord_grad:
                    dx += wdx[:, None] * vals
                    dy += wdy[:, None] * vals
            io.write(flat, plan.out_off[sl], _store(acc, work.dtype))
            dxs.append(dx)
            dys.append(dy)
        if need_coord_grad:
            ctx.dvdx = torch.cat(dxs) if dxs else None
            ctx.dvdy = torch.cat(dys) if dys else None
        ctx.plan = plan
        ctx.compute_dtype = compute_dtype
        ctx.work_meta = (work.shape, work.stride(), images.dtype)
        ctx.save_for_backward(ix, iy)
        return work

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        plan: SamplePlan = ctx.plan
        ix, iy = ctx.saved_tensors
        shape, stride, image_dtype = ctx.work_meta
        need_img, need_x, need_y = ctx.needs_input_grad[:3]
        grad_dtype = ctx.compute_dtype
        g_buf = torch.empty_strided(shape, stride, dtype=grad_dtype, device=grad_out.device)
        g_buf.copy_(grad_out)
        flat = _flat(g_buf)
        io = _Gather(plan, g_buf.device)
        grad_ix = torch.zeros_like(ix) if need_x else None
        grad_iy = torch.zeros_like(iy) if need_y else None
        bounds = list(zip(plan.levels[:-1], plan.levels[1:], strict=True))
        for lvl in range(len(bounds) - 1, -1, -1):
            start, stop = bounds[lvl]
            sl = slice(start, stop)
            out_idx = io.index(plan.out_off[sl])
            g = flat.index_select(0, out_idx).view(-1, plan.channels)
            # these pixels were overwritten: the earlier state reaches the output only through reads
            flat.index_fill_(0, out_idx, 0)
            if need_x:
                grad_ix[sl] = (g * ctx.dvdx[sl]).sum(1)
            if need_y:
                grad_iy[sl] = (g * ctx.dvdy[sl]).sum(1)
            # the values read by this level came from the input or from earlier levels'
            # writes: route the gradient there (needed for theta too when images need none)
            if need_img or lvl > 0:
                for off, w, _, _ in _level_taps(plan, ix[sl], iy[sl], sl):
                    io.add(flat, off, w[:, None] * g)
        grad_images = g_buf.to(image_dtype) if need_img else None
        return grad_images, grad_ix, grad_iy, None, None
