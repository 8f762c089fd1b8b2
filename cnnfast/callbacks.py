"""Callbacks with Keras 3 semantics (ported from keras/src/callbacks, Keras 3.15).

Callback, CallbackList, History, ProgbarLogger, EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger, LambdaCallback.
BackupAndRestore (an exact resume, docs/resume.md), TensorBoard (event files through
tensorboardX, an optional extra). RemoteMonitor and SwapEMAWeights raise NotImplementedError.
ProgbarLogger draws with cnnfast.utils.progbar.Progbar (importable from here as before).

Behaviour worth knowing (all as Keras does it):
* CallbackList hands every callback the same fresh logs dict per hook call, with keys sorted
  and values converted to Python floats; a callback that adds keys (ReduceLROnPlateau and
  LearningRateScheduler add `learning_rate`) makes them visible to the callbacks after it,
  which includes History and the ProgbarLogger (Keras appends both after the user's list).
* The MonitorCallbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau) decide the mode at
  the first on_epoch_end: `mode='auto'` means min for `loss`/`val_loss`, max for a compiled
  metric whose direction is up (accuracy), and a ValueError otherwise. An improvement is
  `monitor_op(current - min_delta_signed, best)`: strict, with min_delta subtracted (min mode)
  or added (max mode).
"""
from __future__ import annotations

import collections.abc
import csv
import io
import json
import os
import struct
import time
import warnings
import zlib

import numpy as np

from .metrics import Metric
from .optimizers import applied_learning_rate
from .utils.io_utils import print_msg as _print_msg
from .utils.progbar import Progbar


def _pythonify_logs(logs):
    """Keras's python_utils.pythonify_logs: a new dict, keys sorted (nested dicts flattened),
    values converted with float() where that works."""
    result = {}
    if not logs:
        return result
    for key, value in sorted(logs.items()):
        if isinstance(value, dict):
            result.update(_pythonify_logs(value))
        else:
            try:
                value = float(value)
            except Exception:  # noqa: BLE001 -- Keras keeps anything float() rejects as-is
                pass
            result[key] = value
    return result


