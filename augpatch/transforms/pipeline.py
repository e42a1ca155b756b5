"""The call pipeline's module-level helpers, shared by
:class:`~augpatch.transforms.base.PatchAugmentationBase` and other packages:
one call's warp plan (:class:`PatchCall`), the result builder (:func:`make_result`),
``keep`` (:func:`keep_mask`, :func:`never_inverted`), padded images' regions
(:func:`image_regions`), and the small checks and helpers of the base class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import augpatch.functional as F
from augpatch.functional.checks import check_choice
from augpatch.transforms._result import PatchResult
from augpatch.transforms.sampling import check_probability

Params = dict[str, Any]

# a box thinner than this (pixels) counts as degenerate, so that float rounding of an exact
# boundary case (content moved by exactly one box size) does not decide ``keep``
_KEEP_EPS = 1e-3

# keys the base adds to every parameter dict
_CALL_KEYS = ("patches", "obj_to_img", "keep")


# --------------------------------------------------------------------------- small helpers


def _check_p(p: object) -> float | Tensor:
    return check_probability("p", p)


def _check_mode(name: str, value: object, choices: Sequence[str]) -> str:
    """Accept a string (any case) or an enum such as torchvision's ``InterpolationMode``."""
    if not isinstance(value, str):
        enum_name = getattr(value, "name", None)
        if isinstance(enum_name, str):
            value = enum_name
    if isinstance(value, str):
        value = value.lower()
    return check_choice(name, value, choices)


def _eye(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.eye(2, 3, dtype=dtype, device=device).expand(n, 2, 3)


def gate_theta(theta: Tensor, batch_prob: Tensor | None) -> Tensor:
    """Identity ``theta`` where ``batch_prob`` is False (differentiable elsewhere).

    A float ``batch_prob`` (the relaxed gate ``g`` of a learnable ``p``) gives
    ``lerp(identity, theta, g)``: exactly ``theta`` at ``g = 1`` and the identity at 0.
    """
    if batch_prob is None:
        return theta
    if batch_prob.dtype != torch.bool:
        eye = _eye(theta.shape[0], theta.dtype, theta.device)
        return torch.lerp(eye, theta, batch_prob.to(theta.dtype)[:, None, None])
    return torch.where(
        batch_prob[:, None, None], theta, _eye(theta.shape[0], theta.dtype, theta.device)
    )


def _detach(params: Mapping[str, Any]) -> Params:
    return {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in params.items()}


def _any(mask: Tensor) -> bool:
    """``bool(mask.any())``, but True while ``torch.compile`` traces (no data-dependent
    branch in a graph: the general path is always right, the skip is only a saving)."""
    if torch.compiler.is_compiling():
        return True
    return bool(mask.any())


def identity_rows(theta: Tensor) -> Tensor:
    """``[N]`` bool: True where ``theta[n]`` is EXACTLY the identity ``[[1, 0, 0], [0, 1, 0]]``.

    Example:
        >>> identity_rows(torch.stack((torch.eye(2, 3), torch.eye(2, 3) * 2))).tolist()
        [True, False]
    """
    eye = torch.eye(2, 3, dtype=theta.dtype, device=theta.device)
    return (theta.detach() == eye).flatten(1).all(1)


def keep_mask(boxes: Tensor) -> Tensor:
    """``[N]`` bool: True where a box ``[N, 4]`` has width and height above 1e-3 px.

    The rule every transform uses for ``keep`` (and ``drop_invalid``), applied to the
    box of each object as it is visible after the call.

    Example:
        >>> keep_mask(torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 0.0, 2.0, 4.0]])).tolist()
        [True, False]
    """
    return (boxes[:, 2] - boxes[:, 0] > _KEEP_EPS) & (boxes[:, 3] - boxes[:, 1] > _KEEP_EPS)


def image_regions(
    image_sizes: Tensor, size: tuple[int, int], index: Tensor | None, device: torch.device
) -> Tensor:
    """Bool ``[M, 1, H, W]``: True on each image's own region of a padded batch.

    Args:
        image_sizes: ``[B, 2]`` integer ``(H_b, W_b)`` (each image at the top-left).
        size: the canvas ``(H, W)``.
        index: ``[M]`` image of each row (``None``: the ``B`` images in order).
        device: of the result.

    Example:
        >>> image_regions(torch.tensor([[1, 2]]), (2, 3), None, torch.device("cpu"))[0, 0].tolist()
        [[True, True, False], [False, False, False]]
    """
    sizes = image_sizes.to(device=device, dtype=torch.long)
    if index is not None:
        sizes = sizes.index_select(0, index.to(device=device, dtype=torch.long))
    rows = torch.arange(size[0], device=device)
    cols = torch.arange(size[1], device=device)
    inside = (rows[None, :, None] < sizes[:, 0, None, None]) & (
        cols[None, None, :] < sizes[:, 1, None, None]
    )
    return inside[:, None]


@dataclass(frozen=True)
class PatchCall:
    """What the per-target hooks of one call share (see ``apply_transform_*``).

    Attributes:
        theta: ``[N, 2, 3]`` applied matrices (identity where the coin said no).
        applied: ``[N]`` bool coins (``batch_prob``).
        moved: ``[N]`` bool: applied and ``theta`` not exactly the identity; only these
            objects are resampled, the others come back bit for bit.
        patches: ``[N, 4]`` float boxes clipped to the canvas (and to their image).
        obj_to_img: ``[N]`` image of each object.
        warp_boxes: ``[N, 4]`` the boxes given to the warp.
        image_sizes: ``[B, 2]`` real image sizes of a padded batch, or ``None``.
        reverse: warp the objects in reverse order (an inverse call).
    """

    theta: Tensor
    applied: Tensor
    moved: Tensor
    patches: Tensor
    obj_to_img: Tensor
    warp_boxes: Tensor
    image_sizes: Tensor | None = None
    reverse: bool = False

    @classmethod
    def make(
        cls,
        theta: Tensor,
        applied: Tensor,
        patches: Tensor,
        obj_to_img: Tensor,
        image_sizes: Tensor | None,
        warp_boxes: Tensor,
        *,
        reverse: bool = False,
    ) -> PatchCall:
        moved = applied & ~identity_rows(theta)
        return cls(theta, applied, moved, patches, obj_to_img, warp_boxes, image_sizes, reverse)


def never_inverted(boxes: Tensor) -> Tensor:
    """``xyxy`` boxes ``[N, 4]`` with ``x2 >= x1`` and ``y2 >= y1``: an inverted box becomes
    exactly zero-width (zero-height) at its ``x1`` (``y1``); others are returned as they are.

    Example:
        >>> never_inverted(torch.tensor([[5.0, 1.0, 2.0, 6.0]])).tolist()
        [[5.0, 1.0, 5.0, 6.0]]
    """
    return torch.cat((boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2])), -1)


