"""`tf.data.Dataset` for the pipelines tutorials chain, on NumPy, in the calling thread.

    ds = (cnnfast.data.Dataset.from_tensor_slices((x, y))
          .shuffle(1000).map(normalize).batch(32).prefetch(tf.data.AUTOTUNE))
    model.fit(ds, epochs=5, validation_data=val_ds)

A Dataset is a recipe: each iteration runs the chain from its source, lazily, one element at
a time, as tf.data does. Elements are structures (a Tensor, a tuple or a dict of them) whose
leaves are `cnnfast.tensor.Tensor`s (NumPy arrays with `.numpy()`); `as_numpy_iterator()`
yields plain NumPy values. Everything runs synchronously: `prefetch` and `num_parallel_calls`
are accepted and change nothing but speed in TF, so nothing here.

Shuffling follows TF's buffer semantics: a buffer of `buffer_size` elements is filled from the
input, and each output is a uniformly chosen buffer element, replaced by the next input
element. A buffer smaller than the dataset is therefore not a full shuffle (an element moves
at most buffer_size - 1 places earlier). The random stream is cnnfast's, not TF's: an order is
determined by `seed`, or, without one, by a seed drawn from `cnnfast.utils.rng()` when
`shuffle()` is called (so `cnnfast.utils.set_random_seed` fixes it).
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import utils
from ..tensor import Tensor, as_tensor, convert_to_tensor

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


# ---- element structures: a leaf, a tuple or a dict of structures -------------------------------
def _map_structure(fn, s):
    if isinstance(s, tuple):
        return tuple(_map_structure(fn, e) for e in s)
    if isinstance(s, dict):
        return {k: _map_structure(fn, v) for k, v in s.items()}
    return fn(s)


def _leaves(s):
    if isinstance(s, tuple):
        return [leaf for e in s for leaf in _leaves(e)]
    if isinstance(s, dict):
        return [leaf for v in s.values() for leaf in _leaves(v)]
    return [s]


def _rebuild(template, leaves):
    """`template`'s structure with the leaves taken in order from the iterator `leaves`."""
    return _map_structure(lambda _: next(leaves), template)


def _normalize(s):
    """A structure as tf.data stores it: tuples and dicts of Tensors, with TF's dtype
    inference for the leaves. A list is one leaf (TF converts it to a tensor)."""
    if isinstance(s, tuple):
        return tuple(_normalize(e) for e in s)
    if isinstance(s, dict):
        return {k: _normalize(v) for k, v in s.items()}
    return convert_to_tensor(s)


