"""Fuzzing every cnnfast._core entry point (hypothesis; profiles in tests/fuzz_profiles.py).

Each case starts from a valid call of one entry point with small random geometry, then either
runs it as is (it must succeed) or mutates ONE argument: an array's shape, rank, dtype or layout
(Fortran order, negative strides, gaps), a read-only output, None for a required array, a list
for an array, a zero / negative / huge window or stride, a bad padding string, NaN / Inf data,
a corrupted argmax. The call must then raise a Python exception whose message names the
function (or pybind11's "incompatible function arguments"), or, for a mutation that keeps the
values (a layout change of an input), give exactly the valid call's result. A crash or hang
would take the test process down with it."""
import numpy as np
import pytest
from fuzz_profiles import examples
from hypothesis import given
from hypothesis import strategies as st

from cnnfast import _core

F32 = np.float32


class Arg:
    """One argument: its value and role: 'in' / 'out' (arrays read / written), 'scratch' (a
    workspace of at least some size), 'pair' (window or strides), 'pad' (a padding string),
    'argmax' (read), 'scalar', 'fixed' (not mutated), 'dilation' (a pair), 'first' (a stream
    position >= 0), 'axis', 'size0' (an index >= 0 into the image), 'order' (0 or 1), 'name'
    (a mode string);
    `optional`: None is a valid value; `flat`: an input read flat (any shape of its size)."""

    def __init__(self, value, role, optional=False, flat=False):
        self.value, self.role, self.optional, self.flat = value, role, optional, flat


def _r(d, shape, lo=-1.0, hi=1.0):
    seed = d.draw(st.integers(0, 2**32 - 1), label="seed")
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(F32)


def _dim(d, lo=1, hi=5, label="dim"):
    return d.draw(st.integers(lo, hi), label=label)


def _geom(d):
    n, h, w, c = _dim(d, 1, 3), _dim(d, 1, 7), _dim(d, 1, 7), _dim(d, 1, 4)
    pad = d.draw(st.sampled_from(["valid", "same"]), label="padding")
    return n, h, w, c, pad


def _window(d, h, w, pad):
    kh = _dim(d, 1, h if pad == "valid" else 4)
    kw = _dim(d, 1, w if pad == "valid" else 4)
    return (kh, kw), (_dim(d, 1, 3), _dim(d, 1, 3))


def b_conv2d_forward(d):
    n, h, w, c, pad = _geom(d)
    k, s = _window(d, h, w, pad)
    oc = _dim(d, 1, 4)
    g = _core.conv2d_geometry((n, h, w, c), k + (c, oc), s, pad)
    ws = np.zeros(g["workspace"], F32) if g["workspace"] else None
    return [Arg(np.zeros(g["out_shape"], F32), "out"), Arg(_r(d, (n, h, w, c)), "in"),
            Arg(_r(d, k + (c, oc)), "in"), Arg(_r(d, (oc,)), "in", True), Arg(s, "pair"),
            Arg(pad, "pad"), Arg(ws, "scratch", True)]


def b_conv2d_backward(d):
    n, h, w, c, pad = _geom(d)
    k, s = _window(d, h, w, pad)
    oc = _dim(d, 1, 4)
    g = _core.conv2d_geometry((n, h, w, c), k + (c, oc), s, pad)
    ws = np.zeros(g["workspace"], F32) if g["workspace"] else None
    return [Arg(np.zeros((n, h, w, c), F32), "out", True), Arg(np.zeros(k + (c, oc), F32), "out"),
            Arg(np.zeros(oc, F32), "out", True), Arg(_r(d, g["out_shape"]), "in"),
            Arg(_r(d, (n, h, w, c)), "in"), Arg(_r(d, k + (c, oc)), "in"), Arg(s, "pair"),
            Arg(pad, "pad"), Arg(ws, "scratch", True)]


def _pool_geom(d):
    n, h, w, c, pad = _geom(d)
    k, s = _window(d, h, w, pad)
    g = _core.pool2d_geometry((n, h, w, c), k, s, pad)
    return (n, h, w, c), k, s, pad, tuple(g["out_shape"])


def b_maxpool2d_forward(d):
    ins, k, s, pad, os_ = _pool_geom(d)
    return [Arg(np.zeros(os_, F32), "out"), Arg(np.zeros(os_, np.int32), "out", True),
            Arg(_r(d, ins), "in"), Arg(k, "pair"), Arg(s, "pair"), Arg(pad, "pad")]


def b_maxpool2d_backward(d):
    ins, k, s, pad, os_ = _pool_geom(d)
    argmax = np.zeros(os_, np.int32)
    _core.maxpool2d_forward(np.zeros(os_, F32), argmax, _r(d, ins), k, s, pad)
    return [Arg(np.zeros(ins, F32), "out"), Arg(_r(d, os_), "in"), Arg(argmax, "argmax"),
            Arg(k, "pair"), Arg(s, "pair"), Arg(pad, "pad")]


