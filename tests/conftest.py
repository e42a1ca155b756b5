"""Run the warp tests on both CPU kernels (compiled and eager); everything else compiled.

The compiled kernel is selected strictly (``"compiled"``: a build failure is an
error, never a silent fall-back). Only where no C++ compiler exists at all are the
compiled variants skipped, as the CUDA tests are on a machine without a GPU.
"""

from __future__ import annotations

import shutil

import pytest

from augpatch.functional import set_cpu_kernel

# test modules whose every test runs once per CPU kernel
BOTH_KERNELS = ("test_warp", "test_warp_paths", "test_warp_properties", "test_warp_errors",
                "test_transforms_grad")
HAVE_COMPILER = shutil.which("c++") is not None or shutil.which("g++") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cpu_kernel" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_KERNELS:
        metafunc.parametrize("cpu_kernel", ["compiled", "eager"], indirect=True)


@pytest.fixture(autouse=True)
def cpu_kernel(request: pytest.FixtureRequest):
    choice = getattr(request, "param", "compiled")
    if choice == "compiled" and not HAVE_COMPILER:
        pytest.skip("no C++ compiler on this machine: the compiled CPU kernel cannot be built")
    set_cpu_kernel(choice)
    yield choice
    set_cpu_kernel("auto")
