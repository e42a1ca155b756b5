"""Small local intersphinx inventories, so that the site builds offline.

The build machines reach PyPI but not pytorch.org or docs.python.org, so intersphinx
cannot download the projects' ``objects.inv``. :func:`mapping` writes, for each
project, an inventory (Sphinx's format, version 2) of the names augpatch's docstrings
and annotations refer to, with the real online URIs, and points intersphinx at it:
the links in the built site go to the online documentation. With ``online=True``
(``AUGPATCH_DOCS_ONLINE=1``) intersphinx downloads the full inventories instead.

A docstring that starts referring to another torch name that is not listed here makes
the ``-W`` build fail with "py:class reference target not found": add it to
``NAMES`` below.
"""

from __future__ import annotations

import zlib
from pathlib import Path

BASES = {
    "torch": "https://docs.pytorch.org/docs/stable/",
    "torchvision": "https://docs.pytorch.org/vision/stable/",
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
}

# project -> [(name, domain:role, relative URI)]; "$" in a URI is replaced by the name.
NAMES: dict[str, list[tuple[str, str, str]]] = {
    "torch": [
        ("torch.Tensor", "py:class", "tensors.html#$"),
        ("torch.Generator", "py:class", "generated/$.html#$"),
        ("torch._C.Generator", "py:class", "generated/torch.Generator.html#torch.Generator"),
        ("torch.nn.modules.module.Module", "py:class",
         "generated/torch.nn.Module.html#torch.nn.Module"),
        ("torch.device", "py:class", "tensor_attributes.html#$"),
        ("torch.dtype", "py:class", "tensor_attributes.html#$"),
        ("torch.Size", "py:class", "size.html#$"),
        ("torch.nn.Module", "py:class", "generated/$.html#$"),
        ("torch.nn.Parameter", "py:class", "generated/$.html#$"),
        ("torch.nn.functional.grid_sample", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.affine_grid", "py:function", "generated/$.html#$"),
        ("torch.compile", "py:function", "generated/$.html#$"),
        ("torch.export.export", "py:function", "export.html#$"),
        ("torch.utils.data.DataLoader", "py:class", "data.html#$"),
        ("torch.utils.data.Dataset", "py:class", "data.html#$"),
        ("torch.nn.parallel.DistributedDataParallel", "py:class", "generated/$.html#$"),
        ("torch.optim.Optimizer", "py:class", "optim.html#$"),
    ],
    "torchvision": [
        ("torchvision.tv_tensors.BoundingBoxes", "py:class", "generated/$.html#$"),
        ("torchvision.tv_tensors.Mask", "py:class", "generated/$.html#$"),
        ("torchvision.tv_tensors.Image", "py:class", "generated/$.html#$"),
        ("torchvision.tv_tensors.KeyPoints", "py:class", "generated/$.html#$"),
        ("torchvision.tv_tensors.BoundingBoxFormat", "py:class", "generated/$.html#$"),
        ("torchvision.transforms.v2.Transform", "py:class", "generated/$.html#$"),
        ("torchvision.transforms.v2._transform.Transform", "py:class",
         "generated/torchvision.transforms.v2.Transform.html#torchvision.transforms.v2.Transform"),
        ("torchvision.transforms.v2.InterpolationMode", "py:class",
         "generated/torchvision.transforms.InterpolationMode.html#torchvision.transforms.InterpolationMode"),
        ("torchvision.transforms.InterpolationMode", "py:class", "generated/$.html#$"),
        ("torchvision.transforms.v2.SanitizeBoundingBoxes", "py:class", "generated/$.html#$"),
    ],
    "numpy": [
        ("numpy.ndarray", "py:class", "reference/generated/$.html#$"),
        ("numpy.random.Generator", "py:class", "reference/random/generator.html#$"),
    ],
    "python": [
        ("collections.abc.Sequence", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Mapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.MutableMapping", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Callable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterable", "py:class", "library/collections.abc.html#$"),
        ("collections.abc.Iterator", "py:class", "library/collections.abc.html#$"),
        ("typing.Any", "py:data", "library/typing.html#$"),
        ("typing.Literal", "py:data", "library/typing.html#$"),
        ("typing.NamedTuple", "py:function", "library/typing.html#$"),
        ("pathlib.Path", "py:class", "library/pathlib.html#$"),
        ("os.PathLike", "py:class", "library/os.html#$"),
        ("types.ModuleType", "py:class", "library/types.html#$"),
        ("dataclasses.dataclass", "py:function", "library/dataclasses.html#$"),
        ("random.Random", "py:class", "library/random.html#$"),
    ],
}


def write_inventory(path: Path, project: str, entries: list[tuple[str, str, str]]) -> None:
    """Write ``entries`` as a Sphinx inventory (version 2) to ``path``."""
    lines = [f"{name} {role} 1 {uri.replace('$', name)} -\n" for name, role, uri in entries]
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: stable\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))


def mapping(directory: Path, *, online: bool) -> dict[str, tuple[str, str | None]]:
    """``intersphinx_mapping``: the local inventories (written now), or the online ones."""
    result: dict[str, tuple[str, str | None]] = {}
    for project, base in BASES.items():
        if online:
            result[project] = (base, None)
        else:
            path = directory / f"{project}.inv"
            write_inventory(path, project, NAMES[project])
            result[project] = (base, str(path))
    return result
