"""The compiled backend: C++ CPU kernels (``csrc/*.cpp``, built by :mod:`.build`).

Both CPU kernels run the same plan with the same per-pixel arithmetic; the compiled one
fuses every tap and channel of a pixel into one pass, which is what makes a warp cost
about as much as reading its pixels once. The glue to ``csrc/warp_cpu.cpp`` is
:class:`CompiledWarp` (:func:`kernel_options` is the order of ``Params`` there), the glue
to ``csrc/paste_cpu.cpp`` :class:`CompiledPaste`; both include ``csrc/sampling.h`` (the
plan rows, location tables, taps and padding they share).

A second operator's C++ kernel joins this backend with a ``csrc/<op>_cpu.cpp`` file
(compiled into the same extension, ``torch.ops.augpatch_cpu``), a kernel class like
:class:`CompiledWarp`, and its name in :attr:`CompiledBackend.kernels` /
:meth:`CompiledBackend.kernel`.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import torch
from torch import Tensor

from augpatch.ops.backends.base import Backend, PasteKernel, WarpKernel
from augpatch.ops.backends.compiled import build
from augpatch.ops.layout import MODE_CODES, PADDING_CODES
from augpatch.ops.plan import PastePlan, WarpPlan


def kernel_options(plan: WarpPlan) -> list[int]:
    """The options of the compiled kernel, in the order of ``Params`` in ``csrc/warp_cpu.cpp``.

    The kernel fills in ``save_from``, ``need_loc`` and ``need_img`` itself (they depend on
    the plan's levels and on which gradients a call needs).
    """
    fields = {
        "mode": MODE_CODES[plan.mode], "padding": PADDING_CODES[plan.padding_mode],
        "align": int(plan.align_corners), "parallel": int(plan.parallel), "save_from": 0,
        "s_b": plan.strides[0], "s_c": plan.strides[1], "s_h": plan.strides[2],
        "s_w": plan.strides[3], "channels": plan.channels, "need_loc": 0, "need_img": 0,
        "height": plan.size[0], "width": plan.size[1],
    }
    return list(fields.values())


class CompiledWarp(WarpKernel):
    """The warp's compiled kernel (``csrc/warp_cpu.cpp``).

    For the location gradient, only levels that read earlier levels' writes
    (``sequential`` levels after the first) keep something: of the patches they read,
    only the pixels an earlier level wrote (their values, image dtype, and a bit per
    patch pixel with per-object offsets, int64 words in a compute-dtype tensor; every
    other pixel is the input batch's, which the backward reads again and recomputes the
    derivatives from), or with
    ``padding_mode="image"``, where an object reads around its box, the two derivatives
    of every sampled value. The other levels read the input batch, which the backward
    reads again instead.
    """

    def __init__(self, ops: Any) -> None:
        self.ops = ops

    def saved_dtypes(self, image_dtype, compute_dtype, padding_mode):
        # padding "image": two derivatives; else the values kept and where they lie (int64
        # words stored in a compute-dtype tensor: compiled graphs recorded before stay valid)
        return (compute_dtype if padding_mode == "image" else image_dtype), compute_dtype

    def forward(self, images: Tensor, params: Tensor, plan: WarpPlan, need_loc: bool):
        out, kept0, kept1 = self.ops.warp_forward(images, params, plan.objects, plan.level_objects,
                                                  kernel_options(plan), need_loc)
        return out, [kept0, kept1]

    def backward(self, grad, images, params, plan, saved, need_img, need_loc):
        grad_images, grad_params = self.ops.warp_backward(
            grad, images, params, plan.objects, plan.level_objects, saved[0], saved[1],
            kernel_options(plan), need_img, need_loc,
        )
        return (grad_images if need_img else None), (grad_params if need_loc else None)

    def backward_into(self, grad, images, params, plan, saved, need_loc):
        grad_params = self.ops.warp_backward_into(
            grad, images, params, plan.objects, plan.level_objects, saved[0], saved[1], kernel_options(plan),
            need_loc,
        )
        return grad_params if need_loc else None


class CompiledPaste(PasteKernel):
    """The paste's compiled kernel (``csrc/paste_cpu.cpp``): forward and backward in C++.

    It keeps the eager kernel's four saved tensors in its layout (pixel order of the plan's
    rows), and its backward walks the levels in reverse as the eager one does
    (:func:`~augpatch.ops.backends.eager.eager_paste_backward`), with the same gradients.
    """

    def __init__(self, ops: Any) -> None:
        self.ops = ops

    @staticmethod
    def _common(plan: PastePlan, alpha, aparams, aplan) -> tuple[list, list[int], bool]:
        """The plan and alpha arguments of both C++ functions, the options, and whether the
        alpha shares the image's locations (``aparams is params``)."""
        with_alpha = alpha is not None and aplan is not None and aparams is not None
        args = [plan.objects, plan.frames, plan.level_objects, alpha if with_alpha else None,
                aparams if with_alpha else None, aplan.frames if with_alpha else None]
        options = [MODE_CODES[plan.mode], PADDING_CODES[plan.padding_mode], int(plan.align_corners),
                   *plan.out_strides]
        return args, options, with_alpha

    def forward(self, images, sources, params, plan: PastePlan, alpha, aparams, aplan, need_loc, need_diff):
        args, options, with_alpha = self._common(plan, alpha, aparams, aplan)
        out, *saved = self.ops.paste_forward(images, sources, params, *args, options, need_loc, need_diff,
                                             with_alpha and aparams is params)
        return out, saved

    def backward(self, grad, sources, params, plan, alpha, aparams, aplan, saved, need_img, need_src,
                 need_loc, need_alpha):
        args, options, with_alpha = self._common(plan, alpha, aparams, aplan)
        shared = with_alpha and aparams is params
        g_img, g_src, g_alpha, g_params, g_aparams = self.ops.paste_backward(
            grad, sources, params, *args, *saved, options, need_src, need_loc, need_alpha and with_alpha, shared)
        return (g_img, g_src if need_src else None, g_alpha if g_alpha.numel() else None,
                g_params if need_loc else None, g_aparams if g_aparams.numel() else None)


