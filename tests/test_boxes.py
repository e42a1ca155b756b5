"""Tests for augpatch.functional._boxes (clipping, formats, flat / list / padded layouts).

References are torchvision.ops (formats, clipping) and naive per-image Python loops
(layouts).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augpatch.functional._boxes import (
    boxes_to_list,
    boxes_to_padded,
    clip_boxes,
    convert_box_format,
    list_to_boxes,
    padded_to_boxes,
)

FMTS = ("xyxy", "xywh", "cxcywh")
FAST = settings(max_examples=40, deadline=None)


def rand_boxes(n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 60 - 10
    wh = torch.rand(n, 2, generator=gen) * 40
    b = torch.cat((xy, xy + wh), -1)
    return b.round().to(dtype) if not dtype.is_floating_point else b.to(dtype)


# --------------------------------------------------------------------------- clip / formats


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32])
def test_clip_boxes_matches_torchvision(dtype):
    tv_ops = pytest.importorskip("torchvision.ops")
    boxes = rand_boxes(50, 1, dtype)
    out = clip_boxes(boxes, (30, 25))
    ref = tv_ops.clip_boxes_to_image(boxes, (30, 25))
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref)
    # any leading dims, and a torch.Size canvas
    torch.testing.assert_close(
        clip_boxes(boxes.reshape(5, 10, 4), torch.Size([30, 25])), ref.reshape(5, 10, 4)
    )


def test_clip_boxes_by_hand_and_gradient():
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 8.0], [1.0, -1.0, 3.0, 50.0]], requires_grad=True)
    out = clip_boxes(boxes, (10, 20))
    torch.testing.assert_close(out, torch.tensor([[0.0, 2.0, 20.0, 8.0], [1.0, 0.0, 3.0, 10.0]]))
    out.sum().backward()
    torch.testing.assert_close(boxes.grad, torch.tensor([[0.0, 1, 0, 1], [1, 0, 1, 0]]))


@pytest.mark.parametrize("in_fmt", FMTS)
@pytest.mark.parametrize("out_fmt", FMTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_convert_box_format_matches_torchvision(in_fmt, out_fmt, dtype):
    tv_ops = pytest.importorskip("torchvision.ops")
    boxes = rand_boxes(20, 2, dtype)
    out = convert_box_format(boxes, in_fmt, out_fmt)
    ref = tv_ops.box_convert(boxes, in_fmt, out_fmt)
    assert out.dtype == ref.dtype
    torch.testing.assert_close(out, ref)
    # leading dims
    torch.testing.assert_close(
        convert_box_format(boxes.reshape(4, 5, 4), in_fmt, out_fmt), ref.reshape(4, 5, 4)
    )
    assert convert_box_format(torch.zeros(0, 4, dtype=dtype), in_fmt, out_fmt).shape == (0, 4)


def test_convert_box_format_by_hand_round_trip_and_copy():
    b = torch.tensor([[1.0, 2.0, 5.0, 10.0]])
    torch.testing.assert_close(
        convert_box_format(b, "xyxy", "xywh"), torch.tensor([[1.0, 2, 4, 8]])
    )
    torch.testing.assert_close(
        convert_box_format(b, "xyxy", "cxcywh"), torch.tensor([[3.0, 6, 4, 8]])
    )
    for f in FMTS:
        torch.testing.assert_close(
            convert_box_format(convert_box_format(b, "xyxy", f), f, "xyxy"), b
        )
    same = convert_box_format(b, "xyxy", "xyxy")
    assert torch.equal(same, b) and same.data_ptr() != b.data_ptr()


def test_convert_box_format_gradient():
    b = torch.tensor([[1.0, 2.0, 5.0, 10.0]], dtype=torch.float64, requires_grad=True)
    for f in FMTS:
        assert torch.autograd.gradcheck(lambda x, f=f: convert_box_format(x, "cxcywh", f), (b,))


# --------------------------------------------------------------------------- layouts


def ref_list(boxes, obj_to_img, batch_size):
    return [boxes[obj_to_img == b] for b in range(batch_size)]


@st.composite
def flat_layout(draw):
    batch_size = draw(st.integers(1, 5))
    n = draw(st.integers(0, 12))
    obj = draw(st.lists(st.integers(0, batch_size - 1), min_size=n, max_size=n))
    seed = draw(st.integers(0, 1000))
    boxes = rand_boxes(n, seed, torch.float64)
    return boxes, torch.tensor(obj, dtype=torch.long), batch_size


@FAST
@given(flat_layout())
def test_flat_list_round_trip(data):
    boxes, obj, b = data
    lst = boxes_to_list(boxes, obj, b)
    ref = ref_list(boxes, obj, b)
    assert len(lst) == b
    for got, want in zip(lst, ref):
        assert got.shape == want.shape and torch.equal(got, want)
    flat, idx = list_to_boxes(lst)
    order = torch.sort(obj, stable=True).indices
    assert torch.equal(flat, boxes[order]) and torch.equal(idx, obj[order])
    assert idx.dtype == torch.int64
    # list -> flat -> list is exact
    for got, want in zip(boxes_to_list(flat, idx, b), lst):
        assert torch.equal(got, want)


@FAST
@given(flat_layout(), st.sampled_from([0.0, -1.0, float("nan")]))
def test_flat_padded_round_trip(data, pad_value):
    boxes, obj, b = data
    padded, mask = boxes_to_padded(boxes, obj, b, pad_value=pad_value)
    ref = ref_list(boxes, obj, b)
    n_max = max((len(r) for r in ref), default=0)
    assert padded.shape == (b, n_max, 4) and mask.shape == (b, n_max) and mask.dtype == torch.bool
    for i, r in enumerate(ref):
        assert torch.equal(padded[i, : len(r)], r)
        assert mask[i, : len(r)].all() and not mask[i, len(r) :].any()
        pad = padded[i, len(r) :]
        assert torch.equal(pad.isnan(), torch.full_like(pad, pad_value).isnan())
        if pad_value == pad_value:  # not NaN
            assert (pad == pad_value).all()
    flat, idx = padded_to_boxes(padded, mask)
    order = torch.sort(obj, stable=True).indices
    assert torch.equal(flat, boxes[order]) and torch.equal(idx, obj[order])


def test_empty_images_and_zero_objects():
    boxes = torch.tensor([[0.0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]])
    lst = boxes_to_list(boxes, torch.tensor([2, 0, 2]), 4)
    assert [len(t) for t in lst] == [1, 0, 2, 0] and all(t.shape[1] == 4 for t in lst)
    flat, idx = list_to_boxes(lst)
    assert idx.tolist() == [0, 2, 2]
    padded, mask = boxes_to_padded(boxes, torch.tensor([2, 0, 2]), 4)
    assert mask.tolist() == [[True, False], [False, False], [True, True], [False, False]]
    # N = 0
    empty = torch.zeros(0, 4)
    lst = boxes_to_list(empty, torch.zeros(0, dtype=torch.long), 3)
    assert len(lst) == 3 and all(t.shape == (0, 4) for t in lst)
    flat, idx = list_to_boxes(lst)
    assert flat.shape == (0, 4) and idx.shape == (0,) and idx.dtype == torch.int64
    padded, mask = boxes_to_padded(empty, torch.zeros(0, dtype=torch.long), 3)
    assert padded.shape == (3, 0, 4) and mask.shape == (3, 0)
    flat, idx = padded_to_boxes(padded, mask)
    assert flat.shape == (0, 4) and idx.shape == (0,)
    # obj_to_img may be omitted when B == 1, or when there are no objects
    assert torch.equal(boxes_to_list(boxes, None, 1)[0], boxes)
    padded, mask = boxes_to_padded(boxes, None, 1)
    assert torch.equal(padded[0], boxes) and mask.all()
    assert [t.shape[0] for t in boxes_to_list(empty, None, 2)] == [0, 0]


def test_non_prefix_mask_and_int_boxes():
    padded = torch.arange(24).reshape(2, 3, 4)
    mask = torch.tensor([[False, True, True], [True, False, False]])
    flat, idx = padded_to_boxes(padded, mask)
    assert torch.equal(flat, torch.stack((padded[0, 1], padded[0, 2], padded[1, 0])))
    assert idx.tolist() == [0, 0, 1]
    p, _ = boxes_to_padded(flat, idx, 2, pad_value=-1)
    assert p.dtype == torch.int64 and (p[1, 1] == -1).all()


def test_layout_gradients():
    boxes = torch.rand(5, 4, dtype=torch.float64, requires_grad=True)
    obj = torch.tensor([1, 0, 1, 2, 0])
    assert torch.autograd.gradcheck(lambda b: boxes_to_padded(b, obj, 3)[0], (boxes,))
    assert torch.autograd.gradcheck(lambda b: torch.cat(boxes_to_list(b, obj, 3)), (boxes,))
    padded = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda p: padded_to_boxes(p, mask)[0], (padded,))
    parts = [
        torch.rand(2, 4, dtype=torch.float64, requires_grad=True),
        torch.rand(1, 4, dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(lambda a, b: list_to_boxes([a, b])[0], tuple(parts))


def test_inputs_not_modified():
    boxes = rand_boxes(6, 3)
    obj = torch.tensor([1, 0, 1, 0, 0, 1])
    copies = boxes.clone(), obj.clone()
    clip_boxes(boxes, (10, 10))
    convert_box_format(boxes, "xyxy", "cxcywh")
    lst = boxes_to_list(boxes, obj, 2)
    lst[0].add_(1)  # the returned tensors are not views of the input
    padded, mask = boxes_to_padded(boxes, obj, 2)
    padded_to_boxes(padded, mask)
    assert torch.equal(boxes, copies[0]) and torch.equal(obj, copies[1])


# --------------------------------------------------------------------------- bad input

B3 = torch.zeros(3, 4)
O3 = torch.tensor([0, 1, 0])


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: clip_boxes(torch.zeros(3, 5), (4, 4)), ValueError, "boxes"),
        (lambda: clip_boxes(torch.zeros(3, 4, dtype=torch.bool), (4, 4)), TypeError, "boxes"),
        (lambda: clip_boxes(torch.full((1, 4), float("nan")), (4, 4)), ValueError, "boxes"),
        (lambda: clip_boxes(B3, (4,)), ValueError, "canvas_size"),
        (lambda: clip_boxes(B3, 4), TypeError, "canvas_size"),
        (lambda: clip_boxes(B3, (4.5, 4)), TypeError, "canvas_size"),
        (lambda: clip_boxes(B3, (4, -4)), ValueError, "canvas_size"),
        (lambda: clip_boxes([[0, 0, 1, 1]], (4, 4)), TypeError, "boxes"),
        (lambda: convert_box_format(B3, "xyxy", "xyxyxyxy"), ValueError, "out_fmt"),
        (lambda: convert_box_format(B3, "XYXY", "xywh"), ValueError, "in_fmt"),
        (lambda: convert_box_format(B3, None, "xywh"), ValueError, "in_fmt"),
        (lambda: convert_box_format(torch.zeros(3), "xyxy", "xywh"), ValueError, "boxes"),
        (
            lambda: convert_box_format(torch.full((1, 4), float("inf")), "xyxy", "xywh"),
            ValueError,
            "boxes",
        ),
        (lambda: boxes_to_list(torch.zeros(3, 2), O3, 2), ValueError, "boxes"),
        (lambda: boxes_to_list(B3, torch.tensor([0, 1]), 2), ValueError, "obj_to_img"),
        (lambda: boxes_to_list(B3, O3.float(), 2), TypeError, "obj_to_img"),
        (lambda: boxes_to_list(B3, O3, 0), ValueError, "batch_size"),
        (lambda: boxes_to_list(B3, O3, 2.0), TypeError, "batch_size"),
        (lambda: boxes_to_list(B3, None, 2), ValueError, "obj_to_img"),
        (
            lambda: boxes_to_list(B3, torch.tensor([0, 1, 2]), 2),
            (IndexError, ValueError),
            "obj_to_img",
        ),
        (
            lambda: boxes_to_list(B3, torch.tensor([0, -1, 0]), 2),
            (IndexError, ValueError),
            "obj_to_img",
        ),
        (lambda: boxes_to_padded(B3, O3, 2, pad_value="x"), TypeError, "pad_value"),
        (lambda: boxes_to_padded(B3.long(), O3, 2, pad_value=0.5), ValueError, "pad_value"),
        (lambda: boxes_to_padded(torch.full((3, 4), float("nan")), O3, 2), ValueError, "boxes"),
        (lambda: list_to_boxes(B3), TypeError, "list"),
        (lambda: list_to_boxes([]), ValueError, "empty"),
        (lambda: list_to_boxes([B3, torch.zeros(2, 3)]), ValueError, r"boxes\[1\]"),
        (lambda: list_to_boxes([B3, torch.zeros(2, 4, dtype=torch.float64)]), TypeError, "dtype"),
        (
            lambda: padded_to_boxes(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)),
            ValueError,
            "padded",
        ),
        (lambda: padded_to_boxes(torch.zeros(2, 3, 4), torch.ones(2, 3)), TypeError, "mask"),
        (
            lambda: padded_to_boxes(torch.zeros(2, 3, 4), torch.ones(2, 2, dtype=torch.bool)),
            ValueError,
            "mask",
        ),
        (
            lambda: padded_to_boxes(
                torch.full((1, 1, 4), float("nan")), torch.ones(1, 1, dtype=torch.bool)
            ),
            ValueError,
            "padded",
        ),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_device_mismatch():
    meta = torch.device("meta")
    with pytest.raises(ValueError, match="device"):
        boxes_to_list(B3, O3.to(meta), 2)
    with pytest.raises(ValueError, match="device"):
        boxes_to_padded(B3, O3.to(meta), 2)
    with pytest.raises(ValueError, match="device"):
        padded_to_boxes(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool, device=meta))
    with pytest.raises(ValueError, match="device"):
        list_to_boxes([B3.long(), torch.zeros(2, 4, dtype=torch.long, device=meta)])


def test_clip_boxes_to_images_clips_each_box_to_its_own_image():
    boxes = torch.tensor([[-1.0, 2.0, 9.0, 9.0], [2.0, 2.0, 9.0, 9.0], [7.0, 6.0, 9.0, 9.0]])
    obj = torch.tensor([0, 1, 1])
    sizes = torch.tensor([[10, 10], [5, 6]])
    from augpatch.functional import clip_boxes_to_images

    out = clip_boxes_to_images(boxes, obj, sizes)
    assert out.tolist() == [[0.0, 2.0, 9.0, 9.0], [2.0, 2.0, 6.0, 5.0], [6.0, 5.0, 6.0, 5.0]]
    assert torch.equal(boxes[0], torch.tensor([-1.0, 2.0, 9.0, 9.0]))  # input unchanged
    # N = 0
    empty = clip_boxes_to_images(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), sizes)
    assert empty.shape == (0, 4)
