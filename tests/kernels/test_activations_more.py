"""The activation kinds after the first five (elu, selu, gelu, silu, softplus, softsign,
leaky_relu, relu6, hard_sigmoid, log_softmax): kernels against the float64 reference (forward
and backward, 1 and 2 threads, kinks and saturation), the input that gelu/silu/softplus/softsign
need in backward, and TF's exact gradient formulas at the kinks. TF parity of every kind:
test_activation_vs_tf in test_activations.py."""
import numpy as np
import pytest
from helpers import check_op, rand, z
from tf_oracle import check, tf_grads

import cnnfast.reference as R
from cnnfast import _core

MORE = ["elu", "selu", "gelu", "silu", "softplus", "softsign", "leaky_relu", "relu6",
        "hard_sigmoid", "log_softmax"]
ACT = _core.Activation.__members__


def fwd(x, name):
    y = np.empty_like(x)
    _core.activation_forward(y, x, ACT[name])
    return y


def bwd(dy, x, name):
    dx = np.empty_like(x)
    _core.activation_backward(dx, dy, fwd(x, name), ACT[name], x)
    return dx


@pytest.mark.parametrize("name", MORE)
@pytest.mark.parametrize("shape", [(1, 1), (3, 10), (2, 5, 4, 7), (300, 257)])
def test_activation_more_vs_reference(threads, name, shape):
    rng = np.random.default_rng(len(shape) + int(ACT[name]))
    x = rand(rng, shape, 3.0)
    # kinks (0, -3, 3, 6) and saturation
    x.reshape(-1)[:8] = [0.0, -30.0, 30.0, 100.0, -3.0, 3.0, 6.0, -100.0][:x.size]
    check_op(f"activation {name}", lambda x: fwd(x, name),
             lambda x: R.activation_forward(x, name), [x],
             lambda dy, x: (bwd(dy, x, name),),
             # Output-based gradients get the kernel's y on both sides (as test_activation).
             lambda dy, x: (R.activation_backward(dy, fwd(x, name), name, x=x),),
             grad_names=["dinp"])


def test_in_place_backward_and_forward():
    x = rand(np.random.default_rng(0), (7, 9), 2.0)
    for name in MORE:
        y = fwd(x, name)
        dy = rand(np.random.default_rng(1), x.shape)
        want = bwd(dy, x, name)
        d = dy.copy()
        _core.activation_backward(d, d, y, ACT[name], x)  # dinp may alias dout
        np.testing.assert_array_equal(d, want)
        xx = x.copy()
        _core.activation_forward(xx, xx, ACT[name])
        np.testing.assert_array_equal(xx, y)


@pytest.mark.parametrize("name", ["gelu", "silu", "softplus", "softsign"])
def test_backward_needs_the_input(name):
    with pytest.raises(ValueError, match="needs inp"):
        _core.activation_backward(z(2, 3), z(2, 3), z(2, 3), ACT[name])
    with pytest.raises(ValueError, match="inp has shape"):
        _core.activation_backward(z(2, 3), z(2, 3), z(2, 3), ACT[name], z(3, 2))


def test_keras_definitions_at_the_kinks():
    x = np.array([[-3.0, 3.0, 0.0, 6.0, -1.0, 7.0]], np.float32)
    one = np.ones_like(x)
    # Keras 3 hard_sigmoid: relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3).
    third = np.float32(2) / np.float32(6)
    np.testing.assert_array_equal(fwd(x, "hard_sigmoid"), [[0, 1, 0.5, 1, third, 1]])
    np.testing.assert_array_equal(bwd(one, x, "hard_sigmoid"),
                                  [[0, 0, np.float32(1) / 6, 0, np.float32(1) / 6, 0]])
    np.testing.assert_array_equal(fwd(x, "relu6"), [[0, 3, 0, 6, 0, 6]])
    np.testing.assert_array_equal(bwd(one, x, "relu6"), [[0, 1, 0, 0, 0, 0]])
    # leaky_relu: the function's default negative_slope 0.2; derivative at 0 is the slope.
    np.testing.assert_array_equal(fwd(x, "leaky_relu"),
                                  [[np.float32(-3) * np.float32(0.2), 3, 0, 6,
                                    np.float32(-0.2), 7]])
    np.testing.assert_array_equal(bwd(one, x, "leaky_relu")[0, 2], np.float32(0.2))
    # elu at 0: the gradient is 1 (TF's EluGrad tests out < 0).
    assert bwd(one, x, "elu")[0, 2] == 1.0


@pytest.mark.tf
@pytest.mark.parametrize("name", ["gelu", "leaky_relu", "hard_sigmoid", "elu", "relu6"])
def test_kinks_vs_tf(tf_keras, name):
    tf, keras = tf_keras
    x = np.array([[-6.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, 9.0]], np.float32)
    dy = np.linspace(-1, 1, x.size, dtype=np.float32).reshape(x.shape)
    y_tf, (dx_tf,) = tf_grads(tf, keras.layers.Activation(name), x, dy)
    check(f"activation {name} kinks fwd", fwd(x, name), y_tf)
    check(f"activation {name} kinks dinp", bwd(dy, x, name), dx_tf)


def test_gelu_is_the_exact_erf_form():
    x = np.array([[1.0]], np.float32)
    # approximate=True (tanh form) would give 0.841192; erf form 0.841345.
    assert abs(float(fwd(x, "gelu")[0, 0]) - 0.8413447) < 1e-6
