"""SGEMM against the reference triple loop and numpy float64, for every ISA this CPU supports;
conv2d/dense against the float64 NumPy reference; determinism across thread counts.

Run from the repository root (so `import cnnfast` picks up the in-place build):
    python -m pytest -q tests/
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_close, reduction_atol, run_conv

import cnnfast.reference as R
from cnnfast import _core

ISAS = _core.build_info()["supported_isas"].split(",")
U = 2.0 ** -24  # unit roundoff of float32


@pytest.fixture
def isa(request):
    _core.set_gemm_isa(request.param)
    yield request.param
    _core.set_gemm_isa("auto")


@pytest.fixture
def restore_threads():
    n = _core.num_threads()
    yield
    _core.set_num_threads(n)


def operands(rng, M, N, K, ta, tb):
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    return a, b


def op(x, t):
    return x.T if t else x


def gemm_bound(a, b, ta, tb, alpha, beta, c0):
    """Elementwise worst-case error bound of an fp32 GEMM against the exact product.

    A K-term fp32 dot product in any summation order is within K*u*sum|a_k b_k| of the exact
    value (the classic gamma_K bound), so the tolerance scales with K; the epilogue (alpha,
    beta, one more rounding each) adds a few u of |alpha*ab| + |beta*c|. Factor 2 for margin.
    """
    K = op(a, ta).shape[1]
    absprod = np.abs(op(a, ta)).astype(np.float64) @ np.abs(op(b, tb)).astype(np.float64)
    return 2 * ((K + 4) * U * abs(alpha) * absprod + 4 * U * abs(beta) * np.abs(c0)) + 1e-30


SIZES = [(1, 1, 1), (7, 17, 33), (17, 7, 1), (33, 65, 127), (65, 33, 200), (127, 257, 17),
         (200, 1, 257), (257, 200, 65), (1, 257, 7), (13, 300, 600)]
TRANS = [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("M,N,K", SIZES)
def test_sgemm_matches_reference_and_numpy(isa, ta, tb, M, N, K):
    rng = np.random.default_rng(M * 10007 + N * 101 + K)
    a, b = operands(rng, M, N, K, ta, tb)
    for alpha, beta in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)]:
        c0 = rng.standard_normal((M, N), dtype=np.float32)
        c, cref = c0.copy(), c0.copy()
        _core.sgemm(c, a, b, ta, tb, alpha, beta)
        _core.sgemm_reference(cref, a, b, ta, tb, alpha, beta)
        exact = alpha * (op(a, ta).astype(np.float64) @ op(b, tb).astype(np.float64))
        exact += beta * c0.astype(np.float64)
        bound = gemm_bound(a, b, ta, tb, alpha, beta, c0)
        err = np.abs(c - exact)
        assert np.all(err <= bound), f"{isa} alpha={alpha} beta={beta}: max err {err.max():.3g}"
        # The reference rounds once from float64, so it is within the same bound of exact.
        err_ref = np.abs(c - cref)
        assert np.all(err_ref <= 2 * bound), f"{isa}: max |sgemm - ref| {err_ref.max():.3g}"


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_sgemm_beta0_ignores_nan_in_c(isa):
    rng = np.random.default_rng(1)
    for ta, tb in TRANS:
        a, b = operands(rng, 37, 45, 300, ta, tb)
        c = np.full((37, 45), np.nan, np.float32)
        _core.sgemm(c, a, b, ta, tb, 1.0, 0.0)
        assert np.all(np.isfinite(c)), f"{isa} ta={ta} tb={tb}: NaN in C leaked through beta=0"


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_sgemm_k0_and_alpha0_scale_c(isa):
    rng = np.random.default_rng(2)
    c0 = rng.standard_normal((5, 6), dtype=np.float32)
    for ta, tb in TRANS:
        a = np.zeros((0, 5) if ta else (5, 0), np.float32)
        b = np.zeros((6, 0) if tb else (0, 6), np.float32)
        c = c0.copy()
        _core.sgemm(c, a, b, ta, tb, 1.0, 0.5)
        np.testing.assert_array_equal(c, np.float32(0.5) * c0)
        c = np.full((5, 6), np.nan, np.float32)
        _core.sgemm(c, a, b, ta, tb, 1.0, 0.0)
        np.testing.assert_array_equal(c, 0.0)
    a, b = operands(rng, 5, 6, 7, False, False)
    c = c0.copy()
    _core.sgemm(c, a, b, False, False, 0.0, 2.0)
    np.testing.assert_array_equal(c, np.float32(2.0) * c0)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_sgemm_bit_identical_for_1_and_2_threads(isa, restore_threads):
    rng = np.random.default_rng(3)
    # Big enough to take the parallel path (> 4 MFLOP), with edges in every dimension.
    for M, N, K, ta, tb in [(200, 257, 300, False, False), (32, 3136, 128, False, True),
                            (3136, 128, 32, True, False), (1000, 64, 288, False, False),
                            (517, 333, 601, True, True)]:
        a, b = operands(rng, M, N, K, ta, tb)
        c0 = rng.standard_normal((M, N), dtype=np.float32)
        out = []
        for threads in (1, 2):
            _core.set_num_threads(threads)
            c = c0.copy()
            _core.sgemm(c, a, b, ta, tb, 0.75, 0.5)
            out.append(c)
        np.testing.assert_array_equal(out[0], out[1], err_msg=f"{isa} {M}x{N}x{K}")


def test_isa_selection():
    assert ISAS[-1] == "generic"
    _core.set_gemm_isa("auto")
    assert _core.gemm_isa() == ISAS[0]
    for name in ISAS:
        _core.set_gemm_isa(name)
        assert _core.gemm_isa() == name
    _core.set_gemm_isa("auto")
    with pytest.raises(ValueError, match="unknown ISA"):
        _core.set_gemm_isa("sse9")
    assert _core.gemm_isa() == ISAS[0]


@pytest.mark.parametrize("value", ["generic", "bogus"])
def test_isa_environment_variable(value):
    code = ("import numpy as np; from cnnfast import _core; c = np.zeros((2, 2), np.float32);"
            "_core.sgemm(c, np.ones((2, 3), np.float32), np.ones((3, 2), np.float32));"
            "print(_core.gemm_isa(), c[0, 0])")
    # The same cnnfast the tests import (installed or built in place), run from its parent
    # folder so `-c` cannot pick up an unbuilt source tree from the current directory.
    parent = os.path.dirname(os.path.dirname(os.path.abspath(_core.__file__)))
    env = dict(os.environ, CNNFAST_ISA=value, PYTHONPATH=parent)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=parent)
    if value == "generic":
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["generic", "3.0"]
    else:
        assert r.returncode != 0 and "CNNFAST_ISA" in r.stderr


# ---- conv2d / dense against float64 numpy -------------------------------------------------

CONV_CASES = [  # (N, H, W, C), (KH, KW, OC), strides, padding
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
@pytest.mark.parametrize("xs,ks,strides,padding", CONV_CASES)
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


def test_conv_dense_bit_identical_for_1_and_2_threads(restore_threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 14, 14, 32), dtype=np.float32)
    w = rng.standard_normal((3, 3, 32, 64), dtype=np.float32)
    b = rng.standard_normal(64, dtype=np.float32)
    dout = rng.standard_normal((8, 14, 14, 64), dtype=np.float32)
    xd = rng.standard_normal((64, 3136), dtype=np.float32)
    wd = rng.standard_normal((3136, 128), dtype=np.float32)
    bd = rng.standard_normal(128, dtype=np.float32)
    dd = rng.standard_normal((64, 128), dtype=np.float32)
    results = []
    for threads in (1, 2):
        _core.set_num_threads(threads)
        conv = run_conv(x, w, b, (1, 1), "same", dout)
        out = np.empty((64, 128), np.float32)
        _core.dense_forward(out, xd, wd, bd)
        dx, dw, db = np.empty_like(xd), np.empty_like(wd), np.empty_like(bd)
        _core.dense_backward(dx, dw, db, dd, xd, wd)
        results.append(list(conv) + [out, dx, dw, db])
    for i, (r1, r2) in enumerate(zip(*results)):
        np.testing.assert_array_equal(r1, r2, err_msg=f"result {i} differs between 1 and 2 threads")
