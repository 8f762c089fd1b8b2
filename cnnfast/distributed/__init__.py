"""Data-parallel training over MPI, with Horovod's Keras API (docs/distributed.md).

    import cnnfast.distributed as hvd

    hvd.init()
    model.compile(optimizer=hvd.DistributedOptimizer(cnnfast.optimizers.Adam(1e-3 * hvd.size())),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=5, callbacks=[
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),
    ])

run as `mpiexec -n 4 python train.py` (or `cnnfast train --workers 4 ...`). Every rank holds the
whole data set; `fit` gives each rank its rows of every global batch of `size() * batch_size`
rows, so N ranks take the optimizer steps one process takes at N times the batch.

MPI comes from mpi4py (`pip install 'cnnfast[mpi]'`), imported by `init()` only: importing
cnnfast, or this package, never loads an MPI library.
"""
from __future__ import annotations

from . import callbacks
from .comm import (
    DistributedError,
    allgather_object,
    allreduce,
    barrier,
    broadcast_object,
    init,
    is_initialized,
    local_rank,
    local_size,
    rank,
    size,
)
from .optimizer import DistributedOptimizer, broadcast_variables

__all__ = [
    "DistributedError",
    "DistributedOptimizer",
    "allgather_object",
    "allreduce",
    "barrier",
    "broadcast_object",
    "broadcast_variables",
    "callbacks",
    "init",
    "is_initialized",
    "local_rank",
    "local_size",
    "rank",
    "size",
]
