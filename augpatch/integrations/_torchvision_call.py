"""The torchvision adapter's call through the core's hooks (private).

For a core whose call and box hooks are
:class:`~augpatch.transforms.PatchAugmentationBase`'s own, what the core's ``forward``
computes from a call's parameters is computed once per call here: its
:class:`~augpatch.transforms.pipeline.PatchCall` (each image is then warped by the core's
``apply_transform_image`` hook alone, as the core's ``forward`` does, without that call's
argument checks, box bookkeeping and result), the moved boxes, and the core's record of
the call (``_params``, with ``keep``). The same values bit for bit
(``tests/test_integrations_one_pass.py`` compares with the core's own call).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from augpatch.functional.checks import host_arithmetic
from augpatch.integrations._common import identity_objects
from augpatch.transforms import PatchAugmentationBase
from augpatch.transforms.pipeline import PatchCall, keep_mask

#: the keys the core's ``forward`` sets itself in its record of a call
_CALL_KEYS = ("patches", "obj_to_img", "keep")


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


def core_hooks_call(core: Any, p: dict[str, Any], boxes: Tensor, obj_to_img: Tensor) -> dict[str, Any]:
    """What ``core``'s ``forward`` computes from the call's parameters ``p`` (those of its
    ``forward_parameters``) for ``boxes [N, 4]`` xyxy as given and ``obj_to_img [N]``:

    ``{"hooks": PatchCall, "moved_boxes": [N, 4]}``: the call that ``forward`` hands to its
    ``apply_transform_*`` hooks, and ``move_object_boxes`` of the boxes as given (an
    applied object's moved envelope, the box itself elsewhere: what the adapter returns).
    Also stores the core's record of the call (``core._params``) as its ``forward`` does.
    ``{}`` for parameters that its ``forward`` would turn into others (a relaxed gate,
    another dtype): the core's own call runs then. ``core``: see
    :func:`_box_hooks_are_the_base`.
    """
    theta, applied, patches = p["theta"], p["batch_prob"], p["patches"]
    if applied.dtype != torch.bool or theta.dtype != patches.dtype or "gate" in p:
        return {}
    moved = core.move_object_boxes(boxes, patches, theta, applied)
    if host_arithmetic(theta, patches, moved) and applied.device.type == "cpu":
        # a few objects: PatchCall.make's identity test and the keep's selection in NumPy
        import numpy as np

        # (keep_mask's two differences and comparisons on the arrays: the same float
        # operations, the threshold in the boxes' dtype as torch compares with it)
        changed = applied.numpy() & ~identity_objects(theta.numpy())
        hooks = PatchCall(theta, applied, torch.from_numpy(changed), patches, obj_to_img, boxes)
        seen = np.where(changed[:, None], moved.numpy(), patches.numpy())
        keep = torch.from_numpy(np.asarray(keep_mask(seen)))
    else:
        hooks = PatchCall.make(theta, applied, patches, obj_to_img, None, boxes)
        keep = keep_mask(torch.where(hooks.moved[:, None], moved, patches))
    stored = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in p.items()
              if k not in _CALL_KEYS}
    stored.update(patches=patches.detach(), obj_to_img=obj_to_img, keep=keep)
    core._params = stored
    return {"hooks": hooks, "moved_boxes": moved}
