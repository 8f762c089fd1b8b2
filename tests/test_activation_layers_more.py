"""keras.layers ReLU(max_value, negative_slope, threshold), LeakyReLU, ELU, PReLU, Softmax(axis)
and SpatialDropout2D: TF parity of values and gradients (wrt the input and PReLU's alpha, copied
weights, kinks included), which arguments run as a fused activation kind and which as their own
kernels (on the Net too, except Softmax over another axis than the last), both engines bit for
bit, summary and parameter counts, config / save / load, the
bad-argument errors, SpatialDropout2D's training-only channel masks, and one fit vs tf.keras.
Kernels: tests/kernels/test_relu_elu.py, test_prelu.py, test_softmax_axis.py,
test_spatial_dropout.py."""
import warnings

import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names

# (class, kwargs, activation kind it runs as, or None for its own kernel)
CASES = [
    ("ReLU", {}, "relu"),
    ("ReLU", {"max_value": 6.0}, "relu6"),
    ("ReLU", {"max_value": 2.5}, None),
    ("ReLU", {"negative_slope": 0.2}, "leaky_relu"),
    ("ReLU", {"negative_slope": 0.5}, None),
    ("ReLU", {"negative_slope": 0.1, "max_value": 6.0}, None),
    ("ReLU", {"threshold": 0.7}, None),
    ("ReLU", {"threshold": 0.7, "negative_slope": 0.2}, None),
    ("ReLU", {"threshold": 1.0, "negative_slope": 0.3, "max_value": 3.0}, None),
    ("ReLU", {"threshold": 2.0, "max_value": 1.0}, None),
    ("LeakyReLU", {}, None),
    ("LeakyReLU", {"negative_slope": 0.2}, "leaky_relu"),
    ("LeakyReLU", {"negative_slope": 0.0}, None),
    ("ELU", {}, "elu"),
    ("ELU", {"alpha": 0.5}, None),
    ("ELU", {"alpha": 2.0}, None),
    ("Softmax", {}, "softmax"),
    ("Softmax", {"axis": 3}, "softmax"),
    ("Softmax", {"axis": 1}, None),
    ("Softmax", {"axis": [2]}, None),
    ("Softmax", {"axis": -3}, None),
]


def kinked_input(seed, shape=(3, 4, 5, 6)):
    x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(np.float32)
    x.reshape(-1)[:12] = [0.0, 0.7, 1.0, 2.0, 2.5, 3.0, 6.0, -0.7, 6.5, -1e-30, 1e-30, 50.0]
    return x


@pytest.mark.parametrize("cls,kwargs,kind", CASES)
def test_kind_or_own_kernel(cls, kwargs, kind):
    lay = getattr(layers, cls)(**kwargs)
    m = cf.Sequential([layers.Input((4, 5, 6)), lay, layers.Flatten(), layers.Dense(3)])
    assert lay.activation == kind
    m.compile("sgd", "mse")
    engine = executor.for_model(m, 4, "predict")
    # The Net runs the kinds (a softmax over the last axis of any rank included) and the own
    # kernels (tests/test_net_layers_more.py), except a Softmax over another axis.
    native = kind is not None or cls != "Softmax"
    assert isinstance(engine, executor.NativeEngine) == native


@pytest.mark.tf
@pytest.mark.parametrize("cls,kwargs,kind", CASES)
def test_values_and_gradients_match_keras(tf_keras, cls, kwargs, kind):
    tf, keras = tf_keras
    x = kinked_input(1)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    y_tf, (dx_tf,) = tf_oracle.tf_grads(tf, getattr(keras.layers, cls)(**kwargs), x, dy)
    lay = getattr(layers, cls)(**kwargs)
    lay(x)  # builds
    y = lay.forward(x, True)
    dx = lay.backward(dy)
    op = f"{cls}({kwargs})"
    if cls == "Softmax":
        # sums over the axis in another order than Eigen's: measured <= 1.2e-7 (y), 2.3e-7 (dx)
        tf_oracle.check(op + " forward", y, y_tf, atol=1e-6, rtol=1e-5)
        tf_oracle.check(op + " dinp", dx, dx_tf, atol=1e-6, rtol=1e-5)
    elif cls == "ELU":
        # std::exp and Eigen's vectorised exp differ by an ulp: measured <= 2.4e-7 abs
        tf_oracle.check(op + " forward", y, y_tf, atol=1e-6, rtol=1e-6)
        tf_oracle.check(op + " dinp", dx, dx_tf, atol=1e-6, rtol=1e-6)
    else:
        # elementwise with the same float32 roundings: exact, kinks included
        np.testing.assert_array_equal(y, y_tf, err_msg=op)
        np.testing.assert_array_equal(dx, dx_tf, err_msg=op)


