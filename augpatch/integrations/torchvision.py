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
* Place: before ``v2.ToPureTensor()``. The objects are found through the sample's
  ``BoundingBoxes``; a sample whose target has ``"boxes"`` as a plain tensor (as after
  ``ToPureTensor``) is warned about once per transform. A sample without boxes (image
  only) gets no per-object change, and :class:`DetectionAutoAugment` runs its
  image-level ops on it (``N = 0`` objects).
* Every ``Mask`` must have the image's size (refused otherwise).

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
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

from augpatch.functional import clip_boxes
from augpatch.functional.checks import check_points, compute_dtype, parse_boxes
from augpatch.integrations._common import (
    PIXEL_INDEX_OFFSET,
    check_version,
    copy_docs,
    core_classes,
    lazy_import,
    map_image_points,
)
from augpatch.transforms.pipeline import identity_rows

torchvision = lazy_import("torchvision", "torchvision")
check_version(torchvision, "torchvision")

import PIL.Image  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from augpatch.integrations._torchvision_call import (  # noqa: E402
    _box_hooks_are_the_base,
    _parses_its_boxes,
    reads_pil_pixels,
    takes_hooks,
    warp_pil_copy,
)
from augpatch.integrations._torchvision_inputs import (  # noqa: E402
    _ROTATED,
    _cast,
    _check_mask_size,
    _converted,
    _corners,
    _find_target,
    _float,
    _fmt,
    _image_tensor,
    _is_image,
    _no_bounding_boxes_message,
    _pil_pixels,
    _plain,
    _rotated_box_data,
    _tensor_pil,
    _xyxy,
    _xyxy_corners,
    labels_getter,
)

__all__ = ["PatchTransform", "labels_getter"]  # extended with the generated classes below


