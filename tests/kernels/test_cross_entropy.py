"""cross_entropy: _core.cross_entropy, one binding for the four kernels (from logits or from
probabilities, sparse int32 labels or dense float32 targets).

In order: against the NumPy reference (loss and gradient, with 1 and 2 threads), the binding's
choice of kernel and its batch mean (the Net's), against tf.keras (marked tf), binding errors.

Cached-logits finding (docs/keras_semantics.md#cached-logits), verified by
test_cached_logits_rule_in_fit:
in graph-mode ``fit``/``train_on_batch`` (the default, run_eagerly=False) Keras 3.15 on the TF
backend computes SparseCategoricalCrossentropy() on ``Dense(10, activation='softmax')`` from the
cached logits: a sample whose true-class probability underflows gives loss > 16.118 (it equals
logsumexp(z) - z[y] of _core.cross_entropy from logits), which the clipped probability path cannot
produce. Eagerly (test_cached_logits_eager) the EagerTensor returned by
keras.activations.softmax also carries ``_keras_logits``, so the logits path applies there too;
a softmax computed elsewhere and fed as a plain tensor takes the clipped probability path
(test_xent_probability_path_*), matching _core.cross_entropy(..., from_logits=False).

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import numpy as np
import pytest
from helpers import assert_close, core_xent, rand, readonly, z
from tf_oracle import check

import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference, loss and gradient ----------------------------------------------------------

LOSS_REFS = {"softmax_xent_sparse": R.softmax_xent_sparse,
             "softmax_xent_dense": R.softmax_xent_dense,
             "xent_probs_sparse": R.xent_probs_sparse, "xent_probs_dense": R.xent_probs_dense}


def loss_inputs(kind, rng, B, K):
    """(first input, labels or targets) with the hard cases in the first rows."""
    if kind.startswith("softmax"):
        a = rand(rng, (B, K), 4.0)
        a[0, :] = -100.0
        a[0, 0] = 100.0                        # extreme logits: p_y ~ exp(-200) or ~1
        if B > 1:
            a[1, :] = 100.0
    else:
        a = rng.random((B, K)).astype(np.float32) + 0.05
        a /= a.sum(axis=1, keepdims=True)
        a[0, :] = 1e-9                          # probs below eps = 1e-7 hit the clip
        a[0, -1] = 1.0 - (K - 1) * 1e-9
        if B > 1 and K >= 4:
            # Two more clipped cells, while the rest of the row stays well inside the clip
            # range: a cell within fp32 rounding of 1 - eps may fall on either side of it.
            a[1, 0] = 3e-8
            a[1, 1] = 0.0
    labels = rng.integers(0, K, size=B).astype(np.int32)
    labels[0] = 1 % K                           # row 0's true class is a clipped/-100 cell
    if kind.endswith("sparse"):
        return a, labels
    t = rng.random((B, K)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    t[0] = 0.0
    t[0, labels[0]] = 1.0
    return a, t


@pytest.mark.parametrize("kind", list(LOSS_REFS))
@pytest.mark.parametrize("B,K", [(1, 1), (1, 10), (7, 3), (32, 10), (256, 200)])
def test_cross_entropy(threads, kind, B, K):
    rng = np.random.default_rng(B * K)
    a, y = loss_inputs(kind, rng, B, K)
    scale = np.float32(1.0 / B)
    loss, grad = core_xent(kind, a, y, scale)
    rloss, rgrad = LOSS_REFS[kind](a, y)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # Losses reach -log(1e-7) ~ 16 (probs) or ~200 (logits): relative tolerance carries them.
    assert_close(loss, rloss, name="loss", op=f"{kind} loss")
    # The probability-path gradients contain 1/q terms up to 1/1e-7 = 1e7 (rtol covers them).
    assert_close(grad, rgrad * float(scale), name="grad", op=f"{kind} grad")


@pytest.mark.parametrize("kind", list(LOSS_REFS))
def test_cross_entropy_without_grad(kind):
    rng = np.random.default_rng(1)
    a, y = loss_inputs(kind, rng, 5, 4)
    loss = np.empty(5, np.float32)
    _core.cross_entropy(loss, None, a, y, kind.startswith("softmax_xent"), 1e-7, 1.0)
    assert_close(loss, LOSS_REFS[kind](a, y)[0], name="loss", op=f"{kind} loss")


def test_cross_entropy_clip_ceiling_and_zero_grad():
    p = np.array([[1e-9, 1.0 - 1e-9]], np.float32)
    loss, grad = core_xent("xent_probs_sparse", p, np.array([0], np.int32), 1.0)
    # Clipped true class: loss = log(sum q) - log(eps) ~ 16.118, no gradient through it.
    assert_close(loss, [np.log((1e-7 + (1 - 1e-7)) / 1e-7)], name="loss")
    assert grad[0, 0] == 0.0
    z = np.array([[-100.0, 100.0]], np.float32)
    loss, _ = core_xent("softmax_xent_sparse", z, np.array([0], np.int32), 1.0)
    assert_close(loss, [200.0], name="loss")  # the logits path is not clipped (> 16.118)


# ---- one binding: sparse or dense by the labels' dtype; the batch mean ---------------------------

f32 = np.float32


def xent_inputs(rng, b=37, k=5):
    logits = rng.normal(size=(b, k)).astype(f32) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, k, b).astype(np.int32)
    return logits, probs.astype(f32), labels, np.eye(k, dtype=f32)[labels]


def sequential_mean(loss):
    total = f32(0)
    for v in loss:
        total = f32(total + v)
    return f32(total / f32(loss.size))


@pytest.mark.parametrize("from_logits", [True, False])
def test_cross_entropy_picks_sparse_or_dense_from_the_labels(from_logits):
    logits, probs, labels, onehot = xent_inputs(np.random.default_rng(3))
    pred = logits if from_logits else probs
    b, k = pred.shape
    ls, gs = np.empty(b, f32), np.empty((b, k), f32)
    ld, gd = np.empty(b, f32), np.empty((b, k), f32)
    ms = _core.cross_entropy(ls, gs, pred, labels, from_logits, 1e-7, 1.0 / b)
    md = _core.cross_entropy(ld, gd, pred, onehot, from_logits, 1e-7, 1.0 / b)
    # One-hot dense targets and their class indices are the same loss (up to the dense
    # kernel's sum over k), so the dtype, not the call, picked the kernel.
    np.testing.assert_allclose(ls, ld, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gs, gd, rtol=1e-6, atol=1e-7)
    assert isinstance(ms, float) and isinstance(md, float)
    # Soft targets only make sense for the dense kernel: its loss differs from the sparse one.
    soft = np.full((b, k), 1.0 / k, f32)
    lsoft = np.empty(b, f32)
    _core.cross_entropy(lsoft, None, pred, soft, from_logits)
    assert not np.allclose(lsoft, ls)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_cross_entropy_returns_the_nets_mean(from_logits, sparse):
    logits, probs, labels, onehot = xent_inputs(np.random.default_rng(4), b=1000)
    pred, y = (logits if from_logits else probs), (labels if sparse else onehot)
    loss = np.empty(pred.shape[0], f32)
    mean = _core.cross_entropy(loss, None, pred, y, from_logits)
    assert f32(mean) == sequential_mean(loss)  # bit-identical: float32 sequential sum / B
    assert mean == pytest.approx(float(loss.astype(np.float64).mean()), rel=1e-5)


def test_cross_entropy_mean_equals_the_nets_loss():
    """A Net made of one Activation('softmax') op reports, for the probabilities it computes,
    the same loss as cross_entropy on those probabilities, bit for bit."""
    logits, _, labels, onehot = xent_inputs(np.random.default_rng(5), b=333)
    b, k = logits.shape
    for loss_kind, y in ((_core.LossKind.sparse_probs, labels),
                         (_core.LossKind.dense_probs, onehot)):
        net = _core.Net([_core.Op.activation(_core.Activation.softmax)], [k], b, loss_kind, k,
                        False)
        net_loss, _ = net.evaluate(logits, y)
        probs = np.empty((b, k), f32)
        net.predict(logits, probs)
        mean = _core.cross_entropy(np.empty(b, f32), None, probs, y, False)
        assert f32(mean) == f32(net_loss)
    for loss_kind, y in ((_core.LossKind.sparse_logits, labels),
                         (_core.LossKind.dense_logits, onehot)):
        net = _core.Net([_core.Op.activation(_core.Activation.linear)], [k], b, loss_kind, k,
                        False)
        net_loss, _ = net.evaluate(logits, y)
        mean = _core.cross_entropy(np.empty(b, f32), None, logits, y, True)
        assert f32(mean) == f32(net_loss)


def test_losses_per_sample_returns_the_mean():
    from cnnfast import losses

    logits, _, labels, _ = xent_inputs(np.random.default_rng(6))
    loss = np.empty(labels.size, f32)
    mean = losses.SparseCategoricalCrossentropy().per_sample(labels, logits, True, loss, None, 1.0)
    assert f32(mean) == sequential_mean(loss)


# ---- tf.keras parity -----------------------------------------------------------------------------

LOGIT_THRESHOLD = 16.118  # -log(1e-7): the most the clipped probability path can return


def _core_sparse(logits, labels):
    b, k = logits.shape
    loss, d = np.empty(b, np.float32), np.empty((b, k), np.float32)
    _core.cross_entropy(loss, d, logits, labels.astype(np.int32), True, 1e-7, 1.0 / b)
    return loss, d


def _saturated_batch(rng, b=8, k=10):
    """Logits where samples 0 and 1 have a true-class probability far below 1e-7."""
    z = rand(rng, (b, k), 2.0)
    y = rng.integers(0, k, b).astype(np.int32)
    z[0, y[0]] = z[0].max() - 30.0   # p_y ~ e^-30 ~ 1e-13
    z[1, y[1]] = z[1].max() - 25.0
    return z, y


@pytest.mark.tf
def test_cached_logits_rule_in_fit(tf_keras):
    """Graph-mode train_on_batch and fit (and run_eagerly=True) compute SCCE on Dense(softmax)
    from the cached logits."""
    tf, keras = tf_keras
    rng = np.random.default_rng(11)
    b, k = 8, 10
    z_target, y = _saturated_batch(rng, b, k)
    # One-hot inputs pick one row of W each, so the logits are exactly z_target (no rounding).
    d = b
    x = np.eye(b, dtype=np.float32)
    w, bias = z_target.copy(), np.zeros(k, np.float32)
    inp = keras.Input((d,))
    model = keras.Model(inp, keras.layers.Dense(k, activation="softmax")(inp))
    model.layers[-1].set_weights([w, bias])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(), jit_compile=False)
    assert not model.run_eagerly
    loss_tob = float(model.train_on_batch(x, y))
    hist = model.fit(x, y, batch_size=b, epochs=1, shuffle=False, verbose=0)
    loss_fit = hist.history["loss"][0]
    z = x @ w + bias  # exact: one nonzero per row
    per_sample, _ = _core_sparse(z.astype(np.float32), y)
    assert per_sample[0] > LOGIT_THRESHOLD and per_sample[1] > LOGIT_THRESHOLD
    # The probability path would cap these at 16.118; the batch mean shows which path ran.
    capped = np.minimum(per_sample, LOGIT_THRESHOLD).mean()
    check("sparse xent cached-logits (fit)", np.float32(loss_tob), per_sample.mean())
    check("sparse xent cached-logits (fit)", np.float32(loss_fit), per_sample.mean())
    assert abs(loss_tob - capped) > 1.0, "Keras used the clipped probability path"
    # run_eagerly=True (docs/keras_semantics.md#cached-logits): the eager output keeps the logits.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(), run_eagerly=True)
    check("sparse xent cached-logits (eager)", np.float32(model.train_on_batch(x, y)),
          per_sample.mean())


@pytest.mark.tf
def test_cached_logits_eager(tf_keras):
    """The once-uncertain case of docs/keras_semantics.md#cached-logits: the loss called eagerly
    on the eager output of keras.activations.softmax. Pins what Keras 3.15 on TF 2.21 does: the
    logits path."""
    tf, keras = tf_keras
    rng = np.random.default_rng(12)
    z, y = _saturated_batch(rng)
    probs = keras.activations.softmax(tf.constant(z))
    eager = float(keras.losses.SparseCategoricalCrossentropy()(tf.constant(y), probs))
    per_sample, _ = _core_sparse(z, y)
    # Finding (Keras 3.15 / TF 2.21): the EagerTensor accepts the attribute, so the eager call
    # uses the cached logits too; the probability path would give a mean below the logits one.
    assert hasattr(probs, "_keras_logits")
    check("sparse xent cached-logits (eager)", np.float32(eager), per_sample.mean())


@pytest.mark.tf
@pytest.mark.parametrize("b", [1, 7, 32])
def test_sparse_xent_from_logits(tf_keras, b):
    tf, keras = tf_keras
    rng = np.random.default_rng(b)
    z, y = _saturated_batch(rng, b=max(b, 2))
    z, y = z[:b], y[:b]
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        l_tf = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(tf.constant(y), zt)
    dz_tf = tape.gradient(l_tf, zt).numpy()
    loss, dz = _core_sparse(z, y)
    check("sparse xent from_logits loss", np.float32(loss.mean()), l_tf.numpy())
    check("sparse xent from_logits dlogits", dz, dz_tf)
    # Graph mode through a softmax op (the cached-logits rule) gives the same numbers.
    @tf.function
    def via_softmax(zt):
        with tf.GradientTape() as tape:
            tape.watch(zt)
            p = keras.layers.Activation("softmax")(zt)
            loss = keras.losses.SparseCategoricalCrossentropy()(tf.constant(y), p)
        return loss, tape.gradient(loss, zt)
    l2, dz2 = via_softmax(zt)
    check("sparse xent cached-logits (graph)", np.float32(loss.mean()), l2.numpy())
    check("sparse xent cached-logits (graph) dlogits", dz, dz2.numpy())


@pytest.mark.tf
def test_categorical_xent_one_hot(tf_keras):
    tf, keras = tf_keras
    rng = np.random.default_rng(21)
    z, y = _saturated_batch(rng, b=9)
    t = np.eye(10, dtype=np.float32)[y]
    zt = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(zt)
        l_tf = keras.losses.CategoricalCrossentropy(from_logits=True)(tf.constant(t), zt)
    dz_tf = tape.gradient(l_tf, zt).numpy()
    b = z.shape[0]
    loss, dz = np.empty(b, np.float32), np.empty_like(z)
    _core.cross_entropy(loss, dz, z, t, True, 1e-7, 1.0 / b)
    check("categorical xent one-hot loss", np.float32(loss.mean()), l_tf.numpy())
    check("categorical xent one-hot dlogits", dz, dz_tf)
    sparse, _ = _core_sparse(z, y)
    np.testing.assert_allclose(loss, sparse, rtol=1e-6, atol=1e-6)


def _probs_batch(rng, b=10, k=10):
    """Rows of probabilities, several with entries below 1e-7, above 1-1e-7, or exactly on the
    clip bounds, plus an unnormalised row (the sparse path re-normalises after clipping)."""
    p = rng.random((b, k)).astype(np.float32) + 0.01
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, k, b).astype(np.int32)
    p[0] = 1e-9
    p[0, y[0]] = 1.0 - 9e-9          # > 1 - 1e-7: clipped high
    p[1] = (1 - 1e-10) / (k - 1)
    p[1, y[1]] = 1e-10               # true class clipped low: loss at the 16.118 ceiling
    p[2, (y[2] + 1) % k] = np.float32(1e-7)  # exactly on the low bound (gradient passes)
    p[3] *= 1.5                      # unnormalised
    return p.astype(np.float32), y


@pytest.mark.tf
def test_xent_probability_path_sparse(tf_keras):
    tf, keras = tf_keras
    rng = np.random.default_rng(31)
    p, y = _probs_batch(rng)
    pt = tf.constant(p)  # a plain tensor: no cached logits, so from_logits=False clips
    with tf.GradientTape() as tape:
        tape.watch(pt)
        l_tf = keras.losses.SparseCategoricalCrossentropy()(tf.constant(y), pt)
    dp_tf = tape.gradient(l_tf, pt).numpy()
    b, k = p.shape
    loss, dp = np.empty(b, np.float32), np.empty_like(p)
    _core.cross_entropy(loss, dp, p, y, False, 1e-7, 1.0 / b)
    check("sparse xent probs loss", np.float32(loss.mean()), l_tf.numpy())
    # Gradient wrt probabilities: 1/p terms reach ~1e6/B where p is tiny; compare relatively.
    check("sparse xent probs dprobs", dp, dp_tf, atol=1e-5, rtol=1e-4)
    assert loss[1] == pytest.approx(LOGIT_THRESHOLD, abs=1e-3)


@pytest.mark.tf
def test_xent_probability_path_dense(tf_keras):
    tf, keras = tf_keras
    rng = np.random.default_rng(32)
    p, y = _probs_batch(rng)
    t = np.eye(10, dtype=np.float32)[y]
    t[4] = 0.1  # soft targets too
    pt = tf.constant(p)
    with tf.GradientTape() as tape:
        tape.watch(pt)
        l_tf = keras.losses.CategoricalCrossentropy()(tf.constant(t), pt)
    dp_tf = tape.gradient(l_tf, pt).numpy()
    b, k = p.shape
    loss, dp = np.empty(b, np.float32), np.empty_like(p)
    _core.cross_entropy(loss, dp, p, t, False, 1e-7, 1.0 / b)
    check("categorical xent probs loss", np.float32(loss.mean()), l_tf.numpy())
    check("categorical xent probs dprobs", dp, dp_tf, atol=1e-5, rtol=1e-4)


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "xent_labels_int64": (TypeError, "labels must have dtype int32",
                          lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                      np.zeros(2, np.int64), True, 1e-7, 1.0)),
    "xent_labels_shape": (ValueError, r"labels has shape \(3,\), expected \(2,\)",
                          lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                      np.zeros(3, np.int32), True, 1e-7, 1.0)),
    "xent_targets_shape": (ValueError, r"labels has shape \(2, 4\), expected \(2, 3\)",
                           lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2, 4), False, 1e-7,
                                                       1.0)),
    "label_too_large": (ValueError, r"label 3 at row 1 is outside \[0, 3\)",
                        lambda: _core.cross_entropy(z(2), z(2, 3), z(2, 3),
                                                    np.array([0, 3], np.int32), True, 1e-7, 1.0)),
    "label_negative": (ValueError, r"label -1 at row 0",
                       lambda: _core.cross_entropy(z(2), None, np.full((2, 3), 0.3, f32),
                                                   np.array([-1, 0], np.int32), False, 1e-7, 1.0)),
    "readonly_loss": (ValueError, "loss must be writable",
                      lambda: _core.cross_entropy(readonly(z(2)), None, z(2, 3), z(2, 3), True,
                                                  1e-7, 1.0)),
    "xent_no_classes": (ValueError, "bad sizes",
                        lambda: _core.cross_entropy(z(2), None, z(2, 0), z(2, 0), True, 1e-7,
                                                    1.0)),
    "labels_int64": (TypeError, r"labels must have dtype int32 \(class indices, \(B,\)\) or "
                                r"float32 \(targets, \(B, K\)\), got int64",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3), np.zeros(2, np.int64),
                                                 True)),
    "labels_float64": (TypeError, "got float64",
                       lambda: _core.cross_entropy(z(2), None, z(2, 3), np.zeros((2, 3)), True)),
    "labels_list": (TypeError, "labels must be a numpy array",
                    lambda: _core.cross_entropy(z(2), None, z(2, 3), [0, 1], True)),
    "int_labels_2d": (ValueError, r"labels has shape \(2, 3\), expected \(2,\) \(int32 labels "
                                  r"are class indices; one-hot targets must be float32\)",
                      lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2, 3, dtype=np.int32),
                                                  False)),
    "float_labels_1d": (ValueError, r"labels has shape \(2,\), expected \(2, 3\) \(float32 "
                                    r"labels are targets; class indices must be int32\)",
                        lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2), True)),
    "labels_batch": (ValueError, r"labels has shape \(3,\), expected \(2,\)",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3), z(3, dtype=np.int32),
                                                 True)),
    "pred_1d": (ValueError, "pred must be 2-D",
                lambda: _core.cross_entropy(z(2), None, z(2), z(2, dtype=np.int32), True)),
    "pred_float64": (TypeError, "pred must have dtype float32",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3, dtype=np.float64),
                                                 z(2, dtype=np.int32), True)),
    "loss_shape": (ValueError, r"loss has shape \(3,\), expected \(2,\)",
                   lambda: _core.cross_entropy(z(3), None, z(2, 3), z(2, dtype=np.int32), True)),
    "grad_shape": (ValueError, r"grad has shape \(2, 4\), expected \(2, 3\)",
                   lambda: _core.cross_entropy(z(2), z(2, 4), z(2, 3), z(2, dtype=np.int32),
                                               False)),
    "label_outside": (ValueError, r"label 3 at row 1 is outside \[0, 3\)",
                      lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                  np.array([0, 3], np.int32), False)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_cross_entropy_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()
