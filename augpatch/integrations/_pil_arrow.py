"""A PIL image that holds a warp's output pixels without a copy (private; the torchvision adapter).

Pillow (>= 11.2.1) builds an image on memory exported through the Arrow C data interface
(``PIL.Image.fromarrow``): for ``RGB`` / ``RGBA`` (4 bytes a pixel in Pillow's storage) a
flat ``uint8`` array of ``4 * W * H`` values, row after row. The warp of Pillow's own
pixels (``_torchvision_inputs._pil_pixels``: ``[4, H, W]`` with channels-last strides)
returns its output in that very layout, so the output image needs no decode: this module
exports the output tensor's memory (one ``struct ArrowArray`` built with ``ctypes``; the
C data interface is a stable ABI) and Pillow borrows it.

Lifetime: the array's capsule holds the tensor (a registry entry that the capsule's
destructor removes); Pillow keeps the capsule as long as its image core lives (also a core
that outlived its ``Image``, e.g. ``getdata()``), so the memory stays valid while
anything reads it. Pillow marks such an image read-only: its own methods that write
(``paste``, ``putpixel``, ``ImageDraw``) copy it first, as for any image that borrows its
memory; ``image.load()[x, y] = v`` raises ``ValueError: image is readonly`` (call
``image = image.copy()`` first).
"""

from __future__ import annotations

import ctypes
from typing import Any

import PIL.Image
import torch
from torch import Tensor

__all__ = ["shared_image"]


class ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ``struct ArrowArray`` (a stable ABI)."""


ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
    ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]


class _ArrowSchema(ctypes.Structure):
    """The Arrow C data interface's ``struct ArrowSchema``."""


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64), ("children", ctypes.c_void_p),
    ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]

_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

# Every struct's ``release`` must be set (a released struct has none); Pillow never calls
# it (it drops the capsule), and this module frees nothing through it.
_no_release = _CALLBACK(lambda pointer: None)

# The one schema every export uses: flat uint8 values ("C"), no children; never freed.
_SCHEMA = _ArrowSchema(b"C", None, None, 0, 0, None, None,
                       ctypes.cast(_no_release, ctypes.c_void_p), None)

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_capsule_set_context = ctypes.pythonapi.PyCapsule_SetContext
_capsule_set_context.restype = ctypes.c_int
_capsule_set_context.argtypes = [ctypes.py_object, ctypes.c_void_p]
# a function object of its own (pythonapi[...]): its argument is a raw pointer here, the
# capsule being destroyed, which must not be turned back into a Python reference
_capsule_context = ctypes.pythonapi["PyCapsule_GetContext"]
_capsule_context.restype = ctypes.c_void_p
_capsule_context.argtypes = [ctypes.c_void_p]

#: struct address -> (tensor, struct, buffers): what an array capsule keeps alive
_LIVE: dict[int, tuple[Any, ...]] = {}


def _drop(capsule: int, _live: dict = _LIVE, _context: Any = _capsule_context) -> None:
    """The array capsule's destructor: releases what it kept alive (defaults bound here, so
    that it needs no module global, also late at interpreter exit)."""
    _live.pop(_context(capsule), None)


_drop_callback = _CALLBACK(_drop)
# never freed: Pillow may destroy an image (and its capsule) after this module is gone
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_drop_callback))
_DROP = ctypes.cast(_drop_callback, ctypes.c_void_p).value


class _Export:
    """An object with ``__arrow_c_array__`` over a contiguous ``uint8`` tensor's memory."""

    __slots__ = ("values",)

    def __init__(self, values: Tensor) -> None:
        self.values = values

    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]:
        values = self.values
        buffers = (ctypes.c_void_p * 2)(None, values.data_ptr())  # no validity bitmap
        array = ArrowArray(values.numel(), 0, 0, 2, 0,
                           ctypes.cast(buffers, ctypes.POINTER(ctypes.c_void_p)), None, None,
                           ctypes.cast(_no_release, ctypes.c_void_p), None)
        key = ctypes.addressof(array)
        _LIVE[key] = (values, array, buffers)
        try:
            capsule = _capsule_new(key, b"arrow_array", _DROP)
        except BaseException:
            _LIVE.pop(key, None)
            raise
        _capsule_set_context(capsule, key)
        return _capsule_new(ctypes.addressof(_SCHEMA), b"arrow_schema", None), capsule


def shared_image(pixels: Tensor, mode: str) -> PIL.Image.Image | None:
    """A PIL image of ``mode`` (``RGB`` / ``RGBA``) on the memory of ``pixels`` (``[4, H, W]``
    uint8 with channels-last strides: Pillow's 4-byte pixels, the fourth channel its
    padding byte for ``RGB``), without a copy; ``None`` where Pillow cannot borrow it so
    (another mode, dtype or layout, an older Pillow, a tensor subclass).

    ``pixels`` must not be read or written by anyone else afterwards (the image is its
    only user: pass a fresh output).

    Example:
        >>> import numpy as np
        >>> pixels = torch.arange(4 * 2 * 3, dtype=torch.uint8).reshape(2, 3, 4).permute(2, 0, 1)
        >>> image = shared_image(pixels, "RGBA")
        >>> image is None or np.array_equal(np.asarray(image), pixels.permute(1, 2, 0).numpy())
        True
    """
    if (
        mode not in ("RGB", "RGBA")
        or not hasattr(PIL.Image, "fromarrow")
        or type(pixels) is not Tensor
        or pixels.dtype != torch.uint8
        or pixels.device.type != "cpu"
        or pixels.dim() != 3
        or pixels.shape[0] != 4
        or pixels.numel() == 0
        or pixels.requires_grad
    ):
        return None
    values = pixels.permute(1, 2, 0)
    if not values.is_contiguous():
        return None
    try:
        return PIL.Image.fromarrow(_Export(values), mode, (pixels.shape[2], pixels.shape[1]))
    except (ValueError, TypeError):  # a Pillow that does not take this layout
        return None
