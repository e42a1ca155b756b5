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
from augpatch.policies.functional import box_pixel_rects, shear_degrees, solarize_add

__all__ = ["loop_autoaugment"]


def _crop_op(name: str, crop: Tensor, value: float, fill: list[float], mode: InterpolationMode,
             center: tuple[int, int] | None, unit: float) -> Tensor:
    """The reference's op on one box crop ``[1, C, h, w]`` (about the crop's centre)."""
    h, w = crop.shape[-2:]
    mid = [w / 2, h / 2]
    if name == "Rotate_Only_BBoxes":
        return TF.rotate(crop, value, interpolation=mode, fill=fill)
    if name in ("ShearX_Only_BBoxes", "ShearY_Only_BBoxes"):
        deg = shear_degrees(value)
        shear = [deg, 0.0] if name == "ShearX_Only_BBoxes" else [0.0, deg]
        return TF.affine(crop, angle=0.0, translate=[0.0, 0.0], scale=1.0, shear=shear,
                         interpolation=mode, fill=fill, center=mid)
    if name in ("TranslateX_Only_BBoxes", "TranslateY_Only_BBoxes"):
        shift = [-value, 0.0] if name == "TranslateX_Only_BBoxes" else [0.0, -value]
        return TF.affine(crop, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0],
                         interpolation=mode, fill=fill)
    if name == "Flip_Only_BBoxes":
        return TF.horizontal_flip(crop)
    if name == "Equalize_Only_BBoxes":
        return TF.equalize(crop)
    if name == "Solarize_Only_BBoxes":
        return crop if value > 255 else TF.solarize(crop, value * unit)
    if name == "Cutout_Only_BBoxes":
        out = crop.clone()
        cx, cy = center  # type: ignore[misc]
        pad = int(value)
        out[..., max(cy - pad, 0):max(cy + pad, 0), max(cx - pad, 0):max(cx + pad, 0)] = (
            torch.tensor(fill, dtype=torch.float64).round().to(crop.dtype)[:, None, None]
            if crop.dtype == torch.uint8 else torch.tensor(fill, dtype=crop.dtype)[:, None, None]
        )
        return out
    raise ValueError(name)


def _image_op(name: str, x: Tensor, value: float, fill: list[float], mode: InterpolationMode,
              unit: float) -> Tensor:
    if name == "AutoContrast":
        return TF.autocontrast(x)
    if name == "Equalize":
        return TF.equalize(x)
    if name == "Posterize":
        return TF.posterize(x, int(value))
    if name == "Solarize":
        return x if value > 255 else TF.solarize(x, value * unit)
    if name == "SolarizeAdd":
        return solarize_add(x, value * unit, 128 * unit)
    if name == "Color":
        return TF.adjust_saturation(x, value)
    if name == "Contrast":
        return TF.adjust_contrast(x, value)
    if name == "Brightness":
        return TF.adjust_brightness(x, value)
    if name == "Sharpness":
        return TF.adjust_sharpness(x, value)
    raise ValueError(name)


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
                out[b : b + 1] = _image_op(name, x, value, fill, mode, unit)
            elif spec.kind == "cutout":
                cx, cy = (int(v) for v in params["cutout_center"][b, k])
                if name == "Cutout":
                    pad_x = pad_y = int(value)
                else:
                    obj = int(params["bbox_cutout_object"][b, k])
                    if obj < 0 or cx < 0:
                        continue
                    r = box_pixel_rects(cur[obj : obj + 1], (height, width))[0].tolist()
                    pad_x = int(value * (r[2] - r[0]) / 2)
                    pad_y = int(value * (r[3] - r[1]) / 2)
                ys = slice(max(cy - pad_y, 0), max(cy + pad_y, 0))
                xs = slice(max(cx - pad_x, 0), max(cx + pad_x, 0))
                out[b, :, ys, xs] = torch.tensor(fill, dtype=torch.float64).round().to(
                    out.dtype
                )[:, None, None] if out.dtype == torch.uint8 else torch.tensor(
                    fill, dtype=out.dtype
                )[:, None, None]
            elif spec.kind == "image_geometric":
                if name == "Rotate_BBox":
                    out[b : b + 1] = TF.rotate(x, value, interpolation=mode, fill=fill)
                    if objs:
                        cur[objs] = TF.rotate_bounding_boxes(
                            cur[objs], "XYXY", (height, width), value, clamping_mode="hard"
                        )[0].to(dtype)
                else:
                    shear = {"ShearX_BBox": [shear_degrees(value), 0.0],
                             "ShearY_BBox": [0.0, shear_degrees(value)]}.get(name, [0.0, 0.0])
                    shift = {"TranslateX_BBox": [-value, 0.0],
                             "TranslateY_BBox": [0.0, -value]}.get(name, [0.0, 0.0])
                    kw = {"angle": 0.0, "translate": shift, "scale": 1.0, "shear": shear,
                          "center": [0.5, 0.5]}
                    out[b : b + 1] = TF.affine(x, interpolation=mode, fill=fill, **kw)
                    if objs:
                        cur[objs] = TF.affine_bounding_boxes(
                            cur[objs], "XYXY", (height, width), clamping_mode="hard", **kw
                        ).to(dtype)
                cur[objs, 2:] = torch.maximum(cur[objs, 2:], cur[objs, :2])
            else:  # box-only: crop, op, paste back, one box at a time
                for n in objs:
                    if not bool(params["box_apply"][n, k]):
                        continue
                    j0, i0, j1, i1 = box_pixel_rects(cur[n : n + 1], (height, width))[0].tolist()
                    if j1 <= j0 or i1 <= i0:
                        continue
                    crop = out[b : b + 1, :, i0:i1, j0:j1]
                    center = None
                    if name == "Cutout_Only_BBoxes":
                        cx, cy = (int(v) for v in params["box_cutout_center"][n, k])
                        center = (cx - j0, cy - i0)
                    new = _crop_op(name, crop, float(params["box_magnitude"][n, k]), fill, mode,
                                   center, unit)
                    if paste == "slice":
                        out[b : b + 1, :, i0:i1, j0:j1] = new
                    else:  # pad to the image and blend, as the reference
                        pad = (j0, width - j1, i0, height - i1)
                        mask = torch.nn.functional.pad(torch.zeros_like(new), pad, value=1)
                        content = torch.nn.functional.pad(new, pad)
                        out[b : b + 1] = out[b : b + 1] * mask + content
    return out, cur
