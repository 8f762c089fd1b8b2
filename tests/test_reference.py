"""Proves the oracle itself: central-difference gradient checks (float64) of every reference
backward, the SAME-padding table of docs/keras_semantics.md#output-size-and-same-padding,
hand-computed optimizer steps, and input validation."""
import math

import numpy as np
import pytest

import cnnfast.reference as R

# float64 central differences with h = 1e-6 have truncation error ~h^2 and rounding error
# ~1e-16/h ~ 1e-10 relative to |L|, so 1e-6 relative agreement is a meaningful check.
GC_ATOL, GC_RTOL = 1e-7, 1e-6


def numerical_grad(f, x, h=1e-6):
    """d f / d x by central differences; f returns a float, x (float64) is perturbed in place."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def gradcheck(forward, backward, inputs, wrt, seed=0, h=1e-6, atol=GC_ATOL, rtol=GC_RTOL):
    """Check backward(dy, *inputs)[j] == d sum(dy * forward(*inputs)) / d inputs[wrt[j]]."""
    rng = np.random.default_rng(seed)
    dy = rng.standard_normal(np.shape(forward(*inputs)))
    analytic = backward(dy, *inputs)
    for j, k in enumerate(wrt):
        num = numerical_grad(lambda: float((dy * forward(*inputs)).sum()), inputs[k], h)
        np.testing.assert_allclose(analytic[j], num, atol=atol, rtol=rtol,
                                   err_msg=f"gradient w.r.t. input {k}")


# ---- conv -----------------------------------------------------------------------------------

# The table of docs/keras_semantics.md#output-size-and-same-padding, row for row.
SAME_TABLE = [  # (in, k, s, out, top/left, bottom/right)
    (28, 3, 1, 28, 1, 1), (28, 4, 1, 28, 1, 2), (28, 2, 1, 28, 0, 1), (28, 3, 2, 14, 0, 1),
    (27, 3, 2, 14, 1, 1), (28, 5, 2, 14, 1, 2), (28, 2, 2, 14, 0, 0), (7, 3, 2, 4, 1, 1),
]


@pytest.mark.parametrize("in_size,k,s,out,before,after", SAME_TABLE)
def test_conv_output_size_same_table(in_size, k, s, out, before, after):
    assert R.conv_output_size(in_size, k, s, "same") == (out, before, after)


@pytest.mark.parametrize("in_size,k,s,out", [(28, 3, 1, 26), (26, 2, 2, 13), (11, 2, 2, 5),
                                             (7, 7, 1, 1), (9, 3, 2, 4), (10, 5, 3, 2)])
def test_conv_output_size_valid(in_size, k, s, out):
    assert R.conv_output_size(in_size, k, s, "valid") == (out, 0, 0)


def test_conv_output_size_same_is_ceil_and_pads_fit():
    for in_size in range(1, 20):
        for k in range(1, 6):
            for s in range(1, 4):
                out, pb, pa = R.conv_output_size(in_size, k, s, "same")
                assert out == math.ceil(in_size / s)
                assert 0 <= pa - pb <= 1
                # The last window ends exactly at the padded edge (or inside it when no pad).
                assert (out - 1) * s + k <= in_size + pb + pa


def test_conv_forward_matches_direct_loop():
    """The im2col formulation equals the textbook loop, incl. asymmetric SAME padding."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((4, 3, 3, 2)), np.ones(2)
    for strides, padding in [((1, 1), "valid"), ((2, 2), "same"), ((1, 2), "same")]:
        y = R.conv2d_forward(x, w, b, strides, padding)
        (OH, pt, _), (OW, pl, _) = (R.conv_output_size(6, 4, strides[0], padding),
                                    R.conv_output_size(5, 3, strides[1], padding))
        ref = np.zeros((2, OH, OW, 2)) + b
        for i in range(OH):
            for j in range(OW):
                for di in range(4):
                    for dj in range(3):
                        ih, iw = i * strides[0] + di - pt, j * strides[1] + dj - pl
                        if 0 <= ih < 6 and 0 <= iw < 5:
                            ref[:, i, j] += x[:, ih, iw] @ w[di, dj]
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 2)])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_conv_gradients(k, strides, padding):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 5, 7, 2))
    w = rng.standard_normal((k, k, 2, 3))
    b = rng.standard_normal(3)

    gradcheck(lambda x, w, b: R.conv2d_forward(x, w, b, strides, padding),
              lambda dy, x, w, b: R.conv2d_backward(dy, x, w, strides, padding),
              [x, w, b], wrt=[0, 1, 2])