class Callback:
    """Base class: override any hook. `self.model` and `self.params` are set by the
    CallbackList that fit/evaluate/predict build (params: verbose, epochs, steps)."""

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model):
        self._model = model

    def on_batch_begin(self, batch, logs=None):
        """A backwards-compatibility alias for `on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """A backwards-compatibility alias for `on_train_batch_end`."""

    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass
    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass


class CallbackList(Callback):
    """Calls the same hook on every callback, in order (Keras's CallbackList, synchronous).

    `CallbackList(callbacks, add_history=False, add_progbar=False, model=None, **params)`:
    History / ProgbarLogger are appended (in that order) unless the list already has one."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        self.callbacks = list(callbacks) if callbacks else []
        for cb in self.callbacks:
            if not (hasattr(cb, "set_model") and hasattr(cb, "on_epoch_end")):
                raise TypeError(f"callbacks must be keras Callback instances, got {cb!r}")
        self._progbar = None
        self._history = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                self._progbar = cb
            elif isinstance(cb, History):
                self._history = cb
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model):
        if not model:
            return
        super().set_model(model)
        if self._history:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def append(self, callback):
        self.callbacks.append(callback)

    def _call(self, hook, logs):
        logs = _pythonify_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(logs)

    def _call_batch(self, hook, batch, logs):
        logs = _pythonify_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        logs = _pythonify_logs(logs)
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = _pythonify_logs(logs)
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch, logs=None): self._call_batch("on_batch_begin", batch, logs)
    def on_batch_end(self, batch, logs=None): self._call_batch("on_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call_batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call_batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call_batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)


class History(Callback):
    """Records the epoch logs: `history.history['loss']` etc.; `history.epoch`. Like Keras,
    `history` keeps accumulating if the same History is used for several fit calls."""

    def __init__(self):
        super().__init__()
        self.history = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


# ---- progress bar ------------------------------------------------------------------------------
class ProgbarLogger(Callback):
    """Prints `Epoch i/N` (only when N > 1) and a Progbar per epoch; fit adds it (last, after
    History) when verbose != 0. Validation inside fit is silent; evaluate/predict get a bar."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params["verbose"]
        if verbose == "auto":
            verbose = 1
        self.verbose = verbose
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)  # don't show the predictions

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())

    def _update_progbar(self, batch, logs=None):
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize_progbar(self, logs):
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


# ---- monitored callbacks -----------------------------------------------------------------------
class MonitorCallback(Callback):
    """Base of the callbacks that watch one logged quantity (Keras's MonitorCallback)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto "
                          "mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor.removeprefix("val_")
            if name == "loss":
                self.monitor_op = np.less
            model = self.model
            compiled = (getattr(model, "_metrics", None) or []) + \
                (getattr(model, "_weighted_metrics", None) or [])
            # each metric under its name in the logs (weighted_accuracy, accuracy_1, ...)
            names = getattr(model, "_metric_names", None) or \
                [getattr(m, "name", None) for m in compiled]
            for m, log_name in zip(compiled, names):
                if log_name == name and isinstance(m, Metric):
                    # Keras's metric._direction: accuracies, precision, recall go up
                    self.monitor_op = np.greater if m.direction == "up" else np.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{type(self).__name__} callback received monitor={self.monitor}, but "
                    "Keras isn't able to automatically determine whether that metric should "
                    "be maximized or minimized. Pass `mode='max'` in order to monitor based "
                    "on the highest metric value, or pass `mode='min'` in order to use the "
                    "lowest value.")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


class EarlyStopping(MonitorCallback):
    """Stop training when `monitor` stops improving (docs/keras_semantics.md#earlystopping):
    strict improvement by more than min_delta, patience counted in epochs, never stops at epoch
    0, restores the best weights at train end (even without an early stop) when asked."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print_msg("Restoring model weights from the end of the best epoch: "
                           f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}",
                          stacklevel=2)
        return value


class ModelCheckpoint(MonitorCallback):
    """Save the model (`model.save`) or its weights (`model.save_weights`) after every epoch,
    or only on improvement of `monitor` with save_best_only. `filepath` is formatted with
    `epoch` (1-based) and the epoch logs: 'ckpt-{epoch:02d}-{val_loss:.2f}.keras'.

    Keras rules: full-model paths end in `.keras` (or `.h5`), weights paths in `.weights.h5`;
    `best` starts at `initial_value_threshold` and is not reset between fit calls; a missing
    monitor with save_best_only warns and saves. If the save raises, a file it created at
    `filepath` is removed before the error propagates (a file that existed before is left to
    the saver's atomic replace). Only save_freq='epoch' is supported."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        if save_freq != "epoch":
            if isinstance(save_freq, int):
                raise NotImplementedError(
                    f"ModelCheckpoint: save_freq={save_freq} (saving every N batches) is not "
                    "supported by cnnfast; use save_freq='epoch'")
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are "
                             "'epoch' or integer values")
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the "
                                 "filepath provided must end in `.weights.h5` (Keras weights "
                                 f"format). Received: filepath={self.filepath}")
        elif not any(self.filepath.endswith(ext) for ext in (".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). "
                             f"Received: filepath={self.filepath}")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=2)
            return True
        if isinstance(current, np.ndarray) and len(current.shape) > 0:
            warnings.warn("Can save best model only when `monitor` is a scalar value. "
                          f"Received: {current}. Falling back to `save_best_only=False`.",
                          stacklevel=2)
            return True
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to "
                           f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        try:
            if self._should_save_model(epoch, batch, logs, filepath):
                dirname = os.path.dirname(filepath)
                if dirname and not os.path.exists(dirname):
                    os.makedirs(dirname, exist_ok=True)
                existed = os.path.lexists(filepath)
                try:
                    if self.save_weights_only:
                        self.model.save_weights(filepath, overwrite=True)
                    else:
                        self.model.save(filepath, overwrite=True)
                except BaseException:
                    if not existed and os.path.isfile(filepath):
                        os.remove(filepath)
                    raise
                if self.verbose > 0:
                    _print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")
        except IsADirectoryError:
            raise OSError("Please specify a non-directory filepath for ModelCheckpoint. "
                          f"Filepath used is an existing directory: {filepath}") from None
        except OSError as e:
            if e.args and "is a directory" in str(e.args[0]).lower():
                raise OSError("Please specify a non-directory filepath for ModelCheckpoint. "
                              f"Filepath used is an existing directory: {filepath}") from e
            raise

    def _get_file_path(self, epoch, batch, logs):
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None


