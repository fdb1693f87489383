"""Named arrays on disk (minroots/persistence.py): exact round trips, tied aliases stored once,
metadata, the header format older files have, and atomic writes that a crash cannot half-finish."""

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minroots import persistence as P


def header(path) -> dict:
    """The JSON header of a safetensors file (8 bytes of length, little-endian, then JSON)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def leftovers(folder) -> list[str]:
    return sorted(p for p in os.listdir(folder) if ".tmp" in p)


def test_round_trip_keeps_values_dtypes_and_shapes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal(5),
        "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
        "mask": np.array([True, False]),
        "scalar": np.array(2.5, dtype=np.float32),
        "view": rng.standard_normal((4, 3)).T,  # not contiguous: stored as a contiguous copy
    }
    P.save_arrays(tmp_path / "a.safetensors", arrays, {"format": "np", "step": 7})
    loaded, metadata = P.load_arrays(tmp_path / "a.safetensors")
    assert list(loaded) == sorted(arrays)  # safetensors stores names sorted
    for name, arr in arrays.items():
        assert loaded[name].dtype == arr.dtype and loaded[name].shape == arr.shape, name
        np.testing.assert_array_equal(loaded[name], arr)
    assert metadata == {"format": "np", "step": "7"}  # metadata values are strings
    assert leftovers(tmp_path) == []


def test_tied_arrays_are_stored_once_and_come_back_as_one(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    named = {"wte.weight": w, "b": np.ones(2, np.float32), "lm_head.weight": w}
    named["copy"] = w.copy()  # equal values, another array: not an alias
    named["view"] = w[:1]  # shares memory, another object: not an alias
    path = tmp_path / "m.safetensors"
    P.save_arrays(path, named, {"format": "np"}, tied=True)
    assert sorted(load_file(path)) == ["b", "copy", "view", "wte.weight"]  # w written once
    loaded, metadata = P.load_arrays(path)
    assert json.loads(metadata["tied"]) == {"lm_head.weight": "wte.weight"}
    assert loaded["lm_head.weight"] is loaded["wte.weight"]
    np.testing.assert_array_equal(loaded["lm_head.weight"], w)
    raw, _ = P.load_arrays(path, tied=False)
    assert "lm_head.weight" not in raw


def test_untie_and_retie_by_hand():
    w, b = np.zeros(3), np.ones(2)
    arrays, aliases = P.untie({"a": w, "b": b, "c": w, "d": w})
    assert list(arrays) == ["a", "b"] and arrays["a"] is w
    assert aliases == {"c": "a", "d": "a"}
    back = P.retie(dict(arrays), aliases)
    assert list(back) == ["a", "b", "c", "d"] and back["d"] is w
    assert P.retie({"x": b}, {"y": "missing"}) == {"x": b}  # an alias of nothing stays absent


def test_header_is_the_format_older_files_have(tmp_path):
    """Files written before and after the persistence module agree: the same header, so old
    checkpoints load and new ones load in old code. (safetensors writes the metadata keys in no
    fixed order, so headers are compared parsed, not byte by byte.)"""
    w = np.array([1.0, 2.0], dtype=np.float32)
    P.save_arrays(tmp_path / "t.safetensors", {"a": w, "b": w}, {"format": "np"}, tied=True)
    assert header(tmp_path / "t.safetensors") == {
        "__metadata__": {"format": "np", "tied": '{"b": "a"}'},
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    P.save_arrays(tmp_path / "none.safetensors", {"a": w})  # optimizer state: no metadata block
    assert "__metadata__" not in header(tmp_path / "none.safetensors")
    P.save_arrays(tmp_path / "empty.safetensors", {"a": w}, {})
    assert header(tmp_path / "empty.safetensors")["__metadata__"] == {}
    # a file written by safetensors itself, the way older minroots did, loads with its aliases
    save_file({"a": w}, str(tmp_path / "old.safetensors"), metadata={"tied": '{"b": "a"}'})
    old, _ = P.load_arrays(tmp_path / "old.safetensors")
    assert old["b"] is old["a"]


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        P.load_arrays(tmp_path / "nope.safetensors")


def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    P.save_arrays(path, {"w": np.zeros(4, np.float32)})
    before = path.read_bytes()

    def half_written(arrays, filename, metadata=None):
        open(filename, "wb").write(b"\x08\x00\x00")  # a few bytes, then the disk is full
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(P, "save_file", half_written)
    with pytest.raises(OSError, match="simulated"):
        P.save_arrays(path, {"w": np.ones(4, np.float32)})
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_a_json_write_that_fails_half_way_leaves_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    P.write_json(path, {"step": 1})
    assert json.loads(path.read_text()) == {"step": 1}
    with pytest.raises(TypeError):  # json.dump has written '{"step": 2, "bad": ' when it fails
        P.write_json(path, {"step": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"step": 1} and leftovers(tmp_path) == []


def test_atomic_write_flushes_the_file_then_renames_then_flushes_the_folder(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b))
    P.write_json(tmp_path / "x.json", [1, 2])
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
    assert json.loads((tmp_path / "x.json").read_text()) == [1, 2]
