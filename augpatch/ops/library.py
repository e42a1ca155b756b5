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
import torch.autograd.forward_ad as _forward_ad

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


def double_backward_error(public_name: str) -> RuntimeError:
    """The error of differentiating ``public_name``'s backward (it is differentiable once)."""
    return RuntimeError(
        f"augpatch: {public_name} is differentiable once; differentiating its backward "
        "(double backward, create_graph=True, torch.func.hessian or a grad of a grad) is not supported"
    )


def refuse_double_backward(backward_op: Any, public_name: str) -> type[torch.autograd.Function]:
    """Register on ``backward_op`` (an operator's backward operator) an autograd that
    refuses to be differentiated: ``public_name`` (e.g. ``"warp_patches"``) is
    differentiable once, and ``create_graph=True`` through it raises a clear error instead
    of a silently wrong second derivative. Returns the same as an ``autograd.Function`` for
    calls under ``torch.func`` transforms (:func:`call_op`; see :func:`register_differentiable`)."""

    def _double_backward(ctx: Any, *grads: Any) -> None:
        raise double_backward_error(public_name)

    def _save_nothing(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    backward_op.register_autograd(_double_backward, setup_context=_save_nothing)
    return _function(backward_op, _double_backward, _save_nothing, public_name, "Backward")


def register_differentiable(
    op: Any, backward: Callable[..., Any], setup_context: Callable[..., None], public_name: str,
) -> type[torch.autograd.Function]:
    """Make ``op`` differentiable once, under plain autograd and under ``torch.func``.

    Registers ``backward`` / ``setup_context`` as ``op``'s autograd (what eager calls,
    ``torch.compile`` and ``torch.export`` use) and returns an ``autograd.Function`` with the
    same ``setup_context`` and ``backward`` for eager calls under a ``torch.func`` transform
    or forward-mode AD (:func:`call_op`). The ``autograd.Function`` that ``register_autograd``
    generates has no ``setup_context`` of its own, which ``torch.func.grad`` / ``vjp`` /
    ``jacrev`` refuse (pytorch/pytorch#168393), and forward-mode AD silently drops the
    tangents of a custom operator's inputs. With this class ``torch.func.grad``, ``vjp``,
    ``jacrev`` and ``vmap`` (also of a gradient: the vmap rule is generated, the operator's
    batched calls run one sample at a time) give the operator's own gradients; forward mode
    (``torch.func.jvp``, ``jacfwd``, ``hessian``, dual tensors) raises a clear error, and a
    gradient of a gradient does too (``backward`` must call the backward operator through
    :func:`call_op` with the class :func:`refuse_double_backward` returned).
    """
    op.register_autograd(backward, setup_context=setup_context)
    return _function(op, backward, setup_context, public_name, "")


def _function(op: Any, backward: Callable[..., Any], setup_context: Callable[..., None], public_name: str,
              suffix: str) -> type[torch.autograd.Function]:
    """``op`` as an ``autograd.Function`` (forward: the operator; generated vmap rule; no jvp)."""

    def _forward(*args: Any) -> Any:
        return op(*args)

    def _jvp(ctx: Any, *tangents: Any) -> Any:
        raise RuntimeError(
            f"augpatch: {public_name} supports reverse-mode differentiation only (backward, "
            "torch.func.grad / vjp / jacrev); forward mode (torch.func.jvp, jacfwd, hessian, "
            "torch.autograd.forward_ad dual tensors) is not supported"
        )

    name = "".join(part.title() for part in public_name.split("_")) + suffix + "Function"
    return type(name, (torch.autograd.Function,), {
        "generate_vmap_rule": True,
        "forward": staticmethod(_forward),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "jvp": staticmethod(_jvp),
        "__doc__": f"An operator of ``{public_name}`` as an ``autograd.Function``, for calls under "
                   "``torch.func`` transforms (:func:`augpatch.ops.library.call_op`).",
    })


def transforms_active() -> bool:
    """Whether an eager call runs under a ``torch.func`` transform or a forward-mode AD level
    (``torch.autograd.forward_ad.dual_level``), also while ``torch.compile`` traces one."""
    return torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0


def call_op(op: Any, function: type[torch.autograd.Function], *args: Any) -> Any:
    """``op(*args)``, or ``function.apply(*args)`` (its ``autograd.Function``, from
    :func:`register_differentiable` / :func:`refuse_double_backward`) under ``torch.func``
    transforms and forward-mode AD (:func:`transforms_active`). A ``torch.func`` transform
    that ``torch.compile`` traces runs the ``autograd.Function`` outside the graph (Dynamo
    of torch 2.8 cannot trace it; plain compiled calls keep the operator in the graph)."""
    if not transforms_active():
        return op(*args)
    if torch.compiler.is_compiling():
        return _apply_eagerly(function, *args)
    return function.apply(*args)


@torch.compiler.disable
def _apply_eagerly(function: type[torch.autograd.Function], *args: Any) -> Any:
    return function.apply(*args)


def register_folded_vmap(op: Any, arg_kinds: tuple[Any, ...], out_kinds: tuple[str, ...], public_name: str,
                         forward_inputs: tuple[int, ...] | None = None) -> None:
    """A ``torch.vmap`` rule for ``op`` that folds the vmapped dimension into the batch: one
    call of the operator on ``V`` times the images and objects, not ``V`` calls.

    ``arg_kinds``, one per argument: ``"batch"`` (a batch of images ``[B, ...]``),
    ``"rows"`` (one row per object ``[N, ...]``), ``("index", j)`` (image indices into the
    batch argument ``j``: sample ``v``'s become ``v * B_j + index``), ``"plan"`` (outputs of
    a folded forward: never vmapped), ``None`` (not a tensor). An argument that is not
    vmapped is repeated for every sample (images copied, boxes and indices shared).
    ``out_kinds``: ``"batch"`` and ``"rows"`` outputs are unfolded to ``[V, B, ...]`` /
    ``[V, N, ...]`` (a ``[0]`` placeholder of a gradient not needed stays as it is),
    ``"plan"`` outputs are not vmapped. Objects of different samples lie in different images,
    so they never overlap: the folded call is the samples' calls side by side, bit for bit.

    ``forward_inputs`` (a backward operator's rule): the positions of the arguments that were
    the forward's inputs. Where none of them is vmapped, the forward ran once, unfolded (e.g.
    ``torch.func.jacrev``, which vmaps only the output gradient): its plan is one call's, and
    the backward runs once per vmapped output gradient instead. A forward whose only vmapped
    tensors are image indices raises (its backward could not tell it was folded).
    """

    def rule(info: Any, in_dims: tuple[int | None, ...], *args: Any) -> tuple[Any, Any]:
        V = info.batch_size
        if forward_inputs is not None and all(in_dims[i] is None for i in forward_inputs):
            return per_sample(V, in_dims, args)
        if forward_inputs is None and all(d is None for d, k in zip(in_dims, arg_kinds) if k in ("batch", "rows")):
            raise RuntimeError(f"augpatch: {public_name} under torch.vmap: vmapping only the image indices "
                               "is not supported; vmap the images, boxes or parameters too")

        def front(x: torch.Tensor, d: int | None) -> torch.Tensor:  # [V, ...]
            return x.movedim(d, 0) if d is not None else x.unsqueeze(0).expand(V, *x.shape)

        folded = []
        for x, d, kind in zip(args, in_dims, arg_kinds):
            if kind in ("batch", "rows") and x is not None:
                x = front(x, d)
                folded.append(x.reshape(V * x.shape[1], *x.shape[2:]))
            elif isinstance(kind, tuple):
                j = kind[1]
                size = args[j].shape[0] if in_dims[j] is None else front(args[j], in_dims[j]).shape[1]
                x = front(x, d) + torch.arange(V, device=x.device, dtype=x.dtype)[:, None] * size
                folded.append(x.reshape(-1))
            elif isinstance(d, int):
                raise RuntimeError(f"augpatch: {public_name} under torch.vmap: an internal argument "
                                   "(the plan of another call) is vmapped; vmap the public function instead")
            else:
                folded.append(x)
        outs = op(*folded)
        return outputs([(y, lambda y=y: y.reshape(V, y.shape[0] // V, *y.shape[1:])) for y in outs])

    def per_sample(V: int, in_dims: tuple[int | None, ...], args: tuple[Any, ...]) -> tuple[Any, Any]:
        calls = [op(*(x.select(d, v) if isinstance(d, int) else x for x, d in zip(args, in_dims))) for v in range(V)]
        return outputs([(calls[0][i], lambda i=i: torch.stack([c[i] for c in calls])) for i in range(len(out_kinds))])

    def outputs(values: list[tuple[torch.Tensor, Callable[[], torch.Tensor]]]) -> tuple[Any, Any]:
        """``(outputs, out_dims)``: each ``"batch"`` / ``"rows"`` output batched (its second
        element builds ``[V, ...]``; a ``[0]`` placeholder stays), the others as they are."""
        result, dims = [], []
        for (y, batched), kind in zip(values, out_kinds):
            vmapped = kind in ("batch", "rows") and not (y.dim() == 1 and y.numel() == 0)
            result.append(batched() if vmapped else y)
            dims.append(0 if vmapped else None)
        return tuple(result), tuple(dims)

    op.register_vmap(rule)
