r"""Supervised fine-tuning of a pretrained run into a chat model, with the Trainer's guarantees.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, sections 10.1 to 10.3); tests in ``tests/test_posttrain_finetune.py``.

The steps of ``minroots finetune`` (:func:`finetune`):

1. **The base.** Load the pretrained model and tokenizer from a checkpoint. If it has no chat
   template yet, extend its tokenizer with the chat markers (:meth:`~minroots.chat.template.ChatTemplate.extend`) and
   grow the model's embedding by as many rows (:func:`~minroots.posttrain.resize.resize_token_embeddings`:
   old rows unchanged, new rows at their mean).
2. **The data.** Split the conversations into training and held-out ones and render both into
   masked blocks (:class:`~minroots.posttrain.SFTDataset`); what is skipped or cut is counted.
3. **Optionally LoRA** (``lora_rank``): adapters on the chosen layers, the rest frozen
   (:func:`~minroots.posttrain.lora_model.apply_lora`).
4. **Train** with the :class:`~minroots.training.Trainer`: the masked targets make its loss the
   fine-tuning objective; checkpoints are atomic and carry ``tokenizer.json`` (with the markers)
   and ``chat_template.json``; resuming continues exactly.
5. **Measure** the held-out answer loss before and after (:func:`~minroots.posttrain.answer_loss.answer_loss`).

The objective is the masked mean NLL of chapter 10 starting from :math:`\theta_\text{pre}`:

.. math::  \theta_\text{ft} \approx \arg\min_\theta -\frac{1}{|\mathcal{A}|}
           \sum_{t \in \mathcal{A}} \ln p_\theta(w_t \mid w_{<t}), \quad \theta \text{ starting at }
           \theta_\text{pre}
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from minroots.backend import manual_seed
from minroots.chat.template import ChatTemplate
from minroots.persistence import write_json
from minroots.posttrain.answer_loss import answer_loss
from minroots.posttrain.conversations import load_conversations, split_conversations
from minroots.posttrain.finetune_config import FinetuneSettings
from minroots.posttrain.lora_model import LoRAConfig, LoRAModel, apply_lora
from minroots.posttrain.resize import resize_token_embeddings
from minroots.posttrain.sft_dataset import SFTDataset
from minroots.training.checkpoint import (
    latest_checkpoint,
    load_model,
    load_tokenizer,
    resolve_checkpoint,
)
from minroots.training.config import TrainerConfig
from minroots.training.trainer import Trainer

__all__ = ["FinetuneResult", "load_chat_base", "finetune", "FINETUNE_FILE"]

FINETUNE_FILE = "finetune.json"  # in the run folder: the settings and the base checkpoint


@dataclass
class FinetuneResult:
    """What :func:`finetune` returns."""

    model: object  # the fine-tuned model (a LoRAModel with LoRA; call .model for the GPT inside)
    template: ChatTemplate
    trainer: Trainer
    train_data: SFTDataset
    held_out: SFTDataset
    before: dict  # answer_loss of the base model on the held-out conversations
    after: dict  # ... and of the fine-tuned model
    notes: list  # what was done to the base (markers added, rows grown, LoRA share)

    @property
    def chat_model(self):
        """The GPT to generate with (inside a LoRAModel: the GPT with its adapters)."""
        return self.model.model if isinstance(self.model, LoRAModel) else self.model


def load_chat_base(checkpoint) -> tuple[object, ChatTemplate, list[str]]:
    """``(model, template, notes)``: a checkpoint's model and a chat template for it.

    A checkpoint without a template gets the markers as new ids and the model as many new
    embedding rows; ``notes`` says what was done.
    """
    model = load_model(checkpoint)
    template = ChatTemplate.load(checkpoint)
    notes = []
    if template is None:
        base = load_tokenizer(checkpoint)
        template = ChatTemplate.extend(base)
        old = model.config.vocab_size
        if old < base.vocab_size:
            raise ValueError(
                f"checkpoint {os.fspath(checkpoint)!r}: the model has {old} token ids but its "
                f"tokenizer {base.vocab_size}"
            )
        resize_token_embeddings(model, template.vocab_size)
        first, last = min(template.ids.values()), max(template.ids.values())
        notes.append(
            f"added the chat markers {', '.join(template.markers.values())} to the tokenizer as "
            f"ids {first}-{last}; the token embedding (tied to the output layer) grows from {old} "
            f"to {template.vocab_size} rows, the new ones at the mean of the old rows"
        )
    elif model.config.vocab_size < template.vocab_size:
        raise ValueError(
            f"checkpoint {os.fspath(checkpoint)!r}: its chat template needs {template.vocab_size} "
            f"token ids but the model has {model.config.vocab_size}"
        )
    return model, template, notes


def _record(out_dir, checkpoint, settings: FinetuneSettings, resume: bool, overwrite: bool) -> None:
    """Write (or, when resuming, check) ``finetune.json`` in the run folder."""
    out = Path(out_dir)
    record = {"base_checkpoint": os.fspath(resolve_checkpoint(checkpoint)),
              "finetune": dataclasses.asdict(settings)}  # fmt: skip
    path = out / FINETUNE_FILE
    if resume and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k, v in record["finetune"].items()
                         if saved.get("finetune", {}).get(k) != v)  # fmt: skip
        if changed:
            raise ValueError(
                f"--resume: the [finetune] settings differ from those of the run in {out} "
                f"({', '.join(changed)}); resume with the same settings"
            )
        return
    latest = latest_checkpoint(out)
    if latest is not None and not overwrite:
        raise FileExistsError(
            f"finetune: {os.fspath(out)!r} already holds a run (latest checkpoint {latest.name}); resume it, "
            "choose another output folder, or overwrite it"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record, indent=2)


def finetune(checkpoint, settings: FinetuneSettings | None = None,
             train: TrainerConfig | None = None, *, resume: bool = False, callbacks=(),
             log=print) -> FinetuneResult:  # fmt: skip
    """Fine-tune the model of ``checkpoint`` (a run folder or a checkpoint) on
    ``settings.data``; see the module docstring. ``log`` receives one line per note."""
    settings = settings or FinetuneSettings()
    train = train or TrainerConfig()
    manual_seed(train.seed)  # the new embedding rows and the LoRA init: the same on resume
    model, template, notes = load_chat_base(checkpoint)
    block = model.config.block_size
    conversations = load_conversations(settings.data)
    train_c, held_c = split_conversations(conversations, settings.val_fraction, settings.split_seed)
    options = dict(mask=settings.mask, packing=settings.packing, too_long=settings.too_long,
                   unencodable=settings.unencodable)  # fmt: skip
    train_data = SFTDataset(train_c, template, block, **options)
    held_out = SFTDataset(held_c, template, block, **options)
    notes.append(f"training data: {train_data.describe()}")
    notes.append(f"held out: {held_out.describe()}")
    before = answer_loss(model, held_out)
    trainee = model
    if settings.lora_rank is not None:
        trainable = ["wte.weight"] if settings.lora_train_embeddings else []
        trainee = apply_lora(model, LoRAConfig(settings.lora_rank, settings.lora_alpha,
                                               list(settings.lora_targets), trainable))  # fmt: skip
        r = trainee.trainable_report()
        notes.append(
            f"LoRA rank {settings.lora_rank} on {len(trainee.lora_layers())} layers"
            f"{' + the token embedding' if trainable else ''}: {r['trainable']:,} of "
            f"{r['total']:,} parameters trained ({100 * r['share']:.1f}%); AdamW state "
            f"{r['adamw_state_bytes'] / 1e6:.2f} MB instead of {r['full_adamw_state_bytes'] / 1e6:.2f} MB"
        )
    for note in notes:
        log(note)
    if train.out_dir is not None:
        _record(train.out_dir, checkpoint, settings, resume, train.overwrite)
    trainer = Trainer(trainee, train_data, eval_dataset=held_out, config=train,
                      callbacks=callbacks)  # fmt: skip
    if resume:
        trainer.resume()
    trainer.train()
    after = answer_loss(trainee, held_out)
    return FinetuneResult(trainee, template, trainer, train_data, held_out, before, after, notes)
