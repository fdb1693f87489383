"""The classification experiment of chapter 10: Debian package descriptions -> archive section.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.5); tests in ``tests/test_posttrain_classifier.py``.

Run it (a few minutes on an idle 2-core laptop CPU)::

    python -m minroots.posttrain.section_classification --out runs/sections

Steps, all offline, all from bundled data:

1. **Split** ``debian_sections`` (1,500 labelled descriptions): the packages whose name's sha256
   is 0 modulo 5 are the test set (about a fifth), the rest train.
2. **Tokenizer**: byte-level BPE (chapter 6) trained on the text of ``debian_summaries`` (1,000
   other packages' descriptions and synopses) and the *training* descriptions (no test text).
3. **Pretrain** a small GPT on the same text with the :class:`~minroots.training.Trainer`: a
   run in ``OUT/base`` (checkpoints, loss curve), the pretrained model of the experiment.
4. **Fine-tune** a :class:`~minroots.posttrain.classifier.SequenceClassifier` made from that
   run's checkpoint on the training descriptions (a run in ``OUT/classifier``).
5. **Measure** the test accuracy against the naive-Bayes bag of words trained on the same
   descriptions, and draw both confusion matrices into ``OUT/confusion.png``; the numbers go to
   ``OUT/results.json``.

**Choosing settings honestly.** ``--validation`` runs the same steps with the test packages left
out altogether: the training packages whose name's sha256 is 1 modulo 5 become a validation set
(left out of the tokenizer, the pretraining text and the fine-tuning, like the test set), the
rest train. Compare settings there; evaluate on the test set only the setting chosen.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from minroots.backend import manual_seed
from minroots.data import TextDataset, load_pairs
from minroots.data.corpus import corpus_path
from minroots.nn import TransformerModel
from minroots.nn.dropout import Dropout
from minroots.persistence import write_json
from minroots.posttrain.bag_of_words import NaiveBayes
from minroots.posttrain.classifier import ClassificationDataset, SequenceClassifier, predict
from minroots.posttrain.confusion import accuracy, confusion_matrix, plot_confusion
from minroots.tokenizers import BPETokenizer
from minroots.training.checkpoint import load_model
from minroots.training.trainer import Trainer

__all__ = ["SectionExperiment", "split_sections", "pretraining_text", "run", "main"]


@dataclass
class SectionExperiment:
    """The settings of the experiment (the defaults are the chapter's)."""

    vocab_size: int = 4096  # BPE tokens: most words of the descriptions become one token
    block_size: int = 64  # tokens per text (longer descriptions are cut, and counted)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    pretrain_steps: int = 800  # language-model steps of 16 x 64 tokens
    epochs: int = 8  # passes of fine-tuning over the training descriptions
    lr: float = 1e-3  # fine-tuning's peak learning rate
    dropout: float = 0.1  # while fine-tuning (the data set is small)
    pooling: str = "mean"  # "mean" or "last" hidden state
    pretrain_dropout: float = 0.0  # while pretraining (0: none, as nanoGPT pretrains)
    lm_weight: float = 0.0  # auxiliary language-model loss while fine-tuning (GPT-1: 0.5)
    validation: bool = False  # evaluate on the validation split, not the test split
    pretraining_file: str = ""  # more pretraining text (data/prepare_descriptions.py builds one)
    pretraining_chars: int = 0  # read only this many characters of it (0: all)
    pretrain_batch: int = 16  # sequences of block_size tokens per pretraining step
    tokenizer_chars: int = 3_000_000  # the BPE learns from this many characters of the text
    sections_file: str = ""  # labelled JSONL (default: the bundled debian_sections)
    seed: int = 0


def _residue(record: dict) -> int:
    return int(hashlib.sha256(record["package"].encode()).hexdigest(), 16) % 5


def split_sections(validation: bool = False, path=None) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` records of ``debian_sections`` (or of the JSONL file ``path``): test
    when sha256(package) % 5 == 0.

    With ``validation=True``, ``(train, validation)`` instead: the test records are left out and
    the training records with sha256(package) % 5 == 1 are the validation set.
    """
    path = Path(path) if path else corpus_path("debian_sections")[1]
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    held_out = 1 if validation else 0
    kept = [r for r in records if _residue(r) != 0] if validation else records
    train = [r for r in kept if _residue(r) != held_out]
    return train, [r for r in kept if _residue(r) == held_out]


def pretraining_text(train: list[dict], more: str = "") -> str:
    """The text of ``debian_summaries`` (synopsis, then description), the training texts and
    ``more`` (e.g. the start of :file:`data/prepare_descriptions.py`'s output)."""
    parts = [f"{target}\n{source}" for source, target in load_pairs("debian_summaries")]
    parts += [r["source"] for r in train]
    return "\n\n".join(parts + ([more] if more else []))


def _more_text(s: SectionExperiment) -> str:
    if not s.pretraining_file:
        return ""
    text = Path(s.pretraining_file).read_text(encoding="utf-8")
    return text[: s.pretraining_chars] if s.pretraining_chars else text


def _set_dropout(model, p: float) -> None:
    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = p


def run(settings: SectionExperiment | None = None, out_dir="runs/sections", log=print) -> dict:
    """Do the experiment (see the module docstring); return and save the results."""
    s = settings or SectionExperiment()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manual_seed(s.seed)
    train, test = split_sections(validation=s.validation, path=s.sections_file or None)
    split = "validation" if s.validation else "test"
    labels = sorted({r["target"] for r in train})
    text = pretraining_text(train, _more_text(s))
    tokenizer = BPETokenizer()
    tokenizer.train(text[: s.tokenizer_chars], s.vocab_size, show_progress=False)
    log(f"tokenizer: BPE with {tokenizer.vocab_size} tokens, trained on "
        f"{min(len(text), s.tokenizer_chars):,} characters of {len(text):,}")  # fmt: skip

    lm_data = TextDataset(text, tokenizer=tokenizer, block_size=s.block_size, use_cache=False)
    base = TransformerModel(vocab_size=tokenizer.vocab_size, block_size=s.block_size,
                            n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd)  # fmt: skip
    _set_dropout(base, s.pretrain_dropout)
    history = Trainer(base, lm_data, max_steps=s.pretrain_steps, batch_size=s.pretrain_batch,
                      lr=3e-3, warmup=50, min_lr=3e-4, eval_interval=s.pretrain_steps,
                      eval_steps=10, log_interval=0, out_dir=str(out / "base"),
                      overwrite=True).train()  # fmt: skip
    log(f"pretrained {s.pretrain_steps} steps: validation loss {history.last_val['val_loss']:.3f}")

    model = load_model(out / "base")  # the pretrained run's checkpoint
    _set_dropout(model, s.dropout)
    classifier = SequenceClassifier(model, labels, pooling=s.pooling, lm_weight=s.lm_weight)
    train_data = ClassificationDataset([(r["source"], r["target"]) for r in train], tokenizer,
                                       s.block_size, labels)  # fmt: skip
    test_data = ClassificationDataset([(r["source"], r["target"]) for r in test], tokenizer,
                                      s.block_size, labels)  # fmt: skip
    log(f"training set: {train_data.describe()}; {split} set: {test_data.describe()}")
    Trainer(classifier, train_data, epochs=s.epochs, batch_size=16, lr=s.lr, warmup=20,
            min_lr=s.lr / 10, weight_decay=0.01, eval_interval=0, log_interval=0,
            out_dir=str(out / "classifier"), overwrite=True, seed=s.seed).train()  # fmt: skip

    predicted = predict(classifier, test_data)
    nb = NaiveBayes().fit([r["source"] for r in train], train_data.y)
    baseline = nb.predict([r["source"] for r in test])
    k = len(labels)
    matrices = {"fine-tuned GPT": confusion_matrix(test_data.y, predicted, k),
                "naive Bayes": confusion_matrix(test_data.y, baseline, k)}  # fmt: skip
    plot_confusion(matrices, labels, out / "confusion.png")
    results = {
        "settings": dataclasses.asdict(s), "labels": labels, "train": len(train),
        "split": split, "test": len(test), "accuracy": accuracy(test_data.y, predicted),
        "baseline_accuracy": accuracy(test_data.y, baseline),
        "confusion": matrices["fine-tuned GPT"].tolist(),
        "baseline_confusion": matrices["naive Bayes"].tolist(),
    }  # fmt: skip
    write_json(out / "results.json", results, indent=2)
    log(f"{split} accuracy over {len(test)} descriptions: fine-tuned GPT {results['accuracy']:.1%}, "
        f"naive Bayes {results['baseline_accuracy']:.1%}; confusion matrices in "
        f"{os.fspath(out / 'confusion.png')}")  # fmt: skip
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/sections", help="output folder (%(default)s)")
    for f in dataclasses.fields(SectionExperiment):
        flag = f"--{f.name.replace('_', '-')}"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=f"(default {f.default})")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)
    args = parser.parse_args(argv)
    settings = SectionExperiment(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(SectionExperiment)}
    )
    run(settings, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
