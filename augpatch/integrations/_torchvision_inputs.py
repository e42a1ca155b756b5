"""The torchvision adapter's input-type helpers: box formats, images (tensor / PIL), targets.

Split out of :mod:`augpatch.integrations.torchvision` (which re-exports what it offers):
finding a sample's target dict (and the warning when its boxes are plain tensors),
reading ``BoundingBoxes`` of any format as ``xyxy`` or corners and moving rotated ones
exactly, an image (plain tensor, ``tv_tensors.Image``, PIL) as a ``[B, C, H, W]``
tensor, mask size checks, dtype rules of the outputs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2._utils import is_pure_tensor

from augpatch.functional import theta_to_pixel_matrix, transform_points

__all__ = ["labels_getter"]


_ROTATED = ("XYWHR", "CXCYWHR", "XYXYXYXY")
_FLIP_ORDER = [1, 0, 3, 2]  # TL, TR, BR, BL -> TR, TL, BL, BR (keeps the winding after a mirror)


def labels_getter(*keys: str) -> Callable[[Any], tuple[Tensor, ...]]:
    """A ``labels_getter`` for ``v2.SanitizeBoundingBoxes`` that returns several target entries.

    Finds the target dict of the sample (the sample itself, or the first dict in a
    tuple / list sample) and returns ``(target[k] for k in keys if k in target)``,
    so the sanitizer filters all of them with the boxes. Typical use keeps a
    batched sample's ``obj_to_img`` aligned with its boxes.

    Example:
        >>> import torch
        >>> get = labels_getter("labels", "obj_to_img")
        >>> sample = (None, {"labels": torch.tensor([1, 2]), "obj_to_img": torch.tensor([0, 1])})
        >>> [t.tolist() for t in get(sample)]
        [[1, 2], [0, 1]]
    """
    if not keys:
        raise ValueError("labels_getter needs at least one key")

    def getter(sample: Any) -> tuple[Tensor, ...]:
        target = _find_target(sample)
        if target is None:
            raise ValueError(f"labels_getter{keys}: the sample holds no target dict")
        return tuple(target[k] for k in keys if k in target)

    return getter


def _find_target(sample: Any) -> Mapping[str, Any] | None:
    """The first dict of a sample: the sample itself or one of its (nested) items."""
    if isinstance(sample, Mapping):
        return sample
    if isinstance(sample, (tuple, list)):
        for item in sample:
            found = _find_target(item)
            if found is not None:
                return found
    return None


def _fmt(boxes: tv_tensors.BoundingBoxes) -> str:
    fmt = boxes.format
    return fmt.name if hasattr(fmt, "name") else str(fmt).upper()


def _xyxy_corners(xyxy: Tensor) -> Tensor:
    """``[N, 4]`` xyxy -> ``[N, 4, 2]`` corners TL, TR, BR, BL."""
    x1, y1, x2, y2 = xyxy.unbind(-1)
    return torch.stack(
        [torch.stack(c, -1) for c in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], dim=-2
    )


def _plain(t: Tensor) -> Tensor:
    return t.as_subclass(Tensor)


def _is_image(x: Any) -> bool:
    """Whether ``x`` is an image input: ``tv_tensors.Image``, PIL, or a pure tensor."""
    return isinstance(x, (tv_tensors.Image, PIL.Image.Image)) or (
        isinstance(x, Tensor) and is_pure_tensor(x)
    )


#: PIL modes stored as one uint8 per band: ``np.asarray(image)`` is ``[H, W, bands]`` uint8
_BYTE_MODES = {"L": 1, "RGB": 3, "RGBA": 4}


def _pil_tensor(image: PIL.Image.Image) -> Tensor:
    """``TF.pil_to_tensor(image)`` (``[C, H, W]`` uint8, the same values) with one copy of
    the pixels instead of two: PIL's own array export (``np.array``), viewed ``[C, H, W]``
    with channels-last strides (the warp reads that layout directly); other modes:
    ``TF.pil_to_tensor``."""
    if image.mode not in _BYTE_MODES:
        return TF.pil_to_tensor(image)
    pixels = torch.from_numpy(np.array(image))
    return pixels.reshape(image.size[1], image.size[0], -1).permute(2, 0, 1)


class _ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ``struct ArrowArray`` (a stable ABI)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _pil_pixels(image: PIL.Image.Image, batched: bool = False) -> Tensor | None:
    """The pixels of an ``RGB`` / ``RGBA`` PIL image as a ``[4, H, W]`` uint8 view of its
    own memory (channels-last strides), without a copy, or ``None`` where Pillow does not
    export it so (another mode, rows not in one block, an older Pillow).

    Pillow stores a multi-band pixel in 4 bytes (``RGB`` with a padding byte: ``RGBX``)
    and exports that storage zero-copy through the Arrow C data interface
    (``Image.__arrow_c_array__``, Pillow >= 11.2: ``W * H`` fixed-size lists of 4
    uint8). The view keeps the export alive (so the memory stays valid while the view
    lives) and is read only by the warp (it is the user's image). Channel 3 of an ``RGB``
    image is Pillow's padding byte. ``batched``: ``[1, 4, H, W]`` with the strides of a
    dense channels-last batch (the warp's own output layout, so that the compiled kernel
    reads it as it is and copies it as one block; ``pixels[None]`` would get a batch
    stride of 4).
    """
    if image.mode not in ("RGB", "RGBA") or not hasattr(image, "__arrow_c_array__"):
        return None
    try:
        schema, array = image.__arrow_c_array__()
        parent = ctypes.cast(_capsule_pointer(array, b"arrow_array"), ctypes.POINTER(_ArrowArray))[0]
    except (ValueError, TypeError, AttributeError):  # e.g. rows not contiguous (a large image)
        return None
    width, height = image.size
    if parent.n_children != 1 or parent.offset != 0 or parent.length != width * height:
        return None
    child = parent.children[0][0]
    if child.n_buffers != 2 or child.offset != 0 or child.length != 4 * width * height:
        return None
    if not child.buffers[1]:
        return None
    memory = (ctypes.c_uint8 * (4 * width * height)).from_address(child.buffers[1])
    memory._export = (schema, array)  # type: ignore[attr-defined]  # released with the view
    pixels = torch.frombuffer(memory, dtype=torch.uint8)
    if batched:
        return pixels.view(1, height, width, 4).permute(0, 3, 1, 2)
    return pixels.view(height, width, 4).permute(2, 0, 1)


def _tensor_pil(image: Tensor, mode: str) -> PIL.Image.Image:
    """``TF.to_pil_image(image, mode=mode)`` of a uint8 ``[C, H, W]`` tensor of ``mode``'s
    band count (``L``, ``RGB``, ``RGBA``), or ``[4, H, W]`` for ``RGB`` (Pillow's own
    4-byte layout, :func:`_pil_pixels`: the fourth channel is dropped): PIL decodes the
    ``[H, W, C]`` bytes into an image it allocates without filling it first
    (``TF.to_pil_image`` fills the new image, then decodes); the same pixels. Other
    tensors: ``TF.to_pil_image``."""
    rawmode = "RGBX" if mode == "RGB" and image.shape[0] == 4 else mode  # see _pil_pixels
    if image.dtype != torch.uint8 or (
        rawmode == mode and _BYTE_MODES.get(mode) != image.shape[0]
    ):
        return TF.to_pil_image(image, mode=mode)
    out = PIL.Image.new(mode, (image.shape[2], image.shape[1]), None)
    out.frombytes(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), "raw", rawmode)
    return out


def _image_tensor(x: Any, batched: bool = False) -> Tensor:
    """An image as a plain ``[C, H, W]`` / ``[B, C, H, W]`` tensor (``[B, C, H, W]`` if
    ``batched``)."""
    if isinstance(x, PIL.Image.Image):
        t = _pil_tensor(x)
    else:
        t = _plain(x)
        if t.dim() == 2:
            t = t[None]
    if t.dim() not in (3, 4):
        raise ValueError(f"images must be [C, H, W] or [B, C, H, W], got {tuple(t.shape)}")
    return t[None] if batched and t.dim() == 3 else t


def _check_mask_size(
    transform: Any, mask: tv_tensors.Mask, params: dict[str, Any]
) -> Tensor:
    """The mask as a plain tensor; refused unless it has the image's size (the warp and the
    boxes' clip are the image's: a mask of another size would be moved on its own canvas)."""
    size, canvas = tuple(mask.shape[-2:]), params["canvas"]
    if size != canvas:
        raise ValueError(
            f"{type(transform).__name__}: a Mask of size (H, W) = {size} does not match the "
            f"image's size {canvas}; masks must cover the image pixel for pixel (resize or "
            "pad the mask to the image before this transform)"
        )
    return _plain(mask)


def _xyxy(bbox: tv_tensors.BoundingBoxes) -> Tensor:
    """``[N, 4]`` axis-aligned ``xyxy`` of the boxes (the envelope of rotated ones)."""
    fmt = _fmt(bbox)
    if fmt in _ROTATED:
        corners = _corners(bbox)
        return torch.cat([corners.amin(1), corners.amax(1)], -1)
    return _converted(_plain(bbox), fmt, "XYXY")


def _converted(boxes: Tensor, old: str, new: str) -> Tensor:
    """``TF.convert_bounding_box_format`` of plain boxes (``boxes`` itself for the same
    format, as torchvision returns it, without its dispatch: tens of microseconds a call)."""
    if old == new:
        return boxes
    return TF.convert_bounding_box_format(boxes, old_format=old, new_format=new)


def _corners(bbox: tv_tensors.BoundingBoxes) -> Tensor:
    """``[N, 4, 2]`` corners of rotated boxes, in ``XYXYXYXY`` order."""
    data = TF.convert_bounding_box_format(_plain(bbox), old_format=_fmt(bbox), new_format="XYXYXYXY")
    return data.reshape(-1, 4, 2)


def _float(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_floating_point else torch.float32


def _cast(data: Tensor, dtype: torch.dtype) -> Tensor:
    return data.to(dtype) if dtype.is_floating_point else data.round().to(dtype)


def _rotated_box_data(
    bbox: tv_tensors.BoundingBoxes,
    corners: Tensor,
    patches: Tensor,
    theta: Tensor,
    applied: Tensor,
    align_corners: bool,
) -> Tensor:
    """``[N, 8]`` ``XYXYXYXY`` of boxes given by their ``[N, 4, 2]`` corners, each moved
    exactly by its object's affine where ``applied`` (the corner order kept after a
    mirror), clamped as torchvision clamps rotated boxes where they stay rectangles."""
    moved = transform_points(corners.to(theta.dtype), patches, theta, align_corners=align_corners)
    if applied.any():
        pixel = theta_to_pixel_matrix(theta, patches, align_corners=align_corners)
        mirrored = applied & (torch.linalg.det(pixel[:, :2, :2]) < 0)
        moved = torch.where(mirrored[:, None, None], moved[:, _FLIP_ORDER], moved)
    moved = torch.where(applied[:, None, None], moved, corners.to(moved.dtype))
    data = moved.reshape(-1, 8)
    if getattr(bbox, "clamping_mode", None) is not None:
        # torchvision's clamping assumes rectangles: a sheared parallelogram stays exact
        e1, e2 = moved[:, 1] - moved[:, 0], moved[:, 2] - moved[:, 1]
        scale = (e1.norm(dim=-1) * e2.norm(dim=-1)).clamp_min(1e-12)
        rect = (e1 * e2).sum(-1).abs() / scale < 1e-4
        if bool(rect.any()):
            clamped = TF.clamp_bounding_boxes(
                data[rect],
                format="XYXYXYXY",
                canvas_size=bbox.canvas_size,
                clamping_mode=bbox.clamping_mode,
            )
            data = data.clone()
            data[rect] = clamped.to(data.dtype)
    return data


def _no_bounding_boxes_message(name: str, found: Any, action: str) -> str:
    """The warning of a transform ``name`` whose sample's target holds ``found`` as its
    ``"boxes"`` (not ``tv_tensors.BoundingBoxes``), so that it ``action``."""
    what = (
        f"a plain {type(found).__name__} of shape {tuple(found.shape)}"
        if isinstance(found, Tensor)
        else f"a {type(found).__name__}"
    )
    return (
        f"{name} found no tv_tensors.BoundingBoxes in the sample: its "
        f"target's 'boxes' is {what}, so it {action} (no object moved). torchvision "
        "transforms dispatch by type: put this transform before v2.ToPureTensor() "
        "(which turns every tv_tensor into a plain tensor), with the boxes as "
        "tv_tensors.BoundingBoxes (wrap_dataset_for_transforms_v2 gives them, or "
        "tv_tensors.BoundingBoxes(boxes, format='XYXY', canvas_size=(H, W))). "
        "This warning is shown once per transform."
    )
