"""Recipe: augpatch in an albumentations ``A.Compose`` (numpy HWC images).

Per-object affines next to albumentations' own transforms, any bbox format with
label fields, masks and keypoints, a seeded (reproducible) pipeline, a replay and
the timing against ``A.Affine`` on the same image.

    python recipes/albumentations_pipeline.py           # more images, bigger
    python recipes/albumentations_pipeline.py --smoke   # seconds, CPU

Needs ``pip install 'augpatch[albumentations]'``.
"""

from __future__ import annotations

import argparse
import json

import albumentations as A
import numpy as np

from augpatch.bench.adapters import albumentations_per_image
from augpatch.integrations.albumentations import RandomPatchAffine, RandomPatchHorizontalFlip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds, CPU)")
    args = parser.parse_args()
    count, size = (2, 64) if args.smoke else (100, 512)

    pipeline = A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            RandomPatchAffine(degrees=15, translate=0.1, scale=(0.8, 1.2), p=0.9, p_object=0.7),
            RandomPatchHorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(p=0.3),
        ],
        bbox_params=A.BboxParams(format="coco", label_fields=["labels"], min_area=4.0),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=137,
    )
    rng = np.random.default_rng(0)
    kept = 0
    for _ in range(count):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        xy = rng.uniform(0, size / 2, (4, 2))
        wh = rng.uniform(size / 10, size / 3, (4, 2))
        bboxes = np.concatenate([xy, wh], 1)  # coco: x, y, w, h
        labels = ["car", "person", "dog", "bike"]
        mask = np.zeros((size, size), np.uint8)
        out = pipeline(image=image, bboxes=bboxes, labels=labels, mask=mask, keypoints=xy + wh / 2)
        assert len(out["bboxes"]) == len(out["labels"])
        kept += len(out["bboxes"])

    # serialisation: every init argument survives a JSON round trip
    restored = A.from_dict(json.loads(json.dumps(A.to_dict(pipeline))))
    assert type(restored.transforms[1]).__name__ == "RandomPatchAffine"

    repeats, warmup = (1, 0) if args.smoke else (20, 3)
    # the albumentations case of `python -m augpatch bench adapters` (512 x 512, 8 boxes;
    # --smoke: its quick size), both calls interleaved
    timing = albumentations_per_image(repeats=repeats, warmup=warmup, quick=args.smoke)
    print(
        f"albumentations recipe: {count} images, {kept} boxes kept; per image "
        f"augpatch {timing['augpatch_ms']:.2f} ms vs "
        f"A.Affine {timing['albumentations_affine_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
