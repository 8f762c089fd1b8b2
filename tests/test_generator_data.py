"""Model.fit / evaluate / predict on a Python generator, read as Keras's GeneratorDataAdapter
reads one: (x, y) or (x, y, sample_weight) tuples train exactly as the same arrays with
shuffle=False (on both engines), steps_per_epoch carries the generator over from epoch to
epoch, each pass replays the two batches read ahead (Keras's quirk, checked against tf.keras),
and the errors are Keras's."""
import warnings

import numpy as np
import pytest

# the dataset tests' data and model (8x8x1 images, 4 classes, Conv-Pool-Dense-Dropout-Dense)
from test_data_fit import data, model

import cnnfast as cf


def batches(x, y, b=10, sw=None, repeat=1):
    for _ in range(repeat):
        for i in range(0, len(x), b):
            s = slice(i, i + b)
            yield (x[s], y[s]) if sw is None else (x[s], y[s], sw[s])


def assert_same(run_a, run_b):
    (wa, ha), (wb, hb) = run_a, run_b
    assert ha == hb
    for a, b in zip(wa, wb):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("native", [True, False], ids=["native", "layer_engine"])
@pytest.mark.parametrize("weighted", [False, True], ids=["xy", "xy_sw"])
def test_generator_fit_equals_array_fit_bit_for_bit(native, weighted):
    x, y = data(40)
    vx, vy = data(16, seed=1)
    sw = np.linspace(0.5, 2.0, len(x)).astype(np.float32) if weighted else None
    runs = []
    for gen in (False, True):
        m = model()
        m.use_native_executor = native
        if gen:
            with pytest.warns(UserWarning, match="shuffle=True"):  # fit's default, as Keras
                h = m.fit(batches(x, y, sw=sw, repeat=3), epochs=3, steps_per_epoch=4,
                          verbose=0, validation_data=batches(vx, vy, 8, repeat=3),
                          validation_steps=2)
        else:
            h = m.fit(x, y, batch_size=10, epochs=3, verbose=0, shuffle=False,
                      sample_weight=sw, validation_data=(vx, vy), validation_batch_size=8)
        runs.append((m.get_weights(), h.history))
    assert_same(*runs)
    assert len(runs[1][1]["loss"]) == 3


def test_generator_evaluate_and_predict_equal_arrays():
    x, y = data(40)
    m = model()
    m.fit(x, y, batch_size=10, epochs=1, verbose=0)
    want = m.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    with pytest.warns(UserWarning, match="ran out of data"):  # as Keras: test_running_out_*
        got = m.evaluate(batches(x, y), verbose=0, return_dict=True)
    assert got == want
    p = m.predict(x, batch_size=10, verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        np.testing.assert_array_equal(m.predict(((x[i:i + 10],) for i in range(0, 40, 10)),
                                                verbose=0), p)
    # predict also takes (x, y) tuples and ignores y
    with pytest.warns(UserWarning, match="ran out of data"):
        np.testing.assert_array_equal(m.predict(batches(x, y), verbose=0), p)


# Keras's EpochIterator._interrupted_warning (keras 3 in tf 2.21), word for word
RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
           "generator can generate at least `steps_per_epoch * epochs` batches. You may need to "
           "use the `.repeat()` function when building your dataset.")


def ran_out_runs(m, x, y, filtered):
    """[(warnings of Keras's ran-out text, how many other warnings, result)] of evaluate,
    predict and fit on a 4-batch generator of (x, y) with and without steps (fit's shuffle
    warning is not counted), in the order of the table; works for cnnfast and tf.keras."""
    def run(f):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = f()
        msgs = [str(i.message) for i in w if "shuffle=True" not in str(i.message)]
        return [i for i in msgs if "ran out" in i], len([i for i in msgs if "ran out" not in i]), r

    def xs():
        return ((x[i:i + 10],) for i in range(0, 40, 10))

    def shape(a):
        return np.asarray(a).shape
    out = [
        run(lambda: m.evaluate(batches(x, y), verbose=0)),
        run(lambda: m.evaluate(batches(x, y), steps=2, verbose=0)),
        run(lambda: m.evaluate(batches(x, y), steps=4, verbose=0)),
        run(lambda: m.evaluate(batches(x, y), steps=6, verbose=0)),
        run(lambda: shape(m.predict(xs(), verbose=0))),
        run(lambda: shape(m.predict(xs(), steps=3, verbose=0))),
        run(lambda: shape(m.predict(xs(), steps=4, verbose=0))),
        run(lambda: shape(m.predict(batches(x, y), steps=7, verbose=0))),
        run(lambda: len(m.fit(batches(x, y), epochs=3, verbose=0).history["loss"])),
        run(lambda: len(m.fit(batches(x, y, repeat=2), epochs=2, steps_per_epoch=4,
                              verbose=0).history["loss"])),
        run(lambda: len(m.fit(x, y, epochs=2, verbose=0, batch_size=10,
                              validation_data=batches(x, y)).history["val_loss"])),
        run(lambda: m.evaluate(filtered, verbose=0)),
    ]
    return out


