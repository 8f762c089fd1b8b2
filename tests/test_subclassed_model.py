"""Subclassed keras.Model: layers assigned in __init__, call() composing them, traced once on a
symbolic input into the graph the functional API builds; summary in Keras 3's form for
subclassed models; fit/evaluate/predict; save/load through register_keras_serializable;
clear errors for what one traced graph cannot express; user-defined Layers refused clearly."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import keras, layers
from cnnfast.layers.base import reset_names
from cnnfast.models.summary import KERAS_BUILT_ON_CALL


def make_class(lib, register=False):
    L = lib.layers

    class ConvNet(lib.Model):
        def __init__(self, num_classes=3, use_dropout=True, **kwargs):
            super().__init__(**kwargs)
            self.conv = L.Conv2D(4, 3, activation="relu")
            self.bn = L.BatchNormalization()
            self.pool = L.MaxPooling2D()
            self.unused = L.GlobalAveragePooling2D()
            self.flat = L.Flatten()
            self.use_dropout = use_dropout
            self.drop = L.Dropout(0.25)
            self.head = [L.Dense(8, activation="relu"), L.Dense(num_classes,
                                                                activation="softmax")]

        def call(self, inputs, training=None):
            x = self.pool(self.bn(self.conv(inputs), training=training))
            x = self.flat(x)
            if self.use_dropout:                      # static Python control flow
                x = self.drop(x, training=training)
            for layer in self.head:
                x = layer(x)
            return x

    if register:
        ConvNet = lib.saving.register_keras_serializable(package="cnnfast_tests")(ConvNet)
    return ConvNet


ConvNet = make_class(keras, register=True)


def _data(n=32):
    rng = np.random.default_rng(1)
    return rng.random((n, 10, 10, 1), dtype=np.float32), np.arange(n) % 3


def _functional_twin(m):
    """The functional model with the same layers' configs, weights copied."""
    inp = layers.Input((10, 10, 1))
    x = inp
    for layer in (m.conv, m.bn, m.pool, m.flat, m.drop, m.head[0], m.head[1]):
        x = type(layer).from_config({**layer.get_config(), "name": layer.name + "_f"})(x)
    f = cf.Model(inp, x)
    f.set_weights(m.get_weights())
    return f


def test_traced_graph_is_the_functional_graph():
    reset_names()
    m = ConvNet()
    assert not m.built and m.name == "conv_net"
    x, y = _data()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert m.built and sorted(h.history) == ["accuracy", "loss"] and len(h.history["loss"]) == 2
    assert [layer.name for layer in m.layers] == [
        "conv2d", "batch_normalization", "max_pooling2d", "global_average_pooling2d",
        "flatten", "dropout", "dense", "dense_1"]
    plan = [type(layer).__name__ for layer, _, _ in m._plan]
    assert plan == ["Conv2D", "BatchNormalization", "MaxPooling2D", "Flatten", "Dropout",
                    "Dense", "Dense"]
    f = _functional_twin(m)
    assert [type(layer).__name__ for layer, _, _ in f._plan] == plan
    np.testing.assert_array_equal(m.predict(x, verbose=0), f.predict(x, verbose=0))
    np.testing.assert_array_equal(m(x[:5]), f.predict(x[:5], verbose=0))
    loss, acc = m.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert m.count_params() == f.count_params()
    assert [v.path for v in m.weights][:2] == ["conv_net/conv2d/kernel", "conv_net/conv2d/bias"]


def test_build_and_call_on_symbolic_input():
    m = ConvNet(num_classes=5)
    m.build((None, 10, 10, 1))
    assert m.built and m.outputs[0].shape == (None, 5)
    assert len(m.weights) == 10      # conv 2, batch norm 4, two dense 2 each
    # used as a layer of a bigger graph
    inp = layers.Input((10, 10, 1))
    outer = cf.Model(inp, layers.Softmax()(ConvNet(num_classes=2)(inp)))
    assert outer.predict(_data(3)[0], verbose=0).shape == (3, 2)


