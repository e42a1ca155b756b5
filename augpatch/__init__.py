"""augpatch: per-object, differentiable affine augmentation of images in PyTorch."""

from augpatch import functional, search, transforms
from augpatch.transforms import (
    PatchAffine,
    PatchAugmentationBase,
    PatchResult,
    PatchSequential,
    RandomCopyPaste,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchShear,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
    params_from_json,
    params_to_dict,
    params_to_json,
)

__version__ = "0.1.0"

__all__ = [
    "functional",
    "search",
    "transforms",
    "__version__",
    "PatchAffine",
    "PatchAugmentationBase",
    "PatchResult",
    "PatchSequential",
    "RandomCopyPaste",
    "RandomPatchAffine",
    "RandomPatchHorizontalFlip",
    "RandomPatchRotation",
    "RandomPatchScale",
    "RandomPatchShear",
    "RandomPatchTranslate",
    "RandomPatchVerticalFlip",
    "params_from_json",
    "params_to_dict",
    "params_to_json",
]
