"""activations: _core.activation_forward and activation_backward (linear, relu, sigmoid, tanh,
softmax; the TF parity test covers every kind) and the Activation kind. The kinds added later
(elu ... log_softmax) are checked against the reference in test_activations_more.py.

In order: against the NumPy reference (forward and backward, with 1 and 2 threads), against
tf.keras (marked tf), the Activation enum and binding errors.

Binding errors: a bad call raises (TypeError for a wrong dtype or a non-array,
ValueError otherwise), never crashes or writes out of bounds.
"""
import numpy as np
import pytest
from helpers import (
    assert_close,
    check_op,
    core_activation_backward,
    core_activation_forward,
    noncontig,
    rand,
    z,
)
from tf_oracle import check, tf_grads

import cnnfast.reference as R
from cnnfast import _core, backend

# ---- NumPy reference, forward and backward -------------------------------------------------------

ACTS = ["linear", "relu", "sigmoid", "tanh", "softmax"]


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 10), (2, 5, 4, 7), (300, 257)])
def test_activation(threads, name, shape):
    rng = np.random.default_rng(len(shape))
    x = rand(rng, shape, 3.0)
    x.reshape(-1)[:4] = [0.0, -30.0, 30.0, 100.0][:x.size]  # kink at 0 and saturation
    check_op(f"activation {name}",
             lambda x: core_activation_forward(x, name),
             lambda x: R.activation_forward(x, name), [x],
             lambda dy, x: (core_activation_backward(dy, core_activation_forward(x, name),
                                                     name),),
             # The backward is a function of y; feed both sides the kernel's y so only the
             # backward arithmetic is compared (not the forward's rounding, amplified).
             lambda dy, x: (R.activation_backward(dy, core_activation_forward(x, name), name),),
             grad_names=["dinp"])


def test_softmax_extreme_rows():
    x = np.array([[100.0, -100.0, 0.0], [-100.0, -100.0, -100.0], [88.0, 89.0, 0.0]],
                 np.float32)
    y = core_activation_forward(x, "softmax")
    assert np.isfinite(y).all()
    assert_close(y, R.activation_forward(x, "softmax"), op="activation softmax fwd")
    assert_close(y.sum(axis=1), np.ones(3), atol=1e-6, rtol=0)


def test_activation_in_place():
    rng = np.random.default_rng(0)
    x = rand(rng, (4, 6))
    ref = R.activation_forward(x, "tanh")
    _core.activation_forward(x, x, _core.Activation.tanh)  # out may alias inp
    assert_close(x, ref, op="activation tanh fwd")


# ---- tf.keras parity -----------------------------------------------------------------------------

ACT = _core.Activation.__members__


# (1, 1) is a deliberate edge case; Keras warns that a softmax over a size-1 axis is always 1.
@pytest.mark.tf
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@pytest.mark.parametrize("shape", [(4, 10), (2, 5, 6, 3), (1, 1)])
@pytest.mark.parametrize("name", list(ACT))
def test_activation_vs_tf(tf_keras, name, shape):
    tf, keras = tf_keras
    rng = np.random.default_rng(len(shape) * 10 + int(ACT[name]))
    x = rand(rng, shape, 3.0)
    x.reshape(-1)[::7] = 0.0  # exact zeros: ReLU's derivative at 0 must be 0 (TF ReluGrad)
    if x.size > 2:
        x.reshape(-1)[1] = 40.0  # saturation for sigmoid/tanh/softmax
    dy = rand(rng, shape)
    y_tf, (dx_tf,) = tf_grads(tf, keras.layers.Activation(name), x, dy)
    y, dx = np.empty_like(x), np.empty_like(x)
    _core.activation_forward(y, x, ACT[name])
    _core.activation_backward(dx, dy, y, ACT[name], x)
    check(f"activation {name} forward", y, y_tf)
    check(f"activation {name} dinp", dx, dx_tf)


# ---- the Activation kind, binding errors ---------------------------------------------------------

f32 = np.float32


def test_activation_names_are_the_keras_names():
    assert list(_core.Activation.__members__) == [
        "linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "silu",
        "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid", "log_softmax"]
    assert backend.ACTIVATIONS == dict(_core.Activation.__members__)
    assert backend.ACTIVATIONS["relu"] is _core.Activation.relu


def test_activation_takes_the_enum_not_an_int():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.activation_forward(z(2, 2), z(2, 2), 1)
    out = z(2, 2)
    _core.activation_forward(out, np.full((2, 2), -1.0, f32), _core.Activation.relu)
    assert (out == 0).all()


def test_cuda_module_shares_the_activation_class():
    cuda = pytest.importorskip("cnnfast._cuda")
    assert cuda.Activation is _core.Activation


BAD_CALLS = {
    "act_noncontig_out": (ValueError, "out must be C-contiguous",
                          lambda: _core.activation_forward(noncontig(3, 4), z(3, 4),
                                                                  _core.Activation.relu)),
    "act_bwd_dout_shape": (ValueError, "dout has shape",
                           lambda: _core.activation_backward(z(3, 4), z(4, 3), z(3, 4),
                                                             _core.Activation.sigmoid)),
    "activation_code": (ValueError, "activation 99 is not a member of cnnfast._core.Activation",
                        lambda: _core.activation_forward(z(2, 2), z(2, 2),
                                                         _core.Activation(99))),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_activation_rejects(case):
    exc, match, call = BAD_CALLS[case]
    with pytest.raises(exc, match=match):
        call()
