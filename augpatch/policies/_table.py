"""The ops, level mappings and named policies of Zoph et al.'s detection AutoAugment.

Everything here is transcribed from the reference implementation,
``tensorflow/tpu`` ``models/official/detection/utils/autoaugment_utils.py``
(checked row by row against commit ``139e1f4855e9bfed3075c960ee7ca6c5f608bcd3``):
``policy_v0`` .. ``policy_v3``, ``level_to_arg`` and the hyper-parameters of
``distort_image_with_autoaugment`` (``cutout_const=100``, ``translate_const=250``,
``cutout_bbox_const=50``, ``translate_bbox_const=120``,
``cutout_max_pad_fraction=0.75``, ``cutout_bbox_replace_with_mean=False``, fill
``replace=[128, 128, 128]``) and ``_scale_bbox_only_op_probability`` (``prob / 3``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

import augpatch.functional as AF
from augpatch.functional.checks import check_boxes, host_arithmetic
from augpatch.policies._box_kernels import equalize_boxes, solarize_add, solarize_boxes

__all__ = [
    "BBOX_ONLY_PROB_DIVISOR",
    "box_theta_of_ops",
    "MAX_LEVEL",
    "OPS",
    "POLICIES",
    "OpSpec",
    "check_policy",
    "level_to_arg",
]

#: The largest level (``_MAX_LEVEL`` of the reference).
MAX_LEVEL = 10.0

#: The reference divides the probability of every ``*_Only_BBoxes`` op by this
#: (``_scale_bbox_only_op_probability``): each box draws its own coin with ``prob / 3``.
BBOX_ONLY_PROB_DIVISOR = 3.0

# the reference's hyper-parameters (distort_image_with_autoaugment)
_CUTOUT_CONST = 100  # Cutout: pad size of the square (half its side), pixels
_TRANSLATE_CONST = 250  # TranslateX/Y_BBox: pixels
_CUTOUT_BBOX_CONST = 50  # Cutout_Only_BBoxes: pad size, pixels
_TRANSLATE_BBOX_CONST = 120  # TranslateX/Y_Only_BBoxes: pixels
_CUTOUT_MAX_PAD_FRACTION = 0.75  # BBox_Cutout: pad as a fraction of the box size


def _enhance(level: float) -> float:  # _enhance_level_to_arg
    return (level / MAX_LEVEL) * 1.8 + 0.1


def _scaled(const: float) -> Callable[[float], float]:  # (level / _MAX_LEVEL) * const
    return lambda level: (level / MAX_LEVEL) * float(const)


def _scaled_int(const: float) -> Callable[[float], float]:  # int((level / _MAX_LEVEL) * const)
    return lambda level: float(int((level / MAX_LEVEL) * const))


def _none(level: float) -> float:
    return 0.0


# ----------------------------------------------------------------- what each op does


def _unit(x: Tensor) -> float:
    """One reference unit (uint8 level) in the images' units."""
    return 1.0 if x.dtype == torch.uint8 else 1.0 / 255


def _colour(name: str, x: Tensor, value: float) -> Tensor:
    """Image-level colour op on ``x [B, 1 or 3, H, W]`` (thresholds in uint8 levels)."""
    if name == "Solarize":  # threshold 256 (level 10): no pixel is at or above it
        return x if value > 255 else TF.solarize(x, value * _unit(x))
    if name == "SolarizeAdd":
        return solarize_add(x, value * _unit(x), 128 * _unit(x))
    if name == "Posterize":
        return TF.posterize(x, int(value))
    if name in ("AutoContrast", "Equalize"):
        return getattr(TF, name.lower())(x)
    if name == "Sharpness" and x.device.type == "cpu":
        # PyTorch's CPU depthwise convolution is several times faster on channels-last
        # batches (same result): the blur of adjust_sharpness is one
        x = x.contiguous(memory_format=torch.channels_last)
    adjust = {"Color": TF.adjust_saturation, "Contrast": TF.adjust_contrast,
              "Brightness": TF.adjust_brightness, "Sharpness": TF.adjust_sharpness}[name]
    return adjust(x, value)


