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


# --- damaged and foreign files: one line naming the file, never the parser's traceback ---------
def _damaged_cases(good: bytes) -> dict:
    """Sixteen ways a safetensors file can be damaged or not be one at all."""
    (n,) = struct.unpack("<Q", good[:8])
    head, body = json.loads(good[8 : 8 + n]), good[8 + n :]

    def with_header(h) -> bytes:
        raw = json.dumps(h).encode()
        return struct.pack("<Q", len(raw)) + raw + body

    a = head["a"]
    return {
        "empty": b"",
        "three bytes": good[:3],
        "only the length": good[:8],
        "header cut short": good[: 8 + n // 2],
        "data cut short": good[:-5],
        "a huge header length": struct.pack("<Q", 2**62) + good[8:],
        "a header length past the end": struct.pack("<Q", n + 100) + good[8:],
        "a header that is not JSON": struct.pack("<Q", n) + b"x" * n + body,
        "a header that is a JSON list": with_header([1, 2]),
        "an unknown dtype": with_header({**head, "a": {**a, "dtype": "Q9"}}),
        "a shape that does not fit the bytes": with_header({**head, "a": {**a, "shape": [3, 3]}}),
        "offsets past the end": with_header({**head, "a": {**a, "data_offsets": [0, 9999]}}),
        "a negative shape": with_header({**head, "a": {**a, "shape": [-2, -3]}}),
        "metadata that is not strings": with_header({**head, "__metadata__": {"k": 1}}),
        "a PNG file": b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        "a JSON file": b'{"a": 1}',
        "a header that is not UTF-8": struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc" + body,
        "extra bytes at the end": good + b"junk",
    }


def test_every_damaged_safetensors_file_is_a_one_line_error_naming_it(tmp_path):
    good_path = tmp_path / "good.safetensors"
    P.save_arrays(good_path, {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"k": "v"})
    cases = _damaged_cases(good_path.read_bytes())
    assert len(cases) >= 16
    for name, data in cases.items():
        path = tmp_path / "bad.safetensors"
        path.write_bytes(data)
        with pytest.raises(ValueError) as err:
            P.load_arrays(path)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{str(path)!r}: "), (name, message)
        assert "not a valid safetensors file" in message, (name, message)


def test_a_dtype_numpy_cannot_hold_is_named(tmp_path):
    path = tmp_path / "bf16.safetensors"
    P.save_arrays(path, {"a": np.zeros(4, np.float32)})
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8 : 8 + n])
    # the same 16 bytes as float8 (no NumPy dtype, even with ml_dtypes, which gives bfloat16)
    head["a"].update(dtype="F8_E4M3", shape=[16])
    text = json.dumps(head).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    with pytest.raises(ValueError, match="tensor 'a' has dtype F8_E4M3, which NumPy cannot hold"):
        P.load_arrays(path)


def test_damaged_tied_metadata_is_named(tmp_path):
    path = tmp_path / "t.safetensors"
    P.save_arrays(path, {"a": np.zeros(2)}, {"tied": "[not json"})
    with pytest.raises(
        ValueError, match=r"t.safetensors': the metadata 'tied' must be a JSON object"
    ):
        P.load_arrays(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"step": 3', r"state.json' is not valid JSON \(Expecting ',' delimiter at line 1"),
        (b"\xff\xfe{}", r"state.json' is not UTF-8 text \(byte 0"),
        (b"[" * 100_000 + b"]" * 100_000, r"state.json' nests JSON arrays or objects too deeply"),
        (b"[1, 2]", r"state.json' must hold a JSON object, got a JSON array"),
    ],
    ids=["cut short", "not UTF-8", "nested 10^5 deep", "not an object"],
)
def test_read_json_turns_every_damage_into_one_line(tmp_path, content, expected):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as err:
        P.read_json(path, "load_checkpoint", expect=dict)
    assert str(err.value).startswith("load_checkpoint: ") and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="is a folder, expected a JSON file"):
        P.read_json(tmp_path, "load_checkpoint")
    with pytest.raises(FileNotFoundError, match="nope.json' does not exist"):
        P.read_json(tmp_path / "nope.json", "load_checkpoint")


# --- operating-system errors name the file -------------------------------------------------------
def test_a_full_disk_while_writing_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    P.write_json(path, {"step": 1})

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError) as err:
        P.write_json(path, {"step": 2})
    assert (
        str(err.value) == f"{str(path)!r}: cannot write the file: No space left on device (ENOSPC)"
    )
    assert err.value.errno == 28
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"step": 1} and leftovers(tmp_path) == []


def test_the_safetensors_writers_os_error_becomes_an_oserror_naming_the_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def efbig(arrays, filename, metadata=None):
        raise SafetensorError("Error while serializing: I/O error: File too large (os error 27)")

    monkeypatch.setattr(P, "save_file", efbig)
    with pytest.raises(OSError) as err:
        P.save_arrays(tmp_path / "m.safetensors", {"w": np.zeros(2)})
    assert str(err.value).endswith("m.safetensors': cannot write the file: File too large (EFBIG)")
    assert err.value.errno == 27 and leftovers(tmp_path) == []


# --- appending lines -------------------------------------------------------------------------------
def test_cut_torn_tail_keeps_whole_lines_only(tmp_path):
    path = tmp_path / "log.jsonl"
    assert P.cut_torn_tail(path) == 0  # no file, nothing cut
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    assert P.cut_torn_tail(path) == 4 and path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert P.cut_torn_tail(path) == 0
    path.write_bytes(b"x" * 200_000)  # one torn line longer than a read block: nothing is whole
    assert P.cut_torn_tail(path) == 200_000 and path.read_bytes() == b""
    assert P.append_line(path, "ok\n") == 0 and path.read_text() == "ok\n"
    with pytest.raises(ValueError, match="append_line: line must end with a newline"):
        P.append_line(path, "no newline")
