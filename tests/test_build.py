"""Building the compiled CPU kernel once per environment (``python -m augpatch build``).

Two processes racing on an empty extensions directory build it once: one compile message
in total, and both get a working kernel. (This test compiles the kernel: about a minute.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from augpatch.__main__ import main
from augpatch.ops.backends.compiled import build

HAVE_COMPILER = any(os.path.exists(os.path.join(d, c)) for d in os.environ.get("PATH", "").split(os.pathsep)
                    for c in ("c++", "g++"))

_USE = textwrap.dedent("""
    import torch
    from augpatch.functional import set_cpu_kernel, warp_patches, active_kernel
    set_cpu_kernel("compiled")
    images = torch.rand(1, 2, 9, 9)
    out = warp_patches(images, torch.tensor([[1, 1, 7, 8], [0, 0, 5, 5], [2, 2, 9, 9]]),
                       torch.tensor([[-1.0, 0, 0], [0, 1, 0]]).repeat(3, 1, 1))
    assert not torch.equal(out, images)
    assert active_kernel("cpu") == "compiled"
    print("KERNEL OK", active_kernel("cpu"))
""")


@pytest.mark.skipif(not HAVE_COMPILER, reason="no C++ compiler on this machine")
def test_two_processes_racing_on_an_empty_cache_build_once(tmp_path):
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"), AUGPATCH_CPU_KERNEL="auto")
    procs = [subprocess.Popen([sys.executable, "-c", _USE], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "KERNEL OK compiled" in out
    messages = sum(err.count(build.COMPILE_MESSAGE) for _, err in results)
    assert messages == 1, [err[-2000:] for _, err in results]
    # a third process only loads it: no message, and the build command says where it is
    env_cmd = dict(env)
    done = subprocess.run([sys.executable, "-m", "augpatch", "build"], env=env_cmd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert build.COMPILE_MESSAGE not in done.stderr
    assert "compiled CPU kernel ready" in done.stdout and str(tmp_path / "ext") in done.stdout
    assert any((tmp_path / "ext").rglob(f"{build.BASE_NAME}*.so"))


def test_build_command_reports_a_failed_build(monkeypatch, capsys):
    def broken():
        raise OSError("no C++ compiler found")

    monkeypatch.setattr(build, "load", broken)
    assert main(["build"]) == 1
    assert "could not be built: OSError: no C++ compiler found" in capsys.readouterr().err


def test_build_command_loads_an_existing_build(capsys):
    assert main(["build"]) == 0
    out = capsys.readouterr().out
    assert "compiled CPU kernel ready" in out and build.extension_name() in out


def test_a_changed_header_means_a_rebuild(tmp_path, monkeypatch):
    """The library is up to date only if newer than every ``csrc/*.cpp`` and ``csrc/*.h``
    (the kernels share ``sampling.h``)."""
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for name in ("a_cpu.cpp", "sampling.h"):
        (csrc / name).write_text("")
    library = tmp_path / "lib.so"
    library.write_text("")
    monkeypatch.setattr(build, "CSRC", csrc)
    os.utime(csrc / "a_cpu.cpp", (1000, 1000))
    os.utime(csrc / "sampling.h", (1500, 1500))
    os.utime(library, (2000, 2000))
    assert build._up_to_date(library)
    os.utime(csrc / "sampling.h", (3000, 3000))
    assert not build._up_to_date(library)
