"""``python -m minroots``: the same command line as the ``minroots`` script.

Book chapter 7, "Training" (``book/07_training.md``); see :mod:`minroots.cli`.
"""

import sys

try:
    from minroots.cli import main
except ImportError as exc:  # a folder named minroots hides the package: say so on one line
    if type(exc).__name__ != "HiddenPackageError":
        raise
    print(f"minroots: error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

if __name__ == "__main__":
    raise SystemExit(main())
