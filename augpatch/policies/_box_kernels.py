"""The box kernels behind :mod:`augpatch.policies.functional` (its public module).

The registry of ops (:mod:`augpatch.policies._table`) builds on these, and
:func:`augpatch.policies.functional.box_only_theta` builds on the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

import augpatch.functional as AF
from augpatch.functional.checks import (
    OVERLAPS,
    check_boxes,
    check_choice,
    check_images,
    check_obj_to_img,
    fill_tensor,
)
from augpatch.functional.warp import warp_in_place
from augpatch.ops import compiled_ops
from augpatch.ops.plan import (
    make_plan,
    object_params,
    pixel_rects,
    work_strides,
)
from augpatch.ops.schedule import overlap_edges, schedule_levels
from augpatch.ops.settings import kernel_for
from augpatch.ops.values import compute_dtype

__all__ = [
    "box_pixel_rects",
    "equalize_boxes",
    "fill_rects",
    "solarize_add",
    "solarize_boxes",
    "warp_in_boxes",
]


# --------------------------------------------------------------------------- pixels


def box_pixel_rects(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Half-open pixel rects ``[N, 4]`` int64 ``(j0, i0, j1, i1)`` of the pixels in each box.

    Pixel ``(i, j)`` is in box ``n`` iff ``j0 <= j < j1`` and ``i0 <= i < i1``; boxes are
    clipped to the canvas ``size = (H, W)``; an empty box gets ``j1 == j0`` or ``i1 == i0``.

    Example:
        >>> box_pixel_rects(torch.tensor([[1.0, 2.0, 4.6, 9.0], [-3.0, 0.0, 2.0, 2.0]]), (8, 8))
        tensor([[1, 2, 5, 8],
                [0, 0, 2, 2]])
    """
    return pixel_rects(boxes.detach().double(), *size)  # the warp's own rule, one home


