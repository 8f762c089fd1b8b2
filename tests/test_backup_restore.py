"""BackupAndRestore (docs/resume.md): a fit killed at any moment, SIGKILL included and also
while the backup is being written, then run again with the same script, ends with the weights,
iteration count and History of a fit never interrupted, bit for bit."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import backup_restore_job as job
import numpy as np
import pytest

import cnnfast
from cnnfast import callbacks as cbm
from cnnfast import data as cdata

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "backup_restore_job.py")
ENV = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(cnnfast.__file__)))


def _run(backup_dir, out, *opts, kill_after=None, timeout=300):
    """Run the job; with kill_after=(k, s), SIGKILL it s seconds after its k-th step (so the
    kill lands inside training at any speed of the machine: in a step, a callback, a backup's
    write). Returns the exit status (-9 when killed)."""
    p = subprocess.Popen([sys.executable, JOB, str(backup_dir), str(out), *map(str, opts)],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        line = p.stdout.readline()
        assert line.strip() == "training", (line, p.stderr.read())
        steps, delay = kill_after
        while steps and p.stdout.readline():
            steps -= 1
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=timeout)
    assert p.returncode in (0, -signal.SIGKILL), err
    return p.returncode


def _result(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _assert_same_run(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        if k == "history":
            assert json.loads(str(a[k])) == json.loads(str(b[k]))
        else:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("engine", ["native", "layer"])
def test_sigkill_at_random_moments_resumes_bit_exact(tmp_path, engine):
    ref = tmp_path / "ref.npz"
    assert _run(tmp_path / "ref-backup", ref, "--engine", engine) == 0
    assert not os.path.exists(tmp_path / "ref-backup")  # delete_checkpoint=True
    reference = _result(ref)
    assert int(reference["iterations"]) > 40  # several epochs; EarlyStopping ends it early

    # Fixed kill plan: after a step (several per epoch, counted per process), halfway through
    # writing a backup (the temporary file is left torn), and from outside at times drawn
    # from a fixed seed (wherever the process is then).
    r = random.Random(1234)
    plan = [("--kill-at-step", r.randint(1, 12)) for _ in range(3)] + \
        [("--kill-in-write", r.randint(1, 4)) for _ in range(3)] + \
        [None for _ in range(3)]
    r.shuffle(plan)
    backup, out = tmp_path / "backup", tmp_path / "out.npz"
    killed = 0
    for kill in plan:
        opts = ["--engine", engine] + (list(kill) if kill else [])
        rc = _run(backup, out, *opts,
                  kill_after=None if kill else (r.randint(0, 10), r.uniform(0.0, 0.01)))
        killed += rc == -signal.SIGKILL
        if rc == 0:  # an outside kill came after the end: the next run would start over
            break
        assert not out.exists()
    assert killed >= 6
    assert _run(backup, out, "--engine", engine) == 0
    _assert_same_run(reference, _result(out))
    assert not os.path.exists(backup)


# ---- in one process: an exception interrupts the fit ------------------------------------------
class _Interrupt(Exception):
    pass


class _StopAt(cbm.Callback):
    def __init__(self, epoch, step):
        super().__init__()
        self.at = (epoch, step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise _Interrupt


def _fit(backup_dir, *extra, save_freq=3, batch_size=8, model=None, x=None, **kw):
    cnnfast.utils.set_random_seed(11)
    model = model or job.build(cnnfast)
    xd, y = job.data()
    x = xd if x is None else x
    history = model.fit(x, y, batch_size=batch_size, epochs=kw.pop("epochs", 5),
                        validation_split=0.2, verbose=0,
                        callbacks=[cbm.BackupAndRestore(backup_dir, save_freq=save_freq, **kw),
                                   cbm.EarlyStopping(patience=5), *extra])
    return model, history


@pytest.mark.parametrize("save_freq,stop", [("epoch", (2, 4)), (3, (2, 4)), (3, (1, 8)),
                                            (1, (0, 1))])
def test_history_continues_as_if_uninterrupted(tmp_path, save_freq, stop):
    ref_model, ref_hist = _fit(tmp_path / "ref", save_freq=save_freq)
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", _StopAt(*stop), save_freq=save_freq)
    assert os.listdir(tmp_path / "b") == ["backup.cnnfast"]
    model, hist = _fit(tmp_path / "b", save_freq=save_freq)
    assert hist.history == ref_hist.history and len(hist.history["loss"]) == 5
    assert hist.epoch == ref_hist.epoch == list(range(5))
    assert model.optimizer.iterations == ref_model.optimizer.iterations == 45
    for a, b in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "b").exists()


def test_resume_without_the_random_state_would_differ(tmp_path):
    """The test above can fail: a resume that restores weights and position but restarts the
    generator (what Keras's BackupAndRestore does) trains a different run."""
    ref_model, _ = _fit(tmp_path / "ref")
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", _StopAt(2, 4))
    original = cbm.BackupAndRestore.fit_resume

    def forgetful(self, run):
        state = run.gen.bit_generator.state
        at = original(self, run)
        run.gen.bit_generator.state = state
        return at

    cbm.BackupAndRestore.fit_resume = forgetful
    try:
        model, _ = _fit(tmp_path / "b")
    finally:
        cbm.BackupAndRestore.fit_resume = original
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(),
                                                         ref_model.get_weights()))


