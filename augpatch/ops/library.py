"""Registering augpatch's operators under schema-versioned names.

A graph that a warm Inductor / AOTAutograd cache (or an exported program) recorded names
each operator it calls; registering ``augpatch::<base>_<hash of the schema>`` makes a
schema change a different operator, so a stale graph is recompiled, never replayed with
arguments missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch

_NAMESPACE = "augpatch"


def versioned_name(base: str, schema: str) -> str:
    """The operator name for ``base`` with ``schema``: ``base`` plus a fingerprint of the schema.

    Example:
        >>> a = versioned_name("warp", "(Tensor images) -> Tensor")
        >>> b = versioned_name("warp", "(Tensor images, str kernel) -> Tensor")
        >>> a.startswith("warp_"), a != b
        (True, True)
    """
    return f"{base}_{hashlib.sha1(schema.encode()).hexdigest()[:8]}"


def register_versioned(base: str, fn: Callable[..., Any], mutates_args: tuple[str, ...] = ()) -> tuple[str, Any]:
    """``(name, op)``: ``fn`` registered with ``torch.library.custom_op`` as ``augpatch::<name>``,
    ``name = versioned_name(base, schema)`` with the schema inferred from ``fn``'s signature.

    Every augpatch operator registers through this (a second operator too), so that no
    cached graph of an older schema can be replayed. Register fake / autograd
    implementations on the returned op, and call it as ``getattr(torch.ops.augpatch, name)``.
    ``mutates_args``: the arguments it writes into (declared in the schema, ``Tensor(a!)``)."""
    name = versioned_name(base, torch.library.infer_schema(fn, mutates_args=mutates_args))
    return name, torch.library.custom_op(f"{_NAMESPACE}::{name}", fn, mutates_args=mutates_args)


def refuse_double_backward(backward_op: Any, public_name: str) -> None:
    """Register on ``backward_op`` (an operator's backward operator) an autograd that
    refuses to be differentiated: ``public_name`` (e.g. ``"warp_patches"``) is
    differentiable once, and ``create_graph=True`` through it raises a clear error instead
    of a silently wrong second derivative."""

    def _double_backward(ctx: Any, *grads: Any) -> None:
        raise RuntimeError(
            f"augpatch: {public_name} is differentiable once; differentiating its backward "
            "(double backward, create_graph=True) is not supported"
        )

    backward_op.register_autograd(_double_backward)
