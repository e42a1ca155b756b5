"""Box formats (``xyxy`` / ``xywh`` / ``cxcywh``) and layouts (flat / list / padded).

Conventions
-----------
* Pixel ``(row i, col j)`` has its centre at continuous coordinates
  ``(x, y) = (j + 0.5, i + 0.5)``; ``x`` runs along the width (columns), ``y``
  along the height (rows).  A box ``(x1, y1, x2, y2)`` (``xyxy``) holds the
  pixels whose centre satisfies ``x1 <= j + 0.5 < x2`` and ``y1 <= i + 0.5 < y2``,
  so an integer box covers exactly ``img[..., y1:y2, x1:x2]``.
* The canvas of an image of size ``(H, W)`` is ``[0, W] x [0, H]``.
* Three layouts hold the boxes of a batch of ``B`` images:

  - *flat*: ``boxes [N, 4]`` plus ``obj_to_img [N]`` (int64, values in ``[0, B)``),
    which says which image each object belongs to (``None`` is allowed when
    ``B == 1``: every object then belongs to image 0);
  - *list*: ``B`` tensors ``[N_i, 4]`` (torchvision / Kornia style);
  - *padded*: ``[B, N_max, 4]`` plus a boolean validity mask ``[B, N_max]``.

  Converting to the list or padded layout groups the objects by image and keeps
  each image's objects in their original relative order (a stable sort), so
  ``flat -> list -> flat`` returns the boxes sorted by image, not necessarily in
  the input order (they are identical when ``obj_to_img`` is already sorted).

Everything here is pure PyTorch (no torchvision needed), works on any device,
never modifies its inputs in place and is differentiable with respect to float
boxes where that makes sense (clipping, format conversion, layout changes).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from augpatch.functional.checks import (
    check_boxes,
    check_choice,
    check_finite,
    check_obj_to_img,
    check_same_device,
    check_tensor,
    flatten_box_list,
)

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

__all__ = [
    "BOX_FORMATS",
    "boxes_to_list",
    "boxes_to_padded",
    "clip_boxes",
    "convert_box_format",
    "list_to_boxes",
    "padded_to_boxes",
]


# --------------------------------------------------------------------------- helpers


def _check_any_boxes(boxes: object, name: str = "boxes") -> Tensor:
    """Validate a box tensor ``[..., 4]`` (float or integer, finite)."""
    boxes = check_tensor(name, boxes)
    if boxes.dim() < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {tuple(boxes.shape)}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must be a real float or integer tensor, got {boxes.dtype}")
    check_finite(name, boxes)
    return boxes


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def check_canvas_size(canvas_size: object, name: str = "canvas_size") -> tuple[int, int]:
    """Validate ``canvas_size = (H, W)`` (two non-negative ints) and return it as a tuple."""
    if isinstance(canvas_size, Tensor):
        canvas_size = canvas_size.tolist()
    if not isinstance(canvas_size, Sequence) or isinstance(canvas_size, str):
        raise TypeError(f"{name} must be a pair (H, W) of ints, got {type(canvas_size).__name__}")
    if len(canvas_size) != 2:
        raise ValueError(f"{name} must be a pair (H, W), got {len(canvas_size)} values")
    for v in canvas_size:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be a pair (H, W) of ints, got {canvas_size!r}")
        if v < 0:
            raise ValueError(f"{name} must be non-negative, got {tuple(canvas_size)}")
    return int(canvas_size[0]), int(canvas_size[1])


def _group_by_image(
    boxes: Tensor, obj_to_img: Tensor | None, batch_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Stable-sort objects by image.

    Returns ``(sorted_boxes [N, 4], sorted_img [N] int64, counts [B] int64)``.
    """
    boxes = check_boxes(boxes)
    batch_size = _check_batch_size(batch_size)
    check_same_device(boxes=boxes, obj_to_img=obj_to_img)
    n = boxes.shape[0]
    obj = check_obj_to_img(obj_to_img, n, batch_size)
    if obj is None:
        obj = torch.zeros(n, dtype=torch.long, device=boxes.device)
    img_sorted, order = torch.sort(obj, stable=True)
    counts = torch.bincount(img_sorted, minlength=batch_size)
    return boxes.index_select(0, order), img_sorted, counts


# --------------------------------------------------------------------------- public API


