"""The warp's planning in C++ (``augpatch_cpu::warp_plan``) equals the Python planning.

``augpatch.ops.plan.prepare`` runs the compiled kernel's planner for CPU tensors, every
padding (with padding ``"image"`` and ``"sequential"`` it also computes the rects the objects
read and the levels respect them); the Python planning is its fall-back (other kernels, CUDA)
and the one that raises the value errors. Both must give the same plan, bit for bit: the
same objects in the same order, the same levels, the same parameter table.
"""

from __future__ import annotations

import pytest
import torch

import augpatch.ops.warp as _warp_op
from augpatch.functional import warp_patches
from augpatch.ops import plan as _plan
from augpatch.ops import schedule as _schedule
from augpatch.ops.settings import compiled_ops
from augpatch.ops.values import compute_dtype


def _planner():
    return compiled_ops(torch.device("cpu")).warp_plan


def _random_call(gen: torch.Generator, case: int, spread: float = 0.3):
    """Images, boxes (partly outside the canvas, some empty, often overlapping), theta, obj_to_img."""
    batch = int(torch.randint(1, 4, (), generator=gen))
    height, width = (int(v) for v in torch.randint(1, 40, (2,), generator=gen))
    num = int(torch.randint(0, 130, (), generator=gen))  # above schedule._DENSE_MAX too
    dtype = (torch.float32, torch.float64, torch.uint8, torch.float16)[case % 4]
    images = torch.zeros(batch, 2, height, width, dtype=dtype)
    lo = torch.rand(num, 2, generator=gen) * 1.4 - 0.2
    size = torch.rand(num, 2, generator=gen) * 0.7
    scale = torch.tensor([width, height], dtype=torch.float64)
    boxes = torch.cat([lo, lo + size], 1).double() * scale.repeat(2)
    if case % 3 == 0:
        boxes = boxes.round().long()  # integer boxes
    elif case % 3 == 1:
        boxes = boxes.float()
    theta = torch.eye(2, 3, dtype=torch.float64) + spread * torch.randn(num, 2, 3, dtype=torch.float64, generator=gen)
    if case % 2:
        theta = theta.float()
    obj_to_img = torch.randint(0, batch, (num,), generator=gen)
    return images, boxes, theta, obj_to_img


def _equal_plans(a, b) -> None:
    assert (a is None) == (b is None)
    if a is None:
        return
    assert torch.equal(a.objects, b.objects)
    assert a.plan.level_objects == b.plan.level_objects
    assert torch.equal(a.plan.objects, b.plan.objects)
    assert a.params.dtype == b.params.dtype
    assert torch.equal(a.params, b.params)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
@pytest.mark.parametrize("padding_mode", ["zeros", "image"])
def test_cpp_planning_equals_python_planning(align_corners, overlap, padding_mode):
    """Random calls; with padding "image" thetas that also read far outside the boxes (read
    rects clamped to the image, loose and strict edges)."""
    gen = torch.Generator().manual_seed(2100 + 2 * align_corners + (overlap == "parallel")
                                        + 4 * (padding_mode == "image"))
    planned = 0
    for case in range(120):
        spread = 0.3 if padding_mode != "image" else (0.05, 0.3, 1.5)[case % 3]
        images, boxes, theta, obj_to_img = _random_call(gen, case, spread)
        args = (images, boxes, theta, obj_to_img, "bilinear", padding_mode, align_corners, overlap)
        python = _plan.prepare(*args)
        cpp = _plan.prepare(*args, planner=_planner())
        _equal_plans(cpp, python)
        planned += cpp is not None and cpp.plan.level_objects[-1] > 0
        if python is not None:
            assert cpp.params.dtype == compute_dtype(images.dtype)
    assert planned > 60  # most calls plan something


