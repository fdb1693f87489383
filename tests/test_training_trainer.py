"""The Trainer: history and loss curve, gradient accumulation, NaN detection, callbacks, errors."""

import json
import math

import numpy as np
import pytest

import minroots
from minroots.data import TextDataset
from minroots.nn import Module, Parameter, TransformerConfig, TransformerModel
from minroots.optim import SGD
from minroots.training import (
    HISTORY_KEYS,
    DivergenceError,
    EarlyStopping,
    History,
    LambdaCallback,
    TrainableModel,
    Trainer,
    TrainerConfig,
    list_checkpoints,
    load_checkpoint,
)
from minroots.training.accumulation import accumulate_gradients

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 20


@pytest.fixture
def dataset():
    return TextDataset(TEXT, block_size=16, use_cache=False)


def tiny_model(vocab_size, seed=0, block_size=16, dropout=0.0):
    minroots.manual_seed(seed)
    return TransformerModel(TransformerConfig(vocab_size=vocab_size, block_size=block_size,
                                              n_layer=1, n_head=2, n_embd=16, dropout=dropout))  # fmt: skip


def quiet(**changes):
    base = dict(max_steps=6, batch_size=4, log_interval=1, eval_interval=3, eval_steps=2,
                out_dir=None, warmup=2, lr=3e-3)  # fmt: skip
    return TrainerConfig(**{**base, **changes})


def test_seed_example_with_text_dataset_runs_and_learns(tmp_path, monkeypatch):
    """The README example: Trainer(model=..., dataset=<text>, ...).train()."""
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "cache"))  # token ids cached here
    text = minroots.data.load_corpus("shakespeare")[:30000]
    ds_probe = TextDataset(text, block_size=16, use_cache=False)
    model = tiny_model(ds_probe.vocab_size)
    trainer = Trainer(model=model, dataset=text, max_steps=40, batch_size=8, lr=1e-2,
                      eval_interval=20, eval_steps=4, log_interval=0, out_dir=str(tmp_path))  # fmt: skip
    history = trainer.train()
    assert isinstance(history, History) and trainer.step == 40
    first, last = history.val_losses[0][1], history.val_losses[-1][1]
    assert last < first < math.log(ds_probe.vocab_size) + 0.5  # learning, from about ln(V)


