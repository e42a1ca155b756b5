"""``RandomCopyPaste`` against torchvision's reference ``SimpleCopyPaste`` logic, and its contract."""

from __future__ import annotations

import pytest
import torch

from augpatch import RandomCopyPaste, params_from_json, params_to_json
from augpatch.data import BatchAugment, collate_objects, to_detection_inputs
from tests.copy_paste_reference import reference_simple_copy_paste


def _scene(seed: int, batch: int = 3, height: int = 24, width: int = 28, per_image: int = 3):
    """Images whose objects are blobs in disjoint cells of a grid; tight boxes; labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, height, width, generator=g, dtype=torch.float64)
    masks, boxes, labels, o2i = [], [], [], []
    cells = [(r, c) for r in range(2) for c in range(2)]
    for b in range(batch):
        for k in range(per_image):
            r, c = cells[k]
            y0, x0 = r * height // 2 + 1, c * width // 2 + 1
            m = torch.zeros(height, width, dtype=torch.bool)
            block = torch.rand(height // 2 - 3, width // 2 - 3, generator=g) > 0.35
            block[block.shape[0] // 2, :] = True  # connected enough, at least 2 x 2 wide
            block[:, block.shape[1] // 2] = True
            m[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
            ys, xs = m.nonzero(as_tuple=True)
            masks.append(m)
            boxes.append(torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float64))
            labels.append(10 * b + k + 1)
            o2i.append(b)
    return images, torch.stack(boxes), torch.tensor(o2i), torch.stack(masks), torch.tensor(labels)


def _forced(o2i: torch.Tensor, selections: list[torch.Tensor]) -> dict:
    """Params pasting ``selections[b]`` (indices within image ``b - 1``) into image ``b``."""
    batch = len(selections)
    src, dst = [], []
    for b, sel in enumerate(selections):
        objects = (o2i == (b - 1) % batch).nonzero().flatten()
        src.append(objects[sel])
        dst.append(torch.full((sel.numel(),), b))
    return {"src_objects": torch.cat(src), "dst_images": torch.cat(dst)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_torchvision_reference(seed):
    images, boxes, o2i, masks, labels = _scene(seed)
    g = torch.Generator().manual_seed(100 + seed)
    selections = [torch.unique(torch.randint(0, 3, (3,), generator=g)) for _ in range(3)]
    aug = RandomCopyPaste(drop_invalid=True)
    before = [t.clone() for t in (images, boxes, o2i, masks)]
    res = aug(images, boxes, o2i, masks=masks, params=_forced(o2i, selections))
    assert all(torch.equal(t, u) for t, u in zip(before, (images, boxes, o2i, masks)))  # inputs untouched
    targets = [{"masks": masks[o2i == b], "boxes": boxes[o2i == b], "labels": labels[o2i == b]} for b in range(3)]
    want_images, want_targets = reference_simple_copy_paste(list(images), targets, selections)
    torch.testing.assert_close(res.images, torch.stack(want_images), rtol=0, atol=1e-12)
    got_labels = labels[res.object_index]
    for b, want in enumerate(want_targets):
        rows = res.obj_to_img == b
        assert torch.equal(res.masks[rows], want["masks"])
        torch.testing.assert_close(res.boxes[rows], want["boxes"].to(res.boxes.dtype), rtol=0, atol=0)
        assert torch.equal(got_labels[rows], want["labels"])


def test_blending_equals_the_reference_with_a_soft_edge():
    images, boxes, o2i, masks, labels = _scene(4)
    selections = [torch.tensor([1]), torch.tensor([0]), torch.tensor([2])]
    aug = RandomCopyPaste(sigma=2.0, kernel_size=5)
    res = aug(images, boxes, o2i, masks=masks, params=_forced(o2i, selections))
    targets = [{"masks": masks[o2i == b], "boxes": boxes[o2i == b], "labels": labels[o2i == b]} for b in range(3)]
    want_images, _ = reference_simple_copy_paste(list(images), targets, selections, blending=True)
    torch.testing.assert_close(res.images, torch.stack(want_images), rtol=0, atol=1e-12)


def test_pixels_and_masks_move_together_with_transforms():
    """Images drawn as the union of their masks: after pasting with scale, rotation and flip
    (nearest), the image equals the union of the kept output masks."""
    _, boxes, o2i, masks, _ = _scene(5, per_image=3)
    images = torch.zeros(3, 1, 24, 28)
    images.index_put_((o2i,), masks[:, None].float(), accumulate=True)
    images = images.clamp(max=1)
    aug = RandomCopyPaste(p=1.0, object_p=1.0, scale=(0.6, 1.4), angle=30, hflip=0.5, mode="nearest",
                          generator=torch.Generator().manual_seed(0))
    res = aug(images, boxes, o2i, masks=masks)
    assert res.object_index.numel() > boxes.shape[0]
    union = torch.zeros(3, 24, 28, dtype=torch.bool)
    for m, b in zip(res.masks, res.obj_to_img):
        union[b] |= m
    assert torch.equal(res.images[:, 0] > 0.5, union)
    # boxes are the masks' tight boxes wherever a mask changed or was pasted
    n = boxes.shape[0]
    for row in range(n, res.boxes.shape[0]):
        ys, xs = res.masks[row].nonzero(as_tuple=True)
        if ys.numel():
            assert res.boxes[row].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        else:
            assert not res.keep[row]


def test_keypoints_and_placement_follow_the_matrix():
    images = torch.zeros(2, 1, 32, 32)
    boxes = torch.tensor([[4.0, 6.0, 12.0, 10.0]])
    masks = torch.zeros(1, 32, 32, dtype=torch.bool)
    masks[0, 6:10, 4:12] = True
    kps = torch.tensor([[[4.0, 6.0], [12.0, 10.0]]])  # the box's corners
    params = {"src_objects": torch.tensor([0]), "dst_images": torch.tensor([1]), "scale": torch.tensor([2.0]),
              "angle": torch.tensor([90.0]), "centre": torch.tensor([[20.0, 16.0]])}
    res = RandomCopyPaste()(images, boxes, torch.tensor([0]), masks=masks, keypoints=kps, params=params)
    # a quarter turn counter-clockwise of an 8 x 4 box scaled twice: 8 wide, 16 high, about (20, 16)
    assert res.boxes[1].tolist() == [16.0, 8.0, 24.0, 24.0]
    torch.testing.assert_close(res.keypoints[1], torch.tensor([[16.0, 24.0], [24.0, 8.0]]), rtol=0, atol=1e-5)
    assert res.obj_to_img.tolist() == [0, 1] and res.masks[1].sum() == 128


def test_occlusion_keep_and_min_visible_fraction():
    images = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0]])
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 0:8, 0:8] = True
    masks[1, 2:6, 2:6] = True
    o2i = torch.tensor([0, 1])
    params = {"src_objects": torch.tensor([0]), "dst_images": torch.tensor([1])}  # covers object 1 entirely
    res = RandomCopyPaste()(images, boxes, o2i, masks=masks, params=params)
    assert res.keep.tolist() == [True, False, True]
    params = {"src_objects": torch.tensor([1]), "dst_images": torch.tensor([0]), "centre": torch.tensor([[6.0, 6.0]])}
    res = RandomCopyPaste(min_visible_fraction=0.8)(images, boxes, o2i, masks=masks, params=params)
    assert res.keep.tolist() == [False, True, True]  # 48 of 64 pixels visible: 0.75 < 0.8
    res = RandomCopyPaste(min_visible_fraction=0.8, drop_invalid=True)(images, boxes, o2i, masks=masks, params=params)
    assert res.obj_to_img.tolist() == [1, 0] and res.object_index.tolist() == [1, 1]


def test_without_masks_objects_are_pasted_as_boxes():
    images = torch.zeros(2, 1, 12, 12)
    images[1, :, 2:6, 2:6] = 1
    boxes = torch.tensor([[2, 2, 6, 6], [1, 1, 5, 5]])
    params = {"src_objects": torch.tensor([0]), "dst_images": torch.tensor([0])}
    res = RandomCopyPaste()(images, boxes, torch.tensor([1, 0]), params=params)
    assert res.images[0, 0].sum() == 16 and res.images[0, 0, 2:6, 2:6].eq(1).all()
    # object 1 (in image 0) is covered but for its first row and column: its box shrinks to them
    assert res.boxes.tolist() == [[2, 2, 6, 6], [1, 1, 5, 5], [2, 2, 6, 6]]
    assert res.keep.tolist() == [True, True, True]


def test_replay_json_and_generator():
    images, boxes, o2i, masks, _ = _scene(6)
    aug = RandomCopyPaste(p=1.0, angle=20, generator=torch.Generator().manual_seed(3))
    first = aug(images, boxes, o2i, masks=masks)
    params = params_from_json(params_to_json(aug._params))
    again = aug(images, boxes, o2i, masks=masks, params=params)
    assert torch.equal(first.images, again.images) and torch.equal(first.boxes, again.boxes)
    twin = RandomCopyPaste(p=1.0, angle=20, generator=torch.Generator().manual_seed(3))
    other = twin(images, boxes, o2i, masks=masks)
    assert torch.equal(first.images, other.images)


def test_batch_augment_keeps_labels_aligned():
    images, boxes, o2i, masks, labels = _scene(7)
    samples = [(images[b].float(), {"boxes": boxes[o2i == b].float(), "labels": labels[o2i == b],
                                    "masks": masks[o2i == b]}) for b in range(3)]
    batch = collate_objects(samples)
    n = batch["boxes"].shape[0]
    for drop in (False, True):
        aug = RandomCopyPaste(p=1.0, object_p=1.0, scale=(0.2, 1.5), drop_invalid=drop,
                              generator=torch.Generator().manual_seed(1))
        out = BatchAugment(aug, device=None)(batch)
        rows = torch.cat([torch.arange(n), aug._params["src_objects"]])
        if drop:
            rows = rows[aug(batch["images"], batch["boxes"], batch["obj_to_img"], masks=batch["masks"],
                            params=aug._params).keep]
        else:
            assert out["keep"].shape == rows.shape and rows.numel() > n
        total = rows.numel()
        assert torch.equal(out["labels"], batch["labels"][rows])
        assert out["masks"].shape[0] == total and out["obj_to_img"].shape == (total,)
        imgs, targets = to_detection_inputs(out)
        assert len(imgs) == 3 and sum(t["labels"].numel() for t in targets) == int(out["keep"].sum())


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        RandomCopyPaste(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="position"):
        RandomCopyPaste(position="centre")
    with pytest.raises(ValueError, match="masks"):
        RandomCopyPaste()(torch.zeros(1, 3, 8, 8), torch.tensor([[0, 0, 4, 4]]), masks=torch.zeros(1, 4, 4))
    with pytest.raises(IndexError, match="src_objects"):
        RandomCopyPaste()(torch.zeros(1, 3, 8, 8), torch.tensor([[0, 0, 4, 4]]),
                          params={"src_objects": [3], "dst_images": [0]})


# ------------------------------------------------------------------ torchvision v2 batch form


def _write_coco(root, sizes):
    """COCO with masks: image ``b`` of ``sizes[b]``, two rectangles per image, each filled
    with the grey level ``40 * label`` on a black background (so pixels name their object)."""
    import json

    import numpy as np
    from PIL import Image
    from pycocotools import mask as coco_mask

    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for b, (h, w) in enumerate(sizes):
        pixels = np.zeros((h, w, 3), dtype=np.uint8)
        for k, (y0, x0, y1, x1) in enumerate([(2, 3, h // 2, w // 2), (h // 2 + 1, w // 2 + 2, h - 2, w - 3)]):
            label = 2 * b + k + 1
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[y0:y1, x0:x1] = 1
            pixels[mask.astype(bool)] = 40 * label
            rle = coco_mask.encode(np.asfortranarray(mask))
            rle["counts"] = rle["counts"].decode("ascii")
            anns.append({"id": len(anns) + 1, "image_id": b + 1, "category_id": label, "iscrowd": 0,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(mask.sum()), "segmentation": rle})
        Image.fromarray(pixels).save(root / "images" / f"{b}.png")
        images.append({"id": b + 1, "file_name": f"{b}.png", "height": h, "width": w})
    cats = [{"id": c, "name": str(c)} for c in range(1, 2 * len(sizes) + 1)]
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann_file


def test_copy_paste_batch_in_a_references_collate(tmp_path):
    """torchvision's references wire copy-paste into the collate function: CocoDetection +
    wrap_dataset_for_transforms_v2, ``copy_paste(*collate_fn(batch))``; images of different
    sizes; every kept object's pixels carry its label's grey level, nothing else is lit."""
    from torch.utils.data import DataLoader
    from torchvision import tv_tensors
    from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
    from torchvision.transforms import v2

    from augpatch.integrations.torchvision import CopyPasteBatch as exported
    from augpatch.integrations.torchvision_batch import CopyPasteBatch

    assert exported is CopyPasteBatch
    sizes = [(40, 48), (36, 52), (44, 44)]
    ann_file = _write_coco(tmp_path, sizes)
    dataset = wrap_dataset_for_transforms_v2(
        CocoDetection(tmp_path / "images", ann_file, transforms=v2.ToImage()),
        target_keys={"boxes", "labels", "masks", "image_id", "area"})
    copy_paste = CopyPasteBatch(p=1.0, object_p=1.0, scale=(0.7, 1.2), angle=25.0, mode="nearest",
                                generator=torch.Generator().manual_seed(0))

    def copypaste_collate_fn(batch):  # as torchvision's references/detection/train.py
        return copy_paste(*tuple(zip(*batch)))

    loader = DataLoader(dataset, batch_size=3, collate_fn=copypaste_collate_fn)
    images, targets = next(iter(loader))
    assert [tuple(im.shape[-2:]) for im in images] == sizes
    assert all(isinstance(im, tv_tensors.Image) and im.dtype == torch.uint8 for im in images)
    assert sum(t["labels"].numel() for t in targets) > 6  # objects were added
    for image, t, size in zip(images, targets, sizes):
        assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and tuple(t["boxes"].canvas_size) == size
        assert isinstance(t["masks"], tv_tensors.Mask) and t["masks"].shape[1:] == size
        union = torch.zeros(size, dtype=torch.bool)
        for mask, label, box, area in zip(t["masks"].bool(), t["labels"], t["boxes"], t["area"]):
            assert mask.any() and bool((image[:, mask] == 40 * label).all())
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert float(area) == mask.sum()  # recomputed where the mask changed, COCO's otherwise
            union |= mask
        assert torch.equal(image.amax(0) > 0, union)
    # replay gives the same batch
    again, _ = copy_paste(*tuple(zip(*[dataset[i] for i in range(3)])), params=copy_paste.last_params)
    assert all(torch.equal(a, b) for a, b in zip(again, images))


def test_copy_paste_batch_refuses_what_it_cannot_take():
    from PIL import Image

    from augpatch.integrations.torchvision_batch import CopyPasteBatch

    with pytest.raises(TypeError, match="images, targets"):
        CopyPasteBatch()([torch.zeros(3, 4, 4)])
    with pytest.raises(TypeError, match="PIL"):
        CopyPasteBatch()([Image.new("RGB", (4, 4))], [{"boxes": torch.zeros(0, 4)}])
    with pytest.raises(TypeError, match="drop_invalid"):
        CopyPasteBatch(drop_invalid=False)


# ------------------------------------------------------------------ composition


def _labelled(seed: int, batch: int = 3, height: int = 24, width: int = 28, unit: float = 1.0):
    """The scene with one channel whose pixels are their object's label times ``unit`` (0: background)."""
    _, boxes, o2i, masks, labels = _scene(seed, batch, height, width)
    images = torch.zeros(batch, 1, height, width, dtype=torch.float64)
    for m, b, lab in zip(masks, o2i, labels):
        images[b, 0][m] = float(lab) * unit
    return images, boxes, o2i, masks, labels


