"""layer.weights / variables / trainable_weights / non_trainable_weights as Keras Variables:
name, path, shape, dtype, trainable, numpy(), assign(), __array__; get/set_weights unchanged."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import Variable, reset_names


def _seq():
    reset_names()
    return cf.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization(),
                          layers.Flatten(), layers.Dense(4)])


def test_names_paths_and_trainable_flags():
    m = _seq()
    got = [(v.name, v.path, v.trainable, v.shape, v.dtype) for v in m.weights]
    assert got == [
        ("kernel", "sequential/conv2d/kernel", True, (3, 3, 2, 3), "float32"),
        ("bias", "sequential/conv2d/bias", True, (3,), "float32"),
        ("gamma", "sequential/batch_normalization/gamma", True, (3,), "float32"),
        ("beta", "sequential/batch_normalization/beta", True, (3,), "float32"),
        ("moving_mean", "sequential/batch_normalization/moving_mean", False, (3,), "float32"),
        ("moving_variance", "sequential/batch_normalization/moving_variance", False, (3,),
         "float32"),
        ("kernel", "sequential/dense/kernel", True, (48, 4), "float32"),
        ("bias", "sequential/dense/bias", True, (4,), "float32")]
    assert all(isinstance(v, Variable) for v in m.variables)
    assert [v.path for v in m.trainable_variables] == [v.path for v in m.trainable_weights]
    assert [v.name for v in m.non_trainable_weights] == ["moving_mean", "moving_variance"]
    bn = m.layers[1]
    assert [v.name for v in bn.trainable_variables] == ["gamma", "beta"]
    assert [v.name for v in bn.non_trainable_variables] == ["moving_mean", "moving_variance"]
    bn.trainable = False
    assert bn.trainable_weights == [] and [v.trainable for v in bn.weights] == [False] * 4
    assert len(bn.non_trainable_weights) == 4
    m.trainable = False
    assert m.trainable_weights == [] and len(m.non_trainable_weights) == 8


def test_functional_paths_have_no_model_prefix():
    reset_names()
    inp = layers.Input((5,))
    hidden = layers.Dense(3)(inp)
    m = cf.Model(inp, layers.Dense(2)(hidden))
    assert [v.path for v in m.weights] == ["dense/kernel", "dense/bias", "dense_1/kernel",
                                           "dense_1/bias"]


def test_numpy_assign_array_and_arithmetic():
    m = _seq()
    x = np.random.default_rng(0).random((2, 6, 6, 2), dtype=np.float32)
    before = m.predict(x, verbose=0)
    k = m.layers[-1].kernel
    v = m.layers[-1].weights[0]
    assert v.value is k
    a = v.numpy()
    assert isinstance(a, np.ndarray) and not np.shares_memory(a, k)   # a copy, as Keras
    np.testing.assert_array_equal(np.asarray(v), k)
    assert np.asarray(v) is k                                         # __array__: no copy
    np.testing.assert_array_equal(v * 2, k * 2)
    np.testing.assert_array_equal(np.sum(v), np.sum(k))
    assert isinstance(v + 1, np.ndarray) and not isinstance(v + 1, Variable)
    assert v.assign(np.zeros((48, 4))) is v
    assert not k.any()                                               # in place
    after = m.predict(x, verbose=0)
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, np.broadcast_to(m.layers[-1].bias, after.shape))
    v.assign_add(np.ones((48, 4)))
    v.assign_sub(0.5 * np.ones((48, 4)))
    np.testing.assert_array_equal(k, 0.5)
    with pytest.raises(ValueError, match=r"sequential/dense/kernel.*\(3,\).*\(48, 4\)"):
        v.assign(np.zeros(3))
    assert "path=sequential/dense/kernel" in repr(v) and "shape=(48, 4)" in repr(v)
    assert v.ndim == 2 and v.size == 192 and len(v) == 48 and v.copy().shape == (48, 4)


def test_get_set_weights_unchanged_and_training_sees_assign():
    m = _seq()
    ws = m.get_weights()
    assert all(type(w) is np.ndarray for w in ws)
    assert [w.shape for w in ws] == [v.shape for v in m.weights]
    m.set_weights([w + 1 for w in ws])
    for v, w in zip(m.weights, ws):
        np.testing.assert_array_equal(v.numpy(), w + 1)
    # the variables stay the same objects while the layer keeps its arrays
    assert m.layers[0].weights[0] is m.layers[0].weights[0]
    m.compile("sgd", "mse")
    x = np.ones((4, 6, 6, 2), np.float32)
    kernel = m.layers[-1].weights[0]
    start = kernel.numpy()
    m.fit(x, np.zeros((4, 4)), verbose=0, epochs=1)
    assert not np.array_equal(kernel.numpy(), start)    # the variable sees the update


@pytest.mark.tf
def test_names_paths_match_keras(tf_keras):
    _, keras = tf_keras
    reset_names()
    keras.backend.clear_session()

    def build(lib):
        L = lib.layers
        seq = lib.Sequential([L.Input((6, 6, 2)), L.Conv2D(3, 3), L.BatchNormalization(),
                              L.Flatten(), L.Dense(4)])
        inp = L.Input((5,))
        fun = lib.Model(inp, L.Dense(2)(L.Dense(3)(inp)))
        return seq, fun

    for ours, theirs in zip(build(cf), build(keras)):
        assert [(v.name, v.path, v.trainable, tuple(v.shape), v.dtype) for v in ours.weights] \
            == [(v.name, v.path, v.trainable, tuple(v.shape), v.dtype) for v in theirs.weights]
        theirs.trainable = False
        ours.trainable = False
        assert [v.trainable for v in ours.weights] == [v.trainable for v in theirs.weights]