def b_avgpool2d_forward(d):
    ins, k, s, pad, os_ = _pool_geom(d)
    return [Arg(np.zeros(os_, F32), "out"), Arg(_r(d, ins), "in"), Arg(k, "pair"),
            Arg(s, "pair"), Arg(pad, "pad")]


def b_avgpool2d_backward(d):
    ins, k, s, pad, os_ = _pool_geom(d)
    return [Arg(np.zeros(ins, F32), "out"), Arg(_r(d, os_), "in"), Arg(k, "pair"),
            Arg(s, "pair"), Arg(pad, "pad")]


def b_dense_forward(d):
    b, i, o = _dim(d), _dim(d), _dim(d)
    return [Arg(np.zeros((b, o), F32), "out"), Arg(_r(d, (b, i)), "in"),
            Arg(_r(d, (i, o)), "in"), Arg(_r(d, (o,)), "in", True)]


def b_dense_backward(d):
    b, i, o = _dim(d), _dim(d), _dim(d)
    return [Arg(np.zeros((b, i), F32), "out", True), Arg(np.zeros((i, o), F32), "out"),
            Arg(np.zeros(o, F32), "out", True), Arg(_r(d, (b, o)), "in"), Arg(_r(d, (b, i)), "in"),
            Arg(_r(d, (i, o)), "in")]


def _act(d):
    return d.draw(st.sampled_from(sorted(_core.Activation.__members__.values(),
                                         key=int)), label="activation")


def b_activation_forward(d):
    shape = (_dim(d), _dim(d))
    return [Arg(np.zeros(shape, F32), "out"), Arg(_r(d, shape), "in"), Arg(_act(d), "fixed")]


def b_activation_backward(d):
    shape = (_dim(d), _dim(d))
    a = _act(d)
    x = _r(d, shape)
    y = np.zeros(shape, F32)
    _core.activation_forward(y, x, a)
    return [Arg(np.zeros(shape, F32), "out"), Arg(_r(d, shape), "in"), Arg(y, "in"),
            Arg(a, "fixed"), Arg(x, "in", True)]


def b_cross_entropy(d):
    b, k = _dim(d), _dim(d, 2, 5)
    logits = d.draw(st.booleans(), label="from_logits")
    pred = _r(d, (b, k)) if logits else _r(d, (b, k), 0.01, 1.0)
    if d.draw(st.booleans(), label="sparse"):
        labels = np.random.default_rng(b * k).integers(0, k, b).astype(np.int32)
    else:
        labels = np.eye(k, dtype=F32)[np.arange(b) % k]
    return [Arg(np.zeros(b, F32), "out"), Arg(np.zeros((b, k), F32), "out", True),
            Arg(pred, "in"),
            Arg(labels, "in"), Arg(logits, "fixed")]


def b_element_loss(d):
    b, k = _dim(d), _dim(d)
    kind = d.draw(st.sampled_from(sorted(_core.ElementLoss.__members__.values(), key=int)))
    return [Arg(np.zeros(b, F32), "out"), Arg(np.zeros((b, k), F32), "out", True),
            Arg(_r(d, (b, k), 0.05, 0.95), "in"), Arg(_r(d, (b, k), 0.0, 1.0), "in"),
            Arg(kind, "fixed")]


def b_dropout_forward(d):
    shape = (_dim(d), _dim(d))
    return [Arg(np.zeros(shape, F32), "out"), Arg(np.zeros(shape, np.uint8), "out"),
            Arg(_r(d, shape), "in"), Arg(0.25, "scalar"), Arg(7, "fixed")]


def b_dropout_backward(d):
    shape = (_dim(d), _dim(d))
    mask = np.zeros(shape, np.uint8)
    _core.dropout_forward(np.zeros(shape, F32), mask, _r(d, shape), 0.5, 3)
    return [Arg(np.zeros(shape, F32), "out"), Arg(_r(d, shape), "in"), Arg(mask, "in"),
            Arg(0.5, "scalar")]


def b_batchnorm_forward(d):
    m, c = _dim(d), _dim(d)
    return [Arg(np.zeros((m, c), F32), "out"), Arg(np.zeros(c, F32), "out"),
            Arg(np.zeros(c, F32), "out"), Arg(np.zeros(c, F32), "out"),
            Arg(np.ones(c, F32), "out"), Arg(_r(d, (m, c)), "in"), Arg(_r(d, (c,)), "in", True),
            Arg(_r(d, (c,)), "in", True), Arg(1e-3, "scalar"), Arg(0.99, "fixed"),
            Arg(d.draw(st.booleans(), label="training"), "fixed")]


