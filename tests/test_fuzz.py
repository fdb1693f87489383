"""A fuzz of the public entry points: hostile values in, and either a correct result or a clear
one-line error raised by minroots itself out, never a traceback from inside NumPy (issue 13).

Each test feeds values drawn by hypothesis (``None``, strings, NaN and infinities, huge and
negative integers, ragged lists, arrays of every dtype and of zero size, dicts) to one entry
point. An error must be a ``TypeError``/``ValueError``/``IndexError``/``KeyError`` whose message
is one line in the package's style (``where: ...``, as ``tests/test_error_messages.py`` checks for
every raise site) and whose innermost frame is minroots' code. A result gets a quick sanity check.

Hostile files too: any bytes as a JSON, tokenizer or safetensors file; a saved tokenizer or a
model's config with one field replaced by any JSON value (a clear error, or a tokenizer/model that
still works); and the request bodies of ``minroots serve`` (a 400 naming the field, or a request).
The CI profile (``tests/conftest.py``) keeps the examples few and derandomized (about 5 s in all);
``HYPOTHESIS_PROFILE=thorough`` runs 500 random examples per test (about 30 s).
"""

import json
import math
import re
import traceback

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minroots.nn.functional as F
from minroots import Tensor, generation, metrics, persistence, tokenizers
from minroots.nn import Seq2SeqConfig, TransformerModel
from minroots.tokenizers import BPETokenizer, CharTokenizer
from minroots.training import TrainerConfig
from minroots.training.run_config import DataSettings, SampleSettings

WHERE = re.compile(r"^[^\s:]+(?: [^\s:]+)?: ")
CLEAR = (TypeError, ValueError, IndexError, KeyError, OSError)

numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, math.nan, math.inf, -math.inf, 1e308, -0.0]),
)
arrays = hnp.arrays(
    dtype=st.sampled_from(
        [np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_, np.complex64, "U3", object]
    ),  # fmt: skip
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    # Float arrays hold None as NaN; hypothesis then needs the float width (not elements=None).
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5), st.binary(max_size=5))
hostile = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),  # fmt: skip
    max_leaves=8,
)


