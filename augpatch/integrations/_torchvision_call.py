"""Which cores the torchvision adapter calls through their hooks (private).

For a core whose call and box hooks are
:class:`~augpatch.transforms.PatchAugmentationBase`'s own, the adapter draws a call's
parameters once per sample (the core's ``forward_parameters``), builds the call the core's
``forward`` would build from them (the base's ``make_call``),
records it (the base's ``record_call``) and applies it to
each input through the core's ``apply_transform_*`` hooks: the same steps as the core's
``forward``, from the same methods (``tests/test_integrations_one_pass.py`` compares the
outputs and ``last_params`` bit for bit). This module holds only the tests of when that
route is taken.
"""

from __future__ import annotations

from typing import Any

import torch

from augpatch.transforms import PatchAugmentationBase


def _parses_its_boxes(core: Any) -> bool:
    """Whether ``core.forward_parameters`` is :class:`PatchAugmentationBase`'s own, which
    checks its ``boxes`` and ``obj_to_img`` (``parse_boxes``) and fills ``obj_to_img`` in."""
    return isinstance(core, PatchAugmentationBase) and (
        type(core).forward_parameters is PatchAugmentationBase.forward_parameters
    )


def _box_hooks_are_the_base(core: Any) -> bool:
    """Whether ``core``'s call and box hooks are :class:`PatchAugmentationBase`'s own: its
    result's boxes are then the moved envelope where an object moved (see ``_moved_boxes``)."""
    kind = type(core)
    return isinstance(core, PatchAugmentationBase) and all(
        getattr(kind, name) is getattr(PatchAugmentationBase, name)
        for name in ("forward", "apply_transform_box", "move_object_boxes", "replay_parameters")
    )


def reads_pil_pixels(core: Any, mode: str) -> bool:
    """Whether a PIL image of ``mode`` goes to ``core`` as Pillow's own memory
    (:func:`~augpatch.integrations._torchvision_inputs._pil_pixels`: 4 channels, no copy)
    rather than converted (``RGB``: 3 channels, one copy). For a core whose call and image
    hooks are :class:`PatchAugmentationBase`'s (a warp: every channel on its own, so the
    image's channels come out as the converted image's would) and ``RGBA`` (4 channels
    either way) or ``RGB`` resampled ``nearest`` (there a padding channel costs the warp
    less than the two conversions it saves; a bilinear warp pays more for it)."""
    kind = type(core)
    pure = _box_hooks_are_the_base(core) and all(
        getattr(kind, name) is getattr(PatchAugmentationBase, name)
        for name in ("apply_transform_image", "warp_objects", "_image_region")
    )
    return pure and (mode == "RGBA" or (mode == "RGB" and core.resample == "nearest"))


def takes_hooks(core: Any, p: dict[str, Any]) -> bool:
    """Whether ``core``'s call with parameters ``p`` (those of its ``forward_parameters``)
    runs through its hooks: the call and box hooks are the base's
    (:func:`_box_hooks_are_the_base`) and ``p`` is what its ``forward`` would hand them
    unchanged (bool coins, no relaxed gate, ``theta`` in the patches' dtype); otherwise the
    core's own call runs per image (``PatchSequential``, ``DetectionAutoAugment``, a
    learnable ``p`` in training)."""
    if not _box_hooks_are_the_base(core):
        return False
    theta, applied, patches = p["theta"], p["batch_prob"], p["patches"]
    return applied.dtype == torch.bool and theta.dtype == patches.dtype and "gate" not in p
