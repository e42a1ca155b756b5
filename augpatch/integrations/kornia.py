"""Kornia adapter: augpatch modules inside a Kornia ``AugmentationSequential``.

Kornia's containers route every data key to each child separately, image first,
so a child never sees the boxes before it must transform the image; a plain
``AugmentationBase2D`` cannot be a per-object transform. This module therefore
provides

* :class:`PatchAugmentationSequential`: a ``kornia.augmentation.AugmentationSequential``
  whose operation dispatcher hands an augpatch child the image, the boxes, the
  masks and the keypoints *together* (like Kornia's own special case for
  ``RandomTransplantation``), records the parameters the child drew in the
  container's ``_params`` (so ``container(..., params=container._params)``
  replays bit for bit) and undoes the child in ``container.inverse(...)``;
* ``RandomPatchAffine``, ``RandomPatchRotation``, ``RandomPatchTranslate``,
  ``RandomPatchScale``, ``RandomPatchShear``, ``RandomPatchHorizontalFlip``,
  ``RandomPatchVerticalFlip`` and ``PatchAffine``: the core
  :mod:`augpatch.transforms` classes (same arguments, same behaviour when called
  directly) that also raise a clear error when a container calls them with the
  image alone (``K.AugmentationSequential``, ``K.ImageSequential``, nesting).

Conventions handled here:

* Kornia's ``bbox_xyxy`` is *inclusive* (``x2`` is the last pixel): the box
  ``(x1, y1, x2, y2)`` is augpatch's ``(x1, y1, x2 + 1, y2 + 1)``, exactly.
  ``bbox_xywh`` and ``bbox`` (vertices) are converted the same way.
* Kornia keypoints put pixel ``j``'s centre at ``x = j``; augpatch at ``j + 0.5``.
* Boxes may come as a padded tensor ``[B, N, 4]``, a list of ``B`` tensors
  ``[N_i, 4]`` or a ``kornia.geometry.boxes.Boxes``; they are returned in the same
  form. In a dense tensor an all-zero row is *padding* (``box_padding="zeros"``,
  the default): it is not an object, no child moves it and it comes back as
  zeros. Kornia itself would read it as a real 1-pixel box at the top-left
  corner; pass ``box_padding=None`` to get that behaviour.
* ``mask`` keys are per-image masks ``[B, C, H, W]``: every object's transform
  is applied to them (nearest resampling), like to the image.
* ``keypoints`` are per-image points ``[B, K, 2]``: a point inside an object's
  patch moves with that object (objects act in index order).
* ``p < 1`` gates each object (the core ``p``); a gated object is untouched.
* The container's ``transform_matrix`` has no per-object component: it covers
  Kornia's own children only (``transformation_matrix_mode="rigid"`` raises for an
  augpatch child).

Example:
    >>> import torch, kornia.augmentation as K
    >>> from augpatch.integrations.kornia import PatchAugmentationSequential, RandomPatchAffine
    >>> aug = PatchAugmentationSequential(
    ...     K.RandomHorizontalFlip(p=0.5),
    ...     RandomPatchAffine(degrees=30.0, scale=(0.8, 1.2)),
    ...     K.ColorJitter(0.1, 0.1, p=1.0),
    ...     data_keys=["input", "bbox_xyxy", "mask", "keypoints"],
    ... )
    >>> images, masks = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    >>> boxes = torch.tensor([[[4.0, 4.0, 30.0, 20.0]], [[10.0, 10.0, 40.0, 50.0]]])
    >>> points = torch.tensor([[[10.0, 10.0]], [[20.0, 20.0]]])
    >>> out_img, out_boxes, out_mask, out_pts = aug(images, boxes, masks, points)
    >>> again = aug(images, boxes, masks, points, params=aug._params)  # exact replay
    >>> torch.equal(again[0], out_img)
    True
    >>> back = aug.inverse(out_img, out_boxes, out_mask, out_pts, data_keys=aug.data_keys)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from augpatch.integrations._common import (
    PIXEL_INDEX_OFFSET,
    check_version,
    copy_docs,
    core_classes,
    lazy_import,
    map_image_points,
)
from augpatch.transforms import PatchAugmentationBase

kornia = lazy_import("kornia", "kornia")
check_version(kornia, "kornia")

import kornia.augmentation as K  # noqa: E402
from kornia.augmentation.container.ops import AugmentationSequentialOps  # noqa: E402
from kornia.augmentation.container.params import ParamItem  # noqa: E402
from kornia.constants import DataKey  # noqa: E402
from kornia.geometry.boxes import Boxes  # noqa: E402
from kornia.geometry.keypoints import Keypoints  # noqa: E402

__all__ = ["PatchAugmentationSequential"]  # extended with the generated classes below

_BOX_KEYS = (DataKey.BBOX, DataKey.BBOX_XYXY, DataKey.BBOX_XYWH)

_NO_BOXES = (
    "{name} transforms each object inside its own box, so it needs the boxes together with "
    "the image, and {where}. Put it directly inside "
    "augpatch.integrations.kornia.PatchAugmentationSequential(..., data_keys=['input', "
    "'bbox_xyxy', ...]) (not inside kornia's AugmentationSequential / ImageSequential, and "
    "not in a nested container), or call it yourself as module(images, boxes, obj_to_img)."
)


# --------------------------------------------------------------------------- modules


class _KorniaPatchModule(nn.Module):
    """Mixin of the generated Kornia modules: a clear error when called without boxes."""

    def forward(self, images: Tensor, boxes: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``module(images [B, C, H, W], boxes, obj_to_img=None, **kw)``; see the core class."""
        if boxes is None:
            raise RuntimeError(
                _NO_BOXES.format(
                    name=type(self).__name__, where="it was called with the image only"
                )
            )
        return super().forward(images, boxes, *args, **kwargs)