def _assert_targets_follow_pixels(images, masks, obj_to_img, labels, keep, unit=1.0):
    """Every kept object's pixels carry its label; the lit pixels are the union of the masks."""
    union = torch.zeros(images.shape[0], *images.shape[2:], dtype=torch.bool)
    for m, b, lab, k in zip(masks.bool(), obj_to_img, labels, keep):
        if k:
            assert bool((images[b, 0][m] == float(lab) * unit).all())
        union[b] |= m
    assert torch.equal(images[:, 0] != 0, union)


def test_patch_sequential_runs_copy_paste_as_a_stage():
    from augpatch import PatchSequential, RandomPatchHorizontalFlip, RandomPatchRotation

    images, boxes, o2i, masks, labels = _labelled(8)
    g = torch.Generator().manual_seed(2)
    rot, flip = RandomPatchRotation(20.0, p=1.0, resample="nearest"), RandomPatchHorizontalFlip(p=0.5)
    paste = RandomCopyPaste(p=1.0, object_p=1.0, scale=(0.7, 1.2), angle=20, mode="nearest", generator=g)
    # targets follow pixels (a per-object warp *after* the paste would also move the pixels
    # of pasted objects overlapping its box: the warp's own overlap rule, not checked here)
    res = PatchSequential(rot, paste, resample="nearest")(images, boxes, o2i, masks=masks)
    n = boxes.shape[0]
    assert res.object_index.numel() == res.boxes.shape[0] == res.keep.numel() > n
    assert torch.equal(res.object_index[:n], torch.arange(n))
    _assert_targets_follow_pixels(res.images, res.masks, res.obj_to_img, labels[res.object_index], res.keep)
    seq = PatchSequential(rot, paste, flip, resample="nearest")
    res = seq(images, boxes, o2i, masks=masks)
    # the parts in order by hand, with the parameters the sequence stored
    first = PatchSequential(rot, resample="nearest")(images, boxes, o2i, masks=masks, params=seq._params["part0"])
    second = paste(first.images, first.boxes, first.obj_to_img, masks=first.masks, params=seq._params["part1"])
    third = PatchSequential(flip, resample="nearest")(second.images, second.boxes, second.obj_to_img,
                                                      masks=second.masks, params=seq._params["part2"])
    assert torch.equal(res.images, third.images) and torch.equal(res.boxes, third.boxes)
    assert torch.equal(res.keep, second.keep & third.keep)
    # replay, drop_invalid at the end, the refusals
    again = seq(images, boxes, o2i, masks=masks, params=seq._params)
    assert torch.equal(again.images, res.images) and torch.equal(again.masks, res.masks)
    dropped = PatchSequential(rot, paste, flip, resample="nearest", drop_invalid=True)(
        images, boxes, o2i, masks=masks, params=seq._params)
    assert torch.equal(dropped.object_index, res.object_index[res.keep])
    assert torch.equal(dropped.boxes, res.boxes[res.keep])
    with pytest.raises(NotImplementedError, match="member 1 is \\(or holds\\) a RandomCopyPaste"):
        seq.inverse(res.images, res.boxes)
    with pytest.raises(ValueError, match="p must be 1.0"):
        PatchSequential(rot, paste, p=0.5)
    with pytest.raises(NotImplementedError, match="RandomCopyPaste stage"):
        seq.search_space(seq._params)
    assert len(seq) == 3 and seq[1] is paste and list(seq) == [rot, paste, flip]
    # a sequence holding a stage is a stage of an enclosing sequence
    nested = PatchSequential(PatchSequential(rot, paste, resample="nearest"), flip, resample="nearest")
    res_nested = nested(images, boxes, o2i, masks=masks, params={"part0": {"part0": seq._params["part0"],
                                                                           "part1": seq._params["part1"]},
                                                                 "part1": seq._params["part2"]})
    assert torch.equal(res_nested.images, res.images) and torch.equal(res_nested.object_index, res.object_index)
    with pytest.raises(NotImplementedError, match="member 0 is \\(or holds\\) a RandomCopyPaste"):
        nested.inverse(res.images, res.boxes)


