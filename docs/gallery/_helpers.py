"""Shared helpers of the gallery examples (not an example: no ``plot_`` prefix)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torchvision.utils import draw_bounding_boxes

from augpatch.demo import load_asset

ROOT = Path(__file__).resolve().parents[2]


def recipes_on_path() -> Path:
    """Put the repository's ``recipes/`` on ``sys.path`` (the gallery runs their code)."""
    recipes = ROOT / "recipes"
    if str(recipes) not in sys.path:
        sys.path.insert(0, str(recipes))
    return recipes


def coins(channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded coins photograph as ``[1, C, H, W]`` float in [0, 1] and its boxes."""
    image, boxes = load_asset()
    image = image.float().div(255).expand(channels, -1, -1)
    return image[None].contiguous(), boxes.float()


def show(image: torch.Tensor, boxes: torch.Tensor | None = None, colour: str = "yellow"):
    """``[C, H, W]`` (or ``[1, C, H, W]``) float image with boxes, as an ``HWC`` uint8 array."""
    if image.dim() == 4:
        image = image[0]
    img = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    if boxes is not None and len(boxes):
        boxes = boxes.detach().float()
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        img = draw_bounding_boxes(img, boxes, colors=colour, width=1)
    return img.permute(1, 2, 0).numpy()