def b_batchnorm_backward(d):
    m, c = _dim(d), _dim(d)
    return [Arg(np.zeros((m, c), F32), "out", True), Arg(np.zeros(c, F32), "out", True),
            Arg(np.zeros(c, F32), "out", True), Arg(_r(d, (m, c)), "in"), Arg(_r(d, (m, c)), "in"),
            Arg(_r(d, (c,)), "in"), Arg(_r(d, (c,), 0.5, 2.0), "in"), Arg(_r(d, (c,)), "in", True),
            Arg(d.draw(st.booleans(), label="training"), "fixed")]


def _bn_pool_geom(d):
    """BN's input (N,H,W,C) and a pool whose windows tile it (strides == pool size <= 2, so no
    leading padding with 'same' either)."""
    n, h, w, c, pad = _geom(d)
    k = (_dim(d, 1, min(2, h), "kh"), _dim(d, 1, min(2, w), "kw"))
    g = _core.pool2d_geometry((n, h, w, c), k, k, pad)
    return (n, h, w, c), k, pad, tuple(g["out_shape"])


def b_batchnorm_maxpool_forward(d):
    ins, k, pad, os_ = _bn_pool_geom(d)
    c = ins[-1]
    return [Arg(np.zeros(os_, F32), "out"), Arg(np.zeros(os_, np.int32), "out"),
            Arg(np.zeros(os_, F32), "out"), Arg(np.zeros(c, F32), "out"),
            Arg(np.zeros(c, F32), "out"), Arg(np.zeros(c, F32), "out"),
            Arg(np.ones(c, F32), "out"), Arg(_r(d, ins), "in"), Arg(_r(d, (c,)), "in", True),
            Arg(_r(d, (c,)), "in", True), Arg(1e-3, "scalar"), Arg(0.99, "fixed"),
            Arg(d.draw(st.booleans(), label="training"), "fixed"),
            Arg(d.draw(st.booleans(), label="relu"), "fixed"), Arg(k, "pair"), Arg(k, "pair"),
            Arg(pad, "pad")]


def b_batchnorm_maxpool_backward(d):
    ins, k, pad, os_ = _bn_pool_geom(d)
    c = ins[-1]
    x = _r(d, ins)
    pooled, argmax, xwin = np.zeros(os_, F32), np.zeros(os_, np.int32), np.zeros(os_, F32)
    mean, rstd = np.zeros(c, F32), np.zeros(c, F32)
    relu = d.draw(st.booleans(), label="relu")
    _core.batchnorm_maxpool_forward(pooled, argmax, xwin, mean, rstd, np.zeros(c, F32),
                                    np.ones(c, F32), x, None, None, 1e-3, 0.99, True, relu, k, k,
                                    pad)
    return [Arg(np.zeros(ins, F32), "out", True), Arg(np.zeros(c, F32), "out", True),
            Arg(np.zeros(c, F32), "out", True), Arg(_r(d, os_), "in"), Arg(argmax, "argmax"),
            Arg(xwin, "in"), Arg(pooled if relu else None, "in", True), Arg(x, "in"),
            Arg(mean, "in"), Arg(rstd, "in"), Arg(_r(d, (c,)), "in", True),
            Arg(d.draw(st.booleans(), label="training"), "fixed"),
            Arg(d.draw(st.booleans(), label="relu_mask"), "fixed"), Arg(k, "pair"),
            Arg(k, "pair"), Arg(pad, "pad")]


def _nhwc(d):
    return (_dim(d, 1, 3), _dim(d), _dim(d), _dim(d, 1, 3))


def b_global_avgpool2d_forward(d):
    s = _nhwc(d)
    return [Arg(np.zeros((s[0], s[3]), F32), "out"), Arg(_r(d, s), "in")]


def b_global_avgpool2d_backward(d):
    s = _nhwc(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, (s[0], s[3])), "in")]


b_global_maxpool2d_forward = b_global_avgpool2d_forward


def b_global_maxpool2d_backward(d):
    s = _nhwc(d)
    x = _r(d, s)
    y = np.zeros((s[0], s[3]), F32)
    _core.global_maxpool2d_forward(y, x)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, (s[0], s[3])), "in"), Arg(x, "in"),
            Arg(y, "in")]


def b_rescale_forward(d):
    s = (_dim(d), _dim(d))
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(0.5, "scalar"),
            Arg(1.0, "scalar")]


def b_rescale_backward(d):
    s = (_dim(d), _dim(d))
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(0.5, "scalar")]


def _pads(d):
    return ((_dim(d, 0, 2), _dim(d, 0, 2)), (_dim(d, 0, 2), _dim(d, 0, 2)))