def clip_boxes(boxes: Tensor, canvas_size: tuple[int, int]) -> Tensor:
    """Clip ``xyxy`` boxes to the canvas ``[0, W] x [0, H]``.

    Args:
        boxes: ``[..., 4]`` ``xyxy`` boxes (float or integer).
        canvas_size: ``(H, W)`` of the image.

    Returns:
        A new tensor of the same shape and dtype; ``x`` is clamped to ``[0, W]``
        and ``y`` to ``[0, H]``. A box entirely outside the canvas becomes
        degenerate (zero width or height); boxes with ``x2 < x1`` stay so.
        Differentiable (the gradient is zero where a coordinate was clamped).

    Example:
        >>> clip_boxes(torch.tensor([[-5.0, 2.0, 30.0, 8.0]]), (10, 20))
        tensor([[ 0.,  2., 20.,  8.]])
    """
    boxes = _check_any_boxes(boxes)
    h, w = check_canvas_size(canvas_size)
    lo = torch.zeros(4, dtype=boxes.dtype, device=boxes.device)
    hi = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    return torch.clamp(boxes, min=lo, max=hi)


def clip_boxes_to_images(boxes: Tensor, obj_to_img: Tensor | None, image_sizes: Tensor) -> Tensor:
    """Clip every ``xyxy`` box to its own image of a padded batch.

    Args:
        boxes: ``[N, 4]`` ``xyxy`` boxes (float or integer).
        obj_to_img: ``[N]`` image of each box (``None``: all belong to image 0).
        image_sizes: ``[B, 2]`` integer ``(H_b, W_b)`` of every image (as
            :func:`augpatch.data.collate_objects` returns them).

    Returns:
        A new ``[N, 4]`` tensor of the dtype of ``boxes``: box ``n`` clamped to
        ``[0, W_b] x [0, H_b]`` of its image ``b = obj_to_img[n]``. A box entirely
        outside its image becomes degenerate. Differentiable like :func:`clip_boxes`.

    Example:
        >>> clip_boxes_to_images(
        ...     torch.tensor([[2.0, 2.0, 9.0, 9.0], [2.0, 2.0, 9.0, 9.0]]),
        ...     torch.tensor([0, 1]),
        ...     torch.tensor([[10, 10], [5, 6]]),
        ... )
        tensor([[2., 2., 9., 9.],
                [2., 2., 6., 5.]])
    """
    boxes = _check_any_boxes(boxes)
    sizes = image_sizes.to(device=boxes.device, dtype=boxes.dtype)
    if obj_to_img is None:
        per_box = sizes[:1].expand(boxes.shape[0], 2)
    else:
        per_box = sizes.index_select(0, obj_to_img.to(boxes.device).long())
    hi = per_box.flip(-1).repeat(1, 2)  # (W, H, W, H)
    return torch.minimum(torch.clamp(boxes, min=0), hi)


