"""A bench scenario's call in a loop, for a sampling profiler (``perf record``, py-spy).

Runs ``K`` calls of one benchmarked method (``augpatch.bench.methods.METHODS``: ``augpatch``,
``clone``, ``question_loop``, ...) on the scenario's inputs (the bench's own, with its
weighted loss) after 20 warm-up calls, and prints the mean time per call: fwd+bwd as
``python -m augpatch bench`` times it, or with ``--forward`` the forward alone under
``no_grad``. For example, where S's fwd+bwd spends its time on one thread (``-D`` skips the
imports; this machine has no hardware counters, so the timer event)::

    perf record -D 12000 -e cpu-clock -F 4000 -o perf.data \\
        python benchmarks/perf_loop.py S augpatch --threads 1 --calls 2500
    perf report -i perf.data --no-children --sort dso,sym
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from augpatch.bench.inputs import make_inputs
from augpatch.bench.methods import METHODS
from augpatch.bench.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="S", choices=sorted(SCENARIOS))
    parser.add_argument("method", nargs="?", default="augpatch", choices=list(METHODS))
    parser.add_argument("--forward", action="store_true", help="the forward alone, under no_grad")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    method = METHODS[args.method]
    torch.set_num_threads(args.threads)
    inp = make_inputs(SCENARIOS[args.scenario])
    forward = args.forward or not method.differentiable
    start = 0.0
    for i in range(args.calls + 20):
        if i == 20:
            start = time.perf_counter()
        inp.zero_grad()
        with method.context() if method.context else contextlib.nullcontext():
            if forward:
                with torch.no_grad():
                    method.fn(inp)
            else:
                inp.loss(method.fn(inp)).backward()
    per_call = (time.perf_counter() - start) / max(args.calls, 1) * 1e3
    what = "forward" if forward else "fwd+bwd"
    print(f"{args.scenario} {args.method} {what}, {args.threads} thread(s): {per_call:.3f} ms per call "
          f"({args.calls} calls)")


if __name__ == "__main__":
    main()
