"""The native whole-step Net (csrc/net.h) runs DepthwiseConv2D, SeparableConv2D, Conv2D with
dilation_rate > 1 and Dense on rank > 2 inputs (docs/training_step.md): the models run on the
Net, give the LayerEngine's bits (the same kernels in the same order), match tf.keras with
copied weights, and train identically on 1 and 2 threads."""
import numpy as np
import pytest
import tf_oracle
from tf_oracle import check

import cnnfast as cf
from cnnfast import executor, layers
from cnnfast.layers.base import reset_names

OpKind = cf.backend.OpKind

# name -> (input shape, layer specs (class, args, kwargs)); the Dense head is added by _build.
MODELS = {
    "depthwise": ((10, 10, 3), [
        ("DepthwiseConv2D", (3,), dict(depth_multiplier=2, activation="relu", padding="same")),
        ("DepthwiseConv2D", (3,), dict(strides=2, activation="tanh")),  # z kept (not ReLU)
        ("DepthwiseConv2D", ((2, 3),), dict(dilation_rate=2, use_bias=False, padding="same")),
    ]),
    "separable": ((11, 9, 2), [
        ("SeparableConv2D", (5, 3), dict(depth_multiplier=2, activation="relu",
                                         padding="same")),
        ("SeparableConv2D", (4, (3, 2)), dict(strides=2, activation="sigmoid")),
        ("SeparableConv2D", (3, 2), dict(dilation_rate=2, padding="same", use_bias=False,
                                         activation="relu")),
    ]),
    "dilated": ((12, 12, 2), [
        ("Conv2D", (4, 3), dict(dilation_rate=2, activation="relu", padding="same")),
        ("Conv2D", (3, (2, 3)), dict(dilation_rate=(1, 2), activation="elu")),
        ("Conv2D", (3, 3), dict(dilation_rate=3, use_bias=False, activation="relu")),
    ]),
    "dense4d": ((5, 4, 3), [
        ("Dense", (6,), dict(activation="relu")),  # (B, 5, 4, 3) -> (B, 5, 4, 6)
        ("Conv2D", (4, 2), dict(activation="relu")),
        ("Dense", (3,), dict(activation="tanh")),  # its pre-activation kept
        ("Reshape", ((12, 3),), {}),
        ("Dense", (2,), dict(use_bias=False)),  # on a rank-3 input
    ]),
}


def _build(lib, name, head_act="softmax", **extra):
    in_shape, spec = MODELS[name]
    spec = spec + [("Flatten", (), {}), ("Dense", (4,), dict(activation=head_act))]
    made = [getattr(lib.layers, c)(*a, **dict(k, **extra.get(c, {}))) for c, a, k in spec]
    return in_shape, made


def cf_model(name, seed=0, **extra):
    reset_names()
    cf.utils.set_random_seed(seed)
    in_shape, made = _build(cf, name, **extra)
    return cf.Sequential([layers.Input(in_shape)] + made)


def data(name, n=30, seed=1):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n,) + MODELS[name][0]).astype(np.float32)
    return x, r.integers(0, 4, n).astype(np.int32)


