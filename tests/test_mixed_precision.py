"""Mixed precision: 16-bit products, float32 master weights, dynamic loss scaling for fp16."""

import sys

import numpy as np
import pytest

import minroots
from minroots import backend as B
from minroots.autograd.autocast import autocast, autocast_dtype
from minroots.data import TextDataset
from minroots.nn import Linear, Parameter, TransformerConfig, TransformerModel
from minroots.training import Trainer, TrainerConfig
from minroots.training.loss_scaling import LossScaler, unscale_gradients
from minroots.training.mixed_precision import MixedPrecision

ml_dtypes = pytest.importorskip("ml_dtypes", reason="bf16 needs ml_dtypes (minroots[bf16])")
BF16 = np.dtype(ml_dtypes.bfloat16)


# --- the loss scale ---------------------------------------------------------------------------
def test_loss_scaler_halves_on_overflow_and_grows_after_a_run_of_good_steps():
    scaler = LossScaler(init_scale=1024.0, growth_interval=3)
    scaler.update(found_inf=True)
    assert scaler.scale == 512.0 and scaler.skipped == 1
    scaler.update(found_inf=False)
    scaler.update(found_inf=False)
    assert scaler.scale == 512.0  # two good steps: not yet
    scaler.update(found_inf=False)
    assert scaler.scale == 1024.0 and scaler.good_steps == 0
    scaler.update(found_inf=False)
    scaler.update(found_inf=True)  # an overflow resets the run of good steps
    assert scaler.scale == 512.0 and scaler.good_steps == 0 and scaler.skipped == 2
    again = LossScaler()
    again.load_state_dict(scaler.state_dict())
    assert again.state_dict() == {"scale": 512.0, "good_steps": 0, "skipped": 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(init_scale=0.0), r"^LossScaler: init_scale must be a finite number > 0, got 0.0$"),
        (
            dict(backoff_factor=1.0),
            r"^LossScaler: backoff_factor must be a finite number > 0 and < 1, got 1.0$",
        ),
        (dict(growth_interval=0), r"^LossScaler: growth_interval must be an integer >= 1, got 0$"),
    ],
)
def test_loss_scaler_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LossScaler(**kwargs)


def test_unscale_divides_every_gradient_and_reports_overflow():
    a, b = Parameter(np.zeros(3, np.float32)), Parameter(np.zeros(2, np.float32))
    a.grad, b.grad = np.array([8.0, 16.0, 4.0], np.float32), np.array([2.0, -8.0], np.float32)
    assert unscale_gradients([a, b], 4.0)
    np.testing.assert_array_equal(a.grad, [2.0, 4.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.5, -2.0])
    b.grad = np.array([np.inf, 1.0], np.float32)
    assert not unscale_gradients([a, b], 2.0)
    b.grad = np.array([np.nan, 1.0], np.float32)
    assert not unscale_gradients([a, b], 2.0)


# --- autocast ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=["fp16", "bf16"])
def test_autocast_linear_rounds_inputs_and_product_and_returns_float32(dtype):
    """Inside autocast, Linear computes round(round(x) round(W)^T + round(b)) and hands it back in
    float32; gradients reach the float32 weights in float32."""
    layer = Linear(8, 5)
    layer.bias.data[...] = np.linspace(-1, 1, 5, dtype=np.float32)
    x = minroots.randn(4, 8, requires_grad=True)
    with autocast(dtype):
        assert autocast_dtype() == dtype
        y = layer(x)
    assert autocast_dtype() is None and y.dtype == np.float32
    r = lambda a: a.astype(dtype)
    expected = (r(x.data) @ r(layer.weight.data).T).astype(np.float32) + r(layer.bias.data)
    np.testing.assert_array_equal(y.data, r(r(expected)).astype(np.float32))
    y.sum().backward()
    assert layer.weight.grad.dtype == np.float32 and x.grad.dtype == np.float32
    np.testing.assert_allclose(layer.bias.grad, np.full(5, 4.0))


def test_fp16_gradients_overflow_where_bf16_ones_do_not():
    """The same large gradient (1e5) through a Linear: infinite in fp16 (max 65504), finite in
    bf16 (float32's exponent range)."""
    for dtype, finite in ((np.float16, False), (BF16, True)):
        layer = Linear(4, 4)
        x = minroots.randn(2, 4)
        with autocast(dtype):
            y = layer(x)
        with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the point
            (y * 1e5).sum().backward()
        assert bool(np.isfinite(layer.weight.grad).all()) is finite, dtype


