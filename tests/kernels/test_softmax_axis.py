"""softmax_axis_forward/backward (keras.layers.Softmax(axis)): against a float64 NumPy reference
over every axis of 2-D to 4-D arrays, the last-axis kernel's exact bits for axis -1, 1 and 2
threads bit-identical, central differences, and binding errors."""
import numpy as np
import pytest
from helpers import assert_close, rand, z

from cnnfast import _core


def ref(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_bwd(dy, y, axis):
    y, dy = y.astype(np.float64), dy.astype(np.float64)
    return (dy - (dy * y).sum(axis=axis, keepdims=True)) * y


def run(x, axis, dy):
    y = np.full_like(x, np.nan)
    _core.softmax_axis_forward(y, x, axis)
    dx = np.full_like(x, np.nan)
    _core.softmax_axis_backward(dx, dy, y, axis)
    return y, dx


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (3, 4, 6), (2, 5, 4, 3), (40, 30, 30, 3)])
def test_softmax_axis_vs_reference(threads, shape):
    rng = np.random.default_rng(len(shape))
    x = rand(rng, shape, 4.0)
    dy = rand(rng, shape)
    for axis in range(-len(shape), len(shape)):
        y, dx = run(x, axis, dy)
        assert_close(y, ref(x, axis), atol=1e-6, rtol=1e-5, op="softmax_axis fwd")
        assert_close(dx, ref_bwd(dy, y, axis), atol=1e-6, rtol=1e-4, op="softmax_axis bwd")
        old = _core.num_threads()
        _core.set_num_threads(3 - threads)
        try:
            y2, dx2 = run(x, axis, dy)
        finally:
            _core.set_num_threads(old)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(dx2, dx)


def test_last_axis_is_the_softmax_kind_bit_for_bit():
    rng = np.random.default_rng(5)
    x, dy = rand(rng, (6, 4, 9), 3.0), rand(rng, (6, 4, 9))
    y, dx = run(x, -1, dy)
    want = np.empty_like(x)
    _core.activation_forward(want, x, _core.Activation.softmax)
    np.testing.assert_array_equal(y, want)
    dwant = np.empty_like(x)
    _core.activation_backward(dwant, dy, want, _core.Activation.softmax)
    np.testing.assert_array_equal(dx, dwant)
    # axis 1 equals the last-axis softmax of the transposed array, bit for bit
    y1, dx1 = run(x, 1, dy)
    xt, dyt = np.ascontiguousarray(x.transpose(0, 2, 1)), np.ascontiguousarray(
        dy.transpose(0, 2, 1))
    yt, dxt = run(xt, -1, dyt)
    np.testing.assert_array_equal(y1, yt.transpose(0, 2, 1))
    np.testing.assert_array_equal(dx1, dxt.transpose(0, 2, 1))


def test_softmax_axis_central_differences():
    rng = np.random.default_rng(6)
    x, dy = rand(rng, (2, 4, 3)), rand(rng, (2, 4, 3))
    _, dx = run(x, 1, dy)
    h = 1e-3
    x64 = x.astype(np.float64)
    num = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = h
        num[i] = ((ref(x64 + e, 1) - ref(x64 - e, 1)) * dy).sum() / (2 * h)
    assert_close(dx, num, atol=1e-5, rtol=1e-4, op="softmax_axis central difference")


def test_softmax_axis_binding_errors():
    with pytest.raises(ValueError, match="axis 3 is out of range for inp of shape"):
        _core.softmax_axis_forward(z(2, 3, 4), z(2, 3, 4), 3)
    with pytest.raises(ValueError, match="axis -4 is out of range"):
        _core.softmax_axis_backward(z(2, 3, 4), z(2, 3, 4), z(2, 3, 4), -4)
    with pytest.raises(ValueError, match="out has shape"):
        _core.softmax_axis_forward(z(2, 4, 3), z(2, 3, 4), 1)
    with pytest.raises(ValueError, match="dout has shape"):
        _core.softmax_axis_backward(z(2, 3, 4), z(2, 4, 3), z(2, 3, 4), 1)
