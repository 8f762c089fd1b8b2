"""Metrics: accuracy in its Keras forms, mse/mae, binary Precision/Recall, and the float32
running state Keras keeps for them over an epoch (docs/keras_semantics.md#accuracy).

Each metric turns one batch into a statistic (`batch_stat`): the float32 sum of its per-sample
values for a mean metric (Keras's MeanMetricWrapper), the (true, false) positive counts for
Precision/Recall, the per-threshold confusion counts for AUC. The loops feed each batch's
statistic to the metric's tracker (`new_tracker`), whose `result()` is what History reports.
A metric compiled with `weighted_metrics=` gives `weighted_stat` instead, the same statistic
with each sample counted w_i times (docs/keras_semantics.md#weighted-metrics). Outside a
model a metric is used as Keras's: update_state / result / reset_state."""
from __future__ import annotations

import numpy as np

from . import losses as losses_mod


class Mean:
    """Keras's reduction Mean: float32 total and count, result = total / count."""

    weighted = False

    def __init__(self, name="mean"):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.total = np.float32(0.0)
        self.count = np.float32(0.0)

    def update_state(self, value_sum, weight):
        self.total = np.float32(self.total + np.float32(value_sum))
        self.count = np.float32(self.count + np.float32(weight))

    def result(self):
        return float(self.total / self.count) if self.count else 0.0


class WeightedMean(Mean):
    """The Mean of a weighted metric: each update is a (sum of w_i * value_i, sum of w_i)
    pair (Metric.weighted_stat); the loops' batch size is not its count."""

    weighted = True

    def update_state(self, stat, weight=None):
        Mean.update_state(self, stat[0], stat[1])


