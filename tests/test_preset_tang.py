"""The ``tang`` preset (``minroots/presets/tang.toml``): a char-level GPT on the 300 Tang poems.

Book chapter 7, "Training" (``book/07_training.md``), with the corpus of chapter 6. A shrunken
run end to end (the real one takes minutes): train, report the perplexity, write a poem after a
title and an author, and ``minroots generate`` with a Chinese prompt from the checkpoint.
"""

import pytest

from minroots.cli import load_run_config, main

SMALL = ["max_steps=4", "eval_interval=2", "eval_steps=1", "save_interval=4", "log_interval=0",
         "model.n_layer=1", "model.n_embd=32", "batch_size=4"]  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "cache"))


def test_the_preset_trains_on_the_poems_and_prompts_with_a_title():
    run = load_run_config("tang")
    assert run["data"].corpus == "tang300" and run["data"].tokenizer == "char"
    assert run["data"].val_pieces == 10  # held-out lines from all over the anthology
    assert run["sample"].prompt == "《春望》\n作者：杜甫\n"
    assert run["model"]["block_size"] >= 48  # a title, an author and a quatrain fit


def test_tang_run_end_to_end_and_generate(tmp_path, capsys):
    assert main(["train", "--preset", "tang", "--out", "tang", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "tang300 (29,567 tokens, vocabulary 2578)" in out
    ppl = float(out.split("validation perplexity ")[1].split()[0])
    assert 1 < ppl < 2 * 2578  # four steps: near the uniform 2578, but a number
    sample = out.split("sample:\n")[1]
    assert sample.startswith("《春望》\n作者：杜甫\n") and len(sample) > 20
    argv = ["generate", "--checkpoint", "tang", "--prompt", "《春晓》\n作者：孟浩然\n",
            "--max-new-tokens", "12", "--seed", "0"]  # fmt: skip
    assert main(argv) == 0
    poem = capsys.readouterr().out
    assert (
        poem.startswith("《春晓》\n作者：孟浩然\n")
        and len(poem) == len("《春晓》\n作者：孟浩然\n") + 12 + 1
    )
