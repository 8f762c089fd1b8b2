"""Sample and class weights of fit / evaluate / train_on_batch / test_on_batch, as Keras's
data adapters give them to the loss (keras/src/trainers/data_adapters; the reduction is
docs/keras_semantics.md#sample-weights): one float32 weight per sample, the loss of a batch is
sum(w_i * loss_i) / B, the metrics compiled with `metrics=` stay unweighted, those compiled with
`weighted_metrics=` take the weights (docs/keras_semantics.md#weighted-metrics). A dataset's
elements may carry their own (x, y, sample_weight), and fit's class_weight applies to a
dataset's batches one by one (models/data.py DatasetBatches)."""
from __future__ import annotations

from . import data
from .weight_args import (  # noqa: F401
    check_class_weight,
    check_exclusive,
    class_weights,
    sample_weights,
)


class WeightedArrayBatches(data.ArrayBatches):
    """ArrayBatches with one weight per row: the training loop hands the engine the whole
    weight array with each step's idx; eval_batches yields (x, y, w) slices."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle=False):
        super().__init__(x, y, batch_size, shuffle)
        self.sample_weight = sample_weight

    def eval_batches(self):
        b = self.max_batch
        for step in range(self.steps):
            s = slice(step * b, (step + 1) * b)
            yield self.x[s], self.y[s], self.sample_weight[s]


def array_source(x, y, sample_weight, batch_size, shuffle=False):
    """The batch source of checked arrays, weighted when sample_weight is not None."""
    if sample_weight is None:
        return data.ArrayBatches(x, y, batch_size, shuffle)
    return WeightedArrayBatches(x, y, sample_weight, batch_size, shuffle)
