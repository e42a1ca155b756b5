"""``warp_patches``: affine-transform every object's patch and paste it back, in one pass."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from augpatch.functional._checks import (
    MODES,
    OVERLAPS,
    PADDING_MODES,
    BoxesLike,
    check_bool,
    check_choice,
    check_images,
    check_index_range,
    check_same_device,
    check_theta,
    compute_dtype,
    parse_boxes,
    values_checked_later,
)
from augpatch.functional._plan import overlap_edges, schedule_levels
from augpatch.functional._sampler import PARAM_COLUMNS, WarpPlan

# With this few objects, running the reference computation itself (one affine_grid +
# grid_sample per crop) is cheaper than building a plan; the result is the same.
_FEW_OBJECTS = 2


def warp_patches(
    images: Tensor,
    boxes: BoxesLike,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    overlap: str = "sequential",
) -> Tensor:
    """Warp each object's patch by its own affine ``theta`` and paste it back.

    For an integer box ``n`` of image ``b`` the result inside the box is exactly::

        patch = current[b:b+1, :, y1:y2, x1:x2]
        grid = F.affine_grid(theta[n:n+1], patch.shape, align_corners=align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)

    computed for all objects in one vectorised, differentiable pass (no Python
    loop over objects, nothing of size ``N x image``). Pixels outside every box
    are copied unchanged; the inputs are never modified.

    Args:
        images: ``[B, C, H, W]`` float16/bfloat16/float32/float64 or uint8, any
            memory format (kept in the output).
        boxes: ``[N, 4]`` ``xyxy`` boxes in pixels (float or int; ``x`` along the
            width), or a list of ``B`` tensors ``[N_i, 4]`` (``obj_to_img`` is
            then implied and must be omitted). Pixel ``(i, j)`` (centre
            ``(j + .5, i + .5)``) belongs to a box iff ``x1 <= j + .5 < x2`` and
            ``y1 <= i + .5 < y2``, after clipping the box to the canvas. A box
            with no pixel leaves the image unchanged.
        theta: ``[N, 2, 3]`` or ``[N, 6]``: ``F.affine_grid`` matrices in each
            patch's normalised coordinates (output location -> input location).
        obj_to_img: ``[N]`` int64 image index of each box; may be omitted when
            ``B == 1``.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (as ``grid_sample``).
        padding_mode: ``"zeros"``, ``"border"``, ``"reflection"`` (relative to
            the patch, as ``grid_sample`` on the cropped patch) or ``"image"``
            (read the object's real surroundings from the whole image; outside
            the image reads zeros).
        align_corners: as in ``F.affine_grid``/``F.grid_sample``.
        overlap: ``"sequential"`` (objects applied in index order, each reading
            the image as the earlier ones left it: the SPEC's loop) or
            ``"parallel"`` (all read the original image; the higher index wins
            where boxes overlap). Identical when no two boxes of an image overlap,
            except with ``padding_mode="image"``, where an object also reads around
            its box and so sees earlier objects' output in ``sequential`` mode.

    Returns:
        ``[B, C, H, W]`` tensor of the dtype and memory format of ``images``.

    Float boxes: normalised coordinates follow the continuous box (``u = 2(x -
    x1)/(x2 - x1) - 1``; with ``align_corners=True`` the centres of the first
    and last pixel, ``x1 + .5`` and ``x2 - .5``, are ``-1`` and ``1``), padding
    is relative to the box's pixels, and gradients reach the box coordinates
    through the sampling locations (membership is piecewise constant). uint8
    and half-precision images are computed in float32 and rounded back after
    every paste (uint8: round half to even, clamp to ``[0, 255]``); uint8 has no
    gradient. Gradients w.r.t. ``images``, ``theta`` and float ``boxes`` equal
    those of the loop; the backward pass is as cheap as the forward. It is not itself
    differentiable: gradients taken with ``create_graph=True`` are right, but
    differentiating them again raises a ``RuntimeError`` (no double backward).

    Execution: the warp is the registered operator ``torch.ops.augpatch.warp`` (it also
    runs inside ``torch.compile`` / ``torch.export``; value checks run inside it, on the
    real tensors). It schedules objects into levels (boxes of one image that overlap go
    to successive levels) and runs every level as one pass: on the CPU by a compiled C++
    kernel (built on first use, about a minute; ``AUGPATCH_CPU_KERNEL`` /
    :func:`set_cpu_kernel` choose it or the eager kernel, :func:`active_kernel` says which
    runs), on CUDA by Triton kernels (``AUGPATCH_CUDA_KERNEL`` / :func:`set_cuda_kernel`;
    the eager kernel of vectorised PyTorch operations is the fall-back). In eager mode, one or two integer
    boxes (float/float64 images, patch-relative padding) run the reference computation
    itself (one ``grid_sample`` per crop). All follow ``grid_sample``'s arithmetic:
    float64 results equal the loop's to about 1e-12, float32 ones to float rounding, and
    a nearest-neighbour location within rounding of a tie may pick either neighbour. One
    small device-to-host copy per call (the boxes and image indices the plan needs).

    Example:
        >>> import torch
        >>> from augpatch.functional import warp_patches
        >>> images = torch.rand(2, 3, 64, 64)
        >>> boxes = torch.tensor([[8, 8, 40, 24], [10, 30, 50, 60]])
        >>> flip = torch.tensor([[-1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3)
        >>> out = warp_patches(images, boxes, flip, torch.tensor([0, 1]), mode="nearest")
        >>> torch.equal(out[0, :, 8:24, 8:40], images[0, :, 8:24, 8:40].flip(-1))
        True
    """
    images = check_images(images)
    check_choice("mode", mode, MODES)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_choice("overlap", overlap, OVERLAPS)
    check_bool("align_corners", align_corners)
    # values are checked by the operator (or _warp_few) in one transfer; the list form's
    # per-element checks run here, so that an error names the element
    with values_checked_later(not isinstance(boxes, (list, tuple))):
        boxes, obj_to_img, _ = parse_boxes(boxes, obj_to_img, images.shape[0])
        num = boxes.shape[0]
        theta = check_theta(theta, num)
    check_same_device(images=images, boxes=boxes, theta=theta, obj_to_img=obj_to_img)
    if num == 0:
        return images.clone(memory_format=torch.preserve_format)
    if obj_to_img is None:
        obj_to_img = torch.zeros(num, dtype=torch.long, device=boxes.device)
    if not torch.compiler.is_compiling():
        few = _warp_few(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap)
        if few is not None:
            return few
    need_loc = torch.is_grad_enabled() and (theta.requires_grad or boxes.requires_grad)
    return torch.ops.augpatch.warp(
        images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap, need_loc
    )[0]


class Prepared(NamedTuple):
    """What the operator runs: the plan, the objects in processing order, their parameters."""

    plan: WarpPlan
    objects: Tensor  # [K, 6] int64 (CPU): x0, y0, width, height, image, index in the call
    params: Tensor  # [K, 14] compute dtype, on the images' device


def prepare(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str,
) -> Prepared | None:
    """Plan a warp (real tensors only): clip, schedule levels, build the parameter table.

    ``None`` when no box has a pixel (the image is unchanged). One transfer of the
    ``N``-sized metadata to the CPU; nothing of size ``N x image``.
    """
    batch, _, height, width = images.shape
    meta, theta_cpu = metadata(boxes, theta, obj_to_img, batch, padding_mode == "image")
    pix = _pixel_rects(meta[:, :4], height, width)
    n_w, n_h = pix[:, 2] - pix[:, 0], pix[:, 3] - pix[:, 1]
    alive = ((n_w > 0) & (n_h > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return None
    img_of = meta[alive, 4].long()
    read = None
    if padding_mode == "image":
        cl = _clip(meta[:, :4], height, width)
        read = _source_rects(cl[alive], pix[alive], theta_cpu[alive],
                             align_corners, height, width)
    # parallel: every object reads the original batch and writes go out level by level
    # (so that the higher index wins where boxes overlap); sequential: levels as in _plan
    src, dst, strict = overlap_edges(pix[alive], read if overlap == "sequential" else None, img_of)
    level = schedule_levels(alive.numel(), src, dst, strict)
    # by level, then image (so that a level's rows come in runs of one image), then index
    order = torch.sort(level * batch + img_of, stable=True).indices
    obj = alive[order]  # original object index, in processing order
    objects = torch.stack([pix[obj, 0], pix[obj, 1], n_w[obj], n_h[obj], img_of[order], obj], 1)
    counts = torch.bincount(level[order], minlength=int(level.max()) + 1)
    plan = make_plan(objects, [0, *torch.cumsum(counts, 0).tolist()], images, mode, padding_mode,
                     align_corners, overlap)
    params = object_params(boxes, theta, objects, align_corners, compute_dtype(images.dtype),
                           (height, width))
    return Prepared(plan, objects, params)


def make_plan(
    objects: Tensor, level_objects: list[int], images: Tensor, mode: str, padding_mode: str,
    align_corners: bool, overlap: str,
) -> WarpPlan:
    """The kernels' plan from the objects in processing order and the levels' bounds."""
    return WarpPlan(
        objects=objects[:, :5].contiguous(), level_objects=level_objects, mode=mode, padding_mode=padding_mode,
        align_corners=align_corners, strides=work_strides(images), channels=images.shape[1],
        size=(images.shape[2], images.shape[3]), parallel=overlap == "parallel", device=images.device,
    )


def work_strides(images: Tensor) -> tuple[int, int, int, int]:
    """Strides of the warp's output: those of ``torch.empty_like(images)`` (preserve format)."""
    return tuple(torch.empty_like(images, device="meta").stride())  # type: ignore[return-value]


def _clip(boxes: Tensor, height: int, width: int) -> Tensor:
    """Boxes clipped to the canvas ``[0, W] x [0, H]``."""
    return torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                        boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], 1)


def _pixel_rects(boxes: Tensor, height: int, width: int) -> Tensor:
    """``[N, 4]`` int64 half-open pixel rects of the boxes (CPU, float64 boxes)."""
    # pixel j is inside iff x1 <= j + .5 < x2  <=>  ceil(x1 - .5) <= j < ceil(x2 - .5)
    pix = torch.ceil(_clip(boxes, height, width) - 0.5).long()
    pix[:, 0::2] = pix[:, 0::2].clamp(0, width)
    pix[:, 1::2] = pix[:, 1::2].clamp(0, height)
    pix[:, 2:] = torch.maximum(pix[:, 2:], pix[:, :2])
    return pix


def object_params(
    boxes: Tensor, theta: Tensor, objects: Tensor, align_corners: bool, dtype: torch.dtype,
    size: tuple[int, int],
) -> Tensor:
    """The differentiable per-object parameters ``[K, 14]`` every sampling location comes from.

    ``objects`` ``[K, 6]`` (see :class:`Prepared`) gives the processing order and each
    patch's pixels. Columns (``_sampler.PARAM_COLUMNS``, by name): ``theta`` flattened (6),
    then per axis (x, y) the map ``k``, ``c`` of ``F.affine_grid``'s base coordinates onto
    the continuous box (``u = base * k + c``; for integer boxes exactly the identity), the
    ``grid_sample`` unnormalize scale (half the box extent) and the float-box offset of the
    patch inside its pixels. The kernels build their location tables from them with the
    reference's arithmetic, so the locations they compute are those of the reference loop.
    Differentiable w.r.t. ``boxes`` and ``theta`` (the operator's backward uses that).
    """
    dev = boxes.device
    height, width = size
    obj_dev = objects[:, 5].to(dev)
    box = _clip(boxes.to(dtype), height, width).index_select(0, obj_dev)
    lo, hi = box[:, :2], box[:, 2:]
    extent = objects[:, 2:4].to(dev)
    origin = objects[:, :2].to(dev).to(dtype)  # first pixel of the patch
    ext = hi - lo
    if align_corners:
        ext, span = (ext - 1).clamp(min=0), (extent - 1).to(dtype)
    else:
        span = extent.to(dtype)
    centre = (lo + hi) / 2
    pos, reads = _extents(ext, span, align_corners)
    safe = torch.where(pos, ext, 1.0)
    scale = torch.where(pos, span / safe, 0.0)
    shift = torch.where(pos, 2 * ((origin + extent.to(dtype) / 2) - centre) / safe, 0.0)
    # an axis without extent (with align_corners: a patch one pixel thick) reads its
    # pixel, as grid_sample on a one-pixel crop does
    offset = torch.where(reads, lo - origin, 0.0)
    half = torch.where(reads, ext, 0.0) / 2
    rows = theta.to(dtype).index_select(0, obj_dev).reshape(-1, 6)
    return torch.cat([rows, scale, shift, half, offset], 1)  # in _PARAM_BLOCKS' order


def _extents(ext: Tensor, span: Tensor, align_corners: bool) -> tuple[Tensor, Tensor]:
    """Per object and axis: ``(the box has extent, locations move across the patch)``.

    The first decides the normalised coordinates ``u`` of the output pixels (0 on an axis
    without extent). The second decides the unnormalisation onto the patch's pixels:
    with ``align_corners=True``, ``grid_sample`` maps every location of a crop one pixel
    thick onto that pixel (``(x + 1) / 2 * (size - 1)`` is 0), so such an axis
    (``span == 0``) reads its pixel even where a fractional box is wider than one pixel
    and ``u`` (which also feeds the other axis through ``theta``) is not 0. SPEC's
    reference loop samples that one-pixel crop.
    """
    pos = ext > 0
    return pos, (pos & (span > 0)) if align_corners else torch.ones_like(pos)


# object_params concatenates these blocks of columns (x, y per block after theta's six);
# checked against the one definition of the layout, PARAM_COLUMNS, when this module loads
_PARAM_BLOCKS = ("t00", "t01", "t02", "t10", "t11", "t12", "kx", "ky", "cx", "cy", "sx", "sy", "ox", "oy")
if _PARAM_BLOCKS != PARAM_COLUMNS:  # pragma: no cover - a layout change must update object_params
    raise ImportError("augpatch: object_params does not follow PARAM_COLUMNS")


def object_params_backward(
    grad: Tensor, boxes: Tensor, theta: Tensor, objects: Tensor, align_corners: bool,
    size: tuple[int, int], need_boxes: bool, need_theta: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of :func:`object_params` w.r.t. ``boxes`` and ``theta``, given ``grad [K, 14]``.

    The chain rule of :func:`object_params` written out (the operator's backward runs
    below autograd); ``clamp`` passes the gradient on its closed interval, as PyTorch's.
    """
    dev, dtype = grad.device, grad.dtype
    height, width = size
    obj_dev = objects[:, 5].to(dev)
    grad_theta = None
    if need_theta:
        grad_theta = torch.zeros(theta.shape[0], 6, dtype=dtype, device=dev)
        rows = grad[:, [PARAM_COLUMNS.index(f"t{i}{j}") for i in "01" for j in "012"]]
        grad_theta = grad_theta.index_add_(0, obj_dev, rows).reshape(theta.shape).to(theta.dtype)
    if not need_boxes:
        return None, grad_theta
    raw = boxes.detach().to(dtype)
    box = _clip(raw, height, width).index_select(0, obj_dev)
    lo, hi = box[:, :2], box[:, 2:]
    extent = objects[:, 2:4].to(dev)
    origin = objects[:, :2].to(dev).to(dtype)
    ext0 = hi - lo
    if align_corners:
        ext, span, ext_mask = (ext0 - 1).clamp(min=0), (extent - 1).to(dtype), ext0 - 1 >= 0
    else:
        ext, span, ext_mask = ext0, extent.to(dtype), torch.ones_like(ext0, dtype=torch.bool)
    pos, reads = _extents(ext, span, align_corners)
    safe = torch.where(pos, ext, 1.0)
    g_scale, g_shift, g_half, g_off = (grad[:, [PARAM_COLUMNS.index(f"{c}{a}") for a in "xy"]]
                                       for c in "kcso")
    arm = origin + extent.to(dtype) / 2 - (lo + hi) / 2
    g_ext = torch.where(pos, -g_scale * span / safe**2 - 2 * g_shift * arm / safe**2, 0.0)
    g_ext = g_ext + torch.where(reads, g_half / 2, 0.0)
    g_ext0 = torch.where(ext_mask, g_ext, 0.0)
    g_centre = torch.where(pos, -2 * g_shift / safe, 0.0)
    g_lo = g_centre / 2 + torch.where(reads, g_off, 0.0) - g_ext0
    g_hi = g_centre / 2 + g_ext0
    g_box = torch.zeros(boxes.shape[0], 4, dtype=dtype, device=dev)
    g_box.index_add_(0, obj_dev, torch.cat([g_lo, g_hi], 1))
    limit = torch.tensor([width, height, width, height], dtype=dtype, device=dev)
    g_box = torch.where((raw >= 0) & (raw <= limit), g_box, 0.0)
    return g_box.to(boxes.dtype), grad_theta


def _source_rects(
    boxes: Tensor, pix: Tensor, theta: Tensor, align_corners: bool, height: int, width: int
) -> Tensor:
    """Conservative pixel rect each object reads with ``padding_mode="image"`` (CPU, float64)."""
    n_w = (pix[:, 2] - pix[:, 0]).double()
    n_h = (pix[:, 3] - pix[:, 1]).double()
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    hx = (boxes[:, 2] - boxes[:, 0]) / 2
    hy = (boxes[:, 3] - boxes[:, 1]) / 2
    if align_corners:
        hx, hy = (hx - 0.5).clamp(min=0), (hy - 0.5).clamp(min=0)
    # half extents of the locations read: an axis one pixel thick with align_corners reads
    # that pixel (see _extents); u and v still come from the box
    read_x = torch.where(n_w > 1, hx, 0.0) if align_corners else hx
    read_y = torch.where(n_h > 1, hy, 0.0) if align_corners else hy
    xs = torch.stack([pix[:, 0] + 0.5, pix[:, 0] + n_w - 0.5], 1)  # first / last column centre
    ys = torch.stack([pix[:, 1] + 0.5, pix[:, 1] + n_h - 0.5], 1)
    u = torch.where(hx[:, None] > 0, (xs - cx[:, None]) / hx[:, None].clamp(min=1e-12), 0.0)
    v = torch.where(hy[:, None] > 0, (ys - cy[:, None]) / hy[:, None].clamp(min=1e-12), 0.0)
    uu = u[:, :, None].expand(-1, 2, 2).reshape(-1, 4)
    vv = v[:, None, :].expand(-1, 2, 2).reshape(-1, 4)
    su = theta[:, 0, 0, None] * uu + theta[:, 0, 1, None] * vv + theta[:, 0, 2, None]
    sv = theta[:, 1, 0, None] * uu + theta[:, 1, 1, None] * vv + theta[:, 1, 2, None]
    px = cx[:, None] + read_x[:, None] * su - 0.5  # pixel-index units of the image
    py = cy[:, None] + read_y[:, None] * sv - 0.5
    margin = 3  # bicubic reaches floor(x) - 1 .. floor(x) + 2; one more for rounding
    rect = torch.stack([
        torch.floor(px.min(1).values) - margin, torch.floor(py.min(1).values) - margin,
        torch.floor(px.max(1).values) + margin + 1, torch.floor(py.max(1).values) + margin + 1,
    ], 1)
    rect[:, 0::2] = rect[:, 0::2].clamp(0, width)
    rect[:, 1::2] = rect[:, 1::2].clamp(0, height)
    return rect.long()


def metadata(
    boxes: Tensor, theta: Tensor, obj_to_img: Tensor, batch: int, with_theta: bool
) -> tuple[Tensor, Tensor | None]:
    """The value checks and the ``N``-sized metadata on the CPU, in one transfer.

    Returns ``[N, 5]`` float64 (``x1, y1, x2, y2, image``) and, ``with_theta``, ``theta``
    ``[N, 2, 3]`` float64. Raises the clear errors of ``_checks`` for NaN/Inf boxes or
    ``theta`` and image indices outside ``[0, batch)``: the operator's checks, which also
    run inside a compiled graph.
    """
    num = boxes.shape[0]
    parts = [boxes.detach().double().reshape(-1), obj_to_img.double(),
             torch.stack([torch.isfinite(boxes.detach()).all(),
                          torch.isfinite(theta.detach()).all()]).double()]
    if with_theta:
        parts.append(theta.detach().double().reshape(-1))
    flat = torch.cat(parts).cpu()  # the one device-to-host copy of a call
    box_ok, theta_ok = flat[5 * num : 5 * num + 2].tolist()
    if not box_ok:
        raise ValueError("boxes contains NaN or Inf values")
    if not theta_ok:
        raise ValueError("theta contains NaN or Inf values")
    meta = torch.cat([flat[: 4 * num].view(num, 4), flat[4 * num : 5 * num, None]], 1)
    check_index_range("obj_to_img", meta[:, 4], batch)
    return meta, (flat[5 * num + 2 :].view(num, 2, 3) if with_theta else None)


def _warp_few(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str,
) -> Tensor | None:
    """The SPEC's loop itself for at most ``_FEW_OBJECTS`` integer boxes (exact by definition).

    ``None`` where it does not apply (more objects, float boxes, padding ``"image"``, uint8
    or half images): the operator runs then. Eager calls only (it reads the boxes' values).
    """
    if (
        boxes.shape[0] > _FEW_OBJECTS
        or padding_mode == "image"
        or images.dtype not in (torch.float32, torch.float64)
        or boxes.requires_grad
    ):
        return None
    height, width = images.shape[2:]
    meta, _ = metadata(boxes, theta, obj_to_img, images.shape[0], False)
    clipped = _clip(meta[:, :4], height, width)
    if not bool((clipped == clipped.round()).all()):
        return None
    pix = _pixel_rects(meta[:, :4], height, width)
    out = images
    channels = images.shape[1]
    for n, (x0, y0, x1, y1) in enumerate(pix.tolist()):
        if x1 <= x0 or y1 <= y0:
            continue
        b = int(meta[n, 4])
        src = out if overlap == "sequential" else images
        patch = src[b : b + 1, :, y0:y1, x0:x1]
        grid = F.affine_grid(theta[n : n + 1].to(images.dtype), [1, channels, y1 - y0, x1 - x0],
                             align_corners=align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        out = out.clone(memory_format=torch.preserve_format)
        out[b, :, y0:y1, x0:x1] = new[0]
    return out if out is not images else images.clone(memory_format=torch.preserve_format)
