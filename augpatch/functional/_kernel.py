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

CUDA tensors always run the eager kernel (vectorised PyTorch ops).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

CHOICES = ("auto", "compiled", "eager")
_SOURCE = Path(__file__).with_name("csrc") / "warp_cpu.cpp"
_BASE_NAME = "augpatch_warp_cpu"
_LOCK = threading.Lock()
_state: dict[str, Any] = {"choice": None, "ops": None, "error": None}


def set_cpu_kernel(choice: str) -> None:
    """Select the CPU kernel: ``"auto"``, ``"compiled"`` or ``"eager"`` (see the module doc).

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


def compiled_ops(device: torch.device) -> Any | None:
    """The compiled operators for a warp on ``device``, or ``None`` to run eager."""
    if device.type != "cpu" or cpu_kernel() == "eager":
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
