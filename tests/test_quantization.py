"""Weight-only quantization (book chapter 14): the rounding bound on every weight and output, int4
packing, the quantized layer against the float one, saving and loading, memory that really
falls, and ``minroots quantize`` feeding ``generate`` and ``eval perplexity``."""

import gc
import json
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minroots import TransformerModel, manual_seed
from minroots.autograd import Tensor, no_grad
from minroots.cli import main
from minroots.generation import generate
from minroots.nn import Linear
from minroots.nn.quantized import (
    QuantizedLinear,
    dequantize,
    pack_int4,
    quantize_int4,
    quantize_int8,
    quantize_model,
    quantized_nbytes,
    unpack_int4,
)
from minroots.serve import Engine, SamplingParams, Sequence
from minroots.training.checkpoint import load_model
from minroots.training.integrity import CheckpointWarning
from tests.serve_helpers import save_checkpoint

# weights as trained models have them: zero, or between 1e-6 and 4 in size
SIZES = st.floats(1e-6, 4)
WEIGHTS = arrays(np.float64, st.tuples(st.integers(1, 5), st.sampled_from([8, 32, 64])),
                 elements=st.just(0.0) | SIZES | SIZES.map(lambda v: -v))  # fmt: skip


@given(WEIGHTS)
def test_int8_moves_each_weight_by_at_most_half_a_step(w):
    q, s = quantize_int8(w)
    assert q.dtype == np.int8 and s.dtype == np.float32 and s.shape == (w.shape[0],)
    err = np.abs(dequantize(q, s, 8, dtype=np.float64) - w)
    assert np.all(err <= s[:, None] / 2 * (1 + 1e-6) + 1e-12), (err.max(), s)
    big = np.abs(w).max(axis=1) > 0
    assert np.all(np.abs(q).max(axis=1)[big] == 127)  # the largest weight of a row is +-127


