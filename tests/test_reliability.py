"""Hostile files, loose values and unclear messages (issue 13): each case either gives a clear
one-line error raised by minroots itself (never from inside NumPy or a parser) or the correct
result. Checkpoint integrity is in ``tests/test_training_integrity.py``, damaged files in
``tests/test_persistence.py``, the message style of every raise site in
``tests/test_error_messages.py``, the fuzz of the public entry points in ``tests/test_fuzz.py``."""

import json
import math
import time
import traceback
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import minroots
import minroots.nn.functional as F
from minroots import Tensor, generation, metrics
from minroots.cli import main
from minroots.nn import Seq2SeqConfig, TransformerConfig, TransformerModel
from minroots.persistence import load_arrays, save_arrays
from minroots.tokenizers import BPETokenizer, CharTokenizer, load, patterns
from minroots.training.run_config import DataSettings, SampleSettings

ROOT = Path(__file__).resolve().parents[1]


def raised_by_minroots(exc: BaseException) -> bool:
    """The innermost frame of the traceback is minroots' code, not NumPy's or a parser's."""
    return "/minroots/" in traceback.extract_tb(exc.__traceback__)[-1].filename


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("minroots: error: "), err
    return err


# --- hostile tokenizer files ---------------------------------------------------------------------
@pytest.fixture
def tokenizer_file(tmp_path):
    """A small BPE tokenizer saved as JSON, and a function that writes an edited copy."""
    tok = BPETokenizer(special_tokens=["<|endoftext|>"])
    tok.save(tmp_path / "tok.json")
    data = json.loads((tmp_path / "tok.json").read_text())

    def edited(**changes):
        path = tmp_path / "edited.json"
        path.write_text(json.dumps({**data, **changes}))
        return path

    return edited


def test_a_special_token_id_of_three_billion_is_refused_before_allocating(tokenizer_file):
    """A 3 KB file once drove generate to 23.4 GB: the id table was sized by the largest id."""
    path = tokenizer_file(special_tokens={"<|endoftext|>": 3_000_000_000})
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError, match="every id of special_tokens must be an integer in"
        ) as e:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak  # megabytes, not gigabytes
    assert "got 3000000000" in str(e.value) and "edited.json" in str(e.value)


def test_tiktoken_like_gaps_between_ids_stay_allowed():
    ranks = {bytes([b]): b for b in range(256)}
    tok = BPETokenizer.from_tiktoken_ranks(ranks, "gpt2", {"<|a|>": 256, "<|b|>": 276})
    assert tok.encode("<|b|>", allowed_special="all") == [276] and tok.vocab_size == 277


def test_a_split_pattern_from_a_file_cannot_hang_encoding(tokenizer_file, monkeypatch):
    """``(?:a|aa)+$`` backtracks exponentially: a custom pattern runs with a time limit."""
    path = tokenizer_file(pattern_name=None, pattern=r"(?:a|aa)+$|\s")
    tok = load(path)
    monkeypatch.setattr(patterns, "time_limit", lambda n: 0.2)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="split: the pattern must split text in about linear time"):
        tok.encode("a" * 60 + "b")
    assert time.perf_counter() - start < 30
    assert tok.encode("a b") == [97, 32, 98]  # ordinary text still encodes


def test_a_pattern_name_that_is_not_one_is_refused(tokenizer_file):
    with pytest.raises(ValueError, match=r"got 'gpt-4' \(did you mean 'gpt4'\?\)"):
        load(tokenizer_file(pattern_name="gpt-4"))
    with pytest.raises(ValueError, match=r"pattern must be one of 'basic', 'gpt2'.* or a regex"):
        BPETokenizer(pattern="gpt-4")
    assert BPETokenizer(pattern=r"\w+|\s").encode("a b") == [97, 32, 98]  # a regex still works


def test_cli_tokenizer_train_refuses_a_pattern_typo(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world " * 50)
    argv = ["tokenizer", "train", "--input", str(corpus), "--vocab-size", "260", "--out",
            str(tmp_path / "t.json"), "--pattern", "gpt-4", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "got 'gpt-4' (did you mean 'gpt4'?)" in one_line_error(capsys)
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"vocab": 5}, "not a valid 'bpe' tokenizer"),
        ({"vocab": None}, "not a valid 'bpe' tokenizer"),
        ({"special_tokens": {"<|x|>": -1}}, "must be an int >= 0, got -1"),
        ({"merges": [[1, 2, 3]]}, "not a valid 'bpe' tokenizer"),
        (
            {"type": "wordpiece"},
            "type must be one of 'added_tokens', 'bpe', 'char', got 'wordpiece'",
        ),
    ],
)
def test_malformed_tokenizer_files_are_one_line_errors(tokenizer_file, changes, expected):
    with pytest.raises(ValueError, match=expected) as err:
        load(tokenizer_file(**changes))
    assert "\n" not in str(err.value) and "edited.json" in str(err.value)


