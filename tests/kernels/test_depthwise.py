"""depthwise_conv2d_* and conv2d_dilated_*: the depthwise and the dilated Conv2D kernels.

In order: a NumPy float64 reference (explicit zero padding, one strided slice per tap) for
forward and backward over odd sizes, strides, both paddings, dilations and depth multipliers;
central differences of the float64 forward against the kernels' gradients; bit-identical
results at 1 and 2 threads; the geometry; binding errors.

Tolerances: the fp32 defaults (atol 1e-5, rtol 1e-4) for the forward and dinp (a few products
per value); the weight and bias gradients sum over N*OH*OW products: sum_tol(that count).
"""
import itertools

import numpy as np
import pytest
from helpers import assert_close, rand, readonly, sum_tol, z

from cnnfast import _core


def window(n, k, s, d, padding):
    """(out, pad_before, pad_after) of one axis, TF's rule with the effective kernel size."""
    ek = (k - 1) * d + 1
    if padding == "valid":
        out = (n - ek) // s + 1
        return out, 0, max((out - 1) * s + ek - n, 0)
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return out, total // 2, total - total // 2


def _taps(x, kshape, strides, padding, dilation):
    """Zero-padded float64 input, output size, and per-tap (kh, kw, slices) of it."""
    N, H, W, C = x.shape
    KH, KW = kshape
    (SH, SW), (DH, DW) = strides, dilation
    OH, pt, pb = window(H, KH, SH, DH, padding)
    OW, pl, pr = window(W, KW, SW, DW, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    taps = []
    for kh, kw in itertools.product(range(KH), range(KW)):
        sl = (slice(None), slice(kh * DH, kh * DH + (OH - 1) * SH + 1, SH),
              slice(kw * DW, kw * DW + (OW - 1) * SW + 1, SW), slice(None))
        taps.append((kh, kw, sl))
    return xp, (OH, OW), (pt, pl), taps


def ref_conv(x, w, b, strides, padding, dilation):
    xp, (OH, OW), _, taps = _taps(x, w.shape[:2], strides, padding, dilation)
    out = np.zeros((x.shape[0], OH, OW, w.shape[3]))
    for kh, kw, sl in taps:
        out += xp[sl] @ w[kh, kw].astype(np.float64)
    return out + (0 if b is None else b.astype(np.float64))


def ref_conv_backward(dout, x, w, strides, padding, dilation):
    xp, _, (pt, pl), taps = _taps(x, w.shape[:2], strides, padding, dilation)
    dxp, dw = np.zeros_like(xp), np.zeros(w.shape)
    d = dout.astype(np.float64)
    for kh, kw, sl in taps:
        dw[kh, kw] = np.einsum("nhwc,nhwo->co", xp[sl], d)
        dxp[sl] += d @ w[kh, kw].astype(np.float64).T
    H, W = x.shape[1:3]
    return dxp[:, pt:pt + H, pl:pl + W], dw, d.sum(axis=(0, 1, 2))


def ref_depthwise(x, w, b, strides, padding, dilation):
    xp, (OH, OW), _, taps = _taps(x, w.shape[:2], strides, padding, dilation)
    N, C, DM = x.shape[0], w.shape[2], w.shape[3]
    out = np.zeros((N, OH, OW, C, DM))
    for kh, kw, sl in taps:
        out += xp[sl][..., None] * w[kh, kw].astype(np.float64)
    out = out.reshape(N, OH, OW, C * DM)
    return out + (0 if b is None else b.astype(np.float64))


def ref_depthwise_backward(dout, x, w, strides, padding, dilation):
    xp, _, (pt, pl), taps = _taps(x, w.shape[:2], strides, padding, dilation)
    C, DM = w.shape[2], w.shape[3]
    d = dout.astype(np.float64)
    d5 = d.reshape(d.shape[:3] + (C, DM))
    dxp, dw = np.zeros_like(xp), np.zeros(w.shape)
    for kh, kw, sl in taps:
        dw[kh, kw] = np.einsum("nhwc,nhwcm->cm", xp[sl], d5)
        dxp[sl] += (d5 * w[kh, kw].astype(np.float64)).sum(axis=-1)
    H, W = x.shape[1:3]
    return dxp[:, pt:pt + H, pl:pl + W], dw, d.sum(axis=(0, 1, 2))


# ---- wrappers around the kernels -------------------------------------------------------------
def dw_forward(x, w, b, strides, padding, dilation):
    g = _core.depthwise_conv2d_geometry(x.shape, w.shape, strides, padding, dilation)
    out = np.empty(g["out_shape"], np.float32)
    _core.depthwise_conv2d_forward(out, x, w, b, strides, padding, dilation)
    return out


def dw_backward(dout, x, w, strides, padding, dilation, with_dinp=True, with_bias=True):
    dx = np.empty_like(x) if with_dinp else None
    dw = np.empty_like(w)
    db = np.empty(dout.shape[-1], np.float32) if with_bias else None
    _core.depthwise_conv2d_backward(dx, dw, db, dout, x, w, strides, padding, dilation)
    return dx, dw, db


def dil_forward(x, w, b, strides, padding, dilation):
    OH = window(x.shape[1], w.shape[0], strides[0], dilation[0], padding)[0]
    OW = window(x.shape[2], w.shape[1], strides[1], dilation[1], padding)[0]
    out = np.empty((x.shape[0], OH, OW, w.shape[3]), np.float32)
    _core.conv2d_dilated_forward(out, x, w, b, strides, padding, dilation)
    return out


def dil_backward(dout, x, w, strides, padding, dilation, with_dinp=True, with_bias=True):
    dx = np.empty_like(x) if with_dinp else None
    dw = np.empty_like(w)
    db = np.empty(w.shape[3], np.float32) if with_bias else None
    _core.conv2d_dilated_backward(dx, dw, db, dout, x, w, strides, padding, dilation)
    return dx, dw, db


# ---- cases ------------------------------------------------------------------------------------
# (N, H, W, C, KH, KW, DM, strides, dilation); Keras forbids strides > 1 with dilation > 1 in
# Conv2D and TF's depthwise op rejects it too, but the kernels run any combination.
DW_CASES = [
    (2, 7, 9, 3, 3, 3, 1, (1, 1), (1, 1)),
    (1, 13, 11, 5, 3, 3, 2, (2, 2), (1, 1)),
    (3, 9, 8, 4, 5, 3, 1, (1, 2), (1, 1)),
    (2, 11, 13, 3, 3, 3, 3, (1, 1), (2, 2)),
    (1, 12, 10, 2, 3, 2, 1, (1, 1), (3, 2)),
    (2, 6, 7, 8, 1, 1, 2, (2, 1), (1, 1)),
    (1, 10, 10, 3, 2, 2, 2, (3, 3), (2, 1)),
    (5, 5, 5, 1, 3, 3, 4, (1, 1), (1, 1)),
]
PADDINGS = ["valid", "same"]


def _ids(case):
    N, H, W, C, KH, KW, DM, s, d = case
    return f"n{N}_{H}x{W}x{C}_k{KH}{KW}_dm{DM}_s{s[0]}{s[1]}_d{d[0]}{d[1]}"


def _dw_inputs(case, seed):
    N, H, W, C, KH, KW, DM, s, d = case
    rng = np.random.default_rng(seed)
    x = rand(rng, (N, H, W, C))
    w = rand(rng, (KH, KW, C, DM), 1.0 / np.sqrt(KH * KW))
    b = rand(rng, (C * DM,))
    return x, w, b, s, d


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", DW_CASES, ids=_ids)
def test_depthwise_matches_reference(case, padding, threads):
    x, w, b, s, d = _dw_inputs(case, 1)
    out = dw_forward(x, w, b, s, padding, d)
    assert_close(out, ref_depthwise(x, w, b, s, padding, d), name="depthwise forward",
                 op="depthwise_conv2d")
    dout = rand(np.random.default_rng(2), out.shape)
    dx, dw, db = dw_backward(dout, x, w, s, padding, d)
    rdx, rdw, rdb = ref_depthwise_backward(dout, x, w, s, padding, d)
    n_terms = out.shape[0] * out.shape[1] * out.shape[2]
    assert_close(dx, rdx, name="depthwise dinp", op="depthwise_conv2d")
    assert_close(dw, rdw, atol=sum_tol(n_terms), name="depthwise dweight", op="depthwise_conv2d")
    assert_close(db, rdb, atol=sum_tol(n_terms), name="depthwise dbias", op="depthwise_conv2d")
    # without bias / without dinp: the same gradients
    _, dw2, _ = dw_backward(dout, x, w, s, padding, d, with_dinp=False, with_bias=False)
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(dw_forward(x, w, None, s, padding, d) + b,
                                  dw_forward(x, w, np.zeros_like(b), s, padding, d) + b)


# (N, H, W, C, KH, KW, OC, strides, dilation)
DIL_CASES = [
    (2, 9, 11, 3, 3, 3, 4, (1, 1), (2, 2)),
    (1, 13, 12, 1, 3, 2, 5, (1, 1), (3, 1)),
    (3, 10, 9, 4, 2, 3, 2, (1, 1), (1, 3)),
    (1, 11, 11, 2, 3, 3, 3, (2, 2), (2, 2)),   # the kernel runs it; the layer forbids it
    (1, 31, 29, 5, 3, 3, 7, (1, 1), (2, 2)),   # more than one im2col chunk? no: one, big
    (40, 12, 12, 3, 3, 3, 4, (1, 1), (2, 2)),  # several chunks: dweight accumulates in order
]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", DIL_CASES, ids=_ids)
def test_conv2d_dilated_matches_reference(case, padding, threads):
    N, H, W, C, KH, KW, OC, s, d = case
    rng = np.random.default_rng(3)
    x = rand(rng, (N, H, W, C))
    w = rand(rng, (KH, KW, C, OC), 1.0 / np.sqrt(KH * KW * C))
    b = rand(rng, (OC,))
    out = dil_forward(x, w, b, s, padding, d)
    assert_close(out, ref_conv(x, w, b, s, padding, d), name="dilated forward",
                 op="conv2d_dilated")
    dout = rand(rng, out.shape)
    dx, dw, db = dil_backward(dout, x, w, s, padding, d)
    rdx, rdw, rdb = ref_conv_backward(dout, x, w, s, padding, d)
    n_terms = out.shape[0] * out.shape[1] * out.shape[2]
    assert_close(dx, rdx, atol=sum_tol(KH * KW * OC), name="dilated dinp", op="conv2d_dilated")
    assert_close(dw, rdw, atol=sum_tol(n_terms), name="dilated dweight", op="conv2d_dilated")
    assert_close(db, rdb, atol=sum_tol(n_terms), name="dilated dbias", op="conv2d_dilated")
    _, dw2, _ = dil_backward(dout, x, w, s, padding, d, with_dinp=False, with_bias=False)
    np.testing.assert_array_equal(dw2, dw)


def test_dilation_one_equals_conv2d():
    """Dilation (1, 1) through the dilated kernel gives conv2d_forward's values (to rounding)."""
    rng = np.random.default_rng(4)
    x, w, b = rand(rng, (2, 9, 8, 3)), rand(rng, (3, 3, 3, 5), 0.3), rand(rng, (5,))
    for padding in PADDINGS:
        g = _core.conv2d_geometry(x.shape, w.shape, (1, 1), padding)
        ref = np.empty(g["out_shape"], np.float32)
        _core.conv2d_forward(ref, x, w, b, (1, 1), padding, np.empty(g["workspace"], np.float32))
        assert_close(dil_forward(x, w, b, (1, 1), padding, (1, 1)), ref, name=padding)


# ---- central differences -----------------------------------------------------------------------
def _central_diff(f, a, idx, eps=1e-3):
    a = a.astype(np.float64)
    hi, lo = a.copy(), a.copy()
    hi[idx] += eps
    lo[idx] -= eps
    return (f(hi) - f(lo)) / (2 * eps)


@pytest.mark.parametrize("kind", ["depthwise", "dilated"])
@pytest.mark.parametrize("padding", PADDINGS)
def test_gradients_by_central_differences(kind, padding):
    """The kernels' gradients of L = sum(out * r) against central differences of the float64
    forward at 12 random coordinates of each of inp, weight and bias."""
    rng = np.random.default_rng(5)
    if kind == "depthwise":
        x, w, b = rand(rng, (2, 8, 7, 3)), rand(rng, (3, 3, 3, 2), 0.5), rand(rng, (6,))
        s, d, ref, bwd = (1, 1), (2, 1), ref_depthwise, dw_backward
        out_shape = ref(x, w, b, s, padding, d).shape
    else:
        x, w, b = rand(rng, (2, 9, 8, 2)), rand(rng, (3, 2, 2, 3), 0.5), rand(rng, (3,))
        s, d, ref, bwd = (1, 1), (2, 3), ref_conv, dil_backward
        out_shape = ref(x, w, b, s, padding, d).shape
    r = rand(rng, out_shape)
    grads = bwd(r, x, w, s, padding, d)
    fns = [lambda v: (ref(v, w, b, s, padding, d) * r).sum(),
           lambda v: (ref(x, v, b, s, padding, d) * r).sum(),
           lambda v: (ref(x, w, v, s, padding, d) * r).sum()]
    for arr, f, g, name in zip((x, w, b), fns, grads, ("dinp", "dweight", "dbias")):
        flat = rng.choice(arr.size, size=min(12, arr.size), replace=False)
        for i in flat:
            idx = np.unravel_index(i, arr.shape)
            # the forward is linear in each argument: the difference is exact up to rounding
            np.testing.assert_allclose(g[idx], _central_diff(f, arr, idx), rtol=1e-4,
                                       atol=1e-4, err_msg=f"{kind} {name} at {idx}")


# ---- threads ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["depthwise", "dilated"])
def test_bit_identical_across_threads(kind):
    rng = np.random.default_rng(6)
    if kind == "depthwise":
        x, w, b = rand(rng, (37, 15, 13, 6)), rand(rng, (3, 3, 6, 2)), rand(rng, (12,))
        fwd, bwd, s, d = dw_forward, dw_backward, (1, 1), (2, 2)
    else:
        x, w, b = rand(rng, (37, 15, 13, 6)), rand(rng, (3, 3, 6, 5)), rand(rng, (5,))
        fwd, bwd, s, d = dil_forward, dil_backward, (1, 1), (2, 2)
    old = _core.num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            _core.set_num_threads(n)
            out = fwd(x, w, b, s, "same", d)
            dout = np.cos(out).astype(np.float32)
            results.append((out,) + bwd(dout, x, w, s, "same", d))
    finally:
        _core.set_num_threads(old)
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


# ---- geometry and errors ------------------------------------------------------------------------
@pytest.mark.parametrize("padding", PADDINGS)
def test_depthwise_geometry(padding):
    for H, k, s, d in [(7, 3, 1, 2), (10, 3, 2, 1), (9, 2, 3, 1), (12, 3, 1, 4), (5, 5, 1, 1)]:
        g = _core.depthwise_conv2d_geometry((2, H, H + 1, 3), (k, k, 3, 2), (s, s), padding,
                                            (d, d))
        OH, pt, _ = window(H, k, s, d, padding)
        OW, pl, _ = window(H + 1, k, s, d, padding)
        assert g["out_shape"] == (2, OH, OW, 6)
        assert (g["pad_top"], g["pad_left"]) == (pt, pl)


def test_depthwise_binding_errors():
    x, w = z(1, 6, 6, 3), z(3, 3, 3, 2)
    out = z(1, 4, 4, 6)
    f = _core.depthwise_conv2d_forward
    f(out, x, w, None, (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="depthwise_conv2d_forward: weight .* expects 4 input"):
        f(out, x, z(3, 3, 4, 2), None, (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="out has shape .*, expected"):
        f(z(1, 4, 4, 3), x, w, None, (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="dilation_rate must be positive"):
        f(out, x, w, None, (1, 1), "valid", (0, 1))
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        f(out, x, w, None, (1, 1), "full", (1, 1))
    with pytest.raises(ValueError, match="larger than input"):
        f(out, x, w, None, (1, 1), "valid", (3, 3))
    with pytest.raises(TypeError, match="bias must have dtype float32"):
        f(out, x, w, np.zeros(6), (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="bias has shape .*, expected"):
        f(out, x, w, z(3), (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="writable|writeable"):
        f(readonly(out), x, w, None, (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="must be 4-D"):
        f(out, z(6, 6, 3), w, None, (1, 1), "valid", (1, 1))
    b = _core.depthwise_conv2d_backward
    with pytest.raises(ValueError, match="dout has shape .*, expected"):
        b(None, z(3, 3, 3, 2), None, z(1, 4, 4, 3), x, w, (1, 1), "valid", (1, 1))
    with pytest.raises(ValueError, match="dweight has shape .*, expected"):
        b(None, z(3, 3, 3, 1), None, out, x, w, (1, 1), "valid", (1, 1))


def test_dilated_binding_errors():
    x, w = z(1, 9, 9, 2), z(3, 3, 2, 4)
    out = z(1, 5, 5, 4)
    f = _core.conv2d_dilated_forward
    f(out, x, w, None, (1, 1), "valid", (2, 2))
    with pytest.raises(ValueError, match="out has shape .*, expected"):
        f(z(1, 7, 7, 4), x, w, None, (1, 1), "valid", (2, 2))
    with pytest.raises(ValueError, match="conv2d_dilated_forward: weight .* expects 3 input"):
        f(out, x, z(3, 3, 3, 4), None, (1, 1), "valid", (2, 2))
    with pytest.raises(ValueError, match="dilation_rate must be positive"):
        f(out, x, w, None, (1, 1), "valid", (2, -1))
    with pytest.raises(ValueError, match="larger than input"):
        f(out, x, w, None, (1, 1), "valid", (5, 5))
    with pytest.raises(ValueError, match="dinp has shape .*, expected"):
        _core.conv2d_dilated_backward(z(1, 9, 8, 2), z(3, 3, 2, 4), None, out, x, w, (1, 1),
                                      "valid", (2, 2))
