"""The description of a run: four TOML tables, ``[data]``, ``[model]``, ``[train]``, ``[sample]``.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_cli.py``
(``minroots train`` reads a run through :func:`load_run_config`).

A run starts from a bundled preset (``minroots/presets/*.toml``), changed by a TOML file of the
user's, changed by ``key=value`` overrides::

    [data]     corpus, tokenizer, validation split     (DataSettings, below)
    [model]    TransformerConfig fields                (minroots.nn.TransformerConfig)
    [train]    TrainerConfig fields                    (minroots.training.TrainerConfig)
    [sample]   the text printed at the end of a run    (SampleSettings, below)

>>> run = load_run_config("tiny", overrides=["max_steps=5", "model.n_layer=2"])
>>> run["train"]["max_steps"], run["model"]["n_layer"], run["data"].corpus
(5, 2, 'shakespeare')

Every table is checked against its dataclass (``minroots.validation.check_fields``): an
unknown key or a wrong type names the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources

from minroots.data import TextDataset, load_corpus
from minroots.nn import TransformerConfig
from minroots.tokenizers import load as load_tokenizer_file
from minroots.training.config import TrainerConfig, load_toml, tomllib
from minroots.validation import check_fields, did_you_mean, integer, positive_int, real, shown

__all__ = [
    "DataSettings",
    "SampleSettings",
    "TABLES",
    "list_presets",
    "parse_override",
    "load_run_config",
    "layered_tables",
    "build_dataset",
]


@dataclass
class DataSettings:
    """The ``[data]`` table of a run."""

    corpus: str = "shakespeare"  # a bundled corpus name or a path to a UTF-8 text file
    tokenizer: str = "char"  # "char" (one id per character) or a tokenizer JSON file
    val_fraction: float = 0.1  # share of the text held out for validation
    val_pieces: int = 1  # hold out the end of each of this many equal pieces of the text
    max_chars: int | None = None  # use only the first this many characters (quick runs)
    cache_dir: str | None = None  # where token ids are cached (default: the user cache folder)

    def __post_init__(self):
        _check_types(self)
        real("DataSettings", "val_fraction", self.val_fraction, low=0, high=1, high_open=True)
        positive_int("DataSettings", "val_pieces", self.val_pieces)
        if self.max_chars is not None:
            integer("DataSettings", "max_chars", self.max_chars, low=2)


@dataclass
class SampleSettings:
    """The ``[sample]`` table: the text generated at the end of ``minroots train``."""

    prompt: str = "\n"  # text the sample continues
    max_new_tokens: int = 300  # tokens to generate (0: no sample)
    temperature: float = 0.8  # below 1: more conservative, 0: greedy
    top_k: int | None = None  # sample only among the k most likely tokens
    top_p: float | None = None  # ... or the smallest set with this much probability
    seed: int | None = 0  # seeds the sampling (None: minroots' global generator)

    def __post_init__(self):
        _check_types(self)
        where = "SampleSettings"
        integer(where, "max_new_tokens", self.max_new_tokens, low=0)
        real(where, "temperature", self.temperature, low=0)
        if self.top_k is not None:
            positive_int(where, "top_k", self.top_k)
        if self.top_p is not None:
            real(where, "top_p", self.top_p, low=0, high=1, low_open=True)


def _check_types(settings) -> None:
    """Check (and convert) every field of a settings dataclass against its type hint."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    for key, value in check_fields(type(settings), values).items():
        setattr(settings, key, value)


# the tables of a run and the dataclass each one is checked against
TABLES = {"data": DataSettings, "model": TransformerConfig, "train": TrainerConfig,
          "sample": SampleSettings}  # fmt: skip


def list_presets() -> list[str]:
    """Names of the bundled presets (``minroots/presets/*.toml``)."""
    folder = resources.files("minroots") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _preset_path(name: str):
    path = resources.files("minroots") / "presets" / f"{name}.toml"
    if not path.is_file():
        raise ValueError(
            f"--preset: unknown preset {name!r}; available: {', '.join(list_presets())}"
        )
    return path


