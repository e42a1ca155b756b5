"""Per-object flips: each object mirrored inside its box (a scale ``-1`` about the box
centre along one axis); no parameter but ``p``. Moved out of ``affine.py`` unchanged
(``augpatch.transforms.affine`` re-exports them)."""

from __future__ import annotations

import torch
from torch import Tensor

import augpatch.functional as F
from augpatch.transforms.base import Params, PatchAugmentationBase

__all__ = ["RandomPatchHorizontalFlip", "RandomPatchVerticalFlip"]


class _PatchFlip(PatchAugmentationBase):
    """A flip: scale ``-1`` about each box centre along one axis; no parameters but ``p``."""

    _scale: tuple[float, float] = (1.0, 1.0)

    def compute_matrix(self, params: Params, patches: Tensor) -> Tensor:
        scale = torch.tensor(self._scale, dtype=patches.dtype, device=patches.device)
        return F.patch_affine_matrix(
            patches, scale=scale.expand(patches.shape[0], 2), align_corners=self.align_corners
        )


class RandomPatchHorizontalFlip(_PatchFlip):
    """Mirror each object left-right inside its box with probability ``p`` (default 0.5).

    Example:
        >>> aug = RandomPatchHorizontalFlip(p=1.0)
        >>> img = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> out, _ = aug(img, torch.tensor([[0, 0, 4, 4]]))
        >>> torch.equal(out, img.flip(-1))
        True
    """

    _scale = (-1.0, 1.0)


class RandomPatchVerticalFlip(_PatchFlip):
    """Mirror each object top-bottom inside its box with probability ``p`` (default 0.5).

    Example:
        >>> aug = RandomPatchVerticalFlip(p=1.0)
    """

    _scale = (1.0, -1.0)
