"""``minroots export``: a trained run becomes a Hugging Face folder that transformers opens with the
same logits and the same token ids (model, tokenizer, generation config, model card)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from minroots.cli import main
from minroots.nn import from_pretrained
from minroots.training.checkpoint import load_model, load_tokenizer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: a GPT (learned positions) and a Llama-style model (rotary, one kv head)."""
    root = tmp_path_factory.mktemp("runs")
    for preset in ("tiny", "llama-tiny"):
        assert main(["train", "--preset", preset, "--out", str(root / preset), "max_steps=4",
                     "eval_interval=4", "save_interval=4", "sample.max_new_tokens=0"]) == 0  # fmt: skip
    return root


@pytest.mark.parametrize("preset, model_type", [("tiny", "gpt2"), ("llama-tiny", "llama")])
def test_export_writes_a_hugging_face_folder(runs, preset, model_type, tmp_path, capsys):
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(runs / preset), "--out", str(out)]) == 0
    assert f"({model_type}, " in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "README.md"):  # fmt: skip
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["model_type"] == model_type
    card = (out / "README.md").read_text()
    assert "validation loss: " in card and "at step 4" in card and "max_steps=4" in card
    original, again = load_model(runs / preset), from_pretrained(out)
    for name, a in original.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], a)
    assert main(["export", "--checkpoint", str(runs / preset), "--out", str(out)]) == 2
    assert "already holds a model; add --overwrite" in capsys.readouterr().err


@pytest.mark.parity
@pytest.mark.parametrize("preset", ["tiny", "llama-tiny"])
def test_transformers_opens_the_export_with_equal_logits_and_ids(runs, preset, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(runs / preset), "--out", str(out)]) == 0
    model, tokenizer = load_model(runs / preset), load_tokenizer(runs / preset)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    auto = transformers.AutoTokenizer.from_pretrained(out)
    text = "ROMEO:\nBut soft, what light"
    ids = tokenizer.encode(text)
    assert auto(text)["input_ids"] == ids
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits.numpy()
    assert np.abs(model(np.array([ids]))[0].data - theirs).max() <= 1e-4