def test_history_file_and_loss_curve(tmp_path, dataset):
    out = tmp_path / "run"
    cfg = quiet(max_steps=6, log_interval=2, eval_interval=3, out_dir=str(out))
    history = Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg).train()
    lines = (out / "history.jsonl").read_text("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [dict(r) for r in history]
    assert all(tuple(r) == HISTORY_KEYS for r in records)
    assert [r["step"] for r in records] == [2, 3, 4, 6]  # logs at 2, 4, 6; evals at 3, 6
    by_step = {r["step"]: r for r in records}
    # a value not measured at a step is null
    assert by_step[3]["train_loss"] is None and by_step[3]["val_loss"] is not None
    assert by_step[2]["val_loss"] is None and by_step[2]["tokens_per_s"] > 0
    assert by_step[6]["val_perplexity"] == pytest.approx(math.exp(by_step[6]["val_loss"]))
    assert by_step[2]["lr"] == pytest.approx(3e-3 * 2 / 3)  # step index 1 of the warmup ramp
    png = (out / "loss_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert History.read(out / "history.jsonl") == history


def test_log_interval_zero_is_silent(capsys, dataset):
    Trainer(tiny_model(dataset.vocab_size), dataset, config=quiet(log_interval=0)).train()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_loss_and_tokens_per_second(capsys, dataset):
    Trainer(tiny_model(dataset.vocab_size), dataset, config=quiet(max_steps=2)).train()
    err = capsys.readouterr().err
    assert "loss=" in err and "tok_s=" in err


@pytest.mark.task7_1
@pytest.mark.parametrize(("batch", "accum"), [(2, 4), (4, 2), (1, 8)])
def test_gradient_accumulation_equals_one_large_batch(dataset, batch, accum):
    """m micro-batches of b == one batch of m*b: same data, same update (to 1e-6)."""
    results = []
    for b, m in ((8, 1), (batch, accum)):
        model = tiny_model(dataset.vocab_size, seed=3)
        opt = SGD(model.parameters(), lr=1.0)  # lr 1: the weight change is the gradient itself
        cfg = quiet(max_steps=2, batch_size=b, grad_accum_steps=m, schedule="constant", warmup=0,
                    lr=1.0, clip_norm=None, eval_interval=0)  # fmt: skip
        history = Trainer(model, dataset, optimizer=opt, config=cfg).train()
        results.append(({n: p.data.copy() for n, p in model.named_parameters()},
                         [r["train_loss"] for r in history]))  # fmt: skip
    (w_big, loss_big), (w_acc, loss_acc) = results
    np.testing.assert_allclose(loss_acc, loss_big, rtol=0, atol=1e-6)
    for name in w_big:
        np.testing.assert_allclose(w_acc[name], w_big[name], rtol=0, atol=1e-6, err_msg=name)


class MeanSquare(Module):
    """loss(x, y) = mean over rows of (w . x_row - y_row)^2: small enough to check by hand."""

    def __init__(self, w):
        super().__init__()
        self.w = Parameter(np.array(w, dtype=np.float64))

    def forward(self, x, y):
        err = minroots.tensor(x) @ self.w - minroots.tensor(y)
        return None, (err * err).mean()


@pytest.mark.task7_1
def test_accumulated_gradient_by_hand():
    # rows x = [1], [3]; y = 0; w = 1: losses 1 and 9, mean 5; d/dw = mean(2 x (w x)) = (2 + 18) / 2
    x, y = np.array([[1.0], [3.0]]), np.zeros(2)
    for m in (1, 2):
        model = MeanSquare([1.0])
        assert accumulate_gradients(model, x, y, m) == pytest.approx(5.0, rel=1e-15)
        np.testing.assert_allclose(model.w.grad, [10.0], rtol=1e-15)


@pytest.mark.task7_1
@pytest.mark.parametrize("m", [1, 2, 3, 6])
def test_accumulated_gradient_equals_the_full_batch_gradient(m):
    rng = np.random.default_rng(m)
    x, y, w = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal(4)
    full = MeanSquare(w)
    _, loss = full(x, y)
    loss.backward()
    acc = MeanSquare(w)
    acc.w.grad = np.ones(4)  # gradients are *added* to what .grad holds
    value = accumulate_gradients(acc, x, y, m)
    assert value == pytest.approx(float(loss.data), rel=1e-12)
    np.testing.assert_allclose(acc.w.grad, full.w.grad + 1.0, rtol=1e-12, atol=1e-14)


@pytest.mark.task7_1
def test_accumulation_stops_before_backward_on_a_bad_loss_and_checks_its_arguments():
    model = MeanSquare([np.nan])
    with pytest.raises(FloatingPointError, match="micro-batch 1 of 2"):
        accumulate_gradients(model, np.ones((2, 1)), np.zeros(2), 2)
    assert model.w.grad is None  # nothing was accumulated
    with pytest.raises(ValueError, match="divisible by micro_batches=4"):
        accumulate_gradients(MeanSquare([1.0]), np.ones((6, 1)), np.zeros(6), 4)
    with pytest.raises(ValueError, match="micro_batches must be an integer >= 1"):
        accumulate_gradients(MeanSquare([1.0]), np.ones((6, 1)), np.zeros(6), 0)


def test_gradient_accumulation_sees_the_same_batches(dataset):
    a = Trainer(tiny_model(dataset.vocab_size), dataset, config=quiet(batch_size=8))
    b = Trainer(
        tiny_model(dataset.vocab_size), dataset, config=quiet(batch_size=2, grad_accum_steps=4)
    )
    assert a.sequences_per_step == b.sequences_per_step == 8
    for _ in range(3):
        xa, ya = a.next_batch()
        xb, yb = b.next_batch()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def poison_after(step):
    """A callback that sets the embedding to NaN after ``step``: the next loss is NaN."""

    def on_step_end(trainer, s, logs):
        if s == step:
            trainer.model.wte.weight.data[...] = np.nan

    return LambdaCallback(on_step_end=on_step_end)


@pytest.mark.task7_1
def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path, dataset):
    cfg = quiet(max_steps=10, save_interval=2, out_dir=str(tmp_path), eval_interval=0, keep_last=5)
    model = tiny_model(dataset.vocab_size)
    with pytest.raises(FloatingPointError, match=r"^step 4: the training loss is nan") as info:
        Trainer(model, dataset, config=cfg, callbacks=[poison_after(3)]).train()
    assert "debug=True" in str(info.value) and str(tmp_path) in str(info.value)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    assert "last good checkpoint is kept: " in str(info.value)
    assert str(info.value).endswith("step-00000002")
    fresh = tiny_model(dataset.vocab_size, seed=7)
    load_checkpoint(tmp_path, fresh)
    assert all(np.isfinite(p.data).all() for p in fresh.parameters())


def test_nan_before_any_checkpoint_says_none_was_saved(tmp_path, dataset):
    cfg = quiet(max_steps=10, save_interval=5, out_dir=str(tmp_path), eval_interval=0)
    with pytest.raises(FloatingPointError, match="no checkpoint was saved") as info:
        Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg,
                callbacks=[poison_after(1)]).train()  # fmt: skip
    assert "last good checkpoint" not in str(info.value)
    assert list_checkpoints(tmp_path) == []


