r"""What data parallelism needs of a group of processes: a ``Communicator``, and its errors.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py``.

The :math:`N` processes of a data-parallel job are its **ranks**, numbered :math:`0 \dots N-1`.
They share nothing but messages, and training needs only three collective operations of them:

- ``all_reduce(a)``: every rank ends with the elementwise sum :math:`\sum_r a_r` of everybody's
  array, in place;
- ``broadcast(a, root)``: every rank ends with rank ``root``'s array;
- ``barrier()``: nobody goes on until everybody has arrived.

Three implementations: :class:`~minroots.distributed.mpi.MPICommunicator` (MPI through
``mpi4py``, NumPy arrays, CPUs and clusters), :class:`~minroots.distributed.nccl.NCCLCommunicator`
(NVIDIA's NCCL through CuPy, GPU arrays, one rank per GPU) and
:class:`~minroots.distributed.local.LocalCommunicator` (ranks simulated by threads of one
process, for notebooks and tests).

**Failure.** A collective finishes only when every rank takes part, so a rank that died would
make the others wait forever. Each implementation starts the operation without blocking and
polls it (:func:`wait_for`): past ``timeout`` seconds it raises :class:`CommunicationError`,
which says what happened and how to go on (resume from the last checkpoint).
"""

from __future__ import annotations

import time

__all__ = ["Communicator", "CommunicationError", "wait_for"]


class CommunicationError(RuntimeError):
    """A collective operation could not finish: another rank died, hung, or stopped the job."""


class Communicator:
    """A group of ``size`` ranks, of which this process is ``rank``; the interface of chapter 13.

    Subclasses implement :meth:`Communicator.all_reduce`, :meth:`Communicator.broadcast` and
    :meth:`Communicator.barrier`; ``timeout`` bounds how long each may wait for the other ranks.
    """

    name = "communicator"

    def __init__(self, rank: int, size: int, timeout: float = 300.0):
        self.rank, self.size, self.timeout = int(rank), int(size), float(timeout)

    def all_reduce(self, array) -> None:
        """Replace ``array`` (contiguous) with the sum of every rank's ``array``, in place."""
        raise NotImplementedError

    def broadcast(self, array, root: int = 0) -> None:
        """Replace ``array`` with rank ``root``'s, in place."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every rank has called ``barrier``."""
        raise NotImplementedError

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (after an error that leaves the others waiting)."""
        raise SystemExit(code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


def wait_for(done, comm: Communicator, what: str) -> None:
    """Poll ``done()`` until it is true; past ``comm.timeout`` seconds raise
    :class:`CommunicationError` naming the operation (``what``) and the rank.

    The pause between polls grows from 10 microseconds to 1 millisecond: a quick operation is
    seen at once, and a rank that waits long for a slow one leaves its core to the others.
    """
    start, pause = time.perf_counter(), 1e-5
    while not done():
        if time.perf_counter() - start > comm.timeout:
            raise CommunicationError(
                f"rank {comm.rank}/{comm.size}: the {what} did not finish within "
                f"{comm.timeout:g} s; another rank has probably died or hung (its own output "
                "says why). Resume from the last checkpoint with --resume (Trainer.resume())"
            )
        time.sleep(pause)
        pause = min(2 * pause, 1e-3)
