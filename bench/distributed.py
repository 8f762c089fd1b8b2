"""Data-parallel training on this machine: 1 process x 2 threads against 2 MPI ranks x 1 thread
(cnnfast.distributed), per tutorial model, and the scaling model of docs/distributed.md.

    python -m bench.distributed                      # all models, 32 rows per rank per step
    python -m bench.distributed --models cnn --batch 32 --steps 40
    python -m bench.distributed --scaling            # + the 8-64 node table from these figures

Each measurement runs in a fresh process (the ranks under mpiexec -n 2), on synthetic 28x28
images, after a warm-up: wall images/s of `fit`, and for the ranks the step's split into
compute and the gradient all-reduce (GradientReducer.seconds). The all-reduce of each
reduction mode is also timed alone on the model's gradient size. Wall-clock figures need a
quiet machine: on shared cores they are an upper bound on the cost, not the cost.
Needs cnnfast[mpi] (mpi4py, mpiexec)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("mlp", "cnn", "cnn2", "cnn3")
REDUCTIONS = ("allgather", "reduce_scatter", "reduce_bcast")


def _model(name):
    import cnnfast as cf
    from cnnfast import zoo
    cf.utils.set_random_seed(0)
    return zoo.build(name)


def _data(n, shape):
    import numpy as np
    r = np.random.default_rng(0)
    return r.random((n,) + tuple(shape), dtype=np.float32), r.integers(0, 10, n).astype(np.int32)


def worker(mode, name, batch, steps):
    """One measurement in this process (mode 'single' or 'ranks'); prints one JSON line (rank 0
    only under MPI)."""
    import numpy as np

    import cnnfast as cf
    rank, size, hvd = 0, 1, None
    if mode == "ranks":
        import cnnfast.distributed as hvd
        hvd.init()
        rank, size = hvd.rank(), hvd.size()
    model = _model(name)
    opt = cf.optimizers.Adam()
    if hvd is not None:
        opt = hvd.DistributedOptimizer(opt)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(batch * size * steps, model.inputs[0].shape[1:])
    cbs = [hvd.callbacks.BroadcastGlobalVariablesCallback(0)] if hvd else []
    model.fit(x[:batch * size * 2], y[:batch * size * 2], batch_size=batch, epochs=1, verbose=0,
              callbacks=cbs)  # warm-up: builds the engine and the buffers
    red = getattr(model.optimizer, "_distributed", None)
    if red is not None:
        red.seconds, red.calls = 0.0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"mode": mode, "model": name, "ranks": size, "batch_per_rank": batch,
           "threads": cf.get_num_threads(), "steps": steps, "params": model.count_params(),
           "wall_s": wall, "cpu_s_rank0": cpu, "images_per_s": batch * size * steps / wall,
           "step_ms": 1e3 * wall / steps}
    if red is not None:
        ar = np.array([red.seconds, cpu], np.float64)
        tot = hvd.allreduce(ar, average=False)
        out["allreduce_ms"] = 1e3 * float(tot[0]) / size / steps
        out["cpu_s"] = float(tot[1])  # all ranks'
    else:
        out["cpu_s"] = cpu
    out["cpu_ms_per_image"] = 1e3 * out["cpu_s"] / (batch * size * steps)
    if red is not None:
        out["reduction"] = red.reduction
        out["reductions_ms"] = _time_reductions(hvd, model, 20)
    if rank == 0:
        print(json.dumps(out), flush=True)


def _time_reductions(hvd, model, reps):
    """ms per all-reduce of the model's gradients, alone, for each reduction mode."""
    import numpy as np

    from cnnfast.distributed.comm import world
    from cnnfast.distributed.optimizer import GradientReducer
    grads = [np.ones_like(w) for w in model.trainable_weights]
    res = {}
    for mode in REDUCTIONS:
        red = GradientReducer(world(), mode)
        red.allreduce_gradients(grads, 0.5)
        hvd.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            red.allreduce_gradients(grads, 0.5)
        res[mode] = 1e3 * (time.perf_counter() - t0) / reps
    return res


