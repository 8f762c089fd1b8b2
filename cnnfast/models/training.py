"""The training loop: compile, fit, evaluate, predict and train_on_batch (Keras: trainers/).

The loops own the epochs, batches, callbacks and Keras's running means; each step runs on an
engine (cnnfast/executor.py, docs/training_step.md). `Trainer` is a mixin of Model: it reads
the graph (inputs, outputs, layers) and the compiled loss, optimizer and metrics."""
from __future__ import annotations

import functools
import math
import signal
import threading

import numpy as np

from .. import callbacks as callbacks_mod
from .. import executor, utils
from .. import losses as losses_mod
from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from . import data, weighting
from . import steps as steps_mod


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


def _metric_list(arg, value):
    """compile's metrics / weighted_metrics as a list (Keras: a list or tuple)."""
    if value is None:
        return []
    if isinstance(value, (str, metrics_mod.Metric)):
        raise TypeError(f"compile: {arg} must be a list, e.g. {arg}=['accuracy']")
    if isinstance(value, dict):
        raise NotImplementedError(f"compile: per-output {arg} dicts are not supported")
    return list(value)


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


class FitRun:
    """Where a running fit is, for a callback that backs it up and resumes it
    (callbacks.BackupAndRestore, docs/resume.md). `model._fit_run` during fit.

    The loop keeps `epoch`, `step` (the steps completed in that epoch) and `epoch_rng` (the
    state of the run's generator `gen` when the epoch began, before its permutation was drawn);
    `trackers` are the epoch's running means, `args` the fit arguments a backup must match.
    A callback appends itself to `listeners` in on_train_begin; the loop then calls
    `listener.fit_resume(run)` once, after on_train_begin, which returns None or (epoch, step)
    to resume at, having set `gen` to that epoch's `epoch_rng`; at step 0 it has restored the
    whole state, at step k > 0 the loop calls `listener.fit_restore(run)` after that epoch's
    on_epoch_begin for the rest (weights, trackers, callback states: what they were after step
    k). `listener.fit_checkpoint(run, at_epoch_end)` runs after every step's and epoch's
    callbacks. Resuming at step k replays the epoch from `epoch_rng`: the permutation and the
    first k step seeds are drawn again, so the rest of the run draws what it would have."""

    def __init__(self, model, gen, trackers, args, epoch):
        self.model, self.gen, self.trackers, self.args = model, gen, trackers, args
        self.epoch, self.step, self.epoch_rng = epoch, 0, None
        self.last_logs = None  # the logs of the last completed epoch (on_train_end's)
        self.listeners = []

    def resume(self):
        for listener in self.listeners:
            at = listener.fit_resume(self)
            if at is not None:
                self._resumed_by = listener
                return at
        return None

    def restore(self):
        self._resumed_by.fit_restore(self)

    def checkpoint(self, at_epoch_end):
        for listener in self.listeners:
            listener.fit_checkpoint(self, at_epoch_end)


class _Guard:
    """One model's calls from several threads (docs/resume.md#threads): fit, evaluate, predict
    and train_on_batch run one at a time (an engine's buffers serve one call), and any of them
    from another thread while fit runs is a RuntimeError, not a wait of the whole fit. During
    a fit in the main thread, Ctrl-C (SIGINT) that lands inside a training step is raised
    right after the step, so the model holds the weights of the last completed step."""

    def __init__(self):
        self.lock = threading.RLock()
        self.fit_thread = None
        self.in_step = False
        self.sigint = False

    def step(self, train_step, *args, **kwargs):
        """Run one training step with a Ctrl-C deferred to its end."""
        self.in_step = True
        try:
            return train_step(*args, **kwargs)
        finally:
            self.in_step = False
            if self.sigint:
                self.sigint = False
                raise KeyboardInterrupt

    def _on_sigint(self, signum, frame):
        if self.in_step:
            self.sigint = True
        else:
            raise KeyboardInterrupt

    def deferring_sigint(self):
        """Install the step-deferring SIGINT handler (main thread, default handler only);
        returns the handler to restore, or None."""
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None
        signal.signal(signal.SIGINT, self._on_sigint)
        return signal.default_int_handler


