"""Sphinx extension of the augpatch site: API pages and pictures, generated at build time.

At ``builder-inited`` it writes, under ``docs/api/`` (not checked in):

- ``api/index.rst`` and one page per module of ``augpatch_api_modules`` (its docstring
  and a summary table of its ``__all__``);
- one page per public name (``api/generated/<module>.<name>.rst``): ``autofunction``,
  ``autoclass`` (with members) or ``autodata``, so signatures, shapes and examples come
  from the docstrings of the code being built, whatever the other branches changed;
- for transforms, policies and ops, a picture of the effect on the embedded coins
  photograph (``augpatch/assets/coins.png``): the original with its boxes (green) on the
  left, the result with its new boxes (yellow) on the right; for every Detection
  AutoAugment op a table of such pictures (on the ``OPS`` page and included by the
  policies guide).

A name listed in several modules' ``__all__`` (``augpatch.RandomPatchAffine`` is
``augpatch.transforms.RandomPatchAffine``) gets one page, under the first module of
``augpatch_api_modules`` that lists it; the others link to it.

Pictures: a transform class gets one when it is in ``PICTURES`` (a constructor call),
or, for any other subclass of ``PatchAugmentationBase`` outside the adapters (e.g. a
transform added later), when ``cls(p=1.0)`` constructs. Functions get one when they are in ``PICTURES``.
"""

from __future__ import annotations

import importlib
import inspect
import io
import random
import types
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

API_MODULES = [
    "augpatch.functional",
    "augpatch.transforms",
    "augpatch.transforms.base",  # the base class and the hooks of a new transform
    "augpatch.transforms.sampling",  # the parameter samplers a new transform draws with
    "augpatch.policies",
    "augpatch.policies.functional",
    "augpatch.search",
    "augpatch.data",
    "augpatch.integrations",
    "augpatch.integrations.kornia",
    "augpatch.integrations.torchvision",
    "augpatch.integrations.torchvision_batch",
    "augpatch.integrations.albumentations",
    "augpatch",
]
# Documented when they exist (the core's restructure adds augpatch.ops: the operators and
# the kernel settings); listed here so that the merged layout needs no edit of this file.
OPTIONAL_API_MODULES = ["augpatch.ops"]

# Qualified name -> Python expression building the object whose effect is pictured
# (evaluated with the name's module, torch and ``augpatch.functional as F`` in scope;
# ``image`` [1, 3, H, W] float in [0, 1], ``boxes`` [24, 4]). A transform is called as
# ``t(image, boxes)``; for a function the expression is the result ``(image, boxes)``.
PICTURES: dict[str, str] = {
    "augpatch.transforms.RandomPatchAffine":
        "RandomPatchAffine(degrees=30, translate=0.1, scale=(0.7, 1.0), shear=10, p=1.0)",
    "augpatch.transforms.RandomPatchRotation": "RandomPatchRotation(45, p=1.0)",
    "augpatch.transforms.RandomPatchTranslate": "RandomPatchTranslate(0.3, p=1.0)",
    "augpatch.transforms.RandomPatchScale": "RandomPatchScale((0.5, 0.9), p=1.0)",
    "augpatch.transforms.RandomPatchShear": "RandomPatchShear(25, p=1.0)",
    "augpatch.transforms.RandomPatchHorizontalFlip": "RandomPatchHorizontalFlip(p=1.0)",
    "augpatch.transforms.RandomPatchVerticalFlip": "RandomPatchVerticalFlip(p=1.0)",
    "augpatch.transforms.PatchAffine": "PatchAffine(angle=30.0, scale=0.8)",
    "augpatch.transforms.RandomCopyPaste":
        "RandomCopyPaste(p=1.0, object_p=0.5, scale=(0.5, 1.0))",
    "augpatch.transforms.PatchSequential":
        "PatchSequential(RandomPatchRotation(30, p=1.0), RandomPatchHorizontalFlip(p=0.5))",
    "augpatch.search.PatchPolicy": "PatchPolicy(num_sub_policies=2).eval()",
    "augpatch.policies.DetectionAutoAugment": "DetectionAutoAugment('v0')",
    "augpatch.functional.warp_patches":
        "(warp_patches(image, boxes, F.patch_affine_matrix(boxes, angle=30.0),"
        " padding_mode='image'), F.transform_boxes(boxes, F.patch_affine_matrix(boxes,"
        " angle=30.0), canvas_size=image.shape[-2:]))",
    "augpatch.functional.warp_patches_fill":
        "(warp_patches_fill(image, boxes, F.patch_affine_matrix(boxes, angle=30.0),"
        " fill=0.5), F.transform_boxes(boxes, F.patch_affine_matrix(boxes, angle=30.0),"
        " canvas_size=image.shape[-2:]))",
}

