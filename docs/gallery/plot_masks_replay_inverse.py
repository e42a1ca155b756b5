"""
Masks, keypoints, replay and the inverse
========================================

Targets follow their pixels: each coin's mask (nearest resampling) and a keypoint on it
move exactly as its pixels. The call's parameters replay bit for bit, and
``aug.inverse`` maps the result back (boxes and points exactly, the image lossily).
"""

import matplotlib.pyplot as plt
import torch
from _helpers import coins, show

from augpatch import RandomPatchAffine

image, boxes = coins()
H, W = image.shape[-2:]
# one mask per coin: the bright pixels inside its box
masks = torch.zeros(len(boxes), H, W, dtype=torch.bool)
for n, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
    masks[n, y1:y2, x1:x2] = image[0, 0, y1:y2, x1:x2] > 0.35
# one keypoint per coin, a quarter of the way into its box
keypoints = (boxes[:, None, :2] * 0.75 + boxes[:, None, 2:] * 0.25)  # [N, 1, 2]

aug = RandomPatchAffine(degrees=40, scale=(0.7, 1.0), p=1.0, padding_mode="image",
                        generator=torch.Generator().manual_seed(0))
res = aug(image, boxes, masks=masks, keypoints=keypoints)

# replay: the same parameters on the same batch give the same result, bit for bit
again = aug(image, boxes, masks=masks, keypoints=keypoints, params=aug._params)
assert torch.equal(again.images, res.images) and torch.equal(again.masks, res.masks)

# inverse: boxes and points come back (exactly wherever nothing was cut off)
back = aug.inverse(res.images, res.boxes, keypoints=res.keypoints)
print("largest keypoint error after the inverse:",
      float((back.keypoints - keypoints).abs().max()))

fig, axes = plt.subplots(2, 2, figsize=(11, 9))
axes[0, 0].imshow(show(image, boxes, "lime"))
axes[0, 0].scatter(keypoints[:, 0, 0], keypoints[:, 0, 1], c="red", s=8)
axes[0, 0].set_title("input, boxes and keypoints")
axes[0, 1].imshow(show(res.images, res.boxes))
axes[0, 1].scatter(res.keypoints[:, 0, 0], res.keypoints[:, 0, 1], c="red", s=8)
axes[0, 1].set_title("augmented: keypoints moved with their coin")
axes[1, 0].imshow(res.masks.any(0), cmap="gray")
axes[1, 0].set_title("the moved masks (union)")
axes[1, 1].imshow(show(back.images, back.boxes, "cyan"))
axes[1, 1].set_title("inverse (lossy image, exact boxes)")
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
plt.show()
