"""The per-target hooks of a transform (Kornia's ``apply_transform_*`` / ``inverse_*``):
images, boxes, masks and keypoints moved with each object's ``theta``, and the one warp
call they share. A part of :class:`~augpatch.transforms.base.PatchAugmentationBase` (a mixin
it inherits); moved out of ``base.py`` unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

import augpatch.functional as F
from augpatch.functional.checks import check_out, host_arithmetic, values_visible
from augpatch.transforms.pipeline import PatchCall, _any, image_regions, never_inverted


def _plain_cpu(t: Tensor) -> bool:
    """A plain CPU tensor without gradient (its values may go through NumPy)."""
    return t.device.type == "cpu" and type(t) is Tensor and not t.requires_grad


def _coins(applied: Tensor) -> tuple[bool, bool]:
    """``(any, all)`` of the bool ``applied [N]``: read once on the host for a plain CPU
    tensor whose values are visible (``all`` is then known: microseconds instead of a
    ``torch.where``); else ``(_any(applied), False)`` (``all`` not asked)."""
    if type(applied) is Tensor and applied.is_cpu and applied.dtype == torch.bool and values_visible(applied):
        try:
            coins = applied.numpy()
        except RuntimeError:  # pragma: no cover - torch without NumPy
            return _any(applied), False
        return bool(coins.any()), bool(coins.all())
    return _any(applied), False


class TargetMixin:
    """Apply and inverse hooks per target. Needs the host's ``resample``,
    ``padding_mode``, ``align_corners`` and ``overlap``."""

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
        out: Tensor | None = None,
    ) -> Tensor:
        """One warp over the objects where ``applied`` is True (in reverse order if asked).

        ``masks=False``: :func:`augpatch.functional.warp_patches` of ``images [B, C, H, W]``
        with ``self.resample``; ``masks=True``: :func:`augpatch.functional.warp_masks`
        (nearest, dtype kept) of masks ``[B, H, W]`` / ``[B, K, H, W]``. Objects that are
        not applied get an empty box (no pixel: the image is unchanged there), so that no
        data-dependent selection is needed (``torch.compile``). When no object is applied
        the result is a clone (no warp). ``region`` (bool, broadcastable to ``images``):
        the warp reads zeros outside it and the result is ``images`` there (the padding
        of a padded batch with ``padding_mode="image"``). ``out``: a tensor of ``images``'
        shape, dtype and device the result is written into (returned; ``out=images``: in
        place), as ``warp_patches(..., out=out)`` (its checks; no autograd): the image warp
        writes there itself, the other cases (masks, ``region``, nothing applied) copy the
        result into it.
        """
        moves, every = _coins(applied)
        if out is not None and (masks or region is not None or not moves):
            check_out(out, images, {"boxes": boxes, "theta": theta, "obj_to_img": obj_to_img},
                      function=f"{type(self).__name__}.warp_objects")
            return out.copy_(self.warp_objects(images, boxes, theta, obj_to_img, applied,
                                               masks=masks, reverse=reverse, region=region))
        if not moves:  # nothing moves: no warp at all
            return images.clone()
        if not every:  # the objects not applied: no pixel
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
        else:  # out: given only without region (above)
            out = F.warp_patches(*args, mode=self.resample, out=out, **options)
        return out if region is None else torch.where(region, out, images)

    def move_object_boxes(
        self, boxes: Tensor, patches: Tensor, theta: Tensor, applied: Tensor
    ) -> Tensor:
        """New boxes ``[N, 4]``: an applied object's patch moved forward and clipped to the
        patch (:func:`augpatch.functional.transform_boxes`); other objects keep ``boxes``."""
        dtype = torch.promote_types(patches.dtype, theta.dtype)
        if not _any(applied):  # nothing moves: the boxes as given
            return boxes.to(dtype)
        if host_arithmetic(patches, theta) and _plain_cpu(boxes):  # a few CPU boxes: NumPy
            from augpatch.functional.host import move_boxes_arrays

            return torch.from_numpy(move_boxes_arrays(
                boxes.numpy(), patches.to(dtype).numpy(), theta.to(dtype).numpy(),
                applied.numpy(), self.align_corners,
            ))
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

    # ------------------------------------------------------------------ per-target hooks

    def apply_transform_image(
        self, images: Tensor, call: PatchCall, *, out: Tensor | None = None
    ) -> Tensor:
        """Warp ``images [B, C, H, W]`` with the call's objects (``self.resample``).

        Objects whose matrix is exactly the identity (or whose coin said no) are not
        resampled: their pixels come back bit for bit. Where ``theta`` requires grad,
        such objects still pass its gradient (a warp of the detached images whose
        value is subtracted again), so a spatial transformer initialised at the
        identity, or a policy with hard gates, keeps learning.

        ``out``: ``None``, or a tensor of ``images``' shape, dtype and device to write the
        result into (returned; ``out=images`` warps ``images`` in place): the same values,
        as :func:`augpatch.functional.warp_patches` with ``out=`` (its checks; no autograd:
        refused where ``theta`` or ``images`` requires grad).
        """
        region = self._image_region(call, images.shape[-2:], None)
        if out is not None:
            return self.warp_objects(images, call.warp_boxes, call.theta, call.obj_to_img,
                                     call.moved, region=region, reverse=call.reverse, out=out)
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
