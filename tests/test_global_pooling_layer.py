"""keras.layers.GlobalAveragePooling2D / GlobalMaxPooling2D: both engines bit for bit on
Conv -> GAP/GMP -> Dense chains (native: the Net's global_pool ops), keepdims, summary and
config/save/load round trips, bad arguments, and tf.keras parity (layer and one fit epoch).
Kernels: tests/kernels/test_global_pool2d.py."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names


def data(n=50, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 9, 9, 2), dtype=np.float32)
    y = np.clip((x[:, :4, :4, 0].mean(axis=(1, 2)) * 4 + r.random(n) * 0.5).astype(int), 0, 3)
    return x, y


def gp_model(kind="avg", keepdims=False):
    reset_names()
    cf.utils.set_random_seed(4)
    pool = layers.GlobalAveragePooling2D if kind == "avg" else layers.GlobalMaxPooling2D
    body = [layers.Input((9, 9, 2)),
            layers.Conv2D(6, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(8, 2, activation="relu"),
            pool(keepdims=keepdims)]
    if keepdims:
        body.append(layers.Flatten())
    return cf.Sequential(body + [layers.Dropout(0.2), layers.Dense(4, activation="softmax")])


def run(native, monkeypatch, **kw):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    x, y = data()
    m = gp_model(**kw)
    m.compile(cf.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=7, epochs=3, shuffle=True, validation_split=0.1, verbose=0)
    tob = [m.train_on_batch(x[:9], y[:9], return_dict=True) for _ in range(2)]
    ev = m.evaluate(x, y, batch_size=8, verbose=0)
    pred = m.predict(x, verbose=0)
    return m.get_weights(), h.history, tob, ev, pred


@pytest.mark.parametrize("keepdims", [False, True], ids=["flat", "keepdims"])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pooling_engines_agree_bit_for_bit(monkeypatch, kind, keepdims):
    w1, h1, t1, ev1, p1 = run(True, monkeypatch, kind=kind, keepdims=keepdims)
    w2, h2, t2, ev2, p2 = run(False, monkeypatch, kind=kind, keepdims=keepdims)
    assert h1 == h2 and t1 == t2 and ev1 == ev2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    assert h1["loss"][-1] < h1["loss"][0]


def test_layer_call_shapes_and_values():
    x = np.random.default_rng(0).random((3, 4, 5, 6), dtype=np.float32)
    for cls, ref in ((layers.GlobalAveragePooling2D, np.mean), (layers.GlobalMaxPooling2D,
                                                                 np.max)):
        np.testing.assert_allclose(cls()(x), ref(x, axis=(1, 2)), rtol=1e-6)
        assert cls(keepdims=True)(x).shape == (3, 1, 1, 6)
        assert cls().compute_output_shape((None, 4, 5, 6)) == (None, 6)
        assert cls(keepdims=True).compute_output_shape((None, 4, 5, 6)) == (None, 1, 1, 6)


def test_summary_and_config_round_trip(tmp_path):
    m = gp_model("max")
    lines = []
    m.summary(print_fn=lines.append)
    assert "│ global_max_pooling2d            │ (None, 8)              │             0 │\n" \
           "│ (GlobalMaxPooling2D)            │                        │               │" \
        in lines[0]
    c = m.layers[3].get_config()
    assert c["keepdims"] is False and c["data_format"] == "channels_last"
    again = layers.GlobalMaxPooling2D.from_config(layers.GlobalMaxPooling2D(
        keepdims=True, name="g").get_config())
    assert again.keepdims is True and again.name == "g"
    m.compile("adam", "sparse_categorical_crossentropy")
    path = tmp_path / "gp.cnnfast"
    m.save(str(path))
    m2 = cf.models.load_model(str(path))
    assert type(m2.layers[3]) is layers.GlobalMaxPooling2D
    x, _ = data(10)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
@pytest.mark.parametrize("kwargs,exc,word", [
    ({"data_format": "channels_first"}, NotImplementedError, "data_format"),
    ({"data_format": "nchw"}, ValueError, "data_format"),
    ({"keepdims": "yes"}, TypeError, "keepdims"),
])
def test_bad_arguments(kind, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        getattr(layers, kind)(**kwargs)


@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_bad_input_rank(kind):
    with pytest.raises(ValueError, match="rank 4"):
        cf.Sequential([layers.Input((5, 3)), getattr(layers, kind)()])


def test_exported_in_keras_namespace():
    k = cf.keras.layers
    assert k.GlobalAveragePooling2D is k.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    assert k.GlobalMaxPooling2D is k.GlobalMaxPool2D is layers.GlobalMaxPooling2D


# ---- tf.keras parity ----------------------------------------------------------------------------

def _spec(pool):
    return [("Input", (), {"shape": (28, 28, 1)}),
            ("Conv2D", (16, 3), {"activation": "relu"}),
            ("MaxPooling2D", (2,), {}),
            ("Conv2D", (32, 3), {"activation": "relu"}),
            (pool, (), {}),
            ("Dense", (10,), {"activation": "softmax"})]


def _digits(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 3] += 0.7
    return np.clip(x, 0, 1), y.astype(np.int64)


@pytest.mark.tf
@pytest.mark.parametrize("pool", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_fit_epoch_and_summary_match_keras(tf_keras, pool):
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    reset_names()
    spec = _spec(pool)
    km = keras.Sequential([getattr(keras.layers, c)(*a, **k) for c, a, k in spec[1:]])
    km.build((None, 28, 28, 1))
    cm = cf.Sequential([getattr(cf.layers, c)(*a, **k) for c, a, k in spec])
    assert isinstance(executor.for_model(cm, 32, "predict"), executor.NativeEngine)
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))
    cm.set_weights(km.get_weights())
    x, y = _digits(320)
    np.testing.assert_allclose(cm.predict(x[:64], verbose=0), km.predict(x[:64], verbose=0),
                               atol=1e-6, rtol=1e-5)
    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record(f"{pool} fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record(f"{pool} fit weights (rel)", [err], [0.0])
        # Free-running Adam over 10 steps (test_parity_models.FREE_RUN["adam"]).
        assert err <= 2e-2, err
