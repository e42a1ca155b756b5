"""Collation: per-image ``(image, target)`` samples -> one flat, padded batch
(:func:`collate_objects`), and the conversions and batch-key sets it shares with
the rest of :mod:`augpatch.data`."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

# Target keys that describe the whole image even when their leading size
# happens to equal the number of objects.
_IMAGE_LEVEL_KEYS = frozenset(
    {"image_id", "image_ids", "orig_size", "size", "image_size", "file_name"}
)
# Target keys that torchvision's detection targets hold one row per object: a sample
# whose count differs from its boxes' is refused rather than collated as image-level.
_OBJECT_KEYS = frozenset(
    {"labels", "masks", "keypoints", "area", "iscrowd", "scores", "track_ids"}
)
# Batch entries that are never per-object fields (``keep`` and ``obj_to_img`` are
# per-object but handled explicitly).
_BATCH_KEYS = frozenset({"images", "image_sizes", "obj_to_img", "keep"})


# --------------------------------------------------------------------------- conversion


def _plain(t: Tensor) -> Tensor:
    """Drop any tensor subclass (``tv_tensors``) and return a plain tensor view."""
    return t.as_subclass(Tensor) if type(t) is not Tensor else t


def _image_to_tensor(image: Any, index: int) -> Tensor:
    """Turn a tensor ``[C, H, W]`` or ``[H, W]``, a PIL image or an HWC array into ``[C, H, W]``."""
    if isinstance(image, Tensor):
        image = _plain(image)
        if image.dim() == 2:
            image = image.unsqueeze(0)
        if image.dim() != 3:
            raise ValueError(
                f"sample {index}: an image tensor must be [C, H, W] or [H, W], "
                f"got {tuple(image.shape)}"
            )
        return image
    pil = sys.modules.get("PIL.Image")
    is_pil = pil is not None and isinstance(image, pil.Image)
    np = sys.modules.get("numpy")
    if is_pil or (np is not None and isinstance(image, np.ndarray)):
        import numpy as np  # a PIL image or an array means numpy is installed

        out = torch.from_numpy(np.array(image, copy=True))
        return out.unsqueeze(0) if out.dim() == 2 else out.permute(2, 0, 1).contiguous()
    raise TypeError(
        f"sample {index}: the image must be a tensor, a PIL image or a numpy array, "
        f"got {type(image).__name__}"
    )


def _boxes_to_xyxy(boxes: Any, index: int) -> Tensor:
    """Return plain ``xyxy`` boxes ``[N, 4]``; ``tv_tensors.BoundingBoxes`` are converted first."""
    if not isinstance(boxes, Tensor):
        boxes = torch.as_tensor(boxes)
    fmt = getattr(boxes, "format", None)
    if fmt is not None:  # torchvision BoundingBoxes
        name = getattr(fmt, "value", str(fmt)).upper()
        if name in ("XYWHR", "CXCYWHR", "XYXYXYXY"):
            raise ValueError(
                f"sample {index}: rotated boxes ({name}) cannot be collated as patches; "
                "convert them to XYXY first"
            )
        if name != "XYXY":
            from augpatch.functional import convert_box_format

            return convert_box_format(_plain(boxes), name.lower(), "xyxy")
    boxes = _plain(boxes)
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"sample {index}: boxes must have shape [N, 4], got {tuple(boxes.shape)}")
    return boxes


def _split_sample(sample: Any, index: int) -> tuple[Any, dict[str, Any]]:
    """Accept ``(image, target)``, ``{"image": ..., **target}`` or a bare image."""
    if isinstance(sample, Mapping):
        if "image" not in sample:
            raise KeyError(
                f"sample {index}: a dict sample needs an 'image' key, got {sorted(sample)}"
            )
        return sample["image"], {k: v for k, v in sample.items() if k != "image"}
    if isinstance(sample, (tuple, list)):
        if len(sample) != 2:
            raise ValueError(
                f"sample {index}: expected an (image, target) pair, got {len(sample)} items"
            )
        image, target = sample
        if target is None:
            target = {}
        if not isinstance(target, Mapping):
            raise TypeError(
                f"sample {index}: the target must be a dict, got {type(target).__name__}"
            )
        return image, dict(target)
    return sample, {}


def _pad_to(t: Tensor, height: int, width: int, value: float) -> Tensor:
    pad_h, pad_w = height - t.shape[-2], width - t.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return t
    if t.dtype == torch.bool:
        return F.pad(t.to(torch.uint8), (0, pad_w, 0, pad_h), value=int(value)).bool()
    return F.pad(t, (0, pad_w, 0, pad_h), value=value)


# --------------------------------------------------------------------------- collate


def collate_objects(
    samples: Sequence[Any],
    *,
    pad_value: float = 0.0,
    size_divisible: int = 1,
    object_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Collate per-image detection samples into one flat, augpatch-ready batch.

    Each sample is ``(image, target)`` (or ``{"image": image, **target}``, or a
    bare image with no objects). ``image`` is a tensor ``[C, H, W]`` (also
    ``tv_tensors.Image``), a PIL image or an ``HWC`` numpy array; ``target`` is a
    dict with ``"boxes"`` ``[N_i, 4]`` (tensor or ``tv_tensors.BoundingBoxes``,
    converted to ``xyxy``) and any other fields.

    Returns a dict of tensors (so ``pin_memory=True`` works):

    * ``images`` ``[B, C, H_max, W_max]``: images padded at the bottom and right
      with ``pad_value`` (sizes rounded up to ``size_divisible``);
    * ``image_sizes`` ``[B, 2]`` int64: the real ``(H, W)`` of every image;
    * ``boxes`` ``[N, 4]`` (``N = sum N_i``), ``obj_to_img`` ``[N]`` int64;
    * every per-object field concatenated along dim 0 (``labels`` ``[N]``,
      ``masks`` ``[N, H_max, W_max]`` zero-padded like the images,
      ``keypoints`` ``[N, K, 2]``, ...). A field is per-object if it is named in
      ``object_keys`` or, by default, if it is a tensor whose leading size equals
      ``N_i`` in every sample;
    * other fields: stacked ``[B, ...]`` when they are tensors of one shape,
      else a list of ``B`` values.

    Images without objects are fine (``N_i = 0``). Keypoints are passed through
    in the coordinates they came in (see :class:`BatchAugment` for the half
    pixel between torchvision's and augpatch's conventions).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> ds = [(torch.rand(3, 20, 20), {"boxes": torch.tensor([[0., 0., 5., 5.]]),
        ...                                "labels": torch.tensor([1])})] * 4
        >>> loader = DataLoader(ds, batch_size=2, collate_fn=collate_objects)
        >>> batch = next(iter(loader))
        >>> batch["obj_to_img"].tolist(), batch["labels"].tolist()
        ([0, 1], [1, 1])
    """
    if len(samples) == 0:
        raise ValueError("collate_objects got an empty list of samples")
    if size_divisible < 1:
        raise ValueError(f"size_divisible must be >= 1, got {size_divisible}")
    images: list[Tensor] = []
    targets: list[dict[str, Any]] = []
    for i, sample in enumerate(samples):
        image, target = _split_sample(sample, i)
        images.append(_image_to_tensor(image, i))
        target["boxes"] = _boxes_to_xyxy(target.get("boxes", torch.zeros(0, 4)), i)
        targets.append(target)

    batch_images, sizes = _pad_images(images, pad_value, size_divisible)
    height, width = batch_images.shape[-2:]
    counts = [t["boxes"].shape[0] for t in targets]
    keys: list[str] = []
    for t in targets:
        keys.extend(k for k in t if k not in keys)

    out: dict[str, Any] = {"images": batch_images, "image_sizes": sizes}
    for key in keys:
        if _is_object_field(key, targets, counts, object_keys):
            out[key] = _cat_object_field(key, targets, counts, sizes, height, width)
        else:
            values = [t.get(key) for t in targets]
            if all(isinstance(v, Tensor) for v in values) and len({v.shape for v in values}) == 1:
                out[key] = torch.stack([_plain(v) for v in values])
            else:
                out[key] = values
    out["obj_to_img"] = torch.repeat_interleave(
        torch.arange(len(samples)), torch.tensor(counts, dtype=torch.long)
    )
    return out


