"""The per-sample adapters with and without their few-objects fast paths, interleaved in one
process (thread CPU time, 1 thread): each round runs every (case, method) once, in a new
random order.

    python benchmarks/adapters_fast_paths.py 30            # adapt3's paths off / on
    python benchmarks/adapters_fast_paths.py 30 --all      # adapt2's and adapt3's off / on

'before' switches the per-sample paths off for its call (the results are the same bit for
bit either way). By default the paths of the third adapters lane (adapt3): the torchvision
adapter's call through the core's hooks (one box move, no core call per image), its one
check of the boxes, its PIL conversions (one copy each way; Pillow's own pixels for a
warp-only core at nearest / RGBA), i.e. main 5ae2bd4's adapters. With ``--all`` also the
second lane's NumPy fast paths (``RandomPatchAffine``'s draw, ``transform_boxes``'
arithmetic, the base's canvas clip, the albumentations adapter's parameters and box move):
main a383b51's code for these calls. Cases and samples are those of
``python -m augpatch bench adapters`` (both sides at the same interpolation). Prints the
medians (ms): library, warp alone, adapter and core draw (``params``) before / after,
``own = adapter - warp - params`` and ``adapter / library`` before / after.
"""
import random
import statistics
import sys
import time

import numpy as np
import torch

import augpatch.functional.geometry as G
import augpatch.integrations._torchvision_inputs as TI
import augpatch.integrations.albumentations as AA
import augpatch.integrations.torchvision as TV
import augpatch.transforms._targets as TT
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


def old_pil_tensor(image):
    return TI.TF.pil_to_tensor(image)


def old_tensor_pil(image, mode):
    return TI.TF.to_pil_image(image, mode=mode)


NEW = ((RandomPatchAffine._fast_ranges, G.host_arithmetic, TT.host_arithmetic),
       AA.PatchDualTransform.__dict__["_params"], AA.PatchDualTransform.apply_to_bboxes,
       TB._clip_on_the_host,
       TV.takes_hooks, TV._parses_its_boxes, TV.reads_pil_pixels, TI._pil_tensor,
       TV._tensor_pil)
ADAPT3_OFF = (lambda core, p: False, lambda core: False, lambda core, mode: False,
              old_pil_tensor, old_tensor_pil)
OLD = ((lambda self, patches: None, lambda *t: False, lambda *t: False), staticmethod(old_params),
       old_apply_to_bboxes, lambda boxes, size: None, *ADAPT3_OFF)


def use(v):
    RandomPatchAffine._fast_ranges, G.host_arithmetic, TT.host_arithmetic = v[0]
    AA.PatchDualTransform._params, AA.PatchDualTransform.apply_to_bboxes = v[1], v[2]
    TB._clip_on_the_host = v[3]
    TV.takes_hooks, TV._parses_its_boxes, TV.reads_pil_pixels = v[4], v[5], v[6]
    TI._pil_tensor, TV._tensor_pil = v[7], v[8]



def wrap(f, v):
    def g():
        use(v)
        try:
            return f()
        finally:
            use(NEW)

    return g


def main(rounds: int, everything: bool = False) -> None:
    global OLD
    if not everything:  # main 5ae2bd4: the second lane's fast paths on, the third's off
        OLD = NEW[:4] + ADAPT3_OFF
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
    order = random.Random(0)
    for r in range(3 + rounds):
        # a new order every round: what runs just before a call (a whole-image warp, or a
        # twin of it that left the caches warm) changes a few-ms call by 10-40 %
        for k in order.sample(keys, len(keys)):
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
    args = [a for a in sys.argv[1:] if a != "--all"]
    main(int(args[0]) if args else 30, "--all" in sys.argv[1:])
