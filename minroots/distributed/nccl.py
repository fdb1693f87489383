"""``NCCLCommunicator``: GPU ranks, one per GPU, reducing CuPy arrays with NVIDIA's NCCL.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py`` (the ``gpu``-marked one-GPU test).

NCCL ("nickel") runs ring and tree all-reduces directly between GPU memories (NVLink, PCIe,
InfiniBand), without a trip through the host. CuPy ships its binding, ``cupy.cuda.nccl``, which
this module gets from :func:`minroots.backend.cuda` (only the backend imports CuPy).

Starting a group: rank 0 draws a *unique id* (128 bytes naming the group), every rank must learn
it, and then each calls ``NcclCommunicator(size, id, rank)``. With one rank there is nobody to
tell; with several, the id travels by MPI (:class:`~minroots.distributed.mpi.MPICommunicator`),
which the launcher (``mpirun``/``srun``) set up anyway. Each rank uses GPU number ``local_rank``
(its index among the ranks of its machine).

NCCL calls return at once and run on a CUDA stream; :func:`~minroots.distributed.communicator.wait_for`
polls an event recorded after the call, so a dead peer ends in a ``CommunicationError`` (and the
NCCL communicator is aborted) instead of a hang.
"""

from __future__ import annotations

import numpy as np

from minroots import backend as B
from minroots.distributed.communicator import Communicator, wait_for

__all__ = ["NCCLCommunicator"]

UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


class NCCLCommunicator(Communicator):
    """``size`` GPU ranks; this one is ``rank`` and uses GPU ``local_rank``.

    ``bootstrap`` (an MPI communicator of the same ranks) carries rank 0's unique id to the
    others; it is not needed for a group of one.
    """

    name = "nccl"

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0,
                 timeout: float = 300.0, bootstrap: Communicator | None = None):  # fmt: skip
        super().__init__(rank, size, timeout)
        cuda = B.cuda()
        self.cuda, self.nccl = cuda, cuda.nccl
        count = cuda.runtime.getDeviceCount()
        if local_rank >= count:
            raise RuntimeError(
                f"NCCLCommunicator: rank {rank} is rank {local_rank} on its machine, which has "
                f"{count} GPU(s); NCCL needs one GPU per rank: start at most {count} ranks per "
                "machine (mpirun -np / srun --ntasks-per-node)"
            )
        cuda.Device(local_rank).use()
        self.local_rank = local_rank
        uid = self.nccl.get_unique_id() if rank == 0 else (0,) * UNIQUE_ID_BYTES
        if size > 1:
            if bootstrap is None:
                raise ValueError("NCCLCommunicator: a group of several ranks needs bootstrap=")
            buffer = np.asarray(uid, dtype=np.int64)  # the id's bytes, as numbers MPI can send
            bootstrap.broadcast(buffer, root=0)
            uid = tuple(int(v) for v in buffer)
        self.bootstrap = bootstrap
        self.comm = self.nccl.NcclCommunicator(size, uid, rank)
        self._types = {
            np.dtype(np.float32): self.nccl.NCCL_FLOAT32,
            np.dtype(np.float64): self.nccl.NCCL_FLOAT64,
            np.dtype(np.float16): self.nccl.NCCL_FLOAT16,
        }

    def _launch(self, array, op: str):
        if B.device_of(array) != "cuda":
            raise TypeError(
                f"NCCLCommunicator.{op}: NCCL reduces GPU arrays (CuPy), got "
                f"{type(array).__module__}.{type(array).__name__}; use the MPI communicator for "
                "device='cpu'"
            )
        if array.dtype not in self._types:
            raise TypeError(
                f"NCCLCommunicator.{op}: dtype must be float16/32/64, got {array.dtype}"
            )
        if not array.flags.c_contiguous:
            raise ValueError(f"NCCLCommunicator.{op}: the array must be C-contiguous, got strides "
                             f"{array.strides} for shape {array.shape}")  # fmt: skip
        return self.cuda.get_current_stream(), self._types[array.dtype]

    def _wait(self, stream, what: str) -> None:
        event = stream.record()
        try:
            wait_for(lambda: event.done, self, what)
        except Exception:
            self.comm.abort()  # free the GPU from the collective that cannot finish
            raise

    def all_reduce(self, array) -> None:
        stream, dtype = self._launch(array, "all_reduce")
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, dtype, self.nccl.NCCL_SUM, stream.ptr)
        self._wait(stream, "all-reduce")

    def broadcast(self, array, root: int = 0) -> None:
        stream, dtype = self._launch(array, "broadcast")
        self.comm.bcast(array.data.ptr, array.size, dtype, root, stream.ptr)
        self._wait(stream, "broadcast")

    def barrier(self) -> None:
        token = B.xp("cuda").zeros(1, dtype=np.float32)
        self.all_reduce(token)

    def abort(self, code: int = 1) -> None:
        self.comm.abort()
        if self.bootstrap is not None:
            self.bootstrap.abort(code)
        raise SystemExit(code)
