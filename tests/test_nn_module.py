"""``Module``: registration order, parameters, state_dict round trips and clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import minroots
from minroots.nn import (
    Dropout,
    Linear,
    Module,
    ModuleList,
    Parameter,
    Sequential,
    TransformerConfig,
)


class TwoLayer(Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(4, 8)
        self.drop = Dropout(0.5)
        self.fc2 = Linear(8, 2, bias=False)
        self.scale = Parameter(np.ones(2, dtype=np.float32))

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x))) * self.scale


def test_registration_order_and_names():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Dropout", "Linear"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "drop", "fc2"]
    assert m.num_parameters() == 2 + 4 * 8 + 8 + 8 * 2
    assert list(m.state_dict()) == names


def test_shared_parameter_listed_once_but_named_twice():
    a, b = Linear(3, 3), Linear(3, 3)
    b.weight = a.weight
    seq = Sequential(a, b)
    assert len(list(seq.parameters())) == 3  # a.weight, a.bias, b.bias
    assert set(seq.state_dict()) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    assert seq.num_parameters() == 9 + 3 + 3


def test_train_eval_and_dropout():
    m = TwoLayer()
    assert m.training and m.drop.training
    m.eval()
    assert not m.training and not m.drop.training
    x = minroots.randn(5, 4)
    np.testing.assert_array_equal(m(x).data, m(x).data)  # no dropout in eval mode
    assert m.train() is m and m.drop.training


def test_zero_grad_and_backward():
    m = TwoLayer().eval()
    m(minroots.randn(3, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_state_dict_round_trip_in_place():
    m1, m2 = TwoLayer(), TwoLayer()
    ref = m2.fc1.weight.data
    m2.load_state_dict({k: v.copy() for k, v in m1.state_dict().items()})
    assert m2.fc1.weight.data is ref  # loaded in place: optimizers keep their references
    for k, v in m1.state_dict().items():
        np.testing.assert_array_equal(v, m2.state_dict()[k])


def test_load_state_dict_errors_name_the_problem():
    m = TwoLayer()
    sd = dict(m.state_dict())
    sd.pop("fc1.bias")
    sd["extra.weight"] = np.zeros(3)
    with pytest.raises(
        KeyError, match=r"missing keys \['fc1.bias'\].*unexpected keys \['extra.weight'\]"
    ):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["fc1.bias"] and unexpected == ["extra.weight"]
    bad = dict(m.state_dict())
    bad["fc2.weight"] = np.zeros((3, 8))
    with pytest.raises(ValueError, match=r"fc2.weight: checkpoint \(3, 8\), model \(2, 8\)"):
        m.load_state_dict(bad)
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])


def test_to_dtype_keeps_parameter_objects():
    m = TwoLayer()
    p = m.fc1.weight
    m.to(dtype=np.float64)
    assert m.fc1.weight is p and p.dtype == np.float64
    with pytest.raises(ValueError, match="device must be"):
        m.to("tpu")


def test_repr_and_containers():
    m = TwoLayer()
    text = repr(m)
    assert "(fc1): Linear(in_features=4, out_features=8, bias=True)" in text
    assert "(drop): Dropout(p=0.5)" in text
    layers = ModuleList([Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and layers[-1] is layers[2]
    with pytest.raises(IndexError):
        layers[3]
    with pytest.raises(TypeError, match="expected a Module"):
        layers.append(3)
    seq = Sequential(Linear(2, 3), Linear(3, 1))
    assert seq(minroots.randn(4, 2)).shape == (4, 1)


def test_module_before_init_and_missing_attribute():
    class Bad(Module):
        def __init__(self):
            self.fc = Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = TwoLayer().nope


def test_config_dataclass_asdict():
    assert dataclasses.asdict(TransformerConfig())["n_embd"] == 128
