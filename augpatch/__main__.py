"""Command line entry point: ``python -m augpatch {demo,bench,build} ...``.

Each subcommand forwards the rest of the command line to the ``main(argv)`` of its
module, which does its own argument parsing (so ``python -m augpatch demo --help``
shows the demo's options). The subcommand modules are imported lazily: ``--help``
needs nothing beyond the standard library, and the demo's optional dependency
(torchvision) is only needed when the demo actually runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "main"]


def _run_demo(argv: list[str]) -> int:
    """Run ``augpatch.demo.main(argv)``."""
    from augpatch import demo

    return demo.main(argv)


def _run_bench(argv: list[str]) -> int:
    """Run ``augpatch.bench.warp.main(argv)`` (``bench policies ...``: ``augpatch.bench.policies``),
    imported only now."""
    module = "augpatch.bench.warp"
    if argv and argv[0] == "policies":
        module, argv = "augpatch.bench.policies", argv[1:]
    elif argv and argv[0] == "copypaste":
        module, argv = "augpatch.bench.copypaste", argv[1:]
    elif argv and argv[0] == "adapters":
        module, argv = "augpatch.bench.adapters", argv[1:]
    try:
        bench = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        print(f"augpatch: the benchmark module ({module}) is not available "
              "in this installation", file=sys.stderr)
        return 1
    rc = bench.main(argv)
    return 0 if rc is None else int(rc)


def _run_build(argv: list[str]) -> int:
    """Run ``augpatch.ops.backends.compiled.build.main(argv)``."""
    from augpatch.ops.backends.compiled import build

    return build.main(argv)


_COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (
        _run_demo,
        "augment the coins of the embedded demo photograph and write a PNG "
        "(options: [--out FILE] [--seed N]; needs torchvision)",
    ),
    "bench": (
        _run_bench,
        "benchmark augpatch against the per-object reference loop "
        "(see 'python -m augpatch bench --help'); 'bench policies' times the detection "
        "AutoAugment policies against a per-box loop port; 'bench adapters' the per-sample "
        "torchvision / albumentations adapters against v2.RandomAffine / A.Affine",
    ),
    "build": (
        _run_build,
        "build the compiled CPU kernel once for this environment and print where it is "
        "(run it before starting DataLoader workers or a cluster job)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; it only lists the subcommands (they parse their own options)."""
    from augpatch import __version__

    parser = argparse.ArgumentParser(
        prog="python -m augpatch",
        description="augpatch: per-object, differentiable affine augmentation of image patches.",
        epilog="Run 'python -m augpatch COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"augpatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand and return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _COMMANDS:
        run, _ = _COMMANDS[args[0]]
        return run(args[1:])
    parser = build_parser()
    if not args:
        parser.print_help(sys.stderr)
        return 2
    parser.parse_args(args)  # --help / --version / an error: argparse exits here
    parser.print_help(sys.stderr)  # pragma: no cover - parse_args always exits above
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
