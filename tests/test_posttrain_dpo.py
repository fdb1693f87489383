"""DPO: the loss and its gradient (by hand, finite differences, the composed reference, float64
PyTorch), sequence log-probabilities, preference data, and a preference actually learned.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/dpo.py``,
``minroots/posttrain/preference_dataset.py`` and ``minroots/posttrain/preference_tuning.py``.
"""

import json
import math
import re
import shutil

import numpy as np
import pytest
from posttrain_fixtures import conversation_file, pretrained_base

from minroots import Tensor, gradcheck
from minroots.chat import ChatTemplate
from minroots.nn import TransformerModel
from minroots.posttrain.dpo import DPOObjective, dpo_loss, dpo_loss_composed, sequence_logprobs
from minroots.posttrain.finetune import finetune
from minroots.posttrain.finetune_config import FinetuneSettings
from minroots.posttrain.preference_dataset import (
    PreferenceDataset,
    cut_reply_preferences,
    load_preferences,
)
from minroots.posttrain.preference_tuning import METRICS_FILE, dpo_finetune, main
from minroots.tokenizers import CharTokenizer
from minroots.training import TrainerConfig
from minroots.training.checkpoint import latest_checkpoint, load_model


def _four(rng, n=5, grad=True):
    return [Tensor(rng.standard_normal(n) * 3, requires_grad=grad) for _ in range(4)]


# --- the loss ---------------------------------------------------------------------------------
@pytest.mark.task10_3
def test_at_the_start_the_loss_is_log_2_and_the_gradient_is_beta_over_2():
    pw, pl, rw, rl = (Tensor(np.array([-5.0, -9.0]), requires_grad=True) for _ in range(4))
    rw.data[:], rl.data[:] = pw.data, pl.data  # policy = reference: every margin is 0
    loss = dpo_loss(pw, pl, rw, rl, beta=0.5)
    assert float(loss.data) == pytest.approx(math.log(2), abs=1e-15)
    loss.backward()
    assert pw.grad.tolist() == [-0.125, -0.125]  # -beta * sigma(0) / B = -0.5 * 0.5 / 2
    assert pl.grad.tolist() == [0.125, 0.125]
    assert rw.grad.tolist() == [0.125, 0.125] and rl.grad.tolist() == [-0.125, -0.125]


@pytest.mark.task10_3
def test_gradient_matches_central_differences_everywhere():
    rng = np.random.default_rng(0)
    result = gradcheck(lambda *t: dpo_loss(*t, beta=0.3), _four(rng))
    assert result, str(result)


@pytest.mark.task10_3
def test_fused_equals_composed_and_stays_finite_at_extreme_margins():
    rng = np.random.default_rng(1)
    ours = _four(rng, 7)
    ref = [Tensor(t.data.copy(), requires_grad=True) for t in ours]
    a, b = dpo_loss(*ours, beta=0.2), dpo_loss_composed(*ref, beta=0.2)
    assert float(a.data) == pytest.approx(float(b.data), rel=1e-13)
    a.backward()
    b.backward()
    for t1, t2 in zip(ours, ref, strict=True):
        np.testing.assert_allclose(t1.grad, t2.grad, rtol=1e-12, atol=1e-15)
    huge = [Tensor(np.array([v]), requires_grad=True) for v in (1e4, -1e4, 0.0, 0.0)]
    loss = dpo_loss(*huge, beta=1.0)  # a margin of +2e4: loss 0, gradient 0
    loss.backward()
    assert float(loss.data) == 0.0 and huge[0].grad[0] == 0.0
    wrong = [Tensor(np.array([v]), requires_grad=True) for v in (-1e4, 1e4, 0.0, 0.0)]
    loss = dpo_loss(*wrong, beta=1.0)  # a margin of -2e4: loss 2e4, gradient -beta
    loss.backward()
    assert float(loss.data) == pytest.approx(2e4) and wrong[0].grad[0] == pytest.approx(-1.0)


