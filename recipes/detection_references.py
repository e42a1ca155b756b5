"""Recipe: augpatch in torchvision's ``references/detection`` training loop (one line).

torchvision's detection references (``train.py`` + ``engine.py``) read COCO with
``CocoDetection`` + ``wrap_dataset_for_transforms_v2``, batch with
``collate_fn = lambda batch: tuple(zip(*batch))`` and train on ``images`` (a list of
``[C, H_i, W_i]`` tensors of different sizes) and ``targets`` (a list of dicts with
``boxes``, ``labels``, ``masks``, ``image_id``). augpatch augments that batch on the
GPU with one line in ``train_one_epoch``, after the images and targets are moved to
the device::

    images, targets = batch_aug((images, targets))

``BatchAugment`` pads the images onto one canvas, runs the transform on the whole
batch with each image's own size (``image_sizes``), and hands back the same format:
each image cropped back to its size, every key of every target kept, the per-object
ones (``labels``, ``masks``, ``area``, ``iscrowd``) filtered with the objects that
stayed inside their image, boxes clipped to it.

This script copies the references' structure: a COCO dataset with polygon masks
written from the photograph of coins embedded in augpatch (crops of several sizes
and aspect ratios), the references' ``collate_fn``, ``maskrcnn_resnet50_fpn`` (no
pretrained weights) and a ``train_one_epoch``-like loop, then an ``evaluate``-like
pass in eval mode.

    python recipes/detection_references.py              # CUDA if available
    python recipes/detection_references.py --smoke      # seconds, CPU (CI)

Needs torchvision and pycocotools (``pip install 'augpatch[torchvision]' pycocotools``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.transforms import v2

from augpatch.data import BatchAugment
from augpatch.policies import DetectionAutoAugment

# (top, left, height, width) crops of the 303 x 384 photograph: several aspect ratios
CROPS = [(0, 0, 160, 250), (80, 120, 220, 140), (140, 0, 160, 160), (0, 180, 303, 204)]


def polygon(box: list[float], points: int = 16) -> list[float]:
    """A coin's outline: the ellipse inscribed in its box, as a COCO polygon."""
    x1, y1, x2, y2 = box
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    out: list[float] = []
    for k in range(points):
        a = 2 * math.pi * k / points
        out += [cx + rx * math.cos(a), cy + ry * math.sin(a)]
    return out


def write_coco(root: Path, num_images: int) -> Path:
    """Write ``num_images`` crops (cycling through :data:`CROPS`) and ``instances.json``
    with a box and a polygon mask for every coin entirely inside its crop."""
    assets = resources.files("augpatch") / "assets"
    with Image.open(io.BytesIO(assets.joinpath("coins.png").read_bytes())) as pil:
        photo = pil.convert("RGB")
    coins = json.loads(assets.joinpath("coins_boxes.json").read_text())["boxes"]
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(num_images):
        top, left, height, width = CROPS[k % len(CROPS)]
        name = f"coins_{k:03d}.png"
        photo.crop((left, top, left + width, top + height)).save(root / "images" / name)
        images.append({"id": k + 1, "file_name": name, "height": height, "width": width})
        for x1, y1, x2, y2 in coins:
            box = [x1 - left, y1 - top, x2 - left, y2 - top]
            if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": 1,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "segmentation": [polygon(box)],
                    "area": math.pi * (box[2] - box[0]) * (box[3] - box[1]) / 4,
                    "iscrowd": 0,
                }
            )
    ann_file = root / "instances.json"
    categories = [{"id": 1, "name": "coin", "supercategory": "coin"}]
    ann_file.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return ann_file


def collate_fn(batch):
    """The references' ``utils.collate_fn``."""
    return tuple(zip(*batch))


def train_one_epoch(model, optimizer, data_loader, device, batch_aug, max_steps) -> list[float]:
    """``engine.train_one_epoch`` of the references, with the augpatch line marked."""
    model.train()
    losses_seen = []
    for step, (images, targets) in enumerate(data_loader):
        if step >= max_steps:
            break
        images = [image.to(device) for image in images]
        targets = [
            {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
            for t in targets
        ]
        images, targets = batch_aug((images, targets))  # <- the one line augpatch adds
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        if not math.isfinite(losses.item()):
            raise RuntimeError(f"Loss is {losses.item()}, stopping training: {loss_dict}")
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        losses_seen.append(losses.item())
    return losses_seen


@torch.inference_mode()
def evaluate(model, data_loader, device) -> int:
    """An ``evaluate``-like pass: the number of detections on the first batch."""
    model.eval()
    images, _ = next(iter(data_loader))
    outputs = model([image.to(device) for image in images])
    return sum(int(o["boxes"].shape[0]) for o in outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--out", type=Path, default=None, help="where the dataset goes")
    args = parser.parse_args()
    smoke = args.smoke
    device = torch.device("cpu" if smoke else args.device)
    steps = args.steps if args.steps is not None else (1 if smoke else 20)
    num_images, batch_size = (2, 2) if smoke else (16, 4)
    out = args.out or Path(tempfile.mkdtemp(prefix="augpatch_refs_"))
    start = time.perf_counter()
    torch.manual_seed(0)

    ann_file = write_coco(out / "coco", num_images)
    transforms = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float, scale=True)])
    dataset = wrap_dataset_for_transforms_v2(
        CocoDetection(out / "coco" / "images", ann_file, transforms=transforms),
        target_keys={"boxes", "labels", "masks", "image_id"},
    )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate_fn)
    batch_aug = BatchAugment(DetectionAutoAugment("v1"), device=device)
    sizes = {"min_size": 96, "max_size": 128} if smoke else {"min_size": 320, "max_size": 512}
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=2, **sizes
    ).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=1e-4)

    losses: list[float] = []
    while len(losses) < steps:
        losses += train_one_epoch(model, optimizer, loader, device, batch_aug, steps - len(losses))
    detections = "skipped" if smoke else evaluate(model, loader, device)
    print(
        f"detection references recipe: {num_images} COCO images with masks, {len(losses)} "
        f"Mask R-CNN steps on {device} (loss {losses[0]:.3f} -> {losses[-1]:.3f}), "
        f"evaluate: {detections} detections, {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    main()
