"""Callbacks: every callback driven side by side with keras.callbacks on the same scripted
metric sequences (stub models), the progress bar byte for byte under a fake clock, and
cnnfast-only checks through a real `fit` on tiny data."""
import csv
import math
import os
import re
import types
import warnings

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import callbacks as cbm
from cnnfast import layers
from cnnfast.layers.base import reset_names

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _fresh():
    reset_names()
    cf.utils.set_random_seed(1234)


# ---- stubs and drivers -------------------------------------------------------------------------
class Stub:
    """What the callbacks touch on a model: stop_training, weights, optimizer, save*."""

    def __init__(self, optimizer=None):
        self.stop_training = False
        self.w = [np.zeros(3, np.float32)]
        self.optimizer = optimizer
        self.history = None
        self.saved = []

    def get_weights(self):
        return [a.copy() for a in self.w]

    def set_weights(self, weights):
        self.w = [np.array(a) for a in weights]

    def save(self, filepath, overwrite=True):
        self.saved.append(("save", os.path.basename(filepath), overwrite))

    def save_weights(self, filepath, overwrite=True):
        self.saved.append(("save_weights", os.path.basename(filepath), overwrite))


def drive(cb, model, seq, capsys, monitor="val_loss", extra=None):
    """fit's epoch protocol with scripted logs; weights are the epoch index. Returns a
    transcript of everything observable."""
    cb.set_model(model)
    cb.set_params({"verbose": 0, "epochs": len(seq), "steps": 1})
    cb.on_train_begin({})
    seen = []
    logs = None
    for epoch, v in enumerate(seq):
        cb.on_epoch_begin(epoch, {})
        model.w = [np.full(3, epoch, np.float32)]
        logs = {} if v is None else {monitor: v}
        logs.update(extra or {})
        cb.on_epoch_end(epoch, logs)
        lr = model.optimizer.learning_rate if model.optimizer is not None else None
        seen.append((epoch, dict(logs), model.stop_training,
                     None if lr is None else float(np.float32(lr))))
        if model.stop_training:
            break
    cb.on_train_end(logs)
    out = capsys.readouterr().out
    return seen, [a.tolist() for a in model.w], out


