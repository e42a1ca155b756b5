"""``python -m augpatch bench copypaste``: time ``RandomCopyPaste`` against the per-object loop
and torchvision's reference ``SimpleCopyPaste`` logic on the same batch, in the same run.

Scenario (the issue's; the row ``"paste"`` of :mod:`augpatch.bench.scenarios`): ``B = 16``
images ``512 x 512``, 20 objects per image with masks;
every destination image takes the objects of the previous image (the batch rolled by
one), about half of them, each with its own scale and rotation. Methods, given the same
drawn parameters:

* ``augpatch``: ``RandomCopyPaste`` (one paste of all objects, mask / box / keep updates).
* ``loop``: what users write today: per pasted object, crop the source box, ``affine_grid``
  + ``grid_sample`` the image (bilinear) and the mask (nearest) onto the destination box,
  composite by the mask, then the occlusion updates (masks, boxes).
* ``torchvision``: torchvision's ``references/detection`` ``SimpleCopyPaste`` logic per
  pair of images with the same selection, *without* any per-object transform (it has
  none): union mask, composite, masks / boxes / labels updates.
* ``paste_op`` / ``paste_loop``: the image paste alone (no mask bookkeeping): one
  ``paste_objects`` call with the masks as alpha, against the loop's crop + ``grid_sample``
  + masked composite per object.

* ``floor``: the outputs written once and nothing else (a copy of the images, the result's
  ``[N + M, H, W]`` masks): ``loop / floor`` is the most ``loop / augpatch`` can be.
* ``paste_op_eager`` (``--device cuda`` only, by default): ``paste_op`` with the eager kernel
  forced (what CUDA ran before the Triton kernel of the paste).

Reported (JSON): median seconds per method, ``loop / augpatch``, its bound ``loop /
floor``, ``augpatch / torchvision``, and augpatch's peak memory as ``(inputs + peak_extra) / (inputs + output)``:
on the CPU a fresh subprocess, ``VmHWM - VmRSS`` after resetting the peak mark (as
:mod:`augpatch.bench.memory`); on CUDA (``--device cuda``: inputs on the GPU, every timing
between two ``torch.cuda.synchronize``) the allocator's peak over one more untimed call of
each method (``cuda_peak_extra_bytes`` per method).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as TF
from torch import Tensor

from augpatch.bench.harness import device_info, sync, write_report
from augpatch.bench.memory import _rss_status
from augpatch.bench.scenarios import Scenario, scenarios_for
from augpatch.transforms.copy_paste import (
    RandomCopyPaste,
    clip_to_sizes,
    mask_boxes,
    paste_placement,
)

METHODS = ("augpatch", "loop", "torchvision", "paste_op", "paste_loop", "paste_op_eager", "floor")
CUDA_ONLY = ("paste_op_eager",)  # in the default methods of --device cuda runs only
TARGETS = {"loop_over_augpatch_min": 10.0, "augpatch_over_torchvision_max": 2.0, "memory_ratio_max": 2.0}


def make_inputs(batch: int, size: int, per_image: int, seed: int) -> dict[str, Tensor]:
    """Random images and ``per_image`` elliptic objects per image (masks, tight boxes)."""
    g = torch.Generator().manual_seed(seed)
    n = batch * per_image
    images = torch.rand(batch, 3, size, size, generator=g)
    centre = torch.rand(n, 2, generator=g) * size * 0.8 + size * 0.1
    radius = torch.rand(n, 2, generator=g) * size * 0.08 + size * 0.02
    ys = torch.arange(size) + 0.5
    inside_x = ((ys[None] - centre[:, :1]) / radius[:, :1]) ** 2  # [N, W]
    inside_y = ((ys[None] - centre[:, 1:]) / radius[:, 1:]) ** 2  # [N, H]
    masks = (inside_y[:, :, None] + inside_x[:, None, :]) <= 1
    boxes = mask_boxes(masks)
    return {"images": images, "boxes": boxes, "obj_to_img": torch.arange(batch).repeat_interleave(per_image),
            "masks": masks, "labels": torch.arange(n) + 1}


def _augpatch(aug: RandomCopyPaste, x: dict[str, Tensor], params: dict[str, Tensor]):
    res = aug(x["images"], x["boxes"], x["obj_to_img"], masks=x["masks"], params=params)
    return res.images, res.masks, res.boxes


def _loop(x: dict[str, Tensor], params: dict[str, Tensor]):
    """Per pasted object: crop, affine (image bilinear, mask nearest), masked paste; then occlusion."""
    images, masks, boxes, o2i = x["images"], x["masks"], x["boxes"], x["obj_to_img"]
    batch, channels, height, width = images.shape
    dev = images.device
    src, dst = params["src_objects"].to(dev), params["dst_images"].to(dev)
    sizes = torch.tensor([[height, width]], device=dev).expand(batch, 2)
    sb = clip_to_sizes(boxes[src].double(), sizes[o2i[src]])
    dboxes, theta, _ = paste_placement(sb, (sb[:, :2] + sb[:, 2:]) / 2, params, dst, sizes, torch.float64)
    out = images.clone()
    new_masks = []
    pixels = torch.cat([sb.round(), dboxes.round()], 1).long().tolist()  # one transfer
    owners = o2i[src].tolist()
    for k, (s, d) in enumerate(zip(src.tolist(), dst.tolist(), strict=True)):
        x0, y0, x1, y1, u0, v0, u1, v1 = pixels[k]
        mask = torch.zeros(height, width, dtype=torch.bool, device=dev)
        if x1 > x0 and y1 > y0 and u1 > u0 and v1 > v0:
            th = theta[k : k + 1].float()
            grid = TF.affine_grid(th, [1, 1, v1 - v0, u1 - u0], align_corners=False)
            b = owners[k]
            patch = TF.grid_sample(images[b : b + 1, :, y0:y1, x0:x1], grid, align_corners=False)
            alpha = TF.grid_sample(masks[s, y0:y1, x0:x1][None, None].float(), grid, align_corners=False)
            m = TF.grid_sample(masks[s, y0:y1, x0:x1][None, None].float(), grid, mode="nearest",
                               align_corners=False)[0, 0] > 0.5
            region = out[d, :, v0:v1, u0:u1]
            out[d, :, v0:v1, u0:u1] = alpha[0] * patch[0] + (1 - alpha[0]) * region
            mask[v0:v1, u0:u1] = m
            new_masks.append((d, mask))
    kept = masks.clone()
    for d, m in new_masks:
        kept[o2i == d] &= ~m
    pasted = torch.stack([m for _, m in new_masks]) if new_masks else masks[:0]
    for i, (d, _) in enumerate(new_masks):
        for j in range(i + 1, len(new_masks)):
            if new_masks[j][0] == d:
                pasted[i] &= ~new_masks[j][1]
    all_masks = torch.cat([kept, pasted])
    return out, all_masks, mask_boxes(all_masks)


def _floor(x: dict[str, Tensor], params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The outputs written once and nothing else: a copy of the images and the result's
    ``[N + M, H, W]`` masks (the input masks, then the pasted objects' source masks). Every
    method, augpatch and the loop included, writes at least this much, so
    ``loop / floor`` bounds the ratio ``loop / augpatch`` that any implementation can reach."""
    src = params["src_objects"].to(x["masks"].device)
    return x["images"].clone(), torch.cat([x["masks"], x["masks"][src]])