@pytest.mark.tf
@pytest.mark.parametrize("shared_axes", [None, [1, 2], 3, [1, 2, 3], [2]])
def test_prelu_matches_keras_with_copied_alpha(tf_keras, shared_axes):
    tf, keras = tf_keras
    x = kinked_input(3)
    dy = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    kl = keras.layers.PReLU(shared_axes=shared_axes)
    kl.build((None,) + x.shape[1:])
    alpha = np.random.default_rng(5).standard_normal(kl.alpha.shape).astype(np.float32) * 0.5
    kl.set_weights([alpha])
    y_tf, (dx_tf, da_tf) = tf_oracle.tf_grads(tf, kl, x, dy)
    cl = layers.PReLU(shared_axes=shared_axes)
    cl(cf.keras.Input(x.shape[1:]))
    assert cl.alpha.shape == tuple(kl.alpha.shape)
    assert cl.count_params() == kl.count_params()
    cl.set_weights([alpha])
    y = cl.forward(x, True)
    dx = cl.backward(dy)
    np.testing.assert_array_equal(y, y_tf)
    np.testing.assert_array_equal(dx, dx_tf)
    n_terms = x.size // alpha.size
    # dalpha sums n_terms products in another order than TF's reduce_sum
    tf_oracle.check(f"PReLU(shared_axes={shared_axes}) dalpha", cl.grads[0], da_tf,
                    atol=max(1e-5, 1e-6 * n_terms), rtol=1e-5)


def model_all(seed_layer=None):
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([
        layers.Input((8, 8, 2)), layers.Conv2D(6, 3), layers.PReLU(shared_axes=[1, 2]),
        layers.SpatialDropout2D(0.3, seed=seed_layer),
        layers.ReLU(max_value=2.0, threshold=0.1, negative_slope=0.1),
        layers.Conv2D(4, 3), layers.ELU(0.7), layers.Softmax(axis=1), layers.Flatten(),
        layers.Dense(10), layers.LeakyReLU(), layers.Dropout(0.2), layers.Dense(3),
        layers.Softmax()])


def run(make, native, monkeypatch, want_native):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    r = np.random.default_rng(0)
    x = r.random((40, 8, 8, 2), dtype=np.float32)
    y = r.integers(0, 3, 40)
    m = make()
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine) == want_native
    h = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return m.get_weights(), h.history, m.predict(x, verbose=0)


def model_kinds():
    """Only arguments that are activation kinds: the whole step runs on the Net."""
    reset_names()
    cf.utils.set_random_seed(4)
    return cf.Sequential([
        layers.Input((8, 8, 2)), layers.Conv2D(4, 3), layers.ReLU(max_value=6),
        layers.Conv2D(4, 3), layers.ReLU(negative_slope=0.2), layers.Flatten(),
        layers.Dense(8), layers.ELU(), layers.LeakyReLU(0.2), layers.Dense(3),
        layers.Softmax()])


@pytest.mark.parametrize("make,native", [(model_all, False), (model_kinds, True)])
def test_engines_agree_bit_for_bit(monkeypatch, make, native):
    w1, h1, p1 = run(make, True, monkeypatch, native)
    w2, h2, p2 = run(make, False, monkeypatch, False)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_engines_agree_at_one_and_two_threads(monkeypatch):
    old = cf.backend.get_num_threads()
    try:
        cf.backend.set_num_threads(1)
        w1, h1, _ = run(model_all, False, monkeypatch, False)
        cf.backend.set_num_threads(2)
        w2, h2, _ = run(model_all, False, monkeypatch, False)
    finally:
        cf.backend.set_num_threads(old)
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_spatial_dropout_training_only_whole_channels():
    lay = layers.SpatialDropout2D(0.5, seed=7)
    x = np.ones((6, 3, 4, 10), np.float32)
    np.testing.assert_array_equal(lay(x), x)            # inference: identity
    y = lay(x, training=True)
    per_channel = y.reshape(6, 12, 10)
    assert (per_channel == per_channel[:, :1]).all()    # one value per (sample, channel)
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    # the layer's own seed: the same sequence of masks from a fresh layer
    again = layers.SpatialDropout2D(0.5, seed=7)
    again(x)
    np.testing.assert_array_equal(again(x, training=True), y)
    assert not np.array_equal(lay(x, training=True), y)
    # rate 0 and rate 1 as Dropout
    np.testing.assert_array_equal(layers.SpatialDropout2D(0.0)(x, training=True), x)
    np.testing.assert_array_equal(layers.SpatialDropout2D(1.0)(x, training=True), 0 * x)
    # backward: the forward's mask and scale
    dy = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    lay2 = layers.SpatialDropout2D(0.5, seed=9)
    lay2(x)  # builds
    y2 = lay2.forward(x, True)
    np.testing.assert_array_equal(lay2.backward(dy), np.where(y2 > 0, dy * 2, 0))


