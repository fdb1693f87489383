"""Sequence pairs: padding, masks, teacher-forcing shift, PairDataset."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minroots.data import DataLoader, PairDataset, collate_pairs, pad_sequences

PAIRS = [("Good morning.", "Buenos días."), ("Thanks.", "Gracias."), ("Yes", "Sí")]


def test_pad_sequences_hand_example():
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and ids.dtype == np.int64
    assert mask.tolist() == [[True, True, True], [True, False, False]] and mask.dtype == bool
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=-1, max_len=2)
    assert ids.tolist() == [[5, 6], [8, -1]] and mask.sum() == 3


@given(st.lists(st.lists(st.integers(0, 50), max_size=12), min_size=1, max_size=8))
def test_padding_keeps_every_sequence_and_masks_exactly_the_padding(seqs):
    pad = 99
    ids, mask = pad_sequences(seqs, pad_id=pad)
    assert ids.shape == mask.shape == (len(seqs), max(len(s) for s in seqs))
    for b, s in enumerate(seqs):
        assert ids[b][mask[b]].tolist() == s
        assert mask[b].sum() == len(s) and mask[b, : len(s)].all()  # real tokens first
        assert (ids[b][~mask[b]] == pad).all()


def test_collate_pairs_shifts_targets_for_teacher_forcing():
    BOS, EOS, PAD = 11, 12, 10
    items = [
        (np.array([1, 2, EOS]), np.array([BOS, 7, 8, EOS])),
        (np.array([3, EOS]), np.array([BOS, 9, EOS])),
    ]
    batch = collate_pairs(items, pad_id=PAD)
    assert batch["source"].tolist() == [[1, 2, EOS], [3, EOS, PAD]]
    assert batch["source_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert batch["target_input"].tolist() == [[BOS, 7, 8], [BOS, 9, EOS]]
    assert batch["target_output"].tolist() == [[7, 8, EOS], [9, EOS, PAD]]
    assert batch["target_mask"].tolist() == [[True, True, True], [True, True, False]]


def test_pair_dataset_markers_vocab_and_decoding():
    ds = PairDataset(PAIRS)
    V = ds.tokenizer.vocab_size
    assert (ds.pad_id, ds.bos_id, ds.eos_id, ds.vocab_size) == (V, V + 1, V + 2, V + 3)
    src, tgt = ds[1]
    assert src.tolist() == ds.tokenizer.encode("Thanks.") + [ds.eos_id]
    assert tgt.tolist() == [ds.bos_id] + ds.tokenizer.encode("Gracias.") + [ds.eos_id]
    assert ds.decode_target(tgt) == "Gracias."
    assert ds.decode_target([ds.bos_id] + ds.tokenizer.encode("Sí") + [ds.eos_id, 3, 4]) == "Sí"


def test_pair_dataset_truncation_keeps_the_markers():
    ds = PairDataset(PAIRS, max_source_len=4, max_target_len=5)
    src, tgt = ds[0]
    assert len(src) == 4 and src[-1] == ds.eos_id
    assert len(tgt) == 5 and tgt[0] == ds.bos_id and tgt[-1] == ds.eos_id
    assert ds.decode_target(tgt) == "Bue"
    with pytest.raises(ValueError, match="max_source_len"):
        PairDataset(PAIRS, max_source_len=1)


def test_pair_dataset_through_the_loader_uses_its_collate():
    ds = PairDataset(PAIRS)
    batches = list(DataLoader(ds, batch_size=2, shuffle=False))
    assert len(batches) == 2
    b = batches[0]
    assert set(b) == {"source", "source_mask", "target_input", "target_output", "target_mask"}
    lengths = [len(ds[i][1]) - 1 for i in range(2)]
    assert b["target_mask"].sum(axis=1).tolist() == lengths
    assert (b["target_output"][~b["target_mask"]] == ds.pad_id).all()


def test_bundled_pairs_and_split():
    ds = PairDataset("en_es", max_source_len=128, max_target_len=128)
    assert len(ds) == 5000
    train, val = ds.split(0.1, seed=0)
    assert len(train) == 4500 and len(val) == 500
    assert set(train.pairs).isdisjoint(val.pairs)
    assert sorted(train.pairs + val.pairs) == sorted(ds.pairs)
    assert val.tokenizer is ds.tokenizer and val.pad_id == ds.pad_id
    a, _ = ds.split(0.1, seed=0)
    assert a.pairs == train.pairs  # deterministic


def test_pair_dataset_bad_input():
    with pytest.raises(ValueError, match="empty"):
        PairDataset([])
    with pytest.raises(TypeError, match=r"pairs\[1\]"):
        PairDataset([("a", "b"), ("a", 3)])
    with pytest.raises(ValueError, match="empty"):
        pad_sequences([], pad_id=0)
    with pytest.raises(ValueError, match="val_fraction"):
        PairDataset(PAIRS).split(1.5)
