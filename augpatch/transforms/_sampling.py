"""Compatibility shim: the sampling helpers moved to :mod:`augpatch.transforms.sampling`.

Every name of ``augpatch.transforms.sampling`` (private ones too) is re-exported here as the same object, for
code that still imports the old private module; new code imports ``augpatch.transforms.sampling``.
"""

from augpatch.transforms import sampling as _public

globals().update({k: v for k, v in vars(_public).items() if not k.startswith("__")})
