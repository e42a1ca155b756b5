"""Input validation: the one home of augpatch's argument checks.

Every public entry point (the functional core, the transforms, the policies, the
adapters, the loader) validates its arguments with these helpers so that bad input
fails early with a message that names the argument and what is wrong with it, instead
of crashing deep inside PyTorch or silently producing garbage. Other packages import
them from here (``augpatch.functional.checks`` remains as an alias of this module).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from augpatch.ops.values import check_image_index, compute_dtype  # noqa: F401  (re-exported)

_IMAGE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8)

MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection", "image")
OVERLAPS = ("sequential", "parallel")

#: Boxes as accepted by every entry point: a flat ``[N, 4]`` tensor (with ``obj_to_img``)
#: or a list of ``B`` per-image tensors ``[N_i, 4]``.
BoxesLike = Tensor | Sequence[Tensor]


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a Python ``bool``, else raise ``TypeError`` naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


class _Deferred(threading.local):
    """Per thread: whether :func:`values_checked_later` is active. ``on`` is set from the start
    in every thread (``threading.local`` runs ``__init__`` per thread), so that
    ``torch.compile``'s guard on it does not change from "absent" to "present" after the
    first eager call (which recompiled the graph)."""

    def __init__(self) -> None:
        self.on = False


_DEFERRED = _Deferred()


@contextmanager
def values_checked_later(enabled: bool = True) -> Iterator[None]:
    """Within this block the value checks of this module are skipped (shape/dtype checks run).

    For callers that check values themselves later, in one place: ``warp_patches``
    leaves them to the operator ``augpatch::warp``, which checks boxes, ``theta`` and the
    image indices in its one device-to-host copy. ``enabled=False``: a no-op.
    """
    previous = _DEFERRED.on
    _DEFERRED.on = previous or enabled
    try:
        yield
    finally:
        _DEFERRED.on = previous


def values_visible(value: Tensor) -> bool:
    """Whether the values of ``value`` can be read here (not a meta or fake tensor, not tracing).

    Under ``torch.compile`` / ``torch.export`` value checks cannot run while tracing; the
    operator ``augpatch::warp`` repeats them on the real tensors when the graph runs.
    Also ``False`` inside :func:`values_checked_later`.
    """
    if _DEFERRED.on or value.is_meta or torch.compiler.is_compiling():
        return False
    if (  # a plain tensor, not functionalized or wrapped: not fake (is_fake's own tests, ~4 us)
        type(value) is Tensor
        and not torch._is_functional_tensor(value)
        and not torch._C._functorch.is_functorch_wrapped_tensor(value)
    ):
        return True
    from torch._subclasses.fake_tensor import is_fake

    return not is_fake(value)


def _numpy_importable() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:  # pragma: no cover - torch without NumPy
        return False
    return True


_NUMPY = _numpy_importable()
_HOST_DTYPES = (torch.float32, torch.float64)


def host_arithmetic(*tensors: Tensor) -> bool:
    """Whether a few values' arithmetic may run in NumPy instead of small tensor operations:
    plain CPU tensors of float32 or float64 whose values are visible (no tracing, no
    ``torch.func`` transform), none needing a gradient, and NumPy importable. The one test
    every few-objects host path (``functional.host``) runs before it is taken.

    Example:
        >>> host_arithmetic(torch.zeros(3, 4)), host_arithmetic(torch.zeros(3, 4, requires_grad=True))
        (True, False)
    """
    if not _NUMPY:  # pragma: no cover - torch without NumPy
        return False
    for t in tensors:
        if type(t) is not Tensor or not t.is_cpu or t.requires_grad or t.dtype not in _HOST_DTYPES:
            return False
    return values_visible(tensors[0]) and not torch._C._are_functorch_transforms_active()


def check_finite(name: str, value: Tensor) -> None:
    """Raise ``ValueError`` if a floating tensor holds NaN or Inf (when its values are visible)."""
    if not values_visible(value):  # no values to look at; other checks still apply
        return
    if not value.is_floating_point() or not value.numel():
        return
    value = value.detach()  # isfinite is composite (abs, ne, eq): no graph recorded
    if (_NUMPY and type(value) is Tensor and value.is_cpu and value.dtype in _HOST_DTYPES
            and value.numel() <= 4096 and not value.is_neg()
            and not torch._C._functorch.is_functorch_wrapped_tensor(value)):
        import numpy as np  # a few plain values: NumPy's test is half of torch's few-op cost

        finite = bool(np.isfinite(value.numpy()).all())
    else:
        finite = bool(torch.isfinite(value).all())
    if not finite:
        raise ValueError(f"{name} contains NaN or Inf values")


def check_images(images: object, name: str = "images") -> Tensor:
    """Validate an image batch ``[B, C, H, W]`` of a supported dtype."""
    images = check_tensor(name, images)
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(images.shape)}")
    if images.dtype not in _IMAGE_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32, float64 or uint8, got {images.dtype}"
        )
    return images


def check_boxes(boxes: object, name: str = "boxes") -> Tensor:
    """Validate a flat box tensor ``[N, 4]`` (float or integer, finite)."""
    boxes = check_tensor(name, boxes)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {tuple(boxes.shape)}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must be a real float or integer tensor, got {boxes.dtype}")
    check_finite(name, boxes)
    return boxes


def check_points(
    points: object, num_objects: int, name: str = "points", *, one_per_object: bool = False
) -> Tensor:
    """Validate per-object points (keypoints) ``[N, K, 2]`` (real, finite, ``N`` rows).

    With ``one_per_object=True`` a tensor ``[N, 2]`` is accepted too and returned as
    ``[N, 1, 2]`` (one point per object).
    """
    points = check_tensor(name, points)
    if one_per_object and points.dim() == 2 and points.shape[-1] == 2:
        points = points[:, None]
    if points.dim() != 3 or points.shape[-1] != 2:
        shape = "[N, K, 2] or [N, 2]" if one_per_object else "[N, K, 2]"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(points.shape)}")
    if points.dtype == torch.bool or points.is_complex():
        raise TypeError(f"{name} must be a real float or integer tensor, got {points.dtype}")
    if points.shape[0] != num_objects:
        raise ValueError(
            f"{name} has {points.shape[0]} rows but there are {num_objects} objects (boxes)"
        )
    check_finite(name, points)
    return points


def check_theta(theta: object, num_objects: int, name: str = "theta") -> Tensor:
    """Validate ``theta`` ``[N, 2, 3]`` or ``[N, 6]`` and return it as ``[N, 2, 3]``."""
    theta = check_tensor(name, theta)
    if not theta.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {theta.dtype}")
    if theta.dim() == 2 and theta.shape[-1] == 6:
        theta = theta.reshape(-1, 2, 3)
    elif not (theta.dim() == 3 and theta.shape[-2:] == (2, 3)):
        raise ValueError(f"{name} must have shape [N, 2, 3] or [N, 6], got {tuple(theta.shape)}")
    if theta.shape[0] != num_objects:
        raise ValueError(f"{name} has {theta.shape[0]} rows but there are {num_objects} boxes")
    check_finite(name, theta)
    return theta


def check_obj_to_img(
    obj_to_img: object, num_objects: int, batch_size: int, name: str = "obj_to_img"
) -> Tensor | None:
    """Validate ``obj_to_img`` ``[N]`` with values in ``[0, B)``.

    Returns ``None`` when it was omitted and ``B == 1`` (every object belongs to
    image 0); raises when it is omitted and ``B > 1``.
    """
    if obj_to_img is None:
        if batch_size != 1 and num_objects > 0:
            raise ValueError(
                f"{name} is required when the batch holds {batch_size} images "
                "(it says which image each box belongs to)"
            )
        return None
    obj_to_img = check_tensor(name, obj_to_img)
    if obj_to_img.dtype in (torch.bool,) or obj_to_img.is_floating_point() or obj_to_img.is_complex():
        raise TypeError(f"{name} must be an integer tensor (int64), got {obj_to_img.dtype}")
    if obj_to_img.dim() != 1 or obj_to_img.shape[0] != num_objects:
        raise ValueError(
            f"{name} must have shape [N] = [{num_objects}], got {tuple(obj_to_img.shape)}"
        )
    check_index_range(name, obj_to_img, batch_size)
    return obj_to_img.long()


def check_index_range(name: str, index: Tensor, size: int) -> None:
    """Raise ``IndexError`` if ``index`` holds a value outside ``[0, size)`` (when visible)."""
    if index.numel() and values_visible(index):
        check_image_index(name, index, size)


def check_image_sizes(
    image_sizes: object, batch_size: int, canvas: tuple[int, int], name: str = "image_sizes"
) -> Tensor | None:
    """Validate the real sizes of the images of a padded batch.

    A padded batch (``augpatch.data.collate_objects``) holds images of different sizes
    on one canvas ``(H, W)``, each at the top-left corner, with its padding to the
    bottom and right. ``image_sizes`` says each image's own ``(H_b, W_b)``.

    Args:
        image_sizes: ``None`` (every image fills the canvas), a ``[B, 2]`` integer
            tensor of ``(H_b, W_b)``, or a sequence of ``B`` pairs of ints.
        batch_size: ``B``.
        canvas: the canvas ``(H, W)``.

    Returns:
        ``None`` when ``image_sizes`` is ``None`` or every image fills the canvas (no
        padding: nothing to do), else a ``[B, 2]`` int64 CPU tensor ``(H_b, W_b)``
        with ``1 <= H_b <= H`` and ``1 <= W_b <= W``.

    Example:
        >>> check_image_sizes([(4, 6), (8, 8)], 2, (8, 8)).tolist()
        [[4, 6], [8, 8]]
        >>> check_image_sizes(None, 2, (8, 8)) is None
        True
    """
    if image_sizes is None:
        return None
    if isinstance(image_sizes, Tensor):
        if image_sizes.is_floating_point() or image_sizes.is_complex() or image_sizes.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers (H, W), got dtype {image_sizes.dtype}")
        sizes = image_sizes.detach().to("cpu", torch.long)
    elif isinstance(image_sizes, Sequence) and not isinstance(image_sizes, str):
        rows = [list(r.tolist()) if isinstance(r, Tensor) else r for r in image_sizes]
        for r in rows:
            if (
                not isinstance(r, Sequence)
                or len(r) != 2
                or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in r)
            ):
                raise TypeError(f"{name} must be B pairs (H, W) of ints, got {image_sizes!r}")
        sizes = torch.tensor(rows, dtype=torch.long).reshape(-1, 2)
    else:
        raise TypeError(
            f"{name} must be a [B, 2] integer tensor or a sequence of (H, W) pairs, "
            f"got {type(image_sizes).__name__}"
        )
    if sizes.dim() != 2 or sizes.shape != (batch_size, 2):
        raise ValueError(
            f"{name} must have shape [B, 2] = [{batch_size}, 2] (one (H, W) per image), "
            f"got {tuple(sizes.shape)}"
        )
    h, w = canvas
    if sizes.numel() and (
        int(sizes.min()) < 1 or int(sizes[:, 0].max()) > h or int(sizes[:, 1].max()) > w
    ):
        raise ValueError(
            f"{name} must hold sizes (H_b, W_b) with 1 <= H_b <= {h} and 1 <= W_b <= {w} "
            f"(the canvas), got {sizes.tolist()}"
        )
    if bool((sizes[:, 0] == h).all()) and bool((sizes[:, 1] == w).all()):
        return None
    return sizes


def check_same_device(**tensors: Tensor | None) -> None:
    """Raise ``ValueError`` if the given tensors live on different devices."""
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, Tensor)}
    if len(set(devices.values())) > 1:
        listed = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"all tensors must be on the same device, got {listed}")


def _byte_span(t: Tensor) -> tuple[int, int]:
    """The bytes ``[start, end)`` of ``t``'s elements in its storage (empty: ``(0, 0)``)."""
    if t.numel() == 0:
        return 0, 0
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True))
    start = t.data_ptr()
    return start, start + (last + 1) * t.element_size()


