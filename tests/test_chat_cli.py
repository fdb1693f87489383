"""``minroots chat`` driven by piped standard input in a subprocess, and the session underneath:
streaming, /reset, /exit, and the oldest turns dropped to stay within the context.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/cli/chat.py`` and
``minroots/chat/session.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from posttrain_fixtures import conversation_file, pretrained_base

from minroots.chat import ChatSession
from minroots.posttrain.finetune import finetune
from minroots.posttrain.finetune_config import FinetuneSettings
from minroots.training import TrainerConfig
from minroots.training.checkpoint import load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    base = pretrained_base(root / "base")
    data = conversation_file(root / "chats.jsonl")
    train = TrainerConfig(max_steps=20, batch_size=4, lr=3e-3, warmup=2, eval_interval=0,
                          log_interval=0, out_dir=str(root / "ft"))  # fmt: skip
    result = finetune(base, FinetuneSettings(data=str(data), val_fraction=0.25), train,
                      log=lambda s: None)  # fmt: skip
    return {"base": base, "ft": root / "ft", "template": result.template}


def _chat(folder, text, *options, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "minroots", "chat", "--checkpoint", str(folder), "--seed", "0",
         *options],
        input=text, capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip


def test_piped_stdin_replies_resets_and_exits(runs, tmp_path):
    text = "What is gold?\n\nDo you like music?\n/reset\nTell me of the moon.\n/exit\nnot read\n"
    result = _chat(runs["ft"], text, "--max-new-tokens", "24", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    replies = result.stdout.split("\n")
    assert len(replies) == 4 and replies[-1] == ""  # three replies, one line each, nothing else
    assert "you>" not in result.stdout and "assistant>" not in result.stdout  # no tty: no prompts
    assert "minroots chat:" in result.stderr and "(a new conversation)" in result.stderr
    again = _chat(runs["ft"], text, "--max-new-tokens", "24", cwd=tmp_path)
    assert again.stdout == result.stdout  # --seed fixes the sampling
    assert not list(tmp_path.iterdir())  # the command writes no files


def test_piped_chat_drops_the_oldest_turns_and_says_so(runs, tmp_path):
    long = "Tell me of the sea and of the sky, my lord."  # 43 characters: 45 tokens with markers
    result = _chat(runs["ft"], f"{long}\n{long}\n", "--max-new-tokens", "12", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(dropped the " in result.stderr and "64-token context)" in result.stderr
    assert len(result.stdout.split("\n")) == 3


def test_chat_errors_are_one_line(runs, tmp_path):
    result = _chat(runs["base"], "hi\n", cwd=tmp_path)  # pretrained, never fine-tuned
    assert result.returncode == 2
    assert result.stderr.strip().endswith("fine-tune it first, e.g. minroots finetune --checkpoint "
                                          f"{runs['base']} --out runs/chat")  # fmt: skip
    too_long = "My lord, " * 10
    result = _chat(runs["ft"], f"{too_long}\nWhat is gold?\n", cwd=tmp_path)
    assert result.returncode == 0 and "write a shorter one" in result.stderr
    assert len(result.stdout.split("\n")) == 2  # the long message got no reply, the next did


def test_session_streams_pieces_that_join_into_the_reply(runs):
    model = load_model(runs["ft"])
    session = ChatSession(model, runs["template"], max_new_tokens=20, temperature=0)
    pieces = list(session.reply("What is gold?"))
    reply = "".join(pieces)
    if reply.strip():
        assert session.messages[-1] == {"role": "assistant", "content": reply}
    assert len(pieces) <= 20
    session.reset()
    assert session.messages == []
    with pytest.raises(ValueError, match="write a shorter one"):
        session.ask("a" * 200)
    assert session.messages == []  # left as it was


def test_session_keeps_the_system_message_when_dropping(runs):
    model = load_model(runs["ft"])
    session = ChatSession(model, runs["template"], system="Be brief.", max_new_tokens=8)
    for k in range(6):
        session.messages += [{"role": "user", "content": f"question {'abcdef'[k]}"},
                             {"role": "assistant", "content": f"answer {'abcdef'[k]}"}]  # fmt: skip
    dropped = session.ask("And the last one?")
    assert dropped > 0 and session.messages[-1]["content"] == "And the last one?"
    ids = session._rendered()
    assert ids[0] == runs["template"].ids["system"] and len(ids) + 8 <= 64
