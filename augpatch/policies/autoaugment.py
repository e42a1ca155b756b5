"""``DetectionAutoAugment``: Zoph et al.'s detection AutoAugment policies on whole batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode
from torchvision.tv_tensors import BoundingBoxFormat

import augpatch.functional as AF
from augpatch.functional._checks import (
    OVERLAPS,
    check_choice,
    check_image_sizes,
    check_images,
    check_points,
    compute_dtype,
    parse_boxes,
)
from augpatch.functional._fill import fill_tensor
from augpatch.policies._table import BBOX_ONLY_PROB_DIVISOR, OPS, check_policy
from augpatch.policies.functional import (
    box_pixel_rects,
    fill_rects,
    warp_in_boxes,
)
from augpatch.transforms._result import PatchResult
from augpatch.transforms._sampling import uniform01

__all__ = [
    "BoxProbability",
    "DetectionAutoAugment",
    "ScaleAwareBoxProb",
    "check_targets",
    "colour_channels",
    "scale_aware_box_prob",
]

#: ``box_prob(op_name, prob [M], boxes [M, 4]) -> [M]``: the coin probability of each box
#: for a box-only op whose sub-policy probability is ``prob`` (per box).
BoxProbability = Callable[[str, Tensor, Tensor], Tensor]

# a box thinner than this (pixels) is degenerate (as the transforms' keep)
_KEEP_EPS = 1e-3
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


def scale_aware_box_prob(
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    area_thresholds: Sequence[float] = (32.0**2, 96.0**2),
    divisor: float = BBOX_ONLY_PROB_DIVISOR,
) -> BoxProbability:
    """A ``box_prob`` hook that weights each box's probability by its area (SA-AutoAug).

    Scale-aware AutoAugment (Chen et al., CVPR 2021) gives small, medium and large
    objects different probabilities for the box-level ops. The returned hook gives a
    box of area ``a`` (pixels, after earlier ops) the probability
    ``clamp(prob / divisor * weights[bucket(a)], 0, 1)`` with COCO's buckets: small
    ``a < 32**2``, medium ``a < 96**2``, large otherwise.

    Args:
        weights: ``(small, medium, large)`` multipliers, non-negative.
        area_thresholds: the two bucket boundaries, in square pixels.
        divisor: the reference's ``prob / 3``.

    Example:
        >>> hook = scale_aware_box_prob((1.5, 1.0, 0.5))
        >>> hook("Rotate_Only_BBoxes", torch.tensor([0.6, 0.6]),
        ...      torch.tensor([[0.0, 0, 10, 10], [0, 0, 200, 200]]))
        tensor([0.3000, 0.1000])
    """
    return ScaleAwareBoxProb(weights, area_thresholds=area_thresholds, divisor=divisor)


class ScaleAwareBoxProb:
    """The picklable ``box_prob`` hook of :func:`scale_aware_box_prob` (SA-AutoAug).

    A module-level callable class (not a closure), so a ``DetectionAutoAugment`` holding
    it pickles, e.g. into ``DataLoader`` workers started with ``"spawn"``.

    Example:
        >>> import pickle
        >>> hook = pickle.loads(pickle.dumps(ScaleAwareBoxProb((2.0, 1.0, 1.0))))
        >>> hook("Rotate_Only_BBoxes", torch.tensor([0.3]), torch.tensor([[0.0, 0, 4, 4]]))
        tensor([0.2000])
    """

    def __init__(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        area_thresholds: Sequence[float] = (32.0**2, 96.0**2),
        divisor: float = BBOX_ONLY_PROB_DIVISOR,
    ) -> None:
        w = [float(v) for v in weights]
        t = [float(v) for v in area_thresholds]
        if len(w) != 3 or any(v < 0 for v in w):
            raise ValueError(f"weights must be 3 non-negative numbers (small, medium, large), got {w}")
        if len(t) != 2 or not 0 <= t[0] <= t[1]:
            raise ValueError(f"area_thresholds must be 2 increasing areas, got {t}")
        if not divisor > 0:
            raise ValueError(f"divisor must be positive, got {divisor}")
        self.weights, self.area_thresholds, self.divisor = tuple(w), tuple(t), float(divisor)

    def __call__(self, op: str, prob: Tensor, boxes: Tensor) -> Tensor:
        t = self.area_thresholds
        area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
        bucket = (area >= t[0]).long() + (area >= t[1]).long()
        weight = torch.tensor(self.weights, dtype=prob.dtype, device=prob.device)[bucket]
        return (prob / self.divisor * weight).clamp(0, 1)

    def __repr__(self) -> str:
        return (f"ScaleAwareBoxProb({self.weights}, area_thresholds={self.area_thresholds}, "
                f"divisor={self.divisor})")


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _mode(name: str, value: object, choices: Sequence[str]) -> str:
    enum_name = getattr(value, "name", None)
    if not isinstance(value, str) and isinstance(enum_name, str):
        value = enum_name
    return check_choice(name, value.lower() if isinstance(value, str) else value, choices)


class DetectionAutoAugment(nn.Module):
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
        for i, sub in enumerate(self.policy):
            for j, (op, prob, level) in enumerate(sub):
                spec = OPS[op]
                self._op_id[i, j] = names.index(op)
                self._prob[i, j] = prob
                self._arg[i, j] = spec.level_to_arg(level)
                self._signed[i, j] = spec.signed
                self._box_only[i, j] = spec.box_only

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
        # BBox_Cutout: a uniform object of the image
        counts = torch.bincount(o2i, minlength=batch)
        order = torch.sort(o2i, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        rank = (u_choice.double() * counts[:, None]).long()
        rank = torch.minimum(rank, (counts - 1).clamp(min=0)[:, None])
        chosen = torch.full((batch, k), -1, dtype=torch.long)
        if n:
            pick = order[(starts[:, None] + rank).clamp(max=n - 1)]
            chosen = torch.where(counts[:, None] > 0, pick, chosen)
        names = self._op_names
        is_bbox_cutout = torch.zeros_like(has)
        if "BBox_Cutout" in names:
            is_bbox_cutout = self._op_id[sub] == names.index("BBox_Cutout")
        chosen = torch.where(is_bbox_cutout & apply, chosen, -1)
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

    def _replay_parameters(self, params: Mapping[str, Any], patches: Tensor) -> dict[str, Tensor]:
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
        else:
            self._run_padded(state, rec, replay, sizes)
            state.boxes = AF.clip_boxes_to_images(state.boxes, o2i, sizes)

        final = state.boxes
        keep = (final[:, 2] - final[:, 0] > _KEEP_EPS) & (final[:, 3] - final[:, 1] > _KEEP_EPS)
        if masks is not None and n:  # an object whose mask was emptied is gone
            keep &= ~(masks.flatten(1).ne(0).any(1) & ~state.masks.flatten(1).ne(0).any(1))
        stored = {key: rec[key] for key in (*_IMAGE_KEYS, *_OBJECT_KEYS)}
        stored.update(obj_to_img=o2i, keep=keep)
        if images is not None:
            self._params = stored

        boxes_out, obj_out = final, o2i
        masks_out, kps_out = state.masks, state.keypoints
        if self.drop_invalid:
            boxes_out, obj_out = boxes_out[keep], o2i[keep]
            masks_out = masks_out[keep] if masks_out is not None else None
            kps_out = kps_out[keep] if kps_out is not None else None
        image_masks_out = state.image_masks
        if image_masks_out is not None and squeeze_image_masks:
            image_masks_out = image_masks_out[:, 0]
        boxes_ret: Tensor | list[Tensor] = boxes_out
        if as_list:
            boxes_ret = AF.boxes_to_list(boxes_out, obj_out, batch)
        return PatchResult(
            state.images,
            boxes_ret,
            masks=masks_out,
            image_masks=image_masks_out,
            keypoints=kps_out,
            keep=keep,
            obj_to_img=obj_out,
            params=stored,
        )

    def _run(self, state: _State, rec: dict[str, Tensor], replay: bool) -> None:
        """Apply the ops of every image's sub-policy, slot by slot, to ``state``."""
        device = state.boxes.device
        sub_cpu = rec["sub_policy"].cpu()
        apply_cpu = rec["apply"].cpu()
        mag_cpu = rec["magnitude"].cpu()
        op_of = self._op_id[sub_cpu]  # [B, K]
        for k in range(self.num_slots):
            ran = apply_cpu[:, k] & (op_of[:, k] >= 0)
            for op_id in torch.unique(op_of[ran, k]).tolist():
                name = self._op_names[op_id]
                chosen = ran & (op_of[:, k] == op_id)
                spec = OPS[name]
                if not replay:
                    self._resolve(rec, name, k, chosen, state.boxes, state.o2i, state.size)
                if spec.box_only:
                    self._box_op(state, name, k, chosen, rec)
                elif spec.kind == "cutout":
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
        if name == "Sharpness" and x.device.type == "cpu":
            # PyTorch's CPU depthwise convolution is several times faster on channels-last
            # batches (same result): the blur of adjust_sharpness is one
            x = x.contiguous(memory_format=torch.channels_last)
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

    def _resolve(
        self, rec: dict[str, Tensor], name: str, k: int, chosen: Tensor, boxes: Tensor,
        o2i: Tensor, size: tuple[int, int],
    ) -> None:
        """Decide, from the boxes as they are now, what op ``name`` of slot ``k`` draws.

        Box coins (through ``box_prob``) and the centres of the cutouts depend on the
        boxes when the op runs (an earlier op of the sub-policy may have moved them), so
        they are resolved from the uniform draws here, once per (slot, op), and recorded.
        """
        device = boxes.device
        if OPS[name].box_only:
            objs = torch.nonzero(chosen.to(device)[o2i]).flatten()
            if objs.numel() == 0:
                return
            sub = rec["sub_policy"][o2i[objs]]
            prob = self._prob.to(device)[sub, k]
            p = self._coin_probability(name, prob, boxes[objs])
            rec["box_apply"][objs, k] = rec["_u_box"][objs, k].double() < p
            if name == "Cutout_Only_BBoxes":
                fired = objs[rec["box_apply"][objs, k]]
                rect = box_pixel_rects(boxes[fired], size)
                rec["box_cutout_center"][fired, k] = _uniform_pixel(
                    rec["_u_box_center"][fired, k], rect
                )
            return
        idx = torch.nonzero(chosen).flatten().to(device)
        if name == "Cutout":  # a uniform pixel of the image
            height, width = size
            rect = torch.tensor([[0, 0, width, height]], device=device).expand(idx.numel(), 4)
            rec["cutout_center"][idx, k] = _uniform_pixel(rec["_u_center"][idx, k], rect)
        elif name == "BBox_Cutout":  # a uniform pixel of the chosen box
            obj = rec["bbox_cutout_object"][idx, k]
            idx, obj = idx[obj >= 0], obj[obj >= 0]
            rect = box_pixel_rects(boxes[obj], size)
            rec["cutout_center"][idx, k] = _uniform_pixel(rec["_u_center"][idx, k], rect)

    def _cutout(self, state: _State, name: str, k: int, chosen: Tensor, rec: dict[str, Tensor]) -> None:
        """``Cutout`` / ``BBox_Cutout`` of every chosen image at once."""
        device = state.images.device
        idx = torch.nonzero(chosen).flatten().to(device)
        center = rec["cutout_center"][idx, k]
        magnitude = rec["magnitude"][idx, k]
        if name == "Cutout":
            pad = magnitude.long()[:, None].expand(-1, 2)
        else:  # BBox_Cutout: half-sides are the fraction of the chosen box's size
            obj = rec["bbox_cutout_object"][idx, k]
            # an image without boxes has no object to cut (-1): it is left unchanged
            idx, center, magnitude, obj = idx[obj >= 0], center[obj >= 0], magnitude[obj >= 0], obj[obj >= 0]
            rect = box_pixel_rects(state.boxes[obj], state.size)
            pad = (magnitude[:, None] * (rect[:, 2:] - rect[:, :2]).double() / 2).long()
        valid = (center >= 0).all(-1)
        rects = torch.cat((center - pad, center + pad), -1)[valid]
        state.images = fill_rects(state.images, rects, idx[valid], state.fill, inplace=True)

    def _box_op(self, state: _State, name: str, k: int, chosen: Tensor, rec: dict[str, Tensor]) -> None:
        """A box-only op on every box of the chosen images whose coin fired (one pass)."""
        objs = torch.nonzero(chosen.to(state.o2i.device)[state.o2i]).flatten()
        fired = objs[rec["box_apply"][objs, k]]
        if fired.numel() == 0:
            return
        magnitude = rec["box_magnitude"][fired, k]
        height, width = state.size
        boxes, o2i = state.boxes[fired], state.o2i[fired]
        if OPS[name].kind == "box_geometric":
            self._box_warp(state, name, fired, magnitude)
        elif state.images is None:
            return
        elif name != "Cutout_Only_BBoxes":  # Equalize_ / Solarize_Only_BBoxes
            state.images = _on_colour_channels(state.images, lambda t: OPS[name].boxes_photometric(
                t, boxes, magnitude, o2i, self.overlap, inplace=t is state.images
            ))
        elif name == "Cutout_Only_BBoxes":  # a square about a pixel of the box, inside the box
            rect = box_pixel_rects(boxes, (height, width))
            center = rec["box_cutout_center"][fired, k]
            valid = (center >= 0).all(-1)
            pad = magnitude.long()[:, None]
            cut = torch.cat(
                (torch.maximum(center - pad, rect[:, :2]), torch.minimum(center + pad, rect[:, 2:])),
                -1,
            )[valid]
            state.images = fill_rects(state.images, cut, o2i[valid], state.fill, inplace=True)

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

    def _box_warp(self, state: _State, name: str, fired: Tensor, magnitude: Tensor) -> None:
        height, width = state.size
        patches = AF.clip_boxes(state.boxes[fired], (height, width))
        theta = OPS[name].box_theta(patches, magnitude, align_corners=self.align_corners)
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
            state.images = warp_in_boxes(
                state.images, patches, theta, o2i, fill=fill, padding_mode=padding,
                inplace=True, **common,
            )
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

    def extra_repr(self) -> str:
        policy = repr(self.policy_name) if self.policy_name else f"<{len(self.policy)} sub-policies>"
        return (
            f"policy={policy}, fill={self.fill}, padding_mode={self.padding_mode!r}, "
            f"interpolation={self.interpolation!r}, bbox_prob_divisor={self.bbox_prob_divisor}, "
            f"box_prob={'custom' if self.box_prob else None}, move_boxes={self.move_boxes}, "
            f"overlap={self.overlap!r}, drop_invalid={self.drop_invalid}"
        )