@pytest.mark.parametrize("paste_first", [True, False])
def test_copy_paste_chains_with_detection_autoaugment_through_batch_augment(paste_first):
    from augpatch.policies import DetectionAutoAugment

    images, boxes, o2i, masks, labels = _labelled(9, height=40, width=44, unit=1 / 32)
    samples = [(images[b], {"boxes": boxes[o2i == b], "labels": labels[o2i == b], "masks": masks[o2i == b],
                            "area": masks[o2i == b].flatten(1).sum(1).double()}) for b in range(3)]
    batch = collate_objects(samples)
    paste = BatchAugment(RandomCopyPaste(p=1.0, object_p=1.0, scale=(0.8, 1.2), angle=15, mode="nearest",
                                         generator=torch.Generator().manual_seed(4)), device=None)
    policy = [[("TranslateX_BBox", 1.0, 0.4), ("Rotate_BBox", 1.0, 3.0)]]  # image-level geometry
    auto = BatchAugment(DetectionAutoAugment(policy, fill=0.0, generator=torch.Generator().manual_seed(5)),
                        device=None)
    out = auto(paste(batch)) if paste_first else paste(auto(batch))
    assert out["labels"].numel() > batch["labels"].numel()
    _assert_targets_follow_pixels(out["images"], out["masks"], out["obj_to_img"], out["labels"], out["keep"],
                                  unit=1 / 32)
    if not paste_first:  # the paste came last: the pasted rows' areas are their masks' pixel counts
        n = batch["labels"].numel()
        assert torch.equal(out["area"][n:], out["masks"][n:].flatten(1).sum(1).double())


