"""Compatibility shim: the kernel settings moved to :mod:`augpatch.ops.settings` and the
C++ build to :mod:`augpatch.ops.backends.compiled.build` (kept importable for code that
still imports ``augpatch.functional._kernel``; new code imports those modules).
"""

from augpatch.ops.backends.compiled.build import needs_build
from augpatch.ops.settings import (
    active_kernel,
    compiled_ops,
    cpu_kernel,
    cuda_kernel,
    set_cpu_kernel,
    set_cuda_kernel,
)

__all__ = ["active_kernel", "compiled_ops", "cpu_kernel", "cuda_kernel", "needs_build",
           "set_cpu_kernel", "set_cuda_kernel"]
