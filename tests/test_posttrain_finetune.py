"""Fine-tuning a pretrained run into a chat model: the answer loss falls, checkpoints carry the
template, resuming is exact (full and LoRA), ``minroots finetune`` reports and refuses bad input.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/finetune.py``,
``minroots/posttrain/finetune_config.py`` and ``minroots/cli/finetune.py``.
"""

import json
import re

import numpy as np
import pytest
from posttrain_fixtures import conversation_file, pretrained_base

from minroots.chat import ChatTemplate
from minroots.cli import main
from minroots.persistence import load_arrays
from minroots.posttrain.finetune import finetune, load_chat_base
from minroots.posttrain.finetune_config import (
    FinetuneSettings,
    list_finetune_presets,
    load_finetune_config,
)
from minroots.tokenizers import AddedTokensTokenizer
from minroots.training import TrainerConfig
from minroots.training.callbacks import LambdaCallback
from minroots.training.checkpoint import latest_checkpoint, load_model, load_tokenizer
from minroots.training.integrity import write_manifest


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return pretrained_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def chats(tmp_path_factory):
    return conversation_file(tmp_path_factory.mktemp("data") / "chats.jsonl")


def _train(out, steps=4, **changes):
    values = dict(max_steps=steps, batch_size=4, lr=3e-3, warmup=1, min_lr=3e-4, eval_interval=0,
                  log_interval=1, save_interval=2, out_dir=str(out), seed=0)  # fmt: skip
    return TrainerConfig(**{**values, **changes})


def _settings(chats, **changes):
    return FinetuneSettings(**{"data": str(chats), "val_fraction": 0.25, **changes})


def test_fine_tuning_lowers_the_held_out_answer_loss(tmp_path, base, chats):
    result = finetune(base, _settings(chats), _train(tmp_path / "ft", steps=40), log=lambda s: None)
    assert result.after["tokens"] == result.before["tokens"] > 0
    assert result.after["loss"] < result.before["loss"] - 0.3, (result.before, result.after)
    folder = latest_checkpoint(tmp_path / "ft")
    template = ChatTemplate.load(tmp_path / "ft")  # saved with every checkpoint
    assert template.ids == result.template.ids
    assert isinstance(load_tokenizer(folder), AddedTokensTokenizer)
    assert load_model(folder).config.vocab_size == template.vocab_size == 80


def test_load_chat_base_explains_the_resize_and_keeps_old_rows(base):
    model, template, notes = load_chat_base(base)
    old = load_model(base)
    assert model.wte.weight.shape == (80, 32) and old.wte.weight.shape == (76, 32)
    np.testing.assert_array_equal(model.wte.weight.data[:76], old.wte.weight.data)
    assert "grows from 76 to 80 rows" in notes[0] and "<|assistant|>" in notes[0]


def _stop_at(step):
    return LambdaCallback(on_step_end=lambda trainer, s, logs: s == step)


@pytest.mark.parametrize("lora_rank", [None, 2])
def test_resume_continues_exactly(tmp_path, base, chats, lora_rank):
    settings = _settings(chats, lora_rank=lora_rank)
    quiet = {"log": lambda s: None}
    straight = finetune(base, settings, _train(tmp_path / "a"), **quiet)
    finetune(base, settings, _train(tmp_path / "b"), callbacks=[_stop_at(2)], **quiet)
    assert latest_checkpoint(tmp_path / "b").name == "step-00000002"
    resumed = finetune(base, settings, _train(tmp_path / "b"), resume=True, **quiet)
    assert resumed.trainer.step == 4
    a, b = latest_checkpoint(tmp_path / "a"), latest_checkpoint(tmp_path / "b")
    names = ["model.safetensors"] + (["adapter.safetensors"] if lora_rank else [])
    for name in names:
        wa, wb = load_arrays(a / name)[0], load_arrays(b / name)[0]
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{name}: {k}")
    assert straight.after == resumed.after  # the same held-out answer loss, to the last bit
    history = [
        json.loads(line)
        for line in (tmp_path / "a" / "history.jsonl").read_text().split("\n")
        if line
    ]
    again = [
        json.loads(line)
        for line in (tmp_path / "b" / "history.jsonl").read_text().split("\n")
        if line
    ]
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in again]


