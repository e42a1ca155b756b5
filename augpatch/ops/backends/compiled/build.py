"""Building (once per environment) and loading the compiled CPU kernels (``csrc/*.cpp``).

Every ``csrc/*.cpp`` is compiled into one extension (``torch.ops.augpatch_cpu``) with
``torch.utils.cpp_extension`` (about a minute on two cores) into ``TORCH_EXTENSIONS_DIR``
(by default ``~/.cache/torch_extensions``). Build it once per environment with
``python -m augpatch build``; otherwise the first CPU warp builds it.

Concurrent first uses (e.g. the workers of a ``DataLoader``) build it once: the build runs
under an exclusive file lock (``augpatch-build.lock`` in the extension's build directory),
only the process that compiles prints the compile message, and the others wait for it and
then load the result. A process that finds the built library newer than every source loads
it directly (``torch.ops.load_library``: no compiler, no ninja).

It needs a C++ compiler and ``ninja`` (a dependency of augpatch); without them the ``"auto"``
setting warns once and runs the eager kernel.

Example:
    >>> from augpatch.ops.backends.compiled.build import needs_build
    >>> isinstance(needs_build(), bool)
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

CSRC = Path(__file__).with_name("csrc")
BASE_NAME = "augpatch_warp_cpu"
LOCK_NAME = "augpatch-build.lock"
COMPILE_MESSAGE = "augpatch: compiling the CPU kernel (first use only, about a minute) ..."


def sources() -> list[Path]:
    """The C++ sources of the extension: every ``csrc/*.cpp`` (a new operator adds a file)."""
    return sorted(CSRC.glob("*.cpp"))


def inputs() -> list[Path]:
    """What the built library depends on: the sources and the headers they share (``csrc/*.h``)."""
    return sources() + sorted(CSRC.glob("*.h"))


def _native_tag() -> str | None:
    """A short fingerprint of this CPU's instruction sets when the build may target them.

    Only on x86-64 Linux with GCC/Clang: the kernel is then compiled with
    ``-march=native`` and the fingerprint goes into the extension's name, so a cache
    shared between machines with different CPUs never loads a build that the running
    CPU cannot execute. ``None`` elsewhere (a portable build).
    """
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return None
    if not flags:
        return None
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


def extension_name() -> str:
    """The extension's name (with the CPU fingerprint where the build targets this CPU)."""
    tag = _native_tag()
    return BASE_NAME if tag is None else f"{BASE_NAME}_{tag}"


def build_directory() -> Path | None:
    """Where the extension is built (created if missing), or ``None`` if torch cannot say."""
    try:
        return Path(_cpp_extension()._get_build_directory(extension_name(), verbose=False))
    except Exception:  # a private torch helper
        return None


def library_path() -> Path | None:
    """The built library's path (it may not exist yet), or ``None`` if unknown."""
    directory = build_directory()
    return None if directory is None else directory / f"{extension_name()}.so"


def _loaded() -> bool:
    return hasattr(torch.ops, "augpatch_cpu") and hasattr(torch.ops.augpatch_cpu, "warp_forward")


def needs_build() -> bool:
    """Whether the next CPU warp compiles the kernel (no build in this process or on disk)."""
    if _loaded():
        return False
    library = library_path()
    return library is None or not library.exists()


def _up_to_date(library: Path | None) -> bool:
    """Whether ``library`` exists and is newer than every input (then it is simply loaded)."""
    if library is None or not library.exists():
        return False
    built = library.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in inputs())


@contextlib.contextmanager
def _build_lock(directory: Path | None) -> Iterator[None]:
    """An exclusive lock on ``directory / LOCK_NAME`` (POSIX ``flock``; nothing elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: torch's own FileBaton still serialises
        yield
        return
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # a concurrent first use waits here
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load() -> Any:
    """Load the compiled operators, building them first if needed (once per environment).

    Returns ``torch.ops.augpatch_cpu``. Raises what the build raises (no compiler, ...).
    """
    if _loaded():
        return torch.ops.augpatch_cpu
    library = library_path()
    # under the lock also when only loading: a library being linked by another process
    # is never read half-written
    with _build_lock(None if library is None else library.parent):
        if _up_to_date(library):  # the common case (a worker, a later run): only the load
            torch.ops.load_library(str(library))
        else:
            _compile()
    return torch.ops.augpatch_cpu


def _compile() -> None:
    """Compile ``csrc/*.cpp`` (or let ``cpp_extension`` load an up-to-date build)."""
    cpp_extension = _cpp_extension()
    try:  # the ninja wheel's binary, also when the virtual environment is not activated
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    print(COMPILE_MESSAGE, file=sys.stderr, flush=True)  # why this first call stalls
    # -ffp-contract=off: no fused multiply-add the eager kernel rounds twice (exactness);
    # vector instructions of the running CPU are otherwise free to use (IEEE results)
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    if _native_tag() is not None:
        flags.append("-march=native")
    # ATen's inline parallel_for runs threads only when compiled with OpenMP, as torch is
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() and sys.platform == "linux" else []
    cpp_extension.load(
        name=extension_name(),
        sources=[str(p) for p in sources()],
        extra_cflags=flags + openmp,
        extra_ldflags=openmp,
        is_python_module=False,
        verbose=os.environ.get("AUGPATCH_BUILD_VERBOSE", "") not in ("", "0"),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m augpatch build``: build (or load) the compiled CPU kernel, say where it is.

    Exit status 0 when the kernel is ready, 1 when it cannot be built (the error is printed;
    augpatch then runs the eager kernel, or raises with ``AUGPATCH_CPU_KERNEL=compiled``).
    """
    import argparse
    import time

    parser = argparse.ArgumentParser(
        prog="python -m augpatch build",
        description="Build the compiled CPU kernel once for this environment (into "
        "TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions), so that no first "
        "warp, and no DataLoader worker, compiles it. Loads it if it is already built.",
    )
    parser.parse_args(argv)
    start = time.perf_counter()
    try:
        load()
    except Exception as exc:
        print(f"augpatch: the compiled CPU kernel could not be built: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    print(f"augpatch: compiled CPU kernel ready in {time.perf_counter() - start:.1f} s: {library_path()}")
    return 0