def _writes_twice(t: Tensor) -> bool:
    """Whether two elements of ``t`` may share memory (an expanded or overlapping view):
    the dims of size > 1 sorted by stride, each stride must pass the extent of the smaller
    ones (torch's own test for ``out=`` refuses the stride-0 case; this one also the rest)."""
    extent = 0
    for stride, size in sorted((st, s) for s, st in zip(t.shape, t.stride(), strict=True)
                               if s > 1):
        if stride <= extent:
            return True
        extent += (size - 1) * stride
    return False


def check_out(
    out: object, like: Tensor, inputs: dict[str, Tensor | None], name: str = "out",
    function: str = "warp_patches",
) -> Tensor:
    """Validate an ``out=`` tensor for a result of ``like``'s shape, dtype and device.

    ``out`` must be a strided ``torch.Tensor`` of exactly ``like``'s shape, dtype and device
    (no resize, no cast: ``TypeError`` / ``ValueError`` naming ``name``), with no element
    in memory twice (an expanded view). Its memory may be ``like``'s exactly (the same
    elements at the same addresses: the call works in place) but must share no byte with
    ``like`` otherwise, nor with any tensor of ``inputs`` (a partial overlap would read what
    the call has already written). No autograd: with grad mode on, refused when ``out``,
    ``like`` or an input requires grad (``RuntimeError``, as torch's own ``out=`` functions).
    Under ``torch.compile`` tracing the memory is not visible: the overlap checks are left
    out there (the caller computes the result before it writes ``out``).

    Example:
        >>> images = torch.zeros(1, 3, 4, 4)
        >>> check_out(images, images, {}) is images
        True
        >>> check_out(torch.zeros(1, 3, 4, 5), images, {})
        Traceback (most recent call last):
        ...
        ValueError: out must have the shape of images (1, 3, 4, 4), got (1, 3, 4, 5)
    """
    out = check_tensor(name, out)
    if out.layout != torch.strided:
        raise ValueError(f"{name} must be a strided (dense) tensor, got layout {out.layout}")
    if out.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of images {tuple(like.shape)}, got {tuple(out.shape)}"
        )
    if out.dtype != like.dtype:
        raise TypeError(f"{name} must have the dtype of images ({like.dtype}), got {out.dtype}")
    if out.device != like.device:
        raise ValueError(f"{name} must be on the device of images ({like.device}), got {out.device}")
    if _writes_twice(out):
        raise ValueError(
            f"{name} has elements that share memory (e.g. an expanded tensor); give a tensor "
            "whose every element has memory of its own (e.g. torch.empty_like(images))"
        )
    if torch.is_grad_enabled():
        needs = [n for n, t in {"images": like, **inputs, name: out}.items()
                 if isinstance(t, Tensor) and t.requires_grad]
        if needs:
            raise RuntimeError(
                f"{function}(..., {name}=...) does not support automatic differentiation, but "
                f"{', '.join(needs)} requires grad; call it without {name}= or under "
                "torch.no_grad()"
            )
    if values_visible(out) and out.device.type != "meta":
        _check_out_memory(out, like, inputs, name)
    return out


