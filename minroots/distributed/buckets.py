r"""Gradient buckets: many gradients packed into a few flat buffers, one all-reduce call each.

Book chapter 13, "Training at scale" (``book/13_training_at_scale.md``); tests in
``tests/test_distributed.py``.

Every collective call pays a fixed latency :math:`\alpha` (a few microseconds within a machine,
tens across a network) plus the time to move its bytes. A GPT has dozens of parameter tensors,
many of them small (biases, layer-norm gains), so reducing them one call each pays
:math:`\alpha` dozens of times. PyTorch's ``DistributedDataParallel`` packs gradients into
buckets of about 25 MB instead; so does :class:`GradientBuckets`:

1. **plan** (once): walk the parameters in *reverse* order (the order in which the backward pass
   finishes their gradients) and cut the walk into buckets of at most ``bucket_bytes``;
2. **pack**: copy each gradient into its slice of the bucket's flat buffer;
3. **all-reduce** each buffer (one call per bucket) and **unpack**, dividing by the number of
   ranks :math:`N`, so that every rank ends with the mean gradient
   :math:`\bar g = \frac1N \sum_r g_r`.

A few scalars (the step's loss) ride along at the end of the last bucket, so they cost no call
of their own. Worked example: gradients of 4, 1 and 3 numbers with room for 5 per bucket give
the buckets ``[3 | 1]`` and ``[4]`` (reverse order; a tensor never spans two buckets).
"""

from __future__ import annotations

from minroots import backend as B

__all__ = ["GradientBuckets", "plan_buckets"]


def plan_buckets(sizes: list[int], capacity: int) -> list[list[int]]:
    """Indices of the tensors in each bucket: reverse order, at most ``capacity`` numbers per
    bucket (a tensor larger than that gets a bucket of its own).

    >>> plan_buckets([4, 1, 3], capacity=5)
    [[2, 1], [0]]
    """
    buckets, current, filled = [], [], 0
    for i in reversed(range(len(sizes))):
        if current and filled + sizes[i] > capacity:
            buckets.append(current)
            current, filled = [], 0
        current.append(i)
        filled += sizes[i]
    if current:
        buckets.append(current)
    return buckets


class GradientBuckets:
    """The buckets of a fixed list of parameters, with buffers allocated once and reused.

    ``extra`` numbers at the end of the last bucket carry scalars (the loss) through the same
    all-reduce.
    """

    def __init__(self, params: list, bucket_bytes: int, extra: int = 1):
        if not params:
            raise ValueError("GradientBuckets: no parameters to reduce")
        dtypes = {p.data.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"GradientBuckets: parameters of one dtype expected, got {dtypes}")
        self.params, self.extra = list(params), int(extra)
        self.dtype = dtypes.pop()
        xp = B.get_array_module(self.params[0].data)
        capacity = max(1, int(bucket_bytes) // self.dtype.itemsize)
        self.plan = plan_buckets([p.data.size for p in self.params], capacity)
        self.buffers = []
        for k, members in enumerate(self.plan):
            n = sum(self.params[i].data.size for i in members)
            n += self.extra if k == len(self.plan) - 1 else 0
            self.buffers.append(xp.empty(n, dtype=self.dtype))

    def __len__(self) -> int:
        return len(self.plan)

    def all_reduce_mean(self, comm, scalars: list[float]) -> list[float]:
        """Average every parameter's ``.grad`` (and ``scalars``) over the ranks of ``comm``, in
        ``len(self)`` all-reduce calls. A missing gradient counts as zeros."""
        scale = self.dtype.type(1.0 / comm.size)
        out = []
        for k, (members, buf) in enumerate(zip(self.plan, self.buffers, strict=True)):
            start = 0
            for i in members:  # pack
                p = self.params[i]
                n = p.data.size
                if p.grad is None:
                    buf[start : start + n] = 0
                else:
                    buf[start : start + n] = p.grad.reshape(-1)
                start += n
            last = k == len(self.plan) - 1
            if last:
                buf[start:] = B.get_array_module(buf).asarray(scalars, dtype=self.dtype)
            comm.all_reduce(buf)
            buf *= scale
            start = 0
            for i in members:  # unpack
                p = self.params[i]
                n = p.data.size
                if p.grad is None:
                    p.grad = buf[start : start + n].reshape(p.data.shape).copy()
                else:
                    p.grad[...] = buf[start : start + n].reshape(p.data.shape)
                start += n
            if last:
                out = [float(v) for v in B.to_numpy(buf[start:])]
        return out
