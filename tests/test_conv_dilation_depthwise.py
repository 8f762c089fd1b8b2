"""Conv2D(dilation_rate=...), DepthwiseConv2D and SeparableConv2D as layers: tf.keras parity
with copied weights (outputs and tf.GradientTape gradients), summary lines and parameter
counts, get_config/from_config, save/load, from_keras/to_keras, the engines (the Net declines
these layers, the LayerEngine runs them), bad arguments, and a short fit against tf.keras.
Kernels: tests/kernels/test_depthwise.py."""
import numpy as np
import pytest
import tf_oracle
from tf_oracle import GRAD_SUM_ATOL, check, tf_grads

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names

# (class, args, kwargs, input shape without the batch)
LAYER_CASES = [
    ("Conv2D", (4, 3), {"dilation_rate": 2}, (11, 10, 3)),
    ("Conv2D", (5, (3, 2)), {"dilation_rate": (2, 3), "padding": "same"}, (9, 12, 2)),
    ("Conv2D", (3, 2), {"dilation_rate": (1, 3), "padding": "same", "activation": "relu"},
     (7, 8, 4)),
    ("DepthwiseConv2D", (3,), {}, (9, 8, 3)),
    ("DepthwiseConv2D", (3,), {"depth_multiplier": 2, "strides": 2, "padding": "same"},
     (11, 10, 3)),
    ("DepthwiseConv2D", ((3, 2),), {"dilation_rate": (2, 1), "padding": "same",
                                    "use_bias": False}, (10, 9, 4)),
    ("DepthwiseConv2D", (3,), {"depth_multiplier": 3, "strides": 2, "dilation_rate": 2},
     (13, 12, 2)),
    ("SeparableConv2D", (6, 3), {}, (9, 9, 3)),
    ("SeparableConv2D", (4, 3), {"depth_multiplier": 2, "strides": 2, "padding": "same",
                                 "activation": "relu"}, (10, 11, 3)),
    ("SeparableConv2D", (5, 2), {"dilation_rate": 2, "padding": "same", "use_bias": False},
     (8, 9, 2)),
]


def _case_id(case):
    cls, args, kw, shape = case
    return cls + "-" + "-".join(f"{k}{v}" for k, v in kw.items()).replace(" ", "")


def cf_grads(layer, x, dy):
    y = np.array(layer.forward(x, True), copy=True)
    dx = layer.backward(dy)
    return y, [dx] + [g.copy() for g in layer.trainable_grads]


@pytest.mark.tf
@pytest.mark.parametrize("case", LAYER_CASES, ids=_case_id)
def test_layer_matches_keras_with_copied_weights(tf_keras, case):
    tf, keras = tf_keras
    cls, args, kw, shape = case
    rng = np.random.default_rng(tf_oracle.seed_of(case))
    kl = getattr(keras.layers, cls)(*args, **kw)
    kl.build((None,) + shape)
    # non-zero biases so the bias path is checked too
    kl.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) * 0.1
                    for w in kl.get_weights()])
    layer = getattr(layers, cls)(*args, **kw)
    layer._ensure_built((None,) + shape)
    layer.set_weights(kl.get_weights())
    assert [w.shape for w in layer.weights] == [tuple(w.shape) for w in kl.weights]
    x = rng.standard_normal((3,) + shape).astype(np.float32)
    out_shape = layer.compute_output_shape((3,) + shape)
    assert out_shape == tuple(kl.compute_output_shape((3,) + shape))
    dy = rng.standard_normal(out_shape).astype(np.float32)
    ky, kg = tf_grads(tf, kl, x, dy)
    cy, cg = cf_grads(layer, x, dy)
    check(f"{cls} forward", cy, ky)
    names = ["dinp"] + [f"d{w.name}" for w in kl.trainable_weights]
    for name, a, b in zip(names, cg, kg):
        check(f"{cls} {name}", a, b, atol=GRAD_SUM_ATOL)


