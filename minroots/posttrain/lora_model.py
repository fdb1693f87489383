r"""A model with LoRA adapters: choosing layers, freezing the rest, saving adapters on their own.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.3); tests in ``tests/test_posttrain_lora.py``.

:func:`apply_lora` replaces the chosen :class:`~minroots.nn.Linear` layers of a model by
:class:`~minroots.posttrain.lora.LoRALinear` (in place, same names), freezes every other weight,
and returns a :class:`LoRAModel` that a :class:`~minroots.training.Trainer` trains like any model
(the optimizer keeps state only for what gets gradients).

**Naming layers.** A target is a layer's full name (``h.0.attn.c_attn``) or the end of names
(``c_attn`` adapts every block's); an unknown target is an error listing the names that exist.

**What is trained.** A Linear of shape ``(out, in)`` with rank :math:`r` gets :math:`r(\text{in} +
\text{out})` trainable numbers instead of :math:`\text{in} \cdot \text{out}`; AdamW keeps two
more (its moments) for each of them, so the optimizer state shrinks by the same factor.
:meth:`LoRAModel.trainable_report` gives the numbers. Parameters listed in ``trainable`` (e.g.
``wte.weight``, whose new chat-marker rows must be learned) are trained in full besides.

**Files.** A :class:`LoRAModel` saved into a checkpoint folder writes

- ``model.safetensors`` + ``config.json``: the *merged* weights :math:`W + s\,BA`, an ordinary
  model that ``minroots generate``, ``minroots chat`` and :func:`~minroots.training.checkpoint.load_model`
  load without knowing about LoRA;
- ``adapter.safetensors``: only the adapters (and the ``trainable`` parameters), small;
- ``adapter_config.json``: rank, alpha, the adapted layers, and a sha256 of the frozen weights.

Resuming (:meth:`LoRAModel.restore`) loads the adapters into a model rebuilt from the same base,
and refuses a base whose frozen weights differ from the recorded hash: the run continues exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minroots import backend as B
from minroots.nn.linear import Linear
from minroots.nn.module import Module
from minroots.persistence import load_arrays, save_arrays, write_json
from minroots.posttrain.lora import LoRALinear
from minroots.validation import did_you_mean

__all__ = [
    "LoRAConfig",
    "LoRAModel",
    "apply_lora",
    "find_targets",
    "ADAPTER_WEIGHTS",
    "ADAPTER_CONFIG",
]

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_MODEL_WEIGHTS, _MODEL_CONFIG = "model.safetensors", "config.json"


@dataclass
class LoRAConfig:
    """Which layers get adapters, and how large."""

    rank: int = 8  # r: the rank of each update B A
    alpha: float = 16.0  # the update is scaled by alpha / rank
    targets: list = field(default_factory=lambda: ["c_attn", "c_proj", "c_fc"])  # layer names
    trainable: list = field(default_factory=list)  # other parameters trained in full


def find_targets(model: Module, targets) -> dict[str, Linear]:
    """``name -> Linear`` for every layer a target names (a full name or the end of names).

    >>> from minroots.nn import TransformerModel
    >>> model = TransformerModel(vocab_size=8, block_size=8, n_layer=2, n_embd=8)
    >>> list(find_targets(model, ["c_attn"]))
    ['h.0.attn.c_attn', 'h.1.attn.c_attn']
    >>> find_targets(model, ["q_proj"])
    Traceback (most recent call last):
    ValueError: apply_lora: target 'q_proj' names no linear layer (did you mean 'c_proj'?); available: c_attn, c_fc, c_proj, lm_head (or full names such as h.0.attn.c_attn)
    """
    if isinstance(targets, str) or not list(targets):
        raise ValueError(
            f"apply_lora: targets must be a non-empty list of layer names, got {targets!r}"
        )
    linears = {n: m for n, m in model.named_modules() if isinstance(m, (Linear, LoRALinear))}
    found: dict[str, Linear] = {}
    for target in targets:
        hits = {n: m for n, m in linears.items() if n == target or n.endswith("." + target)}
        if not hits:
            short = sorted({n.rsplit(".", 1)[-1] for n in linears})
            example = next(iter(linears), "")
            raise ValueError(
                f"apply_lora: target {target!r} names no linear layer"
                f"{did_you_mean(target, short)}; available: {', '.join(short)} "
                f"(or full names such as {example})"
            )
        found.update(hits)
    return {n: found[n] for n in linears if n in found}  # in the model's order


def _tied_to_others(model: Module, layer: Linear) -> bool:
    """Whether ``layer.weight`` is also another parameter of the model (GPT-2's lm_head/wte)."""
    names = [n for n, p in model._all_named_parameters() if p is layer.weight]
    return len(names) > 1


def apply_lora(model: Module, config: LoRAConfig | None = None, **overrides) -> LoRAModel:
    """Adapt ``model``'s target layers in place and freeze everything else; see the module docstring.

    ``apply_lora(model, rank=4, targets=["c_attn"])`` overrides fields of :class:`LoRAConfig`.
    """
    config = dataclasses.replace(config or LoRAConfig(), **overrides)
    params = dict(model.named_parameters())
    for name in config.trainable:
        if name not in params:
            raise ValueError(
                f"apply_lora: trainable names no parameter: {name!r}{did_you_mean(name, params)}; "
                f"parameters are e.g. {', '.join(list(params)[:4])}"
            )
    layers = find_targets(model, config.targets)
    for name, layer in layers.items():
        if isinstance(layer, LoRALinear):
            raise ValueError(f"apply_lora: {name} already has a LoRA adapter")
        if _tied_to_others(model, layer):
            raise ValueError(
                f"apply_lora: {name} shares its weight with another layer (tied embeddings); an "
                "adapter on it would change both: leave it out of targets"
            )
    for p in model.parameters():
        p.requires_grad = False
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = _submodule(model, parent_name)
        parent._modules[child] = LoRALinear(layer, config.rank, config.alpha, name)  # same place
    for name in config.trainable:
        params[name].requires_grad = True
    return LoRAModel(model, config)


def _submodule(model: Module, name: str) -> Module:
    """The sub-module called ``name`` (``"h.0.attn"``); ``""`` is the model itself."""
    mod = model
    for part in name.split(".") if name else ():
        mod = mod._modules[part]
    return mod


class LoRAModel(Module):
    """A model whose chosen layers carry LoRA adapters (made by :func:`apply_lora`).

    Called like the model it wraps (``model(x, y) -> (logits, loss)``); ``config`` is that model's
    config (the Trainer reads ``vocab_size`` and ``block_size`` from it), ``lora_config`` the
    :class:`LoRAConfig`.
    """

    def __init__(self, model: Module, lora_config: LoRAConfig):
        super().__init__()
        self.model = model
        self.lora_config = lora_config
        self.config = getattr(model, "config", None)
        self.base_sha256 = self.frozen_sha256()

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    # --- the adapters -------------------------------------------------------------------------
    def lora_layers(self) -> dict[str, LoRALinear]:
        """``name -> LoRALinear`` of every adapted layer, in the model's order."""
        return {n: m for n, m in self.model.named_modules() if isinstance(m, LoRALinear)}

    def merge(self) -> LoRAModel:
        """Fold every adapter into its weight (inference at no extra cost)."""
        for layer in self.lora_layers().values():
            layer.merge()
        return self

    def unmerge(self) -> LoRAModel:
        """Take every adapter back out of its weight."""
        for layer in self.lora_layers().values():
            layer.unmerge()
        return self

    def adapter_state_dict(self) -> dict:
        """The arrays that training changes: ``lora_A``/``lora_B`` and the ``trainable`` ones."""
        return {n: p.data for n, p in self.model.named_parameters() if p.requires_grad}

    def merged_state_dict(self) -> dict:
        """The wrapped model's state with each adapter folded in and no LoRA names: the arrays of
        an ordinary model (tied weights stay one array)."""
        state = {}
        for name, arr in self.model.state_dict().items():
            layer_name, _, leaf = name.rpartition(".")
            if leaf in ("lora_A", "lora_B"):
                continue
            state[name] = arr
        for name, layer in self.lora_layers().items():
            if not layer.merged:
                state[f"{name}.weight"] = layer.weight.data + layer.delta()
        return state

    def frozen_sha256(self) -> str:
        """sha256 over the names and bytes of every frozen array (the base the adapters fit)."""
        h = hashlib.sha256()
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                h.update(name.encode())
                h.update(np.ascontiguousarray(B.to_numpy(p.data)).tobytes())
        return h.hexdigest()

    def trainable_report(self) -> dict:
        """Trained and total parameters, the share, and AdamW's state in bytes (two moments per
        trained number) against full fine-tuning of the same model (every weight but the
        adapters).

        ``{"total", "trainable", "share", "adamw_state_bytes", "full_adamw_state_bytes"}``
        """
        named = list(self.model.named_parameters())
        total = sum(int(p.data.size) for _, p in named)
        base = sum(int(p.data.size) for n, p in named if not n.endswith(("lora_A", "lora_B")))
        n = sum(int(p.data.size) for _, p in named if p.requires_grad)
        item = self.model_dtype().itemsize
        return {"total": total, "trainable": n, "share": n / total,
                "adamw_state_bytes": 2 * item * n, "full_adamw_state_bytes": 2 * item * base}  # fmt: skip

    def model_dtype(self):
        return next(iter(self.model.parameters())).data.dtype

    # --- files --------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        """Write the merged model (``model.safetensors``, ``config.json``) and the adapters
        (``adapter.safetensors``, ``adapter_config.json``) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.config is not None and dataclasses.is_dataclass(self.config):
            cls = type(self.model).__name__
            config = dataclasses.asdict(self.config)
            meta = {"format": "np", "minroots_class": cls, "config": json.dumps(config)}
            save_arrays(folder / _MODEL_WEIGHTS, self.merged_state_dict(), meta, tied=True)
            write_json(folder / _MODEL_CONFIG, {"minroots_class": cls, **config}, indent=2)
        self.save_adapter(folder)

    def save_adapter(self, folder: str | os.PathLike) -> None:
        """Write only ``adapter.safetensors`` and ``adapter_config.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_arrays(folder / ADAPTER_WEIGHTS, self.adapter_state_dict(), {"format": "lora"})
        write_json(folder / ADAPTER_CONFIG, {
            "format": 1, **dataclasses.asdict(self.lora_config),
            "layers": list(self.lora_layers()), "base_sha256": self.base_sha256,
        }, indent=2)  # fmt: skip

    def restore(self, folder: str | os.PathLike) -> None:
        """Load the adapters saved in ``folder`` into this model (same base, same layers)."""
        folder = Path(folder)
        where = f"LoRAModel.restore({os.fspath(folder)!r})"
        cfg_file = folder / ADAPTER_CONFIG
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{where}: no {ADAPTER_CONFIG} (not a LoRA checkpoint)")
        saved = json.loads(cfg_file.read_text(encoding="utf-8"))
        if saved.get("layers") != list(self.lora_layers()):
            raise ValueError(
                f"{where}: the adapters were saved for the layers {saved.get('layers')}, this model "
                f"adapts {list(self.lora_layers())}"
            )
        if saved.get("base_sha256") != self.frozen_sha256():
            raise ValueError(
                f"{where}: the frozen base weights differ from those the adapters were trained on "
                "(sha256 mismatch): rebuild the model from the same base checkpoint"
            )
        arrays, _ = load_arrays(folder / ADAPTER_WEIGHTS)
        params = dict(self.model.named_parameters())
        expected = {n for n, p in params.items() if p.requires_grad}
        if set(arrays) != expected:
            raise KeyError(
                f"{where}: the adapter file holds {sorted(arrays)}, expected {sorted(expected)}"
            )
        for name, arr in arrays.items():
            dst = params[name].data
            if tuple(arr.shape) != tuple(dst.shape):
                raise ValueError(f"{where}: {name} has shape {arr.shape}, expected {dst.shape}")
            dst[...] = B.to_device(arr, B.device_of(dst)).astype(dst.dtype, copy=False)

    def extra_repr(self) -> str:
        r = self.trainable_report()
        return f"rank={self.lora_config.rank}, trainable {r['trainable']:,} of {r['total']:,}"