def attempt(fn, *args, **kwargs):
    """Call ``fn``; return its result, or ``None`` after checking the error is a clear one."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except CLEAR as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{type(exc).__name__}: {message!r} raised at {frame.filename}:{frame.lineno}"
        assert "/minroots/" in frame.filename, f"not raised by minroots: {where}"
        assert "\n" not in str(message) and WHERE.match(str(message)), f"unclear: {where}"
        return None


@given(hostile)
def test_tensor_of_anything(data):
    t = attempt(Tensor, data)
    if t is not None:
        assert t.data.dtype.kind in "biuf"


@given(hostile, st.one_of(st.integers(-5, 5), hostile))
def test_softmax_of_anything(data, axis):
    t = attempt(Tensor, data)
    if t is None or t.data.dtype.kind != "f":
        return
    y = attempt(F.softmax, t, axis)
    if y is not None and y.data.size and np.isfinite(t.data).all():
        axes = tuple(axis) if isinstance(axis, list) else axis
        np.testing.assert_allclose(y.data.sum(axis=axes), 1.0, rtol=1e-4)


@given(arrays, hostile)
def test_cross_entropy_of_anything(logits, target):
    t = attempt(Tensor, logits)
    if t is not None:
        attempt(F.cross_entropy, t, target)


@given(hostile, hostile, st.one_of(st.none(), hostile), st.one_of(st.none(), hostile))
def test_sample_next_of_anything(logits, temperature, top_k, top_p):
    ids = attempt(generation.sample_next, logits, temperature, top_k, top_p,
                  np.random.default_rng(0))  # fmt: skip
    if ids is not None:
        z = np.asarray(logits, dtype=np.float64)
        assert ids.shape == (1 if z.ndim == 1 else z.shape[0],)
        assert ((0 <= ids) & (ids < z.shape[-1])).all()


@given(hostile, hostile)
def test_perplexity_from_logits_of_anything(logits, targets):
    p = attempt(metrics.perplexity_from_logits, logits, targets)
    if p is not None:
        assert p >= 1.0 or math.isnan(p)


@given(hostile, hostile, st.sampled_from(["exp", "floor", "add-k", "none"]), hostile)
def test_bleu_and_chrf_of_anything(hypotheses, references, method, value):
    attempt(metrics.corpus_bleu, hypotheses, references, smooth_method=method,
            smooth_value=value)  # fmt: skip
    score = attempt(metrics.corpus_chrf, hypotheses, references, char_order=value)
    if score is not None:
        assert 0.0 <= score.score <= 100.0 + 1e-9


@given(hostile)
def test_char_tokenizer_of_anything(value):
    tok = CharTokenizer("abc ")
    text = attempt(tok.decode, value)
    if text is not None:
        assert tok.encode(text) == [int(i) for i in value]
    ids = attempt(tok.encode, value)
    if ids is not None:
        assert tok.decode(ids) == value


@given(
    st.sampled_from([(TrainerConfig, f) for f in ("lr", "max_steps", "betas", "clip_norm",
                                                   "schedule", "device", "debug", "seed")]
                    + [(Seq2SeqConfig, f) for f in ("bias", "n_embd", "positional", "dropout",
                                                    "pad_id", "activation")]
                    + [(SampleSettings, f) for f in ("temperature", "top_k", "top_p", "seed")]
                    + [(DataSettings, f) for f in ("val_fraction", "max_chars", "tokenizer")]),
    hostile,
)  # fmt: skip
def test_configs_refuse_what_the_cli_refuses(cls_field, value):
    cls, field = cls_field
    config = attempt(cls, **{field: value})
    if config is not None:  # accepted: then it is a value of the field's type
        kept = getattr(config, field)
        assert not isinstance(kept, (list, dict, np.ndarray)) or field == "betas"
        if isinstance(kept, float):
            assert math.isfinite(kept) or field in ("clip_norm",) and kept is None


@given(hostile, hostile)
def test_tensor_shape_methods_of_anything(shape, axis):
    x = Tensor(np.arange(6.0).reshape(2, 3))
    r = attempt(x.reshape, shape) if isinstance(shape, (list, tuple)) else None
    if r is not None:
        assert r.data.size == 6
    attempt(x.sum, axis=axis)
    attempt(x.transpose, axis)
    attempt(x.squeeze, axis)


@pytest.fixture(scope="module")
def model():
    return TransformerModel(vocab_size=7, block_size=6, n_layer=1, n_embd=8, n_head=2)


@given(idx=hostile)
def test_model_forward_of_anything(model, idx):
    out = attempt(model, idx)
    if out is not None:
        logits, loss = out
        assert logits.shape[-1] == 7 and loss is None


# --- hostile files: any bytes, or a saved file with one field replaced by any JSON value ---------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.text(max_size=4),
              st.floats(allow_nan=False, allow_infinity=False),
              st.sampled_from([-1, 0, 1, 10**9, 3 * 10**9, 2**63])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
file_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"{", b'{"type": "bpe", ', b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
                               b"\xff" * 8, b"[" * 5000]),
              st.binary(max_size=32)),
)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@given(file_bytes)
def test_loaders_of_any_bytes(folder, data):
    """Damaged or foreign files: a clear error naming the file, never a parser's traceback."""
    for name, load in [("a.json", persistence.read_json), ("tokenizer.json", tokenizers.load),
                       ("model.safetensors", persistence.load_arrays),
                       ("m.safetensors", TransformerModel.load)]:  # fmt: skip
        path = folder / name
        path.write_bytes(data)
        attempt(load, path)


@pytest.fixture(scope="module")
def saved_tokenizers():
    bpe = BPETokenizer(special_tokens=["<|endoftext|>"])
    bpe.train(["hello world, hello there"], vocab_size=260)
    char = CharTokenizer("helo wrd,t")
    return [{"type": t.type_name, **t.to_dict()} for t in (bpe, char)]


