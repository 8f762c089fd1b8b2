"""docs/unsupported.md is true: each of its groups' refusals is a NotImplementedError naming
what is refused (a sample from every section; the match is a name the message must hold)."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import keras
from cnnfast.keras import layers


def _model():
    return keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                             layers.Dense(3, activation="softmax")])


def _compiled():
    m = _model()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


class _MyLayer(keras.layers.Layer):
    def call(self, x):
        return x * 2


def _custom_layer():
    keras.Sequential([keras.Input((4,)), _MyLayer()])


def _x():
    return np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int64)


CASES = {
    # Models
    "several losses": (lambda: _model().compile(loss=["mse", "mse"]), "one loss per output"),
    "loss_weights": (lambda: _model().compile(loss="mse", loss_weights=[1.0]), "loss_weights"),
    "steps_per_execution": (lambda: _model().compile(loss="mse", steps_per_execution=2),
                            "steps_per_execution"),
    "user layer": (_custom_layer, "user-defined layers"),
    "float64": (lambda: layers.Dense(3, dtype="float64"), "float32"),
    "Input(tensor)": (lambda: keras.Input((3,), tensor=np.zeros((1, 3))), "tensor"),
    "summary args": (lambda: _model().summary(expand_nested=True), "expand_nested"),
    "clone recursive": (lambda: keras.models.clone_model(_model(), recursive=True), "recursive"),
    "shuffle batch": (lambda: _compiled().fit(*_x(), shuffle="batch", verbose=0), "shuffle"),
    "predict steps": (lambda: _compiled().predict(_x()[0], steps=1, verbose=0), "steps"),
    "other iterator": (lambda: _compiled().fit(iter([_x()]), verbose=0), "x must be"),
    # Layers
    "channels_first": (lambda: layers.Conv2D(2, 3, data_format="channels_first"),
                       "channels_first"),
    "causal": (lambda: layers.Conv2D(2, 3, padding="causal"), "causal"),
    "groups": (lambda: layers.Conv2D(2, 3, groups=2), "groups"),
    "kernel_constraint": (lambda: layers.Dense(2, kernel_constraint="non_neg"),
                          "kernel_constraint"),
    "depthwise regularizer": (lambda: layers.DepthwiseConv2D(3, depthwise_regularizer="l2"),
                              "depthwise_regularizer"),
    "separable activity": (lambda: layers.SeparableConv2D(2, 3, activity_regularizer="l2"),
                           "activity_regularizer"),
    "bn axis": (lambda: layers.BatchNormalization(axis=1)(keras.Input((4, 4, 2))), "axis"),
    "bn renorm": (lambda: layers.BatchNormalization(renorm=True), "renorm"),
    "pool activity": (lambda: layers.MaxPooling2D(activity_regularizer="l2"),
                      "activity_regularizer"),
    "leaky activity": (lambda: layers.LeakyReLU(activity_regularizer="l1"),
                       "activity_regularizer"),
    "prelu regularizer": (lambda: layers.PReLU(alpha_regularizer="l2"), "alpha_regularizer"),
    "softmax axes": (lambda: layers.Softmax(axis=(1, 2)), "several axes"),
    "noise_shape": (lambda: layers.Dropout(0.5, noise_shape=(1, 3)), "noise_shape"),
    "rescaling array": (lambda: layers.Rescaling([1.0, 2.0]), "per-channel"),
    "mish": (lambda: layers.Dense(2, activation="mish"), "mish"),
    "callable activation": (lambda: layers.Dense(2, activation=lambda x: x), "callable"),
    # Losses, metrics, regularizers, initializers, optimizers
    "callable loss": (lambda: _model().compile(loss=lambda t, p: p), "callable"),
    "reduction": (lambda: keras.losses.MeanSquaredError(reduction="sum"), "reduction"),
    "label_smoothing": (lambda: keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                        "label_smoothing"),
    "precision top_k": (lambda: keras.metrics.Precision(top_k=2), "top_k"),
    "function regularizer": (lambda: layers.Dense(2, kernel_regularizer=lambda w: 0.0),
                             "kernel_regularizer"),
    "use_ema": (lambda: keras.optimizers.Adam(use_ema=True), "use_ema"),
    # Data
    "cache file": (lambda: cf.data.Dataset.range(3).cache("f"), "cache"),
    "element_spec": (lambda: cf.data.Dataset.range(3).element_spec, "element_spec"),
    "flow_from_dataframe": (
        lambda: keras.preprocessing.image.ImageDataGenerator().flow_from_dataframe(None),
        "flow_from_dataframe"),
    "plot_model": (lambda: keras.utils.plot_model(_model()), "plot_model"),
    # Callbacks
    "RemoteMonitor": (lambda: keras.callbacks.RemoteMonitor(), "RemoteMonitor"),
    "SwapEMAWeights": (lambda: keras.callbacks.SwapEMAWeights(), "SwapEMAWeights"),
    "save_freq": (lambda: keras.callbacks.ModelCheckpoint("m.keras", save_freq=5), "save_freq"),
    "write_images": (lambda: keras.callbacks.TensorBoard(write_images=True), "write_images"),
    "backup steps": (lambda: _compiled().fit(*_x(), steps_per_epoch=1, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore("bk")]), "steps_per_epoch"),
    # Files and interop
    "export format": (lambda: _model().export("m", format="tf_saved_model"), "format"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_documented_refusal(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fn, name = CASES[case]
    with pytest.raises(NotImplementedError, match=name):
        fn()


def test_a_missing_name_is_an_attribute_or_import_error():
    with pytest.raises(AttributeError, match="LSTM"):
        keras.layers.LSTM  # noqa: B018
    with pytest.raises(ImportError, match="GRU"):
        from cnnfast.keras.layers import GRU  # noqa: F401


_DISTRIBUTED = """
import numpy as np
import cnnfast as cf
import cnnfast.distributed as hvd
from cnnfast import keras
hvd.init()
x, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
def model(**kw):
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=hvd.DistributedOptimizer(cf.optimizers.Adam()),
              loss="sparse_categorical_crossentropy", **kw)
    return m
cases = [(lambda: model(weighted_metrics=["accuracy"]), "weighted_metrics"),
         (lambda: model().fit(cf.data.Dataset.from_tensor_slices((x, y)).batch(2), verbose=0),
          "datasets"),
         (lambda: model().fit(x, y, sample_weight=np.ones(4), verbose=0), "sample_weight"),
         (lambda: model().fit(x, y, steps_per_epoch=1, verbose=0), "steps_per_epoch")]
for fn, name in cases:
    try:
        fn()
    except NotImplementedError as e:
        assert name in str(e), (name, e)
    else:
        raise AssertionError(name + " was accepted")
print("ok")
"""


def test_documented_distributed_refusals(tmp_path):
    """The distributed section, in a subprocess (hvd.init() starts MPI; one rank, no mpiexec)."""
    pytest.importorskip("mpi4py")
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(cf.__file__)))
    r = subprocess.run([sys.executable, "-c", _DISTRIBUTED], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_activity_regularizer_none_is_accepted_everywhere():
    """Keras passes activity_regularizer=None to any layer; only a set one is refused."""
    assert layers.MaxPooling2D(activity_regularizer=None).activity_regularizer is None
    assert layers.Dense(2, activity_regularizer="l2").activity_regularizer is not None
