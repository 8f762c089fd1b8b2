"""keras.layers.BatchNormalization: both engines bit for bit, training/inference and frozen
semantics, weights and summary, config and save/load round trips, bad arguments
(docs/keras_semantics.md#batchnormalization). TF parity: tests/test_batchnorm_parity.py."""
import numpy as np
import pytest

import cnnfast as cf
import cnnfast.reference as R
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names


def data(n=50, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 9, 9, 2), dtype=np.float32)
    y = np.clip((x[:, :4, :4, 0].mean(axis=(1, 2)) * 4 + r.random(n) * 0.5).astype(int), 0, 3)
    return x, y


def bn_model(dropout=0.3):
    """Both tutorial spellings: Conv2D(activation='relu') -> BN (Keras applies the ReLU first)
    and Conv2D -> BN -> Activation('relu'); then Dense -> BN -> ReLU, and a center/scale-less BN."""
    reset_names()
    cf.utils.set_random_seed(4)
    return cf.Sequential([
        layers.Input((9, 9, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 2, padding="same"),
        layers.BatchNormalization(momentum=0.9),
        layers.Activation("relu"),
        layers.MaxPooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dense(8),
        layers.BatchNormalization(center=False, scale=False),
        layers.Activation("relu"),
        layers.Dropout(dropout),
        layers.Dense(6),
        layers.BatchNormalization(epsilon=1e-2),
        layers.ReLU(),
        layers.Dense(4, activation="softmax"),
    ])


def run(native, monkeypatch, make=bn_model, freeze=None):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    x, y = data()
    m = make()
    if freeze is not None:
        m.layers[freeze].trainable = False
    m.compile(cf.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
    h = m.fit(x, y, batch_size=7, epochs=3, shuffle=True, validation_split=0.1, verbose=0)
    tob = [m.train_on_batch(x[:9], y[:9], return_dict=True) for _ in range(2)]
    ev = m.evaluate(x, y, batch_size=8, verbose=0)
    pred = m.predict(x, verbose=0)
    called = m(x[:5], training=True)    # one more moving-stat update, both engines
    return m.get_weights(), h.history, tob, ev, pred, called, m.optimizer.iterations


@pytest.mark.parametrize("freeze", [None, 1], ids=["trainable", "first_bn_frozen"])
def test_batchnorm_engines_agree_bit_for_bit(monkeypatch, freeze):
    """CNNFAST_EXECUTOR=0 reproduces the native run exactly: weights incl. moving statistics,
    history (shuffle, Dropout, validation_split), train_on_batch, evaluate, predict."""
    native, layer = run(True, monkeypatch, freeze=freeze), run(False, monkeypatch, freeze=freeze)
    w1, h1, t1, ev1, p1, c1, it1 = native
    w2, h2, t2, ev2, p2, c2, it2 = layer
    assert h1 == h2 and t1 == t2 and ev1 == ev2 and it1 == it2
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(c1, c2)


def test_fit_updates_moving_stats_and_gamma_beta(monkeypatch):
    m0 = bn_model()
    before = m0.get_weights()
    after = run(True, monkeypatch)[0]
    bn = m0.layers[1]
    assert [w.shape for w in bn.weights] == [(4,)] * 4     # gamma, beta, moving mean, var
    i = len(m0.layers[0].weights)                           # the first BN's weights start here
    for k in range(4):
        assert not np.array_equal(before[i + k], after[i + k]), k


def test_frozen_batchnorm_runs_in_inference_mode_and_keeps_its_weights(monkeypatch):
    """trainable=False: gamma, beta and the moving statistics stay as they were, in fit too."""
    for native in (True, False):
        m0 = bn_model()
        i = len(m0.layers[0].weights)
        before = m0.get_weights()[i:i + 4]
        after = run(native, monkeypatch, freeze=1)[0][i:i + 4]
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)


def test_model_trainable_false_freezes_batchnorm_as_keras():
    """Keras: setting model.trainable sets every layer's flag, so BN infers in fit."""
    m = bn_model()
    m.trainable = False
    assert all(not layer.trainable for layer in m.layers)
    assert m.trainable_weights == [] and len(m.non_trainable_weights) == len(m.weights)
    m.compile(cf.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    w0 = m.get_weights()
    x, y = data()
    m.fit(x, y, batch_size=10, epochs=1, verbose=0)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    m.trainable = True
    assert all(layer.trainable for layer in m.layers)


def test_layer_call_training_flag():
    reset_names()
    bn = layers.BatchNormalization(momentum=0.5)
    r = np.random.default_rng(0)
    x = (r.standard_normal((6, 3, 4, 5)) * 2 + 1).astype(np.float32)
    y_inf = bn(x)                                        # default: inference, moving stats
    np.testing.assert_allclose(y_inf, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(bn.moving_mean, np.zeros(5, np.float32))
    y_tr = bn(x, training=True)
    ref = R.batchnorm_forward(x, bn.gamma, bn.beta, np.zeros(5), np.ones(5), 1e-3, 0.5, True)
    np.testing.assert_allclose(y_tr, ref[0], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(bn.moving_mean, ref[3], atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, ref[4], atol=1e-6, rtol=1e-5)
    bn.trainable = False                                 # frozen: inference even if training
    mm = bn.moving_mean.copy()
    np.testing.assert_array_equal(bn(x, training=True), bn(x, training=False))
    np.testing.assert_array_equal(bn.moving_mean, mm)


def test_weights_trainable_split_and_summary():
    reset_names()
    m = cf.Sequential([layers.Input((10, 10, 3)), layers.Conv2D(8, 3),
                       layers.BatchNormalization(), layers.Flatten(), layers.Dense(10),
                       layers.BatchNormalization(center=False)])
    bn, bn2 = m.layers[1], m.layers[4]
    # weights are Variables (Keras's names) over the layer's arrays
    assert bn.weights[0].value is bn.gamma and bn.weights[1].value is bn.beta
    assert bn.weights[2].value is bn.moving_mean and bn.weights[3].value is bn.moving_variance
    assert [v.name for v in bn.trainable_weights] == ["gamma", "beta"]
    assert [v.name for v in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert [w.value is v for w, v in zip(bn2.weights, [bn2.gamma, bn2.moving_mean,
                                                       bn2.moving_variance])] == [True] * 3
    np.testing.assert_array_equal(bn.gamma, 1)
    np.testing.assert_array_equal(bn.moving_variance, 1)
    np.testing.assert_array_equal(bn.beta, 0)
    lines = []
    m.summary(print_fn=lines.append)
    text = lines[0]
    # Keras 3's table for this model (measured with keras 3.15): the long name folds onto
    # two lines; BN params 8*4 and 10*3, of which the 16 + 20 moving statistics are
    # non-trainable.
    assert "│ batch_normalization             │ (None, 8, 8, 8)        │            32 │\n" \
           "│ (BatchNormalization)            │                        │               │" in text
    assert " Total params: 5,416 (21.16 KB)" in text
    assert " Trainable params: 5,380 (21.02 KB)" in text
    assert " Non-trainable params: 36 (144.00 B)" in text


def test_config_round_trip():
    reset_names()
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False,
                                   gamma_initializer="zeros", moving_variance_initializer="ones",
                                   name="bn")
    c = bn.get_config()
    assert c["axis"] == -1 and c["momentum"] == 0.9 and c["epsilon"] == 1e-4
    assert c["center"] is False and c["scale"] is True and c["gamma_initializer"] == "zeros"
    bn2 = layers.BatchNormalization.from_config(c)
    assert bn2.get_config() == c
    seeded = layers.BatchNormalization(gamma_initializer=cf.initializers.GlorotUniform(3))
    again = layers.BatchNormalization.from_config(seeded.get_config())
    assert again.gamma_initializer.seed == 3


def test_save_load_restores_moving_stats(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1")
    x, y = data()
    m = bn_model(dropout=0.0)
    m.compile(cf.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=10, epochs=1, verbose=0)
    path = tmp_path / "bn.cnnfast"
    m.save(str(path))
    m2 = cf.models.load_model(str(path))
    assert type(m2.layers[1]).__name__ == "BatchNormalization"
    assert m2.layers[4].momentum == 0.9 and m2.layers[13].epsilon == 1e-2
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))
    # Training continues identically (optimizer slots restored for gamma/beta only).
    h1 = m.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0).history
    h2 = m2.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0).history
    assert h1 == h2
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    wpath = tmp_path / "bn.weights.cnnfast"
    m.save_weights(str(wpath))
    m3 = bn_model(dropout=0.0)
    m3.load_weights(str(wpath))
    for a, b in zip(m.get_weights(), m3.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs,exc,word", [
    ({"axis": 1}, NotImplementedError, "axis"),
    ({"axis": -2}, NotImplementedError, "axis"),
    ({"axis": [1, 2]}, NotImplementedError, "axis"),
    ({"axis": 7}, ValueError, "axis"),
    ({"gamma_regularizer": "l2"}, NotImplementedError, "gamma_regularizer"),
    ({"beta_regularizer": "l2"}, NotImplementedError, "beta_regularizer"),
    ({"gamma_constraint": "non_neg"}, NotImplementedError, "gamma_constraint"),
    ({"beta_constraint": "non_neg"}, NotImplementedError, "beta_constraint"),
    ({"renorm": True}, NotImplementedError, "renorm"),
    ({"synchronized": True}, NotImplementedError, "synchronized"),
    ({"epsilon": 0.0}, ValueError, "epsilon"),
    ({"momentum": "high"}, TypeError, "momentum"),
    ({"gamma_initializer": "nope"}, NotImplementedError, "nope"),
])
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        m = cf.Sequential([layers.Input((4, 4, 3)), layers.BatchNormalization(**kwargs)])
        m.build((None, 4, 4, 3))


