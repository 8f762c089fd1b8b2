"""dropout: _core.dropout_forward (mask from a counter-based stream) and dropout_backward.

In order: against the NumPy reference (mask statistics; forward and backward given the mask;
the scale rounded as TF rounds it), against tf.keras (marked tf), binding errors, threads
(masks depend on the seed only).

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import numpy as np
import pytest
from helpers import assert_close, core_dropout_backward, core_dropout_forward, rand, z
from tf_oracle import check

import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference, forward and backward -------------------------------------------------------

def test_dropout_mask_statistics():
    n, rate = 1_000_000, 0.3
    x = np.ones(n, np.float32)
    out, mask = core_dropout_forward(x, rate, seed=123)
    keep = mask.mean()
    # Binomial(n, 0.7): sd = sqrt(0.7 * 0.3 / 1e6) = 4.6e-4; allow 5 sd.
    assert abs(keep - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n), keep
    assert set(np.unique(mask)) <= {0, 1}
    # Halves of the stream are independently balanced too (no drift along the counter).
    for half in (mask[: n // 2], mask[n // 2:]):
        assert abs(half.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / (n // 2))
    assert_close(out, R.dropout_forward(x, mask, rate), op="dropout fwd")


def test_dropout_rate_zero_is_identity():
    rng = np.random.default_rng(0)
    x = rand(rng, (3, 7, 5))
    out, mask = core_dropout_forward(x, 0.0, seed=1)
    np.testing.assert_array_equal(out, x)
    assert mask.all()
    np.testing.assert_array_equal(core_dropout_backward(x, mask, 0.0), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_forward_backward_use_mask(threads, rate):
    rng = np.random.default_rng(int(rate * 10))
    x, dy = rand(rng, (64, 600)), rand(rng, (64, 600))
    out, mask = core_dropout_forward(x, rate, seed=99)
    assert_close(out, R.dropout_forward(x, mask, rate), op="dropout fwd")
    assert (out[mask == 0] == 0).all()
    dx = core_dropout_backward(dy, mask, rate)
    assert_close(dx, R.dropout_backward(dy, mask, rate), op="dropout bwd")
    # The backward must follow the given mask, not redraw one.
    other = 1 - mask
    assert_close(core_dropout_backward(dy, other, rate), R.dropout_backward(dy, other, rate),
                 op="dropout bwd")


def test_dropout_scale_is_rounded_once_from_double_like_tf():
    # TF: scale = 1 / (1 - rate) in double (the Python float), rounded to float32 once:
    # rate 0.9 -> 10.0f exactly; 1.0f / (1.0f - 0.9f) would give 9.9999976f.
    x = np.ones(4096, np.float32)
    out, mask = np.empty_like(x), np.empty(x.shape, np.uint8)
    _core.dropout_forward(out, mask, x, 0.9, 123)
    assert mask.any()
    kept = float(np.float32(1.0 / (1.0 - 0.9)))
    assert set(np.unique(out).tolist()) == {0.0, kept} == {0.0, 10.0}
    dx = np.empty_like(x)
    _core.dropout_backward(dx, x, mask, 0.9)
    np.testing.assert_array_equal(dx, out)


# ---- tf.keras parity -----------------------------------------------------------------------------

@pytest.mark.tf
def test_dropout_identity_cases(tf_keras):
    """Dropout(0.0) in training and Dropout(0.5) in inference are the identity in Keras; our
    kernel with rate 0 must be the identity too (mask all ones) forward and backward."""
    tf, keras = tf_keras
    rng = np.random.default_rng(3)
    x, dy = rand(rng, (4, 6, 6, 2)), rand(rng, (4, 6, 6, 2))
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


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "dropout_mask_bool": (TypeError, "mask must have dtype uint8",
                          lambda: _core.dropout_forward(z(5), z(5, dtype=bool), z(5), 0.5, 1)),
    "dropout_mask_shape": (ValueError, "mask has shape",
                           lambda: _core.dropout_backward(z(5), z(5), z(6, dtype=np.uint8), 0.5)),
    "dropout_rate_one": (ValueError, r"rate must be in \[0, 1\)",
                         lambda: _core.dropout_forward(z(5), z(5, dtype=np.uint8), z(5), 1.0, 1)),
    "dropout_rate_negative": (ValueError, r"rate must be in \[0, 1\)",
                              lambda: _core.dropout_backward(z(5), z(5), z(5, dtype=np.uint8),
                                                             -0.1)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_dropout_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()


# ---- threads -------------------------------------------------------------------------------------

def test_dropout_deterministic_for_seed_and_threads():
    rng = np.random.default_rng(0)
    x = rand(rng, (40_000, 5))  # above the kernel's parallel grain, so threads really split it
    old = _core.num_threads()
    try:
        _core.set_num_threads(1)
        out1, m1 = core_dropout_forward(x, 0.5, seed=7)
        out1b, m1b = core_dropout_forward(x, 0.5, seed=7)
        _core.set_num_threads(2)
        out2, m2 = core_dropout_forward(x, 0.5, seed=7)
        _, m3 = core_dropout_forward(x, 0.5, seed=8)
    finally:
        _core.set_num_threads(old)
    np.testing.assert_array_equal(m1, m1b)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(out1, out1b)
    assert (m1 != m3).mean() > 0.4  # another seed gives an unrelated mask (~0.5 differ)
