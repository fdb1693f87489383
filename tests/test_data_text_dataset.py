"""TextDataset: split, (x, y) blocks, and the token-id cache."""

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minroots
from minroots.data import TextDataset, cached_encode, default_cache_dir
from minroots.data.cache import cache_key, ids_dtype
from minroots.data.text_dataset import split_point, split_ranges
from minroots.tokenizers import CharTokenizer

TEXT = "the quick brown fox jumps over the lazy dog. " * 40  # 1800 characters


class CountingTokenizer(CharTokenizer):
    """A CharTokenizer that counts calls to encode (to see cache hits)."""

    calls = 0

    def encode(self, text):
        type(self).calls += 1
        return super().encode(text)


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_hand_example_blocks_and_split(cache):
    ds = TextDataset("abcdefghijklmnopqrst", block_size=3, val_fraction=0.2, cache_dir=cache)
    assert ds.vocab_size == 20 and ds.num_tokens == 20
    assert ds.train.tolist() == list(range(16)) and ds.val.tolist() == [16, 17, 18, 19]
    with pytest.raises(ValueError):
        ds.train[0] = 5  # the views are read-only
    assert len(ds) == 5  # (16 - 1) // 3 non-overlapping training blocks
    x, y = ds[1]
    assert x.tolist() == [3, 4, 5] and y.tolist() == [4, 5, 6] and x.dtype == np.int64
    assert ds.decode(x) == "def"
    assert [t.tolist() for t in ds.blocks("val")[0]] == [[16, 17, 18], [17, 18, 19]]
    with pytest.raises(IndexError):
        ds[5]


def test_split_is_contiguous_and_deterministic(cache):
    assert split_point(1000, 0.1) == 900 and split_point(1000, 0.0) == 1000
    a = TextDataset(TEXT, block_size=8, cache_dir=cache)
    b = TextDataset(TEXT, block_size=8, cache_dir=cache, seed=123)
    n = len(TEXT)
    assert len(a.train) == n - int(n * 0.1) and len(a.val) == int(n * 0.1)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert np.array_equal(np.concatenate([a.train, a.val]), a.ids)
    assert a.decode(a.val) == TEXT[len(a.train) :]


@settings(max_examples=25)
@given(
    block_size=st.integers(1, 20),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    split=st.sampled_from(["train", "val"]),
)
def test_get_batch_y_is_x_shifted_and_inside_the_split(block_size, batch_size, seed, split):
    with tempfile.TemporaryDirectory() as tmp:
        ds = TextDataset(TEXT, block_size=block_size, cache_dir=tmp)
    x, y = ds.get_batch(split, batch_size, np.random.default_rng(seed))
    assert x.shape == y.shape == (batch_size, block_size)
    assert x.dtype == y.dtype == np.int64
    data = ds.split(split)
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(data, np.int64), block_size + 1)
    for row in np.concatenate([x, y[:, -1:]], axis=1):  # x plus y's last token: one window
        assert (windows == row).all(axis=1).any(), "batch row is not a window of the split"
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_get_batch_randomness_comes_from_the_rng_argument(cache):
    ds = TextDataset(TEXT, block_size=16, cache_dir=cache)
    state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG must stay untouched)
    x1, _ = ds.get_batch("train", 8, np.random.default_rng(7))
    x2, _ = ds.get_batch("train", 8, 7)  # a seed works too
    assert np.array_equal(x1, x2)
    assert not np.array_equal(x1, ds.get_batch("train", 8, np.random.default_rng(8))[0])
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002  # global RNG untouched
    # no rng: the dataset's own generator, seeded by `seed`
    c = TextDataset(TEXT, block_size=16, cache_dir=cache, seed=3)
    d = TextDataset(TEXT, block_size=16, cache_dir=cache, seed=3)
    assert np.array_equal(c.get_batch("val", 4)[0], d.get_batch("val", 4)[0])


def test_bundled_corpus_by_name(tmp_path):
    ds = TextDataset("shakespeare", block_size=64, cache_dir=tmp_path)
    assert ds.vocab_size == 76 and 900_000 < ds.num_tokens < 1_200_000
    assert ds.ids.dtype == np.uint8  # smallest dtype that holds the vocabulary
    x, y = ds.get_batch("train", 2, 0)
    assert ds.decode(x[0])[1:] == ds.decode(y[0])[:-1]


