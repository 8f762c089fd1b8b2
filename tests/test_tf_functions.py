"""The small tf.* functions tutorials call on arrays (`import cnnfast as tf`): the Tensor they
return, the missing-name errors of the tensorflow-shaped namespace, and (marked `tf`) each
helper against TensorFlow's on the same inputs."""
import numpy as np
import pytest

import cnnfast
import cnnfast as tf  # what a converted script does
from cnnfast import keras
from cnnfast.tensor import Tensor

# ---- the Tensor ---------------------------------------------------------------------------


def test_tensor_is_an_array_with_numpy():
    t = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t, np.ndarray) and isinstance(t, tf.Tensor)
    assert t.shape == (2, 2) and t.dtype == tf.float32 and t.ndim == 2 and len(t) == 2
    assert type(t.numpy()) is np.ndarray and type(np.asarray(t)) is np.ndarray
    np.testing.assert_array_equal(t.numpy(), [[1, 2], [3, 4]])
    # arithmetic, indexing and reductions stay Tensors, 0-d ones included (as TF's)
    assert isinstance(t * 2 + 1, Tensor)
    assert (t * 2)[1, 0].numpy() == 6.0 and type((t * 2)[1, 0].numpy()) is np.float32
    assert isinstance(t.sum(), Tensor) and float(t.sum()) == 10.0
    assert [r.numpy().tolist() for r in t] == [[1, 2], [3, 4]]
    assert f"{tf.reduce_mean(t):.2f}" == "2.50"
    assert list(range(tf.argmax(tf.constant([1, 5, 2])) + 1)) == [0, 1]


def test_tensor_prints_as_tf():
    assert str(tf.constant([1.5, 2.0])) == "tf.Tensor([1.5 2. ], shape=(2,), dtype=float32)"
    assert repr(tf.constant(3.5)) == "<tf.Tensor: shape=(), dtype=float32, numpy=3.5>"
    assert repr(tf.constant([[1, 2], [3, 4]])) == (
        "<tf.Tensor: shape=(2, 2), dtype=int32, numpy=\narray([[1, 2],\n       [3, 4]], "
        "dtype=int32)>")


def test_dtypes_are_numpy_dtypes():
    assert tf.float32 == np.float32 and tf.int32 == np.int32 and tf.uint8 == np.uint8
    assert tf.bool == np.bool_ and tf.float64 == tf.double
    assert np.zeros(2).astype(tf.float16).dtype == np.float16
    assert tf.dtypes.float32 is tf.float32 and tf.as_dtype("int64") == np.int64


def test_tensors_feed_the_models():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = tf.cast(tf.constant([[1, 2, 3], [4, 5, 6]]), tf.float32) / 10.0
    model.fit(x, tf.constant([0, 1]), epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    assert p.shape == (2, 2)
    assert tf.argmax(p, axis=1).shape == (2,)


def test_config_and_version():
    assert tf.__version__ == cnnfast.__version__ == tf.version.VERSION
    assert tf.executing_eagerly()
    assert tf.config.list_physical_devices("GPU") == []
    (cpu,) = tf.config.list_physical_devices("CPU")
    assert cpu.device_type == "CPU" and cpu.name == "/physical_device:CPU:0"
    assert tf.config.list_physical_devices() == [cpu]
    assert tf.config.experimental.enable_op_determinism() is None
    assert "deterministic" in tf.config.experimental.enable_op_determinism.__doc__
    old = cnnfast.get_num_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        assert cnnfast.get_num_threads() == 1
        assert tf.config.threading.get_intra_op_parallelism_threads() == 1
        tf.config.threading.set_intra_op_parallelism_threads(0)  # TF: "system default"
        assert cnnfast.get_num_threads() == 1
    finally:
        cnnfast.set_num_threads(old)
    tf.random.set_seed(1)


def test_nn_functions_keep_working_as_activations():
    assert keras.layers.Dense(2, activation=tf.nn.softmax).activation == "softmax"
    assert keras.layers.Dense(2, activation=tf.nn.relu).activation == "relu"
    assert tf.math.softmax is tf.nn.softmax
    assert tf.nn.softmax([[1.0, 2.0]]).numpy().sum() == pytest.approx(1.0)


# ---- names cnnfast lacks -------------------------------------------------------------------
MISSING = [  # (module, a tensorflow name under it that cnnfast does not implement)
    (cnnfast, "GradientTape"), (cnnfast.keras, "applications"), (cnnfast.keras.layers, "LSTM"),
    (cnnfast.keras.models, "model_from_json"), (cnnfast.keras.optimizers, "Ftrl"),
    (cnnfast.keras.losses, "Poisson"), (cnnfast.keras.utils, "image_dataset_from_directory"),
    (cnnfast.keras.datasets, "cifar10"), (cnnfast.nn, "conv2d"), (cnnfast.math, "bincount"),
    (cnnfast.random, "uniform"), (cnnfast.config, "set_soft_device_placement"),
    (cnnfast.data, "TFRecordDataset"),
]


@pytest.mark.parametrize("module,name", MISSING, ids=[n for _, n in MISSING])
def test_missing_names_say_cnnfast_does_not_implement_them(module, name):
    assert not hasattr(module, name)
    tf_path = module.__name__.replace("cnnfast", "tensorflow", 1)
    with pytest.raises(AttributeError, match=f"cnnfast does not implement {tf_path}.{name}"):
        getattr(module, name)
    with pytest.raises(ImportError, match=f"cnnfast does not implement {tf_path}.{name}"):
        exec(f"from {module.__name__} import {name}", {})


def test_missing_names_in_namespaces_and_dunders():
    with pytest.raises(AttributeError, match="cnnfast does not implement "
                       "tensorflow.config.experimental.list_logical_devices_foo"):
        tf.config.experimental.list_logical_devices_foo  # noqa: B018

    assert not hasattr(cnnfast.keras.layers, "__wrapped__")
    from cnnfast.keras.layers import Conv2D, Dense  # present names import as before
    assert Dense is cnnfast.layers.Dense and Conv2D is cnnfast.layers.Conv2D


def test_the_tf_internal_confusion_matrix_path():
    from cnnfast.python.ops.confusion_matrix import confusion_matrix
    assert confusion_matrix is tf.math.confusion_matrix


# ---- against TensorFlow --------------------------------------------------------------------
def _same(ours, theirs, exact=True):
    theirs = theirs.numpy() if hasattr(theirs, "numpy") else np.asarray(theirs)
    assert isinstance(ours, Tensor), type(ours)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, \
        (ours.shape, ours.dtype, theirs.shape, theirs.dtype)
    if exact:
        np.testing.assert_array_equal(ours.numpy(), theirs)
    else:  # float sums: NumPy's pairwise order vs TF's reduction tree
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-7)


