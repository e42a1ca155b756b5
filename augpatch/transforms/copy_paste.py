"""``RandomCopyPaste``: Simple Copy-Paste (Ghiasi et al., CVPR 2021) on whole batches.

Each destination image of the batch takes a source image of the same batch (by default
the batch rolled by one, as torchvision's ``references/detection`` ``SimpleCopyPaste``),
a random subset of the source's objects, gives every pasted object its own scale,
rotation, flip and position, and pastes them all in one call of
:func:`augpatch.functional.paste_objects` (cut out by their masks). Everything the paste
changes is updated: the objects under the pasted ones lose the covered pixels (masks,
boxes, ``keep``), and the pasted objects are appended (boxes, masks, keypoints,
``obj_to_img``, and ``object_index``, the input object each output row comes from, so
that labels and any other per-object field follow with ``field[object_index]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as TF
from torch import Tensor, nn

from augpatch import functional as F
from augpatch.functional.checks import (
    MODES,
    BoxesLike,
    check_bool,
    check_choice,
    check_image_sizes,
    check_images,
    check_points,
    compute_dtype,
    parse_boxes,
)
from augpatch.transforms._result import PatchResult

__all__ = ["RandomCopyPaste"]

_PAIRINGS = ("roll", "random")
_POSITIONS = ("uniform", "keep")
_KEYS = ("src_objects", "dst_images", "scale", "angle", "flip", "centre")


@dataclass
class _Batch:
    """The checked inputs of a call (boxes in the compute dtype, ``src_boxes`` clipped to their image)."""

    images: Tensor
    boxes: Tensor
    obj_to_img: Tensor
    masks: Tensor | None
    keypoints: Tensor | None
    sizes: Tensor  # [B, 2] (H, W), CPU
    sizes_dev: Tensor
    src_boxes: Tensor
    dtype: torch.dtype
    as_list: bool

    @property
    def batch(self) -> int:
        return self.images.shape[0]


@dataclass
class _Paste:
    """The pasted images and what the occlusion needs: the pasted objects (input rows
    ``src``, images ``dst``, boxes, point map), the existing and pasted masks ``[N | M, H, W]``
    bool and the pasted masks' pixel rects ``[M, 4]`` (int64, half-open)."""

    images: Tensor
    src: Tensor
    dst: Tensor
    dst_boxes: Tensor
    forward: Callable[[Tensor], Tensor]
    own: Tensor
    pasted: Tensor
    rects: Tensor


@dataclass
class _Occlusion:
    """Masks after the paste ``[N + M, H, W]``, visible and original pixel counts ``[N + M]``,
    tight boxes ``[N + M, 4]`` (int64; valid where ``changed``), ``changed [N + M]``."""

    masks: Tensor
    visible: Tensor
    area: Tensor
    tight: Tensor
    changed: Tensor


def _range(name: str, value: object, default_low: float | None = None) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = (default_low if default_low is not None else -float(value)), float(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"{name} must be a number or a pair (low, high), got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a finite range with low <= high, got ({lo}, {hi})")
    return lo, hi