def _is_patch_module(module: nn.Module) -> bool:
    """augpatch modules (the generated ones and any core transform) take the joint path."""
    return isinstance(module, PatchAugmentationBase)


_EXAMPLE = """
>>> import torch, kornia.augmentation as K
>>> from augpatch.integrations.kornia import PatchAugmentationSequential, {name}
>>> aug = PatchAugmentationSequential(
...     K.RandomHorizontalFlip(), {name}({args}), data_keys=["input", "bbox_xyxy"])
>>> images, boxes = aug(torch.rand(1, 3, 32, 32), torch.tensor([[[2.0, 2.0, 20.0, 14.0]]]))
>>> boxes.shape
torch.Size([1, 1, 4])
"""

for _name, _core in core_classes():
    _cls = type(_name, (_KorniaPatchModule, _core), {"__module__": __name__, "__qualname__": _name})
    copy_docs(_cls, _core, "Kornia", " (use it inside PatchAugmentationSequential)", _EXAMPLE)
    globals()[_name] = _cls
    __all__.append(_name)
del _name, _core, _cls


# --------------------------------------------------------------------------- conversions


def _flat_boxes(boxes: Boxes, pad: Tensor | None) -> tuple[Tensor, Tensor]:
    """``Boxes`` -> (augpatch ``xyxy`` padded ``[B, M, 4]``, validity ``[B, M]``)."""
    xyxy = boxes.to_tensor("xyxy", as_padded_sequence=True)  # Kornia's exclusive xyxy
    if xyxy.dim() == 2:
        xyxy = xyxy.unsqueeze(0)
    b, m = xyxy.shape[:2]
    valid = torch.ones(b, m, dtype=torch.bool, device=xyxy.device)
    counts = getattr(boxes, "_N", None)
    if counts is not None:  # trailing padding of a list input
        real = m - torch.tensor(counts, device=xyxy.device)
        valid &= torch.arange(m, device=xyxy.device)[None] < real[:, None]
    holes = getattr(boxes, "_valid", None)
    if isinstance(holes, Tensor) and holes.numel() == b * m:
        valid &= holes.reshape(b, m).to(valid.device)
    if pad is not None:
        valid &= ~pad.reshape(b, m).to(valid.device)
    return xyxy, valid


def _vertices_plus(xyxy: Tensor) -> Tensor:
    """augpatch ``xyxy`` ``[..., 4]`` -> Kornia's inclusive vertices ``[..., 4, 2]``."""
    x1, y1, x2, y2 = xyxy.unbind(-1)
    x2, y2 = x2 - 1, y2 - 1
    return torch.stack(
        [torch.stack(p, -1) for p in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))], dim=-2
    )


def _replace_boxes(boxes: Boxes, valid: Tensor, applied: Tensor, new_flat: Tensor) -> Boxes:
    """A copy of ``boxes`` whose applied valid rows hold ``new_flat`` (other rows untouched)."""
    out = boxes.clone()
    data = out._data if out._data.dim() == 4 else out._data.unsqueeze(0)
    data = data.clone()
    rows = torch.nonzero(valid)
    rows = rows[applied]
    if rows.numel():
        data[rows[:, 0], rows[:, 1]] = _vertices_plus(new_flat[applied].to(data.dtype))
    out._data = data if boxes._data.dim() == 4 else data.squeeze(0)
    return out


