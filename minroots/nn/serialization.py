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
"""

from __future__ import annotations

import dataclasses
import json
import os

from minroots.persistence import load_arrays, save_arrays, write_json

__all__ = ["save_model", "load_model", "save_state_dict", "load_state_dict_file"]

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
    quantization = config.pop("quantization", None)
    if "quantization" in meta:
        quantization = json.loads(meta["quantization"])
    model = cls(config_cls.from_dict(config))
    if quantization:  # integer weights and scales: build the quantized layers, then fill them
        from minroots.nn.quantized import quantize_model

        quantize_model(model, **quantization, empty=True)
    if dtype is not None:
        model.to(dtype=dtype)
    model.load_state_dict(arrays, strict=True)
    return model
