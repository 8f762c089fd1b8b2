"""One rank of the tests/test_distributed.py scenarios (run under mpiexec, or alone with
--plain for the one-process reference). Writes OUT/rank<r>.npz: the final weights, the
history and, per scenario, what the test compares.

    mpiexec -n 2 python tests/distributed_worker.py train OUT --batch 8 --model small
    python tests/distributed_worker.py train OUT --plain --batch 16 --model small
"""
import argparse
import os
import sys

import numpy as np

import cnnfast as cf  # the test's own cnnfast: it passes its location in PYTHONPATH
from cnnfast import layers, zoo
from cnnfast.distributed import DistributedError  # imports no MPI
from cnnfast.layers.base import reset_names


def small(dropout, augment=False, spatial=False):
    """A chain with every kind of op a step all-reduces through: conv, pools, dense, Dropout
    (with augment, a random flip and rotation of each image; with spatial, a SpatialDropout2D,
    whose masks a shard draws at its rows' sample offset on either engine)."""
    aug = [layers.RandomFlip("horizontal_and_vertical"), layers.RandomRotation(0.2)] \
        if augment else []
    sp = [layers.SpatialDropout2D(0.4)] if spatial else []
    return cf.Sequential([
        layers.Input((9, 9, 2)), *aug,
        layers.Conv2D(4, 3, padding="same", activation="relu"), *sp,
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(16, activation="relu"),
        layers.Dropout(dropout),
        layers.Dense(4, activation="softmax"),
    ])


def dataset(kind, n):
    r = np.random.default_rng(11)
    shape = (9, 9, 2) if kind == "small" else (28, 28, 1)
    x = r.random((n,) + shape, dtype=np.float32)
    classes = 4 if kind == "small" else 10
    y = (x.reshape(n, -1)[:, :20].mean(axis=1) * classes * 3).astype(np.int64) % classes
    return x, y


def build(args, seed):
    reset_names()
    cf.utils.set_random_seed(seed)
    model = small(args.dropout, args.augment, args.spatial) if args.model == "small" else \
        zoo.build(args.model)
    if args.layer_engine:
        model.use_native_executor = False
    return model


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["train", "mismatch", "die", "raise", "metrics",
                                        "broadcast", "warmup", "stop"])
    p.add_argument("out")
    p.add_argument("--plain", action="store_true", help="one process, no MPI (reference)")
    p.add_argument("--model", default="small")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--samples", type=int, default=70)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--reduction", default="auto")
    p.add_argument("--validation", action="store_true")
    p.add_argument("--layer-engine", action="store_true")
    p.add_argument("--augment", action="store_true")
    p.add_argument("--spatial", action="store_true")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rank = 0
    if not args.plain:
        import cnnfast.distributed as hvd
        hvd.init()
        rank = hvd.rank()
    x, y = dataset(args.model, args.samples)

    if args.scenario == "metrics":
        cb = hvd.callbacks.MetricAverageCallback()
        cb.set_model(build(args, 0))
        logs = {"a": float(rank), "b": 0.1 * (rank + 1), "same": 0.3}
        cb.on_epoch_end(0, logs)
        np.savez(os.path.join(args.out, f"rank{rank}.npz"), a=logs["a"], b=logs["b"],
                 same=logs["same"])
        return 0

    # Different initial weights on each rank (the broadcast must make them rank 0's), except
    # in "train" where every rank seeds alike, so the reference seeds the same way.
    model = build(args, 100 + rank if args.scenario == "broadcast" else 7)
    if args.scenario == "mismatch" and rank == 1:
        model = cf.Sequential([layers.Input((9, 9, 2)), layers.Flatten(),
                               layers.Dense(4, activation="softmax")])
    initial = [w.copy() for w in model.weights]
    opt = cf.optimizers.get(args.optimizer) if args.scenario != "warmup" else \
        cf.optimizers.SGD(0.1, momentum=0.9)
    callbacks = []
    if not args.plain:
        opt = hvd.DistributedOptimizer(opt, reduction=args.reduction)
        callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                     hvd.callbacks.MetricAverageCallback()]
    # Named by rank: only rank 0's may appear (the other ranks' checkpoints are not written).
    callbacks.append(cf.callbacks.ModelCheckpoint(os.path.join(args.out, f"ckpt-r{rank}.keras"),
                                                  monitor="loss"))
    if args.scenario == "warmup":
        class Record(cf.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seen = []

            def on_train_batch_begin(self, batch, logs=None):
                opt = self.model.optimizer
                self.seen.append((float(opt.learning_rate), opt.momentum))

        callbacks.insert(0, hvd.callbacks.LearningRateWarmupCallback(0.1, warmup_epochs=2))
        callbacks.insert(1, Record())
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if args.scenario in ("die", "raise"):
        class Die(cf.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if rank == 1 and batch == 1:
                    if args.scenario == "raise":
                        raise RuntimeError("rank 1 fails on purpose")
                    os._exit(7)  # a rank that dies without a word (no MPI_Finalize)
        callbacks.append(Die())
        args.epochs = 1000  # the others would train for a long time without the death
    if args.scenario == "broadcast":
        args.epochs = 0
    if args.scenario == "stop":
        class StopOnRank1(cf.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if rank == 1 and batch == 2:
                    self.model.stop_training = True
        callbacks.append(StopOnRank1())
    try:
        hist = model.fit(x, y, batch_size=args.batch, epochs=args.epochs, verbose=0,
                         shuffle=True, callbacks=callbacks,
                         validation_split=0.25 if args.validation else 0.0)
    except DistributedError as e:
        if args.scenario != "mismatch":
            raise
        with open(os.path.join(args.out, f"rank{rank}.txt"), "w") as f:
            f.write(str(e))
        return 0
    out = {f"w{i}": w for i, w in enumerate(model.weights)}
    out.update({f"init{i}": w for i, w in enumerate(initial)})
    for k, v in hist.history.items():
        out["h_" + k] = np.array(v)
    out["iterations"] = model.optimizer.iterations
    if args.scenario == "warmup":
        out["seen"] = np.array(callbacks[1].seen)
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
