"""The sample_weight and class_weight arguments, turned into one float32 weight per sample as
Keras's data adapters do (keras/src/trainers/data_adapters, docs/keras_semantics.md#sample-weights).
Shared by the array sources (models/weighting.py) and the dataset batches (models/data.py),
so it imports neither."""
from __future__ import annotations

import numpy as np


def check_exclusive(sample_weight, class_weight, what):
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{what}(): you cannot give both `class_weight` and `sample_weight` "
                         "(Keras: 'You cannot `class_weight` and `sample_weight` at the same "
                         "time.')")


def sample_weights(model, sample_weight, n, what):
    """float32 (n,) weights from sample_weight of shape (n,) or (n, 1, ...), as Keras
    squeezes a trailing axis of 1; None for None."""
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.dtype == object or sw.dtype.kind not in "biuf":
        raise TypeError(f"{what}(): sample_weight must be numeric, got dtype {sw.dtype}")
    if sw.ndim == 0 or sw.shape[0] != n:
        raise ValueError(f"{what}(): Data cardinality is ambiguous: x has {n} samples, "
                         f"sample_weight has shape {sw.shape}")
    while sw.ndim > 1 and sw.shape[-1] == 1:
        sw = sw[..., 0]
    if sw.ndim != 1:
        raise ValueError(f"{what}(): sample_weight must have shape ({n},) (one weight per "
                         f"sample), got shape {np.shape(sample_weight)}")
    _check_per_sample_loss(model, what)
    return np.ascontiguousarray(sw, dtype=np.float32)


def _check_per_sample_loss(model, what):
    out = model.outputs[0].shape
    if len(out) != 2:
        raise NotImplementedError(f"{what}(): sample weights with an output of rank "
                                  f"{len(out)} (a loss per position) are not supported")


def check_class_weight(class_weight, what):
    if not isinstance(class_weight, dict):
        raise TypeError(f"{what}(): class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")


def class_weights(model, class_weight, y, what):
    """Keras's class_weight_to_sample_weights: per sample, class_weight[label] (1.0 for a
    class the dict does not name), the label being y itself (integers, or (n, 1)) or the argmax
    of one-hot rows. None for None."""
    if class_weight is None:
        return None
    check_class_weight(class_weight, what)
    _check_per_sample_loss(model, what)
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    labels = np.round(y).astype(np.int32).reshape(-1)
    table = {}
    for k, v in class_weight.items():
        try:
            table[int(k)] = np.float32(v)
        except (TypeError, ValueError):
            raise ValueError(f"{what}(): class_weight must map class indices to numbers, got "
                             f"{k!r}: {v!r}") from None
    return np.array([table.get(int(c), np.float32(1.0)) for c in labels], dtype=np.float32)