def test_a_deeply_nested_tokenizer_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"type": "char", "chars": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="deep.json' nests JSON arrays or objects too deeply"):
        load(path)


def test_a_hugging_face_file_with_missing_fields_is_named(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "BPE"}, "pre_tokenizer": {"type": "ByteLevel"}}))
    with pytest.raises(ValueError, match="is not a byte-level BPE tokenizer.json .*'vocab'"):
        BPETokenizer.from_hf_json(path)


# --- model metadata that the file's tensors do not back ------------------------------------------
def test_config_sizes_are_checked_against_the_tensors_before_building(tmp_path):
    """``n_embd=10**6`` in a file's metadata once tried to allocate 10.9 TiB."""
    model = TransformerModel(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)
    weights = tmp_path / "m.safetensors"
    model.save(weights)  # the config is in the file's metadata
    arrays, meta = load_arrays(weights, tied=False)
    config = json.loads(meta["config"])
    for change, expected in [
        ({"n_embd": 10**6}, r"\(vocab_size, n_embd\) must match the shape of wte.weight"),
        ({"block_size": 10**9}, r"\(block_size, n_embd\) must match the shape of wpe.weight"),
        ({"n_layer": 40}, "n_layer must count the 1 blocks h.<i>"),
        ({"n_head": 10**7}, "n_head must not exceed the largest size"),
    ]:
        save_arrays(weights, arrays, {**meta, "config": json.dumps({**config, **change})})
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=expected):
                TransformerModel.load(weights)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 * 2**20, (change, peak)


# --- strict values -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "expected"),
    [
        (lambda: generation.sample_next(np.zeros((1, 5)), temperature=math.nan), ValueError,
         "sample_next: temperature must be a finite number >= 0, got nan"),
        (lambda: generation.sample_next(np.full((1, 5), np.nan)), ValueError,
         r"sample_next: logits must not hold NaN or \+inf, got 5 such values"),
        (lambda: generation.sample_next(np.zeros((1, 5)), top_p=math.nan), ValueError,
         "top_p must be a finite number > 0 and <= 1, got nan"),
        (lambda: metrics.corpus_bleu(["a b"], [["a b"]], smooth_method="floor",
                                     smooth_value=math.nan), ValueError,
         "corpus_bleu: smooth_value must be a finite number >= 0, got nan"),
        (lambda: metrics.BootstrapAggregator(n_samples=10**9), ValueError,
         r"n_samples must be an integer in \[1, 100000\]"),
        (lambda: metrics.BootstrapAggregator(confidence_interval=math.nan), ValueError,
         "confidence_interval must be a finite number >= 0 and <= 1, got nan"),
        (lambda: metrics.corpus_chrf(["a"], [["a"]], char_order=10**9), ValueError,
         r"char_order must be an integer in \[0, 100\]"),
        (lambda: Seq2SeqConfig(bias="no"), TypeError, "bias must be true or false, got 'no'"),
        (lambda: Seq2SeqConfig(share_embeddings="false"), TypeError,
         "share_embeddings must be true or false, got 'false'"),
        (lambda: Seq2SeqConfig(activation="gelu2"), ValueError, "did you mean 'gelu'"),
        (lambda: SampleSettings(temperature=math.nan), ValueError,
         "SampleSettings: temperature must be a finite number >= 0, got nan"),
        (lambda: SampleSettings(top_k="5"), TypeError, "top_k must be an int or None, got '5'"),
        (lambda: DataSettings(val_fraction=1.5), ValueError,
         "DataSettings: val_fraction must be a finite number >= 0 and < 1, got 1.5"),
        (lambda: Tensor(None), TypeError, "Tensor: data must be numbers .*, got None"),
        (lambda: Tensor(["a"]), TypeError, "Tensor: data must be numbers .*, got an array of dtype <U1"),
        (lambda: Tensor(np.array([1, None], dtype=object)), TypeError, "dtype object"),
        (lambda: F.dropout(Tensor([1.0]), math.nan), ValueError, "dropout: p must be a finite"),
        (lambda: F.layer_norm(Tensor([[1.0, 2.0]]), eps=-1.0), ValueError,
         "layer_norm: eps must be a finite number >= 0, got -1.0"),
    ],
)  # fmt: skip
def test_loose_values_are_refused(call, error, expected):
    with pytest.raises(error, match=expected) as err:
        call()
    assert "\n" not in str(err.value) and raised_by_minroots(err.value)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--temperature", "nan"], "argument --temperature: expected a finite number, got nan"),
        (["--temperature", "inf"], "argument --temperature: expected a finite number, got inf"),
        (["--top-p", "nan"], "argument --top-p: expected a finite number, got nan"),
        (["--top-p", "1.5"], "argument --top-p: expected a number > 0 and <= 1, got 1.5"),
    ],
)
def test_cli_sampling_values_must_be_finite(tmp_path, argv, expected, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path), *argv]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rouge", "--bootstrap", "1000000000"],
         r"argument --bootstrap: expected an integer in [0, 100000], got 1000000000"),
        (["bleu", "--smooth-method", "floor", "--smooth-value", "nan"],
         "argument --smooth-value: expected a finite number, got nan"),
        (["chrf", "--char-order", "1000000"], "expected an integer in [0, 100], got 1000000"),
    ],
)  # fmt: skip
def test_cli_counts_are_capped(tmp_path, argv, expected, capsys):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat\n")
    assert main(["eval", argv[0], "--hyp", str(text), "--ref", str(text), *argv[1:]]) == 2
    assert expected in one_line_error(capsys)


