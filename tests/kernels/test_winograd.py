"""Winograd F(2x2,3x3) (csrc/winograd_cpu.cpp, docs/winograd.md) against the direct kernel and the
float64 NumPy reference: forward, input gradient and weight gradient, odd sizes, both paddings,
batch 1, channel counts that are not multiples of 16, bias and ReLU epilogues, bit-identical for
1, 2 and 3 threads."""
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
# (max |diff| / max |ref|) on these shapes: <= 3e-7 forward, <= 4e-7 input gradient, <= 4e-7
# weight gradient (direct: <= 2e-7). 2e-6 leaves room for other shapes and ISAs.
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
    assert rel_err(w_dw, r_dw) < TOL
    assert rel_err(w_out, d_out) < TOL
    assert rel_err(w_dx, d_dx) < TOL
    assert rel_err(w_dw, d_dw) < TOL
    # the bias gradient is the same column sums of dout under both algorithms
    np.testing.assert_array_equal(w_db, d_db)
    np.testing.assert_allclose(w_db, r_db, rtol=1e-5, atol=1e-5)
    if c * oc > 32:  # Winograd really ran (tiny layers may round alike)
        assert not np.array_equal(w_out, d_out)
        assert not np.array_equal(w_dw, d_dw)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("shape", [(1, 9, 7, 3, 20), (4, 14, 14, 32, 64), (2, 5, 6, 17, 9)],
                         ids=lambda s: "x".join(map(str, s)))
def test_weight_gradient_without_input_gradient(threads, shape, padding):
    """A first layer's backward pass (no input gradient) runs the Winograd weight gradient
    alone: the same bits as with the input gradient, and the float64 reference's values."""
    n, h, w, c, oc = shape
    x, k, b, dout = case(n, h, w, c, oc, padding, seed=7)
    with algorithm("winograd"):
        assert _core.conv_uses_winograd(n, h, w, c, 3, 3, oc, 1, 1, padding, "weight_grad",
                                        False)
        _, _, dw_alone, db_alone = run_conv(x, k, b, (1, 1), padding, dout, want_dinp=False)
        _, _, dw_both, db_both = run_conv(x, k, b, (1, 1), padding, dout)
    np.testing.assert_array_equal(dw_alone, dw_both)
    np.testing.assert_array_equal(db_alone, db_both)
    _, r_dw, r_db = ref.conv2d_backward(dout, x, k, (1, 1), padding)
    assert rel_err(dw_alone, r_dw) < TOL


def test_weight_gradient_is_linear_in_dout_and_sums_the_batch():
    """The weight gradient of a batch is the sum of its images' (the tile sums run over the
    whole batch, across blocks and groups): checked against per-image calls in float64."""
    x, k, b, dout = case(11, 10, 13, 24, 40, "same", seed=5)  # several blocks and groups
    with algorithm("winograd"):
        _, _, dw, _ = run_conv(x, k, b, (1, 1), "same", dout)
        parts = [run_conv(x[i:i + 1], k, b, (1, 1), "same", dout[i:i + 1])[2]
                 for i in range(len(x))]
    total = np.sum(np.asarray(parts, np.float64), axis=0)
    assert rel_err(dw, total) < TOL


def test_winograd_is_bit_identical_for_any_thread_count():
    # several blocks of tiles, so several groups of the weight gradient's partial sums
    x, k, b, dout = case(9, 14, 15, 32, 64, "same", seed=3)
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
        conv2 = (32, 14, 14, 32, 3, 3, 64, 1, 1, "same")  # the tutorial CNN's second conv
        assert _core.conv_uses_winograd(*conv2)
        assert _core.conv_uses_winograd(*conv2, "forward")
        assert not _core.conv_uses_winograd(*conv2, "input_grad")
        assert _core.conv_uses_winograd(*conv2, "weight_grad")
        # without an input gradient (a first layer) too: the same bits either way
        assert _core.conv_uses_winograd(*conv2, "weight_grad", False)
        assert not _core.conv_uses_winograd(*conv2, "input_grad", False)
        assert not _core.conv_uses_winograd(32, 28, 28, 1, 3, 3, 32, 1, 1, "same",
                                            "weight_grad", False)
        assert not _core.conv_uses_winograd(32, 14, 14, 32, 3, 3, 8, 1, 1, "same",
                                            "weight_grad")  # 8 output channels
    for name in ("direct", "winograd"):
        with algorithm(name):
            for direction in ("forward", "input_grad", "weight_grad"):
                for dinp in (True, False):
                    assert _core.conv_uses_winograd(
                        4, 8, 8, 32, 3, 3, 32, 1, 1, "valid", direction, dinp) == (
                            name == "winograd")
    with pytest.raises(ValueError, match="unknown direction 'backward'"):
        _core.conv_uses_winograd(1, 8, 8, 32, 3, 3, 32, 1, 1, "same", "backward")


def test_auto_runs_the_chosen_algorithm_per_direction():
    """Under auto the tutorial conv2 runs the Winograd forward pass and weight gradient and the
    direct input gradient, and the weight gradient is the Winograd one also without the input
    gradient (docs/winograd.md#when-auto-picks-winograd): the bits of each forced setting."""
    x, k, b, dout = case(3, 14, 14, 32, 64, "same", seed=9)
    res, first = {}, {}
    for name in ("auto", "direct", "winograd"):
        with algorithm(name):
            res[name] = run_conv(x, k, b, (1, 1), "same", dout)
            first[name] = run_conv(x, k, b, (1, 1), "same", dout, want_dinp=False)
    assert not np.array_equal(res["direct"][1], res["winograd"][1])  # the check can fail
    assert not np.array_equal(res["direct"][2], res["winograd"][2])
    np.testing.assert_array_equal(res["auto"][0], res["winograd"][0])
    np.testing.assert_array_equal(res["auto"][1], res["direct"][1])
    for i in (2, 3):
        np.testing.assert_array_equal(res["auto"][i], res["winograd"][i])
        np.testing.assert_array_equal(first["auto"][i], first["winograd"][i])
        np.testing.assert_array_equal(first["auto"][i], res["auto"][i])


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
