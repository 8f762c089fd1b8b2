"""Winograd F(2x2,3x3) (csrc/winograd_cpu.cpp, docs/winograd.md) against the direct kernel and the
float64 NumPy reference: forward, input gradient (the weight gradient stays direct), odd sizes,
both paddings, bias and ReLU epilogues, bit-identical for 1 and 2 threads."""
import contextlib

import numpy as np
import pytest
from helpers import run_conv

from cnnfast import _core, config
from cnnfast import reference as ref


@contextlib.contextmanager
def algorithm(name):
    old = _core.conv_algorithm()
    _core.set_conv_algorithm(name)
    try:
        yield
    finally:
        _core.set_conv_algorithm(old)


def case(n, h, w, c, oc, padding, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = (rng.standard_normal((3, 3, c, oc)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    g = _core.conv2d_geometry(list(x.shape), list(k.shape), (1, 1), padding)
    dout = rng.standard_normal(g["out_shape"]).astype(np.float32)
    return x, k, b, dout


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


# Float32 Winograd F(2x2,3x3): each output is a sum of 16*C products of transformed values
# whose magnitudes are up to ~4x the direct method's terms; measured max relative error
# (max |diff| / max |ref|) on these shapes: <= 3e-7 forward, <= 4e-7 input gradient (direct:
# <= 2e-7). 2e-6 leaves room for other shapes and ISAs.
TOL = 2e-6

SHAPES = [  # (N, H, W, C, OC): odd and even sizes, one tile, a partial last block of tiles
    (2, 7, 9, 5, 3),
    (3, 14, 14, 32, 64),
    (1, 2, 3, 16, 16),
    (5, 11, 6, 17, 24),
    (1, 1, 1, 8, 4),
]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_winograd_matches_direct_and_float64(threads, shape, padding):
    n, h, w, c, oc = shape
    if padding == "valid" and (h < 3 or w < 3):
        pytest.skip("valid padding needs a 3x3 input")
    x, k, b, dout = case(n, h, w, c, oc, padding)
    with algorithm("direct"):
        d_out, d_dx, d_dw, d_db = run_conv(x, k, b, (1, 1), padding, dout)
    with algorithm("winograd"):
        assert _core.conv_uses_winograd(n, h, w, c, 3, 3, oc, 1, 1, padding)
        w_out, w_dx, w_dw, w_db = run_conv(x, k, b, (1, 1), padding, dout)
    r_out = ref.conv2d_forward(x, k, b, (1, 1), padding)
    r_dx, r_dw, r_db = ref.conv2d_backward(dout, x, k, (1, 1), padding)
    assert rel_err(w_out, r_out) < TOL
    assert rel_err(w_dx, r_dx) < TOL
    assert rel_err(w_out, d_out) < TOL
    # the weight and bias gradients are the direct kernel's, bit for bit
    np.testing.assert_array_equal(w_dw, d_dw)
    np.testing.assert_array_equal(w_db, d_db)
    assert not np.array_equal(w_out, d_out) or c * oc <= 32  # Winograd really ran


def test_winograd_is_bit_identical_for_any_thread_count():
    x, k, b, dout = case(9, 14, 15, 32, 64, "same", seed=3)  # several blocks of tiles
    res = []
    old = _core.num_threads()
    try:
        for t in (1, 2, 3):
            _core.set_num_threads(t)
            with algorithm("winograd"):
                res.append(run_conv(x, k, b, (1, 1), "same", dout))
    finally:
        _core.set_num_threads(old)
    for other in res[1:]:
        for a, z in zip(res[0], other):
            np.testing.assert_array_equal(a, z)


def test_relu_epilogue_equals_relu_after(threads):
    """The Net runs Conv2D(activation='relu') with the ReLU in the epilogue: the same values as
    the linear conv followed by max(., 0)."""
    from cnnfast import keras

    x = np.random.default_rng(4).random((3, 10, 10, 16), dtype=np.float32)
    outs = []
    for act in ("relu", None):
        m = keras.Sequential([keras.Input((10, 10, 16)),
                              keras.layers.Conv2D(16, 3, padding="same", activation=act)])
        m.layers[0].set_weights(case(1, 1, 1, 16, 16, "same", seed=4)[1:3])
        with algorithm("winograd"):
            outs.append(m.predict(x, verbose=0))
    np.testing.assert_array_equal(outs[0], np.maximum(outs[1], 0))


def test_the_setting_chooses_the_layers():
    with algorithm("direct"):
        assert not _core.conv_uses_winograd(1, 8, 8, 32, 3, 3, 32, 1, 1, "same")
    with algorithm("winograd"):
        assert not _core.conv_uses_winograd(1, 8, 8, 32, 3, 3, 32, 2, 2, "same")  # stride 2
        assert not _core.conv_uses_winograd(1, 8, 8, 32, 5, 5, 32, 1, 1, "same")  # 5x5
        assert _core.conv_uses_winograd(1, 8, 8, 1, 3, 3, 32, 1, 1, "same")
    with algorithm("auto"):  # docs/winograd.md#when-auto-picks-winograd
        assert not _core.conv_uses_winograd(1, 28, 28, 1, 3, 3, 32, 1, 1, "same")


def test_config_switch_and_its_errors():
    old = config.get_conv_algorithm()
    try:
        config.set_conv_algorithm("winograd")
        assert _core.conv_algorithm() == "winograd" == config.get_conv_algorithm()
        config.set_conv_algorithm("DIRECT")
        assert _core.conv_algorithm() == "direct"
        with pytest.raises(ValueError, match="expected 'auto', 'direct' or 'winograd'"):
            config.set_conv_algorithm("fft")
        with pytest.raises(ValueError, match="expected 'auto', 'direct' or 'winograd'"):
            _core.set_conv_algorithm("fft")
    finally:
        config.set_conv_algorithm(old)
