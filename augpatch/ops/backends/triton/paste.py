"""The Triton kernel of :func:`augpatch.functional.paste_objects` (CUDA; CPU when interpreted).

The paste's plan (:class:`~augpatch.ops.plan.PastePlan`: destination rects in processing
order, the levels of the schedule, the frame each object reads) runs as one launch per
level (``paste_code.paste_forward``): a program samples a tile of one object's destination
box from its source frame with the warp's per-pixel arithmetic (``device_code.py``: the
eager kernel's, operation for operation), samples the alpha with the same map (no
location work of its own where the alpha is in the sources' frame), composites
``a * new + (1 - a) * below`` and stores with the image dtype's rounding (uint8: round half
to even and clamp; half / bfloat16: round to nearest) after every paste, as the eager
kernel does. Objects of one level never overlap in one image (the schedule), so no
program reads what another writes; levels run in order.

The backward walks the levels in reverse over one gradient buffer (compute dtype, the
output's strides): per level one launch (``paste_code.paste_backward``) writes
``(1 - a) g`` back for the pixels below (0 without alpha) and scatters ``a g`` onto the taps
of the source frame (``atomic_add``), the alpha's gradient onto the alpha's taps, and the
location gradients onto the ``[K, 14]`` parameter tables (per tile, with atomics: the chain
rule of the eager kernel's ``_Locations.param_grads``). Sums with atomics are in no fixed
order: equal to the eager kernel to float rounding, not bitwise reproducible.

Saved for the backward: the eager kernel's four flat tensors in the same layout (the
alpha as sampled ``[P]``, ``new - below`` ``[C * P]``, the derivatives of the sampled values
``[2 * C * P]`` and of the alpha ``[2 * P]``, compute dtype, pixel order of the plan), so a
forward that fell back to the eager kernel and this backward (or the reverse) agree.

Like the warp's kernel, nothing synchronises: the tables come from the plan (on the host
already) through pinned memory. Kernel variants are compiled per mode, dtype and the
alpha / gradient flags on first use (cached on disk by Triton).

Example:
    >>> from augpatch.ops.backends import get
    >>> get("triton").offers("paste")  # "auto" picks it for CUDA tensors
    True
    >>> import os, torch
    >>> from augpatch.functional import paste_objects, set_cpu_kernel
    >>> os.environ["TRITON_INTERPRET"] = "1"  # doctest: +SKIP
    >>> set_cpu_kernel("triton")  # doctest: +SKIP
    >>> out = paste_objects(torch.rand(2, 3, 12, 14), torch.tensor([[1, 1, 9, 8]]), torch.eye(2, 3)[None],
    ...                     torch.tensor([1]), torch.tensor([[0, 2, 6, 9]]), torch.tensor([0]))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from augpatch.ops.backends.base import PasteKernel
from augpatch.ops.backends.eager import eager_paste_backward, eager_paste_forward
from augpatch.ops.backends.triton import (
    _MODE,
    _PAD,
    _TAPS,
    _blocks,
    _launch_options,
    _layout,
    _Lenient,
    _on,
    _tap_padding,
    _to_device,
    paste_kernels,
)
from augpatch.ops.plan import PastePlan


def _frames(plan: PastePlan, aplan: PastePlan | None, device: torch.device) -> Tensor:
    """``[K, 10]`` int64 on ``device``: the source frame and the alpha's frame of every object
    (``x0, y0, width, height, index`` each; the source's twice without alpha), cached on the plan."""
    cache = plan.__dict__.setdefault("_triton_frames", {})
    key = (device, aplan is not None)
    if key not in cache:
        frames = torch.cat([plan.frames, (aplan if aplan is not None else plan).frames], 1)
        cache.clear()
        cache[key] = _to_device(frames.long().contiguous(), device)
    return cache[key]


@dataclass
class _Launch:
    """What both kernels of a paste take: the kernel module, the plan's layout and frames, the
    alpha (``None`` without; a bool alpha read as its bytes), whether it shares the image's
    parameters, the parameter tables (``aprm``: the alpha's, or the image's), the runtime
    arguments after ``tile0, P`` (strides, sizes, options), the constexprs common to both and
    the launch options."""

    mod: ModuleType
    lay: Any
    frames: Tensor
    alpha: Tensor | None
    shared: bool
    params: Tensor
    aprm: Tensor
    args: tuple[int, ...]
    consts: dict[str, Any]
    opts: dict[str, Any]


def _launch(plan: PastePlan, aplan: PastePlan | None, params: Tensor, aparams: Tensor | None,
            alpha: Tensor | None, device: torch.device) -> _Launch:
    lay = _layout(plan, device)
    has_alpha = alpha is not None and aplan is not None and aparams is not None
    shared = has_alpha and aparams is params
    if has_alpha and alpha.dtype == torch.bool:
        alpha = alpha.view(torch.uint8)  # 0 / 1 bytes: the same storage, no copy
    params = params.contiguous()
    a_sb, _, a_sh, a_sw = aplan.strides if has_alpha else (0, 0, 0, 0)
    ah, aw = aplan.read_size if has_alpha else (1, 1)
    args = (*plan.strides, *plan.out_strides, a_sb, a_sh, a_sw, plan.channels, *plan.read_size, ah, aw,
            int(plan.align_corners), _PAD[plan.padding_mode], _tap_padding(plan))
    consts = {"MODE": _MODE[plan.mode], "ALPHA": has_alpha, "SHARED": shared,
              "F64": params.dtype == torch.float64, "NT": _TAPS[plan.mode], **_blocks(lay)}
    return _Launch(mod=paste_kernels(), lay=lay, frames=_frames(plan, aplan, device),
                   alpha=alpha if has_alpha else None, shared=shared, params=params,
                   aprm=aparams.contiguous() if has_alpha and not shared else params, args=args, consts=consts,
                   opts=_launch_options(lay))


def forward(
    images: Tensor, sources: Tensor, params: Tensor, plan: PastePlan, alpha: Tensor | None,
    aparams: Tensor | None, aplan: PastePlan | None, need_loc: bool, need_diff: bool,
) -> tuple[Tensor, list[Tensor]]:
    """The pasted batch (``plan.out_strides``) and the four saved tensors of
    :meth:`~augpatch.ops.backends.base.PasteKernel.forward` (``eager_paste_forward``'s layout).

    ``sources`` dense with ``plan.strides``; ``alpha`` ``[N, 1, h, w]`` dense with
    ``aplan.strides``; ``params`` / ``aparams`` ``[K, 14]`` in the compute dtype
    (``aparams is params`` where the alpha shares the image's locations).
    """
    with _on(images.device):
        return _forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)


