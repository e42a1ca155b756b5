"""The Triton kernel of :func:`augpatch.functional.warp_patches` (CUDA; CPU when interpreted).

:class:`TritonBackend` is the backend the operator ``augpatch::warp`` runs on CUDA
(:mod:`augpatch.ops.settings`). It runs the same plan as the eager kernel
(:mod:`augpatch.ops.backends.eager`) and the compiled CPU kernel (``csrc/warp_cpu.cpp``) with the
same per-pixel arithmetic, fused: one program computes a tile of one object's patch
(``BH x BW`` pixels, every channel) from the sampling location (``F.affine_grid``'s base
coordinate, computed in the kernel as ``schedule.exact_base_grid`` does, times ``theta``;
``grid_sample``'s unnormalize with its fused multiply-add emulated; padding) to the taps
and the stored value. The device code is ``device_code.py``; this module plans the
launches.

Launches. Per level of the plan: one kernel that samples every pixel of the level
(every level of ``parallel`` and the first of ``sequential`` read the input batch and
write the output directly; later ``sequential`` levels read the output as the earlier
levels left it, so they write into a buffer of the level's pixels, then a second
kernel copies it in). The backward walks the levels in reverse over one gradient
buffer: per level one kernel takes the output gradient of the level's pixels out of
it, one scatters ``weight * gradient`` onto every tap the level read (``atomic_add``)
and computes the location gradient of every pixel, reduced per tile (per column, per
row, per object) and added to the ``[K, 14]`` parameter gradient with atomics: the
chain rule of ``eager._Locations.param_grads``. ``parallel`` takes every level's
gradient before scattering any (every level read the input). Nothing is launched per
object. Kernel variants are compiled per mode and dtype on first use (a few seconds
each, then cached on disk by Triton); padding, ``align_corners`` and strides are
runtime arguments.

Synchronisation. None in this module: the per-object tables (``[K, 6]`` patches and the
``[T, 3]`` tiles) are built on the host from the plan, which is already there
(``WarpPlan.objects`` is a CPU tensor: the planning made its one small
device-to-host copy while planning), and go to the device in two copies from pinned
memory that do not wait for the device. The images' gradient (scattered with atomics)
and the parameter gradient (per-tile partial sums added with atomics) are summed in no
fixed order: equal to the reference to float rounding, not bitwise reproducible from
run to run. The forward has no atomics (its result is deterministic).

Memory. The output (the working copy of the batch) and the tables (``O(K)`` plus one
entry per tile). For the location gradient, ``sequential`` levels after the first keep
the values of the patches they read (image dtype), from which the backward recomputes
the derivatives; with ``padding_mode="image"`` (an object reads around its box) they
keep the two derivatives of every value instead (compute dtype), as the compiled CPU
kernel does. Later ``sequential`` levels need a buffer of their pixels (image dtype).
The backward holds one gradient buffer of the batch (compute dtype; for float32 images
it is the images' gradient itself) and the output gradients of one level
(``parallel``: of every level), ``C x pixels``.

Precision. Locations are computed in the compute dtype with the operations of the eager
kernel, in the same order (kernels are compiled with ``enable_fp_fusion=False``; float32
division is ``div_rn``, as float32 ``/`` is approximate on NVIDIA GPUs; nearest mode's
round half to even and bfloat16's rounding are done by hand, so that the interpreter
gives the same bits). Under the interpreter the float32 outputs of the tests are
bit-identical to the compiled CPU kernel's; outputs and gradients equal the reference
loop to float rounding (float64: about 1e-12).

Interpreter. With ``TRITON_INTERPRET=1`` (read when a kernel is needed, not only when
Triton is imported) the same kernels run in Triton's interpreter, on CPU tensors too
(``AUGPATCH_CPU_KERNEL=triton``): slow, for testing without a GPU. Both variants can
exist in one process (the kernel module is loaded once per variant), and the kernels
call none of Triton's own ``@jit`` helpers (``tl.zeros``, ``tl.sum``), which are
compiled or interpreted as the setting was when Triton was imported.

Example:
    >>> import os, torch
    >>> from augpatch.functional import set_cpu_kernel, warp_patches
    >>> os.environ["TRITON_INTERPRET"] = "1"  # doctest: +SKIP
    >>> set_cpu_kernel("triton")  # doctest: +SKIP
    >>> out = warp_patches(torch.rand(1, 3, 12, 14), torch.tensor([[1, 1, 9, 8], [2, 3, 12, 11],
    ...                    [0, 0, 5, 5]]), torch.eye(2, 3).repeat(3, 1, 1))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from augpatch.ops.backends.base import Backend, WarpKernel
from augpatch.ops.backends.eager import eager_backward, eager_forward
from augpatch.ops.layout import MODE_CODES as _MODE
from augpatch.ops.layout import PADDING_CODES as _PAD
from augpatch.ops.layout import TAPS_PER_AXIS as _TAPS
from augpatch.ops.plan import WarpPlan

_KERNELS = Path(__file__).with_name("device_code.py")  # not imported as a submodule: see kernels()
_PASTE_KERNELS = Path(__file__).with_name("paste_code.py")
_LOCK = threading.Lock()
_MODULES: dict[tuple[str, bool], ModuleType] = {}

# candidate tile shapes (rows, columns) and the fixed cost of a program, in pixel lanes:
# the shape that covers the patches with the fewest lanes plus programs wins. CUDA: one
# shape of 256 pixels, 8 warps (4 values a thread with 4 channels: ptxas for sm_90 then
# allocates 40-123 registers and spills nothing in float32, 216-254 without spills in
# float64 bicubic; 4 warps spilled there): every tile shape is a compilation of each kernel
# variant of its own (seconds each), which the slightly better fit of other shapes does
# not repay
_TILES_CUDA = ((16, 16),)
_TILE_COST_CUDA = 96
_NUM_WARPS = 8
_TILES_INTERPRETER = ((8, 16), (16, 16), (16, 32))
_TILE_COST_INTERPRETER = 4096
_MAX_CHANNEL_BLOCK = 4  # channels per block (more channels: more blocks, an unrolled loop)


# ----------------------------------------------------------------------------- availability


def interpreting() -> bool:
    """Whether Triton's interpreter is on (``TRITON_INTERPRET``, read now)."""
    import triton

    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def check_available(device: torch.device) -> None:
    """Raise a clear error if the Triton kernel cannot run on ``device``."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "augpatch: the Triton kernel needs the 'triton' package (it ships with the CUDA "
            "builds of torch)"
        ) from exc
    if device.type == "cpu":
        if not interpreting():
            raise RuntimeError(
                "augpatch: the Triton kernel runs on CPU tensors only in Triton's interpreter: set "
                "the environment variable TRITON_INTERPRET=1 (AUGPATCH_CPU_KERNEL=triton / "
                "set_cpu_kernel('triton') is meant for testing the GPU kernel without a GPU)"
            )
    elif device.type != "cuda":
        raise RuntimeError(f"augpatch: the Triton kernel runs on CUDA (or interpreted on the CPU), not {device}")


def kernels() -> ModuleType:
    """The warp's kernel module for the current interpreter setting (loaded on first use)."""
    return _variant(_KERNELS, "_kernels_")


