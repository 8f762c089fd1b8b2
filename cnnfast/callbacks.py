"""Callbacks with Keras semantics: Callback, History, EarlyStopping, ProgbarLogger."""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np


class Callback:
    """Base class: override any hook. `self.model` is set before training starts."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls the same hook on every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {cb!r}")
            cb.set_model(model)
            cb.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records the epoch logs: `history.history['loss']` etc.; `history.epoch`."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


def _format_logs(logs):
    return "".join(f" - {k}: {_fmt(v)}" for k, v in sorted(logs.items()))


def _fmt(v):
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def _fmt_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def _fmt_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class Progbar:
    """Keras 3's progress bar: `1500/1500 ━━━━━━━━━━━━━━━━━━━━ 6s 4ms/step - loss: 0.4137`.
    verbose=1 redraws one line (at most every 0.05 s, always on the last step);
    verbose=2 prints one line at the end."""

    width = 20

    def __init__(self, target, verbose=1, interval=0.05, stream=None):
        self.target, self.verbose, self.interval = target, verbose, interval
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self._last = 0.0
        self._dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, current, logs=None, finalize=False):
        now = time.perf_counter()
        if self.verbose != 1 or (not finalize and now - self._last < self.interval):
            if self.verbose == 2 and finalize:
                el = now - self.start
                self.stream.write(f"{current}/{self.target} - {_fmt_time(el)} - "
                                  f"{_fmt_step(el / max(current, 1))}{_format_logs(logs or {})}\n")
                self.stream.flush()
            return
        self._last = now
        el = now - self.start
        filled = int(self.width * current / max(self.target, 1))
        bar = "━" * filled + " " * (self.width - filled) if not self._dynamic else \
            "\x1b[32m" + "━" * filled + "\x1b[37m" + "━" * (self.width - filled) + "\x1b[0m"
        if finalize or current >= self.target:
            timing = f"{_fmt_time(el)} {_fmt_step(el / max(current, 1))}"
        else:
            eta = el / max(current, 1) * (self.target - current)
            timing = f"{_fmt_time(eta)}"
        line = f"{current}/{self.target} {bar} {timing}{_format_logs(logs or {})}"
        if self._dynamic:
            self.stream.write("\r" + line + "\x1b[K")
            if finalize:
                self.stream.write("\n")
        elif finalize:
            self.stream.write(line + "\n")
        self.stream.flush()


class ProgbarLogger(Callback):
    """Prints `Epoch i/N` and a progress bar per epoch (verbose 1) or one line (verbose 2)."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        epochs = self.params.get("epochs", 1)
        if self.verbose and epochs > 1:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        self._bar = Progbar(self.params.get("steps", 0), verbose=self.verbose)

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self.params.get("steps", 0), logs, finalize=True)


class EarlyStopping(Callback):
    """Stop training when `monitor` stops improving (Keras semantics, see
    KERAS_SEMANTICS.md §8): strict improvement by more than min_delta, patience counted in
    epochs, never stops at epoch 0, restores the best weights at train end when asked."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.baseline, self.restore_best_weights = baseline, bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.min_delta = abs(float(min_delta))
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"EarlyStopping mode {mode!r} is unknown, fallback to auto mode.")
            mode = "auto"
        if mode == "auto":
            base = monitor[4:] if monitor.startswith("val_") else monitor
            if base.endswith("loss"):
                mode = "min"
            elif base in ("accuracy", "acc", "sparse_categorical_accuracy",
                          "categorical_accuracy"):
                mode = "max"
            else:
                raise ValueError(f"EarlyStopping: cannot infer the direction of {monitor!r}; "
                                 "pass mode='min' or mode='max'")
        self.mode = mode
        self._op = np.less if mode == "min" else np.greater
        if mode == "min":
            self.min_delta *= -1

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _improved(self, current, ref):
        return ref is None or bool(self._op(current - self.min_delta, ref))

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}")
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
