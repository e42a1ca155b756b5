"""Pure, stateless, differentiable kernels of augpatch.

The exact semantics are those of the project's SPEC (see the documentation's guide
"Conventions", ``docs/guides/conventions.md``): pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``, boxes are ``xyxy`` in those continuous coordinates, and
``theta`` follows the ``F.affine_grid`` convention in each object's normalised patch
coordinates (it maps an output location to the location it is read from).
"""

from augpatch.functional._boxes import (
    boxes_to_list,
    boxes_to_padded,
    clip_boxes,
    clip_boxes_to_images,
    convert_box_format,
    list_to_boxes,
    padded_to_boxes,
)
from augpatch.functional._fill import warp_patches_fill
from augpatch.functional._masks import warp_masks
from augpatch.functional._warp import warp_patches
from augpatch.functional.geometry import (
    inverse_transform_boxes,
    inverse_transform_points,
    patch_affine_matrix,
    pixel_matrix_to_theta,
    theta_to_pixel_matrix,
    transform_boxes,
    transform_points,
)
from augpatch.functional.paste import paste_objects
from augpatch.ops.settings import (
    active_kernel,
    cpu_kernel,
    cuda_kernel,
    set_cpu_kernel,
    set_cuda_kernel,
)

__all__ = [
    "active_kernel",
    "boxes_to_list",
    "boxes_to_padded",
    "clip_boxes",
    "clip_boxes_to_images",
    "convert_box_format",
    "cpu_kernel",
    "cuda_kernel",
    "inverse_transform_boxes",
    "inverse_transform_points",
    "list_to_boxes",
    "padded_to_boxes",
    "paste_objects",
    "patch_affine_matrix",
    "pixel_matrix_to_theta",
    "set_cpu_kernel",
    "set_cuda_kernel",
    "theta_to_pixel_matrix",
    "transform_boxes",
    "transform_points",
    "warp_masks",
    "warp_patches",
    "warp_patches_fill",
]
