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
    assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
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
    for k in h1:  # both engines sum the batch loss in the same (sequential) order
        np.testing.assert_array_equal(h1[k], h2[k], err_msg=k)
    np.testing.assert_array_equal(e1, e2)
    assert m1.optimizer.iterations == m2.optimizer.iterations == 2 * int(np.ceil(36 / 7))


def test_dropout_training_is_deterministic_on_the_native_path():
    runs = []
    for _ in range(2):
        x, y = data()
        m = model(dropout=0.4)
        m.compile("adam", "sparse_categorical_crossentropy")
        assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)
        runs.append(m.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"])
        w = m.get_weights()
        runs.append([float(a.sum()) for a in w])
    assert runs[0] == runs[2] and runs[1] == runs[3]


def test_unsupported_models_use_the_python_path():
    inp = cf.Input((9, 9, 2))
    c = layers.Conv2D(2, 3)(inp)
    two = cf.Model(inp, [layers.Flatten()(c), layers.MaxPooling2D()(c)])
    assert isinstance(executor.for_model(two, 8, "predict"), executor.LayerEngine)
    # a softmax over another axis than the last (the Net normalises the last axis only)
    seq = cf.Sequential([layers.Input((3, 4)), layers.Dense(2), layers.Softmax(axis=1),
                         layers.Flatten(), layers.Dense(2, activation="softmax")])
    seq.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(seq, 8, "train"), executor.LayerEngine)
    x = np.random.default_rng(0).random((10, 3, 4), dtype=np.float32)
    assert np.isfinite(seq.fit(x, np.arange(10) % 2, verbose=0).history["loss"][0])
    seeded = cf.Sequential([layers.Input((4,)), layers.Dropout(0.5, seed=1), layers.Dense(2)])
    seeded.compile("adam", cf.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(executor.for_model(seeded, 8, "train"), executor.LayerEngine)


def test_feature_map_outputs_predict_natively_and_evaluate_in_python():
    # A (batch, h, w, c) output: predict runs natively (per-sample size, not channels);
    # a loss over such an output is not the Net's, so evaluate/fit take the Python path.
    m = model()
    maps = cf.Model(m.inputs, m.layers[1].output)
    x, _ = data(5)
    assert isinstance(executor.for_model(maps, 8, "predict"), executor.NativeEngine)
    ref = m.layers[0](x)
    ref = m.layers[1](ref)
    np.testing.assert_array_equal(maps.predict(x, verbose=0), ref)
    maps.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(maps, 8, "evaluate"), executor.LayerEngine)
    assert isinstance(executor.for_model(maps, 8, "train"), executor.LayerEngine)


def test_native_net_checks_its_inputs():
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy")
    net = executor.for_model(m, 4, "train").net
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
        net = executor.for_model(m, 8, "train").net
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


def test_layer_engine_reproduces_a_default_run_bit_for_bit(monkeypatch):
    """CNNFAST_EXECUTOR=0 reproduces a default (native) run exactly: shuffled epochs, two
    Dropout layers, validation_split, callbacks that change the learning rate and stop early,
    then train_on_batch, evaluate, predict and a training-mode call. One seed per step drives
    both engines (executor.step_seed / layer_seed), and both sum the batch loss in order."""
    x, y = data(n=50)

    def run(native):
        monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
        m = model_fused(dropout=0.4)  # a chain with a second Dropout below
        m = cf.Sequential([layers.Input((9, 9, 2)), *m.layers[:2], layers.Dropout(0.25),
                           *m.layers[2:]])
        m.compile(cf.optimizers.Adam(0.02), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        assert isinstance(executor.for_model(m, 7, "train"), executor.NativeEngine) == native
        cbs = [cf.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                              min_delta=10.0),
               cf.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)]
        h = m.fit(x, y, batch_size=7, epochs=5, shuffle=True, validation_split=0.1,
                  callbacks=cbs, verbose=0)
        tob = [m.train_on_batch(x[:9], y[:9], return_dict=True) for _ in range(3)]
        ev = m.evaluate(x, y, batch_size=8, verbose=0)
        pred = m.predict(x, verbose=0)
        called = m(x[:5], training=True)
        return (m.get_weights(), h.history, h.epoch, tob, ev, pred, called,
                m.optimizer.iterations, m.optimizer.learning_rate)

    native, layer = run(True), run(False)
    w1, h1, e1, t1, ev1, p1, c1, it1, lr1 = native
    w2, h2, e2, t2, ev2, p2, c2, it2, lr2 = layer
    assert e1 == e2 == [0, 1]  # EarlyStopping stopped both after epoch 2 of 5
    assert h1 == h2  # every epoch's loss, accuracy, val_* and learning_rate, exactly
    assert t1 == t2 and ev1 == ev2
    # ReduceLROnPlateau halved the rate after epoch 2, before train_on_batch ran.
    assert it1 == it2 == 2 * 7 + 3 and lr1 == lr2 and np.float32(lr1) == np.float32(0.01)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(c1, c2)


