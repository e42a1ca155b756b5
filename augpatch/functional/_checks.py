"""Compatibility alias: the checks moved to :mod:`augpatch.functional.checks`.

``import augpatch.functional.checks`` returns that very module (same objects, so a
monkeypatch of one is seen by the other); new code imports ``augpatch.functional.checks``.
"""

import sys

from augpatch.functional import checks

sys.modules[__name__] = checks