# --- the unclear messages of item 7 ------------------------------------------------------------------
UNCLEAR = [
    # (what, call, error, a piece of the message now)
    ("F.softmax of an ndarray (was: 'memoryview' has no attribute 'max')",
     lambda: F.softmax(np.zeros((2, 3)), -1), TypeError, "softmax: a must be a Tensor, got numpy"),
    ("F.log_softmax of an ndarray", lambda: F.log_softmax(np.zeros(3)), TypeError,
     "log_softmax: a must be a Tensor"),
    ("F.gelu of an ndarray", lambda: F.gelu(np.zeros(3)), TypeError, "gelu: x must be a Tensor"),
    ("F.layer_norm of an ndarray", lambda: F.layer_norm(np.zeros((2, 3))), TypeError,
     "layer_norm: x must be a Tensor"),
    ("F.embedding with an ndarray table (was: only integer scalar arrays ...)",
     lambda: F.embedding(np.array([1]), np.zeros((3, 2))), TypeError,
     "embedding: weight must be a Tensor"),
    ("cross-entropy over zero classes (was: cannot reshape array of size 0)",
     lambda: F.cross_entropy(Tensor(np.zeros((2, 0))), np.array([0, 0])), ValueError,
     "cross_entropy: logits must have at least one class on the last axis, got shape (2, 0)"),
    ("layer norm over zero features (was: cannot reshape array of size 0)",
     lambda: F.layer_norm(Tensor(np.zeros((2, 0)))), ValueError,
     "layer_norm: x must have features on its last axis to normalize, got shape (2, 0)"),
    ("sample_next of a 0-d array (was: 'numpy.float64' does not support item assignment)",
     lambda: generation.sample_next(np.float64(1.0)), ValueError,
     "sample_next: logits must have shape (V,) or (B, V) with V >= 1, got shape ()"),
    ("sample_next with V=0 (was: zero-size reduction; or silently id -1)",
     lambda: generation.sample_next(np.zeros((1, 0))), ValueError, "with V >= 1, got shape (1, 0)"),
    ("a ragged list as a Tensor (was: NumPy's 'inhomogeneous shape')",
     lambda: Tensor([[1, 2], [3]]), ValueError,
     "Tensor: data must be a number or nested lists of numbers of one shape, got a ragged list"),
    ("a string power (was: ufunc 'power' not supported)", lambda: Tensor([1.0]) ** "x",
     TypeError, "pow: data must be numbers (bool, int or float), got 'x'"),
    ("CharTokenizer.decode of a float (was: list indices must be integers)",
     lambda: CharTokenizer("ab").decode([0.5]), ValueError,
     "CharTokenizer.decode: ids must be integers in [0, 2), got 0.5"),
    ("CharTokenizer.decode of a str (was: '<=' not supported)",
     lambda: CharTokenizer("ab").decode("ab"), TypeError,
     "CharTokenizer.decode: ids must be a sequence of integer ids, got str"),
    ("BPETokenizer.decode(None) (was: 'NoneType' object is not iterable)",
     lambda: BPETokenizer().decode(None), TypeError, "BPETokenizer.decode: ids must be a sequence"),
    ("transpose with an axis out of range (was: silently the wrong axes)",
     lambda: Tensor(np.zeros((2, 3))).transpose(0, 5), ValueError,
     "transpose: axes must be a permutation of the 2 axes, got (0, 5)"),
    ("swapaxes out of range (was: NumPy's AxisError)",
     lambda: Tensor(np.zeros((2, 3))).swapaxes(0, 3), ValueError,
     "swapaxes: axis must be an integer in [-2, 2) for a tensor with 2 dimensions, got 3"),
    ("squeeze out of range (was: IndexError: tuple index out of range)",
     lambda: Tensor(np.zeros((2, 3))).squeeze(4), ValueError, "squeeze: axis must be an integer"),
    ("integer arrays loaded into float weights (was: silently cast)",
     lambda: TransformerModel(vocab_size=5, block_size=4, n_layer=1, n_embd=4, n_head=1)
     .load_state_dict({k: np.zeros(v.shape, np.int32) for k, v in TransformerModel(
         vocab_size=5, block_size=4, n_layer=1, n_embd=4, n_head=1).state_dict().items()}),
     ValueError, "load_state_dict: wte.weight must be a floating-point array"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "call", "error", "expected"), UNCLEAR, ids=[u[0] for u in UNCLEAR]
)
def test_unclear_messages_are_now_clear(what, call, error, expected):
    with pytest.raises(error) as err:
        call()
    assert expected in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and raised_by_minroots(err.value)


