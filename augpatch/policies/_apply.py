"""How ``DetectionAutoAugment`` applies a call's ops to the images and their targets.

:class:`_PolicyOps` holds the op loop (batched, or image by image for a padded batch)
and one method per family of ops; each op's own behaviour comes from the registry
:data:`augpatch.policies.OPS`. :class:`_State` is what the ops of one call update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.tv_tensors import BoundingBoxFormat

import augpatch.functional as AF
from augpatch.functional.checks import values_checked_later
from augpatch.policies._box_kernels import warp_rects
from augpatch.policies._table import OPS, OpSpec, box_theta_of_ops
from augpatch.policies.functional import box_pixel_rects, fill_rects
from augpatch.transforms.base import never_inverted as _never_inverted

_PADDING = ("fill", "zeros", "border", "reflection", "image")
_INTERPOLATIONS = ("nearest", "bilinear")
_XYXY = BoundingBoxFormat.XYXY

# the keys of the parameter dict (besides obj_to_img and keep) and their per-row shapes
_IMAGE_KEYS = ("sub_policy", "apply", "magnitude", "cutout_center", "bbox_cutout_object")
_OBJECT_KEYS = ("box_apply", "box_magnitude", "box_cutout_center")
# the rows of the per-image entries of a call's record (with its uniform draws)
_PER_IMAGE = frozenset((*_IMAGE_KEYS, "_u_center"))
# what the ops resolve during a call (written back by the padded path)
_RESOLVED = ("cutout_center", "box_apply", "box_cutout_center")


class _PolicyOps:
    """The op methods of :class:`~augpatch.policies.DetectionAutoAugment` (a mixin)."""

    def _run(self, state: _State, rec: dict[str, Tensor], replay: bool) -> None:
        """Apply the ops of every image's sub-policy, slot by slot, to ``state``.

        In a slot each image runs one op, so the ops of a slot act on different images:
        the image-level ones run grouped by (op, magnitude), the box-only ones all
        together (:meth:`_box_ops`).
        """
        device = state.boxes.device
        sub_cpu = rec["sub_policy"].cpu()
        apply_cpu = rec["apply"].cpu()
        mag_cpu = rec["magnitude"].cpu()
        op_of = self._op_id[sub_cpu]  # [B, K]
        for k in range(self.num_slots):
            ran = apply_cpu[:, k] & (op_of[:, k] >= 0)
            op_ids = torch.unique(op_of[ran, k]).tolist()
            if any(OPS[self._op_names[i]].box_only for i in op_ids):
                self._box_ops(state, k, torch.where(ran, op_of[:, k], -1), rec, replay)
            for op_id in op_ids:
                name = self._op_names[op_id]
                spec = OPS[name]
                if spec.box_only:
                    continue
                chosen = ran & (op_of[:, k] == op_id)
                if spec.cutout is not None:
                    if not replay:
                        self._resolve_cutout(rec, name, k, chosen, state.boxes, state.size)
                    if state.images is not None:
                        self._cutout(state, name, k, chosen, rec)
                else:
                    for value in torch.unique(mag_cpu[chosen, k]).tolist():
                        idx = torch.nonzero(chosen & (mag_cpu[:, k] == value)).flatten()
                        self._image_op(state, name, float(value), idx.to(device))

    def _run_padded(
        self, state: _State, rec: dict[str, Tensor], replay: bool, sizes: Tensor
    ) -> None:
        """A padded batch: each image's ops on its own region ``[:H_b, :W_b]``, one at a time.

        The padding is neither read nor written; the parameters of image ``b`` (and of its
        objects) are the rows of ``rec``, which gets back what the ops resolved.
        """
        n = state.boxes.shape[0]
        if state.masks is not None:
            state.masks = state.masks.clone()
        if state.image_masks is not None:
            state.image_masks = state.image_masks.clone()
        local = torch.full((n,), -1, dtype=torch.long, device=state.boxes.device)
        for b in range(state.batch):
            h, w = (int(v) for v in sizes[b])
            objs = torch.nonzero(state.o2i == b).flatten()
            local[objs] = torch.arange(objs.numel(), device=objs.device)
            sub = {key: v[b : b + 1].clone() for key, v in rec.items() if key in _PER_IMAGE}
            sub.update({key: v[objs].clone() for key, v in rec.items() if key not in _PER_IMAGE})
            obj = sub["bbox_cutout_object"]
            if n:  # without objects every entry is -1 (no box to cut) and local is empty
                sub["bbox_cutout_object"] = torch.where(obj >= 0, local[obj.clamp(min=0)], -1)
            one = _State(
                images=None if state.images is None else state.images[b : b + 1, :, :h, :w].clone(),
                boxes=state.boxes[objs], o2i=torch.zeros_like(objs),
                masks=None if state.masks is None else state.masks[objs, :h, :w],
                image_masks=(None if state.image_masks is None
                             else state.image_masks[b : b + 1, :, :h, :w]),
                keypoints=None if state.keypoints is None else state.keypoints[objs],
                fill=state.fill, size=(h, w), batch=1,
            )
            self._run(one, sub, replay)
            for key in _RESOLVED:
                rows = slice(b, b + 1) if key in _PER_IMAGE else objs
                rec[key][rows] = sub[key]
            if one.images is not None:
                state.images[b : b + 1, :, :h, :w] = one.images
            state.boxes[objs] = one.boxes
            if one.masks is not None:
                state.masks[objs, :h, :w] = one.masks
            if one.image_masks is not None:
                state.image_masks[b : b + 1, :, :h, :w] = one.image_masks
            if one.keypoints is not None:
                state.keypoints[objs] = one.keypoints

    # ------------------------------------------------------------------ ops

    def _fill_list(self, state: _State) -> list[float]:
        return [float(v) for v in state.fill]

    def _image_op(self, state: _State, name: str, value: float, idx: Tensor) -> None:
        """One torchvision call on the images ``idx`` that share op ``name`` and ``value``."""
        if OPS[name].kind == "image_geometric":
            self._geometric(state, name, value, idx)
            return
        if state.images is None:
            return
        x = state.images.index_select(0, idx)
        y = _on_colour_channels(x, lambda t: OPS[name].image(t, value))
        state.images.index_copy_(0, idx, y.to(state.images.dtype))

    def _geometric(self, state: _State, name: str, value: float, idx: Tensor) -> None:
        """Image-level geometric op: the images, their objects' boxes, masks and keypoints."""
        height, width = state.size
        interp = InterpolationMode.NEAREST if self.interpolation == "nearest" else (
            InterpolationMode.BILINEAR
        )
        kernel, kw = OPS[name].affine(value)
        rotate = kernel == "rotate"

        def image_fn(t: Tensor, fill: list[float], mode: InterpolationMode) -> Tensor:
            if rotate:
                return TF.rotate(t, interpolation=mode, fill=fill, **kw)
            return TF.affine(t, interpolation=mode, fill=fill, **kw)

        def boxes_fn(b: Tensor, clamping: str | None) -> Tensor:
            if rotate:
                return TF.rotate_bounding_boxes(
                    b, _XYXY, (height, width), clamping_mode=clamping, **kw
                )[0]
            return TF.affine_bounding_boxes(
                b, _XYXY, (height, width), clamping_mode=clamping, **kw
            )

        if state.images is not None:
            y = image_fn(state.images.index_select(0, idx), self._fill_list(state), interp)
            state.images.index_copy_(0, idx, y.to(state.images.dtype))
        if state.image_masks is not None:
            m = state.image_masks.index_select(0, idx)
            state.image_masks = state.image_masks.index_copy(
                0, idx, _warp_mask(m, lambda t: image_fn(t, [0.0], InterpolationMode.NEAREST))
            )
        in_group = torch.zeros(state.batch, dtype=torch.bool, device=idx.device)
        in_group[idx] = True
        objs = torch.nonzero(in_group[state.o2i]).flatten()
        if objs.numel() == 0:
            return
        moved = boxes_fn(state.boxes[objs], "hard").to(state.boxes.dtype)
        state.boxes = state.boxes.index_copy(0, objs, _never_inverted(moved))
        if state.masks is not None:
            m = state.masks.index_select(0, objs)[:, None]
            warped = _warp_mask(m, lambda t: image_fn(t, [0.0], InterpolationMode.NEAREST))
            state.masks = state.masks.index_copy(0, objs, warped[:, 0])
        if state.keypoints is not None:
            pts = state.keypoints.index_select(0, objs)
            flat = pts.reshape(-1, 2)
            as_boxes = torch.cat((flat, flat), -1)
            moved_pts = boxes_fn(as_boxes, None)[:, :2].reshape(pts.shape).to(pts.dtype)
            state.keypoints = state.keypoints.index_copy(0, objs, moved_pts)

    def _resolve_cutout(
        self, rec: dict[str, Tensor], name: str, k: int, chosen: Tensor, boxes: Tensor,
        size: tuple[int, int],
    ) -> None:
        """Draw the centre of image-level cutout ``name`` of slot ``k`` (the images ``chosen``).

        A uniform pixel of the op's region (:attr:`OpSpec.cutout`), from the boxes as
        they are when the op runs (an earlier op may have moved them), recorded in ``rec``.
        """
        idx, region = self._cutout_region(rec, name, k, chosen, boxes, size)
        rec["cutout_center"][idx, k] = _uniform_pixel(rec["_u_center"][idx, k], region)

    def _cutout_region(
        self, rec: dict[str, Tensor], name: str, k: int, chosen: Tensor, boxes: Tensor,
        size: tuple[int, int],
    ) -> tuple[Tensor, Tensor]:
        """The images of ``chosen`` that cutout ``name`` acts on and the pixel rects ``[M, 4]``
        its centres are drawn in: the image, or the image's chosen box (an image without
        boxes has none: it is left out)."""
        idx = torch.nonzero(chosen).flatten().to(boxes.device)
        if OPS[name].cutout == "image":
            height, width = size
            rect = torch.tensor([[0, 0, width, height]], device=boxes.device)
            return idx, rect.expand(idx.numel(), 4)
        obj = rec["bbox_cutout_object"][idx, k]
        return idx[obj >= 0], box_pixel_rects(boxes[obj[obj >= 0]], size)

    def _cutout(self, state: _State, name: str, k: int, chosen: Tensor, rec: dict[str, Tensor]) -> None:
        """An image-level cutout on every chosen image at once."""
        idx, region = self._cutout_region(rec, name, k, chosen, state.boxes, state.size)
        center = rec["cutout_center"][idx, k]
        valid = (center >= 0).all(-1)
        rects = OPS[name].cutout_rects(center, rec["magnitude"][idx, k], region)[valid]
        state.images = fill_rects(state.images, rects, idx[valid], state.fill, inplace=True)

    def _box_ops(
        self, state: _State, k: int, img_op: Tensor, rec: dict[str, Tensor], replay: bool
    ) -> None:
        """Every box-only op of slot ``k`` at once (``img_op [B]``: each image's op id, -1: none).

        The ops act on different images, so they run side by side: one draw of the box
        coins, one warp of the boxes of every geometric op (one ``theta`` computation, one
        plan), one kernel call per photometric op. The value checks of the functions it
        calls are skipped (:func:`~augpatch.functional.checks.values_checked_later`): the
        call's boxes were checked on entry, the rest is the module's own.
        """
        with values_checked_later():
            self._box_ops_checked(state, k, img_op, rec, replay)

    def _box_ops_checked(
        self, state: _State, k: int, img_op: Tensor, rec: dict[str, Tensor], replay: bool
    ) -> None:
        dev = state.o2i.device
        box_only = self._box_only_ids.to(dev)
        obj_op = img_op.to(dev)[state.o2i]  # [N] the op of each object's image
        objs = torch.nonzero(box_only[obj_op.clamp(min=0)] & (obj_op >= 0)).flatten()
        if objs.numel() == 0:
            return
        if not replay:
            self._resolve_boxes(rec, k, objs, obj_op[objs], state)
        fired = objs[rec["box_apply"][objs, k]]
        if fired.numel() == 0:
            return
        fired_op = obj_op[fired]
        fired = fired[torch.sort(fired_op, stable=True).indices]  # by op, each in index order
        ids, counts = torch.unique_consecutive(obj_op[fired], return_counts=True)
        groups = [(OPS[self._op_names[i]], g) for i, g in zip(
            ids.tolist(), torch.split(fired, counts.tolist()), strict=True)]
        geometric = [(spec, g) for spec, g in groups if spec.kind == "box_geometric"]
        if geometric:
            self._box_warp(state, k, geometric, rec)
        if state.images is None:
            return
        for spec, g in groups:
            if spec.cutout is not None:
                self._box_cutout(state, spec, g, k, rec)
            elif spec.kind == "box_photometric":
                self._box_photometric(state, spec, g, rec["box_magnitude"][g, k])

    def _box_photometric(self, state: _State, spec: OpSpec, fired: Tensor, value: Tensor) -> None:
        """Equalize_ / Solarize_Only_BBoxes on the boxes ``fired`` (one kernel call)."""
        boxes, o2i = state.boxes[fired], state.o2i[fired]
        state.images = _on_colour_channels(state.images, lambda t: spec.boxes_photometric(
            t, boxes, value, o2i, self.overlap, inplace=t is state.images))

    def _resolve_boxes(
        self, rec: dict[str, Tensor], k: int, objs: Tensor, obj_op: Tensor, state: _State
    ) -> None:
        """Draw the coins of the boxes ``objs`` (box-only ops of slot ``k``; ``obj_op``: their
        op ids) and the centres of ``Cutout_Only_BBoxes``, from the boxes as they are now.

        Box coins (through ``box_prob``) and the cutouts' centres depend on the boxes when
        the op runs (an earlier op of the sub-policy may have moved them), so they are
        resolved from the uniform draws here and recorded.
        """
        boxes = state.boxes
        prob = self._prob.to(boxes.device)[rec["sub_policy"][state.o2i[objs]], k]
        if self.box_prob is None:
            p = prob / self.bbox_prob_divisor
        else:  # the hook sees one op at a time
            p = torch.empty_like(prob)
            for op_id in torch.unique(obj_op).tolist():
                rows = torch.nonzero(obj_op == op_id).flatten()
                p[rows] = self._coin_probability(self._op_names[op_id], prob[rows], boxes[objs[rows]])
        rec["box_apply"][objs, k] = rec["_u_box"][objs, k].double() < p
        cut = self._box_cutout_ids.to(boxes.device)[obj_op]
        fired = objs[cut & rec["box_apply"][objs, k]]
        if fired.numel():
            rect = box_pixel_rects(boxes[fired], state.size)
            rec["box_cutout_center"][fired, k] = _uniform_pixel(rec["_u_box_center"][fired, k], rect)

    def _box_cutout(self, state: _State, spec: OpSpec, fired: Tensor, k: int,
                    rec: dict[str, Tensor]) -> None:
        """``Cutout_Only_BBoxes``: a square about a drawn pixel of each box, inside the box."""
        region = box_pixel_rects(state.boxes[fired], state.size)
        center = rec["box_cutout_center"][fired, k]
        valid = (center >= 0).all(-1)
        cut = spec.cutout_rects(center, rec["box_magnitude"][fired, k], region)[valid]
        state.images = fill_rects(state.images, cut, state.o2i[fired][valid], state.fill,
                                  inplace=True)

    def _coin_probability(self, name: str, prob: Tensor, boxes: Tensor) -> Tensor:
        if self.box_prob is None:
            return prob / self.bbox_prob_divisor
        p = self.box_prob(name, prob, boxes)
        if not isinstance(p, Tensor) or tuple(p.shape) != (prob.shape[0],):
            raise ValueError(
                f"box_prob must return a tensor [M] = [{prob.shape[0]}] (one probability per "
                f"box), got {tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__}"
            )
        p = p.to(device=prob.device, dtype=torch.float64)
        if p.numel() and not bool(((p >= 0) & (p <= 1)).all()):
            raise ValueError(f"box_prob must return probabilities in [0, 1] (op {name})")
        return p

    def _box_warp(self, state: _State, k: int, groups: list[tuple[OpSpec, Tensor]],
                  rec: dict[str, Tensor]) -> None:
        """The box-only geometric ops of a slot: one ``theta`` for every box, one warp."""
        height, width = state.size
        fired = torch.cat([g for _, g in groups])
        patches = AF.clip_boxes(state.boxes[fired], (height, width))
        theta = box_theta_of_ops([spec.name for spec, _ in groups], [g.numel() for _, g in groups],
                                 patches, rec["box_magnitude"][fired, k],
                                 align_corners=self.align_corners)
        o2i = state.o2i[fired]
        common = {"mode": self.interpolation, "align_corners": self.align_corners,
                  "overlap": self.overlap}
        if state.images is None:
            pass
        elif self.padding_mode == "image":  # reads around the boxes: the whole-image warp
            state.images = AF.warp_patches(
                state.images, patches, theta, o2i, padding_mode="image", **common
            )
        else:  # only the boxes' pixels are read and written
            fill = state.fill if self.padding_mode == "fill" else None
            padding = "zeros" if self.padding_mode == "fill" else self.padding_mode
            state.images = warp_rects(state.images, None, patches, theta, o2i, fill=fill,
                                      padding_mode=padding, inplace=True, **common)
        self._box_warp_targets(state, fired, patches, theta)
        if self.move_boxes:
            moved = AF.transform_boxes(patches, theta, clip=True, align_corners=self.align_corners)
            lo = torch.minimum(moved[:, :2], patches[:, 2:])
            moved = torch.cat((lo, torch.maximum(moved[:, 2:], lo)), -1)
            state.boxes = state.boxes.index_copy(0, fired, moved.to(state.boxes.dtype))

    def _box_warp_targets(self, state: _State, fired: Tensor, patches: Tensor, theta: Tensor) -> None:
        """Masks, image masks and keypoints of a box-only warp follow the pixels (always)."""
        # what the warp brings into a box: background where the images get fill or zeros
        padding = "zeros" if self.padding_mode == "fill" else self.padding_mode
        common = {"align_corners": self.align_corners, "padding_mode": padding}
        if state.masks is not None:  # mask n is image n of a batch of its own
            own = torch.arange(fired.numel(), device=fired.device)
            warped = AF.warp_masks(state.masks.index_select(0, fired), patches, theta, own,
                                   **common)
            state.masks = state.masks.index_copy(0, fired, warped)
        if state.image_masks is not None:
            state.image_masks = AF.warp_masks(state.image_masks, patches, theta,
                                              state.o2i[fired], overlap=self.overlap, **common)
        if state.keypoints is not None:
            pts = state.keypoints.index_select(0, fired)
            moved_pts = AF.transform_points(pts, patches, theta, align_corners=self.align_corners)
            state.keypoints = state.keypoints.index_copy(0, fired, moved_pts.to(pts.dtype))


