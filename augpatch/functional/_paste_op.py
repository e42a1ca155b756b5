"""Copy-paste as one registered operator: ``torch.ops.augpatch.paste`` and its backward.

Built like the warp's operator (``_op.py``): an implementation for real tensors that
plans on the CPU (one transfer of the ``N``-sized metadata, the value checks included)
and runs the kernel, a fake implementation for tracing, and autograd registered on the
operator, so ``torch.compile`` (``fullgraph=True``) and ``torch.export`` see one opaque
node and the value checks run on the real tensors when the graph runs.

``augpatch::paste(images, sources, src_boxes, theta, src_to_img, dst_boxes, dst_to_img,
alpha, mode, padding_mode, align_corners, need_loc, need_diff) -> (out, objects, levels,
params, aparams, saved_a, saved_diff, saved_dv, saved_da)``: ``out`` is the pasted batch;
the rest is the plan and what the backward needs (not differentiable): ``objects``
``[K, 11]`` int64 (CPU) the pasted objects in processing order (destination ``x0, y0,
width, height, image``, index in the call, source ``x0, y0, width, height, image``),
``levels`` ``[L + 1]`` the levels' bounds, ``params`` / ``aparams`` ``[K, 14]`` the
per-object sampling parameters of the image and of the alpha, and the kernel's saved
tensors (``_paste_eager.paste_forward``).

The kernel is the eager one on every device (the compiled CPU and Triton kernels of the
issue are not written yet).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.functional._checks import check_index_range, compute_dtype
from augpatch.functional._paste_eager import PastePlan, dense, paste_backward, paste_forward
from augpatch.functional._plan import overlap_edges, schedule_levels
from augpatch.functional._sampler import PARAM_COLUMNS, PARAM_COUNT
from augpatch.functional._warp import (
    _pixel_rects,
    object_params,
    object_params_backward,
    work_strides,
)

_COLUMNS = 11
# columns of the parameter table that come from the destination box (theta and the map of
# the output pixels onto the box) and from the source box (unnormalisation, offset)
_DST = [i for i, name in enumerate(PARAM_COLUMNS) if name[0] in "tkc"]
_SRC = [i for i, name in enumerate(PARAM_COLUMNS) if name[0] in "so"]


def _metadata(
    src_boxes: Tensor, dst_boxes: Tensor, theta: Tensor, src_to_img: Tensor, dst_to_img: Tensor,
    src_batch: int, dst_batch: int,
) -> tuple[Tensor, Tensor]:
    """Value checks and the boxes / image indices on the CPU, in one transfer.

    Returns ``[N, 5]`` float64 ``(x1, y1, x2, y2, image)`` of the sources and of the
    destinations.
    """
    n = src_boxes.shape[0]
    flags = torch.stack([torch.isfinite(src_boxes.detach()).all(), torch.isfinite(dst_boxes.detach()).all(),
                         torch.isfinite(theta.detach()).all()])
    flat = torch.cat([src_boxes.detach().double().reshape(-1), dst_boxes.detach().double().reshape(-1),
                      src_to_img.double(), dst_to_img.double(), flags.double()]).cpu()
    ok_src, ok_dst, ok_theta = flat[10 * n:].tolist()
    for ok, name in ((ok_src, "src_boxes"), (ok_dst, "dst_boxes"), (ok_theta, "theta")):
        if not ok:
            raise ValueError(f"{name} contains NaN or Inf values")
    src = torch.cat([flat[: 4 * n].view(n, 4), flat[8 * n : 9 * n, None]], 1)
    dst = torch.cat([flat[4 * n : 8 * n].view(n, 4), flat[9 * n : 10 * n, None]], 1)
    check_index_range("src_to_img", src[:, 4], src_batch)
    check_index_range("dst_to_img", dst[:, 4], dst_batch)
    return src, dst


def _plans(
    objects: Tensor, level_objects: list[int], images: Tensor, sources: Tensor,
    alpha: Tensor | None, mode: str, padding_mode: str, align_corners: bool,
) -> tuple[PastePlan, PastePlan | None]:
    """The image's plan and the alpha's (``None`` without alpha) from the objects."""
    common = {"objects": objects[:, :5].contiguous(), "level_objects": level_objects, "mode": mode,
                  "padding_mode": padding_mode, "align_corners": align_corners, "size": tuple(images.shape[2:]),
                  "parallel": False, "device": images.device, "out_strides": work_strides(images)}
    plan = PastePlan(strides=tuple(sources.stride()), channels=images.shape[1],
                     frames=objects[:, 6:11].contiguous(), read_size=tuple(sources.shape[2:]),
                     **common)
    if alpha is None:
        return plan, None
    if _frame_alpha(alpha, sources):
        frames = objects[:, [6, 7, 8, 9, 5]]
    else:
        frames = _alpha_objects(objects, alpha)[:, [0, 1, 2, 3, 5]]
    aplan = PastePlan(strides=tuple(alpha.stride()), channels=1, frames=frames.contiguous(),
                      read_size=tuple(alpha.shape[2:]), **common)
    return plan, aplan


def _frame_alpha(alpha: Tensor, sources: Tensor) -> bool:
    """Whether ``alpha`` ``[N, 1, h, w]`` is in the sources' frame (else it covers the source box)."""
    return tuple(alpha.shape[2:]) == tuple(sources.shape[2:])


