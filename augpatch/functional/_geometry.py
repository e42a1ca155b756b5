"""Compatibility shim: the geometry moved to :mod:`augpatch.functional.geometry` (the
parsers to :mod:`augpatch.functional.parameters`, re-exported by ``geometry``).

Every name of ``augpatch.functional.geometry`` (private ones too) is re-exported here as
the same object, for code that still imports the old private module; new code imports ``augpatch.functional.geometry``.
"""

from augpatch.functional import geometry as _public

globals().update({k: v for k, v in vars(_public).items() if not k.startswith("__")})
