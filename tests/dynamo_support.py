"""``torch.compile(fullgraph=True)`` of the warp across PyTorch releases.

Used by ``test_compile.py`` and ``test_triton.py`` (a plain module, not a conftest
fixture: ``benchmarks/gpu_check.sh`` runs ``test_triton.py`` with ``--noconftest``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch


@functools.cache
def fullgraph_traces_dynamic_shapes() -> bool:
    """Whether ``torch.compile(fullgraph=True)`` traces operators whose output size depends
    on data (the warp's plan) by itself. PyTorch turned that on in pytorch/pytorch#163123
    (September 2025); older releases (torch 2.8) need ``capture_dynamic_output_shape_ops``
    (the docs' guide compile-export.md, "Older torch")."""
    import torch._dynamo

    def probe(x: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(x) * 2

    torch._dynamo.reset()
    try:
        torch.compile(probe, fullgraph=True, backend="eager")(torch.ones(3))
        return True
    except Exception as exc:  # torch._dynamo.exc.Unsupported, with the hint the compile-export guide gives
        if "capture_dynamic_output_shape_ops" not in str(exc):
            raise
        return False
    finally:
        torch._dynamo.reset()


@contextlib.contextmanager
def fullgraph_dynamic() -> Iterator[None]:
    """Fullgraph graphs may hold the warp on every supported PyTorch (the compile-export guide's
    advice for older releases: ``capture_dynamic_output_shape_ops = True``)."""
    if fullgraph_traces_dynamic_shapes():
        yield
    else:
        import torch._dynamo

        with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
            yield


@contextlib.contextmanager
def fresh_dynamo() -> Iterator[None]:
    """Dynamo's caches cleared before and after: a test that compiles ``warp_patches`` sees
    a fresh compilation, whatever compiled it earlier in the same process (past Dynamo's
    recompile limit a function silently runs eagerly, and its backend is never called)."""
    import torch._dynamo

    torch._dynamo.reset()
    try:
        yield
    finally:
        torch._dynamo.reset()