def b_zeropad2d_forward(d):
    s, p = _nhwc(d), _pads(d)
    big = (s[0], s[1] + p[0][0] + p[0][1], s[2] + p[1][0] + p[1][1], s[3])
    return [Arg(np.zeros(big, F32), "out"), Arg(_r(d, s), "in"), Arg(p, "pads")]


def b_zeropad2d_backward(d):
    s, p = _nhwc(d), _pads(d)
    big = (s[0], s[1] + p[0][0] + p[0][1], s[2] + p[1][0] + p[1][1], s[3])
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, big), "in"), Arg(p, "pads")]


def _w(d):
    return (_dim(d), _dim(d))


def b_adam_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out"), Arg(np.zeros(s, F32), "out"),
            Arg(np.zeros(s, F32), "out", True), Arg(_r(d, s), "in"), Arg(1e-3, "scalar"),
            Arg(0.9, "fixed"), Arg(0.999, "fixed"), Arg(1e-7, "fixed"), Arg(1, "step")]


def b_sgd_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out", True), Arg(_r(d, s), "in"),
            Arg(0.01, "scalar"), Arg(0.9, "fixed"), Arg(True, "fixed")]


def b_rmsprop_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out"), Arg(np.zeros(s, F32), "out", True),
            Arg(np.zeros(s, F32), "out", True), Arg(_r(d, s), "in"), Arg(1e-3, "scalar"),
            Arg(0.9, "fixed"), Arg(0.5, "fixed"), Arg(1e-7, "fixed"), Arg(True, "fixed")]


def b_nadam_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out"), Arg(np.zeros(s, F32), "out"),
            Arg(_r(d, s), "in"), Arg(1e-3, "scalar"), Arg(0.9, "fixed"), Arg(0.999, "fixed"),
            Arg(1e-7, "fixed"), Arg(1, "step"), Arg(0.9, "fixed")]


def b_adamax_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out"), Arg(np.zeros(s, F32), "out"),
            Arg(_r(d, s), "in"), Arg(1e-3, "scalar"), Arg(0.9, "fixed"), Arg(0.999, "fixed"),
            Arg(1e-7, "fixed"), Arg(1, "step")]


def b_adagrad_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.full(s, 0.1, F32), "out"), Arg(_r(d, s), "in"),
            Arg(1e-2, "scalar"), Arg(1e-7, "fixed")]


def b_adadelta_update(d):
    s = _w(d)
    return [Arg(_r(d, s), "out"), Arg(np.zeros(s, F32), "out"), Arg(np.zeros(s, F32), "out"),
            Arg(_r(d, s), "in"), Arg(1.0, "scalar"), Arg(0.95, "fixed"), Arg(1e-7, "fixed")]


def b_weight_decay_update(d):
    return [Arg(_r(d, _w(d)), "out"), Arg(1e-3, "scalar"), Arg(0.004, "scalar")]


def b_sgemm(d):
    m, k, n = _dim(d), _dim(d), _dim(d)
    ta, tb = d.draw(st.booleans(), label="ta"), d.draw(st.booleans(), label="tb")
    a = _r(d, (k, m) if ta else (m, k))
    b = _r(d, (n, k) if tb else (k, n))
    return [Arg(np.zeros((m, n), F32), "out"), Arg(a, "in"), Arg(b, "in"), Arg(ta, "fixed"),
            Arg(tb, "fixed")]


b_sgemm_reference = b_sgemm


def _spec(d):
    if d.draw(st.booleans(), label="flip"):
        return _core.AugmentSpec.flip(True, d.draw(st.booleans()))
    kind = d.draw(st.sampled_from([_core.AugmentKind.rotation, _core.AugmentKind.zoom]))
    return _core.AugmentSpec.resample(kind, -0.2, 0.2, True, -0.2, 0.2, "reflect", "bilinear",
                                      0.0)


def b_augment_forward(d):
    s = _nhwc(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(_spec(d), "fixed"),
            Arg(5, "fixed")]


def b_projective_transform(d):
    s = _nhwc(d)
    t = np.tile(np.array([1, 0.1, 0, 0, 1, 0, 0, 0], F32), (s[0], 1))
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(t, "in"),
            Arg(d.draw(st.sampled_from(["reflect", "wrap", "constant", "nearest"])), "name"),
            Arg(d.draw(st.sampled_from(["bilinear", "nearest"])), "name"), Arg(0.0, "scalar")]


def b_augment_params(d):
    spec = _spec(d)
    b = _dim(d)
    p = 1 if spec.kind == _core.AugmentKind.rotation else 2  # csrc augment_num_params
    return [Arg(np.zeros((b, p), F32), "out"), Arg(np.zeros((b, 8), F32), "out", True),
            Arg(spec, "fixed"), Arg(_dim(d, 1, 9), "size"), Arg(_dim(d, 1, 9), "size"),
            Arg(3, "fixed")]


