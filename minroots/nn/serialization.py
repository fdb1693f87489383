"""Saving and loading model weights as safetensors, with the config beside them (never pickle).

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_models_gpt.py``.

``save_model(model, path)``:

- ``path`` ending in ``.safetensors``: one file; the config is stored as JSON in the file's
  metadata (``{"minroots_class": ..., "config": "{...}"}``).
- any other ``path``: a directory holding ``model.safetensors`` (the same file) and
  ``config.json`` (the same config, readable by people and other tools).

Tied weights (GPT-2's ``lm_head.weight`` is ``wte.weight``) are written once and re-tied on load.
A quantized model (:mod:`minroots.nn.quantized`, chapter 14) also writes its settings,
``"quantization": {"bits": ..., "group_size": ..., "modules": [...]}``, and loads back quantized.
How (and the atomic write that keeps a crash mid-save from leaving half a file under the real
name) is :mod:`minroots.persistence`'s job, shared with the optimizer and the checkpoints.

Loading checks the config against the tensors in the file *before* building the model
(:func:`check_sizes`): a config edited to ``n_embd = 1000000`` would otherwise allocate terabytes
before the strict load noticed that no tensor has that shape.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from minroots.persistence import load_arrays, read_json, save_arrays, write_json
from minroots.validation import known_keys, shown

__all__ = ["save_model", "load_model", "save_state_dict", "load_state_dict_file", "check_sizes"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_state_dict(arrays: dict, path, metadata: dict | None = None) -> None:
    """Write ``name -> array`` to a safetensors file atomically (temp file, fsync, rename)."""
    save_arrays(path, arrays, metadata or {})


def load_state_dict_file(path) -> tuple[dict, dict]:
    """Read a safetensors file: ``(name -> NumPy array, metadata dict)``, as stored (no alias)."""
    return load_arrays(path, tied=False)


def save_model(model, path) -> None:
    """Save weights + config to ``path`` (a ``.safetensors`` file or a directory)."""
    path = os.fspath(path)
    config = dataclasses.asdict(model.config)
    name = type(model).__name__
    meta = {"format": "np", "minroots_class": name, "config": json.dumps(config)}
    quantization = getattr(model, "quantization", None)  # minroots.nn.quantized (chapter 14)
    if quantization:
        meta["quantization"] = json.dumps(quantization)
        config = {**config, "quantization": quantization}
    weights = path if path.endswith(".safetensors") else os.path.join(path, WEIGHTS_NAME)
    os.makedirs(os.path.dirname(weights) or ".", exist_ok=True)
    save_arrays(weights, model.state_dict(), meta, tied=True)
    if weights != path:
        write_json(os.path.join(path, CONFIG_NAME), {"minroots_class": name, **config}, indent=2)


def load_model(cls, config_cls, path, dtype=None):
    """Build a ``cls`` from a file or directory written by :func:`save_model` (strict loading)."""
    path = os.fspath(path)
    weights = path if path.endswith(".safetensors") else os.path.join(path, WEIGHTS_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{cls.__name__}.load: {path!r} does not exist")
    arrays, meta = load_arrays(weights)
    if "config" in meta:
        try:
            config = json.loads(meta["config"])
        except (ValueError, RecursionError):
            config = None
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}.load: the metadata 'config' of {weights!r} must be a "
                             f"JSON object, got {meta['config'][:80]!r}")  # fmt: skip
    else:
        cfg_file = os.path.join(os.path.dirname(weights), CONFIG_NAME)
        if not os.path.isfile(cfg_file):
            raise FileNotFoundError(f"{cls.__name__}.load: no config in {weights!r}'s metadata and "
                                    f"no {CONFIG_NAME} beside it")  # fmt: skip
        config = read_json(cfg_file, f"{cls.__name__}.load", expect=dict)
    check_sizes(config, arrays, f"{cls.__name__}.load", weights)
    saved_cls = meta.get("minroots_class") or config.pop("minroots_class", None)
    config.pop("minroots_class", None)
    if saved_cls and saved_cls != cls.__name__:
        raise ValueError(f"{cls.__name__}.load: {path!r} holds a {saved_cls}, not a {cls.__name__}")
    quantization = config.pop("quantization", None)
    if "quantization" in meta:
        try:
            quantization = json.loads(meta["quantization"])
        except (ValueError, RecursionError):  # not JSON, or nested too deeply: named below
            quantization = meta["quantization"]
    model = cls(config_cls.from_dict(config))
    if quantization:  # integer weights and scales: build the quantized layers, then fill them
        from minroots.nn.quantized import quantize_model

        if not isinstance(quantization, dict):
            raise ValueError(f"{cls.__name__}.load: the quantization settings of {weights!r} must "
                             f"be a JSON object, got {shown(quantization)}")  # fmt: skip
        known_keys(f"{cls.__name__}.load", quantization, ("bits", "group_size", "modules"))
        quantize_model(model, **quantization, empty=True)
    if dtype is not None:
        model.to(dtype=dtype)
    model.load_state_dict(arrays, strict=True)
    return model


_LARGEST_FREE = 4096  # a size no tensor shows (a sinusoidal block_size) may be up to this


def check_sizes(config: dict, arrays: dict, where: str, path) -> None:
    """Refuse a config that the tensors of its file do not back, before a model is built from it.

    The token and position tables must have the shapes ``(vocab_size, n_embd)`` and
    ``(block_size, n_embd)``, ``n_layer`` must count the ``h.<i>.`` blocks, and no other size may
    exceed every dimension in the file (nor 4096), so that building the model allocates about
    what the file holds.

    >>> import numpy as np
    >>> check_sizes({"vocab_size": 5, "n_embd": 10**6}, {"wte.weight": np.zeros((5, 4))}, "load", "m")
    Traceback (most recent call last):
    ValueError: load: the config's (vocab_size, n_embd) must match the shape of wte.weight in 'm', got (5, 1000000) for a tensor of shape (5, 4)
    """
    for name, fields in (("wte.weight", ("vocab_size", "n_embd")),
                         ("wpe.weight", ("block_size", "n_embd"))):  # fmt: skip
        if name in arrays and all(f in config for f in fields):
            want = tuple(config[f] for f in fields)
            if want != tuple(arrays[name].shape):
                raise ValueError(f"{where}: the config's ({', '.join(fields)}) must match the shape "
                                 f"of {name} in {os.fspath(path)!r}, got {want} for a tensor of "
                                 f"shape {tuple(arrays[name].shape)}")  # fmt: skip
    blocks = {m.group(1) for key in arrays if (m := re.match(r"h\.(\d+)\.", key))}
    if blocks and "n_layer" in config and config["n_layer"] != len(blocks):
        raise ValueError(f"{where}: the config's n_layer must count the {len(blocks)} blocks h.<i> "
                         f"in {os.fspath(path)!r}, got {config['n_layer']!r}")  # fmt: skip
    largest = max([d for a in arrays.values() for d in a.shape] + [len(arrays), _LARGEST_FREE])
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool) and value > largest:
            raise ValueError(f"{where}: the config's {key} must not exceed the largest size in "
                             f"{os.fspath(path)!r} ({largest}), got {value}")  # fmt: skip
