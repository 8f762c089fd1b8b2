"""The fused Conv2D + MaxPool2D inference pass (csrc/conv2d_fused.h, docs/fused_inference.md):
a Net of [Conv2D, MaxPool2D, Flatten] predicts against a NumPy reference, and bit for bit what
the unfused Net (CNNFAST_FUSED_INFERENCE=0) predicts, on every ISA path and thread count.
"""
import numpy as np
import pytest

from cnnfast import _core

f32 = np.float32
Op, K, A = _core.Op, _core.OpKind, _core.Activation


def window(n, k, s, pad):
    """(out, leading padding) of TF's rule (common.h window_1d)."""
    if pad == "valid":
        return (n - k) // s + 1, 0
    out = -(-n // s)
    return out, max((out - 1) * s + k - n, 0) // 2


def ref_conv(x, w, b, strides, pad, relu):
    N, H, W, C = x.shape
    KH, KW, _, OC = w.shape
    (OH, PT), (OW, PL) = window(H, KH, strides[0], pad), window(W, KW, strides[1], pad)
    xp = np.zeros((N, (OH - 1) * strides[0] + KH, (OW - 1) * strides[1] + KW, C))
    xp[:, PT:PT + H, PL:PL + W] = x[:, :xp.shape[1] - PT, :xp.shape[2] - PL]
    out = np.zeros((N, OH, OW, OC))
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[:, kh:kh + (OH - 1) * strides[0] + 1:strides[0],
                       kw:kw + (OW - 1) * strides[1] + 1:strides[1]]
            out += patch @ w[kh, kw].astype(np.float64)
    if b is not None:
        out += b
    return np.maximum(out, 0) if relu else out


def ref_maxpool(x, pool, strides, pad):
    N, H, W, C = x.shape
    (OH, PT), (OW, PL) = window(H, pool[0], strides[0], pad), window(W, pool[1], strides[1], pad)
    out = np.empty((N, OH, OW, C))
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * strides[0] - PT, j * strides[1] - PL
            cells = x[:, max(h0, 0):h0 + pool[0], max(w0, 0):w0 + pool[1]]
            out[:, i, j] = cells.max(axis=(1, 2))
    return out


def make_net(w, b, in_shape, strides, cpad, pool, pstrides, ppad, relu, batch):
    ops = [Op.conv2d(w, b, np.zeros_like(w), None if b is None else np.zeros_like(b),
                     w.shape[:2], strides, cpad, A.relu if relu else A.linear),
           Op.pool(K.max_pool2d, pool, pstrides, ppad), Op.flatten()]
    H, W, _ = in_shape
    (OH, _), (OW, _) = window(H, w.shape[0], strides[0], cpad), window(W, w.shape[1], strides[1],
                                                                        cpad)
    (PH, _), (PW, _) = window(OH, pool[0], pstrides[0], ppad), window(OW, pool[1], pstrides[1],
                                                                      ppad)
    n_out = PH * PW * w.shape[3]
    return _core.Net(ops, list(in_shape), batch, _core.LossKind.sparse_logits, n_out, False), n_out


def predict(net, x, n_out):
    out = np.full((x.shape[0], n_out), np.nan, f32)
    net.predict(x, out)
    return out


@pytest.fixture
def threads():
    old = _core.num_threads()
    yield
    _core.set_num_threads(old)


@pytest.fixture
def isa():
    old = _core.gemm_isa()
    yield
    _core.set_gemm_isa(old)


# (input H, W, C), kernel, conv strides, conv padding, OC, pool size, pool strides, pool padding
CASES = [
    ((28, 28, 1), (3, 3), (1, 1), "same", 32, (2, 2), (2, 2), "valid"),  # the tutorial CNN's
    ((13, 11, 1), (3, 3), (1, 1), "valid", 19, (2, 2), (2, 2), "valid"),  # odd: drops a row
    ((9, 7, 1), (3, 3), (2, 1), "same", 5, (3, 3), (2, 2), "same"),  # overlapping, 'same' pool
    ((10, 9, 2), (2, 2), (1, 2), "same", 40, (3, 2), (1, 3), "same"),  # 8 taps, 40 channels
    ((8, 8, 1), (1, 5), (1, 1), "valid", 16, (2, 2), (1, 1), "valid"),  # 5 taps, stride-1 pool
    ((12, 7, 3), (1, 3), (2, 1), "valid", 33, (2, 3), (2, 3), "same"),  # 9 taps over 3 channels
    ((7, 7, 1), (3, 3), (3, 3), "same", 8, (1, 1), (1, 1), "valid"),  # 1x1 pool: a copy
    ((9, 9, 1), (11, 1), (1, 1), "same", 17, (2, 2), (2, 2), "same"),  # 11 taps (the most)
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_fused_matches_numpy_and_the_unfused_bits(case, bias, relu, monkeypatch, threads):
    in_shape, k, strides, cpad, oc, pool, pstrides, ppad = case
    rng = np.random.default_rng(CASES.index(case))
    w = rng.standard_normal(k + (in_shape[2], oc)).astype(f32)
    b = rng.standard_normal(oc).astype(f32) if bias else None
    x = rng.standard_normal((7,) + in_shape).astype(f32)
    monkeypatch.setenv("CNNFAST_FUSED_INFERENCE", "0")
    unfused, n_out = make_net(w, b, in_shape, strides, cpad, pool, pstrides, ppad, relu, 3)
    monkeypatch.delenv("CNNFAST_FUSED_INFERENCE")
    fused, _ = make_net(w, b, in_shape, strides, cpad, pool, pstrides, ppad, relu, 3)
    assert unfused.fused_ops == []
    if _core.gemm_isa() != "generic":  # the one-pass kernel is AVX2 / AVX-512 only
        assert fused.fused_ops == [0]
    ref = ref_maxpool(ref_conv(x.astype(np.float64), w, b, strides, cpad, relu), pool, pstrides,
                      ppad).reshape(7, -1)
    want = predict(unfused, x, n_out)
    for t in (1, 2):
        _core.set_num_threads(t)
        got = predict(fused, x, n_out)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)  # fp32 sums of <= 11 terms
        np.testing.assert_array_equal(got, want)  # the same bits as conv then pool


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3]], ids=["0", "2", "3"])
def test_every_isa_path_gives_the_unfused_bits(case, monkeypatch, isa):
    """avx512 and avx2 run the one-pass kernels; generic (chosen after the Net was built) the
    block-by-block fallback through conv2d_forward and maxpool2d_forward."""
    in_shape, k, strides, cpad, oc, pool, pstrides, ppad = case
    rng = np.random.default_rng(1)
    w = rng.standard_normal(k + (in_shape[2], oc)).astype(f32)
    b = rng.standard_normal(oc).astype(f32)
    x = rng.standard_normal((9,) + in_shape).astype(f32)
    fused, n_out = make_net(w, b, in_shape, strides, cpad, pool, pstrides, ppad, True, 4)
    monkeypatch.setenv("CNNFAST_FUSED_INFERENCE", "0")
    unfused, _ = make_net(w, b, in_shape, strides, cpad, pool, pstrides, ppad, True, 4)
    supported = _core.build_info()["supported_isas"].split(",")
    for name in ("avx512", "avx2", "generic"):
        if name not in supported:
            continue
        _core.set_gemm_isa(name)
        np.testing.assert_array_equal(predict(fused, x, n_out), predict(unfused, x, n_out))


