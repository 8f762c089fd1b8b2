"""keras.activations.X(x, ...) and tf.nn.X(x, ...) called eagerly on NumPy arrays, Python lists
and cnnfast Tensors: the values, dtype and type against tf.keras (marked `tf`), the arguments
Keras takes, and what a layer does with each as its `activation=` (the native kinds map to the
fused kernels; the others and arbitrary callables raise NotImplementedError naming them)."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import keras
from cnnfast.tensor import Tensor

A = cf.keras.activations
_R = np.random.default_rng(11)
# values around every kink of the piecewise functions (0, +-0.5, +-1, 3, 6) and large ones
_X = np.concatenate([np.array([-30.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 7.0,
                               30.0]), _R.normal(size=21) * 4]).reshape(3, 11)

# (name, kwargs) for keras.activations
KERAS_CASES = [
    ("relu", {}), ("relu", {"negative_slope": 0.1}), ("relu", {"max_value": 6.0}),
    ("relu", {"max_value": 2.5}), ("relu", {"threshold": 1.0}),
    ("relu", {"negative_slope": 0.1, "max_value": 6.0, "threshold": 1.0}),
    ("relu", {"negative_slope": 0.3, "threshold": 0.5}), ("relu6", {}),
    ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.01}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}),
    ("gelu", {}), ("gelu", {"approximate": True}), ("silu", {}), ("swish", {}),
    ("sigmoid", {}), ("tanh", {}), ("softplus", {}), ("softsign", {}), ("hard_sigmoid", {}),
    ("softmax", {}), ("softmax", {"axis": 0}), ("softmax", {"axis": (0, 1)}),
    ("log_softmax", {}), ("log_softmax", {"axis": 0}),
    ("exponential", {}), ("mish", {}), ("hard_silu", {}), ("hard_swish", {}),
    ("log_sigmoid", {}), ("celu", {}), ("celu", {"alpha": 2.0}), ("hard_tanh", {}),
    ("tanh_shrink", {}), ("soft_shrink", {}), ("soft_shrink", {"threshold": 1.0}),
    ("hard_shrink", {"threshold": 1.0}), ("sparse_plus", {}), ("sparse_sigmoid", {}),
    ("squareplus", {}), ("squareplus", {"b": 1.0}),
    ("threshold", {"threshold": 0.5, "default_value": -2.0}), ("glu", {}), ("glu", {"axis": 0}),
]
NN_CASES = [
    ("relu", {}), ("relu6", {}), ("leaky_relu", {}), ("leaky_relu", {"alpha": 0.1}),
    ("elu", {}), ("selu", {}), ("gelu", {}), ("gelu", {"approximate": True}), ("silu", {}),
    ("silu", {"beta": 2.0}), ("swish", {}), ("sigmoid", {}), ("tanh", {}), ("softplus", {}),
    ("softsign", {}), ("softmax", {}), ("softmax", {"axis": 0}), ("log_softmax", {}),
    ("log_softmax", {"axis": 0}),
]
# float32: TF's Eigen kernels and ours (native or NumPy) differ by a few ulps (measured
# <= 3e-7 relative); float64 to ~1e-15.
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}


def _x(name, kwargs, dtype):
    x = _X.astype(dtype)
    if name == "glu" and kwargs.get("axis") == 0:
        x = np.concatenate([x, x[:1] * 0.5])  # 4 rows: the halves along axis 0
    elif name == "glu":
        x = np.concatenate([x, x[:, :1] - 1], axis=1)  # 12 columns
    return x


def _check(ours, theirs, dtype):
    assert isinstance(ours, Tensor), type(ours)
    assert ours.dtype == theirs.numpy().dtype, (ours.dtype, theirs.numpy().dtype)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), **TOL[dtype])


@pytest.mark.tf
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", KERAS_CASES, ids=lambda v: str(v))
def test_keras_activations_match_tf_keras(tf_keras, name, kwargs, dtype):
    _, keras_ = tf_keras
    x = _x(name, kwargs, dtype)
    _check(getattr(A, name)(x, **kwargs), getattr(keras_.activations, name)(x, **kwargs), dtype)


@pytest.mark.tf
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kwargs", NN_CASES, ids=lambda v: str(v))
def test_tf_nn_matches_tf(tf_keras, name, kwargs, dtype):
    tf_, _ = tf_keras
    x = _X.astype(dtype)
    _check(getattr(cf.nn, name)(x, **kwargs), getattr(tf_.nn, name)(x, **kwargs), dtype)


@pytest.mark.tf
def test_lists_ints_scalars_and_float16_as_tf(tf_keras):
    tf_, keras_ = tf_keras
    lst = [[-2.0, -0.5, 0.0, 1.5, 7.0]]
    # (Keras 3's softmax and linear fail on a list: they read x.shape / return it as it is)
    for name in ("relu", "sigmoid", "gelu", "elu", "hard_sigmoid", "mish"):
        _check(getattr(A, name)(lst), getattr(keras_.activations, name)(lst), np.float32)
    _check(A.relu(lst, max_value=6.0), keras_.activations.relu(lst, max_value=6.0), np.float32)
    ints = np.array([-3, 0, 2, 9])
    # integers: relu/relu6 keep the dtype, leaky_relu/tanh/exponential compute in float32
    for name in ("relu", "relu6", "leaky_relu", "tanh", "exponential"):
        ours, theirs = getattr(A, name)(ints), getattr(keras_.activations, name)(ints)
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6)
    for ours, theirs in ((cf.nn.relu([-1, 2]), tf_.nn.relu([-1, 2])),
                         (cf.nn.leaky_relu([-1, 2]), tf_.nn.leaky_relu([-1, 2]))):
        assert ours.dtype == theirs.numpy().dtype
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # 0-d input works for elementwise functions (a 0-d Tensor)
    for name in ("relu", "sigmoid", "gelu", "elu"):
        ours = getattr(A, name)(np.float32(-0.75))
        theirs = getattr(keras_.activations, name)(np.float32(-0.75))
        assert ours.shape == () and ours.dtype == np.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6)
    # float16 keeps its dtype (computed in float32, as TF's half kernels)
    h = _X[:1].astype(np.float16)
    for name in ("relu", "sigmoid", "gelu", "softmax", "elu", "mish"):
        ours, theirs = getattr(A, name)(h), getattr(keras_.activations, name)(h)
        assert ours.dtype == np.float16
        np.testing.assert_allclose(ours.numpy().astype(np.float32),
                                   theirs.numpy().astype(np.float32), rtol=2e-3, atol=1e-3)


def test_integers_are_rejected_where_tf_rejects_them():
    for f in (A.sigmoid, A.softmax, A.gelu, A.elu, A.silu, cf.nn.tanh, cf.nn.sigmoid):
        with pytest.raises(TypeError, match="int64"):
            f(np.array([1, 2]))
    with pytest.raises(ValueError, match=">= 1 dimension"):
        A.softmax(np.float32(1.0))
    with pytest.raises(ValueError, match="range"):
        A.softmax(np.ones((2, 3), np.float32), axis=2)
    with pytest.raises(ValueError, match="divisible by 2"):
        A.glu(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="negative_slope"):
        A.relu(np.ones(2, np.float32), negative_slope="x")


def test_model_outputs_and_float32_kernels():
    """On what model(x) returns (a cnnfast Tensor) the functions compute as on its array; the
    float32 results of the native kernels match the NumPy formula in float64."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)])
    out = model(_R.normal(size=(3, 4)).astype(np.float32))
    assert isinstance(out, Tensor)
    plain = np.asarray(out)
    for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "gelu",
                 "silu", "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid"):
        f = getattr(A, name)
        y = f(out)
        assert isinstance(y, Tensor) and y.dtype == np.float32
        np.testing.assert_array_equal(y.numpy(), f(plain).numpy())
        ref = f(plain.astype(np.float64)).numpy()
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6, atol=1e-7)
    # relu's arguments (NumPy formula) against the ReLU layer (native relu_spec kernel)
    x = _X.astype(np.float32)
    for kw in ({"negative_slope": 0.1}, {"max_value": 2.5}, {"threshold": 1.0},
               {"negative_slope": 0.1, "max_value": 6.0, "threshold": 1.0}):
        layer = keras.layers.ReLU(**kw)
        np.testing.assert_array_equal(A.relu(x, **kw).numpy(), np.asarray(layer(x)))
    np.testing.assert_allclose(A.elu(x, alpha=0.5).numpy(),
                               np.asarray(keras.layers.ELU(alpha=0.5)(x)), rtol=1e-6)
    np.testing.assert_allclose(A.softmax(x, axis=0).numpy(),
                               np.asarray(keras.layers.Softmax(axis=0)(x)), rtol=1e-6)


