"""The typed interface of cnnfast._core: the kinds (py::enum_), the Net's typed builders (Op,
OptSpec) and the one cross-entropy binding."""
import gc
import weakref

import numpy as np
import pytest

from cnnfast import _core, backend

f32 = np.float32


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype)


def readonly(a):
    a.setflags(write=False)
    return a


# ---- kinds ----

def test_activation_names_are_the_keras_names():
    assert list(_core.Activation.__members__) == ["linear", "relu", "sigmoid", "tanh", "softmax"]
    assert backend.ACTIVATIONS == dict(_core.Activation.__members__)
    assert backend.ACTIVATIONS["relu"] is _core.Activation.relu


def test_kinds_are_exported():
    assert set(_core.OpKind.__members__) == {"conv2d", "max_pool2d", "avg_pool2d", "dense",
                                             "flatten", "dropout", "activation",
                                                 "batch_norm"}
    assert set(_core.LossKind.__members__) == {"sparse_logits", "dense_logits", "sparse_probs",
                                               "dense_probs"}
    assert set(_core.OptKind.__members__) == {"adam", "sgd", "rmsprop"}


def test_activation_takes_the_enum_not_an_int():
    with pytest.raises(TypeError, match="incompatible function arguments"):
        _core.activation_forward(z(2, 2), z(2, 2), 1)
    out = z(2, 2)
    _core.activation_forward(out, np.full((2, 2), -1.0, f32), _core.Activation.relu)
    assert (out == 0).all()


def test_cuda_module_shares_the_activation_class():
    cuda = pytest.importorskip("cnnfast._cuda")
    assert cuda.Activation is _core.Activation


# ---- Net builders ----

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
                         lambda: _core.Op.activation(_core.Activation(9))),
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


# ---- cross_entropy: one binding for the four kernels ----

def xent_inputs(rng, b=37, k=5):
    logits = rng.normal(size=(b, k)).astype(f32) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, k, b).astype(np.int32)
    return logits, probs.astype(f32), labels, np.eye(k, dtype=f32)[labels]


def sequential_mean(loss):
    total = f32(0)
    for v in loss:
        total = f32(total + v)
    return f32(total / f32(loss.size))


@pytest.mark.parametrize("from_logits", [True, False])
def test_cross_entropy_picks_sparse_or_dense_from_the_labels(from_logits):
    logits, probs, labels, onehot = xent_inputs(np.random.default_rng(3))
    pred = logits if from_logits else probs
    b, k = pred.shape
    ls, gs = np.empty(b, f32), np.empty((b, k), f32)
    ld, gd = np.empty(b, f32), np.empty((b, k), f32)
    ms = _core.cross_entropy(ls, gs, pred, labels, from_logits, 1e-7, 1.0 / b)
    md = _core.cross_entropy(ld, gd, pred, onehot, from_logits, 1e-7, 1.0 / b)
    # One-hot dense targets and their class indices are the same loss (up to the dense
    # kernel's sum over k), so the dtype, not the call, picked the kernel.
    np.testing.assert_allclose(ls, ld, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gs, gd, rtol=1e-6, atol=1e-7)
    assert isinstance(ms, float) and isinstance(md, float)
    # Soft targets only make sense for the dense kernel: its loss differs from the sparse one.
    soft = np.full((b, k), 1.0 / k, f32)
    lsoft = np.empty(b, f32)
    _core.cross_entropy(lsoft, None, pred, soft, from_logits)
    assert not np.allclose(lsoft, ls)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_cross_entropy_returns_the_nets_mean(from_logits, sparse):
    logits, probs, labels, onehot = xent_inputs(np.random.default_rng(4), b=1000)
    pred, y = (logits if from_logits else probs), (labels if sparse else onehot)
    loss = np.empty(pred.shape[0], f32)
    mean = _core.cross_entropy(loss, None, pred, y, from_logits)
    assert f32(mean) == sequential_mean(loss)  # bit-identical: float32 sequential sum / B
    assert mean == pytest.approx(float(loss.astype(np.float64).mean()), rel=1e-5)


