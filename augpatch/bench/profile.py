"""``python -m augpatch bench --profile``: where each millisecond of a warp goes, per scenario.

Runs forward + backward of ``warp_patches`` a few times under ``torch.profiler`` with the
operator's ranges on (:mod:`augpatch.ops.profiling`) and reports, per call, the CPU time
of each range (``checks``, ``dispatch``, ``plan``, ``kernel``, ``params_backward``), of the
operators themselves, of the compiled kernel's ops and of copies (``aten::copy_`` /
``aten::clone``), next to the wall time of a call. Ranges nest (``kernel`` holds the
compiled ops, the operator holds ``plan`` and ``kernel``), so the rows do not add up: read
each as "this much of a call is spent inside".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from augpatch.ops.profiling import REGIONS, recording

# rows of the table: (label, predicate on a profiler event's key)
_ROWS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    *((f"augpatch::{r}", lambda key, r=r: key == f"augpatch::{r}") for r in REGIONS),
    ("operator augpatch::warp_*", lambda key: key.startswith("augpatch::warp_")
     and not key.startswith("augpatch::warp_backward_")),
    ("operator augpatch::warp_backward_*", lambda key: key.startswith("augpatch::warp_backward_")),
    ("eager autograd augpatch_cpu::warp_autograd", lambda key: key == "augpatch_cpu::warp_autograd"),
    ("compiled kernel augpatch_cpu::*", lambda key: key.startswith("augpatch_cpu::")
     and key not in ("augpatch_cpu::warp_autograd", "augpatch_cpu::warp_plan")),
    ("C++ planning augpatch_cpu::warp_plan", lambda key: key == "augpatch_cpu::warp_plan"),
    ("copies aten::copy_ / clone", lambda key: key in ("aten::copy_", "aten::clone")),
)


def profile_call(call: Callable[[], Any], calls: int = 5) -> dict[str, Any]:
    """Profile ``call()`` (one forward + backward) ``calls`` times after two warm-up calls
    (one of them under a discarded profiler session).

    Returns ``{"calls", "wall_ms", "rows": {label: ms per call}}`` (CPU time, inclusive).
    """
    call()  # warm-up: kernels built, caches filled
    # and the profiler's own: its first session in a process charges a millisecond or more of
    # set-up to the first ranges it records (the plan's, at S) -- discarded
    with recording(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        call()
    with recording(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        wall = (time.perf_counter() - start) / calls
    totals = dict.fromkeys((label for label, _ in _ROWS), 0.0)
    for event in prof.key_averages():
        for label, match in _ROWS:
            if match(event.key):
                totals[label] += event.cpu_time_total / 1000.0 / calls  # us -> ms
    return {"calls": calls, "wall_ms": wall * 1000.0, "rows": totals}


def format_profile(profiles: dict[str, dict[str, Any]]) -> str:
    """The table of :func:`profile_call` results, one block per scenario.

    Example:
        >>> print(format_profile({"S": {"calls": 1, "wall_ms": 2.0, "rows": {"augpatch::plan": 0.5}}}))
        profile (ms per forward+backward call, CPU time inside each range; ranges nest)
        S: wall 2.00 ms per call (1 calls)
          augpatch::plan                           0.50   25.0%
    """
    lines = ["profile (ms per forward+backward call, CPU time inside each range; ranges nest)"]
    for name, prof in profiles.items():
        wall = prof["wall_ms"]
        lines.append(f"{name}: wall {wall:.2f} ms per call ({prof['calls']} calls)")
        for label, ms in prof["rows"].items():
            lines.append(f"  {label:<38} {ms:6.2f} {100 * ms / wall if wall else 0:6.1f}%")
    return "\n".join(lines)
