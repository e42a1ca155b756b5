"""Human affine parameters (angle, translate, scale, shear): the one parser of each form.

Used by :func:`augpatch.functional.patch_affine_matrix` and by
:class:`augpatch.transforms.PatchAffine`; each returns a canonical float tensor (one value
or one ``(x, y)`` pair per object) or raises an error naming the argument.

Example:
    >>> from augpatch.functional.parameters import parse_angle, parse_scale
    >>> parse_angle(30.0, 2, dtype=torch.float64)
    tensor([30., 30.], dtype=torch.float64)
    >>> parse_scale(0.5, 2, dtype=torch.float64)
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from augpatch.functional.checks import check_finite

__all__ = ["parse_angle", "parse_scale", "parse_shear", "parse_translate"]

# --------------------------------------------------------------------------- human parameters
#
# The ONE parser of each human-parameter form, used by ``patch_affine_matrix`` and by
# ``augpatch.transforms.PatchAffine`` (which stores the canonical tensor at construction,
# ``n=None``, and broadcasts it when the number of objects is known). The rule:
#
# * angle: a number (or a 0-d / ``[1]`` tensor) for every object, or a 1-D tensor (or a
#   Python sequence) of ``N`` values, one per object.
# * translate: always a pair ``(tx, ty)``: a number ``t`` means ``(t, t)``; a Python pair,
#   a tensor ``[2]`` or ``[1, 2]`` is shared by every object; ``[N, 2]`` is per object.
# * scale and shear: ONE value (isotropic scale ``(s, s)``; x-shear ``(s, 0)``) or an
#   ``(x, y)`` PAIR. The tensor's number of dimensions decides, never the number of
#   objects: a number / 0-d / ``[1]`` tensor is one value for every object; a 1-D tensor
#   ``[N]`` is one value PER OBJECT (so ``tensor([0.5, 2.0])`` with two boxes scales the
#   first by 0.5 and the second by 2); ``[N, 1]`` likewise; a Python pair ``(x, y)`` or a
#   ``[1, 2]`` tensor is one pair for every object; ``[N, 2]`` is a pair per object. A
#   1-D tensor whose length is neither 1 nor ``N`` is an error (it is not read as a pair).

_SINGLE_FILL = {"scale": "copy", "shear": "zero"}  # one value -> (s, s) / (s, 0)


def _param_tensor(name: str, value: object, dtype: torch.dtype | None, device: object) -> Tensor:
    """A human parameter as a real, finite tensor (Python values converted)."""
    if not isinstance(value, Tensor):
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a number, a sequence or a tensor, got bool")
        dtype = dtype or torch.float32
        try:
            if (
                isinstance(value, Sequence)
                and value
                and all(isinstance(v, Tensor) and v.dim() == 0 for v in value)
            ):
                value = torch.stack([v.to(dtype) for v in value])  # keeps their gradients
            else:
                value = torch.as_tensor(value, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"{name} must be None, a number, a sequence or a tensor, got {type(value).__name__}"
            ) from e
    if value.dtype == torch.bool or value.is_complex():
        raise TypeError(f"{name} must be a real float or integer tensor, got {value.dtype}")
    check_finite(name, value)
    return value


def _is_python_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, Tensor))


def _count_error(name: str, count: int, n: int, hint: str) -> ValueError:
    return ValueError(
        f"{name} has {count} values but there are {n} objects (boxes): {hint}"
    )


def parse_angle(
    value: object, n: int | None, *, dtype: torch.dtype | None = None, device: object = None
) -> Tensor | None:
    """``angle`` (degrees): one number for every object, or one value per object.

    Accepts a number, a tensor ``[]`` / ``[1]`` (every object) or ``[N]`` / a Python
    sequence of ``N`` numbers (per object). ``n=None`` validates the form only and returns
    the tensor as given (Python values converted); otherwise returns ``[N]`` in ``dtype``.
    """
    if value is None:
        return None
    t = _param_tensor("angle", value, dtype, device)
    if t.dim() > 1:
        raise ValueError(f"angle must be a number or a 1-D tensor [N], got {tuple(t.shape)}")
    if n is None:
        return t
    t = t.to(dtype) if dtype is not None else t
    if t.dim() == 1 and t.shape[0] not in (1, n):
        raise _count_error("angle", t.shape[0], n, "pass one number or one value per object")
    return t.reshape(-1).expand(n) if t.numel() == 1 else t


def parse_translate(
    value: object, n: int | None, *, dtype: torch.dtype | None = None, device: object = None
) -> Tensor | None:
    """``translate``: always an ``(tx, ty)`` pair, shared or per object.

    Accepts a number ``t`` (``(t, t)``), a Python pair or a tensor ``[2]`` / ``[1, 2]``
    (every object), or ``[N, 2]`` (per object). ``n=None`` validates the form only;
    otherwise returns ``[N, 2]`` in ``dtype``.
    """
    if value is None:
        return None
    if _is_python_sequence(value) and len(value) != 2:  # type: ignore[arg-type]
        raise ValueError(
            f"translate given as a sequence must be a (tx, ty) pair, got {len(value)} values; "  # type: ignore[arg-type]
            "pass a tensor [N, 2] for per-object values"
        )
    t = _param_tensor("translate", value, dtype, device)
    ok = t.dim() == 0 or (t.dim() in (1, 2) and t.shape[-1] in (1, 2))
    if not ok:
        raise ValueError(
            "translate must be a number, a (tx, ty) pair, a tensor [2], [1, 2] or [N, 2], "
            f"got shape {tuple(t.shape)}"
        )
    if n is None:
        return t
    t = t.to(dtype) if dtype is not None else t
    if t.dim() == 2 and t.shape[0] not in (1, n):
        raise _count_error("translate", t.shape[0], n, "pass one (tx, ty) pair or [N, 2]")
    return torch.broadcast_to(t, (n, 2))


def _parse_xy(
    name: str, value: object, n: int | None, dtype: torch.dtype | None, device: object
) -> Tensor | None:
    """``scale`` / ``shear``: one value or an ``(x, y)`` pair, shared or per object."""
    if value is None:
        return None
    if _is_python_sequence(value):
        if len(value) != 2:  # type: ignore[arg-type]
            raise ValueError(
                f"{name} given as a sequence must be an (x, y) pair, got {len(value)} values; "  # type: ignore[arg-type]
                "pass a tensor [N] or [N, 2] for per-object values"
            )
        value = _param_tensor(name, value, dtype, device).reshape(1, 2)
    t = _param_tensor(name, value, dtype, device)
    if t.dim() > 2 or (t.dim() == 2 and t.shape[1] not in (1, 2)):
        raise ValueError(
            f"{name} must be a number, an (x, y) pair, or a tensor [N], [N, 1], [1, 2] or "
            f"[N, 2], got shape {tuple(t.shape)}"
        )
    if n is None:
        return t
    t = t.to(dtype) if dtype is not None else t
    rows = 1 if t.dim() == 0 else t.shape[0]
    if rows not in (1, n):
        hint = "a 1-D tensor holds one value per object"
        if t.dim() == 1 and rows == 2:
            hint += (
                f"; for one (x, y) pair for every object pass a tuple ({name}_x, {name}_y) or "
                "a tensor of shape [1, 2]"
            )
        raise _count_error(name, rows, n, hint if t.dim() == 1 else "pass [1, 2] or [N, 2]")
    if t.dim() == 2 and t.shape[1] == 2:
        return torch.broadcast_to(t, (n, 2))
    one = torch.broadcast_to(t.reshape(-1), (n,))
    other = one if _SINGLE_FILL[name] == "copy" else torch.zeros_like(one)
    return torch.stack((one, other), -1)


def parse_scale(
    value: object, n: int | None, *, dtype: torch.dtype | None = None, device: object = None
) -> Tensor | None:
    """``scale``: one isotropic factor or an ``(sx, sy)`` pair, shared or per object.

    A number or a tensor ``[]`` / ``[1]``: one factor for every object; a 1-D tensor
    ``[N]`` (or ``[N, 1]``): one factor PER OBJECT; a Python pair ``(sx, sy)`` or a tensor
    ``[1, 2]``: one pair for every object; ``[N, 2]``: a pair per object. With two boxes,
    ``torch.tensor([0.5, 2.0])`` is therefore two isotropic factors and ``(0.5, 2.0)`` one
    anisotropic pair. ``n=None`` validates the form only (Python values become tensors,
    a pair ``[1, 2]``); otherwise returns ``[N, 2]`` ``(sx, sy)`` in ``dtype``.

    Example:
        >>> parse_scale(torch.tensor([0.5, 2.0]), 2)
        tensor([[0.5000, 0.5000],
                [2.0000, 2.0000]])
        >>> parse_scale((0.5, 2.0), 2)
        tensor([[0.5000, 2.0000],
                [0.5000, 2.0000]])
    """
    return _parse_xy("scale", value, n, dtype, device)


def parse_shear(
    value: object, n: int | None, *, dtype: torch.dtype | None = None, device: object = None
) -> Tensor | None:
    """``shear`` (degrees): an x-shear or an ``(x, y)`` pair, shared or per object.

    The forms of :func:`parse_scale`; one value ``s`` is the x-shear ``(s, 0)``. Returns
    ``[N, 2]`` ``(x-shear, y-shear)`` (or, with ``n=None``, the validated tensor).
    """
    return _parse_xy("shear", value, n, dtype, device)
