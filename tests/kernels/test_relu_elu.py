"""The relu_forward/backward kernels (ReLU(max_value, negative_slope, threshold), LeakyReLU) and
elu_forward/backward (ELU(alpha)): against NumPy references of Keras's formulas (forward and
backward, 1 and 2 threads, bit-identical across threads), the kink conventions of TF's gradients,
central differences, and the binding's errors. TF parity: tests/test_activation_layers_more.py."""
import numpy as np
import pytest
from helpers import assert_close, rand, z

from cnnfast import _core

# (negative_slope, threshold, max_value): every branch of Keras's ReLU.static_call
RELU_CASES = [(0.0, 0.0, None), (0.0, 0.0, 6.0), (0.0, 0.0, 2.5), (0.5, 0.0, None),
              (0.1, 0.0, 6.0), (0.3, 0.0, 1.5), (0.0, 0.7, None), (0.2, 0.7, None),
              (0.2, 0.7, 3.0), (1.5, 1.0, 0.5), (0.0, 2.0, 1.0)]


def relu_ref(x, slope, t, m):
    """Keras's definition in float64: x > t -> x (clipped at m); else slope * (x - t); the
    leaky case (slope, no m, t 0) is x > 0 ? x : slope * x."""
    x = x.astype(np.float64)
    slope, t = float(np.float32(slope)), float(np.float32(t))  # TF casts them to float32
    if slope != 0 and m is None and t == 0:
        return np.where(x > 0, x, slope * x)
    m = None if m is None else float(np.float32(m))
    p = np.where(x > t, x, 0.0) if t != 0 else np.maximum(x, 0.0)
    if m is not None:
        p = np.clip(p, 0.0, m)
    return p - slope * np.maximum(t - x, 0.0)


def relu_grad_ref(dy, x, slope, t, m):
    """TF's gradient of that composition: ties as ReluGrad (0 at 0), Relu6Grad (0 at 6) and
    clip_by_value's Minimum (passes at max_value) give them."""
    if slope != 0 and m is None and t == 0:
        return np.where(x > 0, dy, dy * np.float32(slope))
    relu6 = m == 6 and t == 0
    t = np.float32(t)
    pos = x > t if t != 0 else (x > 0) & (x < 6) if relu6 else x > 0
    if m is not None and not relu6:
        pos &= x <= np.float32(m)
    neg = (slope != 0) & (t - x > 0)
    return np.where(pos, dy, np.where(neg, dy * np.float32(slope), 0.0)).astype(np.float32)


def spec(slope, t, m):
    return _core.relu_spec(slope, t, m)


def run_relu(x, s):
    y = np.full_like(x, np.nan)
    _core.relu_forward(y, x, s)
    return y


def run_relu_bwd(dy, x, s):
    dx = np.full_like(x, np.nan)
    _core.relu_backward(dx, dy, x, s)
    return dx


def kinked(rng, shape, points):
    x = rand(rng, shape, 3.0)
    flat = x.reshape(-1)
    flat[:len(points)] = np.asarray(points, np.float32)[:flat.size]
    return x


@pytest.mark.parametrize("slope,t,m", RELU_CASES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 4, 3), (70, 1000)])
def test_relu_vs_reference(threads, slope, t, m, shape):
    rng = np.random.default_rng(len(shape))
    pts = [0.0, t, -t, 6.0, m or 0.0, (m or 0.0) + 1, -1e-30, 1e30]
    x = kinked(rng, shape, pts)
    s = spec(slope, t, m)
    y = run_relu(x, s)
    assert_close(y, relu_ref(x, slope, t, m), atol=1e-6, rtol=1e-6, op="relu fwd")
    dy = rand(rng, shape)
    dx = run_relu_bwd(dy, x, s)
    np.testing.assert_array_equal(dx, relu_grad_ref(dy, x, slope, t, m))
    # the same bits at the other thread count
    old = _core.num_threads()
    _core.set_num_threads(3 - threads)
    try:
        np.testing.assert_array_equal(run_relu(x, s), y)
        np.testing.assert_array_equal(run_relu_bwd(dy, x, s), dx)
    finally:
        _core.set_num_threads(old)


def test_relu_branch_choice_and_keras_examples():
    x = np.array([[-10, -5, 0.0, 5, 10]], np.float32)
    # the examples of keras.activations.relu's and keras.layers.ReLU's docstrings
    np.testing.assert_array_equal(run_relu(x, spec(0.5, 0, 10)), [[-5, -2.5, 0, 5, 10]])
    np.testing.assert_array_equal(run_relu(x, spec(0.5, 0, None)), [[-5, -2.5, 0, 5, 10]])
    np.testing.assert_array_equal(run_relu(x, spec(0, 0, 5)), [[0, 0, 0, 5, 5]])
    np.testing.assert_array_equal(run_relu(x, spec(0, 5, None)), [[0, 0, 0, 0, 10]])
    assert spec(0.5, 0, None).leaky and not spec(0.5, 0, 1).leaky
    assert spec(0, 0, 6).relu6 and not spec(0, 1, 6).relu6 and not spec(0, 0, 5).relu6
    assert spec(0, 0, 6).max_value == 6 and spec(0, 0, None).max_value is None
    assert _core.leaky_relu_spec(0.0).leaky
    # the derivative at the kinks: relu6 0 at 6, clip passes at max_value, leaky slope at 0
    one = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(run_relu_bwd(one, np.array([[6, 0, 3]], np.float32),
                                               spec(0, 0, 6)), [[0, 0, 1]])
    np.testing.assert_array_equal(run_relu_bwd(one, np.array([[5, 0, 3]], np.float32),
                                               spec(0, 0, 5)), [[1, 0, 1]])
    np.testing.assert_array_equal(run_relu_bwd(one, np.array([[0, -1, 1]], np.float32),
                                               spec(0.25, 0, None)), [[0.25, 0.25, 1]])
    np.testing.assert_array_equal(run_relu_bwd(one, np.array([[0, -1, 1]], np.float32),
                                               spec(0.25, 0, 9)), [[0, 0.25, 1]])