def test_conv_rectangular_kernel_gradients():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((1, 6, 5, 2)), rng.standard_normal((3, 2, 2, 2))
    gradcheck(lambda x, w: R.conv2d_forward(x, w, None, (2, 1), "same"),
              lambda dy, x, w: R.conv2d_backward(dy, x, w, (2, 1), "same")[:2],
              [x, w], wrt=[0, 1])


# ---- pooling --------------------------------------------------------------------------------

def distinct_values(rng, shape):
    """Values at least 0.1 apart, so a 1e-6 perturbation never changes a max-pool argmax."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0


POOL_CASES = [((2, 2), None, "valid"), ((2, 2), (2, 2), "same"), ((3, 3), (2, 2), "valid"),
              ((3, 3), (2, 2), "same"), ((3, 3), (1, 1), "same"), ((2, 2), (1, 1), "valid"),
              ((3, 2), (1, 2), "same")]


@pytest.mark.parametrize("pool,strides,padding", POOL_CASES)
def test_maxpool_gradients(pool, strides, padding):
    rng = np.random.default_rng(0)
    x = distinct_values(rng, (2, 7, 5, 2))
    gradcheck(lambda x: R.maxpool2d_forward(x, pool, strides, padding),
              lambda dy, x: (R.maxpool2d_backward(dy, x, pool, strides, padding),),
              [x], wrt=[0])


@pytest.mark.parametrize("pool,strides,padding", POOL_CASES)
def test_avgpool_gradients(pool, strides, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 5, 2))
    gradcheck(lambda x: R.avgpool2d_forward(x, pool, strides, padding),
              lambda dy, x: (R.avgpool2d_backward(dy, x, pool, strides, padding),),
              [x], wrt=[0])


def test_maxpool_ties_go_to_first_in_row_major_scan():
    x = np.zeros((1, 4, 4, 1))
    x[0, 1, 0, 0] = x[0, 0, 1, 0] = 5.0  # tie in window (0, 0): (0, 1) comes first in the scan
    idx = R.maxpool2d_argmax(x, (2, 2))
    assert idx[0, 0, 0, 0] == 0 * 4 + 1
    assert (idx[0, :, :, 0] == [[1, 2], [8, 10]]).all()  # all-zero windows: first cell wins
    dx = R.maxpool2d_backward(np.ones((1, 2, 2, 1)), x, (2, 2))
    assert dx[0, 0, 1, 0] == 1.0 and dx[0, 1, 0, 0] == 0.0


def test_maxpool_padding_never_wins():
    x = np.full((1, 3, 3, 1), -np.inf)  # all -inf: the first IN-BOUNDS cell must still win
    x[0, 2, 2, 0] = -1e30
    idx = R.maxpool2d_argmax(x, (2, 2), (2, 2), "same")  # SAME on 3: 0 before, 1 after
    assert (idx[0, :, :, 0] == [[0, 2], [6, 8]]).all()
    assert R.maxpool2d_forward(-np.ones((1, 3, 3, 1)), (2, 2), (2, 2), "same").max() == -1.0


def test_avgpool_same_divides_by_in_bounds_count():
    x = np.ones((1, 3, 3, 1))
    x[0, 2, 2, 0] = 4.0
    y = R.avgpool2d_forward(x, (2, 2), (2, 2), "same")
    np.testing.assert_allclose(y[0, :, :, 0], [[1.0, 1.0], [1.0, 4.0]])


# ---- dense, activations, dropout --------------------------------------------------------------

@pytest.mark.parametrize("B", [1, 4])
def test_dense_gradients(B):
    rng = np.random.default_rng(B)
    x, w, b = rng.standard_normal((B, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    gradcheck(R.dense_forward, lambda dy, x, w, b: R.dense_backward(dy, x, w), [x, w, b],
              wrt=[0, 1, 2])


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_gradients(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6)) * 2
    x[np.abs(x) < 0.1] = 0.5  # keep ReLU's kink out of the finite-difference stencil
    gradcheck(lambda x: R.activation_forward(x, name),
              lambda dy, x: (R.activation_backward(dy, R.activation_forward(x, name), name),),
              [x], wrt=[0])


def test_relu_derivative_at_zero_is_zero():
    dx = R.activation_backward(np.ones(3), R.activation_forward(np.array([-1.0, 0.0, 1.0]),
                                                                "relu"), "relu")
    assert dx.tolist() == [0.0, 0.0, 1.0]


def test_activations_extreme_inputs_are_finite():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    for name in ["sigmoid", "tanh", "softmax"]:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = R.activation_forward(x, name)
        assert np.isfinite(y).all()
    np.testing.assert_allclose(R.activation_forward(x, "softmax"), [[0.0, 0.0, 1.0]])


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5])
def test_dropout_gradients(rate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    mask = (rng.random((4, 5)) >= rate).astype(np.uint8)
    gradcheck(lambda x: R.dropout_forward(x, mask, rate),
              lambda dy, x: (R.dropout_backward(dy, mask, rate),), [x], wrt=[0])
    if rate == 0.0:
        np.testing.assert_array_equal(R.dropout_forward(x, np.ones_like(mask), 0.0), x)


# ---- losses ---------------------------------------------------------------------------------

def lossgrad(loss_fn, a, h=1e-6, atol=GC_ATOL, rtol=GC_RTOL):
    """Compare loss_fn(a)[1] with the numerical gradient of sum(loss_fn(a)[0])."""
    analytic = loss_fn(a)[1]
    num = numerical_grad(lambda: float(loss_fn(a)[0].sum()), a, h)
    np.testing.assert_allclose(analytic, num, atol=atol, rtol=rtol)


def test_softmax_xent_sparse_gradient_and_value():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((4, 5)) * 3, np.array([0, 4, 2, 2])
    lossgrad(lambda z: R.softmax_xent_sparse(z, y), z)
    loss, _ = R.softmax_xent_sparse(z, y)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(4), y]), rtol=1e-12)


def test_softmax_xent_dense_gradient():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 5)) * 3
    t = rng.random((4, 5))
    t /= t.sum(1, keepdims=True)  # TF's backprop (softmax - t) is the derivative when sum t = 1
    lossgrad(lambda z: R.softmax_xent_dense(z, t), z)


def test_softmax_xent_extreme_logits_are_stable():
    z = np.array([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]])
    loss, d = R.softmax_xent_sparse(z, np.array([0, 0]))
    np.testing.assert_allclose(loss, [0.0, 200.0], atol=1e-12)
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d[1], [-1.0, 1.0, 0.0], atol=1e-40)


def probs_with_clipping(rng):
    p = rng.random((5, 4)) + 0.05
    p /= p.sum(1, keepdims=True)
    p[1] = [1e-9, 0.5, 0.5 - 1e-9, 0.0]      # below eps, incl. an exact zero
    p[2] = [1.0, 0.0, 0.0, 0.0]              # above 1 - eps and below eps
    p[3] = [0.7, 1e-8, 0.3, 1e-12]
    return p


def test_xent_probs_sparse_gradient_incl_clipped_cells():
    rng = np.random.default_rng(2)
    p, y = probs_with_clipping(rng), np.array([0, 0, 1, 1, 3])  # rows 1-3 hit the clip at y
    # h = 1e-10 keeps clipped cells (<= 1e-8 or == 1) clipped during the difference; rounding
    # error is then ~1e-16/1e-10 = 1e-6 relative to L ~ 10.
    lossgrad(lambda p: R.xent_probs_sparse(p, y), p, h=1e-10, atol=1e-4, rtol=1e-5)
    loss, d = R.xent_probs_sparse(p, y)
    assert d[1, 0] == 0.0 and d[2, 1] == 0.0 and d[3, 1] == 0.0   # zero grad where clipped
    np.testing.assert_allclose(loss[2], -np.log(1e-7 / (1 - 1e-7 + 3e-7)), rtol=1e-12)
    assert loss.max() <= -np.log(1e-7 / (1 + 3e-7)) + 1e-9          # ceiling ~ 16.118


def test_xent_probs_dense_gradient_incl_clipped_cells():
    rng = np.random.default_rng(3)
    p = probs_with_clipping(rng) * 2.0  # unnormalised: the loss normalises first
    t = rng.random((5, 4))
    t /= t.sum(1, keepdims=True)
    lossgrad(lambda p: R.xent_probs_dense(p, t), p, h=1e-10, atol=1e-4, rtol=1e-5)
    loss, d = R.xent_probs_dense(p, t)
    # Row 2 is [2, 0, 0, 0]: r = [1, 0, 0, 0] is clipped everywhere, so the gradient vanishes.
    assert (d[2] == 0).all()
    np.testing.assert_allclose(loss[2], -(t[2, 0] * np.log(1 - 1e-7)
                                          + t[2, 1:].sum() * np.log(1e-7)), rtol=1e-12)


# ---- optimizers: hand-computed single steps ----------------------------------------------------

def test_one_minus_beta_is_rounded_after_the_double_subtraction():
    assert np.float32(1.0 - 0.9) == np.float32(0.1)
    assert np.float32(1.0) - np.float32(0.9) == np.float32(0.100000024)  # the wrong order
    assert np.float32(1.0 - 0.9) != np.float32(1.0) - np.float32(0.9)
    # Adam from m = 0 with g = 1: m = (1 - 0) * f32(1 - beta1) must be exactly 0.1f.
    _, m, v, _ = R.adam_update(np.zeros(1, np.float32), np.zeros(1, np.float32),
                               np.zeros(1, np.float32), np.ones(1, np.float32), 1e-3)
    assert m[0] == np.float32(0.1) and v[0] == np.float32(1.0 - 0.999)
    _, v, _, _ = R.rmsprop_update(np.zeros(1, np.float32), np.zeros(1, np.float32), None, None,
                                  np.ones(1, np.float32), 1e-3)
    assert v[0] == np.float32(0.1)


def test_powf_is_the_c_library_pow():
    from cnnfast.reference.optimizers import powf
    # 0.9f = 0.89999997615814209; its 4th power is 0.65609993..., whose nearest float32 is
    # 0.6560999155 (np.power on float32 scalars gives 0.6561 = 0.6560999751, one ulp off).
    assert powf(0.9, 4) == np.float32(0.6560999155044556)
    assert powf(0.999, 1) == np.float32(0.999)
    assert powf(0.5, 3) == np.float32(0.125)


def test_adam_single_step_hand_computed():
    w, g, lr = 1.0, 0.5, 1e-3
    m = 0.1 * g                                                        # 0.05
    v = 0.001 * g * g                                                  # 2.5e-4
    alpha = lr * math.sqrt(1 - 0.999) / (1 - 0.9)                      # 3.16227766e-4
    expected = w - m * alpha / (math.sqrt(v) + 1e-7)                   # 0.99900000632...
    one = np.ones(3, np.float32)
    w1, m1, v1, vh = R.adam_update(one * w, one * 0, one * 0, one * g, lr)
    assert vh is None
    np.testing.assert_allclose(w1, expected, rtol=1e-7)
    np.testing.assert_allclose(m1, m, rtol=1e-7)
    np.testing.assert_allclose(v1, v, rtol=1e-7)
    assert w1.dtype == m1.dtype == v1.dtype == np.float32
    # Step 3 with state: bias correction uses t = 3; amsgrad keeps the larger vhat.
    w3, m3, v3, vh3 = R.adam_update(one, one * 0.2, one * 0.01, one * 0.1, 0.01, step=3,
                                    vhat=one * 0.02)
    m_ = 0.2 + (0.1 - 0.2) * 0.1
    v_ = 0.01 + (0.01 - 0.01) * 0.001
    a_ = 0.01 * math.sqrt(1 - 0.999 ** 3) / (1 - 0.9 ** 3)
    np.testing.assert_allclose(vh3, 0.02, rtol=1e-7)
    np.testing.assert_allclose(w3, 1 - m_ * a_ / (math.sqrt(0.02) + 1e-7), rtol=1e-7)
    np.testing.assert_allclose(v3, v_, rtol=1e-7)


def test_sgd_single_step_hand_computed():
    one = np.ones(2, np.float32)
    w, vel = R.sgd_update(one, None, one * 0.5, 0.1)
    np.testing.assert_allclose(w, 0.95, rtol=1e-7)
    assert vel is None
    w, vel = R.sgd_update(one, one * 0.2, one * 0.5, 0.1, momentum=0.9)
    np.testing.assert_allclose(vel, 0.2 * 0.9 - 0.05, rtol=1e-6)     # 0.13
    np.testing.assert_allclose(w, 1.13, rtol=1e-7)
    w, vel = R.sgd_update(one, one * 0.2, one * 0.5, 0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(w, 1 + 0.13 * 0.9 - 0.05, rtol=1e-7)  # 1.067


def test_rmsprop_single_step_hand_computed():
    one = np.ones(2, np.float32)
    g, lr = 2.0, 0.01
    v = 0.9 * 0.5 + 0.1 * g * g                                      # 0.85
    w, v1, mom, avg = R.rmsprop_update(one, one * 0.5, None, None, one * g, lr)
    np.testing.assert_allclose(v1, v, rtol=1e-7)
    np.testing.assert_allclose(w, 1 - lr * g / math.sqrt(v + 1e-7), rtol=1e-7)
    assert mom is None and avg is None
    a = 0.9 * 0.1 + 0.1 * g                                          # 0.29
    incr = lr * g / math.sqrt(v - a * a + 1e-7)
    m = 0.5 * 0.3 + incr
    w, v1, mom, avg = R.rmsprop_update(one, one * 0.5, one * 0.3, one * 0.1, one * g, lr,
                                       momentum=0.5, centered=True)
    np.testing.assert_allclose(avg, a, rtol=1e-7)
    np.testing.assert_allclose(mom, m, rtol=1e-6)
    np.testing.assert_allclose(w, 1 - m, rtol=1e-7)


def test_optimizers_do_not_mutate_inputs():
    rng = np.random.default_rng(0)
    arrs = [rng.random(5).astype(np.float32) for _ in range(5)]
    copies = [a.copy() for a in arrs]
    R.adam_update(arrs[0], arrs[1], arrs[2], arrs[3], 1e-3, vhat=arrs[4])
    R.sgd_update(arrs[0], arrs[1], arrs[3], 1e-2, momentum=0.9, nesterov=True)
    R.rmsprop_update(arrs[0], arrs[1], arrs[2], arrs[4], arrs[3], 1e-3, momentum=0.5,
                     centered=True)
    for a, c in zip(arrs, copies):
        np.testing.assert_array_equal(a, c)


# ---- validation -----------------------------------------------------------------------------

def test_reference_validates_inputs():
    x, w = np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 1))
    cases = [
        (lambda: R.conv_output_size(3, 5, 1, "valid"), "larger than input"),
        (lambda: R.conv_output_size(3, 2, 0, "same"), "positive"),
        (lambda: R.conv2d_forward(x, w, padding="full"), "padding"),
        (lambda: R.conv2d_forward(x, np.zeros((3, 3, 1, 1))), "input channels"),
        (lambda: R.conv2d_forward(x[0], w), "4-D"),
        (lambda: R.conv2d_forward(x, w, np.zeros(2)), "b has shape"),
        (lambda: R.conv2d_backward(np.zeros((1, 3, 3, 1)), x, w), "dy has shape"),
        (lambda: R.maxpool2d_forward(x, (5, 5)), "larger than input"),
        (lambda: R.avgpool2d_forward(x, (2, 2), (0, 1)), "strides"),
        (lambda: R.maxpool2d_backward(np.zeros((1, 1, 1, 2)), x, (2, 2)), "dy has shape"),
        (lambda: R.dense_forward(np.zeros((2, 3)), np.zeros((4, 5))), "does not match"),
        (lambda: R.activation_forward(np.zeros(3), "mish"), "unknown activation"),
        (lambda: R.activation_backward(np.zeros(3), np.zeros(4), "relu"), "shape"),
        (lambda: R.softmax_xent_sparse(np.zeros((2, 3)), np.array([0, 3])), "outside"),
        (lambda: R.softmax_xent_sparse(np.zeros((2, 3)), np.array([0.0, 1.0])), "integers"),
        (lambda: R.softmax_xent_dense(np.zeros((2, 3)), np.zeros((2, 4))), "shape"),
        (lambda: R.xent_probs_sparse(np.ones((2, 3)), np.array([0, 1]), eps=-1), "eps"),
        (lambda: R.dropout_forward(np.zeros(3), np.ones(3, np.uint8), 1.0), "rate"),
        (lambda: R.dropout_forward(np.zeros(3), np.ones(4, np.uint8), 0.5), "shape"),
        (lambda: R.adam_update(np.zeros(3), np.zeros(3), np.zeros(2), np.zeros(3), 1e-3),
         "shape"),
        (lambda: R.adam_update(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), 1e-3,
                               step=0), "step"),
        (lambda: R.sgd_update(np.zeros(3), None, np.zeros(3), 0.1, momentum=0.9), "velocity"),
        (lambda: R.rmsprop_update(np.zeros(3), np.zeros(3), None, None, np.zeros(3), 0.1,
                                  centered=True), "centered"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()