def _same(a, b):
    """Equality that treats NaN as equal to NaN (nested lists/tuples/dicts)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


SEQS = {
    "down_then_flat": [1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
    "ties_and_dips": [0.5, 0.5, 0.4, 0.45, 0.4, 0.39, 0.5, 0.5, 0.38, 0.6, 0.7, 0.8],
    "delta_edge": [0.3, 0.2, 0.1, 0.0, -0.1, -0.1, -0.1, -0.1],  # 0.2+0.1 > 0.3 in floats
    "up": [0.1, 0.2, 0.3, 0.3, 0.31, 0.2, 0.1, 0.0, 0.0],
    "nan": [1.0, float("nan"), 0.5, 0.4, 0.4, 0.4, 0.4],
    "nan_first": [float("nan"), 0.5, 0.4, 0.3],
    "missing": [1.0, None, 0.5, None, 0.6, 0.7, 0.8],
}

ES_CONFIGS = [
    {},
    {"patience": 1},
    {"patience": 2, "restore_best_weights": True},
    {"patience": 2, "min_delta": 0.1},
    {"patience": 1, "min_delta": -0.1, "restore_best_weights": True},
    {"patience": 2, "mode": "max", "restore_best_weights": True},
    {"patience": 1, "baseline": 0.45},
    {"patience": 1, "baseline": 0.05, "mode": "max", "restore_best_weights": True},
    {"patience": 0, "start_from_epoch": 3, "restore_best_weights": True},
    {"patience": 2, "start_from_epoch": 2, "min_delta": 0.05, "verbose": 1},
    {"patience": 3, "verbose": 1, "restore_best_weights": True},
    {"patience": 2, "mode": "bogus"},
]


def _cfg_id(cfg):
    return ",".join(f"{k}={v}" for k, v in cfg.items()) or "default"


# ---- parity with keras.callbacks on scripted sequences -----------------------------------------
@pytest.mark.tf
@pytest.mark.parametrize("seq", sorted(SEQS))
@pytest.mark.parametrize("cfg", ES_CONFIGS, ids=lambda c: _cfg_id(c))
def test_early_stopping_matches_keras(tf_keras, capsys, seq, cfg):
    _, keras = tf_keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ks = keras.callbacks.EarlyStopping(**cfg)
        cs = cbm.EarlyStopping(**cfg)
        want = drive(ks, Stub(), SEQS[seq], capsys)
        got = drive(cs, Stub(), SEQS[seq], capsys)
    assert _same(got, want)
    for attr in ("wait", "stopped_epoch", "best", "best_epoch"):
        assert _same(getattr(cs, attr), getattr(ks, attr)), attr


@pytest.mark.tf
@pytest.mark.parametrize("monitor", ["val_loss", "loss", "val_accuracy", "my_loss"])
def test_monitor_auto_mode_matches_keras(tf_keras, capsys, monitor):
    """'auto' is min only for (val_)loss; without a compiled metric of known direction it is
    a ValueError at the first on_epoch_end (not at construction)."""
    _, keras = tf_keras
    for name in ("EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint"):
        args = ("m.keras",) if name == "ModelCheckpoint" else ()
        kcb = getattr(keras.callbacks, name)(*args, monitor=monitor)
        ccb = getattr(cbm, name)(*args, monitor=monitor)
        outcomes = []
        for cb, opt in ((kcb, keras.optimizers.SGD(0.1)), (ccb, cf.optimizers.SGD(0.1))):
            m = Stub(opt)
            m.save = lambda *a, **k: None
            try:
                drive(cb, m, [1.0, 0.5], capsys, monitor=monitor)
                outcomes.append("ok")
            except ValueError as e:
                outcomes.append(type(e).__name__)
        assert outcomes[0] == outcomes[1] == ("ok" if monitor in ("val_loss", "loss")
                                               else "ValueError")


def test_auto_mode_uses_the_compiled_accuracy_direction(capsys):
    m = Stub()
    m._metrics = [cf.metrics.get("accuracy")]
    es = cbm.EarlyStopping(monitor="val_accuracy", patience=0)
    seen, _, _ = drive(es, m, [0.5, 0.6, 0.55, 0.7], capsys, monitor="val_accuracy")
    assert len(seen) == 3 and es.best == 0.6


RLR_CONFIGS = [
    {"patience": 0},
    {"patience": 1, "factor": 0.5},
    {"patience": 1, "factor": 0.5, "cooldown": 2, "verbose": 1},
    {"patience": 0, "factor": 0.1, "min_lr": 1e-3, "verbose": 1},
    {"patience": 2, "min_delta": 0.1},
    {"patience": 1, "min_delta": 0.0, "mode": "max", "cooldown": 1},
    {"patience": 0, "factor": 0.3, "min_delta": 0.05, "cooldown": 1, "min_lr": 0.004},
]


@pytest.mark.tf
@pytest.mark.parametrize("seq", ["down_then_flat", "ties_and_dips", "delta_edge", "up", "nan",
                                 "missing"])
@pytest.mark.parametrize("cfg", RLR_CONFIGS, ids=lambda c: _cfg_id(c))
def test_reduce_lr_on_plateau_matches_keras(tf_keras, capsys, seq, cfg):
    """lr sequence (float32 like Keras's variable), the learning_rate log key, counters and
    the verbose messages."""
    _, keras = tf_keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kr = keras.callbacks.ReduceLROnPlateau(**cfg)
        cr = cbm.ReduceLROnPlateau(**cfg)
        want = drive(kr, Stub(keras.optimizers.SGD(0.1)), SEQS[seq], capsys)
        got = drive(cr, Stub(cf.optimizers.SGD(0.1)), SEQS[seq], capsys)
    assert _same(got, want)
    for attr in ("wait", "cooldown_counter", "best"):
        assert _same(getattr(cr, attr), getattr(kr, attr)), attr


def test_reduce_lr_rejects_factor_ge_1():
    with pytest.raises(ValueError, match="factor >= 1.0"):
        cbm.ReduceLROnPlateau(factor=1.0)


SCHEDULES = {
    "two_args": lambda epoch, lr: lr * 0.5 if epoch % 2 else lr,
    "one_arg": lambda epoch: 0.1 / (epoch + 1),
    "np_float32": lambda epoch, lr: np.float32(lr * 0.9),
    "np_float64": lambda epoch: np.float64(0.01 * epoch),
    "int_result": lambda epoch: 1,
}


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("verbose", [0, 1])
def test_learning_rate_scheduler_matches_keras(tf_keras, capsys, name, verbose):
    _, keras = tf_keras
    res = []
    for cb, opt in ((keras.callbacks.LearningRateScheduler(SCHEDULES[name], verbose),
                     keras.optimizers.SGD(0.1)),
                    (cbm.LearningRateScheduler(SCHEDULES[name], verbose),
                     cf.optimizers.SGD(0.1))):
        try:
            res.append(drive(cb, Stub(opt), [1.0] * 5, capsys))
        except ValueError as e:
            res.append(("ValueError", str(e)))
    assert _same(res[1], res[0])


@pytest.mark.tf
@pytest.mark.parametrize("losses", [[1.0, 0.5, float("nan"), 0.1], [1.0, float("inf")],
                                    [1.0, 0.9], [float("-inf")]])
@pytest.mark.parametrize("raise_error", [False, True])
def test_terminate_on_nan_matches_keras(tf_keras, capsys, losses, raise_error):
    _, keras = tf_keras
    res = []
    for cb in (keras.callbacks.TerminateOnNaN(raise_error), cbm.TerminateOnNaN(raise_error)):
        m = Stub()
        cb.set_model(m)
        trace = []
        try:
            for b, v in enumerate(losses):
                cb.on_train_batch_end(b, {"loss": v})
                trace.append(m.stop_training)
        except RuntimeError as e:
            trace.append(str(e))
        res.append((trace, capsys.readouterr().out))
    assert res[1] == res[0]


CSV_CASES = {
    "val": [{"loss": 0.5, "accuracy": 0.75, "val_loss": 0.625, "val_accuracy": 0.5}] * 3,
    "no_val": [{"loss": 1 / 3, "accuracy": 0.1}, {"loss": 0.25, "accuracy": 0.2}],
    "missing_and_lists": [{"loss": 0.5, "lr": 0.01}, {"loss": 0.4},
                          {"loss": 0.3, "lr": np.array([1.5, 2.0])}],
    "empty": [{}, {}],
    "lr_added": [{"loss": 0.5, "val_loss": 0.6, "learning_rate": 0.0010000000474974513}],
}


@pytest.mark.tf
@pytest.mark.parametrize("case", sorted(CSV_CASES))
@pytest.mark.parametrize("sep,append", [(",", False), (";", False), (",", True)])
def test_csv_logger_matches_keras(tf_keras, tmp_path, case, sep, append):
    _, keras = tf_keras
    texts = []
    for cls, d in ((keras.callbacks.CSVLogger, "k"), (cbm.CSVLogger, "c")):
        path = tmp_path / f"{d}.csv"
        for _ in range(2 if append else 1):  # append: a second training run continues
            cb = cls(str(path), separator=sep, append=append)
            cb.set_model(Stub())
            cb.on_train_begin({})
            for epoch, logs in enumerate(CSV_CASES[case]):
                cb.on_epoch_end(epoch, dict(logs))
            cb.on_train_end({})
        texts.append(path.read_text())
    assert texts[1] == texts[0]


@pytest.mark.tf
def test_lambda_callback_matches_keras(tf_keras):
    _, keras = tf_keras
    res = []
    for cls in (keras.callbacks.LambdaCallback, cbm.LambdaCallback):
        calls = []
        cb = cls(on_epoch_begin=lambda e, logs, calls=calls: calls.append(("eb", e, logs)),
                 on_epoch_end=lambda e, logs, calls=calls: calls.append(("ee", e, logs)),
                 on_train_begin=lambda logs, calls=calls: calls.append(("tb", logs)),
                 on_train_end=lambda logs, calls=calls: calls.append(("te", logs)),
                 on_train_batch_begin=lambda b, logs, calls=calls: calls.append(("bb", b, logs)),
                 on_train_batch_end=lambda b, logs, calls=calls: calls.append(("be", b, logs)),
                 on_test_begin=lambda logs, calls=calls: calls.append(("testb", logs)))
        cb.set_model(Stub())
        cb.on_train_begin({})
        cb.on_epoch_begin(0, {})
        cb.on_train_batch_begin(0, logs={})
        cb.on_train_batch_end(0, logs={"loss": 1.0})
        cb.on_test_begin({})
        cb.on_test_end({})  # not given: the default no-op
        cb.on_epoch_end(0, {"loss": 1.0})
        cb.on_train_end({"loss": 1.0})
        res.append(calls)
    assert res[1] == res[0]


CKPT_CASES = [
    ({"filepath": "m-{epoch:02d}-{val_loss:.2f}.keras"}, "val_loss"),
    ({"filepath": "best.keras", "save_best_only": True, "verbose": 1}, "val_loss"),
    ({"filepath": "w{epoch}.weights.h5", "save_weights_only": True, "save_best_only": True,
      "mode": "max", "monitor": "val_acc", "verbose": 1}, "val_acc"),
    ({"filepath": "best.keras", "save_best_only": True, "initial_value_threshold": 0.45,
      "verbose": 1}, "val_loss"),
    ({"filepath": "best.h5", "save_best_only": True, "monitor": "missing", "mode": "min"},
     "val_loss"),
]


@pytest.mark.tf
@pytest.mark.parametrize("seq", ["ties_and_dips", "up", "nan_first"])
@pytest.mark.parametrize("case", range(len(CKPT_CASES)))
def test_model_checkpoint_matches_keras(tf_keras, tmp_path, capsys, seq, case):
    """Which epochs save, under which formatted name, through save or save_weights."""
    _, keras = tf_keras
    kw, monitor = CKPT_CASES[case]
    res = []
    for cls, d in ((keras.callbacks.ModelCheckpoint, "k"), (cbm.ModelCheckpoint, "c")):
        kw2 = dict(kw, filepath=str(tmp_path / d / kw["filepath"]))
        m = Stub()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seen, _, out = drive(cls(**kw2), m, SEQS[seq], capsys, monitor=monitor)
        res.append((m.saved, out.replace(str(tmp_path / d), "<dir>")))
    assert res[1] == res[0]


@pytest.mark.tf
@pytest.mark.parametrize("kw", [{"filepath": "m.weights.h5"}, {"filepath": "m.h5"},
                                {"filepath": "m.npz"},
                                {"filepath": "m.keras", "save_weights_only": True},
                                {"filepath": "m.keras", "save_freq": "batch"}])
def test_model_checkpoint_argument_checks_match_keras(tf_keras, kw):
    _, keras = tf_keras
    outcomes = []
    for cls in (keras.callbacks.ModelCheckpoint, cbm.ModelCheckpoint):
        try:
            cls(**kw)
            outcomes.append("ok")
        except ValueError:
            outcomes.append("ValueError")
    assert outcomes[1] == outcomes[0]


def test_model_checkpoint_batch_save_freq_is_not_implemented():
    with pytest.raises(NotImplementedError, match="save_freq"):
        cbm.ModelCheckpoint("m.keras", save_freq=100)


def test_model_checkpoint_leaves_no_partial_file_when_save_raises(tmp_path):
    class Failing(Stub):
        def save(self, filepath, overwrite=True):
            with open(filepath, "wb") as f:
                f.write(b"partial")
            raise OSError("disk full")

    cb = cbm.ModelCheckpoint(str(tmp_path / "sub" / "m-{epoch}.keras"))
    cb.set_model(Failing())
    cb.on_train_begin({})
    with pytest.raises(OSError, match="disk full"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    assert os.listdir(tmp_path / "sub") == []
    with pytest.raises(KeyError, match="Failed to format"):
        cbm.ModelCheckpoint(str(tmp_path / "{nope}.keras")).on_epoch_end(0, {"val_loss": 1.0})


@pytest.mark.parametrize("name", ["RemoteMonitor", "SwapEMAWeights"])
def test_unsupported_callbacks_raise(name):   # TensorBoard: tests/test_tensorboard.py
    with pytest.raises(NotImplementedError, match=name):
        getattr(cbm, name)()


def test_callback_base_aliases_and_attributes():
    calls = []

    class C(cbm.Callback):
        def on_batch_begin(self, batch, logs=None):
            calls.append(("b", batch))

        def on_batch_end(self, batch, logs=None):
            calls.append(("e", batch, logs))

    c = C()
    assert c.model is None and c.params is None
    c.on_train_batch_begin(3)
    c.on_train_batch_end(3, {"loss": 1.0})
    assert calls == [("b", 3), ("e", 3, {"loss": 1.0})]
    m = Stub()
    cbl = cbm.CallbackList([c], add_history=True, model=m, verbose=0, epochs=2, steps=5)
    assert c.model is m and c.params == {"verbose": 0, "epochs": 2, "steps": 5}
    assert isinstance(cbl.callbacks[-1], cbm.History) and m.history is cbl.callbacks[-1]
    with pytest.raises(TypeError):
        cbm.CallbackList([object()])


# ---- the progress bar, byte for byte under a fake clock -----------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def time(self):
        return self.t


def _run_progbar(Progbar, module, capsys, monkeypatch, script, **kw):
    clock = FakeClock()
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=clock.time))
    bar = Progbar(**kw)
    for dt, current, values, finalize in script:
        clock.t += dt
        bar.update(current, values, finalize=finalize)
    return capsys.readouterr().out


PB_SCRIPTS = {
    "small_values": [(0.5, 1, [("loss", 1.2345e-4), ("accuracy", 0.0)], None),
                     (0.01, 2, [("loss", -0.5), ("accuracy", 0.001)], None),
                     (0.2, 3, [("loss", 2.5e-3), ("accuracy", -2e-4)], None),
                     (0.3, 10, [("loss", 123.456), ("accuracy", 0.9999)], None)],
    "slow_eta": [(2.0, 1, [("loss", 0.7)], None), (80.0, 2, [("loss", 0.6)], None),
                 (5000.0, 3, [("loss", 0.5)], None), (3.0, 10, [("loss", 0.4)], True)],
    "fast": [(0.001, i, [("loss", 1.0 / i)], None) for i in range(1, 11)],
    "width_shrinks": [(0.06, 1, [("loss", 1.5), ("a_long_metric_name", 0.25)], None),
                      (0.06, 2, [("loss", 1.0)], None), (0.06, 10, [], None)],
}


@pytest.mark.tf
@pytest.mark.parametrize("script", sorted(PB_SCRIPTS))
@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("target", [10, 1000, None])
@pytest.mark.parametrize("mode", ["stateless", "all_stateful"])
def test_progbar_output_matches_keras_bytes(tf_keras, capsys, monkeypatch, script, verbose,
                                            target, mode):
    _, keras = tf_keras
    import keras.src.utils.progbar as kp

    kw = {"target": target, "verbose": verbose}
    if mode == "all_stateful":
        kw["stateless_metrics"] = set()
    steps = PB_SCRIPTS[script]
    want = _run_progbar(kp.Progbar, kp, capsys, monkeypatch, steps, **kw)
    got = _run_progbar(cbm.Progbar, cf.utils.progbar, capsys, monkeypatch, steps, **kw)
    assert got == want


# ---- cnnfast-only: real fit on tiny data -------------------------------------------------------
def toy_data(n=64, seed=0, hw=8, classes=3):
    r = np.random.default_rng(seed)
    x = r.random((n, hw, hw, 1), dtype=np.float32) * 0.2
    y = r.integers(0, classes, n)
    band = hw // classes
    for i, c in enumerate(y):
        x[i, :, c * band:(c + 1) * band, 0] += 0.8
    return x, y.astype(np.uint8)


def small_cnn(classes=3, hw=8, optimizer="adam"):
    m = cf.Sequential([
        layers.Input((hw, hw, 1)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ])
    m.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class Scripted(cbm.Callback):
    """Overwrites val_loss with a script (put it first in callbacks=[...])."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


class Snapshots(cbm.Callback):
    def __init__(self):
        super().__init__()
        self.w = []

    def on_epoch_end(self, epoch, logs=None):
        self.w.append(self.model.get_weights())


def test_fit_early_stopping_restores_best_weights(capsys):
    x, y = toy_data()
    m = small_cnn()
    snaps = Snapshots()
    es = cbm.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    h = m.fit(x, y, epochs=10, batch_size=16, verbose=0,
              callbacks=[Scripted([1.0, 0.7, 0.8, 0.71, 0.9, 0.1]), snaps, es])
    assert len(h.history["loss"]) == 4 and h.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.7
    for a, b in zip(m.get_weights(), snaps.w[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(snaps.w[1][0], snaps.w[3][0])
    assert capsys.readouterr().out == ("Epoch 4: early stopping\nRestoring model weights from "
                                       "the end of the best epoch: 2.\n")


def test_fit_reduce_lr_on_plateau_changes_optimizer_lr():
    x, y = toy_data()
    m = small_cnn(optimizer=cf.optimizers.Adam(0.01))
    rl = cbm.ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.002)
    h = m.fit(x, y, epochs=6, batch_size=32, verbose=0, validation_split=0.25,
              callbacks=[Scripted([1.0] * 6), rl])
    f32 = lambda v: float(np.float32(v))  # noqa: E731
    # patience 1 on a flat monitor: a cut every epoch from epoch 1 (the logged rate is the one
    # used during the epoch), clipped at min_lr, then no cut once lr == min_lr.
    assert h.history["learning_rate"] == [f32(0.01), f32(0.01), f32(0.005), f32(0.0025),
                                          f32(0.002), f32(0.002)]
    assert m.optimizer.learning_rate == 0.002


def test_fit_learning_rate_scheduler_drives_the_optimizer():
    x, y = toy_data()
    m = small_cnn(optimizer=cf.optimizers.SGD(0.1))
    snaps = Snapshots()
    sched = cbm.LearningRateScheduler(lambda epoch, lr: 0.0 if epoch >= 1 else 0.05)
    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[sched, snaps])
    assert h.history["learning_rate"] == [float(np.float32(0.05)), 0.0, 0.0]
    for a, b in zip(snaps.w[0], snaps.w[2]):  # lr 0 after epoch 0: weights frozen
        np.testing.assert_array_equal(a, b)


def test_fit_terminate_on_nan_stops_after_the_first_bad_batch(capsys):
    x, y = toy_data()
    m = small_cnn(optimizer=cf.optimizers.SGD(1e30))
    seen = []
    h = m.fit(x, y, epochs=5, batch_size=8, verbose=0,
              callbacks=[cbm.TerminateOnNaN(),
                         cbm.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(
                             logs["loss"]))])
    bad = next(i for i, v in enumerate(seen) if not np.isfinite(v))
    assert len(seen) == bad + 1 and len(h.history["loss"]) == 1
    assert capsys.readouterr().out == f"Batch {bad}: Invalid loss, terminating training\n"


