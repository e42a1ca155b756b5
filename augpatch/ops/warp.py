"""The warp as one registered operator (:data:`warp_op`) and its backward.

Like torchvision's ``roi_align``, the warp is a PyTorch operator with an implementation
for real tensors (any device: it plans on the CPU and runs the kernel that
:func:`augpatch.ops.settings.kernel_for` picks for the device), a fake (meta)
implementation for tracing, and autograd registered on the operator. So
``torch.compile`` (also ``fullgraph=True`` and ``dynamic=True``) and ``torch.export``
see one opaque node with correct output metadata, and never run the planning or the
value checks on fake tensors: they run inside the operator, on the real tensors, when
the graph runs, and raise the same clear errors as in eager mode.

Versioned names. The operators are registered as ``augpatch::warp_<hash>`` and
``augpatch::warp_backward_<hash>``, where ``<hash>`` is a fingerprint of the operator's
schema (:func:`augpatch.ops.library.versioned_name`): a graph that a warm Inductor / AOTAutograd cache (or an
exported program) recorded against an older schema names an operator that no longer
exists, so it is recompiled instead of replayed with arguments missing. Call the
operator through :data:`warp_op` (``torch.ops.augpatch.<name>``), never by a literal name.

``warp(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners,
overlap, need_loc) -> (out, objects, levels, params, saved0, saved1)``: ``out`` is the
warped batch; the other outputs are the plan and what the backward needs (not
differentiable): ``objects`` ``[K, 6]`` int64 (CPU) the objects in processing order,
``levels`` ``[L + 1]`` int64 (CPU) the levels' bounds, ``params`` ``[K, 14]`` the
per-object parameters, and two flat tensors kept by the backend. Their sizes depend on
the data (unbacked sizes under tracing).

``warp_backward(...) -> (grad_images, grad_boxes, grad_theta)``: an output that
is not needed is an empty tensor. The operator is differentiable once: differentiating
its gradients raises an error (no double backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.ops.layout import OBJECT_COLUMNS, PARAM_COUNT
from augpatch.ops.library import (
    call_op,
    refuse_double_backward,
    register_differentiable,
    register_folded_vmap,
    register_versioned,
)
from augpatch.ops.plan import Planner, compiled_planner, make_plan, object_params_backward, prepare
from augpatch.ops.profiling import region
from augpatch.ops.settings import kernel_for, kernel_named
from augpatch.ops.values import compute_dtype


def warp(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str,
    padding_mode: str, align_corners: bool, overlap: str, need_loc: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The warp of ``warp_patches`` (validated arguments; ``obj_to_img`` always given)."""
    theta = theta.reshape(-1, 2, 3)
    with region("dispatch"):
        name, kernel = kernel_for(images.device)
    with region("plan"):
        prep = prepare(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap,
                       _planner(name, kernel))
    compute = compute_dtype(images.dtype)
    if prep is None:  # no box has a pixel: the image is unchanged
        dtypes = kernel.saved_dtypes(images.dtype, compute, padding_mode)
        return (
            images.clone(memory_format=torch.preserve_format),
            torch.zeros(0, len(OBJECT_COLUMNS), dtype=torch.long),
            torch.zeros(1, dtype=torch.long),
            torch.zeros(0, PARAM_COUNT, dtype=compute, device=images.device),
            torch.zeros(0, dtype=dtypes[0], device=images.device),
            torch.zeros(0, dtype=dtypes[1], device=images.device),
        )
    with region("kernel"):
        out, saved = kernel.forward(images, prep.params, prep.plan, need_loc)
    levels = prep.levels if prep.levels is not None else torch.tensor(prep.plan.level_objects, dtype=torch.long)
    return out, prep.objects, levels, prep.params, saved[0], saved[1]


def _planner(name: str, kernel: object) -> Planner | None:
    """The compiled kernel's planning in C++ (``augpatch_cpu::warp_plan``) where that kernel
    runs the warp (CPU), else ``None`` (the Python planning)."""
    return compiled_planner(getattr(kernel, "ops", None) if name == "compiled" else None)


WARP_NAME, warp_def = register_versioned("warp", warp)


@warp_def.register_fake
def _warp_fake(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap, need_loc):
    ctx = torch.library.get_ctx()
    compute = compute_dtype(images.dtype)
    dtypes = kernel_for(images.device)[1].saved_dtypes(images.dtype, compute, padding_mode)
    k = ctx.new_dynamic_size()
    return (
        torch.empty_like(images, memory_format=torch.preserve_format),
        images.new_empty((k, len(OBJECT_COLUMNS)), dtype=torch.long, device="cpu"),
        images.new_empty((ctx.new_dynamic_size(min=1),), dtype=torch.long, device="cpu"),
        images.new_empty((k, PARAM_COUNT), dtype=compute),
        images.new_empty((ctx.new_dynamic_size(),), dtype=dtypes[0]),
        images.new_empty((ctx.new_dynamic_size(),), dtype=dtypes[1]),
    )


