"""Argument parsing for magnitudes and reparameterised sampling.

A *magnitude range* is a pair of bounds ``(lo, hi)``; every bound is either a
Python float or a view of a tensor registered on the transform (an
``nn.Parameter`` stays a parameter, any other tensor becomes a buffer), so that
learnable magnitudes receive gradients and move with ``.to(device)``.

Sampling is reparameterised: ``value = lo + (hi - lo) * u`` with ``u ~ U[0, 1)``
drawn without gradient, so ``d value / d lo = 1 - u`` and ``d value / d hi = u``.
For a symmetric magnitude ``m`` (range ``(c - m, c + m)``) this is
``c + m * (2u - 1)``.

Public so that other packages (``augpatch.search``) draw the same way as the
transforms (``augpatch.transforms._sampling`` remains as an alias of this module).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "Bound",
    "Range",
    "check_probability",
    "check_range",
    "parse_range",
    "register_tensor",
    "relaxed_bernoulli",
    "sample_gate",
    "uniform01",
]


@dataclass(frozen=True)
class Bound:
    """One end of a range: ``offset + coef * module.<attr>[index]`` or a constant."""

    offset: float = 0.0
    attr: str | None = None
    index: int | tuple[int, ...] | None = None
    coef: float = 1.0

    def get(self, module: nn.Module, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The bound as a 0-d tensor (differentiable w.r.t. the registered tensor)."""
        if self.attr is None:
            return torch.tensor(self.offset, device=device, dtype=dtype)
        t = getattr(module, self.attr)
        if self.index is not None:
            t = t[self.index]
        return self.offset + self.coef * t.to(device=device, dtype=dtype)

    def value(self, module: nn.Module) -> float:
        """The current value as a Python float (for validation and ``repr``)."""
        if self.attr is None:
            return self.offset
        t = getattr(module, self.attr).detach()
        if self.index is not None:
            t = t[self.index]
        return self.offset + self.coef * float(t)


@dataclass(frozen=True)
class Range:
    """A sampling range ``[lo, hi]`` made of two :class:`Bound` s."""

    lo: Bound
    hi: Bound

    def bounds(
        self, module: nn.Module, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        return self.lo.get(module, device, dtype), self.hi.get(module, device, dtype)

    def values(self, module: nn.Module) -> tuple[float, float]:
        return self.lo.value(module), self.hi.value(module)

    def sample(self, module: nn.Module, u01: Tensor) -> Tensor:
        """Reparameterised draw ``lo + (hi - lo) * u01`` (shape and dtype of ``u01``)."""
        lo, hi = self.bounds(module, u01.device, u01.dtype)
        return lo + (hi - lo) * u01


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def register_tensor(module: nn.Module, name: str, value: Tensor) -> None:
    """Register ``value`` on ``module``: Parameters as parameters, other tensors as buffers.

    The tensor object itself is kept (no copy), so a user tensor with
    ``requires_grad=True`` receives its gradient. Integer tensors are converted
    to float32 (they cannot carry gradients anyway).
    """
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must be a real tensor, got {value.dtype}")
    if isinstance(value, nn.Parameter):
        module.register_parameter(name, value)
    else:
        if not value.is_floating_point():
            value = value.float()
        module.register_buffer(name, value)


def _finite(name: str, x: float) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def _tensor_values(name: str, t: Tensor) -> list[float]:
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must be a real tensor, got {t.dtype}")
    vals = [float(v) for v in t.detach().flatten().cpu().tolist()]
    for v in vals:
        _finite(name, v)
    return vals


def parse_range(
    module: nn.Module,
    name: str,
    value: object,
    *,
    center: float = 0.0,
    lower: float | None = None,
    upper: float | None = None,
    strict_lower: bool = False,
    strict_upper: bool = False,
) -> Range:
    """Turn a user magnitude into a :class:`Range`, registering tensors on ``module``.

    Accepted forms (a *number* is a Python real or a 0-d tensor):

    * a number ``m >= 0``: the symmetric range ``(center - m, center + m)``;
    * a pair ``(lo, hi)`` of numbers with ``lo <= hi``, or a 1-D tensor of two.

    ``lower``/``upper`` bound the resulting range (``strict_*`` excludes the bound).
    Raises ``TypeError`` for a wrong type and ``ValueError`` for a bad value.
    """
    bad_type = TypeError(
        f"{name} must be a number, a (min, max) pair or a tensor of 1 or 2 values, "
        f"got {type(value).__name__}"
    )
    if _is_number(value):
        m = _finite(name, float(value))  # type: ignore[arg-type]
        if m < 0:
            raise ValueError(f"{name} given as a single number must be non-negative, got {m}")
        rng = Range(Bound(center - m), Bound(center + m))
    elif isinstance(value, Tensor):
        vals = _tensor_values(name, value)
        if value.dim() == 0:
            if vals[0] < 0:
                raise ValueError(
                    f"{name} given as a single number must be non-negative, got {vals[0]}"
                )
            register_tensor(module, name, value)
            rng = Range(Bound(center, name, None, -1.0), Bound(center, name, None, 1.0))
        elif value.dim() == 1 and value.numel() == 2:
            register_tensor(module, name, value)
            rng = Range(Bound(0.0, name, 0), Bound(0.0, name, 1))
        else:
            raise ValueError(
                f"{name} as a tensor must have shape [] or [2], got {tuple(value.shape)}"
            )
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be a number or a (min, max) pair, got {len(value)} values"
            )
        bounds = []
        for k, (item, suffix) in enumerate(zip(value, ("min", "max"))):
            if _is_number(item):
                bounds.append(Bound(_finite(name, float(item))))
            elif isinstance(item, Tensor) and item.dim() == 0:
                _tensor_values(name, item)
                register_tensor(module, f"{name}_{suffix}", item)
                bounds.append(Bound(0.0, f"{name}_{suffix}"))
            else:
                raise TypeError(
                    f"{name}[{k}] must be a number or a 0-d tensor, got {type(item).__name__}"
                )
        rng = Range(bounds[0], bounds[1])
    else:
        raise bad_type
    return check_range(
        module,
        name,
        rng,
        lower=lower,
        upper=upper,
        strict_lower=strict_lower,
        strict_upper=strict_upper,
    )


