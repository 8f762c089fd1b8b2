"""The MPI world of cnnfast.distributed: init(), the ranks, and the few collectives the training
loop needs, every reduction in a fixed rank order (docs/distributed.md#reduction-order).

mpi4py is imported by `init()`, never at import time."""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from .. import backend


class DistributedError(RuntimeError):
    """Ranks that disagree (model, data, batch counts), raised on every rank alike."""


class _World:
    def __init__(self, mpi, comm):
        self.MPI = mpi
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        local = comm.Split_type(mpi.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = local.Get_rank()
        self.local_size = local.Get_size()
        local.Free()


_world = None


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("cnnfast.distributed needs mpi4py and an MPI library: "
                          "pip install 'cnnfast[mpi]' (mpi4py and the mpich wheel)") from e
    return MPI


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _abort_on_exception(world):
    """An uncaught exception on one rank aborts the whole job (MPI_Abort), as
    `python -m mpi4py` does: the other ranks would otherwise wait in their next collective
    forever."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        # The one line that says what happened first, then the traceback: MPI_Abort kills the
        # job while mpiexec may still be forwarding this rank's output, and the short pause
        # lets it drain what was written.
        sys.stderr.write(f"cnnfast.distributed: rank {world.rank} aborts the job: "
                         f"{kind.__name__}: {value}\n")
        sys.stderr.flush()
        previous(kind, value, tb)
        sys.stderr.flush()
        time.sleep(0.5)
        world.comm.Abort(1)

    sys.excepthook = hook


def init(comm=None, threads="auto", abort_on_exception=True):
    """Join the MPI job (idempotent). comm: an mpi4py communicator (default COMM_WORLD).
    threads: OpenMP threads of this rank; "auto" = the cores this process may use divided by
    the ranks on this node (unless OMP_NUM_THREADS is set), an int, or None to leave them.
    abort_on_exception: an uncaught exception on any rank aborts every rank (MPI_Abort)."""
    global _world
    if _world is not None:
        return
    mpi = _import_mpi()
    world = _World(mpi, comm if comm is not None else mpi.COMM_WORLD)
    if threads == "auto":
        if "OMP_NUM_THREADS" not in os.environ:
            backend.set_num_threads(max(1, _cores() // world.local_size))
    elif threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"init: threads must be 'auto', a positive int or None, got "
                             f"{threads!r}")
        backend.set_num_threads(threads)
    if abort_on_exception:
        _abort_on_exception(world)
    _world = world


def is_initialized():
    return _world is not None


def world():
    """The world of init(); RuntimeError before it."""
    if _world is None:
        raise RuntimeError("cnnfast.distributed: call cnnfast.distributed.init() first")
    return _world


def rank():
    """This process's rank in the job (0 .. size() - 1)."""
    return world().rank


def size():
    """The number of processes (ranks) in the job."""
    return world().size


def local_rank():
    """This process's rank among the ranks on its node."""
    return world().local_rank


def local_size():
    """The number of ranks on this process's node."""
    return world().local_size


def barrier():
    world().comm.Barrier()


def broadcast_object(obj, root_rank=0):
    """`obj` of rank root_rank, on every rank (pickled)."""
    return world().comm.bcast(obj, root=root_rank)


def allgather_object(obj):
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled)."""
    return world().comm.allgather(obj)


def ordered_sum(stack):
    """stack[0] + stack[1] + ... in rank order (float addition is not associative: a fixed
    order gives the same bits on every rank and in every run)."""
    out = stack[0].copy()
    for part in stack[1:]:
        out += part
    return out


def allreduce(value, average=True):
    """The sum (average=True: the mean) over the ranks of a NumPy array or scalar, computed in
    rank order from an Allgather, so every rank gets the same bits. float32 stays float32."""
    a = np.ascontiguousarray(value)
    w = world()
    stack = np.empty((w.size,) + a.shape, a.dtype)
    w.comm.Allgather(a, stack)
    out = ordered_sum(stack)
    if average:
        out = (out / w.size).astype(a.dtype, copy=False) if a.dtype.kind == "f" else \
            out / w.size
    return out if a.shape else out[()]


def check_agree(what, items):
    """Raise DistributedError on every rank when the ranks' `items` (a dict of picklable,
    comparable values: shapes, counts) differ; the message names each differing item and its
    value on each rank."""
    w = world()
    every = w.comm.allgather(items)
    bad = []
    for key in items:
        values = [d.get(key) for d in every]
        if any(v != values[0] for v in values[1:]):
            per = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            bad.append(f"{key} ({per})")
    extra = set().union(*(set(d) for d in every)) - set(items)
    if extra:
        bad.append(f"items only some ranks have: {sorted(extra)}")
    if bad:
        raise DistributedError(f"cnnfast.distributed: the ranks disagree on {what}: " +
                               "; ".join(bad))


_flag_in, _flag_out = np.zeros(1, np.int32), np.zeros(1, np.int32)


def any_rank(flag):
    """True on every rank when `flag` is true on any rank (one small buffer Allreduce: fit
    calls it after every step)."""
    w = world()
    _flag_in[0] = 1 if flag else 0
    w.comm.Allreduce(_flag_in, _flag_out, op=w.MPI.MAX)
    return bool(_flag_out[0])


def reduce_trackers(trackers):
    """In place, on every rank: each running-metric tracker's state (its float32 sums: Mean's
    total and count, a confusion metric's counts) becomes the sum over the ranks, added in rank
    order in float64, so result() is the metric of all the ranks' rows together."""
    names = [[k for k, v in sorted(vars(t).items()) if isinstance(v, np.floating)]
             for t in trackers]
    local = np.array([float(getattr(t, k)) for t, ks in zip(trackers, names) for k in ks],
                     np.float64)
    total = allreduce(local, average=False)
    i = 0
    for t, ks in zip(trackers, names):
        for k in ks:
            setattr(t, k, np.float32(total[i]))
            i += 1