def _paste_inputs(x: dict[str, Tensor], params: dict[str, Tensor]):
    """The arguments of the image paste of the drawn parameters (untimed)."""
    images, boxes, o2i = x["images"], x["boxes"], x["obj_to_img"]
    batch, _, height, width = images.shape
    dev = images.device
    src, dst = params["src_objects"].to(dev), params["dst_images"].to(dev)
    sizes = torch.tensor([[height, width]], device=dev).expand(batch, 2)
    sb = clip_to_sizes(boxes[src].float(), sizes[o2i[src]])
    dboxes, theta, _ = paste_placement(sb, (sb[:, :2] + sb[:, 2:]) / 2, params, dst, sizes, torch.float32)
    return sb, theta, o2i[src], dboxes, dst, x["masks"][src]


def _paste_op(x: dict[str, Tensor], args) -> Tensor:
    from augpatch.functional import paste_objects

    sb, theta, s_img, dboxes, dst, alpha = args
    return paste_objects(x["images"], sb, theta, s_img, dboxes, dst, alpha=alpha)


def _paste_op_eager(x: dict[str, Tensor], args) -> Tensor:
    """``paste_op`` with the eager kernel forced on the inputs' device."""
    from augpatch.functional import set_cpu_kernel, set_cuda_kernel
    from augpatch.ops import settings

    cuda = x["images"].device.type == "cuda"
    before = settings.cuda_kernel() if cuda else settings.cpu_kernel()
    (set_cuda_kernel if cuda else set_cpu_kernel)("eager")
    try:
        return _paste_op(x, args)
    finally:
        (set_cuda_kernel if cuda else set_cpu_kernel)(before)


