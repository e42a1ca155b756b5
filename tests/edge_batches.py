"""Hypothesis strategies of awkward detection batches, and the checks every entry point
must pass on them (issue 22). Shared by ``test_edges.py`` and ``test_soak.py``.

A batch is a list of per-image samples ``(image [C, h, w], target)`` collated with
:func:`augpatch.data.collate_objects` (images of different sizes padded onto one canvas,
``image_sizes`` recorded). It mixes images without objects and images with many, boxes
inside, across and wholly outside their image, inverted and degenerate boxes, 1 x 1
images, ``C`` in {1, 3, 4} and every image dtype.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from augpatch.data import collate_objects

#: every image dtype of the SPEC
DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: examples per property (the suite runs in about a minute on a shared 2-core CPU; raise
#: it with ``AUGPATCH_EDGE_EXAMPLES=500`` for a longer hunt)
EXAMPLES = int(os.environ.get("AUGPATCH_EDGE_EXAMPLES", "12"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("AUGPATCH_EDGE_RANDOM") is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: how a box relates to its image
BOX_KINDS = ("inside", "across", "outside", "inverted", "degenerate", "whole", "fractional")


@dataclass
class Batch:
    """A collated batch and the samples it came from."""

    samples: list[tuple[torch.Tensor, dict[str, Any]]]
    batch: dict[str, Any]
    dtype: torch.dtype

    @property
    def images(self) -> torch.Tensor:
        return self.batch["images"]

    @property
    def boxes(self) -> torch.Tensor:
        return self.batch["boxes"]

    @property
    def obj_to_img(self) -> torch.Tensor:
        return self.batch["obj_to_img"]

    @property
    def sizes(self) -> torch.Tensor:
        return self.batch["image_sizes"]


def _box(kind: str, h: int, w: int, g: torch.Generator) -> list[float]:
    def r(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))

    if kind == "whole":
        return [0.0, 0.0, float(w), float(h)]
    if kind == "outside":  # wholly beyond the right / bottom edge (in the padding, or off the canvas)
        x1, y1 = r(w, w + 6), r(h, h + 6)
        return [x1, y1, x1 + r(1, 5), y1 + r(1, 5)]
    if kind == "across":
        x1, y1 = r(-4, w), r(-4, h)
        return [x1, y1, x1 + r(1, w + 8), y1 + r(1, h + 8)]
    if kind == "inverted":
        x1, y1 = r(0, w), r(0, h)
        return [x1 + r(1, 4), y1, x1, y1 + r(1, h + 1)]
    if kind == "degenerate":
        x1, y1 = r(0, w), r(0, h)
        return [x1, y1, x1, y1 + r(0, 3)]
    x1, y1 = r(0, w - 0.5), r(0, h - 0.5)
    box = [x1, y1, r(x1 + 0.5, w), r(y1 + 0.5, h)]
    return box if kind == "fractional" else [float(round(v)) for v in box]


def _image(c: int, h: int, w: int, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    if dtype == torch.uint8:
        return torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8)
    return torch.rand(c, h, w, generator=g, dtype=torch.float64).to(dtype)


@st.composite
def samples(draw, dtypes=DTYPES, channels=(1, 3, 4), max_side: int = 12, max_objects: int = 5,
            max_images: int = 3):
    """``(samples, dtype)``: per-image detection samples of one dtype and channel count."""
    dtype = draw(st.sampled_from(dtypes))
    c = draw(st.sampled_from(channels))
    b = draw(st.integers(1, max_images))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(b):
        h = draw(st.one_of(st.just(1), st.integers(1, max_side)))
        w = draw(st.one_of(st.just(1), st.integers(1, max_side)))
        n = draw(st.integers(0, max_objects))
        kinds = [draw(st.sampled_from(BOX_KINDS)) for _ in range(n)]
        boxes = torch.tensor([_box(k, h, w, g) for k in kinds], dtype=torch.float32).reshape(n, 4)
        masks = _box_masks(boxes, h, w)
        centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
        keypoints = torch.cat([centre, boxes[:, None, :2]], 1)  # [n, 2, 2]
        target = {
            "boxes": boxes,
            "labels": torch.randint(1, 90, (n,), generator=g),
            "masks": masks,
            "keypoints": keypoints,
            "image_id": len(out),
        }
        out.append((_image(c, h, w, dtype, g), target))
    return out, dtype


@st.composite
def batches(draw, **kw):
    """A :class:`Batch` collated from :func:`samples`."""
    s, dtype = draw(samples(**kw))
    pad = draw(st.sampled_from([0.0, 1.0]))
    return Batch(s, collate_objects(s, pad_value=pad), dtype)


# --------------------------------------------------------------------------- checks


def clone_tree(obj: Any) -> Any:
    """A deep copy of the tensors of ``obj`` (dicts, lists, tuples), to compare inputs to."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: clone_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_tree(v) for v in obj)
    return obj


