"""The compiled CPU kernel's arguments of a ``warp_patches`` call (for tests and benchmarks).

:func:`compiled_kernel_calls` runs one call and records what
:meth:`augpatch.ops.backends.compiled.CompiledWarp.forward` handed the kernel: the inputs
of ``augpatch_cpu::warp_forward`` (and its test-only twin ``warp_forward_per_pixel``),
so a test or a benchmark can run the kernel alone on exactly a real call's plan.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from augpatch.functional import warp_patches
from augpatch.ops.backends.compiled import CompiledWarp, kernel_options

__all__ = ["compiled_kernel_calls"]


def compiled_kernel_calls(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, **kwargs: Any
) -> list[tuple[Any, ...]]:
    """Run ``warp_patches(images, boxes, theta, obj_to_img, **kwargs)`` and return, per
    compiled-kernel forward of that call, ``(images, params, objects, level_objects,
    options, need_loc)``: the arguments of ``augpatch_cpu::warp_forward``. Empty when the
    compiled kernel did not run (another kernel, no box with a pixel, or the one- or
    two-integer-box call that ``warp_patches`` answers without the kernel).

    Example:
        >>> import torch
        >>> from augpatch.ops import compiled_ops
        >>> boxes = torch.tensor([[1, 1, 6, 6], [2, 0, 8, 5], [0, 3, 4, 8]])
        >>> theta = torch.eye(2, 3).expand(3, 2, 3) * 0.5
        >>> calls = compiled_kernel_calls(torch.rand(1, 3, 8, 8), boxes, theta,
        ...                               torch.zeros(3, dtype=torch.long))
        >>> len(calls) == (compiled_ops(torch.device("cpu")) is not None)
        True
    """
    seen: list[tuple[Any, ...]] = []
    original = CompiledWarp.forward

    def record(self: CompiledWarp, imgs: Tensor, params: Tensor, plan: Any, need_loc: bool) -> Any:
        seen.append((imgs, params, plan.objects, plan.level_objects, kernel_options(plan), need_loc))
        return original(self, imgs, params, plan, need_loc)

    CompiledWarp.forward = record  # type: ignore[method-assign]
    try:
        warp_patches(images, boxes, theta, obj_to_img, **kwargs)
    finally:
        CompiledWarp.forward = original  # type: ignore[method-assign]
    return seen
