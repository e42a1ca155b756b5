"""``PatchPolicy``: a differentiable, per-object augmentation policy (Faster AutoAugment style).

A policy holds ``num_sub_policies`` sub-policies of ``operation_count`` stages; each
stage chooses among the geometric operations (rotate, shear x/y, translate x/y,
scale, horizontal/vertical flip). Every operation of every stage has a learnable
magnitude and a learnable probability, every stage has learnable selection weights.
Each object draws its own sub-policy (uniformly), its own signs/magnitudes and its
own coins; the stages of its sub-policy are composed into ONE matrix, so every
object is resampled once (one :func:`augpatch.functional.warp_patches` call for the
whole batch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import augpatch.functional as F
from augpatch.functional._geometry import to3x3
from augpatch.transforms._sampling import relaxed_bernoulli, uniform01
from augpatch.transforms.base import Params, PatchAugmentationBase, SearchVariable

__all__ = ["OPERATIONS", "OperationSpec", "PatchPolicy"]


@dataclass(frozen=True)
class OperationSpec:
    """A policy operation: its default magnitude range, unit and allowed maximum.

    ``default`` is the ``(min, max)`` range of the magnitude in human units (``None``
    for the flips, which have no magnitude); ``limit`` the largest allowed ``max``.
    """

    default: tuple[float, float] | None
    unit: str
    limit: float
    strict_limit: bool = False


# name -> spec; the magnitude is applied with a random sign (or uniformly in (-m, m))
OPERATIONS: dict[str, OperationSpec] = {
    "rotate": OperationSpec((0.0, 30.0), "deg", 180.0),
    "shear_x": OperationSpec((0.0, 20.0), "deg", 90.0, strict_limit=True),
    "shear_y": OperationSpec((0.0, 20.0), "deg", 90.0, strict_limit=True),
    "translate_x": OperationSpec((0.0, 0.3), "of width", 1.0),
    "translate_y": OperationSpec((0.0, 0.3), "of height", 1.0),
    "scale": OperationSpec((0.0, 0.5), "(factor 1 +- m)", 1.0, strict_limit=True),
    "hflip": OperationSpec(None, "", 0.0),
    "vflip": OperationSpec(None, "", 0.0),
}

_SELECTIONS = ("sample", "argmax")
_SAMPLINGS = ("sign", "uniform")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _unit(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _parse_operations(
    operations: Sequence[str] | Mapping[str, Any] | None,
) -> tuple[list[str], list[tuple[float, float]]]:
    """Names and magnitude ranges (``(0, 0)`` for the flips) of the operations."""
    if operations is None:
        operations = list(OPERATIONS)
    if isinstance(operations, str) or not isinstance(operations, (Sequence, Mapping)):
        raise TypeError(
            "operations must be a sequence of names or a mapping name -> (min, max), got "
            f"{type(operations).__name__}"
        )
    items = (
        list(operations.items())
        if isinstance(operations, Mapping)
        else [(name, None) for name in operations]
    )
    if not items:
        raise ValueError("operations must name at least one operation")
    names: list[str] = []
    ranges: list[tuple[float, float]] = []
    for name, rng in items:
        if name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r}; choose from {sorted(OPERATIONS)}")
        if name in names:
            raise ValueError(f"operation {name!r} is given twice")
        spec = OPERATIONS[name]
        if spec.default is None:
            if rng is not None:
                raise ValueError(f"operation {name!r} has no magnitude: give None as its range")
            rng = (0.0, 0.0)
        elif rng is None:
            rng = spec.default
        else:
            if isinstance(rng, (int, float)) and not isinstance(rng, bool):
                rng = (0.0, rng)
            if not (isinstance(rng, Sequence) and len(rng) == 2):
                raise ValueError(f"the range of {name!r} must be a (min, max) pair, got {rng!r}")
            lo, hi = (float(v) for v in rng)
            too_big = hi > spec.limit or (spec.strict_limit and hi >= spec.limit)
            if not (0 <= lo <= hi) or too_big or not math.isfinite(hi):
                bound = f"< {spec.limit}" if spec.strict_limit else f"<= {spec.limit}"
                raise ValueError(
                    f"the range of {name!r} must satisfy 0 <= min <= max {bound}, got {rng!r}"
                )
            rng = (lo, hi)
        names.append(name)
        ranges.append((float(rng[0]), float(rng[1])))
    return names, ranges


class PatchPolicy(PatchAugmentationBase):
    r"""A differentiable per-object augmentation policy (Faster AutoAugment / DADA style).

    Structure: ``num_sub_policies`` sub-policies x ``operation_count`` stages x ``O``
    operations. Learnable (``nn.Parameter`` s of shape ``[S, K, O]``, so an optimiser
    and ``DistributedDataParallel`` treat them as usual):

    * ``magnitude``: normalised to ``[0, 1]``; operation ``o`` uses the human magnitude
      ``m = lo_o + magnitude * (hi_o - lo_o)`` (its range, see ``operations``) and
      applies ``+m`` or ``-m`` with equal chance (``magnitude_sampling="sign"``, as Faster
      AutoAugment and RandAugment) or a value uniform in ``(-m, m)`` (``"uniform"``, as
      :class:`~augpatch.RandomPatchRotation`); scale applies the factor ``1 + value``;
      the flips have no magnitude (their entries get no gradient);
    * ``probability``: in ``[0, 1]``, the chance that the operation is applied;
    * ``weights``: selection logits of the operations in each stage.

    ``magnitude`` and ``probability`` are clamped to ``[0, 1]`` where they are used
    (no gradient beyond); call :meth:`project_` after each optimiser step to keep the
    parameters themselves there.

    Per object: a sub-policy is drawn uniformly; for each of its stages and each
    operation a sign (or value), a coin and a selection noise are drawn. Then

    * **train()**: the coin is the relaxed Bernoulli gate ``g``
      (:func:`~augpatch.transforms._sampling.relaxed_bernoulli`, ``gate_temperature``)
      and the stage weights its operations with ``w = softmax(weights / temperature)``
      (Faster AutoAugment). With ``straight_through=True`` both are hard in the forward
      pass (the coin ``u < p`` and the Gumbel-max draw from ``softmax(weights /
      temperature)``, exactly what ``eval()`` draws from the same noise) and take the
      gradients of the relaxed gate and of the Gumbel-softmax ``softmax(weights /
      temperature + G)`` (straight-through estimators, biased).
    * **eval()**: hard coins and one operation per stage: a Gumbel-max draw from
      ``softmax(weights / temperature)`` (``eval_selection="sample"``) or the
      operation of largest weight (``"argmax"``). With a ``generator`` the draws are
      reproducible.

    Relaxation (one matrix per object): operation ``o`` of stage ``k`` runs at strength
    ``s_ko = w_ko g_ko`` (selection weight times gate): it applies ``s_ko`` times its
    drawn value ``v_ko`` (a rotation by ``s v`` degrees, a shift by ``s v``, a scale
    factor ``1 + s v``, ...), a genuine transform of its own kind at every strength, with
    the matrix ``A_o(s v)`` built in pixel space by
    :func:`augpatch.functional.patch_affine_matrix` (a rotated object keeps its shape in
    any box); a flip has no magnitude to scale and is ``lerp(I, F, s)`` (a squeeze in
    between). The stage is the product of its operations in the order of
    ``operations``, and the object's matrix ``theta`` is the product of its stages
    (``theta = S_1 @ S_2 @ ...``: the content moves by stage 1 first, as in
    :class:`~augpatch.PatchSequential`). With hard coins and one-hot selections (eval,
    straight-through) every unchosen operation is exactly the identity and ``theta``
    is exactly the product of the chosen operations' matrices. Faster AutoAugment
    instead mixes the operations' IMAGES ``sum_o w_o op_o(x)``, which needs one
    resampling per operation; mixing matrices ``sum_o w_o A_o`` would shrink and squeeze
    the objects (a mixture of rotations is not a rotation), a bias the strength
    relaxation avoids for every operation but the flips. In the rare case that
    ``theta`` is exactly singular, ``eps`` is added to its diagonal.

    Args:
        operations: names (default: all of :data:`OPERATIONS`: ``rotate`` (degrees),
            ``shear_x``/``shear_y`` (degrees), ``translate_x``/``translate_y`` (fraction
            of the box), ``scale`` (factor ``1 +- m``), ``hflip``, ``vflip``) or a mapping
            ``name -> (min, max)`` magnitude range (a number ``x`` means ``(0, x)``;
            ``None`` takes the default; flips take ``None``).
        num_sub_policies: ``S``.
        operation_count: ``K``, stages per sub-policy.
        temperature: of the selection softmax (default 0.05, Faster AutoAugment's).
        gate_temperature: of the relaxed Bernoulli gates (default 0.1).
        straight_through: hard forward in train(), straight-through gradients.
        eval_selection: ``"sample"`` (default) or ``"argmax"``.
        magnitude_sampling: ``"sign"`` (default) or ``"uniform"``.
        init_magnitude, init_probability: initial values (in ``[0, 1]``).
        **kwargs: ``p`` (default 1.0: the policy's own coin, in front of everything),
            ``same_on_batch``, ``same_on_image``, ``resample``, ``padding_mode``,
            ``align_corners``, ``overlap``, ``generator``, ``drop_invalid``: see
            :class:`~augpatch.PatchAugmentationBase`.

    Parameters (``aug._params``): ``sub_policy [N]`` (int64), ``op_value [N, K, O]``
    (signed human magnitudes), ``op_gate [N, K, O]`` (gates in ``[0, 1]``),
    ``op_weight [N, K, O]`` (selection weights; one-hot when hard) and the base's
    ``theta``, ``batch_prob``, ``patches``, ``obj_to_img``, ``keep``. Replaying them
    (``params=aug._params``) reproduces the call bit for bit; without ``theta`` the
    matrix is recomputed from ``op_value``, ``op_gate`` and ``op_weight``.

    Example:
        >>> policy = PatchPolicy(num_sub_policies=2, operation_count=2)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> boxes = torch.tensor([[2, 2, 14, 20], [10, 8, 30, 30]])
        >>> out = policy(images, boxes, torch.tensor([0, 1]))
        >>> out.images.square().mean().backward()
        >>> [tuple(t.grad.shape) for t in (policy.magnitude, policy.probability, policy.weights)]
        [(2, 2, 8), (2, 2, 8), (2, 2, 8)]
    """

    def __init__(
        self,
        operations: Sequence[str] | Mapping[str, Any] | None = None,
        num_sub_policies: int = 4,
        operation_count: int = 2,
        *,
        temperature: float = 0.05,
        gate_temperature: float = 0.1,
        straight_through: bool = False,
        eval_selection: str = "sample",
        magnitude_sampling: str = "sign",
        init_magnitude: float = 0.5,
        init_probability: float = 0.5,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("p", 1.0)
        super().__init__(**kwargs)
        names, ranges = _parse_operations(operations)
        self.operations: list[str] = names
        self.num_sub_policies = _count("num_sub_policies", num_sub_policies)
        self.operation_count = _count("operation_count", operation_count)
        self.temperature = _positive("temperature", temperature)
        self.gate_temperature = _positive("gate_temperature", gate_temperature)
        if not isinstance(straight_through, bool):
            raise TypeError(
                f"straight_through must be a bool, got {type(straight_through).__name__}"
            )
        self.straight_through = straight_through
        if eval_selection not in _SELECTIONS:
            raise ValueError(f"eval_selection must be one of {_SELECTIONS}, got {eval_selection!r}")
        self.eval_selection = eval_selection
        if magnitude_sampling not in _SAMPLINGS:
            raise ValueError(
                f"magnitude_sampling must be one of {_SAMPLINGS}, got {magnitude_sampling!r}"
            )
        self.magnitude_sampling = magnitude_sampling
        shape = (self.num_sub_policies, self.operation_count, len(names))
        init_m = _unit("init_magnitude", init_magnitude)
        init_p = _unit("init_probability", init_probability)
        self.magnitude = nn.Parameter(torch.full(shape, init_m))
        self.probability = nn.Parameter(torch.full(shape, init_p))
        self.weights = nn.Parameter(torch.zeros(shape))
        lo = torch.tensor([r[0] for r in ranges])
        hi = torch.tensor([r[1] for r in ranges])
        # constant per-operation tables (buffers: they follow .to(device))
        self.register_buffer("range_min", lo, persistent=False)
        self.register_buffer("range_max", hi, persistent=False)
        self.register_buffer("_kind", self._kind_table(names), persistent=False)

    # ------------------------------------------------------------------ tables

    @staticmethod
    def _kind_table(names: list[str]) -> Tensor:
        """``[O, 8]`` masks: rotate, shear_x, shear_y, translate_x, translate_y, scale,
        and the fixed flip factors (sx, sy) (1 where not a flip)."""
        cols = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y", "scale")
        rows = []
        for name in names:
            row = [float(name == c) for c in cols]
            row += [-1.0 if name == "hflip" else 1.0, -1.0 if name == "vflip" else 1.0]
            rows.append(row)
        return torch.tensor(rows)

    def human_magnitude(self) -> Tensor:
        """``[S, K, O]`` magnitudes in human units (``magnitude`` clamped to ``[0, 1]``,
        mapped into each operation's range; 0 for the flips)."""
        m = self.magnitude.clamp(0.0, 1.0)
        return self.range_min + m * (self.range_max - self.range_min)

    def selection_probabilities(self) -> Tensor:
        """``[S, K, O]`` ``softmax(weights / temperature)`` of every stage."""
        return torch.softmax(self.weights / self.temperature, -1)

    @torch.no_grad()
    def project_(self) -> PatchPolicy:
        """Clamp ``magnitude`` and ``probability`` into ``[0, 1]`` in place (after a step).

        Deterministic, so under DDP every rank stays identical.
        """
        self.magnitude.clamp_(0.0, 1.0)
        self.probability.clamp_(0.0, 1.0)
        return self

    def parameter_bounds(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> dict[str, tuple[Tensor, Tensor, str]]:
        """``{"op_value": (-m, m, "sub_policy")}``: every operation's value lies within
        ``(-m, m)`` of its current human magnitude ``m [S, K, O]`` (detached); an object
        is bounded by the row of its ``sub_policy`` (see :meth:`search_space`).

        Example:
            >>> lo, hi, form = PatchPolicy(["rotate"], 1, 1).parameter_bounds()["op_value"]
            >>> hi.tolist(), form
            ([[[15.0]]], 'sub_policy')
        """
        mag = self.human_magnitude().detach().to(device=device, dtype=dtype)
        return {"op_value": (-mag, mag, "sub_policy")}

    def search_space(self, params: Params, prefix: str = "") -> list[SearchVariable]:
        """The operation values ``op_value [N, K, O]``, each within ``(-m, m)`` of the
        magnitudes of its object's sub-policy."""
        value = params[prefix + "op_value"]
        sub = params[prefix + "sub_policy"].to(value.device)
        lo, hi, _ = self.parameter_bounds(value.device, value.dtype)["op_value"]
        return [SearchVariable(prefix + "op_value", value, lo[sub], hi[sub], lambda x: x)]

    def check_finite(self) -> None:
        """Raise ``ValueError`` naming the first non-finite learnable entry (a diverged
        training): which parameter (``weights``, ``magnitude``, ``probability``), its
        sub-policy, stage and operation, and its value.

        Example:
            >>> policy = PatchPolicy(["rotate", "hflip"], 1, 1)
            >>> with torch.no_grad():
            ...     policy.weights[0, 0, 1] = float("nan")
            >>> policy.check_finite()
            Traceback (most recent call last):
            ...
            ValueError: PatchPolicy.weights[0, 0, 1] (sub-policy 0, stage 0, operation 'hflip') is nan: ...
        """
        if torch.compiler.is_compiling():
            return
        names = ("weights", "magnitude", "probability")
        values = [getattr(self, name).detach() for name in names]
        if bool(torch.stack([torch.isfinite(v).all() for v in values]).all()):
            return  # one device sync in the usual case
        for name in names:
            value = getattr(self, name).detach()
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                s, k, o = (int(i) for i in torch.nonzero(bad)[0])
                raise ValueError(
                    f"PatchPolicy.{name}[{s}, {k}, {o}] (sub-policy {s}, stage {k}, operation "
                    f"{self.operations[o]!r}) is {float(value[s, k, o])}: the policy's "
                    f"parameters must be finite ({int(bad.sum())} non-finite entries in "
                    f"{name}; a diverged training? lower the learning rate or clip gradients)"
                )

    # ------------------------------------------------------------------ hooks

    def generate_parameters(
        self,
        patches: Tensor,
        obj_to_img: Tensor,
        batch_size: int,
        generator: torch.Generator | None,
    ) -> Params:
        self.check_finite()
        g, device, dtype = patches.shape[0], patches.device, patches.dtype
        s, k, o = self.magnitude.shape
        # draw order: sub-policy [G], value noise, coin noise, selection noise [G, K, O]
        sub = (uniform01((g,), generator, device) * s).long().clamp_(max=s - 1)
        u_val = uniform01((g, k, o), generator, device).to(dtype)
        u_gate = uniform01((g, k, o), generator, device)
        u_sel = uniform01((g, k, o), generator, device).to(dtype)

        mag = self.human_magnitude().to(device=device, dtype=dtype)[sub]
        if self.magnitude_sampling == "sign":
            value = torch.where(u_val < 0.5, -mag, mag)
        else:
            value = mag * (2 * u_val - 1)

        prob = self.probability.to(device=device, dtype=dtype)[sub]
        if self.training:
            gate = relaxed_bernoulli(
                prob, u_gate, self.gate_temperature, hard=self.straight_through
            ).to(dtype)
        else:
            gate = (u_gate < prob.detach()).to(dtype)

        logits = (self.weights.to(device=device, dtype=dtype) / self.temperature)[sub]
        if self.training and not self.straight_through:
            weight = torch.softmax(logits, -1)
        elif not self.training and self.eval_selection == "argmax":
            weight = nn.functional.one_hot(logits.argmax(-1), o).to(dtype)
        else:  # Gumbel-max draw; straight-through Gumbel-softmax gradient in train()
            tiny = torch.finfo(dtype).tiny
            gumbel = -torch.log(-torch.log(u_sel.clamp(min=tiny)))
            noisy = logits + gumbel
            weight = nn.functional.one_hot(noisy.argmax(-1), o).to(dtype)
            if self.training:
                soft = torch.softmax(noisy, -1)
                weight = weight + (soft - soft.detach())
            else:
                weight = weight.detach()
        return {"sub_policy": sub, "op_value": value, "op_gate": gate, "op_weight": weight}

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        """``theta [N, 2, 3]``: per stage, every operation at strength ``s = w g`` composed in
        order (``A_o(s v)``; flips ``lerp(I, F, s)``), the stages composed in order."""
        value = params["op_value"].to(patches.dtype)
        gate = params["op_gate"].to(patches.dtype)
        weight = params["op_weight"].to(patches.dtype)
        n, k, o = value.shape
        if o != len(self.operations) or k != self.operation_count:
            raise ValueError(
                f"params['op_value'] has shape {tuple(value.shape)} but the policy has "
                f"{self.operation_count} stages of {len(self.operations)} operations"
            )
        strength = weight * gate  # [N, K, O]: 0 or 1 when hard
        kind = self._kind.to(device=patches.device, dtype=patches.dtype)  # [O, 8]
        size = patches[:, 2:] - patches[:, :2]  # [N, 2]
        v = value * strength  # an operation at strength s applies the value s v
        angle = v * kind[:, 0]
        shear = torch.stack((v * kind[:, 1], v * kind[:, 2]), -1)
        translate = torch.stack((v * kind[:, 3], v * kind[:, 4]), -1) * size[:, None, None]
        factor = 1 + v * kind[:, 5]
        scale = torch.stack((factor * kind[:, 6], factor * kind[:, 7]), -1)
        rows = n * k * o
        ops = F.patch_affine_matrix(
            patches[:, None, None].expand(n, k, o, 4).reshape(rows, 4),
            angle=angle.reshape(rows),
            translate=translate.reshape(rows, 2),
            scale=scale.reshape(rows, 2),
            shear=shear.reshape(rows, 2),
            align_corners=self.align_corners,
        ).reshape(n, k, o, 2, 3)
        eye = torch.eye(2, 3, dtype=patches.dtype, device=patches.device).expand_as(ops)
        flip = (kind[:, 6] * kind[:, 7] < 0)[:, None, None]  # a flip has no magnitude path
        ops = torch.where(flip, torch.lerp(eye, ops, strength[..., None, None]), ops)
        # exactly the identity at strength 0 (the gradient still flows through ``ops``)
        off = (strength == 0)[..., None, None]
        ops = torch.where(off, eye, ops.detach()) + (ops - ops.detach())
        theta = torch.eye(3, dtype=patches.dtype, device=patches.device).expand(n, 3, 3)
        for j in range(k):
            for i in range(o):
                theta = theta @ to3x3(ops[:, j, i])
        theta = theta[:, :2, :]
        det = theta[:, 0, 0] * theta[:, 1, 1] - theta[:, 0, 1] * theta[:, 1, 0]
        singular = (det == 0).to(theta.dtype) * (4 * torch.finfo(theta.dtype).eps)
        return theta + singular[:, None, None] * torch.eye(2, 3, dtype=theta.dtype,
                                                           device=theta.device)

    # ------------------------------------------------------------------ reporting

    def describe(self, top: int = 3) -> str:
        """The learned policy as text: per stage, the ``top`` operations by selection
        probability with their magnitude (human units) and probability.

        Example:
            >>> print(PatchPolicy(["rotate", "hflip"], 1, 1).describe())
            sub-policy 0
              stage 0: rotate 50% (m=15 deg, p=0.50) | hflip 50% (p=0.50)
        """
        sel = self.selection_probabilities().detach().cpu()
        mag = self.human_magnitude().detach().cpu()
        prob = self.probability.detach().clamp(0, 1).cpu()
        lines = []
        for s in range(self.num_sub_policies):
            lines.append(f"sub-policy {s}")
            for k in range(self.operation_count):
                order = sel[s, k].argsort(descending=True)[:top].tolist()
                parts = []
                for o in order:
                    name = self.operations[o]
                    spec = OPERATIONS[name]
                    m = "" if spec.default is None else f"m={float(mag[s, k, o]):.3g} {spec.unit}, "
                    share = f"{100 * float(sel[s, k, o]):.0f}%"
                    parts.append(f"{name} {share} ({m}p={float(prob[s, k, o]):.2f})")
                lines.append(f"  stage {k}: " + " | ".join(parts))
        return "\n".join(lines)

    def _option_repr(self) -> list[str]:
        return [
            f"operations={self.operations}",
            f"num_sub_policies={self.num_sub_policies}",
            f"operation_count={self.operation_count}",
            f"temperature={self.temperature}",
            f"gate_temperature={self.gate_temperature}",
            f"straight_through={self.straight_through}",
            f"eval_selection={self.eval_selection!r}",
            f"magnitude_sampling={self.magnitude_sampling!r}",
            *super()._option_repr(),
        ]