def test_file_path_source(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(TEXT)
    assert TextDataset(p, block_size=4, cache_dir=tmp_path).text == TEXT
    assert TextDataset(str(p), block_size=4, cache_dir=tmp_path).text == TEXT


def test_cache_hit_does_not_retokenize(cache):
    tok = CountingTokenizer.from_text(TEXT)
    CountingTokenizer.calls = 0
    first = TextDataset(TEXT, tokenizer=tok, block_size=8, cache_dir=cache)
    assert CountingTokenizer.calls == 1
    files = list(cache.glob("ids-*.npy"))
    assert len(files) == 1 and files[0].name == f"ids-{cache_key(TEXT, tok)}.npy"
    mtime = files[0].stat().st_mtime_ns
    second = TextDataset(TEXT, tokenizer=tok, block_size=8, cache_dir=cache)
    assert CountingTokenizer.calls == 1, "second load re-tokenized instead of using the cache"
    assert files[0].stat().st_mtime_ns == mtime
    assert np.array_equal(first.ids, second.ids)
    # another text or another vocabulary is another key, so another file
    TextDataset(
        TEXT + "!", tokenizer=CountingTokenizer.from_text(TEXT + "!"), cache_dir=cache, block_size=8
    )
    assert CountingTokenizer.calls == 2 and len(list(cache.glob("ids-*.npy"))) == 2
    assert cache_key(TEXT, tok) != cache_key(TEXT, CharTokenizer.from_text(TEXT + "#"))
    assert not list(cache.glob("*.tmp"))


def test_use_cache_false_writes_nothing(cache):
    TextDataset(TEXT, block_size=8, cache_dir=cache, use_cache=False)
    assert not cache.exists()


def test_corrupt_cache_file_is_rebuilt(cache):
    tok = CharTokenizer.from_text(TEXT)
    ids = cached_encode(TEXT, tok, cache_dir=cache)
    path = cache / f"ids-{cache_key(TEXT, tok)}.npy"
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="encoding the text again"):
        assert np.array_equal(cached_encode(TEXT, tok, cache_dir=cache), ids)
    assert np.array_equal(np.load(path), ids)


def _emptied(path):
    path.write_bytes(b"")


def _shortened(path):
    path.write_bytes(path.read_bytes()[:-10])


