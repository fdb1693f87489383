"""``python -m minroots``: the same command line as the ``minroots`` script.

Book chapter 7, "Training" (``book/07_training.md``); see :mod:`minroots.cli`.
"""

from minroots.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
