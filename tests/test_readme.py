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
    if "trainer.train()" in code:  # the quick start trains for about two minutes: run 2 steps
        assert "max_steps=500" in code, "update this test with the README's step count"
        code = code.replace("max_steps=500", "max_steps=2, log_interval=0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINROOTS_CACHE", str(tmp_path / "cache"))
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert out.strip(), "every README example prints its result"
    if "trainer.train()" in code:
        assert out.startswith("ROMEO:")
        assert (tmp_path / "runs" / "demo" / "history.jsonl").exists()
