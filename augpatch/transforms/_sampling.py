"""Argument parsing for magnitudes and reparameterised sampling.

A *magnitude range* is a pair of bounds ``(lo, hi)``; every bound is either a
Python float or a view of a tensor registered on the transform (an
``nn.Parameter`` stays a parameter, any other tensor becomes a buffer), so that
learnable magnitudes receive gradients and move with ``.to(device)``.

Sampling is reparameterised: ``value = lo + (hi - lo) * u`` with ``u ~ U[0, 1)``
drawn without gradient, so ``d value / d lo = 1 - u`` and ``d value / d hi = u``.
For a symmetric magnitude ``m`` (range ``(c - m, c + m)``) this is
``c + m * (2u - 1)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["Bound", "Range", "check_range", "parse_range", "register_tensor", "uniform01"]


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
