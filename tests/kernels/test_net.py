"""The Net and the _core module as a whole: the Net's kinds (py::enum_), its typed builders
(Op, OptSpec) and their errors, the Net's checks; the type stub; the module after errors.

The Activation kind: tests/kernels/test_activations.py; cross_entropy's batch mean, which is the
Net's loss: tests/kernels/test_cross_entropy.py.
"""
import gc
import weakref

import numpy as np
import pytest
from helpers import readonly, z

from cnnfast import _core

f32 = np.float32


def test_kinds_are_exported():
    assert set(_core.OpKind.__members__) == {"conv2d", "max_pool2d", "avg_pool2d", "dense",
                                             "flatten", "dropout", "activation",
                                             "batch_norm", "global_avg_pool2d",
                                             "global_max_pool2d", "augment", "rescale", "reshape",
                                             "zero_pad2d",
                                             # issue #11
                                             "relu", "elu", "prelu", "spatial_dropout2d",
                                             "depthwise_conv2d", "separable_conv2d",
                                             "conv2d_dilated"}
    assert set(_core.LossKind.__members__) == {"sparse_logits", "dense_logits", "sparse_probs",
                                               "dense_probs"}
    assert set(_core.OptKind.__members__) == {"adam", "sgd", "rmsprop", "nadam", "adamax",
                                              "adagrad", "adadelta"}
    assert set(_core.ClipKind.__members__) == {"none", "value", "norm", "global_norm"}


# ---- Net builders --------------------------------------------------------------------------------

def conv_arrays(kh=3, kw=3, c=2, oc=4, bias=True):
    w, dw = z(kh, kw, c, oc), z(kh, kw, c, oc)
    b, db = (z(oc), z(oc)) if bias else (None, None)
    return w, b, dw, db


def test_op_factories_set_the_kind():
    Op, K, A = _core.Op, _core.OpKind, _core.Activation
    w, b, dw, db = conv_arrays()
    assert Op.conv2d(w, b, dw, db, (3, 3), (1, 1), "same", A.relu).kind == K.conv2d
    assert Op.pool(K.max_pool2d, (2, 2), (2, 2), "valid").kind == K.max_pool2d
    assert Op.pool(K.avg_pool2d, (2, 2), (1, 1), "same").kind == K.avg_pool2d
    assert Op.dense(z(3, 5), None, z(3, 5), None, A.softmax).kind == K.dense
    assert Op.flatten().kind == K.flatten
    assert Op.dropout(0.5).kind == K.dropout
    assert Op.activation(A.tanh).kind == K.activation
    assert _core.OptSpec.adam(0.9, 0.999, 1e-7, False).kind == _core.OptKind.adam
    assert _core.OptSpec.sgd(0.0, False).kind == _core.OptKind.sgd
    assert _core.OptSpec.rmsprop(0.9, 0.0, 1e-7, True).kind == _core.OptKind.rmsprop


