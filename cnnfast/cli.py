"""The ``cnnfast`` command: train, evaluate and predict on Fashion-MNIST, with pictures.

    cnnfast train --model cnn --epochs 5 --out runs/first    # writes runs/first/report.html
    cnnfast evaluate runs/first
    cnnfast predict runs/first shoe.png
    cnnfast export runs/first --onnx                          # writes runs/first/model.onnx
    cnnfast info

Also ``python -m cnnfast``. matplotlib (pictures) and Pillow (predict) are imported only when
used, so the command starts fast and works without them. This module parses and prints; the
run itself (train, write and load the run directory) is cnnfast.runs, the page report.run_page.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import cnnfast as cf

from . import report, runs, zoo
from .runs import MODEL_FILE

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


# ---- argument types --------------------------------------------------------------------------
def _int_at_least(lo):
    """An argparse type: an int of at least `lo` (a clear message otherwise)."""
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
    """An argparse type: a finite float in the interval lo..hi (hi None: unbounded)."""
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
    """An argparse type: a zoo model name or the path of an existing .json layer list."""
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
    """The ``cnnfast`` argument parser with its train, evaluate, predict and info commands."""
    p = argparse.ArgumentParser(
        prog="cnnfast",
        description="Train, evaluate and use small CNNs on Fashion-MNIST, with pictures.",
        epilog="Start with:  cnnfast train --model cnn --epochs 5 --out runs/first")
    p.add_argument("--version", action="version", version=f"cnnfast {cf.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train_parser(sub)
    _add_run_parsers(sub)
    sub.add_parser("info", help="version, build (ISA, OpenMP, threads, CUDA), data location",
                   description="Show the version, the native build and where the data is.")
    return p


def _add_train_parser(sub):
    """Add the `train` command and its options to the subparsers `sub`. Returns None."""
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
    t.add_argument("--workers", type=_int_at_least(1), default=1, metavar="N",
                   help="data-parallel training on N local MPI ranks (mpiexec; each takes "
                        "--batch-size rows of every step, so the step has N times as many; "
                        "needs cnnfast[mpi]; default: 1)")


def _add_run_parsers(sub):
    """Add the `evaluate` and `predict` commands (they read a run directory) to `sub`.
    Returns None."""
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

    x = sub.add_parser("export", help="export a run's model (ONNX) to run it elsewhere",
                       description="Export a trained run's model. --onnx writes an ONNX graph "
                                   "(dynamic batch, NHWC input; needs the onnx package: pip "
                                   "install 'cnnfast[onnx]'). The run's model.keras is already "
                                   "a Keras 3 file that tf.keras loads.")
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("--onnx", action="store_true", help="write ONNX (RUN_DIR/model.onnx)")
    x.add_argument("--out", default=None, metavar="PATH",
                   help="output file (default: RUN_DIR/model.onnx)")


# ---- helpers ---------------------------------------------------------------------------------
def _data_location():
    """One line saying where Fashion-MNIST is, or where its first use will download it."""
    from .datasets import _fetch, fashion_mnist
    for d in runs.data_dirs():
        if all(_fetch.find_file(d, f) for f in fashion_mnist.FILES):
            return f"Fashion-MNIST in {d}"
    return ("Fashion-MNIST not found in " + ", ".join(runs.data_dirs()) + "; the first use "
            f"downloads it into {_fetch.cache_dir('fashion-mnist')}")


def _optional_version(dist):
    """The installed version of the optional distribution `dist`, or None without it."""
    import importlib.metadata
    import importlib.util
    mod = {"pillow": "PIL"}.get(dist, dist)
    if importlib.util.find_spec(mod) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def _is_cli_argv():
    """True when running as the ``cnnfast`` script or ``python -m cnnfast``."""
    base = os.path.basename(sys.argv[0]) if sys.argv else ""
    return base in ("cnnfast", "__main__.py")


# ---- train -----------------------------------------------------------------------------------
def run_config(args):
    """The runs.RunConfig for parsed `cnnfast train` arguments, with the command line when run
    as the console script or ``python -m cnnfast``. Raises runs.RunError for bad settings."""
    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(runs.RunConfig)
              if f.name != "command"}
    command = "cnnfast " + " ".join(sys.argv[1:]) if _is_cli_argv() else None
    return runs.RunConfig(**fields, command=command)


# Set by `cnnfast train --workers N` for the ranks it starts: they train, rank 0 writes.
WORKER_ENV = "CNNFAST_TRAIN_WORKER"


def launch_workers(args):
    """`cnnfast train --workers N`: the same command on N local ranks under mpiexec
    (cnnfast/distributed/launch.py: OpenMP threads = cores // N). Returns its exit status."""
    from .distributed import launch

    argv = [sys.executable, "-m", "cnnfast"] + list(args.argv)
    try:
        cmd, env = launch.mpiexec_command(args.workers, argv, threads=args.threads)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None
    env[WORKER_ENV] = "1"
    return subprocess.run(cmd, env=env).returncode


def _distributed_rank():
    """In a rank started by launch_workers: join the job; returns (rank, distribute) for
    runs.train_run. Elsewhere (0, None)."""
    if os.environ.get(WORKER_ENV) != "1":
        return 0, None
    try:
        from . import distributed as hvd

        hvd.init()
    except ImportError as e:
        raise CLIError(str(e)) from None

    def distribute(model):
        hvd.DistributedOptimizer(model.optimizer)  # marks the compiled optimizer
        return [hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                hvd.callbacks.MetricAverageCallback()]

    return hvd.rank(), distribute


def cmd_train(args):
    """`cnnfast train`: train and test a model, write the run directory with its pictures and
    report.html, and print the outcome. Returns the exit status 0; raises runs.RunError.
    With --workers N > 1, runs itself on N MPI ranks (rank 0 writes and prints)."""
    if args.workers > 1 and os.environ.get(WORKER_ENV) != "1":
        return launch_workers(args)
    t_start = time.perf_counter()
    rank, distribute = _distributed_rank()
    cfg = run_config(args)
    if rank != 0:
        cfg = dataclasses.replace(cfg, verbose=0)
        runs.train_run(cfg, runs.load_data(cfg.limit, cfg.test_limit), distribute)
        return 0
    out = runs.make_run_dir(args.out or runs.default_run_dir(cfg.label))
    run = runs.train_run(cfg, runs.load_data(cfg.limit, cfg.test_limit), distribute)
    written = runs.write_run_dir(out, run)
    figures, notes = ([], []) if args.no_plots else runs.draw_pictures(out, run)
    written += [os.path.basename(f) for f, _ in figures]
    page = report.run_page(run, out, figures, notes, time.perf_counter() - t_start)
    runs.write_text(os.path.join(out, "report.html"), page)
    written.append("report.html")
    _print_outcome(run, out, notes, written)
    return 0


def _print_outcome(run, out, notes, written):
    """The lines `cnnfast train` ends with: scores, timings, notes and the files written."""
    n = run.epochs_run
    print(f"Test accuracy: {run.test_accuracy:.4f}  (loss {run.test_loss:.4f})")
    print(f"Training: {run.train_seconds:.1f} s for {n} epoch{'s' if n != 1 else ''} "
          f"({run.images_per_second:,.0f} images/s); test evaluation {run.eval_seconds:.2f} s")
    for note in notes:
        print("Note: " + note)
    print(f"Wrote {out}/: " + ", ".join(written))
    print(f"Report: {os.path.abspath(os.path.join(out, 'report.html'))}")


# ---- evaluate / predict / info ---------------------------------------------------------------
def cmd_evaluate(args):
    """`cnnfast evaluate`: test a run's model and print (or --json) the scores, the per-class
    report and the confusion matrix. Returns the exit status 0; raises runs.RunError."""
    if args.threads:
        cf.set_num_threads(args.threads)
    model = runs.load_run(args.run_dir)
    _, (x_test, y_test) = runs.load_data(test_limit=args.test_limit)
    names = runs.class_names()
    loss, acc, _, cm = runs.evaluate(model, x_test, y_test)
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
    x = runs.model_input(model, np.stack(images).astype(np.float32))
    probs = model.predict(x, batch_size=256, verbose=0)
    return [top_k(p, names, k) for p in probs]


def cmd_predict(args):
    """`cnnfast predict`: print (or --json) the top classes of each image with a run's model.
    Returns the exit status 0; raises CLIError or runs.RunError."""
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
            raise CLIError(runs.one_line(e) if str(p) in str(e) else f"{p}: {runs.one_line(e)}") \
                from None
    model = runs.load_run(args.run_dir)
    results = predict_images(model, loaded, runs.class_names(), args.top)
    if args.json:
        print(json.dumps([{"image": p, "predictions": [
            {"class": n, "index": i, "probability": round(pr, 6)} for n, i, pr in top]}
            for p, top in zip(args.images, results)], indent=2))
        return 0
    for p, top in zip(args.images, results):
        print(f"{p}: " + ", ".join(f"{n} {100 * pr:.1f}%" for n, _, pr in top))
    return 0


def cmd_export(args):
    """`cnnfast export RUN --onnx`: write the run's model as ONNX and say how to run it.
    Returns the exit status 0; raises CLIError or runs.RunError."""
    if not args.onnx:
        raise CLIError("choose a format: --onnx (the run's model.keras is already a Keras "
                       "file)")
    model = runs.load_run(args.run_dir)
    out = args.out or os.path.join(args.run_dir, "model.onnx")
    try:
        model.export(out, format="onnx")
    except ImportError as e:
        raise CLIError(runs.one_line(e)) from None
    except (OSError, ValueError, NotImplementedError) as e:
        raise CLIError(f"cannot export to {out}: {runs.one_line(e)}") from None
    shape = tuple(model.inputs[0].shape[1:])
    print(f"Wrote {out} (ONNX, input 'input' of shape (batch,) + {shape}, output 'output')")
    print("Run it with onnxruntime:")
    print("    import onnxruntime as ort")
    print(f"    sess = ort.InferenceSession({out!r})")
    print("    probs = sess.run(None, {'input': x})[0]   # x: float32, "
          f"shape (n, {', '.join(map(str, shape))})")
    return 0


def cmd_info(args):
    """`cnnfast info`: print the version, the native build, the data location and the
    optional extras. Returns the exit status 0."""
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
            "export": cmd_export, "info": cmd_info}


def main(argv=None):
    """Entry point of the ``cnnfast`` console script and ``python -m cnnfast``. Returns the
    exit status: 0 ok, 1 a clear one-line error, 2 bad arguments (argparse)."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except (CLIError, runs.RunError) as e:
        sys.stdout.flush()
        print(f"cnnfast {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cnnfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
