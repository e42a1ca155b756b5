"""What every benchmark of ``augpatch.bench`` shares: the progress bar, device facts, sync,
the report's tail (table printed, JSON written)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


class Progress:
    """tqdm if importable (it is not a dependency of augpatch), else a small stderr line."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self.enabled = max(total, 1), 0, enabled
        self._bar: Any = None
        self._last_pct = -1
        self._tty = sys.stderr.isatty()
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=self.total, file=sys.stderr, desc="bench", unit="step",
                         dynamic_ncols=True)

    def update(self, label: str, n: int = 1) -> None:
        """Advance by ``n`` steps (``0``: only show ``label``) and show ``label``."""
        if not self.enabled or n < 0:
            return
        self.n = min(self.total, self.n + n)
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(n)
            return
        pct = int(100 * self.n / self.total)
        if self._tty:
            fill = int(30 * self.n / self.total)
            sys.stderr.write(f"\rbench [{'#' * fill}{'.' * (30 - fill)}] {pct:3d}% {label:<28.28}")
            sys.stderr.flush()
        elif pct // 10 != self._last_pct // 10:
            sys.stderr.write(f"bench {pct:3d}% {label}\n")
            sys.stderr.flush()
        self._last_pct = pct

    def close(self) -> None:
        """Finish the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        elif self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()



def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_info(device: torch.device, threads: int) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "threads": threads}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as fh:
                for line in fh:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        info["name"] = name
        info["cpu_count"] = os.cpu_count()
    return info


def write_report(report: dict[str, Any], path: str, table: str | None = None) -> None:
    """A benchmark's last step: print its ``table`` (if any), write ``report`` as JSON to
    ``path`` and say so.

    Example:
        >>> import tempfile, pathlib
        >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "bench.json")
        >>> write_report({"scenarios": {}}, path, "a table")  # doctest: +ELLIPSIS
        a table
        <BLANKLINE>
        wrote .../bench.json
        >>> json.loads(pathlib.Path(path).read_text())
        {'scenarios': {}}
    """
    if table is not None:
        print(table)
    with open(path, "w") as fh:
        json.dump(report, fh, indent=1)
    print(f"\nwrote {path}")


CLOCKS = ("wall", "thread")


def add_clock_argument(parser: argparse.ArgumentParser) -> None:
    """The benchmarks' ``--clock wall|thread`` option (one definition for every benchmark).

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_clock_argument(p)
        >>> p.parse_args(["--clock", "thread"]).clock
        'thread'
    """
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: time.perf_counter; thread: the calling thread's CPU time "
                             "(time.thread_time, CPU only, needs --threads 1: robust on a "
                             "loaded machine)")


def clock_function(clock: str) -> Callable[[], float]:
    """The timer of a ``--clock`` value: ``time.thread_time`` for ``"thread"``, else
    ``time.perf_counter``.

    Example:
        >>> clock_function("thread") is time.thread_time
        True
    """
    return time.thread_time if clock == "thread" else time.perf_counter


def clock_error(clock: str, threads: int, device: str = "cpu") -> str | None:
    """Why ``clock`` cannot time this run (``None`` when it can): the thread clock counts
    the calling thread's CPU time only, so it needs one thread on the CPU.

    Example:
        >>> clock_error("thread", 2) is not None, clock_error("thread", 1), clock_error("wall", 2)
        (True, None, None)
    """
    if clock == "thread" and (threads != 1 or device != "cpu"):
        return "--clock thread counts the calling thread's CPU time: give --threads 1 (CPU)"
    return None
