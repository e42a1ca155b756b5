"""Per-object affine matrices and the mapping of boxes and points (STUB: being written)."""

from __future__ import annotations

from torch import Tensor


def patch_affine_matrix(boxes: Tensor, angle: Tensor | float | None = None, translate: Tensor | None = None,
                        scale: Tensor | float | None = None, shear: Tensor | None = None, *,
                        align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def pixel_matrix_to_theta(matrix: Tensor, boxes: Tensor, *, align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def theta_to_pixel_matrix(theta: Tensor, boxes: Tensor, *, align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def transform_boxes(boxes: Tensor, theta: Tensor, *, clip: bool = True, canvas_size: tuple[int, int] | None = None,
                    align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def inverse_transform_boxes(boxes_out: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def transform_points(points: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False) -> Tensor:
    raise NotImplementedError


def inverse_transform_points(points: Tensor, patches: Tensor, theta: Tensor, *, align_corners: bool = False) -> Tensor:
    raise NotImplementedError
