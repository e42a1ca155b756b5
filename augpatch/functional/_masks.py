"""``warp_masks``: move masks (segmentation maps, instance masks) with their objects."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from augpatch.functional._checks import BoxesLike, check_tensor
from augpatch.functional._warp import warp_patches

__all__ = ["warp_masks"]

# dtypes warp_patches takes as they are; nearest resampling reproduces their values exactly
_NATIVE = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _to_warpable(masks: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``masks`` in a dtype :func:`warp_patches` takes, and the function restoring the dtype."""
    dtype = masks.dtype
    if dtype == torch.bool:
        return masks.to(torch.uint8), lambda y: y.bool()
    if dtype in _NATIVE:
        return masks, lambda y: y
    if dtype.is_complex:
        raise TypeError(f"masks must be a bool, integer or real floating tensor, got {dtype}")
    if dtype.is_floating_point:  # e.g. float8: no arithmetic of its own
        return masks.to(torch.float32), lambda y: y.to(dtype)
    # every other integer type: float64 holds each value up to 2**53 exactly (warp_masks
    # itself moves these by pixel index instead, exact at any magnitude: _warp_by_index)
    return masks.to(torch.float64), lambda y: y.round().to(dtype)


def _warp_by_index(masks: Tensor, warp: Callable[[Tensor], Tensor]) -> Tensor:
    """Integer masks ``[B, K, H, W]`` of any magnitude moved exactly: ``warp`` (nearest)
    moves a float64 map of ``1 +`` each pixel's index (exact: ``H * W < 2**53``), and every
    output pixel takes the values of the pixel it came from (``0`` where the warp read the
    padding). Pixels outside every box keep their own index, so their values are copied."""
    b, k, h, w = masks.shape
    index = torch.arange(1, h * w + 1, dtype=torch.float64, device=masks.device)
    moved = warp(index.view(1, 1, h, w).expand(b, 1, h, w)).reshape(b, 1, h * w)
    source = (moved.long() - 1).clamp(min=0)
    values = masks.reshape(b, k, h * w).gather(2, source.expand(b, k, h * w))
    values = torch.where(moved > 0, values, torch.zeros((), dtype=masks.dtype, device=masks.device))
    return torch.empty_like(masks).copy_(values.view(b, k, h, w))


def warp_masks(
    masks: Tensor,
    boxes: BoxesLike,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    padding_mode: str = "zeros",
    align_corners: bool = False,
    overlap: str = "sequential",
) -> Tensor:
    """Warp masks exactly like :func:`warp_patches` warps images, with nearest resampling.

    Every object's patch of the masks is resampled with its ``theta`` (``mode="nearest"``,
    so a mask holds only values it held before: labels stay labels, a binary mask stays
    binary) and pasted back; pixels outside every box are copied. The dtype (and memory
    format) of ``masks`` is kept. The inputs are never modified.

    Args:
        masks: per-image masks ``[B, H, W]`` (e.g. a label map per image),
            ``[B, 1, H, W]`` or ``[B, K, H, W]`` (``K`` channels, e.g. one binary mask
            per class, all moved alike). Any real dtype: ``bool``, ``uint8``, the other
            integer types (``int8`` ... ``int64``: moved by pixel index, so every value,
            also above ``2**53``, is copied exactly), ``float16``, ``bfloat16``, ``float32``,
            ``float64``. Per-OBJECT masks ``[N, H, W]`` (mask ``n`` moves with object
            ``n`` only) are the case ``B = N`` with ``obj_to_img = torch.arange(N)``.
        boxes: ``[N, 4]`` ``xyxy`` boxes, or a list of ``B`` tensors ``[N_i, 4]``, as in
            :func:`warp_patches`.
        theta: ``[N, 2, 3]`` or ``[N, 6]``, the objects' matrices (as for the images).
        obj_to_img: ``[N]`` int64 image of each box; may be omitted when ``B == 1`` or
            when ``boxes`` is a list.
        padding_mode: ``"zeros"`` (default: what a rotation or shift brings into the box
            is 0 / ``False``, i.e. background), ``"border"``, ``"reflection"`` or
            ``"image"``, as in :func:`warp_patches`; use the images' value to keep masks
            aligned with them.
        align_corners: as in :func:`warp_patches`.
        overlap: ``"sequential"`` or ``"parallel"``, as in :func:`warp_patches`.

    Returns:
        Masks of the shape, dtype and memory format of ``masks``: ``bool`` masks come
        back as ``bool``, integer masks hold the same integers, float masks the same
        values.

    Differentiability: float masks get (nearest-neighbour) gradients, as from
    ``grid_sample`` with ``mode="nearest"``; ``bool`` and integer masks have none.

    Example:
        >>> import torch
        >>> from augpatch.functional import patch_affine_matrix, warp_masks
        >>> labels = torch.zeros(1, 8, 8, dtype=torch.int64)
        >>> labels[0, 2:4, 1:6] = 7  # a horizontal bar of label 7
        >>> boxes = torch.tensor([[0, 0, 8, 8]])
        >>> theta = patch_affine_matrix(boxes, angle=90.0)  # a quarter turn
        >>> out = warp_masks(labels, boxes, theta)
        >>> out.dtype, out.unique().tolist(), int((out == 7).sum())
        (torch.int64, [0, 7], 10)
        >>> out[0, 2:7, 2:4].eq(7).all().item()  # now a vertical bar
        True
    """
    masks = check_tensor("masks", masks)
    if masks.dim() not in (3, 4):
        raise ValueError(
            f"masks must have shape [B, H, W] or [B, K, H, W], got {tuple(masks.shape)}"
        )
    dtype = masks.dtype
    by_index = not (dtype in _NATIVE or dtype == torch.bool or dtype.is_floating_point or dtype.is_complex)
    work, restore = (masks, lambda y: y) if by_index else _to_warpable(masks)
    squeeze = work.dim() == 3
    work = work[:, None] if squeeze else work

    def warp(x: Tensor) -> Tensor:
        return warp_patches(x, boxes, theta, obj_to_img, mode="nearest", padding_mode=padding_mode,
                            align_corners=align_corners, overlap=overlap)

    out = _warp_by_index(work, warp) if by_index else warp(work)
    return restore(out[:, 0] if squeeze else out)
