"""What a fresh batch-sized CPU buffer costs to fill, by how its pages are faulted.

    python benchmarks/huge_page_faults.py [--threads 1 2] [--mb 50] [--rounds 12]

Each round allocates a fresh buffer (``torch.empty``, which glibc serves with ``mmap`` above
32 MB), optionally advises Linux to back it with transparent huge pages (``MADV_HUGEPAGE``,
what the compiled kernel's ``empty_batch`` does), optionally faults its huge pages from the
calling thread first (one write per 2 MiB: what ``empty_batch`` now does when several
intra-op threads will fill it), then fills it with ``copy_`` under ``torch.set_num_threads``.
Prints the wall-clock ms of each round and the median per setting, side by side, and writes
JSON (``--json``).

On this project's 2-core virtual machines (THP mode ``madvise``), a 50 MB buffer advised
and filled by two threads at once took 200-350 ms in most rounds, against 8-10 ms for one
thread or for the calling thread's faults first: concurrent huge-page faults are serialised
at a great cost there. That is why ``empty_batch`` faults first (see
``augpatch/ops/backends/compiled/csrc/warp_cpu.cpp``). Linux only (``madvise``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time

import torch

MADV_HUGEPAGE = 14
HUGE = 1 << 21


def _advise(t: torch.Tensor, libc: ctypes.CDLL) -> tuple[int, int]:
    """Advise the 2 MiB-aligned interior of ``t``; returns it as (first, last) addresses."""
    p = t.data_ptr()
    first = (p + HUGE - 1) & ~(HUGE - 1)
    last = (p + t.nbytes) & ~(HUGE - 1)
    if last > first:
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_HUGEPAGE)
    return first, last


def one_round(src: torch.Tensor, setting: str, libc: ctypes.CDLL) -> float:
    """ms to allocate, (advise, pre-fault,) and fill one buffer like ``src``."""
    t0 = time.perf_counter()
    dst = torch.empty_like(src)
    if setting != "plain":
        _advise(dst, libc)
    if setting == "advise+first":
        flat = dst.view(-1)
        step = HUGE // dst.element_size()
        flat[::step].zero_()  # small op: one thread
    dst.copy_(src)
    ms = (time.perf_counter() - t0) * 1e3
    del dst
    return ms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--mb", type=float, default=50.0, help="buffer size in MB (M's batch: 50)")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("Linux only (madvise)")
        return 0
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    src = torch.rand(int(args.mb * 1e6 / 4))
    settings = ("plain", "advise", "advise+first")
    report: dict[str, dict[str, list[float]]] = {}
    for th in args.threads:
        torch.set_num_threads(th)
        rows = {s: [] for s in settings}
        for _ in range(args.rounds):  # interleaved: the machine's state is shared
            for s in settings:
                rows[s].append(one_round(src, s, libc))
        report[str(th)] = rows
        print(f"threads={th}: median ms  " + "  ".join(
            f"{s} {statistics.median(v):.1f}" for s, v in rows.items()))
        for s, v in rows.items():
            print(f"    {s:13s} " + " ".join(f"{x:.1f}" for x in v))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mb": args.mb, "rounds": args.rounds, "ms": report}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
