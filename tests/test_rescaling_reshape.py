"""keras.layers.Rescaling and Reshape: the rescale kernels (float32 multiply then add, exactly
NumPy's float32 expression; thread counts), both engines bit for bit with Rescaling first and
Reshape inside the chain (native: Op.rescale / Op.reshape, a view), -1 in target_shape,
summary / config / save-load, bad arguments, and tf.keras parity (values, gradient, summary,
one fit epoch)."""
import numpy as np
import pytest
import tf_oracle
from helpers import (
    assert_engines_agree,
    assert_fit_epoch_matches_keras,
    assert_summary_matches_keras,
    fit_on_engine,
    readonly,
    z,
)

import cnnfast as cf
from cnnfast import _core, layers
from cnnfast.layers.base import reset_names


@pytest.mark.parametrize("shape", [(1,), (3, 7), (4, 9, 9, 3), (70000,)])
@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (-3.0, 0.25)])
def test_rescale_kernels_are_numpys_float32_expression(threads, shape, scale, offset):
    x = (np.random.default_rng(len(shape)).random(shape, dtype=np.float32) * 255)
    y = np.empty_like(x)
    _core.rescale_forward(y, x, scale, offset)
    np.testing.assert_array_equal(y, x * np.float32(scale) + np.float32(offset))
    dx = np.empty_like(x)
    _core.rescale_backward(dx, y, scale)
    np.testing.assert_array_equal(dx, y * np.float32(scale))


def test_rescale_binding_errors():
    with pytest.raises(ValueError, match="out has shape"):
        _core.rescale_forward(z(2, 3), z(3, 2), 1.0, 0.0)
    with pytest.raises(TypeError):
        _core.rescale_forward(z(2, dtype=np.float64), z(2), 1.0, 0.0)
    with pytest.raises(ValueError):
        _core.rescale_backward(readonly(z(2)), z(2), 1.0)


def data(n=40, seed=0):
    r = np.random.default_rng(seed)
    x = (r.random((n, 8, 8, 1), dtype=np.float32) * 255).round()
    y = np.clip((x[:, :4, :4, 0].mean(axis=(1, 2)) / 64 + r.random(n) * 0.5).astype(int), 0, 3)
    return x, y


def model():
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([layers.Input((8, 8, 1)), layers.Rescaling(1 / 255.0),
                          layers.Conv2D(4, 3, activation="relu"), layers.Reshape((-1, 4)),
                          layers.Reshape((6, 6, 4)), layers.Rescaling(2.0, offset=-0.5),
                          layers.MaxPooling2D(2), layers.Reshape((36,)), layers.Dropout(0.2),
                          layers.Dense(4, activation="softmax")])


def run(native, monkeypatch):
    x, y = data()
    return fit_on_engine(monkeypatch, native, model, x, y, validation_split=0.1)


def test_engines_agree_bit_for_bit(monkeypatch):
    assert_engines_agree(lambda native: run(native, monkeypatch))


def test_shapes_config_and_save_load(tmp_path):
    m = model()
    assert m.layers[2].compute_output_shape((None, 6, 6, 4)) == (None, 36, 4)
    assert layers.Reshape((3, -1)).compute_output_shape((None, 4, 3)) == (None, 3, 4)
    c = m.layers[4].get_config()
    assert c["scale"] == 2.0 and c["offset"] == -0.5
    assert m.layers[2].get_config()["target_shape"] == (-1, 4)
    r2 = layers.Reshape.from_config(m.layers[2].get_config())
    assert r2.target_shape == (-1, 4)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.save(str(tmp_path / "r.cnnfast"))
    m2 = cf.models.load_model(str(tmp_path / "r.cnnfast"))
    assert [type(lay).__name__ for lay in m2.layers[:3]] == ["Rescaling", "Conv2D", "Reshape"]
    x, _ = data(6)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.parametrize("make,exc,word", [
    (lambda: layers.Rescaling([1.0, 2.0]), NotImplementedError, "scale"),
    (lambda: layers.Rescaling("big"), TypeError, "scale"),
    (lambda: layers.Rescaling(1.0, offset=None), TypeError, "offset"),
    (lambda: layers.Reshape((-1, -1)), ValueError, "-1"),
    (lambda: layers.Reshape((0, 3)), ValueError, "positive"),
    (lambda: layers.Reshape(5), TypeError, "target_shape"),
    (lambda: layers.Reshape((2.5,)), TypeError, "target_shape"),
    (lambda: cf.Sequential([layers.Input((4, 3)), layers.Reshape((5,))]), ValueError, "differs"),
    (lambda: cf.Sequential([layers.Input((4, 3)), layers.Reshape((5, -1))]), ValueError,
     "cannot reshape"),
])
def test_bad_arguments(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


@pytest.mark.tf
def test_values_gradient_summary_and_fit_match_keras(tf_keras):
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(1).random((5, 6, 6, 2), dtype=np.float32) * 255).round()
    dy = np.random.default_rng(2).standard_normal((5, 6, 6, 2)).astype(np.float32)
    y_tf, (dx_tf,) = tf_oracle.tf_grads(tf, keras.layers.Rescaling(1 / 127.5, offset=-1.0), x,
                                        dy)
    cl = layers.Rescaling(1 / 127.5, offset=-1.0)
    np.testing.assert_array_equal(cl(x), y_tf)
    cl.forward(x, True)
    np.testing.assert_array_equal(cl.backward(dy), dx_tf)
    spec = [("Rescaling", (1 / 255.0,), {}), ("Conv2D", (8, 3), {"activation": "relu"}),
            ("Reshape", ((-1, 8),), {}), ("Reshape", ((6, 6, 8),), {}),
            ("MaxPooling2D", (2,), {}), ("Reshape", ((72,),), {}),
            ("Dense", (4,), {"activation": "softmax"})]
    keras.backend.clear_session()  # layer names restart, as reset_names() does here
    km = keras.Sequential([keras.Input((8, 8, 1))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    reset_names()
    cm = cf.Sequential([layers.Input((8, 8, 1))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    assert_summary_matches_keras(km, cm)
    cm.set_weights(km.get_weights())
    xs, ys = data(160)
    assert_fit_epoch_matches_keras(keras, km, cm, xs, ys, "rescaling/reshape")
