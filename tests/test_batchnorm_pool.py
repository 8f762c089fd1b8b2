"""BatchNormalization [+ ReLU] + MaxPool2D fused into one pass each way (csrc/batchnorm_pool.h,
docs/training_step.md#batchnormalization-fused-with-the-max-pool): the kernels give the
unfused sequence's bits (batchnorm_forward, ReLU, maxpool2d_forward; maxpool2d_backward,
ReLU', batchnorm_backward), and the Net that uses them trains as the LayerEngine does, bit
for bit."""
import numpy as np
import pytest
from helpers import assert_engines_agree, fit_on_engine

import cnnfast as cf
from cnnfast import _core as C
from cnnfast import layers
from cnnfast.layers.base import reset_names

F32 = np.float32


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == F32 else a.dtype)


def out_size(n, pool, pad):
    return -(-n // pool) if pad == "same" else (n - pool) // pool + 1


def case(rng, shape, relu_in, ties, gamma_sign):
    N, H, W, Ch = shape
    x = rng.standard_normal(shape).astype(F32)
    if relu_in:
        x = np.maximum(x, F32(0))  # a ReLU conv's output: many exact zeros, so many ties
    if ties:
        x = (np.round(x * 2) / 2).astype(F32)
    g = (rng.standard_normal(Ch) * 0.5 + gamma_sign).astype(F32)
    b = rng.standard_normal(Ch).astype(F32)
    mm = rng.standard_normal(Ch).astype(F32)
    mv = (rng.random(Ch) + 0.5).astype(F32)
    return x, g, b, mm, mv


def unfused(x, g, b, mm, mv, dout, pool, pad, relu, training, relu_in, with_dinp=True):
    """The sequence the Net ran before the fusion, with its kernels."""
    Ch = x.shape[-1]
    y = np.empty_like(x)
    mean, rstd = np.empty(Ch, F32), np.empty(Ch, F32)
    C.batchnorm_forward(y, mean, rstd, mm, mv, x, g, b, 1e-3, 0.99, training)
    if relu:
        y = np.where(y > 0, y, F32(0)).astype(F32)
    oshape = dout.shape
    out, am = np.empty(oshape, F32), np.empty(oshape, np.int32)
    C.maxpool2d_forward(out, am, y, (pool, pool), (pool, pool), pad)
    dy = np.empty_like(x)
    C.maxpool2d_backward(dy, dout, am, (pool, pool), (pool, pool), pad)
    if relu:
        dy = np.where(y > 0, dy, F32(0)).astype(F32)
    dx = np.empty_like(x) if with_dinp else None
    dg, db = np.empty(Ch, F32), np.empty(Ch, F32)
    C.batchnorm_backward(dx, dg, db, dy, x, mean, rstd, g, training)
    if relu_in and with_dinp:
        dx = np.where(x > 0, dx, F32(0)).astype(F32)
    return out, am, mean, rstd, dx, dg, db


def fused(x, g, b, mm, mv, dout, pool, pad, relu, training, relu_in, with_dinp=True):
    Ch = x.shape[-1]
    oshape = dout.shape
    out, am, xw = np.empty(oshape, F32), np.empty(oshape, np.int32), np.empty(oshape, F32)
    mean, rstd = np.empty(Ch, F32), np.empty(Ch, F32)
    C.batchnorm_maxpool_forward(out, am, xw, mean, rstd, mm, mv, x, g, b, 1e-3, 0.99, training,
                                relu, (pool, pool), (pool, pool), pad)
    dx = np.empty_like(x) if with_dinp else None
    dg, db = np.empty(Ch, F32), np.empty(Ch, F32)
    C.batchnorm_maxpool_backward(dx, dg, db, dout, am, xw, out if relu else None, x, mean, rstd,
                                 g, training, relu_in, (pool, pool), (pool, pool), pad)
    # xwin holds x at each window's argmax
    n, oh, ow, c = np.indices(oshape)
    W = x.shape[2]
    np.testing.assert_array_equal(xw, x[n, am // W, am % W, c])
    return out, am, mean, rstd, dx, dg, db


# 28x28x32 at N=2: 1568 rows, BN's 256-row blocks start mid-image; 13x11 at N=2: the block
# boundary at row 256 falls between the two cells of a window (iw = 3); odd sizes leave cells no
# 'valid' window covers, and 'same' clips the last windows.
SHAPES = [(2, 28, 28, 32), (3, 7, 9, 5), (1, 5, 5, 1), (2, 13, 11, 17), (2, 14, 14, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pool,pad", [(2, "valid"), (2, "same"), (3, "valid")])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_fused_kernels_give_the_unfused_bits(shape, pool, pad, relu, training):
    rng = np.random.default_rng(hash((shape, pool, pad, relu, training)) % 2**32)
    N, H, W, Ch = shape
    oshape = (N, out_size(H, pool, pad), out_size(W, pool, pad), Ch)
    for relu_in, ties, gamma_sign in [(False, False, 1.0), (True, False, -1.0),
                                      (True, True, 1.0), (False, True, -1.0)]:
        x, g, b, mm, mv = case(rng, shape, relu_in, ties, gamma_sign)
        dout = rng.standard_normal(oshape).astype(F32)
        mm1, mv1, mm2, mv2 = mm.copy(), mv.copy(), mm.copy(), mv.copy()
        want = unfused(x, g, b, mm1, mv1, dout, pool, pad, relu, training, relu_in)
        got = fused(x, g, b, mm2, mv2, dout, pool, pad, relu, training, relu_in)
        for w, o in zip(want, got):
            np.testing.assert_array_equal(bits(o), bits(w))
        np.testing.assert_array_equal(bits(mm2), bits(mm1))  # the moving statistics' update
        np.testing.assert_array_equal(bits(mv2), bits(mv1))


def test_only_the_parameter_gradients_without_dinp():
    rng = np.random.default_rng(3)
    x, g, b, mm, mv = case(rng, (2, 13, 11, 17), True, False, 1.0)
    dout = rng.standard_normal((2, 6, 5, 17)).astype(F32)
    want = unfused(x, g, b, mm.copy(), mv.copy(), dout, 2, "valid", False, True, True, False)
    got = fused(x, g, b, mm.copy(), mv.copy(), dout, 2, "valid", False, True, True, False)
    for w, o in zip(want[5:], got[5:]):
        np.testing.assert_array_equal(bits(o), bits(w))


def test_same_bits_on_one_and_two_threads():
    rng = np.random.default_rng(4)
    x, g, b, mm, mv = case(rng, (6, 28, 28, 32), True, False, 1.0)
    dout = rng.standard_normal((6, 14, 14, 32)).astype(F32)
    old = cf.backend.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            cf.backend.set_num_threads(n)
            runs.append(fused(x, g, b, mm.copy(), mv.copy(), dout, 2, "valid", True, True, True))
    finally:
        cf.backend.set_num_threads(old)
    for a, b_ in zip(*runs):
        np.testing.assert_array_equal(bits(a), bits(b_))


def test_bad_arguments_are_refused():
    x = np.ones((2, 6, 6, 3), F32)
    v = np.ones(3, F32)
    out, am, xw = np.empty((2, 3, 3, 3), F32), np.empty((2, 3, 3, 3), np.int32), \
        np.empty((2, 3, 3, 3), F32)
    fwd = C.batchnorm_maxpool_forward
    with pytest.raises(ValueError, match="tile"):  # 3x3 windows at stride 2 overlap
        fwd(np.empty((2, 2, 2, 3), F32), None, None, v.copy(), v.copy(), v.copy(), v.copy(), x,
            v, v, 1e-3, 0.99, True, False, (3, 3), (2, 2), "valid")
    with pytest.raises(ValueError, match="argmax and xwin go together"):
        fwd(out, am, None, v.copy(), v.copy(), v.copy(), v.copy(), x, v, v, 1e-3, 0.99, True,
            False, (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="out must not overlap inp"):
        overlapping = x.reshape(-1)[18:72].reshape(2, 3, 3, 3)
        fwd(overlapping, None, None, v.copy(), v.copy(), v.copy(), v.copy(), x, v, v, 1e-3,
            0.99, True, False, (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError):  # a wrong shape, named
        fwd(np.empty((2, 3, 3, 4), F32), None, None, v.copy(), v.copy(), v.copy(), v.copy(), x,
            v, v, 1e-3, 0.99, True, False, (2, 2), (2, 2), "valid")
    mean, rstd = v.copy(), v.copy()
    fwd(out, am, xw, mean, rstd, v.copy(), v.copy(), x, v, v, 1e-3, 0.99, True, False,
        (2, 2), (2, 2), "valid")
    bwd = C.batchnorm_maxpool_backward
    with pytest.raises(ValueError, match="dinp must not overlap inp"):
        bwd(x, None, None, out, am, xw, None, x, mean, rstd, v, True, False, (2, 2), (2, 2),
            "valid")
    bad = am.copy()
    bad[0, 0, 0, 0] = 35  # a cell outside that window
    with pytest.raises(ValueError, match="argmax out of range"):
        bwd(np.empty_like(x), None, None, out, bad, xw, None, x, mean, rstd, v, True, False,
            (2, 2), (2, 2), "valid")


# ---- the Net ----

MODELS = {
    # the bench model's block: a ReLU conv, BN, a 2x2 pool (BN's backward takes the ReLU's
    # derivative of the conv below)
    "conv_relu_bn_pool": lambda: [layers.Conv2D(16, 3, padding="same", activation="relu"),
                                  layers.BatchNormalization(), layers.MaxPooling2D()],
    # the other tutorial order: a linear conv, BN, Activation('relu'), the pool
    "conv_bn_relu_pool": lambda: [layers.Conv2D(16, 3, padding="same"),
                                  layers.BatchNormalization(), layers.Activation("relu"),
                                  layers.MaxPooling2D()],
    # no gamma/beta, 'same' pool over an odd size (13 -> 7)
    "bn_no_affine_same_pool": lambda: [layers.Conv2D(16, 3, activation="relu"),
                                       layers.BatchNormalization(center=False, scale=False),
                                       layers.MaxPooling2D(padding="same")],
    # frozen BN: inference statistics inside the train step
    "frozen_bn": lambda: [layers.Conv2D(16, 3, padding="same", activation="relu"),
                          layers.BatchNormalization(trainable=False), layers.MaxPooling2D()],
}


def make(name, first_bn=False):
    def build():
        reset_names()
        cf.utils.set_random_seed(0)
        head = [layers.BatchNormalization(), layers.MaxPooling2D()] if first_bn else []
        return cf.Sequential([layers.Input((15, 15, 2))] + head + MODELS[name]() +
                             [layers.Flatten(), layers.Dense(4, activation="softmax")])
    return build


def data(n=30, seed=1):
    r = np.random.default_rng(seed)
    return (r.standard_normal((n, 15, 15, 2)) * 2 + 1).astype(F32), r.integers(0, 4, n)


def fused_ops(monkeypatch, build):
    monkeypatch.setenv("CNNFAST_EXECUTOR", "1")
    m = build()
    m.compile("adam", "sparse_categorical_crossentropy")
    m.train_on_batch(*[a[:8] for a in data()])
    return m._engine_cache["native"].net.fused_batchnorm_ops


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_net_fuses_and_trains_as_the_layer_engine(name, monkeypatch):
    assert fused_ops(monkeypatch, make(name)) == [1]
    x, y = data()
    assert_engines_agree(lambda native: fit_on_engine(monkeypatch, native, make(name), x, y,
                                                      validation_split=0.2))


def test_a_first_layer_batchnorm_has_no_input_gradient(monkeypatch):
    build = make("conv_relu_bn_pool", first_bn=True)
    assert fused_ops(monkeypatch, build) == [0, 3]
    x, y = data()
    assert_engines_agree(lambda native: fit_on_engine(monkeypatch, native, build, x, y))


def test_not_fused_where_the_output_is_read_elsewhere(monkeypatch):
    def build():
        reset_names()
        cf.utils.set_random_seed(0)
        return cf.Sequential([
            layers.Input((15, 15, 2)),
            layers.BatchNormalization(),
            layers.MaxPooling2D(3, 2),  # overlapping windows
            layers.Conv2D(8, 3, activation="relu"), layers.BatchNormalization(),
            layers.Activation("tanh"), layers.MaxPooling2D(),  # not a ReLU between
            layers.Flatten(), layers.Dense(4, activation="softmax")])
    assert fused_ops(monkeypatch, build) == []


def test_cnnfast_fused_batchnorm_0_turns_it_off(monkeypatch):
    monkeypatch.setenv("CNNFAST_FUSED_BATCHNORM", "0")
    assert fused_ops(monkeypatch, make("conv_relu_bn_pool")) == []
