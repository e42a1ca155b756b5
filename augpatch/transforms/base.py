"""``PatchAugmentationBase``: the machinery shared by every per-object transform.

A transform is a *parameter sampler* plus a *matrix*:

* :meth:`PatchAugmentationBase.generate_parameters` samples human parameters
  (angles, scales, ...) for the objects it is given;
* :meth:`PatchAugmentationBase.compute_matrix` turns them into per-object
  ``theta [N, 2, 3]`` (``F.affine_grid`` convention in each patch's normalised
  coordinates, see the SPEC).

Everything else lives here, once: the per-object probability ``p``, sharing of
draws (``same_on_batch`` / ``same_on_image``), the single
:func:`augpatch.functional.warp_patches` call, the mapping of boxes, masks and
keypoints, ``keep`` / ``drop_invalid``, replay from saved parameters and the
inverse.
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
    check_boxes,
    check_image_sizes,
    check_images,
    check_points,
    check_targets,
    check_theta,
    compute_dtype,
    parse_boxes,
)
from augpatch.functional.geometry import invert_theta
from augpatch.transforms._result import PatchResult
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
from augpatch.transforms.sampling import register_tensor, sample_gate

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


class PatchAugmentationBase(nn.Module):
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

    # ------------------------------------------------------------------ parameters

    def forward_parameters(
        self,
        batch_shape: Sequence[int],
        boxes: BoxesLike,
        obj_to_img: Tensor | None = None,
        *,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> Params:
        """Sample the parameters of a call without applying them (Kornia style).

        Args:
            batch_shape: the image shape ``(B, C, H, W)`` (``images.shape``).
            boxes: ``[N, 4]`` boxes or a list of ``B`` tensors ``[N_i, 4]``.
            obj_to_img: ``[N]`` image index of each box (omit for ``B == 1`` or lists).
            image_sizes: a padded batch's ``[B, 2]`` image sizes (patches are then clipped
                to their own image), or ``None``.

        Returns:
            The parameter dict (``theta``, ``batch_prob``, ``patches``,
            ``obj_to_img`` and the human parameters), ready for ``params=``.
        """
        batch, _, height, width = (int(s) for s in batch_shape)
        boxes, obj_to_img, _ = self._flatten_boxes(boxes, obj_to_img, batch)
        sizes = check_image_sizes(image_sizes, batch, (height, width))
        patches = self._patches(boxes.to(compute_dtype(boxes)), obj_to_img, (height, width), sizes)
        params = self._forward_parameters(patches, obj_to_img, batch)
        return {**params, "patches": patches, "obj_to_img": obj_to_img}

    def _groups(self, obj_to_img: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(group [N], representative [G])`` of the sharing groups, or None (no sharing)."""
        n = obj_to_img.shape[0]
        device = obj_to_img.device
        if self.same_on_batch:
            group = torch.zeros(n, dtype=torch.long, device=device)
            reps = torch.zeros(min(n, 1), dtype=torch.long, device=device)
            return group, reps
        if self.same_on_image:
            _, group = torch.unique(obj_to_img, sorted=True, return_inverse=True)
            num = int(group.max()) + 1 if n else 0
            reps = torch.full((num,), n, dtype=torch.long, device=device)
            reps = reps.scatter_reduce(0, group, torch.arange(n, device=device), "amin")
            return group, reps
        return None

    # the relaxed gate of a learnable ``p`` in train(): temperature, straight-through
    gate_temperature: float = 0.1
    gate_hard: bool = False

    def _sample_batch_prob(self, count: int, device: torch.device) -> Tensor:
        """Bool coins ``[count]``, or float relaxed gates for a learnable ``p`` in train()."""
        return sample_gate(
            self.p,
            count,
            self.generator,
            device,
            training=self.training,
            temperature=self.gate_temperature,
            hard=self.gate_hard,
        )

    def _sample_params(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        groups: tuple[Tensor, Tensor] | None,
    ) -> Params:
        if groups is None:
            return dict(self.generate_parameters(patches, obj_to_img, batch_size, self.generator))
        group, reps = groups
        sub = self.generate_parameters(patches[reps], obj_to_img[reps], batch_size, self.generator)
        out: Params = {}
        for k, v in sub.items():
            if not isinstance(v, Tensor) or v.dim() == 0 or v.shape[0] != reps.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}.generate_parameters must return tensors with one "
                    f"row per object; {k!r} has shape {getattr(v, 'shape', None)}"
                )
            out[k] = v[group]
        return out

    def _matrix(self, params: Params, patches: Tensor) -> Tensor:
        theta = self.compute_matrix(params, patches)
        return check_theta(theta, patches.shape[0], f"{type(self).__name__}.compute_matrix()").to(
            patches.dtype
        )

    def _forward_parameters(self, patches: Tensor, obj_to_img: Tensor, batch_size: int) -> Params:
        """Sample ``p`` coins and human parameters; return them with the gated ``theta``."""
        groups = self._groups(obj_to_img)
        n = patches.shape[0]
        if groups is None:
            batch_prob = self._sample_batch_prob(n, patches.device)
        else:
            batch_prob = self._sample_batch_prob(groups[1].shape[0], patches.device)[groups[0]]
        params = self._sample_params(patches, obj_to_img, batch_size, groups)
        if batch_prob.dtype == torch.bool and not _any(batch_prob):  # p = 0: no matrix needed
            theta = _eye(n, patches.dtype, patches.device).contiguous()
        else:
            theta = gate_theta(self._matrix(params, patches), batch_prob)
        if batch_prob.dtype != torch.bool:  # relaxed gate: every object is resampled
            ones = torch.ones(n, dtype=torch.bool, device=patches.device)
            return {**params, "theta": theta, "batch_prob": ones, "gate": batch_prob}
        return {**params, "theta": theta, "batch_prob": batch_prob}

    def _theta_from_params(self, params: Params, patches: Tensor) -> Tensor:
        """The applied ``theta`` of (possibly hand-made) parameters: ``params['theta']``
        when present, else ``compute_matrix`` gated by ``params['batch_prob']``."""
        n = patches.shape[0]
        if params.get("theta") is not None:
            return check_theta(params["theta"], n, "params['theta']").to(patches.dtype)
        batch_prob = self._replay_batch_prob(params, n, patches.device)
        gate = params.get("gate")  # a relaxed gate's values, if any
        if gate is not None:
            batch_prob = gate.to(device=patches.device, dtype=patches.dtype)
        return gate_theta(self._matrix(params, patches), batch_prob)

    @staticmethod
    def _replay_batch_prob(params: Params, n: int, device: torch.device) -> Tensor:
        bp = params.get("batch_prob")
        if bp is None:
            return torch.ones(n, dtype=torch.bool, device=device)
        if not isinstance(bp, Tensor) or bp.shape != (n,):
            raise ValueError(
                f"params['batch_prob'] must be a bool tensor [N] with N = {n} (the number of "
                f"objects of this call), got {tuple(getattr(bp, 'shape', ()))}"
            )
        return bp.to(device=device, dtype=torch.bool)

    def replay_parameters(self, params: Mapping[str, Any], patches: Tensor) -> Params:
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
        device = patches.device
        p = {
            k: (v.to(device) if isinstance(v, Tensor) else v)
            for k, v in params.items()
            if k not in _CALL_KEYS
        }
        n = patches.shape[0]
        p["batch_prob"] = self._replay_batch_prob(p, n, device)
        p["theta"] = self._theta_from_params(p, patches)
        return p

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

    def warp_objects(
        self,
        images: Tensor,
        boxes: Tensor,
        theta: Tensor,
        obj_to_img: Tensor,
        applied: Tensor,
        *,
        masks: bool = False,
        reverse: bool = False,
        region: Tensor | None = None,
    ) -> Tensor:
        """One warp over the objects where ``applied`` is True (in reverse order if asked).

        ``masks=False``: :func:`augpatch.functional.warp_patches` of ``images [B, C, H, W]``
        with ``self.resample``; ``masks=True``: :func:`augpatch.functional.warp_masks`
        (nearest, dtype kept) of masks ``[B, H, W]`` / ``[B, K, H, W]``. Objects that are
        not applied get an empty box (no pixel: the image is unchanged there), so that no
        data-dependent selection is needed (``torch.compile``). When no object is applied
        the result is a clone (no warp). ``region`` (bool, broadcastable to ``images``):
        the warp reads zeros outside it and the result is ``images`` there (the padding
        of a padded batch with ``padding_mode="image"``).
        """
        if not _any(applied):  # nothing moves: no warp at all
            return images.clone()
        boxes = torch.where(applied[:, None], boxes, torch.zeros_like(boxes))
        source = images if region is None else images.masked_fill(~region, 0)
        if reverse:
            boxes, theta, obj_to_img = boxes.flip(0), theta.flip(0), obj_to_img.flip(0)
        options = {
            "padding_mode": self.padding_mode,
            "align_corners": self.align_corners,
            "overlap": self.overlap,
        }
        args = (source, boxes, theta, obj_to_img)
        if masks:
            out = F.warp_masks(*args, **options)
        else:
            out = F.warp_patches(*args, mode=self.resample, **options)
        return out if region is None else torch.where(region, out, images)

    def move_object_boxes(
        self, boxes: Tensor, patches: Tensor, theta: Tensor, applied: Tensor
    ) -> Tensor:
        """New boxes ``[N, 4]``: an applied object's patch moved forward and clipped to the
        patch (:func:`augpatch.functional.transform_boxes`); other objects keep ``boxes``."""
        if not _any(applied):  # nothing moves: the boxes as given
            return boxes.to(torch.promote_types(patches.dtype, theta.dtype))
        moved = F.transform_boxes(patches, theta, clip=True, align_corners=self.align_corners)
        # content that left its patch: an exactly zero-width/height box on the patch's edge
        # (detectors reject inverted boxes, and rounding can invert them by 1e-6)
        lo = torch.minimum(moved[:, :2], patches[:, 2:])
        moved = torch.cat((lo, torch.maximum(moved[:, 2:], lo)), -1)
        return torch.where(applied[:, None], moved, boxes.to(moved.dtype))

    def move_object_points(
        self, points: Tensor, patches: Tensor, theta: Tensor, applied: Tensor
    ) -> Tensor:
        """Per-object points ``[N, K, 2]`` moved with their object where ``applied``."""
        moved = F.transform_points(points, patches, theta, align_corners=self.align_corners)
        return torch.where(applied[:, None, None], moved, points.to(moved.dtype))

    # The names these hooks had before they were made public (issue 23), kept for code
    # written against them in parallel; new code calls the public names.
    _replay_parameters = replay_parameters
    _warp = warp_objects
    _move_boxes = move_object_boxes
    _move_points = move_object_points
    _check_extras = staticmethod(check_targets)

    # ------------------------------------------------------------------ per-target hooks

    def apply_transform_image(self, images: Tensor, call: PatchCall) -> Tensor:
        """Warp ``images [B, C, H, W]`` with the call's objects (``self.resample``).

        Objects whose matrix is exactly the identity (or whose coin said no) are not
        resampled: their pixels come back bit for bit. Where ``theta`` requires grad,
        such objects still pass its gradient (a warp of the detached images whose
        value is subtracted again), so a spatial transformer initialised at the
        identity, or a policy with hard gates, keeps learning.
        """
        region = self._image_region(call, images.shape[-2:], None)
        out = self.warp_objects(images, call.warp_boxes, call.theta, call.obj_to_img, call.moved,
                         region=region, reverse=call.reverse)
        still = call.applied & ~call.moved  # identity objects
        if (
            call.theta.requires_grad
            and torch.is_grad_enabled()
            and out.is_floating_point()
            and _any(still)
        ):
            ghost = self.warp_objects(images.detach(), call.warp_boxes, call.theta, call.obj_to_img,
                               still, region=region, reverse=call.reverse)
            out = out + (ghost - ghost.detach())
        return out

    def apply_transform_box(self, boxes: Tensor, call: PatchCall) -> Tensor:
        """New boxes ``[N, 4]`` (see :meth:`move_object_boxes`), clipped to their own image in
        a padded batch; an object that did not move keeps its box clipped to the canvas
        (its patch, never inverted): exactly the box as given wherever that lies inside."""
        out = self.move_object_boxes(boxes, call.patches, call.theta, call.moved)
        out = torch.where(call.moved[:, None], out, never_inverted(call.patches).to(out.dtype))
        if call.image_sizes is not None:
            out = F.clip_boxes_to_images(out, call.obj_to_img, call.image_sizes)
        return out

    def apply_transform_mask(self, masks: Tensor, call: PatchCall, *, per_object: bool) -> Tensor:
        """Warp masks with nearest resampling, dtype kept: per-object masks ``[N, H, W]``
        (``per_object=True``: mask ``n`` moves with object ``n`` only) or per-image masks
        ``[B, K, H, W]`` / ``[B, H, W]`` (like the images)."""
        if per_object:  # mask n is image n of a batch of N, holding object n only
            own = torch.arange(masks.shape[0], device=masks.device)
            region = self._image_region(call, masks.shape[-2:], call.obj_to_img)
            region = None if region is None else region[:, 0]
            return self.warp_objects(masks, call.warp_boxes, call.theta, own, call.moved, masks=True,
                              region=region, reverse=call.reverse)
        region = self._image_region(call, masks.shape[-2:], None)
        if region is not None and masks.dim() == 3:
            region = region[:, 0]
        return self.warp_objects(masks, call.warp_boxes, call.theta, call.obj_to_img, call.moved,
                          masks=True, region=region, reverse=call.reverse)

    def apply_transform_keypoint(self, keypoints: Tensor, call: PatchCall) -> Tensor:
        """Per-object points ``[N, K, 2]`` mapped exactly with their object."""
        return self.move_object_points(keypoints, call.patches, call.theta, call.moved)

    def inverse_box(self, boxes: Tensor, call: PatchCall) -> Tensor:
        """Boxes ``[N, 4]`` of the output frame mapped back through ``theta`` and
        clipped to the patch (the object was its patch)."""
        back = F.inverse_transform_boxes(boxes, call.patches, call.theta,
                                         align_corners=self.align_corners)
        back = torch.cat(
            (torch.maximum(back[:, :2], call.patches[:, :2]),
             torch.minimum(back[:, 2:], call.patches[:, 2:])),
            -1,
        )
        return torch.where(call.moved[:, None], back, boxes)

    def inverse_keypoint(self, keypoints: Tensor, call: PatchCall) -> Tensor:
        """Points ``[N, K, 2]`` mapped back through ``theta`` (exact)."""
        back = F.inverse_transform_points(keypoints, call.patches, call.theta,
                                          align_corners=self.align_corners)
        return torch.where(call.moved[:, None, None], back, keypoints)

    def inverse_image(self, images: Tensor, call: PatchCall) -> Tensor:
        """Re-warp ``images`` with the inverse call (``theta^-1``, objects in reverse order)."""
        return self.apply_transform_image(images, call)

    def inverse_mask(self, image_masks: Tensor, call: PatchCall) -> Tensor:
        """Per-image masks re-warped with the inverse call (nearest, dtype kept)."""
        return self.apply_transform_mask(image_masks, call, per_object=False)

    def _image_region(
        self, call: PatchCall, size: Sequence[int], index: Tensor | None
    ) -> Tensor | None:
        """Where ``padding_mode="image"`` must not read the padding of a padded batch: a bool
        ``[M, 1, H, W]`` mask of each image's own region (``index``: the image of each of
        the ``M`` rows; ``None``: every image), else ``None`` (nothing to hide)."""
        if call.image_sizes is None or self.padding_mode != "image":
            return None
        return image_regions(call.image_sizes, tuple(size), index, call.obj_to_img.device)

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
        call = PatchCall.make(p["theta"], p["batch_prob"], patches, obj_to_img, sizes,
                              boxes if sizes is None else patches)
        out_images = self.apply_transform_image(images, call)
        boxes_out = self.apply_transform_box(fboxes, call)
        # the box as it is now visible in its patch
        keep = keep_mask(torch.where(call.moved[:, None], boxes_out, patches))
        masks_out, image_masks_out, kps_out = self._apply_extras(
            call, masks, image_masks, None if keypoints is None else keypoints.to(fboxes.dtype)
        )
        stored = _detach(p)
        stored.update(patches=patches.detach(), obj_to_img=obj_to_img, keep=keep)
        self._params = stored
        return make_result(
            out_images, boxes_out, obj_to_img, keep,
            drop_invalid=self.drop_invalid, list_batch=batch if as_list else None,
            masks=masks_out, image_masks=image_masks_out, keypoints=kps_out, params=stored,
        )

    def _apply_extras(
        self,
        call: PatchCall,
        masks: Tensor | None,
        image_masks: Tensor | None,
        keypoints: Tensor | None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """The hooks of the optional targets: ``(masks, image_masks, keypoints)`` moved."""
        return (
            None if masks is None else self.apply_transform_mask(masks, call, per_object=True),
            None
            if image_masks is None
            else self.apply_transform_mask(image_masks, call, per_object=False),
            None if keypoints is None else self.apply_transform_keypoint(keypoints, call),
        )

    def _patches(
        self, boxes: Tensor, obj_to_img: Tensor, size: tuple[int, int], sizes: Tensor | None
    ) -> Tensor:
        """Float boxes clipped to the canvas and, in a padded batch, to their own image."""
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

    # ------------------------------------------------------------------ inverse

    def inverse(
        self,
        images: Tensor | None,
        boxes: BoxesLike,
        obj_to_img: Tensor | None = None,
        *,
        image_masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        params: Mapping[str, Any] | None = None,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> PatchResult:
        """Map the outputs of a call back to the input frame.

        Boxes and keypoints go back through each object's ``theta`` itself
        (:func:`augpatch.functional.inverse_transform_boxes` / ``..._points``): exact
        for points, and for boxes wherever nothing was cut off (for rotations and
        shears the result is the bounding box of the source region, clipped to the
        patch, which is the original box when no content left the patch).

        The image inverse re-warps each transformed patch with ``theta^-1`` (objects in
        reverse order), and ``image_masks`` the same way with nearest resampling. It is
        LOSSY: content that the forward pass cut off at the patch border, or replaced by
        padding, or overwrote with an overlapping box, cannot come back, and every
        resampling blurs a little.

        Args:
            images: ``[B, C, H, W]`` augmented images, or ``None`` to map only boxes
                and keypoints.
            boxes: ``[N, 4]`` boxes in the output frame (a list of ``B`` tensors is
                accepted and returned as a list). With ``drop_invalid=True`` the kept
                boxes (``keep.sum()`` rows) are accepted too.
            obj_to_img: ``[N]`` image indices; default: implied by a list, else
                ``params['obj_to_img']``.
            image_masks: ``[B, K, H, W]`` (or ``[B, H, W]``) augmented per-image masks
                to warp back (nearest, dtype kept), or ``None``.
            keypoints: ``[N, K, 2]`` points in the output frame.
            params: the parameters of the forward call (default: the last call's).
            image_sizes: the padded batch's ``[B, 2]`` image sizes given to the forward
                call (``padding_mode="image"`` then reads no padding, which stays
                unchanged), or ``None``.

        Returns:
            :class:`PatchResult` ``(images, boxes)`` with ``.image_masks`` and
            ``.keypoints``.

        Example:
            >>> from augpatch import RandomPatchScale
            >>> aug = RandomPatchScale((0.5, 0.9), p=1.0)
            >>> images, boxes = torch.rand(1, 3, 32, 32), torch.tensor([[4, 4, 28, 20]])
            >>> out = aug(images, boxes)
            >>> back = aug.inverse(out.images, out.boxes)
            >>> torch.allclose(back.boxes, boxes.float(), atol=1e-4)
            True
        """
        params = self._inverse_params(params)
        if images is not None:
            images = check_images(images)
        batch = self._inverse_batch(images, image_masks, boxes, params.get("obj_to_img"))
        if isinstance(boxes, (list, tuple)) or obj_to_img is not None:
            boxes_f, o2i, as_list = parse_boxes(boxes, obj_to_img, batch)
        else:  # obj_to_img defaults to the forward call's (below)
            boxes_f, o2i, as_list = check_boxes(boxes), None, False
        sizes = self._inverse_sizes(images, image_masks, image_sizes, boxes_f.shape[0], batch)
        device = images.device if images is not None else boxes_f.device
        dtype = compute_dtype(boxes_f, *([images] if images is not None else []))
        full, call, o2i = self._inverse_calls(params, boxes_f.shape[0], o2i, device, dtype, sizes)

        fb = boxes_f.to(dtype)
        boxes_back = self.inverse_box(fb, call)
        kps_back = None
        if keypoints is not None:
            kp = check_points(keypoints, fb.shape[0], "keypoints", one_per_object=True)
            kps_back = self.inverse_keypoint(kp.to(dtype), call)
        images_back = None if images is None else self.inverse_image(images, full)
        image_masks_back = None if image_masks is None else self.inverse_mask(image_masks, full)
        boxes_ret: Tensor | list[Tensor] = boxes_back
        if as_list:
            boxes_ret = F.boxes_to_list(boxes_back, o2i, batch)
        return PatchResult(images_back, boxes_ret, image_masks=image_masks_back,
                           keypoints=kps_back, obj_to_img=o2i, params=dict(params))

    def _inverse_params(self, params: Mapping[str, Any] | None) -> Mapping[str, Any]:
        params = self._params if params is None else params
        if params is None:
            raise RuntimeError(
                "inverse() needs parameters: call the transform first or pass params="
            )
        for key in ("theta", "patches"):
            if key not in params:
                raise ValueError(f"params lacks {key!r}: pass the parameters of a forward call")
        return params

    def _inverse_sizes(
        self,
        images: Tensor | None,
        image_masks: Tensor | None,
        image_sizes: object,
        n: int,
        batch: int,
    ) -> Tensor | None:
        """Check the image masks of an inverse call; its parsed ``image_sizes``."""
        if images is None and image_masks is None:
            return None
        size = tuple((images if images is not None else image_masks).shape[-2:])
        if image_masks is not None:
            check_targets(None, image_masks, None, n, batch, size)
        return check_image_sizes(image_sizes, batch, size)

    @staticmethod
    def _inverse_batch(
        images: Tensor | None, image_masks: object, boxes: object, stored_o2i: Tensor | None
    ) -> int:
        """``B`` of an inverse call: from the images, masks, a box list or the forward call."""
        if images is not None:
            return images.shape[0]
        if isinstance(image_masks, Tensor) and image_masks.dim() in (3, 4):
            return image_masks.shape[0]
        if isinstance(boxes, (list, tuple)):
            return len(boxes)
        if stored_o2i is not None and stored_o2i.numel():
            return int(stored_o2i.max()) + 1
        return 1

    def _inverse_calls(
        self,
        params: Mapping[str, Any],
        n: int,
        o2i: Tensor | None,
        device: torch.device,
        dtype: torch.dtype,
        sizes: Tensor | None,
    ) -> tuple[PatchCall, PatchCall, Tensor]:
        """``(full, rows, obj_to_img)``: the inverse call of all ``N`` forward objects (for
        the images: ``theta^-1`` in reverse order), the forward call of the ``n`` given
        boxes (all objects, or the kept ones after ``drop_invalid``), and their images."""
        patches_all = params["patches"].to(device=device, dtype=dtype)
        n_all = patches_all.shape[0]
        theta_all = check_theta(params["theta"], n_all, "params['theta']")
        theta_all = theta_all.to(device=device, dtype=dtype)
        applied_all = self._replay_batch_prob(dict(params), n_all, device)
        rows = None
        if n != n_all:
            keep = params.get("keep")
            if keep is None or int(keep.sum()) != n:
                raise ValueError(f"boxes has {n} rows but the parameters are for {n_all} objects")
            rows = torch.nonzero(keep.to(device)).flatten()
        stored = params.get("obj_to_img")
        if stored is not None:
            o2i_all = stored.to(device=device, dtype=torch.long)
        elif o2i is not None and rows is None:
            o2i_all = o2i
        else:
            o2i_all = torch.zeros(n_all, dtype=torch.long, device=device)
        if o2i is None:
            o2i = o2i_all if rows is None else o2i_all[rows]
        inv = invert_theta(gate_theta(theta_all, applied_all))
        full = PatchCall.make(inv, applied_all, patches_all, o2i_all, sizes, patches_all,
                              reverse=True)
        if rows is None:
            call = PatchCall.make(theta_all, applied_all, patches_all, o2i, sizes, patches_all)
        else:
            call = PatchCall.make(theta_all[rows], applied_all[rows], patches_all[rows], o2i,
                                  sizes, patches_all[rows])
        return full, call, o2i

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
