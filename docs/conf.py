"""Sphinx configuration of the augpatch documentation site.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything the site shows is generated at build time: the API pages from the
docstrings (``docs/_ext/augpatch_docs.py`` writes one page per public name of the
modules in ``API_MODULES``), the pictures of every transform and policy op on the
embedded coins photograph, and the gallery (``docs/gallery/plot_*.py``, executed by
sphinx-gallery at smoke size). Nothing generated is checked in.

Offline by default: intersphinx reads small local inventories of the torch,
torchvision and Python names the docstrings use (``docs/_ext/inventories.py`` writes
them; the links still point at the real online documentation). Set
``AUGPATCH_DOCS_ONLINE=1`` to download the projects' full ``objects.inv`` instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import inventories  # noqa: E402  (docs/_ext)

import augpatch  # noqa: E402

project = "augpatch"
author = "the augpatch authors"
copyright = "the augpatch authors, BSD-3-Clause"  # noqa: A001
release = augpatch.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "augpatch_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "notes", "gallery/README.rst", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# -- warnings as errors, references resolved ---------------------------------------------
nitpicky = True
# Names that are not documented anywhere Sphinx can link to (typing internals of
# annotations, type variables of the libraries); every augpatch name must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy\.typing|np)\..*"),
    (r"py:.*", r"(kornia|albumentations|PIL)\..*"),
    (r"py:.*", r"augpatch\..*\._[A-Za-z].*"),  # private helpers named in annotations
    (r"py:.*", r"_[A-Za-z].*"),
    # napoleon reads "Raises: ValueError / TypeError naming ..." as one exception name
    (r"py:exc", r".* .*"),
]

# -- autodoc / napoleon -------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
autodoc_inherit_docstrings = True
autosummary_generate = False  # augpatch_docs writes the pages itself (one per name)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Example", "example"), ("Shapes", "params_style")]

# -- intersphinx (offline by default) ----------------------------------------------------
ONLINE = os.environ.get("AUGPATCH_DOCS_ONLINE", "0") == "1"
intersphinx_mapping = inventories.mapping(HERE / "_build" / "inventories", online=ONLINE)
intersphinx_timeout = 10

# -- MyST ----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- sphinx-gallery (smoke size: every example runs in seconds) --------------------------
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|_helpers)\.py$",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "capture_repr": (),
    "show_memory": False,
    "plot_gallery": "True",
}

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"augpatch {release}"
html_static_path = ["_static"]
html_css_files = ["augpatch.css"]
html_favicon = "_static/favicon.png"  # one coin of the demo photograph
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {"navigation_with_keys": True}