def test_debug_mode_names_the_first_bad_operation(dataset):
    model = tiny_model(dataset.vocab_size)
    with pytest.raises(FloatingPointError, match=r"^step 2: .*operation '\w+'") as info:
        Trainer(model, dataset, config=quiet(debug=True), callbacks=[poison_after(1)]).train()
    assert "produced NaN or infinity" in str(info.value)


class SqrtModel(Module):
    """A finite loss (0) whose gradient is infinite: d sqrt(w) / dw at w = 0."""

    def __init__(self):
        super().__init__()
        self.w = Parameter(np.zeros(3, dtype=np.float32))

    def forward(self, idx, targets=None):
        return None, self.w.sqrt().sum()


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_gradient_stops_naming_step_and_parameter(dataset):
    model = SqrtModel()
    with pytest.raises(FloatingPointError, match=r"step 1: the gradient norm is inf; .* in w"):
        Trainer(model, dataset, config=quiet(eval_interval=0)).train()
    assert np.array_equal(model.w.data, np.zeros(3, dtype=np.float32))  # the update was skipped


def test_callbacks_are_called_and_can_stop(tmp_path, dataset):
    calls = []
    cb = LambdaCallback(
        on_step_end=lambda t, s, logs: calls.append(("step", s, round(logs["lr"], 9))) or s == 5,
        on_evaluate=lambda t, s, m: calls.append(("eval", s, m["val_perplexity"] > 1)),
        on_save=lambda t, s, path: calls.append(("save", s, path.name)),
    )
    cfg = quiet(max_steps=9, eval_interval=2, save_interval=4, out_dir=str(tmp_path))
    trainer = Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg, callbacks=[cb])
    trainer.train()
    assert trainer.step == 5  # stopped early by on_step_end returning True
    kinds = [(k, s) for k, s, _ in calls]
    assert kinds == [("step", 1), ("eval", 2), ("step", 2), ("step", 3), ("eval", 4), ("step", 4),
                     ("save", 4), ("step", 5), ("save", 5)]  # fmt: skip
    assert calls[-1][2] == "step-00000005"


def test_early_stopping(dataset):
    stopper = EarlyStopping(patience=2)
    assert [stopper.on_evaluate(None, i, {"val_loss": v}) for i, v in
            enumerate([2.0, 1.8, 1.85, 1.81])] == [False, False, False, True]  # fmt: skip
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_evaluation_is_deterministic_and_leaves_training_rng_alone(dataset):
    trainer = Trainer(tiny_model(dataset.vocab_size, dropout=0.1), dataset, config=quiet())
    state = trainer._data_rng.bit_generator.state
    rng_state = minroots.backend.get_rng_state()
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first == second
    assert trainer._data_rng.bit_generator.state == state
    assert minroots.backend.get_rng_state() == rng_state  # eval mode: dropout draws nothing
    assert trainer.model.training  # back in training mode


