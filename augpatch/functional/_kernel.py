"""Which kernel (backend) runs a warp on a device: the one place that decides.

Every backend implements :class:`Backend` (a forward and a backward over a warp's plan);
the operator ``augpatch::warp`` (``_op.py``) asks :func:`backend_for` which one runs, and
:func:`active_kernel` tells the user. On the CPU that is the compiled kernel
(``csrc/warp_cpu.cpp``) or the eager one; on CUDA the Triton kernel (``_triton.py``) or
the eager one.

The compiled kernel is built from source with ``torch.utils.cpp_extension`` the first
time a CPU warp needs it (about a minute on two cores, then cached on disk under
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) and is loaded
from the cache afterwards. It needs a C++ compiler and ``ninja`` (a dependency of
augpatch). Both kernels run the same plan with the same per-pixel arithmetic; the
compiled one fuses every tap and channel of a pixel into one pass, which is what
makes a warp cost about as much as reading its pixels once.

Choose with the environment variable ``AUGPATCH_CPU_KERNEL`` (read when a warp first
needs a kernel) or :func:`set_cpu_kernel`:

- ``"auto"`` (default): compiled; if it cannot be built, warn once and run eager.
- ``"compiled"``: compiled, and a build failure is an error.
- ``"eager"``: never build; run the eager PyTorch kernel.
- ``"triton"``: the Triton kernel in Triton's interpreter (needs ``TRITON_INTERPRET=1``;
  a clear error otherwise): slow, for testing the GPU kernel on a machine without one.

CUDA tensors run the Triton kernel (``_triton.py``). Choose with ``AUGPATCH_CUDA_KERNEL``
or :func:`set_cuda_kernel`:

- ``"auto"`` (default): Triton; if it is missing or fails (e.g. does not compile), warn
  once and run the eager kernel (vectorised PyTorch operations).
- ``"triton"``: Triton, and a failure is an error.
- ``"eager"``: the eager kernel.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augpatch.functional._sampler import (
    WarpPlan,
    compiled_backward,
    compiled_forward,
    eager_backward,
    eager_forward,
)

CHOICES = ("auto", "compiled", "eager", "triton")
CUDA_CHOICES = ("auto", "triton", "eager")
_SOURCES = [Path(__file__).with_name("csrc") / name for name in ("warp_cpu.cpp", "box_ops_cpu.cpp")]
_BASE_NAME = "augpatch_warp_cpu"
_LOCK = threading.Lock()
_state: dict[str, Any] = {"choice": None, "ops": None, "error": None, "cuda": None, "triton_error": None}


def set_cpu_kernel(choice: str) -> None:
    """Select the CPU kernel: ``"auto"``, ``"compiled"``, ``"eager"`` or ``"triton"`` (see the module doc).

    Example:
        >>> from augpatch.functional import set_cpu_kernel
        >>> set_cpu_kernel("eager")  # e.g. on a machine without a C++ compiler
        >>> set_cpu_kernel("auto")
    """
    if choice not in CHOICES:
        raise ValueError(f"cpu kernel must be one of {', '.join(map(repr, CHOICES))}, got {choice!r}")
    _state["choice"] = choice


def cpu_kernel() -> str:
    """The current CPU choice (``AUGPATCH_CPU_KERNEL`` unless :func:`set_cpu_kernel` was called).

    This is the setting (``"auto"``, ...); :func:`active_kernel` says which kernel runs.
    """
    if _state["choice"] is None:
        env = os.environ.get("AUGPATCH_CPU_KERNEL", "auto").strip().lower() or "auto"
        if env not in CHOICES:
            raise ValueError(
                f"AUGPATCH_CPU_KERNEL must be one of {', '.join(CHOICES)}, got {env!r}"
            )
        _state["choice"] = env
    return _state["choice"]


def set_cuda_kernel(choice: str) -> None:
    """Select the CUDA kernel: ``"auto"``, ``"triton"`` or ``"eager"`` (see the module doc).

    Example:
        >>> from augpatch.functional import set_cuda_kernel
        >>> set_cuda_kernel("eager")  # e.g. to compare with the Triton kernel
        >>> set_cuda_kernel("auto")
    """
    if choice not in CUDA_CHOICES:
        raise ValueError(f"cuda kernel must be one of {', '.join(map(repr, CUDA_CHOICES))}, got {choice!r}")
    _state["cuda"] = choice


def cuda_kernel() -> str:
    """The current choice (``AUGPATCH_CUDA_KERNEL`` unless :func:`set_cuda_kernel` was called)."""
    if _state["cuda"] is None:
        env = os.environ.get("AUGPATCH_CUDA_KERNEL", "auto").strip().lower() or "auto"
        if env not in CUDA_CHOICES:
            raise ValueError(f"AUGPATCH_CUDA_KERNEL must be one of {', '.join(CUDA_CHOICES)}, got {env!r}")
        _state["cuda"] = env
    return _state["cuda"]


def triton_backend(device: torch.device) -> Backend | None:
    """The Triton backend (``_triton.TritonBackend``) for a warp on ``device``, or ``None``.

    CPU: only with ``set_cpu_kernel("triton")`` (and then a clear error unless Triton's
    interpreter is on). CUDA: unless the choice is ``"eager"``, or ``"auto"`` and Triton
    failed before (missing, or a kernel that did not compile: one warning, then eager).
    """
    if device.type == "cpu":
        if cpu_kernel() != "triton":
            return None
        from augpatch.functional import _triton

        _triton.check_available(device)
        return _triton.TritonBackend(strict=True)
    if device.type != "cuda":
        return None
    choice = cuda_kernel()
    if choice == "eager" or (choice == "auto" and _state["triton_error"] is not None):
        return None
    try:
        from augpatch.functional import _triton

        _triton.check_available(device)
    except Exception as exc:
        if choice == "triton":
            raise
        triton_failed(exc)
        return None
    return _triton.TritonBackend(strict=choice == "triton")


def triton_failed(exc: BaseException) -> None:
    """``auto``: the Triton kernel failed; warn once, and run eager from now on."""
    if _state["triton_error"] is None:
        warnings.warn(
            "augpatch: the Triton CUDA kernel is unavailable "
            f"({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1][:300]}); running "
            "the slower eager kernel. Set AUGPATCH_CUDA_KERNEL=eager to skip it, or =triton to "
            "make this an error.",
            RuntimeWarning,
            stacklevel=4,
        )
    _state["triton_error"] = exc


def compiled_ops(device: torch.device) -> Any | None:
    """The compiled operators for a warp on ``device``, or ``None`` to run eager."""
    if device.type != "cpu" or cpu_kernel() in ("eager", "triton"):
        return None
    if _state["ops"] is None and _state["error"] is None:
        with _LOCK:
            if _state["ops"] is None and _state["error"] is None:
                try:
                    _state["ops"] = _build()
                except Exception as exc:  # no compiler, no ninja, no headers, ...
                    _state["error"] = exc
                    if cpu_kernel() == "auto":
                        warnings.warn(
                            "augpatch: could not build the compiled CPU kernel "
                            f"({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}); "
                            "running the slower eager kernel. Set AUGPATCH_CPU_KERNEL=eager to "
                            "skip the build.",
                            RuntimeWarning,
                            stacklevel=4,
                        )
    if _state["ops"] is None and cpu_kernel() == "compiled":
        raise RuntimeError("augpatch: the compiled CPU kernel could not be built") from _state["error"]
    return _state["ops"]


def _native_tag() -> str | None:
    """A short fingerprint of this CPU's instruction sets when the build may target them.

    Only on x86-64 Linux with GCC/Clang: the kernel is then compiled with
    ``-march=native`` and the fingerprint goes into the extension's name, so a cache
    shared between machines with different CPUs never loads a build that the running
    CPU cannot execute. ``None`` elsewhere (a portable build).
    """
    import platform

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return None
    if not flags:
        return None
    import hashlib

    return hashlib.sha1(" ".join(sorted(flags.split(":", 1)[-1].split())).encode()).hexdigest()[:10]


def _cpp_extension() -> Any:
    """``torch.utils.cpp_extension``, imported without its irrelevant CUDA_HOME notice."""
    import logging

    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


def _extension_name() -> str:
    tag = _native_tag()
    return _BASE_NAME if tag is None else f"{_BASE_NAME}_{tag}"


def needs_build() -> bool:
    """Whether the next CPU warp compiles the kernel (no build in this process or on disk).

    Example:
        >>> from augpatch.functional._kernel import needs_build
        >>> isinstance(needs_build(), bool)
        True
    """
    if hasattr(torch.ops, "augpatch_cpu") and hasattr(torch.ops.augpatch_cpu, "warp_forward"):
        return False
    name = _extension_name()
    try:
        directory = _cpp_extension()._get_build_directory(name, verbose=False)
    except Exception:  # a private torch helper: assume the worst
        return True
    return not (Path(directory) / f"{name}.so").exists()


def _build() -> Any:
    """Compile (or load from the cache) ``csrc/*.cpp``; return the operators."""
    if hasattr(torch.ops, "augpatch_cpu") and hasattr(torch.ops.augpatch_cpu, "warp_forward"):
        return torch.ops.augpatch_cpu  # already loaded into this process
    cpp_extension = _cpp_extension()
    try:  # the ninja wheel's binary, also when the virtual environment is not activated
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    name = _extension_name()
    tag = _native_tag()
    if needs_build():  # tell the user why this first call stalls (nothing is said when loading)
        print("augpatch: compiling the CPU kernel (first use only, about a minute) ...",
              file=sys.stderr, flush=True)
    # -ffp-contract=off: no fused multiply-add the eager kernel rounds twice (exactness);
    # vector instructions of the running CPU are otherwise free to use (IEEE results)
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    if tag is not None:
        flags.append("-march=native")
    # ATen's inline parallel_for runs threads only when compiled with OpenMP, as torch is
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() and sys.platform == "linux" else []
    cpp_extension.load(
        name=name,
        sources=[str(p) for p in _SOURCES],
        extra_cflags=flags + openmp,
        extra_ldflags=openmp,
        is_python_module=False,
        verbose=os.environ.get("AUGPATCH_BUILD_VERBOSE", "") not in ("", "0"),
    )
    return torch.ops.augpatch_cpu


# --------------------------------------------------------------------------- backends


class Backend:
    """The interface of a warp kernel: what the operator ``augpatch::warp`` calls.

    A backend runs a :class:`~augpatch.functional._sampler.WarpPlan` (objects in processing
    order, levels, options) with the per-object parameters ``params [K, 14]`` (compute
    dtype, see ``_warp.object_params``). A new kernel (e.g. for another device)
    implements these three methods and is returned by :func:`backend_for`.
    """

    name = "abstract"

    def saved_dtypes(
        self, image_dtype: torch.dtype, compute_dtype: torch.dtype, padding_mode: str
    ) -> tuple[torch.dtype, torch.dtype]:
        """The dtypes of the two flat tensors :meth:`forward` keeps for the backward."""
        raise NotImplementedError

    def forward(self, images: Tensor, params: Tensor, plan: WarpPlan, need_loc: bool) -> tuple[Tensor, list[Tensor]]:
        """``(out, [saved0, saved1])``: the warped batch (plan strides) and two flat tensors."""
        raise NotImplementedError

    def backward(
        self, grad: Tensor, images: Tensor, params: Tensor, plan: WarpPlan, saved: list[Tensor],
        need_img: bool, need_loc: bool,
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(grad_images, grad_params)``, ``None`` where not needed."""
        raise NotImplementedError


class EagerBackend(Backend):
    """Vectorised PyTorch operations (``_sampler.eager_forward``): any device."""

    name = "eager"

    def saved_dtypes(self, image_dtype, compute_dtype, padding_mode):
        return compute_dtype, compute_dtype

    def forward(self, images, params, plan, need_loc):
        return eager_forward(images, params, plan, need_loc)

    def backward(self, grad, images, params, plan, saved, need_img, need_loc):
        return eager_backward(grad, images, params, plan, saved, need_img, need_loc)


class CompiledBackend(Backend):
    """The compiled C++ kernel (``csrc/warp_cpu.cpp``): CPU tensors."""

    name = "compiled"

    def __init__(self, ops: Any) -> None:
        self.ops = ops

    def saved_dtypes(self, image_dtype, compute_dtype, padding_mode):
        return (compute_dtype if padding_mode == "image" else image_dtype), compute_dtype

    def forward(self, images, params, plan, need_loc):
        return compiled_forward(self.ops, images, params, plan, need_loc)

    def backward(self, grad, images, params, plan, saved, need_img, need_loc):
        return compiled_backward(self.ops, grad, images, params, plan, saved, need_img, need_loc)


_EAGER = EagerBackend()


def backend_for(device: torch.device) -> Backend:
    """The backend that runs a warp on ``device`` under the current settings.

    CPU: the compiled kernel unless ``AUGPATCH_CPU_KERNEL`` / :func:`set_cpu_kernel` say
    ``"eager"`` or ``"triton"`` (``"auto"`` falls back to eager, with one warning, where it
    cannot be built). CUDA: the Triton kernel unless ``AUGPATCH_CUDA_KERNEL`` /
    :func:`set_cuda_kernel` say ``"eager"`` (``"auto"`` falls back to eager, with one
    warning, where Triton is missing or fails). Other devices: the eager kernel.
    """
    ops = compiled_ops(device)
    if ops is not None:
        return CompiledBackend(ops)
    triton = triton_backend(device)
    if triton is not None:
        return triton
    return _EAGER


def backend_named(name: str, device: torch.device) -> Backend:
    """The backend called ``name`` (as :attr:`Backend.name`) for ``device``, whatever the setting.

    The operator's backward runs the backend its forward ran (recorded by name), so that
    changing the kernel setting between a forward and its backward cannot hand one
    kernel's saved tensors to another.
    """
    if name == "compiled" and _state["ops"] is not None:
        return CompiledBackend(_state["ops"])
    if name == "triton":
        from augpatch.functional import _triton

        return _triton.TritonBackend(strict=device.type != "cuda" or cuda_kernel() == "triton")
    if name == "eager":
        return _EAGER
    raise RuntimeError(f"augpatch: the {name!r} kernel that ran the forward is not available")


def active_kernel(device: str | torch.device = "cpu") -> str:
    """The name of the kernel a warp on ``device`` runs now: ``"compiled"``, ``"triton"`` or ``"eager"``.

    Unlike :func:`cpu_kernel` (the setting), this resolves ``"auto"``: on the CPU it builds
    (or loads) the compiled kernel if needed and says ``"eager"`` if that failed.

    Example:
        >>> from augpatch.functional import active_kernel, set_cpu_kernel
        >>> set_cpu_kernel("eager")
        >>> active_kernel("cpu")
        'eager'
        >>> set_cpu_kernel("auto")
    """
    return backend_for(torch.device(device)).name