def test_empty_axes_give_correct_results_not_numpy_errors():
    """T=0 or C=0 used to end in NumPy's 'zero-size array to reduction operation' errors."""
    assert F.softmax(Tensor(np.zeros((2, 0))), -1).shape == (2, 0)
    assert F.log_softmax(Tensor(np.zeros((2, 0))), -1).shape == (2, 0)
    model = TransformerModel(vocab_size=5, block_size=4, n_layer=1, n_embd=4, n_head=1)
    logits, _ = model(np.zeros((1, 0), dtype=np.int64))  # no tokens: no logits
    assert logits.shape == (1, 0, 5)
    x = Tensor(np.arange(3.0), requires_grad=True)  # 1-D @ 1-D is the dot product (and its grad)
    (x @ x).backward()
    np.testing.assert_array_equal(x.grad, 2 * np.arange(3.0))


def test_perplexity_beyond_e709_is_infinite_not_an_overflow_error():
    logits = np.array([[[0.0, 800.0]]])  # the target (id 0) is e^-800 likely
    assert metrics.perplexity_from_logits(logits, np.array([[0]])) == math.inf


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "load_toml: '{path}' is a folder, expected a TOML file"),
        (b"[train]\nx = '\xe9'\n", "load_toml: '{path}' is not UTF-8 text (byte 13"),
        (b"[train\n", "load_toml: '{path}' is not valid TOML"),
    ],
    ids=["a folder", "not UTF-8", "not TOML"],
)
def test_cli_config_files_that_cannot_be_read(tmp_path, content, expected, capsys):
    path = tmp_path / "run.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert main(["train", "--config", str(path)]) == 2
    assert expected.format(path=path) in one_line_error(capsys)


def test_the_cli_names_the_file_of_a_damaged_tokenizer(tmp_path, capsys):
    bad = tmp_path / "tok.json"
    bad.write_bytes(b'{"type": "char", "chars": ["a", \xff]}')
    assert main(["train", "--preset", "tiny", f"data.tokenizer={bad}", "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    assert f"{str(bad)!r} is not UTF-8 text" in one_line_error(capsys)


def test_minroots_tensor_still_takes_numbers_and_bools():
    assert Tensor(3).shape == () and Tensor([True, False]).data.dtype == np.bool_
    assert minroots.tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert TransformerConfig().n_embd == 128  # untouched here: issue 14 reworks its checks