def _read_lr(optimizer):
    # Keras's learning rate is a float32 variable: read it back as an update applies it.
    return applied_learning_rate(optimizer)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the optimizer's learning rate by `factor` after `patience` epochs without
    improvement, then wait `cooldown` epochs; never below `min_lr`. Adds `learning_rate` (the
    rate used during the epoch) to the epoch logs. Improvement is the MonitorCallback test
    with min_delta=1e-4 by default (Keras 3 starts from best=None, not inf)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _reduce_optimizer_lr(self, optimizer, epoch, name=""):
        old_lr = _read_lr(optimizer)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                name_str = f" {name}" if name else ""
                _print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{name_str} "
                           f"learning rate to {new_lr}.")
            return True
        return False

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}  # as Keras: an empty dict is replaced, so the key is not seen later
        logs["learning_rate"] = _read_lr(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          "which is not available. Available metrics are: "
                          f"{','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                if self._reduce_optimizer_lr(self.model.optimizer, epoch):
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


class LearningRateScheduler(Callback):
    """At each epoch begin, set the learning rate to `schedule(epoch, lr)` (or `schedule(epoch)`
    when the two-argument call raises TypeError, as Keras does). The result must be a float.
    Adds `learning_rate` to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _update_optimizer_lr(self, optimizer, epoch):
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            learning_rate = self.schedule(epoch, _read_lr(optimizer))
        except TypeError:  # the old one-argument API
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError("The output of the `schedule` function should be a float. "
                             f"Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        return learning_rate

    def on_epoch_begin(self, epoch, logs=None):
        learning_rate = self._update_optimizer_lr(self.model.optimizer, epoch)
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                       f"{learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["learning_rate"] = _read_lr(self.model.optimizer)


class TerminateOnNaN(Callback):
    """Stop training (model.stop_training) after a batch whose running loss is NaN or inf;
    with raise_error=True raise RuntimeError at once instead (on_train_end is then skipped)."""

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: "
                                   f"{loss}. Terminating training immediately.")
            _print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Stream the epoch logs to a CSV file: columns `epoch` then the sorted log keys of the
    first epoch (plus `val_<key>` for each when that epoch had no validation keys); missing
    values are written as NA. append=True continues a file (header only if it is empty)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k):
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(k.startswith("val_") for k in self.keys) and self.keys:
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:
            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...).
    on_train_batch_begin/end receive `batch` positionally and `logs` by keyword; any other hook
    can be given by name in **kwargs."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        if on_epoch_begin is not None:
            self.on_epoch_begin = on_epoch_begin
        if on_epoch_end is not None:
            self.on_epoch_end = on_epoch_end
        if on_train_begin is not None:
            self.on_train_begin = on_train_begin
        if on_train_end is not None:
            self.on_train_end = on_train_end
        if on_train_batch_begin is not None:
            self.on_train_batch_begin = on_train_batch_begin
        if on_train_batch_end is not None:
            self.on_train_batch_end = on_train_batch_end


# ---- not supported -----------------------------------------------------------------------------
class _Unsupported(Callback):
    _why = ""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"keras.callbacks.{type(self).__name__} is not supported by "
                                  f"cnnfast. {self._why}")


class TensorBoard(Callback):
    """TensorBoard logs (Keras: callbacks/tensorboard.py), written with tensorboardX (the
    optional extra `pip install cnnfast[tensorboard]`) into `log_dir/train` and
    `log_dir/validation`, under Keras's tags:

    * per epoch (step = epoch): `epoch_<name>` for each training log and `epoch_learning_rate`
      in train/, each `val_<name>` as `epoch_<name>` in validation/; after each evaluation,
      `evaluation_<name>_vs_iterations` in validation/ at step optimizer.iterations;
    * per batch when `update_freq='batch'` or an int N: `batch_<name>` in train/ at the
      global batch number (from 1) when it is a multiple of N;
    * `histogram_freq=N`: a histogram of every weight (`<path>/histogram`, e.g.
      `dense/kernel/histogram`) every N epochs;
    * `write_steps_per_second`: `epoch_steps_per_second` (and `batch_steps_per_second`);
    * `write_graph` (default): the conceptual graph TensorBoard's Graphs tab draws from a
      Keras model (the `keras` summary, plugin graph_keras_model) for Sequential and
      functional models; as in Keras, not for subclassed models. There is no TF op graph
      (cnnfast runs no TensorFlow graph), which Keras 3 does not write either.

    With `update_freq=N` Keras keeps the batch-level `record_if(step % N == 0)` in force
    through the epoch's end, so its epoch summaries and histograms (and the evaluation ones)
    are written only when the global train (test) batch count is then a multiple of N; this
    callback does the same, so the files match Keras's.

    write_images, profile_batch and embeddings_freq raise NotImplementedError."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        for name, value, default in (("write_images", write_images, False),
                                     ("profile_batch", profile_batch, 0),
                                     ("embeddings_freq", embeddings_freq, 0),
                                     ("embeddings_metadata", embeddings_metadata, None)):
            if value != default:
                raise NotImplementedError(f"TensorBoard: {name}={value!r} is not supported by "
                                          "cnnfast (scalars, histograms and the model graph "
                                          "are)")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or \
                histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, "
                             f"got {histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        elif update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(
                update_freq, int) or update_freq <= 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive "
                             f"integer, got {update_freq!r}")
        try:
            import tensorboardX  # noqa: F401
        except ImportError as e:
            raise ImportError("keras.callbacks.TensorBoard needs the tensorboardX package: "
                              "pip install cnnfast[tensorboard]") from e
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = bool(write_graph)
        self.write_images = write_images
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._writers = {}
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._record_steps = []   # Keras's stack of record_if steps (update_freq=N only)

    def set_model(self, model):
        super().set_model(model)
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._close_writers()
        if self.write_graph:
            self._write_keras_model_summary()

    def _writer(self, which):
        if which not in self._writers:
            from tensorboardX import SummaryWriter
            path = self._train_dir if which == "train" else self._val_dir
            self._writers[which] = SummaryWriter(logdir=path)
        return self._writers[which]

    def _close_writers(self):
        for w in self._writers.values():
            w.close()
        self._writers = {}

    def _write_keras_model_summary(self):
        graph = _keras_graph_json(self.model)
        if graph is None:
            return
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name="graph_keras_model", content=b"1"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[graph.encode()])
        summary = Summary(value=[Summary.Value(tag="keras", metadata=meta, tensor=tensor)])
        writer = self._writer("train")
        writer._get_file_writer().add_summary(summary, 0)
        writer.flush()

    def _recording(self):
        """Whether Keras's record_if condition in force lets a summary through."""
        if self.update_freq == "epoch" or not self._record_steps:
            return True
        return self._record_steps[-1] % self.update_freq == 0

    def _push(self, step):
        if self.update_freq != "epoch":
            self._record_steps.append(step)

    def _pop(self):
        if self.update_freq != "epoch" and self._record_steps:
            self._record_steps.pop()

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._previous_iterations = 0
        self._record_steps = []
        self._push(0)

    def on_train_end(self, logs=None):
        self._pop()
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._previous_iterations = self._iterations()
            self._epoch_start = time.time()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._pop()
        self._push(self._global_train_batch)
        if self.write_steps_per_second:
            self._batch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or not self._recording():
            return
        w = self._writer("train")
        if self.write_steps_per_second:
            w.add_scalar("batch_steps_per_second",
                         1.0 / max(time.time() - self._batch_start, 1e-9),
                         self._global_train_batch)
        for name, value in (logs or {}).items():
            w.add_scalar(f"batch_{name}", value, self._global_train_batch)

    def on_test_begin(self, logs=None):
        self._push(self._global_test_batch)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1
        self._pop()
        self._push(self._global_test_batch)

    def on_test_end(self, logs=None):
        opt = getattr(self.model, "optimizer", None)
        if opt is not None and logs and self._recording():
            w = self._writer("validation")
            for name, value in logs.items():
                w.add_scalar(f"evaluation_{name}_vs_iterations", value, int(opt.iterations))
            w.flush()
        self._pop()

    def on_epoch_end(self, epoch, logs=None):
        if not self._recording():
            return
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        opt = getattr(self.model, "optimizer", None)
        if opt is not None:
            train["learning_rate"] = applied_learning_rate(opt)
        if self.write_steps_per_second:
            steps = self._iterations() - self._previous_iterations
            train["steps_per_second"] = steps / max(time.time() - self._epoch_start, 1e-9)
        for which, group in (("train", train), ("validation", val)):
            if group:
                w = self._writer(which)
                for name, value in group.items():
                    w.add_scalar(f"epoch_{name}", value, epoch)
                w.flush()
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            w = self._writer("train")
            for layer in self.model.layers:
                for v in layer.weights:
                    w.add_histogram(f"{v.path.replace(':', '_')}/histogram", v.numpy(), epoch)
            w.flush()

    def _iterations(self):
        opt = getattr(self.model, "optimizer", None)
        return int(opt.iterations) if opt is not None else 0