def _check_out_memory(out: Tensor, like: Tensor, inputs: dict[str, Tensor | None], name: str) -> None:
    """:func:`check_out`'s overlap checks (real tensors only)."""
    if out.numel() == 0:
        return
    storage = out.untyped_storage().data_ptr()
    span = None
    for other_name, t in (("images", like), *inputs.items()):
        if (not isinstance(t, Tensor) or t.device != out.device or t.numel() == 0
                or t.untyped_storage().data_ptr() != storage):
            continue  # another storage: nothing shared
        if t is like and t.data_ptr() == out.data_ptr() and t.stride() == out.stride():
            continue  # exactly the images: in place
        lo, hi = span = span or _byte_span(out)
        t_lo, t_hi = _byte_span(t)
        if t_lo < hi and lo < t_hi:
            raise ValueError(
                f"{name} shares memory with {other_name} (partly: other elements or other "
                f"strides); give {name}=images itself to work in place, or a tensor of its own"
            )


def parse_boxes(
    boxes: object, obj_to_img: object, batch_size: int, name: str = "boxes"
) -> tuple[Tensor, Tensor | None, bool]:
    """The one parser of the ``boxes`` / ``obj_to_img`` arguments of every entry point.

    Args:
        boxes: ``[N, 4]`` tensor, or a list / tuple of ``B`` per-image ``[N_i, 4]``
            tensors (then ``obj_to_img`` is implied and must be omitted).
        obj_to_img: ``[N]`` image index of each box, or ``None`` (allowed for ``B == 1``).
        batch_size: ``B``.

    Returns:
        ``(boxes [N, 4], obj_to_img [N] int64 or None, was_list)``; ``obj_to_img`` is
        ``None`` only when it was omitted for a single-image batch.
    """
    if isinstance(boxes, (list, tuple)):
        check_box_list(boxes, name)  # a plain Python list of numbers gets its own message
        if obj_to_img is not None:
            raise ValueError(
                f"obj_to_img must be omitted when {name} is a list of per-image tensors"
            )
        flat, o2i = flatten_box_list(boxes, batch_size, name)
        return flat, o2i, True
    boxes = check_boxes(boxes, name)
    return boxes, check_obj_to_img(obj_to_img, boxes.shape[0], batch_size), False


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_box_list(boxes: Sequence[object], name: str = "boxes") -> None:
    """Raise a ``TypeError`` that says what to pass if the list form holds no tensors.

    The list form is a list of ``B`` per-image tensors ``[N_i, 4]``; a plain Python list
    of numbers, or of lists of numbers (``[[x1, y1, x2, y2], ...]``), is the usual
    mistake: it is recognised and answered with the two forms augpatch takes.
    """
    if all(isinstance(b, Tensor) for b in boxes):
        return
    if boxes and all(_is_number(v) for v in boxes):
        what = f"a Python list of {len(boxes)} numbers"
        example = "torch.tensor([boxes]) for one box"
    elif boxes and all(
        isinstance(b, (list, tuple)) and all(_is_number(v) for v in b) for b in boxes
    ):
        what = f"a Python list of {len(boxes)} lists of numbers"
        example = f"torch.tensor({name}), shape [N, 4]"
    else:
        bad = next(i for i, b in enumerate(boxes) if not isinstance(b, Tensor))
        what = (
            f"a list whose item {bad} is a {type(boxes[bad]).__name__}, not a tensor"
        )
        example = f"torch.tensor({name}[i]) per image"
    raise TypeError(
        f"{name} is {what}. Pass the boxes as a tensor: either one [N, 4] tensor of xyxy "
        f"pixel boxes ({example}) together with obj_to_img, an [N] int64 tensor of each "
        "box's image index (it may be omitted when the batch holds one image), or a list "
        "of B tensors [N_i, 4], one per image."
    )


