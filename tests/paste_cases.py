"""Tiny copy-paste batches for the kernel tests (``test_triton_paste.py``, ``test_paste_cuda.py``).

No hypothesis, no kornia: importable where ``benchmarks/gpu_check.sh`` runs. Seven objects:
destinations that overlap in one image (three levels in image 0, two in image 1, so index
order matters), a source box beyond the border (clipped), an empty source box (skipped), a
destination beyond the border, sources from another batch or from the images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from augpatch.functional import paste_objects

SRC_BOXES = torch.tensor([
    [1, 1, 6, 5], [2, 3, 9, 10], [-2, -1, 4, 5], [0, 0, 11, 10], [3, 3, 3, 8], [4, 2, 8, 9], [1, 4, 5, 9],
])
DST_BOXES = torch.tensor([
    [0, 0, 7, 6], [3, 2, 9, 8], [5, 4, 12, 11], [8, 1, 14, 12], [1, 1, 4, 4], [2, 6, 9, 13], [4, 3, 6, 7],
])
SRC_TO_IMG = torch.tensor([0, 1, 2, 0, 1, 0, 1])
DST_TO_IMG = torch.tensor([0, 0, 0, 1, 1, 1, 0])
# float boxes: away from the pixel-membership boundaries (j + 0.5)
SRC_SHIFT = torch.tensor([0.3, -0.2, 0.15, 0.35])
DST_SHIFT = torch.tensor([-0.25, 0.1, 0.3, -0.15])
N = SRC_BOXES.shape[0]
ALPHAS = (None, "frame", "box", "bool")


def paste_case(seed: int = 0, *, dtype: torch.dtype = torch.float64, alpha: str | None = None,
               float_boxes: bool = False, other_sources: bool = False, channels: int = 2) -> dict:
    """Keyword arguments of ``paste_objects``: images ``[3, C, 12, 14]`` (the sources too), or
    with ``other_sources`` images ``[2, C, 12, 14]`` and sources ``[3, C, 10, 11]``; theta near the identity, and an
    alpha: ``"frame"`` (float in the sources' frame, partly outside ``[0, 1]``), ``"box"`` (float
    ``[N, 5, 6]``), ``"bool"`` (in the sources' frame) or ``None``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(3 if not other_sources else 2, channels, 12, 14, generator=g, dtype=torch.float64)
    sources = torch.rand(3, channels, 10, 11, generator=g, dtype=torch.float64) if other_sources else None
    hs, ws = (10, 11) if other_sources else (12, 14)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.25 * torch.randn(N, 2, 3, generator=g, dtype=torch.float64)
    a: Tensor | None = None
    if alpha == "frame":
        a = torch.rand(N, hs, ws, generator=g, dtype=torch.float64) * 1.4 - 0.2
    elif alpha == "box":
        a = torch.rand(N, 5, 6, generator=g, dtype=torch.float64) * 1.4 - 0.2
    elif alpha == "bool":
        a = torch.rand(N, hs, ws, generator=g) > 0.3
    src_boxes, dst_boxes = SRC_BOXES, DST_BOXES
    if float_boxes:
        src_boxes, dst_boxes = SRC_BOXES + SRC_SHIFT, DST_BOXES + DST_SHIFT
    compute = dtype if dtype in (torch.float32, torch.float64) else torch.float32

    def cast(t: Tensor) -> Tensor:
        return (t * 255).round().to(dtype) if dtype == torch.uint8 else t.to(dtype)

    return {"images": cast(images), "src_boxes": src_boxes.to(compute) if float_boxes else src_boxes,
            "theta": theta.to(compute), "src_to_img": SRC_TO_IMG,
            "dst_boxes": dst_boxes.to(compute) if float_boxes else dst_boxes, "dst_to_img": DST_TO_IMG,
            "alpha": a.to(compute) if a is not None and a.is_floating_point() else a,
            "sources": cast(sources) if sources is not None else None}


def call(fn=paste_objects, case: dict | None = None, **options) -> Tensor:
    """``fn`` (``paste_objects`` or ``reference_paste``) on a case's arguments."""
    c = dict(case or {})
    return fn(c.pop("images"), c.pop("src_boxes"), c.pop("theta"), c.pop("src_to_img"), c.pop("dst_boxes"),
              c.pop("dst_to_img"), **c, **options)


def to(device, case: dict) -> dict:
    """The case on ``device``."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in case.items()}


def leaves(case: dict, names: tuple[str, ...]) -> dict:
    """A copy of the case whose float tensors named in ``names`` require grad (fresh leaves)."""
    out = {}
    for k, v in case.items():
        if torch.is_tensor(v):
            v = v.detach().clone()
            if k in names and v.is_floating_point():
                v.requires_grad_(True)
        out[k] = v
    return out


def grads(fn, case: dict, names: tuple[str, ...], weight: Tensor, **options) -> tuple[Tensor, list[Tensor]]:
    """The output of ``fn`` on ``case`` and the gradients of ``(out * weight).sum()`` w.r.t. the
    float inputs in ``names`` (a zero tensor where the output does not depend on one)."""
    c = leaves(case, names)
    out = call(fn, c, **options)
    inputs = [c[k] for k in names if c.get(k) is not None and c[k].requires_grad]
    got = torch.autograd.grad((out * weight.to(out.device, out.dtype)).sum(), inputs, allow_unused=True)
    return out, [torch.zeros_like(t) if gr is None else gr for gr, t in zip(got, inputs, strict=True)]