def make_result(
    images: Tensor | None,
    boxes: Tensor,
    obj_to_img: Tensor,
    keep: Tensor,
    *,
    drop_invalid: bool = False,
    list_batch: int | None = None,
    masks: Tensor | None = None,
    image_masks: Tensor | None = None,
    keypoints: Tensor | None = None,
    params: Params | None = None,
) -> PatchResult:
    """The :class:`PatchResult` of a call: drops the objects with ``keep`` False when
    ``drop_invalid`` (boxes, per-object masks, keypoints, ``obj_to_img``; ``keep`` stays
    over all objects), and returns the boxes as a list of ``list_batch`` tensors when
    given (the input boxes were a list).

    Example:
        >>> res = make_result(torch.zeros(1, 1, 4, 4), torch.tensor([[0., 0, 2, 2], [1, 1, 1, 3]]),
        ...                   torch.tensor([0, 0]), torch.tensor([True, False]), drop_invalid=True)
        >>> res.boxes.tolist(), res.keep.tolist()
        ([[0.0, 0.0, 2.0, 2.0]], [True, False])
    """
    if drop_invalid:
        boxes, obj_to_img = boxes[keep], obj_to_img[keep]
        masks = masks[keep] if masks is not None else None
        keypoints = keypoints[keep] if keypoints is not None else None
    boxes_ret: Tensor | list[Tensor] = boxes
    if list_batch is not None:
        boxes_ret = F.boxes_to_list(boxes, obj_to_img, list_batch)
    return PatchResult(
        images,
        boxes_ret,
        masks=masks,
        image_masks=image_masks,
        keypoints=keypoints,
        keep=keep,
        obj_to_img=obj_to_img,
        params=params,
    )