BAD_OPS = {
    "conv_weight_float64": (TypeError, "weight must have dtype float32",
                            lambda: _core.Op.conv2d(z(3, 3, 2, 4, dtype=np.float64), None,
                                                    z(3, 3, 2, 4), None, (3, 3), (1, 1), "valid",
                                                    _core.Activation.linear)),
    "conv_weight_3d": (ValueError, "weight must be 4-D",
                       lambda: _core.Op.conv2d(z(3, 3, 2), None, z(3, 3, 2), None, (3, 3),
                                               (1, 1), "valid", _core.Activation.linear)),
    "conv_kernel_mismatch": (ValueError, r"weight has shape \(3, 3, 2, 4\) but kernel is \(5, 5\)",
                             lambda: _core.Op.conv2d(*conv_arrays(), (5, 5), (1, 1), "valid",
                                                     _core.Activation.linear)),
    "conv_dweight_shape": (ValueError, r"dweight has shape \(3, 3, 2, 5\)",
                           lambda: _core.Op.conv2d(z(3, 3, 2, 4), None, z(3, 3, 2, 5), None,
                                                   (3, 3), (1, 1), "valid",
                                                   _core.Activation.linear)),
    "conv_bias_shape": (ValueError, r"bias has shape \(5,\), expected \(4,\)",
                        lambda: _core.Op.conv2d(z(3, 3, 2, 4), z(5), z(3, 3, 2, 4), z(5),
                                                (3, 3), (1, 1), "valid",
                                                _core.Activation.linear)),
    "conv_bias_without_dbias": (ValueError, "bias and dbias must both be arrays or None",
                                lambda: _core.Op.conv2d(z(3, 3, 2, 4), z(4), z(3, 3, 2, 4), None,
                                                        (3, 3), (1, 1), "valid",
                                                        _core.Activation.linear)),
    "conv_bad_padding": (ValueError, "padding must be 'valid' or 'same'",
                         lambda: _core.Op.conv2d(*conv_arrays(), (3, 3), (1, 1), "full",
                                                 _core.Activation.linear)),
    "conv_bad_strides": (ValueError, "strides must be positive",
                         lambda: _core.Op.conv2d(*conv_arrays(), (3, 3), (0, 1), "valid",
                                                 _core.Activation.linear)),
    "conv_readonly_weight": (ValueError, "weight must be writable",
                             lambda: _core.Op.conv2d(readonly(z(3, 3, 2, 4)), None,
                                                     z(3, 3, 2, 4), None, (3, 3), (1, 1),
                                                     "valid", _core.Activation.linear)),
    "dense_noncontig_weight": (ValueError, "weight must be C-contiguous",
                               lambda: _core.Op.dense(z(5, 3).T, None, z(3, 5), None,
                                                      _core.Activation.linear)),
    "dense_act_int": (TypeError, "incompatible function arguments",
                      lambda: _core.Op.dense(z(3, 5), None, z(3, 5), None, 1)),
    "act_not_a_member": (ValueError, "not a member of cnnfast._core.Activation",
                         lambda: _core.Op.activation(_core.Activation(99))),
    "pool_kind_dense": (ValueError, "kind must be OpKind.max_pool2d or OpKind.avg_pool2d",
                        lambda: _core.Op.pool(_core.OpKind.dense, (2, 2), (2, 2), "valid")),
    "pool_size_zero": (ValueError, "pool_size must be positive",
                       lambda: _core.Op.pool(_core.OpKind.max_pool2d, (0, 2), (2, 2), "valid")),
    "dropout_rate_one": (ValueError, r"rate must be in \[0, 1\)",
                         lambda: _core.Op.dropout(1.0)),
}


@pytest.mark.parametrize("case", list(BAD_OPS))
def test_op_factories_reject(case):
    exc, match, call = BAD_OPS[case]
    with pytest.raises(exc, match=match):
        call()


def small_net(c=2, loss=_core.LossKind.sparse_logits):
    """conv (3x3, 2 -> 4, same) -> flatten -> dense (4*4*4 -> 3) on (4, 4, c) inputs."""
    A = _core.Activation
    conv = _core.Op.conv2d(*conv_arrays(c=2), (3, 3), (1, 1), "same", A.relu)
    dense = _core.Op.dense(z(64, 3), z(3), z(64, 3), z(3), A.linear)
    return _core.Net([conv, _core.Op.flatten(), dense], [4, 4, c], 8, loss, 3, True)


def test_net_checks_weights_against_the_geometry():
    small_net()
    with pytest.raises(ValueError, match="Conv2D weights do not match the layer geometry"):
        small_net(c=3)


def test_net_takes_a_loss_kind_not_an_int():
    with pytest.raises(TypeError, match="incompatible"):
        small_net(loss=0)