# ------------------------------------------------------------------ occlusion bookkeeping, area, object_index


def _dense_occlusion(own, o2i, pasted, dst, batch):
    """The bookkeeping over the whole ``[N + M, H, W]`` masks, object by object (the definition)."""
    n, m = own.shape[0], pasted.shape[0]
    top = torch.zeros(batch, *own.shape[1:], dtype=torch.long)
    for k in range(m):
        top[dst[k]][pasted[k]] = k + 1
    rows = [own[i] & (top[o2i[i]] == 0) for i in range(n)]
    rows += [pasted[k] & (top[dst[k]] == k + 1) for k in range(m)]
    masks = torch.stack(rows) if rows else own[:0]
    visible = masks.flatten(1).sum(1)
    area = torch.cat([own, pasted]).flatten(1).sum(1)
    tight = torch.zeros(n + m, 4, dtype=torch.long)
    for r, mask in enumerate(masks):
        ys, xs = mask.nonzero(as_tuple=True)
        if ys.numel():
            tight[r] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    changed = visible < area
    changed[n:] = True
    return masks, visible, area, tight, changed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_occlusion_restricted_to_the_pasted_rects_equals_the_dense_definition(seed):
    from augpatch.transforms.copy_paste import _occlude

    g = torch.Generator().manual_seed(seed)
    batch, h, w, n, m = 3, 30, 34, 7, 9
    own = torch.rand(n, h, w, generator=g) > 0.6
    own[0] = False  # an empty mask
    own[1] = True  # the whole image (the largest crop)
    own[2, :, :3] = own[2, -1:, :] = True  # pixels on the border
    o2i = torch.randint(0, batch, (n,), generator=g)
    dst = torch.randint(0, batch, (m,), generator=g)
    x0 = torch.randint(0, w - 2, (m,), generator=g)
    y0 = torch.randint(0, h - 2, (m,), generator=g)
    x1 = torch.minimum(x0 + torch.randint(1, w, (m,), generator=g), torch.tensor(w))
    y1 = torch.minimum(y0 + torch.randint(1, h, (m,), generator=g), torch.tensor(h))
    rects = torch.stack([x0, y0, x1, y1], 1)
    ys, xs = torch.arange(h), torch.arange(w)
    in_y = (ys >= y0[:, None]) & (ys < y1[:, None])
    inside = in_y[:, :, None] & ((xs >= x0[:, None]) & (xs < x1[:, None]))[:, None]
    pasted = inside & (torch.rand(m, h, w, generator=g) > 0.3)
    pasted[3] = False  # pasted, but nothing of it lands
    occ = _occlude(own, o2i, pasted, dst, rects, batch)
    want = _dense_occlusion(own, o2i, pasted, dst, batch)
    for got, expected in zip((occ.masks, occ.visible, occ.area, occ.changed), (want[0], want[1], want[2], want[4])):
        assert torch.equal(got, expected)
    assert torch.equal(occ.tight[occ.changed], want[3][want[4]])
    assert not own[0].any() and own[1].all()  # inputs untouched
    # nothing pasted, and no existing objects
    occ = _occlude(own, o2i, pasted[:0], dst[:0], rects[:0], batch)
    assert torch.equal(occ.masks, own) and not occ.changed.any()
    occ = _occlude(own[:0], o2i[:0], pasted, dst, rects, batch)
    assert torch.equal(occ.masks, _dense_occlusion(own[:0], o2i[:0], pasted, dst, batch)[0])


