"""Detector inputs: :func:`to_detection_inputs` turns a (augmented) batch into what
torchvision detectors take."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from augpatch.data.collate import _BATCH_KEYS, object_fields
from augpatch.functional import clip_boxes_to_images
from augpatch.functional.checks import check_image_sizes, check_obj_to_img

# --------------------------------------------------------------------------- detector inputs


def to_detection_inputs(
    batch: Mapping[str, Any],
    *,
    dtype: torch.dtype | None = torch.float32,
    drop_invalid: bool = True,
    object_keys: Sequence[str] | None = None,
) -> tuple[list[Tensor], list[dict[str, Any]]]:
    """Turn a collated (and augmented) batch into torchvision detection-model inputs.

    torchvision's detectors (``fasterrcnn_*``, ``retinanet_*``, ``maskrcnn_*``, ...)
    take ``images``, a list of ``B`` float tensors ``[C, H_i, W_i]`` each at its own
    size, and ``targets``, a list of ``B`` dicts with ``boxes [N_i, 4]`` (``xyxy``)
    and the other per-object fields (``labels``, ``masks``, ``keypoints``, ...).

    Args:
        batch: a dict as returned by :func:`collate_objects` / :class:`BatchAugment`:
            ``images [B, C, H, W]``, ``boxes [N, 4]``, ``obj_to_img [N]`` (int64 in
            ``[0, B)``), optional ``image_sizes [B, 2]`` (default: the full canvas),
            ``keep [N]`` and per-object fields.
        dtype: floating dtype of the returned images (and boxes). uint8 images are
            scaled to ``[0, 1]``; float images are only cast. ``None`` keeps the
            images' and boxes' dtypes (no scaling).
        drop_invalid: drop the objects that cannot train a detector: ``keep`` False
            (when the batch has ``keep``), a box with no positive width and height
            after the clip to its image (torchvision refuses those: "All bounding
            boxes should have positive height and width"), or a ``masks [N, H, W]``
            entry with no pixel inside its image. Every per-object field is dropped
            with them.
        object_keys: the per-object entries (default: as :class:`BatchAugment` finds
            them: tensors with one row per object, except image-level entries).

    Returns:
        ``(images, targets)``: image ``b`` is ``batch["images"][b, :, :h, :w]`` with
        ``(h, w) = image_sizes[b]``; ``targets[b]`` holds ``boxes`` clipped to
        ``[0, w] x [0, h]`` and every per-object field restricted to the objects of
        image ``b`` (in their order), spatial per-object fields (``masks [N, H, W]``)
        cropped like the images, and every image-level entry (``image_id``, ...)
        indexed at ``b``. ``keep``, ``obj_to_img`` and ``image_sizes`` are not copied
        into the targets. Everything stays on the batch's device.

    Example:
        >>> import torch
        >>> from augpatch.data import collate_objects, to_detection_inputs
        >>> batch = collate_objects([
        ...     (torch.zeros(3, 20, 30, dtype=torch.uint8),
        ...      {"boxes": torch.tensor([[1.0, 2.0, 9.0, 12.0]]), "labels": torch.tensor([3])}),
        ...     (torch.zeros(3, 24, 16, dtype=torch.uint8),
        ...      {"boxes": torch.tensor([[10.0, 20.0, 25.0, 26.0]]), "labels": torch.tensor([4])}),
        ... ])
        >>> images, targets = to_detection_inputs(batch)
        >>> [tuple(im.shape) for im in images], images[0].dtype
        ([(3, 20, 30), (3, 24, 16)], torch.float32)
        >>> targets[0]["labels"].tolist(), targets[1]["boxes"].tolist()  # clipped to 24 x 16
        ([3], [[10.0, 20.0, 16.0, 24.0]])
    """
    images, boxes, obj_to_img, sizes = _check_detection_batch(batch, dtype)
    height, width = images.shape[-2:]
    n = boxes.shape[0]
    fields = object_fields(batch, n, object_keys)
    boxes = clip_boxes_to_images(boxes, obj_to_img, sizes)
    order, counts = _detection_order(batch, boxes, obj_to_img, sizes, drop_invalid, fields)

    def split(t: Tensor) -> list[Tensor]:
        return list(torch.split(t.index_select(0, order.to(t.device)), counts, dim=0))

    float_images = _detection_images(images, dtype)
    sizes_list = [(int(h), int(w)) for h, w in sizes.tolist()]
    out_images = [float_images[i, :, :h, :w] for i, (h, w) in enumerate(sizes_list)]

    per_object = {"boxes": split(boxes if dtype is None else boxes.to(dtype))}
    for key in fields:
        per_object[key] = split(batch[key])
    return out_images, _detection_targets(batch, per_object, sizes_list, (height, width))


def _detection_targets(
    batch: Mapping[str, Any],
    per_object: dict[str, list[Tensor]],
    sizes: list[tuple[int, int]],
    canvas: tuple[int, int],
) -> list[dict[str, Any]]:
    """One dict per image: its per-object fields (spatial ones cropped to the image) and
    the image-level entries of ``batch`` indexed at the image."""
    b = len(sizes)
    targets: list[dict[str, Any]] = []
    for i, (h, w) in enumerate(sizes):
        target: dict[str, Any] = {}
        for key, parts in per_object.items():
            v = parts[i]
            if key != "boxes" and v.dim() >= 3 and tuple(v.shape[-2:]) == canvas:
                v = v[..., :h, :w]
            target[key] = v
        targets.append(target)
    for key, value in batch.items():
        if key in _BATCH_KEYS or key == "boxes" or key in per_object:
            continue
        stacked = isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == b
        if stacked or (isinstance(value, (list, tuple)) and len(value) == b):
            for i in range(b):
                targets[i][key] = value[i]
    return targets


def _check_detection_batch(
    batch: Mapping[str, Any], dtype: torch.dtype | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Validate a batch for :func:`to_detection_inputs`: ``(images, boxes, obj_to_img,
    image_sizes)`` with ``image_sizes`` ``[B, 2]`` (the canvas for every image if absent)."""
    for required in ("images", "boxes", "obj_to_img"):
        if required not in batch:
            raise KeyError(f"the batch has no {required!r} entry (use augpatch.data.collate_objects)")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    images = batch["images"]
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(
            f"batch['images'] must be a tensor [B, C, H, W], got "
            f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}"
        )
    b, _, height, width = images.shape
    boxes = batch["boxes"]
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"batch['boxes'] must be a tensor [N, 4], got "
            f"{tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__}"
        )
    obj_to_img = check_obj_to_img(batch["obj_to_img"], boxes.shape[0], b, "batch['obj_to_img']")
    sizes = check_image_sizes(batch.get("image_sizes"), b, (height, width), "batch['image_sizes']")
    if sizes is None:
        sizes = torch.tensor([[height, width]] * b, dtype=torch.long).reshape(b, 2)
    return images, boxes, obj_to_img, sizes