def test_fit_csv_logger_writes_history(tmp_path):
    x, y = toy_data()
    m = small_cnn()
    path = tmp_path / "log.csv"
    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_split=0.25,
              callbacks=[cbm.CSVLogger(str(path))])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    for epoch, row in enumerate(rows[1:]):
        assert row == [str(epoch)] + [repr(h.history[k][epoch]) for k in rows[0][1:]]


def test_fit_calls_every_hook_in_keras_order():
    x, y = toy_data(40)
    m = small_cnn()
    calls = []
    hooks = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
             "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
             "on_predict_batch_begin", "on_predict_batch_end"]
    cb = cbm.LambdaCallback(**{h: (lambda h: lambda *a, **k: calls.append(h))(h)  # noqa: B023
                               for h in hooks
                               if h not in ("on_train_batch_begin", "on_train_batch_end")})
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25, callbacks=[cb])
    epoch = (["on_epoch_begin"] + ["on_test_begin"] + ["on_test_batch_begin",
             "on_test_batch_end"] + ["on_test_end", "on_epoch_end"])
    assert calls == ["on_train_begin"] + epoch * 2 + ["on_train_end"]
    calls.clear()
    ev = m.evaluate(x, y, batch_size=32, verbose=0, callbacks=[cb])
    assert calls == ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + \
        ["on_test_end"] and len(ev) == 2
    calls.clear()
    outs = []
    cb2 = cbm.LambdaCallback(on_predict_batch_end=lambda b, logs: outs.append(logs["outputs"]))
    p = m.predict(x, batch_size=32, verbose=0, callbacks=[cb, cb2])
    assert calls == ["on_predict_begin"] + ["on_predict_batch_begin",
                                            "on_predict_batch_end"] * 2 + ["on_predict_end"]
    np.testing.assert_array_equal(np.concatenate(outs), p)


