"""Data-loading glue: collate per-object samples, augment whole batches, seed workers.

Detection datasets return one ``(image, target)`` pair per image, with a
different number of objects in each. augpatch works on flat batches: images
``[B, C, H, W]``, boxes ``[N, 4]`` and ``obj_to_img`` ``[N]``. This module turns
the first into the second and runs augpatch transforms on the batch, on the CPU
or on the GPU.

* :func:`collate_objects` is a ``collate_fn`` for :class:`torch.utils.data.DataLoader`.
* :class:`BatchAugment` applies an augpatch transform to a collated batch; use it
  as the ``collate_fn`` itself when ``num_workers == 0``, or as a step after
  ``batch = loader_output`` (and ``.to(device)``) in the main process otherwise.
* :func:`to_detection_inputs` turns a (augmented) batch back into what torchvision
  detectors take: a list of float images at their own sizes and a list of target dicts.
* :func:`seed_worker` is a ``worker_init_fn`` that gives every worker its own,
  reproducible random streams.

Example:
    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> from augpatch.data import collate_objects, seed_worker
    >>> samples = [
    ...     (torch.zeros(3, 32, 40), {"boxes": torch.tensor([[1.0, 2.0, 9.0, 12.0]]),
    ...                               "labels": torch.tensor([3])}),
    ...     (torch.zeros(3, 30, 30), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0).long()}),
    ... ]
    >>> batch = collate_objects(samples)
    >>> batch["images"].shape, batch["boxes"].shape, batch["obj_to_img"].tolist()
    (torch.Size([2, 3, 32, 40]), torch.Size([1, 4]), [0])
    >>> batch["image_sizes"].tolist()
    [[32, 40], [30, 30]]
"""

from __future__ import annotations

import functools
import inspect
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from augpatch.functional import clip_boxes_to_images
from augpatch.functional.checks import check_image_sizes, check_obj_to_img

__all__ = [
    "BatchAugment",
    "collate_objects",
    "is_references_batch",
    "mix_seeds",
    "register_reseed_hook",
    "seed_worker",
    "to_detection_inputs",
]

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


# --------------------------------------------------------------------------- batch augment


