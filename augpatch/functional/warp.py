"""The warp in place: the compiled CPU kernel on a batch the caller owns (one home).

:func:`warp_in_place` runs the warp operator's own planning and its in-place kernel
(``warp_forward_`` / ``box_warp_`` of the compiled extension, reached through
:func:`augpatch.ops.compiled_ops`) on a batch without copying it. Its callers:
:func:`augpatch.functional.warp_patches` with ``out=`` (the public, checked in-place warp)
and the box-only policy ops (``augpatch.policies.functional.warp_in_boxes(...,
inplace=True)``). No argument checks here: the callers pass checked arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from augpatch.functional.checks import fill_tensor
from augpatch.ops.backends.compiled import kernel_options
from augpatch.ops.plan import compiled_planner, prepare

__all__ = ["warp_in_place"]


def warp_in_place(
    ops: Any, out: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str, *,
    fill: float | Sequence[float] | Tensor | None = None, chunked: bool = False,
) -> Tensor:
    """``warp_patches(out, boxes, theta, obj_to_img, ...)`` computed in ``out`` itself by
    the compiled kernel ``ops`` (:func:`augpatch.ops.compiled_ops`): no copy of the batch,
    no canvas, no gradient.

    Args:
        ops: the compiled extension's operators (``compiled_ops(out.device)``).
        out: ``[B, C, H, W]`` CPU batch with the warp's own strides
            (``augpatch.ops.plan.work_strides(out)``); overwritten in place.
        boxes: ``[N, 4]`` xyxy boxes (checked), theta ``[N, 2, 3]``, obj_to_img ``[N]``
            int64, on ``out``'s device.
        mode, padding_mode, align_corners, overlap: as ``warp_patches``.
        fill: ``None`` (the plan's ``padding_mode``), or a constant (uint8, ``nearest``,
            ``"sequential"``, patch-relative padding: ``warp_patches_fill``'s result).
        chunked: ``"sequential"`` levels in cache-sized chunks of boxes (``box_warp_``;
            patch-relative padding only: a box then reads its own pixels only).

    The operator's own planning (:func:`augpatch.ops.plan.prepare` with the kernel's C++
    planner ``warp_plan``: value checks, levels, processing order, parameter table), then
    the kernel on ``out`` itself: in one call (``warp_forward_``: every level keeps its
    values aside until all its objects have read, so the result is the operator's bit for
    bit), or with ``chunked`` / ``fill`` a ``"sequential"`` warp level by level in
    cache-sized chunks of boxes (``box_warp_``); with ``fill`` a chunk's rects get the
    fill subtracted (modulo 256), are warped with zero padding and get the fill added
    back. Returns ``out``.

    Example:
        >>> import torch
        >>> from augpatch.ops import compiled_ops
        >>> from augpatch.functional import warp_patches
        >>> images = torch.rand(1, 3, 16, 16)
        >>> boxes = torch.tensor([[2.0, 2.0, 12.0, 10.0]])
        >>> flip = torch.tensor([[[-1.0, 0, 0], [0, 1, 0]]])
        >>> ops = compiled_ops(images.device)
        >>> out = images.clone()
        >>> ops is None or torch.equal(
        ...     warp_in_place(ops, out, boxes, flip, torch.zeros(1, dtype=torch.long),
        ...                   "nearest", "zeros", False, "sequential"),
        ...     warp_patches(images, boxes, flip, mode="nearest"))
        True
    """
    prepared = prepare(out, boxes, theta, obj_to_img, mode, padding_mode, align_corners,
                       overlap, compiled_planner(ops))
    if prepared is None:  # no box has a pixel
        return out
    plan, params = prepared.plan, prepared.params
    options = kernel_options(plan)
    if overlap == "parallel" or (fill is None and not chunked):
        ops.warp_forward_(out, params, plan.objects, plan.level_objects, options)
        return out
    value = (torch.empty(0, dtype=torch.uint8) if fill is None
             else fill_tensor(fill, out.shape[1]).round().clamp(0, 255).to(torch.uint8))
    ops.box_warp_(out, params, plan.objects, plan.level_objects, options, value)
    return out
