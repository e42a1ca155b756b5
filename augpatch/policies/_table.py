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

__all__ = [
    "BBOX_ONLY_PROB_DIVISOR",
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
    """

    name: str
    kind: str
    level_to_arg: Callable[[float], float]
    signed: bool
    arg: str

    @property
    def box_only(self) -> bool:
        return self.kind.startswith("box_")


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
