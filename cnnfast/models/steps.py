"""`steps_per_epoch`, `validation_steps`, `steps` and `validation_freq` over arrays, as Keras's
EpochIterator runs them (keras/src/trainers/epoch_iterator.py; docs/keras_semantics.md#steps):

- fit(steps_per_epoch=S): an epoch is S batches; the pass over the data (one permutation)
  carries over from epoch to epoch, and an epoch in which the pass runs out ends there with
  Keras's "ran out of data" warning; the next epoch starts a new pass. Without batch_size the
  batch is ceil(N / S).
- evaluate(steps=S) and fit(validation_steps=S): the first S batches (from the start each
  time, as Keras resets its evaluation iterator), all of them with the warning when S is more.
- validation_freq: an int n (validate after every n-th epoch) or a list of 1-based epochs."""
from __future__ import annotations

import math
import warnings

import numpy as np

# Keras's EpochIterator._interrupted_warning, word for word (one text for every kind of data)
_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset "
            "or generator can generate at least `steps_per_epoch * epochs` batches. You may "
            "need to use the `.repeat()` function when building your dataset.")


def batch_size_for(batch_size, n, steps):
    """Keras's ArrayDataAdapter: the given batch size, else ceil(n / steps) when steps is
    given, else 32."""
    if batch_size is not None:
        return batch_size
    return int(math.ceil(n / steps)) if steps else 32


class StepsPerEpoch:
    """A training source of arrays (ArrayBatches or WeightedArrayBatches) in epochs of
    `steps` batches (see the module doc)."""

    def __init__(self, source, steps):
        self.source, self.steps, self.max_batch = source, steps, source.max_batch
        self.sample_weight = getattr(source, "sample_weight", None)
        self._it, self._seen = None, 0

    def epoch(self, gen):
        if self._it is None:
            self._it, self._seen = self.source.epoch(gen), 0
        for _ in range(self.steps):
            if self._seen >= self.source.steps:
                warnings.warn(_RAN_OUT, stacklevel=3)
                break
            self._seen += 1
            yield next(self._it)
        if self._seen >= self.source.steps:
            self._it = None


class FirstSteps:
    """An evaluation source of arrays limited to its first `steps` batches."""

    def __init__(self, source, steps):
        self.source, self.steps, self.max_batch = source, steps, source.max_batch
        self.sample_weight = getattr(source, "sample_weight", None)

    def eval_batches(self):
        for i, batch in enumerate(self.source.eval_batches()):
            if i == self.steps:
                return
            yield batch
        if self.steps > self.source.steps:
            warnings.warn(_RAN_OUT, stacklevel=3)


def check_validation_freq(value):
    """validation_freq as Keras takes it: a positive int or a list of epochs (1-based)."""
    if isinstance(value, list):
        if not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in value):
            raise ValueError(f"fit(): validation_freq as a list must hold epoch numbers "
                             f"(1-based ints), got {value!r}")
        return [int(e) for e in value]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"fit(): Expected `validation_freq` to be a list or a positive int. "
                         f"Received: validation_freq={value!r}")
    return int(value)


def should_validate(epoch, validation_freq):
    """Keras's _should_eval for the 0-based `epoch`."""
    if isinstance(validation_freq, list):
        return epoch + 1 in validation_freq
    return (epoch + 1) % validation_freq == 0
