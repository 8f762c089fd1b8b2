"""Where one cnnfast training step goes: per-op forward/backward, loss, optimizer update.

    python -m bench.profile_step --model cnn --batch 32 --threads 2 --steps 50
    python -m bench.profile_step --model cnn --python     # the per-layer Python path instead

Default: the native executor (what model.fit runs for the tutorial models), timed inside C++
by the Net's own profiler (`_core.Net.set_profiling`), plus the fit loop's time outside the
C++ step. --python: the per-layer engine (CNNFAST_EXECUTOR=0), its layers, loss and
optimizer wrapped with perf_counter timers on the model's instances (nothing in cnnfast is
modified).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import models as M  # noqa: E402


def _timed(acc, key, fn):
    """fn, adding its wall time to acc[key] on every call."""
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t
    return wrapper


def profile(model_name, batch, threads, steps, warmup=2, seed=0):
    """Per-layer times of the LayerEngine's train step (CNNFAST_EXECUTOR=0): each layer's
    forward/backward, the loss and the optimizer update are wrapped with timers on this model's
    instances; the step itself is the engine's, unchanged."""
    import cnnfast as cf
    from cnnfast import executor
    from cnnfast.models import data

    cf.set_num_threads(threads)
    cf.utils.set_random_seed(seed)
    model = M.build_cnnfast(model_name)
    rng = np.random.default_rng(seed)
    n = batch * (steps + warmup)
    x = rng.random((n,) + tuple(M.MODELS[model_name]["input"]), dtype=np.float32)
    y = rng.integers(0, 10, n)
    x = data.prepare_x(model, x, "fit")
    y = data.prepare_y(model, y, n, "fit")
    engine = executor.for_model(model, batch, "train")
    if not isinstance(engine, executor.LayerEngine):
        raise SystemExit("profile: set CNNFAST_EXECUTOR=0 for the per-layer engine")
    acc = defaultdict(float)
    for layer in model.layers:
        layer.forward = _timed(acc, f"fwd {layer.name}", layer.forward)
        layer.backward = _timed(acc, f"bwd {layer.name}", layer.backward)
    model.loss.per_sample = _timed(acc, "loss (softmax-xent)", model.loss.per_sample)
    model.optimizer.apply = _timed(acc, "optimizer update", model.optimizer.apply)
    gen = cf.utils.rng()
    perm = gen.permutation(n)
    trackers = model._new_trackers()
    pc = time.perf_counter
    for step in range(steps + warmup):
        if step == warmup:
            acc.clear()
            t_all = pc()
        idx = perm[step * batch:(step + 1) * batch]
        t = pc()
        loss, correct = engine.train_step(x, y, idx, executor.step_seed(gen))
        acc["engine step (all)"] += pc() - t
        t = pc()
        model._update_trackers(trackers, loss, correct, batch)
        model._logs(trackers)
        acc["fit loop: metrics/logs"] += pc() - t
    total = pc() - t_all
    step_total = acc.pop("engine step (all)")
    rows = [(k, v / steps) for k, v in acc.items()]
    inner = sum(v for k, v in acc.items() if k != "fit loop: metrics/logs")
    rows.append(("engine step: gather, glue (unaccounted)", (step_total - inner) / steps))
    rows.append(("other (unaccounted)", total / steps - sum(v for _, v in rows)))
    return total / steps, rows


def profile_native(model_name, batch, threads, steps, seed=0):
    """Per-op times of the native executor's train step over `steps` steps of model.fit."""
    import cnnfast as cf
    from cnnfast import executor

    cf.set_num_threads(threads)
    cf.utils.set_random_seed(seed)
    model = M.build_cnnfast(model_name)
    rng = np.random.default_rng(seed)
    n = batch * steps
    x = rng.random((n,) + tuple(M.MODELS[model_name]["input"]), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    engine = executor.for_model(model, batch, "train")
    if not isinstance(engine, executor.NativeEngine):
        raise SystemExit(f"{model_name}: the native executor does not run this model")
    net, layers = engine.net, engine.layers
    net.set_profiling(True)
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
    total = (time.perf_counter() - t) / steps
    prof = net.profile()
    net.set_profiling(False)
    assert prof["steps"] == steps, prof["steps"]
    rows = []
    for i, layer in enumerate(layers):
        name = f"{layer.name} ({type(layer).__name__})"
        rows.append((f"fwd {name}", prof["fwd_ms"][i] / 1e3 / steps))
    rows.append(("loss (fused softmax-xent) + accuracy", prof["loss_ms"] / 1e3 / steps))
    for i, layer in reversed(list(enumerate(layers))):
        if prof["bwd_ms"][i] > 0:
            rows.append((f"bwd {layer.name} ({type(layer).__name__})",
                         prof["bwd_ms"][i] / 1e3 / steps))
    rows.append(("optimizer update", prof["update_ms"] / 1e3 / steps))
    rows.append(("batch gather (C++)", prof["gather_ms"] / 1e3 / steps))
    rows.append(("fit loop outside the C++ step", total - sum(v for _, v in rows)))
    return total, rows


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cnn", choices=sorted(M.MODELS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--python", action="store_true",
                   help="profile the per-layer Python path instead of the native executor")
    a = p.parse_args(argv)
    if a.python:
        os.environ["CNNFAST_EXECUTOR"] = "0"
        step, rows = profile(a.model, a.batch, a.threads, a.steps)
    else:
        step, rows = profile_native(a.model, a.batch, a.threads, a.steps)
    print(f"{'Python path' if a.python else 'native executor'}: ", end="")
    print(f"{a.model} batch {a.batch}, {a.threads} threads: {step * 1e3:.2f} ms/step "
          f"({a.batch / step:.0f} images/s)\n")
    print("| part | ms/step | share |\n|---|---:|---:|")
    for k, v in rows:
        print(f"| {k} | {v * 1e3:.3f} | {100 * v / step:.1f}% |")


if __name__ == "__main__":
    main()
