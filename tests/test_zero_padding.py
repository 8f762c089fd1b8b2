"""keras.layers.ZeroPadding2D: the zeropad2d kernels (exactly np.pad and its crop, 1 and 2
threads), both engines bit for bit with padding inside a conv chain (native: Op.zero_pad2d),
Keras's three padding spellings, summary/config/save-load, bad arguments, and tf.keras parity
(values, gradient, summary, one fit epoch)."""
import numpy as np
import pytest
import tf_oracle
from helpers import (
    assert_engines_agree,
    assert_fit_epoch_matches_keras,
    assert_summary_matches_keras,
    fit_on_engine,
    z,
)

import cnnfast as cf
from cnnfast import _core, layers
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
    r = np.random.default_rng(0)
    x = r.random((40, 7, 7, 1), dtype=np.float32)
    y = r.integers(0, 4, 40)
    return fit_on_engine(monkeypatch, native, model, x, y)


def test_engines_agree_bit_for_bit(monkeypatch):
    assert_engines_agree(lambda native: run(native, monkeypatch))


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
    assert_summary_matches_keras(km, cm)
    cm.set_weights(km.get_weights())
    r = np.random.default_rng(3)
    xs = r.random((160, 9, 9, 1), dtype=np.float32)
    ys = r.integers(0, 4, 160)
    for i in range(160):
        xs[i, 2 * ys[i]:2 * ys[i] + 2] += 0.8
    assert_fit_epoch_matches_keras(keras, km, cm, xs, ys, "zeropadding")
