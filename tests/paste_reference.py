"""SPEC's "Paste" loop, written plainly (one object at a time): the oracle of ``paste_objects``.

Per object: crop the source box, ``affine_grid`` + ``grid_sample`` onto the destination
box's pixel grid (the continuous formulas of ``reference._float_grid`` for float boxes),
sample the alpha with the same grid, and composite ``a * new + (1 - a) * below`` out of
place, in index order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.reference import _float_grid, _pixel_range, sample_crop


def _clipped(box: Tensor, height: int, width: int) -> Tensor:
    return torch.stack([box[0].clamp(0, width), box[1].clamp(0, height),
                        box[2].clamp(0, width), box[3].clamp(0, height)])


def _integral(box: Tensor) -> bool:
    return all(float(v).is_integer() for v in box.detach())


def reference_paste(
    images: Tensor, src_boxes: Tensor, theta: Tensor, src_to_img: Tensor, dst_boxes: Tensor,
    dst_to_img: Tensor, *, alpha: Tensor | None = None, sources: Tensor | None = None,
    mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool = False,
) -> Tensor:
    sources = images if sources is None else sources
    _, C, H, W = images.shape
    Hs, Ws = sources.shape[2:]
    theta = theta.reshape(-1, 2, 3)
    native = images.dtype
    compute = native if native in (torch.float32, torch.float64) else torch.float32
    out = images
    for k in range(theta.shape[0]):
        dl = [float(v) for v in dst_boxes[k].detach()]
        sl = [float(v) for v in src_boxes[k].detach()]
        dx0, dx1 = _pixel_range(dl[0], dl[2], W)
        dy0, dy1 = _pixel_range(dl[1], dl[3], H)
        sx0, sx1 = _pixel_range(sl[0], sl[2], Ws)
        sy0, sy1 = _pixel_range(sl[1], sl[3], Hs)
        if dx1 <= dx0 or dy1 <= dy0 or sx1 <= sx0 or sy1 <= sy0:
            continue
        th = theta[k].to(compute)
        dbox = _clipped(dst_boxes[k].to(compute), H, W)
        sbox = _clipped(src_boxes[k].to(compute), Hs, Ws)
        dnw, dnh, snw, snh = dx1 - dx0, dy1 - dy0, sx1 - sx0, sy1 - sy0
        src = (sbox, sx0, sy0, snw, snh)
        if _integral(dbox) and _integral(sbox):
            grid = F.affine_grid(th[None], [1, C, dnh, dnw], align_corners=align_corners)
        else:
            grid = _float_grid(th, dbox, dx0, dy0, dnw, dnh, align_corners, src)
        s = int(src_to_img[k])
        new = sample_crop(sources[s : s + 1].to(compute), grid, sx0, sy0, snw, snh, mode=mode,
                          padding_mode=padding_mode, align_corners=align_corners)
        d = int(dst_to_img[k])
        below = out[d : d + 1, :, dy0:dy1, dx0:dx1].to(compute)
        if alpha is not None:
            am = alpha[k].to(compute)[None, None]
            if tuple(alpha.shape[1:]) == (Hs, Ws):
                a = sample_crop(am, grid, sx0, sy0, snw, snh, mode=mode, padding_mode=padding_mode,
                                align_corners=align_corners)
            else:  # box-shaped: it covers the source box, read at its normalised coordinates
                ah, aw = alpha.shape[1:]
                whole = torch.tensor([0.0, 0.0, aw, ah], dtype=compute)
                if _integral(dbox):
                    agrid = grid if _integral(sbox) else F.affine_grid(th[None], [1, C, dnh, dnw],
                                                                       align_corners=align_corners)
                else:
                    agrid = _float_grid(th, dbox, dx0, dy0, dnw, dnh, align_corners, (whole, 0, 0, aw, ah))
                a = F.grid_sample(am, agrid, mode=mode, align_corners=align_corners,
                                  padding_mode="zeros" if padding_mode == "image" else padding_mode)
            a = a.clamp(0, 1)
            new = a * new + (1 - a) * below
        if native == torch.uint8:
            new = new.round().clamp(0, 255)
        out = out.clone()
        out[d, :, dy0:dy1, dx0:dx1] = new[0].to(native)
    return out.clone() if out is images else out
