"""Which cores the torchvision adapter calls through their hooks (private).

For a core whose call and box hooks are
:class:`~augpatch.transforms.PatchAugmentationBase`'s own, the adapter draws a call's
parameters once per sample (the core's ``forward_parameters``), builds the call the core's
``forward`` would build from them (the base's ``make_call``),
records it (the base's ``record_call``) and applies it to
each input through the core's ``apply_transform_*`` hooks: the same steps as the core's
``forward``, from the same methods (``tests/test_integrations_one_pass.py`` compares the
outputs and ``last_params`` bit for bit). This module holds the tests of when that
route is taken, and its warp of a PIL image in place (:func:`warp_pil_copy`).
"""

from __future__ import annotations

import functools
import platform
from typing import Any

import PIL.Image
import torch

from augpatch.integrations._torchvision_inputs import _pil_pixels
from augpatch.ops import compiled_ops
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
    either way) or ``RGB`` resampled ``nearest``, or ``bilinear`` where the CPU warp moves
    a 4-byte pixel's channels together (:func:`warps_whole_pixels`): there the padding
    channel costs the warp less than the two conversions it saves (a 640 x 480 sample's
    bilinear call 3.5 -> 2.9 ms); elsewhere a bilinear warp pays more for it."""
    kind = type(core)
    pure = _box_hooks_are_the_base(core) and all(
        getattr(kind, name) is getattr(PatchAugmentationBase, name)
        for name in ("apply_transform_image", "warp_objects", "_image_region")
    )
    if not pure or mode not in ("RGB", "RGBA"):
        return False
    return mode == "RGBA" or core.resample == "nearest" or (
        core.resample == "bilinear" and warps_whole_pixels())


@functools.cache
def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def warps_whole_pixels() -> bool:
    """Whether the CPU warp computes a channels-last uint8 pixel's 3 or 4 channels together
    in bilinear (the compiled kernel built for x86, whose SSE4.1 path
    ``bilinear_pixels_bytes`` does it): then 4 channels cost it no more than 3. The result
    is the same either way (every channel is warped on its own); only the cost differs."""
    return _x86() and compiled_ops(torch.device("cpu")) is not None


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


def warp_pil_copy(core: Any, image: PIL.Image.Image, hooks: Any) -> PIL.Image.Image | None:
    """The output PIL image of ``core``'s image hook on ``image``, warped in place: Pillow's
    copy of ``image`` (one ``memcpy``), its pixels warped where they lie (the hook's
    ``apply_transform_image(pixels, hooks, out=pixels)`` on the copy's own memory,
    :func:`~augpatch.integrations._torchvision_inputs._pil_pixels`); ``None`` where ``core``
    does not read Pillow's pixels (:func:`reads_pil_pixels`) or Pillow does not export the
    copy's memory (the caller then warps a tensor and decodes the result).

    The same pixels as warping ``image``'s and decoding the result into a new image (every
    channel is warped on its own; an ``RGB`` image's padding byte is not visible), without
    the warp's copy of the batch and the decode. Like that new image, the copy keeps none
    of ``image.info``."""
    if not reads_pil_pixels(core, image.mode):
        return None
    out = image.copy()
    pixels = _pil_pixels(out, batched=True)
    if pixels is None:
        return None
    out.info = {}
    core.apply_transform_image(pixels, hooks, out=pixels)
    return out
