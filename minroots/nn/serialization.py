"""Saving and loading model weights as safetensors, with the config beside them (never pickle).

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_models_gpt.py``.

``save_model(model, path)``:

- ``path`` ending in ``.safetensors``: one file; the config is stored as JSON in the file's
  metadata (``{"minroots_class": ..., "config": "{...}"}``).
- any other ``path``: a directory holding ``model.safetensors`` (the same file) and
  ``config.json`` (the same config, readable by people and other tools).

Tied weights (GPT-2's ``lm_head.weight`` is ``wte.weight``) are written once and re-tied on load.
The file is written under a temporary name and renamed, so a crash mid-save never leaves half a
file under the real name. safetensors stores raw little-endian arrays and a JSON header: loading
one cannot run code, unlike a pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from minroots import backend as B

__all__ = ["save_model", "load_model", "save_state_dict", "load_state_dict_file"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _unique_arrays(model) -> tuple[dict, dict]:
    """(name -> NumPy array) with each shared parameter once, and (alias -> kept name)."""
    arrays, aliases, first = {}, {}, {}
    for name, p in model._all_named_parameters():
        if id(p) in first:
            aliases[name] = first[id(p)]
            continue
        first[id(p)] = name
        arrays[name] = np.ascontiguousarray(B.to_numpy(p.data))
    for name, arr in model.state_dict().items():
        if name not in arrays and name not in aliases:  # persistent buffers
            arrays[name] = np.ascontiguousarray(B.to_numpy(arr))
    return arrays, aliases


def save_state_dict(arrays: dict, path, metadata: dict | None = None) -> None:
    """Write ``name -> array`` to a safetensors file atomically (temp file, fsync, rename)."""
    from safetensors.numpy import save_file

    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file({k: np.ascontiguousarray(B.to_numpy(v)) for k, v in arrays.items()}, tmp,
              metadata={k: str(v) for k, v in (metadata or {}).items()})  # fmt: skip
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state_dict_file(path) -> tuple[dict, dict]:
    """Read a safetensors file: ``(name -> NumPy array, metadata dict)``."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no weights file at {path!r}")
    arrays = {}
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
        for k in f.keys():
            arrays[k] = f.get_tensor(k)
    return arrays, metadata


def save_model(model, path) -> None:
    """Save weights + config to ``path`` (a ``.safetensors`` file or a directory)."""
    path = os.fspath(path)
    arrays, aliases = _unique_arrays(model)
    config = dataclasses.asdict(model.config)
    meta = {
        "format": "np",
        "minroots_class": type(model).__name__,
        "config": json.dumps(config),
        "tied": json.dumps(aliases),
    }
    if path.endswith(".safetensors"):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        save_state_dict(arrays, path, meta)
        return
    os.makedirs(path, exist_ok=True)
    save_state_dict(arrays, os.path.join(path, WEIGHTS_NAME), meta)
    tmp = os.path.join(path, CONFIG_NAME + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"minroots_class": type(model).__name__, **config}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, CONFIG_NAME))


def load_model(cls, config_cls, path, dtype=None):
    """Build a ``cls`` from a file or directory written by :func:`save_model` (strict loading)."""
    path = os.fspath(path)
    weights = path if path.endswith(".safetensors") else os.path.join(path, WEIGHTS_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{cls.__name__}.load: {path!r} does not exist")
    arrays, meta = load_state_dict_file(weights)
    if "config" in meta:
        config = json.loads(meta["config"])
    else:
        cfg_file = os.path.join(os.path.dirname(weights), CONFIG_NAME)
        if not os.path.isfile(cfg_file):
            raise FileNotFoundError(
                f"{cls.__name__}.load: no config in {weights!r}'s metadata and no {CONFIG_NAME} beside it"
            )
        with open(cfg_file, encoding="utf-8") as f:
            config = json.load(f)
    saved_cls = meta.get("minroots_class") or config.pop("minroots_class", None)
    config.pop("minroots_class", None)
    if saved_cls and saved_cls != cls.__name__:
        raise ValueError(f"{cls.__name__}.load: {path!r} holds a {saved_cls}, not a {cls.__name__}")
    model = cls(config_cls.from_dict(config))
    if dtype is not None:
        model.to(dtype=dtype)
    for alias, name in json.loads(meta.get("tied", "{}")).items():
        if name in arrays:
            arrays.setdefault(alias, arrays[name])
    model.load_state_dict(arrays, strict=True)
    return model
