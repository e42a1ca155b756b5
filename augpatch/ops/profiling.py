"""Named ranges in the operators' Python path, for ``torch.profiler`` (off by default).

:func:`region` returns ``torch.profiler.record_function("augpatch::<name>")`` while
:func:`recording` is active, and a shared no-op context otherwise (one global read: the
warp's Python path stays as cheap as without it). ``python -m augpatch bench --profile``
turns it on and prints, per scenario, where each millisecond of a warp goes.

Ranges: ``checks`` (argument checks of ``warp_patches``), ``dispatch`` (choosing the
kernel), ``plan`` (clip, levels, parameters; the backward rebuilds the plan), ``kernel``
(the backend's forward / backward), ``params_backward`` (the parameters' chain rule).

Example:
    >>> from augpatch.ops.profiling import recording, region
    >>> with recording():
    ...     with region("plan"):
    ...         pass
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_NULL = contextlib.nullcontext()
_state = {"on": False}
REGIONS = ("checks", "dispatch", "plan", "kernel", "params_backward")


def region(name: str) -> Any:
    """A profiler range ``augpatch::<name>`` while :func:`recording`, else a no-op context."""
    if not _state["on"]:
        return _NULL
    from torch.profiler import record_function

    return record_function(f"augpatch::{name}")


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Turn the ranges of :func:`region` on inside this block."""
    previous = _state["on"]
    _state["on"] = True
    try:
        yield
    finally:
        _state["on"] = previous