def _keras_graph_json(model):
    """The model as the Keras JSON TensorBoard's graph plugin draws (its keras_util reads
    class_name, layer names and inbound_nodes), for Sequential and functional models; None
    for others (Keras writes it for those two only)."""
    import json
    nodes = getattr(model, "nodes", None)
    if getattr(model, "_subclassed", False) or nodes is None or \
            getattr(model, "_tensors", None) is None:
        return None
    sequential = hasattr(model, "_input_layer")
    layers = []
    for node in nodes:
        entry = {"class_name": type(node.layer).__name__, "name": node.layer.name,
                 "config": {"name": node.layer.name}}
        if not sequential:
            entry["inbound_nodes"] = [[[s.name, 0, 0, {}] for s in node.inbound_layers]] \
                if node.inbound_layers else []
        layers.append(entry)
    if sequential:
        config = {"name": model.name, "layers": layers}
        return json.dumps({"class_name": "Sequential", "config": config})
    config = {"name": model.name, "layers": layers,
              "input_layers": [[layer.name, 0, 0] for layer in model.input_layers],
              "output_layers": [[layer.name, 0, 0] for layer in model.output_layers]}
    return json.dumps({"class_name": "Functional", "config": config})


class RemoteMonitor(_Unsupported):
    _why = "Use a LambdaCallback(on_epoch_end=...) that posts the logs yourself."


