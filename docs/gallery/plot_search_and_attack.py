"""
Differentiable policy search and worst-case attacks
===================================================

Two short runs of the recipes' code: ``recipes/differentiable_search.py`` (a
:class:`~augpatch.search.PatchPolicy` learns to make upright glyphs look like the rotated,
scaled target glyphs for a critic; its curve is the critic's distance) and
``recipes/adversarial_training.py`` (:func:`~augpatch.search.attack` finds each object's
worst-case rotation and scale for a classifier).
"""

import matplotlib.pyplot as plt
import torch
from _helpers import recipes_on_path

recipes_on_path()
import adversarial_training as adv_recipe  # noqa: E402  (recipes/)
import differentiable_search as search_recipe  # noqa: E402

torch.manual_seed(0)
steps, warmup, batch, grid, patch = 16, 4, 2, 2, 16
s = search_recipe.build(patch, 2, 2, straight_through=False)
distances = search_recipe.run_search(
    s, steps, warmup, batch, grid, patch, torch.Generator().manual_seed(0), log=False
)
print(s.policy.describe(top=3))

# %%
# Worst case per object
# ---------------------
model = adv_recipe.train(False, 15, batch, grid, patch, seed=0)
images, boxes, o2i, labels = adv_recipe.make_batch(1, grid, patch, torch.Generator().manual_seed(99))
model.eval()
aug = adv_recipe.RandomPatchAffine(degrees=30.0, scale=(0.8, 1.2), p=1.0)
worst = adv_recipe.worst_case(model, aug, images, boxes, o2i, labels, steps=3)
attacked = aug(images, boxes, o2i, params=worst).images

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.6, 1, 1]})
axes[0].plot(distances)
axes[0].axvline(warmup, color="grey", linestyle="--", label="policy steps start")
axes[0].set_xlabel("step")
axes[0].set_ylabel("critic distance")
axes[0].legend()
axes[1].imshow(images[0, 0], cmap="gray")
axes[1].set_title("clean objects")
axes[2].imshow(attacked[0, 0].detach(), cmap="gray")
axes[2].set_title("worst case per object")
for ax in axes[1:]:
    ax.axis("off")
fig.tight_layout()
plt.show()