def _paste_loop(x: dict[str, Tensor], args) -> Tensor:
    sb, theta, s_img, dboxes, dst, alpha = args
    out = x["images"].clone()
    pixels = torch.cat([sb.round(), dboxes.round()], 1).long().tolist()  # one transfer
    for k, (b, d) in enumerate(zip(s_img.tolist(), dst.tolist(), strict=True)):
        x0, y0, x1, y1, u0, v0, u1, v1 = pixels[k]
        if x1 <= x0 or y1 <= y0 or u1 <= u0 or v1 <= v0:
            continue
        grid = TF.affine_grid(theta[k : k + 1], [1, 1, v1 - v0, u1 - u0], align_corners=False)
        patch = TF.grid_sample(x["images"][b : b + 1, :, y0:y1, x0:x1], grid, align_corners=False)
        a = TF.grid_sample(alpha[k, y0:y1, x0:x1][None, None].float(), grid, align_corners=False)[0]
        out[d, :, v0:v1, u0:u1] = a * patch[0] + (1 - a) * out[d, :, v0:v1, u0:u1]
    return out


def _torchvision(x: dict[str, Tensor], params: dict[str, Tensor]):
    """torchvision's reference ``SimpleCopyPaste`` logic, pair by pair, with the given selection."""
    from torchvision.ops import masks_to_boxes

    images, masks, boxes, o2i, labels = x["images"], x["masks"], x["boxes"], x["obj_to_img"], x["labels"]
    src, dst = params["src_objects"], params["dst_images"]
    outs = []
    for b in range(images.shape[0]):
        sel = src[dst == b]
        own = o2i == b
        target_masks = masks[own]
        if sel.numel() == 0:
            outs.append((images[b], target_masks, boxes[own], labels[own]))
            continue
        paste_masks = masks[sel]
        alpha = paste_masks.any(0)
        image = images[b] * ~alpha + images[int(o2i[sel[0]])] * alpha
        kept = target_masks * ~alpha
        nonempty = kept.flatten(1).any(1)
        kept = kept[nonempty]
        out_masks = torch.cat([kept, paste_masks])
        out_boxes = torch.cat([masks_to_boxes(kept), boxes[sel]])
        outs.append((image, out_masks, out_boxes, torch.cat([labels[own][nonempty], labels[sel]])))
    return outs


def _params(aug: RandomCopyPaste, x: dict[str, Tensor]) -> dict[str, Tensor]:
    size = x["images"].shape[-1]
    sizes = torch.tensor([[size, size]]).expand(x["images"].shape[0], 2)
    return aug.generate_parameters(x["boxes"], x["obj_to_img"], sizes)


def _augmenter(seed: int) -> RandomCopyPaste:
    return RandomCopyPaste(p=1.0, object_p=0.5, scale=(0.5, 1.5), angle=30.0, hflip=0.5,
                           generator=torch.Generator().manual_seed(seed))


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _peak_child(cfg: argparse.Namespace) -> dict[str, Any]:
    """In this (fresh) process: one ``augpatch`` call's peak extra bytes."""
    x = make_inputs(cfg.batch, cfg.size, cfg.objects, cfg.seed)
    aug = _augmenter(cfg.seed)
    params = _params(aug, x)
    _augpatch(aug, make_inputs(2, 32, 2, 0), _params(aug, make_inputs(2, 32, 2, 0)))  # warm-up
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _rss_status()["VmRSS"]
    images, masks, boxes = _augpatch(aug, x, params)
    peak = _rss_status()["VmHWM"]
    return {"peak_extra_bytes": max(0, peak - before),
            "input_bytes": _nbytes(x["images"], x["boxes"], x["masks"], x["obj_to_img"]),
            "output_bytes": _nbytes(images, masks, boxes)}


