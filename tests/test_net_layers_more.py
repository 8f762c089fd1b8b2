"""The native whole-step Net (csrc/net_cpu.cpp) runs the layers issue #11 moved off the
LayerEngine: ReLU(max_value, negative_slope, threshold), LeakyReLU, ELU(alpha), PReLU (its alpha
trained through the ParamSlots), softmax / log_softmax over the last axis of rank > 2 outputs,
SpatialDropout2D, and activity regularizers mid-chain. For each: the model runs on the Net, the
Net and the LayerEngine agree bit for bit (same kernels in the same order: fit losses, weights,
evaluate, predict, model.losses), at 1 and 2 threads, and against tf.keras with copied weights.
docs/training_step.md#the-ops."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import backend, executor, layers, regularizers
from cnnfast.layers.base import reset_names


def act_model(L=layers, R=None):
    """Every activation layer with arguments the Net now runs, plus a rank-4 softmax."""
    return [
        L.Input((8, 8, 2)),
        L.Conv2D(6, 3, padding="same"),
        L.PReLU(shared_axes=[1, 2]),
        L.ReLU(max_value=2.5, threshold=0.1, negative_slope=0.1),
        L.MaxPooling2D(2),
        L.Conv2D(5, 3, activation="softmax"),  # softmax over the channels of each position
        L.ELU(0.5),
        L.Conv2D(4, 1),
        L.Activation("log_softmax"),
        L.Softmax(axis=-1),
        L.Flatten(),
        L.Dense(8),
        L.ReLU(negative_slope=0.5, max_value=3.0),
        L.PReLU(),
        L.LeakyReLU(0.3),  # its gradient at 0 is 0.3: PReLU's zero alpha still learns
        L.Dense(3, activation="softmax"),
    ]


def spatial_model(L=layers, R=None):
    return [
        L.Input((8, 8, 2)),
        L.Conv2D(6, 3, padding="same", activation="relu"),
        L.SpatialDropout2D(0.4),
        L.MaxPooling2D(2),
        L.Conv2D(4, 3, activation="tanh"),
        L.SpatialDropout2D(0.25),
        L.Flatten(),
        L.Dense(3, activation="softmax"),
    ]


def activity_model(L=layers, R=regularizers):
    """Activity penalties mid-chain: on a Conv2D whose ReLU the max-pool above would otherwise
    differentiate (the Net's fusion must let the penalty's gradient join first), on a
    linear Conv2D and on a hidden Dense, with l1, l2 and l1_l2."""
    return [
        L.Input((8, 8, 2)),
        L.Conv2D(6, 3, padding="same", activation="relu",
                 activity_regularizer=R.L1L2(0.01, 0.02)),
        L.MaxPooling2D(2),
        L.Conv2D(4, 3, activity_regularizer=R.L2(0.05)),
        L.Flatten(),
        L.Dense(8, activation="relu", activity_regularizer=R.L1(0.01)),
        L.Dense(3, activation="softmax"),
    ]


MODELS = {"activations": act_model, "spatial_dropout": spatial_model,
          "activity": activity_model}


def build(name, seed=3):
    reset_names()
    cf.utils.set_random_seed(seed)
    return cf.Sequential(MODELS[name]())


def data(n=40, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 8, 8, 2), dtype=np.float32)
    y = r.integers(0, 3, n)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 3, :, y[i] % 2] += 0.7
    return x, y


def run(name, native, opt=lambda: cf.optimizers.Adam(0.01), threads=None):
    x, y = data()
    m = build(name)
    m.use_native_executor = native
    m.compile(opt(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    engine = executor.for_model(m, 8, "train")
    assert isinstance(engine, executor.NativeEngine if native else executor.LayerEngine)
    old = backend.get_num_threads()
    try:
        if threads is not None:
            backend.set_num_threads(threads)
        h = m.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0,
                  validation_split=0.2).history
        ev = m.evaluate(x, y, batch_size=16, verbose=0)
        p = m.predict(x, batch_size=16, verbose=0)
    finally:
        backend.set_num_threads(old)
    return h, m.get_weights(), ev, p, [float(v) for v in m.losses]


# ---- (a) which engine runs ------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: layers.ReLU(max_value=2.5), lambda: layers.ReLU(negative_slope=0.5),
    lambda: layers.ReLU(threshold=0.7, negative_slope=0.2), lambda: layers.LeakyReLU(),
    lambda: layers.LeakyReLU(negative_slope=0.0), lambda: layers.ELU(0.5),
    lambda: layers.PReLU(), lambda: layers.PReLU(shared_axes=[1, 2]),
    lambda: layers.Softmax(), lambda: layers.Softmax(axis=3), lambda: layers.SpatialDropout2D(0.3),
    lambda: layers.Activation("softmax"), lambda: layers.Activation("log_softmax"),
    lambda: layers.Conv2D(3, 1, activation="softmax"),
    lambda: layers.Conv2D(3, 1, activity_regularizer="l2")],
    ids=["relu-max", "relu-slope", "relu-threshold-slope", "leaky", "leaky0", "elu", "prelu",
         "prelu-shared", "softmax", "softmax-axis3", "spatial", "act-softmax", "act-log_softmax",
         "conv-softmax", "conv-activity"])
def test_the_layer_runs_on_the_net(make):
    lay = make()
    m = cf.Sequential([layers.Input((4, 5, 6)), lay, layers.Flatten(), layers.Dense(3)])
    m.compile("sgd", cf.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert executor._net_op(lay) is not None
    for mode in ("train", "evaluate", "predict"):
        assert isinstance(executor.for_model(m, 4, mode), executor.NativeEngine), mode


@pytest.mark.parametrize("make", [
    lambda: layers.Softmax(axis=1), lambda: layers.Softmax(axis=-3),
    lambda: layers.SpatialDropout2D(0.3, seed=4), lambda: layers.SpatialDropout2D(1.0)],
    ids=["softmax-axis1", "softmax-axis-3", "spatial-seeded", "spatial-rate1"])
def test_what_the_net_still_declines(make):
    lay = make()
    m = cf.Sequential([layers.Input((4, 5, 6)), lay, layers.Flatten(), layers.Dense(3)])
    m.compile("sgd", cf.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert executor._net_op(lay) is None
    assert isinstance(executor.for_model(m, 4, "train"), executor.LayerEngine)


def test_an_activity_regularizer_on_the_logits_is_still_refused():
    m = cf.Sequential([layers.Input((4,)),
                       layers.Dense(3, activation="softmax", activity_regularizer="l2")])
    m.compile("adam", "sparse_categorical_crossentropy")
    assert executor._native(m, 4, "train") is None  # declined: the LayerEngine refuses it
    with pytest.raises(NotImplementedError, match="activity_regularizer on the output layer"):
        m.fit(np.zeros((4, 4), np.float32), np.zeros(4, int), verbose=0)


# ---- (b) Net vs LayerEngine, bit for bit -----------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_net_equals_layer_engine(name, opt):
    make = {"adam": lambda: cf.optimizers.Adam(0.01),
            "sgd": lambda: cf.optimizers.SGD(0.05, momentum=0.9)}[opt]
    h1, w1, e1, p1, l1 = run(name, True, make)
    h2, w2, e2, p2, l2 = run(name, False, make)
    # the same kernels in the same order: exact (tolerance 0)
    assert h1 == h2
    assert e1 == e2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    assert l1 == l2
    assert h1["loss"][-1] < h1["loss"][0] or name == "spatial_dropout"


def test_prelu_alpha_trains_through_the_net():
    x, y = data()
    m = build("activations")
    m.compile(cf.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)
    prelus = [lay for lay in m.layers if isinstance(lay, layers.PReLU)]
    assert len(prelus) == 2 and all(np.all(p.alpha == 0) for p in prelus)
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # both alphas (zeros initially) moved: their gradients reached the optimizer's slots
    for p in prelus:
        assert np.abs(p.alpha).max() > 1e-4, p.name


def test_activity_penalty_is_in_the_loss_and_the_layers_losses():
    """The Net's reported loss carries the activity penalties (Keras: regularizer(y) / B), and
    layer.losses holds them after a Net forward as after a LayerEngine one."""
    x, y = data(16)
    m = build("activity")
    m.compile(cf.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(m, 16, "evaluate"), executor.NativeEngine)
    with_pen = m.evaluate(x, y, batch_size=16, verbose=0)
    pens = [v for lay in m.layers for v in lay.losses]
    assert len(pens) == 3 and all(v > 0 for v in pens)
    plain = m.get_weights()
    ref = cf.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(6, 3, padding="same",
                         activation="relu")])
    ref.set_weights(plain[:2])
    y0 = ref.predict(x, verbose=0)
    want = regularizers.L1L2(0.01, 0.02)(y0) / np.float32(16)
    np.testing.assert_allclose(m.layers[0].losses[0], want, rtol=1e-6)
    m.use_native_executor = False
    assert m.evaluate(x, y, batch_size=16, verbose=0) == with_pen
    assert [v for lay in m.layers for v in lay.losses] == pens


# ---- (d) thread-count independence ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_net_is_the_same_at_one_and_two_threads(name):
    h1, w1, e1, p1, _ = run(name, True, threads=1)
    h2, w2, e2, p2, _ = run(name, True, threads=2)
    assert h1 == h2 and e1 == e2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


# ---- SpatialDropout2D's masks ----------------------------------------------------------------
def test_spatial_dropout_on_the_net_is_the_identity_outside_training():
    x, y = data(8)
    reset_names()
    cf.utils.set_random_seed(2)
    m = cf.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(5, 1, activation="relu"),
                       layers.SpatialDropout2D(0.5), layers.Flatten(), layers.Dense(3)])
    m.compile("sgd", cf.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(executor.for_model(m, 8, "predict"), executor.NativeEngine)
    without = cf.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(5, 1, activation="relu"),
                             layers.Flatten(), layers.Dense(3)])
    without.set_weights(m.get_weights())
    without.use_native_executor = False
    np.testing.assert_array_equal(m.predict(x, verbose=0), without.predict(x, verbose=0))


def test_spatial_dropout_masks_follow_the_step_seed_and_sample_offset():
    """The Net's SpatialDropout2D draws layer_seed(seed, i) at the rows' global position: a
    step on rows 4..8 with sample_offset=4 sees the masks the whole batch gives those rows."""
    x, y = data(8)

    def net_and_layer():
        reset_names()
        cf.utils.set_random_seed(1)
        m = cf.Sequential([layers.Input((8, 8, 2)), layers.Conv2D(5, 1),
                           layers.SpatialDropout2D(0.5), layers.Flatten(), layers.Dense(3)])
        m.compile(cf.optimizers.SGD(0.0),
                  cf.losses.SparseCategoricalCrossentropy(from_logits=True))
        return m, executor.for_model(m, 8, "train")

    m, eng = net_and_layer()
    seed = 987
    # the LayerEngine's forward of rows 4..8 as a shard at offset 4
    with executor._SampleOffset(4):
        (want,) = m._forward([x[4:]], True, seed)
    mask_want = m.layers[1]._mask.copy()
    # the Net: the gradient of the Dense kernel depends on the mask; compare it with the
    # LayerEngine's backward of the same shard
    eng.net.train_step(x, y.astype(np.int32), np.arange(4, 8), seed, 0.0, 1, sample_offset=4,
                       update=False)
    g_net = m.layers[-1].grads[0].copy()
    m.use_native_executor = False
    le = executor.layer_engine(m)
    with executor._SampleOffset(4):
        (y_pred,) = m._forward([x[4:]], True, seed)
    np.testing.assert_array_equal(m.layers[1]._mask, mask_want)
    _, grad = le._loss(y_pred, y[4:].astype(np.int32), True)
    m._backward(grad.reshape(y_pred.shape), le.plan.fused)
    np.testing.assert_array_equal(m.layers[-1].grads[0], g_net)
    assert 0 < mask_want.sum() < mask_want.size  # some channels dropped, some kept
    m._forward([x], True, seed)  # the whole batch: its rows 4..8 drew the shard's masks
    np.testing.assert_array_equal(m.layers[1]._mask[4:], mask_want)


# ---- bad input ----------------------------------------------------------------------------
def test_the_new_ops_check_their_arguments():
    Op = backend.Op
    with pytest.raises(ValueError, match="rate must be in"):
        Op.spatial_dropout2d(1.0)
    with pytest.raises(ValueError, match="l1 and l2 must be >= 0"):
        Op.flatten().with_activity(-1.0, 0.0)
    alpha = np.zeros(3, np.float32)
    bad = Op.prelu(alpha, np.zeros(3, np.float32), np.zeros(5, np.int32))
    with pytest.raises(ValueError, match="alpha index does not match"):
        backend.Net([bad, Op.flatten()], [2, 3], 4, backend.LossKind.sparse_logits, 6, False)
    out_of_range = Op.prelu(alpha, np.zeros(3, np.float32), np.full(6, 3, np.int32))
    with pytest.raises(ValueError, match="out of range"):
        backend.Net([out_of_range], [6], 4, backend.LossKind.sparse_logits, 6, False)
    with pytest.raises(ValueError, match="SpatialDropout2D needs"):
        backend.Net([Op.spatial_dropout2d(0.5)], [6], 4, backend.LossKind.sparse_logits, 6,
                    False)
    with pytest.raises(ValueError, match="dalpha"):
        Op.prelu(alpha, np.zeros(4, np.float32), np.zeros(3, np.int32))


# ---- (c) tf.keras parity with copied weights ---------------------------------------------------
def _keras_fit(tf_keras, name, epochs=3):
    """The cnnfast model on the Net and the tf.keras one with the same weights, fitted with
    SGD on the same batches; returns both histories, evaluations, predictions and weights."""
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    km = keras.Sequential(MODELS[name](keras.layers, keras.regularizers))
    cm = build(name)
    # PReLU's alpha starts at zeros in both: give it values so the negative slope matters
    for lay in km.layers:
        if isinstance(lay, keras.layers.PReLU):
            lay.set_weights([np.full(lay.alpha.shape, 0.25, np.float32)])
    cm.set_weights(km.get_weights())
    x, y = data(48)
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    assert isinstance(executor.for_model(cm, 16, "train"), executor.NativeEngine)
    hk = km.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                validation_data=(x[:32], y[:32])).history
    hc = cm.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                validation_data=(x[:32], y[:32])).history
    return (hk, hc, km.evaluate(x, y, verbose=0), cm.evaluate(x, y, verbose=0),
            km.predict(x, verbose=0), cm.predict(x, verbose=0), km.get_weights(),
            cm.get_weights())


# A 3-epoch SGD run with copied weights (the run-level tolerance of test_regularizers.py's
# parity test): the kernels differ from TF's by reduction order and exp ulps only.
RUN_RTOL = 1e-5


@pytest.mark.tf
@pytest.mark.parametrize("name", ["activations", "activity"])
def test_fit_matches_keras(tf_keras, name):
    hk, hc, ek, ec, pk, pc, wk, wc = _keras_fit(tf_keras, name)
    for key in ("loss", "val_loss"):
        rel = np.max(np.abs(np.array(hc[key]) - hk[key]) / np.abs(hk[key]))
        tf_oracle.record(f"net {name} fit {key} (rel)", [rel], [0.0])
        assert rel <= RUN_RTOL, (key, hc[key], hk[key])
    np.testing.assert_allclose(ec[0], ek[0], rtol=RUN_RTOL)
    np.testing.assert_allclose(pc, pk, rtol=0, atol=1e-5)
    for a, b in zip(wc, wk):
        err = float(np.max(np.abs(a.astype(np.float64) - b)) / max(np.max(np.abs(b)), 1e-6))
        tf_oracle.record(f"net {name} fit weights (rel)", [err], [0.0])
        assert err <= RUN_RTOL, err


@pytest.mark.tf
def test_spatial_dropout_inference_matches_keras(tf_keras):
    """SpatialDropout2D is the identity outside training: evaluate and predict on the Net equal
    tf.keras's with copied weights (training masks are the LayerEngine's, tested above)."""
    tf, keras = tf_keras
    keras.utils.set_random_seed(0)
    km = keras.Sequential(spatial_model(keras.layers))
    cm = build("spatial_dropout")
    cm.set_weights(km.get_weights())
    x, y = data(32)
    km.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=False)
    cm.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(cm, 32, "evaluate"), executor.NativeEngine)
    np.testing.assert_allclose(cm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=0,
                               atol=2e-6)
    np.testing.assert_allclose(cm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0),
                               rtol=1e-5)
