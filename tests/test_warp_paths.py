"""The two execution paths of ``warp_patches`` agree with each other and with the loop.

For one or two integer boxes ``warp_patches`` runs the reference computation
directly; otherwise it builds a level plan. Both must give the same values and
gradients on the same inputs.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from reference import reference_warp

from augpatch.functional import _warp, warp_patches
from augpatch.ops import plan as _plan_module
from augpatch.ops import schedule as _plan

COMBOS = list(itertools.product(
    ["bilinear", "nearest", "bicubic"], ["zeros", "border", "reflection"], [False, True],
    ["sequential", "parallel"],
))


@pytest.mark.parametrize(("mode", "padding_mode", "align_corners", "overlap"), COMBOS)
def test_few_objects_path_equals_plan_path(monkeypatch, mode, padding_mode, align_corners, overlap):
    gen = torch.Generator().manual_seed(7)
    images = torch.rand(2, 3, 15, 17, dtype=torch.float64, generator=gen)
    boxes = torch.tensor([[1, 2, 12, 14], [4, 0, 17, 9]])  # overlapping in image 0
    obj_to_img = torch.tensor([0, 0])
    noise = torch.randn(2, 2, 3, dtype=torch.float64, generator=gen)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.2 * noise
    weight = torch.randn(2, 3, 15, 17, dtype=torch.float64, generator=gen)
    kwargs = {
        "mode": mode, "padding_mode": padding_mode, "align_corners": align_corners, "overlap": overlap,
    }

    def run():
        img = images.clone().requires_grad_()
        th = theta.clone().requires_grad_()
        out = warp_patches(img, boxes, th, obj_to_img, **kwargs)
        grads = torch.autograd.grad((out * weight).sum(), [img, th])
        return out.detach(), grads

    few = run()
    monkeypatch.setattr(_warp, "_FEW_OBJECTS", 0)  # force the plan path
    planned = run()
    ref = reference_warp(images, boxes, theta, obj_to_img, **kwargs)
    torch.testing.assert_close(few[0], ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(planned[0], ref, rtol=0, atol=1e-12)
    for a, b in zip(few[1], planned[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("boxes", [
    [[1, 2, 12, 14], [4, 0, 17, 9]],
    [[-5, -3, 30, 40], [10, 10, 10, 12]],  # beyond the canvas; an empty box
    [[3.0, 1.0, 9.0, 20.0], [20.0, 0.0, 25.0, 4.0]],  # integral floats; one box outside
    [[1.5, 2.0, 12.0, 14.0], [0.0, 0.0, 2.0, 2.0]],  # a fractional coordinate: no rects
    [[-2.5, 1.0, 3.0, 20.0], [16.0, 14.0, 18.2, 15.0]],  # fractional, but integral once clipped
])
def test_few_rects_cpu_equal_the_tensor_path(boxes):
    """The Python-number planning of the few-objects path gives the operator's pixel rects."""
    dtype = torch.float64 if isinstance(boxes[0][0], float) else torch.long
    box = torch.tensor(boxes, dtype=dtype)
    theta = torch.eye(2, 3).expand(2, 2, 3)
    obj_to_img = torch.tensor([1, 0])
    fast = _warp._few_rects_cpu(box, theta, obj_to_img, 2, 15, 17)
    slow = _warp._few_rects(box, theta, obj_to_img, 2, 15, 17)
    assert fast == slow
    assert (fast is None) == (boxes[0][0] == 1.5)


@pytest.mark.parametrize(("boxes", "theta", "obj_to_img", "error", "match"), [
    ([[0, 0, float("nan"), 4]], torch.eye(2, 3)[None], [0], ValueError, "boxes contains NaN"),
    ([[0, 0, 4, 4]], torch.full((1, 2, 3), float("inf")), [0], ValueError, "theta contains NaN"),
    ([[0, 0, 4, 4]], torch.eye(2, 3)[None], [2], IndexError, "holds image index 2, but the batch has 2"),
    ([[0, 0, 4, 4]], torch.eye(2, 3)[None], [-1], IndexError, "negative image index"),
])
def test_few_rects_cpu_raise_the_operators_errors(boxes, theta, obj_to_img, error, match):
    box, index = torch.tensor(boxes, dtype=torch.float64), torch.tensor(obj_to_img)
    for rects in (_warp._few_rects_cpu, _warp._few_rects):
        with pytest.raises(error, match=match):
            rects(box, theta, index, 2, 8, 8)


