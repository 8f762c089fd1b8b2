"""compile(weighted_metrics=...) (docs/keras_semantics.md#weighted-metrics): the names Keras
gives them, their values against NumPy from the model's outputs, the engine choice (a model
without them keeps the Net), the evaluate() list order, and tf.keras 2.21 parity with copied
weights (sample_weight, class_weight, validation weights, train_on_batch)."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names
from cnnfast.metrics import log_names


def _model(k=3, act="softmax"):
    reset_names()
    cf.utils.set_random_seed(0)
    return cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                          layers.MaxPooling2D(2), layers.Flatten(),
                          layers.Dense(k, activation=act)])


def _data(n=48, seed=3):
    r = np.random.default_rng(seed)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    y = r.integers(0, 3, n)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 2] += 0.8
    return x, y, (r.random(n) * 2).astype(np.float32)


class _Named:
    def __init__(self, name):
        self.name = name


@pytest.mark.parametrize("metrics,weighted,want", [
    (["accuracy"], ["accuracy"], ["accuracy", "weighted_accuracy"]),
    ([], ["accuracy"], ["accuracy"]),
    (["accuracy", "accuracy", "mse"], ["mse", "mse", "auc"],
     ["accuracy", "accuracy_1", "mse", "weighted_mse", "weighted_mse_1", "auc"]),
])
def test_log_names_as_keras_compile_metrics(metrics, weighted, want):
    assert log_names([_Named(n) for n in metrics], [_Named(n) for n in weighted]) == want


def test_weighted_metrics_vs_numpy():
    x, y, w = _data()
    m = _model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=["accuracy", cf.metrics.SparseTopKCategoricalAccuracy(k=2)])
    m.fit(x, y, batch_size=16, epochs=1, verbose=0, sample_weight=w)
    got = m.evaluate(x, y, batch_size=10, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(got) == ["accuracy", "loss", "sparse_top_k_categorical_accuracy",
                           "weighted_accuracy"]
    pred = m.predict(x, verbose=0).astype(np.float64)
    hit = (pred.argmax(1) == y).astype(np.float64)
    top2 = (np.argsort(-pred, axis=1)[:, :2] == y[:, None]).any(1).astype(np.float64)
    # float32 running sums over 5 batches against float64: measured <= 1e-7
    np.testing.assert_allclose(got["accuracy"], hit.mean(), atol=1e-6)
    np.testing.assert_allclose(got["weighted_accuracy"], (hit * w).sum() / w.sum(), atol=1e-6)
    np.testing.assert_allclose(got["sparse_top_k_categorical_accuracy"],
                               (top2 * w).sum() / w.sum(), atol=1e-6)
    assert got["weighted_accuracy"] != got["accuracy"]
    # without sample weights a weighted metric is the metric
    plain = m.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    assert plain["weighted_accuracy"] == plain["accuracy"]


def test_weighted_mean_over_positions_and_confusion_vs_numpy():
    """A per-sample value of rank > 1 (mse of a (4, 2) output per sample) is first averaged
    over its other axes (Keras's reduce_to_samplewise_values); Precision adds each element's
    row weight."""
    x, y, w = _data(30)
    m = _model(2, "sigmoid")
    t = (np.eye(3)[y][:, :2]).astype(np.float32)
    m.compile("sgd", "binary_crossentropy",
              weighted_metrics=["mse", cf.metrics.Precision(thresholds=0.5)])
    got = m.evaluate(x, t, batch_size=7, sample_weight=w, verbose=0, return_dict=True)
    pred = m.predict(x, verbose=0).astype(np.float64)
    mse = ((pred - t) ** 2).mean(1)
    np.testing.assert_allclose(got["mse"], (mse * w).sum() / w.sum(), rtol=1e-6)
    pos = pred > 0.5
    ww = np.broadcast_to(w[:, None], pos.shape)
    np.testing.assert_allclose(got["precision"], ww[pos & (t != 0)].sum() / ww[pos].sum(),
                               rtol=1e-6)


def test_the_net_stays_without_weighted_metrics(threads):
    """A model with weighted metrics trains on the LayerEngine (the Net counts correct rows
    only); the training itself is the same bit for bit, and a model without them keeps the
    Net."""
    x, y, w = _data()
    runs = []
    for weighted in (False, True):
        m = _model()
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"] if weighted else None)
        assert type(executor.for_model(m, 16, "train")).__name__ == \
            ("LayerEngine" if weighted else "NativeEngine")
        h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, sample_weight=w,
                  validation_data=(x[:20], y[:20], w[:20])).history
        runs.append((h, m.get_weights()))
    (h0, w0), (h1, w1) = runs
    for key in h0:
        assert h0[key] == h1[key], key
    assert sorted(h1) == sorted(list(h0) + ["weighted_accuracy", "val_weighted_accuracy"])
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)


def test_evaluate_list_and_train_on_batch_order():
    x, y, w = _data(20)
    m = _model()
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy", "accuracy"],
              weighted_metrics=["accuracy"])
    d = m.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert sorted(d) == ["accuracy", "accuracy_1", "loss", "weighted_accuracy"]
    # Keras's _flatten_metrics_in_order: loss, then each metric's own name as often as it is
    # compiled (accuracy three times), then the other logs sorted
    assert m.evaluate(x, y, sample_weight=w, verbose=0) == \
        [d["loss"], d["accuracy"], d["accuracy"], d["accuracy"], d["accuracy_1"],
         d["weighted_accuracy"]]
    r = m.train_on_batch(x, y, sample_weight=w, return_dict=True)
    assert sorted(r) == sorted(d)


def test_bad_weighted_metrics():
    m = _model()
    with pytest.raises(TypeError, match="weighted_metrics must be a list"):
        m.compile("sgd", "sparse_categorical_crossentropy", weighted_metrics="accuracy")
    with pytest.raises(NotImplementedError, match="per-output weighted_metrics"):
        m.compile("sgd", "sparse_categorical_crossentropy",
                  weighted_metrics={"dense": "accuracy"})
    with pytest.raises(NotImplementedError, match="f1_score"):
        m.compile("sgd", "sparse_categorical_crossentropy", weighted_metrics=["f1_score"])


def test_weighted_metrics_round_trip_in_files(tmp_path):
    x, y, w = _data(20)
    m = _model()
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=["accuracy", cf.metrics.AUC(curve="PR", name="pr",
                                                           label_weights=[1.0, 2.0, 0.5])])
    yy = np.eye(3, dtype=np.float32)[y]
    m.fit(x, yy, epochs=1, verbose=0, sample_weight=w)
    want = m.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True)
    for name in ("m.keras", "m.h5"):
        m.save(tmp_path / name)
        m2 = cf.models.load_model(tmp_path / name)
        assert [type(v).__name__ for v in m2._weighted_metrics] == ["Accuracy", "AUC"]
        assert m2._weighted_metrics[1].curve == "PR"
        assert m2._weighted_metrics[1].label_weights.tolist() == [1.0, 2.0, 0.5]
        assert m2.evaluate(x, yy, sample_weight=w, verbose=0, return_dict=True) == want
    m3 = cf.models.clone_model(m)
    assert [v.name for v in m3._weighted_metrics] == ["accuracy", "pr"]


# ---- tf.keras parity ------------------------------------------------------------------------
def _pair(keras, loss, metrics, weighted, lr=0.05):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = [("Conv2D", (4, 3), {"activation": "relu"}), ("MaxPooling2D", (2,), {}),
            ("Flatten", (), {}), ("Dense", (3,), {"activation": "softmax"})]
    km = keras.Sequential([keras.Input((8, 8, 1))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    reset_names()
    cm = cf.Sequential([layers.Input((8, 8, 1))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    cm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(lr), loss=loss, metrics=metrics(keras),
               weighted_metrics=weighted(keras), jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(lr), loss=loss, metrics=metrics(cf),
               weighted_metrics=weighted(cf))
    return km, cm


def _check_logs(got, want, what):
    assert sorted(got) == sorted(want), what
    for key in want:
        # 2-epoch SGD runs with copied weights: losses differ by ~2e-7 relative, the float32
        # weighted sums of the metrics by ~1e-7; asserted at 1e-5 / 1e-6
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{what} {key}")
        tf_oracle.record(f"weighted metrics {key}", np.asarray(got[key]),
                         np.asarray(want[key]))


CASES = {
    "sparse": ("sparse_categorical_crossentropy", lambda k: ["accuracy"],
               lambda k: ["accuracy", k.metrics.SparseTopKCategoricalAccuracy(k=2)]),
    "onehot": ("categorical_crossentropy", lambda k: ["accuracy", "mse"],
               lambda k: ["accuracy", "mse", "mae", k.metrics.AUC(name="auc"),
                          k.metrics.Precision(name="prec"), k.metrics.Recall(name="rec")]),
}


@pytest.mark.tf
@pytest.mark.parametrize("weights", ["sample_weight", "class_weight", "validation_split"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_weighted_metrics_match_keras(tf_keras, case, weights):
    tf, keras = tf_keras
    loss, metrics, weighted = CASES[case]
    x, y, w = _data(64)
    yy = y if case == "sparse" else np.eye(3, dtype=np.float32)[y]
    km, cm = _pair(keras, loss, metrics, weighted)
    kw = {"sample_weight": w, "validation_data": (x[:24], yy[:24], w[:24])}
    if weights == "class_weight":
        kw = {"class_weight": {0: 0.5, 1: 2.0, 2: 1.25}, "validation_data": (x[:24], yy[:24])}
    elif weights == "validation_split":
        kw = {"sample_weight": w, "validation_split": 0.25}
    hk = km.fit(x, yy, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw).history
    hc = cm.fit(x, yy, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw).history
    _check_logs(hc, hk, f"{case}/{weights} fit")
    ek = km.evaluate(x, yy, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    ec = cm.evaluate(x, yy, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    _check_logs(ec, ek, f"{case}/{weights} evaluate")
    lk = km.evaluate(x, yy, sample_weight=w, batch_size=20, verbose=0)
    lc = cm.evaluate(x, yy, sample_weight=w, batch_size=20, verbose=0)
    np.testing.assert_allclose(lc, lk, rtol=1e-5, atol=1e-6)
    bk = km.train_on_batch(x[:20], yy[:20], sample_weight=w[:20], return_dict=True)
    bc = cm.train_on_batch(x[:20], yy[:20], sample_weight=w[:20], return_dict=True)
    _check_logs(bc, bk, f"{case}/{weights} train_on_batch")


def test_early_stopping_knows_a_weighted_metrics_direction():
    x, y, w = _data(20)
    m = _model()
    yy = np.eye(3, dtype=np.float32)[y]
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=["accuracy", "mse"])
    stops = [cf.callbacks.EarlyStopping(monitor=k) for k in
             ("val_weighted_accuracy", "val_mse")]
    m.fit(x, yy, epochs=1, verbose=0, sample_weight=w, validation_data=(x, yy, w),
          callbacks=stops)
    assert [s.monitor_op for s in stops] == [np.greater, np.less]