# (ran-out warnings, result) per ran_out_runs entry: without steps a generator (or a dataset
# of unknown length) is read until it stops, and every pass warns; steps= the length reads
# exactly that and does not; more steps than batches gives what there is, and warns. The
# losses are the arrays' over all 4 batches or the first 2.
RAN_OUT_TABLE = [(1, "loss_all"), (0, "loss_2"), (0, "loss_all"), (1, "loss_all"),
                 (1, (40, 4)), (0, (30, 4)), (0, (40, 4)), (1, (40, 4)),
                 (3, 3), (0, 2), (2, 2), (1, None)]  # None: after the fits trained


def test_running_out_warns_as_keras():
    x, y = data(40)
    m = model()
    m.fit(x, y, batch_size=10, epochs=1, verbose=0)
    full = m.evaluate(x, y, batch_size=10, verbose=0)
    two = m.evaluate(x[:20], y[:20], batch_size=10, verbose=0)
    from cnnfast.data import Dataset
    filtered = Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(10)
    runs = ran_out_runs(m, x, y, filtered)
    for i, ((msgs, others, result), (n, want)) in enumerate(zip(runs, RAN_OUT_TABLE)):
        assert msgs == [RAN_OUT] * n and others == 0, i
        if isinstance(want, str):
            want = {"loss_all": full, "loss_2": two}[want]
            np.testing.assert_array_equal(result, want)  # the same batches in the same order
        elif want is not None:
            assert result == want, i


def test_a_second_epoch_replays_the_two_batches_read_ahead():
    x, y = data(40)
    m = model()
    seen = []
    cb = cf.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(0),
                                     on_train_batch_end=lambda b, logs: seen.__setitem__(
                                         -1, seen[-1] + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(batches(x, y), epochs=3, verbose=0, callbacks=[cb])
    assert seen == [4, 2, 2]  # tf.keras 2.21 gives the same: test_replay_matches_keras


def test_generator_errors_are_keras_s():
    x, y = data(40)
    m = model()
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.fit(batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weights` should not be passed"):
        m.fit(batches(x, y), sample_weight=np.ones(40), verbose=0)
    with pytest.raises(ValueError, match="`class_weight` is not supported for Python generator"):
        m.fit(batches(x, y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="must yield at least one batch"):
        m.fit((b for b in []), verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="must return a tuple"):
        m.predict((x[i:i + 10] for i in range(0, 40, 10)), verbose=0)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        m.evaluate(batches(x, y), y, verbose=0)
    # other iterators are not generators: a clear NotImplementedError, as before
    with pytest.raises(NotImplementedError, match="Python generator"):
        m.fit(iter([(x, y)]), verbose=0)


@pytest.mark.tf
def test_replay_and_errors_match_keras():
    tf = pytest.importorskip("tensorflow")
    x, y = data(40)
    km = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                              tf.keras.layers.Dense(4, activation="softmax")])
    km.compile("adam", "sparse_categorical_crossentropy")
    seen = []
    cb = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: seen.append(0),
        on_train_batch_end=lambda b, logs: seen.__setitem__(-1, seen[-1] + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(batches(x, y), epochs=3, verbose=0, callbacks=[cb])
    assert seen == [4, 2, 2]
    for kw, match in (({"y": y}, "`y` should not be passed"),
                      ({"sample_weight": np.ones(40)}, "`sample_weights` should not be passed"),
                      ({"class_weight": {0: 1.0}}, "`class_weight` is not supported")):
        with pytest.raises(ValueError, match=match):
            km.fit(batches(x, y), verbose=0, **kw)
    with pytest.raises(ValueError, match="must return a tuple"):
        km.predict((x[i:i + 10] for i in range(0, 40, 10)), verbose=0)


@pytest.mark.tf
def test_running_out_matches_keras():
    tf = pytest.importorskip("tensorflow")
    x, y = data(40)
    km = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                              tf.keras.layers.Dense(4, activation="softmax")])
    km.compile("adam", "sparse_categorical_crossentropy")
    full = km.evaluate(x, y, batch_size=10, verbose=0)
    two = km.evaluate(x[:20], y[:20], batch_size=10, verbose=0)
    filtered = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(10)
    runs = ran_out_runs(km, x, y, filtered)
    for i, ((msgs, others, result), (n, want)) in enumerate(zip(runs, RAN_OUT_TABLE)):
        assert msgs == [RAN_OUT] * n and others == 0, i
        if isinstance(want, str):
            # Keras's evaluate of a generator vs of the arrays: its float32 metric means
            # (measured equal here; rtol for the order of its running sums)
            want = {"loss_all": full, "loss_2": two}[want]
            np.testing.assert_allclose(result, want, rtol=1e-6, atol=0)
        elif want is not None:
            assert result == want, i
