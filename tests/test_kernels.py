"""Every cnnfast._core kernel against the NumPy reference, forward and backward, on many shapes.

The kernels compute in float32 in any summation order; the reference in float64. Tolerances
are the fp32 defaults (atol 1e-5, rtol 1e-4) unless a comment says why a check needs more.
Optimizer steps and dropout masks are bit-exact by contract and are compared exactly.
"""
import itertools

import numpy as np
import pytest
from helpers import (
    ATOL,
    assert_close,
    check_op,
    core_activation_backward,
    core_activation_forward,
    core_avgpool2d_backward,
    core_avgpool2d_forward,
    core_conv2d_backward,
    core_conv2d_forward,
    core_dense_backward,
    core_dense_forward,
    core_dropout_backward,
    core_dropout_forward,
    core_maxpool2d_backward,
    core_maxpool2d_forward,
    core_xent,
    rand,
)

import cnnfast.reference as R
from cnnfast import _core


def sum_tol(n_terms):
    """atol for an fp32 result that is a sum of n_terms products of O(1) numbers.

    Such a sum is O(sqrt(n)) in size and its rounding error, in any summation order, grows
    about like eps32 * n (worst case for blocked/pairwise orders is smaller, for a plain loop
    larger); 1e-6 * n keeps a 10x margin over what we observe while still catching any
    indexing error, which produces O(1) differences.
    """
    return max(ATOL, 1e-6 * n_terms)


# ---- Conv2D ---------------------------------------------------------------------------------

SIZES = [(7, 9), (13, 13), (28, 28)]
KERNELS = [1, 2, 3, 5]
STRIDES = [(1, 1), (2, 2), (1, 2)]
PADDINGS = ["valid", "same"]
CONV_GRID = list(itertools.product(SIZES, KERNELS, STRIDES, PADDINGS))


