"""torchvision adapter: augpatch transforms as ``torchvision.transforms.v2.Transform`` s.

Every class here wraps the core class of the same name (same arguments, plus
``rotated_format``) and works inside ``v2.Compose`` next to torchvision's own
transforms, on the samples torchvision's detection transforms take::

    (image, {"boxes": BoundingBoxes, "labels": Tensor, "masks": Mask, "keypoints": KeyPoints})

* ``image``: ``tv_tensors.Image`` / plain tensor ``[C, H, W]`` (float or uint8) or a
  PIL image (returned as a PIL image of the same mode). Several images in one
  sample get the same per-object transform.
* ``BoundingBoxes``: any format; the format, ``canvas_size`` and ``clamping_mode``
  are kept. Axis-aligned formats come back as the axis-aligned envelope of each
  moved object (clipped to its patch, as in the core). Rotated formats
  (``XYWHR``, ``CXCYWHR``, ``XYXYXYXY``) are moved exactly: their four corners go
  through the object's affine. With ``rotated_format="CXCYWHR"`` (or ``"XYWHR"``,
  ``"XYXYXYXY"``) axis-aligned inputs are returned as exact rotated boxes in that
  format instead of their envelope (torchvision's ``clamping_mode`` is then
  applied, as its own rotations do). A shear makes a parallelogram: only
  ``XYXYXYXY`` holds it exactly.
* ``Mask``: ``[N, H, W]`` with one mask per box is per-object (each mask moves with
  its object); any other mask (``[H, W]``, ``[K, H, W]``) is per-image and moves
  with every object, like the image. Nearest resampling, dtype kept.
* ``KeyPoints``: ``[N, K, 2]`` with one group per box moves with its object;
  other shapes are per-image points that move with the object whose box holds
  them. torchvision's keypoints put pixel ``j``'s centre at ``x = j`` (augpatch at
  ``j + 0.5``): converted exactly.
* Objects are never dropped (labels stay aligned); put
  ``v2.SanitizeBoundingBoxes()`` after the transform to remove degenerate boxes.

**Batches.** A batched ``Image [B, C, H, W]`` with flat boxes ``[N, 4]`` works too:
give each object's image index in the target under ``"obj_to_img"`` (an ``[N]``
int64 tensor). To keep it aligned when ``SanitizeBoundingBoxes`` drops boxes, let
the sanitizer filter it with the labels::

    v2.SanitizeBoundingBoxes(labels_getter=labels_getter("labels", "obj_to_img"))

(:func:`labels_getter` returns the named entries of the sample's target dict.)

**Replay.** torchvision has no replay API: the last parameters are kept in
``transform.last_params`` and a call accepts them back,
``transform(sample, params=transform.last_params)`` (bit-identical output).

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from torchvision.transforms import v2
    >>> from augpatch.integrations.torchvision import RandomPatchAffine
    >>> pipeline = v2.Compose([
    ...     v2.RandomHorizontalFlip(p=0.5),
    ...     RandomPatchAffine(degrees=20.0, scale=(0.8, 1.1), p=1.0),
    ...     v2.SanitizeBoundingBoxes(),
    ... ])
    >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
    >>> target = {"boxes": tv_tensors.BoundingBoxes([[4, 4, 30, 40]], format="XYXY",
    ...                                             canvas_size=(64, 64)),
    ...           "labels": torch.tensor([1])}
    >>> out_image, out_target = pipeline(image, target)
    >>> out_target["boxes"].format.name, out_target["labels"].tolist()
    ('XYXY', [1])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from augpatch.integrations._common import (
    PIXEL_INDEX_OFFSET,
    check_version,
    copy_docs,
    core_classes,
    lazy_import,
    map_image_points,
)

torchvision = lazy_import("torchvision", "torchvision")
check_version(torchvision, "torchvision")

import PIL.Image  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402
from torchvision.transforms.v2._utils import is_pure_tensor  # noqa: E402

__all__ = ["PatchTransform", "labels_getter"]  # extended with the generated classes below

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


class PatchTransform(v2.Transform):
    """Base of the torchvision adapters: a ``v2.Transform`` running an augpatch core transform.

    Args:
        core: the augpatch transform (``augpatch.transforms.*``) to run.
        rotated_format: ``None`` (keep each input's format) or ``"CXCYWHR"``,
            ``"XYWHR"``, ``"XYXYXYXY"`` to return exact rotated boxes.
        obj_to_img_key: the target key that holds ``obj_to_img`` for batched images.

    The generated classes (``RandomPatchAffine``, ...) build ``core`` from their
    arguments; use this class directly to wrap any other core transform (e.g.
    ``PatchTransform(augpatch.transforms.PatchSequential(...))``).

    Example:
        >>> from augpatch.transforms import PatchSequential, RandomPatchRotation
        >>> t = PatchTransform(PatchSequential(RandomPatchRotation(10.0, p=1.0)))
    """

    def __init__(
        self,
        core: torch.nn.Module,
        *,
        rotated_format: str | None = None,
        obj_to_img_key: str = "obj_to_img",
    ) -> None:
        super().__init__()
        if rotated_format is not None:
            rotated_format = str(getattr(rotated_format, "name", rotated_format)).upper()
            if rotated_format not in _ROTATED:
                raise ValueError(
                    f"rotated_format must be None or one of {_ROTATED}, got {rotated_format!r}"
                )
        if getattr(core, "drop_invalid", False):
            raise ValueError(
                "drop_invalid=True would drop boxes without their labels; "
                "keep it False and add v2.SanitizeBoundingBoxes() after this transform"
            )
        self.core = core
        self.rotated_format = rotated_format
        self.obj_to_img_key = obj_to_img_key
        self._call: dict[str, Any] = {}

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last call (pass them back as ``params=`` to replay)."""
        return self.core._params

    def forward(self, *inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Transform a sample; ``params=`` replays earlier parameters (``last_params``)."""
        sample = inputs if len(inputs) > 1 else inputs[0]
        target = _find_target(sample)
        obj_to_img = None if target is None else target.get(self.obj_to_img_key)
        self._call = {"params": params, "obj_to_img": obj_to_img}
        try:
            return super().forward(*inputs)
        finally:
            self._call = {}

    # ------------------------------------------------------------------ v2 hooks

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Run the core transform on every input at once; ``transform`` hands out the results."""
        images = [x for x in flat_inputs if self._is_image(x)]
        boxes = [x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)]
        masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
        points = [x for x in flat_inputs if isinstance(x, tv_tensors.KeyPoints)]
        if any(isinstance(x, tv_tensors.Video) for x in flat_inputs):
            raise TypeError(f"{type(self).__name__} does not support videos")
        if not images:
            raise TypeError(f"{type(self).__name__} needs an image in the sample")
        if len(boxes) > 1:
            raise ValueError(
                f"{type(self).__name__} needs one BoundingBoxes per sample, got {len(boxes)}"
            )
        out: dict[int, Any] = {}
        if not boxes:
            return {"out": out}  # no objects: nothing moves
        bbox = boxes[0]
        tensors = [self._image_tensor(x) for x in images]
        batch = tensors[0] if tensors[0].dim() == 4 else tensors[0][None]
        height, width = batch.shape[-2:]
        fmt = _fmt(bbox)
        plain = _plain(bbox)
        if fmt in _ROTATED:
            corners = TF.convert_bounding_box_format(
                plain, old_format=fmt, new_format="XYXYXYXY"
            ).reshape(-1, 4, 2)
            xyxy = torch.cat([corners.amin(1), corners.amax(1)], -1)
        else:
            xyxy = TF.convert_bounding_box_format(plain, old_format=fmt, new_format="XYXY")
            corners = _xyxy_corners(xyxy.float()) if self.rotated_format else None
        n = xyxy.shape[0]
        obj_to_img = self._call.get("obj_to_img")
        if obj_to_img is not None:
            obj_to_img = _plain(obj_to_img).long()

        per_object_masks = [m for m in masks if m.dim() == 3 and m.shape[0] == n and n > 0]
        image_masks = [m for m in masks if not any(m is o for o in per_object_masks)]
        per_object_points = [k for k in points if k.dim() == 3 and k.shape[0] == n and n > 0]
        image_points = [k for k in points if not any(k is o for o in per_object_points)]

        def image_mask(m: Tensor) -> Tensor:  # per-image mask -> [B, K, H, W]
            mm = _plain(m)
            if mm.dim() == 4:
                return mm
            return mm[:, None] if batch.shape[0] > 1 else mm.reshape(1, -1, height, width)

        def run(
            image: Tensor, params: Any, mask: Any = None, img_mask: Any = None, kps: Any = None
        ):
            return self.core(
                image if image.dim() == 4 else image[None],
                xyxy,
                obj_to_img,
                masks=None if mask is None else _plain(mask),
                image_masks=None if img_mask is None else image_mask(img_mask),
                keypoints=None if kps is None else _plain(kps) + PIXEL_INDEX_OFFSET,
                params=params,
            )

        # one core call for the image and the first mask / keypoints of each kind; further
        # images, masks and keypoints (rare) replay the same parameters
        first = run(
            batch,
            self._call.get("params"),
            per_object_masks[0] if per_object_masks else None,
            image_masks[0] if image_masks else None,
            per_object_points[0] if per_object_points else None,
        )
        p = self.core._params
        results = [(images[0], first.images, "image")]
        results += [(img, run(t, p).images, "image") for img, t in zip(images[1:], tensors[1:])]
        if per_object_masks:
            results.append((per_object_masks[0], first.masks, "mask"))
            results += [(m, run(batch, p, mask=m).masks, "mask") for m in per_object_masks[1:]]
        if image_masks:
            results.append((image_masks[0], first.image_masks, "mask"))
            results += [(m, run(batch, p, img_mask=m).image_masks, "mask") for m in image_masks[1:]]
        if per_object_points:
            results.append((per_object_points[0], first.keypoints, "points"))
            results += [
                (k, run(batch, p, kps=k).keypoints, "points") for k in per_object_points[1:]
            ]
        self.core._params = p

        theta, patches, applied = p["theta"], p["patches"], p["batch_prob"]
        for k in image_points:
            pts = _plain(k).reshape(batch.shape[0], -1, 2) + PIXEL_INDEX_OFFSET
            moved = map_image_points(
                pts,
                patches,
                theta,
                obj_to_img,
                applied=applied,
                align_corners=self.core.align_corners,
            )
            results.append((k, moved, "points"))

        for original, result, kind in results:
            if kind == "image":
                out[id(original)] = self._image_out(original, result)
            elif kind == "mask":
                out[id(original)] = tv_tensors.wrap(result.reshape(original.shape), like=original)
            else:
                moved = (result - PIXEL_INDEX_OFFSET).reshape(original.shape)
                out[id(original)] = tv_tensors.wrap(moved.to(_float(original.dtype)), like=original)
        out[id(bbox)] = self._boxes_out(bbox, fmt, first.boxes, corners, patches, theta, applied)
        return {"out": out}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Return the result computed in :meth:`make_params` for this input."""
        return params["out"].get(id(inpt), inpt)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _is_image(x: Any) -> bool:
        return isinstance(x, (tv_tensors.Image, PIL.Image.Image)) or (
            isinstance(x, Tensor) and is_pure_tensor(x)
        )

    @staticmethod
    def _image_tensor(x: Any) -> Tensor:
        if isinstance(x, PIL.Image.Image):
            return TF.pil_to_tensor(x)
        t = _plain(x)
        if t.dim() == 2:
            t = t[None]
        if t.dim() not in (3, 4):
            raise ValueError(f"images must be [C, H, W] or [B, C, H, W], got {tuple(t.shape)}")
        return t

    @staticmethod
    def _image_out(original: Any, result: Tensor) -> Any:
        """The core's ``[B, C, H, W]`` result in the form of ``original``."""
        if isinstance(original, PIL.Image.Image):
            return TF.to_pil_image(result[0], mode=original.mode)
        out = result.reshape(original.shape)
        return (
            tv_tensors.wrap(out, like=original) if isinstance(original, tv_tensors.Image) else out
        )

    def _boxes_out(
        self,
        bbox: tv_tensors.BoundingBoxes,
        fmt: str,
        moved_xyxy: Tensor,
        corners: Tensor | None,
        patches: Tensor,
        theta: Tensor,
        applied: Tensor,
    ) -> tv_tensors.BoundingBoxes:
        """New boxes in the input's format (or ``rotated_format``), as the input's dtype."""
        dtype = bbox.dtype
        out_fmt = self.rotated_format or fmt
        if corners is None:  # axis-aligned in, axis-aligned out: the core's envelope
            data = TF.convert_bounding_box_format(moved_xyxy, old_format="XYXY", new_format=fmt)
            return tv_tensors.wrap(_cast(data, dtype), like=bbox)
        from augpatch.functional import theta_to_pixel_matrix, transform_points

        moved = transform_points(
            corners.to(theta.dtype), patches, theta, align_corners=self.core.align_corners
        )
        if applied.any():
            det = torch.linalg.det(
                theta_to_pixel_matrix(theta, patches, align_corners=self.core.align_corners)[
                    :, :2, :2
                ]
            )
            mirrored = applied & (det < 0)
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
        if out_fmt != "XYXYXYXY":
            data = TF.convert_bounding_box_format(data, old_format="XYXYXYXY", new_format=out_fmt)
        return tv_tensors.BoundingBoxes(
            _cast(data, _float(dtype)),  # torchvision requires float rotated boxes
            format=out_fmt,
            canvas_size=bbox.canvas_size,
            clamping_mode=getattr(bbox, "clamping_mode", "soft"),
        )


def _float(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_floating_point else torch.float32


def _cast(data: Tensor, dtype: torch.dtype) -> Tensor:
    return data.to(dtype) if dtype.is_floating_point else data.round().to(dtype)


_EXAMPLE = """
>>> import torch
>>> from torchvision import tv_tensors
>>> from torchvision.transforms import v2
>>> from augpatch.integrations.torchvision import {name}
>>> t = v2.Compose([v2.RandomHorizontalFlip(), {name}({args}), v2.SanitizeBoundingBoxes()])
>>> boxes = tv_tensors.BoundingBoxes([[2, 2, 20, 14]], format="XYXY", canvas_size=(32, 32))
>>> target = {{"boxes": boxes, "labels": torch.tensor([1])}}
>>> image, target = t(tv_tensors.Image(torch.rand(3, 32, 32)), target)
>>> target["boxes"].format.name
'XYXY'
"""


def _make_adapter(name: str, core_cls: type) -> type:
    def __init__(
        self: PatchTransform,
        *args: Any,
        rotated_format: str | None = None,
        obj_to_img_key: str = "obj_to_img",
        **kwargs: Any,
    ) -> None:
        PatchTransform.__init__(
            self,
            core_cls(*args, **kwargs),
            rotated_format=rotated_format,
            obj_to_img_key=obj_to_img_key,
        )

    core_sig = inspect.signature(core_cls.__init__)
    extra = [
        inspect.Parameter("rotated_format", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("obj_to_img_key", inspect.Parameter.KEYWORD_ONLY, default="obj_to_img"),
    ]
    params = list(core_sig.parameters.values())
    var_kw = [p for p in params if p.kind == inspect.Parameter.VAR_KEYWORD]
    params = [p for p in params if p.kind != inspect.Parameter.VAR_KEYWORD] + extra + var_kw
    __init__.__signature__ = core_sig.replace(parameters=params)  # type: ignore[attr-defined]
    cls = type(
        name,
        (PatchTransform,),
        {"__init__": __init__, "__module__": __name__, "__qualname__": name},
    )
    copy_docs(
        cls, core_cls, "torchvision v2", " plus ``rotated_format`` and ``obj_to_img_key``", _EXAMPLE
    )
    return cls


for _name, _core in core_classes():
    globals()[_name] = _make_adapter(_name, _core)
    __all__.append(_name)
del _name, _core