def _changed(path):  # the same size, one id edited: only the checksum can tell
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def _record_lost(path):
    path.with_suffix(".json").unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_emptied, "have 0 bytes, their checksum file says"),
        (_shortened, "bytes, their checksum file says"),
        (_changed, "do not match their checksum"),
        (_record_lost, "have no checksum file"),
    ],
    ids=["empty", "shortened", "changed", "no checksum file"],
)
def test_a_cache_file_that_does_not_match_its_checksum_is_rebuilt_with_a_message(
    cache, damage, reason
):
    """An empty cache file used to raise EOFError on every later run; a shortened or edited one
    was trusted. Now each is re-encoded, with a warning that says why."""
    tok = CharTokenizer.from_text(TEXT)
    ids = cached_encode(TEXT, tok, cache_dir=cache)
    path = cache / f"ids-{cache_key(TEXT, tok)}.npy"
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["key"] == cache_key(TEXT, tok) and record["bytes"] == path.stat().st_size
    damage(path)
    with pytest.warns(UserWarning, match=reason):
        again = cached_encode(TEXT, tok, cache_dir=cache)
    assert np.array_equal(again, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: the next run reads it silently
        assert np.array_equal(cached_encode(TEXT, tok, cache_dir=cache), ids)


def test_large_ids_are_memory_mapped(cache):
    tok = CharTokenizer.from_text(TEXT)
    fresh = cached_encode(TEXT, tok, cache_dir=cache, mmap_bytes=100)
    again = cached_encode(TEXT, tok, cache_dir=cache, mmap_bytes=100)
    assert isinstance(fresh, np.memmap) and isinstance(again, np.memmap)
    assert isinstance(cached_encode(TEXT, tok, cache_dir=cache), np.ndarray)
    assert np.array_equal(again, tok.encode(TEXT))


def test_memory_mapped_dataset_serves_batches(cache, monkeypatch):
    monkeypatch.setattr("minroots.data.cache.MMAP_BYTES", 0)
    ds = TextDataset(TEXT, block_size=8, cache_dir=cache)
    assert isinstance(ds.ids, np.memmap)
    x, y = ds.get_batch("val", 3, 0)
    assert x.dtype == np.int64 and np.array_equal(x[:, 1:], y[:, :-1])
    assert ds[0][0].tolist() == ds.tokenizer.encode(TEXT[:8])


def test_default_cache_dir_env_and_never_in_package(monkeypatch, tmp_path):
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    TextDataset(TEXT, block_size=8)
    assert len(list((tmp_path / "env").glob("ids-*.npy"))) == 1
    monkeypatch.delenv("MINROOTS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "minroots"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "minroots"
    package = Path(minroots.__file__).resolve().parent
    assert package not in default_cache_dir().resolve().parents


def test_ids_dtype():
    assert ids_dtype(65) == np.uint8 and ids_dtype(256) == np.uint8
    assert ids_dtype(257) == np.uint16 and ids_dtype(50257) == np.uint16
    assert ids_dtype(100277) == np.uint32


def test_bad_arguments_raise_clear_errors(cache):
    with pytest.raises(ValueError, match="block_size"):
        TextDataset(TEXT, block_size=0, cache_dir=cache)
    with pytest.raises(TypeError, match="block_size"):
        TextDataset(TEXT, block_size=2.5, cache_dir=cache)
    with pytest.raises(ValueError, match="val_fraction"):
        TextDataset(TEXT, val_fraction=1.0, cache_dir=cache)
    with pytest.raises(ValueError, match="block_size=512"):
        TextDataset(TEXT, block_size=512, cache_dir=cache)  # val split has 180 tokens
    with pytest.raises(ValueError, match="corpus name"):
        TextDataset("shakspeare", block_size=8, cache_dir=cache)  # a typo, not text
    with pytest.raises(ValueError, match="empty"):
        TextDataset("", cache_dir=cache)
    with pytest.raises(TypeError, match="source"):
        TextDataset(b"bytes", cache_dir=cache)
    ds = TextDataset(TEXT, block_size=8, cache_dir=cache)
    with pytest.raises(ValueError, match="split"):
        ds.get_batch("test", 2)
    with pytest.raises(ValueError, match="batch_size"):
        ds.get_batch("train", 0)


def test_no_validation_split(cache):
    ds = TextDataset(TEXT, block_size=8, val_fraction=0, cache_dir=cache)
    assert len(ds.val) == 0 and len(ds.train) == len(TEXT)
    with pytest.raises(ValueError, match="val split"):
        ds.get_batch("val", 1)
    assert os.listdir(cache)  # cached even without a validation split


def test_split_ranges_by_hand():
    assert split_ranges(1000, 0.1, 1) == ([(0, 900)], [(900, 1000)])
    assert split_ranges(1000, 0.1, 2) == ([(0, 450), (500, 950)], [(450, 500), (950, 1000)])


def test_val_pieces_hold_out_the_end_of_every_piece(cache):
    ds = TextDataset(
        "abcdefghijklmnopqrst", block_size=2, val_fraction=0.2, val_pieces=2, cache_dir=cache
    )
    # pieces "abcdefghij" and "klmnopqrst": their last 20% ("ij", "st") validate
    assert ds.decode(ds.train) == "abcdefghklmnopqr"
    assert ds.decode(ds.val) == "ijst"
    with pytest.raises(ValueError):
        ds.val[0] = 1  # read-only like the single-piece views
    a = TextDataset(TEXT, block_size=8, val_pieces=5, cache_dir=cache)
    b = TextDataset(TEXT, block_size=8, val_pieces=5, cache_dir=cache, seed=9)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert len(a.train) + len(a.val) == len(TEXT)
    assert sorted(np.concatenate([a.train, a.val]).tolist()) == sorted(a.ids.tolist())
    with pytest.raises(ValueError, match="val_pieces"):
        TextDataset(TEXT, block_size=8, val_pieces=0, cache_dir=cache)
