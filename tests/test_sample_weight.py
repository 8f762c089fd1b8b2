"""sample_weight and class_weight (cnnfast/models/weighting.py,
docs/keras_semantics.md#sample-weights): the weighted reduction kernel vs NumPy, class weights
as Keras converts them, both engines bit for bit, tf.keras parity with copied weights (fit,
evaluate, validation weights, train_on_batch / test_on_batch), bad arguments."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import _core, backend, executor, layers
from cnnfast.layers.base import reset_names
from cnnfast.models import weighting


# ---- the kernel -----------------------------------------------------------------------------
@pytest.mark.parametrize("B,K", [(1, 1), (7, 3), (300, 129)])
def test_weighted_loss_mean_vs_numpy(B, K):
    r = np.random.default_rng(B)
    loss = r.random(B, dtype=np.float32)
    w = (r.random(B, dtype=np.float32) * 3).astype(np.float32)
    d0 = r.standard_normal((B, K)).astype(np.float32)
    outs = []
    old = _core.num_threads()
    try:
        for t in (1, 2):
            _core.set_num_threads(t)
            d = d0.copy()
            outs.append((backend.weighted_loss_mean(d, loss, w), d))
    finally:
        _core.set_num_threads(old)
    (m1, d1), (m2, d2) = outs
    assert m1 == m2
    np.testing.assert_array_equal(d1, d2)
    s = np.float32(0)
    for b in range(B):  # the float32 row-order sum the kernel states
        s += loss[b] * w[b]
    assert m1 == s / np.float32(B)
    np.testing.assert_array_equal(d1, d0 * w[:, None])
    assert backend.weighted_loss_mean(None, loss, w) == m1
    with pytest.raises(ValueError, match="weighted_loss_mean"):
        backend.weighted_loss_mean(None, loss, w[:-1] if B > 1 else np.zeros(2, np.float32))


# ---- class weights --------------------------------------------------------------------------
def _dense_model(loss="sparse_categorical_crossentropy", k=3):
    reset_names()
    cf.utils.set_random_seed(0)
    m = cf.Sequential([layers.Input((4,)), layers.Dense(5, activation="relu"),
                       layers.Dense(k, activation="softmax")])
    m.compile("sgd", loss, metrics=["accuracy"])
    return m


def test_class_weights_as_keras_converts_them():
    m = _dense_model()
    y = np.array([0, 1, 2, 1, 0])
    cw = {0: 2.0, 2: 0.5, 7: 9.0}  # class 1 unnamed: 1.0; class 7 absent: unused
    np.testing.assert_array_equal(weighting.class_weights(m, cw, y, "fit"),
                                  [2.0, 1.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(weighting.class_weights(m, cw, y[:, None], "fit"),
                                  [2.0, 1.0, 0.5, 1.0, 2.0])
    onehot = np.eye(3, dtype=np.float32)[y]
    np.testing.assert_array_equal(weighting.class_weights(m, cw, onehot, "fit"),
                                  [2.0, 1.0, 0.5, 1.0, 2.0])
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        weighting.class_weights(m, [1.0, 2.0], y, "fit")


def test_bad_arguments():
    m = _dense_model()
    x, y = np.zeros((6, 4), np.float32), np.zeros(6)
    with pytest.raises(ValueError, match="both `class_weight` and `sample_weight`"):
        m.fit(x, y, sample_weight=np.ones(6), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="both `class_weight` and `sample_weight`"):
        m.train_on_batch(x, y, sample_weight=np.ones(6), class_weight={0: 1.0})
    with pytest.raises(ValueError, match="cardinality.*x has 6 samples.*sample_weight"):
        m.fit(x, y, sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(6,\)"):
        m.evaluate(x, y, sample_weight=np.ones((6, 2)), verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        m.fit(x, y, validation_data=(x, y, np.ones(4)), verbose=0)
    with pytest.raises(TypeError, match="sample_weight must be numeric"):
        m.fit(x, y, sample_weight=np.array(["a"] * 6), verbose=0)
    ds = cf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    with pytest.raises(ValueError, match="sample_weight must not be given"):
        m.fit(ds, sample_weight=np.ones(6), verbose=0)
    with pytest.raises(ValueError, match="sample_weight must not be given"):
        m.evaluate(ds, sample_weight=np.ones(6), verbose=0)
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        m.fit(ds, class_weight=[1.0, 2.0], verbose=0)
    # a loss per position (rank-3 output): no per-sample weight
    reset_names()
    seq = cf.Sequential([layers.Input((3, 4)), layers.Dense(2)])
    seq.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match="output of rank 3"):
        seq.fit(np.zeros((2, 3, 4)), np.zeros((2, 3, 2)), sample_weight=np.ones(2), verbose=0)


# ---- engines --------------------------------------------------------------------------------
def _conv_model():
    reset_names()
    cf.utils.set_random_seed(0)
    return cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                          layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.25),
                          layers.Dense(3, activation="softmax")])


def _data(n=48):
    r = np.random.default_rng(3)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    y = r.integers(0, 3, n)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 2] += 0.8
    w = r.random(n).astype(np.float32) * 2
    return x, y, w


@pytest.mark.parametrize("kind", ["sample_weight", "class_weight"])
def test_engines_bit_equal_with_weights(kind, threads):
    x, y, w = _data()
    arg = {"sample_weight": w} if kind == "sample_weight" else \
        {"class_weight": {0: 0.5, 1: 2.0, 2: 1.5}}
    runs = []
    for native in (True, False):
        m = _conv_model()
        m.use_native_executor = native
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        assert type(executor.for_model(m, 16, "train")).__name__ == \
            ("NativeEngine" if native else "LayerEngine")
        h = m.fit(x, y, batch_size=16, epochs=2, verbose=0,
                  validation_data=(x[:20], y[:20], w[:20]), **arg).history
        runs.append((h, m.get_weights(), m.evaluate(x, y, sample_weight=w, verbose=0),
                     m.train_on_batch(x[:10], y[:10], **{k: (v[:10] if k == "sample_weight"
                                                             else v) for k, v in arg.items()}),
                     m.test_on_batch(x[:10], y[:10], sample_weight=w[:10])))
    assert runs[0][0] == runs[1][0]
    assert runs[0][2:] == runs[1][2:]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_unit_weights_change_nothing_and_metrics_stay_unweighted():
    x, y, w = _data()
    m = _conv_model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    w0 = m.get_weights()
    h1 = m.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    e1 = m.evaluate(x, y, verbose=0)
    m2 = _conv_model()
    m2.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m2.set_weights(w0)
    h2 = m2.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
                sample_weight=np.ones(48)).history
    assert h1 == h2
    # Keras: metrics= are unweighted, only the loss sees the weights
    e2 = m2.evaluate(x, y, sample_weight=w, verbose=0)
    assert e2[1] == e1[1] and e2[0] != e1[0]


# ---- tf.keras parity ------------------------------------------------------------------------
def _pair(keras, loss="sparse_categorical_crossentropy", lr=0.05):
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
    km.compile(optimizer=keras.optimizers.SGD(lr), loss=loss, metrics=["accuracy"],
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(lr), loss=loss, metrics=["accuracy"])
    return km, cm


# 2-epoch SGD runs with copied weights: measured relative differences 2.3e-7 (loss), 1.8e-7
# (val_loss), 6.7e-7 (weights); asserted at 1e-5.
RTOL = 1e-5


def _close_history(hc, hk, what):
    assert sorted(hc) == sorted(hk)
    for key in hk:
        if "loss" in key:
            rel = np.max(np.abs(np.array(hc[key]) - hk[key]) / np.abs(hk[key]))
            tf_oracle.record(f"weighted fit {key} (rel)", [rel], [0.0])
            assert rel <= RTOL, (what, key, hc[key], hk[key])
        else:
            np.testing.assert_allclose(hc[key], hk[key], rtol=1e-6, err_msg=what)


@pytest.mark.tf
@pytest.mark.parametrize("case", ["sample_weight", "class_weight", "class_weight_onehot",
                                  "validation_split", "mse"])
def test_weighted_fit_matches_keras(tf_keras, case):
    tf, keras = tf_keras
    x, y, w = _data(64)
    loss = "categorical_crossentropy" if case == "class_weight_onehot" else \
        "mse" if case == "mse" else "sparse_categorical_crossentropy"
    km, cm = _pair(keras, loss)
    yy = np.eye(3, dtype=np.float32)[y] if loss != "sparse_categorical_crossentropy" else y
    kw = {"sample_weight": w, "validation_data": (x[:24], yy[:24], w[:24])}
    if case.startswith("class_weight"):
        kw = {"class_weight": {0: 0.5, 1: 2.0, 2: 1.25}, "validation_data": (x[:24], yy[:24])}
    elif case == "validation_split":
        kw = {"sample_weight": w, "validation_split": 0.25}
    hk = km.fit(x, yy, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw).history
    hc = cm.fit(x, yy, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw).history
    _close_history(hc, hk, case)
    ek = km.evaluate(x, yy, sample_weight=w, verbose=0, batch_size=20)
    ec = cm.evaluate(x, yy, sample_weight=w, verbose=0, batch_size=20)
    np.testing.assert_allclose(ec[0], ek[0], rtol=RTOL)
    assert ec[1] == pytest.approx(ek[1])
    for cw_, kw_ in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw_.astype(np.float64) - kw_)) / np.max(np.abs(kw_)))
        tf_oracle.record("weighted fit weights (rel)", [err], [0.0])
        assert err <= RTOL, err


@pytest.mark.tf
def test_train_and_test_on_batch_match_keras(tf_keras):
    tf, keras = tf_keras
    x, y, w = _data(20)
    km, cm = _pair(keras)
    for kw in ({"sample_weight": w}, {"class_weight": {1: 3.0}}, {}):
        lk = km.train_on_batch(x, y, **kw)
        lc = cm.train_on_batch(x, y, **kw)
        np.testing.assert_allclose(lc, lk, rtol=RTOL)
    np.testing.assert_allclose(cm.test_on_batch(x, y, sample_weight=w),
                               km.test_on_batch(x, y, sample_weight=w), rtol=RTOL)
    rk = km.test_on_batch(x, y, return_dict=True)
    rc = cm.test_on_batch(x, y, return_dict=True)
    assert sorted(rc) == sorted(rk)
    np.testing.assert_allclose(rc["loss"], rk["loss"], rtol=RTOL)


@pytest.mark.tf
def test_eager_loss_call_with_sample_weight_matches_keras(tf_keras):
    tf, keras = tf_keras
    r = np.random.default_rng(5)
    p = r.random((6, 3)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    y = r.integers(0, 3, 6)
    t = r.random((6, 3)).astype(np.float32)
    w = r.random(6).astype(np.float32)
    cases = [("SparseCategoricalCrossentropy", y, p, w),
             ("CategoricalCrossentropy", np.eye(3, dtype=np.float32)[y], p, w[:, None]),
             ("MeanSquaredError", t, p, w), ("MeanAbsoluteError", t, p, w)]
    for name, yt, yp, sw in cases:
        want = float(getattr(keras.losses, name)()(yt, yp, sample_weight=sw))
        got = getattr(cf.keras.losses, name)()(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        cf.keras.losses.MeanSquaredError()(t, p, sample_weight=np.ones(4))
