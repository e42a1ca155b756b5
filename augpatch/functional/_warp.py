"""``warp_patches``: affine-transform every object's patch and paste it back, in one pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from augpatch.functional._checks import (
    MODES,
    OVERLAPS,
    PADDING_MODES,
    BoxesLike,
    check_boxes,
    check_choice,
    check_images,
    check_obj_to_img,
    check_same_device,
    check_theta,
    flatten_box_list,
)
from augpatch.functional._kernel import compiled_ops
from augpatch.functional._plan import overlap_edges, schedule_levels
from augpatch.functional._sampler import PatchWarp, WarpPlan, compiled_warp

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

    Execution: for one or two integer boxes (float/float64 images, patch-relative
    padding) the reference computation itself runs (one ``grid_sample`` per crop);
    otherwise objects are scheduled into levels (boxes of one image that overlap go
    to successive levels) and every level is one pass: on the CPU by a compiled C++
    kernel (built on first use, about a minute; ``AUGPATCH_CPU_KERNEL`` /
    :func:`set_cpu_kernel` choose it or the eager kernel), on CUDA by vectorised
    PyTorch operations. All follow ``grid_sample``'s arithmetic, so results agree to
    float rounding; the last bit of an object's pixels may differ between a call with
    few and with many objects, or between the two kernels.

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
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners must be a bool, got {type(align_corners).__name__}")
    batch, _, height, width = images.shape
    if isinstance(boxes, (list, tuple)):
        if obj_to_img is not None:
            raise ValueError("obj_to_img must be omitted when boxes is a list of per-image tensors")
        boxes, obj_to_img = flatten_box_list(boxes, batch)
    else:
        boxes = check_boxes(boxes)
    num = boxes.shape[0]
    theta = check_theta(theta, num)
    obj_to_img = check_obj_to_img(obj_to_img, num, batch)
    check_same_device(images=images, boxes=boxes, theta=theta, obj_to_img=obj_to_img)
    compute = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    if num == 0:
        return images.clone(memory_format=torch.preserve_format)

    theta = theta.to(compute)
    fboxes = boxes.to(compute)
    fboxes = torch.stack(
        [fboxes[:, 0].clamp(0, width), fboxes[:, 1].clamp(0, height),
         fboxes[:, 2].clamp(0, width), fboxes[:, 3].clamp(0, height)], 1
    )
    if obj_to_img is None:
        obj_to_img = torch.zeros(num, dtype=torch.long, device=boxes.device)

    # ---- N-sized metadata on the CPU (one transfer) ------------------------
    meta = torch.cat([boxes.detach().double(), obj_to_img.double()[:, None]], 1).cpu()
    if padding_mode == "image":
        theta_cpu = theta.detach().double().cpu()
    cl = meta[:, :4].clone()
    cl[:, 0::2] = cl[:, 0::2].clamp(0, width)
    cl[:, 1::2] = cl[:, 1::2].clamp(0, height)
    # pixel j is inside iff x1 <= j + .5 < x2  <=>  ceil(x1 - .5) <= j < ceil(x2 - .5)
    pix = torch.ceil(cl - 0.5).long()
    pix[:, 0::2] = pix[:, 0::2].clamp(0, width)
    pix[:, 1::2] = pix[:, 1::2].clamp(0, height)
    n_w = (pix[:, 2] - pix[:, 0]).clamp(min=0)
    n_h = (pix[:, 3] - pix[:, 1]).clamp(min=0)
    alive = ((n_w > 0) & (n_h > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return images.clone(memory_format=torch.preserve_format)
    img_of = meta[alive, 4].long()
    write = pix[alive]

    if _few_integer_boxes(alive, cl, boxes, images, padding_mode):
        return _warp_few(images, pix, alive, img_of, theta, mode, padding_mode, align_corners, overlap)

    # ---- schedule ----------------------------------------------------------
    read = None
    if padding_mode == "image":
        read = _source_rects(cl[alive], pix[alive], theta_cpu[alive], align_corners, height, width)
    # parallel: every object reads the original batch and writes go out level by level
    # (so that the higher index wins where boxes overlap); sequential: levels as in _plan
    src, dst, strict = overlap_edges(write, read if overlap == "sequential" else None, img_of)
    level = schedule_levels(alive.numel(), src, dst, strict)
    # by level, then image (so that a level's rows come in runs of one image), then index
    order = torch.sort(level * batch + img_of, stable=True).indices
    obj = alive[order]  # original object index, in processing order
    plan = _build_plan(
        obj, pix, n_w, n_h, meta[:, 4].long(), level[order], images, mode, padding_mode,
        align_corners, overlap == "parallel",
    )
    params = _object_params(fboxes, theta, obj.to(images.device), pix, n_w, n_h, obj,
                            align_corners, compute)
    ops = compiled_ops(images.device)
    if ops is not None:
        return compiled_warp(ops, images, params, plan)
    return PatchWarp.apply(images, params, plan, compute)


def _build_plan(
    obj: Tensor, pix: Tensor, n_w: Tensor, n_h: Tensor, img: Tensor, level: Tensor,
    images: Tensor, mode: str, padding_mode: str, align_corners: bool, parallel: bool,
) -> WarpPlan:
    """The per-object plan: patches in processing order and the levels' bounds (CPU, ``K``-sized)."""
    objects = torch.stack([pix[obj, 0], pix[obj, 1], n_w[obj], n_h[obj], img[obj]], 1)
    counts = torch.bincount(level, minlength=int(level[-1]) + 1)  # level is sorted
    return WarpPlan(
        objects=objects, level_objects=[0, *torch.cumsum(counts, 0).tolist()], mode=mode,
        padding_mode=padding_mode, align_corners=align_corners, strides=_work_strides(images),
        channels=images.shape[1], size=(images.shape[2], images.shape[3]), parallel=parallel,
        device=images.device,
    )


