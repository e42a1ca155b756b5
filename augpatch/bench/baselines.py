"""The baselines the warp benchmark times augpatch against (loops, whole-image warps, clone).

Each takes the scenario's :class:`~augpatch.bench.inputs.BenchInputs` and returns the warped
batch ``[B, C, H, W]``; :mod:`augpatch.bench.warp` registers them as methods.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from augpatch.bench.inputs import BenchInputs


def _int_boxes(inputs: BenchInputs) -> list[tuple[int, int, int, int, int]]:
    """``(b, x1, y1, x2, y2)`` per object, clipped to the canvas (python ints)."""
    _, _, h, w = inputs.images.shape
    out = []
    for (x1, y1, x2, y2), b in zip(inputs.boxes.tolist(), inputs.obj_to_img.tolist()):
        x1, y1 = max(0, math.floor(x1)), max(0, math.floor(y1))
        x2, y2 = min(w, math.floor(x2)), min(h, math.floor(y2))
        out.append((int(b), x1, y1, x2, y2))
    return out



def question_loop(inputs: BenchInputs) -> Tensor:
    """(a) The StackOverflow loop made differentiable: the SPEC's sequential loop.

    Each object reads the image as the previous ones left it and is pasted into a
    fresh ``clone`` (assigning into a tensor that an earlier ``grid_sample`` saved
    would be an in-place autograd error).
    """
    out = inputs.images.clone()
    theta = inputs.theta
    for n, (b, x1, y1, x2, y2) in enumerate(_int_boxes(inputs)):
        if x2 <= x1 or y2 <= y1:
            continue
        patch = out[b:b + 1, :, y1:y2, x1:x2]
        grid = F.affine_grid(theta[n:n + 1], list(patch.shape), align_corners=False)
        new = F.grid_sample(patch, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        out = out.clone()
        out[b:b + 1, :, y1:y2, x1:x2] = new
    return out


def _paste_index(boxes: Tensor, obj: Tensor, c: int, h: int,
                 w: int) -> tuple[Tensor, Tensor, Tensor]:
    """Flat indices into ``[B*C*H*W]`` of every box's pixels in ``(n, c, y, x)`` order, the
    same pixels' indices in the spatial plane ``[B*H*W]`` and their object number."""
    x1, y1, x2, y2 = boxes.long().unbind(1)
    bw, bh = x2 - x1, y2 - y1
    hw = bh * bw
    sizes = hw * c
    n_obj = torch.repeat_interleave(torch.arange(boxes.shape[0], device=boxes.device), sizes)
    starts = torch.cumsum(sizes, 0) - sizes
    local = torch.arange(n_obj.numel(), device=boxes.device) - starts[n_obj]
    hw_o, w_o = hw[n_obj], bw[n_obj]
    ch = local // hw_o
    rem = local - ch * hw_o
    i = rem // w_o
    j = rem - i * w_o
    yx = (y1[n_obj] + i) * w + x1[n_obj] + j
    img = obj.long()[n_obj]
    flat = (img * c + ch) * (h * w) + yx
    spatial = img * (h * w) + yx
    return flat, spatial, n_obj


def _crop_loop(inputs: BenchInputs, per_image_views: bool) -> Tensor:
    images, theta = inputs.images, inputs.theta
    bsz, c, h, w = images.shape
    source = images.unbind(0) if per_image_views else None
    vals: list[Tensor] = []
    keep: list[int] = []
    for n, (b, x1, y1, x2, y2) in enumerate(_int_boxes(inputs)):
        if x2 <= x1 or y2 <= y1:
            continue
        if source is None:
            crop = images[b:b + 1, :, y1:y2, x1:x2]
        else:
            crop = source[b][:, y1:y2, x1:x2].unsqueeze(0)
        grid = F.affine_grid(theta[n:n + 1], [1, c, y2 - y1, x2 - x1], align_corners=False)
        vals.append(F.grid_sample(crop, grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False).reshape(-1))
        keep.append(n)
    if not vals:
        return images.clone()
    sel = torch.tensor(keep, device=images.device)
    boxes = inputs.boxes[sel].long().clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    flat, spatial, n_obj = _paste_index(boxes, inputs.obj_to_img[sel], c, h, w)
    values = torch.cat(vals)
    # Resolve overlaps deterministically: the highest object index owns a pixel.
    owner = torch.full((bsz * h * w,), -1, dtype=torch.long, device=images.device)
    owner.scatter_reduce_(0, spatial, n_obj, reduce="amax")
    wins = owner[spatial] == n_obj
    if not bool(wins.all()):
        flat, values = flat[wins], values[wins]
    return images.reshape(-1).index_put((flat,), values).view(bsz, c, h, w)


def crop_loop(inputs: BenchInputs) -> Tensor:
    """(b) A competent loop: per-crop ``affine_grid`` + ``grid_sample`` on slices of the
    input, then ONE out-of-place ``index_put`` of all results (parallel semantics: every
    object reads the original image; on overlap the higher index wins).

    Its backward is dominated by autograd's slice backward, which materialises one
    full ``[B, C, H, W]`` zero-filled gradient per object (see ``crop_loop_unbind``)."""
    return _crop_loop(inputs, per_image_views=False)


def crop_loop_unbind(inputs: BenchInputs) -> Tensor:
    """``crop_loop`` cropping from ``images.unbind(0)``: the slice backward then
    materialises one ``[C, H, W]`` gradient per object instead of a ``[B, C, H, W]`` one
    (B times less backward traffic). Not in the default run (``--methods`` it)."""
    return _crop_loop(inputs, per_image_views=True)


def _kornia_whole(inputs: BenchInputs) -> Tensor:
    """(c) One Kornia ``warp_affine`` of the whole batch (B matrices, same size)."""
    from kornia.geometry.transform import warp_affine

    _, _, h, w = inputs.images.shape
    return warp_affine(inputs.images, inputs.image_mats, dsize=(h, w), mode="bilinear",
                       padding_mode="zeros", align_corners=False)


def _clone(inputs: BenchInputs) -> Tensor:
    """(d) ``images.clone()``: the floor of any out-of-place method."""
    return inputs.images.clone()


def _whole_theta(inputs: BenchInputs) -> Tensor:
    """``[B, 2, 3]`` normalised ``F.affine_grid`` matrices of the whole images: the rotation
    and scale of ``image_mats`` about the image centre (differentiable)."""
    mats = inputs.image_mats
    return torch.cat([mats[:, :, :2], torch.zeros_like(mats[:, :, 2:])], 2)


def grid_sample_whole(inputs: BenchInputs) -> Tensor:
    """(e) One ``F.affine_grid`` + ``F.grid_sample`` of the whole batch (B matrices): the
    fused PyTorch reference of the same sampling work on every pixel of every image."""
    images = inputs.images
    grid = F.affine_grid(_whole_theta(inputs), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
