"""The crash checklist of small C++ NN libraries: each item of tiny-dnn's crash reports and of
TensorFlow's CVEs for its conv / pool / batch-norm kernels, one test each, named after it. Each
must be a clear Python exception (or the correct result), never a crash."""
import numpy as np
import pytest

import cnnfast
from cnnfast import _core
from cnnfast import keras as K

F = np.float32


def z(*shape, dtype=F):
    return np.zeros(shape, dtype)


# ---- TensorFlow CVEs ---------------------------------------------------------------------------
def test_cve_2021_29570_maxpool_grad_with_argmax_out_of_range():
    """MaxPoolGradWithArgmax read out of bounds through an argmax it did not validate."""
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype(F)
    argmax = z(1, 2, 2, 2, dtype=np.int32)
    _core.maxpool2d_forward(z(1, 2, 2, 2), argmax, x, (2, 2), (2, 2), "valid")
    for bad in (-1, 16 * 2, 2**31 - 1, 2):  # 2: inside the input, not in window (0, 0)
        a = argmax.copy()
        a[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="maxpool2d_backward: argmax out of range"):
            _core.maxpool2d_backward(z(1, 4, 4, 2), z(1, 2, 2, 2), a, (2, 2), (2, 2), "valid")


def test_cve_2021_29579_maxpool_grad_with_mismatched_shapes():
    """MaxPoolGrad overflowed the heap when the gradient's shape did not match the pooling."""
    argmax = z(1, 2, 2, 1, dtype=np.int32)
    with pytest.raises(ValueError, match="maxpool2d_backward: dout"):
        _core.maxpool2d_backward(z(1, 4, 4, 1), z(1, 3, 3, 1), argmax, (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="maxpool2d_backward: argmax"):
        _core.maxpool2d_backward(z(1, 4, 4, 1), z(1, 2, 2, 1), z(1, 1, 1, 1, dtype=np.int32),
                                 (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="avgpool2d_backward: dout"):
        _core.avgpool2d_backward(z(1, 4, 4, 1), z(1, 3, 2, 1), (2, 2), (2, 2), "valid")


def test_cve_2021_29583_fused_batch_norm_parameters_of_the_wrong_size():
    """FusedBatchNorm overflowed the heap when scale / offset / mean / variance were not the
    channel count."""
    x = z(4, 3)
    good = dict(out=z(4, 3), mean=z(3), rstd=z(3), moving_mean=z(3), moving_var=np.ones(3, F),
                inp=x, gamma=np.ones(3, F), beta=z(3), eps=1e-3, momentum=0.99, training=True)
    _core.batchnorm_forward(**good)
    for name in ("gamma", "beta", "moving_mean", "moving_var", "mean", "rstd"):
        with pytest.raises(ValueError, match=f"batchnorm_forward: {name}"):
            _core.batchnorm_forward(**dict(good, **{name: z(2)}))


def test_cve_2021_29525_conv2d_backprop_input_with_empty_out_backprop():
    """Conv2DBackpropInput divided by zero on an empty out_backprop."""
    with pytest.raises(ValueError, match="conv2d_backward"):
        _core.conv2d_backward(z(0, 5, 5, 1), z(3, 3, 1, 2), z(2), z(0, 3, 3, 2), z(0, 5, 5, 1),
                              z(3, 3, 1, 2), (1, 1), "valid", None)
    with pytest.raises(ValueError, match="conv2d_backward: dout"):
        _core.conv2d_backward(z(1, 5, 5, 1), z(3, 3, 1, 2), z(2), z(1, 0, 3, 2), z(1, 5, 5, 1),
                              z(3, 3, 1, 2), (1, 1), "valid", None)


def test_cve_2021_29526_conv2d_with_zero_channels_or_empty_filter():
    """Conv2D divided by zero for an input with no channels / an empty filter."""
    with pytest.raises(ValueError, match="conv2d_forward"):
        _core.conv2d_forward(z(1, 3, 3, 2), z(1, 5, 5, 0), z(3, 3, 0, 2), None, (1, 1), "valid",
                             None)
    with pytest.raises(ValueError, match="conv2d_forward"):
        _core.conv2d_forward(z(1, 5, 5, 0), z(1, 5, 5, 1), z(1, 1, 1, 0), None, (1, 1), "valid",
                             None)
    with pytest.raises(ValueError, match="conv2d_geometry"):
        _core.conv2d_geometry((1, 5, 5, 1), (0, 3, 1, 2), (1, 1), "valid")


# ---- stride 0, window 0, windows larger than the input -----------------------------------------
@pytest.mark.parametrize("strides", [(0, 1), (1, 0), (-1, 1)])
def test_stride_zero_or_negative_in_pooling_and_conv(strides):
    with pytest.raises(ValueError, match=r"maxpool2d_forward: strides must be positive"):
        _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1), (2, 2), strides, "valid")
    with pytest.raises(ValueError, match=r"avgpool2d_backward: strides must be positive"):
        _core.avgpool2d_backward(z(1, 4, 4, 1), z(1, 2, 2, 1), (2, 2), strides, "valid")
    with pytest.raises(ValueError, match=r"conv2d_forward: strides must be positive"):
        _core.conv2d_forward(z(1, 2, 2, 1), z(1, 4, 4, 1), z(3, 3, 1, 1), None, strides, "valid",
                             None)
    with pytest.raises(ValueError, match="strides"):
        K.layers.MaxPooling2D(2, strides=strides)
    with pytest.raises(ValueError, match="strides"):
        K.layers.Conv2D(1, 3, strides=strides)


