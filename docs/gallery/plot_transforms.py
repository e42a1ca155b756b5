"""
Every transform on the coins
============================

Each of the 24 coins of the embedded photograph gets its **own** random parameters, and
all of them are applied in one vectorised :func:`~augpatch.functional.warp_patches` call
per transform. Yellow: each coin's new box (clipped to its patch).
"""

import matplotlib.pyplot as plt
import torch
from _helpers import coins, show

from augpatch import (
    PatchSequential,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchShear,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
)

image, boxes = coins()
transforms = {
    "RandomPatchRotation(45)": RandomPatchRotation(45, p=1.0),
    "padding_mode='image'": RandomPatchRotation(45, p=1.0, padding_mode="image"),
    "RandomPatchScale((0.5, 0.9))": RandomPatchScale((0.5, 0.9), p=1.0),
    "RandomPatchShear(25)": RandomPatchShear(25, p=1.0),
    "RandomPatchTranslate(0.3)": RandomPatchTranslate(0.3, p=1.0, padding_mode="image"),
    "RandomPatchHorizontalFlip()": RandomPatchHorizontalFlip(p=1.0),
    "RandomPatchVerticalFlip()": RandomPatchVerticalFlip(p=1.0),
    "RandomPatchAffine(..., p=0.5)": RandomPatchAffine(
        degrees=30, translate=0.1, scale=(0.7, 1.0), shear=10, p=0.5
    ),
    "PatchSequential(rotate, flip)": PatchSequential(
        RandomPatchRotation(30, p=1.0), RandomPatchHorizontalFlip(p=0.5)
    ),
}

fig, axes = plt.subplots(4, 3, figsize=(12, 12.5))
axes = axes.ravel()
axes[0].imshow(show(image, boxes, "lime"))
axes[0].set_title("original")
for ax, (title, aug) in zip(axes[1:], transforms.items()):
    torch.manual_seed(0)
    out, new_boxes = aug(image, boxes)
    ax.imshow(show(out, new_boxes))
    ax.set_title(title, fontsize=10)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# Parameters of the last call
# ---------------------------
#
# Every call keeps its (detached) parameters in ``aug._params``: the human parameters, the
# applied ``theta [N, 2, 3]`` and the coin of each object. ``p=0.5`` above left about
# half of the coins untouched, bit for bit.
aug = transforms["RandomPatchAffine(..., p=0.5)"]
print({k: tuple(v.shape) for k, v in aug._params.items() if torch.is_tensor(v)})
print("objects transformed:", int(aug._params["batch_prob"].sum()), "of", len(boxes))
