"""The thread pool of the fused kernels (``minroots.parallel``) and the allocator setting
(``minroots.allocator``): blocks, order, errors, and the same bits for any number of threads."""

from __future__ import annotations

import platform
import sys
import threading

import numpy as np
import pytest

import minroots
import minroots.nn.functional as F
from minroots import parallel
from minroots.allocator import keep_freed_memory
from minroots.nn import TransformerConfig, TransformerModel
from minroots.optim import AdamW


@pytest.fixture
def threads():
    """Set the pool's size inside a test; the previous size is restored after it."""
    before = parallel.num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


# ------------------------------------------------------------------ blocks and the pool
def test_row_blocks_cover_the_rows_in_order_and_depend_on_the_shape_only(threads):
    blocks = parallel.row_blocks(10, 3, elements=9)  # 3 rows of 3 per block
    assert [(s.start, s.stop) for s in blocks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    threads(1)
    one = parallel.row_blocks(1000, 64)
    threads(3)
    assert parallel.row_blocks(1000, 64) == one
    assert parallel.row_blocks(0, 5) == []
    assert parallel.row_blocks(4, 10**9) == [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_map_blocks_returns_results_in_block_order(threads, n):
    threads(n)
    seen = set()

    def fn(i):
        seen.add(threading.get_ident())
        return i * i

    assert parallel.map_blocks(fn, list(range(50))) == [i * i for i in range(50)]
    assert len(seen) <= n


def test_map_blocks_reraises_a_blocks_error_on_the_caller(threads):
    threads(2)

    def fn(i):
        if i == 7:
            raise KeyError("block 7")
        return i

    with pytest.raises(KeyError, match="block 7"):
        parallel.map_blocks(fn, list(range(20)))
    assert parallel.map_blocks(lambda i: i, [1, 2]) == [1, 2]  # the pool still works


def test_a_block_that_maps_blocks_runs_them_inline(threads):
    threads(2)
    inner = parallel.map_blocks(lambda i: parallel.map_blocks(lambda j: (i, j), [0, 1]), [0, 1])
    assert inner == [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]


def test_set_num_threads_rejects_what_is_not_a_positive_integer():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            parallel.set_num_threads(bad)


def test_the_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("MINROOTS_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("MINROOTS_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="MINROOTS_NUM_THREADS must be a positive integer"):
        parallel._default_threads()
    monkeypatch.delenv("MINROOTS_NUM_THREADS")
    assert 1 <= parallel._default_threads() <= 8


def test_blas_threads_are_restored_after_the_pool_ran(threads):
    lib = parallel._openblas()
    if lib is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS found at run time")
    before = lib.get()
    threads(2)
    inside = parallel.map_blocks(lambda i: lib.get(), [0, 1, 2])
    assert inside == [1, 1, 1] and lib.get() == before


def test_blas_threads_overlapping_callers_restore_only_when_the_last_leaves():
    """Two threads inside at once (ranks simulated by threads): the first to leave must not give
    BLAS its threads back while the other's blocks still run."""
    lib = parallel._openblas()
    if lib is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS found at run time")
    before = lib.get()
    lib.set(2)
    try:
        a, b = parallel._blas_threads(1), parallel._blas_threads(1)
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert lib.get() == 1, "BLAS got its threads back while another caller was inside"
        b.__exit__(None, None, None)
        assert lib.get() == 2
    finally:
        lib.set(before)


def test_two_callers_at_once_get_their_own_results(threads):
    """Two threads calling fused kernels at the same time (simulated ranks, a server thread next
    to the main one) share the pool's workers and get exactly what each gets alone."""
    threads(2)
    rng = np.random.default_rng(0)
    w = minroots.Tensor(rng.standard_normal((96, 64), dtype=np.float32))
    xs = [minroots.Tensor(rng.standard_normal((4096, 64), dtype=np.float32)) for _ in range(2)]
    alone = [F.gelu(F.linear(x, w), approximate="tanh").data for x in xs]
    got: list = [None, None]

    def run(k):
        for _ in range(5):
            got[k] = F.gelu(F.linear(xs[k], w), approximate="tanh").data

    workers = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in workers), "a caller hung"
    for k in range(2):
        np.testing.assert_array_equal(got[k], alone[k])


# ------------------------------------------------------------------ same bits, any thread count
def _step(n_threads: int):
    """One training step of a GPT whose every kernel has several blocks; all resulting arrays."""
    parallel.set_num_threads(n_threads)
    minroots.manual_seed(0)
    config = TransformerConfig(vocab_size=50, block_size=64, n_layer=2, n_head=4, n_embd=64)
    model = TransformerModel(config)
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 50, (32, 64)) for _ in range(2))  # 2048 tokens: several blocks each
    _, loss = model(x, y)
    loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    opt.step()
    return [loss.data, *grads, *(p.data for p in model.parameters())]


def test_a_training_step_gives_the_same_bits_for_1_2_and_3_threads(threads):
    one = _step(1)
    for n in (2, 3):
        for a, b in zip(one, _step(n), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [2, 3])
def test_each_kernel_gives_the_same_bits_for_any_thread_count(threads, n):
    rng = np.random.default_rng(1)
    cases = [
        (lambda a: F.gelu(a, approximate="tanh"), [(300, 700)]),
        (lambda a, w, b: F.layer_norm(a, w, b), [(3000, 50), (50,), (50,)]),
        (lambda a, w, b: F.linear(a, w, b), [(2500, 40), (30, 40), (30,)]),
        (lambda a: F.packed_self_attention(a, 2), [(20, 70, 24)]),
    ]
    for fn, shapes in cases:
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        seed = None
        results = []
        for k in (1, n):
            threads(k)
            ts = [minroots.tensor(a, requires_grad=True) for a in arrays]
            out = fn(*ts)
            seed = rng.standard_normal(out.shape).astype(np.float32) if seed is None else seed
            out.backward(seed)
            results.append([out.data, *(t.grad for t in ts)])
        for a, b in zip(*results, strict=True):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ the allocator setting
def test_keep_freed_memory_can_be_turned_off(monkeypatch):
    assert keep_freed_memory(False) is False
    monkeypatch.setenv("MINROOTS_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_keep_freed_memory_applies_on_glibc():
    assert keep_freed_memory(True) is True
