"""keras.layers.ZeroPadding2D: the zeropad2d kernels (exactly np.pad and its crop, 1 and 2
threads), both engines bit for bit with padding inside a conv chain (native: Op.zero_pad2d),
Keras's three padding spellings, summary/config/save-load, bad arguments, and tf.keras parity
(values, gradient, summary, one fit epoch)."""
import numpy as np
import pytest
import tf_oracle
from helpers import z

import cnnfast as cf
from cnnfast import _core, executor, layers
from cnnfast.layers.base import reset_names


@pytest.mark.parametrize("pads", [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((2, 0), (1, 3))])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 2), (8, 28, 28, 16)])
def test_zeropad2d_kernels_are_np_pad(threads, pads, shape):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    want = np.pad(x, ((0, 0),) + pads + ((0, 0),))
    y = np.full(want.shape, np.nan, np.float32)
    _core.zeropad2d_forward(y, x, pads)
    np.testing.assert_array_equal(y, want)
    dx = np.full(x.shape, np.nan, np.float32)
    _core.zeropad2d_backward(dx, want, pads)
    np.testing.assert_array_equal(dx, x)


def test_zeropad2d_binding_errors():
    with pytest.raises(ValueError, match="out has shape"):
        _core.zeropad2d_forward(z(1, 4, 4, 1), z(1, 3, 3, 1), ((1, 1), (1, 0)))
    with pytest.raises(ValueError, match=">= 0"):
        _core.zeropad2d_forward(z(1, 2, 3, 1), z(1, 3, 3, 1), ((-1, 0), (0, 0)))
    with pytest.raises(ValueError, match="4-D"):
        _core.zeropad2d_backward(z(3, 3), z(5, 5), ((1, 1), (1, 1)))


@pytest.mark.parametrize("padding,want", [
    (2, ((2, 2), (2, 2))), ((1, 3), ((1, 1), (3, 3))), (((0, 1), (2, 3)), ((0, 1), (2, 3))),
    ([1, 0], ((1, 1), (0, 0))),
])
def test_padding_spellings(padding, want):
    lay = layers.ZeroPadding2D(padding)
    assert lay.padding == want
    t, b = want[0]
    left, r = want[1]
    assert lay.compute_output_shape((None, 5, 6, 2)) == (None, 5 + t + b, 6 + left + r, 2)


def model():
    reset_names()
    cf.utils.set_random_seed(5)
    return cf.Sequential([layers.Input((7, 7, 1)), layers.ZeroPadding2D(1),
                          layers.Conv2D(4, 3, activation="relu"),
                          layers.ZeroPadding2D(((0, 1), (1, 0))), layers.MaxPooling2D(2),
                          layers.Conv2D(3, 2), layers.ZeroPadding2D((1, 0)), layers.Flatten(),
                          layers.Dense(4, activation="softmax")])


def run(native, monkeypatch):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    r = np.random.default_rng(0)
    x = r.random((40, 7, 7, 1), dtype=np.float32)
    y = r.integers(0, 4, 40)
    m = model()
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return m.get_weights(), h.history, m.predict(x, verbose=0)


def test_engines_agree_bit_for_bit(monkeypatch):
    w1, h1, p1 = run(True, monkeypatch)
    w2, h2, p2 = run(False, monkeypatch)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_config_and_save_load(tmp_path):
    m = model()
    c = m.layers[2].get_config()
    assert c["padding"] == ((0, 1), (1, 0)) and c["data_format"] == "channels_last"
    assert layers.ZeroPadding2D.from_config(c).padding == ((0, 1), (1, 0))
    m.compile("adam", "sparse_categorical_crossentropy")
    m.save(str(tmp_path / "z.cnnfast"))
    m2 = cf.models.load_model(str(tmp_path / "z.cnnfast"))
    assert type(m2.layers[0]) is layers.ZeroPadding2D and m2.layers[2].padding == ((0, 1), (1, 0))
    x = np.random.default_rng(1).random((3, 7, 7, 1), dtype=np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"padding": -1}, ValueError, ">= 0"),
    ({"padding": (1, 2, 3)}, ValueError, "padding"),
    ({"padding": ((1, 2), (3,))}, ValueError, "padding"),
    ({"padding": 1.5}, TypeError, "padding"),
    ({"data_format": "channels_first"}, NotImplementedError, "data_format"),
])
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        layers.ZeroPadding2D(**kwargs)


@pytest.mark.tf
def test_values_gradient_summary_and_fit_match_keras(tf_keras):
    tf, keras = tf_keras
    x = np.random.default_rng(1).standard_normal((2, 5, 4, 3)).astype(np.float32)
    dy = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype(np.float32)
    y_tf, (dx_tf,) = tf_oracle.tf_grads(tf, keras.layers.ZeroPadding2D(((1, 2), (3, 1))), x, dy)
    cl = layers.ZeroPadding2D(((1, 2), (3, 1)))
    np.testing.assert_array_equal(cl.forward(x, True), y_tf)
    np.testing.assert_array_equal(cl.backward(dy), dx_tf)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = [("ZeroPadding2D", (1,), {}), ("Conv2D", (8, 3), {"activation": "relu"}),
            ("ZeroPadding2D", (((0, 1), (1, 0)),), {}), ("MaxPooling2D", (2,), {}),
            ("Flatten", (), {}), ("Dense", (4,), {"activation": "softmax"})]
    km = keras.Sequential([keras.Input((9, 9, 1))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    reset_names()
    cm = cf.Sequential([layers.Input((9, 9, 1))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))
    cm.set_weights(km.get_weights())
    r = np.random.default_rng(3)
    xs = r.random((160, 9, 9, 1), dtype=np.float32)
    ys = r.integers(0, 4, 160)
    for i in range(160):
        xs[i, 2 * ys[i]:2 * ys[i] + 2] += 0.8
    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    hk = km.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record("zeropadding fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record("zeropadding fit weights (rel)", [err], [0.0])
        assert err <= 2e-2, err  # free-running Adam (test_parity_models.FREE_RUN["adam"])
