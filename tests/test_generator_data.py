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
    got = m.evaluate(batches(x, y), verbose=0, return_dict=True)
    assert got == want
    p = m.predict(x, batch_size=10, verbose=0)
    np.testing.assert_array_equal(m.predict(((x[i:i + 10],) for i in range(0, 40, 10)),
                                            verbose=0), p)
    # predict also takes (x, y) tuples and ignores y
    np.testing.assert_array_equal(m.predict(batches(x, y), verbose=0), p)


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
