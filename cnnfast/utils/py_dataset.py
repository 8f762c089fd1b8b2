"""keras.utils.PyDataset (alias Sequence): a dataset of batches written in Python
(keras/src/trainers/data_adapters/py_dataset_adapter.py).

Subclasses implement `__len__` (the number of batches; `num_batches` may instead return None
for an infinite dataset) and `__getitem__(index)` (one whole batch: x, (x,), (x, y) or
(x, y, sample_weight)), optionally `on_epoch_begin` / `on_epoch_end`. fit, evaluate and predict
accept them (docs/keras_semantics.md#pydataset-and-sequence). `workers` > 1 reads batches ahead
on that many threads, handed to the loop in index order (so the result does not depend on the
thread count when `__getitem__` depends only on its index); with `use_multiprocessing=True`
(and workers >= 1, as Keras) on that many processes forked for each pass over the data (as
Keras's multiprocessing.Pool: each starts with a copy of the dataset as it is when the pass
begins; the batches come back pickled). At most `max_queue_size` batches are in flight. An
exception in `__getitem__` reaches the loop at that batch; stopping early (an exception,
KeyboardInterrupt, a callback stopping training, a closed iterator) cancels what is queued;
the workers finish the batch they are reading and end.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import multiprocessing
import warnings


class PyDataset:
    """Base class of a Python dataset of batches (keras.utils.PyDataset / Sequence).

    Args: workers=1 (threads reading batches ahead in fit/evaluate/predict),
        use_multiprocessing=False (True: worker processes instead of threads),
        max_queue_size=10 (batches read ahead at most).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        if not all(hasattr(self, a) for a in ("_workers", "_use_multiprocessing",
                                              "_max_queue_size")):
            self._workers = getattr(self, "_workers", 1)
            self._use_multiprocessing = getattr(self, "_use_multiprocessing", False)
            self._max_queue_size = getattr(self, "_max_queue_size", 10)
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in "
                          "its constructor. `**kwargs` can include `workers`, "
                          "`use_multiprocessing`, `max_queue_size`. Do not pass these "
                          "arguments to `fit()`, as they will be ignored.", stacklevel=3)

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position `index`."""
        raise NotImplementedError

    def __iter__(self):
        try:
            n = self.num_batches
        except NotImplementedError:
            n = None
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    @property
    def num_batches(self):
        """The number of batches (len(self)), or None for an infinite dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError("You need to implement the `num_batches` property:\n\n"
                                  "@property\ndef num_batches(self):\n  return ...")

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


Sequence = PyDataset


def check_workers(ds, what):
    """(workers, max_queue_size) a loop uses for `ds` (read_batches reads
    `ds.use_multiprocessing` itself); ValueError for bad values."""
    workers, mp, queue = ds.workers, ds.use_multiprocessing, ds.max_queue_size
    if mp and "fork" not in multiprocessing.get_all_start_methods():
        raise NotImplementedError(f"{what}(): PyDataset use_multiprocessing=True needs the "
                                  "'fork' start method, which this platform lacks (use "
                                  "workers=N threads)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"{what}(): PyDataset workers must be a non-negative int, got "
                         f"{workers!r}")
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        raise ValueError(f"{what}(): PyDataset max_queue_size must be a positive int, got "
                         f"{queue!r}")
    return workers, queue


# The dataset of the worker processes of the pass under way (set in each forked worker).
_WORKER_DATASET = None


def _init_worker(ds):
    global _WORKER_DATASET
    _WORKER_DATASET = ds
    from .. import backend
    # one native thread per worker: no OpenMP team in a forked child (GNU libgomp's pool does
    # not survive fork) and no oversubscription by workers x threads
    backend.set_num_threads(1)


def _worker_getitem(index):
    return _WORKER_DATASET[index]


def _process_pool(ds, workers):
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker, initargs=(ds,))


def read_batches(ds, indices, workers, queue):
    """ds[i] for i in `indices` (an iterable), in that order; with workers > 1, read ahead on a
    pool of that many threads (processes, at least one, with ds.use_multiprocessing), at most
    `queue` batches in flight."""
    processes = bool(getattr(ds, "_use_multiprocessing", False)) and workers > 0
    if workers <= 1 and not processes:
        for i in indices:
            yield ds[i]
        return
    if processes:
        pool, get = _process_pool(ds, workers), _worker_getitem
    else:
        pool, get = concurrent.futures.ThreadPoolExecutor(max_workers=workers), ds.__getitem__
    pending = collections.deque()
    it = iter(indices)
    try:
        for i in itertools.islice(it, queue):
            pending.append(pool.submit(get, i))
        while pending:
            batch = pending.popleft().result()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append(pool.submit(get, nxt))
            yield batch
    finally:
        # stopped early or done: the queued reads are cancelled, the workers finish the batch
        # they are reading and end. (Terminating worker processes instead breaks the pool,
        # and Python 3.11's executor then fails on the cancelled futures, leaving threads.)
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()
