"""The interface every backend implements, and the registry each backend joins.

A :class:`Backend` is a family of kernels for some devices (the compiled C++ kernels, the
eager PyTorch kernels, the Triton kernels). It offers one kernel per operator, by name
(:meth:`Backend.kernel`: ``"warp"`` today; a second operator adds its own name), and
says where it can run (:meth:`Backend.ready`). The selector
(:mod:`augpatch.ops.settings`) reads the user's settings and walks the registry; no
backend imports the selector.

Adding a backend: a module under ``augpatch/ops/backends/`` with a :class:`Backend`
subclass, and one line ``register(MyBackend())`` in ``augpatch/ops/backends/__init__.py``.

Example:
    >>> from augpatch.ops.backends import get, registered
    >>> [b.name for b in registered()]
    ['compiled', 'eager', 'triton']
    >>> get("eager").offers("warp")
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor


class WarpKernel:
    """The interface of the kernel of ``augpatch::warp`` (what the operator calls).

    A kernel runs a :class:`~augpatch.ops.plan.WarpPlan` (objects in processing order,
    levels, options) with the per-object parameters ``params [K, 14]`` (compute dtype,
    :data:`~augpatch.ops.layout.PARAM_COLUMNS`).
    """

    def saved_dtypes(
        self, image_dtype: torch.dtype, compute_dtype: torch.dtype, padding_mode: str
    ) -> tuple[torch.dtype, torch.dtype]:
        """The dtypes of the two flat tensors :meth:`forward` keeps for the backward."""
        raise NotImplementedError

    def forward(self, images: Tensor, params: Tensor, plan: Any, need_loc: bool) -> tuple[Tensor, list[Tensor]]:
        """``(out, [saved0, saved1])``: the warped batch (plan strides) and two flat tensors."""
        raise NotImplementedError

    def backward(
        self, grad: Tensor, images: Tensor, params: Tensor, plan: Any, saved: list[Tensor],
        need_img: bool, need_loc: bool,
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(grad_images, grad_params)``, ``None`` where not needed."""
        raise NotImplementedError

    def backward_into(
        self, grad: Tensor, images: Tensor, params: Tensor, plan: Any, saved: list[Tensor], need_loc: bool,
    ) -> Tensor | None:
        """:meth:`backward` writing the images' gradient into ``grad`` (the images' dtype and
        the plan's strides; nobody else holds it); returns ``grad_params`` (``None`` where not
        needed). This default copies; a kernel that can write in place overrides it."""
        grad_images, grad_params = self.backward(grad, images, params, plan, saved, True, need_loc)
        grad.copy_(grad_images)
        return grad_params


class PasteKernel:
    """The interface of the kernel of ``augpatch::paste`` (what :mod:`augpatch.ops.paste` calls).

    A kernel runs a :class:`~augpatch.ops.plan.PastePlan` of the image (and one of the
    alpha, or ``None``) with the per-object parameters ``params`` / ``aparams`` ``[K, 14]``
    (compute dtype; ``aparams is params`` where the alpha shares the image's locations).
    """

    def forward(
        self, images: Tensor, sources: Tensor, params: Tensor, plan: Any, alpha: Tensor | None,
        aparams: Tensor | None, aplan: Any, need_loc: bool, need_diff: bool,
    ) -> tuple[Tensor, list[Tensor]]:
        """``(out, [alpha, diff, dv, da])``: the pasted batch (``plan.out_strides``) and four
        flat compute-dtype tensors for the backward (empty where not needed)."""
        raise NotImplementedError

    def backward(
        self, grad: Tensor, sources: Tensor, params: Tensor, plan: Any, alpha: Tensor | None,
        aparams: Tensor | None, aplan: Any, saved: list[Tensor], need_img: bool, need_src: bool,
        need_loc: bool, need_alpha: bool,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
        """``(grad_images, grad_sources, grad_alpha, grad_params, grad_aparams)`` (compute dtype)."""
        raise NotImplementedError


class Backend:
    """A family of kernels (one per operator name) and where it runs.

    Class attributes: :attr:`name` (what the settings and :func:`active_kernel` call it),
    :attr:`auto` (device type -> preference of the ``"auto"`` setting there, lower first;
    ``"*"``: every device type) and :attr:`choosable` (device types where a user may
    choose it by name: ``set_cpu_kernel`` / ``set_cuda_kernel``).
    """

    name: ClassVar[str] = "abstract"
    auto: ClassVar[dict[str, int]] = {}
    choosable: ClassVar[tuple[str, ...]] = ()
    kernels: ClassVar[tuple[str, ...]] = ()  # the operator names it offers

    def offers(self, op: str) -> bool:
        """Whether it has a kernel for the operator ``op`` (e.g. ``"warp"``)."""
        return op in self.kernels

    def ready(self, device: torch.device, strict: bool) -> bool:
        """Whether it can run on ``device`` now (building or loading what it needs).

        ``strict``: raise a clear error instead of returning ``False`` (the user chose
        this backend by name); otherwise a failure may warn once.
        """
        return True

    def kernel(self, op: str, device: torch.device, strict: bool) -> Any:
        """The kernel of operator ``op`` on ``device`` (for ``"warp"``: a :class:`WarpKernel`)."""
        raise RuntimeError(f"augpatch: the {self.name!r} backend has no kernel for the operator {op!r}")


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry (by its name; registering a name again replaces it)."""
    _REGISTRY[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    """The registered backend called ``name`` (a clear error if there is none)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RuntimeError(
            f"augpatch: no backend called {name!r} (registered: {', '.join(_REGISTRY)})"
        ) from None


def registered() -> list[Backend]:
    """Every registered backend, in registration order."""
    return list(_REGISTRY.values())
