"""
A per-object spatial transformer
================================

The question augpatch grew out of: a localisation network predicts every object's
``theta`` from its patch, and :func:`~augpatch.functional.warp_patches` straightens all of
them in the forward pass, differentiably. A short run of ``recipes/stn_per_object.py``
(its functions, fewer steps): the training curve and the result on held-out scenes.
"""

import matplotlib.pyplot as plt
import torch
from _helpers import recipes_on_path

recipes_on_path()
from stn_per_object import Localiser, make_scenes, straighten  # noqa: E402  (recipes/)

torch.manual_seed(0)
steps, batch, grid, patch, max_deg = 30, 2, 3, 16, 45.0
g = torch.Generator().manual_seed(0)
test = make_scenes(batch, grid, patch, max_deg, torch.Generator().manual_seed(10_000))
net = Localiser(patch)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)


def test_loss() -> float:
    images, targets, boxes, o2i = test
    with torch.no_grad():
        return float((straighten(net, images, boxes, o2i, patch) - targets).square().mean())


curve = [test_loss()]
for step in range(steps):
    images, targets, boxes, o2i = make_scenes(batch, grid, patch, max_deg, g)
    loss = (straighten(net, images, boxes, o2i, patch) - targets).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (step + 1) % 5 == 0:
        curve.append(test_loss())
print(f"test loss {curve[0]:.5f} -> {curve[-1]:.5f} in {steps} steps")

images, targets, boxes, o2i = test
with torch.no_grad():
    fixed = straighten(net, images, boxes, o2i, patch)
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [1.4, 1, 1, 1]})
axes[0].plot(range(0, steps + 1, 5), curve, marker="o")
axes[0].set_xlabel("step")
axes[0].set_ylabel("test loss")
axes[0].set_title("training curve")
for ax, img, title in zip(axes[1:], (images, fixed, targets), ("input", "straightened", "target")):
    ax.imshow(img[0, 0], cmap="gray")
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
plt.show()
