"""Compatibility alias: the sampling helpers moved to :mod:`augpatch.transforms.sampling`.

``import augpatch.transforms.sampling`` returns that very module; new code imports it.
"""

import sys

from augpatch.transforms import sampling

sys.modules[__name__] = sampling