def _affine(name: str, value: float) -> tuple[str, dict[str, Any]]:
    """Image-level geometric op: the torchvision kernel (``"rotate"`` / ``"affine"``) and
    its keyword arguments (content moves by ``-pixels``; shears about the centre of pixel
    ``(0, 0)``, as the reference's projective transform in index coordinates)."""
    if name == "Rotate_BBox":
        return "rotate", {"angle": value}
    deg = math.degrees(math.atan(value))
    shear = {"ShearX_BBox": [deg, 0.0], "ShearY_BBox": [0.0, deg]}.get(name, [0.0, 0.0])
    shift = {"TranslateX_BBox": [-value, 0.0], "TranslateY_BBox": [0.0, -value]}.get(
        name, [0.0, 0.0])
    return "affine", {"angle": 0.0, "translate": shift, "scale": 1.0, "shear": shear,
                      "center": [0.5, 0.5]}


def _box_affine(name: str, m: Tensor) -> dict[str, Tensor]:
    """Box-only geometric op: its ``patch_affine_matrix`` arguments for magnitudes ``m [N]``."""
    zero = torch.zeros_like(m)
    if name == "Rotate_Only_BBoxes":
        return {"angle": m}
    if name.startswith("Shear"):
        deg = torch.rad2deg(torch.atan(m))  # torchvision F.affine shear: x -> x - tan(shx) y
        return {"shear": torch.stack((deg, zero) if name.startswith("ShearX") else (zero, deg), -1)}
    if name.startswith("Translate"):
        return {"translate": torch.stack((-m, zero) if name.startswith("TranslateX") else (zero, -m),
                                         -1)}
    # Flip_Only_BBoxes
    return {"scale": torch.stack((torch.full_like(m, -1.0), torch.ones_like(m)), -1)}


# patch_affine_matrix's arguments and their identity values (rows of ops that lack one)
_IDENTITY = {"angle": (0.0,), "shear": (0.0, 0.0), "translate": (0.0, 0.0), "scale": (1.0, 1.0)}


def box_theta_of_ops(
    names: Sequence[str], counts: Sequence[int], patches: Tensor, magnitude: Tensor,
    align_corners: bool = False,
) -> Tensor:
    """``theta [N, 2, 3]`` of several box-only geometric ops in one ``patch_affine_matrix`` call.

    The first ``counts[0]`` rows of ``patches [N, 4]`` / ``magnitude [N]`` are op
    ``names[0]``'s boxes, the next ``counts[1]`` op ``names[1]``'s, and so on. Each op
    gives its arguments (:meth:`OpSpec.box_affine`); the rows of the others get the
    identity value of that argument (angle 0, shear 0, no shift, scale 1), which changes
    no bit of a row's ``theta``: equal to each op's own :meth:`OpSpec.box_theta` (tested).

    Example:
        >>> patches = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 10.0]])
        >>> both = box_theta_of_ops(["Rotate_Only_BBoxes", "Flip_Only_BBoxes"], [1, 1], patches,
        ...                         torch.tensor([30.0, 0.0]))
        >>> torch.equal(both[1:], OPS["Flip_Only_BBoxes"].box_theta(patches[1:], torch.zeros(1)))
        True
    """
    m = magnitude.to(patches.dtype)
    parts = [OPS[name].box_affine(chunk)
             for name, chunk in zip(names, torch.split(m, list(counts)), strict=True)]
    used = {key for part in parts for key in part}
    kw: dict[str, Any] = {}
    for key in _IDENTITY:
        if key in used:
            identity = torch.tensor(_IDENTITY[key], dtype=m.dtype, device=m.device)
            if key == "angle":
                identity = identity[0]
            kw[key] = torch.cat([part[key] if key in part else identity.expand(n, *identity.shape)
                                 for part, n in zip(parts, counts, strict=True)])
    if host_arithmetic(patches, m, *kw.values()):
        return _box_theta_host(check_boxes(patches), kw, align_corners)
    return AF.patch_affine_matrix(patches, **kw, align_corners=align_corners)


