"""_core.batchnorm_forward / batchnorm_backward against the float64 NumPy reference
(cnnfast/reference/normalization.py), the reference's backward against central differences,
and the kernel's determinism across thread counts.

Tolerances are the fp32 defaults (atol 1e-5, rtol 1e-4) unless a comment says why."""
import numpy as np
import pytest
from helpers import assert_close, rand

import cnnfast.reference as R
from cnnfast import _core

EPS, MOMENTUM = 1e-3, 0.99

# (shape of x): NHWC conv outputs and (B, units) dense outputs; odd sizes, one row, one
# channel, and more rows than one reduction block (256) so the blocks are really summed.
SHAPES = [(1, 1), (3, 1), (1, 5), (7, 3), (32, 128), (2, 5, 7, 3), (3, 13, 11, 8),
          (4, 26, 26, 32), (1, 1, 1, 4)]


def bn_inputs(shape, seed, affine=True):
    rng = np.random.default_rng(seed)
    C = shape[-1]
    x = rand(rng, shape, 2.0) + np.float32(0.5)     # a non-zero mean and spread per channel
    gamma = (rand(rng, (C,), 0.3) + 1).astype(np.float32) if affine else None
    beta = rand(rng, (C,), 0.3) if affine else None
    mm = rand(rng, (C,), 0.1)
    mv = (np.abs(rand(rng, (C,))) + 0.5).astype(np.float32)
    return x, gamma, beta, mm, mv


def core_forward(x, gamma, beta, mm, mv, training, eps=EPS, momentum=MOMENTUM):
    """(out, mean, rstd, moving_mean, moving_var) with the moving stats updated in copies."""
    C = x.shape[-1]
    out, mean, rstd = np.empty_like(x), np.empty(C, np.float32), np.empty(C, np.float32)
    mm, mv = mm.copy(), mv.copy()
    _core.batchnorm_forward(out, mean, rstd, mm, mv, x, gamma, beta, eps, momentum, training)
    return out, mean, rstd, mm, mv


def core_backward(dy, x, mean, rstd, gamma, training, parts=(True, True, True)):
    C = x.shape[-1]
    dx = np.empty_like(x) if parts[0] else None
    dg = np.empty(C, np.float32) if parts[1] else None
    db = np.empty(C, np.float32) if parts[2] else None
    _core.batchnorm_backward(dx, dg, db, dy, x, mean, rstd, gamma, training)
    return dx, dg, db


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batchnorm_matches_reference(threads, shape, training, affine):
    x, gamma, beta, mm, mv = bn_inputs(shape, sum(shape), affine)
    out, mean, rstd, mm2, mv2 = core_forward(x, gamma, beta, mm, mv, training)
    y, rmean, rvar, rmm, rmv = R.batchnorm_forward(x, gamma, beta, mm, mv, EPS, MOMENTUM,
                                                   training)
    op = "batchnorm"
    assert_close(out, y, name="out", op=f"{op} fwd")
    assert_close(mean, rmean, name="mean", op=f"{op} fwd mean")
    assert_close(rstd, 1.0 / np.sqrt(rvar + EPS), name="rstd", op=f"{op} fwd rstd")
    assert_close(mm2, rmm, name="moving_mean", op=f"{op} moving_mean")
    assert_close(mv2, rmv, name="moving_var", op=f"{op} moving_var")
    dy = rand(np.random.default_rng(1), shape)
    dx, dg, db = core_backward(dy, x, mean, rstd, gamma, training)
    rdx, rdg, rdb = R.batchnorm_backward(dy, x, gamma, rmean, rvar, EPS, training)
    M = x.size // shape[-1]
    # dgamma and dbeta sum M products of O(1) terms (up to 2704 rows): the sum's size and its
    # fp32 rounding grow with M, as for dense/conv bias gradients (helpers.sum_tol).
    sum_atol = max(1e-5, 1e-6 * M)
    assert_close(dx, rdx, name="dinp", op=f"{op} bwd dinp")
    assert_close(dg, rdg, atol=sum_atol, name="dgamma", op=f"{op} bwd dgamma")
    assert_close(db, rdb, atol=sum_atol, name="dbeta", op=f"{op} bwd dbeta")


def test_batchnorm_moving_stats_follow_keras_float32_rule():
    """moving = moving * f32(momentum) + batch * f32(1 - momentum), 1 - momentum in double."""
    x, gamma, beta, mm, mv = bn_inputs((6, 9, 4), 3)
    _, mean, rstd, mm2, mv2 = core_forward(x, gamma, beta, mm, mv, True, momentum=0.9)
    var = (1.0 / rstd.astype(np.float64)) ** 2 - EPS       # approximately the batch variance
    keep, take = np.float32(0.9), np.float32(1.0 - 0.9)
    np.testing.assert_array_equal(mm2, mm * keep + mean * take)
    assert_close(mv2, mv * keep + var.astype(np.float32) * take, rtol=1e-4)
    # Keras's moving variance takes the biased batch variance (tf.nn.moments).
    x2 = x.reshape(-1, 4).astype(np.float64)
    assert_close(mv2, mv * 0.9 + x2.var(axis=0, ddof=0) * 0.1)