class Metric:
    """Base: a name, a per-batch statistic, and the tracker that accumulates it."""

    kind = None  # what the metric computes; the Net counts only its loss's accuracy
    name = "metric"
    direction = "up"  # Keras's _direction: which way is better (EarlyStopping's auto mode)

    def __init__(self, name=None, dtype=None):
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} (float32 only)")
        if name is not None:
            self.name = name
        self._bufs = {}

    def _buf(self, key, n, dtype):
        b = self._bufs.get((key, n))
        if b is None:
            b = self._bufs[(key, n)] = np.empty(n, dtype)
        return b

    def new_tracker(self, weighted=False):
        return WeightedMean(self.name) if weighted else Mean(self.name)

    def per_sample(self, y_true, y_pred):
        """The metric's value per sample (float32), as the Keras function of the same name."""
        raise NotImplementedError

    def batch_stat(self, y_true, y_pred):
        """The batch's statistic for the tracker: the float32 sum of the per-sample values."""
        return self.per_sample(y_true, y_pred).sum(dtype=np.float32)

    def weighted_stat(self, y_true, y_pred, sw):
        """The batch's statistic for a weighted tracker: (float32 sum of w_i * value_i, sum of
        w_i), Keras's Mean.update_state(values, sample_weight) (a value of rank > 1 is first
        the mean over its other axes); without weights the unweighted statistic and the batch
        size, so a weighted metric equals the metric when fit has no sample weights."""
        n = y_pred.shape[0]
        if sw is None:
            return self.batch_stat(y_true, y_pred), np.float32(n)
        v = np.asarray(self.per_sample(y_true, y_pred), np.float32)
        if v.ndim > 1:
            v = v.reshape(n, -1).mean(axis=1, dtype=np.float32)
        w = np.asarray(sw, np.float32).reshape(n)
        return np.multiply(v, w, dtype=np.float32).sum(dtype=np.float32), w.sum(dtype=np.float32)

    # ---- standalone use, as a Keras metric object ------------------------------------------
    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulate one batch (y_true, y_pred), each sample weighted by sample_weight (one
        weight per sample, or None)."""
        y_pred = np.asarray(y_pred, np.float32)
        if y_pred.ndim == 0:
            raise ValueError(f"{type(self).__name__}.update_state: y_pred must have a batch "
                             f"axis, got shape {y_pred.shape}")
        if sample_weight is not None:
            sample_weight = np.broadcast_to(np.asarray(sample_weight, np.float32).reshape(
                -1) if np.ndim(sample_weight) else np.float32(sample_weight),
                (y_pred.shape[0],))
        state = self.__dict__.get("_state")
        if state is None:
            state = self._state = self.new_tracker(weighted=True)
        state.update_state(self.weighted_stat(np.asarray(y_true), y_pred, sample_weight))

    def result(self):
        state = self.__dict__.get("_state")
        return np.float32(state.result() if state is not None else 0.0)

    def reset_state(self):
        self.__dict__.pop("_state", None)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Keras's metric(y_true, y_pred): update_state, then result()."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}


class Accuracy(Metric):
    """An accuracy: 'sparse' (argmax == label), 'categorical' (argmax == argmax of one-hot),
    'binary' (y_pred > threshold == y_true, a mean over the last axis). kind None (the string
    'accuracy' before the output's shape is known) resolves on first use as Keras does: binary
    for a last axis of 1, sparse for labels of lower rank, else categorical. Ties take the
    first index, as argmax does."""

    def __init__(self, name="accuracy", kind=None, threshold=0.5, dtype=None):
        super().__init__(name, dtype)
        self.kind = kind
        self.threshold = float(threshold)

    def resolve(self, y_true_ndim, y_pred_shape):
        if self.kind is None:
            self.kind = "binary" if y_pred_shape[-1] == 1 else \
                "sparse" if y_true_ndim < len(y_pred_shape) else "categorical"
        return self

    def correct(self, y_true, y_pred):
        """Number of correct rows (sparse/categorical); reuses its index buffers."""
        n = y_pred.shape[0]
        pred = np.argmax(y_pred.reshape(n, -1), axis=-1, out=self._buf("pred", n, np.intp))
        if self.kind == "sparse":
            truth = y_true.reshape(-1)
        else:
            truth = np.argmax(y_true.reshape(n, -1), axis=-1, out=self._buf("true", n, np.intp))
        return np.count_nonzero(np.equal(pred, truth, out=self._buf("eq", n, np.bool_)))

    def per_sample(self, y_true, y_pred):
        self.resolve(np.ndim(y_true), y_pred.shape)
        if self.kind == "binary":
            hit = (y_pred > np.float32(self.threshold)).astype(np.float32) == \
                _expand(y_true, y_pred)
            return hit.mean(axis=-1, dtype=np.float32)
        return _argmax_hits(self.kind == "sparse", y_true, y_pred)

    def batch_stat(self, y_true, y_pred):
        self.resolve(np.ndim(y_true), y_pred.shape)
        if self.kind == "binary":
            return super().batch_stat(y_true, y_pred)
        return self.correct(y_true, y_pred)

    def get_config(self):
        cfg = {"name": self.name, "kind": self.kind}
        if self.kind == "binary":
            cfg["threshold"] = self.threshold
        return cfg


def _expand(y_true, y_pred):
    y_true = np.asarray(y_true, np.float32)
    return y_true.reshape(y_true.shape + (1,)) if y_true.ndim == y_pred.ndim - 1 else y_true


def _argmax_hits(sparse, y_true, y_pred):
    n = y_pred.shape[0]
    pred = np.argmax(y_pred.reshape(n, -1), axis=-1)
    truth = np.asarray(y_true).reshape(-1) if sparse else np.argmax(
        np.asarray(y_true).reshape(n, -1), axis=-1)
    return (pred == truth).astype(np.float32)


class TopKAccuracy(Metric):
    """top_k_categorical_accuracy (one-hot targets) or its sparse form: TF's in_top_k, where the
    target's class is in the top k when fewer than k classes score strictly higher (ties at
    the boundary count as in), and a non-finite row is a miss."""

    def __init__(self, k=5, name=None, sparse=False, dtype=None):
        super().__init__(name or ("sparse_top_k_categorical_accuracy" if sparse
                                  else "top_k_categorical_accuracy"), dtype)
        self.k, self.sparse = int(k), bool(sparse)
        self.kind = "sparse_top_k" if sparse else "top_k"

    def per_sample(self, y_true, y_pred):
        n = y_pred.shape[0]
        p = y_pred.reshape(n, -1)
        t = np.asarray(y_true).reshape(-1).astype(np.intp) if self.sparse else \
            np.argmax(np.asarray(y_true).reshape(n, -1), axis=-1)
        target = p[np.arange(n), t]
        above = np.count_nonzero(p > target[:, None], axis=1)
        ok = (above < self.k) & np.isfinite(p).all(axis=1)
        return ok.astype(np.float32)

    def get_config(self):
        return {"name": self.name, "k": self.k, "sparse": self.sparse}


class _LossMetric(Metric):
    """The mean over the epoch of a loss function's per-sample values (mse, mae)."""

    loss_class = None
    direction = "down"

    def __init__(self, name=None, dtype=None):
        super().__init__(name, dtype)
        self._loss = self.loss_class()

    def per_sample(self, y_true, y_pred):
        return self._loss.call(_expand(y_true, y_pred), y_pred)


