"""minroots: build, train, evaluate and use Transformer language models from scratch.

Book chapter 0, "Why language models" (``book/00_introduction.md``), maps the package.
"""

from minroots import backend
from minroots.autograd import (
    Tensor,
    arange,
    concatenate,
    detect_anomaly,
    empty,
    enable_grad,
    full,
    gradcheck,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    split,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)  # fmt: skip
from minroots.backend import manual_seed

__version__ = "0.1.0"

__all__ = [
    "backend", "manual_seed", "__version__", "Tensor", "tensor", "zeros", "ones", "full", "empty",
    "randn", "rand", "arange", "zeros_like", "ones_like", "no_grad", "enable_grad",
    "is_grad_enabled", "detect_anomaly", "gradcheck", "concatenate", "stack", "split", "where",
]  # fmt: skip
