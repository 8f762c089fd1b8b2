"""A training run of the ``cnnfast`` command, and its run directory.

    cfg = RunConfig(model="cnn", epochs=5)
    run = train_run(cfg, load_data())            # builds, trains and tests; a Run
    written = write_run_dir("runs/first", run)   # model, settings, metrics, history, texts
    figures, notes = draw_pictures("runs/first", run)
    model = load_run("runs/first")               # the trained model again, compiled

cli.py parses the arguments and prints; report.run_page() turns a Run into report.html. The
file names below are the run directory's format: `cnnfast evaluate` and `predict` read it.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json
import os
import platform
import time

import numpy as np

from . import __version__, callbacks, optimizers, plotting, report, utils, zoo
from .backend import build_info, get_num_threads, set_num_threads
from .datasets import DatasetNotFoundError, IdxError, _fetch, fashion_mnist
from .models import load_model

MODEL_FILE = "model.keras"
RUN_FILES = (MODEL_FILE, "run.json", "metrics.json", "history.json", "history.csv", "spec.json",
             "classification_report.txt", "confusion_matrix.txt", "model_summary.txt")
OPTIMIZERS = {"adam": optimizers.Adam, "sgd": optimizers.SGD, "rmsprop": optimizers.RMSprop}


class RunError(Exception):
    """A user-facing failure (bad settings, missing data, unreadable run): one line of text."""


@dataclasses.dataclass
class RunConfig:
    """What to train, as `cnnfast train`'s options. `model` is a zoo name or a .json layer list;
    `command` is the command line recorded in run.json (None outside the console script).
    Raises RunError for early stopping without a validation split."""

    model: str = "cnn"
    epochs: int = 5
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None
    validation_split: float = 0.1
    early_stopping: int | None = None
    seed: int = 0
    threads: int | None = None
    limit: int | None = None
    test_limit: int | None = None
    verbose: int = 1
    command: str | None = None

    def __post_init__(self):
        """Reject settings that cannot run together (raises RunError)."""
        if self.early_stopping is not None and not self.validation_split:
            raise RunError("--early-stopping watches the validation loss: give a "
                           "--validation-split above 0")

    @property
    def label(self):
        """The model's short name: the zoo name, or the spec file's name without .json."""
        if self.model.endswith(".json"):
            return os.path.splitext(os.path.basename(self.model))[0]
        return self.model


@dataclasses.dataclass
class Run:
    """A trained and tested model with everything the run directory and the report show.
    `data` is ((x_train, y_train), (x_test, y_test)) as trained and tested (uint8 images);
    `settings` is run.json's content; times are in seconds."""

    config: RunConfig
    model: object
    description: str
    learning_rate: float
    summary: str
    history: dict
    epochs_run: int
    n_train: int
    n_val: int
    train_seconds: float
    eval_seconds: float
    test_loss: float
    test_accuracy: float
    probs: np.ndarray
    confusion: np.ndarray
    class_names: list
    data: tuple
    settings: dict = dataclasses.field(default_factory=dict)

    @property
    def images_per_second(self):
        """Training throughput: training images times epochs run over the training time."""
        if self.train_seconds <= 0:
            return float("nan")
        return self.n_train * self.epochs_run / self.train_seconds

    @property
    def report_text(self):
        """The per-class precision / recall / F1 table on the test images."""
        return report.classification_report(self.confusion, self.class_names)

    @property
    def confusion_text(self):
        """The confusion matrix on the test images as an aligned text table."""
        return report.confusion_matrix_text(self.confusion, self.class_names)


# ---- small shared helpers --------------------------------------------------------------------
def one_line(e):
    """An exception's message with its whitespace (newlines too) collapsed to single spaces."""
    return " ".join(str(e).split())


def data_dirs():
    """The folders searched for Fashion-MNIST, in order."""
    return _fetch.search_dirs("fashion-mnist")


def class_names():
    """Fashion-MNIST's ten class names, as a list."""
    return list(fashion_mnist.class_names)


