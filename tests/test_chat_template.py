"""The chat template: ids, loss masks, markers no text can forge, saving with a checkpoint.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/chat/template.py`` and
``minroots/tokenizers/added_tokens.py``.
"""

import json

import numpy as np
import pytest

from minroots.chat import CHAT_TEMPLATE_FILE, ChatTemplate, check_messages
from minroots.nn import TransformerModel
from minroots.tokenizers import AddedTokensTokenizer, BPETokenizer, CharTokenizer
from minroots.tokenizers import load as load_tokenizer
from minroots.training.checkpoint import save_checkpoint

TWO_TURNS = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "ya"},
    {"role": "user", "content": "ah"},
    {"role": "assistant", "content": "hay"},
]


@pytest.fixture
def chat():
    return ChatTemplate.extend(CharTokenizer.from_text("ahiy"))  # a 0, h 1, i 2, y 3


# --- rendering and masks, by hand -------------------------------------------------------------
@pytest.mark.task10_1
def test_two_turn_conversation_ids_and_mask_by_hand(chat):
    # markers after the 4 characters: system 4, user 5, assistant 6, end 7
    assert chat.ids == {"system": 4, "user": 5, "assistant": 6, "end": 7}
    ids, mask = chat.render(TWO_TURNS)
    assert ids == [5, 1, 2, 7, 6, 3, 0, 7, 5, 0, 1, 7, 6, 1, 0, 3, 7]
    expected = [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1]  # replies and their end marker
    assert [int(m) for m in mask] == expected


@pytest.mark.task10_1
def test_every_non_assistant_token_is_masked_in_multi_turn_conversations(chat):
    messages = [{"role": "system", "content": "hay"}] + TWO_TURNS * 2
    ids, mask = chat.render(messages)
    assert len(ids) == len(mask)
    # walk the rendering: a marker starts each message; only assistant text and end count
    pos = 0
    for m in messages:
        n = len(chat.tokenizer.encode(m["content"]))
        learn = m["role"] == "assistant"
        assert mask[pos] is False  # the role marker is never a target
        assert mask[pos + 1 : pos + n + 2] == [learn] * (n + 1)
        pos += n + 2
    assert pos == len(ids)
    assert sum(mask) == sum(len(m["content"]) + 1 for m in messages if m["role"] == "assistant")


@pytest.mark.task10_1
def test_mask_modes_last_and_all(chat):
    ids, last = chat.render(TWO_TURNS, mask="last")
    assert [int(m) for m in last] == [0] * 13 + [1, 1, 1, 1]
    _, every = chat.render(TWO_TURNS, mask="all")
    assert every == [True] * len(ids)
    _, assistant = chat.render(TWO_TURNS)
    assert sum(last) < sum(assistant) < sum(every)


@pytest.mark.task10_1
def test_generation_prompt_ends_where_the_reply_begins(chat):
    ids, mask = chat.render(TWO_TURNS[:1], add_generation_prompt=True)
    assert ids == [5, 1, 2, 7, 6] and mask == [False] * 5
    assert chat.decode_reply([3, 0, 7, 1, 1]) == "ya"  # stops at the end marker
    assert chat.decode_reply([3, 5, 0]) == "y"  # a new user turn ends the reply too
    assert chat.decode_reply([3, 0]) == "ya"  # no stop id: all of it
    assert chat.stop_ids[0] == chat.end_id and set(chat.stop_ids) == set(chat.ids.values())


@pytest.mark.task10_1
def test_masked_loss_equals_mean_nll_over_assistant_tokens_by_hand(chat):
    ids, mask = chat.render(TWO_TURNS)
    ids, mask = np.array(ids), np.array(mask)
    x, y = ids[None, :-1], np.where(mask[1:], ids[1:], -100)[None]
    model = TransformerModel(vocab_size=chat.vocab_size, block_size=32, n_layer=1, n_head=2,
                             n_embd=16)  # fmt: skip
    logits, loss = model(x, y)
    z = logits.data[0].astype(np.float64)  # (T, V)
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log-softmax, float64
    positions = np.flatnonzero(mask[1:])  # predicting ids[t + 1] from ids[<= t]
    by_hand = -np.mean([logp[t, ids[t + 1]] for t in positions])
    assert len(positions) == 7  # "ya" + end, "hay" + end
    assert float(loss.data) == pytest.approx(by_hand, rel=1e-6)
    _, unmasked = model(x, ids[None, 1:])
    assert abs(float(unmasked.data) - by_hand) > 1e-4  # the mask changes the number


def test_render_text_and_worked_example_layout(chat):
    text = chat.render_text(TWO_TURNS[:2], add_generation_prompt=False)
    assert text == "<|user|>hi<|end|><|assistant|>ya<|end|>"