def _alpha_boxes(alpha: Tensor, dtype: torch.dtype) -> Tensor:
    """The box a box-shaped alpha covers in its own frame: ``[0, 0, w, h]`` per object."""
    box = torch.tensor([0, 0, alpha.shape[3], alpha.shape[2]], dtype=dtype, device=alpha.device)
    return box.expand(alpha.shape[0], 4)


def _alpha_objects(objects: Tensor, alpha: Tensor) -> Tensor:
    """A box-shaped alpha's rects in the layout of ``object_params`` (the whole alpha)."""
    k = objects.shape[0]
    zeros = torch.zeros(k, dtype=torch.long)
    return torch.stack([zeros, zeros, torch.full((k,), alpha.shape[3]), torch.full((k,), alpha.shape[2]),
                        zeros, objects[:, 5]], 1)


def _src_objects(objects: Tensor) -> Tensor:
    """The source rects in the layout of ``object_params`` (``x0, y0, w, h, image, index``)."""
    return objects[:, [6, 7, 8, 9, 10, 5]]


def _params(
    images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, dst_boxes: Tensor,
    alpha: Tensor | None, objects: Tensor, align_corners: bool,
) -> tuple[Tensor, Tensor | None]:
    """The per-object parameters of the image and of the alpha (``_warp.object_params``'s table)."""
    dtype = compute_dtype(images.dtype)
    dst = object_params(dst_boxes, theta, objects[:, :6], align_corners, dtype, tuple(images.shape[2:]))
    src = object_params(src_boxes, theta, _src_objects(objects), align_corners, dtype,
                        tuple(sources.shape[2:]))
    params = dst.clone()
    params[:, _SRC] = src[:, _SRC]
    if alpha is None:
        return params, None
    if _frame_alpha(alpha, sources):
        return params, params
    box = object_params(_alpha_boxes(alpha, dtype), theta, _alpha_objects(objects, alpha), align_corners,
                        dtype, tuple(alpha.shape[2:]))
    aparams = dst.clone()
    aparams[:, _SRC] = box[:, _SRC]
    return params, aparams


def _empty_outputs(images: Tensor, compute: torch.dtype) -> tuple[Tensor, ...]:
    table = torch.zeros(0, PARAM_COUNT, dtype=compute, device=images.device)
    return (
        images.clone(memory_format=torch.preserve_format),
        torch.zeros(0, _COLUMNS, dtype=torch.long),
        torch.zeros(1, dtype=torch.long),
        table, table.clone(),
        *(torch.zeros(0, dtype=compute, device=images.device) for _ in range(4)),
    )