def assert_same_tree(a: Any, b: Any, what: str = "input") -> None:
    """``a`` equals ``b`` exactly (NaN equal to NaN), recursively: the inputs were not modified."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, what
        assert torch.equal(a, b) or bool(torch.isnan(a.float()).eq(torch.isnan(b.float())).all()
                                          and torch.equal(a.nan_to_num(), b.nan_to_num())), \
            f"{what} was modified"
    elif isinstance(a, dict):
        assert list(a) == list(b), what
        for k in a:
            assert_same_tree(a[k], b[k], f"{what}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{what}[{i}]")


def box_pixels(boxes: torch.Tensor, obj_to_img: torch.Tensor, shape: tuple[int, ...],
               sizes: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, 1, H, W]`` bool: the pixels of some box (SPEC rule, boxes clipped to the
    canvas, or to their own image with ``sizes``)."""
    b, _, h, w = shape
    out = torch.zeros(b, 1, h, w, dtype=torch.bool)
    boxes = boxes.detach().double().cpu()
    cols = torch.arange(w, dtype=torch.float64) + 0.5
    rows = torch.arange(h, dtype=torch.float64) + 0.5
    for (x1, y1, x2, y2), i in zip(boxes.tolist(), obj_to_img.tolist()):
        hh, ww = (h, w) if sizes is None else (int(sizes[i, 0]), int(sizes[i, 1]))
        x1, x2 = min(max(x1, 0), ww), min(max(x2, 0), ww)
        y1, y2 = min(max(y1, 0), hh), min(max(y2, 0), hh)
        inside = ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None]
        out[i, 0] |= inside
    return out


def padding(sizes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``[B, 1, H, W]`` bool: the padding of a padded batch."""
    b, _, h, w = shape
    rows = torch.arange(h)[None, :, None] >= sizes[:, 0, None, None]
    cols = torch.arange(w)[None, None, :] >= sizes[:, 1, None, None]
    return (rows | cols)[:, None]


def assert_unchanged_where(out: torch.Tensor, images: torch.Tensor, where: torch.Tensor,
                           what: str) -> None:
    """``out`` equals ``images`` bit for bit wherever ``where`` ``[B, 1, H, W]`` holds."""
    assert out.shape == images.shape and out.dtype == images.dtype
    region = where.expand_as(images)
    assert torch.equal(out[region], images[region]), f"{what}: pixels changed"


def assert_boxes_inside(boxes: torch.Tensor, obj_to_img: torch.Tensor, sizes: torch.Tensor,
                        keep: torch.Tensor | None = None) -> None:
    """Every (kept) box lies inside its own image ``[0, W_b] x [0, H_b]``, not inverted,
    with positive area when kept."""
    assert boxes.dim() == 2 and boxes.shape[1] == 4
    assert bool(torch.isfinite(boxes).all()), boxes
    if keep is not None:
        boxes, obj_to_img = boxes[keep], obj_to_img[keep]
        assert bool(((boxes[:, 2:] - boxes[:, :2]) > 0).all()), f"a kept box is degenerate: {boxes}"
    if boxes.shape[0] == 0:
        return
    hw = sizes.to(boxes.device)[obj_to_img].to(boxes.dtype)
    eps = 1e-3
    assert bool((boxes[:, :2] >= -eps).all()), boxes
    assert bool((boxes[:, 2] <= hw[:, 1] + eps).all() and (boxes[:, 3] <= hw[:, 0] + eps).all()), (
        boxes, hw)
    assert bool((boxes[:, 2:] >= boxes[:, :2]).all()), f"inverted box: {boxes}"


def assert_aligned(n: int, **fields: Any) -> None:
    """Every per-object field holds ``n`` rows."""
    for name, value in fields.items():
        if value is None:
            continue
        rows = value.shape[0] if isinstance(value, torch.Tensor) else len(value)
        assert rows == n, f"{name} has {rows} rows, the boxes {n}"


def random_samples(g: torch.Generator, dtypes=DTYPES, channels=(1, 3, 4), max_side: int = 12,
                   max_objects: int = 5, max_images: int = 3) -> list[tuple[torch.Tensor, dict]]:
    """One draw of :func:`samples` from a ``torch.Generator`` (for soak loops, where
    hypothesis' search is not wanted): the same kinds of images, boxes and targets."""
    def pick(seq):
        return seq[int(torch.randint(len(seq), (), generator=g))]

    def between(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=g))

    dtype, c = pick(dtypes), pick(channels)
    out = []
    for i in range(between(1, max_images)):
        h, w = (1 if between(0, 4) == 0 else between(1, max_side) for _ in range(2))
        n = 0 if between(0, 2) == 0 else between(1, max_objects)  # a third without objects
        boxes = torch.tensor([_box(pick(BOX_KINDS), h, w, g) for _ in range(n)],
                             dtype=torch.float32).reshape(n, 4)
        target = {"boxes": boxes, "labels": torch.randint(1, 90, (n,), generator=g),
                  "masks": _box_masks(boxes, h, w), "image_id": i}
        out.append((_image(c, h, w, dtype, g), target))
    return out


def _box_masks(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[n, h, w]`` uint8: each box's pixels (SPEC rule)."""
    return box_pixels(boxes, torch.arange(boxes.shape[0]), (boxes.shape[0], 1, h, w))[:, 0].to(
        torch.uint8)
