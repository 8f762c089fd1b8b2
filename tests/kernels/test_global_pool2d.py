"""Global pooling kernels: _core.global_avgpool2d_forward/backward, global_maxpool2d_forward/
backward (csrc/pool2d.h).

In order: against the NumPy reference (forward and backward; the max exactly, the tie-splitting
gradient included), against tf.keras (marked tf), binding errors, threads.
"""
import numpy as np
import pytest
from helpers import assert_close, check_op, rand, readonly, z
from tf_oracle import check, seed_of, tf_grads

import cnnfast.reference as R
from cnnfast import _core

SHAPES = [(1, 1, 1, 1), (2, 5, 7, 3), (4, 13, 13, 16), (3, 28, 28, 8), (5, 2, 3, 33)]


def core_gap(x):
    y = np.empty((x.shape[0], x.shape[3]), np.float32)
    _core.global_avgpool2d_forward(y, x)
    return y


def core_gap_bwd(dy, x):
    dx = np.full(x.shape, np.nan, np.float32)  # every cell must be written
    _core.global_avgpool2d_backward(dx, dy)
    return (dx,)


def core_gmp(x):
    y = np.empty((x.shape[0], x.shape[3]), np.float32)
    _core.global_maxpool2d_forward(y, x)
    return y


def core_gmp_bwd(dy, x):
    dx = np.full(x.shape, np.nan, np.float32)
    _core.global_maxpool2d_backward(dx, dy, x, core_gmp(x))
    return (dx,)


def pool_input(rng, shape, ties):
    if ties:  # small integers: many tied maxima, so the even split is exercised
        return rng.integers(-2, 3, size=shape).astype(np.float32)
    return rand(rng, shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_global_avgpool2d_vs_reference(shape, threads):
    x = rand(np.random.default_rng(seed_of(shape)), shape)
    check_op("global_avgpool2d", core_gap, R.global_avgpool2d_forward, (x,), core_gap_bwd,
             lambda dy, x: (R.global_avgpool2d_backward(dy, x),))


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("shape", SHAPES)
def test_global_maxpool2d_vs_reference(shape, ties, threads):
    x = pool_input(np.random.default_rng(seed_of(shape, ties)), shape, ties)
    out, _ = check_op("global_maxpool2d", core_gmp, R.global_maxpool2d_forward, (x,),
                      core_gmp_bwd, lambda dy, x: (R.global_maxpool2d_backward(dy, x),),
                      atol=0, rtol=0, grad_atol=1e-7, grad_rtol=1e-6)
    np.testing.assert_array_equal(out[0], x.max(axis=(1, 2)))  # the max is exact


def test_global_avgpool2d_is_the_row_order_sum_over_count():
    # The documented arithmetic: a float32 sum in row-major cell order, divided by H*W.
    x = rand(np.random.default_rng(1), (2, 3, 4, 5))
    want = np.zeros((2, 5), np.float32)
    for k in range(12):
        want += x.reshape(2, 12, 5)[:, k]
    np.testing.assert_array_equal(core_gap(x), want / np.float32(12))


def test_global_maxpool2d_ties_split_like_tf_bits():
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = x[0, 1, 1, 0] = 1.0
    (dx,) = core_gmp_bwd(np.array([[0.3]], np.float32), x)
    third = np.float32(1) / np.float32(3) * np.float32(0.3)
    np.testing.assert_array_equal(dx.ravel(), [0, third, third, third])


# ---- against tf.keras ----------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (4, 13, 13, 16), (3, 28, 28, 8)])
@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
def test_global_pool2d_vs_tf(tf_keras, kind, shape, ties):
    tf, keras = tf_keras
    rng = np.random.default_rng(seed_of(kind, shape, ties))
    x = pool_input(rng, shape, ties)
    dy = rand(rng, (shape[0], shape[3]))
    y_tf, (dx_tf,) = tf_grads(tf, getattr(keras.layers, kind)(), x, dy)
    if kind == "GlobalMaxPooling2D":
        y, (dx,) = core_gmp(x), core_gmp_bwd(dy, x)
        check(f"{kind} fwd", y, y_tf, atol=0, rtol=0)
        check(f"{kind} bwd", dx, dx_tf, atol=0, rtol=0)  # same formula, same bits
    else:
        y, (dx,) = core_gap(x), core_gap_bwd(dy, x)
        check(f"{kind} fwd", y, y_tf)  # TF sums in another order
        check(f"{kind} bwd", dx, dx_tf, atol=0, rtol=0)


# ---- binding errors ------------------------------------------------------------------------------

def test_binding_errors():
    x = z(2, 3, 3, 4)
    with pytest.raises(ValueError, match="inp must be 4-D"):
        _core.global_avgpool2d_forward(z(2, 4), z(2, 9, 4))
    with pytest.raises(ValueError, match="out"):
        _core.global_avgpool2d_forward(z(2, 1, 1, 4), x)
    with pytest.raises(TypeError):
        _core.global_maxpool2d_forward(z(2, 4, dtype=np.float64), x)
    with pytest.raises(ValueError):
        _core.global_maxpool2d_forward(readonly(z(2, 4)), x)
    with pytest.raises(ValueError, match="dout"):
        _core.global_avgpool2d_backward(z(2, 3, 3, 4), z(2, 5))
    with pytest.raises(ValueError, match="dinp"):
        _core.global_maxpool2d_backward(z(2, 3, 3, 5), z(2, 4), x, z(2, 4))
    with pytest.raises(ValueError, match="positive"):
        _core.global_avgpool2d_forward(z(0, 4), z(0, 3, 3, 4))


def test_same_bits_for_any_thread_count():
    x = rand(np.random.default_rng(3), (16, 20, 20, 12))
    dy = rand(np.random.default_rng(4), (16, 12))
    old = _core.num_threads()
    try:
        res = []
        for t in (1, 2):
            _core.set_num_threads(t)
            res.append((core_gap(x), core_gap_bwd(dy, x)[0], core_gmp(x), core_gmp_bwd(dy, x)[0]))
    finally:
        _core.set_num_threads(old)
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)
    assert_close(res[0][0], R.global_avgpool2d_forward(x))
