"""``PatchAugmentationBase``: the machinery shared by every per-object transform.

A transform is a *parameter sampler* plus a *matrix*:

* :meth:`PatchAugmentationBase.generate_parameters` samples human parameters
  (angles, scales, ...) for the objects it is given;
* :meth:`PatchAugmentationBase.compute_matrix` turns them into per-object
  ``theta [N, 2, 3]`` (``F.affine_grid`` convention in each patch's normalised
  coordinates, see the SPEC).

Everything else lives in the base class, once: the per-object probability ``p``,
sharing of draws (``same_on_batch`` / ``same_on_image``), the single
:func:`augpatch.functional.warp_patches` call, the mapping of boxes, masks and
keypoints, ``keep`` / ``drop_invalid``, replay from saved parameters and the
inverse. One module per job, the class inherits them:

* ``base.py``: the class, its options, the subclass hooks, the search interface and
  ``forward``;
* ``_params.py`` (``ParameterMixin``): sampling and replay of the parameters;
* ``_targets.py`` (``TargetMixin``): the per-target apply / inverse hooks and the warp
  they share;
* ``_inverse.py`` (``InverseMixin``): ``inverse`` and its steps;
* ``pipeline.py``: the call's helpers shared with other packages (``make_result``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import augpatch.functional as F
from augpatch.functional.checks import (
    MODES,
    OVERLAPS,
    PADDING_MODES,
    BoxesLike,
    check_bool,
    check_image_sizes,
    check_images,
    check_targets,
    compute_dtype,
    host_arithmetic,
    parse_boxes,
)
from augpatch.transforms._inverse import InverseMixin
from augpatch.transforms._params import ParameterMixin
from augpatch.transforms._result import PatchResult
from augpatch.transforms._targets import TargetMixin
from augpatch.transforms.pipeline import (  # noqa: F401  (re-exported: base.py was their home)
    _CALL_KEYS,
    _KEEP_EPS,
    Params,
    PatchCall,
    _any,
    _check_mode,
    _check_p,
    _detach,
    _eye,
    gate_theta,
    identity_rows,
    image_regions,
    keep_mask,
    make_result,
    never_inverted,
)
from augpatch.transforms.sampling import register_tensor

__all__ = [
    "BOUND_FORMS",
    "PatchAugmentationBase",
    "SearchVariable",
    "PatchCall",
    "identity_rows",
    "image_regions",
    "keep_mask",
    "make_result",
    "never_inverted",
]


def _clip_on_the_host(boxes: Tensor, size: tuple[int, int]) -> Tensor | None:
    """:func:`augpatch.functional.clip_boxes` of checked CPU boxes without gradient, in NumPy
    (the same ``min(max(x, 0), (W, H, W, H))``, bit for bit; a few boxes cost microseconds
    instead of the tensor path's checks and small operations), or ``None`` where the tensor
    path is needed (another device or dtype, a gradient, a tensor subclass, tracing)."""
    if not host_arithmetic(boxes):
        return None
    import numpy as np

    height, width = size
    b = boxes.numpy()
    hi = np.array([width, height, width, height], b.dtype)
    return torch.from_numpy(np.minimum(np.maximum(b, b.dtype.type(0)), hi))


def _same(x: Tensor) -> Tensor:
    return x


def _pair(x: Tensor) -> Tensor:
    return torch.stack((x, x), -1)  # isotropic: the same value in both columns


def _x_only(x: Tensor) -> Tensor:
    return torch.stack((x, torch.zeros_like(x)), -1)  # (value, 0)


#: how the ``k`` values of a bound fill a parameter's columns (see ``parameter_bounds``)
BOUND_FORMS = {"full": _same, "isotropic": _pair, "x_only": _x_only}


@dataclass
class SearchVariable:
    """One searched (attacked) tensor: ``params[key] = expand(x)`` with ``lo <= x <= hi``
    elementwise (``lo``/``hi`` broadcast to ``x``)."""

    key: str
    x: Tensor
    lo: Tensor
    hi: Tensor
    expand: Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------- base class


class PatchAugmentationBase(ParameterMixin, TargetMixin, InverseMixin, nn.Module):
    r"""Base class of per-object affine augmentations (Kornia's ``AugmentationBase2D`` style).

    Subclasses implement only :meth:`generate_parameters` and :meth:`compute_matrix`.
    The base gates objects with probability ``p``, shares draws, warps all objects in
    ONE :func:`augpatch.functional.warp_patches` call and maps boxes, masks and
    keypoints with the same per-object ``theta``.

    Args:
        p: probability that an object is transformed (drawn per object, or per
            sharing group, see below). Objects not drawn get the identity and are
            left bit-for-bit unchanged. May be a 0-d tensor that requires grad (or an
            ``nn.Parameter``): in ``train()`` mode each object's coin is then relaxed
            (:func:`augpatch.transforms.sampling.relaxed_bernoulli` with
            ``gate_temperature``, straight-through hard if ``gate_hard``) so that the
            loss's gradient reaches ``p``; every object is then resampled with
            ``lerp(identity, theta, gate)`` and ``_params`` gets ``gate [N]`` (float)
            with ``batch_prob`` all True. In ``eval()`` mode, and for a float ``p``
            (or a tensor without grad) in any mode, it is the usual hard coin.
        same_on_batch: one draw (parameters and the ``p`` coin) shared by every object
            of the batch.
        same_on_image: one draw per image, shared by that image's objects.
            ``same_on_batch`` wins when both are set. A shared draw is shared as a
            *relative* value: e.g. a translation of 10 % of the box moves every
            object by 10 % of its own size.
        resample: ``"bilinear"``, ``"nearest"`` or ``"bicubic"`` (case-insensitive; a
            torchvision ``InterpolationMode`` is accepted). Masks always use nearest.
        padding_mode: ``"zeros"``, ``"border"``, ``"reflection"`` (relative to the
            patch) or ``"image"`` (read the object's real surroundings).
        align_corners: normalisation convention of ``theta`` (as ``F.affine_grid``).
        overlap: ``"sequential"`` (objects applied in index order) or ``"parallel"``.
        generator: optional ``torch.Generator`` for a private, reproducible stream;
            without one the global CPU RNG (``torch.manual_seed``) is used, whatever
            the device of the images.
        drop_invalid: if True, objects whose new box is degenerate (``keep`` False: width
            or height below 1e-3 px, i.e. no content left inside the patch)
            are removed from the returned boxes, masks, keypoints and ``obj_to_img``
            (as torchvision's ``SanitizeBoundingBoxes``); their pixels are still
            transformed. Default False: nothing is dropped, ``keep`` reports them.

    Call:
        ``aug(images, boxes, obj_to_img=None, *, masks=None, image_masks=None,
        keypoints=None, params=None) -> PatchResult``; see :meth:`forward`.

    After every call ``aug._params`` holds the (detached) parameters of that call:
    the subclass's human parameters ``[N, ...]``, ``theta [N, 2, 3]`` (actually
    applied: identity where not drawn), ``batch_prob [N]`` bool, ``patches [N, 4]``
    (boxes clipped to the canvas), ``obj_to_img [N]`` and ``keep [N]``.
    Human parameters are sampled for every object, also where ``batch_prob`` is False.

    Subclassing:
        >>> class RandomPatchZoom(PatchAugmentationBase):
        ...     def generate_parameters(self, patches, obj_to_img, batch_size, generator):
        ...         u = uniform01((patches.shape[0],), generator, patches.device)
        ...         return {"scale": 1 + u.to(patches.dtype)}
        ...     def compute_matrix(self, params, patches):
        ...         return F.patch_affine_matrix(patches, scale=params["scale"],
        ...                                      align_corners=self.align_corners)
    """

    def __init__(
        self,
        *,
        p: float = 0.5,
        same_on_batch: bool = False,
        same_on_image: bool = False,
        resample: str = "bilinear",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        overlap: str = "sequential",
        generator: torch.Generator | None = None,
        drop_invalid: bool = False,
    ) -> None:
        super().__init__()
        p = _check_p(p)
        if isinstance(p, Tensor):
            register_tensor(self, "p", p)
        else:
            self.p = p
        self.same_on_batch = check_bool("same_on_batch", same_on_batch)
        self.same_on_image = check_bool("same_on_image", same_on_image)
        self.resample = _check_mode("resample", resample, MODES)
        self.padding_mode = _check_mode("padding_mode", padding_mode, PADDING_MODES)
        self.align_corners = check_bool("align_corners", align_corners)
        self.overlap = _check_mode("overlap", overlap, OVERLAPS)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        self.generator = generator
        self.drop_invalid = check_bool("drop_invalid", drop_invalid)
        self._params: Params | None = None

    # ------------------------------------------------------------------ subclass hooks

    def generate_parameters(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> Params:
        """Sample human parameters, one row per given object.

        Args:
            patches: ``[G, 4]`` float ``xyxy`` patches (boxes clipped to the canvas) of
                the objects to sample for; with ``same_on_batch``/``same_on_image``
                these are one representative per sharing group, and the base copies
                each row to the group's objects.
            obj_to_img: ``[G]`` image index of each of them.
            batch_size: ``B``.
            generator: the generator to draw from (``None``: global RNG); use
                :func:`augpatch.transforms.sampling.uniform01`.

        Returns:
            ``{name: Tensor [G, ...]}`` on ``patches.device``. Store values relative to
            the box (fractions) when sharing should be relative. Default: ``{}``.
        """
        return {}

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        """Per-object ``theta [N, 2, 3]`` (``F.affine_grid`` convention) from ``params``.

        Args:
            params: the human parameters of all ``N`` objects (``[N, ...]``).
            patches: ``[N, 4]`` float patches.

        Must be deterministic and differentiable; ``p``-gating is done by the base.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement compute_matrix")

    def parameter_bounds(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> dict[str, tuple[Tensor, Tensor, str]]:
        """The range each sampled human parameter is drawn from (searches, attacks).

        Returns ``{name: (low [k], high [k], form)}`` in the units of the parameter
        dict; ``form`` says how the ``k`` values fill the parameter's columns:
        ``"full"`` (one range per column, or ``k = 1`` for a parameter ``[N]``),
        ``"isotropic"`` (``k = 1``, the same value in both columns) or ``"x_only"``
        (``k = 1``, ``(value, 0)``); see :data:`BOUND_FORMS`. Default: ``{}`` (nothing
        bounded to search, e.g. flips and :class:`~augpatch.PatchAffine`). A transform
        with magnitudes overrides this, and :meth:`search_space` (hence
        :func:`augpatch.search.attack`) then handles it without further code.

        Example:
            >>> from augpatch import RandomPatchHorizontalFlip
            >>> RandomPatchHorizontalFlip().parameter_bounds()
            {}
        """
        return {}

    def search_space(self, params: Params, prefix: str = "") -> list[SearchVariable]:
        """The searched variables of a parameter dict, each within its bounds.

        Default: one :class:`SearchVariable` per entry of :meth:`parameter_bounds`
        (parameter ``params[prefix + name]``, ``[N]`` or ``[N, 2]``); an isotropic or
        x-only parameter is searched as one value per object and expanded back.
        Containers and transforms with per-object bounds override it.

        Example:
            >>> from augpatch import RandomPatchRotation
            >>> t = RandomPatchRotation(30.0)
            >>> space = t.search_space(t.forward_parameters((1, 1, 8, 8), torch.tensor([[0, 0, 4, 4]])))
            >>> [(v.key, v.lo.tolist(), v.hi.tolist()) for v in space]
            [('angle', [-30.0], [30.0])]
        """
        bounds = None
        out: list[SearchVariable] = []
        for name in list(self.parameter_bounds()):
            value = params[prefix + name]
            if bounds is None:
                bounds = self.parameter_bounds(value.device, value.dtype)
            lo, hi, form = bounds[name]
            n = value.shape[0]
            lo, hi = lo.expand(n, lo.shape[0]), hi.expand(n, hi.shape[0])
            if form != "full":  # one value per object, expanded into both columns
                out.append(SearchVariable(prefix + name, value[:, 0], lo[:, 0], hi[:, 0],
                                          BOUND_FORMS[form]))
            elif value.dim() == 1:
                out.append(SearchVariable(prefix + name, value, lo[:, 0], hi[:, 0], _same))
            else:
                out.append(SearchVariable(prefix + name, value, lo, hi, _same))
        return out

    # ------------------------------------------------------------------ call

    @staticmethod
    def _flatten_boxes(
        boxes: BoxesLike, obj_to_img: Tensor | None, batch: int
    ) -> tuple[Tensor, Tensor, bool]:
        """``(boxes [N, 4], obj_to_img [N] int64, was_list)`` (``obj_to_img`` filled in)."""
        boxes, o2i, as_list = parse_boxes(boxes, obj_to_img, batch)
        if o2i is None:
            o2i = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
        return boxes, o2i, as_list

    # The names these hooks had before they were made public (issue 23), kept for code
    # written against them in parallel; new code calls the public names.
    _replay_parameters = ParameterMixin.replay_parameters
    _warp = TargetMixin.warp_objects
    _move_boxes = TargetMixin.move_object_boxes
    _move_points = TargetMixin.move_object_points
    _check_extras = staticmethod(check_targets)

    # ------------------------------------------------------------------ call

    def forward(
        self,
        images: Tensor,
        boxes: BoxesLike | None = None,
        obj_to_img: Tensor | None = None,
        *,
        masks: Tensor | None = None,
        image_masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        params: Mapping[str, Any] | None = None,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> PatchResult:
        """Transform every object's patch, and its boxes, masks and keypoints.

        Args:
            images: ``[B, C, H, W]`` float or uint8 images.
            boxes: ``[N, 4]`` ``xyxy`` boxes in pixels (float or int), or a list of
                ``B`` tensors ``[N_i, 4]`` (then returned as a list).
            obj_to_img: ``[N]`` int64 image of each box; may be omitted when ``B == 1``.
            masks: ``[N, H, W]`` per-object masks (any dtype, kept); mask ``n`` moves with
                object ``n`` only, nearest (:func:`augpatch.functional.warp_masks`).
            image_masks: ``[B, K, H, W]`` (or ``[B, H, W]``) per-image masks (e.g.
                segmentation maps), warped like the images, nearest, dtype kept.
            keypoints: ``[N, K, 2]`` ``(x, y)`` points of each object, mapped exactly.
            params: replay these parameters (``aug._params``, possibly loaded with
                ``torch.load`` or :func:`params_from_json`) instead of sampling: their
                ``theta`` when present (bit-identical replay), else recomputed from the
                human parameters and ``batch_prob``; moved to the input's device.
            image_sizes: ``[B, 2]`` real ``(H_b, W_b)`` of a padded batch's images (at
                the canvas's top-left, :func:`augpatch.data.collate_objects`), or
                ``None``: boxes are clipped to their own image, the padding is neither
                read (``padding_mode="image"`` sees zeros) nor changed, and ``keep`` is
                False where a box is degenerate in its image.

        Returns:
            :class:`PatchResult` ``(images, boxes)`` with ``.masks``, ``.image_masks``,
            ``.keypoints``, ``.keep``, ``.obj_to_img``, ``.params``; float boxes (float64
            if the images or boxes are). Objects not transformed (coin said no, or a
            matrix exactly the identity) keep their pixels and box exactly.

        Example:
            >>> from augpatch import RandomPatchRotation
            >>> aug = RandomPatchRotation(30.0, p=1.0)
            >>> images = torch.rand(2, 3, 64, 64)
            >>> boxes = torch.tensor([[4, 4, 30, 20], [10, 30, 50, 60]])
            >>> out, new_boxes = aug(images, boxes, torch.tensor([0, 1]))
            >>> again = aug(images, boxes, torch.tensor([0, 1]), params=aug._params)
            >>> torch.equal(out, again.images)
            True
        """
        images, boxes = self._check_call_images(images, boxes)
        batch, _, height, width = images.shape
        boxes, obj_to_img, as_list = self._flatten_boxes(boxes, obj_to_img, batch)
        n = boxes.shape[0]
        keypoints = check_targets(masks, image_masks, keypoints, n, batch, (height, width))
        sizes = check_image_sizes(image_sizes, batch, (height, width))
        fboxes = boxes.to(compute_dtype(images, boxes))
        patches = self._patches(fboxes, obj_to_img, (height, width), sizes)
        if params is None:
            p = self._forward_parameters(patches, obj_to_img, batch)
        else:
            p = self.replay_parameters(params, patches)
        call = self.make_call(p, patches, obj_to_img, boxes if sizes is None else patches, sizes)
        out_images = self.apply_transform_image(images, call)
        boxes_out = self.apply_transform_box(fboxes, call)
        masks_out, image_masks_out, kps_out = self._apply_extras(
            call, masks, image_masks, None if keypoints is None else keypoints.to(fboxes.dtype)
        )
        stored = self.record_call(p, call, boxes_out)
        return make_result(
            out_images, boxes_out, obj_to_img, stored["keep"],
            drop_invalid=self.drop_invalid, list_batch=batch if as_list else None,
            masks=masks_out, image_masks=image_masks_out, keypoints=kps_out, params=stored,
        )

    def make_call(
        self,
        p: Mapping[str, Any],
        patches: Tensor,
        obj_to_img: Tensor,
        warp_boxes: Tensor,
        image_sizes: Tensor | None = None,
    ) -> PatchCall:
        """The ``PatchCall`` that ``forward`` hands its ``apply_transform_*`` hooks
        for a call's parameters ``p`` (``theta [N, 2, 3]``, ``batch_prob [N]``, as
        ``forward_parameters`` or ``replay_parameters`` return them).

        The one home of this step for every caller of the hooks (the core's ``forward``
        and the per-sample adapters, which apply a drawn call to each input of a sample).
        ``moved`` (applied and ``theta`` not exactly the identity) is computed in NumPy for
        a few CPU objects without gradient (the same values as
        ``PatchCall.make``'s tensor test, microseconds instead of tensor operations).

        Args:
            p: the call's parameters (``theta``, ``batch_prob``).
            patches: ``[N, 4]`` float boxes clipped to the canvas (and their image).
            obj_to_img: ``[N]`` image of each object.
            warp_boxes: ``[N, 4]`` the boxes given to the warp (the boxes as given, or the
                patches in a padded batch).
            image_sizes: ``[B, 2]`` a padded batch's real image sizes, or ``None``.

        Example:
            >>> from augpatch import RandomPatchRotation
            >>> aug = RandomPatchRotation(30.0, p=1.0)
            >>> boxes = torch.tensor([[4.0, 4.0, 30.0, 20.0], [10.0, 30.0, 50.0, 60.0]])
            >>> p = aug.forward_parameters((1, 3, 64, 64), boxes)
            >>> call = aug.make_call(p, p["patches"], p["obj_to_img"], boxes)
            >>> call.moved.tolist()
            [True, True]
        """
        theta, applied = p["theta"], p["batch_prob"]
        if (
            image_sizes is None
            and applied.dtype == torch.bool
            and type(applied) is Tensor
            and applied.device.type == "cpu"
            and host_arithmetic(theta)
        ):
            from augpatch.functional.host import identity_objects

            moved = torch.from_numpy(applied.numpy() & ~identity_objects(theta.numpy()))
            return PatchCall(theta, applied, moved, patches, obj_to_img, warp_boxes)
        return PatchCall.make(theta, applied, patches, obj_to_img, image_sizes, warp_boxes)

    def record_call(self, p: Mapping[str, Any], call: PatchCall, new_boxes: Tensor) -> Params:
        """Store the record of a call (``self._params``) as ``forward`` does, and return it:
        ``p`` detached, then ``patches``, ``obj_to_img`` and ``keep [N]``
        (``keep_mask`` of each object's box as it is now visible in its patch:
        ``new_boxes [N, 4]`` where the object moved, its patch elsewhere). The one home of
        this step for the core's ``forward`` and the per-sample adapters. The selection and
        ``keep`` run in NumPy for a few CPU boxes without gradient (the same float
        operations and threshold, microseconds).

        Example:
            >>> from augpatch import RandomPatchRotation
            >>> aug = RandomPatchRotation(30.0, p=1.0)
            >>> boxes = torch.tensor([[4.0, 4.0, 30.0, 20.0]])
            >>> p = aug.forward_parameters((1, 3, 64, 64), boxes)
            >>> call = aug.make_call(p, p["patches"], p["obj_to_img"], boxes)
            >>> new = aug.apply_transform_box(boxes, call)
            >>> aug.record_call(p, call, new)["keep"].tolist(), aug._params is not None
            ([True], True)
        """
        if host_arithmetic(call.patches, new_boxes) and call.moved.device.type == "cpu":
            import numpy as np

            # keep_mask's differences and comparisons on the arrays: the same float
            # operations, the threshold in the boxes' dtype as torch compares with it
            seen = np.where(call.moved.numpy()[:, None], new_boxes.numpy(), call.patches.numpy())
            keep = torch.from_numpy(np.asarray(keep_mask(seen)))
        else:
            keep = keep_mask(torch.where(call.moved[:, None], new_boxes, call.patches))
        stored = _detach(p)
        stored.update(patches=call.patches.detach(), obj_to_img=call.obj_to_img, keep=keep)
        self._params = stored
        return stored

    def _patches(
        self, boxes: Tensor, obj_to_img: Tensor, size: tuple[int, int], sizes: Tensor | None
    ) -> Tensor:
        """Float boxes clipped to the canvas and, in a padded batch, to their own image."""
        if sizes is None:
            host = _clip_on_the_host(boxes, size)
            if host is not None:
                return host
        patches = F.clip_boxes(boxes, size)
        if sizes is not None:
            patches = F.clip_boxes_to_images(patches, obj_to_img, sizes)
        return patches

    def _integration_hint(self) -> str:
        name = type(self).__name__
        import augpatch.transforms as _public

        adapter = (
            f"augpatch.integrations.torchvision.{name}"
            if name in _public.__all__
            else f"augpatch.integrations.torchvision.PatchTransform({name}(...))"
        )
        return (
            f"{name} transforms a BATCH (images [B, C, H, W], boxes, obj_to_img). For one "
            f"sample inside torchvision.transforms.v2.Compose (PIL images, tv_tensors), "
            f"use {adapter}: augpatch.integrations.torchvision holds the v2 transforms"
        )

    def _check_call_images(self, images: object, boxes: BoxesLike | None) -> tuple[Tensor, BoxesLike]:
        """``check_images`` with a hint to the torchvision adapters for the usual mistake
        (a PIL image or a single ``[C, H, W]`` sample, e.g. from ``v2.Compose``), and
        the boxes present."""
        if not isinstance(images, Tensor):
            raise TypeError(
                f"images must be a torch.Tensor, got {type(images).__name__}. "
                + self._integration_hint()
            )
        if images.dim() != 4:
            raise ValueError(
                f"images must have shape [B, C, H, W], got {tuple(images.shape)}. "
                + self._integration_hint()
            )
        if boxes is None:
            raise TypeError(
                f"{type(self).__name__} needs boxes: call it as (images [B, C, H, W], boxes "
                "[N, 4], obj_to_img [N]); " + self._integration_hint()
            )
        return check_images(images), boxes

    # ------------------------------------------------------------------ repr

    def _option_repr(self) -> list[str]:
        return [
            f"p={round(float(self.p.detach()), 6) if isinstance(self.p, Tensor) else self.p}",
            f"same_on_batch={self.same_on_batch}",
            f"same_on_image={self.same_on_image}",
            f"resample={self.resample!r}",
            f"padding_mode={self.padding_mode!r}",
            f"align_corners={self.align_corners}",
            f"overlap={self.overlap!r}",
            f"drop_invalid={self.drop_invalid}",
        ]

    def _magnitude_repr(self) -> list[str]:
        return []

    def extra_repr(self) -> str:
        return ", ".join(self._magnitude_repr() + self._option_repr())
