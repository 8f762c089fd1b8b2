"""SGEMM: _core.sgemm against the reference triple loop (_core.sgemm_reference) and numpy
float64, for every ISA this CPU supports; ISA selection; binding errors; bit-identity across
thread counts, of the SGEMM and of conv2d/dense through it.

conv2d and dense against the NumPy reference: tests/kernels/test_conv2d.py, test_dense.py.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_conv, z

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


# ---- reference and numpy float64, per ISA --------------------------------------------------------

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


# ---- ISA selection -------------------------------------------------------------------------------

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


# ---- binding errors ------------------------------------------------------------------------------

BAD_CALLS = {
    "gemm_inner": (ValueError, "inner dimensions differ",
                   lambda: _core.sgemm(z(2, 2), z(2, 3), z(4, 2))),
    "threads_zero": (ValueError, "n must be >= 1",
                     lambda: _core.set_num_threads(0)),
    "isa_unknown": (ValueError, "avx9000",
                    lambda: _core.set_gemm_isa("avx9000")),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_gemm_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()


# ---- threads -------------------------------------------------------------------------------------

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
