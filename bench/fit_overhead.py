"""What model.fit costs per step beyond the Net's own train_step, in CPU time, split by phase.

    python -m bench.fit_overhead --model cnn --batch 32 --steps 300 --verbose 0,1,2
    python -m bench.fit_overhead --cprofile          # also the top functions (CPU-time cProfile)

One OpenMP thread, in this process, CPU seconds (time.process_time) so a loaded machine does
not blur it. Per verbose setting, after a warm-up fit:
  1. a plain fit of one epoch: its CPU time per step ("fit");
  2. the same fit with the engine's Net behind a proxy that times each `_core` train_step
     ("Net step"); "fit - Net step" is what the Python loop adds (progress bar, callbacks,
     metric bookkeeping, batch source, the engine's wrapper);
  3. the same fit with a Net whose train_step returns at once: the Python loop alone, with
     warm caches (after a real step the loop's code and objects come back from memory);
  4. the same fit with every phase wrapped in a timer on this run's objects (nothing in
     cnnfast is modified on disk; the wrappers are removed afterwards).
The wrappers cost two clock reads each (about a microsecond per phase per step, counted in
the phase they wrap), so the split's total is a little above row 1's.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import models as M  # noqa: E402

clock = time.process_time


class _NetProxy:
    """The engine's _core.Net with train_step timed into acc['net']."""

    def __init__(self, net, acc):
        self._net, self._acc = net, acc

    def train_step(self, *args, **kwargs):
        t = clock()
        try:
            return self._net.train_step(*args, **kwargs)
        finally:
            self._acc["net"] += clock() - t

    def __getattr__(self, name):
        return getattr(self._net, name)


class _NoOpNet(_NetProxy):
    """A Net whose train_step does nothing (loss 0.5, 1 correct)."""

    def __init__(self, net):
        super().__init__(net, None)

    def train_step(self, *args, **kwargs):
        return 0.5, 1


def _timed(acc, key, fn):
    def wrapper(*args, **kwargs):
        t = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] += clock() - t
    return wrapper


def _timed_gen(acc, key, fn):
    """A generator function whose every next() is timed (the batch source's epoch)."""
    def wrapper(*args, **kwargs):
        it = fn(*args, **kwargs)
        while True:
            t = clock()
            try:
                item = next(it)
            except StopIteration:
                acc[key] += clock() - t
                return
            acc[key] += clock() - t
            yield item
    return wrapper


@contextlib.contextmanager
def _patched(pairs):
    """Set (owner, name, value) attributes for the duration; restore them after."""
    saved = [(o, n, vars(o).get(n, _MISSING)) for o, n, _ in pairs]
    try:
        for o, n, v in pairs:
            setattr(o, n, v)
        yield
    finally:
        for o, n, v in reversed(saved):
            if v is _MISSING:
                delattr(o, n)
            else:
                setattr(o, n, v)


_MISSING = object()


