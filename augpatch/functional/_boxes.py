"""Box layouts (flat / list / padded) and formats (xyxy / xywh / cxcywh) (STUB: being written)."""

from __future__ import annotations

from torch import Tensor


def clip_boxes(boxes: Tensor, canvas_size: tuple[int, int]) -> Tensor:
    raise NotImplementedError


def convert_box_format(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    raise NotImplementedError


def boxes_to_list(boxes: Tensor, obj_to_img: Tensor | None, batch_size: int) -> list[Tensor]:
    raise NotImplementedError


def list_to_boxes(boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
    raise NotImplementedError


def boxes_to_padded(boxes: Tensor, obj_to_img: Tensor | None, batch_size: int, *, pad_value: float = 0.0) -> tuple[Tensor, Tensor]:
    raise NotImplementedError


def padded_to_boxes(padded: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    raise NotImplementedError
