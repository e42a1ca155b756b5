"""The per-sample adapters with and without their few-objects fast paths, interleaved in one
process (thread CPU time, 1 thread): each round runs every (case, method) once, rotated.

    python benchmarks/adapters_fast_paths.py 30      # timed rounds (3 warm-up rounds first)

'before' switches the NumPy fast paths off for its call (``RandomPatchAffine``'s draw,
``transform_boxes``' arithmetic, the base's canvas clip, the albumentations adapter's
parameters and box move): the tensor paths they replace, i.e. main a383b51's code for these
calls (the results are the same bit for bit). Cases and samples are those of
``python -m augpatch bench adapters`` (both sides at the same interpolation). Prints the
medians (ms): library, warp alone, adapter and core draw (``params``) before / after,
``own = adapter - warp - params`` and ``adapter / library`` before / after.
"""
import statistics
import sys
import time

import numpy as np
import torch

import augpatch.functional.geometry as G
import augpatch.integrations.albumentations as AA
import augpatch.transforms.base as TB
from augpatch.bench import adapters as B
from augpatch.bench.scenarios import scenarios_for
from augpatch.transforms.affine import RandomPatchAffine


def old_params(augpatch):
    theta = torch.from_numpy(augpatch["theta"])
    patches = torch.from_numpy(augpatch["patches"])
    applied = torch.from_numpy(augpatch["batch_prob"]).bool()
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=theta.dtype)
    applied = applied & ~(theta == identity).flatten(1).all(1)
    return theta, patches, applied

def old_apply_to_bboxes(self, bboxes, augpatch, shape=None, **params):
    theta, patches, applied = self._params(augpatch)
    height, width = shape[:2]
    scale = np.array([width, height, width, height], dtype=np.float64)
    pixels = torch.from_numpy(np.asarray(bboxes)[:, :4].astype(np.float64) * scale)
    new = self._core.move_object_boxes(pixels, patches.double(), theta.double(), applied).numpy()
    out = np.array(bboxes, dtype=np.float64, copy=True)
    out[:, :4] = new / scale
    return out.astype(np.asarray(bboxes).dtype, copy=False)


NEW = (RandomPatchAffine._fast_ranges, G._few_values_on_the_host,
       AA.PatchDualTransform.__dict__["_params"], AA.PatchDualTransform.apply_to_bboxes,
       TB._clip_on_the_host)
OLD = (lambda self, patches: None, lambda *t: False, staticmethod(old_params),
       old_apply_to_bboxes, lambda boxes, size: None)


def use(v):
    RandomPatchAffine._fast_ranges, G._few_values_on_the_host = v[0], v[1]
    AA.PatchDualTransform._params, AA.PatchDualTransform.apply_to_bboxes = v[2], v[3]
    TB._clip_on_the_host = v[4]



def wrap(f, v):
    def g():
        use(v)
        try:
            return f()
        finally:
            use(NEW)

    return g


def main(rounds: int) -> None:
    torch.set_num_threads(1)
    sc = scenarios_for("adapters")
    calls = {}
    for interp in ("bilinear", "nearest"):
        for case in ("tv_tensor", "tv_pil", "albumentations"):
            c = B._calls(case, sc[B.CASES[case][0]], 0, interp)
            row = f"{case}/{interp}"
            calls[row, "adapter_before"] = wrap(c["adapter"], OLD)
            calls[row, "adapter_after"] = c["adapter"]
            calls[row, "library"] = c["library"]
            calls[row, "warp"] = c["warp"]
            calls[row, "params_before"] = wrap(c["params"], OLD)
            calls[row, "params_after"] = c["params"]
    keys = list(calls)
    times = {k: [] for k in keys}
    for r in range(3 + rounds):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            t0 = time.thread_time()
            calls[k]()
            dt = time.thread_time() - t0
            if r >= 3:
                times[k].append(dt)
    heads = ("library", "warp", "adapter before", "adapter after", "params before",
             "params after", "own before", "own after", "ratio before", "ratio after")
    print(f"{'case/interpolation':24s} " + " ".join(f"{h:>14s}" for h in heads))
    for row in dict.fromkeys(k[0] for k in keys):
        m = {k[1]: statistics.median(times[k]) * 1e3 for k in keys if k[0] == row}
        values = (
            m["library"], m["warp"], m["adapter_before"], m["adapter_after"],
            m["params_before"], m["params_after"],
            m["adapter_before"] - m["warp"] - m["params_before"],
            m["adapter_after"] - m["warp"] - m["params_after"],
        )
        ratios = (m["adapter_before"] / m["library"], m["adapter_after"] / m["library"])
        print(f"{row:24s} " + " ".join(f"{v:14.2f}" for v in values)
              + " ".join(f"{r:14.2f}x" for r in ratios))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