def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_summary_unbuilt_and_after_an_eager_call():
    reset_names()
    m = ConvNet()
    text = _summary(m)
    assert "conv2d (Conv2D)                 │ ?                      │   0 (unbuilt)" in text
    assert "max_pooling2d (MaxPooling2D)    │ ?                      │             0" in text
    m(_data(2)[0])
    text = _summary(m)
    assert "│ conv2d (Conv2D)                 │ (2, 8, 8, 4)           │            40 │" in text
    assert "│ max_pooling2d (MaxPooling2D)    │ ?                      │             0 │" in text


def test_static_flag_changes_the_graph():
    m = ConvNet(use_dropout=False)
    m.build((None, 10, 10, 1))
    assert "Dropout" not in [type(layer).__name__ for layer, _, _ in m._plan]
    assert m.drop in m.layers and not m.drop.built or m.drop.output is None


class _Branchy(keras.Model):
    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.d1 = layers.Dense(4)
        self.d2 = layers.Dense(2)
        self.drop = layers.Dropout(0.5)

    def call(self, inputs, training=None):
        x = self.d1(inputs)
        if self.mode == "value":
            if cf.reduce_sum(x) > 0:
                x = self.d2(x)
        elif self.mode == "truth":
            if x:
                x = self.d2(x)
        elif self.mode == "numpy":
            x = np.maximum(x, 0)
        elif self.mode == "add":
            x = x + x
        elif self.mode == "training":
            if training:
                x = self.drop(x)
        elif self.mode == "none":
            return None
        return self.d2(x)


@pytest.mark.parametrize("mode,exc,match", [
    ("value", TypeError, "no value"),
    ("truth", TypeError, "truth value"),
    ("numpy", TypeError, "no value"),
    ("add", TypeError, "unsupported operand"),
    ("training", NotImplementedError, "training=True and training=False"),
    ("none", TypeError, "returned NoneType"),
])
def test_tensor_dependent_call_raises_naming_the_model(mode, exc, match):
    m = _Branchy(mode, name=f"branchy_{mode}")
    with pytest.raises(exc, match=match) as e:
        m.predict(np.ones((2, 3)), verbose=0)
    assert f"model 'branchy_{mode}' (_Branchy)" in str(e.value)


def test_get_config_and_from_config():
    m = ConvNet(num_classes=4, name="net")
    cfg = m.get_config()
    assert cfg == {"name": "net", "trainable": True, "dtype": "float32", "num_classes": 4,
                   "use_dropout": True}
    m2 = ConvNet.from_config(cfg)
    assert type(m2) is ConvNet and m2.name == "net" and m2.head[1].units == 4

    class Opaque(keras.Model):
        def __init__(self, layer, **kwargs):
            super().__init__(**kwargs)
            self.layer = layer

        def call(self, x):
            return self.layer(x)

    with pytest.raises(NotImplementedError, match="Opaque.*get_config"):
        Opaque(layers.Dense(2)).get_config()


def test_save_load_registered_model(tmp_path):
    x, y = _data()
    m = ConvNet(num_classes=3)
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    m.save(path)
    r = keras.models.load_model(path)
    assert type(r) is ConvNet and r.compiled and r.name == m.name
    assert [layer.name for layer in r.layers] == [layer.name for layer in m.layers]
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    assert int(r.optimizer.iterations) == int(m.optimizer.iterations)
    # weights only, into a model built by hand
    m.save_weights(tmp_path / "m.weights.h5")
    w = ConvNet(num_classes=3)
    w.build((None, 10, 10, 1))
    w.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(w.predict(x, verbose=0), m.predict(x, verbose=0))


def test_unregistered_model_saves_but_needs_custom_objects(tmp_path):
    cls = make_class(keras)
    m = cls()
    m.build((None, 10, 10, 1))
    m.save(tmp_path / "u.keras")
    with pytest.raises(TypeError, match="Could not locate class 'ConvNet'.*register_keras"):
        keras.models.load_model(tmp_path / "u.keras")
    r = keras.models.load_model(tmp_path / "u.keras", custom_objects={"ConvNet": cls})
    x, _ = _data(4)
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    with pytest.raises(ValueError, match="not been built"):
        cls().save(tmp_path / "v.keras")