def _points(kp: Keypoints) -> tuple[Tensor, bool]:
    data = kp.data
    batched = data.dim() == 3
    return (data if batched else data.unsqueeze(0)), batched


# --------------------------------------------------------------------------- the dispatcher


class _PatchSequentialOps(AugmentationSequentialOps):
    """Kornia's per-key dispatcher, plus a joint path for augpatch children.

    ``box_padding`` holds, for each box data key of the current call (in the
    order of the call's data keys), the ``[B, N]`` mask of padding rows (or
    ``None``); the container sets it before running its children.
    """

    def __init__(self, data_keys: Any) -> None:
        super().__init__(data_keys)
        self.box_padding: list[Tensor | None] = []

    def transform(  # type: ignore[override]
        self,
        *arg: Any,
        module: nn.Module,
        param: ParamItem,
        extra_args: dict[DataKey, dict[str, Any]],
        data_keys: Sequence[Any] | None = None,
    ) -> Any:
        if not _is_patch_module(module):
            return super().transform(
                *arg, module=module, param=param, extra_args=extra_args, data_keys=data_keys
            )
        return self._run_patch_module(module, arg, data_keys, param, inverse=False)

    def inverse(  # type: ignore[override]
        self,
        *arg: Any,
        module: nn.Module,
        param: ParamItem,
        extra_args: dict[DataKey, dict[str, Any]],
        data_keys: Sequence[Any] | None = None,
    ) -> Any:
        if not _is_patch_module(module):
            return super().inverse(
                *arg, module=module, param=param, extra_args=extra_args, data_keys=data_keys
            )
        return self._run_patch_module(module, arg, data_keys, param, inverse=True)

    def _run_patch_module(self, module: nn.Module, arg: tuple[Any, ...], data_keys: Sequence[Any] | None,
                          param: ParamItem, *, inverse: bool) -> Any:
        """Run an augpatch module on Kornia's inputs (the shared body of ``transform`` and
        ``inverse``): one output, or a list of them."""
        outputs = self._run(module, list(arg), self.preproc_datakeys(data_keys), param, inverse=inverse)
        return outputs[0] if len(outputs) == 1 else outputs

    # ----------------------------------------------------------------- joint path

    def _run(
        self,
        module: nn.Module,
        args: list[Any],
        keys: list[DataKey],
        param: ParamItem,
        inverse: bool,
    ) -> list[Any]:
        bi = _box_key(module, keys)
        if not isinstance(param.data, dict):
            raise TypeError(
                f"{type(module).__name__} got params {param.data!r}; pass the params recorded "
                "by PatchAugmentationSequential (container._params)"
            )
        pad = self.box_padding[0] if self.box_padding else None
        xyxy, valid = _flat_boxes(args[bi], pad)
        flat = xyxy[valid]
        obj_to_img = torch.nonzero(valid)[:, 0]

        img_i = keys.index(DataKey.INPUT) if DataKey.INPUT in keys else None
        images = args[img_i] if img_i is not None else None
        squeeze = isinstance(images, Tensor) and images.dim() == 3
        if squeeze:
            images = images.unsqueeze(0)

        mask_idx, masks, mask_4d, image_masks = _gather_masks(module, args, keys)

        if inverse:
            if not param.data:
                raise ValueError(
                    "No parameters to invert: run a forward pass first or pass params=..."
                )
            p = param.data
        else:
            replay = dict(param.data) if param.data else None
            if images is None:
                raise ValueError(
                    f"{type(module).__name__} needs the 'input' key to "
                    + ("draw parameters" if replay is None else "replay its parameters")
                )
            result = module(images, flat, obj_to_img, image_masks=image_masks, params=replay)
            p = module._params  # this call's parameters (patches from these boxes)
            if replay is None:  # fill the placeholder in place: it lands in container._params
                param.data.update(p)

        theta, patches, applied = p["theta"], p["patches"], p["batch_prob"]
        align = module.align_corners
        outs = list(args)

        if inverse:
            back = module.inverse(images, flat, obj_to_img, image_masks=image_masks, params=p)
            new_flat = back.boxes
            if images is not None:
                outs[img_i] = back.images.squeeze(0) if squeeze else back.images
            image_masks = back.image_masks
        else:
            new_flat = result.boxes
            outs[img_i] = result.images.squeeze(0) if squeeze else result.images
            if image_masks is not None:
                image_masks = result.image_masks

        outs[bi] = _replace_boxes(args[bi], valid, applied, new_flat)
        if image_masks is not None:
            _split_masks(outs, image_masks, mask_idx, masks, mask_4d)
        for i, k in enumerate(keys):
            if k == DataKey.KEYPOINTS:
                outs[i] = _move_keypoints(args[i], patches, theta, obj_to_img, applied, align,
                                          inverse)
        return outs