def test_lora_checkpoint_loads_as_the_merged_model(tmp_path, base, chats):
    result = finetune(base, _settings(chats, lora_rank=4), _train(tmp_path / "lora"),
                      log=lambda s: None)  # fmt: skip
    folder = latest_checkpoint(tmp_path / "lora")
    merged = load_model(folder)  # a plain TransformerModel: generate / chat / serve load it
    x = np.arange(20)[None] % 76
    expected = result.model(x)[0].data
    np.testing.assert_allclose(merged(x)[0].data, expected, rtol=1e-4, atol=1e-5)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["rank"] == 4 and config["layers"] == ["h.0.attn.c_attn", "h.0.attn.c_proj",
                                                         "h.0.mlp.c_fc", "h.0.mlp.c_proj"]  # fmt: skip
    adapters = load_arrays(folder / "adapter.safetensors")[0]
    assert sum(a.size for a in adapters.values()) < 0.5 * sum(
        a.size for a in load_arrays(folder / "model.safetensors")[0].values()
    )


def test_resuming_with_other_settings_is_refused(tmp_path, base, chats):
    finetune(base, _settings(chats), _train(tmp_path / "r", steps=2), log=lambda s: None)
    with pytest.raises(ValueError, match=r"--resume: the \[finetune\] settings differ .*mask"):
        finetune(base, _settings(chats, mask="all"), _train(tmp_path / "r", steps=2), resume=True,
                 log=lambda s: None)  # fmt: skip
    with pytest.raises(FileExistsError, match="already holds a run"):
        finetune(base, _settings(chats), _train(tmp_path / "r", steps=2), log=lambda s: None)


# --- the command line -------------------------------------------------------------------------
def test_cli_finetune_reports_losses_and_samples(tmp_path, base, chats, capsys):
    out = tmp_path / "cli"
    code = main(["finetune", "--checkpoint", str(base), "--data", str(chats), "--out", str(out),
                 "max_steps=3", "batch_size=4", "eval_interval=0", "log_interval=0",
                 'prompts=["What is gold?"]', "max_new_tokens=10"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "grows from 76 to 80 rows" in text and "Held-out answer loss over" in text
    assert "user:      What is gold?" in text and "minroots chat --checkpoint" in text
    assert ChatTemplate.load(out) is not None
    assert json.loads((out / "finetune.json").read_text())["finetune"]["data"] == str(chats)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lora-rank", "0"], "argument --lora-rank: expected an integer >= 1, got 0"),
        (["--lora-rank", "64"], r"rank \(of h.0.attn.c_attn\) must be an integer in \[1, min\(in, out\) = 32\]"),
        (["--lora-rank", "2", 'lora_targets=["q_proj"]'], "target 'q_proj' names no linear layer .*available: c_attn, c_fc, c_proj, lm_head"),
        (["--preset", "nope"], "unknown fine-tuning preset 'nope'; available: chat"),
        (["mask=answer"], "mask must be one of 'assistant', 'last', 'all'"),
        (["lora_rank=-1"], "lora_rank must be an integer >= 1"),
    ],
)  # fmt: skip
def test_cli_finetune_bad_input_is_one_line(tmp_path, base, chats, capsys, extra, message):
    code = main(["finetune", "--checkpoint", str(base), "--data", str(chats), "--out",
                 str(tmp_path / "x"), *extra, "max_steps=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_a_checkpoint_whose_tokenizer_lacks_the_markers_is_refused(tmp_path, base, chats, capsys):
    folder = latest_checkpoint(base)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    ChatTemplate.extend(load_tokenizer(folder)).save(tmp_path / "t")
    (broken / "chat_template.json").write_bytes(
        (tmp_path / "t" / "chat_template.json").read_bytes()
    )
    write_manifest(broken)  # a consistent checkpoint, whose tokenizer lacks the markers
    code = main(["finetune", "--checkpoint", str(broken), "--data", str(chats), "--out",
                 str(tmp_path / "y"), "max_steps=1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "lacks the chat markers" in err, err


def test_presets_are_valid():
    assert "chat" in list_finetune_presets()
    run = load_finetune_config("chat")
    assert run["finetune"].data == "dialogue_en" and run["base"].preset == "chat_base"
    assert TrainerConfig.from_dict(run["train"]).max_steps >= 1
    with pytest.raises(ValueError, match=r"unknown table 'fientune' \(did you mean 'finetune'\?\)"):
        load_finetune_config("chat", overrides=["fientune.mask=all"])