def test_few_objects_path_is_taken_only_when_exact(monkeypatch):
    """Float (non-integer) boxes, image padding and uint8 always use the plan."""
    calls = []
    original = _warp._warp_few

    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        if result is not None:  # the loop ran
            calls.append(1)
        return result

    monkeypatch.setattr(_warp, "_warp_few", counted)
    images = torch.rand(1, 1, 8, 8)
    theta = torch.eye(2, 3)[None]
    warp_patches(images, torch.tensor([[1, 1, 5, 5]]), theta)
    assert calls == [1]
    warp_patches(images, torch.tensor([[1.5, 1, 5, 5]]), theta)
    warp_patches(images, torch.tensor([[1, 1, 5, 5]]), theta, padding_mode="image")
    warp_patches((images * 255).to(torch.uint8), torch.tensor([[1, 1, 5, 5]]), theta)
    assert calls == [1]


@pytest.mark.parametrize("overlap", ["sequential", "parallel"])
@pytest.mark.parametrize(("mode", "padding_mode"), [
    ("bilinear", "zeros"), ("bicubic", "reflection"), ("nearest", "border"), ("bilinear", "image"),
])
def test_many_chunks_per_level_equal_reference(monkeypatch, overlap, mode, padding_mode):
    """Levels split into many row-aligned chunks (here 7 pixels) give the loop's values and
    gradients: a level reads everything before it writes, and its backward gathers every
    output gradient before scattering any."""
    monkeypatch.setattr(_plan_module, "_CHUNK", 7)
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(2, 2, 16, 18, dtype=torch.float64, generator=gen)
    boxes = torch.tensor([[1, 1, 12, 10], [5, 4, 17, 15], [0, 8, 9, 16], [2, 2, 16, 14], [3, 0, 10, 7]])
    obj_to_img = torch.tensor([0, 0, 0, 1, 1])
    noise = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen)
    theta = torch.eye(2, 3, dtype=torch.float64) + 0.25 * noise
    weight = torch.randn(2, 2, 16, 18, dtype=torch.float64, generator=gen)
    kwargs = {"mode": mode, "padding_mode": padding_mode, "overlap": overlap}

    def run(fn):
        img = images.clone().requires_grad_()
        th = theta.clone().requires_grad_()
        out = fn(img, boxes, th, obj_to_img, **kwargs)
        return out.detach(), torch.autograd.grad((out * weight).sum(), [img, th])

    got, ref = run(warp_patches), run(reference_warp)
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-12)
    for a, b in zip(got[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_overlap_edges_do_not_depend_on_pair_chunking(monkeypatch):
    """The pairwise overlap test runs in chunks of pairs (bounded memory); the edges found
    are the same whatever the chunk size."""

    gen = torch.Generator().manual_seed(11)
    xy = torch.randint(0, 40, (60, 2), generator=gen)
    wh = torch.randint(1, 15, (60, 2), generator=gen)
    write = torch.cat([xy, xy + wh], 1)
    read = torch.cat([xy - 2, xy + wh + 2], 1)
    image = torch.randint(0, 3, (60,), generator=gen)

    def edges():
        src, dst, strict = _plan.overlap_edges(write, read, image)
        return sorted(zip(src.tolist(), dst.tolist(), strict.tolist()))

    monkeypatch.setattr(_plan, "_DENSE_MAX", 0)  # the sweep (60 objects would be tested densely)
    whole = edges()
    monkeypatch.setattr(_plan, "_PAIR_CHUNK", 7)
    assert edges() == whole
    assert len(whole) > 20


def _layout(kind: str, k: int, gen: torch.Generator) -> torch.Tensor:
    """``[k, 4]`` rects: random, a column (one shared x range) or strips (one y range)."""
    xy = torch.randint(0, 30, (k, 2), generator=gen)
    wh = torch.randint(1, 12, (k, 2), generator=gen)
    rects = torch.cat([xy, xy + wh], 1)
    if kind == "column":
        rects[:, 0], rects[:, 2] = 3, 9
    elif kind == "strips":
        rects[:, 1], rects[:, 3] = 2, 5
    return rects


@pytest.mark.parametrize("layout", ["random", "column", "strips"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("with_read", [False, True])
@pytest.mark.parametrize("search", ["sweep", "dense"])
def test_overlap_edges_equal_the_pairwise_definition(monkeypatch, seed, with_read, layout, search):
    """Edges come only from pairs of one image (objects are grouped by image before the
    test); they are exactly those of the plain pairwise definition, whichever axis the
    sweep takes, and when every pair is tested at once (few objects)."""
    monkeypatch.setattr(_plan, "_DENSE_MAX", 0 if search == "sweep" else 1000)

    gen = torch.Generator().manual_seed(seed)
    k = int(torch.randint(0, 40, (1,), generator=gen))
    write = _layout(layout, k, gen)
    xy, wh = write[:, :2], write[:, 2:] - write[:, :2]
    read = torch.cat([xy - 2, xy + wh + 1], 1) if with_read else None
    image = torch.randint(0, 4, (k,), generator=gen)

    def meet(a, b):
        return max(a[0], b[0]) < min(a[2], b[2]) and max(a[1], b[1]) < min(a[3], b[3])

    w, r, img = write.tolist(), (read.tolist() if with_read else None), image.tolist()
    expected = []
    for m in range(k):
        for n in range(m + 1, k):
            if img[m] != img[n]:
                continue
            strict = meet(w[m], w[n]) or (r is not None and meet(w[m], r[n]))
            loose = not strict and r is not None and meet(r[m], w[n])
            if strict or loose:
                expected.append((m, n, int(strict)))
    src, dst, strict = _plan.overlap_edges(write, read, image)
    assert sorted(zip(src.tolist(), dst.tolist(), strict.tolist())) == sorted(expected)


@pytest.mark.parametrize("layout", ["column", "strips"])
def test_overlap_sweep_takes_the_axis_with_fewer_candidate_pairs(monkeypatch, layout):
    """A column of boxes shares one x range and a stack of strips one y range: swept along
    that axis every pair would be a candidate (``K^2 / 2``); the sweep takes the other
    axis, so the pairs tested stay near the pairs that meet."""

    k = 400
    step = torch.arange(k) * 3  # each box meets only its neighbours along the free axis
    rects = torch.zeros(k, 4, dtype=torch.long)
    if layout == "column":
        rects[:, 0], rects[:, 2], rects[:, 1], rects[:, 3] = 0, 50, step, step + 5
    else:
        rects[:, 1], rects[:, 3], rects[:, 0], rects[:, 2] = 0, 50, step, step + 5
    tested = []
    real = _plan._rects_intersect
    monkeypatch.setattr(_plan, "_rects_intersect",
                        lambda a, b: tested.append(a.shape[0]) or real(a, b))
    src, dst, strict = _plan.overlap_edges(rects, None, torch.zeros(k, dtype=torch.long))
    assert sorted(zip(src.tolist(), dst.tolist())) == [(n, n + 1) for n in range(k - 1)]
    assert strict.all() and sum(tested) <= 2 * k  # not k * (k - 1) / 2 = 79800


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid:UserWarning")
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_base_grid_table_equals_affine_grid(align_corners, dtype):
    # the cached table must give affine_grid's base coordinates bit for bit, for every size

    sizes = torch.tensor([1, 2, 3, 7, 16, 17, 64, 255, 1024, 1500])
    size = torch.repeat_interleave(sizes, sizes)
    index = torch.arange(size.numel()) - (torch.cumsum(sizes, 0) - sizes).repeat_interleave(sizes)
    got = _plan.base_grid(index, size, align_corners, dtype)
    identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]], dtype=dtype)
    expected = torch.cat([
        F.affine_grid(identity, [1, 1, 1, int(n)], align_corners=align_corners)[0, 0, :, 0]
        for n in sizes
    ])
    assert torch.equal(got, expected)


def _literal_loop(images, boxes, theta, obj_to_img, mode, padding_mode, align_corners, overlap):
    """The few-objects path as it was before its fast path (the SPEC's loop on integer boxes,
    every crop through ``F.affine_grid``): the bit-for-bit baseline of the next test."""
    out = images
    h, w = images.shape[2:]
    index = [0] * boxes.shape[0] if obj_to_img is None else obj_to_img.tolist()
    for n, ((x0, y0, x1, y1), b) in enumerate(zip(boxes.tolist(), index, strict=True)):
        x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
        y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
        if x1 <= x0 or y1 <= y0:
            continue
        src = out if overlap == "sequential" else images
        grid = F.affine_grid(theta.reshape(-1, 2, 3)[n : n + 1].to(images.dtype),
                             [1, images.shape[1], y1 - y0, x1 - x0], align_corners=align_corners)
        new = F.grid_sample(src[b : b + 1, :, y0:y1, x0:x1], grid, mode=mode,
                            padding_mode=padding_mode, align_corners=align_corners)
        out = out.clone()
        out[b : b + 1, :, y0:y1, x0:x1] = new
    return out if out is not images else images.clone()


@pytest.mark.parametrize("cached", [True, False])
def test_few_objects_fast_path_is_bit_identical_to_the_loop(monkeypatch, cached):
    """One or two boxes (the fast checks, the cached base grid, no theta slice for one box):
    values and gradients equal the literal loop bit for bit, on random cases (shapes, dtypes,
    modes, theta [N, 6] or float64 with float32 images, obj_to_img omitted or not)."""
    monkeypatch.setattr(_warp, "_GRIDS", {})
    if not cached:
        monkeypatch.setattr(_warp, "_GRID_CACHE_PIXELS", 0)  # F.affine_grid itself
    gen = torch.Generator().manual_seed(21)
    rint = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=gen))  # noqa: E731
    for case in range(60):
        batch, channels, h, w = rint(1, 2), rint(1, 3), rint(1, 20), rint(1, 20)
        num = rint(1, 2)
        dtype = (torch.float32, torch.float64)[case % 2]
        images = torch.rand(batch, channels, h, w, dtype=dtype, generator=gen)
        x = torch.randint(-3, w + 3, (num, 2), generator=gen).sort(1).values
        y = torch.randint(-3, h + 3, (num, 2), generator=gen).sort(1).values
        boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1)
        theta_dtype = torch.float64 if case % 5 == 0 else dtype
        theta = (torch.eye(2, 3, dtype=theta_dtype) + 0.3 * torch.randn(num, 2, 3, dtype=theta_dtype,
                                                                          generator=gen))
        if case % 3 == 0:
            theta = theta.reshape(num, 6)
        obj_to_img = torch.randint(0, batch, (num,), generator=gen) if batch > 1 or case % 4 else None
        mode, padding_mode, align_corners, overlap = COMBOS[case % len(COMBOS)]
        weight = torch.randn(batch, channels, h, w, dtype=dtype, generator=gen)
        results = []
        for fn in (warp_patches, _literal_loop):
            img, th = images.clone().requires_grad_(), theta.clone().requires_grad_()
            out = fn(img, boxes, th, obj_to_img, mode=mode, padding_mode=padding_mode,
                     align_corners=align_corners, overlap=overlap)
            grads = torch.autograd.grad((out * weight).sum(), [img, th], allow_unused=True)
            results.append([out.detach(), *[torch.zeros(()) if g is None else g for g in grads]])
        for got, want in zip(*results, strict=True):
            assert got.dtype == want.dtype and torch.equal(got, want), (case, mode, padding_mode)
    assert bool(_warp._GRIDS) == cached