def _pad_images(
    images: list[Tensor], pad_value: float, size_divisible: int
) -> tuple[Tensor, Tensor]:
    """Stack ``[C, H_i, W_i]`` images on one canvas (top-left, padded bottom and right):
    ``[B, C, H, W]`` and the sizes ``[B, 2]`` int64."""
    channels = {im.shape[0] for im in images}
    if len(channels) > 1:
        raise ValueError(
            f"all images must have the same number of channels, got {sorted(channels)}"
        )
    dtypes = {im.dtype for im in images}
    if len(dtypes) > 1:
        raise TypeError(f"all images must have the same dtype, got {sorted(map(str, dtypes))}")
    sizes = torch.tensor([im.shape[-2:] for im in images], dtype=torch.long).reshape(-1, 2)
    height = -(-int(sizes[:, 0].max()) // size_divisible) * size_divisible
    width = -(-int(sizes[:, 1].max()) // size_divisible) * size_divisible
    return torch.stack([_pad_to(im, height, width, pad_value) for im in images]), sizes


def _is_object_field(
    key: str,
    targets: list[dict[str, Any]],
    counts: list[int],
    object_keys: Sequence[str] | None,
) -> bool:
    """Whether ``key`` holds one row per object (see :func:`collate_objects`)."""
    if key == "boxes":
        return True
    if object_keys is not None:
        return key in object_keys
    if key in _IMAGE_LEVEL_KEYS or key in ("obj_to_img", "image_sizes", "images"):
        return False
    present = [(t[key], n) for t, n in zip(targets, counts) if key in t]
    if key in _OBJECT_KEYS:  # known per-object: a tensor or a sequence, one row per box
        _refuse_misaligned(key, targets, counts)
        return bool(present)
    return bool(present) and all(
        isinstance(v, Tensor) and v.dim() >= 1 and v.shape[0] == n for v, n in present
    )


def _rows(value: Any) -> int | None:
    """The number of rows of a tensor (``None`` for a 0-d one) or a sequence."""
    if isinstance(value, Tensor):
        return value.shape[0] if value.dim() >= 1 else None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return len(value)
    return None


def _refuse_misaligned(key: str, targets: list[dict[str, Any]], counts: list[int]) -> None:
    """Raise for the first sample whose ``key`` does not hold one row per box."""
    for i, (t, n) in enumerate(zip(targets, counts)):
        v = t.get(key)
        if v is None:  # missing: _cat_object_field says so if the sample has objects
            continue
        rows = _rows(v)
        if rows != n:
            got = f"{rows} rows" if rows is not None else f"no rows (a {type(v).__name__})"
            raise ValueError(
                f"sample {i}: {key!r} has {got} but the sample has {n} boxes; "
                f"{key!r} is a per-object field (one row per box). Fix the target, or pass "
                "collate_objects(..., object_keys=[...]) naming the per-object keys to "
                f"collate {key!r} as an image-level field"
            )


def _cat_object_field(
    key: str,
    targets: list[dict[str, Any]],
    counts: list[int],
    sizes: Tensor,
    height: int,
    width: int,
) -> Tensor:
    """Concatenate one per-object field, padding spatial ``[N_i, ..., H_i, W_i]`` fields."""
    template = next((t[key] for t in targets if key in t), None)
    values: list[Tensor] = []
    for i, (t, n) in enumerate(zip(targets, counts)):
        value = t.get(key)
        if value is None:
            if n > 0:
                raise KeyError(f"sample {i} has {n} objects but no {key!r} field")
            value = torch.zeros((0, *template.shape[1:]), dtype=template.dtype)
        value = _plain(value if isinstance(value, Tensor) else torch.as_tensor(value))
        if value.shape[0] != n:
            raise ValueError(
                f"sample {i}: {key!r} has {value.shape[0]} rows but there are {n} boxes"
            )
        values.append(value)
    spatial = _is_spatial(key, values, counts, sizes)
    parts: list[Tensor] = []
    for i, (value, n) in enumerate(zip(values, counts)):
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        if spatial and tuple(value.shape[-2:]) == (h, w):
            value = _pad_to(value, height, width, 0)
        elif spatial and n == 0:
            value = value.new_zeros((0, *value.shape[1:-2], height, width))
        parts.append(value)
    shapes = {p.shape[1:] for p in parts if p.shape[0] > 0}
    if len(shapes) > 1:
        raise ValueError(
            f"{key!r} has different per-object shapes across samples: {sorted(map(tuple, shapes))}"
        )
    if shapes:
        (shape,) = shapes
        parts = [p if p.shape[0] > 0 else p.new_zeros((0, *shape)) for p in parts]
    return torch.cat(parts, 0)


def _is_spatial(key: str, values: list[Tensor], counts: list[int], sizes: Tensor) -> bool:
    """Whether a per-object field is spatial (``[N_i, ..., H_i, W_i]``, padded like the
    images): its last two sizes are its image's in every sample with objects (with no
    object in the batch: any field of 3 or more dimensions). ``keypoints`` ``[N, K, 2]``
    never are, whatever the image's size (a ``K x 2`` image)."""
    if key == "keypoints":
        return False
    pool = [(v, i) for i, (v, n) in enumerate(zip(values, counts)) if n > 0]
    if not pool:
        return all(v.dim() >= 3 for v in values)
    return all(
        v.dim() >= 3 and tuple(v.shape[-2:]) == (int(sizes[i, 0]), int(sizes[i, 1])) for v, i in pool
    )


def object_fields(batch: Mapping[str, Any], n: int, object_keys: Sequence[str] | None) -> list[str]:
    """Names of the per-object entries of a collated batch (not ``boxes`` / ``obj_to_img``).

    With ``object_keys`` given: those present in ``batch``. Otherwise every tensor with
    at least one dimension and leading size ``n``, except the image-level entries.
    """
    skip = _BATCH_KEYS | {"boxes"}
    if object_keys is not None:
        names = [k for k in object_keys if k in batch and k not in skip]
        for k in names:
            v = batch[k]
            if not isinstance(v, Tensor) or v.dim() == 0 or v.shape[0] != n:
                raise ValueError(
                    f"object key {k!r} must be a tensor with one row per object ({n}), got "
                    f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}"
                )
        return names
    return [
        k
        for k, v in batch.items()
        if k not in skip
        and k not in _IMAGE_LEVEL_KEYS
        and isinstance(v, Tensor)
        and v.dim() >= 1
        and v.shape[0] == n
    ]