@pytest.mark.tf
def test_summary_matches_keras(tf_keras):
    tf, keras = tf_keras
    keras.backend.clear_session()
    reset_names()
    spec = [("DepthwiseConv2D", (3,), {"depth_multiplier": 2}),
            ("SeparableConv2D", (5, 3), {"padding": "same"}),
            ("SeparableConv2D", (4, 2), {"use_bias": False, "depth_multiplier": 3}),
            ("Conv2D", (4, 3), {"dilation_rate": 2, "padding": "same"})]
    km = keras.Sequential([keras.Input((12, 12, 3))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    cm = cf.Sequential([layers.Input((12, 12, 3))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))
    assert cm.count_params() == km.count_params() == 60 + 89 + (60 + 60) + 148


def small_model():
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([
        layers.Input((12, 12, 2)),
        layers.SeparableConv2D(6, 3, depth_multiplier=2, activation="relu", padding="same"),
        layers.DepthwiseConv2D(3, strides=2, activation="relu",
                               depthwise_initializer="he_uniform"),
        layers.Conv2D(5, 2, dilation_rate=2, activation="relu"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax")])


def data(n=40, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 12, 12, 2), dtype=np.float32)
    y = (x[:, :6, :, 0].mean(axis=(1, 2)) * 3).astype(int).clip(0, 2)
    return x, y


def test_config_round_trip_and_save_load(tmp_path):
    m = small_model()
    for layer in m.layers:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    c = m.layers[1].get_config()
    assert (c["depth_multiplier"], c["dilation_rate"], c["depthwise_initializer"]) == \
        (1, (1, 1), "he_uniform")
    assert m.layers[0].get_config()["pointwise_initializer"] == "glorot_uniform"
    assert m.layers[2].get_config()["dilation_rate"] == (2, 2)
    seeded = layers.SeparableConv2D(2, 3, depthwise_initializer=cf.initializers.GlorotUniform(5))
    again = layers.SeparableConv2D.from_config(seeded.get_config())
    assert again.depthwise_initializer.seed == 5
    m.compile("adam", "sparse_categorical_crossentropy")
    x, y = data()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "dw.cnnfast"
    m.save(str(path))
    m2 = cf.models.load_model(str(path))
    assert [type(a) for a in m2.layers] == [type(a) for a in m.layers]
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_net_runs_them_and_trains(monkeypatch):
    # Net vs LayerEngine agreement: tests/test_net_conv_more.py
    m = small_model()
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)
    kinds = [executor._net_op(layer).kind for layer in m.layers[:3]]
    assert kinds == [cf.backend.OpKind.separable_conv2d, cf.backend.OpKind.depthwise_conv2d,
                     cf.backend.OpKind.conv2d_dilated]
    undilated = layers.Conv2D(2, 3)
    undilated._ensure_built((None, 8, 8, 1))
    assert executor._net_op(undilated).kind == cf.backend.OpKind.conv2d  # dilation 1
    x, y = data()
    h = m.fit(x, y, batch_size=8, epochs=4, verbose=0).history
    assert h["loss"][-1] < h["loss"][0]


def test_threads_give_identical_training(monkeypatch):
    runs = []
    old = cf.backend.get_num_threads()
    try:
        for n in (1, 2):
            cf.backend.set_num_threads(n)
            m = small_model()
            m.compile("adam", "sparse_categorical_crossentropy")
            x, y = data()
            m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            runs.append(m.get_weights())
    finally:
        cf.backend.set_num_threads(old)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.tf
def test_from_keras_and_to_keras(tf_keras):
    tf, keras = tf_keras
    keras.backend.clear_session()
    km = keras.Sequential([
        keras.Input((12, 12, 2)),
        keras.layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same",
                                     activation="relu", name="sep"),
        keras.layers.DepthwiseConv2D(3, dilation_rate=2, name="dw"),
        keras.layers.Conv2D(3, 3, dilation_rate=(1, 2), name="dil"),
        keras.layers.Flatten(), keras.layers.Dense(2)])
    x = np.random.default_rng(1).random((5, 12, 12, 2), dtype=np.float32)
    cm = cf.from_keras(km)
    assert [type(a).__name__ for a in cm.layers[:3]] == ["SeparableConv2D", "DepthwiseConv2D",
                                                         "Conv2D"]
    assert cm.layers[2].dilation_rate == (1, 2)
    check("from_keras separable/depthwise/dilated", cm.predict(x, verbose=0),
          km.predict(x, verbose=0))
    back = cm.to_keras()
    check("to_keras separable/depthwise/dilated", back.predict(x, verbose=0),
          km.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(NotImplementedError, match="'r'.*depthwise_regularizer"):
        cf.from_keras(keras.Sequential([keras.Input((6, 6, 1)), keras.layers.DepthwiseConv2D(
            3, depthwise_regularizer="l2", name="r")]))


@pytest.mark.parametrize("make,exc,pattern", [
    (lambda: layers.Conv2D(2, 3, strides=2, dilation_rate=2), ValueError,
     r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda: layers.Conv2D(2, 3, strides=(1, 2), dilation_rate=(2, 1)), ValueError,
     r"strides=\(1, 2\) and dilation_rate=\(2, 1\)"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=0), ValueError, "dilation_rate must be positive"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=1.5), ValueError, "depth_multiplier"),
    (lambda: layers.DepthwiseConv2D(0), ValueError, "kernel_size must be positive"),
    (lambda: layers.DepthwiseConv2D(3, dilation_rate=(1, 2, 3)), ValueError, "dilation_rate"),
    (lambda: layers.DepthwiseConv2D(3, padding="full"), ValueError, "padding"),
    (lambda: layers.DepthwiseConv2D(3, data_format="channels_first"), NotImplementedError,
     "channels_first"),
    (lambda: layers.DepthwiseConv2D(3, depthwise_regularizer="l2"), NotImplementedError,
     "depthwise_regularizer"),
    (lambda: layers.DepthwiseConv2D(3, bias_constraint="non_neg"), NotImplementedError,
     "bias_constraint"),
    (lambda: layers.DepthwiseConv2D(3, filters=4), TypeError, "filters"),
    (lambda: layers.SeparableConv2D(0, 3), ValueError, "filters must be a positive int"),
    (lambda: layers.SeparableConv2D(4, 3, pointwise_regularizer="l2"), NotImplementedError,
     "pointwise_regularizer"),
    (lambda: layers.SeparableConv2D(4, 3, pointwise_constraint="non_neg"), NotImplementedError,
     "pointwise_constraint"),
    (lambda: layers.SeparableConv2D(4, 3, activation="rellu"), ValueError, "rellu"),
])
def test_bad_arguments(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


@pytest.mark.parametrize("make,kind", [
    (lambda: layers.DepthwiseConv2D(3, dilation_rate=3), "DepthwiseConv2D"),
    (lambda: layers.SeparableConv2D(2, 4, dilation_rate=2), "SeparableConv2D"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=4), "Conv2D"),
])
def test_input_too_small_for_dilated_window(make, kind):
    with pytest.raises(ValueError, match=rf"{kind} '.*': input \(None, 6, 6, 1\) does not fit.*"
                                         r"dilation_rate=\(\d, \d\)"):
        cf.Sequential([layers.Input((6, 6, 1)), make()])
    with pytest.raises(ValueError, match="rank 4"):
        cf.Sequential([layers.Input((6, 6)), make()])


def test_exported_in_keras_namespace():
    k = cf.keras.layers
    assert k.DepthwiseConv2D is layers.DepthwiseConv2D
    assert k.SeparableConv2D is k.SeparableConvolution2D is layers.SeparableConv2D


@pytest.mark.tf
def test_short_fit_matches_keras(tf_keras):
    """A small SeparableConv2D/DepthwiseConv2D/dilated Conv2D model, one epoch of Adam on the
    same data and weights as tf.keras: loss and weights agree."""
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    reset_names()
    spec = [("SeparableConv2D", (8, 3), {"depth_multiplier": 2, "activation": "relu",
                                         "padding": "same"}),
            ("MaxPooling2D", (2,), {}),
            ("DepthwiseConv2D", (3,), {"activation": "relu", "padding": "same"}),
            ("Conv2D", (8, 3), {"dilation_rate": 2, "activation": "relu"}),
            ("Flatten", (), {}),
            ("Dense", (4, ), {"activation": "softmax"})]
    km = keras.Sequential([getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    km.build((None, 16, 16, 1))
    cm = cf.Sequential([layers.Input((16, 16, 1))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    cm.set_weights(km.get_weights())
    rng = np.random.default_rng(0)
    x = rng.random((160, 16, 16, 1), dtype=np.float32)
    y = rng.integers(0, 4, 160)
    for i in range(160):
        x[i, 4 * y[i]:4 * y[i] + 3] += 0.8
    check("separable model predict", cm.predict(x[:32], verbose=0), km.predict(x[:32], verbose=0),
          atol=1e-6)
    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    hk = km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record("separable fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    assert hc["accuracy"][0] == pytest.approx(hk["accuracy"][0], abs=1e-6)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record("separable fit weights (rel)", [err], [0.0])
        # Free-running Adam over 10 steps (test_parity_models.FREE_RUN["adam"]).
        assert err <= 2e-2, err
