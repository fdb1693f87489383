"""Preference tuning with DPO: a fine-tuned chat model, a frozen copy, the Trainer, and the metrics.

Book chapter 10, "Applications: from a pretrained model to an assistant"
(``book/10_applications.md``, section 10.4); tests in ``tests/test_posttrain_dpo.py``.

:func:`dpo_finetune` loads the policy and a frozen reference from the same chat checkpoint (made
by ``minroots finetune``), trains :class:`~minroots.posttrain.dpo.DPOObjective` with the
:class:`~minroots.training.Trainer` (atomic checkpoints holding the policy and the chat template,
exact resume), and measures on held-out triples, before and after (:func:`preference_metrics`):

- ``reward_accuracy``: the share of pairs whose implicit reward margin
  :math:`\\beta[(\\pi_w - \\rho_w) - (\\pi_l - \\rho_l)]` is positive (0 at the start, when the
  policy is the reference and every margin is 0);
- ``reward_margin``: the mean margin;
- ``chosen_reward``, ``rejected_reward``: the mean implicit rewards :math:`\\beta(\\pi_w -
  \\rho_w)` and :math:`\\beta(\\pi_l - \\rho_l)`: how far the policy moved each kind of reply
  away from the reference (DPO mostly pushes the rejected ones down).

Each evaluation appends these metrics to ``preference_metrics.jsonl`` in the run folder.

The chapter's run (:func:`main`; a few minutes on an idle 2-core laptop CPU), after
``minroots finetune --preset chat``::

    python -m minroots.posttrain.preference_tuning --checkpoint runs/chat --out runs/chat_dpo

It prefers complete replies over the same replies cut after half their words
(:func:`~minroots.posttrain.preference_dataset.cut_reply_preferences`) and holds out the pairs of
the conversations that fine-tuning held out (the same split: 10%, seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minroots.autograd import no_grad
from minroots.backend import manual_seed
from minroots.chat.template import ChatTemplate
from minroots.posttrain.conversations import split_conversations
from minroots.posttrain.dpo import DPOObjective, sequence_logprobs
from minroots.posttrain.preference_dataset import PreferenceDataset, cut_reply_preferences
from minroots.training.callbacks import Callback
from minroots.training.checkpoint import load_model
from minroots.training.config import TrainerConfig
from minroots.training.trainer import Trainer

__all__ = ["preference_metrics", "PreferenceLogger", "DPOResult", "dpo_finetune",
           "METRICS_FILE", "main"]  # fmt: skip

METRICS_FILE = "preference_metrics.jsonl"


def preference_metrics(objective: DPOObjective, dataset, batch_size: int = 16) -> dict:
    """DPO loss, reward accuracy, mean reward margin and mean implicit rewards over every triple
    of ``dataset`` (a :class:`PreferenceDataset`)."""
    policy_w, policy_l, ref_w, ref_l = [], [], [], []
    was = objective.policy.training
    objective.policy.eval()
    objective.reference.eval()
    try:
        with no_grad():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                x = np.concatenate([it[0] for it in items])  # (2b, T): chosen, rejected, ...
                y = np.concatenate([it[1] for it in items])
                for model, w, l in ((objective.policy, policy_w, policy_l),
                                    (objective.reference, ref_w, ref_l)):  # fmt: skip
                    lp = np.asarray(sequence_logprobs(model(x)[0], y).data, dtype=np.float64)
                    w.extend(lp[0::2])
                    l.extend(lp[1::2])
    finally:
        objective.policy.train(was)
    pw, pl, rw, rl = (np.array(v) for v in (policy_w, policy_l, ref_w, ref_l))
    beta = objective.beta
    z = beta * ((pw - rw) - (pl - rl))
    loss = np.mean(np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z))))
    return {"dpo_loss": float(loss), "reward_accuracy": float((z > 0).mean()),
            "reward_margin": float(z.mean()), "chosen_reward": float(beta * (pw - rw).mean()),
            "rejected_reward": float(beta * (pl - rl).mean()), "pairs": len(z)}  # fmt: skip


class PreferenceLogger(Callback):
    """At each evaluation, measure :func:`preference_metrics` on ``dataset``, append them to
    ``preference_metrics.jsonl`` in the run folder and print them (``log``)."""

    def __init__(self, dataset, log=print):
        self.dataset, self.log, self.records = dataset, log, []

    def on_evaluate(self, trainer, step, metrics):
        record = {"step": step, **preference_metrics(trainer.model, self.dataset)}
        self.records.append(record)
        if trainer.out_dir is not None:
            with open(Path(trainer.out_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.log(f"step {step}: reward accuracy {record['reward_accuracy']:.2f}, margin "
                 f"{record['reward_margin']:.3f} (chosen {record['chosen_reward']:+.3f}, rejected "
                 f"{record['rejected_reward']:+.3f})")  # fmt: skip


@dataclass
class DPOResult:
    """What :func:`dpo_finetune` returns."""

    objective: DPOObjective  # .policy is the tuned model
    template: ChatTemplate
    trainer: Trainer
    before: dict  # preference_metrics on the held-out triples before tuning
    after: dict  # ... and after


def dpo_finetune(checkpoint, train_triples, held_out_triples, train: TrainerConfig | None = None,
                 beta: float = 0.1, too_long: str = "skip", unencodable: str = "skip",
                 resume: bool = False, log=print) -> DPOResult:  # fmt: skip
    """Tune the chat model of ``checkpoint`` with DPO on ``train_triples``; measure on
    ``held_out_triples`` before and after (see the module docstring)."""
    template = ChatTemplate.load(checkpoint)
    if template is None:
        raise ValueError(
            f"preference_tuning: checkpoint {os.fspath(checkpoint)!r} has no chat template: DPO starts from a chat "
            "model (run minroots finetune first)"
        )
    train = train or TrainerConfig()
    manual_seed(train.seed)
    policy, reference = load_model(checkpoint), load_model(checkpoint)
    block = policy.config.block_size
    options = {"too_long": too_long, "unencodable": unencodable}
    data = PreferenceDataset(train_triples, template, block, **options)
    held = PreferenceDataset(held_out_triples, template, block, **options)
    log(f"preference pairs: {data.report} for training, {held.report} held out")
    objective = DPOObjective(policy, reference, beta)
    before = preference_metrics(objective, held)
    logger = PreferenceLogger(held, log=log)
    trainer = Trainer(objective, data, eval_dataset=held, config=train, callbacks=[logger])
    if resume:
        trainer.resume()
    trainer.train()
    return DPOResult(objective, template, trainer, before, preference_metrics(objective, held))


def main(argv=None) -> int:
    """The DPO run of chapter 10 from the command line (see the module docstring)."""
    from minroots.data import load_pairs

    parser = argparse.ArgumentParser(
        description="Tune a chat model with DPO to prefer complete replies over cut ones."
    )
    parser.add_argument("--checkpoint", default="runs/chat", help="the chat run (%(default)s)")
    parser.add_argument("--out", default="runs/chat_dpo", help="output folder (%(default)s)")
    parser.add_argument("--data", default="dialogue_en", help="a bundled pair corpus or a "
                        "prompt/response JSONL file (%(default)s)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=150, help="DPO steps (%(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step (%(default)s)")
    parser.add_argument("--lr", type=float, default=5e-4, help="learning rate (%(default)s)")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO's beta (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(%(default)s)")
    args = parser.parse_args(argv)
    if Path(args.data).is_file():
        lines = Path(args.data).read_text(encoding="utf-8").splitlines()
        pairs = [(r["prompt"], r["response"]) for r in map(json.loads, filter(str.strip, lines))]
    else:
        pairs = load_pairs(args.data)
    train_pairs, held_pairs = split_conversations(pairs, 0.1, 0)  # the fine-tuning's split
    train = TrainerConfig(max_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          warmup=max(1, args.steps // 20), min_lr=args.lr / 10, weight_decay=0.0,
                          eval_interval=max(1, args.steps // 5), eval_steps=4,
                          save_interval=args.steps, keep_last=1, out_dir=args.out,
                          seed=args.seed)  # fmt: skip
    result = dpo_finetune(args.checkpoint, cut_reply_preferences(train_pairs),
                          cut_reply_preferences(held_pairs), train, beta=args.beta)  # fmt: skip
    for name, m in (("before", result.before), ("after", result.after)):
        print(f"{name}: reward accuracy {m['reward_accuracy']:.2f}, margin "
              f"{m['reward_margin']:+.3f}, DPO loss {m['dpo_loss']:.3f} over {m['pairs']} "
              "held-out pairs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