class PatchTransform(v2.Transform):
    """Base of the torchvision adapters: a ``v2.Transform`` running an augpatch core transform.

    Args:
        core: the augpatch transform (``augpatch.transforms.*``) to run.
        rotated_format: ``None`` (keep each input's format) or ``"CXCYWHR"``,
            ``"XYWHR"``, ``"XYXYXYXY"`` to return exact rotated boxes.
        obj_to_img_key: the target key that holds ``obj_to_img`` for batched images.

    It follows torchvision v2's contract: :meth:`make_params` samples the per-object
    parameters once per call (the core's ``forward_parameters``: its
    ``generate_parameters`` and matrix), and :meth:`transform` applies them to one input
    at a time, by type (image, ``BoundingBoxes``, ``Mask``, ``KeyPoints``; anything else
    passes through). Nothing of a call is kept on the module but the core's record of the
    last parameters (:attr:`last_params`, for replay).

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
        self._warned_no_boxes = False

    #: Whether the transform acts on a sample without boxes (image-level ops); the
    #: per-object transforms have nothing to do there.
    acts_without_boxes = False

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last call (pass them back as ``params=`` to replay)."""
        return self.core._params

    def forward(self, *inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Transform a sample; ``params=`` replays earlier parameters (``last_params``).

        ``v2.Transform.forward`` plus two per-call arguments handed to :meth:`make_params`
        (nothing is stored): ``params`` and the target's ``obj_to_img`` entry (a pure
        tensor, which torchvision passes through untransformed).
        """
        sample = inputs if len(inputs) > 1 else inputs[0]
        flat_inputs, spec = tree_flatten(sample)
        self.check_inputs(flat_inputs)
        needs = self._needs_transform_list(flat_inputs)
        target = _find_target(sample)
        if not any(isinstance(x, tv_tensors.BoundingBoxes) for x in flat_inputs):
            self._warn_no_bounding_boxes(target)
        obj_to_img = None if target is None else target.get(self.obj_to_img_key)
        call = self.make_params(
            [x for x, need in zip(flat_inputs, needs) if need], obj_to_img=obj_to_img, replay=params
        )
        call["results"] = {}  # this call's core results, per image (see _core_result)
        flat_outputs = [
            self.transform(x, call) if need else x for x, need in zip(flat_inputs, needs)
        ]
        return tree_unflatten(flat_outputs, spec)

    def _warn_no_bounding_boxes(self, target: Mapping[str, Any] | None) -> None:
        """Warn (once per instance) when a detection sample holds its boxes as plain tensors.

        A sample whose target dict has a ``"boxes"`` entry that is not
        ``tv_tensors.BoundingBoxes`` (typically after ``v2.ToPureTensor()``) gets no
        per-object transform: torchvision dispatches by type, so the boxes look like
        any other tensor. An image-only sample (no ``"boxes"`` key) is not warned about.
        """
        if self._warned_no_boxes or target is None or "boxes" not in target:
            return
        self._warned_no_boxes = True
        action = "ran its image-level ops only" if self.acts_without_boxes else "did nothing"
        warnings.warn(
            _no_bounding_boxes_message(type(self).__name__, target["boxes"], action),
            UserWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ v2 hooks

    def make_params(
        self,
        flat_inputs: list[Any],
        *,
        obj_to_img: Tensor | None = None,
        replay: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sample the per-object parameters of this call (or take ``replay``'s).

        The objects are the sample's ``BoundingBoxes`` (at most one); the images give the
        batch shape. Returns ``{"augpatch": p, "boxes": [N, 4] xyxy, "obj_to_img": [N] or
        None, "batch_size": B, "canvas": (H, W), "images": [(image, tensor), ...]}`` where
        ``p`` holds ``theta``, ``batch_prob``, ``patches``, ``obj_to_img`` and the core's
        human parameters and ``images`` pairs each image input with its ``[B, C, H, W]``
        tensor (a PIL image converted once, or a stand-in: :meth:`_pil_batch`), or ``{"augpatch": None}``
        when the sample has no boxes (nothing moves). For a core whose call and box hooks
        are ``PatchAugmentationBase``'s, also ``"hooks"`` (the ``PatchCall`` each image is
        warped with by the core's ``apply_transform_image``: the core's ``make_call``) and
        ``"moved_boxes"`` (the boxes' move, once per call); the core's record of the call
        (:attr:`last_params`, the core's ``record_call``) is then stored here.
        :meth:`forward` adds ``"results"``: the core's result per image (other cores), filled as the inputs
        are transformed.
        """
        images = [x for x in flat_inputs if self._is_image(x)]
        boxes = [x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)]
        if any(isinstance(x, tv_tensors.Video) for x in flat_inputs):
            raise TypeError(f"{type(self).__name__} does not support videos")
        if not images:
            raise TypeError(f"{type(self).__name__} needs an image in the sample")
        if len(boxes) > 1:
            raise ValueError(
                f"{type(self).__name__} needs one BoundingBoxes per sample, got {len(boxes)}"
            )
        if not boxes and not self.acts_without_boxes:
            return {"augpatch": None}  # no objects: nothing moves
        tensors = [self._pil_batch(x) if isinstance(x, PIL.Image.Image)
                   else self._image_tensor(x, batched=True) for x in images]
        shapes = {(t.shape[0], *t.shape[-2:]) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(
                f"{type(self).__name__}: the images of a sample must have the same batch size "
                f"and size to share the per-object transform, got (B, H, W) in {sorted(shapes)}"
            )
        first = tensors[0]
        batch = first.shape[0]
        if boxes:
            xyxy = _xyxy(boxes[0])
        else:  # image-level ops on a sample without objects (N = 0)
            xyxy, obj_to_img = torch.zeros(0, 4), None
        if obj_to_img is not None:
            obj_to_img = _plain(obj_to_img).long()
        if replay is None and _parses_its_boxes(self.core):
            # the core's draw checks the boxes and obj_to_img itself (parse_boxes, as
            # below) and returns obj_to_img filled in: one check per call, not two
            fboxes = xyxy.to(compute_dtype(first, xyxy))
            p = self.core.forward_parameters(first.shape, fboxes, obj_to_img)
            o2i = p["obj_to_img"]
            return self._call(p, xyxy, o2i, images, tensors)
        xyxy, o2i, _ = parse_boxes(xyxy, obj_to_img, batch)
        if o2i is None:  # one image
            o2i = torch.zeros(xyxy.shape[0], dtype=torch.long, device=xyxy.device)
        fboxes = xyxy.to(compute_dtype(first, xyxy))
        if replay is None:
            p = self.core.forward_parameters(first.shape, fboxes, o2i)
        else:
            patches = clip_boxes(fboxes, tuple(first.shape[-2:]))
            p = dict(self.core.replay_parameters(replay, patches), patches=patches, obj_to_img=o2i)
        return self._call(p, xyxy, o2i, images, tensors)

    def _call(
        self, p: dict[str, Any], xyxy: Tensor, o2i: Tensor, images: list[Any], tensors: list[Tensor]
    ) -> dict[str, Any]:
        """The parameters of a call (see :meth:`make_params`) from the core's ``p``."""
        first = tensors[0]
        call = {
            "augpatch": p,
            "boxes": xyxy,
            "obj_to_img": o2i,
            "batch_size": first.shape[0],
            "canvas": tuple(first.shape[-2:]),
            "images": [(x, t) for x, t in zip(images, tensors)],
        }
        if takes_hooks(self.core, p):
            # the core's forward from the drawn parameters, by the methods it uses itself:
            # its call (make_call), the boxes' move (once per call, the boxes as given) and
            # its record of the call (record_call: last_params, with keep)
            core = self.core
            hooks = core.make_call(p, p["patches"], o2i, xyxy)
            moved = core.move_object_boxes(xyxy, hooks.patches, hooks.theta, hooks.applied)
            core.record_call(p, hooks, moved)
            call.update(hooks=hooks, moved_boxes=moved)
        return call

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply the call's parameters to one input, by type; other inputs pass through."""
        if params["augpatch"] is None:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return self._transform_boxes(inpt, params)
        if isinstance(inpt, tv_tensors.Mask):
            return self._transform_mask(inpt, params)
        if isinstance(inpt, tv_tensors.KeyPoints):
            return self._transform_keypoints(inpt, params)
        if self._is_image(inpt):
            return self._transform_image(inpt, params)
        return inpt

    # ------------------------------------------------------------------ per input type

    def _transform_image(self, image: Any, params: dict[str, Any]) -> Any:
        """An image ``[C, H, W]`` / ``[B, C, H, W]`` (plain, ``Image`` or PIL): one core call."""
        hooks = params.get("hooks")
        pil = hooks is not None and isinstance(image, PIL.Image.Image)
        if pil and (warped := warp_pil_copy(self.core, image, hooks)) is not None:
            return warped  # Pillow's copy of the image, warped in place
        if hooks is not None:  # the core's image hook alone (see _call)
            out = self.core.apply_transform_image(self._batch(image, params), hooks)
        else:
            out = self._core_result(image, params, output=True).images
        if isinstance(image, PIL.Image.Image):
            return _tensor_pil(out[0], image.mode)
        out = out.reshape(image.shape)
        return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out

    def _transform_mask(self, mask: tv_tensors.Mask, params: dict[str, Any]) -> tv_tensors.Mask:
        """A per-object mask ``[N, H, W]`` (one per box) moves with its object; any other
        mask is per-image and moves with every object (nearest, dtype kept)."""
        p, xyxy = params["augpatch"], params["boxes"]
        n = xyxy.shape[0]
        m = _check_mask_size(self, mask, params)
        if m.dim() == 3 and m.shape[0] == n and n > 0:
            own = torch.arange(n, device=m.device)
            out = self.core.warp_objects(m, xyxy, p["theta"], own, p["batch_prob"], masks=True)
        else:  # per image: [H, W] / [K, H, W] of one image, [B, H, W] / [B, K, H, W]
            batch = params["batch_size"]
            if m.dim() < 4 and batch == 1:
                m = m.reshape(1, -1, *m.shape[-2:])
            if m.dim() < 3 or m.shape[0] != batch:
                raise ValueError(
                    f"a Mask must be [N, H, W] with one mask per box (N = {n}), or per image: "
                    f"[B, H, W] or [B, K, H, W] with B = {batch}, got {tuple(mask.shape)}"
                )
            o2i = params["obj_to_img"]
            out = self.core.warp_objects(m, xyxy, p["theta"], o2i, p["batch_prob"], masks=True)
        return tv_tensors.wrap(out.reshape(mask.shape), like=mask)

    def _transform_keypoints(
        self, points: tv_tensors.KeyPoints, params: dict[str, Any]
    ) -> tv_tensors.KeyPoints:
        """Keypoints ``[N, K, 2]`` (one group per box) move with their object; other shapes
        are per-image points that move with the object whose box holds them."""
        p, n = params["augpatch"], params["boxes"].shape[0]
        theta, patches, applied = p["theta"], p["patches"], p["batch_prob"]
        k = _plain(points)
        if k.dim() == 3 and k.shape[0] == n and n > 0:
            kp = check_points(k, n, "keypoints").to(patches.dtype) + PIXEL_INDEX_OFFSET
            moved = self.core.move_object_points(kp, patches, theta, applied)
        else:
            pts = k.reshape(params["batch_size"], -1, 2) + PIXEL_INDEX_OFFSET
            moved = map_image_points(
                pts,
                patches,
                theta,
                params["obj_to_img"],
                applied=applied,
                align_corners=self.core.align_corners,
            )
        moved = (moved - PIXEL_INDEX_OFFSET).reshape(points.shape)
        return tv_tensors.wrap(moved.to(_float(points.dtype)), like=points)

    def _transform_boxes(
        self, bbox: tv_tensors.BoundingBoxes, params: dict[str, Any]
    ) -> tv_tensors.BoundingBoxes:
        """New boxes in the input's format (or ``rotated_format``), in the input's dtype."""
        p = params["augpatch"]
        theta, patches, applied = p["theta"], p["patches"], p["batch_prob"]
        fmt = _fmt(bbox)
        dtype = bbox.dtype
        out_fmt = self.rotated_format or fmt
        if fmt in _ROTATED:
            corners = _corners(bbox)
        elif self.rotated_format:
            corners = _xyxy_corners(params["boxes"].float())
        else:  # axis-aligned in, axis-aligned out: the core's envelope
            data = _converted(self._moved_boxes(params), "XYXY", fmt)
            return tv_tensors.wrap(_cast(data, dtype), like=bbox)
        data = _rotated_box_data(bbox, corners, patches, theta, applied, self.core.align_corners)
        if out_fmt != "XYXYXYXY":
            data = TF.convert_bounding_box_format(data, old_format="XYXYXYXY", new_format=out_fmt)
        return tv_tensors.BoundingBoxes(
            _cast(data, _float(dtype)),  # torchvision requires float rotated boxes
            format=out_fmt,
            canvas_size=bbox.canvas_size,
            clamping_mode=getattr(bbox, "clamping_mode", "soft"),
        )

    # ------------------------------------------------------------------ one core call per image

    def _core_result(self, image: Any, params: dict[str, Any], output: bool = False) -> Any:
        """The core's result (``PatchResult``) on ``image`` with the call's parameters.

        Within :meth:`forward` it runs once per image and is kept in the call's
        ``params["results"]`` (the images' tensors come from :meth:`make_params`, a PIL
        image is converted once), so that the boxes can reuse what the core computed for
        the first image (:meth:`_moved_boxes`); a direct ``transform`` call runs the core.
        ``output``: the result's images become an output; an image given twice in a
        sample gets a result of its own each time (outputs never share memory).
        """
        results = params.get("results")
        known = None if results is None else results.get(id(image))
        if known is not None and known[0] is image and not (output and known[2]):
            known[2] = known[2] or output
            return known[1]
        batch = self._batch(image, params)
        result = self.core(batch, params["boxes"], params["obj_to_img"], params=params["augpatch"])
        if results is not None and known is None:
            results[id(image)] = [image, result, output]
        return result

    def _pil_batch(self, image: PIL.Image.Image, *, read: bool = False) -> Tensor:
        """A PIL image as ``[1, C, H, W]``: Pillow's own memory where the core reads it as
        well (:func:`reads_pil_pixels`; unless ``read``, a ``meta`` stand-in of its shape:
        the image step warps a copy, ``warp_pil_copy``; :meth:`_batch` reads it), else converted."""
        if reads_pil_pixels(self.core, image.mode):
            if not read:
                return torch.empty((1, 4, image.height, image.width), dtype=torch.uint8, device="meta")
            pixels = _pil_pixels(image, batched=True)
            if pixels is not None:
                return pixels
        return self._image_tensor(image, batched=True)

    def _batch(self, image: Any, params: dict[str, Any]) -> Tensor:
        """``image`` as the ``[B, C, H, W]`` tensor of :meth:`make_params` (converted there once
        per call; a stand-in's pixels read now), or converted now (an image not in the call)."""
        batch = next((t for x, t in params.get("images", ()) if x is image), None)
        if batch is not None and batch.is_meta:
            return self._pil_batch(image, read=True)
        return self._image_tensor(image, batched=True) if batch is None else batch

    def _moved_boxes(self, params: dict[str, Any]) -> Tensor:
        """``move_object_boxes`` of the call's boxes (``[N, 4]`` xyxy, the compute dtype).

        Within :meth:`forward`, and for a core whose ``forward`` and box hooks are
        :class:`~augpatch.transforms.PatchAugmentationBase`'s, the core's own boxes of the
        first image are reused (the same envelope where an object moved); otherwise, or
        when an applied object's ``theta`` is exactly the identity (the core keeps its
        patch there, this method the moved envelope), they are computed here.
        """
        if params.get("moved_boxes") is not None:  # computed with the call (see _call)
            return params["moved_boxes"]
        p, xyxy = params["augpatch"], params["boxes"]
        theta, patches, applied = p["theta"], p["patches"], p["batch_prob"]
        images = params.get("images")
        if params.get("results") is None or not images or not _box_hooks_are_the_base(self.core):
            return self.core.move_object_boxes(xyxy, patches, theta, applied)
        if applied.dtype != torch.bool or bool((applied & identity_rows(theta)).any()):
            return self.core.move_object_boxes(xyxy, patches, theta, applied)
        boxes = self._core_result(images[0][0], params).boxes
        if isinstance(boxes, Tensor) and boxes.shape == xyxy.shape:
            return torch.where(applied[:, None], boxes, xyxy.to(boxes.dtype))
        return self.core.move_object_boxes(xyxy, patches, theta, applied)

    # ------------------------------------------------------------------ helpers

    _is_image = staticmethod(_is_image)
    _image_tensor = staticmethod(_image_tensor)


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


class DetectionAutoAugment(PatchTransform):
    """torchvision v2 adapter of :class:`augpatch.policies.DetectionAutoAugment`.

    The same arguments (``policy``, ``fill``, ``padding_mode``, ``interpolation``,
    ``box_prob``, ``bbox_prob_divisor``, ``move_boxes``, ``overlap``, ``align_corners``,
    ``generator``; not ``drop_invalid``: put ``v2.SanitizeBoundingBoxes()`` after it so
    that labels are dropped with their boxes) plus ``obj_to_img_key``. It follows the v2
    contract of :class:`PatchTransform`: :meth:`make_params` samples a call's parameters
    once (the policy's ``forward_parameters``: sub-policies, coins, signs, cutout
    positions, following the boxes as the sub-policy moves them), and :meth:`transform`
    applies them to each input by type:

    * images (``Image``, plain tensors ``[C, H, W]`` / ``[B, C, H, W]``, PIL): the policy;
    * ``BoundingBoxes`` (any format; rotated ones are taken as their axis-aligned
      envelope): moved by the image-level geometric ops (and by the box-only ones with
      ``move_boxes=True``), returned in their format and dtype; boxes that left the image
      come back with zero width or height, for ``SanitizeBoundingBoxes`` to remove;
    * ``Mask`` ``[N, H, W]`` (one per box) or per image; ``KeyPoints`` ``[N, K, 2]``
      (one group per box) move with the content. Per-image keypoints of another shape
      are refused (a policy moves points only through the objects).

    Replay: ``transform(sample, params=transform.last_params)`` is bit-identical.

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> from torchvision.transforms import v2
        >>> from augpatch.integrations.torchvision import DetectionAutoAugment
        >>> t = v2.Compose([DetectionAutoAugment("v1"), v2.SanitizeBoundingBoxes()])
        >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
        >>> boxes = tv_tensors.BoundingBoxes([[4, 4, 40, 30]], format="XYXY", canvas_size=(64, 64))
        >>> image, target = t(image, {"boxes": boxes, "labels": torch.tensor([1])})
        >>> image.dtype, target["boxes"].format.name
        (torch.uint8, 'XYXY')
    """

    def __init__(
        self, policy: Any = "v0", *, obj_to_img_key: str = "obj_to_img", **kwargs: Any
    ) -> None:
        from augpatch.policies import DetectionAutoAugment as Core

        PatchTransform.__init__(self, Core(policy, **kwargs), obj_to_img_key=obj_to_img_key)

    acts_without_boxes = True  # the image-level ops run on samples without objects

    def _targets(self, params: dict[str, Any], canvas: tuple[int, int], **kw: Any) -> Any:
        shape = (params["batch_size"], 1, *canvas)
        return self.core.apply_to_targets(
            shape, params["boxes"], params["obj_to_img"], params=params["augpatch"], **kw
        )

    def _transform_boxes(
        self, bbox: tv_tensors.BoundingBoxes, params: dict[str, Any]
    ) -> tv_tensors.BoundingBoxes:
        moved = self._targets(params, tuple(bbox.canvas_size)).boxes
        fmt = _fmt(bbox)
        data = TF.convert_bounding_box_format(moved, old_format="XYXY", new_format=fmt)
        dtype = bbox.dtype if fmt not in _ROTATED else _float(bbox.dtype)
        return tv_tensors.wrap(_cast(data, dtype), like=bbox)

    def _transform_mask(self, mask: tv_tensors.Mask, params: dict[str, Any]) -> tv_tensors.Mask:
        n, m = params["boxes"].shape[0], _check_mask_size(self, mask, params)
        canvas = tuple(m.shape[-2:])
        if m.dim() == 3 and m.shape[0] == n and n > 0:
            out = self._targets(params, canvas, masks=m).masks
        else:
            batch = params["batch_size"]
            if m.dim() < 4 and batch == 1:
                m = m.reshape(1, -1, *canvas)
            if m.dim() < 3 or m.shape[0] != batch:
                raise ValueError(
                    f"a Mask must be [N, H, W] with one mask per box (N = {n}), or per image: "
                    f"[B, H, W] or [B, K, H, W] with B = {batch}, got {tuple(mask.shape)}"
                )
            out = self._targets(params, canvas, image_masks=m).image_masks
        return tv_tensors.wrap(out.reshape(mask.shape), like=mask)

    def _transform_keypoints(
        self, points: tv_tensors.KeyPoints, params: dict[str, Any]
    ) -> tv_tensors.KeyPoints:
        n, k = params["boxes"].shape[0], _plain(points)
        if not (k.dim() == 3 and k.shape[0] == n and k.shape[-1] == 2):
            raise ValueError(
                f"DetectionAutoAugment moves KeyPoints [N, K, 2] with one group per box "
                f"(N = {n}), got {tuple(points.shape)}"
            )
        kp = k.to(_float(k.dtype)) + PIXEL_INDEX_OFFSET
        moved = self._targets(params, tuple(points.canvas_size), keypoints=kp).keypoints
        moved = (moved - PIXEL_INDEX_OFFSET).reshape(points.shape)
        return tv_tensors.wrap(moved.to(_float(points.dtype)), like=points)


__all__.append("DetectionAutoAugment")

from augpatch.integrations.torchvision_batch import CopyPasteBatch  # noqa: E402, F401  (the batch form)