_R = np.random.default_rng(0)
VALUES = {
    "py_ints": [1, 2, 3], "py_floats": [[1.5, -2.0], [0.25, 3.0]], "py_big": [2**40, 1],
    "py_mixed": [1, 2.5], "py_bool": True, "np_f64": _R.normal(size=(3, 4)),
    "np_u8": _R.integers(0, 255, (2, 5), dtype=np.uint8), "np_i64": np.int64(3),
    "empty": [],
}


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(VALUES))
def test_constant_and_convert_to_tensor_infer_dtypes_as_tf(tf_keras, name):
    real_tf, _ = tf_keras
    v = VALUES[name]
    _same(tf.constant(v), real_tf.constant(v))
    _same(tf.convert_to_tensor(v), real_tf.convert_to_tensor(v))


@pytest.mark.tf
def test_constant_dtype_and_shape_as_tf(tf_keras):
    real_tf, _ = tf_keras
    for args, kw in [((0,), {"shape": (2, 3)}), (([1, 2, 3, 4, 5, 6],), {"shape": (2, 3)}),
                     (([1, 2],), {"dtype": "float32"}), ((np.arange(3.0),), {"dtype": tf.int32}),
                     ((2,), {"dtype": tf.int64}), ((np.float32(2.5),), {"dtype": tf.int32})]:
        rkw = dict(kw, dtype=kw["dtype"] if "dtype" not in kw or isinstance(kw["dtype"], str)
                   else np.dtype(kw["dtype"]).name) if "dtype" in kw else kw
        _same(tf.constant(*args, **kw), real_tf.constant(*args, **rkw))
    for v in (1.5, 2.0, [1.0, 2.0]):  # TF refuses Python floats for an integer dtype
        with pytest.raises(TypeError):
            real_tf.constant(v, dtype=real_tf.int32)
        with pytest.raises(TypeError, match="Cannot convert"):
            tf.constant(v, dtype=tf.int32)
    _same(tf.convert_to_tensor(np.array([1.0]), dtype=tf.float32),
          real_tf.convert_to_tensor(np.array([1.0]), dtype=real_tf.float32))
    with pytest.raises(ValueError, match="requested dtype float32 for Tensor with dtype float64"):
        tf.convert_to_tensor(tf.constant(np.array([1.0])), dtype=tf.float32)


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "bool", "float64", "int64"])
def test_cast_as_tf(tf_keras, dtype):
    real_tf, _ = tf_keras
    for v in ([1.7, -1.7, 0.0, 2.5, 200.0], np.array([0, 3, 255], np.uint8),
              np.array([True, False]), [[1, -2], [3, 0]]):
        _same(tf.cast(v, getattr(tf, dtype)), real_tf.cast(v, getattr(real_tf, dtype)))
    _same(tf.cast([1, 2], dtype), real_tf.cast([1, 2], dtype))