def test_backup_from_a_different_fit_is_a_clear_error(tmp_path):
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", _StopAt(1, 2), delete_checkpoint=False)
    with pytest.raises(ValueError, match=r"different fit \(batch_size differ"):
        _fit(tmp_path / "b", batch_size=16)
    with pytest.raises(ValueError, match=r"epochs differ"):
        _fit(tmp_path / "b", epochs=6)
    x, _ = job.data()
    with pytest.raises(ValueError, match=r"\(validation, x differ.*delete the directory"):
        _fit(tmp_path / "b", x=x + 1)
    other = cnnfast.keras.Sequential([cnnfast.keras.Input((8, 8, 1)),
                                      cnnfast.keras.layers.Flatten(),
                                      cnnfast.keras.layers.Dense(3, activation="softmax")])
    other.compile(cnnfast.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with pytest.raises(ValueError, match=r"\(model differ: model: backup \[\['Conv2D'"):
        _fit(tmp_path / "b", model=other)
    with pytest.raises(ValueError, match=r"callbacks differ"):
        _fit(tmp_path / "b", cbm.ReduceLROnPlateau())
    # the backup is untouched by the refused fits: the right one still resumes
    _fit(tmp_path / "b")


def test_torn_or_corrupted_backups(tmp_path):
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", _StopAt(1, 2))
    path = tmp_path / "b" / "backup.cnnfast"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="backup.cnnfast.*corrupted"):
        _fit(tmp_path / "b")
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="truncated"):
        _fit(tmp_path / "b")
    path.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="not a cnnfast backup"):
        _fit(tmp_path / "b")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        _fit(tmp_path / "b")


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path):
    ref_model, ref_hist = _fit(tmp_path / "ref", double_checkpoint=True)
    with pytest.raises(_Interrupt):
        _fit(tmp_path / "b", _StopAt(2, 4), double_checkpoint=True)
    assert sorted(os.listdir(tmp_path / "b")) == ["backup.cnnfast", "backup.cnnfast.prev"]
    (tmp_path / "b" / "backup.cnnfast").write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="restoring the previous backup"):
        model, hist = _fit(tmp_path / "b", double_checkpoint=True)
    assert hist.history == ref_hist.history
    for a, b in zip(model.get_weights(), ref_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_delete_checkpoint_false_keeps_the_backup_and_a_finished_fit_resumes_at_its_end(
        tmp_path):
    model, hist = _fit(tmp_path / "b", save_freq="epoch", delete_checkpoint=False)
    assert os.listdir(tmp_path / "b") == ["backup.cnnfast"]
    weights = model.get_weights()
    model2, hist2 = _fit(tmp_path / "b", save_freq="epoch", delete_checkpoint=False)
    assert model2.optimizer.iterations == 45 and hist2.history == hist.history
    for a, b in zip(model2.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_and_datasets(tmp_path):
    with pytest.raises(ValueError, match="Empty `backup_dir`"):
        cbm.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        cbm.BackupAndRestore(tmp_path, save_freq="batch")
    with pytest.raises(ValueError, match="positive"):
        cbm.BackupAndRestore(tmp_path, save_freq=0)
    with pytest.raises(ValueError, match="save_freq"):
        cbm.BackupAndRestore(tmp_path, save_freq=True)
    model = job.build(cnnfast)
    x, y = job.data()
    ds = cdata.Dataset.from_tensor_slices((x, y)).batch(8)
    with pytest.raises(NotImplementedError, match="Dataset as x"):
        model.fit(ds, epochs=1, verbose=0, callbacks=[cbm.BackupAndRestore(tmp_path / "d")])
    with pytest.raises(RuntimeError, match="inside model.fit"):
        cb = cbm.BackupAndRestore(tmp_path / "e")
        cb.set_model(job.build(cnnfast))
        cb.on_train_begin()
    assert cnnfast.keras.callbacks.BackupAndRestore is cbm.BackupAndRestore
