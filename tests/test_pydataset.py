"""keras.utils.PyDataset / Sequence subclasses in fit (also as validation_data), evaluate and
predict: the same numbers as the arrays they hold, Keras's epoch rules (on_epoch_begin/end
around every pass, fit(shuffle=True) permutes the batch order, steps_per_epoch carries the
iterator over), worker threads, bad arguments; the call pattern against tf.keras."""
import math
import warnings

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names


def arrays(n=70, seed=0):
    r = np.random.default_rng(seed)
    return r.random((n, 6, 6, 1), np.float32), r.integers(0, 3, n)


def make_ds(base, x, y=None, batch=16, **kwargs):
    class DS(base):
        def __init__(self):
            super().__init__(**kwargs)
            self.log = []

        def __len__(self):
            return math.ceil(len(x) / batch)

        def __getitem__(self, i):
            self.log.append(i)
            s = slice(i * batch, (i + 1) * batch)
            return x[s] if y is None else (x[s], y[s])

        def on_epoch_begin(self):
            self.log.append("begin")

        def on_epoch_end(self):
            self.log.append("end")
    return DS()


def model(seed=1):
    reset_names()
    cf.utils.set_random_seed(seed)
    m = cf.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(3, 3, activation="relu"),
                       layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def epochs_of(log):
    """The batch indices read between each on_epoch_begin and on_epoch_end."""
    out, cur = [], None
    for e in log:
        if e == "begin":
            assert cur is None, log
            cur = []
        elif e == "end":
            out.append(cur)
            cur = None
        else:
            cur.append(e)
    assert cur is None, log
    return out


@pytest.mark.parametrize("base", [cf.keras.utils.PyDataset, cf.keras.utils.Sequence])
def test_fit_evaluate_predict_match_arrays(base):
    x, y = arrays()
    vx, vy = arrays(30, seed=1)
    m1 = model()
    h1 = m1.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                validation_data=(vx, vy))
    m2 = model()
    ds, vds = make_ds(base, x, y), make_ds(base, vx, vy, batch=32)
    h2 = m2.fit(ds, epochs=2, shuffle=False, verbose=0, validation_data=vds)
    assert h1.history == h2.history
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert epochs_of(ds.log) == [[0, 1, 2, 3, 4]] * 2
    assert epochs_of(vds.log) == [[0]] * 2
    assert m2.evaluate(make_ds(base, vx, vy), verbose=0) == m1.evaluate(vx, vy, verbose=0)
    np.testing.assert_array_equal(m2.predict(make_ds(base, vx), verbose=0),
                                  m1.predict(vx, verbose=0))
    # predict accepts (x, y) batches too and ignores y
    np.testing.assert_array_equal(m2.predict(make_ds(base, vx, vy), verbose=0),
                                  m1.predict(vx, verbose=0))


def test_shuffle_permutes_the_batch_order_each_epoch():
    x, y = arrays(160)
    ds = make_ds(cf.keras.utils.PyDataset, x, y)
    model().fit(ds, epochs=4, verbose=0)  # shuffle=True by default, as Keras
    orders = epochs_of(ds.log)
    assert len(orders) == 4
    assert all(sorted(o) == list(range(10)) for o in orders)
    assert len({tuple(o) for o in orders}) > 1 and any(o != sorted(o) for o in orders)
    # the order comes from the run's generator: the same seed, the same orders
    ds2 = make_ds(cf.keras.utils.PyDataset, x, y)
    model().fit(ds2, epochs=4, verbose=0)
    assert epochs_of(ds2.log) == orders
    # evaluate never shuffles
    ev = make_ds(cf.keras.utils.PyDataset, x, y)
    model().evaluate(ev, verbose=0)
    assert epochs_of(ev.log) == [list(range(10))]


def test_steps_per_epoch_carries_the_iterator_over():
    x, y = arrays(48)  # 3 batches
    ds = make_ds(cf.keras.utils.PyDataset, x, y)
    with pytest.warns(UserWarning, match="ran out of data"):
        model().fit(ds, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0)
    # Keras's EpochIterator: [0, 1], then [2] and the warning, then a restart
    assert epochs_of(ds.log) == [[0, 1], [2], [0, 1]]
    ev = make_ds(cf.keras.utils.PyDataset, x, y)
    model().evaluate(ev, steps=2, verbose=0)
    assert epochs_of(ev.log) == [[0, 1]]


def test_infinite_dataset_needs_steps():
    x, y = arrays(32)

    class Endless(cf.keras.utils.PyDataset):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, i):
            i %= 2
            return x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]

    m = model()
    with pytest.raises(ValueError, match="steps_per_epoch"), \
            pytest.warns(UserWarning, match="infinite PyDataset"):
        m.fit(Endless(), epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = m.fit(Endless(), epochs=2, steps_per_epoch=3, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 2
    with pytest.warns(UserWarning, match="infinite PyDataset"):
        m.fit(Endless(), epochs=1, steps_per_epoch=1, verbose=0)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_worker_threads_give_the_same_run(threads):
    x, y = arrays(200)
    runs = []
    for workers in (1, 3):
        m = model()
        ds = make_ds(cf.keras.utils.PyDataset, x, y, workers=workers, max_queue_size=4)
        h = m.fit(ds, epochs=2, verbose=0)
        runs.append((h.history, m.get_weights(), m.predict(ds, verbose=0)))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1] + [runs[0][2]], runs[1][1] + [runs[1][2]]):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    x, y = arrays(32)
    m = model()
    with pytest.raises(ValueError, match="workers"):
        m.fit(make_ds(cf.keras.utils.PyDataset, x, y, workers=-1), verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        m.fit(make_ds(cf.keras.utils.PyDataset, x), verbose=0)
    with pytest.raises(ValueError, match="y"):
        m.fit(make_ds(cf.keras.utils.PyDataset, x, y), y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(make_ds(cf.keras.utils.PyDataset, x, y), validation_split=0.2, verbose=0)

    class Empty(cf.keras.utils.PyDataset):
        def __len__(self):
            return 0
    with pytest.raises(ValueError, match="length 0"):
        m.evaluate(Empty(), verbose=0)

    class NoSuper(cf.keras.utils.PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]
    with pytest.warns(UserWarning, match="super"):
        m.fit(NoSuper(), verbose=0)


@pytest.mark.tf
def test_call_pattern_matches_keras(tf_keras):
    """Which batches each epoch reads, fit with steps_per_epoch and validation, then evaluate.
    Keras's TF backend first reads two batches to learn the tensor spec (then calls
    on_epoch_end) and calls a validation dataset's on_epoch_end twice per pass: those artefacts
    are stripped / not copied."""
    _, keras = tf_keras
    x, y = arrays(48)
    vx, vy = arrays(40, seed=2)

    def strip(log):
        return log[log.index("begin"):]

    def batches_only(log):
        return [e for e in strip(log) if e not in ("begin", "end")]

    logs = []
    for base in (keras.utils.PyDataset, cf.keras.utils.PyDataset):
        ds, vds = make_ds(base, x, y), make_ds(base, vx, vy)
        if base is keras.utils.PyDataset:
            m = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(3, activation="softmax")])
            m.compile("adam", "sparse_categorical_crossentropy")
        else:
            m = model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(ds, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0,
                  validation_data=vds)
            train = epochs_of(strip(ds.log))
            ds.log.clear()
            m.evaluate(ds, verbose=0)
        logs.append((train, batches_only(vds.log), epochs_of(strip(ds.log))))
    assert logs[0] == logs[1]
    assert logs[1][0] == [[0, 1], [2], [0, 1]]