@pytest.mark.parametrize("align_corners", [False, True])
def test_cpp_planning_of_image_reads_follows_the_sweep_and_loose_edges(align_corners):
    """Padding "image", sequential: a column of boxes above ``schedule._DENSE_MAX`` (the sweep
    over what the objects touch), shifted thetas whose reads reach the neighbours (strict
    edges) and shrinking ones that read inside (objects that only read where a later one
    writes: loose edges, the same level), one-pixel boxes, and the levels equal the
    relaxation's over the Python edges."""
    images = torch.zeros(2, 1, 460, 40)  # every box inside: all planned
    k = torch.arange(150)
    column = torch.stack([k % 7, 3 * k, 8 + k % 5, 3 * k + 2 + k % 3], 1)  # some touch, some not
    boxes = torch.cat([column, column.flip(0)]).double()
    boxes[::17, 2] = boxes[::17, 0] + 1  # one pixel wide
    obj_to_img = torch.cat([torch.zeros(150, dtype=torch.long), torch.ones(150, dtype=torch.long)])
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(300, 1, 1)
    theta[::3, 1, 2] = 1.5  # reads the box below
    theta[1::3, :, :2] *= 0.3  # reads the middle of its own box only
    args = (images, boxes, theta, obj_to_img, "bicubic", "image", align_corners, "sequential")
    cpp = _plan.prepare(*args, planner=_planner())
    _equal_plans(cpp, _plan.prepare(*args))
    pix = _plan.pixel_rects(boxes, 460, 40)
    read = _plan.source_rects(_plan.clip_to_canvas(boxes, 460, 40), pix, theta, align_corners, 460, 40)
    src, dst, strict = _schedule.overlap_edges(pix, read, obj_to_img)
    assert (strict == 0).any() and (strict == 1).any()  # both kinds of edges
    level = _schedule.schedule_levels(300, src, dst, strict)
    assert len(cpp.plan.level_objects) == int(level.max()) + 2 > 3
    # the C++ planner itself planned it (no fall-back), and the reads changed the levels
    call = (boxes, theta, obj_to_img, 2, 460, 40, torch.float64, align_corners)
    with_reads, without = _planner()(*call, True), _planner()(*call, False)
    assert with_reads[3] == 0 and torch.equal(with_reads[1], cpp.levels)
    assert without[1].numel() < with_reads[1].numel()


def test_cpp_planning_follows_the_sweep_and_deep_overlaps():
    """Many boxes in one column (the sweep along y) and a deep chain of overlaps."""
    images = torch.zeros(2, 1, 300, 40)
    k = torch.arange(150)
    column = torch.stack([k % 7, 2 * k, 20 + k % 5, 2 * k + 9], 1)  # each overlaps the next four
    boxes = torch.cat([column, column.flip(0)])
    obj_to_img = torch.cat([torch.zeros(150, dtype=torch.long), torch.ones(150, dtype=torch.long)])
    theta = torch.eye(2, 3).expand(300, 2, 3)
    args = (images, boxes, theta, obj_to_img, "nearest", "border", False, "sequential")
    cpp = _plan.prepare(*args, planner=_planner())
    _equal_plans(cpp, _plan.prepare(*args))
    assert len(cpp.plan.level_objects) > 5  # several levels
    # the levels are those of the schedule's relaxation
    pix = _plan.pixel_rects(boxes.double(), 300, 40)
    level = _schedule.schedule_levels(300, *_schedule.overlap_edges(pix, None, obj_to_img))
    assert len(cpp.plan.level_objects) == int(level.max()) + 2


@pytest.mark.parametrize(
    ("boxes", "theta", "obj_to_img", "error", "match"),
    [
        ([[0.0, 0.0, float("nan"), 4.0]], None, [0], ValueError, "boxes contains NaN or Inf values"),
        ([[0, 0, 4, 4]], float("inf"), [0], ValueError, "theta contains NaN or Inf values"),
        ([[0, 0, 4, 4]], None, [2], IndexError, "obj_to_img holds image index 2, but the batch has 2 images"),
        ([[0, 0, 4, 4]], None, [-1], IndexError, "obj_to_img holds a negative image index"),
    ],
)
def test_cpp_planning_defers_value_errors_to_the_python_messages(boxes, theta, obj_to_img, error, match):
    images = torch.zeros(2, 1, 8, 8)
    mat = torch.eye(2, 3).expand(len(boxes), 2, 3).clone()
    if theta is not None:
        mat[0, 0, 0] = theta
    boxes, obj_to_img = torch.tensor(boxes), torch.tensor(obj_to_img)
    status = _planner()(boxes, mat, obj_to_img, 2, 8, 8, torch.float32, False)[3]
    assert status == 1
    with pytest.raises(error, match=match):
        _plan.prepare(images, boxes, mat, obj_to_img, "bilinear", "zeros", False, "sequential", planner=_planner())


