"""Sample weights inside dataset elements and class_weight with datasets (cnnfast/models/data.py
DatasetBatches, docs/keras_semantics.md#sample-weights): a cnnfast.data.Dataset of (x, y, sw),
a PyDataset / Sequence returning (x, y, sw) and ImageDataGenerator.flow(sample_weight=) give
the run the same arrays with sample_weight= give (fit, evaluate, validation_data), bit for bit
on the Net and the LayerEngine; class_weight applies per batch from y; tf.keras 2.21 parity
with a tf.data.Dataset of the same elements."""
import math

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.data import Dataset
from cnnfast.layers.base import reset_names


def _model(native=True, weighted_metrics=None):
    reset_names()
    cf.utils.set_random_seed(0)
    m = cf.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(3, 3, activation="relu"),
                       layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.use_native_executor = native
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
              weighted_metrics=weighted_metrics)
    return m


def _data(n=50, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 6, 6, 1), dtype=np.float32)
    y = r.integers(0, 3, n)
    x[np.arange(n), 2 * y, 2 * y] += 1.0
    return x, y, (r.random(n) * 2).astype(np.float32)


class _Batches(cf.keras.utils.PyDataset):
    """(x, y[, sw]) batches of arrays, in order."""

    def __init__(self, *arrays, batch=16):
        super().__init__()
        self.arrays, self.batch = arrays, batch

    def __len__(self):
        return math.ceil(len(self.arrays[0]) / self.batch)

    def __getitem__(self, i):
        s = slice(i * self.batch, (i + 1) * self.batch)
        return tuple(a[s] for a in self.arrays)


def _sources(x, y, w):
    return {
        "dataset": Dataset.from_tensor_slices((x, y, w)).batch(16),
        "pydataset": _Batches(x, y, w),
        "image_data_generator": cf.keras.preprocessing.image.ImageDataGenerator().flow(
            x, y, batch_size=16, shuffle=False, sample_weight=w),
    }


def _run(m, train, val):
    h = m.fit(train, epochs=2, verbose=0, validation_data=val, shuffle=False).history
    return h, m.get_weights(), m.evaluate(val, verbose=0, return_dict=True)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("kind", ["dataset", "pydataset", "image_data_generator"])
def test_weighted_elements_match_arrays(kind, native, threads):
    x, y, w = _data()
    m = _model(native)
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, sample_weight=w,
              validation_data=(x, y, w)).history
    ref = (h, m.get_weights(),
           m.evaluate(x, y, batch_size=16, sample_weight=w, verbose=0, return_dict=True))
    got = _run(_model(native), _sources(x, y, w)[kind], _sources(x, y, w)[kind])
    assert got[0] == ref[0]
    assert got[2] == ref[2]
    for a, b in zip(got[1], ref[1]):
        np.testing.assert_array_equal(a, b)
    # the weights matter: unweighted elements give another run
    m3 = _model(native)
    other = m3.fit(Dataset.from_tensor_slices((x, y)).batch(16), epochs=2, verbose=0).history
    assert other["loss"] != got[0]["loss"]


def test_weighted_metrics_see_the_elements_weights():
    x, y, w = _data()
    m = _model(weighted_metrics=["accuracy"])
    got = m.evaluate(Dataset.from_tensor_slices((x, y, w)).batch(7), verbose=0,
                     return_dict=True)
    hit = (m.predict(x, verbose=0).argmax(1) == y).astype(np.float64)
    np.testing.assert_allclose(got["weighted_accuracy"], (hit * w).sum() / w.sum(), atol=1e-6)
    np.testing.assert_allclose(got["accuracy"], hit.mean(), atol=1e-6)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("kind", ["dataset", "pydataset"])
def test_class_weight_with_a_dataset_matches_arrays(kind, native):
    x, y, _ = _data()
    cw = {0: 0.5, 1: 2.0, 2: 1.25}
    m = _model(native)
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, class_weight=cw,
              validation_data=(x[:20], y[:20])).history
    ref = (h, m.get_weights())
    train = Dataset.from_tensor_slices((x, y)).batch(16) if kind == "dataset" else \
        _Batches(x, y)
    val = Dataset.from_tensor_slices((x[:20], y[:20])).batch(16)
    m2 = _model(native)
    h2 = m2.fit(train, epochs=2, verbose=0, shuffle=False, class_weight=cw,
                validation_data=val).history
    assert h2 == ref[0]  # validation stays unweighted, as Keras's
    for a, b in zip(m2.get_weights(), ref[1]):
        np.testing.assert_array_equal(a, b)


def test_predict_ignores_the_weights_and_bad_elements():
    x, y, w = _data(20)
    m = _model()
    np.testing.assert_array_equal(m.predict(Dataset.from_tensor_slices((x, y, w)).batch(8),
                                            verbose=0), m.predict(x, verbose=0))
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        m.fit(_Batches(x, y, w), class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        m.evaluate(_Batches(x, y, w[:-4], batch=20), verbose=0)
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        m.fit(_Batches(x, y), class_weight=[1.0, 2.0], verbose=0)


@pytest.mark.tf
@pytest.mark.parametrize("case", ["sample_weight", "class_weight"])
def test_dataset_weights_match_keras(tf_keras, case):
    tf, keras = tf_keras
    x, y, w = _data(64, seed=1)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    spec = [("Conv2D", (3, 3), {"activation": "relu"}), ("Flatten", (), {}),
            ("Dense", (3,), {"activation": "softmax"})]
    km = keras.Sequential([keras.Input((6, 6, 1))] +
                          [getattr(keras.layers, c)(*a, **k) for c, a, k in spec])
    reset_names()
    cm = cf.Sequential([layers.Input((6, 6, 1))] +
                       [getattr(layers, c)(*a, **k) for c, a, k in spec])
    cm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], weighted_metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], weighted_metrics=["accuracy"])
    elems = (x, y, w) if case == "sample_weight" else (x, y)
    kw = {} if case == "sample_weight" else {"class_weight": {0: 0.5, 1: 2.0, 2: 1.25}}
    hk = km.fit(tf.data.Dataset.from_tensor_slices(elems).batch(16), epochs=2, verbose=0,
                shuffle=False,
                validation_data=tf.data.Dataset.from_tensor_slices((x, y, w)).batch(20),
                **kw).history
    hc = cm.fit(Dataset.from_tensor_slices(elems).batch(16), epochs=2, verbose=0,
                validation_data=Dataset.from_tensor_slices((x, y, w)).batch(20),
                **kw).history
    assert sorted(hc) == sorted(hk)
    for key in hk:
        # 2 SGD epochs with copied weights: measured ~2e-7 relative (losses), metrics equal
        np.testing.assert_allclose(hc[key], hk[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(cm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
