"""Threads and Ctrl-C (docs/resume.md#threads): predict from two threads on one model gives
the single-thread results; fit with another thread calling fit / predict on the same model is
a clear RuntimeError and the fit's weights are those of an undisturbed fit; a KeyboardInterrupt
(a real SIGINT) during fit leaves the weights of the last completed step, and fit continues."""
import os
import random
import signal
import threading
import time

import numpy as np
import pytest

import cnnfast
from cnnfast import keras as K


def _model(seed=0):
    cnnfast.utils.set_random_seed(seed)
    m = K.Sequential([K.Input((8, 8, 1)), K.layers.Conv2D(4, 3, activation="relu"),
                      K.layers.MaxPooling2D(), K.layers.Flatten(), K.layers.Dropout(0.2),
                      K.layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=256, seed=3):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, 8, 8, 1)).astype(np.float32), r.integers(0, 3, n)


@pytest.fixture(params=["native", "layer"])
def engine(request, monkeypatch):
    if request.param == "layer":
        monkeypatch.setenv("CNNFAST_EXECUTOR", "0")
    return request.param


def test_two_threads_predict_on_one_model(engine):
    model = _model()
    x, _ = _data(97)
    inputs = [x * (1 + 0.1 * i) for i in range(6)]
    want = [model.predict(xi, batch_size=16, verbose=0) for xi in inputs]
    errors, results = [], {}

    def worker(t):
        try:
            for rep in range(8):
                i = (t + rep) % len(inputs)
                results[(t, rep)] = (i, model.predict(inputs[i], batch_size=16, verbose=0))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 16
    for i, got in results.values():
        np.testing.assert_array_equal(got, want[i])


class _Started(cnnfast.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.event = threading.Event()
        self.release = threading.Event()

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2 and not self.event.is_set():
            self.event.set()
            self.release.wait(30)


def test_fit_with_another_thread_calling_fit_or_predict(engine):
    x, y = _data()
    ref = _model()
    ref.fit(x, y, batch_size=32, epochs=2, verbose=0)
    model = _model()
    started = _Started()
    errors = []
    t = threading.Thread(target=lambda: model.fit(x, y, batch_size=32, epochs=2, verbose=0,
                                                  callbacks=[started]))
    t.start()
    try:
        assert started.event.wait(60)
        for call in (lambda: model.predict(x, verbose=0),
                     lambda: model.fit(x, y, epochs=1, verbose=0),
                     lambda: model.evaluate(x, y, verbose=0),
                     lambda: model.train_on_batch(x[:4], y[:4])):
            with pytest.raises(RuntimeError, match="fit\\(\\) is running on model .* in "
                                                   "another thread"):
                call()
    except BaseException as e:  # noqa: BLE001 -- let the fit thread finish first
        errors.append(e)
    finally:
        started.release.set()
        t.join()
    assert not errors, errors
    assert model.optimizer.iterations == ref.optimizer.iterations == 16
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.predict(x, verbose=0)  # usable from this thread once fit returned


def test_predict_inside_fit_callbacks_is_the_same_thread():
    x, y = _data(64)
    model = _model()
    seen = []
    cb = cnnfast.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(model.predict(x[:5], verbose=0).shape))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert seen == [(5, 3), (5, 3)]


class _Record(cnnfast.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_train_begin(self, logs=None):
        self.weights[self.model.optimizer.iterations] = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.weights[self.model.optimizer.iterations] = self.model.get_weights()


def test_keyboard_interrupt_keeps_the_last_completed_step_and_fit_continues(engine):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT is delivered to the main thread")
    x, y = _data(512)
    record = _Record()
    _model().fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[record])
    assert len(record.weights) == 97
    main = threading.main_thread().ident
    r = random.Random(99)
    interrupted = 0
    for _ in range(6):
        model = _model()
        delay = r.uniform(0.0, 0.3)
        timer = threading.Timer(delay, lambda: signal.pthread_kill(main, signal.SIGINT))
        timer.start()
        try:
            model.fit(x, y, batch_size=16, epochs=3, verbose=0)
            timer.join()
            time.sleep(0.05)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            timer.cancel()
            timer.join()
        it = model.optimizer.iterations
        for a, b in zip(model.get_weights(), record.weights[it]):
            np.testing.assert_array_equal(a, b, err_msg=f"after {it} steps")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # continues from there
        assert model.optimizer.iterations == it + 32
        assert all(np.isfinite(w).all() for w in model.get_weights())
    assert interrupted >= 3, "the SIGINTs all came after the fits: no interruption tested"


def test_sigint_handler_of_the_user_is_left_alone():
    calls = []

    def handler(signum, frame):
        calls.append(signum)

    old = signal.signal(signal.SIGINT, handler)
    try:
        x, y = _data(32)
        cb = cnnfast.callbacks.LambdaCallback(
            on_train_batch_end=lambda b, logs: os.kill(os.getpid(), signal.SIGINT) if b == 0
            else None)
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb])
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, old)
    assert calls == [signal.SIGINT]
