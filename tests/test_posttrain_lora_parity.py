"""LoRA against Hugging Face ``peft`` on a tiny model: the same init given the same A, the same
outputs and gradients, the same merged weights and the same count of trainable parameters.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/lora.py`` and
``minroots/posttrain/lora_model.py``. Skipped when ``torch`` or ``peft`` is not installed (the
``parity`` extra).
"""

import numpy as np
import pytest

from minroots import Tensor
from minroots.nn import Linear, Module
from minroots.posttrain.lora import lora_init_bound
from minroots.posttrain.lora_model import apply_lora

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

pytestmark = pytest.mark.parity
RANK, ALPHA = 4, 8.0


class TinyTorch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class Tiny(Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(8, 16, dtype=np.float64)
        self.fc2 = Linear(16, 4, dtype=np.float64)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


@pytest.fixture
def pair():
    """``(peft model, minroots LoRA model)`` with the same base weights and the same A."""
    torch.manual_seed(0)
    theirs = peft.get_peft_model(
        TinyTorch().double(),
        peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["fc1", "fc2"], lora_dropout=0.0),
    )
    base = Tiny()
    for name in ("fc1", "fc2"):
        layer = getattr(theirs.base_model.model, name)
        getattr(base, name).weight.data[...] = layer.base_layer.weight.detach().numpy()
        getattr(base, name).bias.data[...] = layer.base_layer.bias.detach().numpy()
    ours = apply_lora(base, rank=RANK, alpha=ALPHA, targets=["fc1", "fc2"])
    for name, layer in ours.lora_layers().items():
        layer.lora_A.data[...] = _peft_layer(theirs, name).lora_A["default"].weight.detach().numpy()
    return theirs, ours


def _peft_layer(theirs, name):
    return getattr(theirs.base_model.model, name)


def test_same_init_given_the_same_a(pair):
    theirs, ours = pair
    x = np.random.default_rng(0).standard_normal((5, 8))
    base_out = TinyTorch.forward(theirs.base_model.model, torch.tensor(x))  # adapters included
    np.testing.assert_allclose(ours(Tensor(x)).data, base_out.detach().numpy(), rtol=1e-12)
    for name, layer in ours.lora_layers().items():
        theirs_layer = _peft_layer(theirs, name)
        assert (theirs_layer.lora_B["default"].weight == 0).all() and (layer.lora_B.data == 0).all()
        assert theirs_layer.scaling["default"] == layer.scale == ALPHA / RANK
        bound = lora_init_bound(layer.in_features)  # both draw A from U(-1/sqrt(in), 1/sqrt(in))
        assert theirs_layer.lora_A["default"].weight.abs().max().item() <= bound
    trainable, total = theirs.get_nb_trainable_parameters()
    report = ours.trainable_report()
    assert (report["trainable"], report["total"]) == (trainable, total)


def test_same_outputs_and_gradients_with_trained_adapters(pair):
    theirs, ours = pair
    rng = np.random.default_rng(1)
    for name, layer in ours.lora_layers().items():  # B as after some training, the same in both
        b = rng.standard_normal(layer.lora_B.shape)
        layer.lora_B.data[...] = b
        with torch.no_grad():
            _peft_layer(theirs, name).lora_B["default"].weight.copy_(torch.tensor(b))
    x = rng.standard_normal((3, 5, 8))
    g = rng.standard_normal((3, 5, 4))
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    xo = Tensor(x, requires_grad=True)
    out_o = ours(xo)
    np.testing.assert_allclose(out_o.data, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    out_t.backward(torch.tensor(g))
    out_o.backward(g)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    for name, layer in ours.lora_layers().items():
        t = _peft_layer(theirs, name)
        np.testing.assert_allclose(layer.lora_A.grad, t.lora_A["default"].weight.grad.numpy(),
                                   rtol=1e-11, atol=1e-12)  # fmt: skip
        np.testing.assert_allclose(layer.lora_B.grad, t.lora_B["default"].weight.grad.numpy(),
                                   rtol=1e-11, atol=1e-12)  # fmt: skip
        assert layer.weight.grad is None and t.base_layer.weight.grad is None  # frozen in both

    merged = theirs.merge_and_unload()
    ours.merge()
    for name, layer in ours.lora_layers().items():
        np.testing.assert_allclose(layer.weight.data, getattr(merged, name).weight.detach().numpy(),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