def _dilated_geom(d, depthwise):
    """(input shape, kernel shape, strides, padding, dilation_rate, out shape) of a dilated or
    depthwise Conv2D whose dilated kernel fits a 'valid' input."""
    n, h, w, c, pad = _geom(d)
    dil = (_dim(d, 1, 3), _dim(d, 1, 3))
    lim = (h, w) if pad == "valid" else (7, 7)
    k = tuple(_dim(d, 1, max(1, (lim[a] - 1) // dil[a] + 1)) for a in range(2))
    s = (_dim(d, 1, 3), _dim(d, 1, 3))
    ker = k + (c, _dim(d, 1, 3))
    g = _core.depthwise_conv2d_geometry((n, h, w, c), (k + (c, 1)), s, pad, dil)
    out = tuple(g["out_shape"][:3]) + ((c * ker[3],) if depthwise else (ker[3],))
    return (n, h, w, c), ker, s, pad, dil, out


def b_conv2d_dilated_forward(d):
    ins, ker, s, pad, dil, os_ = _dilated_geom(d, False)
    return [Arg(np.zeros(os_, F32), "out"), Arg(_r(d, ins), "in"), Arg(_r(d, ker), "in"),
            Arg(_r(d, (ker[3],)), "in", True), Arg(s, "pair"), Arg(pad, "pad"),
            Arg(dil, "dilation")]


def b_conv2d_dilated_backward(d):
    ins, ker, s, pad, dil, os_ = _dilated_geom(d, False)
    return [Arg(np.zeros(ins, F32), "out", True), Arg(np.zeros(ker, F32), "out"),
            Arg(np.zeros(ker[3], F32), "out", True), Arg(_r(d, os_), "in"),
            Arg(_r(d, ins), "in"), Arg(_r(d, ker), "in"), Arg(s, "pair"), Arg(pad, "pad"),
            Arg(dil, "dilation")]


def b_depthwise_conv2d_forward(d):
    ins, ker, s, pad, dil, os_ = _dilated_geom(d, True)
    return [Arg(np.zeros(os_, F32), "out"), Arg(_r(d, ins), "in"), Arg(_r(d, ker), "in"),
            Arg(_r(d, (os_[3],)), "in", True), Arg(s, "pair"), Arg(pad, "pad"),
            Arg(dil, "dilation")]


def b_depthwise_conv2d_backward(d):
    ins, ker, s, pad, dil, os_ = _dilated_geom(d, True)
    return [Arg(np.zeros(ins, F32), "out", True), Arg(np.zeros(ker, F32), "out"),
            Arg(np.zeros(os_[3], F32), "out", True), Arg(_r(d, os_), "in"),
            Arg(_r(d, ins), "in"), Arg(_r(d, ker), "in"), Arg(s, "pair"), Arg(pad, "pad"),
            Arg(dil, "dilation")]


def b_dropout_forward_at(d):
    shape = (_dim(d), _dim(d))
    return [Arg(np.zeros(shape, F32), "out"), Arg(np.zeros(shape, np.uint8), "out"),
            Arg(_r(d, shape), "in"), Arg(0.25, "scalar"), Arg(7, "fixed"),
            Arg(_dim(d, 0, 9), "first")]


def b_spatial_dropout_forward(d):
    s = _nhwc(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(np.zeros((s[0], s[3]), np.uint8), "out"),
            Arg(_r(d, s), "in"), Arg(0.25, "scalar"), Arg(7, "fixed"),
            Arg(_dim(d, 0, 9), "first")]


def b_spatial_dropout_backward(d):
    s = _nhwc(d)
    mask = np.zeros((s[0], s[3]), np.uint8)
    _core.spatial_dropout_forward(np.zeros(s, F32), mask, _r(d, s), 0.5, 3)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(mask, "in"),
            Arg(0.5, "scalar")]


def _shape_nd(d):
    return tuple(_dim(d, 1, 4) for _ in range(_dim(d, 1, 4, label="ndim")))


def _relu(d):
    if d.draw(st.booleans(), label="leaky"):
        return _core.leaky_relu_spec(d.draw(st.sampled_from([0.0, 0.2, 1.5])))
    mx = d.draw(st.sampled_from([None, 0.5, 6.0]), label="max_value")
    return _core.relu_spec(d.draw(st.sampled_from([0.0, 0.1])), d.draw(
        st.sampled_from([0.0, 0.3])), mx)


def b_relu_forward(d):
    s = _shape_nd(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(_relu(d), "fixed")]


def b_relu_backward(d):
    s = _shape_nd(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(_r(d, s), "in"),
            Arg(_relu(d), "fixed")]


def b_elu_forward(d):
    s = _shape_nd(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(1.0, "scalar")]


def b_elu_backward(d):
    s = _shape_nd(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(_r(d, s), "in"),
            Arg(1.0, "scalar")]


def _prelu(d):
    """inp (B, ...), alpha over the non-shared axes, and its flat index per sample element."""
    s = (_dim(d, 1, 3),) + tuple(_dim(d, 1, 4) for _ in range(_dim(d, 1, 3, label="ndim")))
    shared = [d.draw(st.booleans(), label="shared") for _ in s[1:]]
    ashape = tuple(1 if sh else n for sh, n in zip(shared, s[1:]))
    idx = np.ravel_multi_index(
        np.meshgrid(*[np.zeros(n, int) if sh else np.arange(n) for sh, n in zip(shared, s[1:])],
                    indexing="ij"), ashape).astype(np.int32).ravel()
    return s, _r(d, ashape, 0.0, 0.5), idx


def b_prelu_forward(d):
    s, alpha, idx = _prelu(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(alpha, "in", flat=True),
            Arg(idx, "argmax")]


def b_prelu_backward(d):
    s, alpha, idx = _prelu(d)
    return [Arg(np.zeros(s, F32), "out", True), Arg(np.zeros(alpha.shape, F32), "out"),
            Arg(np.zeros((s[0], alpha.size), F32), "out"), Arg(_r(d, s), "in"),
            Arg(_r(d, s), "in"), Arg(alpha, "in", flat=True), Arg(idx, "argmax")]


def b_softmax_axis_forward(d):
    s = _shape_nd(d)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"),
            Arg(d.draw(st.integers(-len(s), len(s) - 1), label="axis"), "axis")]


def b_softmax_axis_backward(d):
    s = _shape_nd(d)
    axis = d.draw(st.integers(-len(s), len(s) - 1), label="axis")
    y = np.zeros(s, F32)
    _core.softmax_axis_forward(y, _r(d, s), axis)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(y, "in"), Arg(axis, "axis")]


