"""Per-object augmentation modules (``torch.nn.Module``), Kornia/torchvision style.

Every transform is called as ``aug(images, boxes, obj_to_img=None, *, masks=None,
image_masks=None, keypoints=None, params=None)`` and returns a :class:`PatchResult`
``(images, boxes)`` carrying ``.masks``, ``.image_masks``, ``.keypoints``, ``.keep``
and ``.params``. The parameters of the last call are kept in ``aug._params`` and can
be replayed (``params=aug._params``), saved with ``torch.save`` or
:func:`params_to_json`, and inverted with ``aug.inverse(...)``.
"""

from augpatch.transforms._result import PatchResult
from augpatch.transforms._serialize import params_from_json, params_to_dict, params_to_json
from augpatch.transforms.affine import (
    PatchAffine,
    RandomPatchAffine,
    RandomPatchHorizontalFlip,
    RandomPatchRotation,
    RandomPatchScale,
    RandomPatchShear,
    RandomPatchTranslate,
    RandomPatchVerticalFlip,
)
from augpatch.transforms.base import PatchAugmentationBase
from augpatch.transforms.container import PatchSequential
from augpatch.transforms.copy_paste import RandomCopyPaste

__all__ = [
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