# ---- as a layer's activation ---------------------------------------------------------------

@pytest.mark.parametrize("fn,kind", [
    (A.relu, "relu"), (cf.nn.relu, "relu"), (A.leaky_relu, "leaky_relu"),
    (cf.nn.leaky_relu, "leaky_relu"), (A.gelu, "gelu"), (cf.nn.gelu, "gelu"),
    (A.softmax, "softmax"), (cf.nn.softmax, "softmax"), (A.elu, "elu"), (cf.nn.elu, "elu"),
    (A.silu, "silu"), (A.swish, "silu"), (cf.nn.swish, "silu"), (A.hard_sigmoid,
                                                                  "hard_sigmoid"),
    (A.relu6, "relu6"), (A.log_softmax, "log_softmax"), (A.linear, "linear"),
])
def test_known_functions_map_to_the_native_kinds(fn, kind):
    d = keras.layers.Dense(3, activation=fn)
    assert d.activation == kind and d.get_config()["activation"] == kind
    assert keras.layers.Activation(fn).activation == kind
    x = _R.normal(size=(2, 4)).astype(np.float32)
    y = np.asarray(d(x))
    z = x @ d.get_weights()[0] + d.get_weights()[1]
    np.testing.assert_allclose(y, fn(z).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("act,word", [
    (lambda x: cf.activations.relu(x, max_value=6.0), "<lambda>"),
    (A.mish, "mish"), (A.exponential, "exponential"), (A.hard_silu, "hard_silu"),
    (A.celu, "celu"), (np.tanh, "tanh"),
])
def test_callables_without_a_kernel_raise_at_construction(act, word):
    for make in (lambda: keras.layers.Dense(2, activation=act),
                 lambda: keras.layers.Activation(act),
                 lambda: keras.layers.Conv2D(2, 3, activation=act)):
        with pytest.raises(NotImplementedError, match=word):
            make()


@pytest.mark.tf
def test_config_names_are_keras_names(tf_keras):
    """Where Keras writes an activation name for a function, cnnfast writes the same; for
    tf.nn.softmax / tf.nn.swish Keras writes a 'builtins.function' record that its own safe
    loader refuses, cnnfast writes the kind's name (which Keras loads as the same function)."""
    tf_, keras_ = tf_keras
    for ours, theirs in ((A.relu, keras_.activations.relu), (cf.nn.relu, tf_.nn.relu),
                         (A.gelu, keras_.activations.gelu), (cf.nn.gelu, tf_.nn.gelu),
                         (cf.nn.leaky_relu, tf_.nn.leaky_relu), (cf.nn.elu, tf_.nn.elu),
                         (A.silu, keras_.activations.silu),
                         (A.hard_sigmoid, keras_.activations.hard_sigmoid)):
        want = keras_.layers.Dense(2, activation=theirs).get_config()["activation"]
        assert keras.layers.Dense(2, activation=ours).get_config()["activation"] == want
    assert keras.layers.Dense(2, activation=cf.nn.softmax).get_config()["activation"] == \
        "softmax"
    assert keras_.layers.Dense.from_config(
        keras.layers.Dense(2, activation=cf.nn.swish).get_config()).activation is \
        keras_.activations.silu


def test_keras_namespace_exports():
    for name in ("relu", "elu", "gelu", "mish", "celu", "glu", "hard_silu", "hard_swish",
                 "log_sigmoid", "threshold", "soft_shrink", "sparse_plus"):
        assert getattr(cf.keras.activations, name) is getattr(cf.activations, name)
    with pytest.raises(AttributeError, match="does not implement"):
        cf.keras.activations.sparsemax  # noqa: B018
