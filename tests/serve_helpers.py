"""Helpers of the server tests: a tiny checkpoint made on the spot, and ``minroots serve`` as a
real subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from minroots import TransformerModel, manual_seed
from minroots.autograd import no_grad
from minroots.data import load_corpus
from minroots.serve import SlotCache
from minroots.tokenizers import BPETokenizer, CharTokenizer
from minroots.training.integrity import write_manifest

REPO = Path(__file__).resolve().parents[1]


def save_checkpoint(folder: Path, *, bpe: bool = False, block_size: int = 32, n_layer: int = 1,
                    n_embd: int = 32, seed: int = 0, tie_weights: bool = True):  # fmt: skip
    """An untrained model and its tokenizer saved as a checkpoint (characters of the bundled
    Shakespeare, or byte-level BPE with no merges: every byte a token), with its manifest;
    returns the tokenizer."""
    tok = BPETokenizer() if bpe else CharTokenizer.from_text(load_corpus("shakespeare")[:20000])
    manual_seed(seed)
    model = TransformerModel(vocab_size=tok.vocab_size, block_size=block_size, n_layer=n_layer,
                             n_head=2, n_embd=n_embd, tie_weights=tie_weights)  # fmt: skip
    model.save(folder)
    tok.save(Path(folder) / "tokenizer.json")
    write_manifest(folder)  # as a training checkpoint has: loading verifies the files
    return tok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m minroots serve --checkpoint DIR --port P ARGS...``, ready once /health answers."""

    def __init__(self, checkpoint, *args: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minroots", "serve", "--checkpoint", str(checkpoint),
             "--port", str(self.port), *args],
            cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                self.get("/health")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"minroots serve did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def get(self, path: str, headers=None) -> dict:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body, headers=None) -> tuple[int, dict, dict]:
        """``(status, JSON body, headers)`` of a POST (the headers read case-insensitively);
        ``body`` is bytes or JSON-able."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


ROWS = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]]  # prompts of different lengths, one slot each


def step_rows_together_and_alone(model, new=(11, 12, 13)):
    """``(batched, alone, cache)``: the last hidden state of one decoding step of the rows
    ``ROWS + new`` taken together from a shared :class:`SlotCache` (each row prefilled with its
    own prompt), and of each row run alone without a cache, both ``(3, n_embd)``."""
    cache = SlotCache(len(model.h), slots=len(ROWS), capacity=model.config.block_size)
    with no_grad():
        for row, p in enumerate(ROWS):
            model.hidden_states(np.array([p]), cache.views(row, row + 1))
            cache.advance(row, row + 1, len(p))
        batched = model.hidden_states(np.array([[t] for t in new]), cache.views(0, len(ROWS)))
        alone = [model.hidden_states(np.array([p + [t]])).data[:, -1]
                 for p, t in zip(ROWS, new, strict=True)]  # fmt: skip
    return batched.data[:, 0], np.concatenate(alone), cache
