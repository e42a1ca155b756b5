"""A bench scenario's call in a loop, for a sampling profiler (``perf record``, py-spy).

Runs ``K`` calls of one kind on the scenario's inputs (the bench's own, with its weighted
loss) after 20 warm-up calls, and prints the mean time per call. Kinds: ``fb`` (augpatch
fwd+bwd, as ``python -m augpatch bench``), ``f`` (the forward without gradients),
``clone`` (``images.clone()`` fwd+bwd, the bench's baseline). For example, where S's
fwd+bwd spends its time on one thread (``-D`` skips the imports; this machine has no
hardware counters, so the timer event)::

    perf record -D 12000 -e cpu-clock -F 4000 -o perf.data \\
        python benchmarks/perf_loop.py S fb 1 2500
    perf report -i perf.data --no-children --sort dso,sym

Arguments: SCENARIO (default S) KIND (default fb) THREADS (default 1) K (default 300).
"""

from __future__ import annotations

import sys
import time

import torch

from augpatch.bench.inputs import make_inputs
from augpatch.bench.scenarios import SCENARIOS
from augpatch.functional import warp_patches

KINDS = ("fb", "f", "clone")


def main(argv: list[str]) -> None:
    name = argv[0] if argv else "S"
    kind = argv[1] if len(argv) > 1 else "fb"
    threads = int(argv[2]) if len(argv) > 2 else 1
    calls = int(argv[3]) if len(argv) > 3 else 300
    if name not in SCENARIOS or kind not in KINDS:
        raise SystemExit(f"usage: perf_loop.py [{'|'.join(SCENARIOS)}] [{'|'.join(KINDS)}] [threads] [K]")
    torch.set_num_threads(threads)
    inp = make_inputs(SCENARIOS[name])
    start = 0.0
    for i in range(calls + 20):
        if i == 20:
            start = time.perf_counter()
        inp.zero_grad()
        if kind == "f":
            with torch.no_grad():
                warp_patches(inp.images, inp.boxes, inp.theta, inp.obj_to_img)
        elif kind == "clone":
            inp.loss(inp.images.clone()).backward()
        else:
            inp.loss(warp_patches(inp.images, inp.boxes, inp.theta, inp.obj_to_img)).backward()
    per_call = (time.perf_counter() - start) / max(calls, 1) * 1e3
    print(f"{name} {kind} threads={threads}: {per_call:.3f} ms per call ({calls} calls)")


if __name__ == "__main__":
    main(sys.argv[1:])
