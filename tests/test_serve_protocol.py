"""The server's pieces that need no HTTP: streaming text (whole characters, stop strings), chat
formats, and the checks of OpenAI request fields (book chapter 14)."""

import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minroots.serve.chat_format import (
    PlainChatFormat,
    TemplateChatFormat,
    load_chat_format,
)
from minroots.serve.protocol import APIError, chat_chunk, parse_json, parse_request, sse
from minroots.serve.text import TextStream
from minroots.tokenizers import BPETokenizer, CharTokenizer

BYTES = BPETokenizer()  # byte-level: token i is the byte i, so "é" is two tokens


def _pieces(text: str, stop=()):
    """Stream ``text`` one byte-token at a time: (pieces sent, stopped, final flush)."""
    stream = TextStream(BYTES.decode, stop)
    pieces, stopped = [], False
    for b in text.encode("utf-8"):
        piece, stopped = stream.push(b)
        pieces.append(piece)
        if stopped:
            break
    return pieces, stopped, stream.flush()


def _reference(text: str, stop) -> tuple[str, bool]:
    """The text up to the first stop string, found as soon as it is complete."""
    for end in range(1, len(text) + 1):
        found = [text[:end].find(s) for s in stop if s and s in text[:end]]
        if found:
            return text[: min(found)], True
    return text, False


def test_a_character_split_across_tokens_is_sent_whole():
    pieces, stopped, rest = _pieces("né!")  # n, then C3 A9, then !
    assert pieces == ["n", "", "é", "!"] and not stopped and rest == ""


def test_stop_strings_are_held_back_then_cut_off():
    pieces, stopped, _ = _pieces("abcENDx", stop=["END"])
    assert pieces == ["a", "b", "c", "", "", ""] and stopped
    pieces, stopped, rest = _pieces("abcEN", stop=["END"])  # a partial stop at the end: sent
    assert "".join(pieces) == "abc" and not stopped and rest == "EN"


@given(st.text(st.characters(blacklist_characters="\ufffd", blacklist_categories=("Cs",)),
               max_size=30),
       st.lists(st.text(st.sampled_from("ab\né"), min_size=1, max_size=3), max_size=3))  # fmt: skip
def test_streamed_text_is_the_text_up_to_the_first_stop_never_half_a_character(text, stop):
    pieces, stopped, rest = _pieces(text, stop)
    expected, expect_stop = _reference(text, stop)
    assert "".join(pieces) + rest == expected and stopped == expect_stop
    assert all("\ufffd" not in p for p in pieces)


# --- chat formats -------------------------------------------------------------------------------
CHARS = CharTokenizer.from_text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:!?., \n")


def test_plain_chat_format_is_a_play_script():
    fmt = PlainChatFormat(CHARS)
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "name": "Romeo", "content": " Good morrow! \n"},
                {"role": "assistant", "content": "Good morrow."},
                {"role": "user", "content": "How now?"}]  # fmt: skip
    text = ("SYSTEM:\nBe brief.\n\nROMEO:\nGood morrow!\n\nASSISTANT:\nGood morrow.\n\n"
            "USER:\nHow now?\n\nASSISTANT:\n")  # fmt: skip
    assert fmt.render(messages) == text
    assert CHARS.decode(fmt.prompt_ids(messages)) == text
    assert fmt.stop == ("\n\n",) and fmt.stop_ids == ()


class _FakeTemplate:
    """What minroots.chat.template.ChatTemplate offers the server (issue 15's interface)."""

    stop_ids = [7]

    def __init__(self):
        self.calls = []

    def render(self, messages, *, add_generation_prompt=False, mask="assistant"):
        self.calls.append((messages, add_generation_prompt))
        return [1, 2, 3], [False, False, False]

    def decode_reply(self, ids):
        return "<" + ",".join(map(str, ids)) + ">"


def test_a_chat_template_renders_with_the_generation_prompt_and_decodes_replies():
    template = _FakeTemplate()
    fmt = TemplateChatFormat(template)
    messages = [{"role": "user", "content": "hi", "name": "x"}]
    assert fmt.prompt_ids(messages) == [1, 2, 3] and fmt.stop_ids == (7,)
    assert template.calls == [(messages, True)]
    assert fmt.decode([4, 5]) == "<4,5>" and fmt.stop == ()  # no tokenizer: the template's
    assert TemplateChatFormat(template, CHARS).decode(CHARS.encode("Hi")) == "Hi"


def test_load_chat_format_uses_the_checkpoints_template_or_falls_back(monkeypatch, tmp_path):
    template = _FakeTemplate()
    module = types.ModuleType("minroots.chat.template")

    class ChatTemplate:
        @classmethod
        def load(cls, folder):
            return template if folder == str(tmp_path / "chat") else None

    module.ChatTemplate = ChatTemplate
    monkeypatch.setitem(sys.modules, "minroots.chat", types.ModuleType("minroots.chat"))
    monkeypatch.setitem(sys.modules, "minroots.chat.template", module)
    fmt = load_chat_format(tmp_path / "chat", CHARS)
    assert (
        isinstance(fmt, TemplateChatFormat) and fmt.template is template and fmt.tokenizer is CHARS
    )
    assert isinstance(load_chat_format(tmp_path / "plain", CHARS), PlainChatFormat)
    monkeypatch.setitem(sys.modules, "minroots.chat", None)  # a minroots without chat templates
    monkeypatch.setitem(sys.modules, "minroots.chat.template", None)
    assert isinstance(load_chat_format(tmp_path / "chat", CHARS), PlainChatFormat)


