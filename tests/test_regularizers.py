"""Regularizers (cnnfast/regularizers.py, docs/keras_semantics.md#regularizers): the Keras API,
the C++ penalty against NumPy, both engines bit for bit, tf.keras parity with copied weights,
config and save/load round trips, bad arguments."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import _core, backend, executor, layers, regularizers
from cnnfast.layers.base import reset_names


# ---- the API --------------------------------------------------------------------------------
def test_defaults_configs_and_string_ids_are_keras_3():
    # Keras 3.15's values (keras/src/regularizers): L1 holds a float32 tensor, L2 a float
    assert regularizers.L1().get_config() == {"l1": float(np.float32(0.01))}
    assert regularizers.L1(0.1).get_config() == {"l1": 0.10000000149011612}
    assert regularizers.L2().get_config() == {"l2": 0.01}
    assert regularizers.L2(0.1).get_config() == {"l2": 0.1}
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.l1_l2(l1=0.01).get_config() == {"l1": 0.01, "l2": 0.0}
    assert regularizers.l1 is regularizers.L1 and regularizers.l2 is regularizers.L2
    assert regularizers.get(None) is None
    for name, cls, cfg in (("l1", regularizers.L1, {"l1": float(np.float32(0.01))}),
                           ("L2", regularizers.L2, {"l2": 0.01}),
                           ("l2", regularizers.L2, {"l2": 0.01}),
                           ("l1l2", regularizers.L1L2, {"l1": 0.0, "l2": 0.0})):
        r = regularizers.get(name)
        assert type(r) is cls and r.get_config() == cfg, name
    # Keras 3 resolves to_snake_case('L1L2') == 'l1l2': 'l1_l2' is not an id there either
    for bad in ("l1_l2", "foo", 3):
        with pytest.raises(ValueError, match="Could not interpret regularizer identifier"):
            regularizers.get(bad)
    with pytest.raises(ValueError, match="non-negative float"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="non-negative float"):
        regularizers.L1L2(l1=float("nan"))
    r = regularizers.L2(0.25)
    assert regularizers.get(r) is r
    ser = regularizers.serialize(r)
    assert ser == {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.25},
                   "registered_name": None}
    back = regularizers.get(ser)
    assert type(back) is regularizers.L2 and back.get_config() == {"l2": 0.25}
    assert regularizers.get({"class_name": "L1", "config": {"l1": 0.2}}).get_config() == \
        {"l1": float(np.float32(0.2))}
    assert type(regularizers.get(regularizers.L1)) is regularizers.L1  # a class: instantiated
    assert cf.keras.regularizers.L1L2 is regularizers.L1L2
    from cnnfast.keras.regularizers import l2  # noqa: F401


def test_call_matches_numpy():
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    ref1 = 0.3 * np.abs(x.astype(np.float64)).sum()
    ref2 = 0.02 * np.square(x.astype(np.float64)).sum()
    np.testing.assert_allclose(regularizers.L1(0.3)(x), ref1, rtol=1e-6)
    np.testing.assert_allclose(regularizers.L2(0.02)(x), ref2, rtol=1e-6)
    np.testing.assert_allclose(regularizers.L1L2(0.3, 0.02)(x), ref1 + ref2, rtol=1e-6)
    assert regularizers.L1L2()(x) == 0.0
    assert regularizers.L2(2.0)(np.ones((5, 5))) == 50.0  # Keras's docstring example


@pytest.mark.parametrize("n", [1, 37, 3 * 4096 + 5, 200_000])
def test_weight_penalty_kernel_vs_numpy_and_threads(n):
    r = np.random.default_rng(n)
    x = r.standard_normal(n).astype(np.float32)
    x[::7] = 0.0  # sign(0) = 0
    g0 = r.standard_normal(n).astype(np.float32)
    l1, l2, scale = 0.01, 0.003, np.float32(0.25)
    old = _core.num_threads()
    _core.set_num_threads(2)
    g = g0.copy()
    pen = backend.weight_penalty(g, x, l1, l2, float(scale))
    x64 = x.astype(np.float64)
    ref = np.float32(l1) * np.abs(x64).sum() + np.float32(l2) * np.square(x64).sum()
    np.testing.assert_allclose(pen, ref, rtol=1e-6)
    f1, f2 = np.float32(l1), np.float32(l2)
    want = g0 + (np.sign(x) * f1 + (np.float32(2) * x) * f2) * scale
    np.testing.assert_array_equal(g, want)  # the same float32 operations, elementwise
    # bit identical at 1 and 2 threads (fixed blocks)
    _core.set_num_threads(1)
    g1 = g0.copy()
    try:
        assert backend.weight_penalty(g1, x, l1, l2, float(scale)) == pen
    finally:
        _core.set_num_threads(old)
    np.testing.assert_array_equal(g1, g)
    with pytest.raises(ValueError, match="l1 and l2 must be >= 0"):
        backend.weight_penalty(None, x, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="weight_penalty"):
        backend.weight_penalty(np.zeros(n + 1, np.float32), x, 0.1, 0.0, 1.0)


# ---- layers ---------------------------------------------------------------------------------
def test_layer_config_round_trip_and_losses():
    d = layers.Dense(3, kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.5),
                     activity_regularizer=regularizers.L1L2(0.1, 0.2), name="d")
    c = d.get_config()
    assert c["kernel_regularizer"] == {"module": "keras.regularizers", "class_name": "L2",
                                       "config": {"l2": 0.01}, "registered_name": None}
    assert c["bias_regularizer"]["config"] == {"l1": 0.5}
    assert c["activity_regularizer"]["class_name"] == "L1L2"
    d2 = layers.Dense.from_config(c)
    assert d2.get_config() == c
    # Keras: kernel/bias regularizers always in the config, the activity one only when set
    plain = layers.Conv2D(2, 3).get_config()
    assert plain["kernel_regularizer"] is None and plain["bias_regularizer"] is None
    assert "activity_regularizer" not in plain
    x = np.full((5, 5), 2.0, np.float32)
    d = layers.Dense(5, kernel_initializer="ones", kernel_regularizer=regularizers.L1(0.01),
                     activity_regularizer=regularizers.L2(0.01))
    d(x)
    # Keras's Regularizer docstring: kernel term 0.25; activity 0.01 * 25 * 100 / 5 = 5.0
    np.testing.assert_allclose(d.losses, [5.0, 0.25], rtol=1e-6)
    d.trainable = False
    np.testing.assert_allclose(d.losses, [5.0], rtol=1e-6)  # only trainable weights count


def test_bad_arguments():
    with pytest.raises(NotImplementedError, match="kernel_regularizer.*L1, L2 and L1L2"):
        layers.Dense(2, kernel_regularizer=lambda w: 0.01 * np.sum(w))
    with pytest.raises(NotImplementedError, match="activity_regularizer"):
        layers.Conv2D(2, 3, activity_regularizer=regularizers.Regularizer())
    with pytest.raises(ValueError, match="Could not interpret"):
        layers.Dense(2, bias_regularizer="l3")
    m = cf.Sequential([layers.Input((4,)),
                       layers.Dense(3, activation="softmax", activity_regularizer="l2")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(NotImplementedError, match="activity_regularizer on the output layer"):
        m.fit(np.zeros((4, 4)), np.zeros(4), verbose=0)


# ---- engines --------------------------------------------------------------------------------
def _model(activity=None, seed=0):
    reset_names()
    cf.utils.set_random_seed(seed)
    return cf.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu", kernel_regularizer=regularizers.L2(0.01),
                      bias_regularizer="l1"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(6, activation="relu", kernel_regularizer=regularizers.L1L2(0.001, 0.002),
                     activity_regularizer=activity),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax", kernel_regularizer="l2"),
    ])


def _data(n=48):
    r = np.random.default_rng(3)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    y = r.integers(0, 3, n)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 2] += 0.8
    return x, y


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_engines_bit_equal_with_weight_regularizers(opt, threads):
    x, y = _data()
    runs = []
    for native in (True, False):
        m = _model()
        m.use_native_executor = native
        m.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
        kind = type(executor.for_model(m, 16, "train")).__name__
        assert kind == ("NativeEngine" if native else "LayerEngine")
        h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25).history
        runs.append((h, m.get_weights(), m.evaluate(x, y, verbose=0), m.losses))
    (h0, w0, e0, l0), (h1, w1, e1, l1) = runs
    assert h0 == h1 and e0 == e1 and l0 == l1
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert len(l0) == 4  # conv kernel, conv bias, two dense kernels


@pytest.mark.parametrize("native", [True, False])
def test_activity_regularizer_runs_on_both_engines(native):
    x, y = _data()
    m = _model(activity=regularizers.L2(0.01))
    m.use_native_executor = native
    m.compile("adam", "sparse_categorical_crossentropy")
    want = "NativeEngine" if native else "LayerEngine"
    assert type(executor.for_model(m, 16, "train")).__name__ == want
    assert type(executor.for_model(m, 16, "predict")).__name__ == want
    h = m.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert len(m.losses) == 5 and np.isfinite(h["loss"][0])  # activity first, then weights
    m.predict(x[:5], verbose=0)
    # the Dense layer's output on those 5 rows, by the layers below it
    below = cf.Sequential([layers.Input((8, 8, 1)), *[type(lay).from_config(lay.get_config())
                                                      for lay in m.layers[:4]]])
    below.set_weights(m.get_weights()[:4])
    np.testing.assert_allclose(m.losses[0], regularizers.L2(0.01)(
        below.predict(x[:5], verbose=0)) / np.float32(5), rtol=1e-6)


def test_penalty_is_in_the_reported_loss_and_the_gradient():
    """A Dense model on the LayerEngine without regularizers vs with: the difference in the
    reported loss is the penalty before the step, and the step's update sees 2*l2*w."""
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    y = np.arange(8) % 3
    outs = []
    for reg in (None, regularizers.L2(0.5)):
        reset_names()
        m = cf.Sequential([layers.Input((4,)),
                           layers.Dense(3, activation="softmax", kernel_regularizer=reg,
                                        kernel_initializer="ones")])
        m.compile(cf.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        w = m.get_weights()[0].copy()
        loss = m.train_on_batch(x, y)
        outs.append((loss, w, m.get_weights()[0]))
    (l0, w, k0), (l1, _, k1) = outs
    np.testing.assert_allclose(l1 - l0, 0.5 * np.sum(w * w), rtol=1e-6)
    np.testing.assert_allclose(k1 - k0, -0.1 * 2 * 0.5 * w, rtol=1e-5, atol=1e-7)


# ---- tf.keras parity ------------------------------------------------------------------------
def _keras_model(keras, activity):
    L, R = keras.layers, keras.regularizers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(4, 3, activation="relu", kernel_regularizer=R.L2(0.01),
                 bias_regularizer="l1"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(6, activation="relu", kernel_regularizer=R.L1L2(0.001, 0.002),
                activity_regularizer=R.L2(0.01) if activity else None),
        L.Dense(3, activation="softmax", kernel_regularizer="l2"),
    ])


