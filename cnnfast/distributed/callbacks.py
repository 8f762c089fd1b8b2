"""Horovod's Keras callbacks for cnnfast.distributed (horovod.keras.callbacks)."""
from __future__ import annotations

import numpy as np

from .. import callbacks as callbacks_mod
from .. import executor
from . import comm
from .comm import reduce_trackers
from .optimizer import broadcast_variables


class BroadcastGlobalVariablesCallback(callbacks_mod.Callback):
    """At the start of training, every rank takes root_rank's weights (all of them, the
    BatchNormalization statistics included) and optimizer state (slots, iterations, Nadam's
    u_product), so every rank starts from the same point whatever its initialization."""

    def __init__(self, root_rank=0):
        super().__init__()
        if isinstance(root_rank, bool) or not isinstance(root_rank, (int, np.integer)):
            raise TypeError(f"BroadcastGlobalVariablesCallback: root_rank must be an int, got "
                            f"{root_rank!r}")
        self.root_rank = int(root_rank)

    def on_train_begin(self, logs=None):
        n = comm.size()
        if not 0 <= self.root_rank < n:
            raise ValueError(f"BroadcastGlobalVariablesCallback: root_rank {self.root_rank} is "
                             f"not a rank of this job (size {n})")
        model = self.model
        comm.check_agree("the model's weights (BroadcastGlobalVariablesCallback)",
                         {"weight shapes": [tuple(w.shape) for w in model.weights]})
        broadcast_variables(model.weights_list, self.root_rank)
        opt = model.optimizer
        root_built = comm.broadcast_object(opt.slot_arrays is not None, self.root_rank)
        if root_built:
            slots = opt.slots(model._trainable_arrays())
            arrays = [s for per in slots for s in per if s is not None]
            comm.check_agree("the optimizer's slots (BroadcastGlobalVariablesCallback)",
                             {"slot shapes": [tuple(s.shape) for s in arrays]})
            broadcast_variables(arrays, self.root_rank)
        if opt.state_array is not None:
            broadcast_variables([opt.state_array], self.root_rank)
        opt.iterations = int(comm.broadcast_object(int(opt.iterations), self.root_rank))


class MetricAverageCallback(callbacks_mod.Callback):
    """At the end of each epoch, the epoch's logs become their value over all the ranks (place
    it before the callbacks that read them: EarlyStopping, ReduceLROnPlateau, ModelCheckpoint,
    CSVLogger). The training metrics of a distributed fit are recomputed from the running sums
    of every rank (the mean over all rows, exactly what one process computes); any other log
    (validation, which fit already reduced over the shards, or a user's value) is averaged
    over the ranks, as Horovod does."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        done = set()
        trackers = getattr(self.model, "_distributed_trackers", None)
        if trackers:
            reduce_trackers(trackers)
            for t in trackers:
                logs[t.name] = float(t.result())
                done.add(t.name)
        keys = sorted(k for k, v in logs.items() if k not in done and
                      isinstance(v, (int, float, np.number)) and not isinstance(v, bool))
        keys = comm.allgather_object(keys)
        if any(k != keys[0] for k in keys[1:]):
            raise comm.DistributedError(f"MetricAverageCallback: the ranks' epoch logs have "
                                        f"different keys: {keys}")
        if keys[0]:
            mean = comm.allreduce(np.array([float(logs[k]) for k in keys[0]], np.float64))
            for k, v in zip(keys[0], mean):
                logs[k] = float(v)


class LearningRateWarmupCallback(callbacks_mod.Callback):
    """Horovod's gradual warm-up (Goyal et al. 2017): over the first `warmup_epochs` epochs
    the learning rate rises, every batch, from initial_lr / size() to initial_lr:

        lr(epoch + batch/steps_per_epoch) = initial_lr / size * (e * (size - 1) / warmup + 1),
        e = epoch + batch/steps_per_epoch + 1/steps_per_epoch

    momentum_correction: an optimizer with `momentum` has it scaled by new_lr / old_lr for
    the batch in which the rate changes (restored after it). steps_per_epoch: the batches per
    epoch (default: fit's). Adds `lr` to the epoch logs; verbose > 0 reports the end of the
    warm-up (rank 0)."""

    def __init__(self, initial_lr, warmup_epochs=5, momentum_correction=True,
                 steps_per_epoch=None, verbose=0):
        super().__init__()
        if isinstance(initial_lr, bool) or not isinstance(initial_lr, (int, float)) or \
                not initial_lr > 0:
            raise ValueError(f"LearningRateWarmupCallback: initial_lr must be a positive "
                             f"number, got {initial_lr!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)) or \
                not warmup_epochs > 0:
            raise ValueError(f"LearningRateWarmupCallback: warmup_epochs must be positive, got "
                             f"{warmup_epochs!r}")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or
                                            not isinstance(steps_per_epoch, int) or
                                            steps_per_epoch < 1):
            raise ValueError(f"LearningRateWarmupCallback: steps_per_epoch must be a positive "
                             f"int, got {steps_per_epoch!r}")
        self.initial_lr = float(initial_lr)
        self.warmup_epochs = warmup_epochs
        self.momentum_correction = bool(momentum_correction)
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self.current_epoch = 0
        self.restore_momentum = None

    def multiplier(self, epoch):
        epoch += 1.0 / self.steps_per_epoch
        n = comm.size()
        return 1.0 / n * (epoch * (n - 1) / self.warmup_epochs + 1)

    def on_train_begin(self, logs=None):
        if not self.steps_per_epoch:
            steps = (self.params or {}).get("steps")
            if not steps:
                raise ValueError("LearningRateWarmupCallback: could not tell the number of "
                                 "steps per epoch; pass steps_per_epoch=")
            self.steps_per_epoch = int(steps)

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def _adjust(self, epoch):
        opt = self.model.optimizer
        old_lr = float(opt.learning_rate)
        new_lr = self.initial_lr * self.multiplier(epoch)
        opt.learning_rate = new_lr
        if self.momentum_correction and getattr(opt, "momentum", 0.0) and old_lr > 0:
            self.restore_momentum = opt.momentum
            opt.momentum = self.restore_momentum * new_lr / old_lr
            executor.optimizer_changed(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        if self.current_epoch >= self.warmup_epochs:
            return
        self._adjust(self.current_epoch + float(batch) / self.steps_per_epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.restore_momentum is not None:
            self.model.optimizer.momentum = self.restore_momentum
            self.restore_momentum = None
            executor.optimizer_changed(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(np.float32(self.model.optimizer.learning_rate))
        if epoch == int(np.ceil(self.warmup_epochs)) - 1 and self.verbose and comm.rank() == 0:
            print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                  f"{float(self.model.optimizer.learning_rate):g}.")
