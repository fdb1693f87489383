"""The ``minroots`` command line: smoke runs on the tiny preset, --help everywhere, one-line errors."""

import json
import subprocess
import sys

import pytest

from minroots.cli import build_parser, list_presets, load_run_config, main, parse_override

TINY = ["train", "--preset", "tiny"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run every command in tmp_path, with the token-id cache there too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def trained(tmp_path, capsys):
    """A tiny run in tmp_path/run (a couple of seconds)."""
    assert main([*TINY, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    return tmp_path / "run"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("minroots: error: "), err
    return err


def test_train_tiny_preset_end_to_end(tmp_path, capsys):
    assert main(TINY) == 0  # no --out: runs/tiny under the working directory
    out = capsys.readouterr().out
    assert "validation perplexity" in out and "sample:" in out
    ppl = float(out.split("validation perplexity ")[1].split()[0])
    assert 1 < ppl < 62  # below the vocabulary size: it learned something
    run = tmp_path / "runs" / "tiny"
    records = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 20
    assert records[-1]["val_perplexity"] == pytest.approx(ppl, rel=1e-2)
    assert (run / "loss_curve.png").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000010",
        "step-00000020",
    ]
    assert main(TINY) == 0  # rerunning the preset replaces its default folder


def test_overrides_config_file_and_resume(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[model]\nn_embd = 16\n[train]\nmax_steps = 6\n", encoding="utf-8")
    args = [*TINY, "--config", str(cfg), "--out", "r", "eval_interval=3", "sample.max_new_tokens=5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "done: 6 steps" in out and "n_embd=16" in out
    assert main([*args, "max_steps=9"]) == 2  # the folder holds a run: refuse to clobber it
    assert "--resume" in one_line_error(capsys)
    assert main([*args, "--resume"]) == 0  # already finished: nothing more to train
    assert "done: 6 steps" in capsys.readouterr().out


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path, capsys, monkeypatch):
    from minroots.training import Trainer

    real_step = Trainer.train_step

    def interrupted_at_5(self):
        if self.step == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_5)
    args = [*TINY, "--out", "r", "save_interval=2", "sample.max_new_tokens=0"]
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minroots: interrupted at step 4 of 20;"), err
    assert "step-00000004" in err and "--resume" in err
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert main([*args, "--resume"]) == 0
    assert "done: 20 steps" in capsys.readouterr().out

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_5)
    assert main([*TINY, "--out", "s", "save_interval=10"]) == 130
    assert "no checkpoint was saved yet" in capsys.readouterr().err


def test_generate_streams_text(trained, capsys):
    code = main(["generate", "--checkpoint", str(trained), "--prompt", "KING", "--max-new-tokens",
                 "25", "--seed", "3", "--top-k", "5"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("KING") and len(out.rstrip("\n")) >= 4 + 1
    again = main(["generate", "--checkpoint", str(trained / "checkpoints" / "step-00000020"),
                  "--prompt", "KING", "--max-new-tokens", "25", "--seed", "3", "--top-k", "5"])  # fmt: skip
    # the same seed gives the same text; a checkpoint folder works as well as a run folder
    assert again == 0 and capsys.readouterr().out == out


def test_eval_perplexity(trained, tmp_path, capsys):
    text = tmp_path / "held_out.txt"
    text.write_text("The king is dead, long live the king.\n" * 5, encoding="utf-8")
    args = ["eval", "perplexity", "--checkpoint", str(trained), "--input", str(text), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_tokens"] == len(text.read_text()) - 1
    assert 1 < result["perplexity"] < 62


def test_tokenizer_train(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("low lower lowest newer newest wider\n" * 50, encoding="utf-8")
    out = tmp_path / "tok.json"
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "270", "--out",
                 str(out), "--quiet"]) == 0  # fmt: skip
    assert "saved to" in capsys.readouterr().out
    from minroots.tokenizers import load

    tok = load(out)
    assert tok.vocab_size <= 270 and tok.decode(tok.encode("lowest newer")) == "lowest newer"


@pytest.mark.parametrize(
    "argv",
    [[], ["train"], ["generate"], ["tokenizer"], ["tokenizer", "train"], ["eval"],
     ["eval", "perplexity"], ["eval", "bleu"]],
    ids=lambda a: " ".join(a) or "minroots",
)  # fmt: skip
def test_help_everywhere(argv, capsys):
    assert main([*argv, "--help"]) == 0
    assert "usage: minroots" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
        ([*TINY, "lrr=0.1"], "unknown key 'lrr' (did you mean 'lr'?)"),
        ([*TINY, "lr=fast"], "lr must be a float, got 'fast'"),
        ([*TINY, "max_steps"], "must look like key=value"),
        (["train", "--preset", "huge"], "unknown preset 'huge'; available: default, tiny"),
        (["train", "--config", "missing.toml"], "missing.toml"),
        (["generate", "--checkpoint", "nowhere"], "resolve_checkpoint: 'nowhere' does not exist"),
        (["generate"], "required: --checkpoint"),
        (["generate", "--checkpoint", ".", "--top-k", "0"], "expected an integer >= 1"),
        (["eval", "perplexity", "--checkpoint", "x"], "required: --input"),
        (["tokenizer", "train", "--input", "nope.txt", "--vocab-size", "300", "--out", "t.json"],
         "nope.txt"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_errors(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in one_line_error(capsys)


def test_bad_values_in_generate_and_eval(trained, tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(trained), "--temperature", "-1"]) == 2
    assert "temperature" in one_line_error(capsys)
    assert main(["generate", "--checkpoint", str(trained), "--max-new-tokens", "-3"]) == 2
    assert "--max-new-tokens: must be >= 0, got -3" in one_line_error(capsys)
    assert main(["eval", "perplexity", "--checkpoint", str(trained), "--input", "none.txt"]) == 2
    assert "none.txt" in one_line_error(capsys)
    odd = tmp_path / "odd.txt"
    odd.write_text("\u4e2d\u6587 characters the model never saw", encoding="utf-8")
    assert main(["eval", "perplexity", "--checkpoint", str(trained), "--input", str(odd)]) == 2
    assert "not in the vocabulary" in one_line_error(capsys)
    assert main(["generate", "--checkpoint", str(trained), "--prompt", "\u20ac"]) == 2
    message = one_line_error(capsys)
    assert "--prompt" in message and "knows only the characters" in message


def test_parse_override():
    assert parse_override("lr=3e-4") == (None, "lr", 3e-4)
    assert parse_override("model.n_layer=2") == ("model", "n_layer", 2)
    assert parse_override("betas=[0.9, 0.95]") == (None, "betas", [0.9, 0.95])
    assert parse_override("clip_norm=none") == (None, "clip_norm", None)
    assert parse_override("out_dir=runs/x") == (None, "out_dir", "runs/x")  # not TOML: a string
    assert parse_override('prompt="a=b"') == (None, "prompt", "a=b")


def test_presets_are_valid():
    assert {"default", "tiny"} <= set(list_presets())
    for name in list_presets():
        run = load_run_config(name)
        assert run["data"].corpus == "shakespeare"
        assert run["train"]["max_steps"] >= 1


def test_run_config_layers_and_errors(tmp_path):
    run = load_run_config("tiny", overrides=["block_size=8", "train.lr=1", "top_k=3"])
    assert run["model"]["block_size"] == 8  # a bare key goes to the one table that has it
    assert run["train"]["lr"] == 1.0 and run["sample"].top_k == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("[trian]\nmax_steps = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.toml: unknown table \[trian\]"):
        load_run_config(config=bad)
    with pytest.raises(ValueError, match="'seed' is a key of train and sample"):
        load_run_config(overrides=["seed=1"])
    with pytest.raises(ValueError, match="unknown table 'modle'"):
        load_run_config(overrides=["modle.n_layer=1"])
    with pytest.raises(TypeError, match=r"\[model\]: n_layer must be an int"):
        load_run_config(overrides=["n_layer=1.5"])


def test_parser_has_the_metrics_commands():
    parser = build_parser()
    text = parser._subparsers._group_actions[0].choices["eval"].format_help()
    for metric in ("perplexity", "bleu", "chrf", "rouge"):
        assert metric in text


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minroots", "--version"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0 and result.stdout.startswith("minroots ")


def test_train_and_generate_with_a_bpe_tokenizer(tmp_path, capsys):
    from minroots.data import load_corpus

    corpus = tmp_path / "plays.txt"
    corpus.write_text(load_corpus("shakespeare")[:20000], encoding="utf-8")
    tok = tmp_path / "bpe.json"
    args = ["--input", str(corpus), "--vocab-size", "300", "--out", str(tok), "--quiet"]
    assert main(["tokenizer", "train", *args]) == 0
    assert main([*TINY, "--out", "bpe_run", f"data.tokenizer={tok}", "max_steps=4"]) == 0
    assert "vocabulary 300" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", "bpe_run", "--prompt", "HAMLET", "--seed", "0",
                 "--max-new-tokens", "10"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("HAMLET")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow in the kernels: the point here
def test_a_diverging_run_exits_with_status_1_naming_the_step(capsys):
    args = [*TINY, "--out", "r", "lr=1e12", "clip_norm=none", "warmup=0", "log_interval=0"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("minroots: training failed: step "), err
    assert "debug=True" in err and "no checkpoint was saved in r" in err
