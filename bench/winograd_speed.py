"""CPU time per call of the tutorial models' 3x3 stride-1 conv layers, Winograd against direct.

    python -m bench.winograd_speed [--threads 1,2] [--rounds 5] [--batch 32,128]

Per layer shape and batch: the forward pass, the whole backward pass (input and weight
gradients) and the backward pass of a layer without an input gradient (weight gradient only,
as for a first layer), each under the "direct", "winograd" and "auto" settings, alternating
between them round by round (auto: the Winograd forward pass and weight gradient, the direct
input gradient; docs/winograd.md#when-auto-picks-winograd). A sample is the CPU time
(time.process_time) of many calls divided by their number; the table has the median of the
rounds. CPU time, not wall clock:
a loaded machine slows a process by descheduling it, which process_time does not count (with
2 threads it does count OpenMP's spin-waits, so 2-thread figures are noisier).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cnnfast import _core

LAYERS = [  # (name, H, W, C, OC, padding)
    ("cnn conv2 (14x14x32 -> 64, same)", 14, 14, 32, 64, "same"),
    ("cnn_dropout conv2 (26x26x32 -> 64, valid)", 26, 26, 32, 64, "valid"),
]
OPS = ("forward", "backward", "dweight only")


def calls(n, h, w, c, oc, padding):
    rng = np.random.default_rng(0)
    x = rng.random((n, h, w, c), dtype=np.float32)
    k = rng.uniform(-0.1, 0.1, (3, 3, c, oc)).astype(np.float32)
    b = np.zeros(oc, np.float32)
    g = _core.conv2d_geometry(list(x.shape), list(k.shape), (1, 1), padding)
    ws = np.empty(max(1, g["workspace"]), np.float32)
    out = np.empty(g["out_shape"], np.float32)
    dout = rng.standard_normal(g["out_shape"]).astype(np.float32)
    dx, dw, db = np.empty_like(x), np.empty_like(k), np.empty_like(b)
    s = (1, 1)
    return {
        "forward": lambda: _core.conv2d_forward(out, x, k, b, s, padding, ws),
        "backward": lambda: _core.conv2d_backward(dx, dw, db, dout, x, k, s, padding, ws),
        "dweight only": lambda: _core.conv2d_backward(None, dw, db, dout, x, k, s, padding, ws),
    }


def cpu_ms(fn, reps):
    fn()
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", default="32,128")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--target-ms", type=float, default=60.0,
                    help="CPU time of one sample (sets the calls per sample)")
    a = ap.parse_args(argv)
    old_algo, old_threads = _core.conv_algorithm(), _core.num_threads()
    print("| layer | batch | threads | pass | direct ms | Winograd ms | auto ms "
          "| direct / Winograd | direct / auto |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    try:
        for threads in map(int, a.threads.split(",")):
            _core.set_num_threads(threads)
            for name, h, w, c, oc, padding in LAYERS:
                for n in map(int, a.batch.split(",")):
                    fns = calls(n, h, w, c, oc, padding)
                    for op in OPS:
                        _core.set_conv_algorithm("direct")
                        reps = max(3, int(a.target_ms / max(cpu_ms(fns[op], 1), 1e-3)))
                        t = {"direct": [], "winograd": [], "auto": []}
                        for _ in range(a.rounds):
                            for algo in t:
                                _core.set_conv_algorithm(algo)
                                t[algo].append(cpu_ms(fns[op], reps))
                        d, wg, au = (np.median(t[k]) for k in ("direct", "winograd", "auto"))
                        print(f"| {name} | {n} | {threads} | {op} | {d:.3f} | {wg:.3f} | "
                              f"{au:.3f} | {d / wg:.2f}x | {d / au:.2f}x |", flush=True)
    finally:
        _core.set_conv_algorithm(old_algo)
        _core.set_num_threads(old_threads)


if __name__ == "__main__":
    main()
