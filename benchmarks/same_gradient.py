"""Forward + backward of ``warp_patches`` against ``images.clone()``, both given the same
upstream gradient (``out.backward(g)``, the caller holds ``g``), interleaved in one process.

    python benchmarks/same_gradient.py M 15      # scenario, rounds

Issue 21's setting for "close to a copy": the bench (``python -m augpatch bench``) times a
scalar loss, whose gradient the warp may reuse; here the gradient is the caller's, so both
methods must allocate the images' gradient. Prints the medians (ms) and their ratio.
"""

import statistics
import sys
import time

import torch

from augpatch.bench.inputs import make_inputs
from augpatch.bench.scenarios import SCENARIOS
from augpatch.functional import warp_patches


def main(argv: list[str]) -> None:
    name = argv[0] if argv else "M"
    rounds = int(argv[1]) if len(argv) > 1 else 15
    torch.set_num_threads(1)
    x = make_inputs(SCENARIOS[name])
    grad = torch.rand_like(x.images.detach())

    def augpatch() -> None:
        warp_patches(x.images, x.boxes, x.theta, x.obj_to_img).backward(grad)

    def clone() -> None:
        x.images.clone().backward(grad)

    times: dict[str, list[float]] = {"augpatch": [], "clone": []}
    methods = [("augpatch", augpatch), ("clone", clone)]
    for r in range(rounds + 2):
        for key, fn in methods[r % 2:] + methods[: r % 2]:
            x.zero_grad()
            t0 = time.perf_counter()
            fn()
            if r >= 2:  # two warm-up rounds
                times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{name}: augpatch {med['augpatch']:.1f} ms, clone {med['clone']:.1f} ms, "
          f"ratio {med['augpatch'] / med['clone']:.2f} (same upstream gradient, 1 thread)")


if __name__ == "__main__":
    main(sys.argv[1:])
