"""CPU time per training step of `fit`, one thread, this tree against another — a before/after
check that holds on a busy machine.

    python -m bench.step_cpu --baseline ../base                 # all models, batch 32 and 128
    python -m bench.step_cpu --baseline ../base --models mlp --batch 32 --rounds 7

Wall-clock benchmarks (python -m bench) need a quiet machine; when other work shares the cores,
the process's own CPU seconds (time.process_time) with one OpenMP thread still measure what
the step costs, since a descheduled single-threaded process is not charged while it waits. Each
round runs every (tree, model, batch) in a fresh process, alternating the trees; the report is
the median over rounds of CPU ms per step of one epoch (after a warm-up epoch), and the ratio
base / this tree (> 1: this tree is cheaper).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(model_name, batch, steps):
    """One measurement in this process: CPU and wall ms per step of one fit epoch."""
    import importlib.util

    import numpy as np

    import cnnfast as cf

    # This tree's model specs, whichever tree's cnnfast this process measures.
    spec = importlib.util.spec_from_file_location("bench_models",
                                                  os.path.join(ROOT, "bench", "models.py"))
    M = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(M)

    cf.set_num_threads(1)
    cf.utils.set_random_seed(0)
    model = M.build_cnnfast(model_name)
    rng = np.random.default_rng(0)
    n = batch * steps
    x = rng.random((n,) + tuple(M.MODELS[model_name]["input"]), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    t, w = time.process_time(), time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return {"cpu_ms": (time.process_time() - t) / steps * 1e3,
            "wall_ms": (time.perf_counter() - w) / steps * 1e3, "cnnfast": cf.__file__}


def run_one(tree, model_name, batch, steps):
    # Run as a script: sys.path[0] is bench/, so `import cnnfast` finds the tree on PYTHONPATH.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=tree)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", model_name,
                          str(batch), str(steps)], env=env, capture_output=True, text=True,
                         check=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    if not os.path.abspath(rec["cnnfast"]).startswith(os.path.abspath(tree) + os.sep):
        raise SystemExit(f"worker for {tree} imported {rec['cnnfast']}")
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="another cnnfast tree, built in place (required)")
    p.add_argument("--models", default="mlp,cnn,cnn_dropout,cnn3_d512")
    p.add_argument("--batch", default="32,128")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="steps per epoch (0: by model)")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), int(a.worker[2]))))
        return
    if not a.baseline:
        p.error("--baseline DIR is required")
    trees = {"cnnfast": ROOT, "cnnfast@base": os.path.abspath(a.baseline)}
    cases = [(m, int(b)) for m in a.models.split(",") for b in a.batch.split(",")]
    res = {(t, m, b): [] for t in trees for m, b in cases}
    for r in range(a.rounds):
        for m, b in cases:
            steps = a.steps or (400 if m == "mlp" else 40) * 32 // b
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for t in order:
                res[(t, m, b)].append(run_one(trees[t], m, b, steps)["cpu_ms"])
    print(f"CPU ms per step, 1 thread, median of {a.rounds} alternating rounds\n")
    print("| model | batch | cnnfast | cnnfast@base | base / cnnfast |\n|---|---:|---:|---:|---:|")
    for m, b in cases:
        cur = statistics.median(res[("cnnfast", m, b)])
        base = statistics.median(res[("cnnfast@base", m, b)])
        print(f"| {m} | {b} | {cur:.3f} | {base:.3f} | {base / cur:.3f} |")


if __name__ == "__main__":
    main()
