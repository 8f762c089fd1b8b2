"""Data adapters: the checks and conversions `fit`, `evaluate`, `predict` and calls on arrays
apply to x and y once, before any step (Keras: trainers/data_adapters). Each error names the
model's input layer and the shapes.

The loops read their batches from a source: `ArrayBatches` for arrays (the engine gathers the
rows of each step from the whole array, the fast path) or `DatasetBatches` for a
cnnfast.data.Dataset, a keras.utils.PyDataset / Sequence or a Python generator (each element is
one batch, checked as it arrives and given to the engine whole, as train_on_batch does)."""
from __future__ import annotations

import itertools
import math
import types
import warnings

import numpy as np

from ..data import INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from ..layers.base import shape_str
from ..utils.py_dataset import PyDataset, check_workers, read_batches
from . import weight_args
from .steps import _RAN_OUT


def prepare_x(model, x, what):
    """float32 C-contiguous array matching the model input (channel axis added if the
    model expects a trailing 1, as Keras does). Raises naming the input layer."""
    if x is None:
        raise ValueError(f"{what}(): x is required")
    if isinstance(x, (list, tuple)) and len(x) == 1 and len(model.inputs) == 1:
        x = x[0]
    if isinstance(x, dict) or (isinstance(x, (list, tuple)) and len(model.inputs) > 1):
        raise NotImplementedError(f"{what}(): models with several inputs are not supported")
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__next__") or type(x).__name__.endswith("Dataset"):
            raise NotImplementedError(f"{what}(): x must be a NumPy array, a "
                                      "cnnfast.data.Dataset, a keras.utils.PyDataset or a "
                                      "Python generator; other iterators and datasets are not "
                                      "supported")
        x = np.asarray(x)
    if x.dtype == object or x.dtype.kind in "USVMmc":
        raise TypeError(f"{what}(): x must be a numeric array, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0 or x.size == 0:
        raise ValueError(f"{what}(): x is empty (shape {x.shape})")
    if model._tensors is None:
        model._build_from_shape(x.shape)
    ref = model.inputs[0].shape
    if x.ndim == len(ref) - 1 and ref[-1] == 1:
        x = x.reshape(x.shape + (1,))
    consumer = next((layer for layer, i, _ in model._plan if i == model._input_ids[0]), None)
    who = f"layer '{consumer.name}' ({type(consumer).__name__})" if consumer else \
        f"model '{model.name}'"
    if x.ndim != len(ref) or any(r is not None and r != d for r, d in zip(ref[1:],
                                                                         x.shape[1:])):
        raise ValueError(f"{what}(): input of {who} is incompatible: expected shape "
                         f"{shape_str(ref)}, found shape {shape_str(x.shape)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{what}(): x contains {bad} NaN or infinite values")
    return x

def prepare_y(model, y, n, what):
    if y is None:
        raise ValueError(f"{what}(): y is required for training and evaluation")
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind in "USVMmc":
        raise TypeError(f"{what}(): y must be numeric, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n:
        raise ValueError(f"{what}(): x and y have different numbers of samples: x has {n}, "
                         f"y has shape {y.shape}")
    k = model.outputs[0].shape[-1]
    if model.loss.sparse:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            hint = " (labels look one-hot: use loss='categorical_crossentropy')" \
                if y.ndim == 2 and y.shape[1] == k else ""
            raise ValueError(f"{what}(): {model.loss.name} needs integer labels of shape "
                             f"({n},), got shape {y.shape}{hint}")
        if y.dtype.kind == "f":
            if not np.isfinite(y).all() or np.any(y != np.round(y)):
                raise ValueError(f"{what}(): labels must be integers, got non-integer "
                                 "values")
        elif y.dtype.kind not in "iub":
            raise TypeError(f"{what}(): labels must be integers, got dtype {y.dtype}")
        lo, hi = (y.min(), y.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"{what}(): labels must be in [0, {k}) for an output of shape "
                             f"{shape_str(model.outputs[0].shape)}, got values in "
                             f"[{lo}, {hi}]")
        return np.ascontiguousarray(y, dtype=np.int32)
    if not model.loss.native:
        return _prepare_targets(model, y, n, what)
    if y.ndim != 2 or y.shape[1] != k:
        hint = " (integer labels: use loss='sparse_categorical_crossentropy' or " \
            "to_categorical)" if y.ndim == 1 else ""
        raise ValueError(f"{what}(): {model.loss.name} needs one-hot targets of shape "
                         f"({n}, {k}), got shape {y.shape}{hint}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError(f"{what}(): y contains NaN or infinite values")
    return y


def _prepare_targets(model, y, n, what):
    """float32 targets of an elementwise loss: the output's shape, or one axis less when the
    output's last axis is 1 (Keras expands y_true to the output's rank)."""
    out = tuple(model.outputs[0].shape[1:])
    if y.ndim == len(out) and out[-1] == 1:
        y = y.reshape(y.shape + (1,))
    if tuple(y.shape[1:]) != out:
        raise ValueError(f"{what}(): {model.loss.name} needs targets of the output's shape "
                         f"{shape_str((n,) + out)}, got shape {y.shape}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError(f"{what}(): y contains NaN or infinite values")
    return y


# ---- batch sources for the loops -----------------------------------------------------------
class ArrayBatches:
    """Batches of checked arrays x, y: `epoch(gen)` yields (x, y, idx) with idx the rows of
    each step, drawn as a permutation from `gen` when shuffling; `eval_batches()` yields
    consecutive (x, y) slices. `max_batch` is the batch size the engine is built for."""

    def __init__(self, x, y, batch_size, shuffle=False):
        # a batch_size above the sample count is one batch of them all (the engine is built
        # for that many rows, not for batch_size)
        batch_size = min(batch_size, x.shape[0])
        self.x, self.y, self.max_batch, self.shuffle = x, y, batch_size, shuffle
        self.steps = math.ceil(x.shape[0] / batch_size)

    def epoch(self, gen):
        n, b = self.x.shape[0], self.max_batch
        # the permutation is drawn on the first step, after on_epoch_begin (as always)
        perm = gen.permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        for step in range(self.steps):
            yield self.x, self.y, perm[step * b:(step + 1) * b]

    def eval_batches(self):
        b = self.max_batch
        for step in range(self.steps):
            s = slice(step * b, (step + 1) * b)
            yield self.x[s], self.y[s]


def unpack_x_y_sample_weight(element):
    """(x, y, sample_weight) of one dataset element, as keras.utils.unpack_x_y_sample_weight:
    a tuple (x,), (x, y) or (x, y, sample_weight), or x alone."""
    if isinstance(element, list):
        element = tuple(element)
    if not isinstance(element, tuple):
        return element, None, None
    if len(element) in (1, 2, 3):
        return tuple(element) + (None,) * (3 - len(element))
    raise ValueError(f"Data is expected to be (x,), (x, y) or (x, y, sample_weight), found a "
                     f"tuple of {len(element)} elements")


# Keras's GeneratorDataAdapter reads this many batches ahead to learn the elements' spec.
_PEEKED_BATCHES = 2


class GeneratorSource:
    """A Python generator as a dataset of unknown length, as Keras's GeneratorDataAdapter reads
    it: the first two batches are read when fit/evaluate/predict starts (an empty generator,
    or one whose elements are not tuples, is refused then), and every pass over it is those
    two batches again followed by what the generator has left (so a second epoch over a
    finite generator replays the two, then runs out, as in Keras)."""

    _cardinality = UNKNOWN_CARDINALITY

    def __init__(self, generator):
        self._first = list(itertools.islice(generator, _PEEKED_BATCHES))
        self._generator = generator
        if not self._first:
            raise ValueError("When passing a Python generator to a Keras model, the generator "
                             "must yield at least one batch. Received an empty generator.")
        if not isinstance(self._first[0], tuple):
            raise ValueError("When passing a Python generator to a Keras model, the generator "
                             "must return a tuple, either (input,) or (inputs, targets) or "
                             "(inputs, targets, sample_weights). Received: "
                             f"{type(self._first[0]).__name__}")

    def __iter__(self):
        return itertools.chain(self._first, self._generator)


def check_generator_args(x, y, sample_weight, class_weight, shuffle, what):
    """Keras's refusals for a generator x (trainers/data_adapters get_data_adapter)."""
    if not isinstance(x, types.GeneratorType):
        return
    if y is not None:
        raise ValueError(f"{what}(): When providing `x` as a generator, `y` should not be "
                         "passed. Instead, the targets should be included as part of the "
                         "generator.")
    if sample_weight is not None:
        raise ValueError(f"{what}(): When providing `x` as a generator, `sample_weights` "
                         "should not be passed. Instead, the sample weights should be "
                         "included as part of the generator.")
    if class_weight is not None:
        raise ValueError("Argument `class_weight` is not supported for Python generator "
                         f"inputs. Received: class_weight={class_weight}")
    if shuffle:
        warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was "
                      "provided as a generator. The generator is expected to yield "
                      "already-shuffled data.", stacklevel=4)


class DatasetBatches:
    """The batches of a cnnfast.data.Dataset whose elements are (x, y) or (x, y,
    sample_weight) batches, of a keras.utils.PyDataset (its items are the batches), or of a
    Python generator of such tuples (GeneratorSource).

    As Keras's EpochIterator: without `steps`, each epoch is one full pass; with `steps`, an
    epoch is that many batches and the iterator carries over from epoch to epoch (restarted
    once a finite dataset is used up); a dataset that runs out within an epoch ends it with
    Keras's warning. An infinite dataset needs `steps`. A PyDataset, as Keras's
    PyDatasetAdapter: on_epoch_begin / on_epoch_end around every pass (training and
    evaluation), and with `shuffle` (fit's, finite datasets only) the batch order is a fresh
    permutation of the indices each time the iterator restarts, drawn from the loop's
    generator."""

    max_batch = None  # known only as batches arrive

    def __init__(self, model, dataset, what, steps=None, steps_name="steps_per_epoch",
                 need_y=True, shuffle=False, class_weight=None):
        if isinstance(dataset, types.GeneratorType):
            dataset, shuffle = GeneratorSource(dataset), False  # checked: check_generator_args
        self.py = isinstance(dataset, PyDataset)
        if self.py:
            self._workers, self._queue = check_workers(dataset, what)
            n = dataset.num_batches
            card = INFINITE_CARDINALITY if n is None else int(n)
            if card == 0:
                raise ValueError(f"{what}(): the PyDataset has length 0")
            if n is None and shuffle:
                warnings.warn("`shuffle=True` was passed, but will be ignored since the data "
                              "`x` was provided as an infinite PyDataset. The PyDataset is "
                              "expected to already be shuffled.", stacklevel=4)
        else:
            card = dataset._cardinality
        if steps is None and card == INFINITE_CARDINALITY:
            raise ValueError(f"{what}(): the dataset is infinite (repeat() without a count, or "
                             f"a PyDataset without a length); pass {steps_name}= to say how "
                             "many batches make an epoch")
        self.shuffle = bool(shuffle) and self.py and card >= 0
        self.model, self.dataset, self.what, self.need_y = model, dataset, what, need_y
        self.class_weight = class_weight
        self.given_steps = steps
        self.steps = steps if steps is not None else (card if card >= 0 else None)
        self._card = card if card >= 0 else None
        self._it, self._seen = None, 0

    def _batch(self, element):
        """(x, y, sample weights or None) of one element, checked. As Keras's adapters: an
        element's sample weights (x, y, sample_weight) weigh its rows, or fit's class_weight
        gives them from the element's y (class_weight_to_sample_weights, per batch)."""
        x, y, sample_weight = unpack_x_y_sample_weight(element)
        if self.need_y and y is not None and np.ndim(y) == 0:
            raise ValueError(f"{self.what}(): the dataset's elements are single examples, not "
                             "batches: call .batch(batch_size) on it")
        x = prepare_x(self.model, x, self.what)
        if not self.need_y:
            return x, None, None
        y = prepare_y(self.model, y, x.shape[0], self.what)
        if self.class_weight is not None:
            if sample_weight is not None:
                raise ValueError(f"{self.what}(): You cannot specify `class_weight` and "
                                 "`sample_weight` at the same time (the dataset's elements "
                                 "hold sample weights)")
            return x, y, weight_args.class_weights(self.model, self.class_weight, y, self.what)
        if sample_weight is not None:
            sample_weight = weight_args.sample_weights(self.model, sample_weight, x.shape[0],
                                                     f"{self.what} (dataset element)")
        return x, y, sample_weight

    def _new_iter(self, gen):
        if not self.py:
            return iter(self.dataset)
        if self._card is None:
            order = itertools.count()
        elif self.shuffle and gen is not None:
            order = (int(i) for i in gen.permutation(self._card))
        else:
            order = range(self._card)
        return read_batches(self.dataset, order, self._workers, self._queue)

    def _elements(self, gen=None):
        if not self.py:
            yield from self._pass(gen)
            return
        self.dataset.on_epoch_begin()
        try:
            yield from self._pass(gen)
        finally:
            self.dataset.on_epoch_end()

    def _pass(self, gen):
        if self.given_steps is None:
            yield from self._new_iter(gen)
            if self._card is None:
                # Keras's EpochIterator reads a source of unknown length (a generator, a
                # filtered dataset) until it stops, and warns each time it does.
                self._ran_out()
            return
        if self._it is None:
            self._it, self._seen = self._new_iter(gen), 0
        for _ in range(self.given_steps):
            if self._card is not None and self._seen >= self._card:
                self._ran_out()
                break
            element = next(self._it, _END)
            if element is _END:
                self._ran_out()
                self._it = None
                return
            self._seen += 1
            yield element
        if self._card is not None and self._seen >= self._card:
            self._it = None

    @staticmethod
    def _ran_out():
        warnings.warn(_RAN_OUT, stacklevel=4)

    def epoch(self, gen=None):
        """(x, y, idx, sample weights or None) per batch: the rows are the whole batch."""
        for element in self._elements(gen):
            x, y, sw = self._batch(element)
            yield x, y, np.arange(x.shape[0], dtype=np.int64), sw

    def eval_batches(self):
        """(x, y) per batch, (x, y, sample weights) for a weighted one."""
        for element in self._elements():
            x, y, sw = self._batch(element)
            yield (x, y) if sw is None else (x, y, sw)


_END = object()


def is_dataset(x):
    """A cnnfast.data.Dataset, a keras.utils.PyDataset or a Python generator (read through
    DatasetBatches)."""
    return isinstance(x, (Dataset, PyDataset, types.GeneratorType))
