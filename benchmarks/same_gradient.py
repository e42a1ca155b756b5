"""Forward + backward of ``warp_patches`` against ``images.clone()``, both given the same
upstream gradient (``out.backward(g)``, the caller holds ``g``), interleaved in one process.

    python benchmarks/same_gradient.py M 15      # scenario, rounds
    python benchmarks/same_gradient.py M 15 per-pixel

Issue 21's setting for "close to a copy": the bench (``python -m augpatch bench``) times a
scalar loss, whose gradient the warp may reuse; here the gradient is the caller's, so both
methods must allocate the images' gradient. Prints the medians (ms) and their ratio. With
``per-pixel``, a third method interleaved with them: the same call with the compiled
kernel's backward on its per-pixel loop (the test-only ``warp_backward_per_pixel``, the
backward before the row path), to compare the two side by side.
"""

import statistics
import sys
import time

import torch

from augpatch.bench.inputs import make_inputs
from augpatch.bench.scenarios import SCENARIOS
from augpatch.functional import warp_patches
from augpatch.ops.backends.compiled import CompiledWarp, kernel_options


def _per_pixel_backward(self, grad, images, params, plan, saved, need_img, need_loc):
    """CompiledWarp.backward on the per-pixel loop (warp_backward_per_pixel)."""
    grad_images, grad_params = self.ops.warp_backward_per_pixel(
        grad, images, params, plan.objects, plan.level_objects, saved[0], saved[1], kernel_options(plan),
        need_img, need_loc)
    return (grad_images if need_img else None), (grad_params if need_loc else None)


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

    def per_pixel() -> None:
        row_backward = CompiledWarp.backward
        CompiledWarp.backward = _per_pixel_backward  # type: ignore[method-assign]
        try:
            augpatch()
        finally:
            CompiledWarp.backward = row_backward  # type: ignore[method-assign]

    times: dict[str, list[float]] = {"augpatch": [], "clone": []}
    methods = [("augpatch", augpatch), ("clone", clone)]
    if "per-pixel" in argv[2:]:
        times["per_pixel"] = []
        methods.append(("per_pixel", per_pixel))
    for r in range(rounds + 2):
        k = r % len(methods)
        for key, fn in methods[k:] + methods[:k]:
            x.zero_grad()
            t0 = time.perf_counter()
            fn()
            if r >= 2:  # two warm-up rounds
                times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{name}: augpatch {med['augpatch']:.1f} ms, clone {med['clone']:.1f} ms, "
          f"ratio {med['augpatch'] / med['clone']:.2f} (same upstream gradient, 1 thread)")
    if "per_pixel" in med:
        print(f"{name}: per-pixel backward {med['per_pixel']:.1f} ms, ratio {med['per_pixel'] / med['clone']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