def measure(model_name, batch, steps, verbose, split=True, seed=0):
    import cnnfast as cf
    from cnnfast import callbacks as cb_mod
    from cnnfast import executor
    from cnnfast.models import data, training

    cf.set_num_threads(1)
    cf.utils.set_random_seed(seed)
    model = M.build_cnnfast(model_name)
    rng = np.random.default_rng(seed)
    n = batch * steps
    x = rng.random((n,) + tuple(M.MODELS[model_name]["input"]), dtype=np.float32)
    y = rng.integers(0, 10, n)
    val = (x[:4 * batch], y[:4 * batch])
    kw = dict(batch_size=batch, epochs=1, shuffle=True, validation_data=val)
    sink = io.StringIO()

    def fit():
        with contextlib.redirect_stdout(sink):
            model.fit(x, y, verbose=verbose, **kw)

    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    engine = executor.for_model(model, batch, "train")
    if not isinstance(engine, executor.NativeEngine):
        raise SystemExit(f"{model_name}: the native executor does not run this model")
    # the validation pass (evaluate) is outside the per-step loop: time it apart
    ev = defaultdict(float)
    with _patched([(model, "_evaluate_batches", _timed(ev, "val", model._evaluate_batches))]):
        t = clock()
        fit()
        total = clock() - t
    rows = {"fit (one epoch, per step)": total / steps,
            "validation pass (per step of the epoch)": ev["val"] / steps}
    acc = defaultdict(float)
    with _patched([(engine, "net", _NetProxy(engine.net, acc))]):
        t = clock()
        fit()
        total2 = clock() - t
    rows["Net step (C++ train_step)"] = acc["net"] / steps
    rows["fit - Net step - validation"] = (total2 - acc["net"] - ev["val"]) / steps
    # The loop alone: a Net whose train_step returns at once (the weights stay as they are),
    # so the Python side runs with warm caches; the gap to the row above is what refilling the
    # caches after each real step costs it.
    acc = defaultdict(float)
    with _patched([(engine, "net", _NoOpNet(engine.net)),
                   (model, "_evaluate_batches", _timed(acc, "val", model._evaluate_batches))]):
        t = clock()
        fit()
        total4 = clock() - t
    rows["fit - validation with a no-op Net (the loop alone, warm caches)"] = (
        total4 - acc["val"]) / steps
    phases = {}
    if split:
        acc = defaultdict(float)
        cbl = cb_mod.CallbackList
        pairs = [
            (engine, "net", _NetProxy(engine.net, acc)),
            (engine, "train_step", _timed(acc, "engine", engine.train_step)),
            (executor, "step_seed", _timed(acc, "seed", executor.step_seed)),
            (data.ArrayBatches, "epoch", _timed_gen(acc, "batches", data.ArrayBatches.epoch)),
            (cbl, "on_train_batch_begin", _timed(acc, "cb", cbl.on_train_batch_begin)),
            (cbl, "on_train_batch_end", _timed(acc, "cb", cbl.on_train_batch_end)),
            (model, "_update_trackers", _timed(acc, "metrics", model._update_trackers)),
            (model, "_logs", _timed(acc, "metrics", model._logs)),
            (training.FitRun, "checkpoint", _timed(acc, "checkpoint",
                                                   training.FitRun.checkpoint)),
            (model, "_evaluate_batches", _timed(acc, "val", model._evaluate_batches)),
        ]
        with _patched(pairs):
            t = clock()
            fit()
            total3 = clock() - t
        acc["engine"] -= acc["net"]
        named = {"engine wrapper (NativeEngine.train_step outside the Net)": "engine",
                 "step seed (executor.step_seed)": "seed",
                 "batch source (ArrayBatches.epoch)": "batches",
                 "callbacks (on_train_batch_begin/end, progress bar)": "cb",
                 "metric bookkeeping (_update_trackers, _logs)": "metrics",
                 "FitRun.checkpoint": "checkpoint"}
        phases = {k: acc[v] / steps for k, v in named.items()}
        phases["rest of the loop (fit setup, guard, epoch end)"] = (
            total3 - acc["net"] - acc["val"] - sum(acc[v] for v in named.values())) / steps
    return rows, phases


def cprofile(model_name, batch, steps, verbose, top=15):
    import cnnfast as cf

    cf.set_num_threads(1)
    cf.utils.set_random_seed(0)
    model = M.build_cnnfast(model_name)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + tuple(M.MODELS[model_name]["input"]), dtype=np.float32)
    y = rng.integers(0, 10, batch * steps)
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)
    pr = cProfile.Profile(clock)
    with contextlib.redirect_stdout(io.StringIO()):
        pr.enable()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=verbose)
        pr.disable()
    out = io.StringIO()
    pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn", choices=sorted(M.MODELS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--verbose", default="0,1,2", help="comma-separated fit verbose values")
    p.add_argument("--cprofile", action="store_true", help="also print a CPU-time cProfile")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{a.model} batch {a.batch}, {a.steps} steps, 1 thread, CPU us per step\n")
    results = {int(v): measure(a.model, a.batch, a.steps, int(v)) for v in a.verbose.split(",")}
    keys = list(next(iter(results.values()))[0]) + list(next(iter(results.values()))[1])
    print("| part | " + " | ".join(f"verbose={v}" for v in results) + " |")
    print("|---|" + "---:|" * len(results))
    for k in keys:
        vals = [{**r, **ph}[k] for r, ph in results.values()]
        print(f"| {k} | " + " | ".join(f"{v * 1e6:.1f}" for v in vals) + " |")
    if a.cprofile:
        for v in results:
            print(f"\ncProfile (CPU time), verbose={v}:\n")
            print(cprofile(a.model, a.batch, a.steps, v))


if __name__ == "__main__":
    main()
