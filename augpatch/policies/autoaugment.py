"""``DetectionAutoAugment``: Zoph et al.'s detection AutoAugment policies on whole batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import augpatch.functional as AF
from augpatch.functional.checks import (
    OVERLAPS,
    check_choice,
    check_image_sizes,
    check_images,
    check_targets,
    compute_dtype,
    fill_tensor,
    parse_boxes,
)
from augpatch.policies._apply import (
    _IMAGE_KEYS,
    _OBJECT_KEYS,
    _check_value_range,
    _never_inverted,
    _PolicyOps,
    _State,
    colour_channels,
)
from augpatch.policies._box_prob import (
    BoxProbability,
    ScaleAwareBoxProb,
    scale_aware_box_prob,
)
from augpatch.policies._table import BBOX_ONLY_PROB_DIVISOR, OPS, check_policy
from augpatch.transforms import PatchResult
from augpatch.transforms.base import keep_mask, make_result

_PADDING = ("fill", "zeros", "border", "reflection", "image")
_INTERPOLATIONS = ("nearest", "bilinear")

__all__ = [
    "BoxProbability",
    "DetectionAutoAugment",
    "ScaleAwareBoxProb",
    "check_targets",
    "colour_channels",
    "scale_aware_box_prob",
]


def uniform01(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``U[0, 1)`` float32 draws on the generator's device (the global CPU RNG without
    one, so a seed gives the same draws whatever the images' device), moved to ``device``."""
    where = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=where, dtype=torch.float32).to(device)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _mode(name: str, value: object, choices: Sequence[str]) -> str:
    enum_name = getattr(value, "name", None)
    if not isinstance(value, str) and isinstance(enum_name, str):
        value = enum_name
    return check_choice(name, value.lower() if isinstance(value, str) else value, choices)


