"""`tensorflow.keras` module paths resolve under `cnnfast.keras` (the drop-in rule), and the
small backend/utils functions tutorials call behave as Keras's."""
import importlib

import numpy as np
import pytest

import cnnfast
import cnnfast as tf  # what a converted script does
from cnnfast import keras

PATHS = {  # module path -> names tutorials import from it
    "cnnfast.keras": ["Sequential", "Model", "Input", "layers", "models", "datasets",
                      "callbacks", "optimizers", "losses", "metrics", "utils", "backend"],
    "cnnfast.keras.models": ["Sequential", "Model", "load_model"],
    "cnnfast.keras.layers": ["Input", "InputLayer", "Conv2D", "MaxPooling2D", "MaxPool2D",
                             "AveragePooling2D", "Dense", "Flatten", "Dropout", "Activation",
                             "ReLU", "Softmax"],
    "cnnfast.keras.datasets": ["fashion_mnist", "mnist"],
    "cnnfast.keras.datasets.fashion_mnist": ["load_data"],
    "cnnfast.keras.datasets.mnist": ["load_data"],
    "cnnfast.keras.callbacks": ["Callback", "History", "EarlyStopping", "ModelCheckpoint",
                                "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN",
                                "CSVLogger", "LambdaCallback"],
    "cnnfast.keras.optimizers": ["Adam", "SGD", "RMSprop"],
    "cnnfast.keras.losses": ["SparseCategoricalCrossentropy", "CategoricalCrossentropy",
                             "sparse_categorical_crossentropy", "categorical_crossentropy"],
    "cnnfast.keras.metrics": ["SparseCategoricalAccuracy", "CategoricalAccuracy"],
    "cnnfast.keras.utils": ["to_categorical", "set_random_seed", "plot_model", "Progbar"],
    "cnnfast.keras.backend": ["epsilon", "image_data_format", "clear_session", "floatx"],
    "cnnfast.nn": ["relu", "softmax"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_module_paths_import(path):
    mod = importlib.import_module(path)
    missing = [n for n in PATHS[path] if not hasattr(mod, n)]
    assert not missing, f"{path} lacks {missing}"


def test_namespaces_are_the_implementations():
    assert tf.keras.Sequential is cnnfast.Sequential is keras.models.Sequential
    assert keras.models.load_model is cnnfast.models.load_model
    assert tf.keras.layers.Dense is cnnfast.layers.Dense
    # Progbar lives in utils/progbar.py (as in Keras); callbacks and utils re-export it
    assert keras.utils.Progbar is cnnfast.callbacks.Progbar is cnnfast.utils.progbar.Progbar


def test_backend_and_utils():
    assert keras.backend.epsilon() == 1e-7
    assert keras.backend.image_data_format() == "channels_last"
    assert keras.backend.floatx() == "float32"
    keras.layers.Dense(2)  # takes an automatic name
    keras.backend.clear_session()
    assert keras.layers.Dense(2).name == "dense"
    with pytest.raises(NotImplementedError, match="plot_model"):
        keras.utils.plot_model(None)
    np.testing.assert_array_equal(keras.utils.to_categorical([2, 0], 3),
                                  [[0, 0, 1], [1, 0, 0]])


def test_nn_functions_work_as_activations():
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    d = keras.layers.Dense(3, activation=tf.nn.softmax)
    assert d.activation == "softmax"
    assert keras.layers.Dense(3, activation=tf.nn.relu).activation == "relu"
    np.testing.assert_allclose(tf.nn.softmax(x).sum(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(tf.nn.relu(x), [[0.0, 0.0, 2.0]])
    with pytest.raises(NotImplementedError, match="arbitrary callable"):
        keras.layers.Dense(3, activation=lambda t: t)


def test_random_set_seed_reproduces_initial_weights():
    tf.random.set_seed(5)
    a = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()
    tf.random.set_seed(5)
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]).get_weights()
    np.testing.assert_array_equal(a[0], b[0])
