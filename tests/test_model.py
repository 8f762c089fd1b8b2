"""Trainer behaviour: graph building, weights layout, fit/evaluate/predict semantics,
gradients of a whole model by central differences, determinism, Keras fit rules."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names


@pytest.fixture(autouse=True)
def _fresh():
    reset_names()
    cf.utils.set_random_seed(1234)


def tutorial_cnn():
    return cf.Sequential([
        layers.Conv2D(32, 3, padding="same", activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def toy_data(n=96, seed=0, hw=8, classes=3):
    """Images whose label is the brightest of `classes` vertical bands: learnable quickly."""
    r = np.random.default_rng(seed)
    x = r.random((n, hw, hw, 1), dtype=np.float32) * 0.2
    y = r.integers(0, classes, n)
    band = hw // classes
    for i, c in enumerate(y):
        x[i, :, c * band:(c + 1) * band, 0] += 0.8
    return x, y.astype(np.uint8)


def small_cnn(classes=3, hw=8, act="relu", pool=layers.MaxPooling2D):
    return cf.Sequential([
        layers.Input((hw, hw, 1)),
        layers.Conv2D(4, 3, padding="same", activation=act),
        pool(2),
        layers.Flatten(),
        layers.Dense(8, activation=act),
        layers.Dense(classes, activation="softmax"),
    ])


def test_tutorial_cnn_shapes_and_params():
    m = tutorial_cnn()
    shapes = [layer.output.shape for layer in m.layers]
    assert shapes == [(None, 28, 28, 32), (None, 14, 14, 32), (None, 14, 14, 64),
                      (None, 7, 7, 64), (None, 3136), (None, 128), (None, 10)]
    assert [layer.count_params() for layer in m.layers] == [320, 0, 18496, 0, 0, 401536, 1290]
    assert m.count_params() == 421642
    assert [layer.name for layer in m.layers] == ["conv2d", "max_pooling2d", "conv2d_1",
                                          "max_pooling2d_1", "flatten", "dense", "dense_1"]


def test_valid_cnn_with_dropout_has_keras_param_count():
    m = cf.Sequential([
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    assert m.layers[2].output.shape == (None, 12, 12, 64)
    assert m.count_params() == 1199882


def test_sequential_add_equals_list_and_weight_layouts():
    a = tutorial_cnn()
    reset_names()
    b = cf.Sequential()
    b.add(layers.Input(shape=(28, 28, 1)))
    for layer in [layers.Conv2D(32, 3, padding="same", activation="relu"),
                  layers.MaxPooling2D(),
                  layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
                  layers.Flatten(), layers.Dense(128, activation="relu"),
                  layers.Dense(10, activation="softmax")]:
        b.add(layer)
    assert [w.shape for w in a.get_weights()] == [w.shape for w in b.get_weights()] == [
        (3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (3136, 128), (128,), (128, 10), (10,)]
    b.set_weights(a.get_weights())
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_flatten_is_hwc_order_and_dense_is_x_at_w():
    m = cf.Sequential([layers.Input((2, 3, 2)), layers.Flatten(), layers.Dense(1, use_bias=False)])
    w = np.zeros((12, 1), np.float32)
    w[1 * 3 * 2 + 2 * 2 + 1, 0] = 1.0  # feature index h*W*C + w*C + c for (h=1, w=2, c=1)
    m.set_weights([w])
    x = np.zeros((1, 2, 3, 2), np.float32)
    x[0, 1, 2, 1] = 5.0
    assert m.predict(x, verbose=0)[0, 0] == 5.0


def test_glorot_uniform_statistics():
    # Keras: U(-L, L), L = sqrt(6 / (fan_in + fan_out)), conv fans include the receptive field.
    m = tutorial_cnn()
    k = m.layers[0].kernel
    limit = np.sqrt(6.0 / (9 * 1 + 9 * 32))
    assert np.abs(k).max() <= limit
    assert abs(k.std() - limit / np.sqrt(3)) < 0.1 * limit
    big = m.layers[5].kernel
    limit = np.sqrt(6.0 / (3136 + 128))
    assert abs(big.mean()) < 0.01 * limit and abs(big.std() - limit / np.sqrt(3)) < 0.01 * limit
    assert not m.layers[0].bias.any()


def test_fit_learns_and_history_follows_keras_rules():
    x, y = toy_data(120)
    m = small_cnn()
    m.compile(optimizer=cf.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    h = m.fit(x, y, epochs=6, batch_size=16, validation_split=0.25, verbose=0)
    assert h is m.history
    assert list(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 6 for v in h.history.values()) and h.epoch == list(range(6))
    assert h.history["loss"][-1] < h.history["loss"][0]
    loss, acc = m.evaluate(x, y, verbose=0)
    assert acc > 0.9, (loss, acc)
    p = m.predict(x, verbose=0)
    assert p.dtype == np.float32 and p.shape == (120, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert (p.argmax(1) == y).mean() == pytest.approx(acc)


def test_validation_split_takes_the_tail_before_shuffling():
    x, y = toy_data(50)
    m = small_cnn()
    m.compile(optimizer=cf.optimizers.SGD(learning_rate=0.0),
              loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    h = m.fit(x, y, epochs=1, batch_size=7, validation_split=0.3, verbose=0)
    split = int(np.floor(50 * 0.7))
    vl, va = m.evaluate(x[split:], y[split:], batch_size=7, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(vl, rel=1e-6)
    assert h.history["val_accuracy"][0] == pytest.approx(va)
    # lr 0 + shuffle: the epoch loss is the mean over the first 35 samples, in any order
    tl, _ = m.evaluate(x[:split], y[:split], verbose=0)
    assert h.history["loss"][0] == pytest.approx(tl, rel=1e-5)


def test_epoch_loss_is_batch_size_weighted_running_mean():
    x, y = toy_data(10)
    m = small_cnn()
    m.compile(optimizer=cf.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    h = m.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)  # batches 4, 4, 2
    per = cf.losses.sparse_categorical_crossentropy(y, m.predict(x, verbose=0))
    means = [per[0:4].mean(), per[4:8].mean(), per[8:10].mean()]
    assert h.history["loss"][0] == pytest.approx((4 * means[0] + 4 * means[1] + 2 * means[2]) / 10,
                                                 rel=1e-5)
    # compiled without metrics: evaluate returns a scalar
    assert isinstance(m.evaluate(x, y, verbose=0), float)


def test_training_is_deterministic_for_a_seed():
    x, y = toy_data(64)
    runs = []
    for _ in range(2):
        reset_names()
        cf.utils.set_random_seed(7)
        m = cf.Sequential([layers.Input((8, 8, 1)), layers.Flatten(),
                           layers.Dense(16, activation="relu"),
                           layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        h = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
        runs.append((h.history["loss"], m.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def _model_loss(m, x, y):
    return float(cf.losses.SparseCategoricalCrossentropy()(y, m.predict(x, verbose=0)))


@pytest.mark.parametrize("pool,act", [(layers.AveragePooling2D, "tanh"),
                                      (layers.MaxPooling2D, "sigmoid")])
def test_whole_model_gradient_by_central_differences(pool, act):
    """The gradients fit() applies equal central differences of the loss (float32, so a
    coarse step and a 2 % tolerance; a wrong sign, layout or missing term fails by far more)."""
    x, y = toy_data(6, seed=3)
    m = small_cnn(act=act, pool=pool)
    m.compile(optimizer=cf.optimizers.SGD(learning_rate=1.0),
              loss="sparse_categorical_crossentropy")
    w0 = m.get_weights()
    m.train_on_batch(x, y)  # SGD lr=1: w1 = w0 - grad
    grads = [a - b for a, b in zip(w0, m.get_weights())]
    m.set_weights(w0)
    r = np.random.default_rng(0)
    h = 1e-2
    for wi, g in enumerate(grads):
        for _ in range(3):
            idx = tuple(r.integers(0, s) for s in g.shape)
            w = [a.copy() for a in w0]
            w[wi][idx] += h
            m.set_weights(w)
            lp = _model_loss(m, x, y)
            w[wi][idx] -= 2 * h
            m.set_weights(w)
            lm = _model_loss(m, x, y)
            num = (lp - lm) / (2 * h)
            assert num == pytest.approx(g[idx], rel=2e-2, abs=2e-4), (wi, idx)
        m.set_weights(w0)


def test_cached_logits_rule_gives_unclipped_loss():
    # A softmax output with a true-class probability far below 1e-7: Keras's TF backend uses
    # the cached logits, so the loss exceeds -log(1e-7) = 16.118 (clipped path would cap it).
    m = cf.Sequential([layers.Input((2,)), layers.Dense(2, activation="softmax")])
    m.set_weights([np.array([[50.0, -50.0], [0.0, 0.0]], np.float32), np.zeros(2, np.float32)])
    m.compile(optimizer=cf.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    x = np.array([[1.0, 0.0]], np.float32)
    assert m.evaluate(x, np.array([1]), verbose=0) == pytest.approx(100.0, rel=1e-5)
    # The eager loss on probabilities takes the clipped path and caps at 16.118.
    p = m.predict(x, verbose=0)
    assert cf.losses.sparse_categorical_crossentropy(np.array([1]), p)[0] == pytest.approx(
        -np.log(1e-7), rel=1e-4)


def test_one_hot_labels_and_from_logits():
    x, y = toy_data(48)
    m = small_cnn()
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, cf.utils.to_categorical(y, 3), epochs=3, batch_size=8, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    reset_names()
    m2 = cf.Sequential([layers.Input((8, 8, 1)), layers.Flatten(), layers.Dense(3)])
    m2.compile("adam", cf.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["acc"])
    h2 = m2.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert set(h2.history) == {"acc", "loss"}


def test_channel_axis_optional_and_uint8_accepted():
    x, y = toy_data(16)
    m = small_cnn()
    m.compile("adam", "sparse_categorical_crossentropy")
    xs = (x[..., 0] * 255).astype(np.uint8)  # (N, 8, 8) uint8: channel axis added, cast
    m.fit(xs, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(m.predict(xs, verbose=0),
                                  m.predict(xs.astype(np.float32)[..., None], verbose=0))


def test_deferred_build_sequential_and_functional_feature_maps():
    x, y = toy_data(8)
    m = cf.Sequential([layers.Conv2D(2, 3), layers.Flatten(),
                       layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="not been built"):
        m.summary()
    assert m.predict(x, verbose=0).shape == (8, 3)
    assert m.layers[0].kernel.shape == (3, 3, 1, 2)
    inp = cf.Input(shape=(8, 8, 1))
    c = layers.Conv2D(2, 3, activation="relu")(inp)
    p = layers.MaxPooling2D()(c)
    out = layers.Dense(3, activation="softmax")(layers.Flatten()(p))
    f = cf.Model(inputs=inp, outputs=out)
    maps = cf.Model(inputs=f.input, outputs=[c, p]).predict(x, verbose=0)
    assert [a.shape for a in maps] == [(8, 6, 6, 2), (8, 3, 3, 2)]


def test_early_stopping_semantics_on_scripted_metrics():
    class Scripted(cf.callbacks.Callback):
        def __init__(self, values):
            super().__init__()
            self.values = values

        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = self.values[epoch]

    x, y = toy_data(8)
    m = small_cnn()
    m.compile(cf.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    es = cf.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    vals = [1.0, 0.5, 0.5, 0.6, 0.4, 0.3]  # best at epoch 1; 0.5 is not < 0.5 (strict)
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[Scripted(vals), es])
    assert len(h.history["loss"]) == 4 and es.stopped_epoch == 3 and es.best_epoch == 1


def test_threads_and_build_info():
    info = cf.build_info()
    for k in ("compiler", "openmp", "isa", "num_threads", "version"):
        assert k in info
    n = cf.get_num_threads()
    cf.set_num_threads(1)
    assert cf.get_num_threads() == 1
    cf.set_num_threads(n)
    with pytest.raises(ValueError):
        cf.set_num_threads(0)


def test_no_memory_growth_from_epoch_to_epoch():
    """Buffers are allocated in the first steps and reused: traced memory (NumPy reports its
    allocations to tracemalloc) does not grow between the ends of epochs 2 and 5."""
    import tracemalloc

    x, y = toy_data(100)
    m = small_cnn()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    seen = []

    class Probe(cf.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        m.fit(x, y, epochs=5, batch_size=16, validation_split=0.2, verbose=0,
              callbacks=[Probe()])
    finally:
        tracemalloc.stop()
    # History lists grow by a few floats per epoch; a leaked batch buffer would be >= 4 KiB.
    assert seen[4] - seen[1] < 4096, seen
