"""Nothing damaged loads: checkpoint manifests, the fallback to the newest good checkpoint, finite
weights before every save, the data's fingerprint, checked trainer states, faults at every file
operation of a save, a full disk, and torn history lines (minroots/training/integrity.py)."""

import contextlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import minroots
from minroots import persistence
from minroots.cli import main
from minroots.data import TextDataset
from minroots.nn import TransformerConfig, TransformerModel
from minroots.persistence import load_arrays, save_arrays
from minroots.training import (
    CheckpointError,
    DivergenceError,
    History,
    Trainer,
    TrainerConfig,
    list_checkpoints,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from minroots.training.integrity import MANIFEST, NonFiniteError, file_digest, write_manifest

TEXT = "To be, or not to be, that is the question.\n" * 40
OTHER = "Now is the winter of our discontent made glorious summer.\n" * 40
ROOT = Path(__file__).resolve().parents[1]


def tiny_model(vocab_size, seed=0):
    minroots.manual_seed(seed)
    config = TransformerConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)
    return TransformerModel(config)


def config(out, **changes):
    settings = {"max_steps": 6, "batch_size": 2, "save_interval": 2, "log_interval": 1,
                "eval_interval": 0, "keep_last": 5, "out_dir": str(out)}  # fmt: skip
    return TrainerConfig(**{**settings, **changes})


def trained_run(tmp_path, text=TEXT, **changes) -> tuple[Path, Trainer]:
    ds = TextDataset(text, block_size=8, use_cache=False)
    trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(tmp_path / "run", **changes))
    trainer.train()
    return tmp_path / "run", trainer


def weights(model) -> dict:
    return {k: np.array(v) for k, v in model.state_dict().items()}


def flip_bit(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite_manifest(folder: Path) -> None:
    """What a careless (or hostile) editor does: change a file and then its manifest."""
    (folder / MANIFEST).unlink()
    write_manifest(folder)


# --- the manifest ------------------------------------------------------------------------------
def test_every_checkpoint_has_a_manifest_of_its_files(tmp_path):
    run, _ = trained_run(tmp_path)
    folder = list_checkpoints(run)[-1]
    manifest = json.loads((folder / MANIFEST).read_text())
    files = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    assert sorted(manifest["files"]) == files and manifest["hash"] == "blake2b-256"
    for name, entry in manifest["files"].items():
        assert entry == {"bytes": (folder / name).stat().st_size,
                         "blake2b": file_digest(folder / name)}  # fmt: skip
    assert verify_checkpoint(folder) is True


@pytest.mark.parametrize(
    "name",
    ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "tokenizer.json",
     "config.json", "optimizer.json"],
)  # fmt: skip
def test_a_flipped_bit_in_any_file_is_a_one_line_error_naming_it(tmp_path, name):
    run, _ = trained_run(tmp_path)
    folder = list_checkpoints(run)[-1]
    flip_bit(folder / name, offset=-3)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder)
    message = str(err.value)
    assert "\n" not in message and f"{name}': does not match its checksum" in message
    with pytest.raises(CheckpointError, match=name):
        load_model(folder)


