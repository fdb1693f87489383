"""The README stays true: its Python examples run as printed (with fewer training steps)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_the_quick_start_and_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "pip install -e . && minroots train" in text
    assert 'pip install -e ".[dev,parity]" && pytest' in text
    assert "from minroots import Trainer, TransformerModel" in text


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_examples_run(index, tmp_path, monkeypatch, capsys):
    code = python_blocks()[index]
    quick_start = ".train()" in code
    if quick_start:  # the quick start trains for a few minutes: run 2 steps
        assert "max_steps=1700" in code, "update this test with the README's step count"
        code = code.replace("max_steps=1700", "max_steps=2, log_interval=0, eval_steps=2")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "cache"))
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.strip(), "every README example prints its result"
    if quick_start:
        assert out.startswith("validation perplexity ") and "\nROMEO:" in out
        assert (tmp_path / "runs" / "demo" / "history.jsonl").exists()
        # the same run as `minroots train` (the default preset): the same validation loss
        from minroots.cli import main

        args = ["train", "--out", "cli", "max_steps=2", "log_interval=0", "eval_steps=2"]
        args.append("sample.max_new_tokens=0")
        assert main(args) == 0
        cli_loss = float(capsys.readouterr().out.split("validation loss ")[1].split()[0])
        assert round(namespace["history"].last_val["val_loss"], 4) == cli_loss


@pytest.mark.parametrize("path", ["README.md", "tutorials/README.md"])
def test_install_commands_name_extras_that_exist(path):
    """Every `pip install -e ".[x,y]"` names extras of pyproject.toml; no path into a virtualenv
    that the README never creates (``.venv/bin/...``)."""
    from minroots.training.config import tomllib  # tomli before Python 3.11

    root = README.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["project"]
    extras = set(extras["optional-dependencies"])
    text = (root / path).read_text(encoding="utf-8")
    named = [e for group in re.findall(r'pip install -e "\.\[([\w,-]+)\]"', text)
             for e in group.split(",")]  # fmt: skip
    assert named and set(named) <= extras, (named, extras)
    assert ".venv/bin/" not in text and "pip install jupyterlab" not in text
