"""Training: the ``Trainer``, its config, checkpoints, history and callbacks.

Book chapter 7, "Training" (``book/07_training.md``).

Read in this order:

- ``config.py``: :class:`TrainerConfig`, every setting of a run, readable from TOML.
- ``protocols.py``: :class:`TrainableModel`, what the Trainer needs of a model (and of data).
- ``accumulation.py``: the gradient of a large batch, one micro-batch at a time.
- ``divergence.py``: :class:`DivergenceError`, raised when the loss or a gradient is not finite.
- ``history.py``: :class:`History`, the ``history.jsonl`` records and the loss-curve PNG.
- ``checkpoint.py``: atomic checkpoints (safetensors + JSON, no pickle), keep the last K.
- ``integrity.py``: what makes a checkpoint trustworthy: checksums, finite weights, fingerprints.
- ``callbacks.py``: hooks to plot, print or stop early (:class:`EarlyStopping`).
- ``trainer.py``: :class:`Trainer`, the loop that ties them together, with exact resume.
- ``run_config.py``: the four TOML tables of a ``minroots train`` run (data, model, train, sample).
- ``mixed_precision.py`` and ``loss_scaling.py``: bf16/fp16 products with float32 master weights,
  and the dynamic loss scale of fp16 (chapter 13, ``book/13_training_at_scale.md``).

>>> from minroots import Trainer, TransformerModel
>>> model = TransformerModel(vocab_size=76, block_size=16, n_layer=1, n_embd=16)
>>> trainer = Trainer(model=model, dataset="shakespeare", max_steps=2, log_interval=0, out_dir=None)
>>> history = trainer.train()         # max_steps=500, out_dir="runs/demo" for a real run
>>> trainer.step
2
"""

from minroots.training.callbacks import Callback, EarlyStopping, LambdaCallback
from minroots.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model,
    load_tokenizer,
    resolve_checkpoint,
    save_checkpoint,
)
from minroots.training.config import TrainerConfig, load_toml
from minroots.training.divergence import DivergenceError
from minroots.training.history import HISTORY_KEYS, History
from minroots.training.integrity import CheckpointError, verify_checkpoint
from minroots.training.protocols import TrainableModel
from minroots.training.trainer import Trainer

__all__ = [
    "Trainer",
    "TrainerConfig",
    "TrainableModel",
    "DivergenceError",
    "load_toml",
    "History",
    "HISTORY_KEYS",
    "Callback",
    "EarlyStopping",
    "LambdaCallback",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "resolve_checkpoint",
    "load_model",
    "load_tokenizer",
]
__all__ += ["CheckpointError", "verify_checkpoint"]  # integrity (issue 13), on a line of its own
