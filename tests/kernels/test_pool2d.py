"""pool2d: _core.maxpool2d_forward/backward, avgpool2d_forward/backward, pool2d_geometry.

In order: against the NumPy reference (forward and backward; the max and its argmax exactly,
ties included), against tf.keras (marked tf), binding errors, threads.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import itertools

import numpy as np
import pytest
from helpers import (
    assert_close,
    check_op,
    core_avgpool2d_backward,
    core_avgpool2d_forward,
    core_maxpool2d_backward,
    core_maxpool2d_forward,
    rand,
    readonly,
    z,
)
from tf_oracle import check, seed_of, tf_grads

import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference, forward and backward -------------------------------------------------------

PADDINGS = ["valid", "same"]


POOL_GRID = list(itertools.product([(7, 9), (13, 13), (6, 6)], [2, 3], [1, 2, None],
                                   PADDINGS))


def pool_input(rng, shape, ties):
    if ties:  # small integers: many ties, so the first-in-scan argmax rule is exercised
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rand(rng, shape)


@pytest.mark.parametrize("size,pool,stride,padding", POOL_GRID)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_maxpool2d(size, pool, stride, padding, ties):
    rng = np.random.default_rng(pool * 7 + (stride or 0))
    x = pool_input(rng, (2,) + size + (3,), ties)
    ps, st = (pool, pool), (pool, pool) if stride is None else (stride, stride)
    out, argmax = core_maxpool2d_forward(x, ps, st, padding)
    # The max copies an input value: exact. The argmax is an index: exact.
    assert_close(out, R.maxpool2d_forward(x, ps, stride and st, padding), atol=0, rtol=0,
                 op="maxpool2d fwd")
    np.testing.assert_array_equal(argmax, R.maxpool2d_argmax(x, ps, st, padding),
                                  err_msg="argmax differs from first-max-in-row-major-scan")
    dy = rand(rng, out.shape)
    dx = core_maxpool2d_backward(dy, argmax, x.shape, ps, st, padding)
    # Each input cell sums at most ceil(pool/stride)^2 <= 9 upstream values.
    assert_close(dx, R.maxpool2d_backward(dy, x, ps, st, padding), op="maxpool2d bwd")


def test_maxpool2d_argmax_first_in_row_major_scan():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 0, 0] = x[0, 0, 1, 0] = 5.0  # channel 0: a tie inside window (0, 0)
    x[0, 3, 3, 1] = x[0, 2, 3, 1] = -1.0  # channel 1: the zeros win, first zero in scan
    out, argmax = core_maxpool2d_forward(x, (2, 2), (2, 2), "valid")
    assert argmax[0, 0, 0, 0] == 1
    assert (argmax[0, :, :, 1] == [[0, 2], [8, 10]]).all()
    np.testing.assert_array_equal(argmax, R.maxpool2d_argmax(x, (2, 2)))


def test_maxpool2d_padding_never_wins():
    x = -np.ones((1, 5, 5, 1), np.float32) * 1e30  # padded cells must not win with "0"
    out, argmax = core_maxpool2d_forward(x, (3, 3), (2, 2), "same")
    assert (out == -1e30).all()
    np.testing.assert_array_equal(argmax, R.maxpool2d_argmax(x, (3, 3), (2, 2), "same"))


@pytest.mark.parametrize("size,pool,stride,padding", POOL_GRID)
def test_avgpool2d(size, pool, stride, padding):
    rng = np.random.default_rng(pool * 5 + (stride or 0))
    x = rand(rng, (2,) + size + (3,))
    ps, st = (pool, pool), (pool, pool) if stride is None else (stride, stride)
    check_op("avgpool2d",
             lambda x: core_avgpool2d_forward(x, ps, st, padding),
             lambda x: R.avgpool2d_forward(x, ps, st, padding), [x],
             lambda dy, x: (core_avgpool2d_backward(dy, x.shape, ps, st, padding),),
             lambda dy, x: (R.avgpool2d_backward(dy, x, ps, st, padding),),
             grad_names=["dinp"])


# ---- tf.keras parity -----------------------------------------------------------------------------

POOL_CASES = [
    (n, h, w, p, s, pad)
    for (n, h, w) in [(2, 7, 13), (1, 28, 27), (1, 13, 13)]
    for (p, s) in [(2, 2), (2, 1), (3, 2), (3, 3), (2, 3), (4, 2)]
    for pad in ("same", "valid")
]


def _pool_ids(cases):
    return [f"N{c[0]}_{c[1]}x{c[2]}_p{c[3]}_s{c[4]}_{c[5]}" for c in cases]


@pytest.mark.tf
@pytest.mark.parametrize("n,h,w,p,s,pad", POOL_CASES, ids=_pool_ids(POOL_CASES))
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2d(tf_keras, kind, n, h, w, p, s, pad):
    tf, keras = tf_keras
    rng = np.random.default_rng(seed_of(kind, n, h, w, p, s, pad))
    cls = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    layer = cls(pool_size=p, strides=s, padding=pad)
    c = 3
    x = rand(rng, (n, h, w, c))  # continuous values: no ties (ties: test_maxpool_ties)
    geo = _core.pool2d_geometry(x.shape, (p, p), (s, s), pad)
    dy = rand(rng, geo["out_shape"])
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


@pytest.mark.tf
@pytest.mark.parametrize("p,s,pad", [(2, 2, "valid"), (3, 1, "same"), (3, 2, "same")])
def test_maxpool_ties(tf_keras, p, s, pad):
    """Tied maxima: TF's CPU MaxPoolGrad routes the gradient to one cell per window; ours goes
    to the first in row-major scan order. Compare exactly (no arithmetic involved)."""
    tf, keras = tf_keras
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (2, 9, 8, 2)).astype(np.float32)  # many ties
    layer = keras.layers.MaxPooling2D(pool_size=p, strides=s, padding=pad)
    geo = _core.pool2d_geometry(x.shape, (p, p), (s, s), pad)
    dy = rand(rng, geo["out_shape"])
    y_tf, (dx_tf,) = tf_grads(tf, layer, x, dy)
    y, am, dx = np.empty(geo["out_shape"], np.float32), np.empty(geo["out_shape"], np.int32), \
        np.empty_like(x)
    _core.maxpool2d_forward(y, am, x, (p, p), (s, s), pad)
    _core.maxpool2d_backward(dx, dy, am, (p, p), (s, s), pad)
    check("maxpool2d ties forward", y, y_tf, atol=0, rtol=0)
    # Overlapping windows sum several dy into one cell, in possibly different order: 1 ulp-ish.
    check("maxpool2d ties dinp", dx, dx_tf, atol=1e-6, rtol=1e-6)


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "maxpool_argmax_int64": (TypeError, "argmax must have dtype int32",
                             lambda: _core.maxpool2d_forward(z(1, 2, 2, 1),
                                                             z(1, 2, 2, 1, dtype=np.int64),
                                                             z(1, 4, 4, 1), (2, 2), (2, 2),
                                                             "valid")),
    "maxpool_bwd_argmax_shape": (ValueError, "argmax has shape",
                                 lambda: _core.maxpool2d_backward(z(1, 4, 4, 1), z(1, 2, 2, 1),
                                                                  np.zeros((1, 2, 3, 1), np.int32),
                                                                  (2, 2), (2, 2), "valid")),
    "readonly_dinp": (ValueError, "dinp must be writable",
                      lambda: _core.avgpool2d_backward(readonly(z(1, 4, 4, 1)), z(1, 2, 2, 1),
                                                       (2, 2), (2, 2), "valid")),
    "bad_padding_case": (ValueError, "padding must be",
                         lambda: _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1),
                                                         (2, 2), (2, 2), "SAME")),
    "negative_stride_pool": (ValueError, "strides must be positive",
                             lambda: _core.avgpool2d_forward(z(1, 2, 2, 1), z(1, 4, 4, 1),
                                                             (2, 2), (2, -2), "valid")),
    "zero_pool_size": (ValueError, "pool_size must be positive",
                       lambda: _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1),
                                                       (0, 2), (2, 2), "valid")),
    "pool_window_too_large": (ValueError, "larger than input",
                              lambda: _core.maxpool2d_forward(z(1, 1, 1, 1), None,
                                                              z(1, 2, 5, 1), (3, 3), (1, 1),
                                                              "valid")),
    "geometry_too_large": (ValueError, "larger than input",
                           lambda: _core.pool2d_geometry([1, 2, 2, 1], (3, 3), (1, 1), "valid")),
    "argmax_out_of_range": (ValueError, "argmax out of range",
                            lambda: _core.maxpool2d_backward(
                                z(1, 4, 4, 1), z(1, 2, 2, 1),
                                np.array([0, 5, 16, 3], np.int32).reshape(1, 2, 2, 1),
                                (2, 2), (2, 2), "valid")),
    # 0 is a cell of the input but not of output (1,1)'s window {10, 11, 14, 15}.
    "argmax_outside_its_window": (ValueError, r"argmax out of range: 0 at \(0, 1, 1, 0\)",
                                  lambda: _core.maxpool2d_backward(
                                      z(1, 4, 4, 1), z(1, 2, 2, 1),
                                      np.array([5, 2, 8, 0], np.int32).reshape(1, 2, 2, 1),
                                      (2, 2), (2, 2), "valid")),
    "argmax_negative": (ValueError, "argmax out of range",
                        lambda: _core.maxpool2d_backward(
                            z(1, 4, 4, 1), z(1, 2, 2, 1), np.full((1, 2, 2, 1), -1, np.int32),
                            (2, 2), (2, 2), "valid")),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_pool2d_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()


# ---- threads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("pool_kind", ["max", "avg"])
def test_pool_threads(threads, pool_kind):
    rng = np.random.default_rng(0)
    x = rand(rng, (4, 11, 10, 5))
    ps, st = (3, 3), (2, 2)
    if pool_kind == "max":
        out, argmax = core_maxpool2d_forward(x, ps, st, "same")
        np.testing.assert_array_equal(out, R.maxpool2d_forward(x, ps, st, "same"))
        np.testing.assert_array_equal(argmax, R.maxpool2d_argmax(x, ps, st, "same"))
    else:
        assert_close(core_avgpool2d_forward(x, ps, st, "same"),
                     R.avgpool2d_forward(x, ps, st, "same"), op="avgpool2d fwd")
