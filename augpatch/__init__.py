"""augpatch: per-object, differentiable affine augmentation of images in PyTorch."""

from augpatch import functional

__version__ = "0.1.0"

__all__ = ["functional", "__version__"]
