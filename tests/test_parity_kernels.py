"""Kernel-level parity of cnnfast._core with tf.keras (the oracle), forward and backward.

Every test builds the Keras layer / loss / optimizer, copies the same float32 numbers into both,
and compares with explicit tolerances; failures print the max abs/rel difference. The largest
differences per op are printed at the end of the run (conftest.py terminal summary).

Tolerances (fp32):
* forward: atol 1e-5, rtol 1e-4 (the STYLE.md default; KERAS_SEMANTICS asks ~1e-6/1e-5 per
  layer, which the measured errors meet, see the summary);
* backward: the same, except reductions over many terms (conv/dense dweight, dbias; conv dinp
  with many overlapping windows) whose magnitudes grow with the summed count: atol 1e-4, since
  summation order differs between our GEMM and Eigen's and each term carries ~6e-8 rel error;
* optimizers: a few ulps, see test_optimizer_parity.

Cached-logits finding (KERAS_SEMANTICS section 4.5), verified by test_cached_logits_rule_in_fit:
in graph-mode ``fit``/``train_on_batch`` (the default, run_eagerly=False) Keras 3.15 on the TF
backend computes SparseCategoricalCrossentropy() on ``Dense(10, activation='softmax')`` from the
cached logits: a sample whose true-class probability underflows gives loss > 16.118 (it equals
logsumexp(z) - z[y] of _core.softmax_xent_sparse), which the clipped probability path cannot
produce. test_cached_logits_eager records what happens eagerly.
"""
import numpy as np
import pytest

import tf_oracle
from cnnfast import _core

pytestmark = pytest.mark.tf

ATOL, RTOL = 1e-5, 1e-4
GRAD_SUM_ATOL = 1e-4  # reductions over many products (see module docstring)
ACT = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4}


def check(op, got, want, atol=ATOL, rtol=RTOL):
    """assert_allclose that records the differences and prints them on failure."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{op}: shape {got.shape} != oracle {want.shape}"
    a, r = tf_oracle.record(op, got, want)
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol,
                               err_msg=f"{op}: max abs diff {a:.3e}, max abs diff / max|ref| {r:.3e}")


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def tf_grads(tf, layer, x, dy):
    """Run ``layer`` on x under a tape; return y, dx and the gradients of its weights."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    grads = tape.gradient(y, [xt] + list(layer.trainable_weights), output_gradients=tf.constant(dy))
    return y.numpy(), [g.numpy() for g in grads]


# ---------------------------------------------------------------- Conv2D

CONV_CASES = [
    # (N, H, W, C, OC, k, s, padding)
    (n, h, w, 3, 4, k, s, pad)
    for (n, h, w) in [(2, 7, 13), (1, 28, 27), (2, 13, 13), (1, 27, 28)]
    for k in (2, 3, 4, 5)
    for s in (1, 2)
    for pad in ("same", "valid")
]


@pytest.mark.parametrize("n,h,w,c,oc,k,s,pad", CONV_CASES,
                         ids=[f"N{c[0]}_{c[1]}x{c[2]}_k{c[5]}_s{c[6]}_{c[7]}" for c in CONV_CASES])
def test_conv2d(tf_keras, n, h, w, c, oc, k, s, pad):
    tf, keras = tf_keras
    rng = np.random.default_rng(hash((n, h, w, k, s, pad)) % 2**32)
    layer = keras.layers.Conv2D(oc, k, strides=s, padding=pad)
    layer.build((n, h, w, c))
    kern, bias = f32(rng, k, k, c, oc, scale=0.3), f32(rng, oc)
    layer.set_weights([kern, bias])
    x = f32(rng, n, h, w, c)
    geo = _core.conv2d_geometry(x.shape, kern.shape, (s, s), pad)
    dy = f32(rng, *geo["out_shape"])
    y_tf, (dx_tf, dk_tf, db_tf) = tf_grads(tf, layer, x, dy)

    ws = np.empty(max(geo["workspace"], 1), np.float32)
    y = np.empty(geo["out_shape"], np.float32)
    _core.conv2d_forward(y, x, kern, bias, (s, s), pad, ws)
    dx, dk, db = np.empty_like(x), np.empty_like(kern), np.empty_like(bias)
    _core.conv2d_backward(dx, dk, db, dy, x, kern, (s, s), pad, ws)
    check("conv2d forward", y, y_tf)
    check("conv2d dinp", dx, dx_tf)
    check("conv2d dweight", dk, dk_tf, atol=GRAD_SUM_ATOL)
    check("conv2d dbias", db, db_tf, atol=GRAD_SUM_ATOL)


# ---------------------------------------------------------------- pooling

POOL_CASES = [
    (n, h, w, p, s, pad)
    for (n, h, w) in [(2, 7, 13), (1, 28, 27), (1, 13, 13)]
    for (p, s) in [(2, 2), (2, 1), (3, 2), (3, 3), (2, 3), (4, 2)]
    for pad in ("same", "valid")
]


def _pool_ids(cases):
    return [f"N{c[0]}_{c[1]}x{c[2]}_p{c[3]}_s{c[4]}_{c[5]}" for c in cases]