def b_weight_penalty(d):
    s = _w(d)
    return [Arg(np.zeros(s, F32), "out", True), Arg(_r(d, s), "in"), Arg(1e-2, "scalar"),
            Arg(1e-3, "scalar"), Arg(1.0, "fixed")]


def b_weighted_loss_mean(d):
    # dpred (B, ...) of any trailing shape is valid: B >= 2 and K != B keep its rank mutations
    # (to (K,) and (1, B, K)) invalid
    b, k = _dim(d, 2, 5), _dim(d)
    k = k + 1 if k == b else k
    return [Arg(_r(d, (b, k)), "out", True), Arg(_r(d, (b,), 0.0, 2.0), "in"),
            Arg(_r(d, (b,), 0.0, 1.0), "in")]


def b_augment_inference(d):
    s = _nhwc(d)
    if d.draw(st.booleans(), label="crop"):  # RandomCrop: its centred crop, resized
        h, w = _dim(d, 1, 6), _dim(d, 1, 6)
        spec, os_ = _core.AugmentSpec.crop(h, w), (s[0], h, w, s[3])
    else:
        spec, os_ = _spec(d), s
    return [Arg(np.zeros(os_, F32), "out"), Arg(_r(d, s), "in"), Arg(spec, "fixed")]


def b_crop_resize(d):
    s = _nhwc(d)
    return [Arg(np.zeros((s[0], _dim(d, 1, 6), _dim(d, 1, 6), s[3]), F32), "out"),
            Arg(_r(d, s), "in"), Arg(_dim(d, 0, s[1] - 1), "size0"),
            Arg(_dim(d, 0, s[2] - 1), "size0")]


def b_resize_bilinear(d):
    s = _nhwc(d)
    return [Arg(np.zeros((s[0], _dim(d, 1, 6), _dim(d, 1, 6), s[3]), F32), "out"),
            Arg(_r(d, s), "in")]


def b_affine_warp(d):
    s = _nhwc(d)
    m = np.tile(np.array([1.0, 0.1, -0.3, 0.05, 0.9, 0.2]), (s[0], 1))
    flags = np.random.default_rng(s[0]).integers(0, 8, s[0]).astype(np.uint8)
    return [Arg(np.zeros(s, F32), "out"), Arg(_r(d, s), "in"), Arg(m, "in"), Arg(flags, "in"),
            Arg(d.draw(st.sampled_from(["reflect", "wrap", "constant", "nearest"])), "name"),
            Arg(d.draw(st.sampled_from([0, 1])), "order"), Arg(0.0, "scalar")]


