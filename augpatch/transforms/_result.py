"""``PatchResult``: what every transform returns."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["PatchResult"]


class PatchResult(tuple):
    """A length-2 tuple ``(images, boxes)`` with the other outputs as attributes.

    Unpacks like the plain call contract (``images_out, boxes_out = aug(...)``)
    and carries everything else that was transformed in the same call.

    Attributes:
        images: ``[B, C, H, W]`` augmented images (same dtype as the input).
        boxes: ``[N, 4]`` new boxes (float), or a list of ``B`` tensors ``[N_i, 4]``
            when the boxes came as a list.
        masks: ``[N, H, W]`` per-object masks, or ``None`` when not given.
        image_masks: ``[B, K, H, W]`` (or ``[B, H, W]``) per-image masks, or ``None``.
        keypoints: ``[N, K, 2]`` keypoints, or ``None``.
        keep: ``[N]`` bool, True where the object's new box is non-degenerate
            (width and height above 1e-3 px: content is left inside its patch).
            Always over all ``N`` input objects, also with ``drop_invalid=True``.
        obj_to_img: ``[N]`` (or ``[keep.sum()]`` with ``drop_invalid=True``) image
            index of each returned box.
        params: the parameters of this call (the same dict as ``aug._params``).
        object_index: ``[rows]`` int64, the input object each returned row comes from, so
            that any other per-object field follows with ``field[res.object_index]``
            (``labels``, ``iscrowd``, ...). Transforms that add objects
            (:class:`~augpatch.RandomCopyPaste`) give it; for every other transform it is
            derived from ``keep`` when read: ``arange(N)``, or the indices of the kept
            objects with ``drop_invalid=True`` (``None`` without ``keep``).
        area: ``[rows]`` float or ``None``: the new area of the rows whose extent the
            transform recomputed (:class:`~augpatch.RandomCopyPaste`: the mask's pixel
            count, COCO's convention, or the box's area without masks, for occluded and
            pasted objects), NaN where the input's area still holds; ``None`` for
            transforms that do not recompute it.

    Example:
        >>> import torch
        >>> from augpatch import RandomPatchRotation
        >>> aug = RandomPatchRotation(10.0, p=1.0)
        >>> kps = torch.tensor([[[8.0, 8.0], [10.0, 6.0]]])
        >>> res = aug(torch.rand(1, 3, 16, 16), torch.tensor([[2, 2, 14, 14]]), keypoints=kps)
        >>> images_out, boxes_out = res
        >>> res.keypoints.shape, res.keep.tolist(), res.object_index.tolist()
        (torch.Size([1, 2, 2]), [True], [0])
    """

    images: Tensor
    boxes: Tensor | list[Tensor]

    def __new__(
        cls,
        images: Tensor | None,
        boxes: Tensor | list[Tensor] | None,
        *,
        masks: Tensor | None = None,
        image_masks: Tensor | None = None,
        keypoints: Tensor | None = None,
        keep: Tensor | None = None,
        obj_to_img: Tensor | None = None,
        params: dict[str, Any] | None = None,
        object_index: Tensor | None = None,
        area: Tensor | None = None,
    ) -> PatchResult:
        self = super().__new__(cls, (images, boxes))
        self.masks = masks
        self.image_masks = image_masks
        self.keypoints = keypoints
        self.keep = keep
        self.obj_to_img = obj_to_img
        self.params = params
        self._object_index = object_index
        self.area = area
        return self

    @property
    def object_index(self) -> Tensor | None:
        if self._object_index is not None or not isinstance(self.keep, Tensor):
            return self._object_index
        rows = self.obj_to_img.shape[0] if isinstance(self.obj_to_img, Tensor) else None
        if rows is None or rows == self.keep.shape[0]:
            return torch.arange(self.keep.shape[0], device=self.keep.device)
        return self.keep.nonzero().flatten()  # drop_invalid: the kept objects

    @object_index.setter
    def object_index(self, value: Tensor | None) -> None:
        self._object_index = value

    @property  # type: ignore[no-redef]
    def images(self) -> Tensor:
        return self[0]

    @property  # type: ignore[no-redef]
    def boxes(self) -> Tensor | list[Tensor]:
        return self[1]

    def _extras(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("masks", "image_masks", "keypoints", "keep", "obj_to_img", "params", "area")
        } | {"object_index": self._object_index}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self[0], self[1], self._extras()))

    def __repr__(self) -> str:
        def shape(x: Any) -> str:
            if isinstance(x, Tensor):
                return f"Tensor{list(x.shape)}"
            if isinstance(x, list):
                return f"list[{len(x)}]"
            if isinstance(x, dict):
                return f"dict({len(x)} keys)"
            return repr(x)

        fields = {"images": self[0], "boxes": self[1], **self._extras()}
        inner = ", ".join(f"{k}={shape(v)}" for k, v in fields.items() if v is not None)
        return f"PatchResult({inner})"


def _rebuild(images: Any, boxes: Any, extras: dict[str, Any]) -> PatchResult:
    return PatchResult(images, boxes, **extras)
