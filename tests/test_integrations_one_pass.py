"""The adapters' per-sample fast paths give what the plain core calls give, bit for bit.

The torchvision adapter converts a PIL image once per call and lets the boxes reuse the
core's own moved boxes of the first image; the albumentations adapter warps through the
core's image hook without the core's box bookkeeping. Each case is checked against the
core called directly with the same parameters (the adapters' earlier code path).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

tv = pytest.importorskip("torchvision")
A = pytest.importorskip("albumentations")

from PIL import Image  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

import augpatch.integrations.albumentations as AA  # noqa: E402
import augpatch.integrations.torchvision as AT  # noqa: E402
import augpatch.transforms as T  # noqa: E402

H, W = 36, 44
# the 2nd box leaves the canvas (its patch is clipped), the 4th is one pixel wide
BOXES = torch.tensor([[3.0, 4.0, 19.0, 18.0], [30.0, 20.0, 50.0, 41.0],
                      [6.0, 22.0, 20.0, 33.0], [25.0, 5.0, 26.0, 15.0]])


def _adapters() -> dict[str, AT.PatchTransform]:
    return {
        "affine_some_objects": AT.RandomPatchAffine(degrees=30.0, scale=(0.7, 1.2), p=0.5),
        "nearest": AT.RandomPatchAffine(degrees=30.0, scale=(0.7, 1.2), p=1.0, resample="nearest"),
        "flip": AT.RandomPatchHorizontalFlip(p=1.0),
        "identity_theta": AT.PatchAffine(angle=0.0),  # applied, exactly the identity
        "no_object_applied": AT.RandomPatchRotation(20.0, p=0.0),
        "sequential_core": AT.PatchTransform(
            T.PatchSequential(T.RandomPatchRotation(25.0, p=1.0), T.RandomPatchScale((0.6, 0.9)))
        ),
    }


def _image(kind: str, g: torch.Generator) -> object:
    pixels = torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=g)
    if kind == "pil":
        return Image.fromarray(pixels.permute(1, 2, 0).numpy())
    if kind == "uint8":
        return tv_tensors.Image(pixels)
    return tv_tensors.Image(pixels.to(torch.float64) / 255)


@pytest.mark.parametrize("name", list(_adapters()))
@pytest.mark.parametrize("kind", ["pil", "uint8", "float64"])
@pytest.mark.parametrize("fmt, dtype", [("XYXY", torch.float32), ("CXCYWH", torch.float64),
                                        ("XYWH", torch.int64)])
def test_torchvision_adapter_equals_the_core_called_directly(name, kind, fmt, dtype) -> None:
    g = torch.Generator().manual_seed(3)
    image = _image(kind, g)
    data = TF.convert_bounding_box_format(BOXES, old_format="XYXY", new_format=fmt)
    boxes = tv_tensors.BoundingBoxes(data.round().to(dtype) if not dtype.is_floating_point
                                     else data.to(dtype), format=fmt, canvas_size=(H, W))
    t = _adapters()[name]
    torch.manual_seed(5)
    out_image, out = t(image, {"boxes": boxes, "labels": torch.arange(4)})
    p = t.last_params
    # the core called directly with the same parameters, as the adapter did before
    batch = (TF.pil_to_tensor(image) if kind == "pil" else image.as_subclass(torch.Tensor))[None]
    xyxy = TF.convert_bounding_box_format(boxes.as_subclass(torch.Tensor), old_format=fmt,
                                          new_format="XYXY")
    want_image = t.core(batch, xyxy, params=p).images[0]
    got_image = TF.pil_to_tensor(out_image) if kind == "pil" else out_image.as_subclass(torch.Tensor)
    assert torch.equal(got_image, want_image)
    moved = t.core.move_object_boxes(xyxy, p["patches"], p["theta"], p["batch_prob"])
    want = TF.convert_bounding_box_format(moved, old_format="XYXY", new_format=fmt)
    want = want.to(dtype) if dtype.is_floating_point else want.round().to(dtype)
    assert out["boxes"].dtype == dtype and out["boxes"].format.name == fmt
    assert torch.equal(out["boxes"].as_subclass(torch.Tensor), want)
    # the v2 contract (make_params, then transform per input) gives the same, in any order
    flat = [boxes, image]
    params = t.make_params(flat, replay=p)
    again_boxes, again_image = (t.transform(x, params) for x in flat)
    assert torch.equal(again_boxes.as_subclass(torch.Tensor), want)
    again = TF.pil_to_tensor(again_image) if kind == "pil" else again_image.as_subclass(torch.Tensor)
    assert torch.equal(again, want_image)


def test_boxes_before_the_image_in_the_sample_and_two_images() -> None:
    """The boxes may come first in the flattened sample; every image gets its own result."""
    g = torch.Generator().manual_seed(0)
    first, second = _image("uint8", g), _image("uint8", g)
    boxes = tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(H, W))
    t = AT.RandomPatchAffine(degrees=25.0, p=1.0)
    out_boxes, out_first, out_second = t(boxes, first, second)
    p = t.last_params
    for image, out_image in ((first, out_first), (second, out_second)):
        want = t.core(image.as_subclass(torch.Tensor)[None], BOXES, params=p).images[0]
        assert torch.equal(out_image.as_subclass(torch.Tensor), want)
    want_boxes = t.core.move_object_boxes(BOXES, p["patches"], p["theta"], p["batch_prob"])
    assert torch.equal(out_boxes.as_subclass(torch.Tensor), want_boxes)
    assert not torch.equal(out_first, out_second)


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 3), (np.float32, 3), (np.float64, 0),
                                             (np.uint8, 1)])
@pytest.mark.parametrize("p_object", [1.0, 0.5])
def test_albumentations_image_equals_the_core_call(dtype, channels, p_object) -> None:
    rng = np.random.default_rng(1)
    shape = (H, W, channels) if channels else (H, W)
    image = rng.integers(0, 256, shape).astype(dtype)
    if dtype != np.uint8:
        image = image / 255
        image = image.astype(dtype)
    t = AA.RandomPatchAffine(degrees=30.0, scale=(0.8, 1.2), p=1.0, p_object=p_object)
    t.set_random_seed(4)
    norm = (BOXES.clamp(max=torch.tensor([W, H, W, H])) / torch.tensor([W, H, W, H])).numpy()
    params = t.get_params_dependent_on_data({"shape": image.shape}, {"bboxes": norm})
    got = t.apply(image, **params)
    theta, patches, applied = t._params(params["augpatch"])
    tensor = torch.from_numpy(np.ascontiguousarray(image))
    tensor = tensor[None, None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)[None]
    want = T.RandomPatchAffine(30.0)(tensor, patches, params={"theta": theta, "batch_prob": applied})
    want = want.images[0].permute(1, 2, 0).numpy().reshape(image.shape)
    assert got.dtype == image.dtype and got.shape == image.shape
    assert np.array_equal(got, want)
    assert applied.any() and not np.array_equal(got, image)


def test_an_image_given_twice_gets_two_outputs_that_share_no_memory() -> None:
    image = _image("uint8", torch.Generator().manual_seed(1))
    boxes = tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(H, W))
    t = AT.RandomPatchAffine(degrees=25.0, p=1.0)
    first, second, out_boxes = t(image, image, boxes)
    assert torch.equal(first, second) and not torch.equal(first, image)
    assert first.data_ptr() != second.data_ptr()
    p = t.last_params
    want = t.core.move_object_boxes(BOXES, p["patches"], p["theta"], p["batch_prob"])
    assert torch.equal(out_boxes.as_subclass(torch.Tensor), want)


@pytest.mark.parametrize("name", list(_adapters()))
def test_last_params_are_what_the_core_call_records(name) -> None:
    """The adapter's call through the core's hooks leaves the core's record of the call
    (``last_params``: the same keys in the same order, ``keep`` included) as the core's own
    call with those parameters does."""
    g = torch.Generator().manual_seed(7)
    image = _image("uint8", g)
    boxes = tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(H, W))
    t = _adapters()[name]
    torch.manual_seed(2)
    t(image, {"boxes": boxes, "labels": torch.arange(4)})
    got = dict(t.last_params)
    t.core(image.as_subclass(torch.Tensor)[None], BOXES, params=got)
    want = t.core._params
    assert list(got) == list(want)
    for key, value in want.items():
        assert torch.equal(got[key], value) if isinstance(value, torch.Tensor) else got[key] == value


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "1", "P"])
def test_pil_conversions_are_torchvision_s(mode) -> None:
    """The adapter's PIL <-> tensor conversions give ``TF.pil_to_tensor`` /
    ``TF.to_pil_image``'s values and modes for every mode (one copy each way for the byte
    modes, torchvision's own conversion for the others), and the input is not modified."""
    from augpatch.integrations._torchvision_inputs import _pil_tensor, _tensor_pil

    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (H, W, 4), dtype=np.uint8), mode="RGBA")
    image = rgba.convert(mode) if mode != "I;16" else Image.fromarray(
        rng.integers(0, 2**16, (H, W), dtype=np.uint16))
    before = image.tobytes()
    tensor = _pil_tensor(image)
    want = TF.pil_to_tensor(image)
    assert tensor.dtype == want.dtype and torch.equal(tensor, want)
    assert image.tobytes() == before
    if tensor.dtype == torch.uint8 and mode != "P":
        back = _tensor_pil(tensor.flip(-1), image.mode)  # a strided tensor too
        ref = TF.to_pil_image(tensor.flip(-1), mode=image.mode)
        assert back.mode == ref.mode and back.size == ref.size
        assert back.tobytes() == ref.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_pil_pixels_are_the_image_s_own_memory(mode) -> None:
    """``_pil_pixels``: a ``[4, H, W]`` view of Pillow's own pixels (the bands, and
    Pillow's padding byte for RGB), alive while the view lives; the adapter reads it and
    leaves the user's image as it was."""
    import gc

    from augpatch.integrations._torchvision_inputs import _pil_pixels

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (H, W, 4), dtype=np.uint8), mode="RGBA")
    image = image.convert(mode)
    view = _pil_pixels(image)
    gc.collect()  # the Arrow export is kept by the view, not by a local
    if hasattr(image, "__arrow_c_array__"):  # Pillow >= 11.2 exports its pixels
        bands = len(image.getbands())
        assert view.shape == (4, H, W) and torch.equal(view[:bands], TF.pil_to_tensor(image))
        # batched: the same memory with a dense channels-last batch's strides (the warp's
        # output layout: the compiled kernel reads it in place and copies it as one block)
        batch = _pil_pixels(image, batched=True)
        assert batch.shape == (1, 4, H, W) and batch.data_ptr() == view.data_ptr()
        assert batch.stride() == torch.empty_like(batch).stride() == (4 * H * W, 1, 4 * W, 4)
        assert torch.equal(batch[0], view)
    else:  # an older Pillow (pyproject allows >= 10): the adapter copies instead
        assert view is None
    assert _pil_pixels(image.convert("L")) is None
    before = image.tobytes()
    boxes = tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(H, W))
    t = AT.RandomPatchAffine(degrees=30.0, p=1.0, resample="nearest")
    out, _ = t(image, {"boxes": boxes})
    assert out.mode == mode and image.tobytes() == before and out.tobytes() != before
    # the output is an ordinary, writable image (never Pillow memory it would refuse to write)
    assert not out.readonly
    out.load()[0, 0] = (1, 2, 3, 4)[: len(mode)]
    assert out.getpixel((0, 0)) == (1, 2, 3, 4)[: len(mode)] and image.tobytes() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keep_on_arrays_is_keep_on_tensors_at_the_threshold(dtype) -> None:
    """The adapter's record computes ``keep_mask`` on NumPy arrays (a few objects): the
    same answer as on tensors, also for widths a rounding step either side of 1e-3."""
    from augpatch.transforms.pipeline import keep_mask

    eps = dtype(1e-3)
    sizes = [0.0, eps, np.nextafter(eps, dtype(1)), np.nextafter(eps, dtype(0)), 2.0, -1.0]
    rows = np.array([[3.0, 5.0, 3.0 + s, 6.0] for s in sizes]
                    + [[0.25, 7.0, 1.0, 7.0 + s] for s in sizes], dtype)
    assert np.array_equal(np.asarray(keep_mask(rows)), keep_mask(torch.from_numpy(rows)).numpy())