@pytest.mark.parametrize("slope,t,m", RELU_CASES)
def test_relu_central_differences(slope, t, m):
    rng = np.random.default_rng(3)
    x = rand(rng, (400,), 3.0)
    kinks = np.array([0.0, t, 6.0] + ([m] if m is not None else []), np.float32)
    x = x[np.abs(x[:, None] - kinks[None]).min(1) > 0.05][:60].reshape(3, 20)  # off the kinks
    h = 1e-3
    x64 = x.astype(np.float64)
    num = (relu_ref(x64 + h, slope, t, m) - relu_ref(x64 - h, slope, t, m)) / (2 * h)
    got = run_relu_bwd(np.ones_like(x), x, spec(slope, t, m))
    assert_close(got, num, atol=1e-4, rtol=1e-4, op="relu central difference")


def test_relu_in_place_and_errors():
    x = rand(np.random.default_rng(0), (6, 9), 2.0)
    s = spec(0.2, 0.5, 2.0)
    y = run_relu(x, s)
    xx = x.copy()
    _core.relu_forward(xx, xx, s)
    np.testing.assert_array_equal(xx, y)
    with pytest.raises(ValueError, match="negative_slope must be a finite value >= 0"):
        _core.relu_spec(-0.1, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        _core.relu_spec(0.0, -1.0)
    with pytest.raises(ValueError, match="max_value"):
        _core.relu_spec(0.0, 0.0, -2.0)
    with pytest.raises(ValueError, match="negative_slope"):
        _core.leaky_relu_spec(float("nan"))
    with pytest.raises(ValueError, match="out has shape"):
        _core.relu_forward(z(2, 3), z(3, 2), s)
    with pytest.raises(ValueError, match="dout has shape"):
        _core.relu_backward(z(2, 3), z(3, 3), z(2, 3), s)
    with pytest.raises(TypeError):
        _core.relu_forward(z(2, 3), z(2, 3, dtype=np.float64), s)


# ---- ELU ----
def elu_ref(x, alpha):
    x = x.astype(np.float64)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_grad_ref(dy, x, alpha):
    """d/dx alpha * (exp(x) - 1) = alpha * exp(x) below 0; at 0 TF gives alpha * dy (where's
    false branch, EluGrad passes it)."""
    x = x.astype(np.float64)
    return dy * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


def run_elu(x, alpha):
    y = np.full_like(x, np.nan)
    _core.elu_forward(y, x, alpha)
    return y


def run_elu_bwd(dy, x, alpha):
    dx = np.full_like(x, np.nan)
    _core.elu_backward(dx, dy, x, alpha)
    return dx


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0, -0.3, 0.0])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 4, 3), (70, 1000)])
def test_elu_vs_reference(threads, alpha, shape):
    rng = np.random.default_rng(len(shape))
    x = kinked(rng, shape, [0.0, -1e-30, -100.0, 100.0, -1e-6])
    y = run_elu(x, alpha)
    assert_close(y, elu_ref(x, alpha), atol=1e-6, rtol=1e-6, op="elu fwd")
    dy = rand(rng, shape)
    dx = run_elu_bwd(dy, x, alpha)
    assert_close(dx, elu_grad_ref(dy, x, alpha), atol=1e-6, rtol=1e-5, op="elu bwd")
    old = _core.num_threads()
    _core.set_num_threads(3 - threads)
    try:
        np.testing.assert_array_equal(run_elu(x, alpha), y)
        np.testing.assert_array_equal(run_elu_bwd(dy, x, alpha), dx)
    finally:
        _core.set_num_threads(old)


def test_elu_alpha_one_is_the_elu_kind():
    x = rand(np.random.default_rng(2), (9, 31), 2.0)
    y = np.empty_like(x)
    _core.activation_forward(y, x, _core.Activation.elu)
    np.testing.assert_array_equal(run_elu(x, 1.0), y)
    dy = rand(np.random.default_rng(3), x.shape)
    dx = np.empty_like(x)
    _core.activation_backward(dx, dy, y, _core.Activation.elu)
    np.testing.assert_array_equal(run_elu_bwd(dy, x, 1.0), dx)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_elu_central_differences(alpha):
    x = rand(np.random.default_rng(4), (3, 40), 2.0)
    x = np.where(np.abs(x) < 0.05, 0.5, x).astype(np.float32)
    h = 1e-3
    x64 = x.astype(np.float64)
    num = (elu_ref(x64 + h, alpha) - elu_ref(x64 - h, alpha)) / (2 * h)
    got = run_elu_bwd(np.ones_like(x), x, alpha)
    # h = 1e-3: the difference quotient's own error is h^2/6 * |f'''| <= ~1e-6 * alpha
    assert_close(got, num, atol=1e-4, rtol=1e-4, op="elu central difference")


def test_elu_errors():
    with pytest.raises(ValueError, match="out has shape"):
        _core.elu_forward(z(2, 3), z(3, 2), 1.0)
    with pytest.raises(ValueError, match="dout has shape"):
        _core.elu_backward(z(2, 3), z(2, 2), z(2, 3), 1.0)