def _rect_pixels(rects: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel of ``rects [K, 4]``: ``(rect index [P], local row [P], local col [P])``."""
    widths = rects[:, 2] - rects[:, 0]
    areas = widths * (rects[:, 3] - rects[:, 1])
    k = torch.repeat_interleave(torch.arange(rects.shape[0], device=rects.device), areas)
    start = torch.cumsum(areas, 0) - areas
    local = torch.arange(k.numel(), device=rects.device) - start[k]
    w_k = widths[k]
    return k, local // w_k, local % w_k


def _level_selections(rects: Tensor, img: Tensor) -> list[Tensor]:
    """The rects with pixels, by level: overlapping rects of one image go to successive
    levels, in index order (one level when no two rects of an image overlap)."""
    alive = ((rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])).nonzero().flatten()
    if alive.numel() == 0:
        return []
    src, dst, strict = overlap_edges(rects[alive].cpu(), None, img[alive].cpu())
    level = schedule_levels(alive.numel(), src, dst, strict).to(rects.device)
    return [alive[level == lv] for lv in range(int(level.max()) + 1)]


def _prepare(
    images: Tensor, boxes: Tensor, obj_to_img: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    images = check_images(images)
    boxes = check_boxes(boxes)
    n = boxes.shape[0]
    o2i = check_obj_to_img(obj_to_img, n, images.shape[0])
    if o2i is None:
        o2i = torch.zeros(n, dtype=torch.long, device=boxes.device)
    rects = box_pixel_rects(boxes, (images.shape[2], images.shape[3]))
    return images, rects.to(images.device), o2i.to(images.device)


def _compiled(images: Tensor, *others: Tensor, any_dtype: bool = False) -> Any | None:
    """The compiled box kernels (``csrc/box_ops_cpu.cpp``) for ``images``, or ``None``.

    They serve images on the CPU when nothing (``images``, ``others``) needs a gradient
    (they have no autograd) and augpatch's compiled CPU kernel is in use
    (``AUGPATCH_CPU_KERNEL`` / ``set_cpu_kernel``: not ``eager``): the photometric ones
    uint8 images only, the canvas copies of ``warp_in_boxes`` any dtype. They act in
    place, one pass over the boxes' pixels, and equal the torch code bit for bit
    (tested); the torch code serves every other case (and other devices).
    """
    if images.device.type != "cpu":
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in (images, *others)):
        return None
    if not any_dtype and images.dtype != torch.uint8:
        return None
    return compiled_ops(images.device)


def _run_compiled(
    ops: Any, name: str, images: Tensor, rects: Tensor, o2i: Tensor, overlap: str,
    inplace: bool, *extra: Tensor,
) -> Tensor:
    """Run compiled box kernel ``name`` (``dst, src, rects, rect_to_img, *extra``)."""
    check_choice("overlap", overlap, OVERLAPS)
    out = images if inplace else images.clone(memory_format=torch.preserve_format)
    # sequential: each box reads what the earlier ones wrote; parallel: the input as given
    src = out if overlap == "sequential" else (images.clone(memory_format=torch.preserve_format)
                                               if inplace else images)
    getattr(ops, name)(out, src, rects.contiguous(), o2i.long(), *extra)
    return out


@dataclass
class _Level:
    """The pixels of one level of non-overlapping rects, rect by rect in row-major order.

    ``sel [L]``: the rects (indices into all rects); ``k [P]``: each pixel's rect (index
    into all rects); ``local [P]`` (index into ``sel``), ``row [P]`` / ``col [P]``: its
    position inside its rect.
    """

    sel: Tensor
    k: Tensor
    local: Tensor
    row: Tensor
    col: Tensor


def _flat_index(t: Tensor, b: Tensor, y: Tensor, x: Tensor) -> Tensor | None:
    """Storage offsets ``[P, C]`` of pixels ``(b, y, x)`` of a dense ``[B, C, H, W]`` tensor.

    ``None`` when ``t`` is not dense (its storage is not exactly its elements).
    """
    if t.numel() == 0 or not (
        t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)
    ):
        return None
    sb, sc, sh, sw = t.stride()
    base = b * sb + y * sh + x * sw
    return base[:, None] + torch.arange(t.shape[1], device=t.device) * sc


class _Pixels:
    """Read and write the pixels ``(b, y, x)`` of a ``[B, C, H, W]`` tensor as ``[P, C]``."""

    def __init__(self, t: Tensor, b: Tensor, y: Tensor, x: Tensor) -> None:
        self.at = (b, y, x)
        self.flat = _flat_index(t, b, y, x)

    def read(self, t: Tensor) -> Tensor:
        if self.flat is None:
            b, y, x = self.at
            return t[b, :, y, x]
        storage = t.as_strided((t.numel(),), (1,))
        return storage.index_select(0, self.flat.flatten()).view(self.flat.shape)

    def write(self, t: Tensor, values: Tensor) -> None:
        if self.flat is None:
            b, y, x = self.at
            t[b, :, y, x] = values
        else:
            t.as_strided((t.numel(),), (1,)).index_copy_(0, self.flat.flatten(), values.flatten())


def _apply_in_boxes(
    images: Tensor,
    rects: Tensor,
    obj_to_img: Tensor,
    fn: Callable[[Tensor, _Level], Tensor],
    overlap: str,
    inplace: bool = False,
) -> Tensor:
    """Replace the pixels of each rect by ``fn(values [P, C], level)``, level by level.

    Only the rects' pixels are read and written (no pass over whole images), so the cost
    follows the boxes' total area. ``overlap="sequential"``: each level reads what the
    earlier levels wrote; ``"parallel"``: every level reads ``images`` as given and the
    levels are written in order (the higher index wins).
    """
    check_choice("overlap", overlap, OVERLAPS)
    out = images if inplace else images.clone(memory_format=torch.preserve_format)
    jobs = []
    for sel in _level_selections(rects, obj_to_img):
        local, row, col = _rect_pixels(rects[sel])
        r = rects[sel][local]
        pixels = _Pixels(out, obj_to_img[sel][local], r[:, 1] + row, r[:, 0] + col)
        lvl = _Level(sel=sel, k=sel[local], local=local, row=row, col=col)
        # parallel: read every level before anything is written
        jobs.append((pixels, lvl, pixels.read(images) if overlap == "parallel" else None))
    for pixels, lvl, values in jobs:
        if values is None:
            values = pixels.read(out)  # [P, C]
        pixels.write(out, fn(values, lvl).to(out.dtype))
    return out


# --------------------------------------------------------------------------- box ops


def equalize_boxes(
    images: Tensor,
    boxes: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    overlap: str = "sequential",
    inplace: bool = False,
) -> Tensor:
    """Histogram-equalise the pixels of each box, per channel (``Equalize_Only_BBoxes``).

    Each box gets exactly ``torchvision.transforms.v2.functional.equalize`` of its own
    crop (PIL's algorithm: the lookup table of the box's histogram; a channel whose
    pixels all but the brightest value's count less than 255 is left unchanged). Float
    images are quantised to uint8 and back as ``equalize`` does.

    Args:
        images: ``[B, C, H, W]`` uint8 or float (``[0, 1]``) images.
        boxes: ``[N, 4]`` ``xyxy`` boxes; obj_to_img: ``[N]`` (omit for ``B == 1``).
        overlap: ``"sequential"`` or ``"parallel"`` (see the module docstring).
        inplace: write into ``images`` instead of a copy.

    Returns:
        ``[B, C, H, W]`` (a new tensor unless ``inplace``); pixels outside the boxes are
        unchanged.

    Example:
        >>> img = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8)
        >>> out = equalize_boxes(img, torch.tensor([[0, 0, 4, 4]]))
        >>> torch.equal(out[..., :4, :4], TF.equalize(img[..., :4, :4]))
        True
    """
    images, rects, o2i = _prepare(images, boxes, obj_to_img)
    ops = _compiled(images)
    if ops is not None:
        return _run_compiled(ops, "box_equalize_", images, rects, o2i, overlap, inplace)
    dtype = images.dtype
    num = rects.shape[0]

    def fn(values: Tensor, lvl: _Level) -> Tensor:
        k = lvl.k
        v = TF.to_dtype(values, torch.uint8, scale=True).long()  # [P, C]
        c = v.shape[1]
        slot = (k[:, None] * c + torch.arange(c, device=v.device)) * 256 + v
        hist = torch.bincount(slot.flatten(), minlength=num * c * 256).reshape(num, c, 256)
        cum = hist.cumsum(-1)
        top = cum.argmax(-1, keepdim=True)  # the brightest value present
        non_max = cum[..., -1:] - hist.gather(-1, top)
        step = torch.div(non_max, 255, rounding_mode="floor")
        lut = torch.div(cum[..., :-1] + step // 2, step.clamp(min=1), rounding_mode="floor")
        lut = torch.cat((torch.zeros_like(lut[..., :1]), lut.clamp(0, 255)), -1)  # [K, C, 256]
        rows = (k[:, None] * c + torch.arange(c, device=v.device)) * 256
        equalised = lut.flatten()[rows + v]
        keep_as_is = (step == 0).reshape(num, c)[k]  # [P, C]
        out = torch.where(keep_as_is, v, equalised).to(torch.uint8)
        return TF.to_dtype(out, dtype, scale=True)

    return _apply_in_boxes(images, rects, o2i, fn, overlap, inplace)


def solarize_boxes(
    images: Tensor,
    boxes: Tensor,
    threshold: Tensor | float,
    obj_to_img: Tensor | None = None,
    *,
    overlap: str = "sequential",
    inplace: bool = False,
) -> Tensor:
    """Invert the pixels at or above each box's threshold (``Solarize_Only_BBoxes``).

    ``torchvision.transforms.v2.functional.solarize`` of each box's crop with its own
    threshold (``where(x >= threshold, invert(x), x)``); a threshold above the largest
    value (256 for uint8, the threshold of level 10) leaves the box unchanged. (The
    reference inverts every pixel there: its uint8 ``image < 256`` wraps 256 to 0.)

    Args:
        images: ``[B, C, H, W]`` uint8 or float images.
        boxes: ``[N, 4]`` boxes; obj_to_img: ``[N]``.
        threshold: a number or ``[N]``, in the images' units (0-255 for uint8, 0-1 for
            float).
        overlap: ``"sequential"`` or ``"parallel"``.
        inplace: write into ``images`` instead of a copy.

    Example:
        >>> img = torch.full((1, 1, 4, 4), 200, dtype=torch.uint8)
        >>> solarize_boxes(img, torch.tensor([[0, 0, 2, 4]]), 128)[0, 0, 0].tolist()
        [55, 55, 200, 200]
    """
    images, rects, o2i = _prepare(images, boxes, obj_to_img)
    thr = torch.as_tensor(threshold, dtype=torch.float64, device=images.device)
    thr = torch.broadcast_to(thr, (rects.shape[0],))
    ops = _compiled(images)
    if ops is not None:
        return _run_compiled(ops, "box_solarize_", images, rects, o2i, overlap, inplace,
                             thr.contiguous())

    def fn(values: Tensor, lvl: _Level) -> Tensor:
        t = thr[lvl.k][:, None]
        return torch.where(values.double() >= t, TF.invert(values), values)

    return _apply_in_boxes(images, rects, o2i, fn, overlap, inplace)


def fill_rects(
    images: Tensor,
    rects: Tensor,
    rect_to_img: Tensor,
    fill: float | Sequence[float] | Tensor,
    *,
    inplace: bool = False,
) -> Tensor:
    """Fill half-open pixel rects ``(j0, i0, j1, i1)`` of the given images with a constant.

    Args:
        images: ``[B, C, H, W]``.
        rects: ``[M, 4]`` int64 pixel rects (clipped to the canvas here).
        rect_to_img: ``[M]`` image of each rect.
        fill: a number or one value per channel, in the images' units.
        inplace: write into ``images`` instead of a copy.

    Returns:
        ``[B, C, H, W]`` (a new tensor unless ``inplace``): every pixel in any rect is
        ``fill`` (cast to the images' dtype; uint8 rounds it), the others unchanged.

    Example:
        >>> out = fill_rects(torch.zeros(1, 1, 4, 4), torch.tensor([[1, 0, 3, 2]]),
        ...                  torch.tensor([0]), 7.0)
        >>> out[0, 0].tolist()[:2]
        [[0.0, 7.0, 7.0, 0.0], [0.0, 7.0, 7.0, 0.0]]
    """
    images = check_images(images)
    h, w = images.shape[2], images.shape[3]
    value = fill_tensor(fill, images.shape[1]).to(images.device)
    if images.dtype == torch.uint8:
        value = value.round().clamp(0, 255)
    out = images if inplace else images.clone(memory_format=torch.preserve_format)
    lim = torch.tensor([w, h, w, h], device=rects.device)
    r = torch.minimum(rects.clamp(min=0), lim)
    r = torch.cat((r[:, :2], torch.maximum(r[:, 2:], r[:, :2])), 1)
    ops = _compiled(out)
    if ops is not None:
        ops.fill_rects_(out, r.long().contiguous(), rect_to_img.long(), value.to(torch.uint8))
        return out
    k, row, col = _rect_pixels(r)
    if k.numel():
        b = rect_to_img.to(k.device)[k]
        pixels = _Pixels(out, b, r[k, 1] + row, r[k, 0] + col)
        pixels.write(out, value.to(images.dtype).expand(k.numel(), -1))
    return out


def solarize_add(images: Tensor, addition: float, threshold: float) -> Tensor:
    """The reference's ``SolarizeAdd``: add ``addition`` to the pixels below ``threshold``.

    ``where(x < threshold, clip(x + addition), x)``; ``addition`` and ``threshold`` in the
    images' units (uint8: 0-255, float: 0-1; clipped to that range). torchvision has no
    such kernel.

    Example:
        >>> solarize_add(torch.tensor([[[[10, 200]]]], dtype=torch.uint8), 60, 128).tolist()
        [[[[70, 200]]]]
    """
    images = check_images(images)
    if images.dtype == torch.uint8:
        added = (images.to(torch.int16) + int(round(addition))).clamp(0, 255).to(torch.uint8)
    else:
        added = (images + addition).clamp(0, 1)
    return torch.where(images < threshold, added, images)


# --------------------------------------------------------------------------- geometry


def warp_in_boxes(
    images: Tensor,
    boxes: Tensor,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    fill: float | Sequence[float] | Tensor | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    overlap: str = "sequential",
    inplace: bool = False,
) -> Tensor:
    """:func:`augpatch.functional.warp_patches` (or ``warp_patches_fill``) touching only the boxes.

    Same result as ``warp_patches(images, boxes, theta, obj_to_img, ...)`` with a
    patch-relative ``padding_mode`` (``"zeros"``, ``"border"``, ``"reflection"``), or as
    :func:`augpatch.functional.warp_patches_fill` when ``fill`` is given; but the cost
    follows the boxes' area: the pixels of each level of non-overlapping boxes are packed
    side by side (a zero column between) into one small canvas, warped, written back.
    Worth it when the boxes cover a small part of the images; ``padding_mode="image"``
    reads around the boxes: use ``warp_patches``.

    Args:
        images: ``[B, C, H, W]``. boxes: ``[N, 4]`` (clipped to the canvas here).
        theta: ``[N, 2, 3]``. obj_to_img: ``[N]``.
        fill: a constant (number or per channel, images' units) read outside each patch
            instead of ``padding_mode``.
        mode, padding_mode, align_corners, overlap: as ``warp_patches``.
        inplace: write into ``images`` instead of a copy.

    Example:
        >>> images = torch.rand(2, 3, 64, 64)
        >>> boxes = torch.tensor([[4.0, 4.0, 20.0, 30.0], [30.0, 10.0, 60.0, 40.0]])
        >>> theta = AF.patch_affine_matrix(boxes, angle=30.0)
        >>> o2i = torch.tensor([0, 1])
        >>> torch.allclose(warp_in_boxes(images, boxes, theta, o2i),
        ...                AF.warp_patches(images, boxes, theta, o2i), atol=1e-6)
        True
    """
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(
            f"warp_in_boxes needs a patch-relative padding_mode ('zeros', 'border', "
            f"'reflection'), got {padding_mode!r}; use warp_patches for 'image'"
        )
    images, rects, o2i = _prepare(images, boxes, obj_to_img)
    patches = AF.clip_boxes(boxes.to(theta.dtype if theta.is_floating_point() else torch.float32),
                            (images.shape[2], images.shape[3])).to(images.device)
    return warp_rects(images, rects, patches, theta.to(images.device).reshape(-1, 2, 3), o2i,
                      fill=fill, mode=mode, padding_mode=padding_mode,
                      align_corners=align_corners, overlap=overlap, inplace=inplace)


def warp_rects(
    images: Tensor, rects: Tensor | None, patches: Tensor, theta: Tensor, obj_to_img: Tensor, *,
    fill: float | Sequence[float] | Tensor | None, mode: str, padding_mode: str,
    align_corners: bool, overlap: str, inplace: bool,
) -> Tensor:
    """:func:`warp_in_boxes` of checked arguments (``DetectionAutoAugment``'s call).

    ``rects [N, 4]``: the boxes' pixel rects (:func:`box_pixel_rects`; ``None``: computed
    here where needed), ``patches [N, 4]`` the boxes clipped to the canvas, ``theta
    [N, 2, 3]``, ``obj_to_img [N]``, all on the images' device; ``padding_mode``
    patch-relative.
    """
    channels = images.shape[1]
    size = (images.shape[2], images.shape[3])
    ops = _compiled(images, patches, theta, any_dtype=True)
    if ops is not None and (fill is None or (mode == "nearest" and images.dtype == torch.uint8
                                             and overlap == "sequential")):
        out = images if inplace else images.clone(memory_format=torch.preserve_format)
        if out.stride() == work_strides(out):
            return warp_in_place(ops, out, patches, theta, obj_to_img, mode, padding_mode,
                                 align_corners, overlap, fill=fill, chunked=True)
        images = out  # a strided view: the canvas path below, on the copy made already
        inplace = True
    if rects is None:
        rects = box_pixel_rects(patches, size).to(images.device)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (images, patches, theta))
    params = None
    if not grad:  # the operator's parameter table of every patch in the images, once
        work_dtype = torch.float32 if images.dtype in (torch.uint8, torch.float16,
                                                       torch.bfloat16) else images.dtype
        r = rects.cpu()
        index = torch.arange(r.shape[0])
        objects = torch.cat((r[:, :2], r[:, 2:] - r[:, :2], torch.zeros_like(index)[:, None],
                             index[:, None]), 1)
        params = object_params(patches, theta, objects, align_corners,
                               compute_dtype(work_dtype), size)

    def layout(sel: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """The rects ``sel``, each one's first canvas column, and the canvas size."""
        r = rects[sel]
        heights, widths = r[:, 3] - r[:, 1], r[:, 2] - r[:, 0]
        left = 1 + torch.cumsum(widths + 1, 0) - (widths + 1)  # a zero column before each patch
        return r, left, (int(heights.max()) + 2, int(left[-1] + widths[-1]) + 1)

    def warp(canvas: Tensor, sel: Tensor, r: Tensor, left: Tensor) -> Tensor:
        if params is not None:
            return _warp_canvas(canvas, params[sel], r, left, fill, mode, padding_mode,
                                align_corners)
        shift = torch.stack((left - r[:, 0], 1 - r[:, 1]), 1).to(patches.dtype)
        cboxes = patches[sel] + shift.repeat(1, 2)
        kw = {"mode": mode, "align_corners": align_corners, "overlap": "parallel"}
        if fill is None:
            return AF.warp_patches(canvas, cboxes, theta[sel], padding_mode=padding_mode, **kw)
        return AF.warp_patches_fill(canvas, cboxes, theta[sel], fill=fill, **kw)

    if ops is None:  # gather the pixels into the canvas and back with index tensors

        def fn(values: Tensor, lvl: _Level) -> Tensor:
            r, left, size = layout(lvl.sel)
            canvas = values.new_zeros((1, channels, *size))
            rows, cols = 1 + lvl.row, left[lvl.local] + lvl.col
            at = _Pixels(canvas, torch.zeros_like(rows), rows, cols)
            at.write(canvas, values)
            return at.read(warp(canvas, lvl.sel, r, left))

        return _apply_in_boxes(images, rects, obj_to_img, fn, overlap, inplace)

    return _warp_in_boxes_compiled(ops, images, rects, obj_to_img, layout, warp, overlap, inplace)


def _warp_canvas(
    canvas: Tensor, params: Tensor, rects: Tensor, left: Tensor,
    fill: float | Sequence[float] | Tensor | None, mode: str, padding_mode: str,
    align_corners: bool,
) -> Tensor:
    """``warp_patches`` (``fill``: ``warp_patches_fill``) of the patches packed in a canvas.

    Patch ``k`` (pixel rect ``rects[k]`` of the images, parameters ``params[k]``: the
    warp operator's table, :func:`augpatch.ops.plan.object_params`, of the patch *in the
    images*, so the result does not depend on where it sits in the canvas) has its pixels
    in the canvas at row 1, column ``left[k]`` (the layout of :func:`warp_in_boxes`:
    apart, so one level). What the warp operator runs, without what a general call needs
    and this one does not (value checks, overlap scheduling, autograd, a blend over the
    whole batch): a plan of one level for the kernel that
    :func:`augpatch.ops.settings.kernel_for` selects. No gradient. With ``fill``, as
    ``warp_patches_fill``: a channel of ones warped along says how much of each sample
    came from inside its patch (uint8 ``nearest``, where a pixel is its source or exactly
    the fill: the values less the fill, modulo 256, are warped, then the fill added).
    ``canvas`` is the caller's scratch: it may be modified.
    """
    r = rects.cpu()
    objects = torch.cat((left.cpu()[:, None], torch.ones_like(r[:, :1]), r[:, 2:] - r[:, :2],
                         torch.zeros_like(r[:, :1])), 1)
    channels = canvas.shape[1]

    def run(work: Tensor, padding: str) -> Tensor:
        plan = make_plan(objects, [0, r.shape[0]], work, mode, padding, align_corners,
                         "parallel")
        return kernel_for(work.device)[1].forward(work, params.to(compute_dtype(work.dtype)),
                                                  plan, False)[0]

    if fill is None:
        return run(canvas, padding_mode)
    value = fill_tensor(fill, channels).to(device=canvas.device, dtype=torch.float32)
    if mode == "nearest" and canvas.dtype == torch.uint8:
        # a pixel is its source or the (rounded) fill: warp the values less the fill
        # (modulo 256: uint8 arithmetic wraps), so that the zero read outside the patch
        # is the fill once it is added back; nearest copies a value exactly (no extra
        # channel, no mask, no float copy of the canvas)
        shift = value.round().clamp(0, 255).to(torch.uint8)[None, :, None, None]
        return run(canvas.sub_(shift), "zeros").add_(shift)
    work = canvas if canvas.dtype in (torch.float32, torch.float64) else canvas.to(torch.float32)
    out = run(torch.cat((work, torch.ones_like(work[:, :1])), 1), "zeros")
    warped, alpha = out[:, :channels], out[:, channels:]
    value = value.to(work.dtype)[None, :, None, None]
    blended = torch.where(alpha == 1, warped, warped + (1 - alpha) * value)
    if canvas.dtype == torch.uint8:
        blended = blended.round().clamp(0, 255)
    return blended.to(canvas.dtype)


def _warp_in_boxes_compiled(
    ops: Any, images: Tensor, rects: Tensor, o2i: Tensor, layout: Callable[..., Any],
    warp: Callable[..., Tensor], overlap: str, inplace: bool,
) -> Tensor:
    """``warp_in_boxes`` with compiled CPU copies of the rects' rows into the canvas and back."""
    check_choice("overlap", overlap, OVERLAPS)
    out = images if inplace else images.clone(memory_format=torch.preserve_format)
    levels = [(sel, *layout(sel)) for sel in _level_selections(rects, o2i)]
    # parallel: every level reads the images as given, before anything is written
    packed = [ops.pack_rects(images, r, o2i[sel], left, *size) if overlap == "parallel" else None
              for sel, r, left, size in levels]
    for (sel, r, left, size), canvas in zip(levels, packed):
        if canvas is None:
            canvas = ops.pack_rects(out, r, o2i[sel], left, *size)
        ops.unpack_rects_(out, warp(canvas, sel, r, left), r, o2i[sel], left)
    return out


def shear_degrees(coefficient: float) -> float:
    """torchvision's shear angle (degrees) of the reference's shear coefficient."""
    return math.degrees(math.atan(coefficient))