def test_last_axis_spelled_positively_is_accepted():
    m = cf.Sequential([layers.Input((4, 4, 3)), layers.BatchNormalization(axis=3)])
    assert m.layers[0].gamma.shape == (3,)


def test_batchnorm_exported_in_keras_namespace():
    assert cf.keras.layers.BatchNormalization is layers.BatchNormalization


def relu_bn_model():
    """BatchNormalization straight after a ReLU's output with no max-pool between (the Net
    fuses that ReLU's derivative into BN's backward, csrc/batchnorm.h): Conv2D and Dense."""
    reset_names()
    cf.utils.set_random_seed(5)
    return cf.Sequential([
        layers.Input((9, 9, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(3, 2, padding="valid", activation="relu"),
        layers.BatchNormalization(momentum=0.9),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(4, activation="softmax"),
    ])


def test_batchnorm_over_a_relu_engines_agree_bit_for_bit(monkeypatch):
    native = run(True, monkeypatch, make=relu_bn_model)
    layer = run(False, monkeypatch, make=relu_bn_model)
    w1, h1, t1, ev1, p1, c1, it1 = native
    w2, h2, t2, ev2, p2, c2, it2 = layer
    assert h1 == h2 and t1 == t2 and ev1 == ev2 and it1 == it2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("C", [3, 8, 13, 32])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_kernel_batch_statistics_match_float64(C, offset):
    """The one-pass shifted moments (csrc/batchnorm.h) against float64 two-pass statistics of
    the same float32 data: M = 700 rows (three row blocks, the last partial), channel counts
    that exercise the 8-channel chunks and their remainder, and a mean far from zero."""
    from cnnfast import _core

    r = np.random.default_rng(C)
    x = (offset + r.standard_normal((700, C)) * np.linspace(0.5, 2, C)).astype(np.float32)
    out = np.empty_like(x)
    mean, rstd = np.empty(C, np.float32), np.empty(C, np.float32)
    mm, mv = np.zeros(C, np.float32), np.ones(C, np.float32)
    _core.batchnorm_forward(out, mean, rstd, mm, mv, x, None, None, 1e-3, 0.99, True)
    x64 = x.astype(np.float64)
    m64, v64 = x64.mean(axis=0), x64.var(axis=0)
    # float32 rounding of the statistics: mean to one float32 ulp of |mean|, rstd to a few
    np.testing.assert_allclose(mean, m64, rtol=1.2e-7, atol=0)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(v64.astype(np.float32) + np.float32(1e-3)),
                               rtol=3e-7, atol=0)
    np.testing.assert_allclose(mv, 0.99 + 0.01 * v64, rtol=3e-7, atol=0)
