"""The torchvision adapter's warp of a PIL image in place (Pillow's copy, warped where it lies).

The new route gives the old route's bytes (the warp of Pillow's pixels decoded into a new
image) and the tensor route's (the same sample as a uint8 ``Image``), for ``nearest`` and
``bilinear``, ``RGB`` / ``RGBA`` / ``L``; boxes, masks and keypoints are unchanged by it,
and the input image is never modified.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from augpatch.integrations._torchvision_call import reads_pil_pixels, warp_pil_copy
from augpatch.integrations._torchvision_inputs import _pil_pixels, _tensor_pil
from augpatch.integrations.torchvision import RandomPatchAffine

H, W = 48, 64
BANDS = {"RGB": 3, "RGBA": 4, "L": 1}


def _sample(mode: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (H, W, BANDS[mode]), dtype=np.uint8)
    image = PIL.Image.fromarray(array[..., 0] if mode == "L" else array, mode)
    image.info["note"] = "kept on the input only"
    boxes = [[2, 3, 30, 25], [10, 10, 45, 38], [40, 5, 63, 40], [20, 20, 34, 46]]
    masks = torch.zeros(len(boxes), H, W, dtype=torch.uint8)
    for n, (x1, y1, x2, y2) in enumerate(boxes):
        masks[n, y1:y2, x1:x2] = 1
    points = torch.tensor([[[x1 + 1.0, y1 + 2.0], [x2 - 3.0, y2 - 1.0]] for x1, y1, x2, y2 in boxes])
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(H, W)),
        "masks": tv_tensors.Mask(masks),
        "keypoints": tv_tensors.KeyPoints(points, canvas_size=(H, W)),
        "labels": torch.arange(len(boxes)),
    }
    return image, target


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_pil_output_equals_the_tensor_route_and_targets_follow(mode, resample):
    image, target = _sample(mode)
    before = image.tobytes()
    t = RandomPatchAffine(degrees=40.0, scale=(0.7, 1.3), p=1.0, resample=resample,
                          generator=torch.Generator().manual_seed(1))
    out, out_target = t(image, target)
    assert isinstance(out, PIL.Image.Image) and out.mode == mode and out.size == image.size
    assert out.info == {} and image.tobytes() == before  # a new image; the input as it was
    tensor = tv_tensors.Image(TF.pil_to_tensor(image))
    ref, ref_target = t(tensor, target, params=t.last_params)
    assert np.array_equal(np.asarray(out).reshape(H, W, -1), ref.permute(1, 2, 0).numpy())
    assert not np.array_equal(np.asarray(out), np.asarray(image))  # the objects moved
    for key in ("boxes", "masks", "keypoints", "labels"):
        assert torch.equal(out_target[key], ref_target[key]), key


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_in_place_route_gives_the_old_routes_bytes(mode, resample):
    """``warp_pil_copy`` (where the core reads Pillow's pixels) against the route it
    replaces: the hook on Pillow's pixels, the result decoded into a new image."""
    image, target = _sample(mode, seed=2)
    t = RandomPatchAffine(degrees=40.0, scale=(0.7, 1.3), p=1.0, resample=resample,
                          generator=torch.Generator().manual_seed(5))
    params = t.make_params([image, target["boxes"]])
    hooks = params["hooks"]
    warped = warp_pil_copy(t.core, image, hooks)
    if not reads_pil_pixels(t.core, mode):
        assert warped is None  # RGB bilinear where the warp does not move whole pixels
        return
    pixels = _pil_pixels(image, batched=True)
    old = _tensor_pil(t.core.apply_transform_image(pixels, hooks)[0], mode)
    assert warped is not None and warped.tobytes() == old.tobytes()
    assert t(image, target, params=t.last_params)[0].tobytes() == old.tobytes()


def test_in_place_route_on_an_image_without_moved_objects():
    """Coins all no: the output is a copy with the input's bytes (not the input itself)."""
    image, target = _sample("RGB")
    t = RandomPatchAffine(degrees=40.0, p=0.0, resample="nearest")
    out, out_target = t(image, target)
    assert out is not image and out.tobytes() == image.tobytes()
    assert torch.equal(out_target["boxes"], target["boxes"])
