"""Build Triton kernels for an NVIDIA GPU without one (``tests/test_triton.py``,
``tests/test_triton_paste.py``): Triton compiles to PTX and assembles it with the ``ptxas``
it ships.

In a fresh process: the interpreter of older Triton releases (3.4) leaves
``triton.language`` patched, so a compilation after interpreted launches in one process
fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = """
import json
import triton
from triton.backends import backends
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from augpatch.ops.backends import triton as _triton

if "nvidia" not in backends:
    print(json.dumps(None))
    raise SystemExit(0)
mod = _triton.{module}()
pointers = {pointers!r}
out = []
for name, consts in {variants!r}:
    fn = getattr(mod, name)
    signature = {{
        arg: "constexpr" if arg in consts
        else pointers.get(arg, "*fp32" if arg.endswith("_ptr") else "i32")
        for arg in fn.arg_names
    }}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=consts),
                              target=GPUTarget("cuda", 80, 32), options={{"enable_fp_fusion": False}})
    out.append({{"ptx": compiled.asm["ptx"], "cubin": len(compiled.asm["cubin"])}})
print(json.dumps(out))
"""


def compile_for_sm80(module: str, pointers: dict[str, str], variants: list[tuple[str, dict]]) -> list[dict]:
    """Compile the kernels ``variants`` (``(kernel name, constexprs)``) of the device-code module
    that ``augpatch.ops.backends.triton.<module>()`` returns, for sm_80, in a fresh process
    without the interpreter; pointer arguments are float32 unless ``pointers`` says otherwise.
    Returns each variant's PTX and cubin size; skips where Triton has no NVIDIA backend."""
    script = _SCRIPT.format(module=module, pointers=pointers, variants=variants)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    built = json.loads(run.stdout.strip().splitlines()[-1])
    if built is None:
        pytest.skip("this Triton build has no NVIDIA backend")
    assert len(built) == len(variants)
    return built


def assert_no_fma_and_ieee_division(built: list[dict]) -> None:
    """No multiply-add is fused (the reference rounds twice) and float32 division is IEEE."""
    for v in built:
        assert "fma." not in v["ptx"]
        # reflection padding divides: round-to-nearest, never the approximate division;
        # Triton 3.4 (torch 2.8) flushes subnormal operands to zero there (div.rn.ftz),
        # which no image coordinate is
        assert "div.rn.f32" in v["ptx"] or "div.rn.ftz.f32" in v["ptx"]
        assert "div.full." not in v["ptx"] and "div.approx." not in v["ptx"]
        assert v["cubin"] > 0