def parse_override(item: str) -> tuple[str | None, str, object]:
    """``"model.n_layer=2"`` -> ``("model", "n_layer", 2)``; ``"lr=3e-4"`` -> ``(None, "lr", 0.0003)``.

    The value is read as a TOML value when it is one (numbers, ``true``, ``[0.9, 0.95]``,
    ``"quoted"``); ``none``/``null`` mean None; anything else is kept as a string.
    """
    if "=" not in item:
        raise ValueError(f"override {item!r}: must look like key=value (e.g. max_steps=100), got no "
                         "'='")  # fmt: skip
    key, raw = item.split("=", 1)
    key = key.strip()
    table, _, name = key.rpartition(".")
    if not name:
        raise ValueError(f"override {item!r}: has no key before '='")
    if raw.strip().lower() in ("none", "null"):
        value = None
    else:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return (table or None), name, value


def _apply_override(run: dict, item: str, tables: dict) -> None:
    """Set one ``key=value`` in ``run``; a bare key must belong to exactly one of ``tables``."""
    table, name, value = parse_override(item)
    if table is None:
        owners = [t for t, cls in tables.items() if name in _field_names(cls)]
        if len(owners) > 1:
            raise ValueError(
                f"override {item!r}: {name!r} is a key of {' and '.join(owners)}; write e.g. "
                f"{owners[0]}.{name}=..."
            )
        if not owners:
            every = [key for cls in tables.values() for key in _field_names(cls)]
            raise ValueError(f"override {item!r}: unknown key {name!r}{did_you_mean(name, every)}")
        table = owners[0]
    if table not in tables:
        raise ValueError(
            f"override {item!r}: unknown table {table!r}{did_you_mean(table, tables)}; tables are "
            f"{', '.join(tables)}"
        )
    run.setdefault(table, {})[name] = value


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _merge(run: dict, data: dict, source: str, tables: dict) -> None:
    """Add the tables of one TOML file (``source`` names it in errors) to ``run``."""
    for table, values in data.items():
        if table not in tables:
            raise ValueError(
                f"{source}: unknown table [{table}]{did_you_mean(table, tables)}; tables are "
                + ", ".join(f"[{t}]" for t in tables)
            )
        if not isinstance(values, dict):
            raise ValueError(f"{source}: {table} must be a table ([{table}]), got {shown(values)}")
        run[table].update(values)


def layered_tables(tables: dict, preset_path, preset: str, config=None, overrides=()) -> dict:
    """``{table: checked dict}``: the preset's TOML file, changed by the TOML file ``config``,
    changed by ``key=value`` items, each table's keys and types checked against its dataclass in
    ``tables``. The training run and the fine-tuning run (``minroots finetune``) both read
    their settings this way."""
    run: dict = {name: {} for name in tables}
    _merge(run, load_toml(preset_path), f"preset {preset!r}", tables)
    if config is not None:
        _merge(run, load_toml(config), config, tables)
    for item in overrides:
        _apply_override(run, item, tables)
    return {
        table: check_fields(cls, run[table], where=f"[{table}]") for table, cls in tables.items()
    }


def load_run_config(preset: str = "default", config: str | None = None, overrides=()) -> dict:
    """The four tables of a run: the preset, changed by a TOML file, changed by ``key=value`` items.

    Returns a dict of the four tables: ``"data"`` a :class:`DataSettings`, ``"model"`` and
    ``"train"`` dicts (``vocab_size`` and ``out_dir`` are filled in later), ``"sample"`` a
    :class:`SampleSettings`. Unknown tables or keys and wrong types raise with the file and key
    named.
    """
    run = layered_tables(TABLES, _preset_path(preset), preset, config, overrides)
    run["data"] = DataSettings(**run["data"])
    run["sample"] = SampleSettings(**run["sample"])
    return run


def build_dataset(data: DataSettings, block_size: int, seed: int) -> TextDataset:
    """The :class:`~minroots.data.TextDataset` that a ``[data]`` table describes."""
    text = load_corpus(data.corpus)
    if data.max_chars is not None:
        text = text[: data.max_chars]
    tokenizer = None if data.tokenizer == "char" else load_tokenizer_file(data.tokenizer)
    return TextDataset(text, tokenizer=tokenizer, block_size=block_size,
                       val_fraction=data.val_fraction, val_pieces=data.val_pieces,
                       cache_dir=data.cache_dir, seed=seed)  # fmt: skip
