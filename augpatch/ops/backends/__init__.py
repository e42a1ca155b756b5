"""The backends of augpatch's operators: one module each, found through a registry.

See :mod:`augpatch.ops.backends.base` for the interface. Registration order is the order
of :func:`registered` (and of the names a setting accepts).
"""

from augpatch.ops.backends.base import Backend, PasteKernel, WarpKernel, get, register, registered
from augpatch.ops.backends.compiled import CompiledBackend
from augpatch.ops.backends.eager import EagerBackend
from augpatch.ops.backends.triton import TritonBackend

register(CompiledBackend())
register(EagerBackend())
register(TritonBackend())

__all__ = ["Backend", "PasteKernel", "WarpKernel", "get", "register", "registered"]