def check_range(
    module: nn.Module,
    name: str,
    rng: Range,
    *,
    lower: float | None = None,
    upper: float | None = None,
    strict_lower: bool = False,
    strict_upper: bool = False,
) -> Range:
    """Check ``min <= max`` and the allowed bounds of a range; return it unchanged."""
    lo, hi = rng.values(module)
    if lo > hi:
        raise ValueError(f"{name} range must satisfy min <= max, got ({lo}, {hi})")
    if lower is not None and (lo < lower or (strict_lower and lo == lower)):
        op = ">" if strict_lower else ">="
        raise ValueError(f"{name} must be {op} {lower}, got range ({lo}, {hi})")
    if upper is not None and (hi > upper or (strict_upper and hi == upper)):
        op = "<" if strict_upper else "<="
        raise ValueError(f"{name} must be {op} {upper}, got range ({lo}, {hi})")
    return rng


def uniform01(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """``U[0, 1)`` float32 draws of ``shape`` on ``device``.

    With a ``generator`` the draw happens on the generator's device; without one
    it uses the global CPU RNG (``torch.manual_seed``), so a seed reproduces the
    same parameters whatever device the images live on. The draw is then moved
    to ``device``.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float32)
    return u.to(device)


# --------------------------------------------------------------------------- the p gate


def check_probability(name: str, p: object) -> float | Tensor:
    """A probability: a Python number in ``[0, 1]`` (returned as float), or a 0-d real
    floating tensor with a value in ``[0, 1]`` (returned as is, e.g. an ``nn.Parameter``)."""
    if isinstance(p, Tensor):
        if p.dim() != 0 or not p.is_floating_point():
            raise TypeError(
                f"{name} as a tensor must be a 0-d floating point tensor, got "
                f"shape {tuple(p.shape)} and dtype {p.dtype}"
            )
        value = float(p.detach())
    elif _is_number(p):
        value = float(p)  # type: ignore[arg-type]
    else:
        raise TypeError(
            f"{name} must be a number in [0, 1] or a 0-d tensor, got {type(p).__name__}"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return p if isinstance(p, Tensor) else value


def relaxed_bernoulli(p: Tensor, u: Tensor, temperature: float, *, hard: bool = False) -> Tensor:
    r"""Relaxed Bernoulli (binary Concrete) gate from uniform noise, differentiable in ``p``.

    With ``L = logit(u)`` (standard logistic noise for ``u ~ U(0, 1)``) the gate is

    .. math:: g = \sigma\big((\operatorname{logit} p - \operatorname{logit} u) / T\big),

    the binary Concrete / Gumbel-sigmoid sample of Maddison et al. and Jang et al.
    (2017). As ``T -> 0`` it tends to the hard coin ``u < p`` of the SAME ``u``
    (``g > 1/2`` exactly when ``u < p``), so the relaxed and the hard gate share their
    draws. ``p`` is clamped to ``[1e-6, 1 - 1e-6]`` inside the logit (no gradient
    beyond; keep a learnable ``p`` in ``[0, 1]`` by projecting after each step).

    ``hard=True`` is the straight-through estimator: the forward value is exactly the
    hard coin ``(u < p)`` as ``0.``/``1.``, the gradient is that of the relaxed ``g``.

    Bias: the relaxed gate optimises the loss of the *mixed* transform
    ``lerp(identity, op, g)``, not the expected loss ``p L(op) + (1 - p) L(identity)``
    of the hard coin; the gap vanishes as ``T -> 0`` while the gradient variance grows
    like ``1 / T``. The straight-through gradient is biased for every ``T`` (it is the
    relaxed gradient evaluated at a hard sample). A gate of exactly ``1/2`` (which
    would make a flip or a 180 degree rotation singular) is moved up by one ``eps``.

    Args:
        p: probabilities, any shape broadcastable with ``u`` (may require grad).
        u: ``U[0, 1)`` noise drawn without gradient.
        temperature: ``T > 0``.
        hard: straight-through hard gate.

    Returns:
        Gates in ``[0, 1]`` of the broadcast shape, dtype of ``p`` (at least float32).

    Example:
        >>> p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        >>> u = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        >>> g = relaxed_bernoulli(p, u, 0.01)
        >>> (g > 0.5).tolist(), (u < p).tolist()
        ([True, False, False], [True, False, False])
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    dtype = torch.promote_types(p.dtype, torch.float32)
    pc = p.to(dtype)
    uc = u.to(device=p.device, dtype=dtype)
    soft = torch.sigmoid((torch.logit(pc, eps=1e-6) - torch.logit(uc)) / temperature)
    # g == 1/2 exactly would make lerp(identity, flip, g) singular: one eps up (no gradient change)
    soft = soft + (soft == 0.5).to(dtype) * torch.finfo(dtype).eps
    if not hard:
        return soft
    coin = (u.to(p.device) < p.detach()).to(dtype)
    return coin + (soft - soft.detach())


def sample_gate(
    p: float | Tensor,
    count: int,
    generator: torch.Generator | None,
    device: torch.device,
    *,
    training: bool,
    temperature: float = 0.1,
    hard: bool = False,
) -> Tensor:
    """The per-object ``p`` gate of a transform: ``count`` coins, or relaxed gates.

    * ``p`` a float, or a tensor that does not require grad, or ``training`` False:
      the hard coin, a bool tensor ``[count]`` (``u < p`` with ``u ~ U[0, 1)`` from
      :func:`uniform01`; nothing is drawn when ``p >= 1`` or ``p <= 0``). A tensor ``p``
      gives exactly the coins of the float of the same value.
    * ``p`` a tensor that requires grad (e.g. an ``nn.Parameter``) and ``training``:
      the relaxed gate :func:`relaxed_bernoulli` (``hard``: straight-through), a float
      tensor ``[count]`` in ``[0, 1]`` through which the gradient reaches ``p``. It
      always draws ``count`` uniforms.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_gate(0.5, 4, g, torch.device("cpu"), training=True).dtype
        torch.bool
    """
    relaxed = training and isinstance(p, Tensor) and p.requires_grad
    if relaxed:
        u = uniform01((count,), generator, device)
        return relaxed_bernoulli(p.to(device), u, temperature, hard=hard)  # type: ignore[union-attr]
    value = float(p.detach()) if isinstance(p, Tensor) else float(p)
    if value >= 1.0:
        return torch.ones(count, dtype=torch.bool, device=device)
    if value <= 0.0:
        return torch.zeros(count, dtype=torch.bool, device=device)
    p_cmp = p.detach().to(device) if isinstance(p, Tensor) else value
    return uniform01((count,), generator, device) < p_cmp
