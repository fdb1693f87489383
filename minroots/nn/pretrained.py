r"""Hugging Face model directories in both directions, offline: :func:`from_pretrained` and
:func:`save_pretrained`, for ``gpt2``, ``llama``, ``qwen2`` and ``qwen3``.

Book chapter 12, "A modern decoder" (``book/12_modern_decoder.md``); tests in
``tests/test_models_hf_parity.py``.

A Hugging Face model directory holds ``config.json`` (the architecture, read by
:mod:`minroots.nn.hf_config`) and the weights as safetensors: one ``model.safetensors``, or
shards listed in ``model.safetensors.index.json`` (``{"weight_map": {tensor: file}}``), whose names
and layouts :mod:`minroots.nn.hf_weights` translates::

    model = minroots.nn.from_pretrained("path/to/Qwen3-0.6B")          # a local folder; no download
    model.save_pretrained("out/")      # transformers.AutoModelForCausalLM.from_pretrained("out/")

**Reading safetensors by hand.** A file is an 8-byte little-endian header length, a JSON header
(each tensor's ``dtype``, ``shape`` and ``data_offsets``), then raw bytes. :func:`read_safetensors`
checks every entry against the file (offsets inside the data, byte counts equal to shape times
item size) before reading it, and reads ``F64``, ``F32``, ``F16`` and ``BF16``. NumPy has no
bfloat16: a ``BF16`` number is the upper half of a float32, so shifting its 16 bits left by 16
gives the same value as a float32, exactly. Any other dtype (integers, 8-bit floats, quantized
blocks) is refused, naming the tensor.

**No pickle.** ``pytorch_model.bin`` is a pickle, which runs code when loaded; it is refused with a
message saying how to convert it to safetensors.
"""

from __future__ import annotations

import json
import math
import mmap
import os

import numpy as np

from minroots import backend as B
from minroots.nn.gpt import TransformerConfig, TransformerModel
from minroots.nn.hf_config import config_from_hf, config_to_hf, hf_model_type
from minroots.nn.hf_weights import weights_from_hf, weights_to_hf
from minroots.persistence import read_json, save_arrays, write_json

__all__ = ["from_pretrained", "save_pretrained", "read_safetensors"]

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
GENERATION_CONFIG = "generation_config.json"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
           "BF16": np.dtype("<u2")}  # fmt: skip