ANY_SHAPE = {"weight_decay_update"}
BUILDERS = {name[2:]: fn for name, fn in globals().items() if name.startswith("b_")}
# Entry points that take no arrays, checked in test_scalar_entry_points below; the classes
# (Net, Op, OptSpec, AugmentSpec and the enums) in test_net_fuzz / test_specs.
SCALAR = {"build_info", "num_threads", "set_num_threads", "gemm_isa", "set_gemm_isa",
          "conv2d_geometry", "pool2d_geometry", "layer_seed", "f32_pow", "f32_cos", "f32_log",
          "nadam_u_product_next", "clip_gradients",
          # the conv-algorithm switch (tests/kernels/test_winograd.py checks its errors)
          "set_conv_algorithm", "conv_algorithm", "conv_uses_winograd",
          # shapes in, a dict out, like conv2d_geometry (the depthwise builders call it)
          "depthwise_conv2d_geometry",
          # ReluSpec's constructors take only floats (tests/kernels/test_relu_elu.py checks
          # their errors); the relu builders draw their specs from both
          "relu_spec", "leaky_relu_spec"}
CLASSES = {"Activation", "AugmentKind", "AugmentSpec", "ClipKind", "ElementLoss", "LossKind",
           "Net", "Op", "OpKind", "OptKind", "OptSpec", "ReluSpec"}


# Entry points that landed on main beside this file (issue 12 asks their layers to be fuzzed
# the same way): named here so that the merge keeps this test meaningful for any OTHER new
# entry point; each needs a b_<name> builder, then leaves this set.
AWAITING_BUILDERS: set[str] = set()


def test_every_entry_point_is_fuzzed():
    public = {n for n in dir(_core) if not n.startswith("_")}
    covered = set(BUILDERS) | SCALAR | CLASSES
    assert not covered & AWAITING_BUILDERS
    missing = public - covered - AWAITING_BUILDERS
    assert not missing, f"_core entry points without a fuzz builder: {sorted(missing)}"
    assert not covered - public, f"builders of unknown entry points: {sorted(covered - public)}"


# ---- mutations ---------------------------------------------------------------------------------
def _same_values(a, make):
    """A view of a copy of `a` with another layout but the same values."""
    b = make(a)
    np.testing.assert_array_equal(b, a)
    return b


LAYOUTS = {
    "fortran": lambda a: np.asfortranarray(a),
    "negative_strides": lambda a: np.flip(np.flip(a).copy()),
    "gaps": lambda a: np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a,
}