@pytest.mark.parametrize("resample", ["nearest", "bilinear", "bicubic"])
def test_which_pil_images_the_warp_reads_in_place(resample) -> None:
    """RGBA always, RGB at ``nearest``, and at ``bilinear`` where the CPU warp computes a
    4-byte pixel's channels together (the compiled kernel on x86): the adapter then warps
    Pillow's RGBX pixels, and its output equals the converted RGB image's warp."""
    from augpatch.integrations._torchvision_call import reads_pil_pixels, warps_whole_pixels

    core = T.RandomPatchAffine(degrees=20.0, p=1.0, resample=resample)
    whole = resample == "nearest" or (resample == "bilinear" and warps_whole_pixels())
    assert reads_pil_pixels(core, "RGB") == whole
    assert reads_pil_pixels(core, "RGBA") and not reads_pil_pixels(core, "L")
    t = AT.RandomPatchAffine(degrees=20.0, p=1.0, resample=resample)
    image = _image("pil", torch.Generator().manual_seed(9))
    boxes = tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(H, W))
    out, _ = t(image, {"boxes": boxes, "labels": torch.arange(4)})
    again, _ = t(tv_tensors.Image(TF.pil_to_tensor(image)), {"boxes": boxes, "labels": torch.arange(4)},
                 params=t.last_params)
    assert out.mode == "RGB" and torch.equal(TF.pil_to_tensor(out), again.as_subclass(torch.Tensor))