def flatten_box_list(boxes: Sequence[object], batch_size: int, name: str = "boxes") -> tuple[Tensor, Tensor]:
    """Turn a list of ``B`` per-image ``[N_i, 4]`` tensors into flat boxes and ``obj_to_img``.

    The one parser of the list form; a plain Python list of numbers or of lists of numbers
    raises a ``TypeError`` that says what to pass instead (:func:`check_box_list`).
    """
    check_box_list(boxes, name)
    if len(boxes) != batch_size:
        raise ValueError(f"{name} is a list of {len(boxes)} tensors but the batch has {batch_size} images")
    items = [check_boxes(b, f"{name}[{i}]") for i, b in enumerate(boxes)]
    if not items:
        raise ValueError(f"{name} is an empty list")
    check_same_device(**{f"{name}[{i}]": b for i, b in enumerate(items)})
    dtype = items[0].dtype
    for i, b in enumerate(items):
        if b.dtype != dtype:
            raise TypeError(f"{name}[{i}] has dtype {b.dtype} but {name}[0] has {dtype}")
    flat = torch.cat(items, 0)
    counts = torch.tensor([b.shape[0] for b in items], device=flat.device)
    obj_to_img = torch.repeat_interleave(torch.arange(batch_size, device=flat.device), counts)
    return flat, obj_to_img


