"""Checkpoints: exact round trips, keep-last-K, no pickle, and a crash mid-save keeps the last good one."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

import minroots
from minroots.data import TextDataset
from minroots.nn import Module, Parameter, TransformerConfig, TransformerModel
from minroots.optim import AdamW
from minroots.training import (
    Trainer,
    TrainerConfig,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model,
    load_tokenizer,
    resolve_checkpoint,
    save_checkpoint,
)

TEXT = "To be, or not to be, that is the question.\n" * 40


def tiny_model(seed=0, vocab_size=20):
    minroots.manual_seed(seed)
    return TransformerModel(
        TransformerConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)
    )


def trained_optimizer(model, steps=2):
    """An AdamW with non-trivial moment buffers."""
    opt = AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = rng.integers(0, model.config.vocab_size, (2, 8))
        _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return opt


class Bigram(Module):
    """A stand-in model that is not a minroots TransformerModel: no save(), no config."""

    def __init__(self, vocab_size):
        super().__init__()
        self.table = Parameter(np.zeros((vocab_size, vocab_size), dtype=np.float32))

    def forward(self, idx, targets=None):
        logits = self.table[idx]  # (B, T, V)
        if targets is None:
            return logits, None
        logp = logits.log_softmax(-1)
        b, t = targets.shape
        picked = logp[np.arange(b)[:, None], np.arange(t)[None, :], targets]  # (B, T)
        return logits, -picked.mean()


def test_round_trip_restores_weights_optimizer_and_state_exactly(tmp_path):
    model = tiny_model(seed=1)
    opt = trained_optimizer(model)
    path = save_checkpoint(tmp_path, 12, model, opt, {"hello": [1, 2]}, keep_last=3)
    assert path.name == "step-00000012"

    other = tiny_model(seed=2)  # different initial weights
    other_opt = AdamW(other.parameters(), lr=5.0)
    state = load_checkpoint(tmp_path, other, other_opt)
    assert state["step"] == 12 and state["hello"] == [1, 2]
    for (name, p), (_, q) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        assert np.array_equal(p.data, q.data), name
    a, b = opt.state_dict(), other_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in ("exp_avg", "exp_avg_sq"):
            assert np.array_equal(a["state"][i][k], b["state"][i][k])
        assert a["state"][i]["step"] == b["state"][i]["step"]
    # the tied lm_head is still the embedding after loading in place
    assert other.lm_head.weight is other.wte.weight


def test_generic_model_checkpoint(tmp_path):
    model = Bigram(5)
    model.table.data[...] = np.arange(25, dtype=np.float32).reshape(5, 5)
    save_checkpoint(tmp_path, 1, model)
    fresh = Bigram(5)
    load_checkpoint(tmp_path, fresh)
    assert np.array_equal(fresh.table.data, model.table.data)
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path)  # a generic model cannot be rebuilt from the files alone


def test_keep_last_k(tmp_path):
    model = tiny_model()
    for step in (1, 2, 3, 4, 5):
        save_checkpoint(tmp_path, step, model, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004", "step-00000005"]
    assert latest_checkpoint(tmp_path).name == "step-00000005"


def test_no_pickle_anywhere(tmp_path):
    model = tiny_model()
    opt = trained_optimizer(model)
    tok_ds = TextDataset(TEXT, block_size=8, use_cache=False)
    path = save_checkpoint(tmp_path, 3, model, opt, {"x": 1}, tokenizer=tok_ds.tokenizer)
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "config.json", "manifest.json", "model.safetensors", "optimizer.json",
        "optimizer.safetensors", "tokenizer.json", "trainer_state.json",
    ]  # fmt: skip
    for p in path.iterdir():  # every file is plain JSON or a safetensors file: data, not code
        if p.suffix == ".json":
            json.loads(p.read_text("utf-8"))
        else:
            assert p.suffix == ".safetensors"
            assert load_file(p)  # parses as safetensors (8-byte header length + JSON header)
    assert load_tokenizer(tmp_path).decode(tok_ds.encode("To be")) == "To be"


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_model(seed=3)
    opt = trained_optimizer(model)
    save_checkpoint(tmp_path, 10, model, opt, {"marker": "good"})
    good = {k: np.array(v) for k, v in model.state_dict().items()}

    model.wte.weight.data[...] = 123.0  # the weights change, then a save crashes half-way

    def crash(self, prefix):
        (prefix.parent / "optimizer.json").write_text("{half", encoding="utf-8")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(type(opt), "save_state", crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, 20, model, opt, {"marker": "bad"})
    monkeypatch.undo()

    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000010"]
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "checkpoints").iterdir())
    fresh = tiny_model(seed=4)
    state = load_checkpoint(tmp_path, fresh, AdamW(fresh.parameters(), lr=1e-2))
    assert state["marker"] == "good"
    for k, v in fresh.state_dict().items():
        assert np.array_equal(v, good[k]), k


def test_leftover_temp_folder_from_a_killed_process_is_ignored_then_removed(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, 1, model)
    stale = tmp_path / "checkpoints" / ".tmp-step-00000002-999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"garbage")
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    save_checkpoint(tmp_path, 3, model)
    assert not stale.exists()


def test_resolve_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="step must be an integer"):
        save_checkpoint(tmp_path, -1, tiny_model())


def test_load_model_rebuilds_a_transformer(tmp_path):
    model = tiny_model(seed=5)
    save_checkpoint(tmp_path, 1, model)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, TransformerModel)
    x = np.array([[1, 2, 3]])
    assert np.array_equal(loaded(x)[0].data, model(x)[0].data)


def test_trainer_failure_mid_save_keeps_last_good_checkpoint_and_resumes(tmp_path, monkeypatch):
    """A crash inside the trainer's save (step 4) leaves step 2 loadable, and training resumes."""
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    cfg = TrainerConfig(max_steps=6, batch_size=2, save_interval=2, log_interval=1,
                        eval_interval=0, out_dir=str(tmp_path / "run"), keep_last=5)  # fmt: skip
    trainer = Trainer(tiny_model(vocab_size=ds.vocab_size), ds, config=cfg)
    real = Trainer.state_dict

    def flaky(self):
        if self.step == 4:
            raise OSError("power cut (simulated)")
        return real(self)

    monkeypatch.setattr(Trainer, "state_dict", flaky)
    with pytest.raises(OSError, match="power cut"):
        trainer.train()
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000002"]
    again = Trainer(tiny_model(seed=9, vocab_size=ds.vocab_size), ds, config=cfg).resume()
    assert again.step == 2
    again.train()
    assert again.step == 6
    assert [r["step"] for r in again.history] == [1, 2, 3, 4, 5, 6]