def model_input(model, x):
    """(N, 28, 28) float images reshaped (contiguous) to the model's input shape."""
    shape = tuple(model.inputs[0].shape[1:])
    return np.ascontiguousarray(x.reshape((x.shape[0],) + shape))


def _prep(x):
    """uint8 images as float32 in [0, 1]."""
    return x.astype(np.float32) / np.float32(255.0)


def write_text(path, text):
    """Write `text` to `path` as UTF-8. Returns None."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_json(path, obj):
    """Write `obj` to `path` as indented JSON with a final newline. Returns None."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _history_csv(path, history):
    """Write history {name: [value]} as CSV: an epoch column (from 0), then the names sorted.
    Returns None."""
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["epoch"] + keys)
        for i in range(n):
            w.writerow([i] + [f"{history[k][i]:.6g}" if i < len(history[k]) else ""
                              for k in keys])


# ---- data and run directory ------------------------------------------------------------------
def load_data(limit=None, test_limit=None):
    """Fashion-MNIST as ((x_train, y_train), (x_test, y_test)), uint8 (N, 28, 28) images,
    cut to the first `limit` training and `test_limit` test images when given. Raises
    RunError when the data is missing or unreadable."""
    try:
        (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    except DatasetNotFoundError:
        raise RunError("Fashion-MNIST data not found (searched " + ", ".join(data_dirs()) +
                       "; download failed): install it with 'apt-get install "
                       "dataset-fashion-mnist' or set CNNFAST_DATA (see 'cnnfast info')") from None
    except (IdxError, ValueError, OSError) as e:
        raise RunError(f"Fashion-MNIST data is unreadable: {one_line(e)}") from None
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return (x_train, y_train), (x_test, y_test)


def default_run_dir(label):
    """runs/LABEL-YYYYmmdd-HHMMSS (now, local time), relative to the working directory."""
    return os.path.join("runs", f"{label}-{datetime.datetime.now():%Y%m%d-%H%M%S}")


def make_run_dir(out):
    """Create the run directory `out` (it may exist). Returns `out`; raises RunError."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot create the run directory {out}: {e.strerror or e}") from None
    return out


def load_run(run_dir):
    """The model saved in a run directory, compiled (for evaluate and predict even when the
    file holds no training config). Raises RunError when the directory or model is missing
    or unreadable."""
    if not os.path.isdir(run_dir):
        raise RunError(f"no such run directory: {run_dir} (create one with 'cnnfast train "
                       f"--out {run_dir}')")
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise RunError(f"{run_dir} has no {MODEL_FILE}: is it a directory written by "
                       "'cnnfast train'?")
    try:
        model = load_model(path)
    except Exception as e:  # noqa: BLE001 - any load failure is one line for the user
        raise RunError(f"cannot load {path}: {one_line(e)}") from None
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


# ---- training --------------------------------------------------------------------------------
def build_model(cfg):
    """The compiled model `cfg` names. Returns (model, description, learning rate); raises
    RunError for a bad spec file or a model that does not end in 10 outputs."""
    if cfg.model.endswith(".json"):
        try:
            model = zoo.from_spec(cfg.model)
        except (zoo.SpecError, OSError) as e:
            raise RunError(f"{cfg.model}: {one_line(e)}") from None
        description = f"custom layer list from {cfg.model}"
    else:
        model = zoo.build(cfg.model)
        description = zoo.DESCRIPTIONS[cfg.model]
    if tuple(model.outputs[0].shape[1:]) != (10,):
        raise RunError(f"the model must end in 10 outputs (one per class), this one gives "
                       f"{tuple(model.outputs[0].shape[1:])}")
    opt_cls = OPTIMIZERS[cfg.optimizer]
    optimizer = opt_cls() if cfg.lr is None else opt_cls(learning_rate=cfg.lr)
    lr = float(optimizer.learning_rate) if hasattr(optimizer, "learning_rate") else cfg.lr
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model, description, lr


def validation_count(n, split):
    """How many of `n` images Keras's validation_split holds out (the last ones). Raises
    RunError when that leaves no training or no validation images."""
    if not split:
        return 0
    n_val = n - int(np.floor(n * (1.0 - split)))
    if n_val == 0 or n_val == n:
        raise RunError(f"--validation-split {split} leaves no training or no validation "
                       f"images out of {n}")
    return n_val


def evaluate(model, x_test, y_test):
    """(loss, accuracy, probabilities (N, 10), confusion matrix (10, 10)) on uint8 test
    images (N, 28, 28)."""
    xin = model_input(model, _prep(x_test))
    logs = model.evaluate(xin, y_test, batch_size=256, verbose=0, return_dict=True)
    probs = model.predict(xin, batch_size=256, verbose=0)
    cm = report.confusion_matrix(y_test, probs.argmax(axis=1), probs.shape[1])
    return float(logs["loss"]), float(logs.get("accuracy", np.nan)), probs, cm


def _fit(model, cfg, x_in, y, first=()):
    """model.fit with cfg's settings, callbacks `first` ahead of cfg's. Returns (history
    {name: [float]}, epochs run, seconds)."""
    cbs = list(first)
    if cfg.early_stopping is not None:
        cbs.append(callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping,
                                           restore_best_weights=True,
                                           verbose=1 if cfg.verbose else 0))
    t0 = time.perf_counter()
    try:
        history = model.fit(x_in, y, batch_size=cfg.batch_size, epochs=cfg.epochs,
                            validation_split=cfg.validation_split or 0.0, verbose=cfg.verbose,
                            callbacks=cbs)
    except KeyboardInterrupt:
        raise RunError("training interrupted") from None
    seconds = time.perf_counter() - t0
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    return hist, len(history.epoch), seconds


def train_run(cfg, data, distribute=None):
    """Seed, build, train and test the model `cfg` describes on `data` (as load_data gives).
    Prints the model summary and Keras's progress when cfg.verbose. Returns a Run; raises
    RunError for a bad model or validation split, or when training is interrupted.
    distribute(model), when given, is called on the compiled model and returns callbacks for
    fit to run first (`cnnfast train --workers`: cnnfast.distributed)."""
    if cfg.threads:
        set_num_threads(cfg.threads)
    utils.set_random_seed(cfg.seed)
    (x_train, y_train), (x_test, y_test) = data
    model, description, lr = build_model(cfg)
    first = distribute(model) if distribute is not None else ()
    summary = io.StringIO()
    model.summary(print_fn=lambda s: summary.write(s + "\n"))
    if cfg.verbose:
        print(summary.getvalue(), end="")
    x_in = model_input(model, _prep(x_train))
    n_val = validation_count(len(x_in), cfg.validation_split)
    hist, epochs_run, train_s = _fit(model, cfg, x_in, y_train, first)
    t1 = time.perf_counter()
    test_loss, test_acc, probs, cm = evaluate(model, x_test, y_test)
    eval_s = time.perf_counter() - t1
    run = Run(config=cfg, model=model, description=description, learning_rate=lr,
              summary=summary.getvalue(), history=hist, epochs_run=epochs_run,
              n_train=len(x_in) - n_val, n_val=n_val, train_seconds=train_s,
              eval_seconds=eval_s, test_loss=test_loss, test_accuracy=test_acc, probs=probs,
              confusion=cm, class_names=class_names(), data=data)
    run.settings = run_settings(run)
    return run


# ---- writing ---------------------------------------------------------------------------------
def run_settings(run):
    """run.json's content: what was trained, on what, and with which build; `started` is now."""
    cfg, info = run.config, build_info()
    return {
        "model": cfg.model, "description": run.description, "params": run.model.count_params(),
        "optimizer": cfg.optimizer, "learning_rate": run.learning_rate,
        "batch_size": cfg.batch_size, "epochs": cfg.epochs, "epochs_run": run.epochs_run,
        "validation_split": cfg.validation_split, "early_stopping": cfg.early_stopping,
        "seed": cfg.seed, "threads": get_num_threads(), "limit": cfg.limit,
        "test_limit": cfg.test_limit, "train_images": run.n_train,
        "validation_images": run.n_val, "test_images": int(len(run.data[1][0])),
        "cnnfast": __version__, "build": {k: info[k] for k in ("compiler", "openmp", "isa")},
        "python": platform.python_version(), "numpy": np.__version__,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": cfg.command,
    }


def run_results(run):
    """metrics.json's content: test scores, timings (rounded), final history values, the
    confusion matrix and the per-class report."""
    return {"test_loss": run.test_loss, "test_accuracy": run.test_accuracy,
            "train_seconds": round(run.train_seconds, 3),
            "eval_seconds": round(run.eval_seconds, 3),
            "images_per_second": round(run.images_per_second, 1), "epochs_run": run.epochs_run,
            "final": {k: v[-1] for k, v in run.history.items()},
            "confusion_matrix": run.confusion.tolist(),
            "classification_report": report.classification_metrics(run.confusion,
                                                                    run.class_names)}


def write_run_dir(out, run):
    """Write the run's files (RUN_FILES: the model, run.json, metrics.json, history as JSON and
    CSV, spec.json and three text tables) into the existing directory `out`. Returns their
    names, in RUN_FILES order."""
    run.model.save(os.path.join(out, MODEL_FILE))
    _write_json(os.path.join(out, "run.json"), run.settings)
    _write_json(os.path.join(out, "metrics.json"), run_results(run))
    _write_json(os.path.join(out, "history.json"), run.history)
    _history_csv(os.path.join(out, "history.csv"), run.history)
    _write_json(os.path.join(out, "spec.json"), zoo.to_layer_list(run.model))
    for fname, text in (("classification_report.txt", run.report_text),
                        ("confusion_matrix.txt", run.confusion_text),
                        ("model_summary.txt", run.summary)):
        write_text(os.path.join(out, fname), text)
    return list(RUN_FILES)


def _picture_jobs(run):
    """[(file name, caption, draw(path))] for every picture of a run."""
    (x_train, y_train), (x_test, y_test) = run.data
    names, first = run.class_names, int(run.data[1][1][0])
    return [
        ("samples.png", "The first 25 training images with their classes",
         lambda p: plotting.plot_samples(x_train, y_train, names, path=p)),
        ("history.png", "Loss and accuracy per epoch (training and validation)",
         lambda p: plotting.plot_history(run.history, path=p)),
        ("confusion_matrix.png", "Confusion matrix on the test images",
         lambda p: plotting.plot_confusion_matrix(run.confusion, names, path=p)),
        ("predictions.png", "The first 25 test images: predicted class, confidence and (true "
         "class); blue when right, red when wrong",
         lambda p: plotting.plot_predictions(x_test, y_test, run.probs, names, path=p)),
        ("filters.png", "The first layer's learned weights",
         lambda p: plotting.plot_filters(run.model, path=p)),
        ("feature_maps.png", f"The first test image ({names[first]}) through every conv and "
         "pool layer",
         lambda p: plotting.plot_feature_maps(run.model, x_test[0], path=p, label=names[first])),
    ]


def draw_pictures(out, run):
    """Draw the run's pictures as PNGs into `out`. Returns (figures [(png path, caption)],
    notes [text] for the pictures that could not be drawn, e.g. an MLP's feature maps, or
    all of them without matplotlib)."""
    if not plotting.available():
        return [], ["No pictures: " + plotting.MISSING_MESSAGE]
    figures, notes = [], []
    for fname, caption, draw in _picture_jobs(run):
        path = os.path.join(out, fname)
        try:
            draw(path)
        except ValueError as e:  # e.g. an MLP has no feature maps
            notes.append(f"No {fname}: {one_line(e)}")
            continue
        figures.append((path, caption))
    return figures, notes