def test_patch_grid_cache_is_bounded_and_works_after_inference_mode(monkeypatch):
    """A base grid first built in inference mode serves later calls with gradients; the cache
    keeps at most ``_GRID_CACHE_SIZE`` grids."""
    monkeypatch.setattr(_warp, "_GRIDS", {})
    monkeypatch.setattr(_warp, "_GRID_CACHE_SIZE", 3)
    theta = (torch.eye(2, 3) + 0.1).unsqueeze(0).requires_grad_()
    with torch.inference_mode():
        _warp._patch_grid(theta.detach(), 3, 7, 9, False)
    grid = _warp._patch_grid(theta, 3, 7, 9, False)
    (grad,) = torch.autograd.grad(grid.sum(), theta)
    (want,) = torch.autograd.grad(F.affine_grid(theta, [1, 3, 7, 9], align_corners=False).sum(), theta)
    assert torch.equal(grad, want)
    for size in range(1, 6):
        _warp._patch_grid(theta.detach(), 1, size, 4, False)
    assert len(_warp._GRIDS) == 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
def test_patch_grid_equals_affine_grid_bit_for_bit(dtype, align_corners):
    """The cached base grid + ``bmm`` gives ``F.affine_grid``'s grid and theta gradient exactly."""
    gen = torch.Generator().manual_seed(5)
    for h, w in itertools.product([1, 2, 3, 7, 64, 100], [1, 2, 5, 129]):
        theta = (2 * torch.randn(1, 2, 3, dtype=dtype, generator=gen)).requires_grad_()
        weight = torch.randn(1, h, w, 2, dtype=dtype, generator=gen)
        got = _warp._patch_grid(theta, 3, h, w, align_corners)
        want = F.affine_grid(theta, [1, 3, h, w], align_corners=align_corners)
        assert torch.equal(got, want), (h, w)
        assert torch.equal(torch.autograd.grad((got * weight).sum(), theta)[0],
                           torch.autograd.grad((want * weight).sum(), theta)[0]), (h, w)