class _State:
    """What the ops of one call update: images (``None``: targets only), boxes, masks,
    keypoints; and the canvas size."""

    def __init__(
        self,
        *,
        images: Tensor | None,
        boxes: Tensor,
        o2i: Tensor,
        masks: Tensor | None,
        image_masks: Tensor | None,
        keypoints: Tensor | None,
        fill: Tensor | None,
        size: tuple[int, int],
        batch: int,
    ) -> None:
        self.images = images
        self.boxes = boxes
        self.o2i = o2i
        self.masks = masks
        self.image_masks = image_masks
        self.keypoints = keypoints
        self.fill = fill
        self.size = size
        self.batch = batch


def _warp_mask(mask: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Run a torchvision image warp (nearest) on a mask of any dtype, restoring its dtype.

    bool masks go through uint8, other integer types through float64 (exact to 2**53).
    """
    if mask.dtype == torch.bool:
        return fn(mask.to(torch.uint8)).bool()
    if mask.dtype in (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return fn(mask)
    return fn(mask.to(torch.float64)).round().to(mask.dtype)


def check_targets(
    masks: Tensor | None,
    image_masks: Tensor | None,
    keypoints: Tensor | None,
    n: int,
    batch: int,
    size: tuple[int, int],
) -> Tensor | None:
    """Validate the optional targets of a call; returns the checked keypoints (or ``None``)."""
    if masks is not None and (
        not isinstance(masks, Tensor) or masks.dim() != 3 or tuple(masks.shape) != (n, *size)
    ):
        raise ValueError(
            f"masks must be a tensor [N, H, W] = {[n, *size]}, "
            f"got {tuple(getattr(masks, 'shape', ()))}"
        )
    if image_masks is not None and not (
        isinstance(image_masks, Tensor)
        and image_masks.dim() in (3, 4)
        and tuple(image_masks.shape[-2:]) == size
        and image_masks.shape[0] == batch
    ):
        raise ValueError(
            f"image_masks must be a tensor [B, K, H, W] or [B, H, W] with B = {batch} and "
            f"(H, W) = {size}, got {tuple(getattr(image_masks, 'shape', ()))}"
        )
    return None if keypoints is None else check_points(keypoints, n, "keypoints",
                                                       one_per_object=True)


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


def _never_inverted(boxes: Tensor) -> Tensor:
    """``x2 >= x1`` and ``y2 >= y1`` (a degenerate box stays exactly degenerate)."""
    return torch.cat((boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2])), -1)


def _uniform_pixel(u: Tensor, rect: Tensor) -> Tensor:
    """``(x, y)`` pixel ``[M, 2]`` drawn by ``u [M, 2]`` uniformly in pixel rects ``[M, 4]``.

    ``(-1, -1)`` where a rect holds no pixel.
    """
    size = rect[:, 2:] - rect[:, :2]
    off = torch.minimum((u.double() * size).long(), (size - 1).clamp(min=0))
    return torch.where((size > 0).all(-1, keepdim=True), rect[:, :2] + off, -1)
