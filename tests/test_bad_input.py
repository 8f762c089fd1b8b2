"""Bad input gets a clear ValueError/TypeError naming the layer and the shapes."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names


@pytest.fixture
def model():
    reset_names()
    m = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu"),
                       layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


X = np.random.default_rng(0).random((10, 8, 8, 1), dtype=np.float32)
Y = np.arange(10) % 3


def test_wrong_shape_names_layer_and_shapes(model):
    with pytest.raises(ValueError, match=r"conv2d.*\(None, 8, 8, 1\).*\(10, 8, 9, 1\)"):
        model.fit(np.zeros((10, 8, 9, 1), np.float32), Y, verbose=0)
    with pytest.raises(ValueError, match=r"expected shape \(None, 8, 8, 1\)"):
        model.predict(np.zeros((10, 8, 8, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="rank 4"):
        cf.Sequential([layers.Input((8,)), layers.Conv2D(2, 3)])


def test_layer_geometry_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2D 'big'.*\(None, 4, 4, 1\)"):
        cf.Sequential([layers.Input((4, 4, 1)), layers.Conv2D(2, 5, name="big")])
    with pytest.raises(ValueError, match="MaxPooling2D 'p'"):
        cf.Sequential([layers.Input((1, 1, 1)), layers.MaxPooling2D(2, name="p")])
    with pytest.raises(ValueError, match="kernel_size"):
        layers.Conv2D(2, 0)
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(-1, 3)
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(1, 3, padding="full")


def test_xy_length_mismatch(model):
    with pytest.raises(ValueError, match="different numbers of samples"):
        model.fit(X, Y[:9], verbose=0)


@pytest.mark.parametrize("labels,err,match", [
    (np.full(10, 3), ValueError, r"labels must be in \[0, 3\)"),
    (np.full(10, -1), ValueError, r"labels must be in \[0, 3\)"),
    (np.full(10, 0.5), ValueError, "integers"),
    (np.array(["a"] * 10), TypeError, "numeric"),
])
def test_bad_labels(model, labels, err, match):
    with pytest.raises(err, match=match):
        model.fit(X, labels, verbose=0)


def test_one_hot_with_sparse_loss_hints(model):
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        model.fit(X, cf.utils.to_categorical(Y, 3), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_in_data(model, bad):
    x = X.copy()
    x[3, 2, 2, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(x, Y, verbose=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(x, verbose=0)


def test_empty_arrays(model):
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 8, 8, 1), np.float32), np.zeros(0), verbose=0)


@pytest.mark.parametrize("bs", [0, -4, 2.5])
def test_bad_batch_size(model, bs):
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, Y, batch_size=bs, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(X, batch_size=bs, verbose=0)


def test_unknown_strings():
    with pytest.raises(ValueError, match="Unknown loss"):
        cf.Sequential([layers.Dense(1)]).compile("adam", loss="sparse_categorical_crossentropi")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        cf.Sequential([layers.Dense(1)]).compile("adamm", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="Unknown activation"):
        layers.Dense(3, activation="rellu")
    with pytest.raises(NotImplementedError, match="poisson"):
        cf.Sequential([layers.Dense(1)]).compile("adam", loss="poisson")


def test_unsupported_keras_arguments_raise_not_implemented():
    with pytest.raises(NotImplementedError, match="groups"):
        layers.Conv2D(2, 3, groups=2)
    with pytest.raises(NotImplementedError, match="channels_first"):
        layers.Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(NotImplementedError, match="kernel_regularizer"):
        layers.Dense(2, kernel_regularizer=lambda w: 0.0)  # no autodiff of a Python function
    with pytest.raises(NotImplementedError, match="use_ema"):
        cf.optimizers.Adam(use_ema=True)
    with pytest.raises(NotImplementedError, match="per-output weighted_metrics"):
        m = cf.Sequential([layers.Input((2,)), layers.Dense(2, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy",
                  weighted_metrics={"dense": ["accuracy"]})
    with pytest.raises(TypeError, match="unrecognized"):
        layers.Dense(2, not_an_arg=1)


def test_float64_and_non_contiguous_are_accepted(model):
    x64 = X.astype(np.float64)
    strided = np.asfortranarray(X)
    assert not strided.flags.c_contiguous
    ref = model.predict(X, verbose=0)
    np.testing.assert_array_equal(model.predict(x64, verbose=0), ref)
    np.testing.assert_array_equal(model.predict(strided, verbose=0), ref)
    model.fit(x64[:, ::1], Y.astype(np.float64), verbose=0)  # integral floats are labels


def test_fit_before_compile_and_set_weights_mismatch(model):
    m = cf.Sequential([layers.Input((2,)), layers.Dense(2)])
    with pytest.raises(RuntimeError, match="compile"):
        m.fit(np.zeros((2, 2)), np.zeros(2), verbose=0)
    with pytest.raises(ValueError, match=r"Layer 'dense.*shape \(2, 2\), got \(3, 2\)"):
        m.set_weights([np.zeros((3, 2)), np.zeros(2)])
    with pytest.raises(ValueError, match="weight arrays"):
        m.set_weights([np.zeros((2, 2))])