def paste_kernels() -> ModuleType:
    """The paste's kernel module (``paste_code.py``) for the current interpreter setting; it
    samples with the warp's device code of the same variant (:func:`kernels`)."""
    return _variant(_PASTE_KERNELS, "_paste_kernels_", kernels())


def _variant(path: Path, prefix: str, warp_code: ModuleType | None = None) -> ModuleType:
    """The module of the device code ``path`` for the current interpreter setting, loaded once
    per variant under its own name (``warp_code``: handed to it as ``_warp_code``)."""
    interp = interpreting()
    key = (prefix, interp)
    module = _MODULES.get(key)
    if module is None:
        with _LOCK:
            module = _MODULES.get(key)
            if module is None:
                name = "augpatch.ops.backends.triton." + prefix + ("interpreted" if interp else "compiled")
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                if warp_code is not None:
                    module._warp_code = warp_code  # type: ignore[attr-defined]
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
                if interp:
                    _direct_helpers(module)
                _MODULES[key] = module
    return module


class _Direct:
    """An interpreted helper called without re-patching ``triton.language`` (the kernel's
    launch patched it already, for the same module globals); only for speed."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn.rewrite()(*args, **kwargs)


def _direct_helpers(module: ModuleType) -> None:
    """Make the interpreter call the helpers of ``module`` directly (several times faster:
    the interpreter otherwise patches ``triton.language`` again at every helper call)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - another Triton layout: keep the slow path
        return
    for name, fn in list(vars(module).items()):
        if name.startswith("_") and isinstance(fn, InterpretedFunction) and hasattr(fn, "rewrite"):
            setattr(module, name, _Direct(fn))