def convert_box_format(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    Same formulas (and dtype behaviour) as ``torchvision.ops.box_convert``:
    integer boxes stay integer for ``xyxy <-> xywh`` and become float whenever
    ``cxcywh`` is involved. Always returns a new tensor.

    Args:
        boxes: ``[..., 4]`` boxes in ``in_fmt``.
        in_fmt, out_fmt: one of ``'xyxy'`` (corners), ``'xywh'`` (top-left
            corner, width, height) and ``'cxcywh'`` (centre, width, height).

    Returns:
        ``[..., 4]`` boxes in ``out_fmt``.

    Example:
        >>> convert_box_format(torch.tensor([[1.0, 2.0, 5.0, 10.0]]), "xyxy", "cxcywh")
        tensor([[3., 6., 4., 8.]])
    """
    in_fmt = check_choice("in_fmt", in_fmt, BOX_FORMATS)
    out_fmt = check_choice("out_fmt", out_fmt, BOX_FORMATS)
    boxes = _check_any_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    # (a, b, c, d) is now xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def boxes_to_list(boxes: Tensor, obj_to_img: Tensor | None, batch_size: int) -> list[Tensor]:
    """Split flat boxes into a list of ``batch_size`` per-image tensors.

    Args:
        boxes: ``[N, 4]`` boxes (any dtype accepted by the library).
        obj_to_img: ``[N]`` int64 image index of each box, or ``None`` when
            ``batch_size == 1`` (all boxes belong to image 0).
        batch_size: ``B``, the number of images.

    Returns:
        A list of ``B`` tensors ``[N_i, 4]`` (new tensors, not views of ``boxes``);
        each keeps its objects in their original relative order. Images without
        objects get a ``[0, 4]`` tensor. Differentiable.

    Example:
        >>> b = torch.tensor([[0., 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]])
        >>> [t.shape[0] for t in boxes_to_list(b, torch.tensor([1, 0, 1]), 3)]
        [1, 2, 0]
    """
    sorted_boxes, _, counts = _group_by_image(boxes, obj_to_img, batch_size)
    return list(torch.split(sorted_boxes, counts.tolist(), dim=0))


def list_to_boxes(boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Concatenate a list of ``B`` per-image ``[N_i, 4]`` tensors into the flat layout.

    Args:
        boxes: a list (or tuple) of ``B >= 1`` tensors ``[N_i, 4]``, all of the same
            dtype and on the same device.

    Returns:
        ``(boxes [N, 4], obj_to_img [N] int64)`` with ``N = sum(N_i)``; the boxes
        of image 0 come first, in order, then those of image 1, and so on.

    Example:
        >>> flat, idx = list_to_boxes([torch.zeros(2, 4), torch.zeros(0, 4), torch.ones(1, 4)])
        >>> idx
        tensor([0, 0, 2])
    """
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a list of [N_i, 4] tensors, got {type(boxes).__name__}")
    flat, obj_to_img = flatten_box_list(boxes, len(boxes))
    return flat, obj_to_img.long()


def boxes_to_padded(
    boxes: Tensor, obj_to_img: Tensor | None, batch_size: int, *, pad_value: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Scatter flat boxes into a padded ``[B, N_max, 4]`` tensor with a validity mask.

    Args:
        boxes: ``[N, 4]`` boxes.
        obj_to_img: ``[N]`` int64 image index of each box, or ``None`` when
            ``batch_size == 1``.
        batch_size: ``B``.
        pad_value: value written in the padding slots (must be representable in
            the boxes' dtype, e.g. an integer for integer boxes).

    Returns:
        ``(padded [B, N_max, 4], mask [B, N_max] bool)`` where ``N_max`` is the
        largest number of boxes in one image (0 when ``N == 0``). Image ``b``'s
        boxes fill ``padded[b, :N_b]`` in their original relative order and
        ``mask[b, :N_b]`` is True. Differentiable with respect to ``boxes``.

    Example:
        >>> b = torch.tensor([[0., 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]])
        >>> padded, mask = boxes_to_padded(b, torch.tensor([1, 0, 1]), 2)
        >>> padded.shape, mask.tolist()
        (torch.Size([2, 2, 4]), [[True, False], [True, True]])
    """
    if isinstance(pad_value, bool) or not isinstance(pad_value, numbers.Real):
        raise TypeError(f"pad_value must be a real number, got {type(pad_value).__name__}")
    sorted_boxes, img, counts = _group_by_image(boxes, obj_to_img, batch_size)
    if not sorted_boxes.is_floating_point() and float(pad_value) != int(pad_value):
        raise ValueError(
            f"pad_value must be an integer for {sorted_boxes.dtype} boxes, got {pad_value!r}"
        )
    n = sorted_boxes.shape[0]
    n_max = int(counts.max()) if n else 0
    device = sorted_boxes.device
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=device) - starts[img]
    padded = torch.full((batch_size, n_max, 4), pad_value, dtype=sorted_boxes.dtype, device=device)
    padded = padded.index_put((img, rank), sorted_boxes)
    mask = torch.arange(n_max, device=device)[None, :] < counts[:, None]
    return padded, mask


def padded_to_boxes(padded: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Gather the valid boxes of a padded ``[B, N_max, 4]`` tensor into the flat layout.

    Args:
        padded: ``[B, N_max, 4]`` boxes; padding slots may hold anything (even NaN).
        mask: ``[B, N_max]`` bool, True where a slot holds a real box. The valid
            slots need not be a prefix of each row.

    Returns:
        ``(boxes [N, 4], obj_to_img [N] int64)``, in row-major order of ``mask``
        (image by image, slot by slot). Differentiable with respect to ``padded``.

    Example:
        >>> padded = torch.arange(16.0).reshape(2, 2, 4)
        >>> boxes, idx = padded_to_boxes(padded, torch.tensor([[True, False], [True, True]]))
        >>> idx
        tensor([0, 1, 1])
    """
    padded = check_tensor("padded", padded)
    mask = check_tensor("mask", mask)
    if padded.dim() != 3 or padded.shape[-1] != 4:
        raise ValueError(f"padded must have shape [B, N_max, 4], got {tuple(padded.shape)}")
    if padded.dtype == torch.bool or padded.is_complex():
        raise TypeError(f"padded must be a real float or integer tensor, got {padded.dtype}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    if tuple(mask.shape) != tuple(padded.shape[:2]):
        raise ValueError(
            f"mask must have shape [B, N_max] = {list(padded.shape[:2])}, got {tuple(mask.shape)}"
        )
    check_same_device(padded=padded, mask=mask)
    boxes = padded[mask]
    check_finite("padded (valid slots)", boxes)
    b, n_max = mask.shape
    img = torch.arange(b, device=padded.device)[:, None].expand(b, n_max)[mask]
    return boxes, img