def _forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff):
    dev = images.device
    run = _launch(plan, aplan, params, aparams, alpha, dev)
    lay, has_alpha = run.lay, run.alpha is not None
    work = torch.empty_strided(images.shape, plan.out_strides, dtype=images.dtype, device=dev)
    work.copy_(images)
    total = lay.level_pix[-1]
    channels = plan.channels
    # one fresh tensor each (outputs of an operator must not alias), empty where not needed
    sa = params.new_empty(total if has_alpha else 0)
    sdiff = params.new_empty(channels * total if has_alpha and need_diff else 0)
    sdv = params.new_empty(2 * channels * total if need_loc else 0)
    sda = params.new_empty(2 * total if has_alpha and need_loc else 0)
    flags = {"NEED_LOC": need_loc, "NEED_DIFF": bool(has_alpha and need_diff)}
    a_ptr = run.alpha if has_alpha else sources
    for level in range(len(lay.level_pix) - 1):
        tile0, n_tiles = lay.tiles_of(level)
        run.mod.paste_forward[(n_tiles,)](
            sources, work, a_ptr, run.params, run.aprm, lay.obj, run.frames, lay.tiles, sa, sdiff, sdv, sda,
            tile0, total, *run.args, **run.consts, **flags, **run.opts,
        )
    return work, [sa, sdiff, sdv, sda]


