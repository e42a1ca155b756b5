"""The tables the operators, the planning and every backend share: one definition each.

- :data:`PARAM_COLUMNS`: the per-object parameter table ``params [K, PARAM_COUNT]`` by
  column name (the compiled kernel's ``enum Param`` in
  ``backends/compiled/csrc/warp_cpu.cpp`` mirrors it): ``theta`` row by row, then per axis
  (x, y) the base-coordinate map ``u = base * k + c``, the unnormalize scale and the
  float-box offset. Built by :func:`augpatch.ops.plan.object_params`.
- :data:`LOCATION_PARAMS`: the columns of the per-object location table of the eager
  kernel (``theta[:, 2]``, the unnormalize scales, the offsets).
- :data:`OBJECT_COLUMNS`: the columns of the planned objects ``objects [K, 6]`` int64.
- :data:`MODE_CODES`, :data:`PADDING_CODES`, :data:`TAPS_PER_AXIS`: the integer codes the
  compiled and Triton kernels take for ``mode`` / ``padding_mode``, and the taps per axis.

Example:
    >>> from augpatch.ops.layout import PARAM_COLUMNS, PARAM_COUNT, MODE_CODES
    >>> PARAM_COUNT, PARAM_COLUMNS[6], MODE_CODES["bicubic"]
    (14, 'kx', 2)
"""

from __future__ import annotations

PARAM_COLUMNS = ("t00", "t01", "t02", "t10", "t11", "t12", "kx", "ky", "cx", "cy", "sx", "sy", "ox", "oy")
PARAM_COUNT = len(PARAM_COLUMNS)
T00, T01, T02, T10, T11, T12, KX, KY, CX, CY, SX, SY, OX, OY = range(PARAM_COUNT)
LOCATION_PARAMS = [T02, T12, SX, SY, OX, OY]

# objects [K, 6] int64 (CPU), in processing order: the patch's first pixel, its size, its
# image, and the object's index in the call
OBJECT_COLUMNS = ("x0", "y0", "width", "height", "image", "index")

MODE_CODES = {"nearest": 0, "bilinear": 1, "bicubic": 2}
PADDING_CODES = {"zeros": 0, "border": 1, "reflection": 2, "image": 3}
TAPS_PER_AXIS = {"nearest": 1, "bilinear": 2, "bicubic": 4}