class CompiledBackend(Backend):
    """The compiled C++ kernels: CPU tensors; built (once per environment) on first use.

    ``ops`` (the loaded ``torch.ops.augpatch_cpu``) and ``error`` (why the build failed)
    are remembered for the process: a failed build is not retried.
    """

    name = "compiled"
    auto = {"cpu": 0}
    choosable = ("cpu",)
    kernels = ("warp", "paste")

    def __init__(self) -> None:
        self.ops: Any | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def load(self, strict: bool) -> Any | None:
        """The loaded operators (building them if needed), or ``None`` after a failed build.

        ``strict``: a failed build is an error; otherwise it warns once.
        """
        if self.ops is None and self.error is None:
            with self._lock:
                if self.ops is None and self.error is None:
                    try:
                        self.ops = build.load()
                    except Exception as exc:  # no compiler, no ninja, no headers, ...
                        self.error = exc
                        if not strict:
                            _warn_build_failed(exc)
        if self.ops is None and strict:
            raise RuntimeError("augpatch: the compiled CPU kernel could not be built") from self.error
        return self.ops

    def ready(self, device: torch.device, strict: bool) -> bool:
        if device.type != "cpu":
            if strict:
                raise RuntimeError(f"augpatch: the compiled kernel runs on CPU tensors, not {device}")
            return False
        return self.load(strict) is not None

    def kernel(self, op, device, strict):
        if op == "warp" and self.ready(device, strict=True):
            return CompiledWarp(self.ops)
        if op == "paste" and self.ready(device, strict=True):
            return CompiledPaste(self.ops)
        return super().kernel(op, device, strict)


def _warn_build_failed(exc: BaseException) -> None:
    warnings.warn(
        "augpatch: could not build the compiled CPU kernel "
        f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1][:300]}); "
        "running the slower eager kernel. Set AUGPATCH_CPU_KERNEL=eager to skip the build.",
        RuntimeWarning,
        stacklevel=6,
    )
