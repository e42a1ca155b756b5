"""``paste_objects``: move objects from any box of any image into any box of any image."""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.functional.checks import (
    MODES,
    PADDING_MODES,
    check_bool,
    check_boxes,
    check_choice,
    check_images,
    check_obj_to_img,
    check_same_device,
    check_tensor,
    check_theta,
    values_checked_later,
)
from augpatch.ops.library import call_op
from augpatch.ops.paste import PasteFunction, paste_op

__all__ = ["paste_objects"]


def paste_objects(
    images: Tensor,
    src_boxes: Tensor,
    theta: Tensor,
    src_to_img: Tensor | None,
    dst_boxes: Tensor,
    dst_to_img: Tensor | None,
    *,
    alpha: Tensor | None = None,
    sources: Tensor | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
) -> Tensor:
    """Paste object ``n`` from ``src_boxes[n]`` of source ``src_to_img[n]`` into ``dst_boxes[n]`` of ``dst_to_img[n]``.

    The general form of :func:`warp_patches`: the object is sampled from its source box
    through its own ``theta`` (which maps the *destination* box's normalised coordinates
    to the *source* box's, the ``F.affine_grid`` convention of the warp) and composited
    into its destination box with weight ``alpha``. For integer boxes the new content
    of destination box ``n`` is exactly::

        patch = sources[s:s+1, :, sy1:sy2, sx1:sx2]       # s = src_to_img[n]
        grid = F.affine_grid(theta[n:n+1], [1, C, dy2 - dy1, dx2 - dx1],
                             align_corners=align_corners)
        new = F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode,
                            align_corners=align_corners)
        a = F.grid_sample(alpha_patch, grid, ...).clamp(0, 1)   # 1 without alpha
        out[d, :, dy1:dy2, dx1:dx2] = a * new + (1 - a) * out[d, :, dy1:dy2, dx1:dx2]

    applied in index order (later objects on top), computed in one vectorised pass (no
    Python loop over objects; cost proportional to the pasted pixels plus one copy of
    the batch). Sources are read as they were on input, never from the output. With
    ``src_boxes == dst_boxes``, ``src_to_img == dst_to_img`` and ``alpha=None`` this is
    ``warp_patches(..., overlap="parallel")`` bit for bit. The inputs are never modified.

    Args:
        images: ``[B, C, H, W]`` destination batch (float16/bfloat16/float32/float64 or
            uint8, any memory format, kept in the output).
        src_boxes: ``[N, 4]`` ``xyxy`` pixel boxes in the sources (float or int); the box
            is clipped to its source image, and a box without a pixel pastes nothing.
        theta: ``[N, 2, 3]`` or ``[N, 6]``: output location (normalised in the
            destination box) -> input location (normalised in the source box).
            Identity: the source box is resized onto the destination box.
        src_to_img: ``[N]`` int64 source image of each object (``None`` when the sources
            hold one image).
        dst_boxes: ``[N, 4]`` ``xyxy`` pixel boxes in ``images``; pixel rules as in
            :func:`warp_patches` (clipped to the canvas; no pixel: nothing pasted).
        dst_to_img: ``[N]`` int64 destination image of each object (``None`` for ``B == 1``).
        alpha: optional per-object weights, in the source frame ``[N, H_s, W_s]`` (an
            instance mask of the source image) or box-shaped ``[N, h, w]`` (any other
            size: it covers the source box, sampled in the box's normalised coordinates
            like a Mask R-CNN mask). bool, uint8 (0/1) or float; sampled with the same
            ``theta``, ``mode``, ``padding_mode`` and ``align_corners`` as the image
            (``padding_mode="image"`` reads a box-shaped alpha with zeros outside), then
            clamped to ``[0, 1]``. ``None``: 1 in the destination box.
        sources: ``[B_s, C, H_s, W_s]`` images the objects are read from, of the dtype
            of ``images`` (default: ``images`` itself, as it was on input).
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"``, ``"reflection"`` (relative to the
            source box's pixels, as ``grid_sample`` on the cropped patch) or ``"image"``
            (read the source image around the box; outside it reads zeros).
        align_corners: as in ``F.affine_grid`` / ``F.grid_sample``.

    Returns:
        ``[B, C, H, W]`` of the dtype and memory format of ``images``.

    Differentiable once w.r.t. ``images``, ``sources``, ``theta``, float ``src_boxes`` /
    ``dst_boxes`` (through the sampling locations) and a float ``alpha``; the gradients
    equal those of the loop above. uint8 and half images are computed in float32 and
    rounded back after every paste. Runs as the registered operator
    ``augpatch.ops.paste_op`` (also inside ``torch.compile(fullgraph=True)`` and
    ``torch.export``; value checks run inside it, on the real tensors), with the ``"paste"``
    kernel of the backend the settings pick (``settings.kernel_for(device, op="paste")``).

    Example:
        >>> import torch
        >>> from augpatch.functional import paste_objects
        >>> images = torch.zeros(2, 1, 8, 8)
        >>> images[1, :, 0:2, 0:2] = 1.0  # an object in image 1
        >>> identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]])
        >>> out = paste_objects(images, torch.tensor([[0, 0, 2, 2]]), identity, torch.tensor([1]),
        ...                     torch.tensor([[4, 4, 8, 8]]), torch.tensor([0]), mode="nearest")  # 2x
        >>> out[0, 0, 4:8, 4:8].eq(1).all().item(), out[0].sum().item()
        (True, 16.0)
    """
    images = check_images(images)
    sources = images if sources is None else check_images(sources, "sources")
    if sources.shape[1] != images.shape[1]:
        raise ValueError(f"sources must have the {images.shape[1]} channels of images, got {sources.shape[1]}")
    if sources.dtype != images.dtype:
        raise TypeError(f"sources must have the dtype of images ({images.dtype}), got {sources.dtype}")
    check_choice("mode", mode, MODES)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    check_bool("align_corners", align_corners)
    with values_checked_later():  # the operator checks values, also under torch.compile
        src_boxes = check_boxes(src_boxes, "src_boxes")
        num = src_boxes.shape[0]
        dst_boxes = check_boxes(dst_boxes, "dst_boxes")
        if dst_boxes.shape[0] != num:
            raise ValueError(f"dst_boxes has {dst_boxes.shape[0]} rows but src_boxes has {num}")
        theta = check_theta(theta, num)
        src_to_img = check_obj_to_img(src_to_img, num, sources.shape[0], "src_to_img")
        dst_to_img = check_obj_to_img(dst_to_img, num, images.shape[0], "dst_to_img")
    if alpha is not None:
        alpha = _check_alpha(alpha, num)
    check_same_device(images=images, sources=sources, src_boxes=src_boxes, theta=theta,
                      src_to_img=src_to_img, dst_boxes=dst_boxes, dst_to_img=dst_to_img, alpha=alpha)
    if num == 0:
        return images.clone(memory_format=torch.preserve_format)
    if src_to_img is None:
        src_to_img = torch.zeros(num, dtype=torch.long, device=src_boxes.device)
    if dst_to_img is None:
        dst_to_img = torch.zeros(num, dtype=torch.long, device=dst_boxes.device)
    grad = torch.is_grad_enabled()
    need_loc = grad and (theta.requires_grad or src_boxes.requires_grad or dst_boxes.requires_grad)
    need_diff = alpha is not None and (need_loc or (grad and alpha.requires_grad))
    args = (images, sources, src_boxes, theta, src_to_img, dst_boxes, dst_to_img,
            alpha[:, None] if alpha is not None else None, mode, padding_mode, align_corners, need_loc, need_diff)
    return call_op(paste_op, PasteFunction, *args)[0]  # torch.func transforms: PasteFunction


def _check_alpha(alpha: object, num: int) -> Tensor:
    alpha = check_tensor("alpha", alpha)
    if alpha.dim() != 3 or alpha.shape[0] != num:
        raise ValueError(
            f"alpha must have shape [N, H, W] (source frame) or [N, h, w] (box-shaped) with N = {num} "
            f"objects, got {tuple(alpha.shape)}"
        )
    if alpha.shape[1] == 0 or alpha.shape[2] == 0:
        raise ValueError(f"alpha must not be empty, got shape {tuple(alpha.shape)}")
    if alpha.is_complex() or not (alpha.is_floating_point() or alpha.dtype in (torch.bool, torch.uint8)):
        raise TypeError(f"alpha must be bool, uint8 or floating point, got {alpha.dtype}")
    return alpha