# --------------------------------------------------------------------------- the container


def _nested_patch_modules(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.modules() if _is_patch_module(m)]


class PatchAugmentationSequential(K.AugmentationSequential):
    """``kornia.augmentation.AugmentationSequential`` that can run augpatch children.

    Takes the arguments of ``AugmentationSequential`` plus ``box_padding``.
    Kornia children behave exactly as in ``AugmentationSequential``; every direct
    child that is an augpatch module (``augpatch.integrations.kornia.RandomPatch*``)
    receives the image, the boxes (exactly one box key), the masks and the
    keypoints together.

    Args:
        *args: Kornia augmentations and augpatch Kornia modules (direct children).
        data_keys: as in Kornia, e.g. ``["input", "bbox_xyxy", "mask", "keypoints"]``.
        box_padding: ``"zeros"`` (default): all-zero rows of a dense box tensor
            are padding (not objects, returned as zeros); ``None``: every row is a
            box, as in Kornia.
        **kwargs: ``same_on_batch``, ``keepdim``, ``random_apply``, ... as in Kornia.

    Shapes: images ``[B, C, H, W]``; boxes ``[B, N, 4]`` / list of ``[N_i, 4]`` /
    ``Boxes``; masks ``[B, C, H, W]``; keypoints ``[B, K, 2]``.

    Replay: ``aug(*inputs, params=aug._params)`` gives bit-identical outputs.
    Inverse: ``aug.inverse(*outputs)`` maps boxes and keypoints back (exact where
    nothing was cut off by the patch), and warps images and masks back
    approximately (content that left the patch is lost).

    Example:
        >>> import torch, kornia.augmentation as K
        >>> from augpatch.integrations.kornia import RandomPatchRotation
        >>> aug = PatchAugmentationSequential(
        ...     RandomPatchRotation(degrees=90.0), data_keys=["input", "bbox_xyxy"])
        >>> img, boxes = aug(torch.rand(1, 3, 32, 32), torch.tensor([[[2.0, 2.0, 11.0, 11.0]]]))
        >>> boxes.shape
        torch.Size([1, 1, 4])
    """

    def __init__(
        self,
        *args: nn.Module,
        data_keys: Sequence[str | int | DataKey] | None = (DataKey.INPUT,),
        box_padding: str | None = "zeros",
        **kwargs: Any,
    ) -> None:
        if box_padding not in ("zeros", None):
            raise ValueError(f"box_padding must be 'zeros' or None, got {box_padding!r}")
        for arg in args:
            if isinstance(arg, K.container.ImageSequentialBase):
                nested = _nested_patch_modules(arg)
                if nested:
                    raise ValueError(
                        _NO_BOXES.format(
                            name=nested[0], where=f"it sits in a nested {type(arg).__name__}"
                        )
                    )
        super().__init__(*args, data_keys=data_keys, **kwargs)
        self.box_padding = box_padding
        self.transform_op = _PatchSequentialOps(self.data_keys)

    def forward_parameters(self, batch_shape: torch.Size) -> list[ParamItem]:
        """Kornia's parameters, with an empty dict for each augpatch child.

        The dict is filled in place when the child runs (its parameters depend on
        the boxes), so after the call ``self._params`` holds them for replay.
        """
        params = super().forward_parameters(batch_shape)
        return [
            ParamItem(p.name, {}) if _is_patch_module(self.get_submodule(p.name)) else p
            for p in params
        ]

    def _padding_rows(self, arg: Any, key: DataKey) -> Tensor | None:
        if self.box_padding != "zeros" or not isinstance(arg, Tensor):
            return None
        per_box = 2 if key == DataKey.BBOX else 1  # vertices [.., 4, 2] vs rows [.., 4]
        if arg.dim() < 1 + per_box or arg.shape[-1] not in (2, 4):
            return None
        rows = (arg == 0).flatten(arg.dim() - per_box).all(-1)
        return rows if bool(rows.any()) else None

    def _arguments_preproc(self, *args: Any, data_keys: list[DataKey], **kwargs: Any) -> list[Any]:
        pads: list[Tensor | None] = []
        new_args = list(args)
        for i, (arg, key) in enumerate(zip(args, data_keys)):
            key = DataKey.get(key)
            if key in _BOX_KEYS:
                rows = self._padding_rows(arg, key)
                pads.append(rows)
                if rows is not None and key == DataKey.BBOX_XYWH:
                    # Kornia rejects the zero-size padding rows: give them a dummy 1x1 size.
                    new_args[i] = arg.masked_fill(rows[..., None], 1)
        self.transform_op.box_padding = pads
        return super()._arguments_preproc(*new_args, data_keys=data_keys, **kwargs)

    def _arguments_postproc(
        self, in_args: list[Any], out_args: list[Any], data_keys: list[DataKey]
    ) -> list[Any]:
        out = super()._arguments_postproc(in_args, out_args, data_keys)
        pads = iter(self.transform_op.box_padding)
        for i, key in enumerate(data_keys):
            if DataKey.get(key) in _BOX_KEYS:
                rows = next(pads, None)
                if rows is not None and isinstance(out[i], Tensor):
                    shape = rows.shape + (1,) * (out[i].dim() - rows.dim())
                    out[i] = out[i].masked_fill(rows.reshape(shape), 0)
        return out


