"""The SPEC's reference loop, written plainly (one object at a time).

This is the contract ``warp_patches`` is tested against. It is slow on purpose:
no vectorisation, one ``affine_grid`` + ``grid_sample`` per object, an
out-of-place paste per object so autograd works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _pixel_range(lo: float, hi: float, size: int) -> tuple[int, int]:
    lo, hi = min(max(lo, 0.0), size), min(max(hi, 0.0), size)
    start = min(max(math.ceil(lo - 0.5), 0), size)
    stop = min(max(math.ceil(hi - 0.5), 0), size)
    return start, max(stop, start)


def _float_grid(
    theta: Tensor, box: Tensor, x0: int, y0: int, nw: int, nh: int, ac: bool, src: tuple | None = None
) -> Tensor:
    """Grid (normalised to the [nh, nw] pixel crop) for a float box, from the continuous formulas.

    ``src``: ``(box, x0, y0, nw, nh)`` of the crop that is read, where it is not the box
    written (a paste); the grid is then normalised to that crop.
    """
    x1, y1, x2, y2 = box
    dt = theta.dtype
    xs = torch.arange(nw, dtype=dt) + x0 + 0.5
    ys = torch.arange(nh, dtype=dt) + y0 + 0.5
    if ac:
        ex, ey = (x2 - x1 - 1).clamp(min=0), (y2 - y1 - 1).clamp(min=0)
        u = torch.where(ex > 0, 2 * (xs - (x1 + 0.5)) / ex.clamp(min=1e-12) - 1, torch.zeros_like(xs))
        v = torch.where(ey > 0, 2 * (ys - (y1 + 0.5)) / ey.clamp(min=1e-12) - 1, torch.zeros_like(ys))
    else:
        u = 2 * (xs - x1) / (x2 - x1) - 1
        v = 2 * (ys - y1) / (y2 - y1) - 1
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    src_u = theta[0, 0] * uu + theta[0, 1] * vv + theta[0, 2]
    src_v = theta[1, 0] * uu + theta[1, 1] * vv + theta[1, 2]
    if src is not None:
        (x1, y1, x2, y2), x0, y0, nw, nh = src
    if ac:
        ex, ey = (x2 - x1 - 1).clamp(min=0), (y2 - y1 - 1).clamp(min=0)
        sx = x1 + 0.5 + (src_u + 1) / 2 * ex  # continuous source location
        sy = y1 + 0.5 + (src_v + 1) / 2 * ey
        gx = 2 * (sx - 0.5 - x0) / max(nw - 1, 1) - 1 if nw > 1 else torch.zeros_like(sx)
        gy = 2 * (sy - 0.5 - y0) / max(nh - 1, 1) - 1 if nh > 1 else torch.zeros_like(sy)
    else:
        sx = x1 + (src_u + 1) / 2 * (x2 - x1)
        sy = y1 + (src_v + 1) / 2 * (y2 - y1)
        gx = 2 * (sx - x0) / nw - 1
        gy = 2 * (sy - y0) / nh - 1
    return torch.stack([gx, gy], -1)[None]


def sample_crop(
    image: Tensor, grid: Tensor, x0: int, y0: int, nw: int, nh: int, *, mode: str, padding_mode: str,
    align_corners: bool,
) -> Tensor:
    """``grid_sample`` of the crop ``[y0:y0+nh, x0:x0+nw]`` of ``image`` ``[1, C, H, W]`` at ``grid``
    (normalised to the crop); ``padding_mode="image"`` reads the whole image (zeros outside)."""
    H, W = image.shape[2:]
    if padding_mode != "image":
        patch = image[:, :, y0 : y0 + nh, x0 : x0 + nw]
        return F.grid_sample(patch, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    # grid is normalised to the crop; move it to the whole image
    if align_corners:
        px = (grid[..., 0] + 1) / 2 * (nw - 1) + x0
        py = (grid[..., 1] + 1) / 2 * (nh - 1) + y0
        g = torch.stack([2 * px / (W - 1) - 1 if W > 1 else px * 0,
                         2 * py / (H - 1) - 1 if H > 1 else py * 0], -1)
    else:
        px = ((grid[..., 0] + 1) * nw - 1) / 2 + x0
        py = ((grid[..., 1] + 1) * nh - 1) / 2 + y0
        g = torch.stack([(2 * px + 1) / W - 1, (2 * py + 1) / H - 1], -1)
    return F.grid_sample(image, g, mode=mode, padding_mode="zeros", align_corners=align_corners)


def reference_warp(
    images: Tensor,
    boxes: Tensor,
    theta: Tensor,
    obj_to_img: Tensor | None = None,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    overlap: str = "sequential",
) -> Tensor:
    """SPEC.md's loop. Integer-valued boxes use ``affine_grid`` on the crop exactly."""
    B, C, H, W = images.shape
    theta = theta.reshape(-1, 2, 3)
    n = boxes.shape[0]
    if obj_to_img is None:
        obj_to_img = torch.zeros(n, dtype=torch.long)
    native = images.dtype
    compute = native if native in (torch.float32, torch.float64) else torch.float32
    out = images
    for k in range(n):
        b = int(obj_to_img[k])
        box = boxes[k].to(compute)
        bl = [float(v) for v in boxes[k].detach()]
        x0, x1 = _pixel_range(bl[0], bl[2], W)
        y0, y1 = _pixel_range(bl[1], bl[3], H)
        nw, nh = x1 - x0, y1 - y0
        if nw <= 0 or nh <= 0:
            continue
        src = out if overlap == "sequential" else images
        th = theta[k].to(compute)
        cbox = torch.stack([box[0].clamp(0, W), box[1].clamp(0, H), box[2].clamp(0, W), box[3].clamp(0, H)])
        integral = all(float(v).is_integer() for v in cbox.detach())
        if integral:
            grid = F.affine_grid(th[None], [1, C, nh, nw], align_corners=align_corners)
        else:
            grid = _float_grid(th, cbox, x0, y0, nw, nh, align_corners)
        new = sample_crop(src[b : b + 1].to(compute), grid, x0, y0, nw, nh, mode=mode,
                          padding_mode=padding_mode, align_corners=align_corners)
        if native == torch.uint8:
            new = new.round().clamp(0, 255)
        out = out.clone()
        out[b, :, y0:y1, x0:x1] = new[0].to(native)
    return out.clone() if out is images else out
