"""The ``cnnfast`` command: train, evaluate and predict on Fashion-MNIST, with pictures.

    cnnfast train --model cnn --epochs 5 --out runs/first    # writes runs/first/report.html
    cnnfast evaluate runs/first
    cnnfast predict runs/first shoe.png
    cnnfast info

Also ``python -m cnnfast``. matplotlib (pictures) and Pillow (predict) are imported only when
used, so the command starts fast and works without them.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import sys
import time

import numpy as np

import cnnfast as cf

from . import zoo

MODEL_FILE = "model.keras"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


# ---- argument types --------------------------------------------------------------------------
def _int_at_least(lo):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    return parse


def _float_in(lo, hi, lo_open=False, hi_open=True):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else
                                                                   v <= hi))
        if not ok or not np.isfinite(v):
            lo_b, hi_b = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(
                f"must be in {lo_b}{lo}, {'inf' if hi is None else hi}{hi_b}, got {text}")
        return v
    return parse


def _model_arg(text):
    if text in zoo.NAMES:
        return text
    if text.lower().endswith(".json"):
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(f"no such model spec file: {text}")
        return text
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(NAMES_Q)} or a .json layer list)")


NAMES_Q = [repr(n) for n in zoo.NAMES]


def build_parser():
    p = argparse.ArgumentParser(
        prog="cnnfast",
        description="Train, evaluate and use small CNNs on Fashion-MNIST, with pictures.",
        epilog="Start with:  cnnfast train --model cnn --epochs 5 --out runs/first")
    p.add_argument("--version", action="version", version=f"cnnfast {cf.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a model and write a run directory with a report",
                       description="Train on Fashion-MNIST; writes the model, history, metrics, "
                                   "pictures and report.html into --out.")
    t.add_argument("--model", type=_model_arg, default="cnn",
                   metavar="{mlp,cnn,cnn2,cnn3,SPEC.json}",
                   help="architecture by name or a Keras-style JSON layer list (default: cnn)")
    t.add_argument("--epochs", type=_int_at_least(1), default=5, help="(default: 5)")
    t.add_argument("--batch-size", type=_int_at_least(1), default=32, help="(default: 32)")
    t.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default="adam",
                   help="(default: adam)")
    t.add_argument("--lr", type=_float_in(0.0, None, lo_open=True), default=None,
                   help="learning rate (default: the optimizer's, 0.001 for adam)")
    t.add_argument("--validation-split", type=_float_in(0.0, 1.0), default=0.1,
                   metavar="FRACTION",
                   help="last fraction of the training images held out for validation "
                        "(default: 0.1; 0 turns validation off)")
    t.add_argument("--early-stopping", type=_int_at_least(0), default=None, metavar="PATIENCE",
                   help="stop when val_loss has not improved for PATIENCE epochs and keep the "
                        "best weights")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--threads", type=_int_at_least(1), default=None,
                   help="native threads (default: all cores)")
    t.add_argument("--limit", type=_int_at_least(1), default=None, metavar="N",
                   help="train on the first N training images only")
    t.add_argument("--test-limit", type=_int_at_least(1), default=None, metavar="N",
                   help="evaluate on the first N test images only")
    t.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default: runs/MODEL-YYYYmmdd-HHMMSS)")
    t.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 silent, 1 progress bar (default), 2 one line per epoch")
    t.add_argument("--no-plots", action="store_true", help="skip the pictures")

    e = sub.add_parser("evaluate", help="test accuracy, per-class report, confusion matrix",
                       description="Evaluate a trained run on the Fashion-MNIST test set.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--test-limit", type=_int_at_least(1), default=None, metavar="N",
                   help="evaluate on the first N test images only")
    e.add_argument("--threads", type=_int_at_least(1), default=None)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

    r = sub.add_parser("predict", help="classify PNG/JPEG images (top-3 classes)",
                       description="Classify images with a trained run. Any PNG/JPEG is made "
                                   "grayscale 28x28 and inverted when its background is light, "
                                   "as Fashion-MNIST expects (needs Pillow).")
    r.add_argument("run_dir", metavar="RUN_DIR")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--top", type=_int_at_least(1), default=3, help="classes shown (default: 3)")
    r.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("info", help="version, build (ISA, OpenMP, threads, CUDA), data location",
                   description="Show the version, the native build and where the data is.")
    return p


# ---- helpers ---------------------------------------------------------------------------------
def _load_fashion_mnist():
    from .datasets import DatasetNotFoundError, IdxError, fashion_mnist
    try:
        return fashion_mnist.load_data()
    except DatasetNotFoundError:
        raise CLIError("Fashion-MNIST data not found (searched " +
                       ", ".join(_data_dirs()) + "; download failed): install it with "
                       "'apt-get install dataset-fashion-mnist' or set CNNFAST_DATA "
                       "(see 'cnnfast info')") from None
    except (IdxError, ValueError, OSError) as e:
        raise CLIError(f"Fashion-MNIST data is unreadable: {_one_line(e)}") from None


def _data_dirs():
    from .datasets import _fetch
    return _fetch.search_dirs("fashion-mnist")


def _data_location():
    from .datasets import _fetch, fashion_mnist
    for d in _data_dirs():
        if all(_fetch.find_file(d, f) for f in fashion_mnist.FILES):
            return f"Fashion-MNIST in {d}"
    return ("Fashion-MNIST not found in " + ", ".join(_data_dirs()) + "; the first use "
            f"downloads it into {_fetch.cache_dir('fashion-mnist')}")


def _one_line(e):
    return " ".join(str(e).split())


def _class_names():
    from .datasets.fashion_mnist import class_names
    return list(class_names)


def _prep(x):
    return x.astype(np.float32) / np.float32(255.0)


def _model_input(model, x):
    """(N, 28, 28) float images reshaped to the model's input shape."""
    shape = tuple(model.inputs[0].shape[1:])
    return np.ascontiguousarray(x.reshape((x.shape[0],) + shape))


