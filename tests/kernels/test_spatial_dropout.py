"""spatial_dropout_forward/backward (keras.layers.SpatialDropout2D): whole channels per sample
dropped, kept ones scaled by f32(1 / (1 - rate)), the mask the dropout hash draws for (seed,
b*C + c) (so it is the same for any thread count), the keep rate, and binding errors."""
import numpy as np
import pytest
from helpers import rand, z

from cnnfast import _core


def run(x, rate, seed):
    y = np.full_like(x, np.nan)
    mask = np.full((x.shape[0], x.shape[3]), 7, np.uint8)
    _core.spatial_dropout_forward(y, mask, x, rate, seed)
    return y, mask


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 7), (32, 20, 20, 16)])
def test_spatial_dropout_masks_whole_channels(threads, rate, shape):
    rng = np.random.default_rng(len(shape))
    x = rand(rng, shape)
    y, mask = run(x, rate, 1234)
    assert set(np.unique(mask)) <= {0, 1}
    scale = np.float32(1.0 / (1.0 - rate))
    want = np.where(mask[:, None, None, :] == 1, x * scale, 0.0).astype(np.float32)
    np.testing.assert_array_equal(y, want)
    # the mask is dropout_forward's mask over (B, C): the same hash stream element for element
    ones = np.ones((shape[0], shape[3]), np.float32)
    m2 = np.empty(ones.shape, np.uint8)
    _core.dropout_forward(np.empty_like(ones), m2, ones, rate, 1234)
    np.testing.assert_array_equal(mask, m2)
    dy = rand(rng, shape)
    dx = np.full_like(x, np.nan)
    _core.spatial_dropout_backward(dx, dy, mask, rate)
    np.testing.assert_array_equal(
        dx, np.where(mask[:, None, None, :] == 1, dy * scale, 0.0).astype(np.float32))
    old = _core.num_threads()
    _core.set_num_threads(3 - threads)
    try:
        y2, mask2 = run(x, rate, 1234)
    finally:
        _core.set_num_threads(old)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(mask2, mask)


def test_keep_rate_and_seeds():
    x = np.ones((200, 2, 2, 50), np.float32)
    _, m1 = run(x, 0.3, 1)
    _, m2 = run(x, 0.3, 2)
    assert not np.array_equal(m1, m2)
    # 10000 Bernoulli(0.7) draws: the mean is within 5 sigma (sigma ~ 0.0046)
    assert abs(m1.mean() - 0.7) < 0.023
    np.testing.assert_array_equal(run(x, 0.3, 1)[1], m1)


def test_spatial_dropout_binding_errors():
    with pytest.raises(ValueError, match="4-D"):
        _core.spatial_dropout_forward(z(2, 3), z(2, 3, dtype=np.uint8), z(2, 3), 0.5, 0)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        _core.spatial_dropout_forward(z(1, 2, 2, 3), z(1, 3, dtype=np.uint8), z(1, 2, 2, 3),
                                      1.0, 0)
    with pytest.raises(ValueError, match="mask has shape"):
        _core.spatial_dropout_forward(z(1, 2, 2, 3), z(1, 2, 2, 3, dtype=np.uint8),
                                      z(1, 2, 2, 3), 0.5, 0)
    with pytest.raises(ValueError, match="mask has shape"):
        _core.spatial_dropout_backward(z(1, 2, 2, 3), z(1, 2, 2, 3), z(3, 1, dtype=np.uint8),
                                       0.5)
    with pytest.raises(TypeError):
        _core.spatial_dropout_forward(z(1, 2, 2, 3), z(1, 3), z(1, 2, 2, 3), 0.5, 0)