@pytest.mark.task10_3
def test_loss_falls_as_the_margin_grows_and_beta_scales_it():
    values = []
    for margin in (-2.0, 0.0, 2.0, 6.0):
        t = [Tensor(np.array([margin])), Tensor(np.zeros(1)), Tensor(np.zeros(1)),
             Tensor(np.zeros(1))]  # fmt: skip
        values.append(float(dpo_loss(*t, beta=0.5).data))
        assert values[-1] == pytest.approx(math.log1p(math.exp(-0.5 * margin)), rel=1e-14)
    assert values == sorted(values, reverse=True)


@pytest.mark.parity
def test_loss_and_gradients_match_float64_pytorch_through_a_model():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 6, 9))  # (2B, T, V): chosen, rejected, chosen, rejected
    ref = rng.standard_normal((4, 6, 9))
    targets = rng.integers(0, 9, (4, 6))
    targets[:, :2] = -100  # the prompt positions
    z = Tensor(logits, requires_grad=True)
    lp, rp = sequence_logprobs(z, targets), sequence_logprobs(Tensor(ref), targets)
    ours = dpo_loss(lp[0::2], lp[1::2], rp[0::2], rp[1::2], beta=0.25)
    ours.backward()

    def seq(t):
        logp = torch.log_softmax(t, dim=-1)
        safe = torch.tensor(np.where(targets == -100, 0, targets))
        picked = logp.gather(-1, safe[..., None])[..., 0] * torch.tensor(targets != -100)
        return picked.sum(-1)

    zt = torch.tensor(logits, requires_grad=True)
    a, b = seq(zt), seq(torch.tensor(ref))
    theirs = -torch.nn.functional.logsigmoid(0.25 * ((a[0::2] - b[0::2]) - (a[1::2] - b[1::2])))
    theirs = theirs.mean()
    theirs.backward()
    assert float(ours.data) == pytest.approx(theirs.item(), rel=1e-12)
    np.testing.assert_allclose(z.grad, zt.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_sequence_logprobs_sum_the_reply_tokens_only():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 4, 5))
    targets = np.array([[-100, 1, 2, -100], [3, -100, -100, 0]])
    out = sequence_logprobs(Tensor(logits), targets).data
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert out[0] == pytest.approx(logp[0, 1, 1] + logp[0, 2, 2], rel=1e-12)
    assert out[1] == pytest.approx(logp[1, 0, 3] + logp[1, 3, 0], rel=1e-12)


def test_bad_inputs_are_clear():
    t = [Tensor(np.zeros(3)) for _ in range(4)]
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        dpo_loss(*t, beta=0)
    with pytest.raises(ValueError, match=r"ref_rejected must have the shape \(B,\)"):
        dpo_loss(*t[:3], Tensor(np.zeros(4)))
    model = TransformerModel(vocab_size=10, block_size=8, n_layer=1, n_embd=8)
    with pytest.raises(ValueError, match="separate frozen copy"):
        DPOObjective(model, model)


# --- preference data --------------------------------------------------------------------------
@pytest.fixture
def chat():
    return ChatTemplate.extend(CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz ?.,"))


def test_preference_rows_score_only_the_replies(chat):
    ds = PreferenceDataset([("hi", "hello there.", "hello")], chat, block_size=24)
    x, y = ds[0]
    assert x.shape == y.shape == (2, 24)
    decode = chat.tokenizer.decode
    assert decode(y[0][y[0] != -100].tolist()) == "hello there.<|end|>"
    assert decode(y[1][y[1] != -100].tolist()) == "hello<|end|>"
    assert ds.checkpoint_files["chat_template.json"]["ids"] == chat.ids


def test_bad_preference_lines_name_file_and_line(tmp_path, chat):
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n'
    )
    with pytest.raises(
        ValueError,
        match=r"prefs.jsonl line 2: expected \"prompt\", \"chosen\" and \"rejected\", missing \['rejected'\]",
    ):
        load_preferences(path)
    with pytest.raises(ValueError, match=r"preferences\[0\]: chosen and rejected are the same"):
        load_preferences([("a", "b", "b")])
    with pytest.raises(ValueError, match=r"longer than the context"):
        PreferenceDataset([("hi", "a" * 40, "a")], chat, block_size=16)


