r"""``World``: this process's place in a data-parallel job, and what the Trainer asks of it.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py``.

**Data parallelism.** :math:`N` ranks hold the same weights. Each step has one *global* batch of
:math:`S` sequences (``batch_size * grad_accum_steps``, the same numbers as in one process);
rank :math:`r` computes the gradient of the mean loss over its own :math:`S/N` rows, and an
all-reduce averages the :math:`N` gradients:

.. math::
    \bar g = \frac1N \sum_{r=0}^{N-1} \nabla_\theta \frac{N}{S} \sum_{i \in \text{rows}(r)} \ell_i
           = \nabla_\theta \frac1S \sum_{i=1}^{S} \ell_i

the gradient of the whole batch. Every rank then applies the same optimizer step to the same
weights, so the weights stay equal everywhere without ever being sent again.

**The data.** Every rank draws the *whole* global batch from the same generator (or the same
``DataLoader`` position), then keeps rows :math:`[rS/N, (r+1)S/N)`: a few kilobytes of token
ids, and the data order and its resume state are those of a 1-process run. So a checkpoint
resumes on any number of ranks that divides :math:`S` and sees the same global batches.

**Who writes.** Rank 0 alone writes checkpoints, the history, the loss curve and the progress
bar (:attr:`World.is_main`); the others compute the same values and keep them to themselves.

**Launching.** ``mpirun -np 2 minroots train ...`` (or Slurm's ``srun``) starts the ranks;
:meth:`World.launch` reads the launcher's environment (``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``,
``SLURM_STEP_NUM_TASKS``) and, only when there is more than one rank, builds the communicator
the backend calls for: MPI for NumPy arrays, NCCL for CuPy ones. A single process imports
neither.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from minroots import backend as B
from minroots.distributed.buckets import GradientBuckets
from minroots.distributed.communicator import CommunicationError, Communicator

__all__ = ["World", "launched_ranks", "rows_per_micro_batch", "shard"]

# (size, rank, local rank) variables of each launcher, in the order they are tried
_LAUNCHERS = [
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Open MPI
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH, Intel MPI
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID"),  # srun
]


def launched_ranks(environ=None) -> tuple[int, int, int]:
    """``(size, rank, local_rank)`` of this process as its launcher set them; ``(1, 0, 0)`` for a
    process started on its own.

    >>> launched_ranks({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"})
    (2, 1, 0)
    >>> launched_ranks({})
    (1, 0, 0)
    """
    env = os.environ if environ is None else environ
    for size, rank, local in _LAUNCHERS:
        if size in env and rank in env:
            return int(env[size]), int(env[rank]), int(env.get(local, 0))
    return 1, 0, 0


def shard(batch, rank: int, size: int):
    """Rank ``rank``'s rows of a batch (an array, or a tuple/dict of arrays with the same rows).

    >>> shard(np.arange(6), 1, 3)
    array([2, 3])
    """
    if isinstance(batch, tuple):
        return tuple(shard(b, rank, size) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, rank, size) for k, v in batch.items()}
    n = len(batch) // size
    return batch[rank * n : (rank + 1) * n]


def rows_per_micro_batch(rows: int, batch_size: int) -> int:
    """The most rows, at most ``batch_size``, that divide ``rows`` evenly: the micro-batch of a
    rank that holds ``rows`` rows of the step (equal micro-batches keep the mean exact).

    >>> rows_per_micro_batch(8, 4), rows_per_micro_batch(3, 2), rows_per_micro_batch(4, 16)
    (4, 1, 4)
    """
    return max(d for d in range(1, min(rows, batch_size) + 1) if rows % d == 0)


@dataclass
class World:
    """This process's rank in a job of ``size`` ranks (one process: rank 0 of 1, no communicator).

    The Trainer calls :meth:`World.shard` on each step's batch, :meth:`World.average_gradients`
    after the backward, and writes files only when :attr:`World.is_main`.
    """

    rank: int = 0  # this process's number, 0 .. size - 1 (rank 0 writes the files)
    size: int = 1  # number of ranks training the model together
    comm: Communicator | None = None  # how the ranks talk (None for one process)
    bucket_mb: float = 25.0  # megabytes of gradients per all-reduce call

    def __post_init__(self):
        self._buckets = None
        self.comm_seconds = 0.0  # time spent in all-reduce calls (benchmarks/data_parallel.py)

    @property
    def is_main(self) -> bool:
        """True on rank 0, the one that writes checkpoints, logs and the progress bar."""
        return self.rank == 0

    # --- starting -----------------------------------------------------------------------------
    @classmethod
    def launch(cls, config, environ=None) -> World:
        """The world of a ``TrainerConfig``: checks its batch and communicator against the ranks
        the launcher started, and builds the communicator when there are several."""
        size, rank, local_rank = launched_ranks(environ)
        device = config.device
        if device == "auto":
            device = "cuda" if B.cupy_available() else "cpu"
        kind = config.communicator
        if kind == "auto":
            kind = "nccl" if device == "cuda" else "mpi"
        if kind == "nccl" and device != "cuda":
            raise ValueError(
                f"Trainer: communicator='nccl' needs GPU arrays (device='cuda'), got "
                f"device={config.device!r}; use communicator='mpi' (or 'auto') on the CPU"
            )
        world = cls(rank=rank, size=size, bucket_mb=config.bucket_mb)
        world.check_batch(config.batch_size * config.grad_accum_steps)
        if size > 1:
            world.comm = _communicator(kind, rank, size, local_rank, config.comm_timeout)
            world._stop_on_sigterm()
        return world

    def check_batch(self, sequences: int) -> None:
        """The step's ``sequences`` must split into equal shards of at least one row per rank."""
        if sequences < self.size:
            raise ValueError(
                f"Trainer: {self.size} ranks but a global batch of {sequences} sequences "
                "(batch_size * grad_accum_steps); every rank needs at least one row: raise "
                "batch_size or start fewer ranks"
            )
        if sequences % self.size:
            raise ValueError(
                f"Trainer: the global batch of {sequences} sequences (batch_size * "
                f"grad_accum_steps) does not split evenly over {self.size} ranks; make it a "
                f"multiple of {self.size}"
            )

    def _stop_on_sigterm(self) -> None:
        """``mpirun`` ends the other ranks with SIGTERM when one dies: say so, instead of a
        silent exit (the CLI then names the last checkpoint)."""

        def stop(signum, frame):
            raise CommunicationError(
                f"rank {self.rank}/{self.size}: stopped by the launcher (signal {signum}): "
                "another rank has probably died (its own output says why). Resume from the last "
                "checkpoint with --resume (Trainer.resume())"
            )

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)

    # --- each step ----------------------------------------------------------------------------
    def shard(self, batch):
        """This rank's rows of the step's global batch (the batch itself in one process)."""
        return batch if self.size == 1 else shard(batch, self.rank, self.size)

    def micro_batches(self, config) -> int:
        """Micro-batches per step on this rank: its ``S/N`` rows in equal pieces of at most
        ``batch_size`` rows (``grad_accum_steps`` in one process)."""
        rows = config.batch_size * config.grad_accum_steps // self.size
        return rows // rows_per_micro_batch(rows, config.batch_size)

    def broadcast_parameters(self, params) -> None:
        """Rank 0's weights on every rank (they start equal even if seeded differently)."""
        if self.size > 1:
            for p in params:
                self.comm.broadcast(p.data, root=0)

    def average_gradients(self, params, loss: float) -> float:
        """Replace every ``.grad`` with its mean over the ranks (bucketed all-reduce) and return
        the mean of the ranks' losses; nothing to do in one process."""
        if self.size == 1:
            return loss
        if self._buckets is None:
            self._buckets = GradientBuckets(params, int(self.bucket_mb * 2**20))
        start = time.perf_counter()
        (mean_loss,) = self._buckets.all_reduce_mean(self.comm, [loss])
        self.comm_seconds += time.perf_counter() - start
        return mean_loss

    def separate_random_streams(self) -> None:
        """Give each rank its own dropout masks: rank ``r`` jumps NumPy's generator ``r`` times
        2^127 draws ahead (PCG64's ``jumped``), so the streams never overlap. Jumping commutes with
        drawing, so a run resumed from rank 0's saved state is exact on every rank. (CuPy's
        generator cannot jump: on the GPU all ranks draw the same masks for their own rows.)"""
        if self.size > 1 and self.rank > 0:
            gen = B.rng("numpy")
            gen.bit_generator.state = gen.bit_generator.jumped(self.rank).state

    def fail(self, message: str, code: int = 1) -> None:
        """Print ``minroots: error: message`` and end every rank of the job (after an error that
        would leave the others waiting)."""
        print(f"minroots: error: {message}", file=sys.stderr, flush=True)
        if self.comm is not None:
            self.comm.abort(code)
        raise SystemExit(code)


def _communicator(kind: str, rank: int, size: int, local_rank: int, timeout: float):
    from minroots.distributed.mpi import MPICommunicator  # only jobs of several ranks import MPI

    mpi = MPICommunicator(timeout)
    if mpi.size != size or mpi.rank != rank:
        raise RuntimeError(
            f"World: the launcher says rank {rank} of {size} but MPI says rank {mpi.rank} of {mpi.size}; "
            "mpi4py is probably built for another MPI library than the one of mpirun"
        )
    if kind == "mpi":
        return mpi
    from minroots.distributed.nccl import NCCLCommunicator

    return NCCLCommunicator(rank, size, local_rank, timeout, bootstrap=mpi)
