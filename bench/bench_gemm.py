"""Benchmark cnnfast's SGEMM (every ISA) against numpy/OpenBLAS, and the conv/dense layers.

Usage (from the repository root, after `python setup.py build_ext --inplace`):
    python bench/bench_gemm.py                 # GEMM table + layer table
    python bench/bench_gemm.py --layers-only   # conv2d/dense timings only (works on old builds)
    python bench/bench_gemm.py --quick         # fewer repeats

Every GEMM result is validated against a float64 numpy product before it is timed. Timings are
the median of several runs after a warm-up. Results print as markdown tables and are appended as
JSON lines to bench/out/bench_gemm.jsonl (gitignored).

numpy's thread count is fixed when OpenBLAS loads, so the numpy baseline for each thread count
runs in a child process started with OPENBLAS_NUM_THREADS set.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "bench", "out")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from bench.kernels import time_call  # noqa: E402


# (name, M, N, K, trans_a, trans_b): the GEMMs the tutorial CNN runs, named by layer and pass.
#   conv fwd:      out  (M=B*OH*OW, OC)  = col (M, K=KH*KW*C) @ weight (K, OC)
#   conv dweight:  dW   (K, OC)          = col^T @ dout        -> trans_a, inner dim B*OH*OW
#   conv dcol:     dcol (B*OH*OW, K)     = dout @ weight^T     -> trans_b
#   dense fwd/dW/dinp likewise with M=B.
def gemm_shapes(batch):
    b = batch
    return [
        (f"conv1 fwd B={b}", b * 784, 32, 9, False, False),
        (f"conv1 dW B={b}", 9, 32, b * 784, True, False),
        (f"conv2 fwd B={b}", b * 196, 64, 288, False, False),
        (f"conv2 dW B={b}", 288, 64, b * 196, True, False),
        (f"conv2 dcol B={b}", b * 196, 288, 64, False, True),
        (f"dense1600 fwd B={b}", b, 128, 1600, False, False),
        (f"dense3136 fwd B={b}", b, 128, 3136, False, False),
        (f"dense3136 dW B={b}", 3136, 128, b, True, False),
        (f"dense3136 dinp B={b}", b, 3136, 128, False, True),
    ]


SQUARE = [("square 512", 512, 512, 512, False, False),
          ("square 1024", 1024, 1024, 1024, False, False)]


def operands(M, N, K, ta, tb, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    return a, b


def median_time(fn, repeats, min_time=0.02):
    """Median seconds of one call; each sample loops until it lasts min_time (short calls)."""
    return time_call(fn, repeats, min_time)[0]


def numpy_worker(shapes, repeats):
    """Runs in a child process: time numpy matmul (OpenBLAS) on each shape."""
    res = {}
    for name, M, N, K, ta, tb in shapes:
        a, b = operands(M, N, K, ta, tb)
        A = a.T if ta else a
        B = b.T if tb else b
        c = np.empty((M, N), np.float32)
        res[name] = median_time(lambda A=A, B=B, c=c: np.matmul(A, B, out=c), repeats)
    return res


def numpy_times(shapes, threads, repeats):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--numpy-worker",
           json.dumps({"shapes": shapes, "repeats": repeats})]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_gemm(core, shapes, repeats, log):
    isas = core.build_info()["supported_isas"].split(",")
    rows = []
    np_t = {t: numpy_times(shapes, t, repeats) for t in (1, 2)}
    for name, M, N, K, ta, tb in shapes:
        a, b = operands(M, N, K, ta, tb)
        ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
        flop = 2.0 * M * N * K
        c = np.empty((M, N), np.float32)
        row = {"shape": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb}
        for isa in isas:
            core.set_gemm_isa(isa)
            # Validate before timing: fp32 error grows ~ sqrt(K) * |a||b|
            # (tests/kernels/test_gemm.py).
            core.sgemm(c, a, b, ta, tb, 1.0, 0.0)
            err = float(np.max(np.abs(c - ref)))
            tol = 1e-5 * K + 1e-4 * float(np.max(np.abs(ref)))
            if not err <= tol:
                raise SystemExit(f"{name} [{isa}]: max |err| {err:.3g} > {tol:.3g}")
            for t in (1, 2):
                core.set_num_threads(t)
                sec = median_time(lambda c=c, a=a, b=b, ta=ta, tb=tb:
                                  core.sgemm(c, a, b, ta, tb, 1.0, 0.0),
                                  repeats)
                row[f"{isa}_t{t}"] = flop / sec / 1e9
        core.set_gemm_isa("auto")
        for t in (1, 2):
            row[f"numpy_t{t}"] = flop / np_t[t][name] / 1e9
        rows.append(row)
        log(dict(kind="gemm", **row))
    cols = [f"{isa}_t{t}" for isa in isas for t in (1, 2)] + ["numpy_t1", "numpy_t2"]
    print("\n### SGEMM GFLOP/s (t1/t2 = 1 or 2 threads; numpy = OpenBLAS)\n")
    print("| shape | M | N | K | " + " | ".join(cols) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(cols))
    for r in rows:
        vals = " | ".join(f"{r[c]:.1f}" for c in cols)
        print(f"| {r['shape']} | {r['M']} | {r['N']} | {r['K']} | {vals} |")


def bench_layers(core, repeats, log):
    """conv2d/dense forward and backward on the tutorial CNN's layers, in milliseconds."""
    rng = np.random.default_rng(1)
    rows = []
    for batch in (32, 128):
        layers = []
        # (name, inp shape, kernel shape, need dinp): conv1 is the first layer, so no dinp.
        for lname, ishape, kshape, need_dinp in [
            ("conv1 32x3x3 same 28x28x1", (batch, 28, 28, 1), (3, 3, 1, 32), False),
            ("conv2 64x3x3 same 14x14x32", (batch, 14, 14, 32), (3, 3, 32, 64), True),
        ]:
            x = rng.standard_normal(ishape, dtype=np.float32)
            w = rng.standard_normal(kshape, dtype=np.float32) * 0.1
            bias = rng.standard_normal(kshape[3], dtype=np.float32)
            g = core.conv2d_geometry(list(ishape), list(kshape), (1, 1), "same")
            out = np.empty(g["out_shape"], np.float32)
            ws = np.empty(max(1, g["workspace"]), np.float32)
            dout = rng.standard_normal(g["out_shape"], dtype=np.float32)
            dx = np.empty_like(x) if need_dinp else None
            dw, db = np.empty_like(w), np.empty_like(bias)
            layers.append((lname, "fwd", lambda x=x, w=w, bias=bias, out=out, ws=ws:
                           core.conv2d_forward(out, x, w, bias, (1, 1), "same", ws)))
            layers.append((lname, "bwd", lambda x=x, w=w, dout=dout, dx=dx, dw=dw, db=db, ws=ws:
                           core.conv2d_backward(dx, dw, db, dout, x, w, (1, 1), "same", ws)))
        for lname, IN, OUT, _need_dinp in [("dense 3136->128", 3136, 128, True),
                                          ("dense 128->10", 128, 10, True)]:
            x = rng.standard_normal((batch, IN), dtype=np.float32)
            w = rng.standard_normal((IN, OUT), dtype=np.float32) * 0.05
            bias = rng.standard_normal(OUT, dtype=np.float32)
            out = np.empty((batch, OUT), np.float32)
            dout = rng.standard_normal((batch, OUT), dtype=np.float32)
            dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(bias)
            layers.append((lname, "fwd", lambda x=x, w=w, bias=bias, out=out:
                           core.dense_forward(out, x, w, bias)))
            layers.append((lname, "bwd", lambda x=x, w=w, dout=dout, dx=dx, dw=dw, db=db:
                           core.dense_backward(dx, dw, db, dout, x, w)))
        for lname, pas, fn in layers:
            row = {"layer": lname, "pass": pas, "batch": batch}
            for t in (1, 2):
                core.set_num_threads(t)
                row[f"ms_t{t}"] = median_time(fn, repeats) * 1e3
            rows.append(row)
            log(dict(kind="layer", **row))
    print("\n### Layer time, ms (median)\n")
    print("| layer | pass | batch | 1 thread | 2 threads |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['layer']} | {r['pass']} | {r['batch']} | {r['ms_t1']:.3f} | "
              f"{r['ms_t2']:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    ap.add_argument("--label", default="", help="tag stored in the JSON lines")
    ap.add_argument("--numpy-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.numpy_worker:
        spec = json.loads(args.numpy_worker)
        print(json.dumps(numpy_worker([tuple(s) for s in spec["shapes"]], spec["repeats"])))
        return
    sys.path.insert(0, ROOT)
    from cnnfast import _core as core

    repeats = 3 if args.quick else 7
    os.makedirs(OUT_DIR, exist_ok=True)
    info = core.build_info()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    jf = open(os.path.join(OUT_DIR, "bench_gemm.jsonl"), "a")

    def log(rec):
        rec.update(label=args.label, time=stamp, isa_auto=info["isa"], openmp=info["openmp"])
        jf.write(json.dumps(rec) + "\n")

    print(f"cnnfast build: {info}")
    threads0 = core.num_threads()
    try:
        if not args.layers_only:
            shapes = gemm_shapes(32) + gemm_shapes(128) + SQUARE
            bench_gemm(core, shapes, repeats, log)
        bench_layers(core, repeats, log)
    finally:
        core.set_num_threads(threads0)
        jf.close()


if __name__ == "__main__":
    main()
