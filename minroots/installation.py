"""Is ``minroots`` the package, or a folder named ``minroots`` that hides it?

Book chapter 0, "Why language models" (``book/00_introduction.md``), where the package is set
up; tests in ``tests/test_cli.py``.

Python looks for ``import minroots`` in the current folder first. Run from the folder that
*contains* a checkout (``git clone`` makes a folder named ``minroots``), it finds the checkout
itself, a folder without ``__init__.py``, and imports it as an empty *namespace package*
(``minroots.__file__`` is None). With an editable install (``pip install -e .``) the submodules
still load from the right place, so the failure comes later and makes no sense: ``cannot import
name '__version__' from 'minroots' (unknown location)``, or a ``TypeError`` from a path that is
None. The command line and the assignments import this module first; it raises
:class:`HiddenPackageError`, which says what happened and what to do, before anything else can
fail.
"""

from __future__ import annotations

import sys

__all__ = ["HiddenPackageError", "check_installation"]


class HiddenPackageError(ImportError):
    """``minroots`` was imported from a folder that is not the package (see the module docs)."""


def check_installation() -> None:
    """Raise :class:`HiddenPackageError` if ``minroots`` was imported as a namespace package."""
    package = sys.modules.get("minroots")
    if package is None or getattr(package, "__file__", None) is not None:
        return
    folder = next(iter(getattr(package, "__path__", [])), "minroots")
    raise HiddenPackageError(
        f"import minroots: the folder {folder} hides the minroots package: Python imported it as "
        "an empty namespace package because it is in the current folder (the folder that "
        "contains a checkout of minroots, say); run from inside the checkout (cd minroots) or "
        "from any other folder",
        name="minroots",
        path=folder,
    )


check_installation()  # on import: the modules that import this one need the real package