def test_cut_reply_preferences_are_complete_against_cut():
    triples = cut_reply_preferences([("q", "One two three four five six."), ("q", "No end here")])
    assert triples == [("q", "One two three four five six.", "One two three")]


# --- a preference learned ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo")
    base = pretrained_base(root / "base")
    data = conversation_file(root / "chats.jsonl")
    train = TrainerConfig(max_steps=30, batch_size=4, lr=3e-3, warmup=2, eval_interval=0,
                          log_interval=0, out_dir=str(root / "sft"))  # fmt: skip
    finetune(base, FinetuneSettings(data=str(data), val_fraction=0.25), train, log=lambda s: None)
    pairs = [(json.loads(line)["prompt"], json.loads(line)["response"])
             for line in data.read_text().splitlines()]  # fmt: skip
    return root / "sft", cut_reply_preferences(pairs)


def _dpo_train(out, steps=12, **changes):
    values = dict(max_steps=steps, batch_size=4, lr=2e-3, warmup=1, eval_interval=6, eval_steps=2,
                  log_interval=1, save_interval=6, out_dir=str(out), seed=0)  # fmt: skip
    return TrainerConfig(**{**values, **changes})


def test_dpo_learns_to_prefer_complete_replies(tmp_path, chat_run):
    sft, triples = chat_run
    result = dpo_finetune(sft, triples[:36], triples[36:], _dpo_train(tmp_path / "dpo"),
                          log=lambda s: None)  # fmt: skip
    before, after = result.before, result.after
    assert before["reward_accuracy"] == 0 and before["dpo_loss"] == pytest.approx(math.log(2))
    assert after["reward_accuracy"] >= 0.9 and after["dpo_loss"] < math.log(2) - 0.1, after
    assert after["rejected_reward"] < 0  # the cut replies were pushed down
    lines = (tmp_path / "dpo" / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [6, 12]
    folder = latest_checkpoint(tmp_path / "dpo")
    assert ChatTemplate.load(folder) is not None
    x = np.arange(10)[None]
    np.testing.assert_array_equal(load_model(folder)(x)[0].data, result.objective.policy(x)[0].data)


def test_the_command_line_run_holds_out_the_fine_tunings_split(tmp_path, chat_run, capsys):
    sft, _ = chat_run
    argv = ["--checkpoint", str(sft), "--out", str(tmp_path / "dpo"), "--data",
            str(sft.parent / "chats.jsonl"), "--steps", "10", "--batch-size", "4", "--lr", "2e-3"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    # 48 conversations, every reply long enough and complete: 5 (10%) held out, 43 trained on
    assert "{'triples': 43, 'kept': 43," in out and "{'triples': 5, 'kept': 5," in out, out
    before, after = re.findall(r"reward accuracy ([\d.]+)", out.split("before:")[1])[:2]
    assert float(before) == 0 and float(after) > 0.5, out
    assert len((tmp_path / "dpo" / METRICS_FILE).read_text().splitlines()) == 5  # every 2 steps
    assert ChatTemplate.load(tmp_path / "dpo") is not None


def test_dpo_resumes_exactly(tmp_path, chat_run):
    sft, triples = chat_run
    quiet = {"log": lambda s: None}
    straight = dpo_finetune(sft, triples[:36], triples[36:], _dpo_train(tmp_path / "a"), **quiet)
    config = _dpo_train(tmp_path / "b")
    dpo_finetune(sft, triples[:36], triples[36:], config, **quiet)
    shutil.rmtree(latest_checkpoint(tmp_path / "b"))  # as if it had stopped after step 6
    assert latest_checkpoint(tmp_path / "b").name == "step-00000006"
    resumed = dpo_finetune(sft, triples[:36], triples[36:], config, resume=True, **quiet)
    assert resumed.trainer.step == 12
    assert resumed.after == straight.after