def test_batchnorm_inference_leaves_moving_stats():
    x, gamma, beta, mm, mv = bn_inputs((5, 3), 0)
    _, mean, rstd, mm2, mv2 = core_forward(x, gamma, beta, mm, mv, False)
    np.testing.assert_array_equal(mm2, mm)
    np.testing.assert_array_equal(mv2, mv)
    np.testing.assert_array_equal(mean, mm)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_reference_backward_by_central_differences(training):
    """The reference's gradient is the derivative of its forward (float64)."""
    rng = np.random.default_rng(7)
    shape = (3, 2, 3, 2)
    x = rng.standard_normal(shape) * 1.5 + 0.3
    gamma, beta = rng.standard_normal(2) + 1, rng.standard_normal(2)
    mm, mv = rng.standard_normal(2) * 0.1, np.abs(rng.standard_normal(2)) + 0.5
    w = rng.standard_normal(shape)      # loss = sum(w * y)

    def loss(x_, g_, b_):
        return float((w * R.batchnorm_forward(x_, g_, b_, mm, mv, EPS, MOMENTUM,
                                              training)[0]).sum())

    _, mean, var, _, _ = R.batchnorm_forward(x, gamma, beta, mm, mv, EPS, MOMENTUM, training)
    dx, dg, db = R.batchnorm_backward(w, x, gamma, mean, var, EPS, training)
    h = 1e-6
    for arr, grad, name in ((x, dx, "dx"), (gamma, dg, "dgamma"), (beta, db, "dbeta")):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            args = {"x": x.copy(), "g": gamma.copy(), "b": beta.copy()}
            key = {"dx": "x", "dgamma": "g", "dbeta": "b"}[name]
            args[key][i] += h
            up = loss(args["x"], args["g"], args["b"])
            args[key][i] -= 2 * h
            down = loss(args["x"], args["g"], args["b"])
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, num, atol=1e-6, rtol=1e-5, err_msg=name)


def test_batchnorm_kernel_gradient_by_central_differences():
    """The kernel's own dinp against float64 central differences of the reference forward."""
    x, gamma, beta, mm, mv = bn_inputs((4, 3, 2), 11)
    _, mean, rstd, _, _ = core_forward(x, gamma, beta, mm, mv, True)
    w = rand(np.random.default_rng(2), x.shape)
    dx, dg, db = core_backward(w, x, mean, rstd, gamma, True)
    x64 = x.astype(np.float64)
    num, h = np.zeros_like(x64), 1e-5
    for i in np.ndindex(x.shape):
        for sign in (1, -1):
            xp = x64.copy()
            xp[i] += sign * h
            y = R.batchnorm_forward(xp, gamma, beta, mm, mv, EPS, MOMENTUM, True)[0]
            num[i] += sign * float((w * y).sum()) / (2 * h)
    assert_close(dx, num, op="batchnorm bwd dinp (central differences)")


@pytest.mark.parametrize("parts", [(False, True, True), (True, False, False),
                                   (False, False, False)])
def test_batchnorm_backward_optional_outputs(parts):
    x, gamma, beta, mm, mv = bn_inputs((9, 4), 5)
    _, mean, rstd, _, _ = core_forward(x, gamma, beta, mm, mv, True)
    dy = rand(np.random.default_rng(3), x.shape)
    full = core_backward(dy, x, mean, rstd, gamma, True)
    some = core_backward(dy, x, mean, rstd, gamma, True, parts)
    for want, got, a in zip(full, some, parts):
        if a:
            np.testing.assert_array_equal(got, want)
        else:
            assert got is None


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_is_bit_identical_for_1_and_2_threads(training):
    """Fixed row blocks: the same sums, in the same order, for any thread count."""
    x, gamma, beta, mm, mv = bn_inputs((16, 26, 26, 32), 9)   # 10 816 rows: 43 blocks
    dy = rand(np.random.default_rng(4), x.shape)
    old, runs = _core.num_threads(), []
    try:
        for t in (1, 2):
            _core.set_num_threads(t)
            f = core_forward(x, gamma, beta, mm, mv, training)
            runs.append(f + core_backward(dy, x, f[1], f[2], gamma, training))
    finally:
        _core.set_num_threads(old)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_batchnorm_binding_errors():
    x, gamma, beta, mm, mv = bn_inputs((4, 3), 0)
    out, mean, rstd = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    with pytest.raises(ValueError, match="gamma"):
        _core.batchnorm_forward(out, mean, rstd, mm, mv, x, np.ones(4, np.float32), beta,
                                EPS, MOMENTUM, True)
    with pytest.raises(ValueError, match="out"):
        _core.batchnorm_forward(np.empty((4, 4), np.float32), mean, rstd, mm, mv, x, gamma,
                                beta, EPS, MOMENTUM, True)
    with pytest.raises(TypeError, match="moving_var"):
        _core.batchnorm_forward(out, mean, rstd, mm, mv.astype(np.float64), x, gamma, beta,
                                EPS, MOMENTUM, True)
    with pytest.raises(ValueError, match="eps"):
        _core.batchnorm_forward(out, mean, rstd, mm, mv, x, gamma, beta, 0.0, MOMENTUM, True)
    with pytest.raises(ValueError, match="dinp must not be dout"):
        _core.batchnorm_backward(out, None, None, out, x, mean, rstd, gamma, True)
