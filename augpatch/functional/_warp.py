"""``warp_patches``: affine-transform every object's patch and paste it back, in one pass."""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import Tensor

from augpatch.functional.checks import (
    MODES,
    OVERLAPS,
    PADDING_MODES,
    BoxesLike,
    check_bool,
    check_choice,
    check_images,
    check_out,
    check_same_device,
    check_theta,
    parse_boxes,
    values_checked_later,
)
from augpatch.functional.warp import warp_in_place
from augpatch.ops import compiled_ops, warp_op
from augpatch.ops.library import call_op, transforms_active
from augpatch.ops.plan import clip_to_canvas, metadata, pixel_rects, work_strides
from augpatch.ops.profiling import region
from augpatch.ops.values import check_image_index
from augpatch.ops.warp import WarpFunction, cpp_autograd_applies, plain_eager, warp_autograd

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
    out: Tensor | None = None,
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
        out: ``None``, or a tensor of the shape, dtype and device of ``images`` to write
            the result into (returned): the same values as without it, bit for bit.
            ``out=images`` warps ``images`` in place; any other ``out`` must share no
            memory with the arguments. No autograd (refused where a tensor requires
            grad, as torch's ``out=``). On the CPU with the compiled kernel, and ``out``
            in the warp's own layout (that of ``torch.empty_like(images)``), the kernel
            writes into ``out`` itself (in place: no copy of the batch); elsewhere, and for
            one or two integer boxes (the reference's own arithmetic, below), the result is
            computed, then copied into ``out`` (also under ``torch.compile``).

    Returns:
        ``[B, C, H, W]`` tensor of the dtype and memory format of ``images`` (``out`` when
        given).

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

    Execution: the warp is the registered operator ``augpatch.ops.warp_op`` (``torch.ops.augpatch.warp_<hash>``; it also
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
        >>> same = images.clone()
        >>> _ = warp_patches(same, boxes, flip, torch.tensor([0, 1]), mode="nearest", out=same)
        >>> torch.equal(same, out)
        True
    """
    if out is not None:
        return _warp_out(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners,
                         overlap, out)
    transformed = transforms_active()  # torch.func: always the operator (the few path reads values)
    with region("checks"):
        few_theta = None if transformed else _few_checked(images, boxes, theta, obj_to_img, mode, padding_mode,
                                                          align_corners, overlap)
        if few_theta is None:
            images, boxes, theta, obj_to_img = _checked(images, boxes, theta, obj_to_img, mode,
                                                        padding_mode, align_corners, overlap)
        else:
            theta = few_theta
    num = boxes.shape[0]
    if num == 0:
        return images.clone(memory_format=torch.preserve_format)
    if not (transformed or torch.compiler.is_compiling()):
        few = _warp_few(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap)
        if few is not None:
            return few
    if obj_to_img is None:
        obj_to_img = torch.zeros(num, dtype=torch.long, device=boxes.device)
    need_loc = torch.is_grad_enabled() and (theta.requires_grad or boxes.requires_grad)
    args = (images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap, need_loc)
    if cpp_autograd_applies(images, boxes, theta, obj_to_img):  # eager CPU, with gradients
        return warp_autograd(*args)
    return call_op(warp_op, WarpFunction, *args)[0]  # torch.func transforms: WarpFunction


def _warp_out(
    images: Tensor, boxes: BoxesLike, theta: Tensor, obj_to_img: Tensor | None, mode: str,
    padding_mode: str, align_corners: bool, overlap: str, out: object,
) -> Tensor:
    """:func:`warp_patches` with ``out=``: checked (:func:`check_out`), then the compiled
    kernel in place on ``out`` where it would run the call (:func:`_in_place_kernel`, and
    not the few-objects path :func:`_warp_few`), else the result computed and copied into
    ``out``."""
    images, boxes, theta, obj_to_img = _checked(images, boxes, theta, obj_to_img, mode,
                                                padding_mode, align_corners, overlap)
    out = check_out(out, images, {"boxes": boxes, "theta": theta, "obj_to_img": obj_to_img})
    ops = _in_place_kernel(images, out)
    # no kernel to write in place: the result, copied; else the few-objects path first, as
    # warp_patches takes it (the reference's own arithmetic; None where it does not apply)
    result = (warp_patches(images, boxes, theta, obj_to_img, mode=mode, padding_mode=padding_mode,
                           align_corners=align_corners, overlap=overlap) if ops is None
              else _warp_few(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap))
    if result is not None:
        return out.copy_(result)
    if not (out.data_ptr() == images.data_ptr() and out.stride() == images.stride()):
        out.copy_(images)
    num = boxes.shape[0]
    if num == 0:
        return out
    if obj_to_img is None:
        obj_to_img = torch.zeros(num, dtype=torch.long, device=boxes.device)
    return warp_in_place(ops, out, boxes, theta.reshape(-1, 2, 3), obj_to_img, mode,
                         padding_mode, align_corners, overlap)


def _in_place_kernel(images: Tensor, out: Tensor) -> object | None:
    """The compiled kernel's operators where :func:`warp_patches` would run it and it can
    write into ``out`` itself: a plain eager call (no tracing, no ``torch.func`` transform)
    on the CPU, the compiled kernel selected, ``out`` in the warp's layout. ``None``
    otherwise. (The caller first tries the few-objects path, :func:`_warp_few`, as
    :func:`warp_patches` does: one or two integer boxes get the reference's own arithmetic,
    which the kernel does not repeat bit for bit; float boxes go to the kernel.)"""
    if (
        images.device.type != "cpu"
        or torch.compiler.is_compiling()
        or transforms_active()
        or not _work_layout(out)
    ):
        return None
    return compiled_ops(images.device)  # the compiled kernel if the CPU setting runs it


def _work_layout(out: Tensor) -> bool:
    """Whether ``out`` has the warp's own strides (``work_strides``: those of
    ``torch.empty_like(out)``): a dense contiguous or channels-last tensor's exactly (which
    ``empty_like`` keeps), else asked of ``work_strides`` (a meta allocation)."""
    b, c, h, w = out.shape
    stride = out.stride()
    if stride == (c * h * w, h * w, w, 1) or stride == (h * w * c, 1, w * c, c):
        return True
    return stride == work_strides(out)


def _checked(
    images: Tensor, boxes: BoxesLike, theta: Tensor, obj_to_img: Tensor | None, mode: str,
    padding_mode: str, align_corners: bool, overlap: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """The argument checks of :func:`warp_patches`: ``(images, boxes [N, 4], theta, obj_to_img)``."""
    images = check_images(images)
    check_choice("mode", mode, MODES)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_choice("overlap", overlap, OVERLAPS)
    check_bool("align_corners", align_corners)
    # values are checked by the operator (or _warp_few) in one transfer; the list form's
    # per-element checks run here, so that an error names the element
    with values_checked_later(not isinstance(boxes, (list, tuple))):
        boxes, obj_to_img, _ = parse_boxes(boxes, obj_to_img, images.shape[0])
        theta = check_theta(theta, boxes.shape[0])
    check_same_device(images=images, boxes=boxes, theta=theta, obj_to_img=obj_to_img)
    return images, boxes, theta, obj_to_img


_FEW_DTYPES = (torch.float32, torch.float64)
_FEW_PADDING = ("zeros", "border", "reflection")


def _few_checked(
    images: object, boxes: object, theta: object, obj_to_img: object, mode: object,
    padding_mode: object, align_corners: object, overlap: object,
) -> Tensor | None:
    """``theta`` as ``[N, 2, 3]`` where :func:`_checked` is known to pass from Python attributes
    alone and :func:`_warp_few` applies (plain CPU float images, one to ``_FEW_OBJECTS`` boxes,
    a flat box tensor); ``None`` otherwise, and :func:`_checked` then runs (its errors).

    A few microseconds: no tensor op, no context manager (the full checks take ~10 us, a
    noticeable part of a call with one box). ``obj_to_img`` stays as given (``None`` for one
    image; :func:`_warp_few` reads it as image 0).
    """
    if not (
        type(boxes) is Tensor and boxes.dim() == 2 and 0 < boxes.shape[0] <= _FEW_OBJECTS
        and boxes.shape[1] == 4 and not boxes.requires_grad and boxes.is_cpu
        and boxes.dtype is not torch.bool and not boxes.is_complex()
        and type(images) is Tensor and images.dim() == 4 and images.dtype in _FEW_DTYPES and images.is_cpu
        and type(theta) is Tensor and theta.is_floating_point() and theta.is_cpu
        and type(mode) is str and mode in MODES and type(padding_mode) is str and padding_mode in _FEW_PADDING
        and type(overlap) is str and overlap in OVERLAPS and type(align_corners) is bool
    ):
        return None
    num = boxes.shape[0]
    if obj_to_img is None:
        if images.shape[0] != 1:
            return None
    elif not (
        type(obj_to_img) is Tensor and obj_to_img.is_cpu and obj_to_img.dim() == 1
        and obj_to_img.shape[0] == num and obj_to_img.dtype is not torch.bool
        and not obj_to_img.is_floating_point() and not obj_to_img.is_complex()
    ):
        return None
    if theta.dim() == 2 and theta.shape[1] == 6:
        theta = theta.reshape(-1, 2, 3)
    elif not (theta.dim() == 3 and theta.shape[1] == 2 and theta.shape[2] == 3):
        return None
    return theta if theta.shape[0] == num else None


def _warp_few(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor | None, mode: str,
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
    if images.device.type == "cpu":  # plain Python numbers: no tensor op before the loop
        rects = _few_rects_cpu(boxes, theta, obj_to_img, images.shape[0], height, width)
    else:
        rects = _few_rects(boxes, theta, obj_to_img, images.shape[0], height, width)
    if rects is None:
        return None
    out = images
    channels = images.shape[1]
    for n, (b, x0, y0, x1, y1) in enumerate(rects):
        if x1 <= x0 or y1 <= y0:
            continue
        src = out if overlap == "sequential" else images
        patch = src[b : b + 1, :, y0:y1, x0:x1]
        mat = theta if len(rects) == 1 else theta[n : n + 1]  # the same matrix, one node fewer
        if mat.dtype != images.dtype:
            mat = mat.to(images.dtype)
        grid = _patch_grid(mat, channels, y1 - y0, x1 - x0, align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        out = out.clone(memory_format=torch.preserve_format)
        out[b : b + 1, :, y0:y1, x0:x1] = new
    return out if out is not images else images.clone(memory_format=torch.preserve_format)


#: Base grids of :func:`_patch_grid` by (height, width, dtype, align_corners, device); at most
#: ``_GRID_CACHE_SIZE`` of at most ``_GRID_CACHE_PIXELS`` pixels each (384 KB in float64).
_GRIDS: dict[tuple[int, int, torch.dtype, bool, torch.device], Tensor] = {}
_GRID_CACHE_SIZE = 32
_GRID_CACHE_PIXELS = 1 << 14
_GRID_LOCK = threading.Lock()


def _patch_grid(theta: Tensor, channels: int, height: int, width: int, align_corners: bool) -> Tensor:
    """``F.affine_grid(theta, [1, channels, height, width], align_corners=align_corners)``,
    bit for bit, values and gradient, for one matrix ``theta`` ``[1, 2, 3]``.

    ``affine_grid_generator`` builds a base grid ``[1, h*w, 3]`` of the patch's normalised pixel
    centres on every call (forward and backward) and returns ``base.bmm(theta^T)``; its backward
    is ``base^T.bmm(grad)``, which is autograd's gradient of that ``bmm``. Here the base grid is
    built once per patch shape (it depends on nothing else), so a call is one ``bmm`` (forward
    ~45 -> ~18 us at 29x23 pixels, 1 thread; the backward no longer rebuilds the grid). Plain eager calls only
    (no tracing, transform or dispatch mode: :func:`~augpatch.ops.warp.plain_eager`) on the
    CPU, patches of at most ``_GRID_CACHE_PIXELS`` pixels and at least 2 each way (a unit
    size is ATen's special case, and warns with ``align_corners``): otherwise
    ``F.affine_grid`` itself runs.
    """
    pixels = height * width
    if (
        pixels > _GRID_CACHE_PIXELS or channels < 1 or min(height, width) < 2
        or theta.device.type != "cpu" or not plain_eager()
    ):
        return F.affine_grid(theta, [1, channels, height, width], align_corners=align_corners)
    key = (height, width, theta.dtype, align_corners, theta.device)
    base = _GRIDS.get(key)
    if base is None:
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, even if made in inference mode
            base = torch.empty(1, height, width, 3, dtype=theta.dtype, device=theta.device)
            base[..., 0] = _linspace_from_neg_one(width, align_corners, theta)
            base[..., 1] = _linspace_from_neg_one(height, align_corners, theta).unsqueeze(-1)
            base[..., 2] = 1
            base = base.reshape(1, pixels, 3)
        with _GRID_LOCK:
            if len(_GRIDS) >= _GRID_CACHE_SIZE:
                _GRIDS.pop(next(iter(_GRIDS)))
            _GRIDS[key] = base
    return base.bmm(theta.transpose(1, 2)).view(1, height, width, 2)


def _linspace_from_neg_one(steps: int, align_corners: bool, like: Tensor) -> Tensor:
    """ATen's ``linspace_from_neg_one`` (``AffineGridGenerator.cpp``): the normalised pixel
    centres of ``steps`` pixels, computed with the same operations (so the same bits)."""
    grid = torch.linspace(-1, 1, steps, dtype=like.dtype, device=like.device)
    return grid if align_corners else grid * (steps - 1) / steps


Rects = list[tuple[int, int, int, int, int]]


def _few_rects(boxes: Tensor, theta: Tensor, obj_to_img: Tensor | None, batch: int, height: int,
               width: int) -> Rects | None:
    """``(image, x0, y0, x1, y1)`` pixel rects of integer boxes (any device: one transfer), or
    ``None`` when a clipped box has a fractional coordinate. Runs the operator's value checks.
    ``obj_to_img=None``: every box in image 0."""
    if obj_to_img is None:
        obj_to_img = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
    meta, _ = metadata(boxes, theta, obj_to_img, batch, False)
    clipped = clip_to_canvas(meta[:, :4], height, width)
    if not bool((clipped == clipped.round()).all()):
        return None
    pix = pixel_rects(meta[:, :4], height, width)
    return [(int(b), *rect) for b, rect in zip(meta[:, 4].long().tolist(), pix.tolist(), strict=True)]


def _few_rects_cpu(boxes: Tensor, theta: Tensor, obj_to_img: Tensor | None, batch: int, height: int,
                   width: int) -> Rects | None:
    """:func:`_few_rects` on plain Python numbers (CPU tensors; a few microseconds).

    The same checks, in the same order and with the same messages, as the operator's
    :func:`~augpatch.ops.plan.metadata`, and the same rects as
    :func:`~augpatch.ops.plan.pixel_rects` (for integral clipped boxes, pixel ``j`` is inside
    ``[x1, x2)`` iff ``x1 <= j < x2``).
    """
    rows = [[float(v) for v in row] for row in boxes.tolist()]
    if not all(math.isfinite(v) for row in rows for v in row):
        raise ValueError("boxes contains NaN or Inf values")
    if not all(math.isfinite(v) for mat in theta.tolist() for row in mat for v in row):
        raise ValueError("theta contains NaN or Inf values")
    images = [0] * len(rows) if obj_to_img is None else obj_to_img.tolist()
    if images and (min(images) < 0 or max(images) >= batch):
        check_image_index("obj_to_img", obj_to_img, batch)  # raises, with the operator's message
    rects = []
    w, h = float(width), float(height)
    for (x1, y1, x2, y2), b in zip(rows, images, strict=True):
        x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
        y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
        if not (x1.is_integer() and y1.is_integer() and x2.is_integer() and y2.is_integer()):
            return None
        rects.append((int(b), int(x1), int(y1), int(max(x2, x1)), int(max(y2, y1))))
    return rects
