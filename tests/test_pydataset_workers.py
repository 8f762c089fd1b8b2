"""PyDataset(workers=, use_multiprocessing=, max_queue_size=): batches read ahead on threads or
forked processes come in index order, give the run workers=1 gives, propagate __getitem__'s
exception, stay within max_queue_size, and end their workers when the loop stops early
(exception, KeyboardInterrupt, stop_training, a closed iterator); Keras 2's fit(workers=...)
arguments are refused as tf.keras 2.21 refuses them."""
import math
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names
from cnnfast.utils.py_dataset import read_batches

MODES = [dict(workers=3), dict(workers=2, use_multiprocessing=True),
         dict(workers=1, use_multiprocessing=True)]
MODE_IDS = ["threads3", "processes2", "processes1"]


def arrays(n=90, seed=0):
    r = np.random.default_rng(seed)
    return r.random((n, 5, 5, 1), np.float32), r.integers(0, 3, n)


class Slow(cf.keras.utils.PyDataset):
    """Batch i of (x, y); later indices are read faster, so out-of-order completion is the
    rule; `fail_at` raises there; each read records (index, pid)."""

    def __init__(self, x, y, batch=10, fail_at=None, exc=ValueError, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch, self.fail_at, self.exc = x, y, batch, fail_at, exc
        self.reads = []

    def __len__(self):
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, i):
        self.reads.append(i)
        time.sleep(0.002 * (len(self) - i))
        if i == self.fail_at:
            raise self.exc(f"batch {i} is broken")
        s = slice(i * self.batch, (i + 1) * self.batch)
        return self.x[s], self.y[s], np.full(1, os.getpid())


