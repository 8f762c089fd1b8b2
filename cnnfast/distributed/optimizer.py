"""DistributedOptimizer: the gradient all-reduce between backward and the update, and the
broadcast of weights and optimizer state (docs/distributed.md, docs/training_step.md)."""
from __future__ import annotations

import time

import numpy as np

from .. import optimizers as optimizers_mod
from . import comm

REDUCTIONS = ("auto", "reduce_scatter", "allgather", "reduce_bcast")
# What each moves per rank and step, for P gradient bytes on N ranks (docs/distributed.md#
# reduction-order): reduce_scatter 2(N-1)/N * P (the ring all-reduce's volume), allgather
# (N-1) * P, reduce_bcast about 2 * 2(N-1)/N * P. reduce_scatter and allgather add in the
# same order (rank 0 + rank 1 + ...) and give the same bits; "auto" takes allgather on 2 ranks
# (one collective, the same volume) and reduce_scatter above.


class GradientReducer:
    """The data-parallel state a DistributedOptimizer carries (`optimizer._distributed`):
    the world, the flat gradient buffer and the timing of the all-reduces.

    The engines (cnnfast/executor.py) call `allreduce_gradients` between backward and the
    update; `fit` (cnnfast/models/training.py) calls `shard` for each global batch."""

    def __init__(self, world, reduction):
        self.world = world
        self.rank, self.size = world.rank, world.size
        if reduction == "auto":
            reduction = "allgather" if self.size <= 2 else "reduce_scatter"
        self.reduction = reduction
        self._flat = self._stack = self._n = None
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
        """The flat send and result buffers (n values, padded to a multiple of size for
        reduce_scatter's equal chunks) and the receive stack, allocated once per size."""
        if self._n != n:
            self._n = n
            m = -(-n // self.size) * self.size if self.reduction == "reduce_scatter" else n
            self._flat = np.zeros(m, np.float32)
            self._out = np.empty(m, np.float32)
            rows = {"allgather": n, "reduce_scatter": m // self.size}.get(self.reduction)
            self._stack = None if rows is None else np.empty((self.size, rows), np.float32)
            self._chunk = np.empty(m // self.size, np.float32)
        return self._flat, self._out

    def allreduce_gradients(self, grads, weight):
        """In place: every array of `grads` (float32) becomes sum over ranks of
        weight_r * grad_r, where weight_r is this rank's share of the global batch (rows / all
        rows). One flat buffer; each sum is taken once, in rank order (reduce_scatter,
        allgather) or in MPI's order on rank 0 (reduce_bcast), and its result sent to every
        rank, so every rank gets the same bits."""
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
        elif self.reduction == "reduce_scatter":
            # chunk r of every rank to rank r, which sums them in rank order; then every
            # rank gathers the summed chunks (the two phases of a ring all-reduce)
            stack, mine = self._stack, self._chunk
            c.Alltoall(flat.reshape(self.size, -1), stack)
            np.copyto(mine, stack[0])
            for r in range(1, self.size):
                mine += stack[r]
            c.Allgather(mine, out.reshape(self.size, -1))
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
    training_step.md#the-data-parallel-split). reduction (docs/distributed.md#reduction-order):
    "reduce_scatter" (rank r sums chunk r of every rank in rank order, then all gather the
    chunks), "allgather" (every rank sums all the buffers in rank order: the same bits),
    "reduce_bcast" (MPI_Reduce to rank 0, in MPI's order, then a broadcast) or "auto"."""
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
