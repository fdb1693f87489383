"""Supervised fine-tuning data: conversations from files, masked blocks, packing, what is skipped,
the embedding resize, and the held-out answer loss.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/conversations.py``,
``minroots/posttrain/sft_dataset.py``, ``minroots/posttrain/resize.py`` and
``minroots/posttrain/answer_loss.py``.
"""

import json

import numpy as np
import pytest

from minroots.chat import ChatTemplate
from minroots.nn import TransformerModel
from minroots.posttrain import (
    IGNORE_INDEX,
    SFTDataset,
    load_conversations,
    rows_to_examples,
    split_conversations,
)
from minroots.posttrain.answer_loss import answer_loss
from minroots.posttrain.resize import resize_token_embeddings
from minroots.tokenizers import CharTokenizer

CHARS = "abcdefghijklmnopqrstuvwxyz ?.,!"


@pytest.fixture
def chat():
    return ChatTemplate.extend(CharTokenizer.from_text(CHARS))


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- reading conversations --------------------------------------------------------------------
def test_three_shapes_of_lines_and_bundled_pairs(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [
        {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]},
        {"prompt": "how are you?", "response": "well."},
        {"source": "why?", "target": "because."},
    ])  # fmt: skip
    convs = load_conversations(path)
    assert [len(c.messages) for c in convs] == [3, 2, 2]
    assert convs[1].messages[1] == {"role": "assistant", "content": "well."}
    assert convs[2].origin.endswith("c.jsonl line 3")
    dialogue = load_conversations("dialogue_en")
    assert len(dialogue) == 1210 and dialogue[0].messages[0]["content"] == "What is AI?"