def _check_count(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Dataset.{what} must be an integer, got {value!r}")
    return int(value)


class Dataset:
    """A lazily evaluated input pipeline (tf.data.Dataset); see the module doc.

    `_iterate()` starts one pass over the elements; `_cardinality` is the number of elements,
    INFINITE_CARDINALITY (-1) or UNKNOWN_CARDINALITY (-2)."""

    def __init__(self, iterate, cardinality, batch_size=None):
        self._iterate = iterate
        self._cardinality = int(cardinality)
        self._batch_size = batch_size  # every element's leading dimension, when known

    # ---- sources ------------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """One element per row of `tensors` (an array, a tuple or a dict of arrays, all with
        the same first dimension): element i is the structure of the rows i."""
        tensors = _normalize(tensors)
        leaves = _leaves(tensors)
        if any(leaf.ndim == 0 for leaf in leaves):
            raise ValueError("Dataset.from_tensor_slices: every component must have a first "
                             "dimension to slice (got a scalar)")
        sizes = {leaf.shape[0] for leaf in leaves}
        if len(sizes) != 1:
            shapes = [leaf.shape for leaf in leaves]
            raise ValueError(f"Dataset.from_tensor_slices: all components must have the same "
                             f"size in their first dimension, got shapes {shapes}")
        (n,) = sizes

        def iterate():
            for i in range(n):
                yield _map_structure(lambda a, i=i: a[i], tensors)

        return Dataset(iterate, n)

    @staticmethod
    def from_tensors(tensors, name=None):
        """A dataset of one element: `tensors` as a whole."""
        element = _normalize(tensors)
        return Dataset(lambda: iter([element]), 1)

    @staticmethod
    def range(*args, output_type=np.int64, name=None):
        """Like Python's range(start, stop, step), as int64 scalars."""
        r = range(*(int(a) for a in args))
        return Dataset(lambda: (as_tensor(np.asarray(i, output_type)) for i in r), len(r))

    @staticmethod
    def zip(*datasets, name=None):
        """Elements of several datasets side by side: zip(a, b) or zip((a, b))."""
        if len(datasets) == 1 and isinstance(datasets[0], (tuple, dict)):
            datasets = datasets[0]
        structure = datasets
        parts = _leaves(structure)
        if not parts or not all(isinstance(d, Dataset) for d in parts):
            raise TypeError("Dataset.zip takes datasets (or a tuple or dict of datasets)")
        finite = [d._cardinality for d in parts if d._cardinality != INFINITE_CARDINALITY]
        if any(c == UNKNOWN_CARDINALITY for c in finite):
            card = UNKNOWN_CARDINALITY
        else:
            card = min(finite) if finite else INFINITE_CARDINALITY

        def iterate():
            for elems in zip(*(d._iterate() for d in parts)):
                yield _rebuild(structure, iter(elems))

        return Dataset(iterate, card)

    # ---- transformations ----------------------------------------------------------------------
    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """`map_func` applied to each element; a tuple element is passed as positional
        arguments, as in TF. It runs on NumPy values (Tensors), so NumPy code and cnnfast's
        tf.* helpers work inside; `num_parallel_calls` is accepted and ignored."""
        parent = self

        def iterate():
            for e in parent._iterate():
                out = map_func(*e) if isinstance(e, tuple) else map_func(e)
                # TF turns a list returned by the function into a tuple
                yield _normalize(tuple(out) if isinstance(out, list) else out)

        return Dataset(iterate, self._cardinality)

    def filter(self, predicate, name=None):
        """The elements for which `predicate` (called as in `map`) is true."""
        parent = self

        def iterate():
            for e in parent._iterate():
                if bool(np.asarray(predicate(*e) if isinstance(e, tuple) else predicate(e))):
                    yield e

        return Dataset(iterate, UNKNOWN_CARDINALITY)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """Elements drawn at random from a buffer of `buffer_size` (see the module doc for
        the semantics and the seed). With reshuffle_each_iteration=True, each pass (each
        epoch, each repetition of a later repeat()) draws another order."""
        buffer_size = _check_count(buffer_size, "shuffle: buffer_size")
        if buffer_size == AUTOTUNE:
            buffer_size = max(1, self._cardinality)  # TF: the whole (finite) dataset
        if buffer_size <= 0:
            raise ValueError(f"Dataset.shuffle: buffer_size must be positive, got {buffer_size}")
        base = int(utils.rng().integers(0, 2**63)) if seed is None else int(seed)
        passes = itertools.count()
        parent = self

        def iterate():
            k = next(passes) if reshuffle_each_iteration else 0
            rng = np.random.default_rng([base, k])
            return _shuffled(parent._iterate(), buffer_size, rng)

        return Dataset(iterate, self._cardinality, self._batch_size)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        """Consecutive elements stacked into batches of `batch_size` (the last one smaller
        unless drop_remainder=True). Elements must agree in shape."""
        batch_size = _check_count(batch_size, "batch: batch_size")
        if batch_size <= 0:
            raise ValueError(f"Dataset.batch: batch_size must be positive, got {batch_size}")
        parent, card = self, self._cardinality
        if card >= 0:
            card = card // batch_size if drop_remainder else -(-card // batch_size)

        def iterate():
            it = parent._iterate()
            while True:
                chunk = list(itertools.islice(it, batch_size))
                if not chunk or (drop_remainder and len(chunk) < batch_size):
                    return
                yield _stack(chunk)

        return Dataset(iterate, card, batch_size if drop_remainder else None)

    def unbatch(self, name=None):
        """Each element split along its first dimension into rows (the inverse of batch)."""
        parent = self
        card = UNKNOWN_CARDINALITY
        if self._batch_size is not None and self._cardinality >= 0:
            card = self._cardinality * self._batch_size
        elif self._cardinality == INFINITE_CARDINALITY:
            card = INFINITE_CARDINALITY

        def iterate():
            for e in parent._iterate():
                leaves = _leaves(e)
                sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
                if None in sizes or len(sizes) != 1:
                    raise ValueError("Dataset.unbatch: every component of an element must "
                                     "have the same first dimension")
                for i in range(sizes.pop()):
                    yield _rebuild(e, iter([leaf[i] for leaf in leaves]))

        return Dataset(iterate, card)

    def repeat(self, count=None, name=None):
        """The dataset `count` times in a row (forever when None or -1); each repetition is a
        new pass, so an upstream shuffle reshuffles."""
        count = -1 if count is None else _check_count(count, "repeat: count")
        parent, card = self, self._cardinality
        if count == -1:
            card = 0 if card == 0 else (card if card == UNKNOWN_CARDINALITY
                                        else INFINITE_CARDINALITY)
        elif card >= 0:
            card = card * count
        elif count == 0:
            card = 0

        def iterate():
            for _ in (itertools.count() if count == -1 else range(count)):
                empty = True
                for e in parent._iterate():
                    empty = False
                    yield e
                if empty:  # an empty dataset repeated forever is empty, not a hang
                    return

        return Dataset(iterate, card, self._batch_size)

    def take(self, count, name=None):
        """The first `count` elements (all of them for -1)."""
        count = _check_count(count, "take: count")
        if count == -1:
            return self
        parent, card = self, self._cardinality
        card = count if card == INFINITE_CARDINALITY else (min(card, count) if card >= 0
                                                           else UNKNOWN_CARDINALITY)
        return Dataset(lambda: itertools.islice(parent._iterate(), max(count, 0)), card,
                       self._batch_size)

    def skip(self, count, name=None):
        """All but the first `count` elements (none for -1)."""
        count = _check_count(count, "skip: count")
        if count == -1:
            return Dataset(lambda: iter(()), 0, self._batch_size)
        parent, card = self, self._cardinality
        if card >= 0:
            card = max(0, card - count)
        return Dataset(lambda: itertools.islice(parent._iterate(), max(count, 0), None), card,
                       self._batch_size)

    def cache(self, filename="", name=None):
        """Keep the elements of the first complete pass in memory and replay them afterwards
        (so the upstream work, and any upstream shuffle, runs once)."""
        if filename:
            raise NotImplementedError("Dataset.cache(filename): caching to a file is not "
                                      "implemented by cnnfast; use cache() (in memory)")
        parent, store = self, []

        def iterate():
            if store:
                yield from store[0]
                return
            seen = []
            for e in parent._iterate():
                seen.append(e)
                yield e
            store.append(seen)

        return Dataset(iterate, self._cardinality, self._batch_size)

    def prefetch(self, buffer_size, name=None):
        """The same dataset: cnnfast's pipeline runs in the training thread, so there is
        nothing to prefetch (buffer_size is checked, e.g. tf.data.AUTOTUNE)."""
        buffer_size = _check_count(buffer_size, "prefetch: buffer_size")
        if buffer_size < AUTOTUNE:
            raise ValueError(f"Dataset.prefetch: invalid buffer_size {buffer_size}")
        return self

    def enumerate(self, start=0, name=None):
        """(index, element) pairs, the index an int64 scalar counting from `start`."""
        indices = Dataset.range(int(start), 2**62)
        indices._cardinality = INFINITE_CARDINALITY
        return Dataset.zip(indices, self)

    def concatenate(self, dataset, name=None):
        """This dataset's elements, then `dataset`'s."""
        a, b = self._cardinality, dataset._cardinality
        if INFINITE_CARDINALITY in (a, b):
            card = INFINITE_CARDINALITY
        elif UNKNOWN_CARDINALITY in (a, b):
            card = UNKNOWN_CARDINALITY
        else:
            card = a + b
        return Dataset(lambda: itertools.chain(self._iterate(), dataset._iterate()), card)

    # ---- reading ------------------------------------------------------------------------------
    def __iter__(self):
        return iter(self._iterate())

    def as_numpy_iterator(self):
        """The elements with NumPy leaves (NumPy scalars for 0-d ones), as TF's."""
        for e in self._iterate():
            yield _map_structure(lambda t: t.numpy() if isinstance(t, Tensor) else t, e)

    def cardinality(self):
        """The number of elements as an int64 scalar Tensor; tf.data.INFINITE_CARDINALITY
        (-1) after repeat(), UNKNOWN_CARDINALITY (-2) after filter()."""
        return as_tensor(np.asarray(self._cardinality, np.int64))

    def __len__(self):
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return self._cardinality

    @property
    def element_spec(self):
        raise NotImplementedError("Dataset.element_spec is not implemented by cnnfast; "
                                  "look at an element: next(iter(ds))")

    def __bool__(self):
        return True  # as TF's: truth does not depend on the length

    def __repr__(self):
        card = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(
            self._cardinality, str(self._cardinality))
        return f"<cnnfast.data.Dataset cardinality={card}>"


