"""Bad input to ``warp_patches`` fails early with an error that names the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augpatch.functional import warp_patches

B, C, H, W = 2, 3, 10, 12


def _ok():
    images = torch.rand(B, C, H, W)
    boxes = torch.tensor([[1, 1, 6, 6], [2, 3, 9, 8], [0, 0, 12, 10]])
    theta = torch.eye(2, 3).repeat(3, 1, 1)
    obj = torch.tensor([0, 1, 1])
    return images, boxes, theta, obj


def test_valid_input_is_accepted():
    """Guard: the inputs below differ from this valid call in one argument only."""
    images, boxes, theta, obj = _ok()
    out = warp_patches(images, boxes, theta, obj)
    assert out.shape == images.shape


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("shape", [(C, H, W), (1, B, C, H, W), (H, W)])
def test_images_wrong_rank(shape):
    _, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="images"):
        warp_patches(torch.rand(shape), boxes, theta, obj)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.int8, torch.complex64])
def test_images_wrong_dtype(dtype):
    _, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="images"):
        warp_patches(torch.zeros(B, C, H, W, dtype=dtype), boxes, theta, obj)


@pytest.mark.parametrize("images", [np.zeros((B, C, H, W), np.float32), [[[[0.0]]]], None, 3.0])
def test_images_not_a_tensor(images):
    _, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="images"):
        warp_patches(images, boxes, theta, obj)


# --------------------------------------------------------------------------- boxes


@pytest.mark.parametrize("boxes", [torch.tensor([1, 1, 6, 6]), torch.zeros(3, 4, 1), torch.zeros(1, 3, 4)])
def test_boxes_wrong_rank(boxes):
    images, _, theta, obj = _ok()
    with pytest.raises(ValueError, match="boxes"):
        warp_patches(images, boxes, theta[: boxes.shape[0]], obj[: boxes.shape[0]])


@pytest.mark.parametrize("last", [2, 3, 5, 6])
def test_boxes_wrong_last_dim(last):
    images, _, theta, obj = _ok()
    with pytest.raises(ValueError, match="boxes"):
        warp_patches(images, torch.zeros(3, last), theta, obj)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64])
def test_boxes_wrong_dtype(dtype):
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="boxes"):
        warp_patches(images, boxes.to(dtype), theta, obj)


def test_boxes_not_a_tensor():
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="boxes"):
        warp_patches(images, boxes.numpy(), theta, obj)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_boxes_not_finite(bad):
    images, boxes, theta, obj = _ok()
    boxes = boxes.float()
    boxes[1, 2] = bad
    with pytest.raises(ValueError, match="boxes"):
        warp_patches(images, boxes, theta, obj)


# --------------------------------------------------------------------------- theta


@pytest.mark.parametrize("shape", [(3, 3, 3), (3, 2, 2), (3, 3, 2), (3, 5), (3, 2, 3, 1), (6,)])
def test_theta_wrong_shape(shape):
    images, boxes, _, obj = _ok()
    with pytest.raises(ValueError, match="theta"):
        warp_patches(images, boxes, torch.zeros(shape), obj)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_theta_integer_dtype(dtype):
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="theta"):
        warp_patches(images, boxes, theta.to(dtype), obj)


def test_theta_not_a_tensor():
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="theta"):
        warp_patches(images, boxes, theta.tolist(), obj)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_theta_not_finite(bad):
    images, boxes, theta, obj = _ok()
    theta = theta.clone()
    theta[2, 1, 2] = bad
    with pytest.raises(ValueError, match="theta"):
        warp_patches(images, boxes, theta, obj)


@pytest.mark.parametrize("n", [2, 4, 0])
def test_theta_count_mismatch(n):
    images, boxes, _, obj = _ok()
    with pytest.raises(ValueError, match="theta"):
        warp_patches(images, boxes, torch.eye(2, 3).repeat(n, 1, 1), obj)
    with pytest.raises(ValueError, match="theta"):
        warp_patches(images, boxes, torch.eye(2, 3).reshape(6).repeat(n, 1), obj)


# --------------------------------------------------------------------------- obj_to_img


@pytest.mark.parametrize("obj", [torch.tensor([0, 1]), torch.tensor([0, 1, 1, 0]), torch.tensor([[0, 1, 1]])])
def test_obj_to_img_wrong_length_or_shape(obj):
    images, boxes, theta, _ = _ok()
    with pytest.raises(ValueError, match="obj_to_img"):
        warp_patches(images, boxes, theta, obj)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_obj_to_img_wrong_dtype(dtype):
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="obj_to_img"):
        warp_patches(images, boxes, theta, obj.to(dtype))


def test_obj_to_img_not_a_tensor():
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="obj_to_img"):
        warp_patches(images, boxes, theta, obj.tolist())


def test_obj_to_img_negative():
    images, boxes, theta, _ = _ok()
    with pytest.raises(IndexError, match="obj_to_img"):
        warp_patches(images, boxes, theta, torch.tensor([0, -1, 1]))


@pytest.mark.parametrize("index", [B, B + 5])
def test_obj_to_img_out_of_range(index):
    images, boxes, theta, _ = _ok()
    with pytest.raises(IndexError, match="obj_to_img"):
        warp_patches(images, boxes, theta, torch.tensor([0, index, 1]))


def test_obj_to_img_missing_with_several_images():
    images, boxes, theta, _ = _ok()
    with pytest.raises(ValueError, match="obj_to_img"):
        warp_patches(images, boxes, theta)


def test_obj_to_img_given_with_list_boxes():
    images, boxes, theta, obj = _ok()
    per_image = [boxes[:1], boxes[1:]]
    with pytest.raises(ValueError, match="obj_to_img"):
        warp_patches(images, per_image, theta, obj)


# --------------------------------------------------------------------------- list boxes


@pytest.mark.parametrize("n_lists", [1, 3, 0])
def test_list_boxes_wrong_length(n_lists):
    images, boxes, theta, _ = _ok()
    per_image = [boxes[:1]] * n_lists
    with pytest.raises(ValueError, match="boxes"):
        warp_patches(images, per_image, theta[:n_lists])


def test_list_boxes_bad_element_is_named():
    images, boxes, theta, _ = _ok()
    with pytest.raises(ValueError, match=r"boxes\[1\]"):
        warp_patches(images, [boxes[:1], torch.zeros(2, 5)], theta)
    bad = boxes[1:].float()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"boxes\[1\]"):
        warp_patches(images, [boxes[:1], bad], theta)


def test_list_boxes_theta_count_mismatch():
    images, boxes, theta, _ = _ok()
    with pytest.raises(ValueError, match="theta"):
        warp_patches(images, [boxes[:1], boxes[1:]], theta[:2])


# --------------------------------------------------------------------------- devices


def test_mixed_devices_images_on_meta():
    images, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="device") as info:
        warp_patches(images.to("meta"), boxes, theta, obj)
    assert "images" in str(info.value)


def test_mixed_devices_boxes_on_meta():
    images, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="device") as info:
        warp_patches(images, boxes.to("meta"), theta, obj)
    assert "boxes" in str(info.value)


def test_mixed_devices_in_list_boxes():
    images, boxes, theta, _ = _ok()
    with pytest.raises(ValueError, match="device") as info:
        warp_patches(images, [boxes[:1], boxes[1:].to("meta")], theta)
    assert "boxes[1]" in str(info.value)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("mode", ["linear", "bilinear ", "BILINEAR", "area", "", None, 0])
def test_unknown_mode(mode):
    images, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="mode"):
        warp_patches(images, boxes, theta, obj, mode=mode)


@pytest.mark.parametrize("padding_mode", ["constant", "replicate", "reflect", "Zeros", None])
def test_unknown_padding_mode(padding_mode):
    images, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="padding_mode"):
        warp_patches(images, boxes, theta, obj, padding_mode=padding_mode)


@pytest.mark.parametrize("overlap", ["serial", "concurrent", "Sequential", None, True])
def test_unknown_overlap(overlap):
    images, boxes, theta, obj = _ok()
    with pytest.raises(ValueError, match="overlap"):
        warp_patches(images, boxes, theta, obj, overlap=overlap)


@pytest.mark.parametrize("align_corners", [1, 0, None, "True", np.bool_(True), torch.tensor(True)])
def test_align_corners_not_a_bool(align_corners):
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError, match="align_corners"):
        warp_patches(images, boxes, theta, obj, align_corners=align_corners)


def test_options_are_keyword_only():
    images, boxes, theta, obj = _ok()
    with pytest.raises(TypeError):
        warp_patches(images, boxes, theta, obj, "nearest")  # type: ignore[misc]


def test_errors_do_not_modify_inputs():
    images, boxes, theta, obj = _ok()
    saved = [t.clone() for t in (images, boxes, theta, obj)]
    with pytest.raises(IndexError):
        warp_patches(images, boxes, theta, torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError):
        warp_patches(images, boxes, theta, obj, mode="nope")
    for t, s in zip((images, boxes, theta, obj), saved):
        assert torch.equal(t, s)
