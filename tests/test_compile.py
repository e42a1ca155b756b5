"""``warp_patches`` inside ``torch.compile`` and ``torch.export``: one opaque operator.

Most tests compile with ``backend="aot_eager"``: Dynamo and AOTAutograd trace with fake
tensors exactly as with Inductor (which is what the operator must survive), without the
cost of generating code; one test runs the default Inductor backend end to end.
"""

from __future__ import annotations

import pytest
import torch
from dynamo_support import fresh_dynamo, fullgraph_dynamic, fullgraph_traces_dynamic_shapes
from reference import reference_warp
from torch import nn

from augpatch.functional import warp_patches
from augpatch.ops import warp_op
from augpatch.ops.warp import WARP_NAME
from augpatch.transforms import PatchAffine, RandomPatchAffine

BACKEND = "aot_eager"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    with fresh_dynamo(), fullgraph_dynamic():
        yield


def test_fullgraph_on_older_torch_says_which_flag_to_set():
    """What the compile-export guide says (docs/guides/compile-export.md, "Older torch"):
    a recent torch's fullgraph graph holds the warp as it is; an
    older one (torch 2.8) refuses it with a hint naming ``capture_dynamic_output_shape_ops``
    (which the other tests here set there), and without fullgraph breaks the graph."""
    fn = torch.compile(lambda *a: warp_patches(*a) + 1, fullgraph=True, backend=BACKEND)
    batch = _batch()
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=False):
        if fullgraph_traces_dynamic_shapes():
            torch.testing.assert_close(fn(*batch), warp_patches(*batch) + 1, atol=1e-12, rtol=0)
        else:
            with pytest.raises(Exception, match="capture_dynamic_output_shape_ops"):
                fn(*batch)
            # without fullgraph the warp is a graph break: it runs outside the graph
            torch._dynamo.reset()
            broken = torch.compile(lambda *a: warp_patches(*a) + 1, backend=BACKEND)
            torch.testing.assert_close(broken(*batch), warp_patches(*batch) + 1, atol=1e-12,
                                       rtol=0)


def _batch(num: int = 3, dtype: torch.dtype = torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 20, 22, dtype=dtype, generator=gen)
    xy = torch.randint(0, 12, (num, 2), generator=gen)
    wh = torch.randint(4, 9, (num, 2), generator=gen)
    boxes = torch.cat([xy, xy + wh], 1).to(dtype) + 0.25  # float boxes: gradients reach them
    theta = torch.eye(2, 3, dtype=dtype) + 0.15 * torch.randn(num, 2, 3, dtype=dtype, generator=gen)
    obj = torch.arange(num) % 2
    return images, boxes, theta, obj


def _grads(fn, images, boxes, theta, obj, **kwargs):
    x, b, t = (v.clone().requires_grad_(True) for v in (images, boxes, theta))
    out = fn(x, b, t, obj, **kwargs)
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    return (out.detach(), *torch.autograd.grad((out * weight).sum(), [x, b, t]))


def _assert_same(got, want, atol=1e-12):
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


