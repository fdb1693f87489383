r"""Weight-only quantization of linear layers: int8 per output channel, int4 in groups (two per
byte), dequantized block by block inside the matrix product.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_quantization.py``.

**Symmetric quantization.** A set of weights :math:`w` (a row of :math:`W`, or a group of
:math:`g` consecutive weights of a row) shares one scale

.. math::  s = \frac{\max_i |w_i|}{q_{\max}}, \qquad q_i = \mathrm{round}(w_i / s) \in
           [-q_{\max}, q_{\max}], \qquad \hat w_i = s\, q_i

with :math:`q_{\max} = 127` for 8 bits and :math:`7` for 4 bits (the largest weight maps to
:math:`\pm q_{\max}` exactly; zero stays zero). Rounding moves each weight by at most half a step:

.. math::  |w_i - \hat w_i| \le \frac{s}{2} = \frac{\max |w|}{2 q_{\max}}

(1/254 of the largest weight of the row for int8, 1/14 of the largest of the group for int4),
so each output of :math:`y = W x` moves by at most

.. math::  |y_j - \hat y_j| = \Bigl|\sum_i (w_{ji} - \hat w_{ji})\, x_i\Bigr|
           \le \sum_{\text{groups } G} \frac{s_{jG}}{2} \sum_{i \in G} |x_i|

**Why groups for 4 bits.** With only 15 levels, one outlier in a row would make the step
:math:`s` large for every other weight of that row; a scale per group of 32 confines it to 32
weights. One float32 scale per 32 weights costs 1 bit per weight: int4 stores 4.5 bits per weight
instead of 32, int8 a little over 8.

**Packing.** Two 4-bit values share a byte: :math:`q + 8 \in [1, 15]`, the even column in the low
nibble, the odd column in the high one. Worked example: :math:`q = [-7, 3]` gives
:math:`[1, 11]` and the byte ``0xB1``.

**Where memory falls.** :class:`QuantizedLinear` keeps only the integers and the scales. Its
forward dequantizes ``block_rows`` output rows at a time into a small float buffer and multiplies
``x`` by that block, so the full float matrix never exists: resident weight memory is the
quantized one plus one block. The time spent dequantizing is the price; the book measures it.
The token embedding (tied to the output layer) and the position table stay in float, as
bitsandbytes and GPTQ leave the output layer by default: every logit depends on it directly.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.autograd import Tensor
from minroots.autograd.tensor import is_grad_enabled
from minroots.nn.linear import Linear
from minroots.nn.module import Module, Parameter
from minroots.validation import integer, one_of, positive_int, shown

__all__ = [
    "quantize_int8",
    "quantize_int4",
    "pack_int4",
    "unpack_int4",
    "dequantize",
    "QuantizedLinear",
    "quantize_model",
    "quantized_nbytes",
]

QMAX = {8: 127, 4: 7}
BLOCK_ELEMENTS = 1 << 16  # float numbers dequantized at once (256 KiB in float32)


# --- the arithmetic -----------------------------------------------------------------------------
def _scales(w, qmax: int, axis: int = -1):
    xp = B.get_array_module(w)
    s = xp.abs(w).max(axis=axis).astype(np.float32) / np.float32(qmax)
    return xp.where(s > 0, s, np.float32(1.0)).astype(np.float32)  # an all-zero set: any scale


def quantize_int8(w):
    """``(q, scales)``: int8 ``(out, in)`` and float32 ``(out,)``, one scale per output row.

    >>> q, s = quantize_int8(np.array([[0.5, -1.0, 0.25]]))
    >>> q.tolist(), s.tolist()
    ([[64, -127, 32]], [0.007874015718698502])
    """
    xp = B.get_array_module(w)
    s = _scales(w, QMAX[8])  # (out,)
    q = xp.clip(xp.rint(w / s[:, None]), -QMAX[8], QMAX[8]).astype(np.int8)
    return q, s


def quantize_int4(w, group_size: int = 32):
    """``(packed, scales)``: uint8 ``(out, in/2)`` (two values a byte) and float32
    ``(out, in/group_size)``, one scale per group of ``group_size`` weights of a row."""
    xp = B.get_array_module(w)
    out, n_in = w.shape
    _check_group(n_in, group_size, "quantize_int4")
    groups = w.reshape(out, n_in // group_size, group_size)  # (out, G, g)
    s = _scales(groups, QMAX[4])  # (out, G)
    q = xp.clip(xp.rint(groups / s[:, :, None]), -QMAX[4], QMAX[4]).astype(np.int8)
    return pack_int4(q.reshape(out, n_in)), s


def _check_group(n_in: int, group_size: int, where: str) -> None:
    positive_int(where, "group_size", group_size)
    if group_size % 2 or n_in % group_size:
        raise ValueError(
            f"{where}: group_size must be even and divide in_features={n_in}, got {group_size}"
        )


def pack_int4(q):
    """int8 values in ``[-8, 7]``, ``(..., 2n)`` -> uint8 ``(..., n)``: the even column in the low
    nibble, the odd one in the high nibble, each stored as ``q + 8``.

    >>> hex(pack_int4(np.array([[-7, 3]], dtype=np.int8))[0, 0])
    '0xb1'
    """
    u = (q.astype(np.int16) + 8).astype(np.uint8)
    return u[..., 0::2] | (u[..., 1::2] << 4)


def unpack_int4(packed):
    """The inverse of :func:`pack_int4`: uint8 ``(..., n)`` -> int8 ``(..., 2n)``.

    >>> unpack_int4(np.array([[0xB1]], dtype=np.uint8)).tolist()
    [[-7, 3]]
    """
    xp = B.get_array_module(packed)
    q = xp.empty(packed.shape[:-1] + (2 * packed.shape[-1],), dtype=np.int8)
    q[..., 0::2] = (packed & 0x0F).astype(np.int8) - 8
    q[..., 1::2] = (packed >> 4).astype(np.int8) - 8
    return q


def dequantize(qweight, scales, bits: int, group_size: int | None = None, dtype=np.float32):
    r"""The float weights :math:`\hat w = s\,q` of (rows of) a quantized matrix."""
    if bits == 8:
        w = qweight.astype(dtype)  # (rows, in): the one float buffer of the block
        w *= scales[:, None].astype(dtype)
        return w
    q = unpack_int4(qweight)  # (rows, in)
    rows, n_in = q.shape
    w = q.reshape(rows, n_in // group_size, group_size).astype(dtype)
    w *= scales[:, :, None].astype(dtype)
    return w.reshape(rows, n_in)


# --- the layer ----------------------------------------------------------------------------------
class QuantizedLinear(Module):
    r"""A :class:`~minroots.nn.Linear` whose weight is stored quantized: :math:`y = x \hat W^\top + b`.

    Built from a trained layer by :meth:`from_linear` (or empty, to be filled by
    ``load_state_dict``). Its state is ``qweight`` (int8 ``(out, in)``, or uint8 ``(out, in/2)``
    for 4 bits), ``scales`` and the float ``bias``. The weight is a constant: gradients flow to
    the input (and the bias), never into the integers.
    """

    def __init__(self, in_features: int, out_features: int, bits: int = 8,
                 group_size: int | None = None, bias: bool = True, dtype=None):  # fmt: skip
        super().__init__()
        where = "QuantizedLinear"
        self.in_features = positive_int(where, "in_features", in_features)
        self.out_features = positive_int(where, "out_features", out_features)
        self.bits = one_of(where, "bits", bits, (8, 4))
        if bits == 4:
            group_size = 32 if group_size is None else group_size
            _check_group(in_features, group_size, where)
        self.group_size = group_size if bits == 4 else None
        xp, dtype = B.xp(), dtype or B.default_dtype()
        if bits == 8:
            self.register_buffer("qweight", xp.zeros((out_features, in_features), dtype=np.int8))
            self.register_buffer("scales", xp.ones(out_features, dtype=np.float32))
        else:
            self.register_buffer(
                "qweight", xp.zeros((out_features, in_features // 2), dtype=np.uint8)
            )
            self.register_buffer("scales", xp.ones((out_features, in_features // group_size),
                                                   dtype=np.float32))  # fmt: skip
        self.bias = Parameter(xp.zeros(out_features, dtype=dtype)) if bias else None
        self.block_rows = max(1, BLOCK_ELEMENTS // in_features)  # output rows dequantized at once

    @classmethod
    def from_linear(cls, linear: Linear, bits: int = 8, group_size: int | None = None):
        """Quantize a trained :class:`~minroots.nn.Linear` (its bias is kept as it is)."""
        w = linear.weight.data
        layer = cls(linear.in_features, linear.out_features, bits, group_size,
                    bias=linear.bias is not None, dtype=w.dtype)  # fmt: skip
        if bits == 8:
            q, s = quantize_int8(w)
        else:
            q, s = quantize_int4(w, layer.group_size)
        layer.register_buffer("qweight", q)
        layer.register_buffer("scales", s)
        if linear.bias is not None:
            layer.bias.data[...] = linear.bias.data
        return layer

    def weight_rows(self, start: int, stop: int, dtype=np.float32):
        """Rows ``start .. stop - 1`` of the dequantized weight, ``(rows, in)``."""
        return dequantize(self.qweight[start:stop], self.scales[start:stop], self.bits,
                          self.group_size, dtype)  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"QuantizedLinear: expected input with last axis in_features={self.in_features}, "
                f"got shape {x.shape}"
            )
        xp = B.get_array_module(x.data)
        lead, n_out = x.shape[:-1], self.out_features
        x2 = x.data.reshape(-1, self.in_features)  # (N, in)
        y = xp.empty((x2.shape[0], n_out), dtype=x2.dtype)  # (N, out)
        for r0 in range(0, n_out, self.block_rows):  # one block of dequantized rows at a time
            r1 = min(r0 + self.block_rows, n_out)
            y[:, r0:r1] = x2 @ self.weight_rows(r0, r1, x2.dtype).T
        if self.bias is not None:
            y += self.bias.data
        if not (is_grad_enabled() and (x.requires_grad or self._bias_grad())):
            return Tensor(y.reshape(*lead, n_out))

        def backward(g):
            g2 = g.reshape(-1, n_out)  # (N, out)
            gx = None
            if x.requires_grad:
                gx = xp.zeros_like(x2)
                for r0 in range(0, n_out, self.block_rows):
                    r1 = min(r0 + self.block_rows, n_out)
                    gx += g2[:, r0:r1] @ self.weight_rows(r0, r1, g2.dtype)
                gx = gx.reshape(x.shape)
            if self.bias is None:
                return (gx,)
            return gx, (g2.sum(axis=0) if self.bias.requires_grad else None)

        parents = (x,) if self.bias is None else (x, self.bias)
        return Tensor._make(y.reshape(*lead, n_out), parents, backward, "quantized_linear")

    def _bias_grad(self) -> bool:
        return self.bias is not None and self.bias.requires_grad

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.bits == 4 else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}{group}, bias={self.bias is not None}")  # fmt: skip


# --- a whole model ------------------------------------------------------------------------------
def quantize_model(model, bits: int, group_size: int | None = None, *, modules=None,
                   empty: bool = False):  # fmt: skip
    """Replace the model's linear layers by :class:`QuantizedLinear` ones, in place; returns it.

    ``modules`` names the layers (default: every :class:`~minroots.nn.Linear` but ``lm_head``,
    the output layer). ``empty=True`` builds the quantized layers without quantizing (their
    integers are loaded next: :func:`minroots.nn.serialization.load_model` does this). The
    settings are kept as ``model.quantization``, which saving writes into ``config.json``.
    """
    one_of("quantize_model", "bits", bits, (8, 4))
    if bits == 4:
        group_size = integer(
            "quantize_model", "group_size", 32 if group_size is None else group_size, low=2
        )
    else:
        group_size = None
    named = dict(model.named_modules())
    if modules is None:
        modules = [n for n, m in named.items() if isinstance(m, Linear) and n != "lm_head"]
    if not isinstance(modules, (list, tuple)) or not all(isinstance(n, str) for n in modules):
        raise TypeError(f"quantize_model: modules must be a list of layer names, got "
                        f"{shown(modules)}")  # fmt: skip
    for name in modules:
        layer = named.get(name)
        if not isinstance(layer, Linear):
            raise ValueError(f"quantize_model: {name!r} is not a Linear layer of this model")
        parent_name, _, attr = name.rpartition(".")
        if empty:
            new = QuantizedLinear(layer.in_features, layer.out_features, bits, group_size,
                                  bias=layer.bias is not None, dtype=layer.weight.data.dtype)  # fmt: skip
        else:
            new = QuantizedLinear.from_linear(layer, bits, group_size)
        setattr(named[parent_name] if parent_name else model, attr, new)
    model.quantization = {"bits": bits, "group_size": group_size, "modules": list(modules)}
    return model


def quantized_nbytes(model) -> int:
    """Bytes held by the model's parameters and buffers, each array once (tied weights too)."""
    seen, total = set(), 0
    for array in model.state_dict().values():
        data = array.data if isinstance(array, Tensor) else array
        if id(data) not in seen:
            seen.add(id(data))
            total += int(data.nbytes)
    return total