def test_area_is_recomputed_for_changed_objects_only():
    images, boxes, o2i, masks, _ = _scene(10)
    aug = RandomCopyPaste(p=1.0, object_p=1.0, scale=(0.8, 1.5), generator=torch.Generator().manual_seed(0))
    res = aug(images, boxes, o2i, masks=masks)
    n = boxes.shape[0]
    counts = res.masks.flatten(1).sum(1).to(res.area.dtype)
    occluded = counts[:n] < masks.flatten(1).sum(1)
    assert occluded.any() and not occluded.all()
    changed = torch.cat([occluded, torch.ones(res.area.numel() - n, dtype=torch.bool)])
    assert torch.equal(res.area[changed], counts[changed]) and res.area[~changed].isnan().all()
    # without masks: the box's area
    res = aug(images, boxes, o2i, params=aug._params)
    box_area = (res.boxes[:, 2] - res.boxes[:, 0]) * (res.boxes[:, 3] - res.boxes[:, 1])
    assert torch.equal(res.area[n:], box_area[n:])


def test_object_index_of_every_result():
    import pickle

    from augpatch import RandomPatchRotation

    images, boxes, o2i = torch.rand(2, 3, 16, 16), torch.tensor([[2, 2, 8, 8], [0, 0, 16, 16.0]]), torch.tensor([0, 1])
    res = RandomPatchRotation(30.0, p=1.0)(images, boxes, o2i)
    assert res.object_index.tolist() == [0, 1] and res.area is None
    keep = torch.tensor([False, True])
    dropped = type(res)(res.images, res.boxes[keep], keep=keep, obj_to_img=o2i[keep])
    assert dropped.object_index.tolist() == [1]
    pasted = RandomCopyPaste(p=1.0, object_p=1.0)(images, boxes, o2i)
    again = pickle.loads(pickle.dumps(pasted))
    assert torch.equal(again.object_index, pasted.object_index) and again.area.shape == pasted.area.shape