def _probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class RandomCopyPaste(nn.Module):
    """Paste objects of one image of the batch into another, each with its own transform.

    Args:
        p: probability that a destination image receives objects.
        object_p: probability that each object of the source image is pasted (the
            selection); ``max_objects`` caps the count per destination image (a random
            subset of the selected objects is kept).
        max_objects: at most this many pasted objects per destination image (``None``:
            no cap).
        scale: range of each pasted object's scale factor (about its centre); the
            paper's large scale jitter is ``(0.1, 2.0)``.
        angle: rotation range in degrees (a number ``a`` means ``(-a, a)``); positive is
            counter-clockwise on screen, as everywhere in augpatch.
        hflip: probability of a horizontal flip of each pasted object.
        position: ``"uniform"`` (the object's centre lands uniformly in the destination
            image) or ``"keep"`` (at its position in the source image).
        pairing: ``"roll"`` (destination ``b`` takes source ``b - 1``, torchvision's
            reference) or ``"random"`` (another image of the batch, at random).
        sigma: standard deviation (pixels) of the Gaussian blur of each pasted mask
            before compositing (the paper's soft edge); ``0``: no blending.
        kernel_size: the blur's kernel size (odd; default ``2 * ceil(3 sigma) + 1``).
        min_visible_pixels: an object left with fewer visible mask pixels gets
            ``keep=False`` (occluded objects, and pasted objects cut off by the border).
        min_visible_fraction: ... or with a smaller fraction of its mask visible.
        drop_invalid: drop the objects with ``keep=False`` from the output.
        mode: resampling of the images (``"bilinear"``, ``"nearest"``, ``"bicubic"``);
            masks are always resampled with ``"nearest"``.
        generator: a ``torch.Generator`` for the sampling (CPU).

    Call: ``aug(images, boxes, obj_to_img=None, *, masks=None, keypoints=None,
    params=None, image_sizes=None, drop_invalid=None)`` with ``images [B, C, H, W]``, ``boxes [N, 4]``
    ``xyxy`` (or a list of ``B`` tensors), ``masks [N, H, W]`` per-object masks (bool /
    uint8 / float 0-1; without masks every object is pasted as its box), ``keypoints
    [N, K, 2]``. Returns a :class:`PatchResult` whose rows are the ``N`` input objects
    (occluded) followed by the ``M`` pasted ones: ``boxes [N + M, 4]``, ``masks``,
    ``keypoints``, ``obj_to_img``, ``keep [N + M]``, and ``object_index [N + M]`` (the
    input object of each row, for labels: ``labels[res.object_index]``); with
    ``drop_invalid=True`` the rows with ``keep=False`` are removed (``keep`` stays over
    all ``N + M`` rows). ``params`` (``aug._params``, JSON-able with
    :func:`augpatch.transforms.params_to_json`) holds ``src_objects [M]`` (input object
    pasted), ``dst_images [M]``, ``scale [M]``, ``angle [M]``, ``flip [M]`` and ``centre
    [M, 2]`` (pixel position of the pasted object's centre); pass a dict with
    ``src_objects`` and ``dst_images`` (the others default to the identity at the
    object's own position) to force a pairing and a selection.

    Example:
        >>> import torch
        >>> from augpatch import RandomCopyPaste
        >>> images = torch.zeros(2, 3, 32, 32)
        >>> images[0, :, 4:12, 4:12] = 1.0
        >>> masks = torch.zeros(1, 32, 32, dtype=torch.bool)
        >>> masks[0, 4:12, 4:12] = True
        >>> aug = RandomCopyPaste(p=1.0, object_p=1.0, scale=(1.0, 1.0), hflip=0.0, position="keep")
        >>> res = aug(images, torch.tensor([[4, 4, 12, 12]]), torch.tensor([0]), masks=masks)
        >>> res.boxes.tolist(), res.obj_to_img.tolist(), res.object_index.tolist()
        ([[4.0, 4.0, 12.0, 12.0], [4.0, 4.0, 12.0, 12.0]], [0, 1], [0, 0])
        >>> bool(res.images[1, :, 4:12, 4:12].eq(1).all())
        True
    """

    def __init__(
        self,
        *,
        p: float = 0.5,
        object_p: float = 0.5,
        max_objects: int | None = None,
        scale: float | tuple[float, float] = (0.1, 2.0),
        angle: float | tuple[float, float] = 0.0,
        hflip: float = 0.5,
        position: str = "uniform",
        pairing: str = "roll",
        sigma: float = 0.0,
        kernel_size: int | None = None,
        min_visible_pixels: int = 1,
        min_visible_fraction: float = 0.0,
        drop_invalid: bool = False,
        mode: str = "bilinear",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.p = _probability("p", p)
        self.object_p = _probability("object_p", object_p)
        if max_objects is not None and (isinstance(max_objects, bool) or not isinstance(max_objects, int)
                                        or max_objects < 0):
            raise ValueError(f"max_objects must be None or a non-negative int, got {max_objects!r}")
        self.max_objects = max_objects
        self.scale = _range("scale", scale, default_low=float(scale) if isinstance(scale, (int, float)) else None)
        if self.scale[0] <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        self.angle = _range("angle", angle)
        self.hflip = _probability("hflip", hflip)
        self.position = check_choice("position", position, _POSITIONS)
        self.pairing = check_choice("pairing", pairing, _PAIRINGS)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (0 <= sigma < math.inf):
            raise ValueError(f"sigma must be a non-negative number, got {sigma!r}")
        self.sigma = float(sigma)
        if kernel_size is not None and (not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be None or a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        if isinstance(min_visible_pixels, bool) or not isinstance(min_visible_pixels, int) or min_visible_pixels < 0:
            raise ValueError(f"min_visible_pixels must be a non-negative int, got {min_visible_pixels!r}")
        self.min_visible_pixels = min_visible_pixels
        self.min_visible_fraction = _probability("min_visible_fraction", min_visible_fraction)
        self.drop_invalid = check_bool("drop_invalid", drop_invalid)
        self.mode = check_choice("mode", mode, MODES)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator
        self._params: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ sampling

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self.generator)

    def generate_parameters(
        self, boxes: Tensor, obj_to_img: Tensor, sizes: Tensor
    ) -> dict[str, Tensor]:
        """Sample the pairing, the selection and every pasted object's transform (CPU).

        ``boxes`` ``[N, 4]`` (clipped), ``obj_to_img`` ``[N]``, ``sizes`` ``[B, 2]`` each
        image's ``(H_b, W_b)``.
        """
        batch = sizes.shape[0]
        boxes, obj_to_img = boxes.cpu(), obj_to_img.cpu()
        if self.pairing == "roll":
            source_of = (torch.arange(batch) - 1) % batch
        else:
            shift = torch.randint(1, max(batch, 2), (batch,), generator=self.generator)
            source_of = (torch.arange(batch) + shift) % batch
        apply = self._rand(batch) < self.p
        pairs = (obj_to_img[:, None] == source_of[None, :]) & apply[None, :]  # [N, B]
        src, dst = pairs.nonzero(as_tuple=True)
        chosen = self._rand(src.numel()) < self.object_p
        src, dst = src[chosen], dst[chosen]
        if self.max_objects is not None and src.numel():
            key = self._rand(src.numel())
            order = torch.sort(key, stable=True).indices
            order = order[torch.sort(dst[order], stable=True).indices]  # by image, randomly within
            counts = torch.bincount(dst[order], minlength=batch)
            rank = torch.arange(order.numel()) - (torch.cumsum(counts, 0) - counts)[dst[order]]
            keep = torch.zeros(src.numel(), dtype=torch.bool)
            keep[order] = rank < self.max_objects
            src, dst = src[keep], dst[keep]
        m = src.numel()
        lo, hi = self.scale
        scale = lo + (hi - lo) * self._rand(m)
        lo, hi = self.angle
        angle = lo + (hi - lo) * self._rand(m)
        flip = self._rand(m) < self.hflip
        if self.position == "uniform":
            size = sizes[dst].to(torch.float64)
            centre = torch.stack([self._rand(m).double() * size[:, 1], self._rand(m).double() * size[:, 0]], 1)
        else:
            b = boxes[src].to(torch.float64)
            centre = (b[:, :2] + b[:, 2:]) / 2
        return {"src_objects": src, "dst_images": dst, "scale": scale.double(), "angle": angle.double(),
                "flip": flip, "centre": centre}

    @staticmethod
    def _complete(params: Mapping[str, Any], boxes: Tensor) -> dict[str, Tensor]:
        """A replayed / forced parameter dict with defaults: identity at the object's own place."""
        if "src_objects" not in params or "dst_images" not in params:
            raise KeyError("params must hold 'src_objects' and 'dst_images' (the objects pasted, their images)")
        src = torch.as_tensor(params["src_objects"], dtype=torch.long).cpu().reshape(-1)
        dst = torch.as_tensor(params["dst_images"], dtype=torch.long).cpu().reshape(-1)
        m = src.numel()
        if dst.numel() != m:
            raise ValueError(f"params: dst_images has {dst.numel()} entries, src_objects {m}")
        if m and (int(src.min()) < 0 or int(src.max()) >= boxes.shape[0]):
            raise IndexError(f"params: src_objects must index the {boxes.shape[0]} objects")
        b = boxes.cpu().to(torch.float64)[src]
        defaults = {"scale": torch.ones(m, dtype=torch.float64), "angle": torch.zeros(m, dtype=torch.float64),
                    "flip": torch.zeros(m, dtype=torch.bool), "centre": (b[:, :2] + b[:, 2:]) / 2}
        out = {"src_objects": src, "dst_images": dst}
        for key, default in defaults.items():
            value = params.get(key)
            out[key] = default if value is None else torch.as_tensor(value).cpu().to(default.dtype).reshape(
                default.shape)
        return out

    # ------------------------------------------------------------------ the call

    def forward(
        self,
        images: Tensor,
        boxes: BoxesLike,
        obj_to_img: Tensor | None = None,
        *,
        masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        params: Mapping[str, Any] | None = None,
        image_sizes: Tensor | None = None,
        drop_invalid: bool | None = None,
    ) -> PatchResult:
        """Paste (see the class); ``drop_invalid`` overrides the module's for this call
        (:class:`PatchSequential` runs its members with ``False``: the sequence drops).
        The steps: check, sample, paste, occlusion, result."""
        drop_invalid = self.drop_invalid if drop_invalid is None else check_bool("drop_invalid", drop_invalid)
        batch = self._check(images, boxes, obj_to_img, masks, keypoints, image_sizes)
        p = self._sample(batch, params)
        paste = self._paste(batch, p)
        occ = _occlude(paste.own, batch.obj_to_img, paste.pasted, paste.dst, paste.rects, batch.batch)
        return self._result(batch, p, paste, occ, drop_invalid)

    def _check(self, images: Tensor, boxes: BoxesLike, obj_to_img: Tensor | None, masks: Tensor | None,
               keypoints: Tensor | None, image_sizes: Tensor | None) -> _Batch:
        """The checked inputs, the sizes of every image and the source boxes (clipped to their image)."""
        images = check_images(images)
        batch, _, height, width = images.shape
        as_list = isinstance(boxes, (list, tuple))
        boxes, obj_to_img, _ = parse_boxes(boxes, obj_to_img, batch)
        n = boxes.shape[0]
        if obj_to_img is None:
            obj_to_img = torch.zeros(n, dtype=torch.long, device=images.device)
        if masks is not None and (not isinstance(masks, Tensor) or masks.shape != (n, height, width)):
            raise ValueError(f"masks must be a tensor [N, H, W] = [{n}, {height}, {width}], got "
                             f"{tuple(getattr(masks, 'shape', ()))}")
        if keypoints is not None:
            keypoints = check_points(keypoints, n, "keypoints", one_per_object=True)
        sizes = check_image_sizes(image_sizes, batch, (height, width))
        if sizes is None:
            sizes = torch.tensor([[height, width]], dtype=torch.long).expand(batch, 2)
        dtype = compute_dtype(images, boxes)
        sizes_dev = sizes.to(images.device)
        src_boxes = clip_to_sizes(boxes.to(dtype), sizes_dev[obj_to_img])
        return _Batch(images, boxes.to(dtype), obj_to_img, masks, keypoints, sizes, sizes_dev, src_boxes,
                      dtype, as_list)

    def _sample(self, batch: _Batch, params: Mapping[str, Any] | None) -> dict[str, Tensor]:
        """The parameters of the call: drawn, or a replayed / forced dict completed."""
        if params is None:
            p = self.generate_parameters(batch.src_boxes, batch.obj_to_img, batch.sizes)
        else:
            p = self._complete(params, batch.src_boxes)
        self._params = p
        return p

    def _paste(self, batch: _Batch, p: Mapping[str, Tensor]) -> _Paste:
        """Paste the images (alpha: the object's mask, blurred with ``sigma``) and the masks
        (nearest) in one call each; without masks the pasted and existing "masks" are boxes."""
        images = batch.images
        dev, (height, width), dtype = images.device, images.shape[2:], batch.dtype
        src, dst = p["src_objects"].to(dev), p["dst_images"].to(dev)
        m = src.numel()
        sb = batch.src_boxes[src]
        anchor = (sb[:, :2] + sb[:, 2:]) / 2  # the point that lands on params["centre"]
        if self.sigma > 0 and batch.masks is not None:  # the blurred mask reaches beyond the box
            radius = (self.kernel_size or 2 * math.ceil(3 * self.sigma) + 1) // 2
            grown = torch.cat([sb[:, :2] - radius, sb[:, 2:] + radius], 1)
            sb = clip_to_sizes(grown, batch.sizes_dev[batch.obj_to_img[src]])
        dst_boxes, theta, forward = paste_placement(sb, anchor, p, dst, batch.sizes_dev, dtype)
        masks = batch.masks
        bool_masks = masks.bool() if masks is not None and masks.dtype != torch.bool else masks
        alpha = None
        if bool_masks is not None:
            alpha = bool_masks[src]
            if self.sigma > 0:
                alpha = _blur(alpha.to(compute_dtype(images)), self.sigma, self.kernel_size)
        out = F.paste_objects(images, sb, theta, batch.obj_to_img[src], dst_boxes, dst, alpha=alpha,
                              mode=self.mode)
        if bool_masks is not None:
            pasted = F.paste_objects(
                torch.zeros((), dtype=torch.uint8, device=dev).expand(m, 1, height, width), sb, theta, src,
                dst_boxes, torch.arange(m, device=dev), sources=bool_masks.view(torch.uint8)[:, None],
                mode="nearest",
            )[:, 0].view(torch.bool)  # 0 / 1 values: the same bytes
            own = bool_masks
        else:
            pasted = _box_masks(dst_boxes, height, width)
            own = _box_masks(batch.boxes, height, width)
        # a pasted mask is empty outside its destination's pixel rect (one pixel of margin)
        # (pixel j is inside iff x1 <= j + .5 < x2, the kernels' rule: ceil(x1 - .5) <= j < ceil(x2 - .5))
        rects = torch.ceil(dst_boxes.detach().double() - 0.5).long()
        rects = torch.cat([rects[:, :2] - 1, rects[:, 2:] + 1], 1).clamp(min=0)
        rects = torch.minimum(rects, torch.tensor([width, height] * 2, device=dev))
        return _Paste(out, src, dst, dst_boxes, forward, own, pasted, rects)

    def _result(self, batch: _Batch, p: dict[str, Tensor], paste: _Paste, occ: _Occlusion,
                drop_invalid: bool) -> PatchResult:
        """Boxes (occluded objects shrink to what is left, pasted ones are their mask's box),
        ``keep``, the appended rows, ``area`` of the changed rows, optional dropping."""
        n, dtype, src, dst = batch.boxes.shape[0], batch.dtype, paste.src, paste.dst
        tight = occ.tight.to(dtype)
        old = torch.where(occ.changed[:n, None], tight[:n], batch.boxes)
        new = tight[n:] if batch.masks is not None else clip_to_sizes(paste.dst_boxes, batch.sizes_dev[dst])
        boxes_out = torch.cat([old, new])
        keep = occ.visible >= self.min_visible_pixels
        keep &= occ.visible >= self.min_visible_fraction * occ.area.clamp(min=1)
        keep &= (boxes_out[:, 2] > boxes_out[:, 0]) & (boxes_out[:, 3] > boxes_out[:, 1])
        obj_out = torch.cat([batch.obj_to_img, dst])
        index = torch.cat([torch.arange(n, device=dst.device), src])
        if batch.masks is not None:  # COCO's area: the mask's pixels; without masks, the box's
            area = occ.visible.to(dtype)
        else:
            area = (boxes_out[:, 2] - boxes_out[:, 0]) * (boxes_out[:, 3] - boxes_out[:, 1])
        area = torch.where(occ.changed, area, torch.nan)
        kps_out = None
        if batch.keypoints is not None:
            kps = batch.keypoints.to(dtype)
            kps_out = torch.cat([kps, paste.forward(kps[src])])
        masks_out = None
        if batch.masks is not None:
            masks_out = occ.masks if batch.masks.dtype == torch.bool else occ.masks.to(batch.masks.dtype)
        if drop_invalid:
            boxes_out, obj_out, index, area = boxes_out[keep], obj_out[keep], index[keep], area[keep]
            masks_out = masks_out[keep] if masks_out is not None else None
            kps_out = kps_out[keep] if kps_out is not None else None
        boxes_ret: Any = F.boxes_to_list(boxes_out, obj_out, batch.batch) if batch.as_list else boxes_out
        return PatchResult(paste.images, boxes_ret, masks=masks_out, keypoints=kps_out, keep=keep,
                           obj_to_img=obj_out, params=p, object_index=index, area=area)

    def extra_repr(self) -> str:
        return (f"p={self.p}, object_p={self.object_p}, max_objects={self.max_objects}, scale={self.scale}, "
                f"angle={self.angle}, hflip={self.hflip}, position={self.position!r}, pairing={self.pairing!r}, "
                f"sigma={self.sigma}, min_visible_pixels={self.min_visible_pixels}, "
                f"min_visible_fraction={self.min_visible_fraction}, drop_invalid={self.drop_invalid}")


def paste_placement(
    sb: Tensor, anchor: Tensor, p: Mapping[str, Tensor], dst: Tensor, sizes: Tensor, dtype: torch.dtype
):
    """Destination boxes, ``theta`` and the forward point map of the pasted objects.

    Each object's content moves by ``x' = centre + A (x - anchor)`` with ``A = R(angle)
    scale F(flip)`` in pixels; its destination box is the bounding box of its source box
    moved so, clipped to the destination image; ``theta`` maps that clipped box's
    normalised coordinates back into the source box's.
    """
    dev = sb.device
    scale = p["scale"].to(dev, dtype)
    rad = torch.deg2rad(p["angle"].to(dev, dtype))
    flip = torch.where(p["flip"].to(dev), -1.0, 1.0).to(dtype)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # y points down: a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]]
    a = torch.stack([torch.stack([cos * flip, sin], -1), torch.stack([-sin * flip, cos], -1)], -2)
    a = a * scale[:, None, None]
    c_src = (sb[:, :2] + sb[:, 2:]) / 2
    h_src = (sb[:, 2:] - sb[:, :2]) / 2
    centre = p["centre"].to(dev, dtype)
    corners = torch.stack([sb[:, [0, 1]], sb[:, [2, 1]], sb[:, [0, 3]], sb[:, [2, 3]]], 1) - anchor[:, None]
    moved = centre[:, None] + corners @ a.transpose(1, 2)
    box = torch.cat([moved.min(1).values, moved.max(1).values], 1)
    box = clip_to_sizes(box, sizes[dst])
    c_dst = (box[:, :2] + box[:, 2:]) / 2
    h_dst = (box[:, 2:] - box[:, :2]) / 2
    valid = (h_src > 0).all(1) & (h_dst > 0).all(1)
    a_inv = torch.linalg.inv(torch.where(valid[:, None, None], a, torch.eye(2, dtype=dtype, device=dev)))
    inv_h = torch.where(h_src > 0, 1 / h_src.clamp(min=1e-12), 0.0)
    lin = inv_h[:, :, None] * a_inv * h_dst[:, None, :]
    shift = inv_h * ((a_inv @ (c_dst - centre)[:, :, None])[:, :, 0] + anchor - c_src)
    theta = torch.cat([lin, shift[:, :, None]], 2)
    box = torch.where(valid[:, None], box, torch.zeros_like(box))  # nothing to paste

    def forward(points: Tensor) -> Tensor:
        return centre[:, None] + (points - anchor[:, None]) @ a.transpose(1, 2)

    return box, theta, forward


def clip_to_sizes(box: Tensor, sizes: Tensor) -> Tensor:
    """Boxes clipped to ``[0, W_b] x [0, H_b]`` of their image (``sizes [M, 2]`` ``(H, W)``)."""
    limit = sizes.flip(1).repeat(1, 2).to(box.dtype)
    return torch.minimum(box.clamp(min=0), limit)


def _box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """``[N, H, W]`` bool: the pixels (centres) inside each box."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
    return inside_y[:, :, None] & inside_x[:, None, :]


_CROP_BUDGET = 1 << 22  # pixels of the crops gathered at a time (bounds the temporaries)


def _chunks(rects: Tensor, budget: int = _CROP_BUDGET):
    """Groups of rect indices with each group's crop size ``(h, w)``: rects of one size class
    (the same power of two above their width and height, so a crop pads at most 2x per
    axis), at most ``budget`` crop pixels a group. A loop over size classes, not objects."""
    size = (rects[:, 2:] - rects[:, :2]).clamp(min=0).cpu()  # [K, 2] (w, h)
    level = torch.ceil(torch.log2(size.clamp(min=1).double())).long()
    key = level[:, 1] * 64 + level[:, 0]
    for k in torch.unique(key).tolist():
        idx = (key == k).nonzero().flatten()
        w, h = size[idx].amax(0).tolist()
        step = max(1, budget // max(1, w * h))
        for s in range(0, idx.numel(), step):
            yield idx[s : s + step].to(rects.device), h, w


def _crops(frames: Tensor, which: Tensor, rects: Tensor, h: int, w: int):
    """``[K, h, w]`` bool crops of ``frames[which[k]]`` at ``rects[k]`` (``x0, y0`` the origin;
    pixels past the rect or the frame are False) and their rows / columns ``[K, h]``, ``[K, w]``."""
    height, width = frames.shape[1:]
    ys = rects[:, 1:2] + torch.arange(h, device=rects.device)
    xs = rects[:, 0:1] + torch.arange(w, device=rects.device)
    inside = (ys < rects[:, 3:4])[:, :, None] & (xs < rects[:, 2:3])[:, None, :]
    rows = (which * height)[:, None] + ys.clamp(max=height - 1)  # whole rows first: contiguous copies
    crop = frames.reshape(-1, width).index_select(0, rows.flatten()).view(which.shape[0], h, width)
    crop = crop.gather(2, xs.clamp(max=width - 1)[:, None, :].expand(-1, h, -1))
    return crop & inside, ys, xs


def _occlude(own: Tensor, obj_to_img: Tensor, pasted: Tensor, dst: Tensor, dst_rects: Tensor, batch: int):
    """Masks after the paste (``[N + M, H, W]`` bool), their visible and original pixel counts,
    and the tight boxes of the rows whose mask changed (``[N + M, 4]``, ``changed [N + M]``).

    Existing objects lose every pixel a pasted object covers in their image; a pasted
    object loses the pixels of the objects pasted after it into the same image. Only the
    pasted rects (``dst_rects [M, 4]`` pixel rects: a pasted mask is empty outside its
    rect) and each existing mask's own tight rect are read: the pasted pixels are listed
    once, the top-most pasted object per pixel is a scatter of that list into a ``[B, H, W]``
    map, and the existing objects' losses are counted in the crops of their tight rects.
    """
    n, m = own.shape[0], pasted.shape[0]
    h, w = own.shape[1:]
    dev = own.device
    masks_out = torch.cat([own, pasted])
    # the pasted pixels: object k, row, column (from the crops of their rects)
    ks, ys, xs = [], [], []
    for idx, ch, cw in _chunks(dst_rects):
        crop, rows, cols = _crops(pasted, idx, dst_rects[idx], ch, cw)
        k, i, j = crop.nonzero(as_tuple=True)
        ks.append(idx[k]), ys.append(rows[k, i]), xs.append(cols[k, j])
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    k, y, x = (torch.cat(t) if t else empty for t in (ks, ys, xs))
    flat = dst[k] * (h * w) + y * w + x
    rank = (k + 1).int()
    top = torch.zeros(batch * h * w, dtype=torch.int32, device=dev)  # 1 + index of the top-most object
    top.scatter_reduce_(0, flat, rank, "amax")
    shown = top[flat] == rank
    masks_out[n + k[~shown], y[~shown], x[~shown]] = False
    vis_k, vis_y, vis_x = k[shown], y[shown], x[shown]
    visible = torch.zeros(n + m, dtype=torch.long, device=dev)
    area = torch.zeros(n + m, dtype=torch.long, device=dev)
    visible[n:] = torch.bincount(vis_k, minlength=m)
    area[n:] = torch.bincount(k, minlength=m)
    tight = torch.zeros(n + m, 4, dtype=torch.long, device=dev)
    tight[n:] = _scatter_boxes(vis_k, vis_x, vis_y, m, h, w)
    # the existing objects: their losses inside their own tight rects
    covered = (top > 0).view(batch, h, w)
    rects = mask_boxes(own).long()
    for idx, ch, cw in _chunks(rects):
        crop, rows, cols = _crops(own, idx, rects[idx], ch, cw)
        hit = crop & _crops(covered, obj_to_img[idx], rects[idx], ch, cw)[0]
        c, i, j = hit.nonzero(as_tuple=True)
        masks_out[idx[c], rows[c, i], cols[c, j]] = False
        area[idx] = _count(crop)
        visible[idx] = area[idx] - _count(hit)
        rest = crop & ~hit
        tight[idx] = _crop_boxes(rest, rows, cols)
    changed = visible < area
    changed[n:] = True
    return _Occlusion(masks_out, visible, area, tight, changed)


def _scatter_boxes(k: Tensor, x: Tensor, y: Tensor, m: int, h: int, w: int) -> Tensor:
    """Tight half-open boxes ``[m, 4]`` int64 of the pixel lists ``(k, x, y)``; 0 where empty."""
    dev = k.device
    x1 = torch.full((m,), w, dtype=torch.long, device=dev).scatter_reduce_(0, k, x, "amin")
    y1 = torch.full((m,), h, dtype=torch.long, device=dev).scatter_reduce_(0, k, y, "amin")
    x2 = torch.zeros(m, dtype=torch.long, device=dev).scatter_reduce_(0, k, x + 1, "amax")
    y2 = torch.zeros(m, dtype=torch.long, device=dev).scatter_reduce_(0, k, y + 1, "amax")
    box = torch.stack([x1, y1, x2, y2], 1)
    return torch.where((x2 > 0)[:, None], box, 0)


def _count(masks: Tensor) -> Tensor:
    """Pixels of each mask ``[K, h, w]`` bool, int64 (bytes summed in int32: no int64 copy)."""
    return masks.reshape(masks.shape[0], -1).view(torch.uint8).sum(1, dtype=torch.int32).long()


def _crop_boxes(crop: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Tight half-open boxes ``[K, 4]`` int64 of crops in frame coordinates; 0 where empty."""
    if crop.numel() == 0:  # a chunk of empty rects
        return torch.zeros(crop.shape[0], 4, dtype=torch.long, device=crop.device)
    r, c = crop.view(torch.uint8).amax(2) > 0, crop.view(torch.uint8).amax(1) > 0  # (faster than any())
    big = torch.iinfo(torch.long).max
    y1, y2 = torch.where(r, rows, big).amin(1), torch.where(r, rows + 1, 0).amax(1)
    x1, x2 = torch.where(c, cols, big).amin(1), torch.where(c, cols + 1, 0).amax(1)
    box = torch.stack([x1, y1, x2, y2], 1)
    return torch.where(r.any(1)[:, None], box, 0)


def mask_boxes(masks: Tensor) -> Tensor:
    """Tight ``xyxy`` boxes (half-open: ``x2`` is one past the last column) of masks; 0 for empty ones."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4, device=masks.device)
    masks = masks if masks.dtype == torch.bool else masks != 0
    rows = masks.view(torch.uint8).amax(2) > 0  # (byte maxima: a vectorised pass each)
    cols = masks.view(torch.uint8).amax(1) > 0
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).amin(1)
    y2 = torch.where(rows, ar_h + 1, 0).amax(1)
    x1 = torch.where(cols, ar_w, w).amin(1)
    x2 = torch.where(cols, ar_w + 1, 0).amax(1)
    empty = ~rows.any(1)
    box = torch.stack([x1, y1, x2, y2], 1)
    return torch.where(empty[:, None], 0, box).float()


def _blur(alpha: Tensor, sigma: float, kernel_size: int | None) -> Tensor:
    """Separable Gaussian blur of ``[M, H, W]`` masks (reflect padding, as torchvision's)."""
    size = kernel_size if kernel_size is not None else 2 * math.ceil(3 * sigma) + 1
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, size, dtype=alpha.dtype, device=alpha.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    pad = size // 2
    img = TF.pad(alpha[:, None], [pad, pad, pad, pad], mode="reflect")
    img = TF.conv2d(img, k.view(1, 1, 1, size))
    img = TF.conv2d(img, k.view(1, 1, size, 1))
    return img[:, 0]