class BatchAugment:
    """Apply an augpatch transform to a whole collated batch, optionally on a device.

    Args:
        transform: an augpatch transform (``augpatch.transforms.*``,
            :class:`augpatch.policies.DetectionAutoAugment`) called as
            ``transform(images, boxes, obj_to_img, masks=..., keypoints=...)``.
        device: where to run it (``"cuda"``, ``"cpu"``, a ``torch.device``), or
            ``None`` to stay where the batch is.
        collate_fn: used when the call receives a list of samples.
        non_blocking: passed to ``Tensor.to`` (useful with ``pin_memory=True``).
        pixel_index_keypoints: the batch's ``keypoints`` use the pixel-index
            convention of torchvision / Kornia / albumentations (pixel ``j`` has
            its centre at ``x = j``); they are shifted by half a pixel into
            augpatch's convention (centre at ``j + 0.5``) and back. Keypoints are
            ``[N, K, 2]``, or torchvision's ``[N, K, 3]`` whose third column (the
            visibility) is kept as it is.
        object_keys: the batch entries that hold one row per object, filtered with
            the objects when the transform drops some (``drop_invalid=True``). Default:
            as :func:`collate_objects` decides, every tensor whose leading size is the
            number of objects ``N`` except the image-level entries (``images``,
            ``image_sizes``, ``image_id``, ``orig_size``, ...). Name them when an
            image-level tensor ``[B, ...]`` of another name may have ``B == N``.

    Two ways to use it:

    * ``num_workers == 0``: ``DataLoader(ds, collate_fn=BatchAugment(aug, "cuda"))``
      collates in the main process and augments on the GPU.
    * ``num_workers > 0``: ``DataLoader(ds, num_workers=4, collate_fn=collate_objects,
      pin_memory=True)``, then ``batch = BatchAugment(aug, "cuda")(batch)`` in the
      training loop. CUDA cannot be initialised in forked worker processes, so
      asking for a CUDA device inside a worker raises a ``RuntimeError`` that
      says exactly this.

    A third: torchvision's detection references hold ``(images, targets)`` (lists);
    ``images, targets = batch_augment((images, targets))`` returns that format
    (:meth:`augment_references`), one line in ``engine.py``'s ``train_one_epoch``.

    **Padded batches.** When the batch has ``image_sizes`` ``[B, 2]`` (images of
    different sizes on one canvas, :func:`collate_objects`), the transform gets
    ``image_sizes=`` as a keyword if its signature takes it (a parameter of that name
    or ``**kwargs``; inspected once), so each image is transformed as its own region.
    Whatever the transform, the returned boxes are then clipped to their own images
    (:func:`augpatch.functional.clip_boxes_to_images`) and ``keep`` is False for an
    object whose box is degenerate after that clip (it left its image).

    The call on a dict returns a new dict: ``images``, ``boxes``, ``masks`` and
    ``keypoints`` replaced by their augmented versions, every other tensor
    moved to ``device``, and:

    * ``keep`` ``[N]`` bool (when the transform reports it, as every augpatch
      transform does): False where an object's new box is degenerate. Degenerate
      boxes are exactly zero-width or zero-height (never inverted); drop them before
      a detector with ``batch["keep"]`` or :func:`to_detection_inputs`.
    * when the transform drops objects (``drop_invalid=True``), every per-object
      entry (``labels``, ``masks``, ``keypoints``, ``obj_to_img``, ``area``, ... see
      ``object_keys``) is filtered with the same ``keep``, so that all of them stay
      aligned with ``boxes``; ``keep`` is then filtered too (all True).

    Example:
        >>> import torch
        >>> from augpatch.data import BatchAugment
        >>> identity = lambda images, boxes, obj_to_img=None, **kw: (images, boxes)
        >>> step = BatchAugment(identity, device=None)
        >>> out = step([(torch.zeros(3, 8, 8), {"boxes": torch.tensor([[0., 0., 4., 4.]])})])
        >>> out["images"].shape, out["boxes"].shape
        (torch.Size([1, 3, 8, 8]), torch.Size([1, 4]))
    """

    def __init__(
        self,
        transform: Callable[..., Any],
        device: str | torch.device | None = "cuda",
        *,
        collate_fn: Callable[[Sequence[Any]], dict[str, Any]] = collate_objects,
        non_blocking: bool = True,
        pixel_index_keypoints: bool = False,
        object_keys: Sequence[str] | None = None,
    ) -> None:
        self.transform = transform
        self.device = torch.device(device) if device is not None else None
        self.collate_fn = collate_fn
        self.non_blocking = non_blocking
        self.pixel_index_keypoints = pixel_index_keypoints
        if object_keys is not None and (
            isinstance(object_keys, str) or not all(isinstance(k, str) for k in object_keys)
        ):
            raise TypeError("object_keys must be a sequence of key names (str)")
        self.object_keys = None if object_keys is None else tuple(object_keys)
        self._accepts_image_sizes: bool | None = None

    def _check_not_in_worker(self) -> None:
        if self.device is None or self.device.type in ("cpu", "meta"):
            return
        info = torch.utils.data.get_worker_info()
        if info is not None:
            raise RuntimeError(
                f"BatchAugment(device={str(self.device)!r}) was called inside DataLoader worker "
                f"{info.id}: {self.device.type.upper()} cannot be used in worker processes. "
                "Give the DataLoader collate_fn=augpatch.data.collate_objects "
                "(and pin_memory=True), "
                "then call this BatchAugment on each batch in the main process: "
                "`for batch in loader: batch = batch_augment(batch)`. "
                "Alternatively use num_workers=0, or device='cpu' inside workers."
            )

    def _object_fields(self, batch: Mapping[str, Any], n: int) -> list[str]:
        """The per-object entries of ``batch`` (besides ``boxes`` and ``obj_to_img``)."""
        return object_fields(batch, n, self.object_keys)

    def __call__(self, batch: Any) -> Any:
        """Augment a batch; returns a new batch in the format it came in.

        * a dict (from :func:`collate_objects`): returns a new dict (see the class);
        * ``(images, targets)`` as torchvision's detection references hold them (a
          list of ``[C, H_i, W_i]`` images and a list of target dicts): returns
          ``(images, targets)`` the same way (:meth:`augment_references`);
        * a list of samples: collated with ``collate_fn`` first, returns a dict.
        """
        self._check_not_in_worker()
        if is_references_batch(batch):
            return self.augment_references(*batch)
        if not isinstance(batch, Mapping):
            batch = self.collate_fn(batch)
        return self._augment(batch, self.device)

    def augment_references(
        self, images: Sequence[Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Tensor], list[dict[str, Any]]]:
        """Augment a batch in the format of torchvision's ``references/detection``.

        Args:
            images: ``B`` image tensors ``[C, H_i, W_i]`` (sizes may differ).
            targets: ``B`` dicts with ``boxes [N_i, 4]`` (``xyxy``, or any
                ``BoundingBoxes`` format) and any other keys (``labels``, ``masks``,
                ``image_id``, ...).

        Returns:
            ``(images, targets)``: image ``b`` augmented, at its own size and dtype;
            target ``b`` with every key it had, the per-object ones (as
            :func:`collate_objects` / ``object_keys`` decide) moved or filtered with the
            kept objects, ``boxes`` clipped to the image (``xyxy``; a
            ``tv_tensors.BoundingBoxes`` comes back as one, ``canvas_size`` the image's).
            Objects that left their image are dropped (:func:`to_detection_inputs`).

        Example:
            >>> import torch
            >>> from augpatch.data import BatchAugment
            >>> from augpatch.transforms import RandomPatchAffine
            >>> aug = BatchAugment(RandomPatchAffine(degrees=10.0, p=1.0), device=None)
            >>> images = [torch.rand(3, 40, 50), torch.rand(3, 30, 20)]
            >>> targets = [{"boxes": torch.tensor([[2.0, 2.0, 20.0, 30.0]]), "labels": torch.tensor([1]),
            ...             "image_id": 7},
            ...            {"boxes": torch.tensor([[1.0, 1.0, 15.0, 25.0]]), "labels": torch.tensor([2]),
            ...             "image_id": 8}]
            >>> images, targets = aug((images, targets))
            >>> [tuple(im.shape) for im in images], [t["image_id"] for t in targets]
            ([(3, 40, 50), (3, 30, 20)], [7, 8])
        """
        if len(images) != len(targets):
            raise ValueError(
                f"images and targets must have the same length, got {len(images)} and {len(targets)}"
            )
        collate = self.collate_fn
        if collate is collate_objects and self.object_keys is not None:
            collate = functools.partial(collate_objects, object_keys=("boxes", *self.object_keys))
        # without a device, the batch stays where the images are (e.g. moved by the loop)
        device = self.device if self.device is not None else images[0].device
        batch = self._augment(collate(list(zip(images, targets))), device)
        out_images, out_targets = to_detection_inputs(batch, dtype=None, object_keys=self.object_keys)
        return out_images, [
            _like_input(t, src, tuple(im.shape[-2:]))
            for t, src, im in zip(out_targets, targets, out_images)
        ]

    def _transform_kwargs(self, out: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the transform: masks, keypoints and ``image_sizes``."""
        kwargs: dict[str, Any] = {}
        if isinstance(out.get("masks"), Tensor):
            kwargs["masks"] = out["masks"]
        keypoints = out.get("keypoints")
        if isinstance(keypoints, Tensor):
            if keypoints.dim() == 3 and keypoints.shape[-1] > 2:  # [N, K, 3]: x, y, visibility
                keypoints = keypoints[..., :2]
            kwargs["keypoints"] = keypoints + 0.5 if self.pixel_index_keypoints else keypoints
        if out.get("image_sizes") is not None and self._takes_image_sizes():
            kwargs["image_sizes"] = out["image_sizes"]
        return kwargs

    def _takes_image_sizes(self) -> bool:
        """Whether the transform accepts ``image_sizes=`` (its signature, inspected once)."""
        if self._accepts_image_sizes is None:
            try:
                fn = self.transform
                fn = fn.forward if isinstance(fn, torch.nn.Module) else fn  # not Module.__call__
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):  # no signature (some builtins): do not guess
                params = []
            self._accepts_image_sizes = any(
                p.name == "image_sizes" or p.kind == inspect.Parameter.VAR_KEYWORD for p in params
            )
        return self._accepts_image_sizes

    def _augment(
        self, batch: Mapping[str, Any], device: torch.device | None
    ) -> dict[str, Any]:
        """Move a collated batch to ``device``, run the transform, align the per-object fields."""
        out = {
            k: (
                v.to(device, non_blocking=self.non_blocking)
                if isinstance(v, Tensor) and device is not None
                else v
            )
            for k, v in batch.items()
        }
        for required in ("images", "boxes", "obj_to_img"):
            if required not in out:
                raise KeyError(
                    f"the batch has no {required!r} entry (use augpatch.data.collate_objects)"
                )
        n = out["boxes"].shape[0]
        fields = self._object_fields(out, n)
        kwargs = self._transform_kwargs(out)
        kp_in = out.get("keypoints")
        kp_rest = kp_in[..., 2:] if "keypoints" in kwargs and kp_in.shape[-1] > 2 else None
        result = self.transform(out["images"], out["boxes"], out["obj_to_img"], **kwargs)
        images, boxes = result[0], result[1]
        out["images"], out["boxes"] = images, boxes
        keep = getattr(result, "keep", None)
        n_out = boxes.shape[0] if isinstance(boxes, Tensor) else n
        index = getattr(result, "object_index", None)
        if isinstance(index, Tensor):  # objects added (RandomCopyPaste): row i comes from object index[i]
            for key in fields:
                if not (key in kwargs and getattr(result, key, None) is not None):
                    out[key] = out[key][index]
            out["obj_to_img"] = result.obj_to_img
            kp_rest = None if kp_rest is None else kp_rest[index]
            keep = keep[keep] if isinstance(keep, Tensor) and keep.shape[0] != n_out else keep
            n = n_out
        if n_out != n:
            if not isinstance(keep, Tensor) or keep.shape != (n,) or int(keep.sum()) != n_out:
                raise RuntimeError(
                    f"the transform returned {n_out} boxes for {n} objects without a `keep` "
                    "mask that says which ones it kept; per-object fields cannot be aligned"
                )
            for key in fields:
                if key in kwargs and getattr(result, key, None) is not None:
                    continue  # the transform returned them filtered
                out[key] = out[key][keep]
            obj_out = getattr(result, "obj_to_img", None)
            out["obj_to_img"] = obj_out if isinstance(obj_out, Tensor) else out["obj_to_img"][keep]
            kp_rest = None if kp_rest is None else kp_rest[keep]
            keep = keep[keep]
        if "masks" in kwargs and getattr(result, "masks", None) is not None:
            out["masks"] = result.masks
        if "keypoints" in kwargs and getattr(result, "keypoints", None) is not None:
            kp = result.keypoints
            kp = kp - 0.5 if self.pixel_index_keypoints else kp
            if kp_rest is not None:  # the visibility column (torchvision's [N, K, 3]) rides along
                kp = torch.cat([kp, kp_rest.to(kp)], -1)
            out["keypoints"] = kp
        keep = self._clip_to_images(out, keep)
        if isinstance(keep, Tensor):
            out["keep"] = keep
        return out

    @staticmethod
    def _clip_to_images(out: dict[str, Any], keep: Tensor | None) -> Tensor | None:
        """Clip ``out["boxes"]`` to their images of a padded batch and mark the objects
        that left them (``keep`` False); a no-op without padding. This also covers
        transforms that do not take ``image_sizes``."""
        images, boxes = out["images"], out["boxes"]
        if not isinstance(boxes, Tensor) or not isinstance(out.get("image_sizes"), Tensor):
            return keep
        sizes = check_image_sizes(out["image_sizes"], images.shape[0], tuple(images.shape[-2:]))
        if sizes is None:
            return keep
        boxes = clip_boxes_to_images(boxes, out["obj_to_img"], sizes)
        out["boxes"] = boxes
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return inside if keep is None else keep & inside.to(keep.device)

    def __repr__(self) -> str:
        return f"BatchAugment({self.transform!r}, device={self.device})"


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


def is_references_batch(batch: Any) -> bool:
    """Whether ``batch`` is ``(images, targets)`` as torchvision's detection references
    hold it: a pair of a list / tuple of image tensors and a list / tuple of as many dicts.

    Example:
        >>> import torch
        >>> is_references_batch(([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}]))
        True
        >>> is_references_batch([(torch.zeros(3, 4, 4), {"boxes": torch.zeros(0, 4)})])
        False
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        return False
    images, targets = batch
    return (
        isinstance(images, (tuple, list))
        and isinstance(targets, (tuple, list))
        and len(images) == len(targets)
        and len(images) > 0
        and all(isinstance(im, Tensor) for im in images)
        and all(isinstance(t, Mapping) for t in targets)
    )


