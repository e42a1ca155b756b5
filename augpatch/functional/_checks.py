"""Compatibility shim: the argument checks moved to :mod:`augpatch.functional.checks`.

Every name of ``augpatch.functional.checks`` (private ones too) is re-exported here as the same object, for
code that still imports the old private module; new code imports ``augpatch.functional.checks``.
"""

from augpatch.functional import checks as _public

globals().update({k: v for k, v in vars(_public).items() if not k.startswith("__")})