def fit(name, native, monkeypatch, opt=lambda: cf.optimizers.Adam(0.01), **extra):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1" if native else "0")
    m = cf_model(name, **extra)
    m.compile(opt(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    engine = executor.for_model(m, 7, "train")
    assert isinstance(engine, executor.NativeEngine if native else executor.LayerEngine)
    x, y = data(name)
    h = m.fit(x, y, batch_size=7, epochs=2, shuffle=False, verbose=0).history
    return m, h, m.predict(x, batch_size=9, verbose=0), m.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_model_runs_on_the_net(name):
    m = cf_model(name)
    m.compile("adam", "sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(m, 8, "train"), executor.NativeEngine)
    kinds = {executor._net_op(layer).kind for layer in m.layers}
    want = {"depthwise": OpKind.depthwise_conv2d, "separable": OpKind.separable_conv2d,
            "dilated": OpKind.conv2d_dilated, "dense4d": OpKind.dense}[name]
    assert want in kinds


@pytest.mark.parametrize("name", sorted(MODELS))
def test_net_equals_layer_engine(name, monkeypatch):
    """Two epochs of Adam: losses, accuracies, weights, predict and evaluate. Tolerance 0:
    both engines call the same kernels on the same batches in the same order."""
    m1, h1, p1, e1 = fit(name, True, monkeypatch)
    m2, h2, p2, e2 = fit(name, False, monkeypatch)
    for k in h1:
        np.testing.assert_array_equal(h1[k], h2[k], err_msg=k)
    assert h1["loss"][-1] != h1["loss"][0]  # it trained
    w1, w2 = m1.get_weights(), m2.get_weights()
    assert len(w1) == len(w2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(e1, e2)


@pytest.mark.parametrize("name", ["dilated", "dense4d"])
def test_regularized_kernels_on_the_net(name, monkeypatch):
    """kernel/bias regularizers of a dilated Conv2D and a rank-4 Dense: the Net adds their
    penalties and gradients per ParamSlot as the LayerEngine does (tolerance 0, as above)."""
    regs = dict(kernel_regularizer=cf.regularizers.L1L2(1e-3, 1e-2),
                bias_regularizer=cf.regularizers.L2(0.1))
    extra = {"Conv2D" if name == "dilated" else "Dense": regs}
    sgd = lambda: cf.optimizers.SGD(0.05, momentum=0.5)  # noqa: E731
    m1, h1, _, e1 = fit(name, True, monkeypatch, opt=sgd, **extra)
    m2, h2, _, e2 = fit(name, False, monkeypatch, opt=sgd, **extra)
    np.testing.assert_array_equal(h1["loss"], h2["loss"])
    np.testing.assert_array_equal(e1, e2)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the penalty is in the loss: without the regularizers the first epoch's loss is lower
    _, h0, _, _ = fit(name, True, monkeypatch, opt=sgd)
    assert h1["loss"][0] > h0["loss"][0]


@pytest.mark.parametrize("last", ["DepthwiseConv2D", "SeparableConv2D", "Conv2D", "Dense"])
def test_predict_of_a_feature_map_output(last, monkeypatch):
    """The op as the last one (its output is the model's, its pre-activation kept): predict on
    the Net equals the LayerEngine's."""
    reset_names()
    cf.utils.set_random_seed(2)
    spec = {"DepthwiseConv2D": layers.DepthwiseConv2D(3, depth_multiplier=3, activation="relu"),
            "SeparableConv2D": layers.SeparableConv2D(4, 3, strides=2, activation="relu"),
            "Conv2D": layers.Conv2D(3, 3, dilation_rate=2, activation="relu"),
            "Dense": layers.Dense(5, activation="relu")}[last]
    m = cf.Sequential([layers.Input((9, 8, 2)), spec])
    x = np.random.default_rng(0).normal(size=(13, 9, 8, 2)).astype(np.float32)
    assert isinstance(executor.for_model(m, 13, "predict"), executor.NativeEngine)
    p1 = m.predict(x, batch_size=5, verbose=0)
    monkeypatch.setenv("CNNFAST_EXECUTOR", "0")
    m._engine_cache.clear()
    assert isinstance(executor.for_model(m, 13, "predict"), executor.LayerEngine)
    p2 = m.predict(x, batch_size=5, verbose=0)
    assert (p1 == 0).any() and (p1 > 0).any()  # the ReLU did something
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_and_two_threads_train_the_same_bits(name, monkeypatch):
    runs = []
    old = cf.backend.get_num_threads()
    try:
        for n in (1, 2):
            cf.backend.set_num_threads(n)
            m, h, p, _ = fit(name, True, monkeypatch)
            runs.append((h["loss"], m.get_weights(), p))
    finally:
        cf.backend.set_num_threads(old)
    (l1, w1, p1), (l2, w2, p2) = runs
    np.testing.assert_array_equal(l1, l2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


# ---- the Op factories reject bad arrays with a clear message -------------------------------
def _arrays(*shape):
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def _dw(**kw):
    w, dw = _arrays(3, 3, 2, 2)
    b, db = _arrays(4)
    a = dict(weight=w, bias=b, dweight=dw, dbias=db, kernel=(3, 3), strides=(1, 1),
             padding="same", dilation=(1, 1), act=cf.backend.Activation.relu)
    a.update(kw)
    return cf.backend.Op.depthwise_conv2d(**a)


def _sep(**kw):
    w, dw = _arrays(3, 3, 2, 2)
    p, dp = _arrays(1, 1, 4, 5)
    b, db = _arrays(5)
    a = dict(weight=w, pointwise=p, bias=b, dweight=dw, dpointwise=dp, dbias=db, kernel=(3, 3),
             strides=(1, 1), padding="valid", dilation=(2, 2), act=cf.backend.Activation.linear)
    a.update(kw)
    return cf.backend.Op.separable_conv2d(**a)


def _dil(**kw):
    w, dw = _arrays(3, 3, 2, 4)
    b, db = _arrays(4)
    a = dict(weight=w, bias=b, dweight=dw, dbias=db, kernel=(3, 3), strides=(1, 1),
             padding="valid", dilation=(2, 2), act=cf.backend.Activation.relu)
    a.update(kw)
    return cf.backend.Op.conv2d_dilated(**a)


BAD_OPS = [
    (_dw, dict(bias=np.zeros(2, np.float32)), ValueError, "bias"),  # (DM,) instead of (C*DM,)
    (_dw, dict(dweight=np.zeros((3, 3, 2, 1), np.float32)), ValueError, "dweight"),
    (_dw, dict(kernel=(2, 3)), ValueError, "kernel"),
    (_dw, dict(dilation=(0, 1)), ValueError, "dilation"),
    (_dw, dict(weight=np.zeros((3, 3, 2, 2))), TypeError, "weight"),  # float64
    (_dw, dict(bias=None), ValueError, "bias and dbias"),
    (_sep, dict(pointwise=np.zeros((1, 1, 2, 5), np.float32)), ValueError, "pointwise"),
    (_sep, dict(dpointwise=np.zeros((1, 1, 4, 4), np.float32)), ValueError, "dpointwise"),
    (_sep, dict(bias=np.zeros(4, np.float32)), ValueError, "bias"),
    (_sep, dict(strides=(0, 1)), ValueError, "strides"),
    (_sep, dict(padding="full"), ValueError, "padding"),
    (_dil, dict(weight=np.zeros((3, 3, 2), np.float32)), ValueError, "weight"),
    (_dil, dict(dilation=(2, -1)), ValueError, "dilation"),
]


@pytest.mark.parametrize("make,kw,exc,word", BAD_OPS,
                         ids=[f"{m.__name__}-{next(iter(k))}-{i}"
                              for i, (m, k, _, _) in enumerate(BAD_OPS)])
def test_op_factories_reject_bad_arrays(make, kw, exc, word):
    make()  # the valid call
    with pytest.raises(exc, match=word):
        make(**kw)


def test_net_rejects_weights_that_do_not_fit_the_input():
    """The Net checks each op's weights against the geometry it derives from in_shape."""
    op = _dw()  # (3,3,2,2): two input channels
    head_w, head_dw = _arrays(8 * 8 * 4, 3)
    head = cf.backend.Op.dense(head_w, None, head_dw, None, cf.backend.Activation.linear)
    L = cf.backend.LossKind.sparse_logits
    cf.backend.Net([op, cf.backend.Op.flatten(), head], [8, 8, 2], 4, L, 3, False)
    with pytest.raises(ValueError, match="DepthwiseConv2D weights do not match"):
        cf.backend.Net([op, cf.backend.Op.flatten(), head], [8, 8, 3], 4, L, 3, False)
    with pytest.raises(ValueError, match=r"DepthwiseConv2D needs a \(H,W,C\) input"):
        cf.backend.Net([op, cf.backend.Op.flatten(), head], [8, 16], 4, L, 3, False)
    with pytest.raises(ValueError, match="SeparableConv2D weights do not match"):
        cf.backend.Net([_sep(), cf.backend.Op.flatten()], [8, 8, 3], 4, L, 180, False)
    with pytest.raises(ValueError, match="Conv2D weights do not match"):
        cf.backend.Net([_dil(), cf.backend.Op.flatten()], [8, 8, 1], 4, L, 64, False)


# ---- tf.keras parity with copied weights -----------------------------------------------------
@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_keras_with_copied_weights(tf_keras, name):
    """predict, then three SGD steps (fit, batch 8, no shuffle) on tf.keras and on the Net:
    losses and weights agree."""
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    in_shape, kl = _build(keras, name)
    km = keras.Sequential([keras.Input(in_shape)] + kl)
    cm = cf_model(name)
    cm.set_weights(km.get_weights())
    x, y = data(name, n=24)
    check(f"net {name} predict", cm.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5)
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
               jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert isinstance(executor.for_model(cm, 8, "train"), executor.NativeEngine)
    hk = km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    hc = cm.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record(f"net {name} fit loss (rel)", [rel], [0.0])
    assert rel <= 1e-5, (hc, hk)
    for cw, kw in zip(cm.get_weights(), km.get_weights()):
        # three SGD steps from the same weights: float32 summation-order differences only
        check(f"net {name} fit weights", cw, kw, atol=1e-5, rtol=1e-4)