def _run(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(name, batch, steps):
    from cnnfast.distributed import launch
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    me = [sys.executable, "-m", "bench.distributed", "--worker"]
    single = _run(me + ["single", name, str(2 * batch), str(steps)],
                  dict(env, OMP_NUM_THREADS="2"))
    cmd, menv = launch.mpiexec_command(2, me + ["ranks", name, str(batch), str(steps)],
                                       threads=1)
    menv["PYTHONPATH"] = env["PYTHONPATH"]
    ranks = _run(cmd, menv)
    return single, ranks


def scaling_rows(name, params, step_s, batch, nodes=(8, 16, 32, 64), gbits=(10, 25),
                 latency_s=50e-6, efficiency=0.8):
    """The model of docs/distributed.md: per step, every node computes its `batch` rows in
    step_s, then all-reduces 2(N-1)/N * 4 * params bytes at `efficiency` of the link's rate,
    plus 2(N-1) messages of `latency_s` (the ring's rounds); no overlap of the two."""
    rows = []
    for g in gbits:
        rate = g * 1e9 / 8 * efficiency
        for n in nodes:
            nbytes = 2 * (n - 1) / n * 4 * params
            t_ar = nbytes / rate + 2 * (n - 1) * latency_s
            t = step_s + t_ar
            rows.append({"model": name, "gbe": g, "nodes": n, "mb_per_step": nbytes / 1e6,
                         "allreduce_ms": 1e3 * t_ar, "step_ms": 1e3 * t,
                         "efficiency": step_s / t, "speedup": n * step_s / t,
                         "images_per_s": n * batch / t})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=4, metavar=("MODE", "MODEL", "BATCH", "STEPS"),
                   help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batch", type=int, default=32, help="rows per rank per step (default 32)")
    p.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    p.add_argument("--scaling", action="store_true", help="also print the 8-64 node model")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures here")
    args = p.parse_args(argv)
    if args.worker:
        mode, name, batch, steps = args.worker
        worker(mode, name, int(batch), int(steps))
        return 0
    results = []
    print("| model | params | 1 proc x 2 thr img/s | 2 ranks x 1 thr img/s | CPU ms/img 1x2 | "
          "CPU ms/img 2x1 | ranks step ms | all-reduce ms (share) | "
          "allgather / reduce_scatter / reduce_bcast ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models:
        single, ranks = measure(name, args.batch, args.steps)
        results.append({"single": single, "ranks": ranks})
        r = ranks["reductions_ms"]
        print(f"| {name} | {single['params']:,} | {single['images_per_s']:,.0f} | "
              f"{ranks['images_per_s']:,.0f} | {single['cpu_ms_per_image']:.3f} | "
              f"{ranks['cpu_ms_per_image']:.3f} | {ranks['step_ms']:.1f} | "
              f"{ranks['allreduce_ms']:.2f} ({ranks['allreduce_ms'] / ranks['step_ms']:.0%}) | "
              f"{r['allgather']:.2f} / {r['reduce_scatter']:.2f} / {r['reduce_bcast']:.2f} |",
              flush=True)
    if args.scaling:
        print("\nScaling model (per node: the compute of one rank here, 1 thread, "
              f"{args.batch} rows/step; ring all-reduce at 80% of the link, 50 us/message):")
        print("| model | GbE | nodes | MB/step | all-reduce ms | step ms | efficiency | "
              "speedup | img/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for res in results:
            s = res["ranks"]
            # one node's compute for `batch` rows: a rank's step less its all-reduce
            step_s = (s["step_ms"] - s["allreduce_ms"]) / 1e3
            for row in scaling_rows(s["model"], s["params"], step_s, args.batch):
                res.setdefault("scaling", []).append(row)
                print(f"| {row['model']} | {row['gbe']} | {row['nodes']} | "
                      f"{row['mb_per_step']:.2f} | {row['allreduce_ms']:.2f} | "
                      f"{row['step_ms']:.1f} | {row['efficiency']:.0%} | "
                      f"{row['speedup']:.1f} | {row['images_per_s']:,.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