@torch.library.custom_op("augpatch::paste", mutates_args=())
def paste(
    images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, src_to_img: Tensor,
    dst_boxes: Tensor, dst_to_img: Tensor, alpha: Tensor | None, mode: str, padding_mode: str,
    align_corners: bool, need_loc: bool, need_diff: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The paste of ``paste_objects`` (validated shapes; ``alpha`` ``[N, 1, h, w]`` or ``None``)."""
    theta = theta.reshape(-1, 2, 3)
    compute = compute_dtype(images.dtype)
    height, width = images.shape[2:]
    src_meta, dst_meta = _metadata(src_boxes, dst_boxes, theta, src_to_img, dst_to_img,
                                   sources.shape[0], images.shape[0])
    dst_pix = _pixel_rects(dst_meta[:, :4], height, width)
    src_pix = _pixel_rects(src_meta[:, :4], sources.shape[2], sources.shape[3])
    size = lambda pix: (pix[:, 2] - pix[:, 0]) * (pix[:, 3] - pix[:, 1])  # noqa: E731
    alive = ((size(dst_pix) > 0) & (size(src_pix) > 0)).nonzero().flatten()
    if alive.numel() == 0:
        return _empty_outputs(images, compute)
    dst_img = dst_meta[alive, 4].long()
    src, dst, strict = overlap_edges(dst_pix[alive], None, dst_img)
    level = schedule_levels(alive.numel(), src, dst, strict)
    order = torch.sort(level * images.shape[0] + dst_img, stable=True).indices
    obj = alive[order]
    dp, sp = dst_pix[obj], src_pix[obj]
    objects = torch.stack([
        dp[:, 0], dp[:, 1], dp[:, 2] - dp[:, 0], dp[:, 3] - dp[:, 1], dst_img[order], obj,
        sp[:, 0], sp[:, 1], sp[:, 2] - sp[:, 0], sp[:, 3] - sp[:, 1], src_meta[obj, 4].long(),
    ], 1)
    counts = torch.bincount(level[order], minlength=int(level.max()) + 1)
    levels = [0, *torch.cumsum(counts, 0).tolist()]
    sources = dense(sources)
    alpha = dense(alpha) if alpha is not None else None
    plan, aplan = _plans(objects, levels, images, sources, alpha, mode, padding_mode, align_corners)
    params, aparams = _params(images, sources, src_boxes, theta, dst_boxes, alpha, objects, align_corners)
    out, saved = paste_forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)
    return (out, objects, torch.tensor(levels, dtype=torch.long), params,
            (aparams if aparams is not None else params).clone(), *saved)


@paste.register_fake
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


@torch.library.custom_op("augpatch::paste_backward", mutates_args=())
def paste_backward_op(
    grad: Tensor, images: Tensor, sources: Tensor, src_boxes: Tensor, theta: Tensor, dst_boxes: Tensor,
    alpha: Tensor | None, objects: Tensor, levels: Tensor, params: Tensor, aparams: Tensor,
    saved_a: Tensor, saved_diff: Tensor, saved_dv: Tensor, saved_da: Tensor, mode: str,
    padding_mode: str, align_corners: bool, needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`paste` w.r.t. ``images, sources, src_boxes, theta, dst_boxes, alpha``.

    ``needs``: which of the six are needed; an output not needed is an empty tensor.
    """
    need_img, need_src, need_sbox, need_theta, need_dbox, need_alpha = needs
    need_loc = need_sbox or need_theta or need_dbox
    compute = params.dtype
    theta = theta.reshape(-1, 2, 3)

    def empty() -> Tensor:
        return grad.new_empty(0)

    def zeros(t: Tensor) -> Tensor:
        return torch.zeros_like(t, dtype=t.dtype if t.is_floating_point() else compute)

    if objects.shape[0] == 0:
        outs = [grad.to(images.dtype).clone(memory_format=torch.preserve_format), zeros(sources),
                zeros(src_boxes), zeros(theta), zeros(dst_boxes), zeros(alpha) if alpha is not None else empty()]
        return tuple(o if n else empty() for o, n in zip(outs, needs))  # type: ignore[return-value]
    sources = dense(sources)
    alpha = dense(alpha) if alpha is not None else None
    plan, aplan = _plans(objects, levels.tolist(), images, sources, alpha, mode, padding_mode, align_corners)
    shared = alpha is not None and _frame_alpha(alpha, sources)
    g_img, g_src, g_alpha, g_params, g_aparams = paste_backward(
        grad, sources, params, plan, alpha, params if shared else aparams, aplan,
        [saved_a, saved_diff, saved_dv, saved_da], need_img, need_src, need_loc, need_alpha and alpha is not None,
    )
    g_sbox = g_theta = g_dbox = None
    if need_loc and g_params is not None:
        if g_aparams is not None:  # the alpha's theta and destination columns move with the image's
            g_params = g_params.clone()
            g_params[:, _DST] += g_aparams[:, _DST]
        g_dst = g_params.clone()
        g_dst[:, _SRC] = 0
        g_dbox, g_theta = object_params_backward(
            g_dst, dst_boxes, theta, objects[:, :6], align_corners, tuple(images.shape[2:]),
            need_dbox, need_theta)
        if need_sbox:
            g_src_cols = torch.zeros_like(g_params)
            g_src_cols[:, _SRC] = g_params[:, _SRC]
            g_sbox, _ = object_params_backward(
                g_src_cols, src_boxes, theta, _src_objects(objects), align_corners,
                tuple(sources.shape[2:]), True, False)
    outs = [
        g_img.to(images.dtype) if need_img else None,
        g_src.to(sources.dtype) if need_src and g_src is not None else None,
        g_sbox, g_theta, g_dbox,
        g_alpha.to(alpha.dtype) if g_alpha is not None and alpha is not None else None,
    ]
    return tuple(o if (o is not None and n) else empty() for o, n in zip(outs, needs))  # type: ignore[return-value]


@paste_backward_op.register_fake
def _paste_backward_fake(grad, images, sources, src_boxes, theta, dst_boxes, alpha, objects, levels, params,
                         aparams, saved_a, saved_diff, saved_dv, saved_da, mode, padding_mode, align_corners,
                         needs):
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
    ctx.mark_non_differentiable(objects, levels, params, aparams, s_a, s_diff, s_dv, s_da)


def _backward(ctx, grad, *unused):
    images, sources, src_boxes, theta, dst_boxes, alpha, *rest = ctx.saved_tensors
    n = ctx.needs_input_grad
    needs = [n[0], n[1], n[2], n[3], n[5], n[7]]
    grads = torch.ops.augpatch.paste_backward(grad, images, sources, src_boxes, theta, dst_boxes, alpha, *rest,
                                              *ctx.options, needs)
    g = [gr if need else None for gr, need in zip(grads, needs)]
    if g[3] is not None:
        g[3] = g[3].reshape(ctx.theta_shape)
    return g[0], g[1], g[2], g[3], None, g[4], None, g[5], None, None, None, None, None


torch.library.register_autograd("augpatch::paste", _backward, setup_context=_setup_context)


def _double_backward(ctx, *grads):
    raise RuntimeError(
        "augpatch: paste_objects is differentiable once; differentiating its backward (double "
        "backward, create_graph=True) is not supported"
    )


torch.library.register_autograd("augpatch::paste_backward", _double_backward)
