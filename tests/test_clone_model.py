"""keras.models.clone_model: new layers with the same configs and fresh weights (Keras
semantics), Sequential, functional and subclassed."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import keras, layers
from cnnfast.layers.base import reset_names


def _seq():
    return cf.Sequential([layers.Input((8, 8, 1), name="img"), layers.Conv2D(4, 3),
                          layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.25),
                          layers.Dense(3, activation="softmax")], name="net")


def _data(n=24):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1), dtype=np.float32), np.arange(n) % 3


def test_sequential_same_config_fresh_weights():
    reset_names()
    m = _seq()
    c = keras.models.clone_model(m)
    assert type(c) is cf.Sequential and c.name == "net" and c is not m
    assert [layer.get_config() for layer in c.layers] == [layer.get_config() for layer in m.layers]
    assert all(a is not b for a, b in zip(c.layers, m.layers))
    assert c.input_layers[0].name == "img" and c.inputs[0].shape == m.inputs[0].shape
    assert [w.shape for w in c.get_weights()] == [w.shape for w in m.get_weights()]
    assert not np.array_equal(c.get_weights()[0], m.get_weights()[0])   # re-initialised
    assert not c.compiled
    # training the clone leaves the original alone
    before = m.get_weights()
    c.compile("adam", "sparse_categorical_crossentropy")
    c.fit(*_data(), verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_clone_of_compiled_model_is_compiled_with_a_fresh_optimizer():
    m = _seq()
    m.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    m.fit(*_data(), verbose=0)
    c = keras.models.clone_model(m)
    assert c.compiled and c.optimizer is not m.optimizer
    assert c.get_compile_config() == m.get_compile_config()
    assert int(c.optimizer.iterations) == 0
    assert sorted(c.fit(*_data(), verbose=0).history) == ["accuracy", "loss"]


def test_sequential_without_input_and_clone_function():
    m = cf.Sequential([layers.Flatten(), layers.Dropout(0.5), layers.Dense(2)])
    calls = []

    def fn(layer):
        calls.append(layer.name)
        cfg = layer.get_config()
        if isinstance(layer, layers.Dropout):
            cfg["rate"] = 0.1
        return type(layer).from_config(cfg)

    c = keras.models.clone_model(m, clone_function=fn)
    assert calls == [layer.name for layer in m.layers]
    assert c.layers[1].rate == 0.1 and not c.built
    assert c.predict(np.ones((2, 3, 3)), verbose=0).shape == (2, 2)
    inp = layers.Input((4, 4))
    c2 = keras.models.clone_model(m, input_tensors=inp)
    assert c2.inputs[0] is inp and c2.outputs[0].shape == (None, 2)


def test_functional_clone_and_input_tensors():
    reset_names()
    inp = layers.Input((8, 8, 1), name="x")
    h = layers.Conv2D(2, 3, activation="relu")(inp)
    out = layers.Dense(3)(layers.Flatten()(h))
    m = cf.Model(inp, out, name="fun")
    c = keras.models.clone_model(m)
    assert type(c) is cf.Model and c.name == "fun"
    assert [layer.name for layer in c.layers] == [layer.name for layer in m.layers]
    assert [type(a) for a in c.layers] == [type(b) for b in m.layers]
    assert all(a is not b for a, b in zip(c.layers, m.layers))
    assert [w.shape for w in c.get_weights()] == [w.shape for w in m.get_weights()]
    c.set_weights(m.get_weights())
    x, _ = _data(4)
    np.testing.assert_array_equal(c.predict(x, verbose=0), m.predict(x, verbose=0))
    new_in = layers.Input((8, 8, 1))
    c2 = keras.models.clone_model(m, input_tensors=new_in)
    assert c2.inputs[0] is new_in
    with pytest.raises(ValueError, match="same structure"):
        keras.models.clone_model(m, input_tensors=[new_in, new_in])
    with pytest.raises(ValueError, match="KerasTensors"):
        keras.models.clone_model(m, input_tensors=np.zeros((1, 8, 8, 1)))


def test_bad_arguments():
    m = _seq()
    with pytest.raises(ValueError, match="Unexpected keyword"):
        keras.models.clone_model(m, foo=1)
    with pytest.raises(ValueError, match="callable"):
        keras.models.clone_model(m, clone_function=3)
    with pytest.raises(NotImplementedError, match="call_function"):
        keras.models.clone_model(m, call_function=lambda layer, x: layer(x))
    with pytest.raises(ValueError, match="Model instance"):
        keras.models.clone_model(layers.Dense(2))


@pytest.mark.tf
def test_matches_keras_clone(tf_keras):
    _, k = tf_keras
    reset_names()
    k.backend.clear_session()

    def build(lib):
        L = lib.layers
        inp = L.Input((8, 8, 1), name="x")
        out = L.Dense(3)(L.Flatten()(L.Conv2D(2, 3)(inp)))
        return lib.Sequential([L.Input((4,)), L.Dense(2)], name="s"), lib.Model(inp, out)

    for ours, theirs in zip(build(cf), build(k)):
        co, ct = keras.models.clone_model(ours), k.models.clone_model(theirs)
        assert (co.name == ours.name) and (ct.name == theirs.name)
        assert [layer.name for layer in co.layers] == [layer.name for layer in ours.layers]
        assert [layer.name for layer in ct.layers] == [layer.name for layer in theirs.layers]
        assert [type(layer).__name__ for layer in co.layers] == \
            [type(layer).__name__ for layer in ct.layers]
        assert [w.shape for w in co.get_weights()] == [w.shape for w in ct.get_weights()]


def test_subclassed_model_is_rebuilt_from_its_config():
    class Net(keras.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.d = layers.Dense(units)

        def call(self, x):
            return self.d(x)

    m = Net(units=4, name="n")
    m.build((None, 5))
    m.compile("adam", "mse")
    c = keras.models.clone_model(m)
    assert type(c) is Net and c.name == "n" and c.built and c.compiled
    assert c.d is not m.d and c.d.units == 4
    assert not np.array_equal(c.get_weights()[0], m.get_weights()[0])
    with pytest.raises(ValueError, match="only supported for Sequential"):
        keras.models.clone_model(m, clone_function=lambda layer: layer)