def _shuffled(it, buffer_size, rng):
    """TF's shuffle buffer over the iterator `it`: fill, then repeatedly yield a uniformly
    chosen buffer element and put the next input element in its place."""
    buffer = list(itertools.islice(it, buffer_size))
    draws, d = rng.random(1024), 0
    while buffer:
        if d == len(draws):
            draws, d = rng.random(1024), 0
        i = min(int(draws[d] * len(buffer)), len(buffer) - 1)
        d += 1
        out = buffer[i]
        nxt = next(it, _END)
        if nxt is _END:
            buffer[i] = buffer[-1]
            buffer.pop()
        else:
            buffer[i] = nxt
        yield out


_END = object()


def _stack(chunk):
    """Elements (same structure, same shapes) stacked leaf by leaf into one batch element."""
    columns = list(zip(*(_leaves(e) for e in chunk)))
    stacked = []
    for c, col in enumerate(columns):
        first = col[0].shape
        for j, leaf in enumerate(col):
            if leaf.shape != first:
                raise ValueError(f"Cannot batch tensors with different shapes in component "
                                 f"{c}. First element had shape {list(first)} and element "
                                 f"{j} had shape {list(leaf.shape)}.")
        stacked.append(as_tensor(np.stack([leaf.view(np.ndarray) for leaf in col])))
    return _rebuild(chunk[0], iter(stacked))


# tf.data.Dataset methods cnnfast does not implement: calling one says so.
_NOT_IMPLEMENTED = (
    "apply", "bucket_by_sequence_length", "choose_from_datasets", "counter",
    "flat_map", "from_generator", "get_single_element", "group_by_window", "ignore_errors",
    "interleave", "list_files", "load", "options", "padded_batch", "ragged_batch", "random",
    "rebatch", "reduce", "rejection_resample", "sample_from_datasets", "save", "scan", "shard",
    "snapshot", "sparse_batch", "unique", "window", "with_options",
)


def _not_implemented(method):
    def fn(*args, **kwargs):
        raise NotImplementedError(
            f"Dataset.{method} is not implemented by cnnfast; supported: as_numpy_iterator, "
            "batch, cache, cardinality, concatenate, enumerate, filter, from_tensor_slices, "
            "from_tensors, map, prefetch, range, repeat, shuffle, skip, take, unbatch, zip")
    fn.__name__ = method
    return fn


for _m in _NOT_IMPLEMENTED:
    setattr(Dataset, _m, _not_implemented(_m))
del _m