def test_fit_batch_logs_are_sorted_python_floats_and_train_end_gets_epoch_logs():
    x, y = toy_data(32)
    m = small_cnn()
    got = {}
    cb = cbm.LambdaCallback(
        on_train_batch_end=lambda b, logs: got.setdefault("batch", logs),
        on_train_end=lambda logs: got.setdefault("end", logs))
    h = m.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.5, callbacks=[cb])
    assert list(got["batch"]) == ["accuracy", "loss"]
    assert all(type(v) is float for v in got["batch"].values())
    assert got["end"] == {k: v[-1] for k, v in h.history.items()}


def test_fit_stop_training_from_a_batch_hook():
    x, y = toy_data(64)
    m = small_cnn()

    def stop(b, logs):
        if b == 1:
            m.stop_training = True

    h = m.fit(x, y, epochs=3, batch_size=16, verbose=0,
              callbacks=[cbm.LambdaCallback(on_train_batch_end=stop)])
    assert len(h.history["loss"]) == 1


# ---- progress output through fit/evaluate/predict -----------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_V2_LINE = re.compile(r"^(\s*\d+)/(\d+) - \d+s - \d+(s|ms|us)/step"
                      r"((?: - \w+: -?\d\.\d{4}(?:e[-+]\d+)?| - \w+: -?\d+\.\d{4})*)$")


