"""warp_patches (STUB: being written)."""

from __future__ import annotations

from torch import Tensor


def warp_patches(images: Tensor, boxes, theta: Tensor, obj_to_img: Tensor | None = None, *,
                 mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool = False,
                 overlap: str = "sequential") -> Tensor:
    raise NotImplementedError