class DetectionAutoAugment(_PolicyOps, nn.Module):
    r"""The detection AutoAugment policies of Zoph et al. (2019) on a whole batch, any device.

    Each image draws one sub-policy uniformly; each op of the sub-policy fires with its
    probability and acts with its level, in order. Image-level ops go through
    ``torchvision.transforms.v2.functional`` on batched tensors, the images that share
    an op and a magnitude in one call (so the number of calls does not grow with the
    batch); the ``*_Only_BBoxes`` ops act inside every box at once, each box drawing its
    own coin with probability ``prob / 3`` (``box_prob``).

    Ops (the reference's names; arguments from the levels as in the reference, see
    :data:`augpatch.policies.OPS`):

    * colour, via torchvision: ``AutoContrast``, ``Equalize``, ``Posterize``,
      ``Solarize``, ``Color`` (saturation), ``Contrast``, ``Brightness``,
      ``Sharpness``; ``SolarizeAdd`` (no torchvision kernel; two tensor ops).
      ``Solarize`` / ``Solarize_Only_BBoxes`` invert the pixels at or above the
      threshold ``int(level / 10 * 256)``; at level 10 the threshold is 256 and no pixel
      changes (the reference compares ``image < 256`` in uint8, where 256 wraps to 0,
      and so inverts every pixel at level 10: augpatch keeps the mapping's intent).
      The colour ops act on the leading colour channels (:func:`colour_channels`: the
      first 3 when ``C >= 3``, else the first one); other channels (alpha, extra bands)
      are left unchanged.
      ``Contrast`` blends with the mean grey level as PIL and torchvision do (the
      reference's TF port uses ``pixel count / 256`` for that mean, a known slip).
    * ``Cutout`` (a square of half-side ``pad`` at a uniform pixel of the image) and
      ``BBox_Cutout`` (around a uniform pixel of one uniformly chosen box, half-sides
      ``fraction * box size / 2``), filled with ``fill``.
    * image and boxes together, via torchvision (``rotate`` / ``affine`` and their
      ``*_bounding_boxes``; boxes become the clipped envelope of their moved corners):
      ``Rotate_BBox`` (about the image centre, counter-clockwise positive),
      ``ShearX_BBox`` / ``ShearY_BBox`` (``x -> x - s y`` / ``y -> y - s x`` about the
      centre of pixel ``(0, 0)``, as the reference: equal to it except at exact ``.5``
      nearest ties), ``TranslateX_BBox`` / ``TranslateY_BBox``
      (content moves by ``-pixels``, as the reference). Empty areas get ``fill``.
      Objects moved out of the image get zero-size boxes and ``keep=False``.
    * inside each box (per-object parameters, one vectorised pass per op):
      ``Rotate_Only_BBoxes``, ``ShearX_Only_BBoxes``, ``ShearY_Only_BBoxes``,
      ``TranslateX_Only_BBoxes``, ``TranslateY_Only_BBoxes``, ``Flip_Only_BBoxes``
      (through :func:`augpatch.functional.warp_patches`, about each box's centre:
      the reference shears a box's crop about its top-left corner),
      ``Equalize_Only_BBoxes``, ``Solarize_Only_BBoxes``, ``Cutout_Only_BBoxes``. Each
      box draws its own sign where the reference negates the argument. As in the
      reference the boxes do not change (``move_boxes=True``: the geometric ones move
      each box too, to the envelope of its moved content).

    Targets follow their pixels: in every geometric op an object's mask (nearest, via
    :func:`augpatch.functional.warp_masks` for the box-only ops; torchvision's nearest
    warp, the images' own call, for the image-level ones), the image masks and the
    keypoints move exactly as the pixels, clipped where the pixels are (what leaves a
    box or the image is cut off), whatever ``move_boxes`` says about boxes. Cutouts
    (``Cutout``, ``BBox_Cutout``, ``Cutout_Only_BBoxes``) occlude: masks, keypoints and
    boxes stay as they are. With ``padding_mode="image"`` a box-only warp may bring a
    neighbour's pixels into a box; the neighbour's mask does not grow. An object whose
    mask (when ``masks`` are given) was non-empty and is emptied by the ops gets
    ``keep=False``, like an object whose box becomes degenerate.

    Args:
        policy: ``"v0"``, ``"v1"``, ``"v2"``, ``"v3"`` (:data:`POLICIES`) or a custom list
            of sub-policies, each a list of ``(op_name, probability, level)`` with the
            reference's op names, probabilities in ``[0, 1]`` and levels in ``[0, 10]``
            (checked here, with a clear error).
        fill: what fills the pixels an op empties (rotations, shears and shifts, the
            cutouts), in uint8 units whatever the images' dtype (a float image gets
            ``fill / 255``): a number or one value per channel. Default 128, the
            reference's grey.
        padding_mode: for the box-only geometric ops: ``"fill"`` (default: ``fill``),
            ``"zeros"``, ``"border"``, ``"reflection"`` (relative to the box) or
            ``"image"`` (the object's real surroundings come into the box). Image-level
            ops always use ``fill``.
        interpolation: ``"nearest"`` (default, as the reference) or ``"bilinear"``, for
            every geometric op.
        box_prob: a hook ``box_prob(op_name, prob [M], boxes [M, 4]) -> [M]`` giving the
            coin probability of each box for a box-only op (``prob`` is the op's
            probability in the image's sub-policy, ``boxes`` the boxes as they are
            then). Default ``prob / bbox_prob_divisor``. :func:`scale_aware_box_prob`
            makes the SA-AutoAug area weighting a one-liner.
        bbox_prob_divisor: the reference's ``_scale_bbox_only_op_probability`` divisor (3).
        move_boxes: the box-only geometric ops also map each box (the envelope of its
            moved content, clipped to the box). Default False: boxes stay, as in the
            reference. Masks, image masks and keypoints move with the pixels either way.
        overlap: order of overlapping boxes for the box-only ops, ``"sequential"``
            (index order, each reads the image as the earlier ones left it) or
            ``"parallel"``.
        align_corners: convention of the box-only warps (as ``warp_patches``).
        generator: a ``torch.Generator`` for reproducible draws (default: the global RNG).
        drop_invalid: remove objects whose final box is degenerate (``keep`` False) from
            the returned boxes, masks, keypoints and ``obj_to_img``.

    Call:
        ``aug(images, boxes, obj_to_img=None, *, masks=None, image_masks=None,
        keypoints=None, params=None, image_sizes=None) -> PatchResult`` with
        ``images [B, C, H, W]`` uint8 (0-255) or float with values in ``[0, 1]`` (checked:
        one min / max per call; a ``ValueError`` names ``images`` and the range found,
        for 0-255 floats or normalised tensors), any ``C``,
        ``boxes [N, 4]`` ``xyxy`` pixels (inverted ones become zero-width and
        ``keep=False``, as in the transforms; or a list of ``B``
        tensors), ``masks [N, H, W]``, ``image_masks [B, K, H, W]`` / ``[B, H, W]``,
        ``keypoints [N, K, 2]`` (augpatch's convention: pixel ``j`` centred at
        ``j + 0.5``). Returns images of the input dtype (float stays in ``[0, 1]``),
        float boxes, ``keep [N]`` and the rest as the other transforms.

    Padded batches: with ``image_sizes [B, 2]`` (``(H_b, W_b)``, as
    :func:`augpatch.data.collate_objects` records them) each image is only its own
    region ``images[b, :, :H_b, :W_b]``: every op acts on it alone (rotation about its
    centre, histograms of its pixels, shifts and cutout positions within it), nothing is
    read from the padding and the padding is returned unchanged; boxes are clipped to
    their image and objects that leave it get ``keep=False``. That path runs the images
    one by one; without ``image_sizes`` (or when no image is padded) every image is the
    whole canvas and the batched path runs.

    Parameters (``aug._params``, replay with ``params=``; ``K`` = most ops in a
    sub-policy): ``sub_policy [B]``, ``apply [B, K]`` (the op ran; box-only ops always
    run, their coins are ``box_apply``), ``magnitude [B, K]`` (the op's signed argument),
    ``cutout_center [B, K, 2]`` (``(x, y)`` pixel of a cutout, -1 if none),
    ``bbox_cutout_object [B, K]`` (the box of ``BBox_Cutout``, -1 if none),
    ``box_apply [N, K]``, ``box_magnitude [N, K]``, ``box_cutout_center [N, K, 2]``,
    ``obj_to_img [N]``, ``keep [N]``. Replay is bit-identical.

    Example:
        >>> aug = DetectionAutoAugment("v1", generator=torch.Generator().manual_seed(0))
        >>> images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
        >>> boxes = torch.tensor([[4.0, 4.0, 30.0, 40.0], [10.0, 20.0, 60.0, 50.0]])
        >>> out = aug(images, boxes, torch.tensor([0, 1]))
        >>> out.images.dtype, out.boxes.shape, out.keep.shape
        (torch.uint8, torch.Size([2, 4]), torch.Size([2]))
        >>> torch.equal(aug(images, boxes, torch.tensor([0, 1]), params=aug._params).images,
        ...             out.images)
        True
    """

    def __init__(
        self,
        policy: str | Sequence[Sequence[tuple[str, float, float]]] = "v0",
        *,
        fill: float | Sequence[float] = 128.0,
        padding_mode: str = "fill",
        interpolation: str = "nearest",
        box_prob: BoxProbability | None = None,
        bbox_prob_divisor: float = BBOX_ONLY_PROB_DIVISOR,
        move_boxes: bool = False,
        overlap: str = "sequential",
        align_corners: bool = False,
        generator: torch.Generator | None = None,
        drop_invalid: bool = False,
    ) -> None:
        super().__init__()
        self.policy_name = policy if isinstance(policy, str) else None
        self.policy = check_policy(policy)
        if isinstance(fill, bool):
            raise TypeError("fill must be a number or one number per channel, got bool")
        fill_tensor(fill, 1 if not isinstance(fill, Sequence) else len(fill))  # validates
        self.fill = fill if not isinstance(fill, Sequence) else tuple(float(v) for v in fill)
        self.padding_mode = _mode("padding_mode", padding_mode, _PADDING)
        self.interpolation = _mode("interpolation", interpolation, _INTERPOLATIONS)
        if box_prob is not None and not callable(box_prob):
            raise TypeError(f"box_prob must be callable or None, got {type(box_prob).__name__}")
        self.box_prob = box_prob
        if isinstance(bbox_prob_divisor, bool) or not float(bbox_prob_divisor) > 0:
            raise ValueError(f"bbox_prob_divisor must be a positive number, got {bbox_prob_divisor}")
        self.bbox_prob_divisor = float(bbox_prob_divisor)
        self.move_boxes = _check_bool("move_boxes", move_boxes)
        self.overlap = _mode("overlap", overlap, OVERLAPS)
        self.align_corners = _check_bool("align_corners", align_corners)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        self.generator = generator
        self.drop_invalid = _check_bool("drop_invalid", drop_invalid)
        self._params: dict[str, Tensor] | None = None

        # the policy as tables [S, K]
        names = sorted({op for sub in self.policy for op, _, _ in sub})
        self._op_names = names
        s, k = len(self.policy), max(len(sub) for sub in self.policy)
        self._op_id = torch.full((s, k), -1, dtype=torch.long)
        self._prob = torch.zeros(s, k, dtype=torch.float64)
        self._arg = torch.zeros(s, k, dtype=torch.float64)
        self._signed = torch.zeros(s, k, dtype=torch.bool)
        self._box_only = torch.zeros(s, k, dtype=torch.bool)
        # BBox_Cutout-like ops draw one box of the image (OpSpec.cutout == "chosen_box")
        self._picks_box = torch.zeros(s, k, dtype=torch.bool)
        # by op id: box-only, and cutout inside each box (Cutout_Only_BBoxes)
        self._box_only_ids = torch.tensor([OPS[op].box_only for op in names])
        self._box_cutout_ids = torch.tensor([OPS[op].cutout == "box" for op in names])
        for i, sub in enumerate(self.policy):
            for j, (op, prob, level) in enumerate(sub):
                spec = OPS[op]
                self._op_id[i, j] = names.index(op)
                self._prob[i, j] = prob
                self._arg[i, j] = spec.level_to_arg(level)
                self._signed[i, j] = spec.signed
                self._box_only[i, j] = spec.box_only
                self._picks_box[i, j] = spec.cutout == "chosen_box"

    @property
    def num_slots(self) -> int:
        """``K``: the largest number of ops in a sub-policy."""
        return int(self._op_id.shape[1])

    # ------------------------------------------------------------------ parameters

    def _sample(self, batch: int, obj_to_img: Tensor, device: torch.device) -> dict[str, Tensor]:
        """Draw everything a call needs (fixed order), resolving what needs no image state."""
        s, k = self._op_id.shape
        n = obj_to_img.shape[0]
        g = self.generator
        cpu = torch.device("cpu")
        u_sub = uniform01((batch,), g, cpu)
        u_apply = uniform01((batch, k), g, cpu)
        u_sign = uniform01((batch, k), g, cpu)
        u_box = uniform01((n, k), g, cpu)
        u_box_sign = uniform01((n, k), g, cpu)
        u_center = uniform01((batch, k, 2), g, cpu)
        u_choice = uniform01((batch, k), g, cpu)
        u_box_center = uniform01((n, k, 2), g, cpu)

        sub = (u_sub.double() * s).long().clamp(max=s - 1)
        has = self._op_id[sub] >= 0
        # box-only ops always run; their probability is each box's coin (the reference)
        apply = has & ((u_apply.double() < self._prob[sub]) | self._box_only[sub])
        # the reference keeps the sign where floor(u + 0.5) is 1, i.e. u >= 0.5
        sign = torch.where(self._signed[sub] & (u_sign < 0.5), -1.0, 1.0).double()
        magnitude = torch.where(has, self._arg[sub] * sign, 0.0)
        o2i = obj_to_img.cpu()
        box_sub = sub[o2i]
        box_sign = torch.where(self._signed[box_sub] & (u_box_sign < 0.5), -1.0, 1.0).double()
        box_has = self._box_only[box_sub]
        box_magnitude = torch.where(box_has, self._arg[box_sub] * box_sign, 0.0)
        # BBox_Cutout (OpSpec.cutout "chosen_box"): a uniform object of the image
        counts = torch.bincount(o2i, minlength=batch)
        order = torch.sort(o2i, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        rank = (u_choice.double() * counts[:, None]).long()
        rank = torch.minimum(rank, (counts - 1).clamp(min=0)[:, None])
        chosen = torch.full((batch, k), -1, dtype=torch.long)
        if n:
            pick = order[(starts[:, None] + rank).clamp(max=n - 1)]
            chosen = torch.where(counts[:, None] > 0, pick, chosen)
        chosen = torch.where(self._picks_box[sub] & apply, chosen, -1)
        out = {
            "sub_policy": sub,
            "apply": apply,
            "magnitude": magnitude,
            "cutout_center": torch.full((batch, k, 2), -1, dtype=torch.long),
            "bbox_cutout_object": chosen,
            "box_apply": torch.zeros(n, k, dtype=torch.bool),
            "box_magnitude": box_magnitude,
            "box_cutout_center": torch.full((n, k, 2), -1, dtype=torch.long),
        }
        out = {key: v.to(device) for key, v in out.items()}
        out["_u_box"] = u_box.to(device)
        out["_u_center"] = u_center.to(device)
        out["_u_box_center"] = u_box_center.to(device)
        return out

    def _check_params(
        self, params: Mapping[str, Any], batch: int, n: int, device: torch.device
    ) -> dict[str, Tensor]:
        k = self.num_slots
        shapes = {
            "sub_policy": (batch,),
            "apply": (batch, k),
            "magnitude": (batch, k),
            "cutout_center": (batch, k, 2),
            "bbox_cutout_object": (batch, k),
            "box_apply": (n, k),
            "box_magnitude": (n, k),
            "box_cutout_center": (n, k, 2),
        }
        out = {}
        for key, shape in shapes.items():
            if key not in params:
                raise ValueError(f"params lacks {key!r}: pass the parameters of a call (aug._params)")
            v = params[key]
            if not isinstance(v, Tensor) or tuple(v.shape) != shape:
                raise ValueError(
                    f"params[{key!r}] must be a tensor of shape {list(shape)} for this call "
                    f"(B = {batch}, N = {n}, K = {k}), got "
                    f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}"
                )
            out[key] = v.to(device)
        sub = out["sub_policy"]
        if sub.numel() and (int(sub.min()) < 0 or int(sub.max()) >= self._op_id.shape[0]):
            raise ValueError("params['sub_policy'] holds indices outside this policy")
        return out

    def forward_parameters(
        self,
        batch_shape: Sequence[int],
        boxes: Tensor | Sequence[Tensor],
        obj_to_img: Tensor | None = None,
        *,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> dict[str, Tensor]:
        """Sample the parameters of a call without applying them (Kornia style).

        Box coins (``box_prob`` sees the boxes), cutout centres and the ``BBox_Cutout``
        boxes are decided with the given boxes, i.e. as if no earlier op of a
        sub-policy moved them (a call decides them with the boxes as they are when the
        op runs). ``aug(images, boxes, obj_to_img, params=aug.forward_parameters(...))``
        applies exactly these parameters.

        Args:
            batch_shape: ``(B, C, H, W)`` (``images.shape``).
            boxes: ``[N, 4]`` or a list of ``B`` tensors; obj_to_img: ``[N]``.

        Returns:
            The parameter dict without ``keep`` (see the class docstring).

        Example:
            >>> aug = DetectionAutoAugment("v1", generator=torch.Generator().manual_seed(0))
            >>> p = aug.forward_parameters((4, 3, 32, 32), torch.zeros(0, 4), torch.zeros(0).long())
            >>> p["sub_policy"].shape, p["apply"].shape
            (torch.Size([4]), torch.Size([4, 2]))
        """
        result = self._call(batch_shape, None, boxes, obj_to_img, None, None, None, None,
                            image_sizes)
        return result.params

    def apply_to_targets(
        self,
        batch_shape: Sequence[int],
        boxes: Tensor | Sequence[Tensor],
        obj_to_img: Tensor | None = None,
        *,
        params: Mapping[str, Any],
        masks: Tensor | None = None,
        image_masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> PatchResult:
        """Apply a call's parameters to boxes, masks and keypoints only (no images).

        What ``aug(images, boxes, ..., params=params)`` returns besides the images, for
        pipelines that transform each input on its own (torchvision's v2 adapter).

        Returns:
            :class:`PatchResult` with ``images=None``.

        Example:
            >>> aug = DetectionAutoAugment([[("TranslateX_BBox", 1.0, 1)]])
            >>> boxes = torch.tensor([[30.0, 10.0, 50.0, 30.0]])
            >>> p = aug.forward_parameters((1, 3, 100, 100), boxes)
            >>> moved = aug.apply_to_targets((1, 3, 100, 100), boxes, params=p).boxes
            >>> abs(float(moved[0, 0] - 30.0))  # 25 px to the left or to the right
            25.0
        """
        return self._call(batch_shape, None, boxes, obj_to_img, masks, image_masks, keypoints,
                          params, image_sizes)

    @staticmethod
    def _flatten(
        boxes: Tensor | Sequence[Tensor], obj_to_img: Tensor | None, batch: int
    ) -> tuple[Tensor, Tensor, bool]:
        boxes, o2i, as_list = parse_boxes(boxes, obj_to_img, batch)
        if o2i is None:
            o2i = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
        return boxes, o2i, as_list

    def replay_parameters(self, params: Mapping[str, Any], patches: Tensor) -> dict[str, Tensor]:
        """Validated replay parameters for the objects ``patches [N, 4]`` (the adapter's hook)."""
        sub = params.get("sub_policy")
        if not isinstance(sub, Tensor):
            raise ValueError("params lacks 'sub_policy': pass the parameters of a call")
        return self._check_params(params, sub.shape[0], patches.shape[0], patches.device)

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        images: Tensor,
        boxes: Tensor | Sequence[Tensor],
        obj_to_img: Tensor | None = None,
        *,
        masks: Tensor | None = None,
        image_masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        params: Mapping[str, Any] | None = None,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> PatchResult:
        """Apply the policy to a batch; see the class docstring.

        Example (a padded batch: image 1 is 20 x 24 on the 32 x 32 canvas):
            >>> aug = DetectionAutoAugment([[("Rotate_BBox", 1.0, 10)]])
            >>> images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
            >>> images[1, :, 20:] = images[1, :, :, 24:] = 255  # the padding
            >>> out = aug(images, torch.tensor([[2.0, 2, 30, 30], [2, 2, 22, 18]]),
            ...           torch.tensor([0, 1]), image_sizes=[(32, 32), (20, 24)])
            >>> bool((out.images[1, :, 20:] == 255).all() and (out.images[1, :, :, 24:] == 255).all())
            True
            >>> bool((out.boxes[1, 2:] <= torch.tensor([24.0, 20.0])).all())
            True
        """
        images = _check_value_range(check_images(images))
        return self._call(images.shape, images, boxes, obj_to_img, masks, image_masks, keypoints,
                          params, image_sizes)

    def _call(
        self,
        batch_shape: Sequence[int],
        images: Tensor | None,
        boxes: Tensor | Sequence[Tensor],
        obj_to_img: Tensor | None,
        masks: Tensor | None,
        image_masks: Tensor | None,
        keypoints: Tensor | None,
        params: Mapping[str, Any] | None,
        image_sizes: Tensor | Sequence[Sequence[int]] | None = None,
    ) -> PatchResult:
        """Sample (or replay) and apply: to ``images`` if given, else to the targets only."""
        batch, channels, height, width = (int(v) for v in batch_shape)
        boxes, o2i, as_list = self._flatten(boxes, obj_to_img, batch)
        sizes = check_image_sizes(image_sizes, batch, (height, width))
        device = images.device if images is not None else boxes.device
        boxes, o2i = _never_inverted(boxes.to(device)), o2i.to(device)
        n = boxes.shape[0]
        keypoints = check_targets(masks, image_masks, keypoints, n, batch, (height, width))
        squeeze_image_masks = image_masks is not None and image_masks.dim() == 3
        if squeeze_image_masks:
            image_masks = image_masks[:, None]
        dtype = compute_dtype(boxes, images)
        fill = None  # what emptied pixels get (images' units); nothing to fill without images
        if images is not None:
            fill = fill_tensor(self.fill, channels)
            fill = fill if images.dtype == torch.uint8 else fill / 255

        if params is None:
            rec = self._sample(batch, o2i, device)
            replay = False
        else:
            rec = self._check_params(params, batch, n, device)
            replay = True

        state = _State(
            images=None if images is None else images.clone(),
            boxes=boxes.to(dtype).clone(),
            o2i=o2i,
            masks=masks,
            image_masks=image_masks,
            keypoints=None if keypoints is None else keypoints.to(dtype).clone(),
            fill=fill,
            size=(height, width),
            batch=batch,
        )
        if sizes is None:
            self._run(state, rec, replay)
            # every box inside the canvas, as in a padded batch (a box given across the
            # border, left there by the ops that keep boxes, is clipped)
            state.boxes = AF.clip_boxes(state.boxes, (height, width))
        else:
            self._run_padded(state, rec, replay, sizes)
            state.boxes = AF.clip_boxes_to_images(state.boxes, o2i, sizes)

        final = state.boxes
        keep = keep_mask(final)
        if masks is not None and n:  # an object whose mask was emptied is gone
            keep &= ~(masks.flatten(1).ne(0).any(1) & ~state.masks.flatten(1).ne(0).any(1))
        stored = {key: rec[key] for key in (*_IMAGE_KEYS, *_OBJECT_KEYS)}
        stored.update(obj_to_img=o2i, keep=keep)
        if images is not None:
            self._params = stored

        return self._result(state, keep, stored, squeeze_image_masks, as_list)

    def _result(
        self, state: _State, keep: Tensor, stored: dict[str, Tensor], squeeze_image_masks: bool,
        as_list: bool,
    ) -> PatchResult:
        """The call's :class:`PatchResult` (``drop_invalid`` applied, inputs' layouts kept):
        built by :func:`augpatch.transforms.base.make_result`, as every transform's."""
        image_masks_out = state.image_masks
        if image_masks_out is not None and squeeze_image_masks:
            image_masks_out = image_masks_out[:, 0]
        return make_result(state.images, state.boxes, state.o2i, keep,
                           drop_invalid=self.drop_invalid,
                           list_batch=state.batch if as_list else None, masks=state.masks,
                           image_masks=image_masks_out, keypoints=state.keypoints, params=stored)

    def extra_repr(self) -> str:
        policy = repr(self.policy_name) if self.policy_name else f"<{len(self.policy)} sub-policies>"
        return (
            f"policy={policy}, fill={self.fill}, padding_mode={self.padding_mode!r}, "
            f"interpolation={self.interpolation!r}, bbox_prob_divisor={self.bbox_prob_divisor}, "
            f"box_prob={'custom' if self.box_prob else None}, move_boxes={self.move_boxes}, "
            f"overlap={self.overlap!r}, drop_invalid={self.drop_invalid}"
        )
