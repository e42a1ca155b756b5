"""Copy-paste as one registered operator (:data:`paste_op`) and its backward.

Built like the warp's operator (:mod:`augpatch.ops.warp`): an implementation for real
tensors that plans on the CPU (:mod:`augpatch.ops.plan`: one transfer of the ``N``-sized
metadata, the value checks included) and runs the kernel that
``settings.kernel_for(device, op="paste")`` picks, a fake implementation for tracing, and
autograd registered on the operator, so ``torch.compile`` (``fullgraph=True``) and
``torch.export`` see one opaque node and the value checks run on the real tensors when
the graph runs. Registered under a schema-versioned name
(:func:`~augpatch.ops.library.register_versioned`): call :data:`paste_op`.

``paste(images, sources, src_boxes, theta, src_to_img, dst_boxes, dst_to_img, alpha, mode,
padding_mode, align_corners, need_loc, need_diff) -> (out, objects, levels, params, aparams,
saved_a, saved_diff, saved_dv, saved_da)``: ``out`` is the pasted batch; the rest is the
plan and what the backward needs (not differentiable): ``objects`` ``[K, 11]`` int64 (CPU,
:data:`~augpatch.ops.plan.PASTE_OBJECT_COLUMNS`), ``levels`` ``[L + 1]`` the levels'
bounds, ``params`` / ``aparams`` ``[K, 14]`` the per-object sampling parameters of the
image and of the alpha, and the kernel's saved tensors
(:meth:`~augpatch.ops.backends.base.PasteKernel.forward`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.ops.layout import PARAM_COUNT
from augpatch.ops.library import (
    call_op,
    refuse_double_backward,
    register_differentiable,
    register_folded_vmap,
    register_versioned,
)
from augpatch.ops.plan import (
    PASTE_OBJECT_COLUMNS,
    dense,
    frame_alpha,
    paste_metadata,
    paste_params,
    paste_params_backward,
    paste_plans,
    paste_schedule,
)
from augpatch.ops.profiling import region
from augpatch.ops.settings import kernel_for, kernel_named
from augpatch.ops.values import compute_dtype

_COLUMNS = len(PASTE_OBJECT_COLUMNS)


def _empty_outputs(images: Tensor, compute: torch.dtype) -> tuple[Tensor, ...]:
    table = torch.zeros(0, PARAM_COUNT, dtype=compute, device=images.device)
    return (
        images.clone(memory_format=torch.preserve_format),
        torch.zeros(0, _COLUMNS, dtype=torch.long),
        torch.zeros(1, dtype=torch.long),
        table, table.clone(),
        *(torch.zeros(0, dtype=compute, device=images.device) for _ in range(4)),
    )


def paste(
    images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, src_to_img: Tensor,
    dst_boxes: Tensor, dst_to_img: Tensor, alpha: Tensor | None, mode: str, padding_mode: str,
    align_corners: bool, need_loc: bool, need_diff: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The paste of ``paste_objects`` (validated shapes; ``alpha`` ``[N, 1, h, w]`` or ``None``)."""
    theta = theta.reshape(-1, 2, 3)
    compute = compute_dtype(images.dtype)
    with region("dispatch"):
        _, kernel = kernel_for(images.device, op="paste")
    with region("plan"):
        src_meta, dst_meta = paste_metadata(src_boxes, dst_boxes, theta, src_to_img, dst_to_img,
                                            sources.shape[0], images.shape[0])
        scheduled = paste_schedule(src_meta, dst_meta, tuple(images.shape[2:]), tuple(sources.shape[2:]),
                                   images.shape[0])
        if scheduled is None:
            return _empty_outputs(images, compute)
        objects, levels = scheduled
        sources = dense(sources)
        alpha = dense(alpha) if alpha is not None else None
        plan, aplan = paste_plans(objects, levels, images, sources, alpha, mode, padding_mode, align_corners)
        params, aparams = paste_params(images, sources, src_boxes, theta, dst_boxes, alpha, objects,
                                       align_corners)
    with region("kernel"):
        out, saved = kernel.forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)
    return (out, objects, torch.tensor(levels, dtype=torch.long), params,
            (aparams if aparams is not None else params).clone(), *saved)


PASTE_NAME, paste_def = register_versioned("paste", paste)


@paste_def.register_fake
def _paste_fake(images, sources, src_boxes, theta, src_to_img, dst_boxes, dst_to_img, alpha, mode,
                padding_mode, align_corners, need_loc, need_diff):
    ctx = torch.library.get_ctx()
    compute = compute_dtype(images.dtype)
    k = ctx.new_dynamic_size()
    return (
        torch.empty_like(images, memory_format=torch.preserve_format),
        images.new_empty((k, _COLUMNS), dtype=torch.long, device="cpu"),
        images.new_empty((ctx.new_dynamic_size(min=1),), dtype=torch.long, device="cpu"),
        images.new_empty((k, PARAM_COUNT), dtype=compute),
        images.new_empty((k, PARAM_COUNT), dtype=compute),
        *(images.new_empty((ctx.new_dynamic_size(),), dtype=compute) for _ in range(4)),
    )


