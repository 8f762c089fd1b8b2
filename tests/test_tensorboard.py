"""keras.callbacks.TensorBoard: event files that TensorBoard's own reader
(EventAccumulator) reads back, with Keras's tags and steps and the History's values."""
import json
import os

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import keras, layers
from cnnfast.layers.base import reset_names

pytest.importorskip("tensorboardX")
# TensorBoard's reader imports TensorFlow when it is installed: set what tests/tf_oracle.py
# needs set before that first import (it checks).
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
pea_mod = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")


def _read(path):
    ea = ea_mod.EventAccumulator(path, size_guidance={"scalars": 0, "histograms": 0,
                                                      "tensors": 0})
    ea.Reload()
    return ea


def _model(lib=cf):
    L = lib.layers
    return lib.Sequential([L.Input((6,)), L.Dense(5, activation="relu"),
                           L.Dense(3, activation="softmax")])


def _data(n=50):
    rng = np.random.default_rng(0)
    return rng.random((n, 6), dtype=np.float32), np.arange(n) % 3


def _scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def test_epoch_scalars_equal_the_history(tmp_path):
    reset_names()
    m = _model()
    sched = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    m.compile(keras.optimizers.SGD(sched), "sparse_categorical_crossentropy",
              metrics=["accuracy"])
    x, y = _data()
    h = m.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(tmp_path)]).history
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    tr, va = _read(str(tmp_path / "train")), _read(str(tmp_path / "validation"))
    assert sorted(tr.Tags()["scalars"]) == ["epoch_accuracy", "epoch_learning_rate",
                                            "epoch_loss"]
    assert sorted(va.Tags()["scalars"]) == ["epoch_accuracy", "epoch_loss",
                                            "evaluation_accuracy_vs_iterations",
                                            "evaluation_loss_vs_iterations"]
    f32 = lambda vs: [float(np.float32(v)) for v in vs]  # noqa: E731  (simple_value: float32)
    for key in ("loss", "accuracy"):
        assert _scalars(tr, f"epoch_{key}") == list(zip(range(3), f32(h[key])))
        assert _scalars(va, f"epoch_{key}") == list(zip(range(3), f32(h["val_" + key])))
        # after each epoch's validation, at the optimizer's step count (3 steps per epoch)
        assert _scalars(va, f"evaluation_{key}_vs_iterations") == \
            list(zip([3, 6, 9], f32(h["val_" + key])))
    # the schedule's value after each epoch (iterations 3, 6, 9), as Keras reads
    # optimizer.learning_rate
    want = [float(np.float32(0.01 * 0.5 ** (it / 2))) for it in (3, 6, 9)]
    assert [s for s, _ in _scalars(tr, "epoch_learning_rate")] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in _scalars(tr, "epoch_learning_rate")], want,
                               rtol=1e-6)
    # the conceptual graph TensorBoard's Graphs tab draws: the real converter reads it
    from tensorboard.plugins.graph import keras_util
    (ev,) = tr.Tensors("keras")
    graph = keras_util.keras_model_to_graph_def(json.loads(ev.tensor_proto.string_val[0]))
    assert [n.name for n in graph.node] == ["sequential/input_layer", "sequential/dense",
                                            "sequential/dense_1"]


@pytest.mark.parametrize("update_freq,steps", [("batch", [1, 2, 3, 4, 5, 6, 7, 8]),
                                               (3, [3, 6])])
def test_batch_scalars(tmp_path, update_freq, steps):
    m = _model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(64)
    batch_logs = []
    rec = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batch_logs.append(
        dict(logs)))
    m.fit(x, y, epochs=2, batch_size=16, verbose=0,
          callbacks=[keras.callbacks.TensorBoard(tmp_path, update_freq=update_freq,
                                                 write_graph=False), rec])
    tr = _read(str(tmp_path / "train"))
    assert "keras" not in tr.Tags()["tensors"]
    # Keras's record_if(step % N == 0) still holds at epoch end: with 4 batches per epoch
    # and N=3 the epoch summaries (batch 4, 8) are not written, as in Keras
    assert ("epoch_loss" in tr.Tags()["scalars"]) == (update_freq == "batch")
    for key in ("loss", "accuracy"):
        got = _scalars(tr, f"batch_{key}")
        assert [s for s, _ in got] == steps
        assert [v for _, v in got] == [float(np.float32(batch_logs[s - 1][key])) for s in steps]