def test_bf16_without_ml_dtypes_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # as if it were not installed
    with pytest.raises(
        RuntimeError, match=r'^half_dtype: precision="bf16" needs the ml_dtypes package'
    ):
        MixedPrecision("bf16", "cpu")
    assert MixedPrecision("fp16", "cpu").dtype == np.float16  # NumPy has float16 itself
    with pytest.raises(ValueError, match=r"^half_dtype: name must be 'fp16' or 'bf16', got 'fp8'$"):
        B.half_dtype("fp8")


def test_precision_must_be_a_known_format():
    with pytest.raises(ValueError, match=r"^TrainerConfig: precision must be one of 'float32', "):
        TrainerConfig(precision="bfloat16")


# --- training ---------------------------------------------------------------------------------
TEXT = minroots.data.load_corpus("shakespeare")[:20000]


def tiny_run(precision, steps=40, callbacks=(), **changes):
    """The tiny preset's model and data, `steps` AdamW steps; returns (trainer, train losses)."""
    data = TextDataset(TEXT, block_size=32, use_cache=False)
    minroots.manual_seed(0)
    model = TransformerModel(TransformerConfig(vocab_size=data.vocab_size, block_size=32,
                                               n_layer=1, n_head=2, n_embd=32))  # fmt: skip
    cfg = TrainerConfig(max_steps=steps, batch_size=8, lr=3e-3, warmup=5, min_lr=3e-4,
                        log_interval=1, eval_interval=0, out_dir=None, precision=precision,
                        **changes)  # fmt: skip
    trainer = Trainer(model, data, config=cfg, callbacks=callbacks)
    trainer.train()
    return trainer, [r["train_loss"] for r in trainer.history]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_16_bit_run_tracks_the_float32_loss_curve(precision):
    """On the tiny preset (40 steps), every step's training loss of a bf16 (fp16) run lies within
    0.005 (0.001) nats of the float32 run's (measured: 3.3e-4 and 6e-5), and the weights and
    AdamW's moments stay float32."""
    _, reference = tiny_run("float32")
    trainer, curve = tiny_run(precision)
    gap = max(abs(a - b) for a, b in zip(curve, reference, strict=True))
    assert gap < (5e-3 if precision == "bf16" else 1e-3), gap
    assert curve[-1] < curve[0] - 0.5  # it learns
    assert all(p.data.dtype == np.float32 for p in trainer.model.parameters())
    state = next(iter(trainer.optimizer.state.values()))
    assert all(v.dtype == np.float32 for v in state.values() if hasattr(v, "dtype"))


def test_loss_scaling_recovers_from_an_injected_overflow():
    """After step 5 the loss scale is set to 2^30: the fp16 gradients overflow, so the next steps
    are skipped (the weights untouched) and the scale halves each time, until it fits again; the
    skips are in the history and training goes on learning."""
    snapshots = {}

    class Inject:
        def on_step_end(self, trainer, step, logs):
            snapshots[step] = [p.data.copy() for p in trainer.model.parameters()]
            if step == 5:
                trainer.precision.scaler.scale = 2.0**30

    trainer, curve = tiny_run("fp16", steps=40, callbacks=[Inject()])
    skipped = [r["step"] for r in trainer.history if r["skipped"]]
    assert len(skipped) >= 5 and skipped == list(range(6, 6 + len(skipped)))
    assert trainer.precision.scaler.skipped == len(skipped)
    for step in skipped:  # a skipped step leaves every weight as it was
        assert all(np.array_equal(a, b) for a, b in zip(snapshots[step], snapshots[step - 1],
                                                        strict=True))  # fmt: skip
    scales = [r["loss_scale"] for r in trainer.history if r["skipped"]]
    assert scales == [2.0 ** (30 - k) for k in range(1, len(scales) + 1)]
    after = skipped[-1] + 1
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[after], snapshots[after - 1],
                                                         strict=True))  # fmt: skip
    assert curve[-1] < curve[4] - 0.1  # learning again after the skips


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_16_bit_training_on_the_gpu_tracks_float32(precision):
    """On CuPy, the same tiny run in fp16 (and bf16 where this CuPy has bfloat16) tracks the
    float32 GPU run; the master weights stay float32 on the GPU."""
    try:
        B.half_dtype(precision, "cuda")
    except RuntimeError as exc:
        pytest.skip(str(exc))
    _, reference = tiny_run("float32", device="cuda")
    trainer, curve = tiny_run(precision, device="cuda")
    gap = max(abs(a - b) for a, b in zip(curve, reference, strict=True))
    assert gap < (5e-3 if precision == "bf16" else 1e-3), gap
    assert all(
        p.data.dtype == np.float32 and p.device == "cuda" for p in trainer.model.parameters()
    )