def _exclusive(what):
    """fit / evaluate / predict / train_on_batch under the model's _Guard."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            guard = self.__dict__.get("_guard") or self.__dict__.setdefault("_guard", _Guard())
            me = threading.get_ident()
            if guard.fit_thread not in (None, me):
                raise RuntimeError(f"{what}(): fit() is running on model '{self.name}' in "
                                   "another thread; a model trains or runs in one thread at "
                                   "a time (wait for that fit to return)")
            with guard.lock:
                if what != "fit" or guard.fit_thread is not None:
                    return method(self, *args, **kwargs)
                guard.fit_thread, guard.sigint = me, False
                restore = guard.deferring_sigint()
                try:
                    return method(self, *args, **kwargs)
                finally:
                    if restore is not None:
                        signal.signal(signal.SIGINT, restore)
                    guard.fit_thread = None
                    self._fit_run = None
        return call
    return wrap


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch over a model's graph."""

    def _init_training_state(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metrics = []
        self._weighted_metrics = []
        self._metric_names = []
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
                                     ("steps_per_execution", steps_per_execution, 1)):
            if value != default:
                raise NotImplementedError(f"compile: argument {name}={value!r} is not supported")
        self.optimizer = optimizers_mod.get(optimizer)
        if isinstance(loss, (list, tuple, dict)):
            raise NotImplementedError("compile: one loss per output is not supported")
        self.loss = None if loss is None else losses_mod.get(loss)
        out_shape = tuple(self.outputs[0].shape[1:]) if self._tensors is not None and \
            len(self.outputs) == 1 else None
        self._metrics, self._weighted_metrics = (
            [metrics_mod.get(m, self.loss, out_shape) for m in _metric_list(arg, value)]
            for arg, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)))
        self._metric_names = metrics_mod.log_names(self._metrics, self._weighted_metrics)
        if executor.distributed_of(self) is not None and (self._weighted_metrics or any(
                isinstance(m, metrics_mod.AUC) for m in self._metrics)):
            raise NotImplementedError("compile: weighted_metrics and AUC are not supported "
                                      "with a DistributedOptimizer")
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
        """The loss's Mean, then one tracker per metric and weighted metric, named as Keras
        names them in the logs (metrics.log_names)."""
        trackers = [metrics_mod.Mean("loss")]
        for i, m in enumerate(self._metrics + self._weighted_metrics):
            t = m.new_tracker(weighted=i >= len(self._metrics))
            t.name = self._metric_names[i]
            trackers.append(t)
        return trackers

    def _ordered_results(self, logs):
        """evaluate / train_on_batch's list: Keras's _flatten_metrics_in_order (the logs of
        'loss' and each metric's own name in compile order, a name as often as it occurs, then
        the other logs in sorted order); a scalar for the loss alone."""
        names = ["loss"] + [m.name for m in self._metrics + self._weighted_metrics]
        ordered = [logs[n] for n in names if n in logs] + \
            [logs[k] for k in sorted(logs) if k not in names]
        return ordered[0] if len(ordered) == 1 else ordered

    def _logs(self, trackers, prefix=""):
        logs = {prefix + t.name: t.result() for t in trackers}
        return dict(sorted(logs.items()))

    # ---- fit / evaluate / predict -----------------------------------------------------------
    @_exclusive("fit")
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs on arrays (x, y) or a cnnfast.data.Dataset of (x, y)
        batches; returns a History (also stored as model.history)."""
        self._check_compiled("fit")
        weighting.check_exclusive(sample_weight, class_weight, "fit")
        _resolve_verbose(verbose)
        # None stays None here: with steps the batch is ceil(n / steps) (models/steps.py)
        batch_size = _positive_int(batch_size, "fit(): batch_size")
        val_batch = _positive_int(validation_batch_size, "fit(): validation_batch_size",
                                  batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit(): epochs must be a non-negative integer, got {epochs!r}")
        validation_freq = steps_mod.check_validation_freq(validation_freq)
        steps_per_epoch = _positive_int(steps_per_epoch, "fit(): steps_per_epoch")
        validation_steps = _positive_int(validation_steps, "fit(): validation_steps")
        if shuffle not in (True, False):
            raise NotImplementedError(f"fit(): shuffle={shuffle!r} is not supported "
                                      "(True or False)")
        # Data parallel (a cnnfast.distributed DistributedOptimizer): each step is a global
        # batch of size * batch_size rows, of which this rank takes its block (docs/
        # distributed.md); progress bar, ModelCheckpoint and CSVLogger on rank 0 only.
        dist = executor.distributed_of(self)
        if dist is not None:
            if data.is_dataset(x) or data.is_dataset(validation_data):
                raise NotImplementedError("fit(): a DistributedOptimizer shards NumPy arrays; "
                                          "datasets are not supported in distributed fit")
            for name, value in (("sample_weight", sample_weight),
                                ("class_weight", class_weight)):
                if value is not None:
                    raise NotImplementedError(f"fit(): {name} is not supported with a "
                                              "DistributedOptimizer")
            if dist.rank != 0:
                verbose = 0
                if callbacks is not None and not isinstance(callbacks,
                                                            callbacks_mod.CallbackList):
                    callbacks = [c for c in callbacks if not isinstance(
                        c, (callbacks_mod.ModelCheckpoint, callbacks_mod.CSVLogger))]
        if dist is not None and batch_size is None:
            batch_size = 32  # Keras's default; the global batch is size * batch_size
        train, val = self._fit_sources(x, y, batch_size * dist.size if dist else batch_size,
                                       shuffle,
                                       validation_split, validation_data, val_batch,
                                       steps_per_epoch, validation_steps, sample_weight,
                                       class_weight)
        sw = getattr(train, "sample_weight", None)
        if dist is not None:
            if not isinstance(train, data.ArrayBatches) or (
                    val is not None and (not isinstance(val, data.ArrayBatches) or
                                         getattr(val, "sample_weight", None) is not None)):
                raise NotImplementedError(
                    "fit(): with a DistributedOptimizer, steps_per_epoch, validation_steps and "
                    "validation sample weights are not supported")
            dist.agree("fit()", {
                "weight shapes": [tuple(w.shape) for w in self.weights],
                "optimizer": type(self.optimizer).__name__, "loss": type(self.loss).__name__,
                "samples": train.x.shape, "batch_size": batch_size, "epochs": epochs,
                "initial_epoch": initial_epoch, "steps per epoch": train.steps,
                "shuffle": shuffle, "validation samples": None if val is None else val.x.shape,
                "validation_freq": validation_freq})
            if val is not None:  # each rank evaluates its block; fit sums the metrics' state
                off, n = dist.shard(val.x.shape[0])
                val = data.ArrayBatches(val.x[off:off + n], val.y[off:off + n], val.max_batch)
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
        if dist is not None:
            if any(isinstance(c, callbacks_mod.BackupAndRestore) for c in cbl.callbacks):
                raise NotImplementedError("fit(): BackupAndRestore is not supported with a "
                                          "DistributedOptimizer")
            dist.share_generator(gen)  # rank 0's permutations and step seeds on every rank
            self._distributed_trackers = trackers  # for MetricAverageCallback
        engines = _Engines(self, "train", train.max_batch if dist is None else
                           -(-train.max_batch // dist.size))
        # The resume hook (FitRun, docs/resume.md): a BackupAndRestore among the callbacks
        # may move the start to (epoch, step) of an interrupted run of the same fit.
        run = self._fit_run = FitRun(self, gen, trackers, dict(
            train=train, val=val, batch_size=batch_size, epochs=int(epochs), shuffle=shuffle,
            initial_epoch=int(initial_epoch), validation_freq=validation_freq,
            validation_split=float(validation_split), callbacks=cbl), int(initial_epoch))
        cbl.on_train_begin()
        start_epoch, skip = run.resume() or (initial_epoch, 0)
        logs = {}
        training_logs = run.last_logs
        if self.stop_training:  # resumed after the step or epoch that stopped the run
            start_epoch = epochs if skip == 0 else start_epoch
        for epoch in range(start_epoch, epochs):
            for t in trackers:
                t.reset_state()
            run.epoch, run.step, run.epoch_rng = epoch, skip, gen.bit_generator.state
            cbl.on_epoch_begin(epoch)
            if skip:
                run.restore()  # the state after step `skip`, over on_epoch_begin's effects
            # a dataset's batch may carry its own sample weights (idx, then sw): swb
            for step, (xb, yb, idx, *swb) in enumerate(train.epoch(gen)):
                if step < skip or (skip and self.stop_training):
                    if step < skip:
                        executor.step_seed(gen)  # the seed the step drew before the resume
                        continue
                    break
                cbl.on_train_batch_begin(step)
                if dist is None:
                    bsw = swb[0] if swb else sw
                    loss, correct = self._guard.step(
                        engines.get(idx.shape[0]).train_step, xb, yb, idx,
                        executor.step_seed(gen), **({} if bsw is None else {"sw": bsw}))
                else:
                    seed, (off, n) = executor.step_seed(gen), dist.shard(idx.shape[0])
                    loss, correct = self._guard.step(
                        engines.get(max(n, 1)).train_step, xb, yb, idx[off:off + n], seed,
                        shard=(off, idx.shape[0]))
                    idx = idx[off:off + n]
                if correct is not None:  # None: a distributed step without rows on this rank
                    self._update_trackers(trackers, loss, correct, idx.shape[0])
                run.step = step + 1
                logs = self._logs(trackers)
                cbl.on_train_batch_end(step, logs)
                if dist is not None:
                    self.stop_training = dist.any(self.stop_training)
                run.checkpoint(False)
                if self.stop_training:
                    break
            skip = 0
            logs = self._logs(trackers)
            if val is not None and steps_mod.should_validate(epoch, validation_freq):
                # Keras runs validation through evaluate(callbacks=<fit's list>): the
                # on_test_* hooks fire (ProgbarLogger stays silent inside fit).
                vlogs = self._evaluate_batches(val, cbl, None if dist is None else
                                               dist.reduce_trackers)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
            cbl.on_epoch_end(epoch, logs)
            training_logs = run.last_logs = logs
            if dist is not None:
                self.stop_training = dist.any(self.stop_training)
            run.epoch, run.step, run.epoch_rng = epoch + 1, 0, gen.bit_generator.state
            run.checkpoint(True)
            if self.stop_training:
                break
        cbl.on_train_end(training_logs)
        self._distributed_trackers = None
        self._fit_run = None
        return self.history

    def _fit_sources(self, x, y, batch_size, shuffle, validation_split, validation_data,
                     val_batch, steps_per_epoch, validation_steps, sample_weight=None,
                     class_weight=None):
        """The training and validation batch sources (cnnfast/models/data.py) of fit()."""
        sw = None
        data.check_generator_args(x, y, sample_weight, class_weight, shuffle, "fit")
        if data.is_dataset(x):
            _no_y_with_dataset(y, "fit")
            if sample_weight is not None:
                raise ValueError("fit(): when x is a dataset, sample_weight must not be given: "
                                 "the sample weights are part of the dataset's elements")
            if validation_split:
                raise ValueError("fit(): validation_split is only supported for NumPy arrays, "
                                 "not datasets; pass validation_data=")
            # shuffle: the Dataset's own; a PyDataset's batch order (Keras)
            # class_weight: each batch's sample weights from its y (Keras's adapters)
            if class_weight is not None:
                weighting.check_class_weight(class_weight, "fit")
            train = data.DatasetBatches(self, x, "fit", steps_per_epoch, shuffle=shuffle,
                                        class_weight=class_weight)
        else:
            x = data.prepare_x(self, x, "fit")
            y = data.prepare_y(self, y, x.shape[0], "fit")
            sw = weighting.sample_weights(self, sample_weight, x.shape[0], "fit")
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
            # Keras splits the sample weights with x and y (class weights: the training part)
            n_val = x.shape[0] - split_at
            val = weighting.array_source(
                x[split_at:], y[split_at:], None if sw is None else sw[split_at:],
                steps_mod.batch_size_for(val_batch, n_val, validation_steps))
            if validation_steps is not None:
                val = steps_mod.FirstSteps(val, validation_steps)
            x, y = x[:split_at], y[:split_at]
            sw = None if sw is None else sw[:split_at]
        if train is None:
            if class_weight is not None:
                sw = weighting.class_weights(self, class_weight, y, "fit")
            train = weighting.array_source(
                x, y, sw, steps_mod.batch_size_for(batch_size, x.shape[0], steps_per_epoch),
                shuffle)
            if steps_per_epoch is not None:
                train = steps_mod.StepsPerEpoch(train, steps_per_epoch)
        return train, val

    def _validation_source(self, validation_data, val_batch, validation_steps):
        what = "fit(validation_data)"
        if data.is_dataset(validation_data):
            return data.DatasetBatches(self, validation_data, what, validation_steps,
                                       "validation_steps")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit(): validation_data must be a tuple (x_val, y_val) or a "
                             "dataset")
        vx = data.prepare_x(self, validation_data[0], what)
        vy = data.prepare_y(self, validation_data[1], vx.shape[0], what)
        vsw = weighting.sample_weights(self, validation_data[2], vx.shape[0], what) \
            if len(validation_data) == 3 else None
        val = weighting.array_source(vx, vy, vsw, steps_mod.batch_size_for(
            val_batch, vx.shape[0], validation_steps))
        return val if validation_steps is None else steps_mod.FirstSteps(val, validation_steps)

    def _evaluate_batches(self, source, cbl, reduce=None):
        """The logs of one pass over source; reduce(trackers), when given, combines the
        metrics' state of every rank first (a distributed fit's validation shards)."""
        trackers = self._new_trackers()
        engines = _Engines(self, "evaluate", source.max_batch)
        self.stop_evaluating = False
        cbl.on_test_begin()
        for step, batch in enumerate(source.eval_batches()):
            xb, yb = batch[:2]
            cbl.on_test_batch_begin(step)
            mean, correct = engines.get(xb.shape[0]).evaluate(
                xb, yb, **({"sw": batch[2]} if len(batch) > 2 else {}))
            self._update_trackers(trackers, mean, correct, xb.shape[0])
            cbl.on_test_batch_end(step, self._logs(trackers))
            if self.stop_evaluating:
                break
        if reduce is not None:
            reduce(trackers)
        logs = self._logs(trackers)
        cbl.on_test_end(logs)
        return logs

    @_exclusive("evaluate")
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """[loss, *metrics] (a scalar without metrics), means over the whole dataset (arrays,
        or a cnnfast.data.Dataset of (x, y) batches; `steps` batches of it if given)."""
        if kwargs:  # Keras 3's evaluate takes **kwargs and refuses any it does not know
            raise ValueError(f"Arguments not recognized: {kwargs}")
        self._check_compiled("evaluate")
        _resolve_verbose(verbose)
        batch_size = _positive_int(batch_size, "evaluate(): batch_size")
        steps = _positive_int(steps, "evaluate(): steps")
        data.check_generator_args(x, y, sample_weight, None, False, "evaluate")
        if data.is_dataset(x):
            _no_y_with_dataset(y, "evaluate")
            if sample_weight is not None:
                raise ValueError("evaluate(): when x is a dataset, sample_weight must not be "
                                 "given: the sample weights are part of the dataset's elements")
            source = data.DatasetBatches(self, x, "evaluate", steps, "steps")
        else:
            x = data.prepare_x(self, x, "evaluate")
            y = data.prepare_y(self, y, x.shape[0], "evaluate")
            sw = weighting.sample_weights(self, sample_weight, x.shape[0], "evaluate")
            source = weighting.array_source(
                x, y, sw, steps_mod.batch_size_for(batch_size, x.shape[0], steps))
            if steps is not None:
                source = steps_mod.FirstSteps(source, steps)
        cbl = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else \
            callbacks_mod.CallbackList(callbacks, add_progbar=verbose != 0, verbose=verbose,
                                       epochs=1, steps=source.steps, model=self)
        logs = self._evaluate_batches(source, cbl)
        return logs if return_dict else self._ordered_results(logs)

    @_exclusive("predict")
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
        batch_size = min(batch_size, n)  # the engine is built for at most n rows
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

    @_exclusive("train_on_batch")
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns the step's loss (and metrics)."""
        self._check_compiled("train_on_batch")
        weighting.check_exclusive(sample_weight, class_weight, "train_on_batch")
        x = data.prepare_x(self, x, "train_on_batch")
        y = data.prepare_y(self, y, x.shape[0], "train_on_batch")
        n = x.shape[0]
        sw = weighting.sample_weights(self, sample_weight, n, "train_on_batch") \
            if class_weight is None else weighting.class_weights(self, class_weight, y,
                                                                 "train_on_batch")
        engine = executor.for_model(self, n, "train")
        trackers = self._new_trackers()
        loss, correct = engine.train_step(x, y, np.arange(n, dtype=np.int64),
                                          executor.step_seed(utils.rng()),
                                          **({} if sw is None else {"sw": sw}))
        self._update_trackers(trackers, loss, correct, n)
        logs = self._logs(trackers)
        return logs if return_dict else self._ordered_results(logs)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """The loss (and metrics) of one batch (x, y), no update; as evaluate on one batch."""
        x = data.prepare_x(self, x, "test_on_batch")
        return self.evaluate(x, y, batch_size=x.shape[0], verbose=0,
                             sample_weight=sample_weight, return_dict=return_dict)

    @property
    def losses(self):
        """The model's current penalties (float32 scalars), as Keras's model.losses: the
        activity penalties of the last forward, then the trainable weights' penalties."""
        if self._tensors is None:
            return []
        acts = [layer._activity_penalty for layer in executor.all_layers(self)
                if layer.activity_regularizer is not None and
                layer._activity_penalty is not None]
        return acts + [np.float32(executor.weight_penalty([p], False))
                       for p in executor.regularized(executor.trainable_layers(self))]

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)