def warp_backward(
    grad: Tensor, images: Tensor, boxes: Tensor, theta: Tensor, objects: Tensor, levels: Tensor,
    params: Tensor, saved0: Tensor, saved1: Tensor, mode: str, padding_mode: str,
    align_corners: bool, overlap: str, need_img: bool, need_boxes: bool, need_theta: bool,
    kernel: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of :func:`warp` w.r.t. ``images``, ``boxes`` and ``theta``.

    ``kernel``: the name of the backend that ran the forward (it runs the backward too).
    """
    need_loc = need_boxes or need_theta

    def empty() -> Tensor:  # a fresh one each time: outputs of an operator must not alias
        return grad.new_empty(0)

    if objects.shape[0] == 0:  # nothing was warped: the identity
        grad_images = grad.to(images.dtype).clone(memory_format=torch.preserve_format)
        return (
            grad_images if need_img else empty(),
            torch.zeros_like(boxes) if need_boxes else empty(),
            torch.zeros_like(theta) if need_theta else empty(),
        )
    plan, backend = _backward_plan(objects, levels, images, mode, padding_mode, align_corners, overlap, kernel)
    with region("kernel"):
        grad_images, grad_params = backend.backward(
            grad, images, params, plan, [saved0, saved1], need_img, need_loc
        )
    grad_boxes, grad_theta = _location_grads(grad_params, boxes, theta, objects, align_corners, images,
                                             need_boxes, need_theta)
    return (
        grad_images if need_img and grad_images is not None else empty(),
        grad_boxes if grad_boxes is not None else empty(),
        grad_theta if grad_theta is not None else empty(),
    )


def _backward_plan(objects: Tensor, levels: Tensor, images: Tensor, mode: str, padding_mode: str,
                   align_corners: bool, overlap: str, kernel: str):  # noqa: ANN202
    """``(plan, kernel)`` of a backward: the forward's plan rebuilt, the backend that ran it."""
    with region("plan"):
        plan = make_plan(objects, levels.tolist(), images, mode, padding_mode, align_corners, overlap)
    with region("dispatch"):
        backend = kernel_named(kernel, images.device)
    return plan, backend


def _location_grads(
    grad_params: Tensor | None, boxes: Tensor, theta: Tensor, objects: Tensor, align_corners: bool,
    images: Tensor, need_boxes: bool, need_theta: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """``(grad_boxes, grad_theta)`` through the parameter table (``None`` where not needed)."""
    if not (need_boxes or need_theta) or grad_params is None:
        return None, None
    with region("params_backward"):
        return object_params_backward(
            grad_params, boxes, theta, objects, align_corners, (images.shape[2], images.shape[3]),
            need_boxes, need_theta,
        )


WARP_BACKWARD_NAME, warp_backward_def = register_versioned("warp_backward", warp_backward)


@warp_backward_def.register_fake
def _warp_backward_fake(grad, images, boxes, theta, objects, levels, params, saved0, saved1, mode,
                        padding_mode, align_corners, overlap, need_img, need_boxes, need_theta,
                        kernel):
    return (
        torch.empty_like(images, memory_format=torch.preserve_format) if need_img else grad.new_empty(0),
        torch.empty_like(boxes) if need_boxes else grad.new_empty(0),
        torch.empty_like(theta) if need_theta else grad.new_empty(0),
    )


def _setup_context(ctx, inputs, output) -> None:
    images, boxes, theta, _, mode, padding_mode, align_corners, overlap, _ = inputs
    _, objects, levels, params, saved0, saved1 = output
    ctx.save_for_backward(images, boxes, theta, objects, levels, params, saved0, saved1)
    ctx.options = (mode, padding_mode, align_corners, overlap)
    # the backend the forward ran (setup_context follows the forward under the same
    # settings; a Triton forward that fell back to eager has switched them to eager)
    ctx.kernel = kernel_for(images.device)[0]
    ctx.mark_non_differentiable(objects, levels, params, saved0, saved1)


def _backward(ctx, grad, *unused):
    images, boxes, theta, objects, levels, params, saved0, saved1 = ctx.saved_tensors
    need_img, need_boxes, need_theta = ctx.needs_input_grad[:3]
    grad_images, grad_boxes, grad_theta = call_op(
        warp_backward_op, WarpBackwardFunction,
        grad, images, boxes, theta, objects, levels, params, saved0, saved1, *ctx.options,
        need_img, need_boxes, need_theta, ctx.kernel,
    )
    return (
        grad_images if need_img else None, grad_boxes if need_boxes else None,
        grad_theta if need_theta else None, None, None, None, None, None, None,
    )


#: ``warp_patches``'s operator and its backward as ``autograd.Function`` classes, for calls under
#: ``torch.func`` transforms and forward-mode AD (:func:`augpatch.ops.library.call_op`)
WarpFunction = register_differentiable(warp_def, _backward, _setup_context, "warp_patches")
WarpBackwardFunction = refuse_double_backward(warp_backward_def, "warp_patches")
# torch.vmap: one folded call (the vmapped dimension joins the batch), forward and backward
register_folded_vmap(warp_def, ("batch", "rows", "rows", ("index", 0)) + (None,) * 5,
                     ("batch",) + ("plan",) * 5, "warp_patches")
register_folded_vmap(warp_backward_def, ("batch", "batch", "rows", "rows") + ("plan",) * 5 + (None,) * 8,
                     ("batch", "rows", "rows"), "warp_patches", forward_inputs=(1, 2, 3))


def warp_backward_into(
    grad: Tensor, images: Tensor, boxes: Tensor, theta: Tensor, objects: Tensor, levels: Tensor,
    params: Tensor, saved0: Tensor, saved1: Tensor, mode: str, padding_mode: str,
    align_corners: bool, overlap: str, need_boxes: bool, need_theta: bool, kernel: str,
) -> tuple[Tensor, Tensor]:
    """:func:`warp_backward` writing the gradient w.r.t. ``images`` into ``grad`` itself.

    ``grad``: the output gradient, in the images' dtype (float32 / float64) and the
    warp's layout (``torch.empty_like(images)``), held by nobody else; at least one object
    was warped. Returns ``(grad_boxes, grad_theta)`` (empty where not needed). Called
    only by the C++ autograd of eager CPU calls (:func:`warp_autograd`), which checks that
    nobody else can see ``grad``: the images' gradient then costs no memory of its own.
    """
    plan, backend = _backward_plan(objects, levels, images, mode, padding_mode, align_corners, overlap, kernel)
    with region("kernel"):
        grad_params = backend.backward_into(grad, images, params, plan, [saved0, saved1],
                                            need_boxes or need_theta)
    grad_boxes, grad_theta = _location_grads(grad_params, boxes, theta, objects, align_corners, images,
                                             need_boxes, need_theta)
    return (
        grad_boxes if grad_boxes is not None else grad.new_empty(0),
        grad_theta if grad_theta is not None else grad.new_empty(0),
    )


WARP_BACKWARD_INTO_NAME, warp_backward_into_def = register_versioned(
    "warp_backward_into", warp_backward_into, mutates_args=("grad",)
)


@warp_backward_into_def.register_fake
def _warp_backward_into_fake(grad, images, boxes, theta, objects, levels, params, saved0, saved1, mode,
                             padding_mode, align_corners, overlap, need_boxes, need_theta, kernel):
    return (
        torch.empty_like(boxes) if need_boxes else grad.new_empty(0),
        torch.empty_like(theta) if need_theta else grad.new_empty(0),
    )


def cpp_autograd_applies(images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor) -> bool:
    """Whether an eager call may run :func:`warp_autograd`: plain CPU tensors, some
    gradient needed, no tracing (``torch.compile`` / ``torch.export``, a dispatch mode, a
    ``torch.func`` transform) and the compiled kernel active."""
    tensors = (images, boxes, theta, obj_to_img)
    return (
        images.device.type == "cpu"
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
        and all(type(t) is Tensor for t in tensors)
        and plain_eager()
        and kernel_for(images.device)[0] == "compiled"
    )


_MODE_KEYS = tuple(torch._C._TorchDispatchModeKey.__members__.values())


def plain_eager() -> bool:
    """Whether this is a plain eager call: no tracing (``torch.compile`` / ``torch.export``),
    no ``torch.func`` transform, no dispatch mode (a fake-tensor or user mode)."""
    return not (
        torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
        or torch._C._len_torch_dispatch_stack()
        or any(torch._C._get_dispatch_mode(key) is not None for key in _MODE_KEYS)
    )


def warp_autograd(
    images: Tensor, boxes: Tensor, theta: Tensor, obj_to_img: Tensor, mode: str, padding_mode: str,
    align_corners: bool, overlap: str, need_loc: bool,
) -> Tensor:
    """:data:`warp_op`'s output, differentiable through a C++ autograd function.

    Eager CPU calls only (:func:`cpp_autograd_applies`). The same operators run (forward:
    :data:`warp_op`; backward: :data:`warp_backward_op`), but the backward receives the
    output gradient by reference: where nobody else holds it (no hook keeps it, the caller
    did not pass it, no second node receives it, no graph of the backward is recorded), it
    runs :data:`warp_backward_into_op`, which writes the images' gradient into it, so that
    gradient costs no batch-sized memory of its own (the test ``AccumulateGrad`` makes
    before it steals a gradient). A Python backward cannot make that test.
    """
    ops = kernel_named("compiled", images.device).ops
    names = [WARP_NAME, WARP_BACKWARD_NAME, WARP_BACKWARD_INTO_NAME, "compiled"]
    return ops.warp_autograd(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap,
                             need_loc, names)

#: The registered operators (``torch.ops.augpatch.<versioned name>``): call these.
warp_op = getattr(torch.ops.augpatch, WARP_NAME)
warp_backward_op = getattr(torch.ops.augpatch, WARP_BACKWARD_NAME)
warp_backward_into_op = getattr(torch.ops.augpatch, WARP_BACKWARD_INTO_NAME)