def backward(
    grad: Tensor, sources: Tensor, params: Tensor, plan: PastePlan, alpha: Tensor | None,
    aparams: Tensor | None, aplan: PastePlan | None, saved: list[Tensor], need_img: bool,
    need_src: bool, need_loc: bool, need_alpha: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(grad_images, grad_sources, grad_alpha, grad_params, grad_aparams)`` in the compute
    dtype, as ``eager_paste_backward`` (``saved``: what :func:`forward` or the eager forward
    returned). ``grad_aparams`` only where the alpha has parameters of its own."""
    with _on(grad.device):
        return _backward(grad, sources, params, plan, alpha, aparams, aplan, saved, need_src, need_loc,
                         need_alpha)


def _backward(grad, sources, params, plan, alpha, aparams, aplan, saved, need_src, need_loc, need_alpha):
    dev = grad.device
    dtype = params.dtype
    run = _launch(plan, aplan, params, aparams, alpha, dev)
    lay, has_alpha, shared = run.lay, run.alpha is not None, run.shared
    sa, sdiff, sdv, sda = (t.contiguous() for t in saved)
    g = torch.empty_strided(grad.shape, plan.out_strides, dtype=dtype, device=dev)
    g.copy_(grad)
    grad_src = torch.empty_strided(sources.shape, plan.strides, dtype=dtype, device=dev).zero_() if need_src else None
    grad_alpha = None
    if has_alpha and need_alpha:
        grad_alpha = torch.empty_strided(alpha.shape, aplan.strides, dtype=dtype, device=dev).zero_()
    loc = need_loc and sdv.numel() > 0
    has_diff = has_alpha and sdiff.numel() > 0
    alpha_loc = need_loc and has_diff and sda.numel() > 0
    gprm = torch.zeros_like(run.params) if need_loc else None
    gaprm = torch.zeros_like(run.aprm) if need_loc and has_alpha and not shared else None
    flags = {"NEED_SRC": need_src, "NEED_LOC": loc, "ALPHA_LOC": alpha_loc, "NEED_ALPHA": grad_alpha is not None,
             "HAS_DIFF": has_diff, "PARAMS": loc or (shared and alpha_loc)}
    total = lay.level_pix[-1]
    for level in range(len(lay.level_pix) - 2, -1, -1):
        tile0, n_tiles = lay.tiles_of(level)
        run.mod.paste_backward[(n_tiles,)](
            g, grad_src if grad_src is not None else g, grad_alpha if grad_alpha is not None else g,
            gprm if gprm is not None else run.params, gaprm if gaprm is not None else run.params, run.params,
            run.aprm, lay.obj, run.frames, lay.tiles, sa, sdiff, sdv, sda, tile0, total, *run.args,
            **run.consts, **flags, **run.opts,
        )
    return g, grad_src, grad_alpha, gprm, gaprm


class TritonPaste(_Lenient, PasteKernel):
    """The paste's Triton kernel (:func:`forward`, :func:`backward`); with ``strict=False`` a
    failure warns once and the call runs the eager kernel (as the warp's ``TritonWarp``).
    """

    def forward(self, images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff):
        try:
            return forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)
        except Exception as exc:
            self._failed(exc)
        return eager_paste_forward(images, sources, params, plan, alpha, aparams, aplan, need_loc, need_diff)

    def backward(self, grad, sources, params, plan, alpha, aparams, aplan, saved, need_img, need_src,
                 need_loc, need_alpha):
        try:
            return backward(grad, sources, params, plan, alpha, aparams, aplan, saved, need_img, need_src,
                            need_loc, need_alpha)
        except Exception as exc:
            self._failed(exc)
        # the saved tensors have the eager kernel's layout: its backward reads them as they are
        return eager_paste_backward(grad, sources, params, plan, alpha, aparams, aplan, saved, need_img,
                                    need_src, need_loc, need_alpha)