def test_cross_entropy_mean_equals_the_nets_loss():
    """A Net made of one Activation('softmax') op reports, for the probabilities it computes,
    the same loss as cross_entropy on those probabilities, bit for bit."""
    logits, _, labels, onehot = xent_inputs(np.random.default_rng(5), b=333)
    b, k = logits.shape
    for loss_kind, y in ((_core.LossKind.sparse_probs, labels),
                         (_core.LossKind.dense_probs, onehot)):
        net = _core.Net([_core.Op.activation(_core.Activation.softmax)], [k], b, loss_kind, k,
                        False)
        net_loss, _ = net.evaluate(logits, y)
        probs = np.empty((b, k), f32)
        net.predict(logits, probs)
        mean = _core.cross_entropy(np.empty(b, f32), None, probs, y, False)
        assert f32(mean) == f32(net_loss)
    for loss_kind, y in ((_core.LossKind.sparse_logits, labels),
                         (_core.LossKind.dense_logits, onehot)):
        net = _core.Net([_core.Op.activation(_core.Activation.linear)], [k], b, loss_kind, k,
                        False)
        net_loss, _ = net.evaluate(logits, y)
        mean = _core.cross_entropy(np.empty(b, f32), None, logits, y, True)
        assert f32(mean) == f32(net_loss)


def test_losses_per_sample_returns_the_mean():
    from cnnfast import losses

    logits, _, labels, _ = xent_inputs(np.random.default_rng(6))
    loss = np.empty(labels.size, f32)
    mean = losses.SparseCategoricalCrossentropy().per_sample(labels, logits, True, loss, None, 1.0)
    assert f32(mean) == sequential_mean(loss)


BAD_XENT = {
    "labels_int64": (TypeError, r"labels must have dtype int32 \(class indices, \(B,\)\) or "
                                r"float32 \(targets, \(B, K\)\), got int64",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3), np.zeros(2, np.int64),
                                                 True)),
    "labels_float64": (TypeError, "got float64",
                       lambda: _core.cross_entropy(z(2), None, z(2, 3), np.zeros((2, 3)), True)),
    "labels_list": (TypeError, "labels must be a numpy array",
                    lambda: _core.cross_entropy(z(2), None, z(2, 3), [0, 1], True)),
    "int_labels_2d": (ValueError, r"labels has shape \(2, 3\), expected \(2,\) \(int32 labels "
                                  r"are class indices; one-hot targets must be float32\)",
                      lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2, 3, dtype=np.int32),
                                                  False)),
    "float_labels_1d": (ValueError, r"labels has shape \(2,\), expected \(2, 3\) \(float32 "
                                    r"labels are targets; class indices must be int32\)",
                        lambda: _core.cross_entropy(z(2), None, z(2, 3), z(2), True)),
    "labels_batch": (ValueError, r"labels has shape \(3,\), expected \(2,\)",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3), z(3, dtype=np.int32),
                                                 True)),
    "pred_1d": (ValueError, "pred must be 2-D",
                lambda: _core.cross_entropy(z(2), None, z(2), z(2, dtype=np.int32), True)),
    "pred_float64": (TypeError, "pred must have dtype float32",
                     lambda: _core.cross_entropy(z(2), None, z(2, 3, dtype=np.float64),
                                                 z(2, dtype=np.int32), True)),
    "loss_shape": (ValueError, r"loss has shape \(3,\), expected \(2,\)",
                   lambda: _core.cross_entropy(z(3), None, z(2, 3), z(2, dtype=np.int32), True)),
    "grad_shape": (ValueError, r"grad has shape \(2, 4\), expected \(2, 3\)",
                   lambda: _core.cross_entropy(z(2), z(2, 4), z(2, 3), z(2, dtype=np.int32),
                                               False)),
    "label_outside": (ValueError, r"label 3 at row 1 is outside \[0, 3\)",
                      lambda: _core.cross_entropy(z(2), None, z(2, 3),
                                                  np.array([0, 3], np.int32), False)),
}


@pytest.mark.parametrize("case", list(BAD_XENT))
def test_cross_entropy_rejects(case):
    exc, match, call = BAD_XENT[case]
    with pytest.raises(exc, match=match):
        call()


# ---- the type stub ----

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