def _box_theta_host(patches: Tensor, kw: dict[str, Tensor], align_corners: bool) -> Tensor:
    """``patch_affine_matrix(patches, **kw)`` for the box-only ops' own parameters without
    gradient on the CPU, in NumPy (:func:`augpatch.functional.host.patch_affine_theta`:
    the same operations, bit for bit up to the sign of a zero): a policy's box-only pass
    builds its theta in tens of microseconds instead of the general function's
    millisecond. Torch's own ``cos`` / ``sin`` / ``tan`` (the same bits); an argument no op
    of the pass uses is its identity (cos 1, sin 0, tan 0, scale 1, no shift), which
    changes no bit of ``theta`` (tested)."""
    import numpy as np

    from augpatch.functional.host import patch_affine_theta

    n, np_dtype = patches.shape[0], patches.numpy().dtype
    if "angle" in kw:
        radians = torch.deg2rad(kw["angle"])
        cos, sin = torch.cos(radians).numpy(), torch.sin(radians).numpy()
    else:
        cos, sin = np.ones(n, np_dtype), np.zeros(n, np_dtype)
    tan_shear = (torch.tan(torch.deg2rad(kw["shear"])).numpy() if "shear" in kw
                 else np.zeros((n, 2), np_dtype))
    scale = kw["scale"].numpy() if "scale" in kw else np.ones((n, 2), np_dtype)
    translate = kw["translate"].numpy() if "translate" in kw else np.zeros((n, 2), np_dtype)
    return torch.from_numpy(patch_affine_theta(patches.numpy(), cos, sin, tan_shear, scale, translate,
                                               align_corners))


def _box_photometric(name: str, images: Tensor, boxes: Tensor, value: Tensor, o2i: Tensor,
                     overlap: str, inplace: bool) -> Tensor:
    """Box-only photometric op on every given box at once (``value [M]``, uint8 levels)."""
    if name == "Equalize_Only_BBoxes":
        return equalize_boxes(images, boxes, o2i, overlap=overlap, inplace=inplace)
    return solarize_boxes(images, boxes, value * _unit(images), o2i, overlap=overlap,
                          inplace=inplace)


def _crop(name: str, crop: Tensor, value: float, fill: list[float], mode: Any) -> Tensor:
    """The reference's box-only op on one box crop ``[1, C, h, w]`` (the loop's baseline).

    Geometric ops about the crop's centre, ``fill`` outside the crop."""
    h, w = crop.shape[-2:]
    if name == "Rotate_Only_BBoxes":
        return TF.rotate(crop, value, interpolation=mode, fill=fill)
    if name == "Flip_Only_BBoxes":
        return TF.horizontal_flip(crop)
    if name in ("Equalize_Only_BBoxes", "Solarize_Only_BBoxes"):
        return _colour(name.split("_")[0], crop, value)
    deg = math.degrees(math.atan(value))
    kw = {"ShearX_Only_BBoxes": {"shear": [deg, 0.0], "center": [w / 2, h / 2]},
          "ShearY_Only_BBoxes": {"shear": [0.0, deg], "center": [w / 2, h / 2]},
          "TranslateX_Only_BBoxes": {"translate": [-value, 0.0]},
          "TranslateY_Only_BBoxes": {"translate": [0.0, -value]}}[name]
    base: dict[str, Any] = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0,
                            "shear": [0.0, 0.0]}
    return TF.affine(crop, interpolation=mode, fill=fill, **{**base, **kw})


def _cutout_rects(name: str, center: Tensor, magnitude: Tensor, region: Tensor) -> Tensor:
    """A cutout's filled pixel rects ``[M, 4]``: squares about ``center [M, 2]`` (``(x, y)``).

    ``magnitude [M]``: the op's argument; ``region [M, 4]``: the pixel rect the centre
    was drawn in (the image, the chosen box, or the box itself)."""
    if name == "BBox_Cutout":  # half-sides are the fraction of the chosen box's size
        pad = (magnitude[:, None] * (region[:, 2:] - region[:, :2]).double() / 2).long()
    else:
        pad = magnitude.long()[:, None].expand(-1, 2)
    lo, hi = center - pad, center + pad
    if name == "Cutout_Only_BBoxes":  # a square about a pixel of the box, inside the box
        lo, hi = torch.maximum(lo, region[:, :2]), torch.minimum(hi, region[:, 2:])
    return torch.cat((lo, hi), -1)


#: Where each cutout draws its centre (``OpSpec.cutout``): a uniform pixel of the image,
#: of one box of the image drawn uniformly, or of each box whose coin fired.
_CUTOUT_REGIONS = {"Cutout": "image", "BBox_Cutout": "chosen_box", "Cutout_Only_BBoxes": "box"}


