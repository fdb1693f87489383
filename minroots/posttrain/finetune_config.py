"""The description of a fine-tuning run: ``[base]``, ``[finetune]``, ``[train]``, ``[sample]``.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``); tests in ``tests/test_posttrain_finetune.py``.

Like a training run (:mod:`minroots.training.run_config`), a fine-tuning run starts from a bundled
preset (``minroots/presets/finetune/*.toml``), changed by a TOML file, changed by ``key=value``
overrides::

    [base]      the pretrained run to start from when --checkpoint is not given   (BaseSettings)
    [finetune]  data, mask, packing, what to do with long text, LoRA               (FinetuneSettings)
    [train]     TrainerConfig fields (steps, learning rate, ...)
    [sample]    the questions answered at the end                                 (ChatSampleSettings)

>>> run = load_finetune_config("chat", overrides=["max_steps=5", "lora_rank=4"])
>>> run["train"]["max_steps"], run["finetune"].lora_rank, run["finetune"].data
(5, 4, 'dialogue_en')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from minroots.training.config import TrainerConfig
from minroots.training.run_config import layered_tables
from minroots.validation import one_of

__all__ = [
    "BaseSettings",
    "FinetuneSettings",
    "ChatSampleSettings",
    "FINETUNE_TABLES",
    "list_finetune_presets",
    "load_finetune_config",
]


@dataclass
class BaseSettings:
    """The ``[base]`` table: where the pretrained model comes from without ``--checkpoint``."""

    preset: str = "chat_base"  # the training preset (minroots train --preset) of the base model
    out_dir: str = "runs/chat_base"  # its run folder: reused when it holds a checkpoint


@dataclass
class FinetuneSettings:
    """The ``[finetune]`` table."""

    data: str = "dialogue_en"  # a bundled pair corpus or a JSONL file of conversations/pairs
    mask: str = "assistant"  # the loss on: "assistant" replies, the "last" reply, or "all" ids
    packing: bool = True  # several whole conversations per block (no padding waste)
    too_long: str = "error"  # conversations longer than the context: "error", "skip", "truncate"
    unencodable: str = "error"  # text the tokenizer cannot encode: "error" or "skip"
    val_fraction: float = 0.1  # conversations held out for the answer loss
    split_seed: int = 0  # seeds the held-out split
    lora_rank: int | None = None  # None: full fine-tuning; r >= 1: LoRA adapters of rank r
    lora_alpha: float = 16.0  # LoRA's update is scaled by alpha / rank
    lora_targets: list = field(default_factory=lambda: ["c_attn", "c_proj", "c_fc"])  # layers
    lora_train_embeddings: bool = True  # with LoRA: also train the (tied) token embedding,
    # whose new chat-marker rows must be learned

    def __post_init__(self):
        where = "[finetune]"
        one_of(where, "mask", self.mask, ("assistant", "last", "all"))
        one_of(where, "too_long", self.too_long, ("error", "skip", "truncate"))
        one_of(where, "unencodable", self.unencodable, ("error", "skip"))
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"{where}: val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(
                f"{where}: lora_rank must be an integer >= 1 (or left out for full "
                f"fine-tuning), got {self.lora_rank}"
            )
        if not self.lora_alpha > 0:
            raise ValueError(f"{where}: lora_alpha must be > 0, got {self.lora_alpha}")
        _strings(where, "lora_targets", self.lora_targets)


def _strings(where: str, name: str, values) -> None:
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"{where}: {name} must be a non-empty list of strings, got {values!r}")


@dataclass
class ChatSampleSettings:
    """The ``[sample]`` table: questions the fine-tuned model answers at the end of the run."""

    prompts: list = field(default_factory=lambda: ["Hello", "What is AI?"])  # one user turn each
    max_new_tokens: int = 100  # the longest reply
    temperature: float = 0.7  # 0: greedy
    top_k: int | None = 20  # sample among the k most likely tokens
    seed: int | None = 0  # seeds the sampling

    def __post_init__(self):
        _strings("[sample]", "prompts", self.prompts)


FINETUNE_TABLES = {"base": BaseSettings, "finetune": FinetuneSettings, "train": TrainerConfig,
                   "sample": ChatSampleSettings}  # fmt: skip


def _folder():
    return resources.files("minroots") / "presets" / "finetune"


def list_finetune_presets() -> list[str]:
    """Names of the bundled fine-tuning presets (``minroots/presets/finetune/*.toml``)."""
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".toml"))


def load_finetune_config(preset: str = "chat", config: str | None = None, overrides=()) -> dict:
    """The four tables of a fine-tuning run (``[train]`` stays a dict; the others are settings
    objects). Unknown tables or keys and wrong types raise with the file and key named."""
    path = _folder() / f"{preset}.toml"
    if not path.is_file():
        raise ValueError(
            f"--preset: unknown fine-tuning preset {preset!r}; available: "
            f"{', '.join(list_finetune_presets())}"
        )
    run = layered_tables(FINETUNE_TABLES, path, preset, config, overrides)
    run["base"] = BaseSettings(**run["base"])
    run["finetune"] = FinetuneSettings(**run["finetune"])
    run["sample"] = ChatSampleSettings(**run["sample"])
    return run