class SwapEMAWeights(_Unsupported):
    _why = "cnnfast optimizers have no use_ema."


# ---- backup and restore ------------------------------------------------------------------------
_BACKUP_MAGIC = b"CNNFAST-BACKUP-1"
_BACKUP_HEADER = struct.Struct("<16sIQ")  # magic, crc32 of the payload, payload length


def _mid_write_hook(path):
    """Called halfway through writing a backup's temporary file (tests replace it to kill the
    process there, tests/test_backup_restore.py); does nothing."""


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _walk_layers(layers):
    for layer in layers:
        yield layer
        inner = getattr(layer, "layers", None)
        if inner and inner is not layers:
            yield from _walk_layers(inner)


def _crc(a):
    a = np.ascontiguousarray(a)
    return f"{a.dtype.str}{list(a.shape)}:{zlib.crc32(a.view(np.uint8).reshape(-1)):08x}"


# What each built-in callback keeps between epochs (the rest of its attributes are its
# arguments); `best_weights` is a list of arrays, `monitor_op` np.less / np.greater / None.
_CALLBACK_STATE = {
    "History": ("history", "epoch"),
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch", "min_delta", "monitor_op",
                      "best_weights"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter", "min_delta", "monitor_op"),
    "ModelCheckpoint": ("best", "min_delta", "monitor_op", "_current_epoch"),
}
_MONITOR_OPS = {"less": np.less, "greater": np.greater}