def test_net_keeps_the_arrays_alive():
    w, b, dw, db = conv_arrays()
    refs = [weakref.ref(a) for a in (w, b, dw, db)]
    op = _core.Op.conv2d(w, b, dw, db, (3, 3), (1, 1), "valid", _core.Activation.relu)
    del w, b, dw, db
    gc.collect()
    assert all(r() is not None for r in refs)  # the Op holds them
    net = _core.Net([op], [3, 3, 2], 2, _core.LossKind.dense_probs, 4, False)
    del op
    gc.collect()
    assert all(r() is not None for r in refs)  # the Net holds them
    del net
    gc.collect()
    assert all(r() is None for r in refs)


def test_set_optimizer_checks_the_slots():
    net = small_net()
    w, g = z(3), z(3)
    with pytest.raises(ValueError, match="Adam needs m, v"):
        net.set_optimizer(_core.OptSpec.adam(0.9, 0.999, 1e-7, False), [(w, g, z(3), None, None)])
    with pytest.raises(ValueError, match="vhat with amsgrad"):
        net.set_optimizer(_core.OptSpec.adam(0.9, 0.999, 1e-7, True), [(w, g, z(3), z(3), None)])
    with pytest.raises(ValueError, match="SGD with momentum needs a velocity"):
        net.set_optimizer(_core.OptSpec.sgd(0.9, False), [(w, g, None, None, None)])
    with pytest.raises(ValueError, match="RMSprop slots missing"):
        net.set_optimizer(_core.OptSpec.rmsprop(0.9, 0.0, 1e-7, True),
                          [(w, g, z(3), None, None)])
    with pytest.raises(ValueError, match=r"slot0 has shape \(4,\), expected \(3,\)"):
        net.set_optimizer(_core.OptSpec.sgd(0.9, False), [(w, g, z(4), None, None)])
    with pytest.raises(TypeError, match="incompatible"):
        net.set_optimizer({"kind": 0}, [(w, g, z(3), z(3), None)])
    net.set_optimizer(_core.OptSpec.sgd(0.0, False), [(w, g, None, None, None)])


# ---- the module ----------------------------------------------------------------------------------

def test_core_pyi_lists_every_name_and_method():
    import ast
    import pathlib

    tree = ast.parse((pathlib.Path(_core.__file__).parent / "_core.pyi").read_text())
    stub = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public <= set(stub), f"missing from _core.pyi: {sorted(public - set(stub))}"
    for cls in ("Net", "Op", "OptSpec"):
        methods = {n.name for n in stub[cls].body if isinstance(n, ast.FunctionDef)}
        have = {n for n in dir(getattr(_core, cls)) if not n.startswith("_")}
        assert have <= methods, f"{cls} methods missing from _core.pyi: {sorted(have - methods)}"
    for enum in ("Activation", "OpKind", "LossKind", "OptKind"):
        members = {t.target.id for t in stub[enum].body if isinstance(t, ast.AnnAssign)}
        assert set(getattr(_core, enum).__members__) <= members, enum


def test_module_still_works_after_errors():
    # The calls of label_too_large (test_cross_entropy.py), bad_padding (test_conv2d.py) and
    # argmax_out_of_range (test_pool2d.py).
    for call in (
            lambda: _core.cross_entropy(z(2), z(2, 3), z(2, 3), np.array([0, 3], np.int32), True,
                                        1e-7, 1.0),
            lambda: _core.conv2d_forward(z(2, 4, 4, 4), z(2, 6, 6, 3), z(3, 3, 3, 4), None,
                                         (1, 1), "full", z(10_000)),
            lambda: _core.maxpool2d_backward(
                z(1, 4, 4, 1), z(1, 2, 2, 1),
                np.array([0, 5, 16, 3], np.int32).reshape(1, 2, 2, 1), (2, 2), (2, 2), "valid")):
        with pytest.raises(ValueError):
            call()
    out = z(2, 2)
    _core.activation_forward(out, np.ones((2, 2), f32), _core.Activation.linear)
    assert (out == 1).all()