def test_cut_short_missing_and_added_files_are_named(tmp_path):
    run, _ = trained_run(tmp_path)
    folder = list_checkpoints(run)[-1]
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"model.safetensors': has \d+ bytes, manifest.json"):
        verify_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(data)
    (folder / "notes.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="notes.txt': is not in manifest.json"):
        verify_checkpoint(folder)
    (folder / "notes.txt").unlink()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json': is missing"):
        verify_checkpoint(folder)
    (folder / MANIFEST).write_text("{oops")
    with pytest.raises(CheckpointError, match="manifest.json' is not valid JSON"):
        verify_checkpoint(folder)


def test_resume_falls_back_to_the_newest_checkpoint_that_verifies_and_says_so(tmp_path):
    """Flip a bit in the newest checkpoint: resume warns, takes the one before, and the finished
    run is bit-identical to one that never stopped."""
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    straight = Trainer(tiny_model(ds.vocab_size), ds, config=config(tmp_path / "straight"))
    straight.train()
    run, _ = trained_run(tmp_path, max_steps=6)
    newest = list_checkpoints(run)[-1]  # step 6
    flip_bit(newest / "optimizer.safetensors")
    with pytest.warns(UserWarning) as caught:
        again = Trainer(tiny_model(ds.vocab_size, seed=7), ds, config=config(run)).resume()
    said = " | ".join(str(w.message) for w in caught)
    assert "skipping step-00000006" in said and "optimizer.safetensors" in said
    assert "falling back to step-00000004" in said
    assert again.step == 4
    again.train()
    for name, w in weights(straight.model).items():
        np.testing.assert_array_equal(weights(again.model)[name], w, err_msg=name)
    assert verify_checkpoint(list_checkpoints(run)[-1])  # step 6 saved again, whole


def test_no_checkpoint_that_verifies_is_an_error(tmp_path):
    run, _ = trained_run(tmp_path, max_steps=2)
    flip_bit(list_checkpoints(run)[-1] / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="none of the 1 checkpoints of .* verifies"):
            resolve_checkpoint(run)


def test_a_checkpoint_from_before_manifests_loads_with_a_warning(tmp_path):
    run, _ = trained_run(tmp_path, max_steps=2)
    folder = list_checkpoints(run)[-1]
    (folder / MANIFEST).unlink()
    with pytest.warns(UserWarning, match="has no manifest.json"):
        assert load_checkpoint(folder)["step"] == 2


def test_generate_on_a_damaged_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    run, _ = trained_run(tmp_path, max_steps=2)
    folder = list_checkpoints(run)[-1]
    flip_bit(folder / "model.safetensors")
    capsys.readouterr()  # the training's progress bar
    assert main(["generate", "--checkpoint", str(folder), "--max-new-tokens", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("minroots: error: ")
    assert "model.safetensors': does not match its checksum" in err


# --- finite weights ------------------------------------------------------------------------------
def test_inf_weights_are_never_saved_as_a_good_checkpoint(tmp_path):
    """lr=1e39 passes the config's checks; the first update makes the weights infinite. That step
    must not become the 'last good checkpoint'."""
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    cfg = config(tmp_path / "run", lr=1e39, warmup=0, save_interval=1)
    trainer = Trainer(tiny_model(ds.vocab_size), ds, config=cfg)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as err:
        trainer.train()
    assert err.value.step == 1 and err.value.checkpoint is None
    assert "weights and optimizer state must be finite" in str(err.value)
    assert list_checkpoints(tmp_path / "run") == []


def test_save_checkpoint_refuses_nan_optimizer_state(tmp_path):
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(tmp_path / "run", max_steps=1))
    trainer.train()
    entry = next(iter(trainer.optimizer.state.values()))
    entry["exp_avg_sq"][...] = np.nan
    with pytest.raises(NonFiniteError, match="optimizer exp_avg_sq of wte.weight"):
        save_checkpoint(tmp_path / "other", 1, trainer.model, trainer.optimizer)
    assert not (tmp_path / "other" / "checkpoints" / "step-00000001").exists()


def test_a_checkpoint_of_nan_weights_is_refused_by_generate(tmp_path, capsys):
    run, _ = trained_run(tmp_path, max_steps=2)
    folder = list_checkpoints(run)[-1]
    arrays, meta = load_arrays(folder / "model.safetensors", tied=False)
    arrays["wte.weight"][:] = np.nan
    save_arrays(folder / "model.safetensors", arrays, meta)
    rewrite_manifest(folder)
    with pytest.raises(ValueError, match="the weights must be finite, got NaN or infinity in wte"):
        load_model(folder)
    assert main(["generate", "--checkpoint", str(run), "--max-new-tokens", "3"]) == 2
    assert "must be finite" in capsys.readouterr().err


# --- the trainer's state -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("step", -5, r"step must be an integer >= 0, got -5"),
        ("step", 2.5, r"step must be an integer >= 0, got 2.5 \(float\)"),
        ("step", 10**9, r"step must equal the folder's step 2, got 1000000000"),
        ("total_steps", "6", r"total_steps must be an integer >= 2, got '6' \(str\)"),
        ("tokens_seen", -1, r"tokens_seen must be an integer >= 0, got -1"),
        ("scheduler", None, r"scheduler must be a JSON object \(the trainer saves one\), got"),
    ],
)
def test_edited_trainer_state_fields_are_refused(tmp_path, field, value, expected):
    run, _ = trained_run(tmp_path, max_steps=6)
    folder = list_checkpoints(run)[0]  # step 2
    state_file = folder / "trainer_state.json"
    state = json.loads(state_file.read_text())
    if value is None:
        del state[field]
    else:
        state[field] = value
    state_file.write_text(json.dumps(state))
    rewrite_manifest(folder)  # the checksums match: only the fields' checks can catch it
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(run))
    with pytest.raises(ValueError, match=expected) as err:
        trainer.resume(folder)
    assert "trainer_state.json" in str(err.value) and "\n" not in str(err.value)


