"""Compatibility shim: the scheduling moved to :mod:`augpatch.ops.schedule` (kept importable
for code that still imports ``augpatch.functional._plan``)."""

from augpatch.ops.schedule import base_grid, exact_base_grid, overlap_edges, schedule_levels

__all__ = ["base_grid", "exact_base_grid", "overlap_edges", "schedule_levels"]