def _box_key(module: nn.Module, keys: list[DataKey]) -> int:
    """The index of the one box data key (the objects) among ``keys``."""
    box_idx = [i for i, k in enumerate(keys) if k in _BOX_KEYS]
    if not box_idx:
        raise RuntimeError(
            _NO_BOXES.format(
                name=type(module).__name__,
                where=f"the container's data_keys {keys} hold no box key",
            )
        )
    if len(box_idx) > 1:
        raise NotImplementedError(
            f"{type(module).__name__} needs exactly one box data key (the objects), "
            f"got {len(box_idx)} in {keys}"
        )
    return box_idx[0]


def _gather_masks(
    module: nn.Module, args: list[Any], keys: list[DataKey]
) -> tuple[list[int], list[Tensor], list[Tensor], Tensor | None]:
    """The mask keys' indices, masks, their ``[B, C, H, W]`` views and all of them as one
    ``image_masks`` tensor (float64 when their dtypes differ; ``None`` without masks)."""
    mask_idx = [i for i, k in enumerate(keys) if k == DataKey.MASK]
    for i in mask_idx:
        if isinstance(args[i], (list, tuple)):
            raise NotImplementedError(
                f"{type(module).__name__}: lists of masks are not supported, "
                "pass a [B, C, H, W] tensor per mask key"
            )
    masks = [args[i] for i in mask_idx]
    mask_4d = [m if m.dim() == 4 else m.unsqueeze(1) for m in masks]
    image_masks = None
    if masks:
        same = len({m.dtype for m in masks}) == 1
        image_masks = torch.cat([m if same else m.double() for m in mask_4d], 1)
    return mask_idx, masks, mask_4d, image_masks


def _split_masks(
    outs: list[Any], image_masks: Tensor, mask_idx: list[int], masks: list[Tensor],
    mask_4d: list[Tensor],
) -> None:
    """Put each mask key's part of the moved ``image_masks`` back into ``outs`` (its shape
    and dtype as given)."""
    start = 0
    for i, m, m4 in zip(mask_idx, masks, mask_4d):
        part = image_masks[:, start : start + m4.shape[1]]
        start += m4.shape[1]
        part = part if m.dim() == 4 else part.squeeze(1)
        if part.dtype != m.dtype:  # mixed mask dtypes went through float64
            part = part.to(m.dtype) if m.is_floating_point() else part.round().to(m.dtype)
        outs[i] = part


def _move_keypoints(
    points: Any, patches: Tensor, theta: Tensor, obj_to_img: Tensor, applied: Tensor,
    align: bool, inverse: bool,
) -> Keypoints:
    """Image keypoints moved with the objects whose patch holds them (or back)."""
    pts, batched = _points(points)
    moved = (
        map_image_points(
            pts + PIXEL_INDEX_OFFSET,
            patches,
            theta,
            obj_to_img,
            applied=applied,
            align_corners=align,
            inverse=inverse,
        )
        - PIXEL_INDEX_OFFSET
    )
    moved = moved.to(pts.dtype)
    return Keypoints(moved if batched else moved.squeeze(0))