def paste_backward(
    grad: Tensor, images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, dst_boxes: Tensor,
    alpha: Tensor | None, objects: Tensor, levels: Tensor, params: Tensor, aparams: Tensor,
    saved_a: Tensor, saved_diff: Tensor, saved_dv: Tensor, saved_da: Tensor, mode: str,
    padding_mode: str, align_corners: bool, needs: list[bool], kernel: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`paste` w.r.t. ``images, sources, src_boxes, theta, dst_boxes, alpha``.

    ``needs``: which of the six are needed; an output not needed is an empty tensor.
    ``kernel``: the name of the backend that ran the forward (it runs the backward too).
    """
    need_img, need_src, need_sbox, need_theta, need_dbox, need_alpha = needs
    need_loc = need_sbox or need_theta or need_dbox
    compute = params.dtype
    theta = theta.reshape(-1, 2, 3)

    def empty() -> Tensor:  # a fresh one each time: outputs of an operator must not alias
        return grad.new_empty(0)

    def zeros(t: Tensor) -> Tensor:
        return torch.zeros_like(t, dtype=t.dtype if t.is_floating_point() else compute)

    if objects.shape[0] == 0:
        outs = [grad.to(images.dtype).clone(memory_format=torch.preserve_format), zeros(sources),
                zeros(src_boxes), zeros(theta), zeros(dst_boxes), zeros(alpha) if alpha is not None else empty()]
        return tuple(o if n else empty() for o, n in zip(outs, needs))  # type: ignore[return-value]
    with region("plan"):
        sources = dense(sources)
        alpha = dense(alpha) if alpha is not None else None
        plan, aplan = paste_plans(objects, levels.tolist(), images, sources, alpha, mode, padding_mode,
                                  align_corners)
        shared = alpha is not None and frame_alpha(alpha, sources)
    with region("dispatch"):
        backend = kernel_named(kernel, images.device, op="paste")
    with region("kernel"):
        g_img, g_src, g_alpha, g_params, g_aparams = backend.backward(
            grad, sources, params, plan, alpha, params if shared else aparams, aplan,
            [saved_a, saved_diff, saved_dv, saved_da], need_img, need_src, need_loc,
            need_alpha and alpha is not None,
        )
    g_sbox = g_theta = g_dbox = None
    if need_loc and g_params is not None:
        with region("params_backward"):
            g_sbox, g_theta, g_dbox = paste_params_backward(
                g_params, g_aparams, src_boxes, theta, dst_boxes, objects, align_corners,
                tuple(images.shape[2:]), tuple(sources.shape[2:]), need_sbox, need_theta, need_dbox)
    outs = [
        g_img.to(images.dtype) if need_img else None,
        g_src.to(sources.dtype) if need_src and g_src is not None else None,
        g_sbox, g_theta, g_dbox,
        g_alpha.to(alpha.dtype) if g_alpha is not None and alpha is not None else None,
    ]
    return tuple(o if (o is not None and n) else empty() for o, n in zip(outs, needs))  # type: ignore[return-value]


PASTE_BACKWARD_NAME, paste_backward_def = register_versioned("paste_backward", paste_backward)


@paste_backward_def.register_fake
def _paste_backward_fake(grad, images, sources, src_boxes, theta, dst_boxes, alpha, objects, levels, params,
                         aparams, saved_a, saved_diff, saved_dv, saved_da, mode, padding_mode, align_corners,
                         needs, kernel):
    like = [images, sources, src_boxes, theta.reshape(-1, 2, 3), dst_boxes, alpha]
    return tuple(
        torch.empty_like(t, memory_format=torch.preserve_format) if n and t is not None else grad.new_empty(0)
        for t, n in zip(like, needs)
    )


def _setup_context(ctx, inputs, output) -> None:
    images, sources, src_boxes, theta, _, dst_boxes, _, alpha, mode, padding_mode, align_corners, _, _ = inputs
    _, objects, levels, params, aparams, s_a, s_diff, s_dv, s_da = output
    ctx.save_for_backward(images, sources, src_boxes, theta, dst_boxes, alpha, objects, levels, params, aparams,
                          s_a, s_diff, s_dv, s_da)
    ctx.options = (mode, padding_mode, align_corners)
    ctx.theta_shape = theta.shape
    ctx.kernel = kernel_for(images.device, op="paste")[0]  # the backend the forward ran
    ctx.mark_non_differentiable(objects, levels, params, aparams, s_a, s_diff, s_dv, s_da)


def _backward(ctx, grad, *unused):
    images, sources, src_boxes, theta, dst_boxes, alpha, *rest = ctx.saved_tensors
    n = ctx.needs_input_grad
    needs = [n[0], n[1], n[2], n[3], n[5], n[7]]
    grads = call_op(paste_backward_op, PasteBackwardFunction, grad, images, sources, src_boxes, theta, dst_boxes,
                    alpha, *rest, *ctx.options, needs, ctx.kernel)
    g = [gr if need else None for gr, need in zip(grads, needs)]
    if g[3] is not None:
        g[3] = g[3].reshape(ctx.theta_shape)
    return g[0], g[1], g[2], g[3], None, g[4], None, g[5], None, None, None, None, None


#: ``paste_objects``'s operator and its backward as ``autograd.Function`` classes, for calls under
#: ``torch.func`` transforms and forward-mode AD (:func:`augpatch.ops.library.call_op`)
PasteFunction = register_differentiable(paste_def, _backward, _setup_context, "paste_objects")
PasteBackwardFunction = refuse_double_backward(paste_backward_def, "paste_objects")
# torch.vmap: one folded call (the vmapped dimension joins the batch), forward and backward
register_folded_vmap(paste_def, ("batch", "batch", "rows", "rows", ("index", 1), "rows", ("index", 0), "rows")
                     + (None,) * 5, ("batch",) + ("plan",) * 8, "paste_objects")
register_folded_vmap(paste_backward_def, ("batch", "batch", "batch", "rows", "rows", "rows", "rows")
                     + ("plan",) * 8 + (None,) * 5, ("batch", "batch", "rows", "rows", "rows", "rows"),
                     "paste_objects", forward_inputs=(1, 2, 3, 4, 5, 6))

#: The registered operators (``torch.ops.augpatch.<versioned name>``): call these.
paste_op = getattr(torch.ops.augpatch, PASTE_NAME)
paste_backward_op = getattr(torch.ops.augpatch, PASTE_BACKWARD_NAME)