def _detection_order(
    batch: Mapping[str, Any],
    boxes: Tensor,
    obj_to_img: Tensor,
    sizes: Tensor,
    drop_invalid: bool,
    fields: list[str],
) -> tuple[Tensor, list[int]]:
    """The objects to return, grouped by image (stable), and how many each image gets."""
    n, b = boxes.shape[0], sizes.shape[0]
    select = None
    if drop_invalid:
        good = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        keep = batch.get("keep")
        if isinstance(keep, Tensor):
            if keep.shape != (n,):
                raise ValueError(f"batch['keep'] must be [N] with N = {n}, got {tuple(keep.shape)}")
            good = good & keep.to(device=good.device, dtype=torch.bool)
        masks = batch.get("masks")
        if "masks" in fields and masks.dim() == 3:
            good = good & _mask_in_image(masks, obj_to_img, sizes).to(good.device)
        if not bool(good.all()):
            select = good
    order_src = obj_to_img if select is None else obj_to_img[select]
    order = torch.sort(order_src, stable=True).indices
    if select is not None:
        order = torch.nonzero(select).flatten()[order]
    counts = torch.bincount(obj_to_img[order], minlength=b).tolist() if order.numel() else [0] * b
    return order, counts


def _mask_in_image(masks: Tensor, obj_to_img: Tensor, sizes: Tensor) -> Tensor:
    """``[N]`` bool: mask ``n`` ``[N, H, W]`` has a pixel inside its own image's region."""
    device = masks.device
    per_obj = sizes.to(device).index_select(0, obj_to_img.to(device))  # [N, 2]
    rows = torch.arange(masks.shape[-2], device=device)[None, :, None] < per_obj[:, 0, None, None]
    cols = torch.arange(masks.shape[-1], device=device)[None, None, :] < per_obj[:, 1, None, None]
    return ((masks != 0) & rows & cols).flatten(1).any(1)


def _detection_images(images: Tensor, dtype: torch.dtype | None) -> Tensor:
    if dtype is None:
        return images
    if images.dtype == torch.uint8:
        return images.to(dtype) / 255
    if images.is_floating_point():
        return images.to(dtype)
    raise TypeError(f"batch['images'] must be uint8 or floating point, got {images.dtype}")
