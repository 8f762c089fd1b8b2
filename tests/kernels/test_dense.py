"""dense: _core.dense_forward and dense_backward.

In order: against the NumPy reference (forward and backward, with 1 and 2 threads), against
float64 NumPy with the outputs prefilled with NaN, against tf.keras (marked tf), binding errors
(also through cnnfast.backend). Bit-identity across thread counts: tests/kernels/test_gemm.py.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import numpy as np
import pytest
from helpers import (
    assert_close,
    check_op,
    core_dense_backward,
    core_dense_forward,
    noncontig,
    rand,
    readonly,
    reduction_atol,
    sum_tol,
    z,
)
from tf_oracle import GRAD_SUM_ATOL, check, tf_grads

import cnnfast as cf
import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference, forward and backward -------------------------------------------------------

@pytest.mark.parametrize("B,IN,OUT", [(1, 1, 1), (1, 7, 10), (3, 5, 1), (32, 100, 10),
                                      (64, 33, 17), (5, 1600, 128)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(threads, B, IN, OUT, use_bias):
    rng = np.random.default_rng(B + IN + OUT)
    x, w = rand(rng, (B, IN)), rand(rng, (IN, OUT), 1.0 / np.sqrt(IN))
    b = rand(rng, (OUT,)) if use_bias else None
    check_op("dense", core_dense_forward, R.dense_forward, [x, w, b],
             lambda dy, x, w, b: core_dense_backward(dy, x, w, True, use_bias),
             lambda dy, x, w, b: R.dense_backward(dy, x, w)[:2] + (
                 R.dense_backward(dy, x, w)[2] if use_bias else None,),
             atol=sum_tol(IN),                  # y sums IN products
             grad_atol=sum_tol(max(B, OUT)),    # dw, db sum B products; dx sums OUT
             grad_names=["dinp", "dweight", "dbias"])


def test_dense_without_dinp():
    rng = np.random.default_rng(0)
    x, w, dy = rand(rng, (4, 6)), rand(rng, (6, 3)), rand(rng, (4, 3))
    dinp, dw, db = core_dense_backward(dy, x, w, with_dinp=False, with_bias=False)
    assert dinp is None and db is None
    assert_close(dw, R.dense_backward(dy, x, w)[1], op="dense bwd dweight")


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("B,IN,OUT", [(1, 1, 1), (7, 17, 10), (33, 300, 129), (1, 64, 3)])
def test_dense_matches_numpy(B, IN, OUT, with_bias):
    rng = np.random.default_rng(B + IN + OUT)
    x = rng.standard_normal((B, IN), dtype=np.float32)
    w = rng.standard_normal((IN, OUT), dtype=np.float32)
    bias = rng.standard_normal(OUT, dtype=np.float32) if with_bias else None
    out = np.full((B, OUT), np.nan, np.float32)
    _core.dense_forward(out, x, w, bias)
    ref = x.astype(np.float64) @ w.astype(np.float64) + (bias if with_bias else 0.0)
    assert_close(out, ref, atol=reduction_atol(IN), name="out")
    dout = rng.standard_normal((B, OUT), dtype=np.float32)
    dx = np.full((B, IN), np.nan, np.float32)
    dw = np.full((IN, OUT), np.nan, np.float32)
    db = np.full(OUT, np.nan, np.float32) if with_bias else None
    _core.dense_backward(dx, dw, db, dout, x, w)
    d64 = dout.astype(np.float64)
    assert_close(dx, d64 @ w.T.astype(np.float64), atol=reduction_atol(OUT), name="dinp")
    assert_close(dw, x.T.astype(np.float64) @ d64, atol=reduction_atol(B), name="dweight")
    if with_bias:
        assert_close(db, d64.sum(axis=0), atol=reduction_atol(B), name="dbias")
    dw2 = np.empty_like(dw)
    _core.dense_backward(None, dw2, None, dout, x, w)
    np.testing.assert_array_equal(dw2, dw)


# ---- tf.keras parity -----------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("b,i,o", [(1, 7, 3), (5, 64, 10), (32, 1600, 128), (3, 13, 1)])
def test_dense_vs_tf(tf_keras, b, i, o):
    tf, keras = tf_keras
    rng = np.random.default_rng(b * 1000 + i + o)
    layer = keras.layers.Dense(o)
    layer.build((b, i))
    kern, bias = rand(rng, (i, o), 1 / np.sqrt(i)), rand(rng, (o,))
    layer.set_weights([kern, bias])
    x, dy = rand(rng, (b, i)), rand(rng, (b, o))
    y_tf, (dx_tf, dk_tf, db_tf) = tf_grads(tf, layer, x, dy)
    y = np.empty((b, o), np.float32)
    _core.dense_forward(y, x, kern, bias)
    dx, dk, db = np.empty_like(x), np.empty_like(kern), np.empty_like(bias)
    _core.dense_backward(dx, dk, db, dy, x, kern)
    check("dense forward", y, y_tf)
    check("dense dinp", dx, dx_tf)
    check("dense dweight", dk, dk_tf, atol=GRAD_SUM_ATOL)
    check("dense dbias", db, db_tf, atol=GRAD_SUM_ATOL)


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "dense_fwd_float64_weight": (TypeError, "weight must have dtype float32",
                                 lambda: _core.dense_forward(z(2, 3), z(2, 4),
                                                             z(4, 3, dtype=np.float64), None)),
    "dense_bwd_noncontig_dout": (ValueError, "dout must be C-contiguous",
                                 lambda: _core.dense_backward(z(2, 4), z(4, 3), None,
                                                              noncontig(2, 3), z(2, 4), z(4, 3))),
    "transposed_weight": (ValueError, "weight must be C-contiguous",
                          lambda: _core.dense_forward(z(2, 3), z(2, 4), z(3, 4).T, None)),
    "dense_mismatch": (ValueError, r"inp \(2, 3\) does not match weight \(4, 5\)",
                       lambda: _core.dense_forward(z(2, 5), z(2, 3), z(4, 5), None)),
    "dense_bwd_dinp_shape": (ValueError, r"dinp has shape \(3, 4\), expected \(2, 4\)",
                             lambda: _core.dense_backward(z(3, 4), z(4, 3), None, z(2, 3),
                                                          z(2, 4), z(4, 3))),
    "readonly_out": (ValueError, "out must be writable",
                     lambda: _core.dense_forward(readonly(z(2, 3)), z(2, 4), z(4, 3), None)),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_dense_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()


def test_native_core_raises_instead_of_crashing():
    core = cf.backend
    out = np.empty((2, 3), np.float32)
    with pytest.raises(TypeError, match="dtype"):
        core.dense_forward(out, np.zeros((2, 4)), np.zeros((4, 3), np.float32), None)
    with pytest.raises(ValueError, match=r"inp \(2, 5\) does not match weight \(4, 3\)"):
        core.dense_forward(out, np.zeros((2, 5), np.float32), np.zeros((4, 3), np.float32), None)
    with pytest.raises(ValueError, match="label"):
        core.cross_entropy(np.empty(2, np.float32), None, np.zeros((2, 3), np.float32),
                           np.array([0, 7], np.int32), True, 1e-7, 0.5)