def _measure_memory(cfg: argparse.Namespace) -> dict[str, Any] | None:
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    cmd = [sys.executable, "-m", "augpatch.bench.copypaste", "--_memory-child", "--batch", str(cfg.batch),
           "--size", str(cfg.size), "--objects", str(cfg.objects), "--seed", str(cfg.seed)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    mem = json.loads(done.stdout.strip().splitlines()[-1])
    mem["ratio"] = (mem["input_bytes"] + mem["peak_extra_bytes"]) / (mem["input_bytes"] + mem["output_bytes"])
    return mem


def _cuda_peak(call, params: dict[str, Any], device: torch.device) -> int:
    """The CUDA allocator's peak above what was allocated before, over one call."""
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = call(params)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del result
    return int(peak)


def run_benchmark(cfg: argparse.Namespace) -> dict[str, Any]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    host = make_inputs(cfg.batch, cfg.size, cfg.objects, cfg.seed)  # parameters are drawn from these
    x = {k: v.to(device) for k, v in host.items()}
    aug = _augmenter(cfg.seed)
    calls = {"augpatch": lambda p: _augpatch(aug, x, p), "loop": lambda p: _loop(x, p),
             "torchvision": lambda p: _torchvision(x, p), "paste_op": lambda p: _paste_op(x, p["paste"]),
             "paste_loop": lambda p: _paste_loop(x, p["paste"]),
             "paste_op_eager": lambda p: _paste_op_eager(x, p["paste"]),
             "floor": lambda p: _floor(x, p)}
    methods = [m for m in METHODS if m in cfg.methods]
    times: dict[str, list[float]] = {m: [] for m in methods}
    pasted = []
    for r in range(cfg.warmup + cfg.repeats):
        params = _params(aug, host)
        pasted.append(int(params["src_objects"].numel()))
        params["paste"] = _paste_inputs(x, params)  # untimed, like the draw
        for m in methods[r % len(methods):] + methods[: r % len(methods)]:
            sync(device)
            t0 = time.perf_counter()
            calls[m](params)
            sync(device)
            if r >= cfg.warmup:
                times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(ts) for m, ts in times.items()}
    report: dict[str, Any] = {
        "benchmark": "copypaste",
        "device": device_info(device, torch.get_num_threads()),
        "scenario": {"batch": cfg.batch, "size": cfg.size, "objects_per_image": cfg.objects,
                     "pasted_objects_per_round": pasted},
        "methods": {m: {"times_s": times[m], "median_s": med[m]} for m in methods},
        "ratios": {},
        "targets": TARGETS,
    }
    if "loop" in med:
        report["ratios"]["loop_over_augpatch"] = med["loop"] / med["augpatch"]
    if "torchvision" in med:
        report["ratios"]["augpatch_over_torchvision"] = med["augpatch"] / med["torchvision"]
    if "loop" in med and "floor" in med:  # the bound of loop_over_augpatch
        report["ratios"]["loop_over_floor"] = med["loop"] / med["floor"]
    if "paste_op" in med and "paste_loop" in med:
        report["ratios"]["paste_loop_over_paste_op"] = med["paste_loop"] / med["paste_op"]
    if "paste_op" in med and "paste_op_eager" in med:
        report["ratios"]["paste_op_eager_over_paste_op"] = med["paste_op_eager"] / med["paste_op"]
    if cfg.no_memory:
        return report
    if device.type == "cuda":
        peaks = {m: _cuda_peak(calls[m], params, device) for m in methods}
        report["cuda_peak_extra_bytes"] = peaks
        mem = {"peak_extra_bytes": peaks["augpatch"],
               "input_bytes": _nbytes(x["images"], x["boxes"], x["masks"], x["obj_to_img"]),
               "output_bytes": _nbytes(*_augpatch(aug, x, params))}
        mem["ratio"] = (mem["input_bytes"] + mem["peak_extra_bytes"]) / (mem["input_bytes"] + mem["output_bytes"])
        report["memory"] = mem
    else:
        report["memory"] = _measure_memory(cfg)
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = [f"copy-paste benchmark, {report['scenario']}", f"{'method':<12} {'median s':>10}"]
    for m, r in report["methods"].items():
        lines.append(f"{m:<12} {r['median_s']:>10.4f}")
    for k, v in report["ratios"].items():
        lines.append(f"{k}: {v:.2f}")
    mem = report.get("memory")
    if mem and "ratio" in mem:
        lines.append(f"augpatch peak memory / (inputs + output): {mem['ratio']:.2f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m augpatch bench copypaste", description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="images (default: the scenario's)")
    p.add_argument("--size", type=int, default=None, help="image side (default: the scenario's)")
    p.add_argument("--objects", type=int, default=None, help="objects per image (default: the scenario's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the inputs live and the methods run (cuda: synchronised timings, CUDA peak memory)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                   help="default: all (paste_op_eager on --device cuda only)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not numbers")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocess")
    p.add_argument("--json", dest="json_path", default="bench_copypaste.json", metavar="FILE")
    p.add_argument("--_memory-child", dest="memory_child", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns an exit status."""
    cfg = build_parser().parse_args(argv)
    scenario: Scenario = scenarios_for("copypaste", quick=cfg.quick)["paste"]
    cfg.batch = scenario.batch if cfg.batch is None else cfg.batch
    cfg.size = scenario.height if cfg.size is None else cfg.size
    cfg.objects = scenario.num_objects // scenario.batch if cfg.objects is None else cfg.objects
    if cfg.quick:
        cfg.repeats = 1
    if cfg.methods is None:
        cfg.methods = [m for m in METHODS if cfg.device == "cuda" or m not in CUDA_ONLY]
    if cfg.device == "cuda" and not torch.cuda.is_available():
        print("copypaste: --device cuda, but no CUDA device is visible to torch", file=sys.stderr)
        return 2
    if "augpatch" not in cfg.methods:
        cfg.methods = ["augpatch", *cfg.methods]
    if cfg.memory_child:
        print(json.dumps(_peak_child(cfg)))
        return 0
    report = run_benchmark(cfg)
    write_report(report, cfg.json_path, format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