def _mutations(arg):
    """(name, new value, keeps values) for one argument."""
    v = arg.value
    out = []
    if isinstance(v, np.ndarray):
        for k, f in LAYOUTS.items():
            b = _same_values(v, f)
            # an output must be C-contiguous (a 1-D or one-element array may still be)
            out.append((f"layout:{k}", b, True if arg.role not in ("out", "scratch") else
                        (None if b.flags.c_contiguous else False)))
        # a scratch workspace only needs enough float32 elements, in any shape
        free_shape = None if arg.role == "scratch" or arg.flat else False
        out += [("rank+1", v[None], free_shape), ("list", v.tolist(), False),
                ("scalar", 1.0, False)]
        if not arg.optional:
            out.append(("None", None, False))
        if v.ndim > 1:
            out.append(("rank-1", v[0], free_shape))
        # Another size of one axis: often another valid call (an input's height, a backward
        # op's dinp), so it must raise or run, never crash; the exact-shape checks of the
        # outputs are covered by the rank and dtype mutations and tests/test_bad_input.py.
        for ax in range(v.ndim):
            for delta in (1, -1):
                shape = list(v.shape)
                shape[ax] += delta
                out.append((f"shape[{ax}]{delta:+d}", np.zeros(shape, v.dtype), None))
        for dt in (np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_):
            if np.dtype(dt) != v.dtype:
                out.append((f"dtype:{np.dtype(dt).name}", v.astype(dt), False))
        if arg.role in ("out", "scratch"):
            ro = v.copy()
            ro.setflags(write=False)
            out.append(("read-only", ro, False))
        if arg.role == "in" and v.dtype.kind == "f" and v.size:
            for bad in (np.nan, np.inf):
                b = v.copy()
                b.flat[0] = bad
                out.append((f"data:{bad}", b, None))  # must not crash; value unchecked
        if arg.role == "argmax" and v.size:
            for bad in (-1, 2**31 - 1, int(v.max()) + 1, -(2**31)):
                b = v.copy()
                b.flat[v.size // 2] = bad
                out.append((f"argmax:{bad}", b, False))
    elif arg.role in ("pair", "dilation"):
        a, b = v
        out += [(f"pair:{p}", p, False) for p in ((0, b), (a, 0), (-1, b), (a, -3),
                                                  (2**31, b), (a, 2**40))]
        if arg.role == "dilation":  # a kernel of 1 still fits; a larger one spans > 2**31
            out += [(f"dilation:{p}", p, None) for p in ((2**30, b), (a, 2**30 + 1))]
    elif arg.role == "pad":
        out += [("pad:Same", "Same", False), ("pad:full", "full", False), ("pad:int", 1, False)]
    elif arg.role == "pads":
        (t, b), lr = v
        out += [("pads:negative", ((-1, b), lr), False), ("pads:huge", ((t, 2**31), lr), False)]
    elif arg.role == "size":
        out += [("size:0", 0, None), ("size:-1", -1, None), ("size:huge", 2**31, False)]
    elif arg.role == "step":
        out += [("step:-1", -1, None), ("step:0", 0, None), ("step:huge", 2**63, False)]
    elif arg.role == "first":
        out += [("first:-1", -1, False), ("first:huge", 2**63, False)]
    elif arg.role == "axis":
        out += [("axis:99", 99, False), ("axis:-99", -99, False), ("axis:huge", 2**31, False)]
    elif arg.role == "size0":
        out += [("size0:-1", -1, False), ("size0:99", 99, False), ("size0:huge", 2**31, False)]
    elif arg.role == "order":
        out += [("order:2", 2, False), ("order:-1", -1, False)]
    elif arg.role == "name":
        out += [("name:bogus", "bogus", False), ("name:int", 1, False)]
    elif arg.role == "scalar":
        out += [("scalar:nan", float("nan"), None), ("scalar:-1", -1.0, None),
                ("scalar:str", "x", False)]
    return out


def _snapshot(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _outputs(args, roles):
    return [np.array(a) for a, r in zip(args, roles) if r in ("out", "argmax") and
            isinstance(a, np.ndarray)]


def _clear(e, name):
    msg = str(e)
    assert msg, f"{name}: {type(e).__name__} without a message"
    assert name in msg or "incompatible function arguments" in msg or \
        "incompatible constructor arguments" in msg, f"{name}: unclear message: {msg}"


@pytest.mark.parametrize("name", sorted(BUILDERS))
@examples(60)
@given(d=st.data())
def test_fuzz_kernel(name, d):
    fn = getattr(_core, name)
    args = BUILDERS[name](d)
    roles = [a.role for a in args]
    values = [a.value for a in args]
    # the valid call (on copies): it succeeds, and is the reference of value-keeping mutations
    ref_args = _snapshot(values)
    ref_ret = fn(*ref_args)
    ref_outs = _outputs(ref_args, roles)
    choices = [(i, m) for i, a in enumerate(args) for m in _mutations(a)]
    i, (what, value, keeps) = d.draw(st.sampled_from(choices), label="mutation")
    mutated = _snapshot(values)
    mutated[i] = value
    try:
        ret = fn(*mutated)
    except (ValueError, TypeError, OverflowError, MemoryError, RuntimeError) as e:
        _clear(e, name)
        return
    if name in ANY_SHAPE and what.startswith(("rank", "shape")):
        return  # an elementwise op on its only array: every shape is valid
    assert keeps is not False, f"{name}: argument {i} ({what}) was accepted"
    if keeps and roles[i] == "in":
        outs = _outputs(mutated, roles)
        for a, b in zip(outs, ref_outs):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} with {what} of argument {i}")
        if isinstance(ref_ret, float):
            assert ret == ref_ret or (np.isnan(ret) and np.isnan(ref_ret))


@pytest.mark.parametrize("fn", ["conv2d_dilated_forward", "depthwise_conv2d_forward"])
def test_dilated_geometry_errors_name_the_op(fn):
    """Found by the fuzzer: the dilated geometries' own checks came back unnamed
    ("cnnfast: window 2 larger than input 1 ..."), and a dilation whose kernel extent
    overflows int was computed in int (undefined) before being refused as a non-positive
    kernel."""
    f = getattr(_core, fn)
    x, w = np.zeros((1, 3, 3, 1), F32), np.zeros((3, 3, 1, 1), F32)
    with pytest.raises(ValueError,
                       match=f"{fn}: .*window 5 larger than input 3.*inp \\(1, 3, 3, 1\\)"):
        f(np.zeros((1, 1, 1, 1), F32), x, w, None, (1, 1), "valid", (2, 2))
    with pytest.raises(ValueError, match=f"{fn}: weight \\(3, 3, 1, 1\\) with dilation_rate "
                                         "\\(1073741824, 1\\) spans more than 2\\*\\*31 - 1"):
        f(np.zeros((1, 3, 3, 1), F32), x, w, None, (1, 1), "same", (2**30, 1))


def test_affine_warp_refuses_unknown_flag_bits():
    """Found writing its builder: a flag byte of 8..255 was accepted and its high bits ignored."""
    x = np.ones((2, 3, 3, 1), F32)
    m = np.tile(np.array([1.0, 0, 0, 0, 1.0, 0]), (2, 1))
    with pytest.raises(ValueError, match=r"affine_warp: flags\[1\] = 8 has bits other than"):
        _core.affine_warp(np.zeros_like(x), x, m, np.array([7, 8], np.uint8), "reflect", 1, 0.0)