def _optional_version(dist):
    import importlib.metadata
    import importlib.util
    mod = {"pillow": "PIL"}.get(dist, dist)
    if importlib.util.find_spec(mod) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _history_csv(path, history):
    keys = sorted(history)
    n = max((len(v) for v in history.values()), default=0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["epoch"] + keys)
        for i in range(n):
            w.writerow([i] + [f"{history[k][i]:.6g}" if i < len(history[k]) else ""
                              for k in keys])


def _load_run_model(run_dir):
    if not os.path.isdir(run_dir):
        raise CLIError(f"no such run directory: {run_dir} (create one with 'cnnfast train "
                       f"--out {run_dir}')")
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise CLIError(f"{run_dir} has no {MODEL_FILE}: is it a directory written by "
                       "'cnnfast train'?")
    try:
        model = cf.models.load_model(path)
    except Exception as e:  # noqa: BLE001 - any load failure is one line for the user
        raise CLIError(f"cannot load {path}: {_one_line(e)}") from None
    if not getattr(model, "compiled", False) or getattr(model, "loss", None) is None:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return model


def _evaluate(model, x_test, y_test):
    """(loss, accuracy, probabilities, confusion matrix) on the test images."""
    from . import report
    xin = _model_input(model, _prep(x_test))
    logs = model.evaluate(xin, y_test, batch_size=256, verbose=0, return_dict=True)
    probs = model.predict(xin, batch_size=256, verbose=0)
    cm = report.confusion_matrix(y_test, probs.argmax(axis=1), probs.shape[1])
    return float(logs["loss"]), float(logs.get("accuracy", np.nan)), probs, cm


