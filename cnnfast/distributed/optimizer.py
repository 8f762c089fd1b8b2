"""DistributedOptimizer: the gradient all-reduce between backward and the update, and the
broadcast of weights and optimizer state (docs/distributed.md, docs/training_step.md)."""
from __future__ import annotations

import time

import numpy as np

from .. import optimizers as optimizers_mod
from . import comm

REDUCTIONS = ("auto", "allgather", "reduce_bcast")
# "auto" gathers every rank's buffer up to this many ranks (each rank receives (N-1) buffers),
# and reduces to rank 0 then broadcasts above it (about 2 buffers per rank, in log N rounds):
# docs/distributed.md#reduction-order has the measurements behind it.
AUTO_ALLGATHER_MAX_RANKS = 4


class GradientReducer:
    """The data-parallel state a DistributedOptimizer carries (`optimizer._distributed`):
    the world, the flat gradient buffer and the timing of the all-reduces.

    The engines (cnnfast/executor.py) call `allreduce_gradients` between backward and the
    update; `fit` (cnnfast/models/training.py) calls `shard` for each global batch."""

    def __init__(self, world, reduction):
        self.world = world
        self.rank, self.size = world.rank, world.size
        if reduction == "auto":
            reduction = "allgather" if self.size <= AUTO_ALLGATHER_MAX_RANKS else "reduce_bcast"
        self.reduction = reduction
        self._flat = self._stack = None
        self.seconds = 0.0  # wall time inside allreduce_gradients, summed
        self.calls = 0

    def shard(self, m):
        """(offset, count) of this rank's rows in a global batch of m rows: contiguous blocks
        in rank order, the first m % size ranks one row more. A rank may get 0 rows (m < size):
        it still takes part in the step's all-reduce, with zero gradients."""
        base, extra = divmod(int(m), self.size)
        return self.rank * base + min(self.rank, extra), base + (self.rank < extra)

    # ---- what fit asks of the job (cnnfast/models/training.py) ----
    @staticmethod
    def agree(what, items):
        """DistributedError on every rank unless every rank has the same `items`."""
        comm.check_agree(what, items)

    @staticmethod
    def any(flag):
        """`flag` of any rank (stop_training: every rank stops at the same step)."""
        return comm.any_rank(flag)

    @staticmethod
    def share_generator(gen):
        """Give `gen` rank 0's state: every rank draws the same permutations and step seeds."""
        gen.bit_generator.state = comm.broadcast_object(gen.bit_generator.state, 0)

    @staticmethod
    def reduce_trackers(trackers):
        comm.reduce_trackers(trackers)

    def _buffers(self, n):
        if self._flat is None or self._flat.size != n:
            self._flat = np.empty(n, np.float32)
            self._out = np.empty(n, np.float32)
            self._stack = np.empty((self.size, n), np.float32) \
                if self.reduction == "allgather" else None
        return self._flat, self._out

    def allreduce_gradients(self, grads, weight):
        """In place: every array of `grads` (float32) becomes sum over ranks of
        weight_r * grad_r, where weight_r is this rank's share of the global batch (rows / all
        rows). One flat buffer, one collective; the sum is taken in rank order (allgather) or
        once on rank 0 and broadcast (reduce_bcast), so every rank gets the same bits."""
        t0 = time.perf_counter()
        n = sum(g.size for g in grads)
        flat, out = self._buffers(n)
        w = np.float32(weight)
        o = 0
        for g in grads:
            np.multiply(g.reshape(-1), w, out=flat[o:o + g.size])
            o += g.size
        c = self.world.comm
        if self.reduction == "allgather":
            c.Allgather(flat, self._stack)
            np.copyto(out, self._stack[0])
            for r in range(1, self.size):
                out += self._stack[r]
        else:
            c.Reduce(flat, out if self.rank == 0 else None, op=self.world.MPI.SUM, root=0)
            c.Bcast(out, root=0)
        o = 0
        for g in grads:
            g.reshape(-1)[...] = out[o:o + g.size]
            o += g.size
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def DistributedOptimizer(optimizer, reduction="auto"):
    """Horovod's DistributedOptimizer: `optimizer` (an instance or a name) whose every update
    uses the gradients averaged over the ranks (weighted by each rank's rows of the step), so
    every rank applies the same update to the same weights, bit for bit.

    Returns the same optimizer object, marked: the engines keep their native step (docs/
    training_step.md#the-data-parallel-split). reduction: "allgather" (every rank sums the
    gathered buffers in rank order), "reduce_bcast" (rank 0 sums, then broadcasts) or "auto"
    (docs/distributed.md#reduction-order)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"DistributedOptimizer: reduction must be one of {REDUCTIONS}, got "
                         f"{reduction!r}")
    opt = optimizers_mod.get(optimizer)
    opt._distributed = GradientReducer(comm.world(), reduction)
    return opt


def broadcast_variables(variables, root_rank=0):
    """Overwrite each NumPy array of `variables` in place with root_rank's (MPI Bcast)."""
    c = comm.world().comm
    for v in variables:
        if not (isinstance(v, np.ndarray) and v.flags.c_contiguous and v.flags.writeable):
            raise TypeError("broadcast_variables: each variable must be a writable "
                            "C-contiguous NumPy array")
        c.Bcast(v, root=root_rank)
