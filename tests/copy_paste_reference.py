"""The oracle of ``RandomCopyPaste``: torchvision's ``references/detection`` ``SimpleCopyPaste`` logic.

Re-implemented here from the reference's algorithm (``_copy_paste`` in torchvision's
``references/detection/transforms.py``; written anew, not copied), for one destination
image and its paste image, with the random selection passed in:

1. the pasted objects are the selected objects of the paste image (masks, boxes, labels);
2. the paste alpha is the union of their masks (with ``blending``: blurred, Gaussian
   kernel 5, sigma 2);
3. ``image * (1 - alpha) + paste_image * alpha``;
4. the destination's masks lose the alpha's pixels; objects left with an empty mask are
   removed; their boxes are recomputed from the masks (``masks_to_boxes``, ``+1`` on
   ``x2, y2`` as the reference's v2 form does, since boxes are half-open);
5. masks, boxes and labels are the destination's remaining ones followed by the pasted
   ones; objects with a degenerate box are removed.

One difference from the reference as written: its ``gaussian_blur`` of the *bool* union
mask comes back as bool (nonzero -> True), i.e. a 2-pixel dilation, not a soft edge.
The oracle blurs a float mask (the paper's soft edge), which is what ``sigma`` does.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import masks_to_boxes
from torchvision.transforms import functional as TF


def reference_copy_paste(
    image: Tensor, target: dict[str, Tensor], paste_image: Tensor, paste_target: dict[str, Tensor],
    selection: Tensor, *, blending: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    if paste_target["masks"].shape[0] == 0 or selection.numel() == 0:
        return image, target
    paste_masks = paste_target["masks"][selection]
    paste_boxes = paste_target["boxes"][selection]
    paste_labels = paste_target["labels"][selection]
    alpha = (paste_masks.sum(0) > 0).to(image.dtype)
    if blending:
        alpha = TF.gaussian_blur(alpha[None], kernel_size=[5, 5], sigma=[2.0])[0]
    out_image = image * (1 - alpha) + paste_image * alpha
    covered = alpha > 0
    masks = target["masks"] * ~covered
    nonempty = masks.flatten(1).any(1)
    masks = masks[nonempty]
    boxes = masks_to_boxes(masks)
    boxes[:, 2:] += 1
    out = {
        "masks": torch.cat([masks, paste_masks]),
        "boxes": torch.cat([boxes, paste_boxes.to(boxes.dtype)]),
        "labels": torch.cat([target["labels"][nonempty], paste_labels]),
    }
    valid = (out["boxes"][:, 2:] > out["boxes"][:, :2]).all(1)
    return out_image, {k: v[valid] for k, v in out.items()}


def reference_simple_copy_paste(
    images: list[Tensor], targets: list[dict[str, Tensor]], selections: list[Tensor], *, blending: bool = False,
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """The batch form: image ``i`` takes its objects from image ``i - 1`` (the list rolled by one)."""
    rolled_images = images[-1:] + images[:-1]
    rolled_targets = targets[-1:] + targets[:-1]
    outs = [reference_copy_paste(im, t, pim, pt, sel, blending=blending)
            for im, t, pim, pt, sel in zip(images, targets, rolled_images, rolled_targets, selections)]
    return [o[0] for o in outs], [o[1] for o in outs]
