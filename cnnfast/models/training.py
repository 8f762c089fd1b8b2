"""The training loop: compile, fit, evaluate, predict and train_on_batch (Keras: trainers/).

The loops own the epochs, batches, callbacks and Keras's running means; each step runs on an
engine (cnnfast/executor.py, docs/training_step.md). `Trainer` is a mixin of Model: it reads
the graph (inputs, outputs, layers) and the compiled loss, optimizer and metrics."""
from __future__ import annotations

import math

import numpy as np

from .. import callbacks as callbacks_mod
from .. import executor, utils
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from . import data


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return verbose


def _positive_int(value, what, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _no_y_with_dataset(y, what):
    if y is not None:
        raise ValueError(f"{what}(): y must not be given when x is a dataset: the targets are "
                         "part of the dataset's (x, y) elements")


class _Engines:
    """The engine of one loop (cnnfast/executor.py): built for the source's batch size before
    the loop when it is known (arrays), else for the first batch, and again when a larger
    batch arrives (datasets)."""

    def __init__(self, model, mode, batch):
        self.model, self.mode, self.batch = model, mode, batch or 0
        self.engine = executor.for_model(model, batch, mode) if batch else None

    def get(self, n):
        if self.engine is None or n > self.batch:
            self.engine, self.batch = executor.for_model(self.model, n, self.mode), n
        return self.engine


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch over a model's graph."""

    def _init_training_state(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metrics = []
        # The engines that ran this model (cnnfast/executor.py), kept so that a Net and its
        # buffers are built once per model, not once per fit/evaluate/predict call.
        self._engine_cache = {}

    # ---- compile ----------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True, **kwargs):
        """Configure training: optimizer (name or instance), loss (name, Loss or loss
        function), metrics (['accuracy'])."""
        if kwargs:
            raise TypeError(f"compile: unrecognized keyword arguments {sorted(kwargs)}")
        for name, value, default in (("loss_weights", loss_weights, None),
                                     ("weighted_metrics", weighted_metrics, None),
                                     ("steps_per_execution", steps_per_execution, 1)):
            if value != default:
                raise NotImplementedError(f"compile: argument {name}={value!r} is not supported")
        self.optimizer = optimizers_mod.get(optimizer)
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError("compile: one loss per output is not supported")
        self.loss = None if loss is None else losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_mod.Metric)):
            raise TypeError("compile: metrics must be a list, e.g. metrics=['accuracy']")
        if isinstance(metrics, dict):
            raise NotImplementedError("compile: per-output metric dicts are not supported")
        out_shape = tuple(self.outputs[0].shape[1:]) if self._tensors is not None and \
            len(self.outputs) == 1 else None
        self._metrics = [metrics_mod.get(m, self.loss, out_shape) for m in metrics]
        self.compiled = True
        self._engine_cache = {}

    def _check_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}().")
        if self.loss is None:
            raise ValueError(f"{what}(): compile the model with a loss, e.g. "
                             "loss='sparse_categorical_crossentropy'")
        if not self._single_output or (self._tensors is not None and len(self.outputs) != 1):
            raise NotImplementedError(f"{what}(): training/evaluating models with several "
                                      "outputs is not supported")

    # ---- one step ---------------------------------------------------------------------------
    @staticmethod
    def _update_trackers(trackers, mean, correct, n):
        """Keras's running state: the loss's mean weighted by the batch size, each metric's
        batch statistic (cnnfast/metrics.py) into its tracker."""
        trackers[0].update_state(np.float32(mean) * np.float32(n), n)
        for t, c in zip(trackers[1:], correct):
            t.update_state(c, n)

    def _new_trackers(self):
        return [metrics_mod.Mean("loss")] + [m.new_tracker() for m in self._metrics]

    def _logs(self, trackers, prefix=""):
        logs = {prefix + t.name: t.result() for t in trackers}
        return dict(sorted(logs.items()))

    # ---- fit / evaluate / predict -----------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs on arrays (x, y) or a cnnfast.data.Dataset of (x, y)
        batches; returns a History (also stored as model.history)."""
        self._check_compiled("fit")
        for name, value in (("class_weight", class_weight), ("sample_weight", sample_weight)):
            if value is not None:
                raise NotImplementedError(f"fit(): argument {name} is not supported")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "fit(): batch_size", 32)
        val_batch = _positive_int(validation_batch_size, "fit(): validation_batch_size",
                                  batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit(): epochs must be a non-negative integer, got {epochs!r}")
        validation_freq = _positive_int(validation_freq, "fit(): validation_freq")
        steps_per_epoch = _positive_int(steps_per_epoch, "fit(): steps_per_epoch")
        validation_steps = _positive_int(validation_steps, "fit(): validation_steps")
        if shuffle not in (True, False):
            raise NotImplementedError(f"fit(): shuffle={shuffle!r} is not supported "
                                      "(True or False)")
        train, val = self._fit_sources(x, y, batch_size, shuffle, validation_split,
                                       validation_data, val_batch, steps_per_epoch,
                                       validation_steps)
        # As Keras: the user's callbacks, then History and (verbose != 0) ProgbarLogger.
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                                       model=self, verbose=verbose, epochs=epochs,
                                       steps=train.steps)
        self.stop_training = False
        trackers = self._new_trackers()
        # One generator drives the run: the epoch's permutation, then one seed per step from
        # which the engine derives every random choice of that step (executor.step_seed).
        gen = utils.rng()
        engines = _Engines(self, "train", train.max_batch)
        cbl.on_train_begin()
        logs = {}
        training_logs = None
        for epoch in range(initial_epoch, epochs):
            for t in trackers:
                t.reset_state()
            cbl.on_epoch_begin(epoch)
            for step, (xb, yb, idx) in enumerate(train.epoch(gen)):
                cbl.on_train_batch_begin(step)
                loss, correct = engines.get(idx.shape[0]).train_step(xb, yb, idx,
                                                                     executor.step_seed(gen))
                self._update_trackers(trackers, loss, correct, idx.shape[0])
                logs = self._logs(trackers)
                cbl.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            logs = self._logs(trackers)
            if val is not None and (epoch + 1) % validation_freq == 0:
                # Keras runs validation through evaluate(callbacks=<fit's list>): the
                # on_test_* hooks fire (ProgbarLogger stays silent inside fit).
                vlogs = self._evaluate_batches(val, cbl)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
            cbl.on_epoch_end(epoch, logs)
            training_logs = logs
            if self.stop_training:
                break
        cbl.on_train_end(training_logs)
        return self.history

    def _fit_sources(self, x, y, batch_size, shuffle, validation_split, validation_data,
                     val_batch, steps_per_epoch, validation_steps):
        """The training and validation batch sources (cnnfast/models/data.py) of fit()."""
        if data.is_dataset(x):
            _no_y_with_dataset(y, "fit")
            if validation_split:
                raise ValueError("fit(): validation_split is only supported for NumPy arrays, "
                                 "not datasets; pass validation_data=")
            # shuffle: the Dataset's own; a PyDataset's batch order (Keras)
            train = data.DatasetBatches(self, x, "fit", steps_per_epoch, shuffle=shuffle)
        else:
            if steps_per_epoch is not None:
                raise NotImplementedError("fit(): steps_per_epoch is supported for datasets only")
            x = data.prepare_x(self, x, "fit")
            y = data.prepare_y(self, y, x.shape[0], "fit")
            train = None
        val = None
        if validation_data is not None:
            val = self._validation_source(validation_data, val_batch, validation_steps)
        elif validation_split and train is None:
            if not 0.0 < float(validation_split) < 1.0:
                raise ValueError(f"fit(): validation_split must be in (0, 1), got "
                                 f"{validation_split}")
            # Keras: the LAST samples become validation, taken before shuffling.
            split_at = int(math.floor(x.shape[0] * (1.0 - float(validation_split))))
            if split_at == 0 or split_at == x.shape[0]:
                raise ValueError(f"fit(): validation_split={validation_split} leaves an empty "
                                 f"training or validation set for {x.shape[0]} samples")
            val = data.ArrayBatches(x[split_at:], y[split_at:], val_batch)
            x, y = x[:split_at], y[:split_at]
        if train is None:
            train = data.ArrayBatches(x, y, batch_size, shuffle)
        return train, val

    def _validation_source(self, validation_data, val_batch, validation_steps):
        what = "fit(validation_data)"
        if data.is_dataset(validation_data):
            return data.DatasetBatches(self, validation_data, what, validation_steps,
                                       "validation_steps")
        if validation_steps is not None:
            raise NotImplementedError("fit(): validation_steps is supported for validation "
                                      "datasets only")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit(): validation_data must be a tuple (x_val, y_val) or a "
                             "dataset")
        if len(validation_data) == 3 and validation_data[2] is not None:
            raise NotImplementedError("fit(): validation sample weights are not supported")
        vx = data.prepare_x(self, validation_data[0], what)
        vy = data.prepare_y(self, validation_data[1], vx.shape[0], what)
        return data.ArrayBatches(vx, vy, val_batch)

    def _evaluate_batches(self, source, cbl):
        trackers = self._new_trackers()
        engines = _Engines(self, "evaluate", source.max_batch)
        self.stop_evaluating = False
        cbl.on_test_begin()
        for step, (xb, yb) in enumerate(source.eval_batches()):
            cbl.on_test_batch_begin(step)
            mean, correct = engines.get(xb.shape[0]).evaluate(xb, yb)
            self._update_trackers(trackers, mean, correct, xb.shape[0])
            cbl.on_test_batch_end(step, self._logs(trackers))
            if self.stop_evaluating:
                break
        logs = self._logs(trackers)
        cbl.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """[loss, *metrics] (a scalar without metrics), means over the whole dataset (arrays,
        or a cnnfast.data.Dataset of (x, y) batches; `steps` batches of it if given)."""
        self._check_compiled("evaluate")
        if sample_weight is not None:
            raise NotImplementedError("evaluate(): sample_weight is not supported")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "evaluate(): batch_size", 32)
        steps = _positive_int(steps, "evaluate(): steps")
        if data.is_dataset(x):
            _no_y_with_dataset(y, "evaluate")
            source = data.DatasetBatches(self, x, "evaluate", steps, "steps")
        else:
            if steps is not None:
                raise NotImplementedError("evaluate(): steps is supported for datasets only")
            x = data.prepare_x(self, x, "evaluate")
            y = data.prepare_y(self, y, x.shape[0], "evaluate")
            source = data.ArrayBatches(x, y, batch_size)
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=source.steps, model=self)
        logs = self._evaluate_batches(source, cbl)
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for x (arrays, or a cnnfast.data.Dataset of batches, whose elements may be
        x or (x, y)) as float32 arrays (a list for several outputs); dropout off."""
        _resolve_verbose(verbose)
        steps = _positive_int(steps, "predict(): steps")
        if data.is_dataset(x):
            return self._predict_dataset(x, steps, verbose, callbacks)
        if steps is not None:
            raise NotImplementedError("predict(): steps is supported for datasets only")
        batch_size = _positive_int(batch_size, "predict(): batch_size", 32)
        x = data.prepare_x(self, x, "predict")
        n = x.shape[0]
        outs = [np.empty((n,) + tuple(t.shape[1:]), np.float32) for t in self.outputs]
        nsteps = math.ceil(n / batch_size)
        engine = executor.for_model(self, batch_size, "predict")
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=nsteps, model=self)
        self.stop_predicting = False
        cbl.on_predict_begin()
        for step in range(nsteps):
            cbl.on_predict_batch_begin(step)
            s = slice(step * batch_size, (step + 1) * batch_size)
            engine.predict(x[s], [o[s] for o in outs])
            batch_out = outs[0][s] if self._single_output else [o[s] for o in outs]
            cbl.on_predict_batch_end(step, {"outputs": batch_out})
            if self.stop_predicting:
                break
        cbl.on_predict_end()
        if self.stop_predicting:  # as Keras: only the batches predicted so far
            outs = [o[:min(n, (step + 1) * batch_size)] for o in outs]
        return outs[0] if self._single_output else outs

    def _predict_dataset(self, dataset, steps, verbose, callbacks):
        source = data.DatasetBatches(self, dataset, "predict", steps, "steps", need_y=False)
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=source.steps, model=self)
        engines = _Engines(self, "predict", None)
        batches = []  # per batch, one array per output
        self.stop_predicting = False
        cbl.on_predict_begin()
        for step, (xb, _) in enumerate(source.eval_batches()):
            cbl.on_predict_batch_begin(step)
            outs = [np.empty((xb.shape[0],) + tuple(t.shape[1:]), np.float32)
                    for t in self.outputs]
            engines.get(xb.shape[0]).predict(xb, outs)
            batches.append(outs)
            cbl.on_predict_batch_end(step, {"outputs": outs[0] if self._single_output
                                            else outs})
            if self.stop_predicting:
                break
        cbl.on_predict_end()
        if not batches:
            raise ValueError("predict(): the dataset yielded no batches")
        outs = [np.concatenate(parts) for parts in zip(*batches)]
        return outs[0] if self._single_output else outs

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns the step's loss (and metrics)."""
        self._check_compiled("train_on_batch")
        if sample_weight is not None or class_weight is not None:
            raise NotImplementedError("train_on_batch(): sample/class weights are not supported")
        x = data.prepare_x(self, x, "train_on_batch")
        y = data.prepare_y(self, y, x.shape[0], "train_on_batch")
        n = x.shape[0]
        engine = executor.for_model(self, n, "train")
        trackers = self._new_trackers()
        loss, correct = engine.train_step(x, y, np.arange(n, dtype=np.int64),
                                          executor.step_seed(utils.rng()))
        self._update_trackers(trackers, loss, correct, n)
        logs = self._logs(trackers)
        if return_dict:
            return logs
        ordered = [logs["loss"]] + [logs[m.name] for m in self._metrics]
        return ordered[0] if len(ordered) == 1 else ordered

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)
