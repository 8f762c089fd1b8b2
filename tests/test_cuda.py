"""CUDA backend: CUDA-vs-CPU parity for every kernel (skipped without a GPU, with the reason),
and CPU-side checks of the module's availability reporting that run everywhere.

Parity rules (see csrc/cuda_kernels.h):
  bit-identical  pooling forward/backward (same scan and summation order), ReLU/linear, dropout
                 masks and outputs (same counter-based hash), optimizer updates (host-computed
                 scalars; +,-,*,/,sqrt are correctly rounded on both sides and nothing is fused:
                 --fmad=false vs -ffp-contract=off), bias adds.
  fp32 tolerance GEMM-based ops (conv, dense: fmaf and a different summation order than the CPU
                 GEMM), column sums (dbias: a tree order), and exp/log/tanh (CUDA's libdevice vs
                 glibc, 1-2 ulp).
"""
import os
import sys

import numpy as np
import pytest
from helpers import (
    assert_close,
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

import cnnfast.cuda as cc
from cnnfast import _core

REASON = cc.unavailable_reason() or ""
gpu = pytest.mark.skipif(not cc.is_available(), reason=f"CUDA parity needs a GPU: {REASON}")

# GEMM-based kernels: fp32 with a different summation order (and fmaf) than the CPU GEMM.
GEMM_ATOL, GEMM_RTOL = 1e-4, 1e-4
# exp/log/tanh: libdevice vs glibc differ by an ulp or two, amplified a little by the formulas.
TRANSC_ATOL, TRANSC_RTOL = 1e-6, 1e-5


# ---- CPU-side: these run on every machine ------------------------------------------------------

def test_is_available_never_raises_and_is_consistent():
    assert isinstance(cc.is_available(), bool)
    assert isinstance(cc.device_count(), int)
    assert cc.is_available() == (cc.is_built() and cc.device_count() > 0)
    if not cc.is_available():
        reason = cc.unavailable_reason()
        assert ("not built" in reason) if not cc.is_built() else ("no CUDA device" in reason)


def test_build_info_reports_module_state():
    info = cc.build_info()
    assert info["built"] == cc.is_built()
    assert info["available"] == cc.is_available()
    if cc.is_built():
        assert info["import_error"] is None
        assert info["archs"] and all(a.startswith("sm_") for a in info["archs"])
        assert info["ptx"].startswith("compute_")
        assert info["cublas"] is False and info["tf32"] is False
        assert "runtime_version" in info
    else:
        assert info["import_error"]
        assert not info["available"]


def test_default_core_has_no_cuda():
    assert _core.build_info()["cuda"] is False


@pytest.mark.skipif(cc.is_available(), reason="a GPU is present: the unavailable path is moot")
def test_device_memory_unavailable_raises_runtime_error_with_reason():
    with pytest.raises(RuntimeError) as e:
        cc.to_device(np.zeros(3, np.float32))
    # Either the module is missing (our message) or the driver/device is (CUDA's error string).
    assert "not built" in str(e.value) or "cuda" in str(e.value).lower()


@pytest.mark.skipif(not cc.is_built(), reason="cnnfast._cuda is not built (CNNFAST_CUDA=1)")
def test_cuda_module_imports_without_touching_the_gpu():
    # A fresh interpreter: importing must not need a device (no CUDA call at import).
    import subprocess
    parent = os.path.dirname(os.path.dirname(os.path.abspath(cc.__file__)))
    r = subprocess.run([sys.executable, "-c", "import cnnfast._cuda as m; print(m.archs)"],
                       capture_output=True, text=True, cwd=parent,
                       env=dict(os.environ, PYTHONPATH=parent))
    assert r.returncode == 0, r.stderr
    for name in cc.KERNELS:
        assert hasattr(cc._cuda, name), name


def test_every_cpu_kernel_file_has_a_cuda_sibling():
    csrc = os.path.join(os.path.dirname(__file__), os.pardir, "csrc")
    if not os.path.isdir(csrc):
        pytest.skip("source tree not available")
    for op in ("conv2d", "pool2d", "dense", "gemm", "activations", "optim"):
        assert os.path.isfile(os.path.join(csrc, f"{op}_cpu.cpp")), op
        assert os.path.isfile(os.path.join(csrc, f"{op}_cuda.cu")), f"csrc/{op}_cuda.cu missing"


# ---- GPU parity --------------------------------------------------------------------------------

def dev(x):
    return cc.to_device(x)


def empty_like(x, dtype=None):
    return cc.empty(x.shape, dtype or x.dtype)


def opt(x):
    return None if x is None else dev(x)


@gpu
def test_device_array_round_trip_and_validation():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.int32, np.uint8):
        x = (rng.standard_normal((3, 5, 7)) * 50).astype(dtype)
        d = cc.to_device(x)
        assert d.shape == x.shape and d.dtype == np.dtype(dtype) and d.nbytes == x.nbytes
        np.testing.assert_array_equal(d.download(), x)
        d.free()
        d.free()  # idempotent
        with pytest.raises(ValueError, match="freed"):
            d.download()
    z = cc.empty((4, 2))
    np.testing.assert_array_equal(z.download(), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        z.upload(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError):
        z.upload(np.zeros((4, 2), np.float64))
    with pytest.raises(TypeError, match="DeviceArray"):
        cc.activation_forward(z, np.zeros((4, 2), np.float32), _core.Activation.relu)


SGEMM_SHAPES = [(1, 1, 1), (7, 5, 3), (64, 64, 16), (65, 63, 17), (130, 33, 257), (3, 200, 129)]


@gpu
@pytest.mark.parametrize("M,N,K", SGEMM_SHAPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_sgemm(M, N, K, ta, tb, beta):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a = rand(rng, (K, M) if ta else (M, K))
    b = rand(rng, (N, K) if tb else (K, N))
    c0 = rand(rng, (M, N))
    c = c0.copy()
    _core.sgemm(c, a, b, ta, tb, 1.5, beta)
    dc = dev(c0)
    cc.sgemm(dc, dev(a), dev(b), ta, tb, 1.5, beta)
    assert_close(dc.download(), c, atol=GEMM_ATOL, rtol=GEMM_RTOL, op="cuda sgemm")


# (N, H, W, C, KH, KW, OC, strides): odd sizes, kernel 1/2/3/5, strides 1/2, batch 1.
CONV_CASES = [
    (1, 7, 9, 3, 3, 3, 5, (1, 1)),
    (2, 8, 8, 4, 1, 1, 6, (1, 1)),     # pointwise: no im2col
    (2, 9, 7, 2, 1, 1, 3, (2, 2)),     # 1x1 with stride: im2col path
    (3, 11, 10, 3, 2, 2, 4, (2, 2)),
    (2, 13, 13, 5, 5, 5, 7, (1, 2)),
    (1, 5, 6, 1, 3, 2, 33, (2, 1)),
    (4, 28, 28, 1, 3, 3, 32, (1, 1)),  # the tutorial's first layer
]


@gpu
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_forward_backward(case, padding, with_bias):
    N, H, W, C, KH, KW, OC, st = case
    rng = np.random.default_rng(N + H + KH * 7 + OC)
    x, w = rand(rng, (N, H, W, C)), rand(rng, (KH, KW, C, OC), 0.3)
    b = rand(rng, (OC,)) if with_bias else None
    out = core_conv2d_forward(x, w, b, st, padding)
    ws = cc.empty(max(cc.conv2d_workspace_size(list(x.shape), list(w.shape), st, padding), 1))
    dx, dw = dev(x), dev(w)
    dout_ = empty_like(out)
    cc.conv2d_forward(dout_, dx, dw, opt(b), st, padding, ws)
    assert_close(dout_.download(), out, atol=GEMM_ATOL, rtol=GEMM_RTOL, op="cuda conv2d fwd")

    g = rand(rng, out.shape)
    for with_dinp in (True, False):
        dinp, dwt, db = core_conv2d_backward(g, x, w, st, padding, with_dinp, with_bias)
        gdi = empty_like(x) if with_dinp else None
        gdw = empty_like(w)
        gdb = cc.empty((OC,)) if with_bias else None
        cc.conv2d_backward(gdi, gdw, gdb, dev(g), dx, dw, st, padding, ws)
        assert_close(gdw.download(), dwt, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dweight",
                     op="cuda conv2d bwd")
        if with_dinp:
            assert_close(gdi.download(), dinp, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dinp",
                         op="cuda conv2d bwd")
        if with_bias:
            assert_close(gdb.download(), db, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dbias",
                         op="cuda conv2d bwd")


@gpu
def test_conv2d_workspace_is_checked():
    x, w = cc.empty((1, 5, 5, 2)), cc.empty((3, 3, 2, 4))
    with pytest.raises(ValueError, match="workspace"):
        cc.conv2d_forward(cc.empty((1, 3, 3, 4)), x, w, None, (1, 1), "valid", cc.empty((1,)))


# (N, H, W, C, pool, strides): overlapping windows (stride < pool), odd sizes, batch 1.
POOL_CASES = [
    (1, 5, 5, 1, (2, 2), (2, 2)),
    (2, 7, 9, 3, (3, 3), (2, 2)),
    (2, 8, 7, 4, (2, 3), (1, 2)),
    (3, 6, 6, 2, (1, 1), (1, 1)),
    (1, 11, 10, 5, (5, 5), (3, 2)),
]


@gpu
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling_bit_identical(case, padding):
    N, H, W, C, pool, st = case
    rng = np.random.default_rng(H * W + C)
    x = rand(rng, (N, H, W, C))
    x[..., 0] = np.round(x[..., 0])  # ties: the first cell in row-major order must win
    out, argmax = core_maxpool2d_forward(x, pool, st, padding)
    dx = dev(x)
    go, ga = empty_like(out), cc.empty(out.shape, np.int32)
    cc.maxpool2d_forward(go, ga, dx, pool, st, padding)
    np.testing.assert_array_equal(go.download(), out)
    np.testing.assert_array_equal(ga.download(), argmax)
    go2 = empty_like(out)
    cc.maxpool2d_forward(go2, None, dx, pool, st, padding)  # inference: no argmax
    np.testing.assert_array_equal(go2.download(), out)

    g = rand(rng, out.shape)
    dinp = core_maxpool2d_backward(g, argmax, x.shape, pool, st, padding)
    gdi = empty_like(x)
    cc.maxpool2d_backward(gdi, dev(g), ga, pool, st, padding)
    np.testing.assert_array_equal(gdi.download(), dinp)

    avg = core_avgpool2d_forward(x, pool, st, padding)
    gav = empty_like(avg)
    cc.avgpool2d_forward(gav, dx, pool, st, padding)
    np.testing.assert_array_equal(gav.download(), avg)
    davg = core_avgpool2d_backward(g, x.shape, pool, st, padding)
    gdavg = empty_like(x)
    cc.avgpool2d_backward(gdavg, dev(g), pool, st, padding)
    np.testing.assert_array_equal(gdavg.download(), davg)


@gpu
def test_maxpool_backward_rejects_bad_argmax():
    bad = cc.to_device(np.full((1, 2, 2, 1), 99, np.int32))
    with pytest.raises(ValueError, match="argmax out of range"):
        cc.maxpool2d_backward(cc.empty((1, 4, 4, 1)), cc.empty((1, 2, 2, 1)), bad, (2, 2),
                              (2, 2), "valid")


@gpu
@pytest.mark.parametrize("B,IN,OUT", [(1, 1, 1), (3, 7, 5), (32, 784, 10), (65, 129, 67)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_forward_backward(B, IN, OUT, with_bias):
    rng = np.random.default_rng(B * IN + OUT)
    x, w = rand(rng, (B, IN)), rand(rng, (IN, OUT), 0.1)
    b = rand(rng, (OUT,)) if with_bias else None
    out = core_dense_forward(x, w, b)
    gout = cc.empty(out.shape)
    dx, dw = dev(x), dev(w)
    cc.dense_forward(gout, dx, dw, opt(b))
    assert_close(gout.download(), out, atol=GEMM_ATOL, rtol=GEMM_RTOL, op="cuda dense fwd")
    g = rand(rng, out.shape)
    for with_dinp in (True, False):
        dinp, dwt, db = core_dense_backward(g, x, w, with_dinp, with_bias)
        gdi = empty_like(x) if with_dinp else None
        gdw, gdb = empty_like(w), (cc.empty((OUT,)) if with_bias else None)
        cc.dense_backward(gdi, gdw, gdb, dev(g), dx, dw)
        assert_close(gdw.download(), dwt, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dweight")
        if with_dinp:
            assert_close(gdi.download(), dinp, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dinp")
        if with_bias:
            assert_close(gdb.download(), db, atol=GEMM_ATOL, rtol=GEMM_RTOL, name="dbias")


ACTS = _core.Activation.__members__


@gpu
@pytest.mark.parametrize("name", list(ACTS))
@pytest.mark.parametrize("shape", [(1, 1), (5, 10), (3, 4, 5, 7), (1000, 3)])
def test_activations(name, shape):
    rng = np.random.default_rng(len(shape) + shape[-1])
    x = rand(rng, shape, 3.0)
    x.flat[0] = 0.0  # ReLU's derivative at 0 is 0
    y = core_activation_forward(x, name)
    gy = empty_like(x)
    cc.activation_forward(gy, dev(x), ACTS[name])
    g = rand(rng, shape)
    dinp = core_activation_backward(g, y, name)
    gdi = empty_like(x)
    cc.activation_backward(gdi, dev(g), dev(y), ACTS[name])  # same forward output on both sides
    if name in ("linear", "relu"):
        np.testing.assert_array_equal(gy.download(), y)
        np.testing.assert_array_equal(gdi.download(), dinp)
    else:
        assert_close(gy.download(), y, atol=TRANSC_ATOL, rtol=TRANSC_RTOL, op=f"cuda {name}")
        # Backward is pure arithmetic on the same y: identical up to the softmax dot product.
        assert_close(gdi.download(), dinp, atol=TRANSC_ATOL, rtol=TRANSC_RTOL)


@gpu
@pytest.mark.parametrize("kind", ["softmax_xent_sparse", "softmax_xent_dense",
                                  "xent_probs_sparse", "xent_probs_dense"])
@pytest.mark.parametrize("B,K", [(1, 1), (1, 10), (33, 10), (7, 129)])
@pytest.mark.parametrize("with_grad", [True, False])
def test_cross_entropy(kind, B, K, with_grad):
    rng = np.random.default_rng(B * K)
    labels = rng.integers(0, K, B).astype(np.int32)
    if kind.startswith("xent_probs"):
        a = rng.random((B, K)).astype(np.float32)
        a[0, 0] = 1e-9  # a clipped entry: zero gradient there
    else:
        a = rand(rng, (B, K), 3.0)
    second = labels if kind.endswith("sparse") else rng.random((B, K)).astype(np.float32)
    loss, grad = core_xent(kind, a, second, 1.0 / B)
    gl, gg = cc.empty((B,)), (cc.empty((B, K)) if with_grad else None)
    cc.cross_entropy(gl, gg, dev(a), dev(second), kind.startswith("softmax_xent"), 1e-7, 1.0 / B)
    assert_close(gl.download(), loss, atol=TRANSC_ATOL, rtol=TRANSC_RTOL, op=f"cuda {kind}")
    if with_grad:
        assert_close(gg.download(), grad, atol=TRANSC_ATOL, rtol=TRANSC_RTOL, name="grad")


@gpu
@pytest.mark.parametrize("kind", ["softmax_xent_sparse", "xent_probs_sparse"])
def test_cross_entropy_rejects_bad_labels(kind):
    a, labels = cc.empty((2, 3)), cc.to_device(np.array([0, 3], np.int32))
    with pytest.raises(ValueError, match="outside"):
        cc.cross_entropy(cc.empty((2,)), None, a, labels, kind.startswith("softmax_xent"), 1e-7,
                         1.0)


@gpu
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("n", [1, 1000, 100003])
def test_dropout_masks_bit_identical(rate, n):
    rng = np.random.default_rng(n)
    x = rand(rng, (n,))
    seed = 1234567890123 + n
    out, mask = core_dropout_forward(x, rate, seed)
    go, gm = empty_like(x), cc.empty((n,), np.uint8)
    cc.dropout_forward(go, gm, dev(x), rate, seed)
    np.testing.assert_array_equal(gm.download(), mask)
    np.testing.assert_array_equal(go.download(), out)
    g = rand(rng, (n,))
    gdi = empty_like(x)
    cc.dropout_backward(gdi, dev(g), gm, rate)
    np.testing.assert_array_equal(gdi.download(), core_dropout_backward(g, mask, rate))


OPTIMIZERS = [
    ("adam", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7, amsgrad=False)),
    ("adam", dict(lr=3e-4, beta1=0.8, beta2=0.99, eps=1e-8, amsgrad=True)),
    ("sgd", dict(lr=0.01, momentum=0.0, nesterov=False)),
    ("sgd", dict(lr=0.01, momentum=0.9, nesterov=False)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, momentum=0.0, eps=1e-7, centered=False)),
    ("rmsprop", dict(lr=1e-3, rho=0.95, momentum=0.5, eps=1e-7, centered=True)),
]


@gpu
@pytest.mark.parametrize("kind,hp", OPTIMIZERS, ids=lambda v: str(v))
def test_optimizer_updates_bit_identical(kind, hp):
    """Five steps on CPU and GPU from the same state: every buffer equal bit for bit."""
    rng = np.random.default_rng(7)
    n = 10007
    host = {k: rand(rng, (n,)) for k in ("w",)}
    for k in ("m", "v", "vhat", "vel", "mom", "avg"):
        host[k] = np.zeros(n, np.float32)
    devs = {k: dev(v) for k, v in host.items()}
    for step in range(1, 6):
        g = rand(rng, (n,))
        dg = dev(g)
        if kind == "adam":
            vh = "vhat" if hp["amsgrad"] else None
            args = (hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], step)
            _core.adam_update(host["w"], host["m"], host["v"], host[vh] if vh else None, g, *args)
            cc.adam_update(devs["w"], devs["m"], devs["v"], devs[vh] if vh else None, dg, *args)
        elif kind == "sgd":
            vel = "vel" if hp["momentum"] else None
            args = (hp["lr"], hp["momentum"], hp["nesterov"])
            _core.sgd_update(host["w"], host[vel] if vel else None, g, *args)
            cc.sgd_update(devs["w"], devs[vel] if vel else None, dg, *args)
        else:
            mom = "mom" if hp["momentum"] > 0 else None
            avg = "avg" if hp["centered"] else None
            args = (hp["lr"], hp["rho"], hp["momentum"], hp["eps"], hp["centered"])
            _core.rmsprop_update(host["w"], host["v"], host[mom] if mom else None,
                                 host[avg] if avg else None, g, *args)
            cc.rmsprop_update(devs["w"], devs["v"], devs[mom] if mom else None,
                              devs[avg] if avg else None, dg, *args)
    for k in host:
        np.testing.assert_array_equal(devs[k].download(), host[k], err_msg=k)


@gpu
def test_twenty_training_steps_tutorial_cnn_kernel_level():
    """The tutorial CNN (conv3x3/32 relu -> maxpool 2 -> dense 10, sparse softmax xent, Adam)
    trained for 20 steps with the CPU kernels and with the CUDA kernels from the same weights
    and batches: the weights stay close. (The device-resident fit() is built on these kernels
    later; this checks that their errors do not grow over training.)"""
    rng = np.random.default_rng(0)
    B, H, C1, K = 16, 28, 8, 10
    x_all = rng.random((20, B, H, H, 1)).astype(np.float32)
    y_all = rng.integers(0, K, (20, B)).astype(np.int32)
    params = {"w1": rand(rng, (3, 3, 1, C1), 0.3), "b1": np.zeros(C1, np.float32),
              "w2": rand(rng, (13 * 13 * C1, K), 0.05), "b2": np.zeros(K, np.float32)}
    cpu = {k: v.copy() for k, v in params.items()}
    cpu_state = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    gpu_p = {k: dev(v) for k, v in params.items()}
    gpu_state = {k: (cc.empty(v.shape), cc.empty(v.shape)) for k, v in params.items()}
    ws = cc.empty(max(cc.conv2d_workspace_size([B, H, H, 1], [3, 3, 1, C1], (1, 1), "valid"), 1))
    h1, a1 = cc.empty((B, 26, 26, C1)), cc.empty((B, 26, 26, C1))
    p1, am = cc.empty((B, 13, 13, C1)), cc.empty((B, 13, 13, C1), np.int32)
    z, loss, dz = cc.empty((B, K)), cc.empty((B,)), cc.empty((B, K))
    dp1, da1, dh1 = cc.empty((B, 13 * 13 * C1)), cc.empty(a1.shape), cc.empty(a1.shape)
    grads = {k: cc.empty(v.shape) for k, v in params.items()}
    for step in range(1, 21):
        x, y = x_all[step - 1], y_all[step - 1]
        # CPU step
        ch = core_conv2d_forward(x, cpu["w1"], cpu["b1"], (1, 1), "valid")
        ca = core_activation_forward(ch, "relu")
        cp, cam = core_maxpool2d_forward(ca, (2, 2), (2, 2), "valid")
        cz = core_dense_forward(cp.reshape(B, -1), cpu["w2"], cpu["b2"])
        _, cdz = core_xent("softmax_xent_sparse", cz, y, 1.0 / B)
        cdp, cdw2, cdb2 = core_dense_backward(cdz, cp.reshape(B, -1), cpu["w2"])
        cda = core_maxpool2d_backward(cdp.reshape(cp.shape), cam, ca.shape, (2, 2), (2, 2),
                                      "valid")
        cdh = core_activation_backward(cda, ca, "relu")
        _, cdw1, cdb1 = core_conv2d_backward(cdh, x, cpu["w1"], (1, 1), "valid", False)
        for k, g in (("w1", cdw1), ("b1", cdb1), ("w2", cdw2), ("b2", cdb2)):
            _core.adam_update(cpu[k], *cpu_state[k], None, g, 1e-3, 0.9, 0.999, 1e-7, step)
        # GPU step on preallocated buffers (Flatten is a free reshape: NHWC is contiguous)
        dx = dev(x)
        cc.conv2d_forward(h1, dx, gpu_p["w1"], gpu_p["b1"], (1, 1), "valid", ws)
        cc.activation_forward(a1, h1, _core.Activation.relu)
        cc.maxpool2d_forward(p1, am, a1, (2, 2), (2, 2), "valid")
        flat = dev(p1.download().reshape(B, -1))  # TODO(executor): a reshape view, no copy
        cc.dense_forward(z, flat, gpu_p["w2"], gpu_p["b2"])
        cc.cross_entropy(loss, dz, z, dev(y), True, 1e-7, 1.0 / B)
        cc.dense_backward(dp1, grads["w2"], grads["b2"], dz, flat, gpu_p["w2"])
        dp1_4d = dev(dp1.download().reshape(p1.shape))
        cc.maxpool2d_backward(da1, dp1_4d, am, (2, 2), (2, 2), "valid")
        cc.activation_backward(dh1, da1, a1, _core.Activation.relu)
        cc.conv2d_backward(None, grads["w1"], grads["b1"], dh1, dx, gpu_p["w1"], (1, 1),
                           "valid", ws)
        for k in params:
            cc.adam_update(gpu_p[k], *gpu_state[k], None, grads[k], 1e-3, 0.9, 0.999, 1e-7,
                           step)
    for k in params:
        assert_close(gpu_p[k].download(), cpu[k], atol=1e-4, rtol=1e-3, name=k,
                     op="cuda 20 training steps")
