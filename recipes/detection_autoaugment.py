"""Recipe: Zoph et al.'s detection AutoAugment on whole batches, training a torchvision detector.

1. Writes a small COCO-format dataset (PNG images + ``instances.json``) made from the
   photograph of coins embedded in augpatch (crops and mirror images, 24 coins with
   their boxes).
2. Reads it as users read COCO: ``torchvision.datasets.CocoDetection`` wrapped by
   ``wrap_dataset_for_transforms_v2``.
3. Batches it with ``DataLoader(collate_fn=augpatch.data.collate_objects)`` and
   augments every batch at once with ``BatchAugment(DetectionAutoAugment("v1"))`` on
   the GPU when there is one (the box-only ops act inside all boxes of the batch in
   one pass each).
4. Trains ``fasterrcnn_mobilenet_v3_large_320_fpn`` (no pretrained weights) for a few
   steps on ``augpatch.data.to_detection_inputs(batch)``.
5. Writes a PNG: each image before and after the policy, with its boxes.

    python recipes/detection_autoaugment.py                 # CUDA if available
    python recipes/detection_autoaugment.py --smoke         # seconds, CPU (CI)
    python recipes/detection_autoaugment.py --out runs/daa --steps 50

Needs torchvision and pycocotools (``pip install 'augpatch[torchvision]' pycocotools``).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
from torchvision.transforms import v2
from torchvision.utils import draw_bounding_boxes, make_grid

from augpatch.data import BatchAugment, collate_objects, seed_worker, to_detection_inputs
from augpatch.policies import DetectionAutoAugment


def write_coco(root: Path, num_images: int, size: tuple[int, int]) -> Path:
    """Write ``num_images`` crops of the coins photograph and their COCO annotations.

    Image ``k`` is a ``size = (H, W)`` crop at one of a few offsets, mirrored for odd
    ``k``; a coin is annotated when its box lies entirely inside the crop. Returns the
    path of ``instances.json``; the PNGs are in ``root / "images"``.
    """
    assets = resources.files("augpatch") / "assets"
    with Image.open(io.BytesIO(assets.joinpath("coins.png").read_bytes())) as pil:
        photo = pil.convert("RGB")
    coins = torch.tensor(json.loads(assets.joinpath("coins_boxes.json").read_text())["boxes"])
    height, width = size
    offsets = [
        (0, 0),
        (photo.height - height, photo.width - width),
        (0, photo.width - width),
        (photo.height - height, 0),
    ]
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(num_images):
        top, left = offsets[k % len(offsets)]
        crop = photo.crop((left, top, left + width, top + height))
        boxes = coins - torch.tensor([left, top, left, top])
        inside = (boxes[:, :2] >= 0).all(1) & (boxes[:, 2] <= width) & (boxes[:, 3] <= height)
        boxes = boxes[inside]
        if k % 2:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            boxes = torch.stack(
                (width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), 1
            )
        name = f"coins_{k:03d}.png"
        crop.save(root / "images" / name)
        images.append({"id": k + 1, "file_name": name, "height": height, "width": width})
        for x1, y1, x2, y2 in boxes.tolist():
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    ann_file = root / "instances.json"
    ann_file.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": 1, "name": "coin", "supercategory": "coin"}],
            }
        )
    )
    return ann_file


def draw(batch_before: dict, batch_after: dict, count: int) -> torch.Tensor:
    """A grid: each image before (green boxes) and after the policy (red boxes, kept ones)."""
    panels = []
    for b in range(min(count, batch_before["images"].shape[0])):
        for batch, colour in ((batch_before, "lime"), (batch_after, "red")):
            sel = batch["obj_to_img"] == b
            if "keep" in batch:
                sel &= batch["keep"]
            panels.append(
                draw_bounding_boxes(
                    batch["images"][b].cpu(), batch["boxes"][sel].cpu(), colors=colour, width=2
                )
            )
    return make_grid(panels, nrow=2, padding=4, pad_value=255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the dataset and the PNG go (default: a temporary directory "
        "with --smoke, else ./detection_autoaugment_out)",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    smoke = args.smoke
    device = "cpu" if smoke else args.device
    num_images, size, batch_size = (4, (160, 192), 2) if smoke else (32, (256, 320), 8)
    steps = args.steps if args.steps is not None else (1 if smoke else 20)
    out = args.out
    if out is None:
        out = (
            Path(tempfile.mkdtemp(prefix="augpatch_daa_"))
            if smoke
            else Path("detection_autoaugment_out")
        )
    start = time.perf_counter()
    torch.manual_seed(0)

    ann_file = write_coco(out / "coco", num_images, size)
    dataset = wrap_dataset_for_transforms_v2(
        CocoDetection(out / "coco" / "images", ann_file, transforms=v2.ToImage()),
        target_keys={"boxes", "labels", "image_id"},
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=0 if smoke else args.workers,
        collate_fn=collate_objects,  # workers only collate: the policy runs on the batch
        pin_memory=device != "cpu",
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(0),
    )
    augment = BatchAugment(
        DetectionAutoAugment("v1", generator=torch.Generator(device="cpu").manual_seed(0)),
        device=device,
    )
    # small inputs for the smoke run; the model's defaults (320 px) otherwise
    sizes = {"min_size": 160, "max_size": 192} if smoke else {}
    model = fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=2, **sizes
    ).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    step, losses, grid = 0, [], None
    while step < steps:
        for raw in loader:
            batch = augment(raw)  # the policy on the whole batch (on `device`)
            if grid is None:
                grid = draw({k: v for k, v in raw.items() if k != "keep"}, batch, count=4)
            images, targets = to_detection_inputs(batch)  # degenerate boxes dropped
            targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= steps:
                break
    png = out / "detection_autoaugment.png"
    v2.functional.to_pil_image(grid).save(png)
    print(
        f"detection autoaugment recipe: {num_images} COCO images of coins, {step} training "
        f"steps on {device} (loss {losses[0]:.3f} -> {losses[-1]:.3f}), wrote {png}, "
        f"{time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    main()
