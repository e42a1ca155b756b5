"""Recipe: Simple Copy-Paste (Ghiasi et al., CVPR 2021) on whole batches, training a Mask R-CNN.

1. Writes a small COCO-format instance-segmentation set from the photograph of coins
   embedded in augpatch (the crops of ``recipes/detection_autoaugment.py``), each coin's
   mask taken from its pixels (the pixels of its disc that stand out from the
   background), stored as COCO RLE.
2. Reads it as users read COCO: ``CocoDetection`` + ``wrap_dataset_for_transforms_v2``
   (boxes, labels, masks).
3. Batches it with ``collate_objects`` and pastes objects between the images of every
   batch with ``BatchAugment(RandomCopyPaste(...))`` (each pasted coin with its own
   scale, rotation and flip; the coins underneath lose the covered pixels; labels and
   masks stay aligned).
4. Trains ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` for a few steps
   (``--smoke``: a Mask R-CNN on a MobileNetV3-small backbone, to stay within seconds).
5. Writes a PNG grid of pasted samples with their masks outlined.

    python recipes/copy_paste.py                 # CUDA if available
    python recipes/copy_paste.py --smoke         # seconds, CPU (CI)

Needs torchvision and pycocotools (``pip install 'augpatch[torchvision]' pycocotools``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask
from torch.utils.data import DataLoader
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.transforms import v2
from torchvision.utils import draw_segmentation_masks, make_grid

from augpatch import RandomCopyPaste
from augpatch.data import BatchAugment, collate_objects, seed_worker, to_detection_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the coins COCO writer of another recipe
from detection_autoaugment import write_coco  # noqa: E402


def coin_mask(image: np.ndarray, box: list[float]) -> np.ndarray:
    """The pixels of a coin: inside the disc inscribed in its box, unlike the background.

    The background colour is the median of the box's border pixels; a pixel of the disc
    belongs to the coin when it differs from it by more than a third of the disc's
    spread; the face is filled between its outermost such pixels (the whole disc where
    that leaves less than half of it).
    """
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    disc = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    border = inside & ~disc
    pixels = image.astype(np.float64)
    background = np.median(pixels[border], axis=0) if border.any() else pixels[disc].mean(0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    spread = distance[disc].max() if disc.any() else 0.0
    mask = disc & (distance > spread / 3)
    # fill the coin's face between its outermost pixels, row by row and column by column
    rows = (np.cumsum(mask, 1) > 0) & (np.cumsum(mask[:, ::-1], 1)[:, ::-1] > 0)
    cols = (np.cumsum(mask, 0) > 0) & (np.cumsum(mask[::-1], 0)[::-1] > 0)
    mask = rows & cols
    return mask if mask.sum() >= disc.sum() / 2 else disc


def add_masks(ann_file: Path, image_dir: Path) -> None:
    """Give every annotation of ``ann_file`` a COCO RLE ``segmentation`` from its coin's pixels."""
    data = json.loads(ann_file.read_text())
    files = {im["id"]: im["file_name"] for im in data["images"]}
    cache: dict[int, np.ndarray] = {}
    for ann in data["annotations"]:
        image_id = ann["image_id"]
        if image_id not in cache:
            with Image.open(image_dir / files[image_id]) as pil:
                cache[image_id] = np.asarray(pil.convert("RGB"))
        x, y, w, h = ann["bbox"]
        mask = coin_mask(cache[image_id], [x, y, x + w, y + h])
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        ann["segmentation"] = rle
        ann["area"] = float(mask.sum())
    ann_file.write_text(json.dumps(data))


def draw(batch: dict, count: int) -> torch.Tensor:
    """A grid of the first ``count`` images with the masks of their kept objects outlined."""
    panels = []
    for b in range(min(count, batch["images"].shape[0])):
        sel = batch["obj_to_img"] == b
        if "keep" in batch:
            sel &= batch["keep"]
        masks = batch["masks"][sel].bool().cpu()
        outline = masks & torch.nn.functional.max_pool2d(
            (~masks).float()[:, None], 3, stride=1, padding=1)[:, 0].bool()
        panels.append(draw_segmentation_masks(batch["images"][b].cpu(), outline, alpha=1.0, colors="red"))
    return make_grid(panels, nrow=2, padding=4, pad_value=255)


def build_model(smoke: bool) -> MaskRCNN:
    """``maskrcnn_resnet50_fpn`` without weights; for ``--smoke`` a Mask R-CNN on MobileNetV3-small (seconds)."""
    if not smoke:
        return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    backbone = mobilenet_backbone(backbone_name="mobilenet_v3_small", weights=None, fpn=True, trainable_layers=6)
    anchors = AnchorGenerator(((16, 32, 64, 128),) * 3, ((0.5, 1.0, 2.0),) * 3)  # one per feature map
    return MaskRCNN(backbone, num_classes=2, min_size=128, max_size=160, rpn_anchor_generator=anchors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the dataset and the PNG go (default: a temporary directory with --smoke, "
                        "else ./copy_paste_out)")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    smoke = args.smoke
    device = "cpu" if smoke else args.device
    num_images, size, batch_size = (4, (128, 160), 2) if smoke else (32, (256, 320), 8)
    steps = args.steps if args.steps is not None else (1 if smoke else 20)
    out = args.out or (Path(tempfile.mkdtemp(prefix="augpatch_cp_")) if smoke else Path("copy_paste_out"))
    start = time.perf_counter()
    torch.manual_seed(0)

    ann_file = write_coco(out / "coco", num_images, size)
    add_masks(ann_file, out / "coco" / "images")
    dataset = wrap_dataset_for_transforms_v2(
        CocoDetection(out / "coco" / "images", ann_file, transforms=v2.ToImage()),
        target_keys={"boxes", "labels", "masks", "image_id"},
    )
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=0 if smoke else args.workers,
        collate_fn=collate_objects,  # workers only collate: the paste runs on the batch
        pin_memory=device != "cpu", worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(0),
    )
    augment = BatchAugment(
        RandomCopyPaste(p=1.0, object_p=0.5, max_objects=6, scale=(0.5, 1.5), angle=30.0, hflip=0.5,
                        min_visible_pixels=16, drop_invalid=True, generator=torch.Generator().manual_seed(0)),
        device=device,
    )
    model = build_model(smoke).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)

    step, losses, grid, pasted = 0, [], None, 0
    while step < steps:
        for raw in loader:
            batch = augment(raw)  # copy-paste on the whole batch (on `device`)
            pasted += batch["boxes"].shape[0] - int(raw["keep"].sum() if "keep" in raw else raw["boxes"].shape[0])
            if grid is None:
                grid = draw(batch, count=4)
            images, targets = to_detection_inputs(batch)
            targets = [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"].to(torch.uint8)}
                       for t in targets]
            images = [im / 255.0 if im.max() > 1 else im for im in images]
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= steps:
                break
    png = out / "copy_paste.png"
    v2.functional.to_pil_image(grid).save(png)
    print(f"copy-paste recipe: {num_images} COCO images of coins with masks, {step} Mask R-CNN steps on {device} "
          f"(loss {losses[0]:.3f} -> {losses[-1]:.3f}), net objects added {pasted}, wrote {png}, "
          f"{time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
