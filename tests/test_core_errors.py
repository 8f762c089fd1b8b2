"""cnnfast._core checks its own preconditions: every bad call raises a Python exception
(TypeError for a wrong dtype or a non-array, ValueError otherwise), never crashes or writes
out of bounds."""
import numpy as np
import pytest
from helpers import noncontig, readonly, z

from cnnfast import _core

f32 = np.float32


def ws(n=10_000):
    return z(n)


X, Wt = (2, 6, 6, 3), (3, 3, 3, 4)  # conv input / kernel; valid output (2, 4, 4, 4)
CASES = {
    # ---- dtype -> TypeError ----
    "conv_fwd_float64_inp": (TypeError, "inp must have dtype float32",
                             lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X, dtype=np.float64),
                                                          z(*Wt), None, (1, 1), "valid", ws())),
    "conv_fwd_list_inp": (TypeError, "must be a numpy array",
                          lambda: _core.conv2d_forward(z(2, 4, 4, 4), [[1.0]], z(*Wt), None,
                                                       (1, 1), "valid", ws())),
    "dense_fwd_float64_weight": (TypeError, "weight must have dtype float32",
                                 lambda: _core.dense_forward(z(2, 3), z(2, 4),
                                                             z(4, 3, dtype=np.float64), None)),
    "xent_labels_int64": (TypeError, "labels must have dtype int32",
                          lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                      np.zeros(2, np.int64), True, 1e-7, 1.0)),
    "maxpool_argmax_int64": (TypeError, "argmax must have dtype int32",
                             lambda: _core.maxpool2d_forward(z(1, 2, 2, 1),
                                                             z(1, 2, 2, 1, dtype=np.int64),
                                                             z(1, 4, 4, 1), (2, 2), (2, 2),
                                                             "valid")),
    "dropout_mask_bool": (TypeError, "mask must have dtype uint8",
                          lambda: _core.dropout_forward(z(5), z(5, dtype=bool), z(5), 0.5, 1)),
    "adam_float64_g": (TypeError, "g must have dtype float32",
                       lambda: _core.adam_update(z(3), z(3), z(3), None,
                                                 z(3, dtype=np.float64), 1e-3, 0.9, 0.999,
                                                 1e-7, 1)),
    # ---- contiguity ----
    "conv_fwd_noncontig_inp": (ValueError, "inp must be C-contiguous",
                               lambda: _core.conv2d_forward(z(2, 4, 4, 4), noncontig(*X),
                                                            z(*Wt), None, (1, 1), "valid", ws())),
    "dense_bwd_noncontig_dout": (ValueError, "dout must be C-contiguous",
                                 lambda: _core.dense_backward(z(2, 4), z(4, 3), None,
                                                              noncontig(2, 3), z(2, 4), z(4, 3))),
    "act_noncontig_out": (ValueError, "out must be C-contiguous",
                          lambda: _core.activation_forward(noncontig(3, 4), z(3, 4),
                                                                  _core.Activation.relu)),
    "transposed_weight": (ValueError, "weight must be C-contiguous",
                          lambda: _core.dense_forward(z(2, 3), z(2, 4), z(3, 4).T, None)),
    # ---- shapes: the message names the argument and both shapes ----
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
    "dense_mismatch": (ValueError, r"inp \(2, 3\) does not match weight \(4, 5\)",
                       lambda: _core.dense_forward(z(2, 5), z(2, 3), z(4, 5), None)),
    "dense_bwd_dinp_shape": (ValueError, r"dinp has shape \(3, 4\), expected \(2, 4\)",
                             lambda: _core.dense_backward(z(3, 4), z(4, 3), None, z(2, 3),
                                                          z(2, 4), z(4, 3))),
    "act_bwd_dout_shape": (ValueError, "dout has shape",
                           lambda: _core.activation_backward(z(3, 4), z(4, 3), z(3, 4),
                                                             _core.Activation.sigmoid)),
    "xent_labels_shape": (ValueError, r"labels has shape \(3,\), expected \(2,\)",
                          lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                      np.zeros(3, np.int32), True, 1e-7, 1.0)),
    "xent_targets_shape": (ValueError, r"labels has shape \(2, 4\), expected \(2, 3\)",
                           lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2, 4), False, 1e-7,
                                                       1.0)),
    "maxpool_bwd_argmax_shape": (ValueError, "argmax has shape",
                                 lambda: _core.maxpool2d_backward(z(1, 4, 4, 1), z(1, 2, 2, 1),
                                                                  np.zeros((1, 2, 3, 1), np.int32),
                                                                  (2, 2), (2, 2), "valid")),
    "dropout_mask_shape": (ValueError, "mask has shape",
                           lambda: _core.dropout_backward(z(5), z(5), z(6, dtype=np.uint8), 0.5)),
    "adam_m_shape": (ValueError, r"m has shape \(4,\), expected \(3,\)",
                     lambda: _core.adam_update(z(3), z(4), z(3), None, z(3), 1e-3, 0.9, 0.999,
                                               1e-7, 1)),
    "gemm_inner": (ValueError, "inner dimensions differ",
                   lambda: _core.sgemm(z(2, 2), z(2, 3), z(4, 2))),
    # ---- labels ----
    "label_too_large": (ValueError, r"label 3 at row 1 is outside \[0, 3\)",
                        lambda: _core.cross_entropy(z(2), z(2, 3), z(2, 3),
                                                    np.array([0, 3], np.int32), True, 1e-7, 1.0)),
    "label_negative": (ValueError, r"label -1 at row 0",
                       lambda: _core.cross_entropy(z(2), None, np.full((2, 3), 0.3, f32),
                                                   np.array([-1, 0], np.int32), False, 1e-7, 1.0)),
    # ---- writability ----
    "readonly_out": (ValueError, "out must be writable",
                     lambda: _core.dense_forward(readonly(z(2, 3)), z(2, 4), z(4, 3), None)),
    "readonly_dinp": (ValueError, "dinp must be writable",
                      lambda: _core.avgpool2d_backward(readonly(z(1, 4, 4, 1)), z(1, 2, 2, 1),
                                                       (2, 2), (2, 2), "valid")),
    "readonly_workspace": (ValueError, "workspace must be writable",
                           lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None,
                                                        (1, 1), "valid", readonly(ws()))),
    "readonly_w_optimizer": (ValueError, "w must be writable",
                             lambda: _core.sgd_update(readonly(z(3)), None, z(3), 0.1, 0.0,
                                                      False)),
    "readonly_loss": (ValueError, "loss must be writable",
                      lambda: _core.cross_entropy(readonly(z(2)), None, z(2, 3), z(2, 3), True,
                                                  1e-7, 1.0)),
    # ---- geometry ----
    "bad_padding": (ValueError, "padding must be 'valid' or 'same', got 'full'",
                    lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None, (1, 1),
                                                 "full", ws())),
    "bad_padding_case": (ValueError, "padding must be",
                         lambda: _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1),
                                                         (2, 2), (2, 2), "SAME")),
    "zero_stride_conv": (ValueError, r"strides must be positive, got \(0, 1\)",
                         lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(*X), z(*Wt), None,
                                                      (0, 1), "valid", ws())),
    "negative_stride_pool": (ValueError, "strides must be positive",
                             lambda: _core.avgpool2d_forward(z(1, 2, 2, 1), z(1, 4, 4, 1),
                                                             (2, 2), (2, -2), "valid")),
    "zero_pool_size": (ValueError, "pool_size must be positive",
                       lambda: _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1),
                                                       (0, 2), (2, 2), "valid")),
    "zero_stride_geometry": (ValueError, "strides must be positive",
                             lambda: _core.conv2d_geometry([1, 4, 4, 1], [3, 3, 1, 1], (1, 0),
                                                           "same")),
    "conv_window_too_large": (ValueError, "larger than input",
                              lambda: _core.conv2d_forward(z(2, 1, 1, 4), z(*X), z(7, 7, 3, 4),
                                                           None, (1, 1), "valid", ws())),
    "pool_window_too_large": (ValueError, "larger than input",
                              lambda: _core.maxpool2d_forward(z(1, 1, 1, 1), None,
                                                              z(1, 2, 5, 1), (3, 3), (1, 1),
                                                              "valid")),
    "geometry_too_large": (ValueError, "larger than input",
                           lambda: _core.pool2d_geometry([1, 2, 2, 1], (3, 3), (1, 1), "valid")),
    "argmax_out_of_range": (ValueError, "argmax out of range",
                            lambda: _core.maxpool2d_backward(
                                z(1, 4, 4, 1), z(1, 2, 2, 1),
                                np.array([0, 5, 16, 3], np.int32).reshape(1, 2, 2, 1),
                                (2, 2), (2, 2), "valid")),
    # 0 is a cell of the input but not of output (1,1)'s window {10, 11, 14, 15}.
    "argmax_outside_its_window": (ValueError, r"argmax out of range: 0 at \(0, 1, 1, 0\)",
                                  lambda: _core.maxpool2d_backward(
                                      z(1, 4, 4, 1), z(1, 2, 2, 1),
                                      np.array([5, 2, 8, 0], np.int32).reshape(1, 2, 2, 1),
                                      (2, 2), (2, 2), "valid")),
    "argmax_negative": (ValueError, "argmax out of range",
                        lambda: _core.maxpool2d_backward(
                            z(1, 4, 4, 1), z(1, 2, 2, 1), np.full((1, 2, 2, 1), -1, np.int32),
                            (2, 2), (2, 2), "valid")),
    "empty_batch_conv": (ValueError, None,  # message belongs to conv2d_cpu.cpp
                         lambda: _core.conv2d_forward(z(0, 4, 4, 4), z(0, 6, 6, 3), z(*Wt),
                                                      None, (1, 1), "valid", ws())),
    # ---- scalar arguments ----
    "activation_code": (ValueError, "activation 7 is not a member of cnnfast._core.Activation",
                        lambda: _core.activation_forward(z(2, 2), z(2, 2),
                                                         _core.Activation(7))),
    "dropout_rate_one": (ValueError, r"rate must be in \[0, 1\)",
                         lambda: _core.dropout_forward(z(5), z(5, dtype=np.uint8), z(5), 1.0, 1)),
    "dropout_rate_negative": (ValueError, r"rate must be in \[0, 1\)",
                              lambda: _core.dropout_backward(z(5), z(5), z(5, dtype=np.uint8),
                                                             -0.1)),
    "adam_step_zero": (ValueError, "step must be >= 1",
                       lambda: _core.adam_update(z(3), z(3), z(3), None, z(3), 1e-3, 0.9, 0.999,
                                                 1e-7, 0)),
    "sgd_momentum_no_velocity": (ValueError, "needs a velocity buffer",
                                 lambda: _core.sgd_update(z(3), None, z(3), 0.1, 0.9, False)),
    "rmsprop_momentum_no_buffer": (ValueError, "needs a momentum buffer",
                                   lambda: _core.rmsprop_update(z(3), z(3), None, None, z(3), 0.1,
                                                                0.9, 0.5, 1e-7, False)),
    "rmsprop_centered_no_avg": (ValueError, "needs an average-gradient buffer",
                                lambda: _core.rmsprop_update(z(3), z(3), None, None, z(3), 0.1,
                                                             0.9, 0.0, 1e-7, True)),
    "xent_no_classes": (ValueError, "bad sizes",
                        lambda: _core.cross_entropy(z(2), None, z(2, 0), z(2, 0), True, 1e-7,
                                                    1.0)),
    "threads_zero": (ValueError, "n must be >= 1",
                     lambda: _core.set_num_threads(0)),
    "isa_unknown": (ValueError, "avx9000",
                    lambda: _core.set_gemm_isa("avx9000")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_core_rejects(case):
    exc, match, call = CASES[case]
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


def test_module_still_works_after_errors():
    for case in ("label_too_large", "bad_padding", "argmax_out_of_range"):
        with pytest.raises(ValueError):
            CASES[case][2]()
    out = z(2, 2)
    _core.activation_forward(out, np.ones((2, 2), f32), _core.Activation.linear)
    assert (out == 1).all()
