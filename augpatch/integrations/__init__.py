"""Adapters that make augpatch a first-class member of other augmentation libraries.

Each submodule imports its library lazily (only when the submodule itself is
imported), so ``import augpatch`` and ``import augpatch.integrations`` need
nothing but PyTorch:

* :mod:`augpatch.integrations.kornia`: ``PatchAugmentationSequential``, a Kornia
  ``AugmentationSequential`` that feeds boxes to augpatch modules, and the
  modules themselves (``RandomPatchAffine``, ...).
* :mod:`augpatch.integrations.torchvision`: ``torchvision.transforms.v2.Transform``
  subclasses (``RandomPatchAffine``, ...).
* :mod:`augpatch.integrations.albumentations`: ``A.DualTransform`` subclasses
  (``RandomPatchAffine``, ...).

Example:
    >>> import augpatch.integrations  # imports no third-party library
    >>> sorted(augpatch.integrations.SUPPORTED)
    ['albumentations', 'kornia', 'torchvision']
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Library name -> supported version range (``packaging`` specifier syntax).
SUPPORTED: dict[str, str] = {
    "kornia": ">=0.7.4,<0.10",
    "torchvision": ">=0.23,<0.30",
    "albumentations": ">=2.0.0,<2.1",
}

__all__ = ["SUPPORTED", "albumentations", "kornia", "torchvision"]


def __getattr__(name: str) -> ModuleType:
    """Import ``augpatch.integrations.<library>`` on first attribute access."""
    if name in SUPPORTED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