@pytest.mark.parametrize(
    "line, match",
    [
        ("{not json", r"line 2: not valid JSON"),
        ('{"prompt": "a"}', r"line 2: expected \"messages\", \"prompt\" and \"response\""),
        ('{"messages": [{"role": "bot", "content": "a"}]}', r"line 2: .*role\"\] must be one of"),
        ('{"prompt": "a", "response": ""}', r"line 2: .*must be non-empty"),
        ("[1, 2]", r"line 2: expected a JSON object"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        load_conversations(path)
    assert "bad.jsonl" in str(info.value)


def test_split_is_deterministic_and_disjoint():
    convs = load_conversations([(f"q{i}", f"a{i}") for i in range(50)])
    train, held = split_conversations(convs, 0.2, seed=3)
    again = split_conversations(convs, 0.2, seed=3)
    assert len(held) == 10 and len(train) == 40
    assert [c.origin for c in held] == [c.origin for c in again[1]]
    assert not {c.origin for c in train} & {c.origin for c in held}


# --- blocks and masks -------------------------------------------------------------------------
def test_rows_shift_by_one_and_carry_the_mask():
    ((x, y),) = rows_to_examples([([5, 6, 7, 8], [False, True, False, True])], block_size=5)
    assert x.tolist() == [5, 6, 7, 0, 0]
    assert y.tolist() == [6, IGNORE_INDEX, 8, IGNORE_INDEX, IGNORE_INDEX]


def test_each_target_is_the_next_id_where_the_template_masks_in(chat):
    pairs = [("hi", "hello there."), ("how are you?", "well."), ("why?", "because.")]
    ds = SFTDataset(pairs, chat, block_size=40, packing=False)
    assert len(ds) == 3
    for (prompt, reply), (x, y) in zip(pairs, (ds[i] for i in range(3)), strict=True):
        ids, mask = chat.render([{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": reply}])  # fmt: skip
        n = len(ids) - 1
        assert x[:n].tolist() == ids[:-1]
        kept = y[y != IGNORE_INDEX].tolist()
        assert kept == [i for i, m in zip(ids[1:], mask[1:], strict=True) if m]
        assert chat.tokenizer.decode(kept) == reply + "<|end|>"
    assert ds.report["target_tokens"] == sum(len(r) + 1 for _, r in pairs)


def test_packing_keeps_conversations_whole_and_loses_no_target(chat):
    pairs = [(f"q{'?' * k}", "a" * (k + 1)) for k in range(12)]
    pairs = [(p.replace("q", "x"), r) for p, r in pairs]
    packed = SFTDataset(pairs, chat, block_size=48)
    single = SFTDataset(pairs, chat, block_size=48, packing=False)
    assert len(packed) < len(single)
    count = lambda ds: sum(int((ds[i][1] != IGNORE_INDEX).sum()) for i in range(len(ds)))  # noqa: E731
    assert count(packed) == count(single) == packed.report["target_tokens"]
    user = chat.ids["user"]
    for ids, _ in packed.rows:  # every row starts a conversation: none is cut across rows
        assert ids[0] == user and len(ids) <= 49


def test_too_long_is_an_error_naming_the_conversation_and_turn(tmp_path, chat):
    path = _jsonl(tmp_path / "long.jsonl", [{"prompt": "hi", "response": "ok."},
                                            {"prompt": "hi", "response": "a" * 60}])  # fmt: skip
    with pytest.raises(ValueError, match=r"long.jsonl line 2: the conversation is 66 ids long "
                       r"but the context holds 33.*its turn messages\[1\] alone is 62 ids"):  # fmt: skip
        SFTDataset(path, chat, block_size=32)
    skipped = SFTDataset(path, chat, block_size=32, too_long="skip")
    assert skipped.report["skipped_too_long"] == 1 and skipped.report["kept"] == 1
    assert "1 skipped (longer than the context of 33 ids)" in skipped.describe()
    cut = SFTDataset(path, chat, block_size=32, too_long="truncate")
    assert cut.report["truncated"] == 1 and cut.report["kept"] == 2
    assert all(len(ids) <= 33 for ids, _ in cut.rows)


def test_text_the_tokenizer_cannot_encode_is_an_error_or_counted(chat):
    pairs = [("hi", "ok."), ("hi", "NO CAPITALS")]
    with pytest.raises(
        ValueError, match=r"conversations\[1\]: .*character 'N'.*unencodable='skip'"
    ):
        SFTDataset(pairs, chat, block_size=32)
    ds = SFTDataset(pairs, chat, block_size=32, unencodable="skip")
    assert ds.report["skipped_unencodable"] == 1 and len(ds) == 1


def test_nothing_left_and_bad_options_are_clear(chat):
    with pytest.raises(ValueError, match="no conversation is left"):
        SFTDataset([("hi", "X")], chat, block_size=32, unencodable="skip")
    with pytest.raises(ValueError, match="too_long must be one of"):
        SFTDataset([("hi", "ok")], chat, block_size=32, too_long="cut")
    with pytest.raises(TypeError, match="template must be a ChatTemplate"):
        SFTDataset([("hi", "ok")], chat.tokenizer, block_size=32)


# --- resizing the embedding -------------------------------------------------------------------
def test_resize_keeps_old_rows_and_new_tokens_get_at_most_average_mass():
    model = TransformerModel(vocab_size=30, block_size=16, n_layer=1, n_embd=16)
    model.wte.weight.data[:] *= 50  # a "trained" embedding: logits far from zero
    x = np.arange(12)[None] % 30
    before = model(x)[0].data.astype(np.float64)
    resize_token_embeddings(model, 34, noise=0.0)  # exactly the mean
    after = model(x)[0].data.astype(np.float64)
    assert model.lm_head.weight is model.wte.weight and after.shape[-1] == 34
    np.testing.assert_array_equal(after[..., :30], before)  # old logits unchanged
    p = np.exp(after - after.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert (p[..., 30:].sum(-1) <= 4 / 34 + 1e-6).all()  # Jensen: at most k / (V + k)
    with pytest.raises(ValueError, match="new_vocab_size must be an integer >= the current"):
        resize_token_embeddings(model, 10)


def test_resize_noise_makes_the_new_rows_differ():
    model = TransformerModel(vocab_size=10, block_size=8, n_layer=1, n_embd=8)
    resize_token_embeddings(model, 13)
    new = model.wte.weight.data[10:]
    assert len({tuple(r) for r in new.tolist()}) == 3


# --- the answer loss --------------------------------------------------------------------------
def test_answer_loss_weighs_every_target_token_once(chat):
    pairs = [("hi", "a"), ("how are you?", "very well, thank you."), ("why?", "yes.")]
    ds = SFTDataset(pairs, chat, block_size=40, packing=False)
    model = TransformerModel(vocab_size=chat.vocab_size, block_size=40, n_layer=1, n_embd=16)
    total, count = 0.0, 0
    for i in range(len(ds)):
        x, y = ds[i]
        _, loss = model(x[None], y[None])  # a mean over this row's targets
        n = int((y != IGNORE_INDEX).sum())
        total, count = total + float(loss.data) * n, count + n
    for batch_size in (1, 2, 3):
        result = answer_loss(model, ds, batch_size=batch_size)
        assert result["tokens"] == count == ds.report["target_tokens"]
        assert result["loss"] == pytest.approx(total / count, rel=1e-5)
