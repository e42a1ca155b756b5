"""Compatibility alias: the geometry moved to :mod:`augpatch.functional.geometry` (the
human-parameter parsers to :mod:`augpatch.functional.parameters`, re-exported there).

``import augpatch.functional.geometry`` returns :mod:`augpatch.functional.geometry` itself;
new code imports that module.
"""

import sys

from augpatch.functional import geometry

sys.modules[__name__] = geometry