@pytest.mark.parametrize("pool", [(0, 2), (2, 0), (-2, 2)])
def test_pool_size_zero_or_negative(pool):
    with pytest.raises(ValueError, match="maxpool2d_forward: pool_size must be positive"):
        _core.maxpool2d_forward(z(1, 2, 2, 1), None, z(1, 4, 4, 1), pool, (2, 2), "valid")
    with pytest.raises(ValueError, match="pool_size"):
        K.layers.MaxPooling2D(pool)


def test_window_larger_than_the_input_with_valid_padding():
    """tiny-dnn crashed on a pooling / conv window larger than its input."""
    with pytest.raises(ValueError, match=r"maxpool2d_forward: .*window 5 larger than input 4.*"
                                         r"input \(1, 4, 4, 1\), pool_size \(5, 5\)"):
        _core.maxpool2d_forward(z(1, 1, 1, 1), None, z(1, 4, 4, 1), (5, 5), (1, 1), "valid")
    with pytest.raises(ValueError, match=r"conv2d_forward: .*window 5 larger than input 4"):
        _core.conv2d_forward(z(1, 1, 1, 1), z(1, 4, 4, 1), z(5, 5, 1, 1), None, (1, 1), "valid",
                             None)
    with pytest.raises(ValueError):
        K.Sequential([K.Input((4, 4, 1)), K.layers.MaxPooling2D(5)])
    # 'same' padding takes any window: the reference result, as TF's
    out = z(1, 4, 4, 1)
    x = np.arange(16, dtype=F).reshape(1, 4, 4, 1)
    _core.maxpool2d_forward(out, None, x, (5, 5), (1, 1), "same")
    assert out.max() == 15 and out[0, 0, 0, 0] == 10  # rows 0-2, cols 0-2 of 4x4 padded 2/2