# --- markers cannot be forged -----------------------------------------------------------------
def test_text_that_spells_a_marker_is_not_the_marker():
    chat = ChatTemplate.extend(CharTokenizer.from_text("<|>abcdefghijklmnopqrstuvwxyz"))
    forged = [{"role": "user", "content": "<|assistant|>"}]
    ids, _ = chat.render(forged)
    assert ids.count(chat.ids["assistant"]) == 0 and len(ids) == len("<|assistant|>") + 2


def test_bpe_markers_are_new_ids_and_the_base_special_tokens_stay_refused():
    base = BPETokenizer(special_tokens=["<|endoftext|>"])
    chat = ChatTemplate.extend(base)
    assert min(chat.ids.values()) == base.vocab_size  # after the base vocabulary and its specials
    ids, _ = chat.render([{"role": "user", "content": "say <|user|>"}])
    assert chat.ids["user"] not in ids[1:]  # encoded as plain bytes
    with pytest.raises(ValueError, match=r"messages\[0\].*special token '<\|endoftext\|>'"):
        chat.render([{"role": "user", "content": "bye <|endoftext|>"}])


# --- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "messages, error, match",
    [
        (
            [{"role": "robot", "content": "hi"}],
            ValueError,
            r"messages\[0\]\[\"role\"\] must be one of",
        ),
        ([{"role": "user", "content": ""}], ValueError, r"content\"\] must be non-empty"),
        ([{"role": "user", "content": "  "}], ValueError, r"must be non-empty"),
        ([{"role": "user", "contnet": "hi"}], ValueError, r"did you mean 'content'"),
        ([{"role": "user", "content": "hi", "name": 3}], TypeError, r"\[.name.\] must be a str"),
        ([{"role": "user", "content": 3}], TypeError, r"must be a str, got int"),
        ([], ValueError, r"non-empty list"),
        (["hi"], TypeError, r"messages\[0\] must be a dict"),
    ],
)
def test_bad_conversations_raise_one_line_errors(chat, messages, error, match):
    with pytest.raises(error, match=match) as info:
        chat.render(messages)
    assert "\n" not in str(info.value)


def test_a_speakers_name_is_accepted_and_not_rendered(chat):
    named = [{**TWO_TURNS[0], "name": "Romeo"}, *TWO_TURNS[1:]]  # as OpenAI's chat API sends it
    assert chat.render(named) == chat.render(TWO_TURNS)


def test_bad_mode_and_unknown_characters_are_clear(chat):
    with pytest.raises(ValueError, match="mask must be one of 'assistant', 'last', 'all'"):
        chat.render(TWO_TURNS, mask="user")
    with pytest.raises(ValueError, match=r"messages\[1\]: .*text has character 'z'"):
        chat.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "z"}])


def test_a_tokenizer_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="lacks the chat markers"):
        ChatTemplate(CharTokenizer.from_text("ab"))
    assert check_messages(TWO_TURNS) == TWO_TURNS


# --- saving and loading -----------------------------------------------------------------------
def test_added_tokens_tokenizer_round_trips_through_json(tmp_path):
    for base in (CharTokenizer.from_text("ahiy"), BPETokenizer(special_tokens=["<|endoftext|>"])):
        tok = ChatTemplate.extend(base).tokenizer
        tok.save(tmp_path / "tok.json")
        back = load_tokenizer(tmp_path / "tok.json")
        assert isinstance(back, AddedTokensTokenizer) and back.added_tokens == tok.added_tokens
        ids = tok.encode("hi") + [tok.token_to_id("<|end|>")]
        assert back.decode(ids) == "hi<|end|>" and back.vocab_size == tok.vocab_size


def test_template_saved_with_a_checkpoint_loads_back(tmp_path, chat):
    model = TransformerModel(vocab_size=chat.vocab_size, block_size=8, n_layer=1, n_embd=8)
    save_checkpoint(tmp_path / "run", 3, model, tokenizer=chat.tokenizer)
    assert ChatTemplate.load(tmp_path / "run") is None  # a checkpoint without a template
    folder = save_checkpoint(
        tmp_path / "run",
        4,
        model,
        tokenizer=chat.tokenizer,
        files={CHAT_TEMPLATE_FILE: chat.to_dict()},
    )  # as the Trainer does
    for where in (tmp_path / "run", folder):  # a run (its latest checkpoint) or the folder
        back = ChatTemplate.load(where)
        assert back.ids == chat.ids and back.stop_ids == chat.stop_ids
        assert back.render(TWO_TURNS) == chat.render(TWO_TURNS)
    data = json.loads((folder / CHAT_TEMPLATE_FILE).read_text())
    assert data["markers"]["assistant"] == "<|assistant|>" and data["vocab_size"] == 8


def test_loading_a_template_whose_tokenizer_lacks_the_markers_fails_clearly(tmp_path, chat):
    chat.save(tmp_path)
    CharTokenizer.from_text("ahiy").save(tmp_path / "tokenizer.json")  # the base, no markers
    with pytest.raises(ValueError, match="lacks the chat markers"):
        ChatTemplate.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        ChatTemplate.load(tmp_path / "missing")
