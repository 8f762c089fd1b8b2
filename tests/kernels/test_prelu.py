"""prelu_forward/backward (keras.layers.PReLU): against a float64 NumPy reference with alpha
broadcast over the shared axes (forward, dinp, dalpha reduced over batch and shared axes),
1 and 2 threads bit-identical, central differences for x and alpha, and binding errors."""
import numpy as np
import pytest
from helpers import assert_close, rand, sum_tol, z

from cnnfast import _core


def alpha_index(sample_shape, alpha_shape):
    return np.ascontiguousarray(np.broadcast_to(
        np.arange(int(np.prod(alpha_shape)), dtype=np.int32).reshape(alpha_shape),
        sample_shape).reshape(-1))


def ref(x, alpha):
    x, a = x.astype(np.float64), alpha.astype(np.float64)
    return np.where(x > 0, x, a * x)


def ref_bwd(dy, x, alpha):
    x, a, dy = x.astype(np.float64), alpha.astype(np.float64), dy.astype(np.float64)
    dx = np.where(x > 0, dy, np.where(x < 0, dy * a, 0.0))
    full = dy * np.minimum(x, 0.0)  # d/dalpha of alpha * x below 0
    axes = tuple(i for i in range(x.ndim) if i == 0 or alpha.shape[i - 1] == 1)
    return dx, full.sum(axis=axes).reshape(alpha.shape)


def run(x, alpha, need_dinp=True):
    idx = alpha_index(x.shape[1:], alpha.shape)
    y = np.full_like(x, np.nan)
    _core.prelu_forward(y, x, alpha, idx)
    dy = rand(np.random.default_rng(9), x.shape)
    dx = np.full_like(x, np.nan) if need_dinp else None
    da = np.full_like(alpha, np.nan)
    part = np.empty((x.shape[0], alpha.size), np.float32)
    _core.prelu_backward(dx, da, part, dy, x, alpha, idx)
    return y, dy, dx, da


CASES = [((4, 7), (7,)), ((4, 7), (1,)), ((3, 5, 6, 4), (5, 6, 4)), ((3, 5, 6, 4), (1, 1, 4)),
         ((3, 5, 6, 4), (5, 1, 1)), ((2, 3, 4, 5), (1, 4, 1)), ((64, 9, 9, 16), (1, 1, 16)),
         ((64, 9, 9, 16), (1, 1, 1)), ((64, 9, 9, 16), (9, 9, 16))]
# the (64, 9, 9, 16) cases run the per-sample loops threaded; the last also the reduction


@pytest.mark.parametrize("shape,ashape", CASES)
def test_prelu_vs_reference(threads, shape, ashape):
    rng = np.random.default_rng(len(shape) + len(ashape))
    x = rand(rng, shape)
    x.reshape(-1)[:3] = [0.0, -0.0, 1e-30]
    alpha = rand(rng, ashape, 0.5)
    y, dy, dx, da = run(x, alpha)
    assert_close(y, ref(x, alpha), atol=1e-6, rtol=1e-6, op="prelu fwd")
    rdx, rda = ref_bwd(dy, x, alpha)
    assert_close(dx, rdx, atol=1e-6, rtol=1e-6, op="prelu bwd dinp")
    n_terms = x.size // alpha.size
    assert_close(da, rda, atol=sum_tol(n_terms), rtol=1e-4, op="prelu bwd dalpha")
    old = _core.num_threads()
    _core.set_num_threads(3 - threads)
    try:
        y2, _, dx2, da2 = run(x, alpha)
    finally:
        _core.set_num_threads(old)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(da2, da)


def test_prelu_without_dinp_and_in_place():
    rng = np.random.default_rng(1)
    x, alpha = rand(rng, (5, 3, 4)), rand(rng, (1, 4))
    _, _, _, da = run(x, alpha)
    _, _, dx, da2 = run(x, alpha, need_dinp=False)
    assert dx is None
    np.testing.assert_array_equal(da2, da)
    # dinp may alias dout
    idx = alpha_index(x.shape[1:], alpha.shape)
    dy = rand(rng, x.shape)
    want, dwant = ref_bwd(dy, x, alpha)
    d, da3 = dy.copy(), np.empty_like(alpha)
    _core.prelu_backward(d, da3, np.empty((5, 4), np.float32), d, x, alpha, idx)
    assert_close(d, want, atol=1e-6, rtol=1e-6)
    assert_close(da3, dwant, atol=1e-5, rtol=1e-5)


def test_prelu_central_differences():
    rng = np.random.default_rng(2)
    x = rand(rng, (3, 4, 5))
    x = np.where(np.abs(x) < 0.05, 0.3, x).astype(np.float32)
    alpha = rand(rng, (1, 5), 0.5)
    _, dy, dx, da = run(x, alpha)
    h = 1e-3
    x64, a64 = x.astype(np.float64), alpha.astype(np.float64)

    def loss(xx, aa):
        return float((ref(xx, aa) * dy).sum())

    num_dx = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[i] = h
        num_dx[i] = (loss(x64 + e, a64) - loss(x64 - e, a64)) / (2 * h)
    num_da = np.zeros(alpha.shape)
    for i in np.ndindex(alpha.shape):
        e = np.zeros(alpha.shape)
        e[i] = h
        num_da[i] = (loss(x64, a64 + e) - loss(x64, a64 - e)) / (2 * h)
    assert_close(dx, num_dx, atol=1e-5, rtol=1e-4, op="prelu central difference dinp")
    assert_close(da, num_da, atol=1e-5, rtol=1e-4, op="prelu central difference dalpha")


def test_prelu_binding_errors():
    idx = np.zeros(6, np.int32)
    with pytest.raises(ValueError, match="alpha_index has shape"):
        _core.prelu_forward(z(2, 6), z(2, 6), z(6), np.zeros(5, np.int32))
    with pytest.raises(ValueError, match=r"alpha_index\[1\] = 7 is outside \[0, 6\)"):
        _core.prelu_forward(z(2, 6), z(2, 6), z(6), np.array([0, 7, 0, 0, 0, 0], np.int32))
    with pytest.raises(ValueError, match=">= 2-D"):
        _core.prelu_forward(z(6), z(6), z(6), idx)
    with pytest.raises(ValueError, match="out has shape"):
        _core.prelu_forward(z(3, 6), z(2, 6), z(6), idx)
    with pytest.raises(ValueError, match="partial has shape"):
        _core.prelu_backward(z(2, 6), z(6), z(3, 6), z(2, 6), z(2, 6), z(6), idx)
    with pytest.raises(ValueError, match="dalpha has shape"):
        _core.prelu_backward(z(2, 6), z(5), z(2, 6), z(2, 6), z(2, 6), z(6), idx)
    with pytest.raises(TypeError):
        _core.prelu_forward(z(2, 6), z(2, 6), z(6), idx.astype(np.int64))