# --- the fingerprint ----------------------------------------------------------------------------------
def test_resume_refuses_another_tokenizer_unless_told(tmp_path):
    run, _ = trained_run(tmp_path, max_steps=4)
    other = TextDataset(OTHER, block_size=8, use_cache=False)  # another character vocabulary
    fresh = TextDataset(TEXT, block_size=8, use_cache=False)
    vocab = max(other.vocab_size, fresh.vocab_size)
    assert other.tokenizer.chars != fresh.tokenizer.chars
    with pytest.raises(ValueError, match="trained with another tokenizer .* ignore_fingerprint"):
        Trainer(tiny_model(vocab), other, config=config(run, max_steps=4)).resume()


def test_resume_warns_on_other_data_with_the_same_tokenizer(tmp_path):
    run, first = trained_run(tmp_path, max_steps=4)
    tokenizer = first.tokenizer
    other = TextDataset(TEXT[: len(TEXT) // 2] * 3, tokenizer=tokenizer, block_size=8,
                        use_cache=False)  # fmt: skip
    with pytest.warns(UserWarning, match="the training data differs from the checkpoint's"):
        again = Trainer(tiny_model(other.vocab_size), other, config=config(run, max_steps=4))
        again.resume()
    assert again.step == 4


def test_ignore_fingerprint_goes_on_with_a_warning(tmp_path):
    run, first = trained_run(tmp_path, max_steps=4)
    chars = list(reversed(first.tokenizer.chars))  # the same size, every id another character
    tok = type(first.tokenizer)(chars)
    ds = TextDataset(TEXT, tokenizer=tok, block_size=8, use_cache=False)
    with pytest.raises(ValueError, match="another tokenizer"):
        Trainer(tiny_model(ds.vocab_size), ds, config=config(run, max_steps=4)).resume()
    with pytest.warns(UserWarning, match="going on, as ignore_fingerprint=True asks"):
        trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(run, max_steps=4))
        trainer.resume(ignore_fingerprint=True)
    assert trainer.step == 4


