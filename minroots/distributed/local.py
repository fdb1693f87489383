"""``LocalGroup``: ranks simulated by threads of one process, behind the same communicator interface.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py``. The chapter's notebook uses it to run a 2-rank job in a notebook.

Each thread plays one rank and holds its own :class:`LocalCommunicator`; the collectives meet
at a ``threading.Barrier``. The sum of an all-reduce is taken in rank order, as a 2-rank MPI job
adds its two arrays, so a simulated run gives the weights of a real one.

>>> arrays = [np.array([1.0, 2.0]), np.array([10.0, 20.0])]
>>> def rank(comm):                      # what each rank runs, given its communicator
...     comm.all_reduce(arrays[comm.rank])
...     return comm.rank
>>> run_ranks(2, rank)
[0, 1]
>>> arrays[0], arrays[1]
(array([11., 22.]), array([11., 22.]))
"""

from __future__ import annotations

import threading

from minroots.distributed.communicator import CommunicationError, Communicator

__all__ = ["LocalGroup", "LocalCommunicator", "run_ranks"]


class LocalGroup:
    """``size`` simulated ranks; :meth:`LocalGroup.communicator` gives rank ``r`` its end of the group."""

    def __init__(self, size: int, timeout: float = 60.0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalGroup: size must be an integer >= 1, got {size!r}")
        self.size, self.timeout = size, float(timeout)
        self._barrier = threading.Barrier(size)
        self._slots: list = [None] * size

    def communicator(self, rank: int) -> LocalCommunicator:
        """Rank ``rank``'s end of the group, to hand to that rank's thread."""
        if not 0 <= rank < self.size:
            raise ValueError(
                f"LocalGroup.communicator: rank must be in [0, {self.size}), got {rank}"
            )
        return LocalCommunicator(self, rank)

    def _meet(self, comm: LocalCommunicator, what: str) -> None:
        try:
            self._barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise CommunicationError(
                f"rank {comm.rank}/{self.size}: the {what} did not finish within "
                f"{self.timeout:g} s; another rank has probably died or hung"
            ) from None


class LocalCommunicator(Communicator):
    """One simulated rank of a :class:`LocalGroup`."""

    name = "local"

    def __init__(self, group: LocalGroup, rank: int):
        super().__init__(rank, group.size, group.timeout)
        self.group = group

    def all_reduce(self, array) -> None:
        g = self.group
        g._slots[self.rank] = array.copy()
        g._meet(self, "all-reduce")  # every rank has put its array
        total = g._slots[0].copy()
        for other in g._slots[1:]:
            total += other  # rank order: 0 + 1 + ... as MPI adds two ranks
        g._meet(self, "all-reduce")  # every rank has read them all
        array[...] = total

    def broadcast(self, array, root: int = 0) -> None:
        g = self.group
        if self.rank == root:
            g._slots[root] = array.copy()
        g._meet(self, "broadcast")
        value = g._slots[root]
        g._meet(self, "broadcast")
        array[...] = value

    def barrier(self) -> None:
        self.group._meet(self, "barrier")


def run_ranks(size: int, fn, timeout: float = 60.0, group: LocalGroup | None = None) -> list:
    """Run ``fn(communicator)`` once per simulated rank, each in its own thread, and return the
    results in rank order; the first exception of any rank is raised again here.

    The threads share minroots' random generators (one process): give them dropout 0, and make
    their models before calling this."""
    group = group if group is not None else LocalGroup(size, timeout)
    results, errors = [None] * size, [None] * size

    def target(rank):
        try:
            results[rank] = fn(group.communicator(rank))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[rank] = exc
            group._barrier.abort()  # the other ranks stop waiting for this one

    threads = [threading.Thread(target=target, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = next((e for e in errors if e is not None and not isinstance(e, CommunicationError)),
                 next((e for e in errors if e is not None), None))  # fmt: skip
    if first is not None:
        raise first
    return results