def test_seeded_spatial_dropout_model_runs_on_the_layer_engine(monkeypatch):
    w1, h1, _ = run(lambda: model_all(seed_layer=11), True, monkeypatch, False)
    w2, h2, _ = run(lambda: model_all(seed_layer=11), False, monkeypatch, False)
    assert h1 == h2


def test_summary_params_config_and_save_load(tmp_path):
    m = model_all()
    assert m.layers[1].count_params() == 6 and len(m.layers[1].trainable_weights) == 1
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for name in ("p_re_lu (PReLU)", "spatial_dropout2d", "re_lu (ReLU)", "elu (ELU)",
                 "softmax (Softmax)", "leaky_re_lu (LeakyReLU)"):
        assert name in text, name
    for lay in m.layers:
        c = lay.get_config()
        again = type(lay).from_config(c)
        assert again.get_config() == c
    assert m.layers[2].get_config()["data_format"] == "channels_last"
    assert m.layers[2].get_config()["rate"] == 0.3
    assert m.layers[1].get_config()["shared_axes"] == [1, 2]
    c = m.layers[3].get_config()
    assert (c["max_value"], c["threshold"], c["negative_slope"]) == (2.0, 0.1, 0.1)
    assert m.layers[5].get_config()["alpha"] == 0.7
    assert m.layers[6].get_config()["axis"] == 1
    m.compile("adam", "sparse_categorical_crossentropy")
    m.layers[1].set_weights([np.full((1, 1, 6), 0.25, np.float32)])
    m.save(str(tmp_path / "a.cnnfast"))
    m2 = cf.models.load_model(str(tmp_path / "a.cnnfast"))
    assert [type(a) for a in m2.layers] == [type(b) for b in m.layers]
    x = np.random.default_rng(1).random((5, 8, 8, 2), dtype=np.float32)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    np.testing.assert_array_equal(m2.layers[1].get_weights()[0], 0.25)


