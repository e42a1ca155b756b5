"""
Detection AutoAugment policies
==============================

The learned policies of Zoph et al. (2019), ``v0`` to ``v3``, on a batch of copies of the
coins photograph: each image draws its own sub-policy; the box-only ops act inside every
box at once. A short version of ``recipes/detection_autoaugment.py`` (which also trains a
detector on the result).
"""

import matplotlib.pyplot as plt
import torch
from _helpers import coins, show

from augpatch.policies import DetectionAutoAugment

image, boxes = coins()
uint8 = image.mul(255).round().to(torch.uint8)
B = 3
images = uint8.repeat(B, 1, 1, 1)
all_boxes = boxes.repeat(B, 1)
obj_to_img = torch.arange(B).repeat_interleave(len(boxes))

fig, axes = plt.subplots(4, B, figsize=(13, 11))
for row, name in enumerate(["v0", "v1", "v2", "v3"]):
    aug = DetectionAutoAugment(name, generator=torch.Generator().manual_seed(row))
    out = aug(images, all_boxes, obj_to_img)
    for b in range(B):
        mine = obj_to_img == b
        axes[row, b].imshow(show(out.images[b].float() / 255, out.boxes[mine]))
        axes[row, b].set_title(f"{name}, image {b}", fontsize=9)
        axes[row, b].axis("off")
fig.tight_layout()
plt.show()

# %%
# A custom policy
# ---------------
#
# A policy is a list of sub-policies, each a list of ``(op, probability, level)``; with
# ``move_boxes=True`` the box-only geometric ops move the boxes with their content.
policy = [[("Rotate_Only_BBoxes", 1.0, 8), ("Equalize_Only_BBoxes", 1.0, 10)]]
aug = DetectionAutoAugment(policy, bbox_prob_divisor=1.0, move_boxes=True,
                           generator=torch.Generator().manual_seed(0))
out = aug(uint8, boxes)
plt.figure(figsize=(7, 5.6))
plt.imshow(show(out.images[0].float() / 255, out.boxes))
plt.axis("off")
plt.title("Rotate_Only_BBoxes + Equalize_Only_BBoxes")
plt.show()