def test_histograms(tmp_path):
    reset_names()
    m = _model()
    m.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(tmp_path, histogram_freq=2)])
    tr = _read(str(tmp_path / "train"))
    tags = ["sequential/dense/kernel/histogram", "sequential/dense/bias/histogram",
            "sequential/dense_1/kernel/histogram", "sequential/dense_1/bias/histogram"]
    assert sorted(tr.Tags()["histograms"]) == sorted(tags)
    h = tr.Histograms("sequential/dense_1/kernel/histogram")
    assert [e.step for e in h] == [0, 2]
    last = h[-1].histogram_value
    w = m.layers[1].kernel
    assert last.num == w.size and last.min == pytest.approx(w.min()) and \
        last.max == pytest.approx(w.max()) and last.sum == pytest.approx(w.sum(), rel=1e-5)


def test_steps_per_second_and_subclassed_model_has_no_graph(tmp_path):
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d = layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.d(x)

    m = Net()
    m.compile("adam", "sparse_categorical_crossentropy")
    x, y = _data()
    m.fit(x, y, epochs=2, verbose=0, callbacks=[
        keras.callbacks.TensorBoard(tmp_path, write_steps_per_second=True)])
    tr = _read(str(tmp_path / "train"))
    assert "epoch_steps_per_second" in tr.Tags()["scalars"]
    assert all(v > 0 for _, v in _scalars(tr, "epoch_steps_per_second"))
    assert tr.Tags()["tensors"] == []         # Keras writes the graph of Sequential/functional


@pytest.mark.parametrize("kw", [{"write_images": True}, {"profile_batch": 2},
                                {"embeddings_freq": 1}, {"embeddings_metadata": "m.tsv"}])
def test_unsupported_options_raise(kw):
    with pytest.raises(NotImplementedError, match=list(kw)[0]):
        keras.callbacks.TensorBoard("logs", **kw)


@pytest.mark.parametrize("kw,match", [({"update_freq": "step"}, "update_freq"),
                                      ({"update_freq": 0}, "update_freq"),
                                      ({"histogram_freq": -1}, "histogram_freq")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        keras.callbacks.TensorBoard("logs", **kw)


def _tags_steps(path):
    # migrates legacy scalars/histograms to tensors; no purging on a step going back (Keras
    # writes its batch and epoch summaries with different step counters into one file)
    ea = pea_mod.EventAccumulator(path, size_guidance={"tensors": 0},
                                  purge_orphaned_data=False)
    ea.Reload()
    return {t: [e.step for e in ea.Tensors(t)] for t in ea.Tags()["tensors"]}


@pytest.mark.tf
def test_same_tags_and_steps_as_keras(tmp_path, tf_keras):
    _, k = tf_keras
    x, y = _data(48)
    for lib, name in ((k, "keras"), (cf, "cnnfast")):
        if lib is k:
            k.backend.clear_session()
        else:
            reset_names()
        m = _model(lib)
        m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        m.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[lib.keras.callbacks.TensorBoard(str(tmp_path / name), update_freq=2,
                                                         histogram_freq=1)
                         if lib is cf else k.callbacks.TensorBoard(
                             str(tmp_path / name), update_freq=2, histogram_freq=1)])
    for sub in ("train", "validation"):
        theirs = _tags_steps(str(tmp_path / "keras" / sub))
        ours = _tags_steps(str(tmp_path / "cnnfast" / sub))
        assert ours == theirs, sub