class MeanSquaredError(_LossMetric):
    kind = name = "mean_squared_error"
    loss_class = losses_mod.MeanSquaredError


class MeanAbsoluteError(_LossMetric):
    kind = name = "mean_absolute_error"
    loss_class = losses_mod.MeanAbsoluteError


class _Confusion:
    """Keras's float32 true-positive and false (positive or negative) counters, result
    tp / (tp + f) (0 when empty, divide_no_nan)."""

    def __init__(self, name):
        self.name = name
        self.reset_state()

    def reset_state(self):
        self.tp = np.float32(0.0)
        self.f = np.float32(0.0)

    def update_state(self, stat, weight=None):
        self.tp = np.float32(self.tp + np.float32(stat[0]))
        self.f = np.float32(self.f + np.float32(stat[1]))

    def result(self):
        d = np.float32(self.tp + self.f)
        return float(self.tp / d) if d else 0.0


class _BinaryConfusionMetric(Metric):
    """Precision / Recall with one threshold: y_pred > threshold is a positive prediction,
    y_true != 0 a positive label, over every element (Keras flattens)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None or class_id is not None:
            raise NotImplementedError(f"{type(self).__name__}: top_k/class_id are not supported")
        if isinstance(thresholds, (list, tuple)):
            if len(thresholds) != 1:
                raise NotImplementedError(f"{type(self).__name__}: one threshold only")
            thresholds = thresholds[0]
        super().__init__(name, dtype)
        self.thresholds = 0.5 if thresholds is None else float(thresholds)

    def new_tracker(self, weighted=False):
        return _Confusion(self.name)

    def batch_stat(self, y_true, y_pred):
        pred = y_pred > np.float32(self.thresholds)
        label = _expand(y_true, y_pred).reshape(pred.shape) != 0
        tp = np.count_nonzero(pred & label)
        other = np.count_nonzero(pred & ~label) if self.kind == "precision" else \
            np.count_nonzero(~pred & label)
        return tp, other

    def weighted_stat(self, y_true, y_pred, sw):
        """Keras's weighted counts: each element adds its sample's weight (float32)."""
        if sw is None:
            return self.batch_stat(y_true, y_pred)
        pred = y_pred > np.float32(self.thresholds)
        label = _expand(y_true, y_pred).reshape(pred.shape) != 0
        w = np.broadcast_to(np.asarray(sw, np.float32).reshape(
            (-1,) + (1,) * (pred.ndim - 1)), pred.shape)
        other = (pred & ~label) if self.kind == "precision" else (~pred & label)
        return w[pred & label].sum(dtype=np.float32), w[other].sum(dtype=np.float32)

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds}


class Precision(_BinaryConfusionMetric):
    kind = name = "precision"


class Recall(_BinaryConfusionMetric):
    kind = name = "recall"


class _CountState:
    """The float32 accumulator of a confusion count, one per threshold; result() a float for
    one threshold, else a list (Keras's _ConfusionMatrixConditionCount.result)."""

    def __init__(self, n, name):
        self.n, self.name = n, name
        self.reset_state()

    def reset_state(self):
        self.acc = np.zeros(self.n, np.float32)

    def update_state(self, stat, weight=None):
        self.acc += np.asarray(stat, np.float32)

    def result(self):
        return float(self.acc[0]) if self.n == 1 else [float(v) for v in self.acc]


class _ConfusionCount(Metric):
    """TruePositives / FalsePositives / TrueNegatives / FalseNegatives: the weighted count of
    elements with that outcome at each threshold (y_pred > t is positive, y_true != 0 a
    positive label; every element is one example, as Keras flattens)."""

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name, dtype)
        t = 0.5 if thresholds is None else thresholds
        self._list = isinstance(t, (list, tuple))
        self.thresholds = [float(v) for v in t] if self._list else [float(t)]

    def new_tracker(self, weighted=False):
        return _CountState(len(self.thresholds), self.name)

    def batch_stat(self, y_true, y_pred):
        return self.weighted_stat(y_true, y_pred, None)

    def weighted_stat(self, y_true, y_pred, sw):
        p = np.asarray(y_pred, np.float32)
        label = _expand(y_true, p).reshape(p.shape) != 0
        w = np.ones(p.shape, np.float32) if sw is None else np.broadcast_to(
            np.asarray(sw, np.float32).reshape((-1,) + (1,) * (p.ndim - 1)), p.shape)
        out = np.empty(len(self.thresholds), np.float32)
        for i, t in enumerate(self.thresholds):
            pred = p > np.float32(t)
            hit = {"tp": pred & label, "fp": pred & ~label, "tn": ~pred & ~label,
                   "fn": ~pred & label}[self.kind]
            out[i] = w[hit].sum(dtype=np.float32)
        return out

    def get_config(self):
        return {"name": self.name,
                "thresholds": self.thresholds if self._list else self.thresholds[0]}


