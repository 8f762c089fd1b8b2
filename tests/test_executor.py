"""The native whole-step executor (csrc/net_cpu.cpp) against the per-layer Python path: same
kernels in the same order, so weights, predictions and metrics agree bit for bit."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names


def data(n=45, classes=4, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 9, 9, 2), dtype=np.float32)
    y = (x[:, :4, :4, 0].mean(axis=(1, 2)) * classes * 0.999 + r.random(n) * 0.5).astype(int)
    return x, np.clip(y, 0, classes - 1)


def model(last_act="softmax", classes=4, dropout=0.0):
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([
        layers.Input((9, 9, 2)),
        layers.Conv2D(3, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2, strides=1),
        layers.Conv2D(4, 2, strides=2, activation="tanh"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dense(6, activation="sigmoid"),
        layers.Dropout(dropout),
        layers.Activation("relu"),
        layers.Dense(classes, activation=last_act),
    ])


def model_fused(last_act="softmax", classes=4, dropout=0.0):
    """The executor's fusions: ReLU in the GEMM epilogue (Conv2D, hidden Dense) and the ReLU
    derivative inside max-pool backward, for tiling windows with uncovered cells (9 -> 4, VALID)
    and without (4 -> 2, SAME), below a fused ReLU and below Activation('relu')."""
    reset_names()
    cf.utils.set_random_seed(5)
    return cf.Sequential([
        layers.Input((9, 9, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(5, 2, padding="same"),
        layers.Activation("relu"),
        layers.MaxPooling2D(2, padding="same"),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.Dropout(dropout),
        layers.Dense(classes, activation=last_act),
    ])


MODELS = {"mixed": model, "fused": model_fused}

OPTS = {
    "adam": lambda: cf.optimizers.Adam(0.01),
    "adam_amsgrad": lambda: cf.optimizers.Adam(0.01, amsgrad=True),
    "sgd_nesterov": lambda: cf.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: cf.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
}
LOSSES = {  # (last activation, loss, one-hot labels)
    "sparse_cached_logits": ("softmax", "sparse_categorical_crossentropy", False),
    "onehot_cached_logits": ("softmax", "categorical_crossentropy", True),
    "sparse_from_logits": (None, cf.losses.SparseCategoricalCrossentropy(from_logits=True),
                           False),
    "onehot_probability_path": ("sigmoid", "categorical_crossentropy", True),
    "sparse_probability_path": ("sigmoid", "sparse_categorical_crossentropy", False),
}


def train(native, opt, loss_name, monkeypatch, arch="mixed"):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    act, loss, onehot = LOSSES[loss_name]
    x, y = data()
    m = MODELS[arch](act)
    m.compile(optimizer=OPTS[opt](), loss=loss, metrics=["accuracy"])
    yy = cf.utils.to_categorical(y, 4) if onehot else y
    assert (executor.for_model(m, 7, "train") is not None) == native
    h = m.fit(x, yy, batch_size=7, epochs=2, shuffle=False, verbose=0, validation_split=0.2)
    return m, h.history, m.evaluate(x, yy, batch_size=6, verbose=0), m.predict(x, verbose=0)


# Every optimizer on the default loss, every loss path with Adam (the update code is shared).
CASES = [(o, "sparse_cached_logits") for o in sorted(OPTS)] + \
    [("adam", loss) for loss in sorted(LOSSES) if loss != "sparse_cached_logits"]


@pytest.mark.parametrize("opt,loss_name,arch", [c + ("mixed",) for c in CASES] + [
    ("adam", "sparse_cached_logits", "fused"), ("sgd_nesterov", "sparse_from_logits", "fused")])
def test_native_step_equals_python_path(opt, loss_name, arch, monkeypatch):
    m1, h1, e1, p1 = train(True, opt, loss_name, monkeypatch, arch)
    m2, h2, e2, p2 = train(False, opt, loss_name, monkeypatch, arch)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    assert h1.keys() == h2.keys()
    for k in h1:
        # The per-batch mean loss is summed in a different order (C++ loop vs NumPy pairwise).
        np.testing.assert_allclose(h1[k], h2[k], rtol=1e-6, err_msg=k)
    np.testing.assert_allclose(e1, e2, rtol=1e-6)
    assert m1.optimizer.iterations == m2.optimizer.iterations == 2 * int(np.ceil(36 / 7))


def test_dropout_training_is_deterministic_on_the_native_path():
    runs = []
    for _ in range(2):
        x, y = data()
        m = model(dropout=0.4)
        m.compile("adam", "sparse_categorical_crossentropy")
        assert executor.for_model(m, 8, "train") is not None
        runs.append(m.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"])
        w = m.get_weights()
        runs.append([float(a.sum()) for a in w])
    assert runs[0] == runs[2] and runs[1] == runs[3]


def test_unsupported_models_use_the_python_path():
    inp = cf.Input((9, 9, 2))
    c = layers.Conv2D(2, 3)(inp)
    two = cf.Model(inp, [layers.Flatten()(c), layers.MaxPooling2D()(c)])
    assert executor.for_model(two, 8, "predict") is None
    seq = cf.Sequential([layers.Input((3, 4)), layers.Dense(2), layers.Flatten(),
                         layers.Dense(2, activation="softmax")])  # Dense on a rank-3 input
    seq.compile("adam", "sparse_categorical_crossentropy")
    assert executor.for_model(seq, 8, "train") is None
    x = np.random.default_rng(0).random((10, 3, 4), dtype=np.float32)
    assert np.isfinite(seq.fit(x, np.arange(10) % 2, verbose=0).history["loss"][0])
    seeded = cf.Sequential([layers.Input((4,)), layers.Dropout(0.5, seed=1), layers.Dense(2)])
    seeded.compile("adam", cf.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert executor.for_model(seeded, 8, "train") is None


def test_feature_map_outputs_predict_natively_and_evaluate_in_python():
    # A (batch, h, w, c) output: predict runs natively (per-sample size, not channels);
    # a loss over such an output is not the Net's, so evaluate/fit take the Python path.
    m = model()
    maps = cf.Model(m.inputs, m.layers[1].output)
    x, _ = data(5)
    assert executor.for_model(maps, 8, "predict") is not None
    ref = m.layers[0](x)
    ref = m.layers[1](ref)
    np.testing.assert_array_equal(maps.predict(x, verbose=0), ref)
    maps.compile("adam", "sparse_categorical_crossentropy")
    assert executor.for_model(maps, 8, "evaluate") is None
    assert executor.for_model(maps, 8, "train") is None


def test_native_net_checks_its_inputs():
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy")
    net = executor.for_model(m, 4, "train")
    x, y = data(10)
    y = y.astype(np.int32)
    with pytest.raises(ValueError, match="index out of range"):
        net.train_step(x, y, np.array([0, 10], np.int64), 0, 0.01, 1)
    with pytest.raises(ValueError, match="exceeds|out of range"):
        net.train_step(x, y, np.arange(5, dtype=np.int64), 0, 0.01, 1)
    with pytest.raises(ValueError, match="rows must have"):
        net.train_step(x[:, :8], y, np.arange(2, dtype=np.int64), 0, 0.01, 1)
    with pytest.raises(TypeError, match="dtype"):
        net.train_step(x, y.astype(np.int64), np.arange(2, dtype=np.int64), 0, 0.01, 1)


def test_native_profile_counts_steps_and_times_every_op(monkeypatch):
    """Net.set_profiling: per-op wall times summed over the profiled train steps; the
    numbers computed are the same with and without it."""
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1")
    x, y = data()
    weights = []
    for profiled in (False, True):
        m = model_fused()
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0, shuffle=False)
        net = executor.for_model(m, 8, "train")
        net.set_profiling(profiled)
        m.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        prof = net.profile()
        n_ops = len(executor._chain(m))
        assert len(prof["fwd_ms"]) == len(prof["bwd_ms"]) == n_ops
        if profiled:
            assert prof["steps"] == int(np.ceil(len(x) / 8))
            assert all(t >= 0 for t in prof["fwd_ms"] + prof["bwd_ms"])
            assert prof["fwd_ms"][0] > 0 and prof["bwd_ms"][0] > 0   # the first Conv2D
            assert prof["update_ms"] > 0 and prof["loss_ms"] > 0
        else:
            assert prof["steps"] == 0 and not any(prof["fwd_ms"])
        weights.append(m.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
