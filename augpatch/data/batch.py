"""Batch augmentation: :class:`BatchAugment` runs an augpatch transform on a collated
batch (or on torchvision's references' ``(images, targets)``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from augpatch.data.collate import collate_objects, object_fields
from augpatch.data.detection import to_detection_inputs
from augpatch.functional import clip_boxes_to_images
from augpatch.functional.checks import check_image_sizes

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
    * when the transform adds objects (:class:`augpatch.RandomCopyPaste`, also inside
      ``PatchSequential``), row ``i`` takes every per-object entry of input object
      ``result.object_index[i]`` (the result of every augpatch transform has one), and
      ``area`` is replaced where the transform recomputed it (``result.area`` not NaN:
      the mask's pixel count of an occluded or pasted object, its box's area without masks).

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
          list of ``[C, H_i, W_i]`` images, or one stacked ``[B, C, H, W]`` tensor, and
          a list of target dicts): returns ``(images, targets)`` the same way
          (:meth:`augment_references`);
        * a list of samples: collated with ``collate_fn`` first, returns a dict.
        """
        self._check_not_in_worker()
        if is_references_batch(batch):
            return self.augment_references(*batch)
        if not isinstance(batch, Mapping):
            batch = self.collate_fn(batch)
        return self._augment(batch, self.device)

    def augment_references(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Tensor] | Tensor, list[dict[str, Any]]]:
        """Augment a batch in the format of torchvision's ``references/detection``.

        Args:
            images: ``B`` image tensors ``[C, H_i, W_i]`` (sizes may differ), or one
                stacked ``[B, C, H, W]`` tensor (a stacking ``collate_fn``), returned
                stacked.
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
        stacked = images if isinstance(images, Tensor) else None
        if stacked is not None:
            images = _unstack(stacked, len(targets))
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
        out_targets = [
            _like_input(t, src, tuple(im.shape[-2:]))
            for t, src, im in zip(out_targets, targets, out_images)
        ]
        if stacked is not None:  # the format it came in: one [B, C, H, W] tensor
            return torch.stack(out_images).as_subclass(type(stacked)), out_targets
        return out_images, out_targets

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
        if isinstance(index, Tensor):  # row i of the result comes from input object index[i]
            area = getattr(result, "area", None)
            for key in fields:
                if not (key in kwargs and getattr(result, key, None) is not None):
                    out[key] = out[key][index]
            if isinstance(area, Tensor) and "area" in fields:  # the rows whose area was recomputed
                out["area"] = torch.where(area.isnan(), out["area"], area.to(out["area"]))
            obj_out = getattr(result, "obj_to_img", None)
            out["obj_to_img"] = obj_out if isinstance(obj_out, Tensor) else out["obj_to_img"][index]
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


def is_references_batch(batch: Any) -> bool:
    """Whether ``batch`` is ``(images, targets)`` as torchvision's detection references
    hold it: a pair of a list / tuple of image tensors and a list / tuple of as many dicts,
    or of one image tensor (a stacked ``[B, C, H, W]`` batch) and a non-empty list / tuple
    of dicts (:meth:`BatchAugment.augment_references` then checks that the tensor is
    ``[B, C, H, W]`` with one target per image: anything else is an error, not a guess).

    Example:
        >>> import torch
        >>> is_references_batch(([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}]))
        True
        >>> is_references_batch((torch.zeros(1, 3, 4, 4), [{"boxes": torch.zeros(0, 4)}]))
        True
        >>> is_references_batch([(torch.zeros(3, 4, 4), {"boxes": torch.zeros(0, 4)})])
        False
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        return False
    images, targets = batch
    if not (isinstance(targets, (tuple, list)) and len(targets) > 0
            and all(isinstance(t, Mapping) for t in targets)):
        return False
    if isinstance(images, Tensor):  # stacked: checked by augment_references
        return True
    return (
        isinstance(images, (tuple, list))
        and len(images) == len(targets)
        and all(isinstance(im, Tensor) for im in images)
    )


def _unstack(images: Tensor, count: int) -> list[Tensor]:
    """The ``B`` images ``[C, H, W]`` of a stacked ``[B, C, H, W]`` batch with ``count``
    targets; a clear error for any other shape (no guess at what a 3-D tensor means)."""
    if images.dim() != 4:
        raise ValueError(
            f"images as one tensor must be a stacked batch [B, C, H, W], got shape "
            f"{tuple(images.shape)}; pass a list of [C, H, W] tensors for images of their "
            "own sizes (a single image is a list of one)"
        )
    if images.shape[0] != count:
        raise ValueError(
            f"images has {images.shape[0]} images (shape {tuple(images.shape)}) but targets "
            f"has {count} dicts: one target per image"
        )
    return list(images.as_subclass(Tensor).unbind(0))


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
