"""The benchmarks of augpatch (not part of the runtime: nothing in augpatch imports them).

- :mod:`augpatch.bench.warp`: ``warp_patches`` against the reference loops
  (``python -m augpatch bench``).
- :mod:`augpatch.bench.policies`: ``DetectionAutoAugment`` against a per-box loop port
  (``python -m augpatch bench policies``).
- :mod:`augpatch.bench.scenarios`: the one scenario table of every benchmark.
- :mod:`augpatch.bench.baselines`: the loops and whole-image warps timed against augpatch.
- :mod:`augpatch.bench.methods`: the warp benchmark's methods (``register_method``), its
  configuration and one timed call; :mod:`augpatch.bench.memory`: peak memory;
  :mod:`augpatch.bench.inputs`: the inputs; :mod:`augpatch.bench.dataloader`: ``--dataloader``.
- :mod:`augpatch.bench.harness`: progress bar, device facts, sync.
- :mod:`augpatch.bench.profile`: ``--profile``, where each millisecond of a warp goes.

The warp benchmark's names are re-exported here (``augpatch.bench.main``,
``augpatch.bench.register_method``, ...), as before the package existed.
"""

from augpatch.bench.baselines import crop_loop, crop_loop_unbind, grid_sample_whole, question_loop
from augpatch.bench.dataloader import dataloader_throughput, format_dataloader
from augpatch.bench.inputs import BenchInputs, boxes_overlap, make_inputs
from augpatch.bench.methods import METHODS, BenchConfig, Method, default_methods, register_method
from augpatch.bench.scenarios import QUICK_SCENARIOS, SCENARIOS, Scenario
from augpatch.bench.warp import CUDA_TARGETS, TARGETS, main

__all__ = [
    "CUDA_TARGETS", "METHODS", "QUICK_SCENARIOS", "SCENARIOS", "TARGETS", "BenchConfig",
    "BenchInputs", "Method", "Scenario", "boxes_overlap", "crop_loop", "crop_loop_unbind",
    "dataloader_throughput", "default_methods", "format_dataloader", "grid_sample_whole",
    "main", "make_inputs", "question_loop", "register_method",
]
