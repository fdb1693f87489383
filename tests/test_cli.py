"""The ``minroots`` command line: smoke runs on the tiny preset, --help everywhere, one-line errors."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minroots.cli import build_parser, list_presets, load_run_config, main, parse_override
from minroots.data import list_corpora

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


def test_training_again_into_a_run_is_refused_like_the_trainer(tmp_path, capsys):
    """One run-folder policy for the CLI and the API: never replace a run silently."""
    args = [*TINY, "max_steps=2", "sample.max_new_tokens=0"]
    assert main(args) == 0  # the preset's default folder, runs/tiny
    capsys.readouterr()
    assert main(args) == 2
    message = one_line_error(capsys)
    assert "runs/tiny already holds a run" in message
    assert all(option in message for option in ("--resume", "--overwrite", "--out DIR"))
    assert main([*args, "--overwrite"]) == 0
    assert "done: 2 steps" in capsys.readouterr().out

    from minroots.training import Trainer, TrainerConfig

    config = TrainerConfig(max_steps=2, log_interval=0, out_dir="runs/tiny")
    with pytest.raises(FileExistsError, match="already holds checkpoints.*overwrite=True"):
        Trainer(_tiny_model(), "shakespeare", config=config).train()


def _tiny_model():
    from minroots.nn import TransformerConfig, TransformerModel

    return TransformerModel(
        TransformerConfig(vocab_size=80, block_size=8, n_layer=1, n_head=1, n_embd=8)
    )


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


def test_generate_draws_a_fresh_seed_and_says_which(trained, capsys):
    args = ["generate", "--checkpoint", str(trained), "--prompt", "KING", "--max-new-tokens", "30"]
    samples = []
    for _ in range(2):
        assert main(args) == 0
        captured = capsys.readouterr()
        seed = int(captured.err.split("--seed ")[1].split()[0])
        assert f"minroots generate: seed {seed} (--seed {seed} repeats this sample)" in captured.err
        samples.append((seed, captured.out))
    assert samples[0][0] != samples[1][0]  # two draws of 32 random bits
    for seed, text in samples:  # the printed seed repeats the sample
        assert main([*args, "--seed", str(seed)]) == 0
        captured = capsys.readouterr()
        assert captured.out == text and captured.err == ""


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
        (["train", "--preset", "huge"], "unknown preset 'huge'; available: chat_base, default, llama, llama-tiny, tang, tiny"),
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
    message = one_line_error(capsys)  # names the option, the file, the character and the line
    assert f"--input {odd}: character '\u4e2d' (U+4E2D) on line 1 is not in" in message
    assert "unk=" not in message  # no Python-only advice
    assert main(["generate", "--checkpoint", str(trained), "--prompt", "ab\u20ac"]) == 2
    message = one_line_error(capsys)
    assert "--prompt: character '\u20ac' (U+20AC) at position 2" in message
    assert "knows only the characters" in message and "unk=" not in message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--steps", "10"], "did you mean max_steps=10? (see 'minroots train --help')"),
        (["train", "--max-steps=5"], "did you mean max_steps=5? (see 'minroots train --help')"),
        (["train", "--frobnicate"], "key=value, e.g. max_steps=100 (see 'minroots train --help')"),
        (["eval", "bleu", "--hyp", "h", "--ref", "r", "--bogus"], "(see 'minroots eval bleu --help')"),
        (["generate", "--checkpoint", "x", "-z"], "-z (see 'minroots generate --help')"),
    ],
)  # fmt: skip
def test_unknown_options_point_at_the_command_help(argv, expected, capsys):
    assert main(argv) == 2
    message = one_line_error(capsys)
    assert message.startswith("minroots: error: unrecognized arguments: ") and expected in message


def test_a_closed_pipe_stops_generate_quietly(trained):
    """``minroots generate ... | head``: no error message, the status of a tool killed by SIGPIPE."""
    prompt = "the " * 25_000  # 100 KB: more than a pipe holds, so the write meets the closed pipe
    cmd = [sys.executable, "-m", "minroots", "generate", "--checkpoint", str(trained), "--prompt",
           prompt, "--max-new-tokens", "5"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10) == b"the the th"
    proc.stdout.close()  # what `head` does once it has its lines
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""
    proc.stderr.close()


def _parsers(parser, path=("minroots",)):
    """Every (sub-)command's parser with its command line, e.g. ``("minroots", "eval", "bleu")``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_command_and_option_has_a_help_text():
    for path, parser in _parsers(build_parser()):
        assert parser.description, f"{' '.join(path)} has no description in --help"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(action, argparse._SubParsersAction):  # the list of sub-commands
                for choice in action._choices_actions:
                    assert choice.help, f"{' '.join(path)} {choice.dest} has no help in the list"
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help, f"{' '.join(path)}: {name} has no help text"
    chrf = dict(_parsers(build_parser()))[("minroots", "eval", "chrf")].format_help()
    assert "0 for chrF (the default), 2 for chrF++" in " ".join(chrf.split())


# How an editable install (`pip install -e .`) finds minroots: a finder that Python asks after
# it has searched sys.path, so an empty folder named minroots in the current folder wins.
_EDITABLE_FINDER = """
import importlib.machinery, importlib.util, sys
from pathlib import Path

class Editable:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] != "minroots":
            return None
        base = Path({repo!r}).joinpath(*name.split("."))
        if (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(
                name, base / "__init__.py", submodule_search_locations=[str(base)])
        if base.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(name, base.with_suffix(".py"))
        return None

sys.meta_path.insert(sys.meta_path.index(importlib.machinery.PathFinder) + 1, Editable)
"""


@pytest.mark.parametrize(
    "code",
    ["from minroots.assignments import make_student_copy", "import runpy; runpy.run_module("
     "'minroots', run_name='__main__')"],
    ids=["assignments", "python -m minroots"],
)  # fmt: skip
def test_a_folder_named_minroots_that_hides_the_package_is_named(tmp_path, code):
    """Run from the folder that contains a checkout: the error says so, and what to do."""
    (tmp_path / "minroots").mkdir()  # a checkout's folder: no __init__.py in it
    repo = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = _EDITABLE_FINDER.format(repo=repo) + code + "\n"
    result = subprocess.run([sys.executable, "-c", script, "--version"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path, env=env)  # fmt: skip
    message = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert f"the folder {tmp_path / 'minroots'} hides the minroots package" in message
    assert "run from inside the checkout (cd minroots) or from any other folder" in message
    if "runpy" in code:  # the command line says it on one line
        assert result.returncode == 2 and message.startswith(
            "minroots: error: import minroots: the folder"
        )
        assert "Traceback" not in result.stderr


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
        assert run["data"].corpus in list_corpora("text")  # shakespeare; tang300 for "tang"
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