def test_only_few_tap_convs_followed_by_a_max_pool_are_fused():
    if _core.gemm_isa() == "generic":
        pytest.skip("the one-pass kernel needs AVX2")
    z = np.zeros
    w1, w2 = z((3, 3, 1, 8), f32), z((3, 3, 8, 16), f32)

    def conv(w, act=A.relu):
        return Op.conv2d(w, None, np.zeros_like(w), None, (3, 3), (1, 1), "same", act)

    pool = Op.pool(K.max_pool2d, (2, 2), (2, 2), "valid")
    ops = [conv(w1), pool, conv(w2), Op.pool(K.max_pool2d, (2, 2), (2, 2), "valid"),
           Op.flatten()]
    net = _core.Net(ops, [8, 8, 1], 2, _core.LossKind.sparse_logits, 64, False)
    assert net.fused_ops == [0]  # 72 taps: the second conv is not a few-tap layer
    avg = [conv(w1), Op.pool(K.avg_pool2d, (2, 2), (2, 2), "valid"), Op.flatten()]
    assert _core.Net(avg, [8, 8, 1], 2, _core.LossKind.sparse_logits, 128, False).fused_ops == []
    tanh = [conv(w1, A.tanh), Op.pool(K.max_pool2d, (2, 2), (2, 2), "valid"), Op.flatten()]
    assert _core.Net(tanh, [8, 8, 1], 2, _core.LossKind.sparse_logits, 128, False).fused_ops == []