@dataclass(frozen=True)
class OpSpec:
    """One op of the policies.

    Attributes:
        name: the reference's op name.
        kind: ``"color"`` (image-level, pixels only), ``"image_geometric"`` (image and
            boxes move together), ``"cutout"`` (image-level, pixels only),
            ``"box_geometric"`` or ``"box_photometric"`` (``*_Only_BBoxes``: inside each
            box, with a coin per box).
        level_to_arg: the reference's mapping of a level ``0..10`` to the op's argument
            (its magnitude; the sign is drawn separately where ``signed``).
        signed: the reference negates the argument with probability 1/2
            (``_randomly_negate_tensor``).
        arg: what the argument is, in the reference's units.

    What the op does (the one place each op is defined; ``None`` where it does not apply):
    :meth:`image` (colour ops), :meth:`affine` (image-level geometric ops),
    :meth:`box_affine` / :meth:`box_theta` (box-only geometric ops),
    :meth:`boxes_photometric` (box-only photometric ops with a kernel: equalize,
    solarize), :attr:`cutout` / :meth:`cutout_rects` (the three cutouts: where the
    centre is drawn, which pixels are filled), :meth:`crop` (the reference's per-box op
    on one crop, the loop baseline of :mod:`augpatch.testing.policy_loop`).
    """

    name: str
    kind: str
    level_to_arg: Callable[[float], float]
    signed: bool
    arg: str

    @property
    def box_only(self) -> bool:
        return self.kind.startswith("box_")

    @property
    def cutout(self) -> str | None:
        """The region a cutout draws its centre in, ``"image"`` (``Cutout``), ``"chosen_box"``
        (one box of the image drawn uniformly, ``BBox_Cutout``) or ``"box"`` (each box whose
        coin fired, ``Cutout_Only_BBoxes``); ``None`` for the other ops."""
        return _CUTOUT_REGIONS.get(self.name)

    def image(self, x: Tensor, value: float) -> Tensor:
        """Colour op on ``x [B, 1 or 3, H, W]`` with argument ``value`` (uint8 levels)."""
        self._need("color")
        return _colour(self.name, x, value)

    def affine(self, value: float) -> tuple[str, dict[str, Any]]:
        """Image-level geometric op: ``(torchvision kernel name, its keyword arguments)``."""
        self._need("image_geometric")
        return _affine(self.name, value)

    def box_affine(self, magnitude: Tensor) -> dict[str, Tensor]:
        """Box-only geometric op: its :func:`augpatch.functional.patch_affine_matrix`
        arguments (``angle`` / ``shear`` / ``translate`` / ``scale``) for ``magnitude [N]``."""
        self._need("box_geometric")
        return _box_affine(self.name, magnitude)

    def box_theta(self, patches: Tensor, magnitude: Tensor, align_corners: bool = False) -> Tensor:
        """Box-only geometric op: ``theta [N, 2, 3]`` of ``patches [N, 4]``, ``magnitude [N]``
        (about each box's centre)."""
        return AF.patch_affine_matrix(patches, **self.box_affine(magnitude.to(patches.dtype)),
                                      align_corners=align_corners)

    def boxes_photometric(self, images: Tensor, boxes: Tensor, value: Tensor, o2i: Tensor,
                          overlap: str, inplace: bool) -> Tensor:
        """Box-only photometric op in every box (``value [M]`` in uint8 levels)."""
        if self.kind != "box_photometric" or self.cutout is not None:
            raise ValueError(f"{self.name!r} is not a box-only photometric op with a kernel")
        return _box_photometric(self.name, images, boxes, value, o2i, overlap, inplace)

    def cutout_rects(self, center: Tensor, magnitude: Tensor, region: Tensor) -> Tensor:
        """A cutout's filled pixel rects ``[M, 4]`` (``j0, i0, j1, i1``; clipped later).

        ``center [M, 2]``: the drawn ``(x, y)`` pixels; ``magnitude [M]``: the argument;
        ``region [M, 4]``: the pixel rect each centre was drawn in (:attr:`cutout`).
        """
        if self.cutout is None:
            raise ValueError(f"{self.name!r} is not a cutout")
        return _cutout_rects(self.name, center, magnitude, region)

    def crop(self, crop: Tensor, value: float, fill: list[float], mode: Any) -> Tensor:
        """The reference's op on one box crop ``[1, C, h, w]`` (box-only ops but cutout)."""
        if not self.box_only or self.cutout is not None:
            raise ValueError(f"{self.name!r} has no per-crop reference")
        return _crop(self.name, crop, value, fill, mode)

    def _need(self, kind: str) -> None:
        if self.kind != kind:
            raise ValueError(f"{self.name!r} is a {self.kind!r} op, not {kind!r}")