@dataclass
class _State:
    """What the ops of one call update: images (``None``: targets only), boxes, masks,
    keypoints; and the canvas size (an image's own size in a padded batch)."""

    images: Tensor | None
    boxes: Tensor
    o2i: Tensor
    masks: Tensor | None
    image_masks: Tensor | None
    keypoints: Tensor | None
    fill: Tensor | None
    size: tuple[int, int]
    batch: int


def _warp_mask(mask: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Run a torchvision image warp (nearest) on a mask of any dtype, restoring its dtype.

    bool masks go through uint8, other integer types through float64 (exact to 2**53).
    """
    if mask.dtype == torch.bool:
        return fn(mask.to(torch.uint8)).bool()
    if mask.dtype in (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return fn(mask)
    return fn(mask.to(torch.float64)).round().to(mask.dtype)


def _check_value_range(images: Tensor) -> Tensor:
    """Float images must hold values in ``[0, 1]`` (one min / max per call)."""
    if images.is_floating_point() and images.numel():
        lo, hi = torch.aminmax(images.detach())
        lo_v, hi_v = float(lo), float(hi)
        if not (lo_v >= 0.0 and hi_v <= 1.0):  # also catches NaN
            raise ValueError(
                f"images: float images must hold values in [0, 1] (uint8 images 0-255), got "
                f"values in [{lo_v:g}, {hi_v:g}]; divide 0-255 floats by 255 and undo a "
                f"normalisation (mean / std) before DetectionAutoAugment"
            )
    return images


def colour_channels(channels: int) -> int:
    """How many leading channels the colour ops act on: 3 (RGB) if ``C >= 3``, else 1.

    The other channels (an alpha channel, extra spectral bands) are left unchanged by
    the colour ops; geometric ops and cutouts move and fill every channel.
    """
    return 3 if channels >= 3 else 1


def _on_colour_channels(x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn`` on the colour channels of ``x`` (:func:`colour_channels`), the rest kept."""
    c = colour_channels(x.shape[1])
    if c == x.shape[1]:
        return fn(x)
    return torch.cat((fn(x[:, :c]).to(x.dtype), x[:, c:]), 1)


def _uniform_pixel(u: Tensor, rect: Tensor) -> Tensor:
    """``(x, y)`` pixel ``[M, 2]`` drawn by ``u [M, 2]`` uniformly in pixel rects ``[M, 4]``.

    ``(-1, -1)`` where a rect holds no pixel.
    """
    size = rect[:, 2:] - rect[:, :2]
    off = torch.minimum((u.double() * size).long(), (size - 1).clamp(min=0))
    return torch.where((size > 0).all(-1, keepdim=True), rect[:, :2] + off, -1)
