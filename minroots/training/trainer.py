r"""The ``Trainer``: the training loop of chapter 7, with evaluation, history, checkpoints and resume.

Book chapter 7, "Training" (``book/07_training.md``); tests in ``tests/test_training_trainer.py``,
``tests/test_training_resume.py`` and ``tests/test_training_checkpoint.py``.

>>> import tempfile
>>> from minroots import Trainer, TransformerModel
>>> dataset = minroots.data.load_corpus("shakespeare")          # text, a name, or a TextDataset
>>> model = TransformerModel(vocab_size=76, block_size=16, n_layer=1, n_embd=16)
>>> run = tempfile.mkdtemp()                                   # e.g. "runs/demo"
>>> trainer = Trainer(model=model, dataset=dataset, max_steps=4, eval_interval=2, eval_steps=2,
...                   log_interval=0, out_dir=run)
>>> history = trainer.train()
>>> [r["step"] for r in history if "val_loss" in r]             # evaluated every 2 steps
[2, 4]

One optimizer **step** (one update of the weights) is, with ``m = grad_accum_steps`` micro-batches
of ``b = batch_size`` sequences each:

.. math::

    g = \nabla_\theta \frac{1}{m} \sum_{i=1}^{m} L(\theta; x_i, y_i), \qquad
    g \leftarrow g \cdot \min\Big(1, \frac{c}{\lVert g \rVert}\Big), \qquad
    \theta \leftarrow \mathrm{AdamW}(\theta, g, \eta_s)

The accumulated gradient is exactly that of one batch :math:`m` times larger
(:func:`~minroots.training.accumulation.accumulate_gradients` derives it). The :math:`m b`
sequences of a step are drawn together and then cut into micro-batches, so the data a step sees
does not depend on :math:`m` either (``tests/test_training_trainer.py`` checks both to 1e-6).

**Exact resume.** A run is a deterministic function of its starting state: weights, optimizer
buffers, the step (which fixes the learning rate), the generator that draws batch positions (or
the data loader's position), and minroots' own generators (dropout). A checkpoint saves all of
them, so ``trainer.resume(out_dir)`` followed by ``train()`` produces bit-for-bit the weights and
losses of a run that never stopped. Evaluation draws its batches from a fresh generator seeded
by ``(seed, 1)``: the same validation batches at every evaluation, and none of the training
randomness is consumed.

**What the Trainer needs** of its model and its data is written down once, as protocols, in
:mod:`minroots.training.protocols` (:class:`~minroots.training.protocols.TrainableModel`: called as
``model(x, y)`` returning ``(logits, loss)``, ``parameters()``, ``named_parameters()``,
``train()``/``eval()``, ``to()``, ``state_dict()``/``load_state_dict()``); it is checked once, in
``__init__``.

**Failure.** A loss or gradient that is NaN or infinite stops training with a
:class:`~minroots.training.divergence.DivergenceError` (a ``FloatingPointError``) carrying the
step, before the weights are touched; the checkpoints on disk are the last good ones. With
``debug=True`` the forward and backward passes run under
:func:`minroots.autograd.tensor.detect_anomaly`, which names the first operation that produced the
bad value.

(This file is longer than the 400 lines the package aims for because it is one class: the loop,
evaluation and checkpoint/resume share the run's state. What the Trainer needs of a model, what
divergence is and how gradients accumulate are in modules of their own.)
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minroots import backend as B
from minroots.autograd import detect_anomaly, no_grad
from minroots.data import DataLoader
from minroots.distributed.world import World
from minroots.optim import AdamW, LRScheduler, clip_grad_norm_, get_schedule, weight_decay_groups
from minroots.training.accumulation import accumulate_gradients, loss_of
from minroots.training.checkpoint import (
    CHECKPOINT_DIR,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    write_json,
)
from minroots.training.config import TrainerConfig
from minroots.training.divergence import DivergenceError, non_finite_gradients
from minroots.training.history import History
from minroots.training.integrity import NonFiniteError, check_fingerprint, check_state, fingerprint
from minroots.training.mixed_precision import MixedPrecision
from minroots.training.protocols import BatchDataset, as_dataset, check_fits, check_model

__all__ = ["Trainer", "DivergenceError", "HISTORY_FILE", "LOSS_CURVE_FILE", "CONFIG_FILE"]

HISTORY_FILE = "history.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"
CONFIG_FILE = "trainer_config.json"
_HOOKS = ("on_step_end", "on_evaluate", "on_save")


class Trainer:
    """Train a language model on a dataset: batches, updates, evaluation, history, checkpoints.

    Args:
        model: a :class:`~minroots.training.protocols.TrainableModel` (any ``minroots.nn.Module``
            whose ``model(x, y)``, with int arrays ``(B, T)``, returns ``(logits, loss)``).
        dataset: a :class:`minroots.data.TextDataset` (or anything with
            ``get_batch(split, batch_size, rng)``; or a sequence of ``(x, y)`` examples), or text,
            a bundled corpus name or a file path, which becomes a ``TextDataset`` with the model's
            ``block_size``.
        eval_dataset: where validation batches come from; by default the dataset's ``"val"``
            split.
        optimizer: by default AdamW with weight decay on matrices only
            (:func:`minroots.optim.weight_decay_groups`). The schedule sets its learning rate.
        config: a :class:`TrainerConfig`; keyword arguments override its fields
            (``Trainer(model, data, max_steps=100)``).
        callbacks: objects with ``on_step_end``/``on_evaluate``/``on_save`` (see
            :mod:`minroots.training.callbacks`).
        world: this process's rank among several (:class:`minroots.distributed.world.World`); by
            default the ranks started by ``mpirun``/``srun``, or one process (chapter 13).

    After :meth:`train`, ``trainer.history`` holds the records and ``trainer.step`` the number of
    updates done.
    """

    def __init__(
        self,
        model,
        dataset,
        eval_dataset=None,
        optimizer=None,
        config: TrainerConfig | None = None,
        callbacks=(),
        world: World | None = None,
        **overrides,
    ):
        if config is None:
            config = TrainerConfig()
        if not isinstance(config, TrainerConfig):
            raise TypeError(f"Trainer: config must be a TrainerConfig, got {type(config).__name__}")
        if overrides:
            config = config.replace(**overrides)
        self.config = cfg = config
        self.model = check_model(model)
        # chapter 13, training at scale: ranks (one process unless launched by mpirun/srun)
        self.world = World.launch(cfg) if world is None else world
        self.world.check_batch(self.sequences_per_step)
        self._setup_device()
        self.precision = MixedPrecision(cfg.precision, self.device)  # bf16/fp16 products
        if cfg.checkpoint_activations:  # recompute each block's activations in the backward
            if not hasattr(self.model, "checkpoint_activations"):
                raise ValueError(
                    f"Trainer: checkpoint_activations=True needs a model with a "
                    f"checkpoint_activations switch (TransformerModel has one); "
                    f"{type(self.model).__name__} has none"
                )
            self.model.checkpoint_activations = True
        self.dataset = as_dataset(dataset, model, cfg.seed, "dataset")
        self.eval_dataset = (
            None
            if eval_dataset is None
            else as_dataset(eval_dataset, model, cfg.seed, "eval_dataset")
        )
        check_fits(self.dataset, model, "dataset")
        if self.eval_dataset is not None:
            check_fits(self.eval_dataset, model, "eval_dataset")
        self.tokenizer = getattr(self.dataset, "tokenizer", None)
        # JSON files the data keeps with the weights (a fine-tuning set's chat template)
        self.checkpoint_files = dict(getattr(self.dataset, "checkpoint_files", None) or {})

        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not any(hasattr(cb, hook) for hook in _HOOKS):
                raise TypeError(
                    f"Trainer: callback {cb!r} has none of the methods {', '.join(_HOOKS)}"
                )

        # Batches: random blocks from get_batch (nanoGPT's way), or a DataLoader for epochs.
        self._data_rng = np.random.default_rng(cfg.seed)
        self.loader = None
        if cfg.epochs is not None or not isinstance(self.dataset, BatchDataset):
            self.loader = DataLoader(
                self.dataset, batch_size=self.sequences_per_step, shuffle=True, seed=cfg.seed,
                drop_last=True,
            )  # fmt: skip
        self.total_steps = cfg.max_steps if cfg.epochs is None else cfg.epochs * len(self.loader)

        self.optimizer = optimizer if optimizer is not None else self._default_optimizer()
        self.scheduler = LRScheduler(self.optimizer, self._schedule())
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.world.broadcast_parameters(self.params)  # chapter 13: every rank starts from rank 0's
        self.world.separate_random_streams()
        self.skipped_step = False  # fp16: the last step overflowed and was skipped

        self.step = 0  # optimizer updates done
        self.tokens_seen = 0
        self.history = History()
        self.should_stop = False
        self.out_dir = None if cfg.out_dir is None else Path(cfg.out_dir)

    # --- set-up -------------------------------------------------------------------------------
    @property
    def sequences_per_step(self) -> int:
        """Sequences per optimizer update: ``batch_size * grad_accum_steps``."""
        return self.config.batch_size * self.config.grad_accum_steps

    def _setup_device(self) -> None:
        device = self.config.device
        if device == "auto":
            device = "cuda" if B.cupy_available() else "cpu"
        B.use(device)
        first = next(iter(self.model.parameters()), None)
        if first is not None and B.device_of(first.data) != device:
            self.model.to(device)  # before the optimizer is built: it keeps the same Parameters
        self.device = device

    def _default_optimizer(self):
        cfg = self.config
        groups = weight_decay_groups(self.model.named_parameters(), cfg.weight_decay)
        return AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    def _schedule(self):
        """The learning-rate schedule of the config, over ``total_steps`` updates."""
        cfg = self.config
        if cfg.schedule in ("cosine", "linear"):
            warmup = min(cfg.warmup, self.total_steps - 1)
            return get_schedule(cfg.schedule, lr=cfg.lr, total_steps=self.total_steps,
                                warmup_steps=warmup, min_lr=cfg.min_lr)  # fmt: skip
        return get_schedule(cfg.schedule, lr=cfg.lr, warmup_steps=cfg.warmup)

    # --- one step -----------------------------------------------------------------------------
    def _to_device(self, a):
        return B.to_device(a, "cuda") if self.device == "cuda" else a

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(x, y)`` of the next update: ``batch_size * grad_accum_steps`` sequences (this
        rank's equal share of them when several ranks train together, chapter 13)."""
        if self.loader is not None:
            x, y = self.loader.next_batch()
        else:
            x, y = self.dataset.get_batch("train", self.sequences_per_step, self._data_rng)
        return self.world.shard((x, y))

    def _bad_gradients(self) -> list[str]:
        """Names (or indices) of the optimizer's parameters whose gradient is not finite."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        return non_finite_gradients((names.get(id(p), f"parameter {i}"), p)
                                    for i, p in enumerate(self.params))  # fmt: skip

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint folder in ``out_dir`` (``None`` if none or no out_dir)."""
        return latest_checkpoint(self.out_dir) if self.out_dir is not None else None

    def _diverged(self, step: int, reason: str) -> DivergenceError:
        """The error that stops training at ``step``; the gradients are cleared, nothing updated."""
        self.optimizer.zero_grad()
        return DivergenceError(step, reason, checkpoint=self.last_checkpoint(),
                               out_dir=self.out_dir, debug=self.config.debug)  # fmt: skip

    def train_step(self) -> tuple[float, float]:
        """One optimizer update; returns ``(loss, lr)``: the mean micro-batch loss and the rate used.

        Raises :class:`DivergenceError` (naming the step) when the loss or a gradient is not finite.
        """
        cfg, m = self.config, self.world.micro_batches(self.config)
        n = self.step + 1  # the 1-based number of this update, as people count steps
        lr = self.scheduler.get_last_lr()[0]
        x, y = self.next_batch()  # (m b, T) each
        x, y = self._to_device(x), self._to_device(y)
        anomaly = detect_anomaly() if cfg.debug else contextlib.nullcontext()
        try:
            with anomaly, self.precision.autocast():
                loss = accumulate_gradients(self.model, x, y, m, self.precision.loss_scale)
        except FloatingPointError as exc:  # a non-finite loss, or (debug) the operation making one
            raise self._diverged(n, str(exc)) from exc
        loss = self.world.average_gradients(self.params, loss)  # all-reduce over the ranks
        self.skipped_step = not self.precision.unscale(self.params)  # fp16 overflow: skip
        norm = 0.0 if self.skipped_step else clip_grad_norm_(self.params, cfg.clip_norm or math.inf)
        if not math.isfinite(norm):
            bad = self._bad_gradients()
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise self._diverged(n, f"the gradient norm is {norm}; non-finite gradients in {shown}")
        if not self.skipped_step:
            self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        self.tokens_seen += int(x.shape[0] * x.shape[1]) * self.world.size
        return loss, lr

    # --- evaluation ---------------------------------------------------------------------------
    def _eval_batches(self):
        cfg = self.config
        source = self.eval_dataset if self.eval_dataset is not None else self.dataset
        if isinstance(source, BatchDataset):
            split = "val"
            if source is self.eval_dataset:  # a separate set: its val split, if it has one
                val = source.split("val") if hasattr(source, "split") else ()
                split = "val" if len(val) > getattr(source, "block_size", 0) else "train"
            rng = np.random.default_rng([cfg.seed, 1])  # the same batches at every evaluation
            for _ in range(cfg.eval_steps):
                yield source.get_batch(split, cfg.batch_size, rng)
        else:
            loader = DataLoader(source, batch_size=cfg.batch_size, shuffle=False)
            for k, batch in enumerate(loader):
                if k == cfg.eval_steps:
                    break
                yield batch

    def evaluate(self) -> dict:
        """Mean loss over ``eval_steps`` validation batches, and its perplexity ``exp(loss)``.

        Runs with the model in eval mode (no dropout) and under ``no_grad`` (no graph kept).
        """
        was_training = self.model.training
        self.model.eval()
        losses = []
        try:
            with no_grad():
                for x, y in self._eval_batches():
                    loss = loss_of(self.model(self._to_device(x), self._to_device(y)))
                    losses.append(float(loss.data))
        finally:
            if was_training:
                self.model.train()
        if not losses:
            raise ValueError("Trainer.evaluate: the evaluation data gave no batches")
        val_loss = float(np.mean(losses))
        return {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 700.0))}

    # --- callbacks ----------------------------------------------------------------------------
    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None and fn(self, *args) is True:
                self.should_stop = True

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The trainer's own JSON-able state (weights and optimizer buffers are saved apart)."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "tokens_seen": self.tokens_seen,
            "config": self.config.to_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": B.get_rng_state(),
            "data_rng": self._data_rng.bit_generator.state,  # PCG64: plain ints
            "loader": None if self.loader is None else self.loader.state_dict(),
            "fingerprint": self._fingerprint(),  # the tokenizer's and data's checksums
            "loss_scaler": self.precision.state_dict(),
        }

    def _fingerprint(self) -> dict:
        """:func:`~minroots.training.integrity.fingerprint` of the data, computed once."""
        if getattr(self, "_data_fingerprint", None) is None:
            self._data_fingerprint = fingerprint(self.dataset, self.tokenizer)
        return self._data_fingerprint

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current step (atomically) and call ``on_save``."""
        if self.out_dir is None:
            raise ValueError("Trainer.save_checkpoint: config.out_dir is None; set an out_dir")
        try:
            path = save_checkpoint(
                self.out_dir, self.step, self.model, self.optimizer, self.state_dict(),
                tokenizer=self.tokenizer, keep_last=self.config.keep_last,
                files=self.checkpoint_files,
            )  # fmt: skip
        except NonFiniteError as exc:  # the update made the weights NaN/inf: not a good checkpoint
            raise self._diverged(self.step, str(exc)) from exc
        self._call("on_save", self.step, path)
        return path

    def resume(
        self, out_dir: str | os.PathLike | None = None, ignore_fingerprint: bool = False
    ) -> Trainer:
        """Load the latest checkpoint of ``out_dir`` (default ``config.out_dir``) and return self.

        ``out_dir`` may also be one checkpoint folder. Weights and optimizer buffers are loaded in
        place; the step, schedule, RNG states and data position are restored; the history is read
        back and cut at the checkpoint's step. Then ``train()`` continues exactly.

        The checkpoint's files are verified first; a damaged newest checkpoint is skipped for the
        newest one that verifies, with a warning (:mod:`minroots.training.integrity`). A checkpoint
        trained with another tokenizer is refused unless ``ignore_fingerprint=True``; other data
        gives a warning.

        >>> import tempfile
        >>> from minroots import TransformerModel
        >>> def tiny():
        ...     return TransformerModel(vocab_size=76, block_size=16, n_layer=1, n_embd=16)
        >>> run = tempfile.mkdtemp()
        >>> _ = Trainer(tiny(), "shakespeare", max_steps=4, log_interval=0, out_dir=run).train()
        >>> trainer = Trainer(tiny(), "shakespeare", max_steps=4, log_interval=0, out_dir=run)
        >>> trainer.resume().step             # the latest checkpoint; train() would go on from it
        4
        >>> Trainer(tiny(), "shakespeare", max_steps=6, log_interval=0, out_dir=run).resume()
        Traceback (most recent call last):
        ValueError: Trainer.resume: the checkpoint was saved by a run of 4 steps but this trainer ...
        """
        source = Path(out_dir) if out_dir is not None else self.out_dir
        if source is None:
            raise ValueError("Trainer.resume: give out_dir (config.out_dir is None)")
        state = load_checkpoint(source)  # verified, then checked before any weight is touched
        state_file = Path(state["path"]) / "trainer_state.json"
        check_state(state, state_file, trainer=True)
        if state.get("total_steps", self.total_steps) != self.total_steps:
            raise ValueError(
                f"Trainer.resume: the checkpoint was saved by a run of {state['total_steps']} steps "
                f"but this trainer is set up for {self.total_steps}; the learning-rate schedule "
                "would differ (use the same max_steps/epochs)"
            )
        check_fingerprint(state.get("fingerprint"), self._fingerprint(), ignore=ignore_fingerprint)
        load_checkpoint(state["path"], self.model, self.optimizer)
        self.step = int(state["step"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        try:
            self.scheduler.load_state_dict(state["scheduler"])
            B.set_rng_state(state["rng"])
            self._data_rng.bit_generator.state = state["data_rng"]
            if self.loader is not None and state.get("loader") is not None:
                self.loader.load_state_dict(state["loader"])
            self.precision.load_state_dict(state.get("loss_scaler"))
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing the field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"Trainer.resume: {os.fspath(state_file)!r} cannot be restored: "
                             f"{detail}") from None  # fmt: skip
        self.world.separate_random_streams()  # chapter 13: the saved state is rank 0's
        run_dir = Path(state["path"]).parent.parent
        if self.out_dir is None:
            self.out_dir = run_dir
        self.history = History(
            r for r in History.read(run_dir / HISTORY_FILE) if r["step"] <= self.step
        )
        if self._writes:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.history.write(self.out_dir / HISTORY_FILE)
        self.should_stop = False
        return self

    # --- the loop -----------------------------------------------------------------------------
    def _prepare_out_dir(self) -> None:
        out = self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        if self.step == 0:
            old = list_checkpoints(out)
            if old and not self.config.overwrite:
                raise FileExistsError(
                    f"Trainer: out_dir {os.fspath(out)!r} already holds checkpoints of another run "
                    f"(latest {latest_checkpoint(out).name}); resume it with Trainer.resume(), "
                    "choose another out_dir, or set overwrite=True"
                )
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            for name in (HISTORY_FILE, LOSS_CURVE_FILE):
                (out / name).unlink(missing_ok=True)
        write_json(out / CONFIG_FILE, self.config.to_dict())

    @property
    def _writes(self) -> bool:
        """Whether this process writes files: it has an out_dir and is rank 0 (chapter 13)."""
        return self.out_dir is not None and self.world.is_main

    def _due(self, interval: int) -> bool:
        return interval > 0 and self.step % interval == 0

    def train(self) -> History:
        """Train until ``total_steps`` (or a callback stops it); return the :class:`History`.

        Writes ``history.jsonl``, ``loss_curve.png`` (at each evaluation) and checkpoints
        (every ``save_interval`` steps and at the end) into ``out_dir``.
        """
        cfg = self.config
        if self._writes:
            self._prepare_out_dir()
        self.model.train()
        self.should_stop = False
        quiet = cfg.log_interval == 0 or not self.world.is_main  # rank 0 alone shows progress
        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step",
                   disable=quiet, dynamic_ncols=True)  # fmt: skip
        window_tokens, window_time = 0, 0.0
        try:
            while self.step < self.total_steps and not self.should_stop:
                start, tokens_before = time.perf_counter(), self.tokens_seen
                loss, lr = self.train_step()
                window_time += time.perf_counter() - start
                window_tokens += self.tokens_seen - tokens_before
                last = self.step == self.total_steps
                record = {}
                if cfg.log_interval and (self._due(cfg.log_interval) or last):
                    tps = window_tokens / window_time if window_time > 0 else None
                    record.update(train_loss=loss, lr=lr, tokens_per_s=tps)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps or 0:.0f}", lr=f"{lr:.2e}")
                    window_tokens, window_time = 0, 0.0
                metrics = None
                if cfg.eval_interval and (self._due(cfg.eval_interval) or last):
                    metrics = self.evaluate()
                    record.update(metrics)
                    if cfg.log_interval and self.world.is_main:
                        bar.write(
                            f"step {self.step}: val loss {metrics['val_loss']:.4f}, "
                            f"perplexity {metrics['val_perplexity']:.2f}"
                        )
                if self.skipped_step:  # fp16: this step's gradients overflowed
                    record.update(skipped=True, loss_scale=self.precision.loss_scale)
                if record:
                    entry = self.history.add(self.step, **record)
                    if self._writes:
                        self.history.append_to(self.out_dir / HISTORY_FILE, entry)
                        if metrics is not None:
                            self.history.plot(self.out_dir / LOSS_CURVE_FILE)
                if metrics is not None:
                    self._call("on_evaluate", self.step, metrics)
                self._call("on_step_end", self.step, {"loss": loss, "lr": lr})
                bar.update(1)
                if self._writes and (self._due(cfg.save_interval) or last or self.should_stop):
                    self.save_checkpoint()
        finally:
            bar.close()
        return self.history