@pytest.mark.tf
def test_expand_dims_and_one_hot_as_tf(tf_keras):
    real_tf, _ = tf_keras
    x = _R.random((2, 3)).astype(np.float32)
    for axis in (0, 1, -1, 2, -3):
        _same(tf.expand_dims(x, axis), real_tf.expand_dims(x, axis))
    _same(tf.expand_dims([1, 2], -1), real_tf.expand_dims([1, 2], -1))
    idx = [0, 2, -1, 5, 1]
    _same(tf.one_hot(idx, 3), real_tf.one_hot(idx, 3))
    _same(tf.one_hot([[0, 1], [2, 0]], 3, axis=0), real_tf.one_hot([[0, 1], [2, 0]], 3, axis=0))
    _same(tf.one_hot([[0, 1], [2, 0]], 4, axis=1), real_tf.one_hot([[0, 1], [2, 0]], 4, axis=1))
    _same(tf.one_hot(np.array([1, 0], np.uint8), 2, on_value=5, off_value=-1),
          real_tf.one_hot(np.array([1, 0], np.uint8), 2, on_value=5, off_value=-1))
    _same(tf.one_hot([1], 3, dtype=tf.int64), real_tf.one_hot([1], 3, dtype=real_tf.int64))


@pytest.mark.tf
def test_argmax_argmin_as_tf(tf_keras):
    real_tf, _ = tf_keras
    x = np.array([[1, 5, 5], [7, 2, 7], [0, 0, 0]], np.float32)  # ties: the first index
    for axis in (None, 0, 1, -1):
        _same(tf.argmax(x, axis=axis), real_tf.argmax(x, axis=axis))
        _same(tf.argmin(x, axis=axis), real_tf.argmin(x, axis=axis))
        _same(tf.math.argmax(x, axis), real_tf.math.argmax(x, axis))
    _same(tf.argmax(x, 1, output_type=tf.int32), real_tf.argmax(x, 1, output_type=real_tf.int32))
    _same(tf.argmax([3, 9, 1]), real_tf.argmax([3, 9, 1]))


@pytest.mark.tf
@pytest.mark.parametrize("fn", ["reduce_mean", "reduce_sum", "reduce_max", "reduce_min"])
def test_reductions_as_tf(tf_keras, fn):
    real_tf, _ = tf_keras
    ours, theirs = getattr(tf, fn), getattr(real_tf, fn)
    inputs = [_R.normal(size=(4, 5, 3)).astype(np.float32), _R.normal(size=(6,)),
              np.array([[-3, -4, 0], [1, 2, 2]], np.int32), np.array([1, 2, 250], np.uint8),
              [[1, 2], [3, 5]], [-1, -2]]
    for x in inputs:
        nd = np.asarray(x).ndim
        axes = [None, 0, -1] + ([[0, nd - 1]] if nd > 1 else []) + ([(0, 2), 1] if nd == 3 else [])
        for axis in axes:
            for keepdims in (False, True):
                _same(ours(x, axis=axis, keepdims=keepdims),
                      theirs(x, axis=axis, keepdims=keepdims), exact=fn not in
                      ("reduce_mean", "reduce_sum") or np.asarray(x).dtype.kind != "f")
    empty = np.zeros((0, 3), np.float32)
    _same(ours(empty), theirs(empty))
    _same(ours(empty, axis=0), theirs(empty, axis=0))
    if fn != "reduce_mean":
        _same(ours(np.zeros((0,), np.int32)), theirs(np.zeros((0,), np.int32)))


@pytest.mark.tf
def test_softmax_and_activations_as_tf(tf_keras):
    real_tf, _ = tf_keras
    x = (_R.normal(size=(4, 6)) * 30).astype(np.float32)
    for axis in (None, -1, 0):
        _same(tf.nn.softmax(x, axis=axis), real_tf.nn.softmax(x, axis=axis), exact=False)
    _same(tf.nn.softmax([[1.0, 2.0, 3.0]]), real_tf.nn.softmax([[1.0, 2.0, 3.0]]), exact=False)
    for name in ("relu", "sigmoid", "tanh"):
        _same(getattr(tf.nn, name)(x), getattr(real_tf.nn, name)(x), exact=False)


@pytest.mark.tf
def test_confusion_matrix_as_tf(tf_keras):
    real_tf, _ = tf_keras
    labels, preds = [1, 2, 4, 0, 2], [2, 2, 4, 0, 1]
    _same(tf.math.confusion_matrix(labels, preds), real_tf.math.confusion_matrix(labels, preds))
    for kw in ({"num_classes": 6}, {"dtype": tf.float32},
               {"weights": [0.5, 2.0, 1.0, 1.0, 3.0], "dtype": tf.float32, "num_classes": 5}):
        rkw = {k: (np.dtype(v).name if k == "dtype" else v) for k, v in kw.items()}
        _same(tf.math.confusion_matrix(labels, preds, **kw),
              real_tf.math.confusion_matrix(labels, preds, **rkw))
    y = np.array([[3], [1], [1]], np.uint8)  # a trailing dimension of 1 is squeezed
    _same(tf.math.confusion_matrix(y, np.array([3, 1, 0])),
          real_tf.math.confusion_matrix(y, np.array([3, 1, 0])))
    with pytest.raises(ValueError, match="negative"):
        tf.math.confusion_matrix([-1, 2], [2, 1])
    with pytest.raises(ValueError, match="out of bound"):
        tf.math.confusion_matrix([1, 2], [2, 5], num_classes=3)