@pytest.mark.parametrize("n,h,w,p,s,pad", POOL_CASES, ids=_pool_ids(POOL_CASES))
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d(tf_keras, kind, n, h, w, p, s, pad):
    tf, keras = tf_keras
    rng = np.random.default_rng(hash((kind, n, h, w, p, s, pad)) % 2**32)
    cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    layer = cls(pool_size=p, strides=s, padding=pad)
    c = 3
    x = f32(rng, n, h, w, c)  # continuous values: no ties (ties: test_maxpool_ties)
    geo = _core.pool2d_geometry(x.shape, (p, p), (s, s), pad)
    dy = f32(rng, *geo["out_shape"])
    y_tf, (dx_tf,) = tf_grads(tf, layer, x, dy)
    y = np.empty(geo["out_shape"], np.float32)
    dx = np.empty_like(x)
    if kind == "max":
        am = np.empty(geo["out_shape"], np.int32)
        _core.maxpool2d_forward(y, am, x, (p, p), (s, s), pad)
        _core.maxpool2d_backward(dx, dy, am, (p, p), (s, s), pad)
    else:
        _core.avgpool2d_forward(y, x, (p, p), (s, s), pad)
        _core.avgpool2d_backward(dx, dy, (p, p), (s, s), pad)
    check(f"{kind}pool2d forward", y, y_tf)
    check(f"{kind}pool2d dinp", dx, dx_tf)


@pytest.mark.parametrize("p,s,pad", [(2, 2, "valid"), (3, 1, "same"), (3, 2, "same")])
def test_maxpool_ties(tf_keras, p, s, pad):
    """Tied maxima: TF's CPU MaxPoolGrad routes the gradient to one cell per window; ours goes
    to the first in row-major scan order. Compare exactly (no arithmetic involved)."""
    tf, keras = tf_keras
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (2, 9, 8, 2)).astype(np.float32)  # many ties
    layer = keras.layers.MaxPooling2D(pool_size=p, strides=s, padding=pad)
    geo = _core.pool2d_geometry(x.shape, (p, p), (s, s), pad)
    dy = f32(rng, *geo["out_shape"])
    y_tf, (dx_tf,) = tf_grads(tf, layer, x, dy)
    y, am, dx = np.empty(geo["out_shape"], np.float32), np.empty(geo["out_shape"], np.int32), \
        np.empty_like(x)
    _core.maxpool2d_forward(y, am, x, (p, p), (s, s), pad)
    _core.maxpool2d_backward(dx, dy, am, (p, p), (s, s), pad)
    check("maxpool2d ties forward", y, y_tf, atol=0, rtol=0)
    # Overlapping windows sum several dy into one cell, in possibly different order: 1 ulp-ish.
    check("maxpool2d ties dinp", dx, dx_tf, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- Dense

@pytest.mark.parametrize("b,i,o", [(1, 7, 3), (5, 64, 10), (32, 1600, 128), (3, 13, 1)])
def test_dense(tf_keras, b, i, o):
    tf, keras = tf_keras
    rng = np.random.default_rng(b * 1000 + i + o)
    layer = keras.layers.Dense(o)
    layer.build((b, i))
    kern, bias = f32(rng, i, o, scale=1 / np.sqrt(i)), f32(rng, o)
    layer.set_weights([kern, bias])
    x, dy = f32(rng, b, i), f32(rng, b, o)
    y_tf, (dx_tf, dk_tf, db_tf) = tf_grads(tf, layer, x, dy)
    y = np.empty((b, o), np.float32)
    _core.dense_forward(y, x, kern, bias)
    dx, dk, db = np.empty_like(x), np.empty_like(kern), np.empty_like(bias)
    _core.dense_backward(dx, dk, db, dy, x, kern)
    check("dense forward", y, y_tf)
    check("dense dinp", dx, dx_tf)
    check("dense dweight", dk, dk_tf, atol=GRAD_SUM_ATOL)
    check("dense dbias", db, db_tf, atol=GRAD_SUM_ATOL)


# ---------------------------------------------------------------- activations, dropout

@pytest.mark.parametrize("shape", [(4, 10), (2, 5, 6, 3), (1, 1)])
@pytest.mark.parametrize("name", list(ACT))
def test_activation(tf_keras, name, shape):
    tf, keras = tf_keras
    rng = np.random.default_rng(len(shape) * 10 + ACT[name])
    x = f32(rng, *shape, scale=3.0)
    x.reshape(-1)[::7] = 0.0  # exact zeros: ReLU's derivative at 0 must be 0 (TF ReluGrad)
    if x.size > 2:
        x.reshape(-1)[1] = 40.0  # saturation for sigmoid/tanh/softmax
    dy = f32(rng, *shape)
    y_tf, (dx_tf,) = tf_grads(tf, keras.layers.Activation(name), x, dy)
    y, dx = np.empty_like(x), np.empty_like(x)
    _core.activation_forward(y, x, ACT[name])
    _core.activation_backward(dx, dy, y, ACT[name])
    check(f"activation {name} forward", y, y_tf)
    check(f"activation {name} dinp", dx, dx_tf)


def test_dropout_identity_cases(tf_keras):
    """Dropout(0.0) in training and Dropout(0.5) in inference are the identity in Keras; our
    kernel with rate 0 must be the identity too (mask all ones) forward and backward."""
    tf, keras = tf_keras
    rng = np.random.default_rng(3)
    x, dy = f32(rng, 4, 6, 6, 2), f32(rng, 4, 6, 6, 2)
    for layer, training in ((keras.layers.Dropout(0.0), True), (keras.layers.Dropout(0.5), False)):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y_tf = layer(xt, training=training)
        dx_tf = tape.gradient(y_tf, xt, output_gradients=tf.constant(dy))
        check("dropout identity forward", y_tf.numpy(), x, atol=0, rtol=0)
        check("dropout identity dinp", dx_tf.numpy(), dy, atol=0, rtol=0)
    y, mask, dx = np.empty_like(x), np.empty(x.shape, np.uint8), np.empty_like(x)
    _core.dropout_forward(y, mask, x, 0.0, 1234)
    _core.dropout_backward(dx, dy, mask, 0.0)
    assert mask.all()
    check("dropout identity forward", y, x, atol=0, rtol=0)
    check("dropout identity dinp", dx, dy, atol=0, rtol=0)
