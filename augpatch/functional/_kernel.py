"""Which kernel runs a warp on the CPU: the compiled one (``csrc/warp_cpu.cpp``) or eager.

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

import functools
import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

CHOICES = ("auto", "compiled", "eager", "triton")
CUDA_CHOICES = ("auto", "triton", "eager")
_SOURCE = Path(__file__).with_name("csrc") / "warp_cpu.cpp"
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
    """The current choice (``AUGPATCH_CPU_KERNEL`` unless :func:`set_cpu_kernel` was called)."""
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


def triton_warp(device: torch.device) -> Callable[..., Any] | None:
    """The Triton warp (``_triton.warp``) for a warp on ``device``, or ``None`` to run eager."""
    if device.type == "cpu":
        if cpu_kernel() != "triton":
            return None
        from augpatch.functional import _triton

        _triton.check_available(device)
        return _triton.warp
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
    return _triton.warp if choice == "triton" else functools.partial(_triton.warp, strict=False)


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


def _build() -> Any:
    """Compile (or load from the cache) ``csrc/warp_cpu.cpp``; return its operators."""
    if hasattr(torch.ops, "augpatch_cpu") and hasattr(torch.ops.augpatch_cpu, "warp"):
        return torch.ops.augpatch_cpu  # already loaded into this process
    import logging

    # importing cpp_extension logs a CUDA_HOME notice that is irrelevant to a CPU build
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)

    try:  # the ninja wheel's binary, also when the virtual environment is not activated
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    tag = _native_tag()
    name = _BASE_NAME if tag is None else f"{_BASE_NAME}_{tag}"
    try:  # tell the user why this first call stalls (nothing is said when loading a cached build)
        built = Path(cpp_extension._get_build_directory(name, verbose=False)) / f"{name}.so"
        if not built.exists():
            print("augpatch: compiling the CPU kernel (first use only, about a minute) ...",
                  file=sys.stderr, flush=True)
    except Exception:  # a private torch helper: never let it break the build
        pass
    # -ffp-contract=off: no fused multiply-add the eager kernel rounds twice (exactness);
    # vector instructions of the running CPU are otherwise free to use (IEEE results)
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    if tag is not None:
        flags.append("-march=native")
    # ATen's inline parallel_for runs threads only when compiled with OpenMP, as torch is
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() and sys.platform == "linux" else []
    cpp_extension.load(
        name=name,
        sources=[str(_SOURCE)],
        extra_cflags=flags + openmp,
        extra_ldflags=openmp,
        is_python_module=False,
        verbose=os.environ.get("AUGPATCH_BUILD_VERBOSE", "") not in ("", "0"),
    )
    return torch.ops.augpatch_cpu