def test_dropout_masks_follow_the_step_seed():
    """The same step seed gives the same masks on both engines; another seed other masks (so
    the equality above is not vacuous: dropout is on and its masks matter)."""
    x, y = data(n=14)
    finals = []
    for seed in (5, 5, 6):
        m = model(dropout=0.5)
        m.compile(cf.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        for engine in (executor.for_model(m, 14, "train"), executor.LayerEngine(m)):
            m.set_weights(model(dropout=0.5).get_weights())
            engine.train_step(x, y.astype(np.int32), np.arange(14, dtype=np.int64), seed)
            finals.append(m.get_weights())
    for a, b in zip(finals[0], finals[1]):  # native vs layer engine, seed 5
        np.testing.assert_array_equal(a, b)
    for a, b in zip(finals[0], finals[2]):  # seed 5 twice
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(finals[0], finals[4]))  # seed 6


@pytest.mark.parametrize("onehot", [False, True])
def test_native_probability_path_clips_saturated_outputs_at_keras_epsilon(onehot):
    """A sigmoid output saturated to exactly 0 and 1 in float32: the probability-path loss
    clips at Keras's epsilon 1e-7 (docs/keras_semantics.md#cross-entropy), so a wrong
    certain row costs about -log(1e-7) ~ 16.1 (-log(1e-5) ~ 11.5 with another epsilon); checked
    against the float64 reference on the native engine's evaluate and train step."""
    from cnnfast import reference as R

    m = cf.Sequential([layers.Input((3,)), layers.Dense(4, activation="sigmoid")])
    loss = "categorical_crossentropy" if onehot else "sparse_categorical_crossentropy"
    m.compile(cf.optimizers.SGD(0.0), loss)
    w = np.array([[200.0, -200.0, 200.0, -200.0]] * 3, np.float32)
    m.set_weights([w, np.zeros(4, np.float32)])
    x = np.ones((6, 3), np.float32)
    labels = np.array([0, 1, 2, 3, 1, 0])
    yy = cf.utils.to_categorical(labels, 4) if onehot else labels.astype(np.int32)
    p = m.predict(x, verbose=0)
    assert set(np.unique(p).tolist()) == {0.0, 1.0}  # saturated in float32
    xent = R.xent_probs_dense if onehot else R.xent_probs_sparse
    ref = xent(p, yy if onehot else labels, eps=1e-7)[0].mean()
    assert abs(ref - xent(p, yy if onehot else labels, eps=1e-5)[0].mean()) > 1.0
    engine = executor.for_model(m, 6, "train")
    assert isinstance(engine, executor.NativeEngine)
    got, _ = engine.evaluate(x, yy)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    got_step, _ = engine.train_step(x, yy, np.arange(6, dtype=np.int64), 0)
    np.testing.assert_allclose(got_step, ref, rtol=1e-6)
    np.testing.assert_allclose(m.evaluate(x, yy, verbose=0), ref, rtol=1e-6)


def test_layer_seed_is_the_nets_formula_modulo_2_64():
    """executor.layer_seed is the Net's function (csrc/net.h): seed ^ (golden * (i + 1)) in
    uint64, for seeds past 2**63 and products that wrap."""
    golden, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    for seed, i in ((0, 0), (2**63 + 5, 3), (mask, 1000), (12345, 2**40)):
        assert executor.layer_seed(seed, i) == seed ^ ((golden * (i + 1)) & mask)
    assert len({executor.layer_seed(7, i) for i in range(64)}) == 64


def test_engines_follow_a_sequential_changed_by_pop_and_add():
    """After Sequential.pop() + add() the cached engines are rebuilt: the new layer trains, the
    popped one is left alone (the Net used to keep pointing at the popped layer's arrays)."""
    x, y = data(n=20)
    x = x.reshape(20, -1)
    m = cf.Sequential([layers.Input((x.shape[1],)), layers.Dense(5, activation="relu"),
                       layers.Dense(4, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, verbose=0)
    old = m.pop()
    new = layers.Dense(4, activation="softmax")
    m.add(new)
    before_new, before_old = new.get_weights()[0].copy(), old.get_weights()[0].copy()
    m.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(new.get_weights()[0], before_new)
    np.testing.assert_array_equal(old.get_weights()[0], before_old)
    p = m.predict(x, verbose=0)
    m.use_native_executor = False
    np.testing.assert_array_equal(m.predict(x, verbose=0), p)


@pytest.mark.tf
@pytest.mark.parametrize("make", [
    lambda L: L.Softmax(), lambda L: L.Activation("softmax"), lambda L: L.Activation("log_softmax"),
    lambda L: L.Conv2D(6, 3, padding="same", activation="softmax")],
    ids=["Softmax", "Activation-softmax", "Activation-log_softmax", "Conv2D-softmax"])
def test_softmax_of_a_rank4_output_is_over_the_last_axis_on_both_engines(tf_keras, make,
                                                                          monkeypatch):
    """Keras normalises softmax over the last axis: so do both engines on a rank-4 output (the
    Net once normalised each sample's whole output, then declined these layers; it now runs
    them over the last axis, tests/test_net_layers_more.py)."""
    _, keras = tf_keras
    x = np.random.default_rng(0).random((4, 3, 4, 5), dtype=np.float32)
    km = keras.Sequential([keras.Input((3, 4, 5)), make(keras.layers)])
    cm = cf.Sequential([cf.Input((3, 4, 5)), make(cf.layers)])
    cm.set_weights(km.get_weights())
    want = km.predict(x, verbose=0)
    for engine in ("1", "0"):
        monkeypatch.setenv("CNNFAST_EXECUTOR", engine)
        assert isinstance(executor.for_model(cm, 4, "predict"), executor.NativeEngine) == \
            (engine == "1")
        np.testing.assert_allclose(cm.predict(x, verbose=0), want, rtol=0, atol=3e-7)