def test_leaky_relu_accepts_legacy_alpha():
    with pytest.warns(UserWarning, match="alpha"):
        lay = layers.LeakyReLU(alpha=0.1)
    assert lay.negative_slope == 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layers.LeakyReLU().negative_slope == 0.3  # Keras 3's default
    for name in ("ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "SpatialDropout2D"):
        assert getattr(cf.keras.layers, name) is getattr(layers, name)


@pytest.mark.parametrize("make,exc,word", [
    (lambda: layers.ReLU(max_value=-1.0), ValueError, "max_value of a ReLU layer"),
    (lambda: layers.ReLU(negative_slope=-0.1), ValueError, "negative_slope of a ReLU"),
    (lambda: layers.ReLU(negative_slope=None), ValueError, "negative_slope"),
    (lambda: layers.ReLU(threshold=-0.5), ValueError, "threshold of a ReLU"),
    (lambda: layers.ReLU(max_value="6"), TypeError, "max_value"),
    (lambda: layers.LeakyReLU(-0.2), ValueError, "negative_slope value of a Leaky ReLU"),
    (lambda: layers.LeakyReLU(None), ValueError, "negative_slope"),
    (lambda: layers.ELU("1"), TypeError, "alpha"),
    (lambda: layers.ELU(float("inf")), ValueError, "finite"),
    (lambda: layers.Softmax(axis=[1, 2]), NotImplementedError, "several axes"),
    (lambda: layers.Softmax(axis=1.0), TypeError, "axis"),
    (lambda: layers.Softmax(axis=4)(cf.keras.Input((3, 4, 5))), ValueError, "out of range"),
    (lambda: layers.Softmax(axis=-5)(cf.keras.Input((3, 4, 5))), ValueError, "out of range"),
    (lambda: layers.Softmax()(np.zeros((2, 3), np.float32), mask=np.ones((2, 3))),
     NotImplementedError, "mask"),
    (lambda: layers.PReLU(alpha_regularizer="l2"), NotImplementedError, "alpha_regularizer"),
    (lambda: layers.PReLU(alpha_constraint="non_neg"), NotImplementedError,
     "alpha_constraint"),
    (lambda: layers.PReLU(shared_axes=[0]), ValueError, "shared_axes"),
    (lambda: layers.PReLU(shared_axes=[4])(cf.keras.Input((3, 4, 5))), ValueError,
     "out of range"),
    (lambda: layers.PReLU()(cf.keras.Input((None, 4))), ValueError, "known"),
    (lambda: layers.PReLU(alpha_initializer="orthogonal"), NotImplementedError, "orthogonal"),
    (lambda: layers.SpatialDropout2D(-0.1), ValueError, "rate"),
    (lambda: layers.SpatialDropout2D(1.5), ValueError, "rate"),
    (lambda: layers.SpatialDropout2D("a"), TypeError, "rate"),
    (lambda: layers.SpatialDropout2D(0.5, data_format="channels_first"), NotImplementedError,
     "channels_first"),
    (lambda: layers.SpatialDropout2D(0.5, noise_shape=(1, 1)), TypeError, "noise_shape"),
    (lambda: layers.SpatialDropout2D(0.5)(cf.keras.Input((4, 5))), ValueError, "4-D"),
])
def test_bad_arguments(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_softmax_mask_none_is_accepted():
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    np.testing.assert_array_equal(layers.Softmax()(x, mask=None), layers.Softmax()(x))


@pytest.mark.tf
def test_summary_and_fit_match_keras(tf_keras):
    """Copied weights, one SGD epoch without shuffling through every new layer except the
    random one (SpatialDropout2D's masks come from another generator than TF's)."""
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = [("Conv2D", (6, 3), {}), ("PReLU", (), {"shared_axes": [1, 2]}),
            ("ReLU", (), {"max_value": 2.0, "threshold": 0.1, "negative_slope": 0.1}),
            ("Conv2D", (4, 3), {}), ("ELU", (), {"alpha": 0.7}),
            ("Softmax", (), {"axis": 1}), ("Flatten", (), {}), ("Dense", (10,), {}),
            ("PReLU", (), {}), ("LeakyReLU", (), {}), ("Dense", (3,), {}),
            ("Softmax", (), {})]
    km = keras.Sequential([keras.Input((8, 8, 2))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    reset_names()
    cm = cf.Sequential([layers.Input((8, 8, 2))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))
    r = np.random.default_rng(3)
    for kl in km.layers:  # nonzero alphas, so that both of PReLU's gradients matter
        if isinstance(kl, keras.layers.PReLU):
            kl.set_weights([(r.standard_normal(kl.alpha.shape) * 0.3).astype(np.float32)])
    cm.set_weights(km.get_weights())
    xs = r.random((96, 8, 8, 2), dtype=np.float32)
    ys = r.integers(0, 3, 96)
    for i in range(96):
        xs[i, 2 * ys[i]:2 * ys[i] + 2] += 0.8
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    hk = km.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(xs, ys, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record("activation layers fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / max(np.max(np.abs(kw)), 1e-6))
        tf_oracle.record("activation layers fit weights (rel)", [err], [0.0])
        assert err <= 1e-4, err  # three SGD steps: summation-order differences only


@pytest.mark.tf
def test_to_keras_and_spatial_dropout_summary(tf_keras):
    """Keras builds the layers from cnnfast's configs (to_keras) and predicts the same; its
    summary of the model with SpatialDropout2D is cnnfast's."""
    _, keras = tf_keras
    m = model_all()
    m.layers[1].set_weights([np.linspace(-0.5, 0.5, 6, dtype=np.float32).reshape(1, 1, 6)])
    km = m.to_keras()
    assert [type(k).__name__ for k in km.layers] == [type(c).__name__ for c in m.layers]
    x = np.random.default_rng(2).random((6, 8, 8, 2), dtype=np.float32)
    tf_oracle.check("activation layers to_keras predict", m.predict(x, verbose=0),
                    km.predict(x, verbose=0), atol=1e-6, rtol=1e-5)
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    m.summary(print_fn=clines.append)
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(clines[0]) == strip("\n".join(klines))


def test_prelu_first_layer_learns_and_frozen_prelu_does_not():
    """PReLU as the first layer (its dinp is never needed) gets alpha's gradient; with
    trainable=False alpha is a non-trainable weight and stays."""
    r = np.random.default_rng(0)
    x = r.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] < 0).astype(np.int32)
    for trainable in (True, False):
        reset_names()
        cf.utils.set_random_seed(1)
        p = layers.PReLU(alpha_initializer="ones", trainable=trainable)
        m = cf.Sequential([layers.Input((5,)), p, layers.Dense(2, activation="softmax")])
        assert len(p.trainable_weights) == int(trainable)
        assert len(p.non_trainable_weights) == 1 - int(trainable)
        m.compile(cf.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=1, verbose=0)
        moved = not np.array_equal(p.get_weights()[0], np.ones(5, np.float32))
        assert moved == trainable
