"""DataLoader: epochs cover every example once, drop_last, exact resume from state_dict."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minroots.data import DataLoader, TextDataset, default_collate


class Numbers:
    """Dataset whose example ``i`` is the array ``[i, 10 * i]`` (easy to trace)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.array([i, 10 * i])


def served(batches):
    """Example indices in the order served by ``Numbers`` batches."""
    return [int(v) for b in batches for v in b[:, 0]]


def test_hand_example_without_shuffle():
    loader = DataLoader(Numbers(5), batch_size=2, shuffle=False)
    batches = list(loader)
    assert [b[:, 0].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[0].tolist() == [[0, 0], [1, 10]] and batches[0].dtype == np.int64
    assert len(loader) == 3 and loader.epoch == 1 and loader.position == 0
    dropped = DataLoader(Numbers(5), batch_size=2, shuffle=False, drop_last=True)
    assert [b[:, 0].tolist() for b in dropped] == [[0, 1], [2, 3]] and len(dropped) == 2


@given(
    n=st.integers(1, 40),
    batch_size=st.integers(1, 12),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_every_example_exactly_once_per_epoch(n, batch_size, shuffle, seed):
    loader = DataLoader(Numbers(n), batch_size=batch_size, shuffle=shuffle, seed=seed)
    orders = []
    for epoch in range(3):
        batches = list(loader)
        assert len(batches) == len(loader) == -(-n // batch_size)
        assert all(len(b) == batch_size for b in batches[:-1])
        order = served(batches)
        assert sorted(order) == list(range(n)), f"epoch {epoch} did not cover each example once"
        assert order == loader.epoch_order(epoch).tolist()
        orders.append(order)
    if not shuffle:
        assert orders[0] == list(range(n))
    elif n >= 8:
        assert orders[0] != orders[1]  # a new permutation each epoch (8! makes a tie unlikely)


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans())
def test_drop_last_serves_only_full_batches_without_repeats(n, batch_size, shuffle):
    if n < batch_size:
        with pytest.raises(ValueError, match="drop_last"):
            DataLoader(Numbers(n), batch_size=batch_size, drop_last=True)
        return
    loader = DataLoader(Numbers(n), batch_size=batch_size, shuffle=shuffle, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(loader) == n // batch_size
    assert all(len(b) == batch_size for b in batches)
    order = served(batches)
    assert len(set(order)) == len(order) == n - n % batch_size


@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 8),
    stop=st.integers(0, 12),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_resume_mid_epoch_gives_the_same_remaining_order(n, batch_size, stop, shuffle, drop_last):
    if drop_last and n < batch_size:
        return
    make = lambda: DataLoader(
        Numbers(n), batch_size=batch_size, shuffle=shuffle, seed=5, drop_last=drop_last
    )
    straight = make()
    reference = [straight.next_batch() for _ in range(stop + 10)]

    first = make()
    for _ in range(stop):
        first.next_batch()
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    resumed = make()
    resumed.load_state_dict(state)
    rest = [resumed.next_batch() for _ in range(10)]
    for a, b in zip(rest, reference[stop:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_contents_and_for_loop_resume():
    loader = DataLoader(Numbers(10), batch_size=3, seed=9)
    it = iter(loader)
    next(it)
    next(it)
    state = loader.state_dict()
    assert state == {
        "epoch": 0,
        "position": 6,
        "seed": 9,
        "shuffle": True,
        "batch_size": 3,
        "drop_last": False,
        "num_examples": 10,
    }
    remaining = served(it)
    other = DataLoader(Numbers(10), batch_size=3, seed=0)  # seed comes from the state
    other.load_state_dict(state)
    assert served(other) == remaining == loader.epoch_order(0)[6:].tolist()
    assert other.epoch == 1


def test_load_state_dict_rejects_a_different_dataset():
    loader = DataLoader(Numbers(10), batch_size=3)
    with pytest.raises(ValueError, match="10"):
        loader.load_state_dict({**loader.state_dict(), "num_examples": 11})
    with pytest.raises(ValueError, match="missing"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(
        ValueError, match="epoch and position must be in range, got epoch=0, position=99"
    ):
        loader.load_state_dict({"epoch": 0, "position": 99, "seed": 0})


def test_next_batch_crosses_epochs():
    loader = DataLoader(Numbers(4), batch_size=3, shuffle=False)
    got = [loader.next_batch()[:, 0].tolist() for _ in range(4)]
    assert got == [[0, 1, 2], [3], [0, 1, 2], [3]]
    assert loader.epoch == 1 and loader.position == 4


def test_loader_does_not_touch_the_global_rng():
    state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG must stay untouched)
    list(DataLoader(Numbers(20), batch_size=4, shuffle=True, seed=1))
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002


def test_text_dataset_blocks_through_the_loader(tmp_path):
    ds = TextDataset("abcdefghijklmnopqrstuvwxyz" * 4, block_size=5, cache_dir=tmp_path)
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    xs, ys = zip(*list(loader), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (len(ds), 5) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    starts = sorted(int(row[0]) for row in x)  # ids are letters: block i starts at 5 * i % 26
    assert starts == sorted((5 * i) % 26 for i in range(len(ds)))


def test_default_collate_rejects_ragged_items_and_bad_arguments():
    with pytest.raises(ValueError, match="pad"):
        default_collate([np.array([1, 2]), np.array([3])])
    assert default_collate([{"a": [1, 2]}, {"a": [3, 4]}])["a"].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(Numbers(3), batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        DataLoader(Numbers(3), batch_size=1.5)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(Numbers(3), batch_size=1, seed=-1)
    with pytest.raises(ValueError, match="empty"):
        DataLoader(Numbers(0), batch_size=1)
