"""Synthetic glyph objects shared by the recipes (not a recipe itself).

``render`` draws the letters L, J, F and T as strokes with a Gaussian profile, upright or
read through a per-object linear map: the toy objects of ``stn_per_object.py``,
``differentiable_search.py`` and ``adversarial_training.py``. The recipes put this
folder on ``sys.path`` to import it.
"""

from __future__ import annotations

import torch
from torch import Tensor

# glyphs as strokes (x0, y0, x1, y1) in normalised patch coordinates, y down
GLYPHS = {
    "L": [(-0.4, -0.6, -0.4, 0.6), (-0.4, 0.6, 0.45, 0.6)],
    "J": [(0.4, -0.6, 0.4, 0.6), (0.4, 0.6, -0.45, 0.6)],
    "F": [(-0.35, -0.6, -0.35, 0.65), (-0.35, -0.6, 0.5, -0.6), (-0.35, 0.0, 0.25, 0.0)],
    "T": [(-0.55, -0.55, 0.55, -0.55), (0.0, -0.55, 0.0, 0.65)],
}


def render(kinds: Tensor, size: int, linear: Tensor | None = None, width: float = 0.13) -> Tensor:
    """Glyph ``kinds [N]`` as ``[N, 1, size, size]`` images (Gaussian stroke profile).

    With ``linear [N, 2, 2]``, pixel ``q`` (normalised, ``(x, y)``) shows the glyph at
    ``linear @ q``; without, the glyphs are upright.

    Example:
        >>> render(torch.tensor([0, 3]), 16).shape
        torch.Size([2, 1, 16, 16])
    """
    c = (torch.arange(size) + 0.5) / size * 2 - 1
    q = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1).reshape(-1, 2)  # (x, y)
    if linear is None:
        linear = torch.eye(2).expand(kinds.shape[0], 2, 2)
    pts = torch.einsum("nij,pj->npi", linear, q)  # [N, P, 2]
    out = torch.zeros(kinds.shape[0], q.shape[0])
    for k, strokes in enumerate(GLYPHS.values()):
        sel = kinds == k
        if not sel.any():
            continue
        ink = torch.zeros(int(sel.sum()), q.shape[0])
        for x0, y0, x1, y1 in strokes:
            a, b = torch.tensor([x0, y0]), torch.tensor([x1, y1])
            t = ((pts[sel] - a) @ (b - a) / (b - a).square().sum()).clamp(0, 1)
            d2 = (pts[sel] - (a + t[..., None] * (b - a))).square().sum(-1)
            ink = torch.maximum(ink, torch.exp(-d2 / (2 * width**2)))
        out[sel] = ink
    return out.reshape(-1, 1, size, size)
