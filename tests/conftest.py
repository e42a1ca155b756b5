"""Run the warp tests on both CPU kernels (compiled and eager); everything else compiled.

The compiled kernel is selected strictly (``"compiled"``: a build failure is an
error, never a silent fall-back). Only where no C++ compiler exists at all are the
compiled variants skipped, as the CUDA tests are on a machine without a GPU.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from augpatch.functional import set_cpu_kernel

# test modules whose every test runs once per CPU kernel
BOTH_KERNELS = ("test_warp", "test_warp_paths", "test_warp_properties", "test_warp_errors",
                "test_transforms_grad", "test_func_transforms")
HAVE_COMPILER = shutil.which("c++") is not None or shutil.which("g++") is not None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build (or load) the compiled CPU kernel up front, saying so on the terminal.

    pytest captures what the first warp prints, so without this a fresh cache makes the
    run sit silent for about a minute. Workers of pytest-xdist load the controller's build.
    """
    if not HAVE_COMPILER or hasattr(session.config, "workerinput"):
        return
    from augpatch.functional import _kernel

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _kernel.needs_build() and reporter is not None:
        reporter.write_line("augpatch: compiling the CPU kernel for the tests (first run only, "
                            "about a minute; cached afterwards) ...")
    set_cpu_kernel("compiled")
    _kernel.compiled_ops(torch.device("cpu"))
    set_cpu_kernel("auto")


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
