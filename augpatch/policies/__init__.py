"""Detection AutoAugment (Zoph et al., 2019) on whole batches: ``augpatch.policies``.

The learned augmentation policies for object detection of "Learning Data Augmentation
Strategies for Object Detection", with the ops that act only inside each bounding box
(``*_Only_BBoxes``) vectorised over every box of a batch, on any device. Needs
torchvision (its ``transforms.v2.functional`` kernels do the image-level ops).

* :class:`DetectionAutoAugment`: the transform (``policy="v0"`` .. ``"v3"`` or custom).
* :data:`POLICIES`: the reference's named policies; :data:`OPS`: every op with its level
  mapping (:func:`level_to_arg`); :data:`BBOX_ONLY_PROB_DIVISOR`: the ``prob / 3`` of the
  box-only ops.
* :func:`scale_aware_box_prob`: a per-box probability hook weighting boxes by area
  (scale-aware AutoAugment).
* :mod:`augpatch.policies.functional`: the box-level kernels (``equalize_boxes``,
  ``solarize_boxes``, ``fill_rects``, ``box_only_theta``, ...).

Example:
    >>> import torch
    >>> from augpatch.policies import DetectionAutoAugment, POLICIES
    >>> len(POLICIES["v0"]), len(POLICIES["v1"])
    (5, 20)
    >>> aug = DetectionAutoAugment("v0")
    >>> out = aug(torch.rand(2, 3, 32, 32), torch.tensor([[2.0, 2, 20, 20], [4, 4, 30, 16]]),
    ...           torch.tensor([0, 1]))
    >>> bool(out.images.min() >= 0 and out.images.max() <= 1)
    True
"""

from augpatch.policies import functional
from augpatch.policies._table import (
    BBOX_ONLY_PROB_DIVISOR,
    MAX_LEVEL,
    OPS,
    POLICIES,
    OpSpec,
    check_policy,
    level_to_arg,
)
from augpatch.policies.autoaugment import (
    BoxProbability,
    DetectionAutoAugment,
    ScaleAwareBoxProb,
    colour_channels,
    scale_aware_box_prob,
)

__all__ = [
    "BBOX_ONLY_PROB_DIVISOR",
    "MAX_LEVEL",
    "OPS",
    "POLICIES",
    "BoxProbability",
    "DetectionAutoAugment",
    "OpSpec",
    "ScaleAwareBoxProb",
    "check_policy",
    "colour_channels",
    "functional",
    "level_to_arg",
    "scale_aware_box_prob",
]
