"""minroots: build, train, evaluate and use Transformer language models from scratch.

Book chapter 0, "Why language models" (``book/00_introduction.md``), maps the package.
"""

from minroots import backend
from minroots.backend import manual_seed

__version__ = "0.1.0"

__all__ = ["backend", "manual_seed", "__version__"]
