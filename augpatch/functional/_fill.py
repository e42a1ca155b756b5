"""``warp_patches_fill``: the per-object warp with a constant fill instead of zeros."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from augpatch.functional._checks import check_images
from augpatch.functional._warp import BoxesLike, warp_patches

__all__ = ["fill_tensor", "warp_patches_fill"]


def fill_tensor(fill: float | Sequence[float] | Tensor, channels: int, name: str = "fill") -> Tensor:
    """Validate a constant fill (a number or one value per channel) as a float64 ``[C]`` tensor."""
    if isinstance(fill, bool):
        raise TypeError(f"{name} must be a number or a sequence of {channels} numbers, got bool")
    try:
        t = torch.as_tensor(fill, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{name} must be a number or a sequence of {channels} numbers, got {fill!r}"
        ) from e
    if t.dim() == 0 or t.numel() == 1:
        t = t.reshape(1).expand(channels)
    if t.dim() != 1 or t.numel() != channels:
        raise ValueError(
            f"{name} must be a number or one value per channel ({channels}), got shape "
            f"{tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t.clone()


def warp_patches_fill(
    images: Tensor,
    boxes: BoxesLike,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    fill: float | Sequence[float] | Tensor,
    mode: str = "bilinear",
    align_corners: bool = False,
    overlap: str = "sequential",
) -> Tensor:
    """:func:`warp_patches` where sampling outside the patch reads a constant ``fill``.

    ``grid_sample``'s ``padding_mode="zeros"`` reads 0 outside the patch; this reads
    ``fill`` instead (what a rotation, shear or shift brings into a box, as the
    reference AutoAugment's ``replace=128``). Sampling is linear in the pixel values, so
    no new kernel is needed: the images get one extra channel of ones, the warp runs
    with zero padding, and every pixel adds ``(1 - alpha) * fill`` where ``alpha`` is
    the warped ones channel (the share of the sample that came from inside the patch).
    With ``mode="nearest"`` a pixel is either its source or exactly ``fill``; with
    ``bilinear`` / ``bicubic`` the edge blends with ``fill`` exactly as it blends with 0
    under zero padding. Pixels outside every box are unchanged bit for bit (there
    ``alpha`` is exactly 1). Sequential overlap composes exactly (the fill already baked
    into an earlier object is carried by its ``alpha``).

    Args:
        images: ``[B, C, H, W]`` float or uint8 images.
        boxes, theta, obj_to_img, mode, align_corners, overlap: as
            :func:`warp_patches`.
        fill: a number or one value per channel, in the images' units (0-255 for
            uint8).

    Returns:
        ``[B, C, H, W]`` of the images' dtype. uint8 / float16 / bfloat16 are computed in
        float32 and rounded once at the end (uint8: round half to even, clamp to
        ``[0, 255]``). Differentiable w.r.t. float images, ``theta`` and float boxes.

    Example:
        >>> import torch
        >>> images = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
        >>> shift = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])  # reads half a box right
        >>> out = warp_patches_fill(images, torch.tensor([[0, 0, 4, 4]]), shift, fill=128,
        ...                         mode="nearest")
        >>> out[0, 0, 0].tolist()
        [0, 0, 128, 128, 0, 0, 0, 0]
    """
    images = check_images(images)
    channels = images.shape[1]
    work_dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    value = fill_tensor(fill, channels).to(device=images.device, dtype=work_dtype)
    work = images.to(work_dtype)
    ones = torch.ones_like(work[:, :1])
    warped = warp_patches(
        torch.cat((work, ones), 1),
        boxes,
        theta,
        obj_to_img,
        mode=mode,
        padding_mode="zeros",
        align_corners=align_corners,
        overlap=overlap,
    )
    alpha = warped[:, channels:]
    # where alpha is exactly 1 (every pixel outside the boxes) the warped value itself:
    # adding (1 - alpha) * fill = +0.0 would turn a -0.0 into +0.0
    blended = warped[:, :channels] + (1 - alpha) * value[None, :, None, None]
    out = torch.where(alpha == 1, warped[:, :channels], blended)
    if images.dtype == torch.uint8:
        out = out.round().clamp(0, 255)
    out = out.to(images.dtype)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out