def _like_input(
    target: dict[str, Any], source: Mapping[str, Any], size: tuple[int, int]
) -> dict[str, Any]:
    """``target`` in the key order and tensor types of ``source``: ``BoundingBoxes``
    (``XYXY``, canvas ``size``), ``Mask``, ... come back as their own class."""
    out: dict[str, Any] = {}
    for key, original in source.items():
        value = target.get(key, original)
        cls = type(original)
        if isinstance(value, Tensor) and isinstance(original, Tensor) and cls is not Tensor:
            if hasattr(original, "canvas_size"):  # tv_tensors.BoundingBoxes / KeyPoints
                kw = {"canvas_size": size}
                if hasattr(original, "format"):
                    kw["format"] = "XYXY"
                value = cls(value, **kw)
            else:
                value = value.as_subclass(cls)
        out[key] = value
    return out


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


# --------------------------------------------------------------------------- workers


def mix_seeds(seed: int, salt: int) -> int:
    """Deterministically combine two seeds into a 63-bit seed (splitmix64 finaliser).

    Example:
        >>> mix_seeds(0, 1) == mix_seeds(0, 1) != mix_seeds(0, 2)
        True
    """
    z = (seed * 0x9E3779B97F4A7C15 + salt + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


_MAX_CONTAINER = 256

#: Reseed hooks :func:`seed_worker` calls on every object reachable from a worker's dataset.
_RESEED_HOOKS: list[Callable[[Any, int], int]] = []
#: Third-party libraries whose augpatch integration registers a reseed hook: when the
#: library is loaded in a worker, :func:`seed_worker` imports the integration first.
_RESEED_INTEGRATIONS = {"albumentations": "augpatch.integrations.albumentations"}


def register_reseed_hook(hook: Callable[[Any, int], int]) -> Callable[[Any, int], int]:
    """Make :func:`seed_worker` call ``hook(obj, worker_seed)`` on every reachable object.

    A hook reseeds the random state ``obj`` holds when it is of a kind the hook knows
    (e.g. an albumentations transform) and returns how many states it reseeded (0
    otherwise). Registering the same hook twice has no effect. Returns ``hook`` (so it
    can decorate).

    Example:
        >>> def reseed_my_sampler(obj, worker_seed):
        ...     return 0  # reseed obj's state here when obj is one of mine
        >>> register_reseed_hook(reseed_my_sampler) is reseed_my_sampler
        True
    """
    if hook not in _RESEED_HOOKS:
        _RESEED_HOOKS.append(hook)
    return hook


def _load_reseed_integrations() -> None:
    """Import the augpatch integrations of the libraries this process has loaded."""
    import importlib

    for library, module in _RESEED_INTEGRATIONS.items():
        if library in sys.modules:
            importlib.import_module(module)  # registers its hook


def _reseed_reachable(root: Any, worker_seed: int, max_depth: int = 8) -> int:
    """Reseed every ``torch.Generator`` reachable from ``root`` and every random state a
    registered reseed hook knows (:func:`register_reseed_hook`).

    Walks attributes, ``nn.Module`` children, lists, tuples and dicts. Returns
    how many random states were reseeded.
    """
    seen: set[int] = set()
    count = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal count
        if depth > max_depth or id(obj) in seen:
            return
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, Tensor, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            obj.manual_seed(mix_seeds(worker_seed, obj.initial_seed()))
            count += 1
            return
        for hook in _RESEED_HOOKS:
            count += hook(obj, worker_seed)
        if isinstance(obj, Mapping):
            if len(obj) <= _MAX_CONTAINER:  # skip big annotation tables
                for v in list(obj.values()):
                    visit(v, depth + 1)
            return
        if isinstance(obj, (list, tuple, set, frozenset)):
            if len(obj) <= _MAX_CONTAINER:
                for v in list(obj):
                    visit(v, depth + 1)
            return
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for v in list(attrs.values()):
                visit(v, depth + 1)

    visit(root, 0)
    return count


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that gives every DataLoader worker its own reproducible random streams.

    PyTorch already seeds each worker's global torch RNG with
    ``base_seed + worker_id`` (``base_seed`` is drawn from the main process's
    torch RNG, so ``torch.manual_seed`` or ``DataLoader(generator=...)`` makes a
    run reproducible). What it does not do is reseed random states that were
    *copied* into the workers: an augpatch transform built with
    ``generator=torch.Generator().manual_seed(0)``, an ``A.Compose(seed=...)``,
    numpy's and Python's global RNGs. Without this function every worker draws
    the *same* augmentation parameters. ``seed_worker`` reseeds, from the
    worker's torch seed:

    * Python's ``random`` and numpy's global RNG;
    * every ``torch.Generator`` reachable from the worker's dataset (attributes,
      ``nn.Module`` children, lists, dicts), and every random state a reseed hook
      knows (:func:`register_reseed_hook`; augpatch's albumentations integration
      registers one for ``A.Compose`` and its transforms, loaded automatically when
      albumentations is), each mixed with its own original seed so distinct
      generators stay distinct.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from augpatch.data import collate_objects, seed_worker
        >>> # DataLoader(ds, num_workers=4, worker_init_fn=seed_worker,
        >>> #            collate_fn=collate_objects, generator=torch.Generator().manual_seed(0))
    """
    worker_seed = torch.initial_seed()
    random.seed(worker_seed)
    np_mod = sys.modules.get("numpy")
    if np_mod is not None:
        np_mod.random.seed(worker_seed % 2**32)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        _load_reseed_integrations()
        _reseed_reachable(info.dataset, worker_seed)
