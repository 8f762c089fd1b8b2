"""The newer activation kinds (elu ... log_softmax) through the layers: activation="..." on
Conv2D/Dense and Activation(...) run natively and on the LayerEngine bit for bit, the
functions in cnnfast.activations / keras.activations / cnnfast.nn, names and aliases (swish ->
silu, as Keras serialises it), non-default arguments rejected, and one fit epoch vs tf.keras."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names

MORE = ["elu", "selu", "gelu", "silu", "softplus", "softsign", "leaky_relu", "relu6",
        "hard_sigmoid", "log_softmax"]


def data(n=40, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    y = np.clip((x[:, :4, :4, 0].mean(axis=(1, 2)) * 4 + r.random(n) * 0.5).astype(int), 0, 3)
    return x, y


def act_model(a, b):
    reset_names()
    cf.utils.set_random_seed(2)
    return cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation=a),
                          layers.MaxPooling2D(2), layers.Conv2D(5, 2), layers.Activation(b),
                          layers.Flatten(), layers.Dense(6, activation=b),
                          layers.Dense(4, activation="softmax")])


def run(native, monkeypatch, a, b):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    x, y = data()
    m = act_model(a, b)
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return m.get_weights(), h.history, m.predict(x, verbose=0)


@pytest.mark.parametrize("a,b", list(zip(MORE[:-1], MORE[1:-1] + ["elu"])))
def test_engines_agree_bit_for_bit(monkeypatch, a, b):
    w1, h1, p1 = run(True, monkeypatch, a, b)
    w2, h2, p2 = run(False, monkeypatch, a, b)
    assert h1 == h2
    for u, v in zip(w1, w2):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(p1, p2)


def test_functions_and_namespaces():
    x = np.linspace(-4, 4, 12, dtype=np.float32).reshape(3, 4)
    for name in MORE:
        f = getattr(cf.activations, name)
        assert getattr(cf.keras.activations, name) is f
        assert cf.activations.get(name) == name and cf.activations.get(f) == name
        y = f(x)
        assert y.shape == x.shape and y.dtype == np.float32
        if name != "hard_sigmoid":
            np.testing.assert_array_equal(np.asarray(getattr(cf.nn, name)(x)), y)
    assert cf.activations.swish is cf.activations.silu and cf.nn.swish is cf.nn.silu
    assert cf.activations.get("swish") == "silu" and cf.activations.get("SWISH") == "silu"
    assert layers.Dense(2, activation="swish").get_config()["activation"] == "silu"
    np.testing.assert_allclose(cf.activations.log_softmax(x),
                               np.log(cf.activations.softmax(x)), atol=1e-6)
    assert layers.Dense(2, activation=cf.nn.gelu).activation == "gelu"


# The eager functions take Keras's arguments (tests/test_activation_functions_eager.py); a
# layer's activation is one of the native kinds.
@pytest.mark.parametrize("call,word", [
    (lambda: layers.Dense(2, activation="mish"), "mish"),
    (lambda: layers.Dense(2, activation=cf.activations.mish), "mish"),
    (lambda: layers.Activation(lambda x: cf.activations.relu(x, max_value=6.0)), "lambda"),
])
def test_unsupported_arguments(call, word):
    with pytest.raises(NotImplementedError, match=word):
        call()


def test_save_load_round_trip(tmp_path):
    m = act_model("gelu", "swish")
    m.compile("adam", "sparse_categorical_crossentropy")
    m.save(str(tmp_path / "a.cnnfast"))
    m2 = cf.models.load_model(str(tmp_path / "a.cnnfast"))
    assert m2.layers[0].activation == "gelu" and m2.layers[3].activation == "silu"
    x, _ = data(5)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.tf
@pytest.mark.parametrize("a,b", [("elu", "gelu"), ("swish", "selu"), ("leaky_relu", "softplus"),
                                 ("relu6", "hard_sigmoid"), ("softsign", "elu")])
def test_fit_epoch_matches_keras(tf_keras, a, b):
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = [("Conv2D", (8, 3), {"activation": a}), ("MaxPooling2D", (2,), {}),
            ("Conv2D", (8, 3), {}), ("Activation", (b,), {}), ("Flatten", (), {}),
            ("Dense", (16,), {"activation": b}), ("Dense", (4,), {"activation": "softmax"})]
    km = keras.Sequential([getattr(keras.layers, c)(*p, **k) for c, p, k in spec])
    km.build((None, 12, 12, 1))
    reset_names()
    cm = cf.Sequential([layers.Input((12, 12, 1))] +
                       [getattr(layers, c)(*p, **k) for c, p, k in spec])
    cm.set_weights(km.get_weights())
    r = np.random.default_rng(1)
    x = r.random((160, 12, 12, 1), dtype=np.float32)
    y = r.integers(0, 4, 160)
    for i in range(160):
        x[i, 3 * y[i]:3 * y[i] + 3] += 0.8
    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    hk = km.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record(f"{a}/{b} fit epoch loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / np.max(np.abs(kw)))
        tf_oracle.record(f"{a}/{b} fit weights (rel)", [err], [0.0])
        assert err <= 2e-2, err  # free-running Adam (test_parity_models.FREE_RUN["adam"])
