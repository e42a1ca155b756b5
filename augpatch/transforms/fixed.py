"""``PatchAffine``: the deterministic per-object affine (given ``theta`` or human
parameters), and the matrix of human parameters it shares with
:class:`~augpatch.transforms.affine.RandomPatchAffine` (``_affine_from_params``: exactly the
identity where every parameter is neutral). Moved out of ``affine.py`` unchanged
(``augpatch.transforms.affine`` re-exports them)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import augpatch.functional as F
from augpatch.functional.geometry import (
    parse_angle,
    parse_scale,
    parse_shear,
    parse_translate,
)
from augpatch.transforms.base import Params, PatchAugmentationBase
from augpatch.transforms.sampling import _tensor_values, register_tensor

__all__ = ["PatchAffine"]


# the value of each human parameter that does nothing
_NEUTRAL = {"angle": 0.0, "translate": 0.0, "scale": 1.0, "shear": 0.0}


def _neutral_rows(params: Params, n: int, device: torch.device) -> Tensor:
    """``[N]`` bool: True where every given human parameter has its neutral value."""
    out = torch.ones(n, dtype=torch.bool, device=device)
    if n == 0:
        return out
    for key, neutral in _NEUTRAL.items():
        value = params.get(key)
        if not isinstance(value, Tensor):
            continue
        same = value.detach().to(device) == neutral
        if same.dim() and same.shape[0] == n:
            out = out & same.reshape(n, -1).all(1)
        else:
            out = out & same.all()
    return out


def _affine_from_params(params: Params, patches: Tensor, align_corners: bool) -> Tensor:
    """``theta`` from ``angle``/``translate`` (fraction)/``scale``/``shear`` (any may be absent).

    Objects whose parameters are all neutral (angle 0, no shift, scale 1, no shear) get
    EXACTLY the identity (the pixel-space conversion would leave rounding noise of 1e-16),
    with the gradient of the matrix still flowing to the parameters."""
    translate = params.get("translate")
    if translate is not None:
        translate = translate.to(patches.dtype) * (patches[:, 2:] - patches[:, :2])
    theta = F.patch_affine_matrix(
        patches,
        angle=params.get("angle"),
        translate=translate,
        scale=params.get("scale"),
        shear=params.get("shear"),
        align_corners=align_corners,
    )
    neutral = _neutral_rows(params, theta.shape[0], theta.device)[:, None, None]
    eye = torch.eye(2, 3, dtype=theta.dtype, device=theta.device)
    return torch.where(neutral, eye, theta.detach()) + (theta - theta.detach())


def _check_theta_arg(theta: Tensor) -> None:
    if not theta.is_floating_point():
        raise TypeError(f"theta must be a floating point tensor, got {theta.dtype}")
    ok = (
        theta.shape in ((2, 3), (6,))
        or (theta.dim() == 3 and theta.shape[1:] == (2, 3))
        or (theta.dim() == 2 and theta.shape[1] == 6)
    )
    if not ok:
        raise ValueError(
            f"theta must have shape [2, 3], [6], [N, 2, 3] or [N, 6], got {tuple(theta.shape)}"
        )
    _tensor_values("theta", theta)


# the core's parser of each human parameter (the rule is in patch_affine_matrix's docstring)
_PARSERS = {
    "angle": parse_angle,
    "translate": parse_translate,
    "scale": parse_scale,
    "shear": parse_shear,
}


class PatchAffine(PatchAugmentationBase):
    r"""Deterministic per-object affine for given (possibly learnable) parameters.

    Either ``theta`` (e.g. a spatial transformer's per-object matrices, in the SPEC's
    ``F.affine_grid`` convention) or human parameters (same units as
    :class:`RandomPatchAffine`'s ``_params``, so ``PatchAffine(**{k: aug._params[k]
    for k in ("angle", "translate", "scale", "shear")})`` reproduces ``aug``).

    Args:
        theta: ``[2, 3]`` / ``[6]`` (every object) or ``[N, 2, 3]`` / ``[N, 6]``.
        angle: degrees CCW: a number / 0-d tensor (every object), or ``[N]``.
        translate: FRACTION of the patch size, always a pair ``(tx, ty)``: a number ``t``
            (``(t, t)``), a Python pair / ``[2]`` / ``[1, 2]`` (every object), or ``[N, 2]``.
        scale: one factor or an ``(sx, sy)`` pair: a number / 0-d tensor (isotropic, every
            object), a 1-D tensor ``[N]`` or ``[N, 1]`` (isotropic, one PER OBJECT), a
            Python pair ``(sx, sy)`` or a ``[1, 2]`` tensor (every object), or ``[N, 2]``.
            Non-zero; a negative factor flips.
        shear: degrees, the forms of ``scale``; one value is an x-shear ``(s, 0)``.
        **kwargs: ``p`` (default 1.0), ``resample``, ``padding_mode``, ``align_corners``,
            ``overlap``, ``generator``, ``drop_invalid``. (No ``same_on_*``: nothing is
            sampled but the ``p`` coin.)

    Tensors are registered on the module (an ``nn.Parameter`` as a parameter, other
    tensors as buffers, the given objects themselves), so gradients reach them and
    they follow ``.to(device)``. A new value can be assigned between calls
    (``aug.theta = new_theta``), or passed per call as ``params={"theta": theta}``
    (gradients flow to it too). ``PatchAffine()`` is the identity.

    The human parameters are read exactly as by
    :func:`augpatch.functional.patch_affine_matrix` (the same parser): the number of
    dimensions of a tensor decides its meaning, never the number of objects. With two
    boxes, ``scale=torch.tensor([0.5, 2.0])`` halves the first object and doubles the
    second; ``scale=(0.5, 2.0)`` or ``torch.tensor([[0.5, 2.0]])`` is ``(sx, sy)`` for
    both; a 1-D tensor whose length is neither 1 nor the number of objects is an error.

    Example:
        >>> theta = torch.eye(2, 3).repeat(2, 1, 1).requires_grad_()
        >>> stn = PatchAffine(theta=theta)
        >>> out, boxes = stn(torch.rand(1, 3, 16, 16), torch.tensor([[0, 0, 8, 8], [8, 8, 16, 16]]))
        >>> out.sum().backward(); theta.grad.shape
        torch.Size([2, 2, 3])
    """

    def __init__(
        self,
        theta: Tensor | None = None,
        angle: Any = None,
        translate: Any = None,
        scale: Any = None,
        shear: Any = None,
        **kwargs: Any,
    ) -> None:
        for key in ("same_on_batch", "same_on_image"):
            if kwargs.get(key):
                raise ValueError(f"PatchAffine is deterministic: {key} has no meaning")
            kwargs.pop(key, None)
        kwargs.setdefault("p", 1.0)
        super().__init__(**kwargs)
        human = {"angle": angle, "translate": translate, "scale": scale, "shear": shear}
        given = [k for k, v in human.items() if v is not None]
        if theta is not None and given:
            raise ValueError(
                f"give either theta or human parameters, not both (got theta and {given})"
            )
        self._human: list[str] = []
        self._theta_given = theta is not None
        if theta is not None:
            if not isinstance(theta, Tensor):
                raise TypeError(f"theta must be a tensor, got {type(theta).__name__}")
            _check_theta_arg(theta)
            register_tensor(self, "theta", theta)
        for name in given:
            # the core's one parser of this form (n=None: checks the form; Python values
            # become tensors, a scale / shear pair a [1, 2] tensor); a tensor is kept itself
            value = _PARSERS[name](human[name], None)
            vals = _tensor_values(name, value)
            if name == "scale" and any(v == 0 for v in vals):
                raise ValueError("scale must be non-zero (a negative factor flips)")
            if name == "shear" and any(abs(v) >= 90 for v in vals):
                raise ValueError("shear must be within (-90, 90) degrees")
            register_tensor(self, name, value)
            self._human.append(name)

    def generate_parameters(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> Params:
        n, dtype = patches.shape[0], patches.dtype
        return {
            name: _PARSERS[name](getattr(self, name), n, dtype=dtype, device=patches.device)
            for name in self._human
        }

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        if self._theta_given:
            theta = self.theta.to(patches.dtype)
            theta = (
                theta.reshape(-1, 2, 3) if theta.dim() != 2 or theta.shape[-1] == 6 else theta[None]
            )
            if theta.shape[0] == 1:
                return theta.expand(patches.shape[0], 2, 3)
            if theta.shape[0] != patches.shape[0]:
                raise ValueError(
                    f"PatchAffine.theta has {theta.shape[0]} rows but the call has "
                    f"{patches.shape[0]} objects"
                )
            return theta
        return _affine_from_params(params, patches, self.align_corners)

    def _option_repr(self) -> list[str]:
        return [s for s in super()._option_repr() if not s.startswith("same_on")]

    def _magnitude_repr(self) -> list[str]:
        names = ["theta"] if self._theta_given else self._human
        out = []
        for name in names:
            t = getattr(self, name)
            shape = list(t.shape)
            if t.numel() <= 6:
                desc = repr([round(float(v), 6) for v in t.detach().flatten().tolist()])
                desc = desc if shape else desc[1:-1]
            else:
                desc = f"Tensor{shape}"
            out.append(f"{name}={desc}")
        return out
