"""``MPICommunicator``: the ranks of ``mpirun``/``srun``, through MPI (``mpi4py``), NumPy arrays.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py`` (2 ranks under ``mpirun``).

MPI (the Message Passing Interface) is how clusters have run parallel programs since 1994: a
launcher (``mpirun -np 4 ...``, or Slurm's ``srun``) starts the same program several times, and
the MPI library connects the copies. ``mpi4py`` is its Python binding; it is imported here and
nowhere else, and only when a job has more than one rank (``pip install "minroots[distributed]"``
and an MPI library such as Open MPI or MPICH).

Each operation is MPI's non-blocking form (``Iallreduce``, ``Ibcast``, ``Ibarrier``), polled by
:func:`~minroots.distributed.communicator.wait_for`, so that a dead rank ends in a
:class:`~minroots.distributed.communicator.CommunicationError` instead of a hang.
"""

from __future__ import annotations

from minroots import backend as B
from minroots.distributed.communicator import Communicator, wait_for

__all__ = ["MPICommunicator", "import_mpi"]


def import_mpi():
    """``mpi4py.MPI``, or a RuntimeError that says how to install it."""
    try:
        from mpi4py import MPI  # optional (the "distributed" extra): only for jobs of several ranks
    except ImportError as exc:
        raise RuntimeError(
            "import_mpi: this process was started as one rank of several (mpirun/srun) but mpi4py is not "
            f'installed ({exc}); install it with `pip install "minroots[distributed]"` next to '
            "an MPI library (Debian/Ubuntu: apt-get install openmpi-bin)"
        ) from None
    return MPI


class MPICommunicator(Communicator):
    """The ranks of ``MPI.COMM_WORLD``; reduces NumPy (CPU) arrays."""

    name = "mpi"

    def __init__(self, timeout: float = 300.0):
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD
        super().__init__(self.comm.Get_rank(), self.comm.Get_size(), timeout)

    def _check(self, array, op: str):
        if B.device_of(array) != "cpu":
            raise TypeError(
                f"MPICommunicator.{op}: MPI here reduces NumPy (CPU) arrays, got a GPU array; "
                "use the NCCL communicator for device='cuda'"
            )
        if not array.flags.c_contiguous:
            raise ValueError(f"MPICommunicator.{op}: the array must be C-contiguous, got strides "
                             f"{array.strides} for shape {array.shape}")  # fmt: skip

    def all_reduce(self, array) -> None:
        self._check(array, "all_reduce")
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        wait_for(request.Test, self, "all-reduce")

    def broadcast(self, array, root: int = 0) -> None:
        self._check(array, "broadcast")
        request = self.comm.Ibcast(array, root=root)
        wait_for(request.Test, self, "broadcast")

    def barrier(self) -> None:
        request = self.comm.Ibarrier()
        wait_for(request.Test, self, "barrier")

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)
