"""torchvision v2 form of copy-paste for batched samples: :class:`CopyPasteBatch`.

A ``v2`` transform sees one sample, and copy-paste needs two images, so torchvision's own
``references/detection`` apply their ``SimpleCopyPaste`` in the ``DataLoader``'s collate
function, on the batch as ``utils.collate_fn`` builds it::

    def copypaste_collate_fn(batch):
        return copy_paste(*utils.collate_fn(batch))   # (images, targets) -> (images, targets)

:class:`CopyPasteBatch` takes exactly that input: a list / tuple of images
(``tv_tensors.Image`` or plain ``[C, H_i, W_i]`` tensors, float or uint8, sizes may
differ) and a list / tuple of as many target dicts with ``boxes``
(``tv_tensors.BoundingBoxes``, any format, or an ``xyxy`` tensor), ``labels`` and
optionally ``masks`` (``tv_tensors.Mask [N_i, H_i, W_i]``) and any other per-object or
per-image keys; it returns the same structure with the objects of image ``b - 1`` pasted
into image ``b`` (:class:`augpatch.RandomCopyPaste`'s arguments: per-object scale,
rotation, flip, placement, occlusion updates). Image ``b`` comes back at its own size
and dtype, as the class it came in (``Image`` / tensor); each target keeps its keys in
their order and classes (``BoundingBoxes`` in ``XYXY`` with the image's ``canvas_size``,
``Mask``); every per-object entry (``labels``, ``iscrowd``, ``area``, ...) follows the
objects (the pasted ones are appended, each with the entries of the object it copies);
``area`` is recomputed for occluded and pasted objects (mask pixels; box area without
masks); objects that became invisible (``keep`` False) are removed, as torchvision's
reference removes them.

Images of different sizes are padded onto one canvas (:func:`augpatch.data.collate_objects`),
pasted region by region (a pasted object is clipped to its destination image, the
padding is never read nor written) and cut back to their sizes.

``make_params`` samples (``RandomCopyPaste``'s parameters, replayable with
``params=transform.last_params``); ``transform`` applies them per input type (images,
targets). Runs where the images are (CPU in a collate function; move the batch first
to run it on a GPU, or use :class:`augpatch.data.BatchAugment` after the loader).

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from augpatch.integrations.torchvision_batch import CopyPasteBatch
    >>> images = [tv_tensors.Image(torch.rand(3, 32, 40)), tv_tensors.Image(torch.rand(3, 24, 24))]
    >>> def target(box, size):
    ...     mask = torch.zeros(1, *size, dtype=torch.bool)
    ...     mask[0, box[1]:box[3], box[0]:box[2]] = True
    ...     return {"boxes": tv_tensors.BoundingBoxes([box], format="XYXY", canvas_size=size),
    ...             "labels": torch.tensor([len(box)]), "masks": tv_tensors.Mask(mask)}
    >>> targets = [target([2, 2, 10, 12], (32, 40)), target([4, 4, 20, 16], (24, 24))]
    >>> copy_paste = CopyPasteBatch(p=1.0, object_p=1.0, scale=(1.0, 1.0), hflip=0.0, position="keep")
    >>> out_images, out_targets = copy_paste(images, targets)
    >>> [tuple(im.shape) for im in out_images], [t["labels"].numel() for t in out_targets]
    ([(3, 32, 40), (3, 24, 24)], [2, 2])
    >>> type(out_images[0]).__name__, type(out_targets[0]["masks"]).__name__
    ('Image', 'Mask')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from augpatch.data import BatchAugment
from augpatch.integrations._common import check_version, lazy_import
from augpatch.transforms.copy_paste import RandomCopyPaste

torchvision = lazy_import("torchvision", "torchvision")
check_version(torchvision, "torchvision")

import PIL.Image  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

__all__ = ["CopyPasteBatch"]


class CopyPasteBatch(v2.Transform):
    """:class:`augpatch.RandomCopyPaste` on a batch of torchvision detection samples.

    Args:
        **kwargs: :class:`augpatch.RandomCopyPaste`'s arguments (``p``, ``object_p``,
            ``max_objects``, ``scale``, ``angle``, ``hflip``, ``position``, ``pairing``,
            ``sigma``, ``min_visible_pixels``, ``min_visible_fraction``, ``mode``,
            ``generator``); ``drop_invalid`` is always on (invisible objects are
            removed, as the reference does).

    Call: ``copy_paste(images, targets)`` or ``copy_paste((images, targets))`` (optionally
    ``params=copy_paste.last_params`` to replay) -> ``(images, targets)``, lists.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        if "drop_invalid" in kwargs:
            raise TypeError("CopyPasteBatch always drops invisible objects: drop_invalid is not an argument")
        self.core = RandomCopyPaste(**kwargs)
        self._last: dict[str, Any] | None = None

    @property
    def last_params(self) -> dict[str, Any] | None:
        """The parameters of the last call (``RandomCopyPaste``'s ``_params``)."""
        return self._last

    def forward(self, *inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        images, targets = _split(inputs)
        self.check_inputs(list(images) + list(targets))
        out = self.make_params([images, targets], replay=params)
        return ([self.transform(im, {**out, "index": b}) for b, im in enumerate(images)],
                [self.transform(t, {**out, "index": b}) for b, t in enumerate(targets)])

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        for x in flat_inputs:
            if isinstance(x, PIL.Image.Image):
                raise TypeError("CopyPasteBatch takes image tensors (tv_tensors.Image or [C, H, W] tensors), "
                                "not PIL images: put v2.ToImage() in the dataset's transforms")

    def make_params(self, flat_inputs: list[Any], replay: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Sample (or replay) and paste the whole batch; ``transform`` hands out each part."""
        images, targets = flat_inputs
        step = BatchAugment(_Replay(self.core, replay), device=None, non_blocking=False)
        out_images, out_targets = step.augment_references([_plain(im) for im in images], list(targets))
        self._last = self.core._params
        return {"images": out_images, "targets": out_targets}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        b = params["index"]
        if isinstance(inpt, Mapping):
            return params["targets"][b]
        image = params["images"][b]
        return tv_tensors.wrap(image, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else image

    def extra_repr(self) -> str:
        return self.core.extra_repr()


class _Replay:
    """``RandomCopyPaste`` called with ``drop_invalid=True`` and optionally replayed parameters."""

    def __init__(self, core: RandomCopyPaste, params: Mapping[str, Any] | None) -> None:
        self.core, self.params = core, params

    def __call__(self, images: Tensor, boxes: Tensor, obj_to_img: Tensor, **kwargs: Any) -> Any:
        return self.core(images, boxes, obj_to_img, params=self.params, drop_invalid=True, **kwargs)


def _plain(image: Any) -> Tensor:
    if not isinstance(image, Tensor) or image.dim() != 3:
        raise TypeError(f"images must be [C, H, W] tensors, got {type(image).__name__} "
                        f"{tuple(getattr(image, 'shape', ()))}")
    return image.as_subclass(Tensor)


def _split(inputs: tuple[Any, ...]) -> tuple[Sequence[Any], Sequence[Mapping[str, Any]]]:
    """``(images, targets)`` from ``f(images, targets)`` or ``f((images, targets))``."""
    pair = inputs[0] if len(inputs) == 1 else inputs
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], (tuple, list))
            or not isinstance(pair[1], (tuple, list)) or len(pair[0]) != len(pair[1]) or not pair[0]
            or not all(isinstance(t, Mapping) for t in pair[1])):
        raise TypeError("CopyPasteBatch takes (images, targets): a non-empty list / tuple of images and a "
                        "list / tuple of as many target dicts, as torchvision's references' collate_fn builds")
    return pair[0], pair[1]