def model(seed=3):
    reset_names()
    cf.utils.set_random_seed(seed)
    m = cf.Sequential([layers.Input((5, 5, 1)), layers.Conv2D(2, 3, activation="relu"),
                       layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class XY(Slow):
    def __getitem__(self, i):
        x, y, _ = super().__getitem__(i)
        return x, y


def _no_workers_left(before_threads):
    deadline = time.time() + 10
    while time.time() < deadline:
        if not multiprocessing.active_children() and \
                threading.active_count() <= before_threads:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_batches_come_in_index_order(mode):
    x, y = arrays()
    ds = Slow(x, y, max_queue_size=4, **mode)
    order = [3, 0, 8, 1, 7, 2, 6, 4, 5]
    got = list(read_batches(ds, order, ds.workers, ds.max_queue_size))
    for i, (bx, by, pid) in zip(order, got):
        np.testing.assert_array_equal(bx, x[i * 10:(i + 1) * 10])
        np.testing.assert_array_equal(by, y[i * 10:(i + 1) * 10])
        assert (pid[0] != os.getpid()) == bool(mode.get("use_multiprocessing"))
    if mode.get("use_multiprocessing"):
        assert ds.reads == []  # read in the worker processes' copies
        assert len({int(p[0]) for _, _, p in got}) <= mode["workers"]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_fit_evaluate_predict_match_workers_1(threads, mode):
    x, y = arrays()
    runs = []
    for kw in (dict(workers=1), mode):
        m = model()
        ds = XY(x, y, max_queue_size=3, **kw)
        h = m.fit(ds, epochs=2, verbose=0, validation_data=XY(x[:40], y[:40], **kw))
        runs.append((h.history, m.get_weights(), m.evaluate(ds, verbose=0),
                     m.predict(ds, verbose=0)))
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    for a, b in zip(runs[0][1] + [runs[0][3]], runs[1][1] + [runs[1][3]]):
        np.testing.assert_array_equal(a, b)


def test_use_multiprocessing_with_0_workers_reads_in_this_process():
    x, y = arrays()
    ds = Slow(x, y, workers=0, use_multiprocessing=True)
    got = list(read_batches(ds, range(3), 0, 10))
    assert [int(p[0]) for _, _, p in got] == [os.getpid()] * 3 and ds.reads == [0, 1, 2]


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_exceptions_reach_the_loop_and_the_workers_end(mode):
    x, y = arrays()
    before = threading.active_count()
    m = model()
    with pytest.raises(ValueError, match="batch 4 is broken"):
        m.fit(XY(x, y, fail_at=4, max_queue_size=5, **mode), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="batch 2 is broken"):
        m.predict(XY(x, y, fail_at=2, **mode), verbose=0)
    assert _no_workers_left(before)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_keyboard_interrupt_and_stop_training_end_the_workers(mode):
    x, y = arrays(300)
    before = threading.active_count()

    class Interrupt(cf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    class Stop(cf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    m = model()
    ds = XY(x, y, max_queue_size=4, **mode)
    with pytest.raises(KeyboardInterrupt):
        m.fit(ds, epochs=1, verbose=0, shuffle=False, callbacks=[Interrupt()])
    assert _no_workers_left(before)
    if not mode.get("use_multiprocessing"):
        # read ahead at most max_queue_size beyond the 3 batches consumed (+1 being handed over)
        assert len(ds.reads) <= 3 + 4 + 1
    h = m.fit(ds, epochs=3, verbose=0, callbacks=[Stop()])
    assert len(h.history["loss"]) == 1
    assert _no_workers_left(before)


def test_an_abandoned_iterator_ends_its_workers():
    x, y = arrays(300)
    before = threading.active_count()
    for mode in MODES:
        ds = Slow(x, y, **mode)
        it = read_batches(ds, range(len(ds)), ds.workers, 6)
        next(it)
        it.close()
        assert _no_workers_left(before), mode


def test_max_queue_size_bounds_the_read_ahead():
    x, y = arrays(300)
    ds = Slow(x, y, workers=4, max_queue_size=3)
    it = read_batches(ds, range(len(ds)), 4, 3)
    for k in range(1, 6):
        next(it)
        time.sleep(0.1)  # let the pool run as far ahead as it may
        assert len(ds.reads) <= k + 3, (k, ds.reads)
    it.close()


def test_a_dead_worker_process_is_an_error_not_a_hang():
    x, y = arrays()

    class Dies(Slow):
        def __getitem__(self, i):
            if i == 1:
                os._exit(3)
            return super().__getitem__(i)

    ds = Dies(x, y, workers=2, use_multiprocessing=True)
    from concurrent.futures.process import BrokenProcessPool
    with pytest.raises(BrokenProcessPool):
        list(read_batches(ds, range(4), 2, 4))
    assert _no_workers_left(threading.active_count())


def test_keras2_loop_arguments_are_refused():
    x, y = arrays(20)
    m = model()
    for kw in ("workers", "use_multiprocessing", "max_queue_size"):
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{kw}'"):
            m.fit(x, y, verbose=0, **{kw: 2})
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{kw}'"):
            m.predict(x, verbose=0, **{kw: 2})
        with pytest.raises(ValueError, match=f"Arguments not recognized: {{'{kw}': 2}}"):
            m.evaluate(x, y, verbose=0, **{kw: 2})


@pytest.mark.tf
def test_keras2_loop_arguments_as_tf_keras(tf_keras):
    _, keras = tf_keras
    x, y = arrays(20)
    theirs = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(3)])
    theirs.compile("sgd", "mse")
    ours = model()
    for name in ("fit", "evaluate", "predict"):
        args = (x,) if name == "predict" else (x, np.eye(3)[y])
        errors = []
        for m in (ours, theirs):
            with pytest.raises((TypeError, ValueError)) as e:
                getattr(m, name)(*args, verbose=0, workers=2)
            errors.append(e.value)
        assert type(errors[0]) is type(errors[1])
        tail = str(errors[1]).split("()")[-1] if name != "evaluate" else str(errors[1])
        assert str(errors[0]).endswith(tail), (errors[0], errors[1])


def test_image_data_generator_flow_on_worker_processes():
    """An ImageDataGenerator iterator (native OpenMP warp in each forked worker, after this
    process has run OpenMP regions) read by processes: the batches threads give."""
    from cnnfast.keras.preprocessing.image import ImageDataGenerator
    x, y = arrays(60)
    m = model()
    m.fit(x, y, epochs=1, verbose=0)  # the parent has an OpenMP team before the fork
    gen = ImageDataGenerator(rotation_range=20, zoom_range=0.2, horizontal_flip=True)
    got = []
    for mode in (dict(workers=2), dict(workers=2, use_multiprocessing=True)):
        it = gen.flow(x, y, batch_size=8, seed=5)
        it.workers, it.use_multiprocessing = mode["workers"], mode.get("use_multiprocessing",
                                                                       False)
        got.append(list(read_batches(it, range(len(it)), 2, 4)))
    for (a, b), (c, d) in zip(*got):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