# --- request fields -----------------------------------------------------------------------------
def _parse(body, chat=True, cap=100, max_n=4):
    return parse_request(body, chat=chat, max_tokens_cap=cap, max_n=max_n)


MESSAGES = [{"role": "user", "content": "hi"}]


def test_defaults_follow_openai():
    chat = _parse({"messages": MESSAGES})
    assert (chat.max_tokens, chat.temperature, chat.top_p, chat.top_k, chat.n) == (
        100,
        1.0,
        None,
        None,
        1,
    )
    assert not chat.stream and chat.stop == () and not chat.stop_given
    completion = _parse({"prompt": "x"}, chat=False)
    assert completion.max_tokens == 16 and completion.prompts == ["x"]


def test_accepted_forms_of_prompt_messages_stop_and_neutral_fields():
    assert _parse({"prompt": ["a", [1, 2]]}, chat=False).prompts == ["a", [1, 2]]
    assert _parse({"prompt": [3, 4]}, chat=False).prompts == [[3, 4]]
    parts = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert _parse({"messages": parts}).messages == [{"role": "user", "content": "ab"}]
    assert _parse({"messages": MESSAGES, "stop": "\n"}).stop == ("\n",)
    req = _parse({"messages": MESSAGES, "top_k": -1, "top_p": 1, "presence_penalty": 0.0,
                  "logprobs": False, "user": "me", "max_completion_tokens": 5, "seed": 3,
                  "stream": True, "stream_options": {"include_usage": True}})  # fmt: skip
    assert (req.top_k, req.top_p, req.max_tokens, req.seed, req.include_usage) == (
        None,
        None,
        5,
        3,
        True,
    )


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"messages": MESSAGES, "max_tokens": "8"}, "max_tokens", "must be an integer >= 1, got '8'"),
        ({"messages": MESSAGES, "max_tokens": True}, "max_tokens", "must be an integer"),
        ({"messages": MESSAGES, "max_tokens": 101}, "max_tokens", "<= 100"),
        ({"messages": MESSAGES, "temperature": 2.5}, "temperature", "<= 2"),
        ({"messages": MESSAGES, "top_p": 0}, "top_p", "> 0"),
        ({"messages": MESSAGES, "n": 5}, "n", "<= 4"),
        ({"messages": MESSAGES, "seed": -1}, "seed", ">= 0"),
        ({"messages": MESSAGES, "stream": "yes"}, "stream", "true or false"),
        ({"messages": MESSAGES, "stop": ["a"] * 5}, "stop", "at most 4"),
        ({"messages": MESSAGES, "stop": 3}, "stop", "a string or a list"),
        ({"messages": MESSAGES, "frequency_penalty": 0.5}, "frequency_penalty", "not supported"),
        ({"messages": MESSAGES, "temprature": 1}, "temprature", "unrecognized"),
        ({"messages": MESSAGES, "stream_options": {"include_usage": True}}, "stream_options", "stream=true"),
        ({"messages": []}, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "one of"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content", "string or a list"),
        ({"messages": MESSAGES, "model": 3}, "model", "must be a string"),
    ],
)  # fmt: skip
def test_a_bad_field_is_a_400_naming_it(body, param, words):
    with pytest.raises(APIError) as info:
        _parse(body)
    error = info.value
    assert error.status == 400 and error.param == param and words in error.message
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_a_bad_completions_prompt_and_a_bad_body_are_400s():
    for prompt in [None, [], [1, "a"], [[1], 2], {"a": 1}, [True]]:
        with pytest.raises(APIError, match="prompt must be") as info:
            _parse({"prompt": prompt}, chat=False)
        assert info.value.status == 400
    for raw in [b"{bad", b"[1, 2]", b"\xff"]:
        with pytest.raises(APIError) as info:
            parse_json(raw)
        assert info.value.status == 400


def test_a_stream_chunk_is_one_server_sent_event_in_utf8():
    event = sse(chat_chunk("id", 1, "m", 0, {"content": "é"}))
    assert event.startswith(b"data: {") and event.endswith(b"}\n\n")
    assert "é".encode() in event and event.count(b"\n\n") == 1


def test_the_commands_have_help_and_one_line_errors(capsys, tmp_path):
    from minroots.cli import main

    for command in ("serve", "quantize"):
        assert main([command, "--help"]) == 0
        assert f"usage: minroots {command}" in capsys.readouterr().out
    assert main(["serve", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minroots: error:") and "does not exist" in err and "\n" not in err
