"""Which backend runs an operator on a device: the user's settings and the one selector.

On the CPU the compiled kernel (``backends/compiled``) or the eager one; on CUDA the
Triton kernel (``backends/triton``) or the eager one. The selector walks the backends of
the registry (:mod:`augpatch.ops.backends`); it is the only module that reads the settings.

Choose the CPU kernel with the environment variable ``AUGPATCH_CPU_KERNEL`` (read when a
warp first needs a kernel) or :func:`set_cpu_kernel`:

- ``"auto"`` (default): compiled; if it cannot be built, warn once and run eager.
- ``"compiled"``: compiled, and a build failure is an error.
- ``"eager"``: never build; run the eager PyTorch kernel.
- ``"triton"``: the Triton kernel in Triton's interpreter (needs ``TRITON_INTERPRET=1``;
  a clear error otherwise): slow, for testing the GPU kernel on a machine without one.

The compiled kernel is built from source the first time a CPU warp needs it (about a
minute on two cores, once per environment: ``python -m augpatch build`` does it ahead of
time), then loaded from ``TORCH_EXTENSIONS_DIR``. CUDA tensors run the Triton kernel;
choose with ``AUGPATCH_CUDA_KERNEL`` or :func:`set_cuda_kernel`:

- ``"auto"`` (default): Triton; if it is missing or fails (e.g. does not compile), warn
  once and run the eager kernel (vectorised PyTorch operations).
- ``"triton"``: Triton, and a failure is an error.
- ``"eager"``: the eager kernel.

Other devices run the eager kernel.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from augpatch.ops.backends import Backend, get, registered

_ENV = {"cpu": "AUGPATCH_CPU_KERNEL", "cuda": "AUGPATCH_CUDA_KERNEL"}
_state: dict[str, str | None] = {"cpu": None, "cuda": None}


def choices(device_type: str) -> tuple[str, ...]:
    """The values a setting for ``device_type`` (``"cpu"``, ``"cuda"``) accepts.

    Example:
        >>> choices("cpu")
        ('auto', 'compiled', 'eager', 'triton')
    """
    return ("auto", *(b.name for b in registered() if device_type in b.choosable))


def _set(device_type: str, choice: str) -> None:
    allowed = choices(device_type)
    if choice not in allowed:
        raise ValueError(f"{device_type} kernel must be one of {', '.join(map(repr, allowed))}, got {choice!r}")
    _state[device_type] = choice


def _get(device_type: str) -> str:
    if _state[device_type] is None:
        env = os.environ.get(_ENV[device_type], "auto").strip().lower() or "auto"
        allowed = choices(device_type)
        if env not in allowed:
            raise ValueError(f"{_ENV[device_type]} must be one of {', '.join(allowed)}, got {env!r}")
        _state[device_type] = env
    return _state[device_type]  # type: ignore[return-value]


def set_cpu_kernel(choice: str) -> None:
    """Select the CPU kernel: ``"auto"``, ``"compiled"``, ``"eager"`` or ``"triton"`` (see the module doc).

    Example:
        >>> from augpatch.functional import set_cpu_kernel
        >>> set_cpu_kernel("eager")  # e.g. on a machine without a C++ compiler
        >>> set_cpu_kernel("auto")
    """
    _set("cpu", choice)


def cpu_kernel() -> str:
    """The current CPU choice (``AUGPATCH_CPU_KERNEL`` unless :func:`set_cpu_kernel` was called).

    This is the setting (``"auto"``, ...); :func:`active_kernel` says which kernel runs.
    """
    return _get("cpu")


def set_cuda_kernel(choice: str) -> None:
    """Select the CUDA kernel: ``"auto"``, ``"triton"`` or ``"eager"`` (see the module doc).

    Example:
        >>> from augpatch.functional import set_cuda_kernel
        >>> set_cuda_kernel("eager")  # e.g. to compare with the Triton kernel
        >>> set_cuda_kernel("auto")
    """
    _set("cuda", choice)


def cuda_kernel() -> str:
    """The current choice (``AUGPATCH_CUDA_KERNEL`` unless :func:`set_cuda_kernel` was called)."""
    return _get("cuda")


def reset() -> None:
    """Forget the settings (the environment variables are read again on next use)."""
    _state.update(cpu=None, cuda=None)


def _setting(device: torch.device) -> str:
    return _get(device.type) if device.type in _ENV else "auto"


def backend_for(device: torch.device, op: str = "warp") -> Backend:
    """The backend that runs ``op`` on ``device`` under the current settings.

    A backend chosen by name must be ready (else its clear error); ``"auto"`` tries the
    backends that take part in it on this device type, by preference, and takes the first
    that is ready (a backend that cannot run warns once and is skipped from then on). An
    operator the chosen backend does not offer (e.g. ``"paste"`` under ``"triton"``) runs
    as under ``"auto"``.
    """
    choice = _setting(device)
    if choice != "auto" and get(choice).offers(op):  # a backend without this operator: "auto"
        backend = get(choice)
        backend.ready(device, strict=True)
        return backend
    candidates = [b for b in registered() if b.offers(op) and (device.type in b.auto or "*" in b.auto)]
    candidates.sort(key=lambda b: b.auto.get(device.type, b.auto.get("*", 0)))
    for backend in candidates:
        if backend.ready(device, strict=False):
            return backend
    raise RuntimeError(f"augpatch: no backend can run {op!r} on {device}")


def strict(name: str, device: torch.device) -> bool:
    """Whether the backend ``name`` runs strictly on ``device`` (chosen by name: no fall-back)."""
    return device.type == "cpu" or _setting(device) == name


def kernel_for(device: torch.device, op: str = "warp") -> tuple[str, Any]:
    """``(backend name, kernel)``: the kernel of ``op`` that runs on ``device`` now."""
    backend = backend_for(device, op)
    return backend.name, backend.kernel(op, device, strict(backend.name, device))


def kernel_named(name: str, device: torch.device, op: str = "warp") -> Any:
    """The kernel of ``op`` of the backend ``name``, whatever the setting.

    An operator's backward runs the backend its forward ran (recorded by name), so that
    changing the setting between a forward and its backward cannot hand one kernel's
    saved tensors to another.
    """
    return get(name).kernel(op, device, strict(name, device))


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


def compiled_ops(device: torch.device) -> Any | None:
    """The compiled CPU operators (``torch.ops.augpatch_cpu``) if the CPU setting runs them.

    ``None`` on other devices, with ``"eager"`` / ``"triton"``, or (``"auto"``) when the
    build failed (one warning); with ``"compiled"`` a failed build is an error.
    """
    if device.type != "cpu" or cpu_kernel() not in ("auto", "compiled"):
        return None
    return get("compiled").load(strict=cpu_kernel() == "compiled")  # type: ignore[attr-defined]