def fill_tensor(fill: float | Sequence[float] | Tensor, channels: int, name: str = "fill") -> Tensor:
    """Validate a constant fill (a number or one value per channel) as a float64 ``[C]`` tensor."""
    if isinstance(fill, bool):
        raise TypeError(f"{name} must be a number or a sequence of {channels} numbers, got bool")
    try:
        t = torch.as_tensor(fill, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{name} must be a number or a sequence of {channels} numbers, got {fill!r}"
        ) from e
    if t.dim() == 0 or t.numel() == 1:
        t = t.reshape(1).expand(channels)
    if t.dim() != 1 or t.numel() != channels:
        raise ValueError(
            f"{name} must be a number or one value per channel ({channels}), got shape "
            f"{tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t.clone()


def check_targets(
    masks: Tensor | None,
    image_masks: Tensor | None,
    keypoints: Tensor | None,
    n: int,
    batch: int,
    size: tuple[int, int],
) -> Tensor | None:
    """Validate the optional targets of a transform's call; returns the checked keypoints.

    The one target check of every transform and policy (``PatchAugmentationBase``,
    ``DetectionAutoAugment``).

    Args:
        masks: ``[N, H, W]``, one mask per object, or ``None``.
        image_masks: ``[B, K, H, W]`` or ``[B, H, W]``, or ``None``.
        keypoints: ``[N, K, 2]`` pixel points per object, or ``None``.
        n: the number of objects ``N``.
        batch: the number of images ``B``.
        size: the canvas ``(H, W)``.

    Returns:
        ``keypoints`` as checked by :func:`check_points` (``None`` when not given).

    Example:
        >>> check_targets(torch.zeros(2, 4, 4), None, None, 2, 1, (4, 4)) is None
        True
        >>> check_targets(torch.zeros(3, 4, 4), None, None, 2, 1, (4, 4))
        Traceback (most recent call last):
            ...
        ValueError: masks must be a tensor [N, H, W] = [2, 4, 4], got (3, 4, 4)
    """
    if masks is not None and (
        not isinstance(masks, Tensor) or masks.dim() != 3 or tuple(masks.shape) != (n, *size)
    ):
        raise ValueError(
            f"masks must be a tensor [N, H, W] = {[n, *size]}, "
            f"got {tuple(getattr(masks, 'shape', ()))}"
        )
    if image_masks is not None and not (
        isinstance(image_masks, Tensor)
        and image_masks.dim() in (3, 4)
        and tuple(image_masks.shape[-2:]) == size
        and image_masks.shape[0] == batch
    ):
        raise ValueError(
            f"image_masks must be a tensor [B, K, H, W] or [B, H, W] with B = {batch} and "
            f"(H, W) = {size}, got {tuple(getattr(image_masks, 'shape', ()))}"
        )
    return None if keypoints is None else check_points(keypoints, n, "keypoints",
                                                       one_per_object=True)