@given(WEIGHTS, st.sampled_from([2, 8]))
def test_int4_moves_each_weight_by_at_most_half_its_groups_step(w, group):
    packed, s = quantize_int4(w, group)
    assert packed.dtype == np.uint8 and packed.shape == (w.shape[0], w.shape[1] // 2)
    assert s.shape == (w.shape[0], w.shape[1] // group)
    err = np.abs(dequantize(packed, s, 4, group, np.float64) - w)
    step = np.repeat(s, group, axis=1)
    assert np.all(err <= step / 2 * (1 + 1e-6) + 1e-12), (err.max(), s)
    assert np.abs(unpack_int4(packed)).max() <= 7


def test_every_pair_of_int4_values_packs_into_one_byte_and_back():
    q = np.array([[a, b] for a in range(-8, 8) for b in range(-8, 8)], dtype=np.int8)  # (256, 2)
    packed = pack_int4(q)
    assert packed.shape == (256, 1) and len(set(packed[:, 0].tolist())) == 256
    np.testing.assert_array_equal(unpack_int4(packed), q)


def test_hand_checked_example():
    q, s = quantize_int8(np.array([[0.5, -1.0, 0.25]]))
    assert q.tolist() == [[64, -127, 32]] and s[0] == np.float32(1 / 127)
    packed, s4 = quantize_int4(np.array([[-1.0, 3 / 7]]), group_size=2)  # q = [-7, 3]
    assert packed.tolist() == [[0xB1]] and s4[0, 0] == np.float32(1 / 7)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_linear_is_the_float_layer_with_rounded_weights(bits):
    manual_seed(1)
    lin = Linear(64, 40).to(dtype="float64")
    lin.bias.data[...] = np.linspace(-1, 1, 40)
    q = QuantizedLinear.from_linear(lin, bits, group_size=16 if bits == 4 else None)
    q.block_rows = 7  # several blocks, the last one short
    x = Tensor(np.random.default_rng(0).standard_normal((3, 5, 64)), requires_grad=True)
    w_hat = q.weight_rows(0, 40, np.float64)
    y = q(x)
    np.testing.assert_allclose(y.data, x.data @ w_hat.T + lin.bias.data, rtol=0, atol=1e-12)
    # the bound: |y - y_hat| <= sum over groups of s/2 * sum |x| in the group
    g = 64 if bits == 8 else 16
    s = q.scales.reshape(40, -1).astype(np.float64)  # (out, G)
    xg = np.abs(x.data).reshape(3, 5, 64 // g, g).sum(-1)  # (3, 5, G)
    bound = (xg[..., None, :] * s / 2).sum(-1)  # (3, 5, out)
    assert np.all(np.abs(y.data - lin(x).data) <= bound * (1 + 1e-6))
    y.sum().backward()  # the gradient reaches the input through the rounded weights
    np.testing.assert_allclose(x.grad, np.broadcast_to(w_hat.sum(0), x.shape), atol=1e-12)
    with no_grad():
        assert not q(x).requires_grad


def _model(seed=0, **kw):
    manual_seed(seed)
    cfg = dict(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=64) | kw
    return TransformerModel(**cfg)


@pytest.mark.parametrize("bits", [8, 4])
def test_a_quantized_model_saves_and_loads_back_the_same(tmp_path, bits):
    model = quantize_model(_model(), bits)
    assert model.quantization["modules"] == [
        f"h.{i}.{m}"
        for i in range(2)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    ]
    assert model.lm_head.weight is model.wte.weight  # the tied output layer stays float
    model.save(tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["quantization"]["bits"] == bits
    back = TransformerModel.load(tmp_path / "q")
    layer = back.h[1].mlp.c_fc
    assert isinstance(layer, QuantizedLinear) and layer.qweight.dtype == (
        np.int8 if bits == 8 else np.uint8
    )
    ids = np.array([[1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(back(ids)[0].data, model(ids)[0].data)
    single = tmp_path / "one.safetensors"  # the one-file form keeps it in the metadata
    model.save(single)
    np.testing.assert_array_equal(TransformerModel.load(single)(ids)[0].data, model(ids)[0].data)


def test_decoding_a_quantized_model_batched_equals_alone():
    model = quantize_model(_model(), 4).eval()
    prompts, seqs = [[1, 2], [3, 4, 5, 6], [7]], []
    engine = Engine(model, max_batch=3)
    for i, p in enumerate(prompts):
        seqs.append(Sequence(p, SamplingParams(10, 0.9, seed=i)))
        engine.submit(seqs[-1])
    while not engine.idle:
        engine.step()
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        assert (
            s.tokens == generate(model, np.array(p), 10, temperature=0.9, seed=i)[len(p) :].tolist()
        )


def _held_bytes(make) -> int:
    """Bytes of memory still held (tracemalloc) by what ``make()`` returns."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = make()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del obj
    return held


def test_resident_weight_memory_really_falls(tmp_path):
    big = dict(n_embd=256, n_layer=2, n_head=4)
    for bits in (32, 8, 4):
        model = _model(**big)
        if bits < 32:
            quantize_model(model, bits)
        model.save(tmp_path / str(bits))
    held = {
        b: _held_bytes(lambda b=b: TransformerModel.load(tmp_path / str(b))) for b in (32, 8, 4)
    }
    exact = {b: quantized_nbytes(TransformerModel.load(tmp_path / str(b))) for b in (32, 8, 4)}
    assert exact[8] < 0.3 * exact[32] and exact[4] < 0.18 * exact[32], exact
    for b in (32, 8, 4):  # what the loaded model holds is its arrays, not a float copy
        assert exact[b] <= held[b] < exact[b] + 200_000, (b, held[b], exact[b])


def test_the_forward_never_holds_the_whole_float_matrix():
    manual_seed(0)
    q = QuantizedLinear.from_linear(Linear(256, 2048), 8)  # 2 MiB in float32
    x = Tensor(np.ones((1, 256), dtype=np.float32))
    with no_grad():
        gc.collect()
        tracemalloc.start()
        try:
            q(x)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 256 * 2048 * 4 / 4, peak  # a block of rows at a time


# --- the command line ---------------------------------------------------------------------------
@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_checkpoint(tmp_path / "ckpt", n_embd=64, n_layer=2, tie_weights=False)
    text = tmp_path / "held_out.txt"
    text.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 3)
    return tmp_path / "ckpt", text


def test_quantize_then_generate_and_eval_perplexity(checkpoint, capsys):
    folder, text = checkpoint
    ppl = {}
    for bits in (32, 8, 4):
        ckpt = folder
        if bits < 32:
            ckpt = folder.parent / f"int{bits}"
            assert main(["quantize", "--checkpoint", str(folder), "--bits", str(bits),
                         "--group-size", "16", "--out", str(ckpt)]) == 0  # fmt: skip
            out = capsys.readouterr().out
            assert f"quantized 8 linear layers to int{bits}" in out
            assert (ckpt / "tokenizer.json").is_file() and not (ckpt / "optimizer.json").exists()
        assert main(["eval", "perplexity", "--checkpoint", str(ckpt), "--input", str(text),
                     "--json"]) == 0  # fmt: skip
        ppl[bits] = json.loads(capsys.readouterr().out)["perplexity"]
        assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "ROMEO:",
                     "--max-new-tokens", "10", "--seed", "0"]) == 0  # fmt: skip
        assert capsys.readouterr().out.startswith("ROMEO:")
    assert ppl[8] == pytest.approx(ppl[32], rel=2e-3) and ppl[4] == pytest.approx(ppl[32], rel=5e-2)
    assert load_model(folder.parent / "int4").quantization["group_size"] == 16


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--bits", "4", "--group-size", "48"], "group_size must be even and divide in_features=64"),
        (["--bits", "3"], "invalid choice: 3"),
        (["--bits", "8", "--out", "ckpt"], "--out: must be a new folder"),
    ],
)  # fmt: skip
def test_quantize_errors_are_one_line(checkpoint, capsys, extra, expected):
    folder, _ = checkpoint
    argv = ["quantize", "--checkpoint", str(folder), "--out", "q", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minroots: error:") and "\n" not in err and expected in err, err


def test_a_quantized_checkpoint_is_verified_like_any_other(checkpoint, capsys):
    """The new folder gets a manifest of its own files; a flipped bit in its weights is then a
    one-line error naming the file (issue 13), not a model with other weights."""
    folder, _ = checkpoint
    out = folder.parent / "int8"
    assert main(["quantize", "--checkpoint", str(folder), "--bits", "8", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        p.name for p in out.iterdir() if p.name != "manifest.json"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # verified, not "cannot be checked"
        assert load_model(out).quantization["bits"] == 8
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x10  # one bit of the last tensor's data
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out), "--prompt", "ROMEO:"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minroots: error:") and "\n" not in err, err
    assert "model.safetensors" in err and "checksum" in err, err


def test_a_quantized_checkpoint_is_served(checkpoint):
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    import urllib.request

    from minroots.serve.app import BackgroundServer, ServeConfig, create_app
    from minroots.training.checkpoint import load_tokenizer

    folder, _ = checkpoint
    out = folder.parent / "int8"
    assert main(["quantize", "--checkpoint", str(folder), "--bits", "8", "--out", str(out)]) == 0
    model, tok = load_model(out), load_tokenizer(out)
    ids = tok.encode("ROMEO:")
    expected = tok.decode(generate(model, np.array(ids), 12, temperature=0)[len(ids) :].tolist())
    app = create_app(model, tok, ServeConfig(model_name="q"))
    body = json.dumps({"prompt": "ROMEO:", "max_tokens": 12, "temperature": 0}).encode()
    with BackgroundServer(app) as server:
        request = urllib.request.Request(server.url + "/v1/completions", data=body)
        with urllib.request.urlopen(request, timeout=60) as r:
            reply = json.loads(r.read())
    assert reply["choices"][0]["text"] == expected