def _cf_model(activity):
    reset_names()
    return cf.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu", kernel_regularizer=regularizers.L2(0.01),
                      bias_regularizer="l1"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(6, activation="relu", kernel_regularizer=regularizers.L1L2(0.001, 0.002),
                     activity_regularizer=regularizers.L2(0.01) if activity else None),
        layers.Dense(3, activation="softmax", kernel_regularizer="l2"),
    ])


# A 3-epoch SGD run with copied weights: measured relative differences 1.1e-7 (loss), 2.1e-7
# (val_loss), 4.3e-7 (weights); asserted at the run-level 1e-5.
LOSS_RTOL = 1e-5


@pytest.mark.tf
@pytest.mark.parametrize("activity", [False, True])
def test_fit_and_evaluate_match_keras(tf_keras, activity):
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    km = _keras_model(keras, activity)
    cm = _cf_model(activity)
    cm.set_weights(km.get_weights())
    x, y = _data(64)
    # model.losses after a call on the same batch
    km(x[:16])
    cm(x[:16])
    np.testing.assert_allclose([float(v) for v in cm.losses], [float(v) for v in km.losses],
                               rtol=1e-6)
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                validation_data=(x[:32], y[:32])).history
    hc = cm.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                validation_data=(x[:32], y[:32])).history
    assert sorted(hc) == sorted(hk)
    for key in ("loss", "val_loss"):
        rel = np.max(np.abs(np.array(hc[key]) - hk[key]) / np.abs(hk[key]))
        tf_oracle.record(f"regularized fit {key} (rel)", [rel], [0.0])
        assert rel <= LOSS_RTOL, (key, hc[key], hk[key])
    assert hc["accuracy"] == pytest.approx(hk["accuracy"])
    ek = km.evaluate(x, y, verbose=0)
    ec = cm.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(ec[0], ek[0], rtol=LOSS_RTOL)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record("regularized fit weights (rel)", [err], [0.0])
        assert err <= 1e-5, err