def _work_strides(images: Tensor) -> tuple[int, int, int, int]:
    """Strides of ``images.clone(memory_format=torch.preserve_format)``."""
    if _dense_non_overlapping(images):
        return tuple(images.stride())  # type: ignore[return-value]
    return tuple(torch.empty(images.shape, device="meta").stride())  # type: ignore[return-value]


def _dense_non_overlapping(t: Tensor) -> bool:
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape, strict=True) if sz != 1)
    expected = 1
    for st, sz in dims:
        if st != expected:
            return False
        expected *= sz
    return True


def _object_params(
    boxes: Tensor, theta: Tensor, obj_dev: Tensor, pix: Tensor, n_w: Tensor, n_h: Tensor,
    obj: Tensor, align_corners: bool, dtype: torch.dtype,
) -> Tensor:
    """The differentiable per-object parameters ``[K, 14]`` every sampling location comes from.

    In processing order (``obj``): ``theta`` flattened (6), then per axis (x, y) the map
    ``k``, ``c`` of ``F.affine_grid``'s base coordinates onto the continuous box (``u =
    base * k + c``; for integer boxes exactly the identity), the ``grid_sample``
    unnormalize scale (half the box extent) and the float-box offset of the patch inside
    its pixels. The kernel builds its location tables from them with the reference's
    arithmetic (``PatchWarp``, ``csrc/warp_cpu.cpp``), so the locations it computes are
    those of the reference loop.
    """
    dev = boxes.device
    box = boxes.index_select(0, obj_dev)
    lo, hi = box[:, :2], box[:, 2:]
    size = torch.stack([n_w[obj], n_h[obj]], 1).to(dev)
    origin = pix[obj, :2].to(dev).to(dtype)  # first pixel of the patch
    ext = hi - lo
    if align_corners:
        ext, span = (ext - 1).clamp(min=0), (size - 1).to(dtype)
    else:
        span = size.to(dtype)
    centre = (lo + hi) / 2
    pos = ext > 0
    safe = torch.where(pos, ext, 1.0)
    scale = torch.where(pos, span / safe, 0.0)
    shift = torch.where(pos, 2 * ((origin + size.to(dtype) / 2) - centre) / safe, 0.0)
    # an axis without extent (a box at most one pixel thick with align_corners) reads
    # its pixel, as grid_sample on a one-pixel crop does
    offset = torch.where(pos | (not align_corners), lo - origin, 0.0)
    return torch.cat([theta.index_select(0, obj_dev).reshape(-1, 6), scale, shift, ext / 2, offset], 1)


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
    xs = torch.stack([pix[:, 0] + 0.5, pix[:, 0] + n_w - 0.5], 1)  # first / last column centre
    ys = torch.stack([pix[:, 1] + 0.5, pix[:, 1] + n_h - 0.5], 1)
    u = torch.where(hx[:, None] > 0, (xs - cx[:, None]) / hx[:, None].clamp(min=1e-12), 0.0)
    v = torch.where(hy[:, None] > 0, (ys - cy[:, None]) / hy[:, None].clamp(min=1e-12), 0.0)
    uu = u[:, :, None].expand(-1, 2, 2).reshape(-1, 4)
    vv = v[:, None, :].expand(-1, 2, 2).reshape(-1, 4)
    su = theta[:, 0, 0, None] * uu + theta[:, 0, 1, None] * vv + theta[:, 0, 2, None]
    sv = theta[:, 1, 0, None] * uu + theta[:, 1, 1, None] * vv + theta[:, 1, 2, None]
    px = cx[:, None] + hx[:, None] * su - 0.5  # pixel-index units of the image
    py = cy[:, None] + hy[:, None] * sv - 0.5
    margin = 3  # bicubic reaches floor(x) - 1 .. floor(x) + 2; one more for rounding
    rect = torch.stack([
        torch.floor(px.min(1).values) - margin, torch.floor(py.min(1).values) - margin,
        torch.floor(px.max(1).values) + margin + 1, torch.floor(py.max(1).values) + margin + 1,
    ], 1)
    rect[:, 0::2] = rect[:, 0::2].clamp(0, width)
    rect[:, 1::2] = rect[:, 1::2].clamp(0, height)
    return rect.long()


def _few_integer_boxes(alive: Tensor, clipped: Tensor, boxes: Tensor, images: Tensor, padding_mode: str) -> bool:
    """Whether the direct per-crop computation applies (and is the cheaper one)."""
    return (
        alive.numel() <= _FEW_OBJECTS
        and padding_mode != "image"
        and images.dtype in (torch.float32, torch.float64)
        and not boxes.requires_grad
        and bool((clipped[alive] == clipped[alive].round()).all())
    )


def _warp_few(
    images: Tensor, pix: Tensor, alive: Tensor, img_of: Tensor, theta: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str,
) -> Tensor:
    """The SPEC's loop for at most ``_FEW_OBJECTS`` integer boxes (exact by definition)."""
    out = images
    channels = images.shape[1]
    for b, n in zip(img_of.tolist(), alive.tolist(), strict=True):
        x0, y0, x1, y1 = pix[n].tolist()
        src = out if overlap == "sequential" else images
        patch = src[b : b + 1, :, y0:y1, x0:x1]
        grid = F.affine_grid(theta[n : n + 1], [1, channels, y1 - y0, x1 - x0], align_corners=align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        out = out.clone(memory_format=torch.preserve_format)
        out[b, :, y0:y1, x0:x1] = new[0]
    return out
