r"""More than one core for the fused kernels: fixed row blocks shared by a small thread pool.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_parallel.py``.

NumPy runs each array operation on one core, but it lets go of Python's global interpreter lock
(the GIL) inside its loops and its BLAS calls. A kernel whose work is cut into blocks of rows can
therefore hand the blocks to a few threads, and the blocks run at the same time on different cores.
Blocks help a single core too: a block of about :data:`BLOCK_ELEMENTS` numbers (256 KB of float32)
stays in the core's L2 cache while a kernel runs its whole chain of elementwise steps over it,
where the same steps on the whole array would stream it from memory once per step.

Three rules keep this exact and simple:

1. **Fixed blocks.** The blocks depend on the array's shape only, never on the number of threads.
   Each block is one call of the kernel's block function, which reduces whatever it reduces (a
   row's sum, a block's column sums) in the same order whichever thread runs it, and the caller
   combines the blocks' results in block order. So results are the same bit for bit for any
   number of threads (``tests/test_parallel.py`` checks it).
2. **Shared work.** The calling thread works too, and every thread takes the next untaken block
   from one counter: a worker that is slow to wake up (a busy machine) just takes fewer blocks.
3. **One block stays inline.** Work of a single block runs on the calling thread, with no hand-off.

The number of threads is one setting: the environment variable ``MINROOTS_NUM_THREADS`` (read at
import; default: the CPUs this process may run on, at most 8), or :func:`set_num_threads`. With one
thread the blocks run in order on the calling thread. Inside :func:`map_blocks` BLAS is held at
one thread (and restored after): each block's matmul is one single-threaded BLAS call, because
BLAS's own thread team would fight the pool for the same cores (its idle threads spin for a while
after each call), and because a multithreaded BLAS call does not always give the bits of a
single-threaded one.

>>> [(s.start, s.stop) for s in row_blocks(5, 30_000)]      # 2 rows of 30,000 per block
[(0, 2), (2, 4), (4, 5)]
>>> map_blocks(lambda s: sum(range(s.start, s.stop)), row_blocks(5, 30_000))
[1, 5, 4]
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from queue import SimpleQueue

__all__ = ["BLOCK_ELEMENTS", "num_threads", "set_num_threads", "row_blocks", "map_blocks"]

#: numbers per block of an elementwise kernel: 65,536 float32 = 256 KB, a fraction of an L2 cache
BLOCK_ELEMENTS = 1 << 16

_local = threading.local()  # .in_block: the current thread is running a block (no nesting)


def _default_threads() -> int:
    value = os.environ.get("MINROOTS_NUM_THREADS", "").strip()
    if value:
        n = int(value) if value.isdigit() else 0
        if n < 1:
            raise ValueError(
                f"minroots.parallel: MINROOTS_NUM_THREADS must be a positive integer, got {value!r}"
            )
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


class _Pool:
    """``n - 1`` daemon workers, each waiting on its own queue for a function to run."""

    def __init__(self, n: int):
        self.n = n
        self.queues = [SimpleQueue() for _ in range(n - 1)]
        for q in self.queues:
            threading.Thread(target=self._serve, args=(q,), daemon=True).start()

    @staticmethod
    def _serve(q: SimpleQueue) -> None:
        while True:
            q.get()()

    def run(self, fn, n_blocks: int) -> list:
        """``[fn(0), ..., fn(n_blocks - 1)]``, every thread taking the next untaken index."""
        results = [None] * n_blocks
        errors: list[BaseException] = []
        counter = itertools.count()  # next() on it is atomic under the GIL
        done: SimpleQueue = SimpleQueue()

        def work():
            _local.in_block = True
            try:
                for i in iter(counter.__next__, None):
                    if i >= n_blocks or errors:
                        break
                    results[i] = fn(i)
            except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
                errors.append(e)
            finally:
                _local.in_block = False
                done.put(None)

        helpers = self.queues[: n_blocks - 1]
        with _blas_threads(1):
            for q in helpers:
                q.put(work)
            work()
            for _ in range(len(helpers) + 1):
                done.get()
        if errors:
            raise errors[0]
        return results


_pool: _Pool | None = None
_threads = _default_threads()


def num_threads() -> int:
    """The threads the fused kernels use (the calling thread included)."""
    return _threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``1``: no pool, BLAS keeps its own threads); the results do not change."""
    global _threads, _pool
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    _threads = n
    if _pool is not None and _pool.n != n:
        _pool = None  # the old workers stay idle (daemons); a pool of n starts on first use


def row_blocks(n_rows: int, row_len: int, elements: int = BLOCK_ELEMENTS, xp=None) -> list[slice]:
    """Slices of whole rows, about ``elements`` numbers each, covering ``range(n_rows)``.

    The block size depends on the shape only (rule 1 of the module docstring). For arrays of
    another module than NumPy (``xp``, e.g. CuPy on a GPU) the whole range is one block.
    """
    if xp is not None and xp.__name__ != "numpy":
        return [slice(0, n_rows)]
    rows = max(1, elements // max(1, row_len))
    return [slice(s, min(s + rows, n_rows)) for s in range(0, n_rows, rows)]


def map_blocks(fn, blocks: list) -> list:
    """``[fn(b) for b in blocks]``, the blocks shared by the pool's threads; results in order.

    ``fn`` must only write to its own block of any output (the blocks are disjoint), and must not
    depend on which thread runs it. A call from inside a block runs inline (no nested pools).
    """
    global _pool
    if getattr(_local, "in_block", False):
        return [fn(b) for b in blocks]
    if len(blocks) <= 1 or _threads == 1:
        with _blas_threads(1):
            return [fn(b) for b in blocks]
    if _pool is None:
        _pool = _Pool(_threads)
    return _pool.run(lambda i: fn(blocks[i]), len(blocks))


# ---------------------------------------------------------------------- BLAS threads
class _blas_threads:
    """Context manager: OpenBLAS at ``n`` threads inside, its previous number restored after.

    Found through the OpenBLAS library that NumPy loaded (Linux); elsewhere it does nothing. The
    setting is global to the process, and several threads may be inside at once (ranks simulated
    by threads, a server's thread next to the main one): the first to enter sets it, the last to
    leave restores it, so no thread restores the old number while another one's blocks still run.
    """

    _lock = threading.Lock()
    _inside = 0  # threads inside, all of them with BLAS at n threads
    _prev: int | None = None

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        lib = _openblas()
        if lib is None:
            return
        cls = type(self)
        with cls._lock:
            if cls._inside == 0:
                cls._prev = lib.get()
                if cls._prev != self.n:
                    lib.set(self.n)
            cls._inside += 1

    def __exit__(self, *exc):
        lib = _openblas()
        if lib is None:
            return False
        cls = type(self)
        with cls._lock:
            cls._inside -= 1
            if cls._inside == 0 and cls._prev is not None and cls._prev != self.n:
                lib.set(cls._prev)
        return False


class _OpenBLAS:
    def __init__(self, get, set_):
        self.get, self.set = get, set_


_OPENBLAS_NAMES = [  # (get, set) of NumPy's bundled OpenBLAS (64-bit ints) and of a system one
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
]
_openblas_lib: list = []  # [] before the first look, [None] when there is none


def _openblas() -> _OpenBLAS | None:
    if not _openblas_lib:
        _openblas_lib.append(_find_openblas())
    return _openblas_lib[0]


def _find_openblas() -> _OpenBLAS | None:
    import numpy  # noqa: F401  (loads the library)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in _OPENBLAS_NAMES:
            if hasattr(lib, get) and hasattr(lib, set_):
                return _OpenBLAS(getattr(lib, get), getattr(lib, set_))
    return None
