"""Model.fit / evaluate / predict on a cnnfast.data.Dataset: a pipeline that does not shuffle
trains exactly as the same arrays with shuffle=False (on both engines, Dropout included), the
Keras rules for steps_per_epoch and infinite datasets, and the errors."""
import warnings

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.data import Dataset
from cnnfast.layers.base import reset_names


def data(n=45, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    y = (x[:, :4, :4, 0].mean(axis=(1, 2)) * 3.999).astype(np.int64)
    return x, np.clip(y, 0, 3)


def model(dropout=0.25, optimizer="adam"):
    reset_names()
    cf.utils.set_random_seed(3)
    m = cf.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(3, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(6, activation="relu"),
        layers.Dropout(dropout),
        layers.Dense(4, activation="softmax"),
    ])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def fit_both(build_ds, native=True, **fit_kw):
    """(arrays run, dataset run): the same model trained on x, y with shuffle=False and on the
    dataset `build_ds(x, y)`; returns both (weights, history)."""
    x, y = data()
    runs = []
    for use_ds in (False, True):
        m = model()
        m.use_native_executor = native
        vx, vy = data(17, seed=1)
        if use_ds:
            h = m.fit(build_ds(x, y), epochs=3, verbose=0,
                      validation_data=Dataset.from_tensor_slices((vx, vy)).batch(8), **fit_kw)
        else:
            h = m.fit(x, y, batch_size=10, epochs=3, verbose=0, shuffle=False,
                      validation_data=(vx, vy), validation_batch_size=8, **fit_kw)
        runs.append((m.get_weights(), h.history, m))
    return runs


@pytest.mark.parametrize("native", [True, False], ids=["native", "layer_engine"])
def test_dataset_fit_equals_array_fit_bit_for_bit(native):
    (wa, ha, ma), (wd, hd, md) = fit_both(
        lambda x, y: Dataset.from_tensor_slices((x, y)).batch(10).prefetch(cf.data.AUTOTUNE),
        native=native)
    for a, d in zip(wa, wd):
        np.testing.assert_array_equal(a, d)
    assert ha == hd
    assert ma.optimizer.iterations == md.optimizer.iterations == 15


def test_a_pipeline_with_map_cache_and_uint8_images_equals_arrays():
    x, y = data()
    x8 = (x * 255).astype(np.uint8)
    m = model(dropout=0.0)
    m.fit(x8.astype(np.float32) / 255.0, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    m2 = model(dropout=0.0)
    ds = (cf.data.Dataset.from_tensor_slices((x8, y))
          .map(lambda img, label: (cf.cast(img, cf.float32) / 255.0, label))
          .cache().batch(16))
    m2.fit(ds, epochs=2, verbose=0)
    for a, d in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, d)


def test_evaluate_and_predict_on_datasets_equal_arrays():
    x, y = data()
    m = model()
    m.fit(x, y, epochs=1, verbose=0)
    ds = Dataset.from_tensor_slices((x, y)).batch(7)
    assert m.evaluate(ds, verbose=0) == m.evaluate(x, y, batch_size=7, verbose=0)
    np.testing.assert_array_equal(m.predict(ds, verbose=0), m.predict(x, verbose=0))
    np.testing.assert_array_equal(m.predict(Dataset.from_tensor_slices(x).batch(5), verbose=0),
                                  m.predict(x, verbose=0))
    # steps: the first batches only
    assert m.predict(ds, steps=2, verbose=0).shape == (14, 4)
    assert m.evaluate(ds, steps=2, verbose=0) == m.evaluate(x[:14], y[:14], batch_size=7,
                                                            verbose=0)


def test_shuffled_dataset_trains_deterministically_given_the_seed():
    x, y = data()

    def run():
        m = model()
        ds = Dataset.from_tensor_slices((x, y)).shuffle(20).batch(8)
        m.fit(ds, epochs=2, verbose=0)
        return m.get_weights()
    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_steps_per_epoch_on_an_infinite_dataset_carries_the_iterator_over():
    x, y = data()
    m = model(dropout=0.0)
    ds = Dataset.from_tensor_slices((x, y)).batch(9).repeat()
    h = m.fit(ds, epochs=3, steps_per_epoch=2, verbose=0)
    assert len(h.history["loss"]) == 3 and m.optimizer.iterations == 6
    # 6 steps over 5 batches of 9 rows: the same updates as these arrays in this order
    m2 = model(dropout=0.0)
    for rows in ([0, 18], [18, 36], [36, 45, 0, 9]):
        idx = np.concatenate([np.arange(a, b) for a, b in zip(rows[::2], rows[1::2])])
        for s in range(0, len(idx), 9):
            part = idx[s:s + 9]
            m2.train_on_batch(x[part], y[part])
    # train_on_batch draws its seed from the same generator; no Dropout, so weights agree
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_infinite_dataset_needs_steps_and_running_out_warns():
    x, y = data()
    m = model()
    with pytest.raises(ValueError, match="infinite.*steps_per_epoch"):
        m.fit(Dataset.from_tensor_slices((x, y)).batch(9).repeat(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="infinite.*validation_steps"):
        m.fit(x, y, epochs=1, verbose=0,
              validation_data=Dataset.from_tensor_slices((x, y)).batch(9).repeat())
    with pytest.raises(ValueError, match="infinite.*steps"):
        m.evaluate(Dataset.from_tensor_slices((x, y)).batch(9).repeat(), verbose=0)
    # an unknown-length dataset that runs out within an epoch: Keras's warning, epoch ends
    ds = Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(9)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        h = m.fit(ds, epochs=2, steps_per_epoch=7, verbose=0)
    assert any("ran out of data" in str(i.message) for i in w)
    assert len(h.history["loss"]) == 2
    # validation_steps on a finite validation dataset
    h = m.fit(x, y, epochs=1, verbose=0, validation_steps=1,
              validation_data=Dataset.from_tensor_slices((x, y)).batch(9))
    assert "val_loss" in h.history


def test_dataset_errors():
    x, y = data()
    m = model()
    ds = Dataset.from_tensor_slices((x, y)).batch(9)
    with pytest.raises(ValueError, match="y must not be given"):
        m.fit(ds, y, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for NumPy"):
        m.fit(ds, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"single examples, not batches: call \.batch"):
        m.fit(Dataset.from_tensor_slices((x, y)), verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        m.fit(Dataset.from_tensor_slices(x).batch(9), verbose=0)
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        m.fit(Dataset.from_tensor_slices((x, y, np.ones(len(y)))).batch(9),
              class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="dataset element.*sample_weight must have shape"):
        m.fit(Dataset.from_tensor_slices((x, y, np.ones((len(y), 2)))).batch(9), verbose=0)
    with pytest.raises(ValueError, match="labels must be in"):
        m.fit(Dataset.from_tensor_slices((x, y + 10)).batch(9), verbose=0)
    with pytest.raises(NotImplementedError, match="other iterators and datasets"):
        m.fit(iter(range(3)), verbose=0)


def test_fit_on_a_dataset_prints_keras_progress(capsys):
    x, y = data()
    m = model()
    m.fit(Dataset.from_tensor_slices((x, y)).batch(10), epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert "5/5" in out and "loss" in out and "accuracy" in out
    # unknown length: the step count is learnt during the first epoch (and each pass ends by
    # running out, which Keras warns about)
    with pytest.warns(UserWarning, match="ran out of data"):
        m.fit(Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(10),
              epochs=2, verbose=1)
    assert "5/5" in capsys.readouterr().out
