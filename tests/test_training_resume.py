"""Exact resume: N straight steps == k steps, stop, resume, N - k steps (weights and losses, bit for bit)."""

import numpy as np
import pytest

import minroots
from minroots.data import TextDataset
from minroots.nn import TransformerConfig, TransformerModel
from minroots.training import History, LambdaCallback, Trainer, TrainerConfig

TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet "
    "is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n"
) * 15


def make_model(vocab_size, seed):
    minroots.manual_seed(seed)
    config = TransformerConfig(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=2,
                               n_embd=16, dropout=0.1)  # dropout: minroots' RNG must be restored too  # fmt: skip
    return TransformerModel(config)


def stop_at(step):
    return LambdaCallback(on_step_end=lambda trainer, s, logs: s == step)


def losses(history):
    return [(r["step"], r["train_loss"], r["val_loss"], r["lr"]) for r in history]


def run_straight_and_resumed(tmp_path, config, k):
    ds = TextDataset(TEXT, block_size=16, use_cache=False)
    straight = Trainer(make_model(ds.vocab_size, seed=0), ds,
                       config=config.replace(out_dir=str(tmp_path / "straight")))  # fmt: skip
    straight.train()

    cfg = config.replace(out_dir=str(tmp_path / "resumed"))
    first = Trainer(make_model(ds.vocab_size, seed=0), ds, config=cfg, callbacks=[stop_at(k)])
    first.train()
    assert first.step == k
    minroots.manual_seed(123)  # disturb the global RNG: resume must restore it
    # a new process would build a new model: different initial weights, loaded from the checkpoint
    second = Trainer(make_model(ds.vocab_size, seed=99), ds, config=cfg).resume()
    assert second.step == k
    second.train()
    return straight, second


@pytest.mark.parametrize(
    ("changes", "k"),
    [
        ({}, 5),  # random blocks (get_batch), cosine schedule with warmup
        ({"grad_accum_steps": 2, "clip_norm": 0.5, "schedule": "linear"}, 5),
        # a DataLoader, stopped in the middle of epoch 2
        ({"epochs": 2, "batch_size": 8, "eval_interval": 5}, 20),
    ],
    ids=["blocks", "accumulation", "epochs"],
)
def test_resume_is_bit_identical(tmp_path, changes, k):
    base = dict(max_steps=9, batch_size=3, lr=3e-3, warmup=2, log_interval=1, eval_interval=2,
                eval_steps=2, save_interval=4)  # fmt: skip
    config = TrainerConfig(**{**base, **changes})
    straight, resumed = run_straight_and_resumed(tmp_path, config, k=k)
    assert resumed.step == straight.step == straight.total_steps
    for (name, p), (_, q) in zip(straight.model.named_parameters(),
                                 resumed.model.named_parameters(), strict=True):  # fmt: skip
        assert np.array_equal(p.data, q.data), f"{name} differs after resume"
    assert losses(resumed.history) == losses(straight.history)
    on_disk = History.read(tmp_path / "resumed" / "history.jsonl")
    assert losses(on_disk) == losses(straight.history)  # the file was cut at k and continued
    a = straight.optimizer.state_dict()["state"]
    b = resumed.optimizer.state_dict()["state"]
    for i in a:
        assert np.array_equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"])


def test_resume_from_an_intermediate_checkpoint_after_a_crash(tmp_path):
    """Steps 5-6 are lost in a crash; resuming from the step-4 checkpoint redoes them identically."""
    ds = TextDataset(TEXT, block_size=16, use_cache=False)
    config = TrainerConfig(max_steps=8, batch_size=2, log_interval=1, eval_interval=0,
                           save_interval=4, out_dir=str(tmp_path / "run"))  # fmt: skip
    straight = Trainer(make_model(ds.vocab_size, 0), ds,
                       config=config.replace(out_dir=str(tmp_path / "ref")))  # fmt: skip
    straight.train()

    def crash(trainer, step, logs):
        if step == 6:
            raise KeyboardInterrupt  # the process dies between checkpoints

    with pytest.raises(KeyboardInterrupt):
        Trainer(make_model(ds.vocab_size, 0), ds, config=config,
                callbacks=[LambdaCallback(on_step_end=crash)]).train()  # fmt: skip
    resumed = Trainer(make_model(ds.vocab_size, 5), ds, config=config).resume()
    assert resumed.step == 4
    resumed.train()
    assert losses(resumed.history) == losses(straight.history)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)


def test_resume_refuses_a_different_schedule_length(tmp_path):
    ds = TextDataset(TEXT, block_size=16, use_cache=False)
    cfg = TrainerConfig(max_steps=4, batch_size=2, log_interval=0, eval_interval=0,
                        out_dir=str(tmp_path))  # fmt: skip
    Trainer(make_model(ds.vocab_size, 0), ds, config=cfg).train()
    longer = Trainer(make_model(ds.vocab_size, 0), ds, config=cfg.replace(max_steps=8))
    with pytest.raises(ValueError, match="run of 4 steps .* set up for 8"):
        longer.resume()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    ds = TextDataset(TEXT, block_size=16, use_cache=False)
    trainer = Trainer(make_model(ds.vocab_size, 0), ds, out_dir=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        trainer.resume()
