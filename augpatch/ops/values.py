"""What the operators compute in, and the value checks they run on real tensors.

The public functions (``augpatch.functional``) check their arguments' shapes and types;
values (NaN, image indices) are checked here, inside the operator, where the tensors are
real also under ``torch.compile`` / ``torch.export``. This module imports nothing of
augpatch (``augpatch.functional._checks`` builds on it).
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_dtype(*inputs: object) -> torch.dtype:
    """The floating dtype augpatch computes in: float64 if any input is float64, else
    float32 (float16 / bfloat16 / uint8 / integer inputs are computed in float32).

    Each input is a tensor or a ``torch.dtype`` (e.g. a warp computes in
    ``compute_dtype(images.dtype)``; geometry in ``compute_dtype(boxes, theta)``); anything
    else (``None``, numbers) is ignored.

    Example:
        >>> compute_dtype(torch.zeros(1, dtype=torch.uint8), torch.zeros(1, dtype=torch.float64))
        torch.float64
        >>> compute_dtype(torch.float16)
        torch.float32
    """
    for x in inputs:
        dtype = x.dtype if isinstance(x, Tensor) else x
        if dtype == torch.float64:
            return torch.float64
    return torch.float32


def check_image_index(name: str, index: Tensor, size: int) -> None:
    """Raise ``IndexError`` if the (real, non-empty) ``index`` holds a value outside ``[0, size)``.

    Example:
        >>> check_image_index("obj_to_img", torch.tensor([0, 2]), 2)
        Traceback (most recent call last):
        ...
        IndexError: obj_to_img holds image index 2, but the batch has 2 images
    """
    lo, hi = int(index.min()), int(index.max())
    if lo < 0:
        raise IndexError(f"{name} holds a negative image index ({lo})")
    if hi >= size:
        raise IndexError(f"{name} holds image index {hi}, but the batch has {size} images")
