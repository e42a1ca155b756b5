"""Detection AutoAugment: masks and keypoints follow the pixels; padded batches (issue 18)."""

from __future__ import annotations

import pytest
import torch

from augpatch.policies import OPS, POLICIES, DetectionAutoAugment

GEOMETRIC = sorted(name for name, spec in OPS.items() if spec.kind.endswith("geometric"))


def _always(op: str, prob: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(prob)


def _scene(height: int = 96, width: int = 128, seed: int = 0, radius: float = 0.4):
    """Two images, non-overlapping boxes, an elliptic mask per object inside its box."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor(
        [[6.0, 8.0, 40.0, 44.0], [60.0, 10.0, 110.0, 40.0], [20.0, 55.0, 70.0, 90.0],
         [10.0, 12.0, 50.0, 60.0], [70.0, 40.0, 120.0, 88.0]]
    )
    o2i = torch.tensor([0, 0, 0, 1, 1])
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for n, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        cx, cy = (x1 + x2) / 2 + float(torch.rand((), generator=g)) * 4 - 2, (y1 + y2) / 2
        rx, ry = (x2 - x1) * radius, (y2 - y1) * radius * 0.9
        masks[n] = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    union = torch.zeros(2, height, width, dtype=torch.bool)
    for n in range(len(boxes)):
        union[o2i[n]] |= masks[n]
    images = (union[:, None].expand(-1, 3, -1, -1).to(torch.uint8) * 255).contiguous()
    return images, boxes, o2i, masks


def _union(masks: torch.Tensor, o2i: torch.Tensor, batch: int) -> torch.Tensor:
    out = torch.zeros(batch, *masks.shape[1:], dtype=torch.bool)
    for n in range(masks.shape[0]):
        out[o2i[n]] |= masks[n].bool()
    return out


# padding_mode="image" brings the surroundings into a box: a shift brings a neighbour's
# pixels, which are not added to the neighbour's mask (documented), hence no shift there
CASES = [(op, "fill") for op in GEOMETRIC] + [
    (op, mode) for op in GEOMETRIC if OPS[op].box_only for mode in ("image", "border")
    if not (mode == "image" and op.startswith("Translate"))
]


@pytest.mark.parametrize(("op", "padding_mode"), CASES)
def test_masks_follow_the_pixels_of_every_geometric_op(op: str, padding_mode: str) -> None:
    images, boxes, o2i, masks = _scene()
    # level 10 (the case; the shifts take most objects out of their boxes) and 2
    for seed, level in ((0, 10), (1, 10), (2, 2), (3, 2)):
        aug = DetectionAutoAugment([[(op, 1.0, level)]], fill=0, box_prob=_always,
                                   padding_mode=padding_mode,
                                   generator=torch.Generator().manual_seed(seed))
        out = aug(images, boxes, o2i, masks=masks, image_masks=_union(masks, o2i, 2))
        drawn = out.images[:, 0] > 127
        moved = _union(out.masks, o2i, 2)
        assert moved.any() or level == 10
        assert torch.equal(drawn, moved), (op, seed, int((drawn != moved).sum()))
        assert torch.equal(out.image_masks.bool(), moved)  # [B, H, W] in, [B, H, W] out
        assert not torch.equal(moved, _union(masks, o2i, 2))  # something did move


@pytest.mark.parametrize("op", [op for op in GEOMETRIC if OPS[op].box_only])
def test_box_only_ops_keep_boxes_but_move_masks_and_keypoints(op: str) -> None:
    images, boxes, o2i, masks = _scene(radius=0.2)
    ys, xs = torch.meshgrid(torch.arange(96) + 0.5, torch.arange(128) + 0.5, indexing="ij")

    def centroids(m: torch.Tensor) -> torch.Tensor:
        w = m.double()
        return torch.stack(((w * xs).sum((1, 2)), (w * ys).sum((1, 2))), -1) / w.sum((1, 2))[:, None]

    kps = centroids(masks)[:, None].float()
    # level 1: small moves, so that most masks stay whole inside their boxes
    aug = DetectionAutoAugment([[(op, 1.0, 1)]], fill=0, box_prob=_always,
                               generator=torch.Generator().manual_seed(1))
    out = aug(images, boxes, o2i, masks=masks, keypoints=kps)
    assert torch.equal(out.boxes, boxes)  # the reference's box rule (move_boxes=False)
    whole = out.masks.flatten(1).sum(1) == masks.flatten(1).sum(1)
    assert whole.sum() >= 2
    assert not torch.equal(out.keypoints, kps)
    err = (out.keypoints[:, 0].double() - centroids(out.masks)).abs()
    assert float(err[whole].max()) < 1.0, err


@pytest.mark.parametrize("op", ["Cutout", "BBox_Cutout", "Cutout_Only_BBoxes"])
def test_cutouts_leave_masks_and_boxes_unchanged(op: str) -> None:
    images, boxes, o2i, masks = _scene()
    aug = DetectionAutoAugment([[(op, 1.0, 6)]], fill=0, box_prob=_always,
                               generator=torch.Generator().manual_seed(0))
    out = aug(images, boxes, o2i, masks=masks)
    assert not torch.equal(out.images, images)  # pixels were cut ...
    assert torch.equal(out.masks, masks)  # ... the objects' extents stay (documented rule)
    assert torch.equal(out.boxes, boxes)


# ----------------------------------------------------------------- padded batches

PER_IMAGE = ("sub_policy", "apply", "magnitude", "cutout_center", "bbox_cutout_object")
SIZES = torch.tensor([[96, 128], [60, 80], [40, 100]])


def _padded(sentinel: int, seed: int):
    """Three images of different sizes on one 96 x 128 canvas, padding = ``sentinel``."""
    g = torch.Generator().manual_seed(seed)
    canvas = torch.full((3, 3, 96, 128), sentinel, dtype=torch.uint8)
    boxes, o2i, masks = [], [], []
    for b, (h, w) in enumerate(SIZES.tolist()):
        canvas[b, :, :h, :w] = torch.randint(20, 236, (3, h, w), generator=g, dtype=torch.uint8)
        for _ in range(3):
            x1 = float(torch.randint(0, w - 12, (), generator=g))
            y1 = float(torch.randint(0, h - 12, (), generator=g))
            x2 = min(w, x1 + 8 + float(torch.randint(0, 40, (), generator=g)))
            y2 = min(h, y1 + 8 + float(torch.randint(0, 40, (), generator=g)))
            m = torch.zeros(96, 128, dtype=torch.bool)
            m[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2] = True
            boxes.append([x1, y1, x2, y2])
            o2i.append(b)
            masks.append(m)
    return canvas, torch.tensor(boxes), torch.tensor(o2i), torch.stack(masks)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_padded_batches_each_image_is_its_own_region(policy: str) -> None:
    for seed in range(12):
        images, boxes, o2i, masks = _padded(0, seed)
        aug = DetectionAutoAugment(policy, generator=torch.Generator().manual_seed(seed),
                                   box_prob=_always if seed % 2 else None)
        out = aug(images, boxes, o2i, masks=masks, image_sizes=SIZES)
        # the same draws with another padding: nothing is read from the padding
        other, *_ = _padded(255, seed)
        again = aug(other, boxes, o2i, masks=masks, image_sizes=SIZES, params=aug._params)
        for b, (h, w) in enumerate(SIZES.tolist()):
            assert torch.equal(out.images[b, :, :h, :w], again.images[b, :, :h, :w]), (seed, b)
            pad = torch.ones(96, 128, dtype=torch.bool)
            pad[:h, :w] = False
            assert bool((out.images[b][:, pad] == 0).all()), (seed, b)  # padding unchanged
            assert bool((again.images[b][:, pad] == 255).all()), (seed, b)
        sizes = SIZES[o2i].flip(-1).repeat(1, 2).float()  # (W, H, W, H)
        kept = out.keep
        assert bool((out.boxes[kept] >= 0).all() and (out.boxes[kept] <= sizes[kept]).all())
        assert torch.equal(out.boxes, again.boxes)
        for n in torch.nonzero(kept).flatten().tolist():
            m = out.masks[n]
            assert m.any(), (seed, n)
            ys, xs = torch.nonzero(m, as_tuple=True)
            x1, y1, x2, y2 = out.boxes[n].tolist()
            assert x1 <= float(xs.min()) + 0.5 < x2 and x1 < float(xs.max()) + 0.5 <= x2 + 1e-4
            assert y1 <= float(ys.min()) + 0.5 < y2 and y1 < float(ys.max()) + 0.5 <= y2 + 1e-4


def test_padded_image_ops_equal_the_op_on_each_image_alone() -> None:
    images, boxes, o2i, masks = _padded(7, 3)
    for op in ("Rotate_BBox", "Equalize", "AutoContrast", "TranslateX_BBox", "ShearY_BBox"):
        aug = DetectionAutoAugment([[(op, 1.0, 7)]], generator=torch.Generator().manual_seed(0))
        out = aug(images, boxes, o2i, masks=masks, image_sizes=SIZES)
        params = dict(aug._params)
        for b, (h, w) in enumerate(SIZES.tolist()):
            sel = o2i == b
            p = {k: (v[b : b + 1] if k in PER_IMAGE else v[sel]) for k, v in params.items()}
            p["bbox_cutout_object"] = torch.full_like(p["bbox_cutout_object"], -1)
            alone = aug(images[b : b + 1, :, :h, :w].contiguous(), boxes[sel],
                        torch.zeros(int(sel.sum()), dtype=torch.long),
                        masks=masks[sel][:, :h, :w].contiguous(), params=p)
            assert torch.equal(out.images[b, :, :h, :w], alone.images[0]), (op, b)
            assert torch.equal(out.masks[sel][:, :h, :w], alone.masks), (op, b)
            clipped = alone.boxes.clone()
            clipped[:, 0::2] = clipped[:, 0::2].clamp(0, w)
            clipped[:, 1::2] = clipped[:, 1::2].clamp(0, h)
            torch.testing.assert_close(out.boxes[sel], clipped.to(out.boxes.dtype))


def test_padded_batch_objects_that_leave_their_image_are_not_kept() -> None:
    images, boxes, o2i, masks = _padded(0, 1)
    # a shift of 250 px takes every object out of the 80- and 100-px wide images
    aug = DetectionAutoAugment([[("TranslateX_BBox", 1.0, 10)]],
                               generator=torch.Generator().manual_seed(0))
    out = aug(images, boxes, o2i, masks=masks, image_sizes=SIZES)
    assert not bool(out.keep.any())
    assert bool((out.boxes[:, 2] - out.boxes[:, 0] <= 1e-3).all())


def test_image_sizes_without_padding_is_the_batched_path() -> None:
    images, boxes, o2i, masks = _scene()
    aug = DetectionAutoAugment("v1", box_prob=_always, generator=torch.Generator().manual_seed(4))
    full = torch.tensor([[96, 128], [96, 128]])
    a = aug(images, boxes, o2i, masks=masks, image_sizes=full)
    b = aug(images, boxes, o2i, masks=masks, params=aug._params)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert torch.equal(a.masks, b.masks)
    with pytest.raises((ValueError, TypeError), match="image_sizes"):
        aug(images, boxes, o2i, image_sizes=torch.tensor([[96, 128]]))