class TruePositives(_ConfusionCount):
    kind, name = "tp", "true_positives"


class FalsePositives(_ConfusionCount):
    kind, name = "fp", "false_positives"


class TrueNegatives(_ConfusionCount):
    kind, name = "tn", "true_negatives"


class FalseNegatives(_ConfusionCount):
    kind, name = "fn", "false_negatives"


_EPSILON = 1e-7  # keras.backend.epsilon(): AUC's end thresholds are -eps and 1 + eps
_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "minoring": "minoring",
               "majoring": "majoring"}


def _divide_no_nan(a, b):
    """Keras's ops.divide_no_nan in float32: a / b, 0 where b == 0."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    out = np.zeros(np.broadcast(a, b).shape, np.float32)
    np.divide(a, b, out=out, where=b != 0)
    return out


class _AUCState:
    """AUC's running state: float32 true/false positive/negative weights per threshold
    ((T,), or (T, labels) with multi_label), allocated on the first batch; result() is the
    metric's area over them."""

    def __init__(self, metric, name):
        self.metric, self.name = metric, name
        self.reset_state()

    def reset_state(self):
        shape = self.metric._var_shape
        self.counts = None if shape is None else np.zeros((4,) + shape, np.float32)

    def update_state(self, stat, weight=None):
        if self.counts is None:
            self.counts = np.zeros(stat.shape, np.float32)
        elif self.counts.shape != stat.shape:
            raise ValueError(f"AUC '{self.name}': the batch has {stat.shape[-1]} labels, the "
                             f"metric's state {self.counts.shape[-1]}")
        self.counts += stat

    def result(self):
        if self.counts is None:
            return 0.0
        return float(self.metric._area(*self.counts))