def test_separate_eval_dataset(dataset):
    other = TextDataset(TEXT[::-1], block_size=16, val_fraction=0.0, use_cache=False,
                        tokenizer=dataset.tokenizer)  # fmt: skip
    trainer = Trainer(tiny_model(dataset.vocab_size), dataset, eval_dataset=other, config=quiet())
    assert (
        trainer.evaluate()["val_loss"]
        != Trainer(tiny_model(dataset.vocab_size), dataset, config=quiet()).evaluate()["val_loss"]
    )


def test_epochs_mode_uses_a_data_loader(dataset):
    cfg = quiet(epochs=2, batch_size=4, eval_interval=0)
    trainer = Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg)
    per_epoch = len(dataset) // 4
    assert trainer.total_steps == 2 * per_epoch
    trainer.train()
    assert trainer.step == 2 * per_epoch
    # both epochs served in full (the loader rolls over to epoch 2 on the next request)
    assert (trainer.loader.epoch, trainer.loader.position) == (1, 4 * per_epoch)


def test_keyword_overrides_and_errors(dataset, tmp_path):
    model = tiny_model(dataset.vocab_size)
    trainer = Trainer(model, dataset, max_steps=3, out_dir=None)
    assert trainer.config.max_steps == 3
    with pytest.raises(ValueError, match="unknown key 'max_stepz'"):
        Trainer(model, dataset, max_stepz=3)
    with pytest.raises(TypeError, match="dataset must be text"):
        Trainer(model, 42)
    with pytest.raises(TypeError, match="config must be a TrainerConfig"):
        Trainer(model, dataset, config={"max_steps": 3})
    small = tiny_model(5)
    with pytest.raises(ValueError, match=rf"has {dataset.vocab_size} token ids .* vocab_size is 5"):
        Trainer(small, dataset)
    short = tiny_model(dataset.vocab_size, block_size=8)
    with pytest.raises(ValueError, match="blocks of 16 tokens .* block_size is 8"):
        Trainer(short, dataset)
    with pytest.raises(TypeError, match="callback"):
        Trainer(model, dataset, callbacks=[object()])


def test_refuses_to_clobber_another_run(tmp_path, dataset):
    cfg = quiet(max_steps=2, out_dir=str(tmp_path), eval_interval=0)
    Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg).train()
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg).train()
    cfg2 = cfg.replace(overwrite=True, max_steps=1)
    Trainer(tiny_model(dataset.vocab_size), dataset, config=cfg2).train()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001"]
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 1


def test_divergence_is_an_error_of_its_own_carrying_the_step_and_the_checkpoint(tmp_path, dataset):
    cfg = quiet(max_steps=10, save_interval=2, out_dir=str(tmp_path), eval_interval=0, keep_last=5)
    model = tiny_model(dataset.vocab_size)
    with pytest.raises(DivergenceError) as info:
        Trainer(model, dataset, config=cfg, callbacks=[poison_after(3)]).train()
    error = info.value
    assert isinstance(error, FloatingPointError)  # code that caught FloatingPointError still does
    assert error.step == 4 and error.reason.startswith("the training loss is nan")
    assert error.checkpoint == tmp_path / "checkpoints" / "step-00000002"
    with pytest.raises(DivergenceError) as info:
        Trainer(tiny_model(dataset.vocab_size), dataset, config=quiet(),
                callbacks=[poison_after(1)]).train()  # fmt: skip
    assert info.value.step == 2 and info.value.checkpoint is None  # out_dir=None: no checkpoint


class CallableWithParameters:
    """Enough for the old Trainer (callable, parameters()), not the protocol: no modes, no state."""

    def __call__(self, x, y):
        raise AssertionError("never called: the Trainer refuses the model first")

    def parameters(self):
        return iter(())


def test_the_model_protocol_is_checked_once_and_names_what_is_missing(dataset):
    assert isinstance(tiny_model(dataset.vocab_size), TrainableModel)
    assert not isinstance(CallableWithParameters(), TrainableModel)
    missing = "named_parameters, train, eval, to, state_dict, load_state_dict, training"
    with pytest.raises(TypeError, match=f"got CallableWithParameters, which lacks {missing}$"):
        Trainer(CallableWithParameters(), dataset)
    with pytest.raises(TypeError, match="model must be callable as model\\(x, y\\)"):
        Trainer(object(), dataset)