# One table for every op: (name, kind, level -> argument, random sign, meaning).
# Every row was checked against level_to_arg() of the reference file named above.
_ROWS: tuple[tuple[str, str, Callable[[float], float], bool, str], ...] = (
    # ---- image-level colour ops (torchvision.transforms.v2.functional) ----
    ("AutoContrast", "color", _none, False, "no argument"),
    ("Equalize", "color", _none, False, "no argument"),
    ("Posterize", "color", _scaled_int(4), False, "bits kept: int(level/10*4)"),
    ("Solarize", "color", _scaled_int(256), False, "threshold: int(level/10*256)"),
    ("SolarizeAdd", "color", _scaled_int(110), False,
     "addition below threshold 128: int(level/10*110)"),
    ("Color", "color", _enhance, False, "saturation factor: level/10*1.8+0.1"),
    ("Contrast", "color", _enhance, False, "contrast factor: level/10*1.8+0.1"),
    ("Brightness", "color", _enhance, False, "brightness factor: level/10*1.8+0.1"),
    ("Sharpness", "color", _enhance, False, "sharpness factor: level/10*1.8+0.1"),
    # ---- image-level cutouts ----
    ("Cutout", "cutout", _scaled_int(_CUTOUT_CONST), False,
     "pad size (half side) in pixels: int(level/10*100)"),
    ("BBox_Cutout", "cutout", _scaled(_CUTOUT_MAX_PAD_FRACTION), False,
     "pad fraction of one box's size: level/10*0.75"),
    # ---- image-level geometric ops: image and boxes move together ----
    ("Rotate_BBox", "image_geometric", _scaled(30), True, "degrees: level/10*30"),
    ("ShearX_BBox", "image_geometric", _scaled(0.3), True, "shear coefficient: level/10*0.3"),
    ("ShearY_BBox", "image_geometric", _scaled(0.3), True, "shear coefficient: level/10*0.3"),
    ("TranslateX_BBox", "image_geometric", _scaled(_TRANSLATE_CONST), True,
     "pixels: level/10*250"),
    ("TranslateY_BBox", "image_geometric", _scaled(_TRANSLATE_CONST), True,
     "pixels: level/10*250"),
    # ---- box-only ops: inside each box, a coin per box with prob / 3 ----
    ("Rotate_Only_BBoxes", "box_geometric", _scaled(30), True, "degrees: level/10*30"),
    ("ShearX_Only_BBoxes", "box_geometric", _scaled(0.3), True,
     "shear coefficient: level/10*0.3"),
    ("ShearY_Only_BBoxes", "box_geometric", _scaled(0.3), True,
     "shear coefficient: level/10*0.3"),
    ("TranslateX_Only_BBoxes", "box_geometric", _scaled(_TRANSLATE_BBOX_CONST), True,
     "pixels: level/10*120"),
    ("TranslateY_Only_BBoxes", "box_geometric", _scaled(_TRANSLATE_BBOX_CONST), True,
     "pixels: level/10*120"),
    ("Flip_Only_BBoxes", "box_geometric", _none, False, "no argument"),
    ("Equalize_Only_BBoxes", "box_photometric", _none, False, "no argument"),
    ("Solarize_Only_BBoxes", "box_photometric", _scaled_int(256), False,
     "threshold: int(level/10*256)"),
    ("Cutout_Only_BBoxes", "box_photometric", _scaled_int(_CUTOUT_BBOX_CONST), False,
     "pad size (half side) in pixels: int(level/10*50)"),
)

#: Every op by name (the reference's names).
OPS: Mapping[str, OpSpec] = {row[0]: OpSpec(*row) for row in _ROWS}


def level_to_arg(name: str, level: float) -> float:
    """The reference's argument of op ``name`` at ``level`` (its magnitude, before any sign).

    Example:
        >>> level_to_arg("Rotate_Only_BBoxes", 6), level_to_arg("Brightness", 5)
        (18.0, 1.0)
    """
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}")
    return OPS[name].level_to_arg(float(level))


Policy = list[list[tuple[str, float, float]]]