@pytest.mark.parametrize("padding_mode", ["reflection", "image"])
def test_warp_with_cpp_planning_equals_python_planning(monkeypatch, padding_mode):
    """Whole calls (values and gradients) with the C++ planning and with the Python one."""
    gen = torch.Generator().manual_seed(5)
    images = torch.rand(3, 2, 30, 34, dtype=torch.float64, generator=gen)
    boxes = (torch.rand(40, 2, generator=gen) * 24).repeat(1, 2) + torch.tensor([0, 0, 3.0, 4.0]) \
        + torch.rand(40, 4, generator=gen) * torch.tensor([0, 0, 9.0, 9.0])
    theta = (torch.eye(2, 3, dtype=torch.float64) + 0.2 * torch.randn(40, 2, 3, dtype=torch.float64, generator=gen))
    obj_to_img = torch.randint(0, 3, (40,), generator=gen)
    weight = torch.randn(3, 2, 30, 34, dtype=torch.float64, generator=gen)

    def run():
        img, box, mat = (t.clone().requires_grad_() for t in (images, boxes, theta))
        out = warp_patches(img, box, mat, obj_to_img, mode="bicubic", padding_mode=padding_mode)
        (out * weight).sum().backward()
        return out.detach(), img.grad, box.grad, mat.grad

    calls = []
    original = _warp_op._planner
    monkeypatch.setattr(_warp_op, "_planner", lambda *a: calls.append(original(*a)) or calls[-1])
    with_cpp = run()
    assert calls and calls[-1] is not None  # the C++ planner ran
    monkeypatch.setattr(_warp_op, "_planner", lambda *a: calls.append(None))
    without = run()
    assert calls[-1] is None
    for a, b in zip(with_cpp, without, strict=True):
        assert torch.equal(a, b)


def test_compiled_planner_is_the_one_lookup_of_the_cpp_planner():
    """``compiled_planner``: the kernel's ``warp_plan`` where built, ``None`` without a kernel;
    the warp operator and the policies' in-place box warp both get it from there."""
    ops = compiled_ops(torch.device("cpu"))
    assert _plan.compiled_planner(ops) is ops.warp_plan
    assert _plan.compiled_planner(None) is None
    assert _plan.compiled_planner(object()) is None  # a kernel built without the planner


def test_theta_columns_lead_the_parameter_table():
    """``object_params_backward`` reads theta's gradient as the slice ``grad[:, :6]``: the
    table's first six columns are theta's entries, row by row; its theta gradient equals
    autograd's through ``object_params``."""
    from augpatch.ops.layout import PARAM_COLUMNS

    assert PARAM_COLUMNS[:6] == ("t00", "t01", "t02", "t10", "t11", "t12")
    grad = torch.zeros(2, len(PARAM_COLUMNS), dtype=torch.float64)
    grad[:, :6] = torch.arange(12, dtype=torch.float64).reshape(2, 6)
    boxes = torch.tensor([[1.0, 2.0, 9.0, 8.0], [0.0, 0.0, 5.0, 5.0]], dtype=torch.float64)
    theta = torch.eye(2, 3, dtype=torch.float64).repeat(2, 1, 1)
    objects = torch.tensor([[1, 2, 8, 6, 0, 1], [0, 0, 5, 5, 0, 0]])
    _, grad_theta = _plan.object_params_backward(grad, boxes, theta, objects, False, (10, 12), False, True)
    assert torch.equal(grad_theta[1].flatten(), grad[0, :6])  # object 1 is processed first
    assert torch.equal(grad_theta[0].flatten(), grad[1, :6])
