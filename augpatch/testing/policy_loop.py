"""A per-image, per-box loop port of the reference's semantics (tests' and benchmark's baseline).

``loop_autoaugment(aug, images, boxes, obj_to_img, params)`` replays the parameters of
a :class:`DetectionAutoAugment` call the way the reference
(``tensorflow/tpu`` ``autoaugment_utils.py``) computes a policy: image by image, op by
op, and for the ``*_Only_BBoxes`` ops box by box: crop the box, apply the op to the crop
(torchvision kernels, as the reference's TF ops), paste it back. It takes the same
parameters (sub-policies, coins, signs, cutout positions), so the two do the same work
and their outputs can be compared; it draws nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode

from augpatch.policies import OPS
from augpatch.policies.functional import box_pixel_rects

__all__ = ["loop_autoaugment"]


def _cutout_crop(crop: Tensor, value: float, fill: list[float], center: tuple[int, int]) -> Tensor:
    """The reference's ``Cutout_Only_BBoxes`` on one box crop ``[1, C, h, w]``."""
    out = crop.clone()
    cx, cy = center
    pad = int(value)
    out[..., max(cy - pad, 0):max(cy + pad, 0), max(cx - pad, 0):max(cx + pad, 0)] = (
        _fill_value(fill, crop.dtype)
    )
    return out


def _paste(out: Tensor, b: int, new: Tensor, rect: tuple[int, int, int, int], paste: str) -> None:
    """Write a box's new crop back into image ``b`` of ``out`` (in place).

    ``"slice"``: a slice assignment; ``"reference"``: pad the crop and a mask to the
    image and blend (``image * mask + padded``), as the reference's
    ``_apply_bbox_augmentation`` does.
    """
    j0, i0, j1, i1 = rect
    if paste == "slice":
        out[b : b + 1, :, i0:i1, j0:j1] = new
        return
    pad = (j0, out.shape[-1] - j1, i0, out.shape[-2] - i1)
    mask = torch.nn.functional.pad(torch.zeros_like(new), pad, value=1)
    out[b : b + 1] = out[b : b + 1] * mask + torch.nn.functional.pad(new, pad)


def _fill_value(fill: list[float], dtype: torch.dtype) -> Tensor:
    """``fill`` as a ``[C, 1, 1]`` tensor of ``dtype`` (uint8 rounds)."""
    if dtype == torch.uint8:
        return torch.tensor(fill, dtype=torch.float64).round().to(dtype)[:, None, None]
    return torch.tensor(fill, dtype=dtype)[:, None, None]


def _cutout_pads(
    name: str, value: float, boxes: Tensor, obj: int, size: tuple[int, int]
) -> tuple[int, int] | None:
    """Half-sides ``(x, y)`` of an image-level cutout (``None``: ``BBox_Cutout`` without a box)."""
    if name == "Cutout":
        return int(value), int(value)
    if obj < 0:
        return None
    r = box_pixel_rects(boxes[obj : obj + 1], size)[0].tolist()
    return int(value * (r[2] - r[0]) / 2), int(value * (r[3] - r[1]) / 2)


def loop_autoaugment(
    aug: torch.nn.Module,
    images: Tensor,
    boxes: Tensor,
    obj_to_img: Tensor,
    params: Mapping[str, Tensor],
    *,
    paste: str = "slice",
) -> tuple[Tensor, Tensor]:
    """Replay ``params`` of ``aug`` (a ``DetectionAutoAugment``) image by image, box by box.

    Returns ``(images, boxes)``. Image-level geometric ops and ``BBox_Cutout`` /
    ``Cutout`` follow the same torchvision calls per image; box-only ops crop each box
    (augpatch's pixel membership), apply the op to the crop and paste it back, one box at
    a time, in index order. Box-only geometric ops run on the crop with torchvision's
    ``rotate`` / ``affine`` (about the crop centre, ``fill`` outside the crop), as the
    reference does with its TF ops.

    ``paste="slice"`` writes the crop back with a slice assignment (a competent loop);
    ``paste="reference"`` does what ``_apply_bbox_augmentation`` of the reference does:
    pads the new crop and a mask to the whole image and blends
    (``image * mask + padded``), a pass over the image per box. Same result.
    """
    if paste not in ("slice", "reference"):
        raise ValueError(f"paste must be 'slice' or 'reference', got {paste!r}")
    out = images.clone()
    dtype = torch.float64 if torch.float64 in (images.dtype, boxes.dtype) else torch.float32
    cur = boxes.to(dtype).clone()
    unit = 1.0 if images.dtype == torch.uint8 else 1.0 / 255
    fill_t = torch.as_tensor(aug.fill, dtype=torch.float64).reshape(-1).expand(images.shape[1])
    fill = [float(v) * unit for v in fill_t]
    mode = InterpolationMode.NEAREST if aug.interpolation == "nearest" else InterpolationMode.BILINEAR
    height, width = images.shape[-2:]
    sub = params["sub_policy"].tolist()
    for b in range(images.shape[0]):
        objs = torch.nonzero(obj_to_img == b).flatten().tolist()
        for k, (name, _, _) in enumerate(aug.policy[sub[b]]):
            if not bool(params["apply"][b, k]):
                continue
            value = float(params["magnitude"][b, k])
            spec = OPS[name]
            x = out[b : b + 1]
            if spec.kind == "color":
                out[b : b + 1] = spec.image(x, value)
            elif spec.kind == "cutout":
                cx, cy = (int(v) for v in params["cutout_center"][b, k])
                obj = int(params["bbox_cutout_object"][b, k])
                pads = _cutout_pads(name, value, cur, obj, (height, width))
                if pads is None or (name == "BBox_Cutout" and cx < 0):
                    continue
                pad_x, pad_y = pads
                ys = slice(max(cy - pad_y, 0), max(cy + pad_y, 0))
                xs = slice(max(cx - pad_x, 0), max(cx + pad_x, 0))
                out[b, :, ys, xs] = _fill_value(fill, out.dtype)
            elif spec.kind == "image_geometric":
                kernel, kw = spec.affine(value)
                out[b : b + 1] = getattr(TF, kernel)(x, interpolation=mode, fill=fill, **kw)
                if objs:
                    moved = getattr(TF, f"{kernel}_bounding_boxes")(
                        cur[objs], "XYXY", (height, width), clamping_mode="hard", **kw
                    )
                    cur[objs] = (moved[0] if kernel == "rotate" else moved).to(dtype)
                cur[objs, 2:] = torch.maximum(cur[objs, 2:], cur[objs, :2])
            else:  # box-only: crop, op, paste back, one box at a time
                for n in objs:
                    if not bool(params["box_apply"][n, k]):
                        continue
                    j0, i0, j1, i1 = box_pixel_rects(cur[n : n + 1], (height, width))[0].tolist()
                    if j1 <= j0 or i1 <= i0:
                        continue
                    crop = out[b : b + 1, :, i0:i1, j0:j1]
                    value = float(params["box_magnitude"][n, k])
                    if name == "Cutout_Only_BBoxes":
                        cx, cy = (int(v) for v in params["box_cutout_center"][n, k])
                        new = _cutout_crop(crop, value, fill, (cx - j0, cy - i0))
                    else:
                        new = spec.crop(crop, value, fill, mode)
                    _paste(out, b, new, (j0, i0, j1, i1), paste)
    return out, cur
