"""conv2d: _core.conv2d_forward, conv2d_backward and conv2d_geometry.

In order: against the NumPy reference (cnnfast.reference, forward and backward, many shapes and
both GEMM paths), against tf.keras (marked tf), binding errors, threads.

The kernels compute in float32 in any summation order; the reference in float64. Tolerances
are the fp32 defaults (atol 1e-5, rtol 1e-4) unless a comment says why a check needs more.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import itertools

import numpy as np
import pytest
from helpers import (
    assert_close,
    check_op,
    core_conv2d_backward,
    core_conv2d_forward,
    noncontig,
    rand,
    readonly,
    reduction_atol,
    run_conv,
    sum_tol,
    z,
)
from tf_oracle import GRAD_SUM_ATOL, check, seed_of, tf_grads

import cnnfast.reference as R
from cnnfast import _core

# ---- NumPy reference, forward and backward -------------------------------------------------------

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


# The weight gradient of a layer with few taps without im2col (conv2d_cpu.cpp, K = KH*KW*C <= 24):
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
    algo = _core.conv_algorithm()
    # the few-tap kernel's test: CNNFAST_CONV_ALGO=winograd (CI) would send this 3x3 stride-1
    # weight gradient to Winograd, whose GEMMs round per ISA like sgemm's
    _core.set_conv_algorithm("direct")
    try:
        for isa in ("avx2", "generic"):
            _core.set_gemm_isa(isa)
            runs.append(core_conv2d_backward(dy, x, w, (1, 1), "same", with_dinp=False))
    finally:
        _core.set_gemm_isa("auto")
        _core.set_conv_algorithm(algo)
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
    algo = _core.conv_algorithm()
    _core.set_conv_algorithm("direct")  # the few-tap kernel itself (CNNFAST_CONV_ALGO may differ)
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
        _core.set_conv_algorithm(algo)


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


# The cases of the GEMM paths (pointwise, im2col in chunks), outputs prefilled with NaN.
GEMM_CONV_CASES = [  # (N, H, W, C), (KH, KW, OC), strides, padding
    ((1, 5, 5, 1), (1, 1, 3), (1, 1), "valid"),    # pointwise fast path
    ((2, 7, 9, 3), (3, 3, 4), (1, 1), "same"),
    ((2, 7, 9, 3), (3, 3, 4), (2, 2), "same"),
    ((3, 8, 7, 2), (2, 2, 5), (2, 2), "valid"),
    ((2, 11, 10, 3), (5, 5, 6), (1, 1), "same"),
    ((1, 9, 9, 4), (5, 5, 3), (2, 2), "same"),
    ((2, 6, 5, 3), (2, 2, 3), (1, 2), "same"),     # even kernel: asymmetric SAME padding
    ((1, 4, 4, 2), (1, 1, 3), (2, 2), "same"),     # strided 1x1 is not the pointwise path
    ((3, 13, 13, 5), (3, 3, 7), (2, 1), "valid"),
    ((3, 28, 28, 32), (3, 3, 16), (1, 1), "same"),  # several im2col chunks
]


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("xs,ks,strides,padding", GEMM_CONV_CASES)
def test_conv2d_matches_numpy(xs, ks, strides, padding, with_bias):
    rng = np.random.default_rng(sum(xs) + sum(ks))
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal((ks[0], ks[1], xs[3], ks[2]), dtype=np.float32)
    bias = rng.standard_normal(ks[2], dtype=np.float32) if with_bias else None
    ref = R.conv2d_forward(x, w, bias, strides, padding)
    dout = rng.standard_normal(ref.shape, dtype=np.float32)
    out, dx, dw, db = run_conv(x, w, bias, strides, padding, dout)
    K = ks[0] * ks[1] * xs[3]
    assert_close(out, ref, atol=reduction_atol(K), name="out")
    rdx, rdw, rdb = R.conv2d_backward(dout, x, w, strides, padding)
    M = ref.shape[0] * ref.shape[1] * ref.shape[2]
    assert_close(dx, rdx, atol=reduction_atol(ks[2] * ks[0] * ks[1]), name="dinp")
    assert_close(dw, rdw, atol=reduction_atol(M), name="dweight")
    if with_bias:
        assert_close(db, rdb, atol=reduction_atol(M), name="dbias")
    # dinp=None (first layer) skips the input gradient and leaves dweight/dbias unchanged.
    _, dx2, dw2, db2 = run_conv(x, w, bias, strides, padding, dout, want_dinp=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    if with_bias:
        np.testing.assert_array_equal(db2, db)


# ---- tf.keras parity -----------------------------------------------------------------------------

TF_CONV_CASES = [
    # (N, H, W, C, OC, k, s, padding)
    (n, h, w, 3, 4, k, s, pad)
    for (n, h, w) in [(2, 7, 13), (1, 28, 27), (2, 13, 13), (1, 27, 28)]
    for k in (2, 3, 4, 5)
    for s in (1, 2)
    for pad in ("same", "valid")
]


@pytest.mark.tf
@pytest.mark.parametrize("n,h,w,c,oc,k,s,pad", TF_CONV_CASES,
                         ids=[f"N{c[0]}_{c[1]}x{c[2]}_k{c[5]}_s{c[6]}_{c[7]}"
                              for c in TF_CONV_CASES])
def test_conv2d_vs_tf(tf_keras, n, h, w, c, oc, k, s, pad):
    tf, keras = tf_keras
    rng = np.random.default_rng(seed_of(n, h, w, k, s, pad))
    layer = keras.layers.Conv2D(oc, k, strides=s, padding=pad)
    layer.build((n, h, w, c))
    kern, bias = rand(rng, (k, k, c, oc), 0.3), rand(rng, (oc,))
    layer.set_weights([kern, bias])
    x = rand(rng, (n, h, w, c))
    geo = _core.conv2d_geometry(x.shape, kern.shape, (s, s), pad)
    dy = rand(rng, geo["out_shape"])
    y_tf, (dx_tf, dk_tf, db_tf) = tf_grads(tf, layer, x, dy)

    ws = np.empty(max(geo["workspace"], 1), np.float32)
    y = np.empty(geo["out_shape"], np.float32)
    _core.conv2d_forward(y, x, kern, bias, (s, s), pad, ws)
    dx, dk, db = np.empty_like(x), np.empty_like(kern), np.empty_like(bias)
    _core.conv2d_backward(dx, dk, db, dy, x, kern, (s, s), pad, ws)
    check("conv2d forward", y, y_tf)
    check("conv2d dinp", dx, dx_tf)
    check("conv2d dweight", dk, dk_tf, atol=GRAD_SUM_ATOL)
    check("conv2d dbias", db, db_tf, atol=GRAD_SUM_ATOL)


# ---- binding errors ------------------------------------------------------------------------------

f32 = np.float32


def ws(n=10_000):
    return z(n)


X, Wt = (2, 6, 6, 3), (3, 3, 3, 4)  # conv input / kernel; valid output (2, 4, 4, 4)


BAD_CALLS = {
    "conv_fwd_float64_inp": (TypeError, "inp must have dtype float32",
                             lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X, dtype=np.float64),
                                                          z(*Wt), None, (1, 1), "valid", ws())),
    "conv_fwd_list_inp": (TypeError, "must be a numpy array",
                          lambda: _core.conv2d_forward(z(2, 4, 4, 4), [[1.0]], z(*Wt), None,
                                                       (1, 1), "valid", ws())),
    "conv_fwd_noncontig_inp": (ValueError, "inp must be C-contiguous",
                               lambda: _core.conv2d_forward(z(2, 4, 4, 4), noncontig(*X),
                                                            z(*Wt), None, (1, 1), "valid", ws())),
    "conv_fwd_out_shape": (ValueError, r"out has shape \(2, 5, 4, 4\), expected \(2, 4, 4, 4\)",
                           lambda: _core.conv2d_forward(z(2, 5, 4, 4), z(*X), z(*Wt), None,
                                                        (1, 1), "valid", ws())),
    "conv_fwd_channels": (ValueError, r"weight \(3, 3, 2, 4\) expects 2 input channels",
                          lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(3, 3, 2, 4),
                                                       None, (1, 1), "valid", ws())),
    "conv_fwd_bias_shape": (ValueError, r"bias has shape \(3,\), expected \(4,\)",
                            lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), z(3),
                                                         (1, 1), "valid", ws())),
    "conv_fwd_3d_inp": (ValueError, "inp must be 4-D",
                        lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(6, 6, 3), z(*Wt), None,
                                                     (1, 1), "valid", ws())),
    "conv_bwd_dout_shape": (ValueError, r"dout has shape \(2, 4, 4, 3\), expected \(2, 4, 4, 4\)",
                            lambda: _core.conv2d_backward(z(*X), z(*Wt), z(4), z(2, 4, 4, 3),
                                                          z(*X), z(*Wt), (1, 1), "valid", ws())),
    "conv_bwd_dweight_shape": (ValueError, "dweight has shape",
                               lambda: _core.conv2d_backward(z(*X), z(3, 3, 3, 5), z(4),
                                                             z(2, 4, 4, 4), z(*X), z(*Wt),
                                                             (1, 1), "valid", ws())),
    "readonly_workspace": (ValueError, "workspace must be writable",
                           lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None,
                                                        (1, 1), "valid", readonly(ws()))),
    "bad_padding": (ValueError, "padding must be 'valid' or 'same', got 'full'",
                    lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None, (1, 1),
                                                 "full", ws())),
    "zero_stride_conv": (ValueError, r"strides must be positive, got \(0, 1\)",
                         lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None,
                                                      (0, 1), "valid", ws())),
    "zero_stride_geometry": (ValueError, "strides must be positive",
                             lambda: _core.conv2d_geometry([1, 4, 4, 1], [3, 3, 1, 1], (1, 0),
                                                           "same")),
    "conv_window_too_large": (ValueError, "larger than input",
                              lambda: _core.conv2d_forward(z(2, 1, 1, 4), z(*X), z(7, 7, 3, 4),
                                                           None, (1, 1), "valid", ws())),
    "empty_batch_conv": (ValueError, None,  # message belongs to conv2d_cpu.cpp
                         lambda: _core.conv2d_forward(z(0, 4, 4, 4), z(0, 6, 6, 3), z(*Wt),
                                                      None, (1, 1), "valid", ws())),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_conv2d_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()


def conv_workspace_need(x_shape, w_shape):
    need = _core.conv2d_geometry(list(x_shape), list(w_shape), (1, 1), "valid")["workspace"]
    if need == 0:
        pytest.skip("this conv2d implementation needs no workspace for a 3x3 kernel")
    return need


def test_conv_workspace_too_small():
    need = conv_workspace_need(X, Wt)  # the size is the implementation's business: ask it
    with pytest.raises(ValueError, match=f"workspace needs {need} floats"):
        _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None, (1, 1), "valid", z(need - 1))
    with pytest.raises(ValueError, match="workspace needs"):
        _core.conv2d_backward(z(*X), z(*Wt), None, z(2, 4, 4, 4), z(*X), z(*Wt), (1, 1),
                              "valid", z(need - 1))
    with pytest.raises(ValueError, match="workspace needs"):
        _core.conv2d_backward(z(*X), z(*Wt), None, z(2, 4, 4, 4), z(*X), z(*Wt), (1, 1),
                              "valid", None)


def test_conv_workspace_exact_size_is_enough():
    need = conv_workspace_need(X, Wt)
    out = np.full((2, 4, 4, 4), np.nan, f32)
    _core.conv2d_forward(out, np.ones(X, f32), np.ones(Wt, f32), None, (1, 1), "valid", z(need))
    assert (out == 27).all()


# ---- threads -------------------------------------------------------------------------------------

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