class BackupAndRestore(Callback):
    """Back up the whole training state so that a fit interrupted at any moment (an exception,
    Ctrl-C, SIGKILL, even during the backup's own write) and run again with the same script
    ends with the same weights, bit for bit, as a fit never interrupted (docs/resume.md).

    Keras's arguments: `backup_dir` (a directory for this run's backup only), `save_freq`
    ('epoch': after each epoch; an int N: after every N batches, counted across epochs),
    `double_checkpoint` (keep the previous backup too, used when the latest cannot be read),
    `delete_checkpoint` (remove the backup when fit completes). Stronger than Keras's, which
    restores weights and the epoch only: the backup holds the weights, the optimizer's slots,
    iterations and learning rate, the epoch and the step within it, the state of the run's
    random generator (the permutation and step seeds are replayed from it) and of the layers'
    own generators, the epoch's running means, the state of History, EarlyStopping,
    ReduceLROnPlateau and ModelCheckpoint, and whether training was stopped (other callbacks'
    state is theirs to keep). Each backup is
    written to a temporary file, fsynced and renamed over the last (then the directory is
    fsynced), so a torn write leaves the previous backup whole. A backup written by another
    model, optimizer, loss, data, fit arguments or callback list is a ValueError naming what
    differs, never a silent restart. fit on arrays only (not cnnfast.data.Dataset)."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or
                                     not isinstance(save_freq, (int, np.integer))):
            raise ValueError("Invalid value for argument `save_freq`. Received: "
                             f"save_freq={save_freq}. Expected either 'epoch' or an integer "
                             "value.")
        if save_freq != "epoch" and save_freq <= 0:
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' or a positive "
                             f"number of batches, got {save_freq}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._path = os.path.join(self.backup_dir, "backup.cnnfast")
        self._prev_path = self._path + ".prev"
        self._since_save = 0
        self._pending = None
        self._fingerprint = None

    # ---- fit's hooks ------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        run = getattr(self.model, "_fit_run", None)
        if run is None:
            raise RuntimeError("BackupAndRestore works inside model.fit(callbacks=[...]) only")
        train = run.args["train"]
        if hasattr(train, "source"):
            # a source that carries its position over from epoch to epoch (steps_per_epoch
            # on arrays): replaying one epoch from its start would not rebuild it
            raise NotImplementedError("BackupAndRestore: fit with steps_per_epoch is not "
                                      "supported; let each epoch be one pass over the arrays")
        for what, source in (("x", train), ("validation_data", run.args["val"])):
            source = getattr(source, "source", source)  # validation_steps: its first batches
            # arrays are models.data.ArrayBatches (x, y); a dataset's source has no arrays
            if source is not None and not isinstance(getattr(source, "x", None), np.ndarray):
                raise NotImplementedError(f"BackupAndRestore: fit with a cnnfast.data.Dataset "
                                          f"as {what} is not supported; pass NumPy arrays")
        run.listeners.append(self)
        self._since_save = 0
        self._fingerprint = self._fingerprint_of(run)
        self._pending = self._load()
        if self._pending is not None:
            meta = self._pending[0]
            diff = sorted(k for k in set(meta["fingerprint"]) | set(self._fingerprint)
                          if meta["fingerprint"].get(k) != self._fingerprint.get(k))
            if diff:
                self._pending = None
                def short(v):
                    v = repr(v)
                    return v if len(v) <= 100 else v[:97] + "..."

                details = "; ".join(f"{k}: backup {short(meta['fingerprint'].get(k))}, this "
                                    f"fit {short(self._fingerprint.get(k))}" for k in diff[:3])
                raise ValueError(f"BackupAndRestore: the backup in {self.backup_dir!r} was "
                                 f"written by a different fit ({', '.join(diff)} differ: "
                                 f"{details}). Resume with the same model, data and fit "
                                 "arguments, or delete the directory to start over.")

    def fit_resume(self, run):
        if self._pending is None:
            return None
        meta = self._pending[0]
        run.gen.bit_generator.state = meta["epoch_rng"]
        if meta["step"] == 0:
            self.fit_restore(run)
        return meta["epoch"], meta["step"]

    def fit_restore(self, run):
        meta, arrays = self._pending
        self._pending = None
        self._apply(run, meta, arrays)

    def fit_checkpoint(self, run, at_epoch_end):
        if self.save_freq == "epoch":
            if at_epoch_end:
                self._save(run)
        elif not at_epoch_end:
            self._since_save += 1
            if self._since_save >= self.save_freq:
                self._since_save = 0
                self._save(run)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        for path in (self._path, self._prev_path):
            if os.path.lexists(path):
                os.remove(path)
        self._remove_temporaries()
        try:
            os.rmdir(self.backup_dir)  # only when nothing else is in it
        except OSError:
            pass

    # ---- what a backup holds ----------------------------------------------------------------
    @staticmethod
    def _stateful_callbacks(run):
        """The callbacks whose state the backup holds (History, EarlyStopping,
        ReduceLROnPlateau, ModelCheckpoint), in the list's order."""
        return [cb for cb in run.args["callbacks"].callbacks
                if type(cb).__name__ in _CALLBACK_STATE]

    def _fingerprint_of(self, run):
        """What a backup must have been written by: the model, its compile arguments, the
        data and the fit arguments (all as at the start of the fit)."""
        model, a = self.model, run.args
        opt = model.optimizer
        config = {k: v for k, v in opt.get_config().items() if k != "name"} \
            if opt._schedule is None or hasattr(opt._schedule, "get_config") else {}
        config["class"] = type(opt).__name__
        train, val = a["train"], a["val"]
        val = getattr(val, "source", val)
        weights = [getattr(src, "sample_weight", None) for src in (train, val)]
        return {
            "sample_weight": [None if w is None else _crc(w) for w in weights],
            # the layers' configs without their names (a rebuilt model's names count on)
            "model": [[type(layer).__name__, json.loads(json.dumps(
                {k: v for k, v in layer.get_config().items() if k != "name"}, default=str)),
                [list(w.shape) for w in layer.weights]] for layer in model.layers],
            "optimizer": json.loads(json.dumps(config, default=str)),
            "loss": type(model.loss).__name__ + repr(getattr(model.loss, "name", "")),
            "metrics": [getattr(m, "name", repr(m)) for m in model._metrics],
            "x": _crc(train.x), "y": _crc(train.y),
            "validation": None if val is None else [_crc(val.x), _crc(val.y)],
            "batch_size": a["batch_size"], "epochs": a["epochs"], "shuffle": bool(a["shuffle"]),
            "initial_epoch": a["initial_epoch"], "validation_freq": a["validation_freq"],
            "validation_split": a["validation_split"],
            "callbacks": [type(cb).__name__ for cb in self._stateful_callbacks(run)],
            "save_freq": self.save_freq,
        }

    def _capture(self, run):
        model, opt = self.model, self.model.optimizer
        # the arrays (weights_list), which the optimizer's slots are keyed by, not the Variables
        arrays = {f"w{i}": w for i, w in enumerate(model.weights_list)}
        slots = []
        if opt.slot_arrays is not None:
            index = {id(w): i for i, w in enumerate(model.weights_list)}
            for k, (wid, s) in enumerate(zip(opt._weights_ids, opt.slot_arrays)):
                slots.append([index[wid], [a is not None for a in s]])
                for j, a in enumerate(s):
                    if a is not None:
                        arrays[f"s{k}_{j}"] = a
        if opt.state_array is not None:
            arrays["opt_state"] = opt.state_array
        callbacks = []
        for c, cb in enumerate(self._stateful_callbacks(run)):
            state = {}
            for name in _CALLBACK_STATE.get(type(cb).__name__, ()):
                value = getattr(cb, name, None)
                if name == "monitor_op":
                    value = None if value is None else value.__name__
                elif name == "best_weights" and value is not None:
                    for j, w in enumerate(value):
                        arrays[f"cb{c}_{j}"] = w
                    value = len(value)
                elif isinstance(value, np.generic):
                    value = value.item()
                state[name] = value
            callbacks.append(state)
        meta = {
            "fingerprint": self._fingerprint,
            "epoch": run.epoch, "step": run.step, "epoch_rng": run.epoch_rng,
            "stop_training": bool(model.stop_training), "last_logs": run.last_logs,
            "iterations": int(opt.iterations),
            "lr": None if opt._schedule is not None else float(opt._lr),
            "u_step": getattr(opt, "_u_step", None), "slots": slots,
            "layer_rngs": [[i, layer._rng.bit_generator.state]
                           for i, layer in enumerate(_walk_layers(model.layers))
                           if getattr(layer, "_rng", None) is not None],
            "trackers": [{k: float(v) for k, v in vars(t).items() if isinstance(v, np.floating)}
                         for t in run.trackers],
            "callbacks": callbacks,
        }
        return meta, arrays

    def _apply(self, run, meta, arrays):
        model, opt = self.model, self.model.optimizer
        weights = model.weights_list
        model.set_weights([arrays[f"w{i}"] for i in range(len(weights))])
        if meta["slots"]:
            opt.build([weights[i] for i, _ in meta["slots"]])
            for k, (_, present) in enumerate(meta["slots"]):
                for j, (a, here) in enumerate(zip(opt.slot_arrays[k], present)):
                    if (a is not None) != here:
                        raise ValueError("BackupAndRestore: the optimizer's slots do not "
                                         "match the backup's")
                    if a is not None:
                        np.copyto(a, arrays[f"s{k}_{j}"])
        if "opt_state" in arrays:
            np.copyto(opt.state_array, arrays["opt_state"])
        opt.iterations = meta["iterations"]
        if meta["lr"] is not None:
            opt.learning_rate = meta["lr"]
        if meta["u_step"] is not None:
            opt._u_step = meta["u_step"]
        layers = list(_walk_layers(model.layers))
        for i, state in meta["layer_rngs"]:
            layers[i]._rng.bit_generator.state = state
        for t, state in zip(run.trackers, meta["trackers"]):
            for k, v in state.items():
                setattr(t, k, np.float32(v))
        for c, (cb, state) in enumerate(zip(self._stateful_callbacks(run), meta["callbacks"])):
            for name, value in state.items():
                if name == "monitor_op":
                    value = None if value is None else _MONITOR_OPS[value]
                elif name == "best_weights" and value is not None:
                    value = [arrays[f"cb{c}_{j}"].copy() for j in range(value)]
                setattr(cb, name, value)
        model.stop_training = meta["stop_training"]
        run.last_logs = meta["last_logs"]

    # ---- the files --------------------------------------------------------------------------
    def _save(self, run):
        meta, arrays = self._capture(run)
        buf = io.BytesIO()
        meta_bytes = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(buf, __meta__=meta_bytes, **arrays)
        payload = buf.getvalue()
        data = _BACKUP_HEADER.pack(_BACKUP_MAGIC, zlib.crc32(payload), len(payload)) + payload
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp = os.path.join(self.backup_dir, f".backup.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            _mid_write_hook(tmp)
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        if self.double_checkpoint and os.path.exists(self._path):
            os.replace(self._path, self._prev_path)
        os.replace(tmp, self._path)
        _fsync_dir(self.backup_dir)

    def _remove_temporaries(self):
        if os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                if name.startswith(".backup.tmp"):
                    os.remove(os.path.join(self.backup_dir, name))

    @staticmethod
    def _read(path):
        """(meta, arrays) of a backup file; ValueError naming the file when it is not one."""
        with open(path, "rb") as f:
            data = f.read()
        n = _BACKUP_HEADER.size
        if len(data) < n:
            raise ValueError(f"BackupAndRestore: {path!r} is truncated ({len(data)} bytes)")
        magic, crc, length = _BACKUP_HEADER.unpack(data[:n])
        payload = data[n:]
        if magic != _BACKUP_MAGIC:
            raise ValueError(f"BackupAndRestore: {path!r} is not a cnnfast backup")
        if len(payload) != length or zlib.crc32(payload) != crc:
            raise ValueError(f"BackupAndRestore: {path!r} is corrupted (checksum mismatch; "
                             f"{len(payload)} of {length} bytes)")
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        return meta, arrays

    def _load(self):
        """The newest readable backup, or None when there is none. The latest is always whole
        (renamed into place); with double_checkpoint a latest that cannot be read (a damaged
        disk) falls back to the previous one, with a warning."""
        self._remove_temporaries()  # a write the last run did not finish
        paths = [p for p in (self._path, self._prev_path) if os.path.exists(p)]
        if not self.double_checkpoint:
            paths = [p for p in paths if p == self._path]
        if not paths:
            return None
        try:
            return self._read(paths[0])
        except (ValueError, OSError) as e:
            if len(paths) < 2:
                raise
            warnings.warn(f"BackupAndRestore: {e}; restoring the previous backup "
                          f"{paths[1]!r}", stacklevel=3)
        return self._read(paths[1])
