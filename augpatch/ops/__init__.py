"""augpatch's registered operators, their planning and their backends.

- :mod:`augpatch.ops.warp`: the operator behind ``warp_patches`` (:data:`warp_op`), with
  its fake and autograd implementations; registered under a schema-versioned name.
- :mod:`augpatch.ops.paste`: the operator behind ``paste_objects`` (:data:`paste_op`),
  built the same way, with a ``"paste"`` kernel per backend that offers one.
- :mod:`augpatch.ops.plan` / :mod:`augpatch.ops.schedule`: the planning (clip, pixel
  rects, levels, per-object parameters).
- :mod:`augpatch.ops.backends`: one module per backend (compiled C++, eager, Triton)
  behind one interface, found through a registry.
- :mod:`augpatch.ops.settings`: the user's kernel settings and the one selector.
- :mod:`augpatch.ops.layout`, :mod:`augpatch.ops.values`: shared tables and value checks.

The public API stays in :mod:`augpatch.functional`; this package imports nothing of the
rest of augpatch.
"""

from augpatch.ops.paste import paste_backward_op, paste_op
from augpatch.ops.settings import (
    active_kernel,
    compiled_ops,
    cpu_kernel,
    cuda_kernel,
    set_cpu_kernel,
    set_cuda_kernel,
)
from augpatch.ops.warp import warp_backward_op, warp_op

__all__ = [
    "active_kernel",
    "compiled_ops",
    "cpu_kernel",
    "cuda_kernel",
    "paste_backward_op",
    "paste_op",
    "set_cpu_kernel",
    "set_cuda_kernel",
    "warp_backward_op",
    "warp_op",
]
