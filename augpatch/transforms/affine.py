"""Random per-object affine transforms (``RandomPatchAffine`` and its one-parameter
subclasses); the deterministic :class:`PatchAffine` is in ``fixed.py`` and the flips in
``flip.py`` (both re-exported here).

All of them are a parameter sampler plus :func:`augpatch.functional.patch_affine_matrix`
(rotation, translation, scale and shear in PIXEL space about each patch's centre,
so a rotated square object stays square in any box). Positive angles rotate
counter-clockwise on screen, as ``torchvision.transforms.v2.functional.rotate``.

Units of the human parameters (in the arguments and in ``aug._params``):

* ``angle`` ``[N]``: degrees, counter-clockwise on screen;
* ``translate`` ``[N, 2]``: ``(tx, ty)`` as a FRACTION of the object's patch size
  ``(w, h)`` (the box clipped to the canvas), as torchvision's ``RandomAffine`` uses
  fractions of the image size; ``compute_matrix`` converts to pixels;
* ``scale`` ``[N, 2]``: ``(sx, sy)`` factors along the object's axes;
* ``shear`` ``[N, 2]``: ``(x-shear, y-shear)`` in degrees (torchvision ``F.affine``
  convention).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from augpatch.functional.checks import host_arithmetic
from augpatch.transforms.base import Params, PatchAugmentationBase
from augpatch.transforms.fixed import (  # noqa: F401  (re-exported: affine.py was their home)
    _NEUTRAL,
    _PARSERS,
    PatchAffine,
    _affine_from_params,
    _check_theta_arg,
    _neutral_rows,
)
from augpatch.transforms.flip import (  # noqa: F401  (re-exported: affine.py was their home)
    RandomPatchHorizontalFlip,
    RandomPatchVerticalFlip,
    _PatchFlip,
)
from augpatch.transforms.pipeline import _eye
from augpatch.transforms.sampling import (
    Bound,
    Range,
    _tensor_values,
    check_range,
    parse_range,
    register_tensor,
    uniform01,
)

try:  # the few-objects draw (RandomPatchAffine._fast_forward_parameters) runs in NumPy
    import numpy as _np

    from augpatch.functional.host import patch_affine_theta
except ImportError:  # pragma: no cover - torch without NumPy: the tensor path
    _np = None

__all__ = [
    "PatchAffine",
    "RandomPatchAffine",
    "RandomPatchHorizontalFlip",
    "RandomPatchRotation",
    "RandomPatchScale",
    "RandomPatchShear",
    "RandomPatchTranslate",
    "RandomPatchVerticalFlip",
]


def _is_number(x: object) -> bool:
    return (isinstance(x, numbers.Real) and not isinstance(x, bool)) or (
        isinstance(x, Tensor) and x.dim() == 0
    )


def _is_seq(x: object) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str)


def _fmt(x: float) -> str:
    return repr(round(x, 6))


def _fmt_range(module: torch.nn.Module, rng: Range) -> str:
    lo, hi = rng.values(module)
    return f"({_fmt(lo)}, {_fmt(hi)})"


def _whole_tensor_ranges(
    module: torch.nn.Module, name: str, value: Tensor, pairs: Sequence[tuple[Any, Any]]
) -> list[Range]:
    """Register ``value`` once and build ranges from index pairs ``(lo_idx, hi_idx)``."""
    _tensor_values(name, value)
    register_tensor(module, name, value)
    return [Range(Bound(0.0, name, i), Bound(0.0, name, j)) for i, j in pairs]


def _parse_translate(module: torch.nn.Module, value: object) -> tuple[Range, Range]:
    """``translate``: a number ``a`` (both axes in ``(-a, a)``), a pair ``(a, b)`` of
    per-axis maxima (torchvision), or a pair of ranges ``((x_lo, x_hi), (y_lo, y_hi))``.
    Fractions of the patch size, within ``[-1, 1]``."""
    kw: dict[str, Any] = {"lower": -1.0, "upper": 1.0}
    if _is_number(value):
        r = parse_range(module, "translate", value, **kw)
        return r, r
    if isinstance(value, Tensor):
        if value.shape == (2,):
            if min(_tensor_values("translate", value)) < 0:
                raise ValueError("translate maxima (a, b) must be non-negative")
            register_tensor(module, "translate", value)
            rx = Range(Bound(0.0, "translate", 0, -1.0), Bound(0.0, "translate", 0, 1.0))
            ry = Range(Bound(0.0, "translate", 1, -1.0), Bound(0.0, "translate", 1, 1.0))
        elif value.shape == (2, 2):
            rx, ry = _whole_tensor_ranges(
                module, "translate", value, [((0, 0), (0, 1)), ((1, 0), (1, 1))]
            )
        else:
            raise ValueError(
                f"translate as a tensor must have shape [], [2] or [2, 2], got {tuple(value.shape)}"
            )
        return check_range(module, "translate_x", rx, **kw), check_range(
            module, "translate_y", ry, **kw
        )
    if _is_seq(value) and len(value) == 2:  # type: ignore[arg-type]
        rx = parse_range(module, "translate_x", value[0], **kw)  # type: ignore[index]
        ry = parse_range(module, "translate_y", value[1], **kw)  # type: ignore[index]
        return rx, ry
    raise TypeError(
        "translate must be a number, a pair (a, b) of per-axis maxima or a pair of (min, max) "
        f"ranges, got {value!r}"
    )


def _parse_xy_ranges(
    module: torch.nn.Module, name: str, value: object, *, center: float, **kw: Any
) -> tuple[Range, Range | None]:
    """``scale`` / ``shear``: a number, a (min, max) pair, or 4 values
    ``(x_min, x_max, y_min, y_max)``. Returns ``(x range, y range or None)``."""
    if isinstance(value, Tensor) and value.shape == (4,):
        rx, ry = _whole_tensor_ranges(module, name, value, [(0, 1), (2, 3)])
        return check_range(module, f"{name}_x", rx, **kw), check_range(
            module, f"{name}_y", ry, **kw
        )
    if _is_seq(value) and len(value) == 4:  # type: ignore[arg-type]
        rx = parse_range(module, f"{name}_x", tuple(value[:2]), center=center, **kw)  # type: ignore[index]
        ry = parse_range(module, f"{name}_y", tuple(value[2:]), center=center, **kw)  # type: ignore[index]
        return rx, ry
    return parse_range(module, name, value, center=center, **kw), None


class RandomPatchAffine(PatchAugmentationBase):
    r"""Random per-object affine: rotation, translation, scale and shear about each box centre.

    Argument forms follow torchvision/Kornia ``RandomAffine``. Every magnitude may be a
    tensor that requires grad (or an ``nn.Parameter``): sampling is reparameterised
    (``value = lo + (hi - lo) * u``, ``u ~ U[0, 1)``) so gradients reach it.

    Args:
        degrees: rotation range in degrees: a number ``d`` means ``(-d, d)``, a pair is
            ``(min, max)``. ``None`` (or omitted in the subclasses): no rotation.
        translate: fraction of the patch size: a number ``a`` (``tx, ty`` in ``(-a, a)``),
            a pair ``(a, b)`` (``tx`` in ``(-a, a)``, ``ty`` in ``(-b, b)``, as torchvision)
            or a pair of ranges ``((x_min, x_max), (y_min, y_max))``; within ``[-1, 1]``.
        scale: a pair ``(min, max)`` (isotropic), 4 values ``(x_min, x_max, y_min, y_max)``
            (anisotropic), or a number ``s`` meaning ``(1 - s, 1 + s)``. Must be ``> 0``.
        shear: degrees: a number ``s`` (x-shear in ``(-s, s)``), a pair (x-shear range) or
            4 values (x and y ranges), within ``(-90, 90)``.
        **kwargs: ``p`` (default 0.5), ``same_on_batch``, ``same_on_image``,
            ``resample``, ``padding_mode``, ``align_corners``, ``overlap``,
            ``generator``, ``drop_invalid``: see :class:`PatchAugmentationBase`.

    Parameters (``aug._params``): ``angle [N]``, ``translate [N, 2]`` (fractions),
    ``scale [N, 2]``, ``shear [N, 2]`` plus the base's ``theta``, ``batch_prob``,
    ``patches``, ``obj_to_img``, ``keep``. Draw order: angle, translate, scale, shear.

    Example:
        >>> aug = RandomPatchAffine(degrees=15, translate=(0.1, 0.1), scale=(0.8, 1.2), p=1.0)
        >>> images = torch.rand(1, 3, 32, 32)
        >>> out, boxes = aug(images, torch.tensor([[4, 4, 20, 28]]))
        >>> aug._params["theta"].shape
        torch.Size([1, 2, 3])
    """

    def __init__(
        self,
        degrees: Any = None,
        translate: Any = None,
        scale: Any = None,
        shear: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._degrees = None if degrees is None else parse_range(self, "degrees", degrees)
        self._translate = None if translate is None else _parse_translate(self, translate)
        self._scale = (
            None
            if scale is None
            else _parse_xy_ranges(self, "scale", scale, center=1.0, lower=0.0, strict_lower=True)
        )
        self._shear = (
            None
            if shear is None
            else _parse_xy_ranges(
                self,
                "shear",
                shear,
                center=0.0,
                lower=-90.0,
                upper=90.0,
                strict_lower=True,
                strict_upper=True,
            )
        )

    def generate_parameters(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> Params:
        g, device, dtype = patches.shape[0], patches.device, patches.dtype

        def draw(*tail: int) -> Tensor:
            return uniform01((g, *tail), generator, device).to(dtype)

        zeros = torch.zeros(g, dtype=dtype, device=device)
        angle = zeros if self._degrees is None else self._degrees.sample(self, draw())
        if self._translate is None:
            translate = torch.zeros(g, 2, dtype=dtype, device=device)
        else:
            u = draw(2)
            translate = torch.stack(
                (
                    self._translate[0].sample(self, u[:, 0]),
                    self._translate[1].sample(self, u[:, 1]),
                ),
                -1,
            )
        if self._scale is None:
            scale = torch.ones(g, 2, dtype=dtype, device=device)
        elif self._scale[1] is None:
            s = self._scale[0].sample(self, draw())
            scale = torch.stack((s, s), -1)
        else:
            u = draw(2)
            scale = torch.stack(
                (self._scale[0].sample(self, u[:, 0]), self._scale[1].sample(self, u[:, 1])), -1
            )
        if self._shear is None:
            shear = torch.zeros(g, 2, dtype=dtype, device=device)
        elif self._shear[1] is None:
            shear = torch.stack((self._shear[0].sample(self, draw()), zeros), -1)
        else:
            u = draw(2)
            shear = torch.stack(
                (self._shear[0].sample(self, u[:, 0]), self._shear[1].sample(self, u[:, 1])), -1
            )
        return {"angle": angle, "translate": translate, "scale": scale, "shear": shear}

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        return _affine_from_params(params, patches, self.align_corners)

    # ------------------------------------------------------------------ the few-objects draw

    def _forward_parameters(self, patches: Tensor, obj_to_img: Tensor, batch_size: int) -> Params:
        """The base's draw, or, where nothing needs a gradient, the same draw in NumPy.

        A per-sample adapter draws for a handful of objects per call: the generic path's
        60-odd small tensor operations and checks on tensors built here cost 1.5-2 ms for
        7 objects on a loaded 2-core machine, this one about a third of that (a few tensor
        operations kept for the draw and torch's own ``cos`` / ``sin`` / ``tan``), with the
        same results bit for bit (the same uniforms from the same generator, the same
        elementary operations in the same order:
        :func:`augpatch.functional.host.patch_affine_theta`).
        """
        fast = self._fast_ranges(patches)
        if fast is None:
            return super()._forward_parameters(patches, obj_to_img, batch_size)
        return self._fast_forward_parameters(patches, fast)

    def _fast_ranges(self, patches: Tensor) -> tuple[Any, ...] | None:
        """The constant ranges of the fast draw, or ``None`` where the base's path is needed
        (a subclass's own draw or matrix, sharing, a tensor ``p`` or magnitude, gradients,
        another device or dtype, tracing, no NumPy, no object)."""
        kind = type(self)
        if (
            kind.generate_parameters is not RandomPatchAffine.generate_parameters
            or kind.compute_matrix is not RandomPatchAffine.compute_matrix
            or self.same_on_batch
            or self.same_on_image
            or not isinstance(self.p, float)
            or patches.shape[0] == 0
            or not host_arithmetic(patches)
        ):
            return None
        ranges = (self._degrees, self._translate, self._scale, self._shear)
        for group in ranges:
            for rng in (group,) if isinstance(group, Range) else (group or ()):
                if rng is not None and (rng.lo.attr is not None or rng.hi.attr is not None):
                    return None
        return ranges

    def _fast_forward_parameters(self, patches: Tensor, ranges: tuple[Any, ...]) -> Params:
        """:meth:`_forward_parameters` of the base for constant ranges, in NumPy (see there)."""
        np = _np
        n, dtype, device = patches.shape[0], patches.dtype, patches.device
        ftype = np.float32 if dtype == torch.float32 else np.float64
        batch_prob = self._sample_batch_prob(n, device)

        def draw(*tail: int) -> Any:
            return uniform01((n, *tail), self.generator, device).to(dtype).numpy()

        def sample(rng: Range, u: Any) -> Any:  # Range.sample: lo + (hi - lo) * u
            lo, hi = ftype(rng.lo.offset), ftype(rng.hi.offset)
            return lo + (hi - lo) * u

        def pair(ranges: tuple[Range, Range]) -> Any:  # one [N, 2] draw, a range per column
            u, out = draw(2), np.empty((n, 2), ftype)  # filled column by column (no np.stack)
            out[:, 0], out[:, 1] = sample(ranges[0], u[:, 0]), sample(ranges[1], u[:, 1])
            return out

        degrees, translate_r, scale_r, shear_r = ranges
        zeros = np.zeros(n, ftype)
        angle = zeros if degrees is None else sample(degrees, draw())
        translate = np.zeros((n, 2), ftype) if translate_r is None else pair(translate_r)
        if scale_r is None:
            scale = np.ones((n, 2), ftype)
        elif scale_r[1] is None:
            scale = np.repeat(sample(scale_r[0], draw())[:, None], 2, 1)  # (s, s)
        else:
            scale = pair(scale_r)
        if shear_r is None:
            shear = np.zeros((n, 2), ftype)
        elif shear_r[1] is None:
            shear = np.stack((sample(shear_r[0], draw()), zeros), -1)
        else:
            shear = pair(shear_r)
        params: Params = {
            "angle": torch.from_numpy(angle),
            "translate": torch.from_numpy(translate),
            "scale": torch.from_numpy(scale),
            "shear": torch.from_numpy(shear),
        }
        coins = batch_prob.numpy()
        if not coins.any():  # p = 0 (or no coin): no matrix needed
            theta = _eye(n, dtype, device).contiguous()
            return {**params, "theta": theta, "batch_prob": batch_prob}
        box = patches.numpy()
        # torch's own cos / sin / tan (bit for bit the tensor path); a range not given is
        # all zeros, whose cos / sin / tan are exactly 1 / 0 / 0
        if degrees is None:
            cos, sin = np.ones(n, ftype), zeros
        else:
            radians = torch.deg2rad(params["angle"])
            cos, sin = torch.cos(radians).numpy(), torch.sin(radians).numpy()
        if shear_r is None:
            tan_shear = shear
        else:
            tan_shear = torch.tan(torch.deg2rad(params["shear"])).numpy()
        theta_np = patch_affine_theta(
            box,
            cos,
            sin,
            tan_shear,
            scale,
            translate * (box[:, 2:] - box[:, :2]),
            self.align_corners,
        )
        # _affine_from_params: exactly the identity where every parameter is neutral, and
        # gate_theta: the identity where the coin said no (a range not given is neutral)
        neutral = (scale == 1).all(1)
        for rng, value in ((degrees, angle), (translate_r, translate), (shear_r, shear)):
            if rng is not None:
                neutral &= (value == 0) if value.ndim == 1 else (value == 0).all(1)
        keep = coins & ~neutral
        if not keep.all():
            theta_np = np.where(keep[:, None, None], theta_np, np.eye(2, 3, dtype=ftype))
        theta = torch.from_numpy(theta_np)
        return {**params, "theta": theta, "batch_prob": batch_prob}

    def parameter_bounds(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> dict[str, tuple[Tensor, Tensor, str]]:
        """The range each sampled parameter is drawn from (for searches and attacks).

        Returns ``{name: (low [k], high [k], form)}`` for the parameters this transform
        samples, in the units of its parameter dict: ``angle`` (degrees, ``k = 1``),
        ``translate`` (fractions of the box, ``k = 2``), ``scale`` and ``shear``. For
        the last two ``form`` says how the ``k`` values fill the parameter's two
        columns: ``"full"`` (``k = 2``, one range per axis), ``"isotropic"`` (``k = 1``,
        the same value in both: a scale given as one range) or ``"x_only"`` (``k = 1``,
        ``(value, 0)``: a shear given as one range); ``angle`` and ``translate`` are
        ``"full"``. Learnable magnitudes (``nn.Parameter``) come detached.

        Example:
            >>> t = RandomPatchAffine(degrees=30, scale=(0.8, 1.2))
            >>> bounds = t.parameter_bounds(dtype=torch.float64)
            >>> {k: (lo.tolist(), hi.tolist(), form) for k, (lo, hi, form) in bounds.items()}
            {'angle': ([-30.0], [30.0], 'full'), 'scale': ([0.8], [1.2], 'isotropic')}
        """

        def stack(*ranges: Any) -> tuple[Tensor, Tensor]:
            los, his = zip(*(r.bounds(self, torch.device(device), dtype) for r in ranges))
            return (torch.stack([v.detach().reshape(()) for v in los]),
                    torch.stack([v.detach().reshape(()) for v in his]))

        out: dict[str, tuple[Tensor, Tensor, str]] = {}
        if self._degrees is not None:
            out["angle"] = (*stack(self._degrees), "full")
        if self._translate is not None:
            out["translate"] = (*stack(*self._translate), "full")
        for name, rngs, single in (("scale", self._scale, "isotropic"),
                                   ("shear", self._shear, "x_only")):
            if rngs is not None:
                if rngs[1] is None:
                    out[name] = (*stack(rngs[0]), single)
                else:
                    out[name] = (*stack(*rngs), "full")
        return out

    def _magnitude_repr(self) -> list[str]:
        out = []
        if self._degrees is not None:
            out.append(f"degrees={_fmt_range(self, self._degrees)}")
        if self._translate is not None:
            rx, ry = self._translate
            out.append(f"translate=({_fmt_range(self, rx)}, {_fmt_range(self, ry)})")
        for name, rngs in (("scale", self._scale), ("shear", self._shear)):
            if rngs is None:
                continue
            if rngs[1] is None:
                out.append(f"{name}={_fmt_range(self, rngs[0])}")
            else:
                (a, b), (c, d) = rngs[0].values(self), rngs[1].values(self)
                out.append(f"{name}=({_fmt(a)}, {_fmt(b)}, {_fmt(c)}, {_fmt(d)})")
        return out


class RandomPatchRotation(RandomPatchAffine):
    """Random per-object rotation about each box centre (counter-clockwise positive).

    Args:
        degrees: a number ``d`` (range ``(-d, d)``) or a ``(min, max)`` pair, in degrees;
            numbers, tensors (learnable) or a pair of 0-d tensors.
        **kwargs: common options, see :class:`PatchAugmentationBase` (``p`` default 0.5).

    Example:
        >>> deg = torch.tensor(20.0, requires_grad=True)
        >>> aug = RandomPatchRotation(degrees=deg, p=1.0)
        >>> out, _ = aug(torch.rand(1, 1, 16, 16), torch.tensor([[2, 2, 12, 12]]))
        >>> out.sum().backward(); deg.grad is not None
        True
    """

    def __init__(self, degrees: Any, **kwargs: Any) -> None:
        super().__init__(degrees=degrees, **kwargs)


class RandomPatchTranslate(RandomPatchAffine):
    """Random per-object translation, as a fraction of each box (patch) size.

    Args:
        translate: a number ``a`` (both axes in ``(-a, a)``), a pair ``(a, b)`` of per-axis
            maxima, or ``((x_min, x_max), (y_min, y_max))``; within ``[-1, 1]``.
        **kwargs: common options, see :class:`PatchAugmentationBase`.

    Example:
        >>> aug = RandomPatchTranslate((0.2, 0.0), p=1.0)  # horizontal shifts only
    """

    def __init__(self, translate: Any, **kwargs: Any) -> None:
        super().__init__(translate=translate, **kwargs)


class RandomPatchScale(RandomPatchAffine):
    """Random per-object zoom about each box centre.

    Args:
        scale: ``(min, max)`` isotropic, ``(x_min, x_max, y_min, y_max)`` anisotropic, or a
            number ``s`` meaning ``(1 - s, 1 + s)``; all factors ``> 0``.
        **kwargs: common options, see :class:`PatchAugmentationBase`.

    Example:
        >>> aug = RandomPatchScale((0.5, 1.0), p=1.0)
    """

    def __init__(self, scale: Any, **kwargs: Any) -> None:
        super().__init__(scale=scale, **kwargs)


class RandomPatchShear(RandomPatchAffine):
    """Random per-object shear about each box centre (torchvision ``F.affine`` convention).

    Args:
        shear: degrees: a number ``s`` (x-shear in ``(-s, s)``), a ``(min, max)`` pair
            (x-shear) or ``(x_min, x_max, y_min, y_max)``; within ``(-90, 90)``.
        **kwargs: common options, see :class:`PatchAugmentationBase`.

    Example:
        >>> aug = RandomPatchShear((-10, 10, -5, 5), p=1.0)
    """

    def __init__(self, shear: Any, **kwargs: Any) -> None:
        super().__init__(shear=shear, **kwargs)