# ----------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    """The device tables of a plan and how its levels map onto tiles.

    ``obj`` ``[K, 6]`` int64: ``x0, y0, w, h, image, first pixel``; ``tiles`` ``[T, 3]``
    int32: ``object, i0, j0``. ``level_tiles`` / ``level_pix``: the levels' bounds in the
    tiles and in the pixels.
    """

    obj: Tensor
    tiles: Tensor
    level_tiles: list[int]
    level_pix: list[int]
    bh: int
    bw: int
    bc: int
    ncb: int
    num_warps: int

    def tiles_of(self, level: int) -> tuple[int, int]:
        return self.level_tiles[level], self.level_tiles[level + 1] - self.level_tiles[level]

    def pixels_of(self, level: int) -> tuple[int, int]:
        return self.level_pix[level], self.level_pix[level + 1] - self.level_pix[level]


def _tile_shape(w: Tensor, h: Tensor, interp: bool) -> tuple[int, int]:
    """The tile shape with the least cost (lanes, plus a fixed cost per program)."""
    shapes = _TILES_INTERPRETER if interp else _TILES_CUDA
    fixed = _TILE_COST_INTERPRETER if interp else _TILE_COST_CUDA
    best, best_cost = shapes[0], None
    for bh, bw in shapes:
        tiles = int((((h + bh - 1) // bh) * ((w + bw - 1) // bw)).sum())
        cost = tiles * (bh * bw + fixed)
        if best_cost is None or cost < best_cost:
            best, best_cost = (bh, bw), cost
    return best


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _layout(plan: WarpPlan, device: torch.device) -> _Layout:
    """The layout of ``plan`` (cached on the plan: the backward reuses the forward's)."""
    interp = interpreting()
    key = (device, interp)
    cache = plan.__dict__.setdefault("_triton_layouts", {})
    if key in cache:
        return cache[key]
    o = plan.objects
    x0, y0, w, h, img = o.unbind(1)
    num = o.shape[0]
    area = w * h
    fp = torch.cumsum(area, 0) - area
    bh, bw = _tile_shape(w, h, interp)
    nty = (h + bh - 1) // bh
    ntx = (w + bw - 1) // bw
    count = nty * ntx
    k = torch.repeat_interleave(torch.arange(num), count)
    r = torch.arange(k.numel()) - (torch.cumsum(count, 0) - count)[k]
    tiles = torch.stack([k, (r // ntx[k]) * bh, (r % ntx[k]) * bw], 1).to(torch.int32)
    bounds = torch.tensor(plan.level_objects)
    tile_ends = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(count, 0)])
    pix_ends = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(area, 0)])
    obj = torch.stack([x0, y0, w, h, img, fp], 1)
    bc = min(_MAX_CHANNEL_BLOCK, 1 << max(plan.channels - 1, 0).bit_length())
    ncb = -(-plan.channels // bc)
    layout = _Layout(
        obj=_to_device(obj, device), tiles=_to_device(tiles, device),
        level_tiles=tile_ends[bounds].tolist(), level_pix=pix_ends[bounds].tolist(),
        bh=bh, bw=bw, bc=bc, ncb=ncb, num_warps=_NUM_WARPS,
    )
    cache.clear()
    cache[key] = layout
    return layout


def _tap_padding(plan: WarpPlan) -> int:
    """Padding applied to tap indices: bicubic border / reflection (the other modes move
    the location inside first, then their taps need only the zeros rule)."""
    if plan.mode == "bicubic" and plan.padding_mode in ("border", "reflection"):
        return _PAD[plan.padding_mode]
    return 0


def _launch_options(lay: _Layout) -> dict:
    return {"num_warps": lay.num_warps, "enable_fp_fusion": False}


def _blocks(lay: _Layout) -> dict:
    """The block sizes every kernel takes (constexpr)."""
    return {"BC": lay.bc, "NCB": lay.ncb, "BH": lay.bh, "BW": lay.bw}


# ----------------------------------------------------------------------------- forward


def _on(device: torch.device) -> contextlib.AbstractContextManager:
    """Launch on ``device`` (Triton launches on the current CUDA device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def forward(images: Tensor, params: Tensor, plan: WarpPlan, need_loc: bool) -> tuple[Tensor, list[Tensor]]:
    """The warped batch and what the backward needs.

    Args:
        images: ``[B, C, H, W]`` (any dtype ``warp_patches`` accepts, any strides).
        params: ``[K, 14]`` per-object parameters in the plan's processing order, in the
            compute dtype (float64 for float64 images, else float32).
        plan: the plan (``WarpPlan``).
        need_loc: whether the gradient of ``params`` will be asked for.

    Returns:
        ``(out, [saved0, saved1])``: ``out`` a new tensor with ``plan.strides``; two flat
        tensors, empty unless the location gradient of ``sequential`` levels after the
        first needs them: the patches those levels read (``saved0``, ``[C * pixels]``,
        image dtype) or, with ``padding_mode="image"``, the two derivatives of every value
        they sampled (compute dtype). Dtypes: :meth:`TritonBackend.saved_dtypes`.
    """
    with _on(images.device):
        return _forward(images, params, plan, need_loc)


def _forward(images: Tensor, params: Tensor, plan: WarpPlan, need_loc: bool) -> tuple[Tensor, list[Tensor]]:
    mod = kernels()
    dev = images.device
    lay = _layout(plan, dev)
    params = params.contiguous()
    work = torch.empty_strided(images.shape, plan.strides, dtype=images.dtype, device=dev)
    work.copy_(images)
    channels = plan.channels
    height, width = plan.size
    levels = len(lay.level_pix) - 1
    later = not plan.parallel and levels > 1  # levels that read the output of earlier ones
    save0, total = lay.level_pix[1] if levels > 1 else 0, lay.level_pix[-1]
    save_n = total - save0
    keep = need_loc and later and plan.padding_mode != "image"
    deriv = need_loc and later and plan.padding_mode == "image"
    kept = dx = dy = None
    first_dtype = params.dtype if plan.padding_mode == "image" else images.dtype
    saved = [torch.empty(0, dtype=first_dtype, device=dev), params.new_empty(0)]
    if keep:
        kept = torch.empty(channels * save_n, dtype=images.dtype, device=dev)
        saved[0] = kept
    if deriv:
        dx = torch.empty(channels * save_n, dtype=params.dtype, device=dev)
        dy = torch.empty(channels * save_n, dtype=params.dtype, device=dev)
        saved = [dx, dy]
    result = None
    if later:
        most = max(lay.level_pix[l + 1] - lay.level_pix[l] for l in range(1, levels))
        result = torch.empty(channels * most, dtype=images.dtype, device=dev)
    blocks = _blocks(lay)
    common = {
        "MODE": _MODE[plan.mode], "F64": params.dtype == torch.float64, "NT": _TAPS[plan.mode], **blocks,
    }
    opts = _launch_options(lay)
    flags = (int(plan.align_corners), _PAD[plan.padding_mode], _tap_padding(plan))
    d_sb, d_sc, d_sh, d_sw = plan.strides
    for level in range(levels):
        tile0, n_tiles = lay.tiles_of(level)
        pix0, n_pix = lay.pixels_of(level)
        direct = plan.parallel or level == 0
        src = images if direct else work
        s_sb, s_sc, s_sh, s_sw = src.stride()
        dst = work if direct else result
        level_deriv = deriv and not direct
        mod.warp_forward[(n_tiles,)](
            src, dst, dx if level_deriv else params, dy if level_deriv else params, params, lay.obj,
            lay.tiles, tile0, pix0, n_pix, save0, save_n,
            s_sb, s_sc, s_sh, s_sw, d_sb, d_sc, d_sh, d_sw, channels, height, width,
            *flags, int(not direct), DERIV=level_deriv, **common, **opts,
        )
        if not direct:
            mod.write_level[(n_tiles,)](
                result, work, kept if keep else result, lay.obj, lay.tiles, tile0, pix0, n_pix, save0,
                save_n, d_sb, d_sc, d_sh, d_sw, channels, int(keep), **blocks, **opts,
            )
    return work, saved


# ----------------------------------------------------------------------------- backward


def backward(
    grad: Tensor, images: Tensor, params: Tensor, plan: WarpPlan, saved: list[Tensor],
    need_img: bool, need_loc: bool,
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of ``images`` (in its dtype) and of ``params`` (``[K, 14]``).

    ``images`` are read only for the location gradient (levels that read the input);
    otherwise only their dtype matters (an empty tensor will do). ``saved`` is what
    :func:`forward` returned (with ``need_loc``).
    """
    with _on(grad.device):
        return _backward(grad, images, params, plan, saved, need_img, need_loc)


def _backward(
    grad: Tensor, images: Tensor, params: Tensor, plan: WarpPlan, saved: list[Tensor],
    need_img: bool, need_loc: bool,
) -> tuple[Tensor | None, Tensor | None]:
    mod = kernels()
    dev = grad.device
    dtype = params.dtype
    lay = _layout(plan, dev)
    params = params.contiguous()
    g = torch.empty_strided(grad.shape, plan.strides, dtype=dtype, device=dev)
    g.copy_(grad)
    gprm = torch.zeros_like(params) if need_loc else params
    channels = plan.channels
    height, width = plan.size
    levels = len(lay.level_pix) - 1
    total = lay.level_pix[-1]
    save0 = lay.level_pix[1] if levels > 1 else 0
    save_n = total - save0
    if plan.parallel:
        pending = torch.empty(channels * total, dtype=dtype, device=dev)
    else:
        most = max(lay.level_pix[l + 1] - lay.level_pix[l] for l in range(levels))
        pending = torch.empty(channels * most, dtype=dtype, device=dev)
    opts = _launch_options(lay)
    blocks = _blocks(lay)
    flags = (int(plan.align_corners), _PAD[plan.padding_mode], _tap_padding(plan))
    d_sb, d_sc, d_sh, d_sw = plan.strides
    common = {
        "MODE": _MODE[plan.mode], "F64": dtype == torch.float64, "NT": _TAPS[plan.mode], **blocks,
    }

    def pack(level: int) -> tuple[int, int]:  # where a level's output gradients are in `pending`
        return (0, total) if plan.parallel else lay.pixels_of(level)

    def take(level: int) -> None:
        tile0, n_tiles = lay.tiles_of(level)
        pack0, pack_n = pack(level)
        mod.take_level[(n_tiles,)](
            g, pending, lay.obj, lay.tiles, tile0, pack0, pack_n, d_sb, d_sc, d_sh, d_sw, channels,
            **blocks, **opts,
        )

    def scatter(level: int) -> None:
        later = not plan.parallel and level > 0  # read what earlier levels wrote
        to_buffer = need_img or later
        if not (to_buffer or need_loc):
            return
        tile0, n_tiles = lay.tiles_of(level)
        pack0, pack_n = pack(level)
        saved_d = need_loc and later and plan.padding_mode == "image"
        packed = need_loc and later and not saved_d
        if packed:  # the patches as the level read them
            src, s_strides = saved[0], (0, 0, 0, 0)
        elif need_loc and not saved_d:  # the level read the input
            src, s_strides = images, images.stride()
        else:  # not read
            src, s_strides = g, (0, 0, 0, 0)
        dx, dy = (saved[0], saved[1]) if saved_d else (g, g)
        mod.warp_backward[(n_tiles,)](
            g, pending, src, dx, dy, gprm, params, lay.obj, lay.tiles,
            tile0, pack0, pack_n, save0, save_n, *s_strides, d_sb, d_sc, d_sh, d_sw,
            channels, height, width, *flags, int(packed), int(to_buffer),
            NEED_LOC=need_loc, SAVED_D=saved_d, **common, **opts,
        )

    for level in range(levels - 1, -1, -1):
        take(level)
        if not plan.parallel:
            scatter(level)
    if plan.parallel:  # every level read the input: all output gradients are taken first
        for level in range(levels):
            scatter(level)
    grad_images = g.to(images.dtype) if need_img else None
    return grad_images, (gprm if need_loc else None)


# ----------------------------------------------------------------------------- backend


class _Lenient:
    """A kernel of the Triton backend that, with ``strict=False`` (``AUGPATCH_CUDA_KERNEL=auto``),
    computes a call whose Triton kernel failed (e.g. does not compile on this GPU) with the
    eager kernel: it warns once, and the backend then reports itself not ready (later calls
    run eager)."""

    def __init__(self, backend: TritonBackend, strict: bool) -> None:
        self.backend = backend
        self.strict = strict

    def _failed(self, exc: Exception) -> None:
        if self.strict or isinstance(exc, torch.cuda.OutOfMemoryError):
            raise exc
        self.backend.failed(exc)


class TritonWarp(_Lenient, WarpKernel):
    """The warp's Triton kernel (:func:`forward`, :func:`backward`); lenient as :class:`_Lenient`."""

    def saved_dtypes(self, image_dtype, compute_dtype, padding_mode):
        return (compute_dtype if padding_mode == "image" else image_dtype), compute_dtype

    def forward(self, images, params, plan, need_loc):
        try:
            return forward(images, params, plan, need_loc)
        except Exception as exc:
            self._failed(exc)
        return eager_forward(images, params, plan, need_loc)

    def backward(self, grad, images, params, plan, saved, need_img, need_loc):
        try:
            return backward(grad, images, params, plan, saved, need_img, need_loc)
        except Exception as exc:
            self._failed(exc)
        # what the eager backward needs, from its own forward
        _, eager_saved = eager_forward(images, params, plan, need_loc)
        return eager_backward(grad, images, params, plan, eager_saved, need_img, need_loc)


class TritonBackend(Backend):
    """The Triton kernels: CUDA tensors (``"auto"``'s first choice there), or CPU tensors in
    Triton's interpreter when chosen by name (``set_cpu_kernel("triton")``).

    ``error``: the failure that made ``"auto"`` give up on Triton in this process (one
    warning; later ``"auto"`` calls run eager).
    """

    name = "triton"
    auto = {"cuda": 0}
    choosable = ("cpu", "cuda")
    kernels = ("warp", "paste")

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def ready(self, device: torch.device, strict: bool) -> bool:
        if strict:
            check_available(device)
            return True
        if self.error is not None:
            return False
        try:
            check_available(device)
        except Exception as exc:
            self.failed(exc)
            return False
        return True

    def kernel(self, op, device, strict):
        if op == "warp":
            return TritonWarp(self, strict)
        if op == "paste":
            from augpatch.ops.backends.triton.paste import TritonPaste  # imports this module

            return TritonPaste(self, strict)
        return super().kernel(op, device, strict)

    def failed(self, exc: BaseException) -> None:
        """``auto``: the Triton kernel failed; warn once, and run eager from now on."""
        if self.error is None:
            warnings.warn(
                "augpatch: the Triton CUDA kernel is unavailable "
                f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1][:300]}); "
                "running the slower eager kernel. Set AUGPATCH_CUDA_KERNEL=eager to skip it, or "
                "=triton to make this an error.",
                RuntimeWarning,
                stacklevel=5,
            )
        self.error = exc
