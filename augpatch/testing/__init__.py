"""Reference implementations for tests and benchmarks (not used at runtime).

* :mod:`augpatch.testing.policy_loop`: the per-image, per-box loop port of the detection
  AutoAugment reference (the baseline of ``augpatch.policies``' tests and benchmark).
* :mod:`augpatch.testing.kernel_calls`: the compiled CPU kernel's arguments of a
  ``warp_patches`` call (the row-path tests, ``benchmarks/forward_kernel.py``).
"""