def test_layer_input_size_mismatch():
    """tiny-dnn aborted on a layer fed an input of the wrong size."""
    with pytest.raises(ValueError, match=r"dense_forward: inp \(2, 5\) does not match weight "
                                         r"\(4, 3\)"):
        _core.dense_forward(z(2, 3), z(2, 5), z(4, 3), None)
    model = K.Sequential([K.Input((4,)), K.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"expected shape \(None, 4\), found shape \(2, 5\)"):
        model.predict(z(2, 5), verbose=0)


# ---- batches: empty, single, the last partial one ----------------------------------------------
def test_empty_batch():
    model = K.Sequential([K.Input((4, 4, 1)), K.layers.Conv2D(2, 3), K.layers.Flatten(),
                          K.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x is empty"):
        model.predict(z(0, 4, 4, 1), verbose=0)
    with pytest.raises(ValueError, match="x is empty"):
        model.fit(z(0, 4, 4, 1), np.zeros(0, np.int32), verbose=0)
    with pytest.raises(ValueError, match=r"avgpool2d_forward: .*input \(0, 4, 4, 1\)"):
        _core.avgpool2d_forward(z(0, 2, 2, 1), z(0, 4, 4, 1), (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="batchnorm_forward: inp has no elements"):
        _core.batchnorm_forward(z(0, 3), z(3), z(3), z(3), z(3), z(0, 3), None, None, 1e-3, 0.9,
                                True)


def test_single_sample_batch():
    cnnfast.utils.set_random_seed(1)
    model = K.Sequential([K.Input((4, 4, 1)), K.layers.Conv2D(2, 3),
                          K.layers.BatchNormalization(), K.layers.Flatten(),
                          K.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 1)).astype(F)
    model.fit(x, np.array([1]), epochs=2, verbose=0)
    assert model.optimizer.iterations == 2
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert model.predict(x, verbose=0).shape == (1, 2)


def test_last_partial_batch():
    """The last batch of an epoch is smaller (10 samples, batch 4: 4, 4, 2): it is trained on,
    averaged over its own 2 rows, exactly as train_on_batch on those rows."""
    x = np.random.default_rng(2).normal(size=(10, 4, 4, 1)).astype(F)
    y = np.arange(10) % 2

    def model():
        cnnfast.utils.set_random_seed(5)
        m = K.Sequential([K.Input((4, 4, 1)), K.layers.Conv2D(2, 3, activation="relu"),
                          K.layers.Flatten(), K.layers.Dense(2, activation="softmax")])
        m.compile("sgd", "sparse_categorical_crossentropy")
        return m

    a = model()
    h = a.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    b = model()
    for s in (slice(0, 4), slice(4, 8), slice(8, 10)):
        b.train_on_batch(x[s], y[s])
    assert a.optimizer.iterations == b.optimizer.iterations == 3
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert np.isfinite(h.history["loss"][0])


# ---- int overflow in sizes ---------------------------------------------------------------------
def test_int_overflow_in_sizes():
    """Sizes whose products or sums pass 2^31: exact in 64 bits or refused, never wrapped."""
    g = _core.conv2d_geometry((2**31 - 1, 2**31 - 1, 2**31 - 1, 1), (3, 3, 1, 1),
                              (2**30, 2**30), "same")
    assert g["out_shape"] == (2**31 - 1, 2, 2, 1)  # ceil((2^31-1) / 2^30); it wrapped to -1
    g = _core.pool2d_geometry((1, 2**31 - 1, 2**31 - 1, 1), (3, 3), (2**30, 2**30), "same")
    assert g["out_shape"] == (1, 2, 2, 1)
    with pytest.raises(ValueError, match="too large for the kernels"):
        _core.conv2d_geometry((1, 2**31, 5, 1), (3, 3, 1, 1), (1, 1), "valid")
    with pytest.raises(ValueError, match=r"Net: in_shape must be positive sizes of at most "
                                         r"2\^31-1"):
        _core.Net([_core.Op.flatten()], [2**16, 2**16, 1], 1, _core.LossKind.sparse_logits, 1,
                  False)
    with pytest.raises(ValueError, match="Net: in_shape must be positive"):
        _core.Net([_core.Op.flatten()], [3, 0, 1], 2, _core.LossKind.sparse_logits, 0, False)
    with pytest.raises(ValueError, match="Net: ZeroPadding2D output too large"):
        _core.Net([_core.Op.zero_pad2d(((2**30, 2**30), (0, 0)))], [3, 3, 1], 2,
                  _core.LossKind.sparse_logits, 9, False)
    with pytest.raises(ValueError, match="values per sample"):
        _core.Net([_core.Op.zero_pad2d(((2**15, 2**15), (2**15, 2**15)))], [3, 3, 1], 2,
                  _core.LossKind.sparse_logits, 9, False)


def test_nan_and_labels_out_of_range():
    model = K.Sequential([K.Input((3,)), K.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(np.full((4, 3), np.nan, F), np.zeros(4, np.int32), verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        model.fit(z(4, 3), np.array([0, 1, 2, 0]), verbose=0)
    with pytest.raises(ValueError, match="label 7 at row 1 is outside"):
        _core.cross_entropy(z(2), None, z(2, 2), np.array([0, 7], np.int32), True)
