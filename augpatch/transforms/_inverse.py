"""The inverse of a call: outputs mapped back to the input frame through each object's
``theta`` (boxes, keypoints) or ``theta^-1`` (images, per-image masks). A part of
:class:`~augpatch.transforms.base.PatchAugmentationBase` (a mixin it inherits); moved out
of ``base.py`` unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

import augpatch.functional as F
from augpatch.functional.checks import (
    BoxesLike,
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
from augpatch.transforms.pipeline import PatchCall, gate_theta


class InverseMixin:
    """`inverse` and its steps. Needs the host's ``_params``, the per-target
    ``inverse_*`` hooks (``TargetMixin``) and
    ``_replay_batch_prob`` (``ParameterMixin``)."""

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
