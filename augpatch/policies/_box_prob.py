"""Per-box probability hooks of ``DetectionAutoAugment`` (``box_prob``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from augpatch.policies._table import BBOX_ONLY_PROB_DIVISOR

__all__ = ["BoxProbability", "ScaleAwareBoxProb", "scale_aware_box_prob"]

#: ``box_prob(op_name, prob [M], boxes [M, 4]) -> [M]``: the coin probability of each box
#: for a box-only op whose sub-policy probability is ``prob`` (per box).
BoxProbability = Callable[[str, Tensor, Tensor], Tensor]


def scale_aware_box_prob(
    weights: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    area_thresholds: Sequence[float] = (32.0**2, 96.0**2),
    divisor: float = BBOX_ONLY_PROB_DIVISOR,
) -> BoxProbability:
    """A ``box_prob`` hook that weights each box's probability by its area (SA-AutoAug).

    Scale-aware AutoAugment (Chen et al., CVPR 2021) gives small, medium and large
    objects different probabilities for the box-level ops. The returned hook gives a
    box of area ``a`` (pixels, after earlier ops) the probability
    ``clamp(prob / divisor * weights[bucket(a)], 0, 1)`` with COCO's buckets: small
    ``a < 32**2``, medium ``a < 96**2``, large otherwise.

    Args:
        weights: ``(small, medium, large)`` multipliers, non-negative.
        area_thresholds: the two bucket boundaries, in square pixels.
        divisor: the reference's ``prob / 3``.

    Example:
        >>> hook = scale_aware_box_prob((1.5, 1.0, 0.5))
        >>> hook("Rotate_Only_BBoxes", torch.tensor([0.6, 0.6]),
        ...      torch.tensor([[0.0, 0, 10, 10], [0, 0, 200, 200]]))
        tensor([0.3000, 0.1000])
    """
    return ScaleAwareBoxProb(weights, area_thresholds=area_thresholds, divisor=divisor)


class ScaleAwareBoxProb:
    """The picklable ``box_prob`` hook of :func:`scale_aware_box_prob` (SA-AutoAug).

    A module-level callable class (not a closure), so a ``DetectionAutoAugment`` holding
    it pickles, e.g. into ``DataLoader`` workers started with ``"spawn"``.

    Example:
        >>> import pickle
        >>> hook = pickle.loads(pickle.dumps(ScaleAwareBoxProb((2.0, 1.0, 1.0))))
        >>> hook("Rotate_Only_BBoxes", torch.tensor([0.3]), torch.tensor([[0.0, 0, 4, 4]]))
        tensor([0.2000])
    """

    def __init__(
        self,
        weights: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        area_thresholds: Sequence[float] = (32.0**2, 96.0**2),
        divisor: float = BBOX_ONLY_PROB_DIVISOR,
    ) -> None:
        w = [float(v) for v in weights]
        t = [float(v) for v in area_thresholds]
        if len(w) != 3 or any(v < 0 for v in w):
            raise ValueError(f"weights must be 3 non-negative numbers (small, medium, large), got {w}")
        if len(t) != 2 or not 0 <= t[0] <= t[1]:
            raise ValueError(f"area_thresholds must be 2 increasing areas, got {t}")
        if not divisor > 0:
            raise ValueError(f"divisor must be positive, got {divisor}")
        self.weights, self.area_thresholds, self.divisor = tuple(w), tuple(t), float(divisor)

    def __call__(self, op: str, prob: Tensor, boxes: Tensor) -> Tensor:
        t = self.area_thresholds
        area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
        bucket = (area >= t[0]).long() + (area >= t[1]).long()
        weight = torch.tensor(self.weights, dtype=prob.dtype, device=prob.device)[bucket]
        return (prob / self.divisor * weight).clamp(0, 1)

    def __repr__(self) -> str:
        return (f"ScaleAwareBoxProb({self.weights}, area_thresholds={self.area_thresholds}, "
                f"divisor={self.divisor})")