def test_verbose_0_is_silent(capsys):
    x, y = toy_data(32)
    m = small_cnn()
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    m.evaluate(x, y, verbose=0)
    m.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_2_one_line_per_epoch(capsys):
    x, y = toy_data(48)
    m = small_cnn()
    m.fit(x, y, epochs=2, batch_size=16, verbose=2, validation_split=0.25,
          callbacks=[cbm.ReduceLROnPlateau()])
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    for line in (lines[1], lines[3]):
        mt = _V2_LINE.match(line)
        assert mt, repr(line)
        assert mt.group(1) == "3" and mt.group(2) == "3"
        keys = re.findall(r" - (\w+): ", mt.group(4))
        # sorted metrics, then what the callbacks added (Keras's ProgbarLogger runs last)
        assert keys == ["accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"]
    m.evaluate(x, y, verbose=2)
    m.predict(x, verbose=2)
    out = capsys.readouterr().out.split("\n")
    assert _V2_LINE.match(out[0]) and re.findall(r" - (\w+): ", out[0]) == ["accuracy", "loss"]
    assert re.fullmatch(r"2/2 - \d+s - \d+(s|ms|us)/step", out[1]) and out[2] == ""


def test_verbose_1_bar_and_single_epoch_has_no_header(capsys):
    x, y = toy_data(48)
    m = small_cnn()
    m.fit(x, y, epochs=1, batch_size=16, verbose="auto")
    out = capsys.readouterr().out
    assert not out.startswith("Epoch") and out.endswith("\n") and out.startswith("\r")
    final = _ANSI.sub("", out.rsplit("\r", 1)[1])
    # Trailing spaces: like Keras's Progbar, a line shorter than the previous update (e.g.
    # "84us/step" after "1ms/step") is padded with spaces to overwrite it.
    assert re.fullmatch(r"3/3 ━{20} \d+s \d+(s|ms|us)/step - accuracy: \d\.\d{4} - "
                        r"loss: \d\.\d{4} *\n", final), repr(final)
    assert "\x1b[1m3/3\x1b[0m \x1b[32m" + "━" * 20 + "\x1b[0m\x1b[37m\x1b[0m \x1b[1m" in out
    m.fit(x, y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/2\n\r") and "\nEpoch 2/2\n\r" in out