def read_safetensors(path) -> tuple[dict, dict]:
    """``(name -> NumPy array, metadata)`` of a safetensors file, every entry checked first.

    ``F64`` and ``F32`` tensors keep their dtype; ``F16`` and ``BF16`` become float32 (exactly).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < n <= size - 8:
            raise ValueError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{path}: the safetensors header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path}: the safetensors header must be a JSON object, got "
                             f"{type(header).__name__}")  # fmt: skip
        metadata = header.pop("__metadata__", None) or {}
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + n else b""
    arrays = {name: _tensor(path, name, info, data, 8 + n, size) for name, info in header.items()}
    return arrays, metadata


def _tensor(path: str, name: str, info, data, start: int, size: int) -> np.ndarray:
    """One tensor of a safetensors file, after checking its header entry against the file."""
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict) or {"dtype", "shape", "data_offsets"} - set(info):
        raise ValueError(f"{where}: its header entry needs dtype, shape and data_offsets")
    kind, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if kind not in _DTYPES:
        raise ValueError(f"{path}: tensor {name!r} has dtype {kind!r}, which minroots cannot "
                         f"hold (it reads {', '.join(_DTYPES)}); convert the checkpoint to float32 "
                         "or bfloat16")  # fmt: skip
    ints = (list, tuple)
    if not isinstance(shape, ints) or any(type(d) is not int or d < 0 for d in shape):
        raise ValueError(f"{where}: shape must be a list of sizes, got {shape!r}")
    if (not isinstance(offsets, ints) or len(offsets) != 2 or any(type(o) is not int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= size - start):  # fmt: skip
        raise ValueError(f"{where}: data_offsets {offsets!r} lie outside the file")
    dtype = _DTYPES[kind]
    count = math.prod(shape)
    if offsets[1] - offsets[0] != count * dtype.itemsize:
        raise ValueError(f"{where}: {offsets[1] - offsets[0]} bytes do not hold shape {shape} "
                         f"of {kind}")  # fmt: skip
    if count == 0:
        return np.zeros(shape, dtype=np.float32 if kind in ("F16", "BF16") else dtype)
    a = np.frombuffer(data, dtype=dtype, count=count, offset=start + offsets[0]).reshape(shape)
    if kind == "BF16":  # the upper 16 bits of a float32
        return (a.astype("<u4") << 16).view("<f4")
    return a.astype(np.float32) if kind == "F16" else a


def _read_weights(folder: str) -> tuple[dict, str]:
    """All tensors of ``folder`` (one file or shards) and a name of where they came from."""
    single, index = os.path.join(folder, WEIGHTS), os.path.join(folder, INDEX)
    if os.path.isfile(single):
        return read_safetensors(single)[0], single
    if not os.path.isfile(index):
        pickled = [p for p in _PICKLES if os.path.isfile(os.path.join(folder, p))]
        if pickled:
            raise ValueError(
                f"from_pretrained: {os.path.join(folder, pickled[0])} is a pickle, which can run "
                "code when loaded, so minroots never reads it; convert it to safetensors with "
                "transformers: AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR)"
            )
        raise FileNotFoundError(f"from_pretrained: {folder!r} has neither {WEIGHTS} nor {INDEX}")
    weight_map = read_json(index, "from_pretrained", expect=dict).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index}: expected a JSON object with a weight_map {{tensor: file}}")
    arrays = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in (".", ".."):
            raise ValueError(f"{index}: a shard must be a file name inside the folder, got "
                             f"{shard!r}")  # fmt: skip
        path = os.path.join(folder, shard)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{index}: shard {shard!r} is missing")
        found = read_safetensors(path)[0]
        listed = {name for name, file in weight_map.items() if file == shard}
        if set(found) != listed:
            odd = sorted(set(found) ^ listed)[0]
            raise ValueError(f"{path}: tensor {odd!r} is {'not ' if odd in listed else ''}in the "
                             f"shard, but {'' if odd in listed else 'not '}in {INDEX}")  # fmt: skip
        arrays.update(found)
    return arrays, index


def from_pretrained(path, dtype=None) -> TransformerModel:
    """A :class:`~minroots.nn.gpt.TransformerModel` from a local Hugging Face model directory.

    ``dtype`` is the model's float dtype (default float32, whatever the file holds). Nothing is
    downloaded: ``path`` must be a folder with ``config.json`` and safetensors weights.
    """
    folder = os.fspath(path)
    cfg_file = os.path.join(folder, CONFIG)
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(
            f"from_pretrained: {cfg_file!r} not found; expected a local Hugging Face model "
            f"directory with {CONFIG} and {WEIGHTS} (no download is attempted)"
        )
    hf = read_json(cfg_file, "from_pretrained")  # damaged, deep or not UTF-8: a one-line error
    fields, model_type = config_from_hf(hf, where=cfg_file)
    try:
        config = TransformerConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cfg_file}: {e}") from None
    arrays, where = _read_weights(folder)
    model = TransformerModel(config)
    if dtype is not None:
        model.to(dtype=dtype)
    model.load_state_dict(weights_from_hf(arrays, model, model_type, where=where))
    return model


def save_pretrained(model, path, dtype=None, generation_config: dict | None = None) -> str:
    """Write ``model`` as a Hugging Face directory (``config.json``, ``model.safetensors``,
    ``generation_config.json``) that ``transformers.AutoModelForCausalLM.from_pretrained`` opens.

    The family follows the architecture (:func:`~minroots.nn.hf_config.hf_model_type`: learned
    positions -> ``gpt2``; rotary -> ``llama``, ``qwen2`` or ``qwen3``); a config no family has
    raises ``ValueError`` naming the field. ``dtype`` converts the weights (default: the model's).
    Returns the model_type.
    """
    model_type = hf_model_type(model.config)
    folder = os.fspath(path)
    os.makedirs(folder, exist_ok=True)
    arrays = weights_to_hf(model, model_type)
    dtype = np.dtype(dtype or next(iter(arrays.values())).dtype)
    arrays = {k: B.to_numpy(v).astype(dtype, copy=False) for k, v in arrays.items()}
    save_arrays(os.path.join(folder, WEIGHTS), arrays, {"format": "pt"})
    write_json(os.path.join(folder, CONFIG), config_to_hf(model.config, model_type, dtype.name),
               indent=2)  # fmt: skip
    generation = {"_from_model_config": True, **(generation_config or {})}
    write_json(os.path.join(folder, GENERATION_CONFIG), generation, indent=2)
    return model_type
