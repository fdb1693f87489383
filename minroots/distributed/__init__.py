"""Data-parallel training: ranks, communicators (MPI, NCCL, simulated), bucketed all-reduce.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py``.

- ``communicator.py``: :class:`~minroots.distributed.communicator.Communicator`, the interface (``all_reduce``, ``broadcast``,
  ``barrier``), :class:`~minroots.distributed.communicator.CommunicationError` and the polling that turns a dead rank into one.
- ``mpi.py``: :class:`~minroots.distributed.mpi.MPICommunicator`, NumPy arrays over MPI
  (``mpi4py``); ``nccl.py``: :class:`~minroots.distributed.nccl.NCCLCommunicator`, CuPy arrays
  over NCCL. Neither is imported by a single-process run (nor by this file).
- ``local.py``: :class:`~minroots.distributed.local.LocalGroup` and :func:`~minroots.distributed.local.run_ranks`, ranks simulated by threads
  (notebooks, tests).
- ``buckets.py``: :class:`~minroots.distributed.buckets.GradientBuckets`, gradients packed into few all-reduce calls.
- ``world.py``: :class:`~minroots.distributed.world.World`, this process's rank, the batch shard, the gradient average.

Run ``mpirun -np 2 minroots train --preset tiny`` to train one model on two processes.
"""

from minroots.distributed.buckets import GradientBuckets, plan_buckets
from minroots.distributed.communicator import CommunicationError, Communicator
from minroots.distributed.local import LocalCommunicator, LocalGroup, run_ranks
from minroots.distributed.world import World, launched_ranks, rows_per_micro_batch, shard

__all__ = [
    "Communicator", "CommunicationError", "LocalGroup", "LocalCommunicator", "GradientBuckets",
    "plan_buckets", "run_ranks", "World", "launched_ranks", "rows_per_micro_batch", "shard",
]  # fmt: skip