@pytest.mark.parametrize("padding_mode", ["zeros", "image"])
@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
def test_fullgraph_function_matches_eager_and_reference(padding_mode, overlap):
    def fn(images, boxes, theta, obj, **kwargs):
        return warp_patches(images, boxes, theta, obj, **kwargs) * 2 + 1

    compiled = torch.compile(fn, fullgraph=True, backend=BACKEND)
    batch = _batch()
    kwargs = {"padding_mode": padding_mode, "overlap": overlap}
    got = _grads(compiled, *batch, **kwargs)
    _assert_same(got, _grads(fn, *batch, **kwargs))
    ref = _grads(lambda *a, **k: reference_warp(*a, **k) * 2 + 1, *batch, **kwargs)
    _assert_same(got[:1], ref[:1])
    for a, b in zip(got[1:], ref[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_dynamic_number_of_objects_recompiles_nothing_and_matches_eager():
    counts = []

    def count_backend(gm, example_inputs):
        counts.append(1)
        return gm.forward

    fn = torch.compile(lambda *a: warp_patches(*a), fullgraph=True, dynamic=True, backend=count_backend)
    # (no count equal to another size of the call, 2, 3 or 4: PyTorch's "duck sizing" gives
    # equal sizes one symbol, which the checks of theta's [2, 3] would then specialise)
    for num, seed in ((5, 0), (7, 1), (9, 2)):
        batch = _batch(num, seed=seed)
        torch.testing.assert_close(fn(*batch), warp_patches(*batch), rtol=0, atol=0)
    assert len(counts) == 1  # one graph for every number of objects


class SpatialTransformer(nn.Module):
    """The use case augpatch grew out of: a head predicts each object's ``theta``."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 6, dtype=torch.float64)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, images: torch.Tensor, boxes: torch.Tensor, obj_to_img: torch.Tensor) -> torch.Tensor:
        theta = self.head(boxes / images.shape[-1]).view(-1, 2, 3)
        return warp_patches(images, boxes, theta, obj_to_img, mode="bicubic", padding_mode="border")


def _module_grads(module, images, boxes, obj):
    module.zero_grad()
    x = images.clone().requires_grad_(True)
    out = module(x, boxes, obj)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    return out.detach(), x.grad, module.head.weight.grad.clone(), module.head.bias.grad.clone()


def test_fullgraph_spatial_transformer_module_matches_eager():
    module = SpatialTransformer()
    images, boxes, _, obj = _batch(4)
    eager = _module_grads(module, images, boxes, obj)
    compiled = torch.compile(module, fullgraph=True, backend=BACKEND)
    _assert_same(_module_grads(compiled, images, boxes, obj), eager, atol=1e-11)
    # a second call with another number of objects: no error, still equal
    images2, boxes2, _, obj2 = _batch(6, seed=3)
    _assert_same(_module_grads(compiled, images2, boxes2, obj2),
                 _module_grads(module, images2, boxes2, obj2), atol=1e-11)


def test_inductor_backend_end_to_end():
    module = SpatialTransformer()
    images, boxes, _, obj = _batch(4)
    compiled = torch.compile(module, fullgraph=True)  # the default backend (Inductor)
    _assert_same(_module_grads(compiled, images, boxes, obj),
                 _module_grads(module, images, boxes, obj), atol=1e-11)


def test_export_round_trip_with_dynamic_number_of_objects():
    module = SpatialTransformer()
    images, boxes, _, obj = _batch(4)
    n = torch.export.Dim("n", min=1)
    program = torch.export.export(
        module, (images, boxes, obj),
        dynamic_shapes={"images": None, "boxes": {0: n}, "obj_to_img": {0: n}},
    )
    targets = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    assert f"augpatch.{WARP_NAME}.default" in targets
    for num, seed in ((4, 0), (7, 5)):
        images, boxes, _, obj = _batch(num, seed=seed)
        torch.testing.assert_close(program.module()(images, boxes, obj), module(images, boxes, obj),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("bad", ["nan_theta", "inf_boxes", "image_index"])
def test_bad_values_raise_the_eager_errors_inside_a_compiled_graph(bad):
    fn = torch.compile(lambda *a: warp_patches(*a), fullgraph=True, backend=BACKEND)
    images, boxes, theta, obj = _batch()
    fn(images, boxes, theta, obj)  # compiles
    if bad == "nan_theta":
        theta = theta.clone()
        theta[1, 0, 2] = float("nan")
        error, match = ValueError, "theta contains NaN or Inf"
    elif bad == "inf_boxes":
        boxes = boxes.clone()
        boxes[0, 2] = float("inf")
        error, match = ValueError, "boxes contains NaN or Inf"
    else:
        obj = torch.tensor([0, 2, 1])
        error, match = IndexError, "obj_to_img holds image index 2, but the batch has 2 images"
    with pytest.raises(error, match=match):
        fn(images, boxes, theta, obj)
    with pytest.raises(error, match=match):  # the same error as in eager mode
        warp_patches(images, boxes, theta, obj)


def _float32_case(case: str):
    """A float32 batch whose images are converted as ``case`` names (uint8, half, ...)."""
    images, boxes, theta, obj = _batch(3, dtype=torch.float32)
    if case == "uint8":
        images = (images * 255).to(torch.uint8)
    elif case == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    elif case == "half":
        images = images.half()
    return images, boxes, theta, obj


@pytest.mark.parametrize("case", ["float32", "uint8", "channels_last", "half", "no_box_pixel"])
def test_operator_passes_opcheck(case):
    """``torch.library.opcheck``: schema, fake (meta) implementation, autograd registration."""
    images, boxes, theta, obj = _float32_case(case)
    if case == "no_box_pixel":
        boxes = torch.tensor([[30.0, 30, 40, 40], [1, 1, 1, 9], [5, 5, 4, 9]])
    differentiable = images.is_floating_point()
    theta = theta.requires_grad_(differentiable)
    images = images.requires_grad_(differentiable)
    args = (images, boxes, theta, obj, "bilinear", "zeros", False, "sequential", differentiable)
    torch.library.opcheck(warp_op.default, args)


@pytest.mark.parametrize("case", ["float32", "uint8", "channels_last"])
def test_fake_implementation_output_metadata(case):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    images, boxes, theta, obj = _float32_case(case)
    real = warp_patches(images, boxes, theta, obj)
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        fake = warp_patches(*(mode.from_tensor(v) for v in (images, boxes, theta, obj)))
    assert fake.shape == real.shape == images.shape
    assert fake.dtype == real.dtype == images.dtype
    assert fake.stride() == real.stride() == images.stride()


def test_patch_affine_with_tensor_theta_compiles_fullgraph():
    images, boxes, theta, obj = _batch(4)
    aug = PatchAffine(theta=theta)
    compiled = torch.compile(aug, fullgraph=True, backend=BACKEND)
    got = compiled(images, boxes, obj)
    want = aug(images, boxes, obj)
    torch.testing.assert_close(got.images, want.images, rtol=0, atol=0)
    torch.testing.assert_close(got.boxes, want.boxes, rtol=0, atol=0)


@pytest.mark.parametrize("training", [True, False])
def test_random_transform_compiles_with_graph_breaks_and_replays(training):
    """Sampling happens in Python (graph breaks); the compiled module still runs, and
    replaying its parameters in eager mode gives the same result."""
    images, boxes, _, obj = _batch(5)
    aug = RandomPatchAffine(degrees=20.0, scale=(0.8, 1.2), p=0.7).train(training)
    compiled = torch.compile(aug, backend=BACKEND)
    got = compiled(images, boxes, obj)
    replay = aug(images, boxes, obj, params=aug._params)
    torch.testing.assert_close(got.images, replay.images, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.boxes, replay.boxes, rtol=0, atol=1e-12)