# ---- saving ---------------------------------------------------------------------------------
def test_save_load_keeps_the_regularizers(tmp_path):
    x, y = _data()
    m = _model(activity=regularizers.L1(0.001))
    m.compile("sgd", "sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    m.save(path)
    m2 = cf.models.load_model(path)
    for a, b in zip(m.layers, m2.layers):
        assert a.get_config() == b.get_config()
    assert m2.layers[0]._weight_regularizers["kernel"].get_config() == {"l2": 0.01}
    e1, e2 = m.evaluate(x, y, verbose=0), m2.evaluate(x, y, verbose=0)
    assert e1 == e2
    np.testing.assert_array_equal(m.losses[1:], m2.losses[1:])  # the weights' penalties


def test_regularized_weighted_fit_is_bit_identical_at_1_and_2_threads():
    x, y = _data()
    w = np.random.default_rng(4).random(len(y)).astype(np.float32)
    runs = []
    old = _core.num_threads()
    try:
        for t in (1, 2):
            _core.set_num_threads(t)
            for native in (True, False):
                m = _model(activity=None if native else regularizers.L1(0.001))
                m.use_native_executor = native
                m.compile("adam", "sparse_categorical_crossentropy")
                h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, sample_weight=w).history
                runs.append((t, native, h, m.get_weights()))
    finally:
        _core.set_num_threads(old)
    for native in (True, False):
        (_, _, h1, w1), (_, _, h2, w2) = [r for r in runs if r[1] is native]
        assert h1 == h2
        for a, b in zip(w1, w2):
            np.testing.assert_array_equal(a, b)