def test_user_defined_layer_is_refused_clearly():
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.w

    class NoWeights(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    with pytest.raises(NotImplementedError, match=r"'scale' \(Scale\).*user-defined layers"):
        Scale()(layers.Input((3,)))
    with pytest.raises(NotImplementedError, match=r"\(NoWeights\).*user-defined layers"):
        cf.Sequential([layers.Input((3,)), NoWeights()])


@pytest.mark.tf
def test_matches_keras(tf_keras):
    """The same script on tf.keras: summaries (unbuilt, after an eager call, after fit), layer
    order, variable paths, get_config, and outputs with copied weights."""
    _, k = tf_keras
    theirs_cls = make_class(k)
    ours_cls = make_class(keras)
    x, y = _data()
    out = {}
    for lib, cls in (("keras", theirs_cls), ("cnnfast", ours_cls)):
        if lib == "keras":
            k.backend.clear_session()
        else:
            reset_names()
        texts = []
        m = cls(name="net")
        texts.append(_summary(m))
        m(x[:2])
        texts.append(_summary(m))
        m2 = cls(name="net2")
        m2.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        # 30 samples in batches of 8: Keras traces fit with batch None (with only full
        # batches tf.data gives it a static batch size, which its summary would show;
        # cnnfast always shows None after fit)
        m2.fit(x[:30], y[:30], epochs=1, batch_size=8, verbose=0)
        texts.append(_summary(m2))
        out[lib] = (texts, m, [layer.name for layer in m2.layers],
                    [v.path for v in m2.weights], m2.get_config())
    (tk, km, tnames, tpaths, tcfg), (ck, cm, cnames, cpaths, ccfg) = out["keras"], out["cnnfast"]
    for a, b in zip(ck, tk):
        assert a == b.rstrip("\n")     # Keras hands print_fn the table with a final newline
    assert cnames == tnames and cpaths == tpaths
    assert {key: v for key, v in tcfg.items() if key != "dtype"} == \
        {key: v for key, v in ccfg.items() if key != "dtype"}
    for kl, cl in zip(km.layers, cm.layers):
        kl.set_weights(cl.get_weights())
    np.testing.assert_allclose(cm.predict(x, verbose=0), km.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.tf
def test_built_on_call_classes_match_keras(tf_keras):
    """KERAS_BUILT_ON_CALL (the layers whose shape Keras's subclassed summary shows) is
    what Keras records, for every saveable cnnfast layer class."""
    _, k = tf_keras
    import inspect

    from cnnfast.saving.serialization import LAYER_CLASSES
    values = {"filters": 2, "kernel_size": 3, "units": 2, "pool_size": 2, "activation": "relu",
              "rate": 0.1, "scale": 1.0, "target_shape": (-1,), "factor": 0.1,
              "height_factor": 0.1, "width_factor": 0.1, "height": 4, "width": 4}
    for name in sorted(set(LAYER_CLASSES) - {"InputLayer"}):
        cls = getattr(k.layers, name)
        required = [p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                    if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        layer = cls(*[values[p] for p in required])

        class M(k.Model):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def call(self, x):
                return self.inner(x)

        M(layer)(np.zeros((2, 8, 8, 3), np.float32))
        recorded = getattr(layer, "_build_shapes_dict", None) is not None or \
            bool(layer._inbound_nodes)
        assert recorded == (name in KERAS_BUILT_ON_CALL), name


def _engine_run(native, monkeypatch):
    from cnnfast import executor
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    cf.utils.set_random_seed(3)
    x, y = _data()
    m = ConvNet()
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, batch_size=7, epochs=2, validation_split=0.2, verbose=0)
    assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
    return m.get_weights(), h.history, m.predict(x, verbose=0)


def test_both_engines_agree_bit_for_bit(monkeypatch):
    """The traced graph runs in the native Net and in the LayerEngine with the same result
    (Dropout and BatchNormalization in training mode included)."""
    (w1, h1, p1), (w2, h2, p2) = _engine_run(True, monkeypatch), _engine_run(False, monkeypatch)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