@given(st.integers(0, 1), st.data(), json_values)
def test_tokenizer_file_with_a_field_replaced(folder, saved_tokenizers, which, data, value):
    """An edited ``tokenizer.json``: a clear error, or a tokenizer that still round-trips text."""
    saved = dict(saved_tokenizers[which])
    saved[data.draw(st.sampled_from([*saved, "extra"]), label="field")] = value
    path = folder / "edited.json"
    path.write_text(json.dumps(saved))
    tok = attempt(tokenizers.load, path)
    if tok is not None:
        ids = attempt(tok.encode, "hello there")
        if ids is not None:
            assert tok.decode(ids) == "hello there"


@pytest.fixture(scope="module")
def saved_model(model, folder):
    path = folder / "tiny.safetensors"
    model.save(path)
    return persistence.load_arrays(path, tied=False)


@given(st.data(), json_values)
def test_model_config_with_a_field_replaced(folder, saved_model, data, value):
    """A model file whose config was edited: a clear error (sizes checked against the tensors
    before anything is allocated), or a model that runs."""
    arrays, meta = saved_model
    config = json.loads(meta["config"])
    config[data.draw(st.sampled_from([*config, "extra"]), label="field")] = value
    path = folder / "edited.safetensors"
    persistence.save_arrays(path, arrays, {**meta, "config": json.dumps(config)})
    loaded = attempt(TransformerModel.load, path)
    if loaded is not None:
        logits, _ = loaded(np.array([[1, 2, 3]]))
        assert logits.shape == (1, 3, 7) and np.isfinite(logits.data).all()


# --- the HTTP server's request bodies (minroots serve): any JSON in a known field ----------------
@given(st.booleans(), st.data(), json_values)
def test_serve_request_bodies_of_anything(chat, data, value):
    """A request body with one field of any JSON value: a 400 whose message is one line in the
    style and names the field, or a parsed request (as the OpenAI API answers)."""
    from minroots.serve.protocol import _FIELDS, APIError, parse_request

    field = data.draw(st.sampled_from(sorted(_FIELDS[chat]) + ["extra"]), label="field")
    body = {"messages": [{"role": "user", "content": "hi"}]} if chat else {"prompt": "hi"}
    body[field] = value
    try:
        request = parse_request(body, chat=chat, max_tokens_cap=64, max_n=4)
    except APIError as exc:
        assert exc.status == 400 and "\n" not in exc.message and WHERE.match(exc.message), exc
        assert field in exc.message or exc.param == field, exc.message
    else:
        assert 1 <= request.n <= 4 and 1 <= request.max_tokens <= 64


@pytest.fixture(scope="module")
def saved_quantized(folder):
    from minroots.nn.quantized import quantize_model

    model = TransformerModel(vocab_size=7, block_size=6, n_layer=1, n_embd=32, n_head=2)
    quantize_model(model, 4, 16)
    path = folder / "int4.safetensors"
    model.save(path)
    return persistence.load_arrays(path, tied=False)


@given(st.one_of(json_values, st.sampled_from(["{", "[" * 10**5])), st.data())
def test_quantization_settings_of_anything(folder, saved_quantized, value, data):
    """A quantized model file whose settings were edited (replaced, or one field replaced): a
    clear error, or a model that runs."""
    arrays, meta = saved_quantized
    settings = json.loads(meta["quantization"])
    if data.draw(st.booleans(), label="one field"):
        settings[data.draw(st.sampled_from([*settings, "extra"]), label="field")] = value
    else:
        settings = value
    text = settings if isinstance(settings, str) and settings[:1] in "{[" else json.dumps(settings)
    path = folder / "edited-int4.safetensors"
    persistence.save_arrays(path, arrays, {**meta, "quantization": text})
    loaded = attempt(TransformerModel.load, path)
    if loaded is not None:
        logits, _ = loaded(np.array([[1, 2, 3]]))
        assert logits.shape == (1, 3, 7) and np.isfinite(logits.data).all()