# unqualified external names in annotations of generated signatures
EXTERNAL_SHORT = {"Tensor": "torch.Tensor"}

OP_LEVEL = 6  # level of the pictures of the Detection AutoAugment ops (0..10)


def _write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` unless it already holds exactly that (keeps rebuilds
    incremental)."""
    raw = data.encode() if isinstance(data, str) else data
    if path.exists() and path.read_bytes() == raw:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


def _attribute_doc(modname: str, name: str, obj: Any) -> str:
    """The docstring written for a module-level constant (``X = ...`` then a string or
    ``#:`` comments), looked up in the module that defines it."""
    from sphinx.pycode import ModuleAnalyzer

    for candidate in (modname, getattr(obj, "__module__", None)):
        if not candidate:
            continue
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # no source
            continue
        lines = docs.get(("", name))
        if lines:
            return "\n".join(lines)
    return ""


def _summary(obj: Any, modname: str = "", name: str = "") -> str:
    if _kind(obj) == "data":
        doc = _attribute_doc(modname, name, obj)
    else:
        doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first


def _kind(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
        return "function"
    return "data"


# -- pictures ------------------------------------------------------------------------------

def _coins() -> tuple[Any, Any]:
    from augpatch.demo import load_asset

    image, boxes = load_asset()  # uint8 [C, H, W], float [24, 4]
    image = image.float().div(255)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[None].contiguous(), boxes.float()


def _png(image: Any, boxes: Any, new_image: Any, new_boxes: Any) -> bytes:
    """The original with its boxes (green) | the result with its new boxes (yellow)."""
    import torch
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    def draw(img: Any, bxs: Any, colour: str) -> Any:
        img = img[0].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        bxs = bxs.detach().float()
        bxs = bxs[(bxs[:, 2] > bxs[:, 0]) & (bxs[:, 3] > bxs[:, 1])]
        return draw_bounding_boxes(img, bxs, colors=colour, width=1)

    left = draw(image, boxes, "lime")
    right = draw(new_image, new_boxes, "yellow")
    gap = torch.full((3, left.shape[1], 6), 255, dtype=torch.uint8)
    both = torch.cat((left, gap, right), 2)
    buf = io.BytesIO()
    Image.fromarray(both.permute(1, 2, 0).numpy()).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _seed() -> None:
    import torch

    torch.manual_seed(0)
    random.seed(0)


def _picture_of(qualname: str, module: types.ModuleType, obj: Any) -> bytes | None:
    """PNG of ``obj``'s effect on the coins, or None when it has no picture."""
    import torch

    import augpatch.functional as F
    from augpatch.transforms import PatchAugmentationBase

    expression = PICTURES.get(qualname)
    if expression is None and not (
        not module.__name__.startswith("augpatch.integrations")  # adapters: see the core's
        and inspect.isclass(obj) and issubclass(obj, PatchAugmentationBase)
        and not inspect.isabstract(obj) and obj is not PatchAugmentationBase
    ):
        return None
    image, boxes = _coins()
    scope = {**vars(module), "torch": torch, "F": F, "image": image, "boxes": boxes}
    _seed()
    try:
        if expression is None:
            built = obj(p=1.0)
        else:
            built = eval(expression, scope)  # noqa: S307  (the expressions above)
        if isinstance(built, tuple):
            new_image, new_boxes = built
        else:
            with torch.no_grad():
                result = built(image, boxes)
            new_image, new_boxes = result[0], result[1]
    except Exception as exc:  # a picture is optional for names without an entry
        if expression is not None:
            raise RuntimeError(f"picture of {qualname}: {expression!r} failed") from exc
        logger.info("augpatch_docs: no picture of %s (%s)", qualname, exc)
        return None
    return _png(image, boxes, new_image, new_boxes)


def _op_pictures(pictures_dir: Path) -> str:
    """Pictures of every Detection AutoAugment op at ``OP_LEVEL``; returns an rst table."""
    import torch

    from augpatch.policies import OPS, DetectionAutoAugment

    image, boxes = _coins()
    rows = []
    for name, spec in OPS.items():
        _seed()
        aug = DetectionAutoAugment([[(name, 1.0, OP_LEVEL)]], bbox_prob_divisor=1.0)
        with torch.no_grad():
            out = aug(image, boxes)
        _write(pictures_dir / f"op.{name}.png", _png(image, boxes, out.images, out.boxes))
        rows.append((name, spec))
    lines = [
        f".. list-table:: Every op at level {OP_LEVEL}, probability 1 (box-only ops: every"
        " box's coin forced on), on the coins photograph (left: input; right: output)",
        "   :header-rows: 1",
        "   :widths: 20 25 55",
        "   :class: augpatch-ops",
        "",
        "   * - op",
        "     - argument",
        "     - effect",
    ]
    for name, spec in rows:
        lines += [
            f"   * - ``{name}``",
            f"     - {spec.arg or '-'}",
            f"     - .. image:: pictures/op.{name}.png",
            f"          :alt: {name} at level {OP_LEVEL}",
        ]
    return "\n".join(lines) + "\n"


# -- pages ---------------------------------------------------------------------------------

def _name_page(modname: str, name: str, obj: Any, picture: str | None, extra: str) -> str:
    kind = _kind(obj)
    out = [f".. _api-{modname}.{name}:", "", _title(name), f".. currentmodule:: {modname}", ""]
    if kind == "class":
        out += [f".. autoclass:: {name}", "   :members:", "   :special-members: __call__"]
        if _has_private_parts(obj):  # its methods live in mixins of private modules
            out += ["   :inherited-members: Module"]
        out += [""]
    elif kind == "function":
        out += [f".. autofunction:: {name}", ""]
    else:
        out += [f".. autodata:: {name}", "   :no-value:", ""]
    if picture:
        out += [
            ".. rubric:: Effect on the coins photograph",
            "",
            f".. image:: pictures/{picture}",
            "   :class: augpatch-picture",
            f"   :alt: {name} applied to the coins photograph",
            "",
            "Left: the input with its boxes (green); right: the output with the new boxes"
            " (yellow). Generated when the site is built.",
            "",
        ]
    if extra:
        out += [extra]
    return "\n".join(out)


def _has_private_parts(cls: type) -> bool:
    """Whether ``cls`` is made of ``...Mixin`` classes of private augpatch modules (e.g.
    ``PatchAugmentationBase``: ``transforms/_params.py``'s ``ParameterMixin``, ...): its
    page then lists the mixins' public methods as its own (up to ``nn.Module``)."""
    return any(_is_private_mixin(base) for base in cls.__bases__)


def _is_private_mixin(cls: type) -> bool:
    return (cls.__module__.startswith("augpatch.") and cls.__name__.endswith("Mixin")
            and cls.__module__.rpartition(".")[2].startswith("_"))


def _hide_mixins(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """"Bases:" without the private mixins a class is made of (their methods are on its
    page, :func:`_has_private_parts`)."""
    bases[:] = [b for b in bases if not (isinstance(b, type) and _is_private_mixin(b))]


def api_modules(app: Sphinx) -> list[str]:
    """``augpatch_api_modules`` plus those of ``OPTIONAL_API_MODULES`` that import (placed
    before the top-level ``augpatch``, which only re-exports)."""
    modules = list(app.config.augpatch_api_modules)
    for name in OPTIONAL_API_MODULES:
        if name in modules:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
            continue
        modules.insert(modules.index("augpatch") if "augpatch" in modules else len(modules), name)
    return modules


def generate(app: Sphinx) -> None:
    srcdir = Path(app.srcdir)
    api = srcdir / "api"
    generated = api / "generated"
    pictures_dir = generated / "pictures"
    modules = api_modules(app)
    owner: dict[int, str] = {}  # id(obj) -> "module.name" of its page
    pages: dict[str, list[tuple[str, Any]]] = {}
    for modname in modules:
        module = importlib.import_module(modname)
        entries = []
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            entries.append((name, obj))
        pages[modname] = entries

    # the first listed module that has a name owns its page (modules are documented in
    # API order; a re-export in `augpatch` links to the owner)
    for modname in modules:
        for name, obj in pages[modname]:
            if _kind(obj) in ("class", "function") and id(obj) not in owner:
                owner[id(obj)] = f"{modname}.{name}"

    ops_table = _op_pictures(pictures_dir) if app.config.augpatch_pictures else ""
    _write(generated / "op_pictures.rst.inc", ops_table)

    for modname in modules:
        module = importlib.import_module(modname)
        lines = [f".. _api-{modname}:", "", _title(f"``{modname}``"),
                 f".. automodule:: {modname}", "   :no-members:", "", f".. currentmodule:: {modname}", ""]
        rows, toctree = [], []
        for name, obj in pages[modname]:
            kind = _kind(obj)
            if kind == "module":
                target = obj.__name__
                rows.append((f":ref:`{name} <api-{target}>`", "module", _summary(obj)))
                continue
            page_name = f"{modname}.{name}"
            if kind in ("class", "function") and owner[id(obj)] != page_name:
                rows.append((f":py:obj:`{name} <{owner[id(obj)]}>`", kind,
                             f"Same object as :py:obj:`{owner[id(obj)]}`."))
                continue
            picture = None
            if app.config.augpatch_pictures:
                png = _picture_of(page_name, module, obj)
                if png is not None:
                    picture = f"{page_name}.png"
                    _write(pictures_dir / picture, png)
            extra = ""
            if page_name == "augpatch.policies.OPS":
                extra = ".. include:: op_pictures.rst.inc\n"
            _write(generated / f"{page_name}.rst", _name_page(modname, name, obj, picture, extra))
            toctree.append(f"generated/{page_name}")
            rows.append((f":py:obj:`{name} <{page_name}>`", kind, _summary(obj, modname, name)))
        if rows:
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 10 60", "",
                      "   * - name", "     - kind", "     - summary"]
            for ref, kind, summary in rows:
                lines += [f"   * - {ref}", f"     - {kind}", f"     - {summary or ' '}"]
            lines.append("")
        if toctree:
            lines += [".. toctree::", "   :hidden:", ""] + [f"   {t}" for t in toctree] + [""]
        _write(api / f"{modname}.rst", "\n".join(lines))

    index = [_title("API reference"),
             "Generated from the docstrings of every public name (each module's ``__all__``).",
             "Shapes use ``B`` images, ``N`` objects, ``C`` channels, ``H x W`` pixels.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {m}" for m in modules]
    _write(api / "index.rst", "\n".join(index) + "\n")


def _resolve_alias(app: Sphinx, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve augpatch names written as a re-export (``augpatch.RandomPatchRotation``)
    or unqualified in another module's docstring (``PatchResult``) to their one page."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if node.get("reftype") == "mod" and target.startswith("augpatch."):
        # an internal module named in a docstring (``augpatch.ops.plan``): it has no page
        # (not public API), so it shows as code, unlinked
        try:
            importlib.import_module(target)
        except ImportError:
            return None
        return contnode
    aliases = getattr(env, "augpatch_aliases", {})
    real = aliases.get(target)
    if real is None and "." not in target:
        real = aliases.get(f"*.{target}")
    if real is None and "." in target:
        # a member named through a re-export: ``augpatch.PatchAugmentationBase.search_space``
        head, _, member = target.rpartition(".")
        owner = aliases.get(head) or aliases.get(f"*.{head}")
        if owner is not None:
            real = f"{owner}.{member}"
    domain = env.domains["py"]
    builder = app.builder
    if real is None and "." not in target and node.get("py:class"):
        # a method named without its class (``:meth:`make_params```) in a class's
        # docstring: the first class of its MRO that has an augpatch page documents it
        module = importlib.import_module(node.get("py:module") or "augpatch")
        cls = getattr(module, node["py:class"].split(".")[0], None)
        for base in getattr(cls, "__mro__", ()):
            owner = aliases.get(f"{base.__module__}.{base.__qualname__}")
            if owner is None:
                continue
            found = domain.resolve_xref(env, node["refdoc"], builder, "meth",
                                        f"{owner}.{target}", node, contnode)
            if found is not None:
                return found
    if real is None and target in EXTERNAL_SHORT:
        from sphinx.ext.intersphinx import missing_reference

        node = node.deepcopy()
        node["reftarget"] = EXTERNAL_SHORT[target]
        return missing_reference(app, env, node, contnode)
    if real is None:
        return None
    for role in ("class", "func", "data", "meth", "attr", "obj"):
        found = domain.resolve_xref(env, node["refdoc"], builder, role, real, node, contnode)
        if found is not None:
            return found
    return None


def _collect_aliases(app: Sphinx) -> None:
    """``env.augpatch_aliases``: every module-level spelling of an augpatch public name,
    and every unique short name (key ``*.<name>``), mapped to the page that owns it."""
    aliases: dict[str, str] = {}
    short: dict[str, set[str]] = {}
    owners: dict[int, str] = {}
    for modname in api_modules(app):
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            kind = _kind(obj)
            if kind == "data":  # constants: one page per module that lists them
                aliases[f"{modname}.{name}"] = f"{modname}.{name}"
                short.setdefault(name, set()).add(f"{modname}.{name}")
                continue
            if kind not in ("class", "function"):
                continue
            real = owners.setdefault(id(obj), f"{modname}.{name}")
            aliases[f"{modname}.{name}"] = real
            short.setdefault(name, set()).add(real)
            qual = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
            aliases.setdefault(qual, real)
    for name, reals in short.items():
        if len(reals) == 1:
            aliases[f"*.{name}"] = next(iter(reals))
    app.env.augpatch_aliases = aliases


def _drop_type_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                         lines: list[str]) -> None:
    """A constant without a docstring of its own would show its type's (``dict``'s)."""
    if what in ("data", "attribute") and not isinstance(obj, types.ModuleType):
        type_doc = inspect.getdoc(type(obj)) or ""
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines[:] = []


def _inherited_from(name: str) -> type | None:
    """For a method ``module.Class.method`` without a docstring of its own, the first class
    of ``Class``'s MRO that gives it one (``None`` where it has its own or none)."""
    parts = name.split(".")
    for split in range(len(parts) - 2, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:-1]:
                owner = getattr(owner, part)
        except AttributeError:
            return None
        break
    else:
        return None
    if not inspect.isclass(owner):
        return None
    attr = parts[-1]
    for cls in owner.__mro__:
        if attr in vars(cls) and getattr(vars(cls)[attr], "__doc__", None):
            return None if cls is owner else cls
    return None


def _drop_foreign_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                            lines: list[str]) -> None:
    """A method without a docstring would show the one it inherits; keep that only when it
    comes from augpatch (``nn.Module.forward``'s text is not augpatch's documentation)."""
    if what != "method" or not lines:
        return
    source = _inherited_from(name)
    if source is not None and not source.__module__.startswith("augpatch"):
        lines[:] = []


def _skip_member(app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any) -> Any:
    """albumentations' ``InitSchema`` (a generated pydantic model) is not augpatch API."""
    if name == "InitSchema":
        return True
    return None


def _real_module_ids(app: Sphinx, doctree: Any) -> None:
    """Give every documented object a second id under the module that defines it.

    ``sphinx.ext.viewcode`` links a source page back to ``#<refname>.<name>`` with one
    ``refname`` per source module (the module of the first page that documented any of
    its names), while a name's id uses its page's module (``augpatch.transforms.base.
    PatchCall``, but ``augpatch.transforms.PatchAugmentationBase``). With an id under
    the defining module on every page, and :func:`_viewcode_real_refnames` making that
    the ``refname``, every backlink resolves."""
    from sphinx import addnodes
    from sphinx.ext.viewcode import _get_full_modname

    for objnode in doctree.findall(addnodes.desc):
        if objnode.get("domain") != "py":
            continue
        for sig in objnode.findall(addnodes.desc_signature):
            modname, fullname = sig.get("module"), sig.get("fullname")
            if not modname or not fullname:
                continue
            real = _get_full_modname(modname, fullname)
            extra = f"{real}.{fullname}"
            if real and real != modname and extra not in sig["ids"]:
                sig["ids"].append(extra)


def _viewcode_real_refnames(app: Sphinx) -> list[Any]:
    """Before viewcode writes its pages: each source module's backlinks use its own
    name (the ids :func:`_real_module_ids` added)."""
    modules = getattr(app.env, "_viewcode_modules", {})
    for modname, entry in list(modules.items()):
        if entry:
            code, tags, used, _refname = entry
            modules[modname] = (code, tags, used, modname)
    return []


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("augpatch_api_modules", API_MODULES, "env")
    app.add_config_value("augpatch_pictures", True, "env")
    app.connect("builder-inited", generate)
    app.connect("builder-inited", _collect_aliases)
    app.connect("missing-reference", _resolve_alias)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-bases", _hide_mixins)
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    app.connect("autodoc-process-docstring", _drop_foreign_docstring)
    app.connect("doctree-read", _real_module_ids)
    app.connect("html-collect-pages", _viewcode_real_refnames, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