class AUC(Metric):
    """Keras's AUC: the area under the ROC (or PR, PR-gain) curve, approximated by a Riemann
    sum over `num_thresholds` thresholds (docs/keras_semantics.md#auc).

    For each threshold t, a prediction p counts as positive when p > t; the state is the
    weighted tp, fp, tn, fn per threshold (float32). Evenly spaced thresholds (the default
    (i / (T - 1)), or given ones that are) use Keras's bucket form: p clipped to [0, 1] is in
    bucket max(ceil(p * (T - 1)) - 1, 0), and is positive for every threshold up to its
    bucket. Other thresholds compare p > t directly (unclipped). y_true != 0 is a positive
    label. Without multi_label every element of the batch is one example (label_weights
    weight the last axis); with it, each column has its own curve and the result is the mean
    of their areas (weighted by label_weights)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name or "auc", dtype)
        key = str(curve).lower() if isinstance(curve, str) else None
        if key not in _CURVES:
            raise ValueError(f'Invalid AUC curve value "{curve}". Expected one of: '
                             f"{sorted(_CURVES.values())}")
        skey = str(summation_method).lower() if isinstance(summation_method, str) else None
        if skey not in _SUMMATIONS:
            raise ValueError(f'Invalid AUC summation method value "{summation_method}". '
                             f"Expected one of: {sorted(_SUMMATIONS)}")
        self.curve, self.summation_method = _CURVES[key], _SUMMATIONS[skey]
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            self.num_thresholds = len(inner) + 2
            # Keras's is_evenly_distributed_thresholds on [0] + thresholds + [1]
            full = np.array([0.0] + inner + [1.0])
            even = np.arange(len(full), dtype=np.float32) / (len(full) - 1)
            self._evenly = len(full) >= 3 and bool(np.allclose(full, even, atol=_EPSILON))
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds,
                                                                  (int, np.integer)) or \
                    num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1)
                     for i in range(self.num_thresholds - 2)]
            self._evenly = True
        self._thresholds = np.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        self.multi_label = bool(multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        self.num_labels = None if num_labels is None else int(num_labels)
        self.label_weights = None if label_weights is None else \
            np.asarray(label_weights, np.float32).reshape(-1)
        self.from_logits = bool(from_logits)
        self._var_shape = (self.num_thresholds,) if not self.multi_label else \
            (None if self.num_labels is None else (self.num_thresholds, self.num_labels))

    @property
    def thresholds(self):
        return [float(t) for t in self._thresholds]

    def new_tracker(self, weighted=False):
        return _AUCState(self, self.name)

    def batch_stat(self, y_true, y_pred):
        return self.weighted_stat(y_true, y_pred, None)

    def weighted_stat(self, y_true, y_pred, sw):
        """(4, T) or (4, T, labels) float32: this batch's tp, fp, tn, fn per threshold."""
        p = np.asarray(y_pred, np.float32)
        if self.from_logits:
            p = (np.float32(1.0) / (np.float32(1.0) + np.exp(-p))).astype(np.float32)
        t = np.asarray(y_true, np.float32)
        # Keras's squeeze_or_expand_to_same_rank
        if t.ndim == p.ndim - 1:
            t = t.reshape(t.shape + (1,))
        elif t.ndim == p.ndim + 1 and t.shape[-1] == 1:
            t = t[..., 0]
        if t.shape != p.shape:
            raise ValueError(f"AUC '{self.name}': y_true of shape {np.shape(y_true)} does not "
                             f"match y_pred of shape {p.shape}")
        if self.multi_label and p.ndim != 2:
            raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                             f"{p.ndim}. Full shape received for `y_pred`: {p.shape}")
        w = np.ones(p.shape, np.float32) if sw is None else np.broadcast_to(
            np.asarray(sw, np.float32).reshape((-1,) + (1,) * (p.ndim - 1)), p.shape)
        if self.label_weights is not None and not self.multi_label:
            w = w * self.label_weights  # broadcast over the last axis
        label = (t != 0).astype(np.float32)
        if self.multi_label:
            pos, neg, p = (label * w).T, ((1 - label) * w).T, p.T  # (labels, n)
        else:
            pos, neg, p = (label * w).reshape(1, -1), ((1 - label) * w).reshape(1, -1), \
                p.reshape(1, -1)
        nt = self.num_thresholds
        if self._evenly:
            b = np.ceil(np.clip(p, 0.0, 1.0) * np.float32(nt - 1)) - 1
            b = np.maximum(b, 0).astype(np.intp) + np.arange(p.shape[0])[:, None] * nt
            tp = np.bincount(b.ravel(), pos.ravel(), p.shape[0] * nt).reshape(-1, nt)
            fp = np.bincount(b.ravel(), neg.ravel(), p.shape[0] * nt).reshape(-1, nt)
            tp = np.cumsum(tp[:, ::-1], axis=1)[:, ::-1].astype(np.float32)
            fp = np.cumsum(fp[:, ::-1], axis=1)[:, ::-1].astype(np.float32)
        else:
            above = p[:, None, :] > self._thresholds.astype(np.float32)[None, :, None]
            tp = (above * pos[:, None, :]).sum(axis=2, dtype=np.float32)
            fp = (above * neg[:, None, :]).sum(axis=2, dtype=np.float32)
        tn = neg.sum(axis=1, dtype=np.float32)[:, None] - fp
        fn = pos.sum(axis=1, dtype=np.float32)[:, None] - tp
        stat = np.stack([tp, fp, tn, fn]).astype(np.float32)  # (4, labels, T)
        return stat.transpose(0, 2, 1) if self.multi_label else stat[:, 0]

    def _mean_over_labels(self, by_label):
        if not self.multi_label:
            return by_label.sum(dtype=np.float32)
        if self.label_weights is None:
            return by_label.mean(dtype=np.float32)
        return _divide_no_nan((by_label * self.label_weights).sum(dtype=np.float32),
                              self.label_weights.sum(dtype=np.float32))

    def _area(self, tp, fp, tn, fn):
        """Keras's AUC.result on the state (float32)."""
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(tp, fp, fn)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN
            scale = _divide_no_nan(tp + fn, tn + fp)
            rgain = np.float32(1.0) - scale * _divide_no_nan(fn, tp)
            pgain = np.float32(1.0) - scale * _divide_no_nan(fp, tp)
            rgain = np.maximum(np.where(tp == 0, np.float32(0.0), rgain), np.float32(0.0))
            pgain = np.where(tp == 0, np.float32(1.0), pgain)
            x, y = rgain.astype(np.float32), pgain.astype(np.float32)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / np.float32(2.0)
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._mean_over_labels(((x[:-1] - x[1:]) * heights).sum(axis=0,
                                                                       dtype=np.float32))

    def _interpolate_pr_auc(self, tp, fp, fn):
        """Keras's interpolate_pr_auc (Davis & Goadrich 2006, section 4, in closed form):
        precision varies as (TP_A + slope * (P - P_A)) / P between successive thresholds."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, np.float32(0.0)))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0),
                         _divide_no_nan(p[:-1], np.maximum(p[1:], np.float32(0.0))),
                         np.float32(1.0)).astype(np.float32)
        inc = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                             np.maximum(tp[1:] + fn[1:], np.float32(0.0)))
        return self._mean_over_labels(inc.sum(axis=0, dtype=np.float32))

    def get_config(self):
        cfg = {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
               "summation_method": self.summation_method, "multi_label": self.multi_label,
               "num_labels": self.num_labels,
               "label_weights": None if self.label_weights is None else
               [float(v) for v in self.label_weights], "from_logits": self.from_logits}
        if self._init_from_thresholds:
            cfg["thresholds"] = self.thresholds[1:-1]
        return cfg


def SparseCategoricalAccuracy(name="sparse_categorical_accuracy", dtype=None):
    return Accuracy(name=name, kind="sparse", dtype=dtype)


def CategoricalAccuracy(name="categorical_accuracy", dtype=None):
    return Accuracy(name=name, kind="categorical", dtype=dtype)


def BinaryAccuracy(name="binary_accuracy", dtype=None, threshold=0.5):
    return Accuracy(name=name, kind="binary", threshold=threshold, dtype=dtype)


def TopKCategoricalAccuracy(k=5, name="top_k_categorical_accuracy", dtype=None):
    return TopKAccuracy(k, name, sparse=False, dtype=dtype)


def SparseTopKCategoricalAccuracy(k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
    return TopKAccuracy(k, name, sparse=True, dtype=dtype)


# string -> a factory taking the name (History's key is the string given, as Keras)
_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
_KERAS_OTHERS = {"binary_crossentropy", "categorical_crossentropy", "kl_divergence",
                 "sparse_categorical_crossentropy", "hinge", "squared_hinge", "poisson",
                 "mean_absolute_percentage_error", "mape", "msle", "cosine_similarity",
                 "f1_score", "r2_score", "log_cosh_error", "root_mean_squared_error",
                 "categorical_hinge", "iou", "mean_iou"}


def log_names(metrics, weighted_metrics):
    """The logs' names of compile's metrics, then its weighted metrics, as Keras's
    CompileMetrics.result names them: a metric's name, with _1, _2, ... for a repeated one; a
    weighted metric whose name is taken becomes weighted_<name> (then _1, ...)."""
    seen, out = {}, []
    for m in metrics:
        name = m.name
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name] - 1}"
        else:
            seen[name] = 1
        out.append(name)
    for m in weighted_metrics:
        name = m.name
        if name in seen:
            name = f"weighted_{m.name}"
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name] - 1}"
            else:
                seen[name] = 1
        else:
            seen[name] = 1
        out.append(name)
    return out


def _accuracy_kind(loss, output_shape):
    """Keras's choice for 'accuracy' (compile_utils.get_metric), from the output's last axis and
    the labels the loss takes; None while the output's shape is unknown and the loss does not
    tell."""
    if output_shape is not None and output_shape[-1] == 1:
        return "binary"
    if loss is None or loss.sparse:
        return "sparse"
    if loss.native or output_shape is not None:
        return "categorical"
    return None


def get(identifier, loss=None, output_shape=None):
    """Resolve a metric given in compile(); 'accuracy'/'acc' are auto-mapped as Keras does."""
    if isinstance(identifier, Accuracy) and identifier.kind is None:
        identifier.kind = _accuracy_kind(loss, output_shape)
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return Accuracy(name=identifier, kind=_accuracy_kind(loss, output_shape))
        if key in _BY_NAME:
            return _BY_NAME[key](name=identifier)
        supported = sorted(set(_BY_NAME) | {"accuracy", "acc"})
        if key in _KERAS_OTHERS:
            raise NotImplementedError(f"metric {identifier!r} is not implemented by cnnfast; "
                                      f"supported: {supported}")
        raise ValueError(f"Unknown metric {identifier!r}; supported: {supported}")
    raise NotImplementedError(f"metric {identifier!r}: give a string or a cnnfast.metrics "
                              "metric")


METRIC_CLASSES = {cls.__name__: cls for cls in (Accuracy, TopKAccuracy, MeanSquaredError,
                                                MeanAbsoluteError, Precision, Recall, AUC,
                                                TruePositives, FalsePositives, TrueNegatives,
                                                FalseNegatives)}
