"""``attack``: worst-case per-object augmentation parameters (AugMax-style).

Projected sign-gradient ascent on every object's human parameters (angles, shifts,
scales, shears, a policy's operation values) within the bounds of the transform,
maximising a loss of the transformed batch. The result is an ordinary parameter
dict: ``transform(images, boxes, obj_to_img, params=adv)`` replays it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from augpatch.transforms._result import PatchResult
from augpatch.transforms.base import Params, PatchAugmentationBase, SearchVariable
from augpatch.transforms.container import PatchSequential

__all__ = ["attack", "attack_space"]

_INITS = ("random", "center")
_DROP = ("theta", "patches", "obj_to_img", "keep")


_Var = SearchVariable  # the attacked tensors (kept under their old name)


def attack_space(
    transform: PatchAugmentationBase, params: Params, prefix: str = ""
) -> list[SearchVariable]:
    """The attacked variables of ``transform`` for a parameter dict, with their bounds.

    Each transform says it itself (:meth:`~augpatch.PatchAugmentationBase.search_space`,
    built from its :meth:`~augpatch.PatchAugmentationBase.parameter_bounds`):
    :class:`~augpatch.RandomPatchAffine` and its subclasses (each given magnitude range
    bounds its parameter; an isotropic scale stays isotropic, an x-only shear stays
    x-only), :class:`PatchPolicy` (operation values within ``(-m, m)``),
    :class:`~augpatch.PatchSequential` (its children, recursively), and the
    parameter-free flips and :class:`~augpatch.PatchAffine` (nothing to attack). A new
    transform takes part by defining ``parameter_bounds``.
    Raises ``TypeError`` for anything that is not a patch transform.
    """
    if not isinstance(transform, PatchAugmentationBase):
        raise TypeError(f"transform must be a patch transform, got {type(transform).__name__}")
    return transform.search_space(params, prefix)


def _fix_coins(transform: PatchAugmentationBase, params: Params, prefix: str, on: bool) -> None:
    """Hard coins for every level: forced on where something is attacked, else as drawn
    (a relaxed gate becomes the coin ``gate > 1/2``); matrices are recomputed."""
    key = prefix + "batch_prob"
    n = params[key].shape[0]
    gate = params.pop(prefix + "gate", None)
    params.pop(prefix + "theta", None)
    if on:
        params[key] = torch.ones(n, dtype=torch.bool, device=params[key].device)
    elif gate is not None:
        params[key] = gate > 0.5
    if isinstance(transform, PatchSequential):
        for k, child in enumerate(transform.children_list()):
            sub = f"{prefix}{k}."
            has_vars = bool(attack_space(child, params, sub))
            _fix_coins(child, params, sub, has_vars)


def _check_args(steps: object, step_size: object, init: object) -> tuple[int, float]:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if (
        isinstance(step_size, bool)
        or not isinstance(step_size, (int, float))
        or not (step_size > 0 and math.isfinite(step_size))
    ):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    if not (isinstance(init, Mapping) or init in _INITS):
        raise ValueError(f"init must be one of {_INITS} or a parameter dict, got {init!r}")
    return steps, float(step_size)


def _loss_value(loss: object, n: int) -> Tensor:
    if not isinstance(loss, Tensor):
        raise TypeError(f"loss_fn must return a floating point tensor, got {type(loss).__name__}")
    if not loss.is_floating_point():
        raise TypeError(
            f"loss_fn must return a floating point tensor, got a tensor of dtype {loss.dtype} "
            "(an integer or bool loss has no gradient: compute it in float)"
        )
    if loss.dim() == 0 or (loss.dim() == 1 and loss.shape[0] == n):
        return loss
    raise ValueError(
        f"loss_fn must return a scalar or one loss per object [N] = [{n}], "
        f"got shape {tuple(loss.shape)}"
    )


def attack(
    transform: PatchAugmentationBase,
    loss_fn: Callable[[PatchResult], Tensor],
    images: Tensor,
    boxes: Tensor | list[Tensor],
    obj_to_img: Tensor | None = None,
    *,
    steps: int = 5,
    step_size: float = 0.25,
    init: str | Mapping[str, Any] = "random",
    masks: Tensor | None = None,
    image_masks: Tensor | None = None,
    keypoints: Tensor | None = None,
) -> Params:
    r"""Worst-case per-object parameters of ``transform`` within its bounds (AugMax style).

    Projected sign-gradient ascent: with ``x`` every object's human parameters (see
    :func:`attack_space`) and ``[lo, hi]`` their bounds (the transform's magnitude
    ranges, at their current values),

    .. math:: x \leftarrow \operatorname{clip}_{[lo, hi]}\big(x + \text{step\_size}
              \cdot (hi - lo) \cdot \operatorname{sign} \nabla_x \mathcal{L}\big),

    ``steps`` times, where ``L = loss_fn(transform(images, boxes, obj_to_img,
    params=x))``. The step is a fraction of each parameter's range width, so one
    ``step_size`` suits degrees, fractions and factors alike. Every iterate (the
    start included) is evaluated and the best is returned: for a scalar loss the
    iterate with the largest loss; for a loss per object (shape ``[N]``, e.g. a
    per-object cross-entropy with ``reduction="none"``) each object's best iterate,
    which is right when objects do not interact (no overlapping boxes) and maximises
    their sum.

    Only the parameters are differentiated (``torch.autograd.grad``): no gradient
    accumulates on the model inside ``loss_fn``, on the transform's own parameters
    or on the inputs, and nothing is updated. Put the model in ``eval()`` if it has
    batch-norm statistics or dropout that ``loss_fn`` should not change.

    Discrete choices are not attacked: the ``p`` coin of every transform with
    attacked parameters is forced on (every object is attacked); flips keep their
    drawn coins; a :class:`PatchPolicy` keeps its drawn sub-policies, selections and
    gates (use ``policy.eval()`` for hard ones) and its operation values are attacked
    within ``(-m, m)``. Shared draws (``same_on_batch``/``same_on_image``) are not
    kept: each object is attacked on its own.

    Args:
        transform: a supported transform (see :func:`attack_space`).
        loss_fn: ``PatchResult -> Tensor``, a scalar or ``[N]`` loss to MAXIMISE.
        images: ``[B, C, H, W]`` images.
        boxes: ``[N, 4]`` boxes (or a list of ``B`` tensors).
        obj_to_img: ``[N]`` image of each box.
        steps: number of ascent steps (0: return the start).
        step_size: step as a fraction of each parameter's range width (default 0.25).
        init: ``"random"`` (a draw of the transform: uses its generator or the global
            RNG), ``"center"`` (the middle of every range; coins and discrete draws
            still come from one draw) or a parameter dict to start from (e.g. the
            result of a previous attack).
        masks, image_masks, keypoints: passed to every call of the transform.

    Returns:
        The parameter dict of the best iterate, with ``theta`` (``aug._params`` of a
        call with it): ``transform(images, boxes, obj_to_img, params=adv)`` reproduces
        the attacked batch bit for bit. ``transform._params`` is set to it too.

    Example:
        >>> from augpatch import RandomPatchRotation
        >>> aug = RandomPatchRotation(30.0)
        >>> images, boxes = torch.rand(1, 1, 16, 16), torch.tensor([[0, 0, 8, 8], [8, 8, 16, 16]])
        >>> adv = attack(aug, lambda r: -r.images.sum(), images, boxes, steps=3)
        >>> bool((adv["angle"].abs() <= 30).all())
        True
        >>> torch.equal(aug(images, boxes, params=adv).images, aug(images, boxes, params=adv).images)
        True
    """
    steps, step = _check_args(steps, step_size, init)
    if not isinstance(transform, PatchAugmentationBase):
        raise TypeError(f"transform must be a patch transform, got {type(transform).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    images = images.detach()
    with torch.no_grad():
        if isinstance(init, Mapping):
            start = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in init.items()}
        else:
            start = transform.forward_parameters(images.shape, boxes, obj_to_img)
    base = {k: v for k, v in start.items() if k not in _DROP}
    variables = attack_space(transform, base)
    if not variables:
        raise ValueError(f"{type(transform).__name__} has no bounded parameters to attack")
    _fix_coins(transform, base, "", True)
    n = int(base["batch_prob"].shape[0])
    for var in variables:
        var.x = var.x.detach().to(var.lo.dtype)
        if init == "center":
            var.x = (var.lo + var.hi) / 2
        var.x = torch.minimum(torch.maximum(var.x, var.lo), var.hi)  # a given start, projected

    call = {"masks": masks, "image_masks": image_masks, "keypoints": keypoints}

    def run(xs: list[Tensor]) -> PatchResult:
        params = dict(base)
        params.update({v.key: v.expand(x) for v, x in zip(variables, xs)})
        return transform(images, boxes, obj_to_img, params=params, **call)

    best_x = [v.x for v in variables]
    best_loss: Tensor | None = None
    best_params: Params | None = None
    xs = list(best_x)
    for it in range(steps + 1):
        last = it == steps
        leaves = [x.detach().requires_grad_(not last) for x in xs]
        with torch.enable_grad():
            result = run(leaves)
            loss = _loss_value(loss_fn(result), n)
        value = loss.detach()
        if best_loss is None:
            best_loss, best_params = value, result.params
        elif value.dim() == 0:
            if bool(value > best_loss):
                best_loss, best_params, best_x = value, result.params, [x.detach() for x in xs]
        else:
            better = value > best_loss
            best_loss = torch.where(better, value, best_loss)
            best_x = [
                torch.where(better.view(-1, *[1] * (x.dim() - 1)), x.detach(), b)
                for x, b in zip(xs, best_x)
            ]
            best_params = None  # a mix of iterates: evaluated once more below
        if last:
            break
        if loss.requires_grad:
            grads = torch.autograd.grad(loss.sum(), leaves, allow_unused=True)
        else:  # the loss does not depend on the parameters: nothing to climb
            grads = (None,) * len(leaves)
        new = []
        for var, x, g in zip(variables, leaves, grads):
            x = x.detach()
            if g is not None:
                x = x + step * (var.hi - var.lo) * torch.sign(g)
            new.append(torch.minimum(torch.maximum(x, var.lo), var.hi))
        xs = new
    if best_params is None:
        with torch.no_grad():
            best_params = run(best_x).params
    transform._params = best_params
    return best_params
