"""fit's loop arguments against tf.keras (cnnfast/models/steps.py, docs/keras_semantics.md#steps):
validation_freq (int and list), initial_epoch, steps_per_epoch and validation_steps with arrays,
evaluate(steps=) with arrays: batches per epoch, epoch numbers seen by callbacks, history
lengths, the ran-out warnings, the optimizer's iterations, and (shuffle=False) the losses.
Also the namespace gaps: keras.optimizers.schedules, model(x).numpy()."""
import warnings

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names

N = 100
RUNS = [
    dict(batch_size=10, steps_per_epoch=3, epochs=5),      # the pass carries over: 3,3,3,1,3
    dict(batch_size=10, steps_per_epoch=15, epochs=3),     # more steps than batches: warnings
    dict(steps_per_epoch=4, epochs=2),                     # no batch_size: ceil(100 / 4)
    dict(batch_size=10, epochs=5, initial_epoch=2),
    dict(batch_size=10, epochs=2, initial_epoch=3),        # nothing to run
    dict(batch_size=10, epochs=5, validation_freq=2, val=True),
    dict(batch_size=10, epochs=3, validation_freq=[1, 3], val=True),
    dict(batch_size=10, epochs=2, validation_steps=3, validation_batch_size=10, val=True),
    dict(batch_size=10, epochs=2, validation_steps=15, validation_batch_size=10, val=True),
    dict(batch_size=30, epochs=2, validation_steps=2, val=True),  # validation batch = 30
    dict(epochs=2, validation_split=0.2, validation_steps=1),     # split: ceil(20 / 1) = 20
]


def _data():
    r = np.random.default_rng(0)
    x = r.random((N, 4), dtype=np.float32)
    y = r.integers(0, 3, N)
    return x, y


def _trace(keras, model_fn, x, y, kw):
    """(batches per epoch and 'T' per validation, epochs begun, history, epoch list,
    warnings, iterations) of one fit."""
    kw = dict(kw)
    if kw.pop("val", False):
        kw["validation_data"] = (x[:40], y[:40])

    class Trace(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.n, self.eps = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.n.append(0)
            self.eps.append(epoch)

        def on_train_batch_end(self, batch, logs=None):
            self.n[-1] += 1

        def on_test_begin(self, logs=None):
            self.n.append("T")

    m = model_fn()
    t = Trace()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = m.fit(x, y, verbose=0, shuffle=False, callbacks=[t], **kw)
    ran_out = sum("ran out of data" in str(wi.message) for wi in w)
    return t.n, t.eps, h.history, list(h.epoch), ran_out, int(m.optimizer.iterations)


def _cf_model(weights=None):
    reset_names()
    m = cf.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    if weights is not None:
        m.set_weights(weights)
    m.compile(cf.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return m


def test_validation_freq_and_initial_epoch_without_tf():
    x, y = _data()
    n, eps, hist, epoch, ran_out, it = _trace(cf.keras, _cf_model, x, y, RUNS[5])
    assert n == [10, 10, "T", 10, 10, "T", 10] and eps == [0, 1, 2, 3, 4]
    assert len(hist["loss"]) == 5 and len(hist["val_loss"]) == 2 and it == 50
    n, eps, hist, epoch, _, it = _trace(cf.keras, _cf_model, x, y, RUNS[3])
    assert eps == [2, 3, 4] and epoch == [2, 3, 4] and it == 30
    with pytest.raises(ValueError, match="validation_freq"):
        _cf_model().fit(x, y, validation_freq=0, verbose=0)
    with pytest.raises(ValueError, match="validation_freq"):
        _cf_model().fit(x, y, validation_freq=(1, 2), verbose=0)  # Keras: int or list
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive integer"):
        _cf_model().fit(x, y, steps_per_epoch=0, verbose=0)


@pytest.mark.tf
@pytest.mark.parametrize("i", range(len(RUNS)))
def test_loop_arguments_match_keras(tf_keras, i):
    tf, keras = tf_keras
    x, y = _data()
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    probe = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    w0 = probe.get_weights()

    def keras_model():
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        m.set_weights(w0)
        m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  jit_compile=False)
        return m

    k = _trace(keras, keras_model, x, y, RUNS[i])
    c = _trace(cf.keras, lambda: _cf_model(w0), x, y, RUNS[i])
    assert c[0] == k[0], "batches per epoch / validations"
    assert c[1] == k[1] and c[3] == k[3], "epoch numbers"
    assert {key: len(v) for key, v in c[2].items()} == {key: len(v) for key, v in k[2].items()}
    assert c[4] == k[4], "ran-out warnings"
    assert c[5] == k[5], "optimizer iterations"
    for key in k[2]:  # the same batches in the same order (shuffle=False): the same losses
        np.testing.assert_allclose(c[2][key], k[2][key], rtol=1e-5, err_msg=key)


@pytest.mark.tf
def test_evaluate_steps_on_arrays_match_keras(tf_keras):
    tf, keras = tf_keras
    x, y = _data()
    keras.backend.clear_session()
    km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    km.compile("sgd", "sparse_categorical_crossentropy", jit_compile=False)
    cm = _cf_model(km.get_weights())
    for kw in (dict(batch_size=10, steps=3), dict(steps=4), dict(batch_size=10, steps=20)):
        with warnings.catch_warnings(record=True) as wk:
            warnings.simplefilter("always")
            ek = km.evaluate(x, y, verbose=0, **kw)
        with warnings.catch_warnings(record=True) as wc:
            warnings.simplefilter("always")
            ec = cm.evaluate(x, y, verbose=0, **kw)
        np.testing.assert_allclose(ec, ek, rtol=1e-6, err_msg=str(kw))
        assert sum("ran out" in str(w.message) for w in wc) == \
            sum("ran out" in str(w.message) for w in wk), kw


# ---- namespace gaps -------------------------------------------------------------------------
def test_schedules_submodule_and_existing_imports():
    from cnnfast.keras.optimizers import SGD, Adam, schedules  # noqa: F401
    from cnnfast.keras.optimizers.schedules import ExponentialDecay, PiecewiseConstantDecay
    assert ExponentialDecay is cf.schedules.ExponentialDecay
    assert PiecewiseConstantDecay is cf.keras.optimizers.schedules.PiecewiseConstantDecay
    sched = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = cf.keras.optimizers.Adam(learning_rate=sched)
    assert opt is not None
    with pytest.raises(AttributeError, match="cnnfast does not implement"):
        cf.keras.optimizers.schedules.NotASchedule  # noqa: B018


def test_model_call_returns_a_tensor_with_numpy():
    x, _ = _data()
    m = _cf_model()
    out = m(x[:5])
    assert isinstance(out, cf.Tensor) and isinstance(out, np.ndarray)
    arr = out.numpy()
    assert type(arr) is np.ndarray and arr.shape == (5, 3) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, m.predict(x[:5], verbose=0))
    # still an array for NumPy code
    assert np.argmax(out, axis=1).shape == (5,) and float(out.sum()) == pytest.approx(5.0)
    # a Sequential used as a pipeline (augmentation tutorials): model(x)[0].numpy()
    assert type(out[0].numpy()) is np.ndarray and out[0].numpy().shape == (3,)
