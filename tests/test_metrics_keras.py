"""The metrics of compile(metrics=[...]) against tf.keras (the oracle): binary, categorical,
sparse and top-k accuracies, mse/mae and binary Precision/Recall, as History reports them
(running states over the epoch, and on validation data), with copied weights; the Net's
refusal of any metric it cannot count; saving. docs/keras_semantics.md#accuracy."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor
from cnnfast.layers.base import reset_names


def _model(lib, units, act):
    return lib.Sequential([lib.layers.Input((6,)), lib.layers.Dense(8, activation="relu"),
                           lib.layers.Dense(units, activation=act)])


def _data(kind, units, n):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    s = x @ rng.standard_normal((6, units)).astype(np.float32)
    if kind == "binary":
        return x, (s[:, 0] > 0.3).astype(np.float32)
    if kind == "sparse":
        return x, np.argmax(s + rng.standard_normal(s.shape), 1).astype(np.int32)
    if kind == "onehot":
        return x, np.eye(units, dtype=np.float32)[np.argmax(s + rng.standard_normal(s.shape), 1)]
    return x, s.astype(np.float32)


# name -> (loss, units, activation, data, metrics: lib -> list)
CASES = {
    "binary": ("binary_crossentropy", 1, "sigmoid", "binary", lambda lib: [
        "accuracy", "binary_accuracy", lib.metrics.BinaryAccuracy(threshold=0.7, name="ba7"),
        "precision", "recall", lib.metrics.Precision(thresholds=0.3, name="p3"),
        lib.metrics.Recall(name="r"), "mse", "mae"]),
    "sparse": ("sparse_categorical_crossentropy", 5, "softmax", "sparse", lambda lib: [
        "accuracy", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
        lib.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")]),
    "categorical": ("categorical_crossentropy", 5, "softmax", "onehot", lambda lib: [
        "acc", "categorical_accuracy", "top_k_categorical_accuracy",
        lib.metrics.TopKCategoricalAccuracy(k=2, name="t2"), "mse",
        lib.metrics.MeanAbsoluteError(name="l1")]),
    "regression": ("mse", 3, "linear", "regression", lambda lib: [
        "mae", lib.metrics.MeanSquaredError(), "mean_absolute_error"]),
}


@pytest.mark.tf
@pytest.mark.parametrize("name", list(CASES))
def test_history_metrics_match_keras(tf_keras, name):
    """Two epochs of Adam, batches of 16 over 100 rows (a short last batch), validation data:
    every History key and value, and evaluate's list."""
    tf, keras = tf_keras
    loss, units, act, kind, metrics = CASES[name]
    keras.utils.set_random_seed(0)
    reset_names()
    km, cm = _model(keras, units, act), _model(cf, units, act)
    cm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=metrics(keras),
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(0.01), loss=loss, metrics=metrics(cf))
    x, y = _data(kind, units, 140)
    kw = dict(batch_size=16, epochs=2, shuffle=False, verbose=0,
              validation_data=(x[100:], y[100:]))
    hk = km.fit(x[:100], y[:100], **kw).history
    hc = cm.fit(x[:100], y[:100], **kw).history
    assert sorted(hc) == sorted(hk)
    for key in hk:
        # counts of rows are exact; the loss and mean metrics drift by float32 rounding
        tf_oracle.check(f"metrics {name} {key}", hc[key], hk[key], atol=1e-6, rtol=1e-5)
    tf_oracle.check(f"metrics {name} evaluate", cm.evaluate(x, y, verbose=0),
                    km.evaluate(x, y, verbose=0), atol=1e-6, rtol=1e-5)


def test_native_engine_counts_only_its_losss_accuracy():
    m = _model(cf, 5, "softmax")
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
              metrics=["accuracy", "sparse_categorical_accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)
    for metric in ["categorical_accuracy", "sparse_top_k_categorical_accuracy", "mse", "mae",
                   "precision", "recall", "binary_accuracy",
                   cf.metrics.SparseTopKCategoricalAccuracy(k=2)]:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", metric])
        assert isinstance(executor.for_model(m, 8, "train"), executor.LayerEngine), metric
        assert isinstance(executor.for_model(m, 8, "evaluate"), executor.LayerEngine), metric


def test_accuracy_resolves_as_keras():
    for loss, units, want in (("sparse_categorical_crossentropy", 5, "sparse"),
                              ("categorical_crossentropy", 5, "categorical"),
                              ("binary_crossentropy", 1, "binary"),
                              ("binary_crossentropy", 4, "categorical"),
                              ("mse", 1, "binary")):
        m = _model(cf, units, "sigmoid")
        m.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        assert m._metrics[0].kind == want, (loss, units)
    # an unbuilt model with an elementwise loss resolves on the first batch
    m = cf.Sequential([cf.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    m.fit(np.zeros((4, 3), np.float32), np.ones(4, np.float32), verbose=0)
    assert m._metrics[0].kind == "binary"


def test_precision_and_recall_with_no_positives_are_zero():
    m = _model(cf, 1, "sigmoid")
    m.compile(optimizer="adam", loss="binary_crossentropy",
              metrics=[cf.metrics.Precision(thresholds=1.0), "recall"])
    loss, p, r = m.evaluate(np.zeros((4, 6), np.float32), np.zeros(4, np.float32), verbose=0)
    assert p == 0.0 and r == 0.0


def test_unknown_and_missing_metrics():
    m = _model(cf, 3, "softmax")
    with pytest.raises(NotImplementedError, match="f1_score"):
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["f1_score"])
    with pytest.raises(ValueError, match="Unknown metric"):
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accurracy"])


def test_saving_round_trips_the_metrics(tmp_path):
    m = _model(cf, 3, "sigmoid")
    metrics = ["accuracy", cf.metrics.BinaryAccuracy(threshold=0.3, name="b3"),
               cf.metrics.TopKCategoricalAccuracy(k=2, name="t2"),
               cf.metrics.SparseTopKCategoricalAccuracy(k=1), "mse", "mae",
               cf.metrics.Precision(thresholds=0.4), cf.metrics.Recall(name="rec")]
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=metrics)
    m.save(tmp_path / "m.keras")
    m2 = cf.models.load_model(tmp_path / "m.keras")
    assert [type(a) for a in m2._metrics] == [type(a) for a in m._metrics]
    assert [a.get_config() for a in m2._metrics] == [a.get_config() for a in m._metrics]


def test_early_stopping_auto_mode_reads_the_metric_direction():
    m = _model(cf, 3, "sigmoid")
    m.compile(optimizer="adam", loss="binary_crossentropy",
              metrics=["mse", cf.metrics.Precision(name="p")])
    for monitor, op in (("val_mse", np.less), ("p", np.greater)):
        es = cf.callbacks.EarlyStopping(monitor=monitor)
        es.set_model(m)
        es._set_monitor_op()
        assert es.monitor_op is op