def test_cli_resume_on_other_data_is_refused_then_allowed(tmp_path, capsys):
    corpus = tmp_path / "a.txt"
    corpus.write_text(TEXT)
    base = ["train", "--preset", "tiny", "--out", str(tmp_path / "run"), "max_steps=2",
            "sample.max_new_tokens=0", "log_interval=0", "eval_interval=0",
            "model.n_layer=1", "model.n_embd=8", "model.block_size=8"]  # fmt: skip
    assert main([*base, f"data.corpus={corpus}"]) == 0
    corpus.write_text(OTHER)
    capsys.readouterr()
    assert main([*base, f"data.corpus={corpus}", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "trained with another tokenizer" in err and "--ignore-fingerprint" in err


# --- faults during a save -------------------------------------------------------------------------
class FaultInjector:
    """Counts the file operations of a save, or fails the n-th one with ENOSPC."""

    def __init__(self, monkeypatch, fail_at=None):
        self.count, self.fail_at, self.names = 0, fail_at, []
        self.real_open = open
        real = {"fsync": os.fsync, "replace": os.replace, "mkdir": os.mkdir}
        for name, fn in real.items():
            monkeypatch.setattr(os, name, self._wrap(name, fn))
        monkeypatch.setattr(
            persistence, "save_file", self._wrap("save_file", persistence.save_file)
        )
        monkeypatch.setattr("builtins.open", self._open)

    def _tick(self, name):
        self.count += 1
        self.names.append(name)
        if self.count == self.fail_at:
            raise OSError(28, "No space left on device")

    def _wrap(self, name, fn):
        def wrapped(*args, **kwargs):
            self._tick(name)
            return fn(*args, **kwargs)

        return wrapped

    def _open(self, file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            self._tick(f"open({Path(file).name}, {mode})")
        return self.real_open(file, mode, *args, **kwargs)


def test_a_fault_at_every_file_operation_of_a_save_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    """Fail each file operation of the save of step 4 in turn (ENOSPC): the error is one line
    naming where, the earlier checkpoints still verify, and resuming finishes bit-identical to a run that never
    failed. (Creating a folder that already exists may fail harmlessly: the save then completes.)"""
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # the disk's flushes are not under test here
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    straight = Trainer(tiny_model(ds.vocab_size), ds, config=config(tmp_path / "straight"))
    straight.train()
    expected = weights(straight.model)

    def run_until_step_4(out):  # saves steps 2 and 3 (where the callback stops it)
        trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(out, log_interval=0))
        trainer.callbacks.append(type("Stop", (), {"on_step_end": staticmethod(
            lambda t, s, logs: s == 3)})())  # fmt: skip
        trainer.train()
        trainer.should_stop = False
        return trainer

    probe = run_until_step_4(tmp_path / "probe")
    with monkeypatch.context() as m:
        counter = FaultInjector(m)
        probe.train_step()
        probe.save_checkpoint()
    n_ops = counter.count
    assert n_ops >= 20, counter.names  # files, fsyncs, renames, the manifest, the folder

    for k in range(1, n_ops + 1):
        out = tmp_path / f"run{k}"
        trainer = run_until_step_4(out)
        trainer.train_step()  # step 4
        with monkeypatch.context() as m:
            injector = FaultInjector(m, fail_at=k)
            try:
                trainer.save_checkpoint()
                error = None
            except OSError as exc:
                error = exc
            failed = injector.names[k - 1]
        good = list_checkpoints(out)
        if error is None:  # only creating a folder that already exists may fail unnoticed
            assert failed == "mkdir", (k, failed)
            assert [p.name for p in good] == ["step-00000002", "step-00000003", "step-00000004"]
        else:
            message = str(error)
            assert "\n" not in message and message.startswith(
                "save_checkpoint: cannot save step 4"), (k, failed, message)  # fmt: skip
            assert "No space left on device (ENOSPC)" in message and error.errno == 28
            # the folder's fsync after the commit (the last operation) fails with step 4 in place
            saved = ["step-00000004"] if k == n_ops else []
            assert [p.name for p in good] == ["step-00000002", "step-00000003", *saved], (k, failed)
        assert all(verify_checkpoint(p) for p in good)
        assert not list(out.glob("checkpoints/.tmp-*")), (k, failed)
        again = Trainer(tiny_model(ds.vocab_size, seed=5), ds, config=config(out, log_interval=0))
        again.resume()
        assert again.step == int(good[-1].name[5:])
        again.train()
        for name, w in expected.items():
            np.testing.assert_array_equal(weights(again.model)[name], w, err_msg=f"{k} {name}")


def test_a_full_disk_mid_run_is_one_line_exit_2_naming_the_file(tmp_path):
    """A real file-size limit (RLIMIT_FSIZE): the kernel refuses the write with EFBIG, as a full
    disk refuses it with ENOSPC. The CLI prints one line naming the file and exits 2."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (40000, 40000))\n"
        "from minroots.cli import main\n"
        f"sys.exit(main(['train', '--preset', 'tiny', '--out', {str(tmp_path / 'run')!r}, "
        "'max_steps=2', 'save_interval=1', 'log_interval=0', 'eval_interval=0', "
        "'sample.max_new_tokens=0', 'model.n_embd=32']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINROOTS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert err[-1].startswith("minroots: error: ") and "Traceback" not in done.stderr
    assert "File too large (EFBIG)" in err[-1] and "model.safetensors" in err[-1]


# --- torn history lines -------------------------------------------------------------------------------
def test_a_torn_last_history_line_is_dropped_reported_and_cut(tmp_path):
    path = tmp_path / "history.jsonl"
    history = History()
    for step in (1, 2):
        history.append_to(path, history.add(step, train_loss=1.0 / step))
    with open(path, "a") as f:
        f.write('{"step": 3, "train_lo')  # the write that a crash (or a full disk) cut
    with pytest.warns(UserWarning, match=r"line 3 is torn .*dropped it"):
        assert [r["step"] for r in History.read(path)] == [1, 2]
    with pytest.warns(UserWarning, match=r"cut a torn last line \(21 bytes"):
        history.append_to(path, history.add(3, train_loss=0.3))
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_a_damaged_line_before_the_last_is_a_one_line_error(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1}\n{not json}\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"history.jsonl', line 2 must be a JSON record") as err:
        History.read(path)
    assert "\n" not in str(err.value)


def test_an_append_that_fails_half_way_is_undone(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    History().append_to(path, History().add(1, train_loss=1.0))
    before = path.read_bytes()
    real_open = open

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[:7])
            self.f.flush()
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return contextlib.nullcontext(HalfWriter(f)) if mode == "a" else f

    monkeypatch.setattr("builtins.open", opener)
    with pytest.raises(OSError, match=r"history.jsonl': cannot write the file: No space left"):
        History().append_to(path, History().add(2, train_loss=0.5))
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_resume_after_a_torn_history_line(tmp_path):
    run, _ = trained_run(tmp_path, max_steps=6)
    with open(run / "history.jsonl", "a") as f:
        f.write('{"step": 7, "train_loss": 1.')
    ds = TextDataset(TEXT, block_size=8, use_cache=False)
    with pytest.warns(UserWarning, match="is torn"):
        trainer = Trainer(tiny_model(ds.vocab_size), ds, config=config(run, max_steps=6))
        trainer.resume()
    assert [r["step"] for r in trainer.history] == [1, 2, 3, 4, 5, 6]
    assert (run / "history.jsonl").read_text().endswith("}\n")
