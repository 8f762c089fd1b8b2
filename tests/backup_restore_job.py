"""The training job of tests/test_backup_restore.py, run in a subprocess that the test kills.

    python backup_restore_job.py BACKUP_DIR OUT.npz [--kill-at-step N] [--kill-in-write N]
        [--engine layer]

Trains a small CNN with Dropout and BatchNormalization on synthetic data (shuffle on,
validation_split, EarlyStopping / ReduceLROnPlateau / ModelCheckpoint, BackupAndRestore every
3 batches) and writes the final weights, the optimizer's iteration count and the History to
OUT.npz. `--kill-at-step N` SIGKILLs the process after its N-th step (counted in this process),
`--kill-in-write N` halfway through writing its N-th backup. Prints `training` when fit starts
and `step` after each step (the test times its outside kills from those)."""
import json
import os
import signal
import sys

import numpy as np


def build(cnnfast):
    keras = cnnfast.keras
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data():
    r = np.random.default_rng(7)
    x = r.normal(size=(90, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > 0).astype(np.int32) + (x[:, 4:, :4].mean(
        axis=(1, 2, 3)) > 0.2)
    return x, y


def main(argv):
    backup_dir, out = argv[0], argv[1]
    opts = dict(zip(argv[2::2], argv[3::2]))
    import cnnfast
    from cnnfast import callbacks as cbm

    if opts.get("--engine") == "layer":
        os.environ["CNNFAST_EXECUTOR"] = "0"
    cnnfast.utils.set_random_seed(11)
    model = build(cnnfast)
    x, y = data()
    kill_step = int(opts.get("--kill-at-step", 0))
    kill_write = int(opts.get("--kill-in-write", 0))
    writes = [0]

    def in_write(path):
        writes[0] += 1
        if writes[0] == kill_write:
            os.kill(os.getpid(), signal.SIGKILL)

    cbm._mid_write_hook = in_write
    steps = [0]

    class Killer(cbm.Callback):
        def on_train_begin(self, logs=None):
            print("training", flush=True)

        def on_train_batch_end(self, batch, logs=None):
            steps[0] += 1
            print("step", flush=True)
            if steps[0] == kill_step:
                os.kill(os.getpid(), signal.SIGKILL)

    callbacks = [
        cbm.BackupAndRestore(backup_dir, save_freq=3),
        cbm.EarlyStopping("val_loss", patience=3, restore_best_weights=True),
        cbm.ReduceLROnPlateau("val_loss", patience=1, factor=0.5),
        cbm.ModelCheckpoint(os.path.join(backup_dir + "-ckpt", "best.weights.h5"),
                            save_best_only=True, save_weights_only=True),
        Killer(),
    ]
    history = model.fit(x, y, batch_size=8, epochs=9, validation_split=0.2, verbose=0,
                        callbacks=callbacks)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(out + ".tmp.npz", iterations=model.optimizer.iterations,
             history=json.dumps([history.epoch, history.history]), **arrays)
    os.replace(out + ".tmp.npz", out)


if __name__ == "__main__":
    main(sys.argv[1:])
