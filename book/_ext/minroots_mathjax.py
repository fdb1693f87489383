r"""Serve MathJax with the book, so that its formulas render with no network (a Sphinx extension).

Sphinx loads MathJax from a CDN by default (its ``mathjax_path``); opened offline, a chapter then
shows raw ``\(\hat y = \mathrm{softmax}(z)\)``. This extension points ``mathjax_path`` at a copy
inside the built book, ``_static/mathjax/tex-chtml.js`` (MathJax 3: TeX in, HTML and CSS out),
and copies that file there with what it loads on demand: the TeX extensions (``\boldsymbol``,
``\cancel``, ...), the fonts, and the menu's accessibility components. The files come from the
``sphinx-mathjax-offline`` package on PyPI (MathJax 3.2.2), which the ``dev`` extra installs; the
other bundles it carries (SVG output, MathML input) are not copied.

Checked by ``tests/test_book.py``: the configuration and a one-page build (fast), and the real
book (slow): no page loads a script from the network, and a headless browser renders the
formulas of chapter 4 with the network switched off.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

MATHJAX_PATH = "mathjax/tex-chtml.js"  # relative to the build's _static folder
# what tex-chtml.js never loads: the other combined bundles, node's entry point, SVG output
_UNUSED = ("tex-mml-", "mml-", "tex-svg", "tex-chtml-full", "node-main", "output/svg")


def mathjax_source() -> Path:
    """The folder of MathJax's files in the installed ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "minroots_mathjax: the book serves MathJax itself and takes it from the package "
            "sphinx-mathjax-offline, which is not installed; pip install -e '.[dev]'"
        )
    return Path(spec.submodule_search_locations[0]) / "static" / "mathjax"


def copy_mathjax(destination: Path) -> Path:
    """Copy the MathJax files the book needs into ``destination`` (``<html>/_static/mathjax``)."""
    source = mathjax_source()

    def unused(folder: str, names: list[str]) -> list[str]:
        where = Path(folder).relative_to(source).as_posix()
        return [n for n in names if (n if where == "." else f"{where}/{n}").startswith(_UNUSED)]

    shutil.copytree(source, destination, ignore=unused, dirs_exist_ok=True)
    return destination


def _use_local_mathjax(app, config) -> None:
    config.mathjax_path = MATHJAX_PATH


def _copy_after_build(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static" / "mathjax")


def setup(app):
    mathjax_source()  # fail at the start of the build, not at its end
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_after_build)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