# ---- train -----------------------------------------------------------------------------------
def cmd_train(args):
    from . import report
    t_start = time.perf_counter()
    if args.threads:
        cf.set_num_threads(args.threads)
    cf.utils.set_random_seed(args.seed)
    if args.early_stopping is not None and not args.validation_split:
        raise CLIError("--early-stopping watches the validation loss: give a "
                       "--validation-split above 0")
    model_label = os.path.splitext(os.path.basename(args.model))[0] \
        if args.model.endswith(".json") else args.model
    out = args.out or os.path.join(
        "runs", f"{model_label}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise CLIError(f"cannot create the run directory {out}: {e.strerror or e}") from None

    (x_train, y_train), (x_test, y_test) = _load_fashion_mnist()
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    if args.test_limit:
        x_test, y_test = x_test[:args.test_limit], y_test[:args.test_limit]
    names = _class_names()

    if args.model.endswith(".json"):
        try:
            model = zoo.from_spec(args.model)
        except (zoo.SpecError, OSError) as e:
            raise CLIError(f"{args.model}: {_one_line(e)}") from None
        description = f"custom layer list from {args.model}"
    else:
        model = zoo.build(args.model)
        description = zoo.DESCRIPTIONS[args.model]
    if tuple(model.outputs[0].shape[1:]) != (10,):
        raise CLIError(f"the model must end in 10 outputs (one per class), this one gives "
                       f"{tuple(model.outputs[0].shape[1:])}")
    opt_cls = {"adam": cf.optimizers.Adam, "sgd": cf.optimizers.SGD,
               "rmsprop": cf.optimizers.RMSprop}[args.optimizer]
    optimizer = opt_cls() if args.lr is None else opt_cls(learning_rate=args.lr)
    lr = float(optimizer.learning_rate) if hasattr(optimizer, "learning_rate") else args.lr
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    summary = io.StringIO()
    model.summary(print_fn=lambda s: summary.write(s + "\n"))
    if args.verbose:
        print(summary.getvalue(), end="")

    callbacks = []
    if args.early_stopping is not None:
        callbacks.append(cf.callbacks.EarlyStopping(monitor="val_loss",
                                                    patience=args.early_stopping,
                                                    restore_best_weights=True,
                                                    verbose=1 if args.verbose else 0))
    x_in = _model_input(model, _prep(x_train))
    n_val = len(x_in) - int(np.floor(len(x_in) * (1.0 - args.validation_split))) \
        if args.validation_split else 0
    if args.validation_split and (n_val == 0 or n_val == len(x_in)):
        raise CLIError(f"--validation-split {args.validation_split} leaves no training or no "
                       f"validation images out of {len(x_in)}")
    t0 = time.perf_counter()
    try:
        history = model.fit(x_in, y_train, batch_size=args.batch_size, epochs=args.epochs,
                            validation_split=args.validation_split or 0.0, verbose=args.verbose,
                            callbacks=callbacks)
    except KeyboardInterrupt:
        raise CLIError("training interrupted") from None
    train_s = time.perf_counter() - t0
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    epochs_run = len(history.epoch)

    t1 = time.perf_counter()
    test_loss, test_acc, probs, cm = _evaluate(model, x_test, y_test)
    eval_s = time.perf_counter() - t1
    metrics = report.classification_metrics(cm, names)
    report_text = report.classification_report(cm, names)
    cm_text = report.confusion_matrix_text(cm, names)
    n_train = len(x_in) - n_val
    ips = n_train * epochs_run / train_s if train_s > 0 else float("nan")

    # -- files --
    model.save(os.path.join(out, MODEL_FILE))
    written = [MODEL_FILE]
    info = cf.build_info()
    settings = {
        "model": args.model, "description": description, "params": model.count_params(),
        "optimizer": args.optimizer, "learning_rate": lr, "batch_size": args.batch_size,
        "epochs": args.epochs, "epochs_run": epochs_run,
        "validation_split": args.validation_split, "early_stopping": args.early_stopping,
        "seed": args.seed, "threads": cf.get_num_threads(), "limit": args.limit,
        "test_limit": args.test_limit, "train_images": n_train, "validation_images": n_val,
        "test_images": int(len(x_test)), "cnnfast": cf.__version__,
        "build": {k: info[k] for k in ("compiler", "openmp", "isa")},
        "python": platform.python_version(), "numpy": np.__version__,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "cnnfast " + " ".join(sys.argv[1:]) if _is_cli_argv() else None,
    }
    results = {"test_loss": test_loss, "test_accuracy": test_acc,
               "train_seconds": round(train_s, 3), "eval_seconds": round(eval_s, 3),
               "images_per_second": round(ips, 1), "epochs_run": epochs_run,
               "final": {k: v[-1] for k, v in hist.items()},
               "confusion_matrix": cm.tolist(), "classification_report": metrics}
    _write_json(os.path.join(out, "run.json"), settings)
    _write_json(os.path.join(out, "metrics.json"), results)
    _write_json(os.path.join(out, "history.json"), hist)
    _history_csv(os.path.join(out, "history.csv"), hist)
    _write_json(os.path.join(out, "spec.json"), zoo.to_layer_list(model))
    for fname, text in (("classification_report.txt", report_text),
                        ("confusion_matrix.txt", cm_text), ("model_summary.txt",
                                                            summary.getvalue())):
        with open(os.path.join(out, fname), "w", encoding="utf-8") as f:
            f.write(text)
    written += ["run.json", "metrics.json", "history.json", "history.csv", "spec.json",
                "classification_report.txt", "confusion_matrix.txt", "model_summary.txt"]

    notes = []
    figures = [] if args.no_plots else _draw_pictures(out, model, x_train, y_train, x_test,
                                                      y_test, probs, cm, hist, names, notes)
    written += [os.path.basename(f) for f, _ in figures]
    total_s = time.perf_counter() - t_start
    cards = [("Test accuracy", f"{100 * test_acc:.2f} %"), ("Test loss", f"{test_loss:.4f}"),
             ("Training time", f"{train_s:.1f} s"), ("Images / s", f"{ips:,.0f}"),
             ("Epochs", f"{epochs_run} of {args.epochs}")]
    kv = [("Model", f"{args.model}: {description}"), ("Parameters", f"{model.count_params():,}"),
          ("Optimizer", f"{args.optimizer}, learning rate {lr:g}"),
          ("Batch size", args.batch_size),
          ("Epochs", f"{epochs_run} run of {args.epochs}" + (
              f" (early stopping, patience {args.early_stopping})"
              if args.early_stopping is not None else "")),
          ("Images", f"{n_train:,} training, {n_val:,} validation (last "
                     f"{args.validation_split:g}), {len(x_test):,} test"),
          ("Seed", args.seed), ("Threads", cf.get_num_threads()),
          ("Timing", f"training {train_s:.2f} s ({ips:,.0f} images/s), test evaluation "
                     f"{eval_s:.2f} s, whole run {total_s:.1f} s"),
          ("cnnfast", f"{cf.__version__} ({info['compiler']}, ISA {info['isa']}, OpenMP "
                      f"{'on' if info['openmp'] else 'off'}), Python "
                      f"{platform.python_version()}, NumPy {np.__version__}"),
          ("Run directory", os.path.abspath(out))]
    if settings["command"]:
        kv.append(("Command", settings["command"]))
    hist_lines = ["epoch " + " ".join(f"{k:>14}" for k in sorted(hist))]
    for i in range(epochs_run):
        hist_lines.append(f"{i + 1:>5} " + " ".join(f"{hist[k][i]:>14.4f}"
                                                      for k in sorted(hist)))
    report.write_html(
        os.path.join(out, "report.html"),
        title=f"cnnfast run: {os.path.basename(os.path.abspath(out))}",
        subtitle=f"{args.model} on Fashion-MNIST — test accuracy {100 * test_acc:.2f} % after "
                 f"{epochs_run} epoch{'s' if epochs_run != 1 else ''}, "
                 f"{settings['started'].replace('T', ' ')}",
        cards=cards, settings=kv, figures=figures, notes=notes,
        sections=[("Per-class report (test set)", report_text),
                  ("Confusion matrix (rows: true class, columns: predicted)", cm_text),
                  ("History", "\n".join(hist_lines) + "\n"),
                  ("Model", summary.getvalue())])
    written.append("report.html")

    print(f"Test accuracy: {test_acc:.4f}  (loss {test_loss:.4f})")
    print(f"Training: {train_s:.1f} s for {epochs_run} epoch{'s' if epochs_run != 1 else ''} "
          f"({ips:,.0f} images/s); test evaluation {eval_s:.2f} s")
    for note in notes:
        print("Note: " + note)
    print(f"Wrote {out}/: " + ", ".join(written))
    print(f"Report: {os.path.abspath(os.path.join(out, 'report.html'))}")
    return 0


def _is_cli_argv():
    base = os.path.basename(sys.argv[0]) if sys.argv else ""
    return base in ("cnnfast", "__main__.py")


def _draw_pictures(out, model, x_train, y_train, x_test, y_test, probs, cm, hist, names, notes):
    from . import plotting
    if not plotting.available():
        notes.append("No pictures: " + plotting.MISSING_MESSAGE)
        return []
    first = int(y_test[0])
    jobs = [
        ("samples.png", "The first 25 training images with their classes",
         lambda p: plotting.plot_samples(x_train, y_train, names, path=p)),
        ("history.png", "Loss and accuracy per epoch (training and validation)",
         lambda p: plotting.plot_history(hist, path=p)),
        ("confusion_matrix.png", "Confusion matrix on the test images",
         lambda p: plotting.plot_confusion_matrix(cm, names, path=p)),
        ("predictions.png", "The first 25 test images: predicted class, confidence and (true "
         "class); blue when right, red when wrong",
         lambda p: plotting.plot_predictions(x_test, y_test, probs, names, path=p)),
        ("filters.png", "The first layer's learned weights",
         lambda p: plotting.plot_filters(model, path=p)),
        ("feature_maps.png", f"The first test image ({names[first]}) through every conv and "
         "pool layer",
         lambda p: plotting.plot_feature_maps(model, x_test[0], path=p, label=names[first])),
    ]
    figures = []
    for fname, caption, draw in jobs:
        path = os.path.join(out, fname)
        try:
            draw(path)
        except ValueError as e:  # e.g. an MLP has no feature maps
            notes.append(f"No {fname}: {_one_line(e)}")
            continue
        figures.append((path, caption))
    return figures


# ---- evaluate / predict / info ---------------------------------------------------------------
def cmd_evaluate(args):
    from . import report
    if args.threads:
        cf.set_num_threads(args.threads)
    model = _load_run_model(args.run_dir)
    _, (x_test, y_test) = _load_fashion_mnist()
    if args.test_limit:
        x_test, y_test = x_test[:args.test_limit], y_test[:args.test_limit]
    names = _class_names()
    loss, acc, _, cm = _evaluate(model, x_test, y_test)
    if args.json:
        print(json.dumps({"run_dir": args.run_dir, "test_images": int(len(y_test)),
                          "test_loss": loss, "test_accuracy": acc,
                          "classification_report": report.classification_metrics(cm, names),
                          "confusion_matrix": cm.tolist()}, indent=2))
        return 0
    print(f"Test accuracy: {acc:.4f}")
    print(f"Test loss:     {loss:.4f}")
    print(f"({len(y_test):,} test images, model {os.path.join(args.run_dir, MODEL_FILE)})\n")
    print(report.classification_report(cm, names))
    print("Confusion matrix (rows: true class, columns: predicted class)")
    print(report.confusion_matrix_text(cm, names), end="")
    return 0


def top_k(probs, names, k=3):
    """[(class name, class index, probability)] of the k most probable classes."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(names[i] if i < len(names) else str(i), int(i), float(probs[i])) for i in order]


def predict_images(model, images, names, k=3):
    """Top-k classes for a list of (28, 28) 0..1 images (as cnnfast.images.load_image gives)."""
    x = _model_input(model, np.stack(images).astype(np.float32))
    probs = model.predict(x, batch_size=256, verbose=0)
    return [top_k(p, names, k) for p in probs]


def cmd_predict(args):
    from . import images as images_mod
    missing = [p for p in args.images if not os.path.isfile(p)]
    if missing:
        raise CLIError(f"no such image: {missing[0]}" +
                       (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    try:
        images_mod._pil()
    except images_mod.ImagesUnavailable as e:
        raise CLIError(str(e)) from None
    loaded = []
    for p in args.images:
        try:
            loaded.append(images_mod.load_image(p))
        except (ValueError, OSError) as e:
            raise CLIError(_one_line(e) if str(p) in str(e) else f"{p}: {_one_line(e)}") \
                from None
    model = _load_run_model(args.run_dir)
    results = predict_images(model, loaded, _class_names(), args.top)
    if args.json:
        print(json.dumps([{"image": p, "predictions": [
            {"class": n, "index": i, "probability": round(pr, 6)} for n, i, pr in top]}
            for p, top in zip(args.images, results)], indent=2))
        return 0
    for p, top in zip(args.images, results):
        print(f"{p}: " + ", ".join(f"{n} {100 * pr:.1f}%" for n, _, pr in top))
    return 0


def cmd_info(args):
    info = cf.build_info()
    print(f"cnnfast {cf.__version__}")
    print(f"build:   {info['compiler']}, OpenMP {'yes' if info['openmp'] else 'no'}, ISA "
          f"{info['isa']} (supported: {info.get('supported_isas', info['isa'])}), "
          f"{info['num_threads']} threads")
    print(f"CUDA:    {'yes' if info.get('cuda') else 'no'} (cnnfast runs on the CPU)")
    print(f"data:    {_data_location()}")
    mpl, pil = _optional_version("matplotlib"), _optional_version("pillow")
    print("extras:  " + (f"matplotlib {mpl}" if mpl else
                         "matplotlib not installed (pictures: pip install 'cnnfast[plot]')") +
          "; " + (f"Pillow {pil}" if pil else
                  "Pillow not installed (predict: pip install 'cnnfast[images]')"))
    print(f"python:  {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.system()} {platform.machine()}")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "info": cmd_info}


def main(argv=None):
    """Entry point of the ``cnnfast`` console script and ``python -m cnnfast``. Returns the
    exit status: 0 ok, 1 a clear one-line error, 2 bad arguments (argparse)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CLIError as e:
        sys.stdout.flush()
        print(f"cnnfast {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
