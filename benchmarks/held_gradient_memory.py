"""Peak extra memory of one warp forward + backward, in batches, with the loss's gradient
held by the caller (``out.backward(g)``) or not (``torch.dot`` loss), per path.

Run: ``python benchmarks/held_gradient_memory.py [scenario]`` (default ``many``). Each
measurement runs in a fresh subprocess (``MALLOC_MMAP_THRESHOLD_=65536``), as the
benchmark's ``--memory``: VmHWM after the call minus VmRSS before it (the peak mark reset
through ``/proc/self/clear_refs``), divided by the bytes of one image batch. Paths:
``warp_patches`` (eager CPU: C++ autograd, writes the image gradient into an unshared output
gradient), ``operator`` (``augpatch.ops.warp_op`` with its Python autograd: always copies)
and ``clone`` (``images.clone()``: the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _status() -> dict[str, int]:
    with open("/proc/self/status") as fh:
        return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in fh)
                if k in ("VmRSS", "VmHWM")}


def _child(scenario: str, path: str, held: bool) -> None:
    import torch

    from augpatch.bench.inputs import make_inputs
    from augpatch.bench.scenarios import SCENARIOS
    from augpatch.functional import warp_patches
    from augpatch.ops import warp_op

    torch.set_num_threads(1)
    inp = make_inputs(SCENARIOS[scenario])
    images, boxes, theta, obj = inp.images, inp.boxes, inp.theta, inp.obj_to_img

    def run() -> None:
        if path == "warp_patches":
            out = warp_patches(images, boxes, theta, obj)
        elif path == "operator":
            out = warp_op(images, boxes, theta, obj, "bilinear", "zeros", False, "sequential", True)[0]
        else:
            out = images.clone()
        if held:
            out.backward(grad)
        else:
            torch.dot(out.reshape(-1), inp.weight).backward()
        del out
        inp.zero_grad()

    grad = inp.weight.reshape(images.shape).clone() if held else None
    run()  # warm-up (allocator, plan caches)
    import gc

    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status()["VmRSS"]
    run()
    peak = _status()["VmHWM"] - before
    print(json.dumps({"extra_batches": peak / (images.numel() * images.element_size())}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4] == "held")
        return
    scenario = sys.argv[1] if len(sys.argv) > 1 else "many"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    print(f"{scenario}: peak extra memory of forward + backward, in image batches")
    for held in (True, False):
        for path in ("warp_patches", "operator", "clone"):
            res = subprocess.run([sys.executable, __file__, "--child", scenario, path, "held" if held else "free"],
                                 env=env, capture_output=True, text=True, check=True)
            value = json.loads(res.stdout.strip().splitlines()[-1])["extra_batches"]
            print(f"  {'caller holds g' if held else 'dot loss      '}  {path:13s} {value:5.2f}")


if __name__ == "__main__":
    main()
