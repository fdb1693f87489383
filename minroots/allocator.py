r"""Freed memory kept for reuse: a training step without thousands of page faults (Linux, glibc).

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_parallel.py``.

A training step allocates every activation and gradient afresh and frees them by the end of the
step. glibc's ``malloc`` serves arrays of more than 128 KB from fresh pages (``mmap``) at first,
and returns the free top of its heap to the operating system once more than a few MB of it are
free (``trim``). The next step then asks for the same memory again, and the kernel hands it back
one 4 KB page at a time: a page fault and a page of zeros each. Measured on the small GPT of
``benchmarks/train_step.py``: about 13,000 page faults per step, 14% of the step's CPU time in the
kernel. Keeping freed memory for reuse (arrays up to 32 MB from the heap; the heap trimmed only
above 1 GB free) brings that to about 100 faults per step. The price: a process keeps the peak of
its heap (what it already used once) instead of returning it between steps.

:func:`keep_freed_memory` is called when minroots is imported; ``MINROOTS_KEEP_FREED_MEMORY=0``
in the environment leaves ``malloc`` as it is. Other C libraries or systems: nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed: bigger arrays still get their own mapping
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory(enable: bool | None = None) -> bool:
    """Ask glibc's ``malloc`` to keep freed memory for reuse; True when it was applied.

    ``enable=None`` reads ``MINROOTS_KEEP_FREED_MEMORY`` (anything but ``0`` means yes).
    """
    if enable is None:
        enable = os.environ.get("MINROOTS_KEEP_FREED_MEMORY", "1").strip() != "0"
    if not enable or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
