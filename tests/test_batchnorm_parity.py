"""BatchNormalization against tf.keras (the oracle) with copied weights: one layer's forward
in training and inference mode and its moving-stat update, its gradients, and one fit epoch
of a CNN with BN after each conv and of an MLP with Dense -> BN -> ReLU (history and every
final weight, the moving statistics included). docs/keras_semantics.md#batchnormalization."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast.layers.base import reset_names

pytestmark = pytest.mark.tf


def check(op, got, want, atol=1e-5, rtol=1e-4):
    """Record the difference (printed at the end of the run) and assert it is small."""
    tf_oracle.record(op, got, want)
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=atol, rtol=rtol, err_msg=op)


def bn_weights(rng, C):
    return [(rng.standard_normal(C) * 0.3 + 1).astype(np.float32),
            (rng.standard_normal(C) * 0.3).astype(np.float32),
            (rng.standard_normal(C) * 0.2).astype(np.float32),
            (np.abs(rng.standard_normal(C)) + 0.5).astype(np.float32)]


SHAPES = [(4, 7, 6, 5), (32, 16), (3, 1, 1, 2), (2, 11, 13, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_forward_and_moving_stats_match_keras(tf_keras, shape, training):
    tf, keras = tf_keras
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2 + 0.7).astype(np.float32)
    w = bn_weights(rng, shape[-1])
    kl = keras.layers.BatchNormalization(momentum=0.9)
    kl.build(shape)
    kl.set_weights(w)
    cl = cf.layers.BatchNormalization(momentum=0.9)
    cl._ensure_built((None,) + shape[1:])
    cl.set_weights(w)
    want = kl(x, training=training).numpy()
    got = cl(x, training=training)
    check(f"batchnorm fwd {'training' if training else 'inference'}", got, want)
    for name, a, b in zip(("moving_mean", "moving_variance"), cl.get_weights()[2:],
                          kl.get_weights()[2:]):
        check(f"batchnorm {name}", a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_gradients_match_keras(tf_keras, shape, training):
    tf, keras = tf_keras
    rng = np.random.default_rng(3 + sum(shape))
    x = (rng.standard_normal(shape) * 1.5 - 0.4).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    w = bn_weights(rng, shape[-1])
    kl = keras.layers.BatchNormalization()
    kl.build(shape)
    kl.set_weights(w)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = kl(xt, training=training)
        loss = tf.reduce_sum(y * dy)
    kdx, kdg, kdb = tape.gradient(loss, [xt, kl.gamma, kl.beta])
    cl = cf.layers.BatchNormalization()
    cl._ensure_built((None,) + shape[1:])
    cl.set_weights(w)
    cl.forward(x, training)
    dx = cl.backward(dy)
    mode = "training" if training else "inference"
    check(f"batchnorm bwd dinp {mode}", dx, kdx.numpy())
    # dgamma/dbeta sum over up to 168 rows in another order than TF's: atol 1e-4 as for the
    # conv/dense bias gradients (docs/keras_semantics.md#tolerances).
    check(f"batchnorm bwd dgamma {mode}", cl.grads[0], kdg.numpy(), atol=1e-4)
    check(f"batchnorm bwd dbeta {mode}", cl.grads[1], kdb.numpy(), atol=1e-4)


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = np.argmax(x[:, :20, :, 0].sum(axis=2).reshape(n, 10, 2).sum(axis=2), axis=1)
    for i in range(n):
        x[i, 2 * y[i]:2 * y[i] + 2] += 0.5
    return np.clip(x, 0, 1), y.astype(np.int64)


CNN_BN = [("Input", (), {"shape": (28, 28, 1)}),
          ("Conv2D", (32, 3), {"activation": "relu"}),
          ("BatchNormalization", (), {}),
          ("MaxPooling2D", (2,), {}),
          ("Conv2D", (64, 3), {}),
          ("BatchNormalization", (), {}),
          ("Activation", ("relu",), {}),
          ("MaxPooling2D", (2,), {}),
          ("Flatten", (), {}),
          ("Dense", (128,), {"activation": "relu"}),
          ("Dense", (10,), {"activation": "softmax"})]
MLP_BN = [("Input", (), {"shape": (28, 28, 1)}),
          ("Flatten", (), {}),
          ("Dense", (128,), {}),
          ("BatchNormalization", (), {}),
          ("Activation", ("relu",), {}),
          ("Dense", (10,), {"activation": "softmax"})]
# Free-running tolerances, measured over one epoch of 10 steps (batch 32, Adam(1e-3)); see
# the module report for the figures. BN divides by the batch's standard deviation, so TF's
# and cnnfast's different summation orders (conv GEMM, reductions) move the normalised
# activations by ~1e-6 relative per step; Adam then turns near-zero gradients into O(lr)
# steps as in tests/test_parity_models.py (FREE_RUN["adam"]).
# Measured epoch-loss differences on cnn_bn: 1.3e-6 with the direct conv, 1.2e-5 with the
# Winograd forward pass of its second conv (the default since issue #13; docs/winograd.md). The
# per-step losses agree within 5e-7 for 4 steps either way, then the NOISE parameters below take
# their +-lr Adam steps in rounding-given directions, differently per algorithm; cnnfast's own
# direct and Winograd runs from one fresh init stay within 3e-7 of each other over 10 steps.
LOSS_RTOL = 3e-5
WEIGHT_TOL = 2e-2    # max |cw - kw| / max |kw| per array (test_parity_models.FREE_RUN["adam"])
# Moving statistics, relative to each array's largest entry. A BN whose input carries one of
# the NOISE offsets below sees that offset in its batch mean, and its moving mean takes 1 % of
# it per step: measured 1.9e-3 on the CNN (9.4e-6 on the MLP).
STAT_TOL = 5e-3


# Per-channel offsets whose effect a later BN removes: their gradient is zero in exact
# arithmetic (BN subtracts the batch mean, and max-pooling, a VALID conv and Flatten carry a
# per-channel shift through as a per-channel shift), or near zero through a ReLU that is active
# on (almost) the whole channel. Their float gradient is rounding noise, and Adam moves each by
# up to lr per step in a noise-given direction, differently in each engine; they are held to
# that bound, |dw| <= steps * lr, absolutely. (Measured: the first conv bias under
# Conv2D(relu) -> BN differs by 8.6e-2 of its scale and the first BN's beta by 1.3 of its
# scale, both about one Adam step; every other weight agrees far better.)
# (layer index in cm.layers, weight slot)
NOISE = {"cnn_bn": {(0, 1), (1, 1), (3, 1)},   # conv2d bias, batch_normalization beta,
                                               # conv2d_1 bias
         "mlp_bn": {(1, 1)}}                   # dense bias


@pytest.mark.parametrize("spec", [CNN_BN, MLP_BN], ids=["cnn_bn", "mlp_bn"])
def test_batchnorm_fit_epoch_matches_keras(tf_keras, spec):
    tf, keras = tf_keras
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    reset_names()
    km = keras.Sequential([getattr(keras.layers, c)(*a, **k) for c, a, k in spec[1:]])
    km.build((None, 28, 28, 1))
    cm = cf.Sequential([getattr(cf.layers, c)(*a, **k) for c, a, k in spec])
    cm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], jit_compile=False)
    cm.compile(optimizer=cf.optimizers.Adam(), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
    x, y = _data(320 + 64)
    xt, yt, xv, yv = x[:320], y[:320], x[320:], y[320:]
    hk = km.fit(xt, yt, batch_size=32, epochs=1, shuffle=False, verbose=0,
                validation_data=(xv, yv)).history
    hc = cm.fit(xt, yt, batch_size=32, epochs=1, shuffle=False, verbose=0,
                validation_data=(xv, yv)).history
    name = "cnn_bn" if spec is CNN_BN else "mlp_bn"
    rel = abs(hc["loss"][0] - hk["loss"][0]) / abs(hk["loss"][0])
    tf_oracle.record(f"{name} fit epoch loss (rel)", [rel], [0.0])
    assert rel <= LOSS_RTOL, (hc, hk)
    assert abs(hc["accuracy"][0] - hk["accuracy"][0]) <= 1.5 / 320   # at most one flip
    # val_loss is computed on the end weights, which carry the free-running drift.
    rel_v = abs(hc["val_loss"][0] - hk["val_loss"][0]) / abs(hk["val_loss"][0])
    tf_oracle.record(f"{name} fit val_loss (rel)", [rel_v], [0.0])
    assert rel_v <= 2e-3, (hc, hk)
    layers = cm.layers
    for i, layer in enumerate(layers):
        for slot, (cw, kw) in enumerate(zip(layer.get_weights(),
                                            km.get_layer(layer.name).get_weights())):
            err = float(np.max(np.abs(cw.astype(np.float64) - kw)) / max(np.max(np.abs(kw)),
                                                                         1e-12))
            stat = isinstance(layer, cf.layers.BatchNormalization) and slot >= 2
            noise = (i, slot) in NOISE[name]
            what = "moving stats" if stat else "noise bias" if noise else "weights"
            if noise:
                err = float(np.max(np.abs(cw - kw)))
                tf_oracle.record(f"{name} fit {what} (abs)", [err], [0.0])
                assert err <= 10 * 1e-3 * 1.01, (layer.name, err)
                continue
            tf_oracle.record(f"{name} fit {what} (rel)", [err], [0.0])
            assert err <= (STAT_TOL if stat else WEIGHT_TOL), (layer.name, slot, err)


def test_batchnorm_summary_matches_keras(tf_keras):
    tf, keras = tf_keras
    keras.backend.clear_session()
    reset_names()
    km = keras.Sequential([getattr(keras.layers, c)(*a, **k) for c, a, k in CNN_BN[1:]])
    km.build((None, 28, 28, 1))
    cm = cf.Sequential([getattr(cf.layers, c)(*a, **k) for c, a, k in CNN_BN])
    klines, clines = [], []
    km.summary(print_fn=lambda s, line_break=None: klines.append(s))
    cm.summary(print_fn=clines.append)
    ktext = "\n".join(klines)
    ctext = clines[0]
    # Keras names the model "sequential" plus a counter that depends on the session.
    strip = lambda t: "\n".join(t.splitlines()[1:]).strip()  # noqa: E731
    assert strip(ctext) == strip(ktext), f"cnnfast:\n{ctext}\nkeras:\n{ktext}"
