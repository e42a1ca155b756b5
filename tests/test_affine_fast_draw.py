"""``RandomPatchAffine``'s few-objects draw (NumPy, no gradient) equals the base's tensor
path bit for bit: the same uniforms, human parameters, ``theta`` and coins, in the same
order; and ``patch_affine_theta`` equals ``patch_affine_matrix`` bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augpatch.functional import patch_affine_matrix, transform_boxes
from augpatch.functional.host import patch_affine_theta
from augpatch.transforms import RandomPatchAffine, RandomPatchRotation
from augpatch.transforms.base import PatchAugmentationBase

CONFIGS = [
    {"degrees": 15, "scale": (0.9, 1.1)},
    {"degrees": (-30, 10), "translate": (0.1, 0.2), "scale": (0.5, 1.5, 0.7, 1.2),
     "shear": (-10, 10, -5, 5)},
    {"translate": ((-0.2, 0.1), (0.0, 0.3)), "shear": 12.0},
    {"scale": 0.2},
    {"degrees": 0.0},
    {},
]


def _boxes(seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(100 + seed)
    n = int(torch.randint(1, 12, (1,), generator=g))
    xy = torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 40], 1).to(dtype)
    if seed % 4 == 0:
        boxes[0, 2] = boxes[0, 0]  # a degenerate (zero-width) patch
    if seed % 5 == 0:
        boxes = boxes.round()
    return boxes


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("p", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_draw_equals_the_base_path_bit_for_bit(config, p, align_corners, dtype) -> None:
    for seed in range(6):
        t = RandomPatchAffine(**config, p=p, align_corners=align_corners,
                              generator=torch.Generator().manual_seed(seed))
        boxes = _boxes(seed, dtype)
        o2i = torch.zeros(boxes.shape[0], dtype=torch.long)
        patches = t.forward_parameters((1, 3, 64, 80), boxes, o2i)["patches"]
        assert t._fast_ranges(patches) is not None  # the fast path ran
        t.generator.manual_seed(seed)
        fast = t._forward_parameters(patches, o2i, 1)
        t.generator.manual_seed(seed)
        base = PatchAugmentationBase._forward_parameters(t, patches, o2i, 1)
        assert list(fast) == list(base)
        for key, value in base.items():
            assert fast[key].dtype == value.dtype, key
            assert torch.equal(fast[key], value), (key, fast[key], value)


def test_fast_draw_is_not_taken_where_gradients_or_a_subclass_draw_are_involved() -> None:
    patches = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    learnable = RandomPatchAffine(degrees=torch.tensor(10.0, requires_grad=True), p=1.0)
    assert learnable._fast_ranges(patches) is None
    assert RandomPatchAffine(degrees=10.0, same_on_image=True)._fast_ranges(patches) is None
    assert RandomPatchAffine(degrees=10.0)._fast_ranges(patches.requires_grad_()) is None
    assert RandomPatchRotation(10.0)._fast_ranges(torch.zeros(0, 4)) is None

    class Own(RandomPatchAffine):
        def compute_matrix(self, params, patches):
            return super().compute_matrix(params, patches)

    assert Own(degrees=10.0)._fast_ranges(patches) is None
    # a learnable magnitude still gets its gradient (the tensor path)
    out = learnable(torch.rand(1, 1, 16, 16), torch.tensor([[2, 2, 12, 12]]))
    out.images.sum().backward()
    assert learnable.degrees.grad is not None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
def test_theta_arrays_equal_patch_affine_matrix_bit_for_bit(dtype, align_corners) -> None:
    g = torch.Generator().manual_seed(1)
    for trial in range(40):
        n = 50
        xy = torch.rand(n, 2, generator=g, dtype=dtype) * 600
        wh = torch.rand(n, 2, generator=g, dtype=dtype) * 200
        wh[:5] = torch.tensor([0.0, 1.0], dtype=dtype)[torch.randint(0, 2, (5, 2), generator=g)]
        boxes = torch.cat([xy, xy + wh], 1)
        if trial % 3 == 0:
            boxes = boxes.round()
        angle = (torch.rand(n, generator=g, dtype=dtype) - 0.5) * 60
        angle[:3] = torch.tensor([0.0, 90.0, 180.0], dtype=dtype)
        shear = (torch.rand(n, 2, generator=g, dtype=dtype) - 0.5) * 40
        shear[::2, 1] = 0
        scale = 0.5 + torch.rand(n, 2, generator=g, dtype=dtype)
        scale[::3, 1] = scale[::3, 0]
        scale[1] = -scale[1]  # a flip
        translate = (torch.rand(n, 2, generator=g, dtype=dtype) - 0.5) * (boxes[:, 2:] - boxes[:, :2])
        expected = patch_affine_matrix(boxes, angle=angle, translate=translate, scale=scale,
                                       shear=shear, align_corners=align_corners)
        radians = torch.deg2rad(angle)
        got = patch_affine_theta(
            boxes.numpy(), torch.cos(radians).numpy(), torch.sin(radians).numpy(),
            torch.tan(torch.deg2rad(shear)).numpy(), scale.numpy(), translate.numpy(),
            align_corners,
        )
        assert got.dtype == np.dtype(str(dtype).split(".")[1])
        assert torch.equal(torch.from_numpy(got), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("clip", [True, False])
def test_transform_boxes_on_the_host_equals_the_tensor_path_bit_for_bit(dtype, align_corners, clip):
    """``transform_boxes`` of a few CPU boxes without gradient runs its arithmetic in NumPy;
    the tensor path (taken when ``theta`` requires grad) gives the same values bit for bit."""
    g = torch.Generator().manual_seed(2)
    for trial in range(30):
        n = 1 + trial % 17
        xy = torch.rand(n, 2, generator=g, dtype=dtype) * 80 - 10
        wh = torch.rand(n, 2, generator=g, dtype=dtype) * 50
        wh[: n // 4] = torch.tensor([0.0, 1.0], dtype=dtype)[torch.randint(0, 2, (n // 4, 2), generator=g)]
        boxes = torch.cat([xy, xy + wh], 1)
        if trial % 3 == 0:
            boxes = boxes.round()
        theta = torch.eye(2, 3, dtype=dtype) + 0.3 * (torch.rand(n, 2, 3, generator=g, dtype=dtype) - 0.5)
        canvas = (64, 72) if trial % 2 else None
        kw = {"clip": clip, "canvas_size": canvas, "align_corners": align_corners}
        host = transform_boxes(boxes, theta, **kw)
        tensor_path = transform_boxes(boxes, theta.clone().requires_grad_(), **kw).detach()
        assert host.dtype == tensor_path.dtype and not host.requires_grad
        assert torch.equal(host, tensor_path)
    singular = torch.zeros(2, 2, 3, dtype=dtype)
    singular[0] = torch.eye(2, 3)
    with pytest.raises(ValueError, match=r"theta is singular \(not invertible\) for object\(s\) \[1\]"):
        transform_boxes(torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]], dtype=dtype), singular)


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_box_hook_on_the_host_equals_its_tensor_path_bit_for_bit(align_corners):
    """move_object_boxes of a few CPU boxes (NumPy, functional.host.move_boxes_arrays) gives
    the tensor path's boxes (taken when theta needs a gradient), including boxes that left
    their patch and objects not applied."""
    core = RandomPatchAffine(degrees=40, translate=0.6, scale=(0.3, 1.7), shear=20, p=0.7,
                             align_corners=align_corners, generator=torch.Generator().manual_seed(5))
    for seed in range(20):
        boxes = _boxes(seed, torch.float32) * 1.5 - 5  # some leave the 64 x 80 canvas
        n = boxes.shape[0]
        p = core.forward_parameters((1, 3, 64, 80), boxes, torch.zeros(n, dtype=torch.long))
        args = (boxes.double(), p["patches"].double())
        host = core.move_object_boxes(*args, p["theta"].double(), p["batch_prob"])
        tensor = core.move_object_boxes(*args, p["theta"].double().requires_grad_(), p["batch_prob"])
        assert host.dtype == tensor.dtype == torch.float64 and not host.requires_grad
        assert torch.equal(host, tensor.detach())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_host_clip_equals_clip_boxes_bit_for_bit(dtype):
    from augpatch.functional import clip_boxes
    from augpatch.transforms.base import _clip_on_the_host

    g = torch.Generator().manual_seed(3)
    boxes = (torch.rand(200, 4, generator=g, dtype=dtype) * 140 - 30).round(decimals=1)
    boxes[:3] = torch.tensor([[-0.0, 0.0, 80.0, 64.0], [80.0, 64.0, 90.0, 70.0], [-5, -5, -1, -1]])
    got = _clip_on_the_host(boxes, (64, 80))
    assert got is not None and got.dtype == dtype
    assert torch.equal(got, clip_boxes(boxes, (64, 80)))
    assert _clip_on_the_host(boxes.clone().requires_grad_(), (64, 80)) is None
