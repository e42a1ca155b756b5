"""albumentations adapter: augpatch transforms as ``A.DualTransform`` s.

Every class here is generated from the core class of the same name and drops
into ``A.Compose`` next to albumentations' own transforms::

    import albumentations as A
    from augpatch.integrations.albumentations import RandomPatchAffine

    pipeline = A.Compose(
        [A.HorizontalFlip(), RandomPatchAffine(degrees=15, scale=(0.9, 1.1), p=1.0)],
        bbox_params=A.BboxParams(format="coco", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy"),
        seed=137,
    )
    out = pipeline(image=image, bboxes=bboxes, labels=labels, masks=masks, keypoints=kps)

* The objects are the ``bboxes`` of the call (every albumentations format:
  ``pascal_voc``, ``coco``, ``yolo``, ``albumentations``; label fields are kept and
  filtered by albumentations as usual). Without bboxes nothing moves.
* Images: ``HWC`` or ``HW`` numpy arrays, ``uint8`` or ``float32`` (any other dtype
  is computed in float32 and cast back). The torch core runs on the CPU.
* ``mask`` / ``masks`` are per-image masks: every object's transform is applied
  to them with nearest resampling, like to the image.
* ``keypoints`` move with the object whose box holds them; their angle and scale
  columns are rotated and scaled by that object's affine (albumentations puts
  pixel ``j``'s centre at ``x = j``, augpatch at ``j + 0.5``: converted exactly).

Arguments: those of the core class, except that

* ``p`` is albumentations' probability of applying the transform to an image
  (default 0.5, like ``A.Affine``) and ``p_object`` is the core's per-object
  probability (``None``: the core class's default);
* ``generator`` is replaced by albumentations' own random state: all randomness
  is drawn from ``self.random_generator``, so ``A.Compose(..., seed=...)``
  reproduces a run; ``same_on_batch`` (one image per call: use ``same_on_image``)
  and ``drop_invalid`` (albumentations filters boxes itself) are not exposed.

Every argument is declared in the class's ``InitSchema`` (albumentations resets
undeclared arguments to their defaults), so ``A.to_dict`` / ``A.from_dict`` and
``A.ReplayCompose`` work; a replay applies the recorded parameters to the same
number of boxes.

The timing of the adapter against ``A.Affine`` lives with the benchmarks:
``augpatch.bench.adapters.albumentations_per_image()`` (``python -m augpatch bench
adapters``).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import torch
from torch import Tensor

import augpatch.functional as AF
from augpatch.data import mix_seeds, register_reseed_hook
from augpatch.functional.checks import compute_dtype
from augpatch.integrations._common import (
    PIXEL_INDEX_OFFSET,
    check_version,
    copy_docs,
    core_classes,
    lazy_import,
    map_image_points,
)
from augpatch.transforms import PatchAugmentationBase

albumentations = lazy_import("albumentations", "albumentations")
check_version(albumentations, "albumentations")

import numpy as np  # noqa: E402
from albumentations.core.transforms_interface import (  # noqa: E402
    BaseTransformInitSchema,
    DualTransform,
)
from pydantic import Field, create_model  # noqa: E402

from augpatch.functional.host import identity_objects  # noqa: E402

__all__ = ["PatchDualTransform", "reseed_albumentations"]  # + the generated classes

# core options the adapters do not expose (see the module docstring)
_HIDDEN = ("generator", "same_on_batch", "drop_invalid", "p")
_TORCH_IMAGE_DTYPES = (np.uint8, np.float32, np.float64)


def _to_tensor(array: np.ndarray) -> tuple[Tensor, Any]:
    """``HW`` / ``HWC`` array -> ``[1, C, H, W]`` tensor, and the function that undoes it."""
    shape, dtype = array.shape, array.dtype
    work = array if dtype in _TORCH_IMAGE_DTYPES else array.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(work))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]

    def back(out: Tensor) -> np.ndarray:
        arr = out[0].permute(1, 2, 0).numpy().reshape(shape)
        if arr.dtype != dtype:
            arr = np.rint(arr) if np.issubdtype(dtype, np.integer) or dtype == np.bool_ else arr
            arr = arr.astype(dtype)
        return np.ascontiguousarray(arr)

    return t, back


def reseed_albumentations(obj: Any, worker_seed: int) -> int:
    """Reseed an albumentations ``Compose`` / transform copied into a DataLoader worker.

    The reseed hook :func:`augpatch.data.seed_worker` calls on every object reachable
    from a worker's dataset: an object with a numpy ``random_generator`` and a
    ``set_random_seed`` method (albumentations' ``Compose`` and transforms) gets
    ``set_random_seed(mix_seeds(worker_seed, obj.seed))``. Returns 1 if it reseeded
    ``obj``, else 0.

    Example:
        >>> import albumentations as A
        >>> compose = A.Compose([A.HorizontalFlip()], seed=3)
        >>> reseed_albumentations(compose, 7), reseed_albumentations(object(), 7)
        (1, 0)
    """
    if not (
        isinstance(getattr(obj, "random_generator", None), np.random.Generator)
        and callable(getattr(obj, "set_random_seed", None))
    ):
        return 0
    base = obj.seed if isinstance(getattr(obj, "seed", None), int) else 0
    obj.set_random_seed(mix_seeds(worker_seed, base) % 2**32)
    return 1


register_reseed_hook(reseed_albumentations)


class PatchDualTransform(DualTransform):
    """Base of the generated albumentations adapters (not used directly).

    Subclasses set ``_core_class``; ``self._core`` is the core transform built
    from the init arguments and driven by a private ``torch.Generator`` that is
    reseeded from ``self.random_generator`` at every call.
    """

    _core_class: type[PatchAugmentationBase]
    _core: PatchAugmentationBase

    def _build_core(self, kwargs: dict[str, Any]) -> None:
        core_kwargs = {k: v for k, v in kwargs.items() if k != "p_object"}
        if kwargs.get("p_object") is not None:
            core_kwargs["p"] = kwargs["p_object"]
        self._generator = torch.Generator()
        self._core = self._core_class(**core_kwargs, generator=self._generator)

    # ------------------------------------------------------------------ parameters

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """Draw the per-object parameters for the call's bboxes (from ``self.random_generator``)."""
        height, width = params["shape"][:2]
        channels = params["shape"][2] if len(params["shape"]) > 2 else 1
        bboxes = data.get("bboxes")
        n = 0 if bboxes is None else len(bboxes)
        boxes = torch.zeros(0, 4)
        if n:
            scale = np.array([width, height, width, height], dtype=np.float64)
            boxes = torch.from_numpy(np.asarray(bboxes)[:, :4].astype(np.float64) * scale).float()
        self._generator.manual_seed(int(self.random_generator.integers(0, 2**63 - 1)))
        drawn = self._core.forward_parameters((1, channels, height, width), boxes)
        return {
            "augpatch": {k: v.detach().numpy() for k, v in drawn.items() if isinstance(v, Tensor)}
        }

    @staticmethod
    def _params(augpatch: dict[str, np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
        theta = np.asarray(augpatch["theta"])
        # an object whose theta is exactly the identity is left alone: bit-exact pixels,
        # boxes, masks and keypoints (resampling at the identity still rounds in float32);
        # in NumPy: a few objects' parameters cost microseconds here, not tensor operations
        applied = np.asarray(augpatch["batch_prob"]).astype(bool) & ~identity_objects(theta)
        return (torch.from_numpy(theta), torch.from_numpy(np.asarray(augpatch["patches"])),
                torch.from_numpy(applied))

    # ------------------------------------------------------------------ targets

    def apply(self, img: np.ndarray, augpatch: dict[str, np.ndarray], **params: Any) -> np.ndarray:
        """Warp every object of an ``HW`` / ``HWC`` image."""
        theta, patches, applied = self._params(augpatch)
        if not applied.numpy().any():
            return img
        t, back = _to_tensor(img)
        # the core's own image hook without its call's bookkeeping (the boxes move in
        # apply_to_bboxes): identity objects are already off in ``applied``
        theta = theta.to(compute_dtype(t, patches))
        o2i = torch.zeros(patches.shape[0], dtype=torch.long)
        return back(self._core.warp_objects(t, patches, theta, o2i, applied))

    def apply_to_mask(
        self, mask: np.ndarray, augpatch: dict[str, np.ndarray], **params: Any
    ) -> np.ndarray:
        """Warp a per-image mask (``HW`` or ``HWC``) with nearest resampling."""
        theta, patches, applied = self._params(augpatch)
        if not bool(applied.any()):
            return mask
        if mask.ndim == 2:
            return self._warp_masks(mask[None], theta, patches, applied, channels_last=False)[0]
        return self._warp_masks(
            np.moveaxis(mask, -1, 0), theta, patches, applied, channels_last=True
        )

    def apply_to_masks(self, masks: Any, augpatch: dict[str, np.ndarray], **params: Any) -> Any:
        """Warp a stack (or list) of ``HW`` masks at once, nearest resampling."""
        theta, patches, applied = self._params(augpatch)
        if not bool(applied.any()) or len(masks) == 0:
            return masks
        stack = np.stack(list(masks)) if isinstance(masks, (list, tuple)) else masks
        if stack.ndim == 4:  # [N, H, W, C]: warp as N*C channels
            n, h, w, c = stack.shape
            flat = np.moveaxis(stack, -1, 1).reshape(n * c, h, w)
            out = self._warp_masks(flat, theta, patches, applied, channels_last=False)
            out = np.moveaxis(out.reshape(n, c, h, w), 1, -1)
        else:
            out = self._warp_masks(stack, theta, patches, applied, channels_last=False)
        return list(out) if isinstance(masks, (list, tuple)) else out

    def _warp_masks(
        self, chw: np.ndarray, theta: Tensor, patches: Tensor, applied: Tensor, channels_last: bool
    ) -> np.ndarray:
        """Warp ``[K, H, W]`` masks of one image (:func:`augpatch.functional.warp_masks`)."""
        t = torch.from_numpy(np.ascontiguousarray(chw))[None]
        sel = torch.nonzero(applied).flatten()
        core = self._core
        out = AF.warp_masks(
            t,
            patches[sel],
            theta[sel],
            padding_mode=core.padding_mode,
            align_corners=core.align_corners,
            overlap=core.overlap,
        )[0].numpy()
        return np.ascontiguousarray(np.moveaxis(out, 0, -1) if channels_last else out)

    def apply_to_bboxes(
        self, bboxes: np.ndarray, augpatch: dict[str, np.ndarray], shape: Any = None, **params: Any
    ) -> np.ndarray:
        """Move each box with its object (normalised ``[x_min, y_min, x_max, y_max, ...]`` rows)."""
        if len(bboxes) == 0:
            return bboxes
        theta, patches, applied = self._params(augpatch)
        if len(bboxes) != patches.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: the parameters are for {patches.shape[0]} boxes, "
                f"got {len(bboxes)} (a replay must see the same objects)"
            )
        height, width = shape[:2]
        scale = np.array([width, height, width, height], dtype=np.float64)
        pixels = np.asarray(bboxes)[:, :4].astype(np.float64) * scale
        # the core's box hook (for a few CPU boxes its transform_boxes runs in NumPy)
        new = self._core.move_object_boxes(
            torch.from_numpy(pixels), patches.double(), theta.double(), applied
        ).numpy()
        out = np.array(bboxes, dtype=np.float64, copy=True)
        out[:, :4] = new / scale
        return out.astype(np.asarray(bboxes).dtype, copy=False)

    def apply_to_keypoints(
        self, keypoints: np.ndarray, augpatch: dict[str, np.ndarray], **params: Any
    ) -> np.ndarray:
        """Move keypoints ``[x, y, z, angle, scale, ...]`` with the object whose box holds them."""
        theta, patches, applied = self._params(augpatch)
        if len(keypoints) == 0 or not bool(applied.any()):
            return keypoints
        kp = np.array(keypoints, dtype=np.float64, copy=True)
        pts = torch.from_numpy(kp[None, :, :2] + PIXEL_INDEX_OFFSET)
        moved, linear = map_image_points(
            pts,
            patches.double(),
            theta.double(),
            None,
            applied=applied,
            align_corners=self._core.align_corners,
            return_linear=True,
        )
        kp[:, :2] = moved[0].numpy() - PIXEL_INDEX_OFFSET
        lin = linear[0].numpy()  # [K, 2, 2]
        if kp.shape[1] > 3:  # angle: rotate its direction vector
            direction = np.stack([np.cos(kp[:, 3]), np.sin(kp[:, 3])], -1)
            turned = np.einsum("kij,kj->ki", lin, direction)
            kp[:, 3] = np.mod(np.arctan2(turned[:, 1], turned[:, 0]), 2 * np.pi)
        if kp.shape[1] > 4:  # scale: by the local area change
            kp[:, 4] *= np.sqrt(np.abs(np.linalg.det(lin)))
        return kp.astype(np.asarray(keypoints).dtype, copy=False)


# --------------------------------------------------------------------------- class generation


def _adapter_parameters(core_cls: type) -> list[tuple[inspect.Parameter, Any]]:
    """``(parameter, annotation)`` of the adapter: the class's own + the base options."""
    out: list[tuple[inspect.Parameter, Any]] = []
    seen: set[str] = set()
    first = next(c for c in core_cls.__mro__ if "__init__" in c.__dict__)
    sources = [first]
    sig = inspect.signature(first.__init__)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        sources.append(PatchAugmentationBase)
    for source in sources:
        try:
            hints = typing.get_type_hints(source.__init__)
        except Exception:  # unresolvable annotation: validate nothing for it
            hints = {}
        for p in list(inspect.signature(source.__init__).parameters.values())[1:]:
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            if p.name in seen or p.name in _HIDDEN:
                continue
            seen.add(p.name)
            out.append((p, hints.get(p.name, Any)))
    return out


_EXAMPLE = """
>>> import numpy as np, albumentations as A
>>> from augpatch.integrations.albumentations import {name}
>>> t = A.Compose([A.HorizontalFlip(), {name}({args})],
...               bbox_params=A.BboxParams(format="coco", label_fields=["labels"]), seed=0)
>>> out = t(image=np.zeros((32, 32, 3), np.uint8), bboxes=[[2, 2, 18, 12]], labels=["cat"])
>>> list(out["labels"])
['cat']
"""


def _make_adapter(name: str, core_cls: type) -> type:
    params = _adapter_parameters(core_cls)
    kw = inspect.Parameter.KEYWORD_ONLY
    params.append(
        (inspect.Parameter("p_object", kw, default=None, annotation="float | None"), float | None)
    )
    params.append((inspect.Parameter("p", kw, default=0.5, annotation="float"), float))
    names = [p.name for p, _ in params]

    fields: dict[str, Any] = {}
    for p, hint in params:
        if p.name == "p":
            continue  # declared by BaseTransformInitSchema (0 <= p <= 1)
        default = ... if p.default is inspect.Parameter.empty else p.default
        if p.name == "p_object":
            fields[p.name] = (hint, Field(default=None, ge=0, le=1))
        else:
            fields[p.name] = (hint, default)
    try:
        schema = create_model(f"{name}InitSchema", __base__=BaseTransformInitSchema, **fields)
    except Exception:  # a hint pydantic cannot check: fall back to Any for all but p_object
        loose = {k: (Any, v[1]) if k != "p_object" else v for k, v in fields.items()}
        schema = create_model(f"{name}InitSchema", __base__=BaseTransformInitSchema, **loose)

    def __init__(self: PatchDualTransform, **kwargs: Any) -> None:
        p = kwargs.pop("p", 0.5)
        DualTransform.__init__(self, p=p)
        for key in names:
            if key != "p":
                setattr(self, key, kwargs.get(key))
        self._build_core({k: v for k, v in kwargs.items() if k in names})

    def get_transform_init_args_names(self: PatchDualTransform) -> tuple[str, ...]:
        return tuple(n for n in names if n != "p")  # p is a base argument

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param] + [p for p, _ in params])  # type: ignore[attr-defined]
    cls = type(
        name,
        (PatchDualTransform,),
        {
            "InitSchema": schema,
            "__init__": __init__,
            "get_transform_init_args_names": get_transform_init_args_names,
            "_core_class": core_cls,
            "__module__": __name__,
            "__qualname__": name,
        },
    )
    copy_docs(
        cls,
        core_cls,
        "albumentations",
        " except ``p`` (per image, default 0.5), ``p_object`` (the core's per-object ``p``) "
        "and no ``generator`` / ``same_on_batch`` / ``drop_invalid``",
        _EXAMPLE,
    )
    return cls


for _name, _core in core_classes():
    globals()[_name] = _make_adapter(_name, _core)
    __all__.append(_name)
del _name, _core


def __getattr__(name: str) -> Any:
    """A clear error for the removed ``benchmark_against_affine`` (it moved to the benchmarks):
    an ``ImportError``, whose message ``from ... import`` shows (an ``AttributeError``'s it
    would replace with a generic one)."""
    if name == "benchmark_against_affine":
        raise ImportError(
            "augpatch.integrations.albumentations.benchmark_against_affine was removed: the timing of "
            "the adapter against A.Affine is augpatch.bench.adapters.albumentations_per_image(), the "
            "albumentations case of `python -m augpatch bench adapters`"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