def conv_case(i, size, k, strides, padding):
    """Cycle channels, filters, batch and bias through the grid so each value is covered on
    every size/kernel/stride/padding axis without the full Cartesian product."""
    C = [1, 3, 8][i % 3]
    OC = [1, 4, 16][(i // 3) % 3]
    N = [1, 3][(i // 2) % 2]
    if size == (28, 28):  # keep the big images cheap: the reference im2col is (N*784, K)
        N, OC = 1, min(OC, 4)
    use_bias = i % 4 != 3
    return N, C, OC, use_bias


def run_conv_check(size, k, strides, padding, N, C, OC, use_bias, seed, with_dinp=True):
    rng = np.random.default_rng(seed)
    H, W = size
    K = k * k * C
    x = rand(rng, (N, H, W, C))
    w = rand(rng, (k, k, C, OC), 1.0 / np.sqrt(K))  # Glorot-like scale: outputs are O(1)
    b = rand(rng, (OC,)) if use_bias else None
    OH = R.conv_output_size(H, k, strides[0], padding)[0]
    OW = R.conv_output_size(W, k, strides[1], padding)[0]
    M = N * OH * OW

    def ref_bwd(dy, x, w, b):
        dx, dw, db = R.conv2d_backward(dy, x, w, strides, padding)
        return (dx if with_dinp else None), dw, (db if use_bias else None)

    out, grads = check_op(
        "conv2d",
        lambda x, w, b: core_conv2d_forward(x, w, b, strides, padding),
        lambda x, w, b: R.conv2d_forward(x, w, b, strides, padding),
        [x, w, b],
        lambda dy, x, w, b: core_conv2d_backward(dy, x, w, strides, padding, with_dinp,
                                                 use_bias),
        ref_bwd,
        atol=sum_tol(K),  # y sums KH*KW*C products
        # dw and db sum N*OH*OW products (up to 784 here), dx at most KH*KW*OC per cell
        grad_atol=sum_tol(max(M, k * k * OC)),
        grad_names=["dinp", "dweight", "dbias"], seed=seed)
    assert out[0].dtype == np.float32
    if not with_dinp:
        assert grads[0] is None


@pytest.mark.parametrize("i,size,k,strides,padding",
                         [(i,) + c for i, c in enumerate(CONV_GRID)],
                         ids=[f"{s[0]}x{s[1]}-k{k}-s{st[0]}{st[1]}-{p}"
                              for s, k, st, p in CONV_GRID])
def test_conv2d(i, size, k, strides, padding):
    N, C, OC, use_bias = conv_case(i, size, k, strides, padding)
    run_conv_check(size, k, strides, padding, N, C, OC, use_bias, seed=i)


@pytest.mark.parametrize("k,strides,padding", [(3, (1, 1), "same"), (2, (2, 2), "same"),
                                               (5, (1, 2), "valid"), (1, (1, 1), "valid")])
def test_conv2d_threads(threads, k, strides, padding):
    run_conv_check((13, 11), k, strides, padding, N=3, C=3, OC=16, use_bias=True, seed=k)


@pytest.mark.parametrize("with_dinp", [True, False])
def test_conv2d_many_chunks(with_dinp):
    """A batch of many L2-sized chunks (conv2d_cpu.cpp: ~128K col floats each, so 6 images of
    12x12x16 with a 3x3 kernel): more chunks than weight-gradient groups (8), groups of unequal
    length, chunk-parallel threads. Right against the reference, and bit-identical for 1 and 2
    threads (the groups depend on the shape only)."""
    run_conv_check((12, 12), 3, (1, 1), "same", N=70, C=16, OC=8, use_bias=True, seed=70,
                   with_dinp=with_dinp)
    rng = np.random.default_rng(71)
    x, w = rand(rng, (70, 12, 12, 16)), rand(rng, (3, 3, 16, 8), 0.1)
    b, dy = rand(rng, (8,)), rand(rng, (70, 12, 12, 8))
    old, runs = _core.num_threads(), []
    try:
        for t in (1, 2):
            _core.set_num_threads(t)
            runs.append((core_conv2d_forward(x, w, b, (1, 1), "same"),)
                        + core_conv2d_backward(dy, x, w, (1, 1), "same", with_dinp))
    finally:
        _core.set_num_threads(old)
    for a, c in zip(*runs):
        if a is not None:
            np.testing.assert_array_equal(a, c)


# The weight gradient of a layer with few taps without im2col (conv2d_taps_cpu.cpp, K <= 24):
# one tap group (K <= 11) and two (K = 12..24), channel blocks of 8 with partial ones, strides,
# both paddings, odd sizes; K = 25 takes the im2col path (control).
SMALL_K = [(3, 1, 32, (1, 1), "same"), (3, 1, 13, (2, 2), "same"), (3, 2, 8, (1, 2), "valid"),
           (2, 5, 1, (1, 1), "same"), (3, 1, 5, (2, 1), "valid"), (4, 1, 17, (3, 3), "same"),
           (5, 1, 9, (1, 1), "same"), (1, 3, 12, (2, 2), "valid")]


@pytest.mark.parametrize("k,C,OC,strides,padding", SMALL_K)
def test_conv2d_small_k_weight_gradient(threads, k, C, OC, strides, padding):
    for size, N, with_dinp in [((7, 9), 3, False), ((13, 13), 2, False), ((9, 8), 2, True)]:
        run_conv_check(size, k, strides, padding, N=N, C=C, OC=OC, use_bias=OC % 2 == 1,
                       seed=k * 100 + C * 10 + OC, with_dinp=with_dinp)


@pytest.mark.skipif("avx2" not in _core.build_info()["supported_isas"], reason="no AVX2 here")
def test_conv2d_small_k_is_the_same_for_every_isa():
    """Multiply and add are separate in both versions: AVX2 and scalar round alike."""
    rng = np.random.default_rng(9)
    x, w, dy = rand(rng, (5, 11, 10, 2)), rand(rng, (3, 3, 2, 21)), rand(rng, (5, 11, 10, 21))
    runs = []
    try:
        for isa in ("avx2", "generic"):
            _core.set_gemm_isa(isa)
            runs.append(core_conv2d_backward(dy, x, w, (1, 1), "same", with_dinp=False))
    finally:
        _core.set_gemm_isa("auto")
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


# The few-tap forward (conv2d_taps_cpu.cpp, K <= 11, not pointwise) runs its AVX2 version on avx2
# and avx512, and on generic the GEMM path does the layer: K = 9, 8, 11, 3; partial channel
# blocks; strides; both paddings.
FEW_TAP_FWD = [(3, 1, 32, (1, 1), "same"), (3, 1, 13, (2, 2), "same"), (2, 2, 17, (1, 2), "valid"),
               (1, 11, 8, (2, 1), "same"), (1, 3, 5, (2, 2), "valid")]


def _im2col(x, k, strides, padding):
    """(N*OH*OW, k*k*C) patches, column (kh*k + kw)*C + c as the weight (KH,KW,C,OC)."""
    (OH, pt, pb), (OW, pl, pr) = (R.conv_output_size(x.shape[1], k, strides[0], padding),
                                  R.conv_output_size(x.shape[2], k, strides[1], padding))
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    cols = [xp[:, i:i + (OH - 1) * strides[0] + 1:strides[0], j:j + (OW - 1) * strides[1] + 1:
               strides[1]] for i in range(k) for j in range(k)]
    return np.ascontiguousarray(np.stack(cols, axis=3).reshape(-1, k * k * x.shape[3]))


@pytest.mark.parametrize("k,C,OC,strides,padding", FEW_TAP_FWD)
def test_conv2d_few_tap_forward_for_every_isa(k, C, OC, strides, padding):
    """On every ISA this CPU supports: bit-identical to im2col + that ISA's GEMM (plus the bias,
    one float32 add as in the GEMM epilogue), and right against the float64 reference; so
    CNNFAST_ISA=generic agrees with the default within the fp32 tolerance of a K-term sum."""
    rng = np.random.default_rng(k * 100 + C * 10 + OC)
    K = k * k * C
    x, w = rand(rng, (3, 11, 10, C)), rand(rng, (k, k, C, OC), 1.0 / np.sqrt(K))
    b = rand(rng, (OC,))
    col = _im2col(x, k, strides, padding)
    ref = R.conv2d_forward(x, w, b, strides, padding)
    try:
        for isa in _core.build_info()["supported_isas"].split(","):
            _core.set_gemm_isa(isa)
            y = core_conv2d_forward(x, w, b, strides, padding)
            gemm = np.empty((col.shape[0], OC), np.float32)
            _core.sgemm(gemm, col, np.ascontiguousarray(w.reshape(K, OC)))
            np.testing.assert_array_equal(y, (gemm + b).reshape(y.shape), err_msg=isa)
            assert_close(y, ref, atol=sum_tol(K), name=f"conv2d forward {isa}")
    finally:
        _core.set_gemm_isa("auto")


@pytest.mark.parametrize("k,padding", [(1, "valid"), (3, "same"), (2, "valid")])
def test_conv2d_without_dinp(k, padding):
    run_conv_check((7, 9), k, (1, 1), padding, N=2, C=3, OC=4, use_bias=False, seed=5,
                   with_dinp=False)


@pytest.mark.parametrize("kh,kw,strides", [(3, 1, (1, 1)), (1, 3, (2, 1)), (2, 5, (2, 3))])
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv2d_rectangular(kh, kw, strides, padding):
    rng = np.random.default_rng(kh * 10 + kw)
    x, w, b = rand(rng, (2, 9, 8, 3)), rand(rng, (kh, kw, 3, 5), 0.3), rand(rng, (5,))
    check_op("conv2d",
             lambda x, w, b: core_conv2d_forward(x, w, b, strides, padding),
             lambda x, w, b: R.conv2d_forward(x, w, b, strides, padding), [x, w, b],
             lambda dy, x, w, b: core_conv2d_backward(dy, x, w, strides, padding),
             lambda dy, x, w, b: R.conv2d_backward(dy, x, w, strides, padding),
             grad_atol=sum_tol(2 * 9 * 8),  # dw sums up to N*OH*OW = 144 products
             grad_names=["dinp", "dweight", "dbias"])


def test_conv2d_geometry_matches_reference():
    for (H, W), k, (sh, sw), pad in CONV_GRID:
        g = _core.conv2d_geometry([2, H, W, 3], [k, k, 3, 4], (sh, sw), pad)
        oh, pt, _ = R.conv_output_size(H, k, sh, pad)
        ow, pl, _ = R.conv_output_size(W, k, sw, pad)
        assert g["out_shape"] == (2, oh, ow, 4) and g["pad"] == (pt, pl)


# ---- pooling --------------------------------------------------------------------------------

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


# ---- Dense ----------------------------------------------------------------------------------

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


# ---- activations ----------------------------------------------------------------------------

ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax"]


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 10), (2, 5, 4, 7), (300, 257)])
def test_activation(threads, name, shape):
    rng = np.random.default_rng(len(shape))
    x = rand(rng, shape, 3.0)
    x.reshape(-1)[:4] = [0.0, -30.0, 30.0, 100.0][:x.size]  # kink at 0 and saturation
    check_op(f"activation {name}",
             lambda x: core_activation_forward(x, name),
             lambda x: R.activation_forward(x, name), [x],
             lambda dy, x: (core_activation_backward(dy, core_activation_forward(x, name),
                                                     name),),
             # The backward is a function of y; feed both sides the kernel's y so only the
             # backward arithmetic is compared (not the forward's rounding, amplified).
             lambda dy, x: (R.activation_backward(dy, core_activation_forward(x, name), name),),
             grad_names=["dinp"])


def test_softmax_extreme_rows():
    x = np.array([[100.0, -100.0, 0.0], [-100.0, -100.0, -100.0], [88.0, 89.0, 0.0]],
                 np.float32)
    y = core_activation_forward(x, "softmax")
    assert np.isfinite(y).all()
    assert_close(y, R.activation_forward(x, "softmax"), op="activation softmax fwd")
    assert_close(y.sum(axis=1), np.ones(3), atol=1e-6, rtol=0)


def test_activation_in_place():
    rng = np.random.default_rng(0)
    x = rand(rng, (4, 6))
    ref = R.activation_forward(x, "tanh")
    _core.activation_forward(x, x, _core.Activation.tanh)  # out may alias inp
    assert_close(x, ref, op="activation tanh fwd")


# ---- cross-entropy --------------------------------------------------------------------------

LOSS_REFS = {"softmax_xent_sparse": R.softmax_xent_sparse,
             "softmax_xent_dense": R.softmax_xent_dense,
             "xent_probs_sparse": R.xent_probs_sparse, "xent_probs_dense": R.xent_probs_dense}


def loss_inputs(kind, rng, B, K):
    """(first input, labels or targets) with the hard cases in the first rows."""
    if kind.startswith("softmax"):
        a = rand(rng, (B, K), 4.0)
        a[0, :] = -100.0
        a[0, 0] = 100.0                        # extreme logits: p_y ~ exp(-200) or ~1
        if B > 1:
            a[1, :] = 100.0
    else:
        a = rng.random((B, K)).astype(np.float32) + 0.05
        a /= a.sum(axis=1, keepdims=True)
        a[0, :] = 1e-9                          # probs below eps = 1e-7 hit the clip
        a[0, -1] = 1.0 - (K - 1) * 1e-9
        if B > 1 and K >= 4:
            # Two more clipped cells, while the rest of the row stays well inside the clip
            # range: a cell within fp32 rounding of 1 - eps may fall on either side of it.
            a[1, 0] = 3e-8
            a[1, 1] = 0.0
    labels = rng.integers(0, K, size=B).astype(np.int32)
    labels[0] = 1 % K                           # row 0's true class is a clipped/-100 cell
    if kind.endswith("sparse"):
        return a, labels
    t = rng.random((B, K)).astype(np.float32)
    t /= t.sum(axis=1, keepdims=True)
    t[0] = 0.0
    t[0, labels[0]] = 1.0
    return a, t


@pytest.mark.parametrize("kind", list(LOSS_REFS))
@pytest.mark.parametrize("B,K", [(1, 1), (1, 10), (7, 3), (32, 10), (256, 200)])
def test_cross_entropy(threads, kind, B, K):
    rng = np.random.default_rng(B * K)
    a, y = loss_inputs(kind, rng, B, K)
    scale = np.float32(1.0 / B)
    loss, grad = core_xent(kind, a, y, scale)
    rloss, rgrad = LOSS_REFS[kind](a, y)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # Losses reach -log(1e-7) ~ 16 (probs) or ~200 (logits): relative tolerance carries them.
    assert_close(loss, rloss, name="loss", op=f"{kind} loss")
    # The probability-path gradients contain 1/q terms up to 1/1e-7 = 1e7 (rtol covers them).
    assert_close(grad, rgrad * float(scale), name="grad", op=f"{kind} grad")


@pytest.mark.parametrize("kind", list(LOSS_REFS))
def test_cross_entropy_without_grad(kind):
    rng = np.random.default_rng(1)
    a, y = loss_inputs(kind, rng, 5, 4)
    loss = np.empty(5, np.float32)
    _core.cross_entropy(loss, None, a, y, kind.startswith("softmax_xent"), 1e-7, 1.0)
    assert_close(loss, LOSS_REFS[kind](a, y)[0], name="loss", op=f"{kind} loss")


def test_cross_entropy_clip_ceiling_and_zero_grad():
    p = np.array([[1e-9, 1.0 - 1e-9]], np.float32)
    loss, grad = core_xent("xent_probs_sparse", p, np.array([0], np.int32), 1.0)
    # Clipped true class: loss = log(sum q) - log(eps) ~ 16.118, no gradient through it.
    assert_close(loss, [np.log((1e-7 + (1 - 1e-7)) / 1e-7)], name="loss")
    assert grad[0, 0] == 0.0
    z = np.array([[-100.0, 100.0]], np.float32)
    loss, _ = core_xent("softmax_xent_sparse", z, np.array([0], np.int32), 1.0)
    assert_close(loss, [200.0], name="loss")  # the logits path is not clipped (> 16.118)


# ---- dropout --------------------------------------------------------------------------------

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


# ---- optimizers: bit-exact Keras float32 arithmetic over 5 steps ------------------------------

def opt_arrays(n, seed):
    rng = np.random.default_rng(seed)
    w = rand(rng, (n,))
    grads = [rand(rng, (n,), 0.1 * (s + 1)) for s in range(5)]
    return w, grads


OPT_SIZES = [7, 40_000]  # 40 000 > the kernels' parallel grain


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("lr,beta1,beta2,eps", [(1e-3, 0.9, 0.999, 1e-7),
                                                (0.01, 0.8, 0.95, 1e-3)])
def test_adam_bit_exact(threads, n, amsgrad, lr, beta1, beta2, eps):
    w, grads = opt_arrays(n, 1)
    m, v = np.zeros_like(w), np.zeros_like(w)
    vhat = np.zeros_like(w) if amsgrad else None
    rw, rm, rv, rvh = w.copy(), m.copy(), v.copy(), None if vhat is None else vhat.copy()
    for step, g in enumerate(grads, start=1):
        _core.adam_update(w, m, v, vhat, g, lr, beta1, beta2, eps, step)
        rw, rm, rv, rvh = R.adam_update(rw, rm, rv, g, lr, beta1, beta2, eps, step, rvh)
        np.testing.assert_array_equal(m, rm, err_msg=f"m at step {step}")
        np.testing.assert_array_equal(v, rv, err_msg=f"v at step {step}")
        if amsgrad:
            np.testing.assert_array_equal(vhat, rvh, err_msg=f"vhat at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


@pytest.mark.parametrize("step", [4, 873, 2359, 100_000])
def test_adam_bias_correction_late_steps(step):
    """Steps where np.power(0.9f, 4) or round(double pow) differ from the C powf by an ulp."""
    w, grads = opt_arrays(64, 4)
    m, v = rand(np.random.default_rng(5), (64,), 0.01), np.full(64, 1e-4, np.float32)
    rw, rm, rv, _ = R.adam_update(w, m, v, grads[0], 1e-3, 0.9, 0.999, 1e-7, step)
    _core.adam_update(w, m, v, None, grads[0], 1e-3, 0.9, 0.999, 1e-7, step)
    np.testing.assert_array_equal(m, rm)
    np.testing.assert_array_equal(v, rv)
    np.testing.assert_array_equal(w, rw)


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True)])
def test_sgd_bit_exact(threads, n, momentum, nesterov):
    w, grads = opt_arrays(n, 2)
    vel = np.zeros_like(w) if momentum else None
    rw, rvel = w.copy(), None if vel is None else vel.copy()
    for step, g in enumerate(grads, start=1):
        _core.sgd_update(w, vel, g, 0.01, momentum, nesterov)
        rw, rvel = R.sgd_update(rw, rvel, g, 0.01, momentum, nesterov)
        if momentum:
            np.testing.assert_array_equal(vel, rvel, err_msg=f"velocity at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


@pytest.mark.parametrize("n", OPT_SIZES)
@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.9, False), (0.0, True),
                                               (0.5, True)])
def test_rmsprop_bit_exact(threads, n, momentum, centered):
    w, grads = opt_arrays(n, 3)
    v = np.zeros_like(w)
    mom = np.zeros_like(w) if momentum else None
    avg = np.zeros_like(w) if centered else None
    rw, rv = w.copy(), v.copy()
    rmom, ravg = (None if a is None else a.copy() for a in (mom, avg))
    for step, g in enumerate(grads, start=1):
        _core.rmsprop_update(w, v, mom, avg, g, 1e-3, 0.9, momentum, 1e-7, centered)
        rw, rv, rmom, ravg = R.rmsprop_update(rw, rv, rmom, ravg, g, 1e-3, 0.9, momentum, 1e-7,
                                              centered)
        np.testing.assert_array_equal(v, rv, err_msg=f"v at step {step}")
        for got, ref, nm in ((mom, rmom, "mom"), (avg, ravg, "avg")):
            if got is not None:
                np.testing.assert_array_equal(got, ref, err_msg=f"{nm} at step {step}")
        np.testing.assert_array_equal(w, rw, err_msg=f"w at step {step}")


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
