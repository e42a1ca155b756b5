"""The warp benchmark's inputs: one fixed random batch per scenario (images, boxes, theta)."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

from augpatch.bench.scenarios import Scenario


@dataclass
class BenchInputs:
    """The fixed inputs of one scenario.

    ``images`` ``[B, C, H, W]`` and ``theta`` ``[N, 2, 3]`` require grad; ``boxes``
    ``[N, 4]`` are integer-valued ``xyxy`` pixels fully inside the image;
    ``image_mats`` ``[B, 2, 3]`` (requires grad) are pixel-space affines for the
    whole-image baseline; ``weight`` is the fixed loss weighting (``None``: sum).
    """

    images: Tensor
    boxes: Tensor
    theta: Tensor
    obj_to_img: Tensor
    image_mats: Tensor
    weight: Tensor | None

    def leaves(self) -> list[Tensor]:
        """Tensors that receive gradients."""
        return [self.images, self.theta, self.image_mats]

    def zero_grad(self) -> None:
        """Drop every accumulated gradient."""
        for t in self.leaves():
            t.grad = None

    def input_bytes(self) -> int:
        """Bytes of images + boxes + theta + obj_to_img (what the user holds anyway)."""
        return sum(t.numel() * t.element_size()
                   for t in (self.images, self.boxes, self.theta, self.obj_to_img))

    def output_bytes(self) -> int:
        """Bytes of one output image batch."""
        return self.images.numel() * self.images.element_size()

    def loss(self, out: Tensor) -> Tensor:
        """The scalar that is differentiated: ``out.sum()`` or a fixed random weighting."""
        if self.weight is None:
            return out.sum()
        return torch.dot(out.reshape(-1), self.weight)


def _scenario_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def _randint(lo: int, hi: int, n: int, g: torch.Generator) -> Tensor:
    """``n`` integers uniform in ``[lo, hi]`` (inclusive)."""
    return torch.randint(lo, hi + 1, (n,), generator=g)


def _random_boxes(s: Scenario, obj: Tensor, g: torch.Generator) -> Tensor:
    n = obj.numel()
    w = _randint(s.min_side, s.max_side, n, g).clamp(max=s.width)
    h = _randint(s.min_side, s.max_side, n, g).clamp(max=s.height)
    x1 = (torch.rand(n, generator=g) * (s.width - w + 1)).long().clamp(max=s.width - w)
    y1 = (torch.rand(n, generator=g) * (s.height - h + 1)).long().clamp(max=s.height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def _clustered_boxes(s: Scenario, obj: Tensor, g: torch.Generator) -> Tensor:
    """Boxes in clusters of >= 2 (when an image has >= 2 objects); within a cluster the box
    centres differ by less than ``min_side`` so every pair of the cluster overlaps."""
    boxes = torch.zeros(obj.numel(), 4, dtype=torch.long)
    jitter = max(0, s.min_side // 2 - 1)
    for b in range(s.batch):
        idx = (obj == b).nonzero().flatten()
        n_b = idx.numel()
        if n_b == 0:
            continue
        n_clusters = max(1, n_b // 4)
        cluster = torch.arange(n_b) % n_clusters
        margin_x = s.max_side // 2 + jitter + 1
        margin_y = s.max_side // 2 + jitter + 1
        cx = _randint(min(margin_x, s.width // 2), max(s.width - margin_x, s.width // 2),
                      n_clusters, g)
        cy = _randint(min(margin_y, s.height // 2), max(s.height - margin_y, s.height // 2),
                      n_clusters, g)
        w = _randint(s.min_side, s.max_side, n_b, g).clamp(max=s.width)
        h = _randint(s.min_side, s.max_side, n_b, g).clamp(max=s.height)
        bx = cx[cluster] + _randint(-jitter, jitter, n_b, g)
        by = cy[cluster] + _randint(-jitter, jitter, n_b, g)
        x1 = torch.minimum((bx - w // 2).clamp(min=0), s.width - w)
        y1 = torch.minimum((by - h // 2).clamp(min=0), s.height - h)
        boxes[idx] = torch.stack([x1, y1, x1 + w, y1 + h], 1)
    return boxes


def _grid_boxes(s: Scenario, obj: Tensor, g: torch.Generator) -> Tensor:
    """Non-overlapping boxes: each object of an image gets its own cell of side max_side."""
    cols, rows = s.width // s.max_side, s.height // s.max_side
    boxes = torch.zeros(obj.numel(), 4, dtype=torch.long)
    for b in range(s.batch):
        idx = (obj == b).nonzero().flatten()
        n_b = idx.numel()
        if n_b > cols * rows:
            raise ValueError(f"scenario {s.name}: {n_b} objects do not fit in "
                             f"{cols}x{rows} grid cells of image {b}")
        if n_b == 0:
            continue
        cell = torch.randperm(cols * rows, generator=g)[:n_b]
        w = _randint(s.min_side, s.max_side, n_b, g)
        h = _randint(s.min_side, s.max_side, n_b, g)
        off_x = (torch.rand(n_b, generator=g) * (s.max_side - w + 1)).long()
        off_y = (torch.rand(n_b, generator=g) * (s.max_side - h + 1)).long()
        x1 = (cell % cols) * s.max_side + off_x
        y1 = (cell // cols) * s.max_side + off_y
        boxes[idx] = torch.stack([x1, y1, x1 + w, y1 + h], 1)
    return boxes


def _random_theta(n: int, g: torch.Generator, max_deg: float = 15.0) -> Tensor:
    """Small rotations, scales and shifts in the ``F.affine_grid`` convention."""
    ang = (torch.rand(n, generator=g) * 2 - 1) * math.radians(max_deg)
    scale = 0.85 + 0.3 * torch.rand(n, generator=g)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.1
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    row0 = torch.stack([cos, -sin, shift[:, 0]], 1)
    row1 = torch.stack([sin, cos, shift[:, 1]], 1)
    return torch.stack([row0, row1], 1)


def _random_image_mats(s: Scenario, g: torch.Generator) -> Tensor:
    """Pixel-space affines (rotation + scale about the centre) for the whole-image baseline."""
    ang = (torch.rand(s.batch, generator=g) * 2 - 1) * math.radians(15.0)
    scale = 0.85 + 0.3 * torch.rand(s.batch, generator=g)
    a, b = scale * torch.cos(ang), scale * torch.sin(ang)
    cx, cy = (s.width - 1) / 2, (s.height - 1) / 2
    tx = cx - (a * cx - b * cy)
    ty = cy - (b * cx + a * cy)
    return torch.stack([torch.stack([a, -b, tx], 1), torch.stack([b, a, ty], 1)], 1)


def make_inputs(scenario: Scenario, seed: int = 0, device: str | torch.device = "cpu",
                loss: str = "weighted", box_dtype: torch.dtype = torch.int64) -> BenchInputs:
    """Build the deterministic inputs of ``scenario`` (same ``seed`` -> same tensors)."""
    s = scenario
    g = torch.Generator().manual_seed(_scenario_seed(seed, s.name))
    if s.layout == "clustered":
        # Balanced, randomly permuted obj_to_img so every image has >= 2 objects to overlap.
        obj = torch.arange(s.num_objects) % s.batch
        obj = obj[torch.randperm(s.num_objects, generator=g)]
    else:
        obj = torch.randint(0, s.batch, (s.num_objects,), generator=g)
    if s.layout == "random":
        boxes = _random_boxes(s, obj, g)
    elif s.layout == "clustered":
        boxes = _clustered_boxes(s, obj, g)
    elif s.layout == "grid":
        boxes = _grid_boxes(s, obj, g)
    else:
        raise ValueError(f"unknown layout {s.layout!r}")
    theta = _random_theta(s.num_objects, g)
    mats = _random_image_mats(s, g)
    images = torch.rand(s.batch, s.channels, s.height, s.width, generator=g)
    weight = torch.randn(s.image_numel(), generator=g) if loss == "weighted" else None
    dev = torch.device(device)
    return BenchInputs(
        images=images.to(dev).requires_grad_(),
        boxes=boxes.to(device=dev, dtype=box_dtype),
        theta=theta.to(dev).requires_grad_(),
        obj_to_img=obj.to(dev),
        image_mats=mats.to(dev).requires_grad_(),
        weight=None if weight is None else weight.to(dev),
    )


def boxes_overlap(boxes: Tensor, obj_to_img: Tensor) -> Tensor:
    """``[N]`` bool: does box ``n`` share a pixel with another box of the same image."""
    b = boxes.detach().to("cpu", torch.float64)
    x1, y1, x2, y2 = b.unbind(1)
    ox = torch.minimum(x2[:, None], x2[None]) > torch.maximum(x1[:, None], x1[None])
    oy = torch.minimum(y2[:, None], y2[None]) > torch.maximum(y1[:, None], y1[None])
    same = obj_to_img.cpu()[:, None] == obj_to_img.cpu()[None]
    hit = ox & oy & same
    hit.fill_diagonal_(False)
    return hit.any(1)