_V0: Policy = [
    [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
    [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
    [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
    [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
    [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
]

_V1: Policy = [
    *_V0,
    [("Color", 0.0, 0), ("ShearX_Only_BBoxes", 0.8, 4)],
    [("ShearY_Only_BBoxes", 0.8, 2), ("Flip_Only_BBoxes", 0.0, 10)],
    [("Equalize", 0.6, 10), ("TranslateX_BBox", 0.2, 2)],
    [("Color", 1.0, 10), ("TranslateY_Only_BBoxes", 0.4, 6)],
    [("Rotate_BBox", 0.8, 10), ("Contrast", 0.0, 10)],
    [("Cutout", 0.2, 2), ("Brightness", 0.8, 10)],
    [("Color", 1.0, 6), ("Equalize", 1.0, 2)],
    [("Cutout_Only_BBoxes", 0.4, 6), ("TranslateY_Only_BBoxes", 0.8, 2)],
    [("Color", 0.2, 8), ("Rotate_BBox", 0.8, 10)],
    [("Sharpness", 0.4, 4), ("TranslateY_Only_BBoxes", 0.0, 4)],
    [("Sharpness", 1.0, 4), ("SolarizeAdd", 0.4, 4)],
    [("Rotate_BBox", 1.0, 8), ("Sharpness", 0.2, 8)],
    [("ShearY_BBox", 0.6, 10), ("Equalize_Only_BBoxes", 0.6, 8)],
    [("ShearX_BBox", 0.2, 6), ("TranslateY_Only_BBoxes", 0.2, 10)],
    [("SolarizeAdd", 0.6, 8), ("Brightness", 0.8, 10)],
]

_V2: Policy = [
    [("Color", 0.0, 6), ("Cutout", 0.6, 8), ("Sharpness", 0.4, 8)],
    [("Rotate_BBox", 0.4, 8), ("Sharpness", 0.4, 2), ("Rotate_BBox", 0.8, 10)],
    [("TranslateY_BBox", 1.0, 8), ("AutoContrast", 0.8, 2)],
    [("AutoContrast", 0.4, 6), ("ShearX_BBox", 0.8, 8), ("Brightness", 0.0, 10)],
    [("SolarizeAdd", 0.2, 6), ("Contrast", 0.0, 10), ("AutoContrast", 0.6, 0)],
    [("Cutout", 0.2, 0), ("Solarize", 0.8, 8), ("Color", 1.0, 4)],
    [("TranslateY_BBox", 0.0, 4), ("Equalize", 0.6, 8), ("Solarize", 0.0, 10)],
    [("TranslateY_BBox", 0.2, 2), ("ShearY_BBox", 0.8, 8), ("Rotate_BBox", 0.8, 8)],
    [("Cutout", 0.8, 8), ("Brightness", 0.8, 8), ("Cutout", 0.2, 2)],
    [("Color", 0.8, 4), ("TranslateY_BBox", 1.0, 6), ("Rotate_BBox", 0.6, 6)],
    [("Rotate_BBox", 0.6, 10), ("BBox_Cutout", 1.0, 4), ("Cutout", 0.2, 8)],
    [("Rotate_BBox", 0.0, 0), ("Equalize", 0.6, 6), ("ShearY_BBox", 0.6, 8)],
    [("Brightness", 0.8, 8), ("AutoContrast", 0.4, 2), ("Brightness", 0.2, 2)],
    [("TranslateY_BBox", 0.4, 8), ("Solarize", 0.4, 6), ("SolarizeAdd", 0.2, 10)],
    [("Contrast", 1.0, 10), ("SolarizeAdd", 0.2, 8), ("Equalize", 0.2, 4)],
]

_V3: Policy = [
    [("Posterize", 0.8, 2), ("TranslateX_BBox", 1.0, 8)],
    [("BBox_Cutout", 0.2, 10), ("Sharpness", 1.0, 8)],
    [("Rotate_BBox", 0.6, 8), ("Rotate_BBox", 0.8, 10)],
    [("Equalize", 0.8, 10), ("AutoContrast", 0.2, 10)],
    [("SolarizeAdd", 0.2, 2), ("TranslateY_BBox", 0.2, 8)],
    [("Sharpness", 0.0, 2), ("Color", 0.4, 8)],
    [("Equalize", 1.0, 8), ("TranslateY_BBox", 1.0, 8)],
    [("Posterize", 0.6, 2), ("Rotate_BBox", 0.0, 10)],
    [("AutoContrast", 0.6, 0), ("Rotate_BBox", 1.0, 6)],
    [("Equalize", 0.0, 4), ("Cutout", 0.8, 10)],
    [("Brightness", 1.0, 2), ("TranslateY_BBox", 1.0, 6)],
    [("Contrast", 0.0, 2), ("ShearY_BBox", 0.8, 0)],
    [("AutoContrast", 0.8, 10), ("Contrast", 0.2, 10)],
    [("Rotate_BBox", 1.0, 10), ("Cutout", 1.0, 10)],
    [("SolarizeAdd", 0.8, 6), ("Equalize", 0.8, 8)],
]

#: The reference's named policies: ``{"v0": policy_v0(), ...}``; each a list of
#: sub-policies, each a list of ``(op_name, probability, level)``. ``v0`` is the policy
#: of the paper's results; ``v1`` adds 15 sub-policies; ``v2`` and ``v3`` use image-level
#: ops only (up to three ops per sub-policy in ``v2``).
POLICIES: Mapping[str, tuple[tuple[tuple[str, float, float], ...], ...]] = {
    name: tuple(tuple(sub) for sub in policy)
    for name, policy in (("v0", _V0), ("v1", _V1), ("v2", _V2), ("v3", _V3))
}


def _as_number(x: object) -> float | None:
    """``x`` as a float if it is a real number of any kind (Python, NumPy, a one-element
    non-bool tensor or array), else ``None``."""
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Real):
        return float(x)
    dtype = getattr(x, "dtype", None)
    size = getattr(x, "numel", getattr(x, "size", None))
    size = size() if callable(size) else size
    if dtype is None or size != 1 or "bool" in str(dtype) or "complex" in str(dtype):
        return None
    try:
        return float(x.item())  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return None


def check_policy(policy: object) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    """Validate a policy (a name in :data:`POLICIES` or a custom list) and return it.

    A custom policy is a non-empty sequence of sub-policies; each a non-empty sequence
    of ``(op_name, probability, level)`` with a known op name (:data:`OPS`), a
    probability in ``[0, 1]`` and a level in ``[0, 10]``.

    Raises:
        ValueError / TypeError naming the sub-policy and op that is wrong.

    Example:
        >>> len(check_policy("v1"))
        20
        >>> check_policy([[("Equalize", 0.5, 3)]])
        ((('Equalize', 0.5, 3.0),),)
    """
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise ValueError(
                f"policy must be one of {', '.join(map(repr, POLICIES))} or a list of "
                f"sub-policies, got {policy!r}"
            )
        return check_policy(POLICIES[policy])
    if not isinstance(policy, Sequence) or len(policy) == 0:
        raise TypeError(
            "policy must be a name ('v0', 'v1', 'v2', 'v3') or a non-empty list of sub-policies, "
            f"got {type(policy).__name__ if not isinstance(policy, Sequence) else 'an empty list'}"
        )
    out = []
    for i, sub in enumerate(policy):
        if isinstance(sub, str) or not isinstance(sub, Sequence) or len(sub) == 0:
            raise TypeError(
                f"policy[{i}] must be a non-empty list of (op_name, probability, level), "
                f"got {sub!r}"
            )
        ops = []
        for j, item in enumerate(sub):
            where = f"policy[{i}][{j}]"
            if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 3:
                raise TypeError(f"{where} must be a tuple (op_name, probability, level), got {item!r}")
            name, prob_in, level_in = item
            if not isinstance(name, str) or name not in OPS:
                raise ValueError(
                    f"{where}: unknown op {name!r}; known ops: {', '.join(sorted(OPS))}"
                )
            prob, level = _as_number(prob_in), _as_number(level_in)
            if prob is None or level is None:
                what = "probability" if prob is None else "level"
                raise TypeError(
                    f"{where} ({name}): {what} must be a real number (a Python or NumPy "
                    f"number or a one-element tensor), got {prob_in if prob is None else level_in!r}"
                )
            if not math.isfinite(prob) or not 0.0 <= prob <= 1.0:
                raise ValueError(f"{where} ({name}): probability must be in [0, 1], got {prob_in!r}")
            if not math.isfinite(level) or not 0.0 <= level <= MAX_LEVEL:
                raise ValueError(f"{where} ({name}): level must be in [0, 10], got {level_in!r}")
            ops.append((name, prob, level))
        out.append(tuple(ops))
    return tuple(out)
