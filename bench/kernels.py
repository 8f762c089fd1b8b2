"""Kernel-level timings: conv/pool/dense forward and backward on the tutorial models' layers.

Runs inside a worker (`python bench/worker.py kernels --impl cnnfast|numpy ...`, started by
bench/run.py with the thread env vars set), one implementation per process:

- impl "cnnfast": the native kernels, called through `cnnfast._core` exactly as the layers call
  them (preallocated outputs, one shared conv workspace, maxpool argmax kept from forward), plus
  the GEMM phases of each conv/dense pass (the `_core.sgemm` calls of the im2col lowering, same
  shapes, timed on their own). Before timing, every output is compared with the NumPy reference
  kernels of the same tree (float32); the largest relative difference is recorded.
- impl "numpy": the reference kernels of `cnnfast.reference` in float32 (im2col + BLAS matmul).

FLOPs (analytic, multiply-add = 2): forward = 2 x MACs; backward = dW (2 x MACs) + dInput
(2 x MACs). Backward computes dInput for every layer, the first one included, so that both
implementations do the same work. Bias, pooling and activation work are not counted; pooling
rows have times only.
"""
from __future__ import annotations

import time

import numpy as np

STRIDES = (1, 1)
POOL = (2, 2)


def time_call(fn, repeats, min_time=0.02):
    """(median, min) seconds of one call of fn over `repeats` samples, after a warm-up; a
    sample loops a short call until it lasts min_time. (bench_gemm.median_time is the median.)"""
    fn()  # warm-up: first-touch of buffers, packing-buffer growth, thread pool start
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    inner = max(1, int(min_time / max(once, 1e-7)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return float(np.median(samples)), min(samples)


def flops(layer, batch):
    """(forward, backward) FLOPs of one call at `batch`; (None, None) for pooling."""
    macs = layer["macs"] * batch
    return (2 * macs, 4 * macs) if macs else (None, None)


def gemm_phases(layer, batch):
    """{pass: [(phase, M, N, K, trans_a, trans_b)]}: the GEMMs of the im2col lowering.

    conv:  fwd  out (P, OC) = col (P, K) @ W (K, OC)        P = B*OH*OW, K = 3*3*C
           dW   (K, OC)     = col^T @ dout                  (trans_a, inner dim P)
           dX   dcol (P, K) = dout @ W^T                    (trans_b), then col2im
    dense: fwd (B, OUT) = x @ W; dW (IN, OUT) = x^T @ dout; dX (B, IN) = dout @ W^T."""
    if layer["op"] == "conv":
        oh, ow, oc = layer["out"]
        p, k = batch * oh * ow, 9 * layer["in"][2]
        return {"fwd": [("fwd", p, oc, k, False, False)],
                "bwd": [("dW", k, oc, p, True, False), ("dX", p, k, oc, False, True)]}
    if layer["op"] == "dense":
        n_in, n_out = layer["in"][0], layer["units"]
        return {"fwd": [("fwd", batch, n_out, n_in, False, False)],
                "bwd": [("dW", n_in, n_out, batch, True, False),
                        ("dX", batch, n_in, n_out, False, True)]}
    return {}


def _operands(layer, batch, rng):
    f32 = np.float32
    x = rng.standard_normal((batch,) + tuple(layer["in"]), dtype=f32)
    dy = rng.standard_normal((batch,) + tuple(layer["out"]), dtype=f32)
    if layer["op"] == "conv":
        w = rng.standard_normal((3, 3, layer["in"][2], layer["filters"]), dtype=f32) * f32(0.1)
        b = rng.standard_normal(layer["filters"], dtype=f32)
    elif layer["op"] == "dense":
        w = rng.standard_normal((layer["in"][0], layer["units"]), dtype=f32) * f32(0.05)
        b = rng.standard_normal(layer["units"], dtype=f32)
    else:
        w = b = None
    return x, w, b, dy


def numpy_cases(layer, x, w, b, dy):
    """{pass: fn() -> outputs} for the float32 NumPy reference kernels."""
    from cnnfast.reference import conv, dense, pool

    f32 = np.float32
    if layer["op"] == "conv":
        pad = layer["padding"]
        return {"fwd": lambda: (conv.conv2d_forward(x, w, b, STRIDES, pad, dtype=f32),),
                "bwd": lambda: conv.conv2d_backward(dy, x, w, STRIDES, pad, dtype=f32)}
    if layer["op"] == "pool":
        return {"fwd": lambda: (pool.maxpool2d_forward(x, POOL, None, "valid", dtype=f32),),
                "bwd": lambda: (pool.maxpool2d_backward(dy, x, POOL, None, "valid",
                                                        dtype=f32),)}
    return {"fwd": lambda: (dense.dense_forward(x, w, b, dtype=f32),),
            "bwd": lambda: dense.dense_backward(dy, x, w, dtype=f32)}


def cnnfast_cases(core, layer, x, w, b, dy):
    """{pass: fn() -> outputs} calling cnnfast._core the way the layers do."""
    out = np.empty_like(dy)
    dx = np.empty_like(x)
    if layer["op"] == "conv":
        pad = layer["padding"]
        g = core.conv2d_geometry(list(x.shape), list(w.shape), STRIDES, pad)
        if tuple(g["out_shape"]) != dy.shape:
            raise ValueError(f"{layer['name']}: geometry {g['out_shape']} != {dy.shape}")
        ws = np.empty(max(1, int(g["workspace"])), np.float32)
        dw, db = np.empty_like(w), np.empty_like(b)

        def fwd():
            core.conv2d_forward(out, x, w, b, STRIDES, pad, ws)
            return (out,)

        def bwd():
            core.conv2d_backward(dx, dw, db, dy, x, w, STRIDES, pad, ws)
            return dx, dw, db
    elif layer["op"] == "pool":
        argmax = np.empty(dy.shape, np.int32)

        def fwd():
            core.maxpool2d_forward(out, argmax, x, POOL, POOL, "valid")
            return (out,)

        def bwd():                       # uses the argmax of the last forward (called first)
            core.maxpool2d_backward(dx, dy, argmax, POOL, POOL, "valid")
            return (dx,)
    else:
        dw, db = np.empty_like(w), np.empty_like(b)

        def fwd():
            core.dense_forward(out, x, w, b)
            return (out,)

        def bwd():
            core.dense_backward(dx, dw, db, dy, x, w)
            return dx, dw, db
    return {"fwd": fwd, "bwd": bwd}


def _max_rel_err(got, ref):
    err = 0.0
    for g, r in zip(got, ref):
        r = np.asarray(r, np.float64)
        scale = max(float(np.max(np.abs(r))), 1e-30)
        err = max(err, float(np.max(np.abs(np.asarray(g, np.float64) - r))) / scale)
    return err


def time_gemm(core, phases, repeats, min_time, rng):
    out = []
    for phase, m, n, k, ta, tb in phases:
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        bb = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        c = np.empty((m, n), np.float32)
        sec, best = time_call(lambda c=c, a=a, bb=bb, ta=ta, tb=tb:
                              core.sgemm(c, a, bb, ta, tb, 1.0, 0.0), repeats, min_time)
        out.append({"phase": phase, "M": m, "N": n, "K": k, "trans_a": ta, "trans_b": tb,
                    "ms": sec * 1e3, "ms_min": best * 1e3,
                    "gflops": 2.0 * m * n * k / sec / 1e9})
    return out


def run(impl, layers, batches, repeats, min_time=0.02, seed=0):
    """Time every (layer, batch, pass); returns a list of row dicts (an "error" key on a row
    whose kernel call failed, e.g. an older tree whose _core lacks a kernel)."""
    core = None
    if impl == "cnnfast":
        from cnnfast import _core as core
    rows = []
    for batch in batches:
        for layer in layers:
            rng = np.random.default_rng(seed)
            x, w, b, dy = _operands(layer, batch, rng)
            fl = dict(zip(("fwd", "bwd"), flops(layer, batch)))
            base = {"layer": layer["name"], "op": layer["op"], "desc": layer["desc"],
                    "also": layer["also"], "batch": batch, "repeats": repeats}
            try:
                cases = (cnnfast_cases(core, layer, x, w, b, dy) if core
                         else numpy_cases(layer, x, w, b, dy))
                ref = numpy_cases(layer, x, w, b, dy) if core else None
                phases = gemm_phases(layer, batch) if core else {}
            except Exception as e:  # noqa: BLE001 - one failing layer must not end the run
                rows += [dict(base, **{"pass": p, "error": repr(e)}) for p in ("fwd", "bwd")]
                continue
            for p in ("fwd", "bwd"):
                row = dict(base, **{"pass": p, "flop": fl[p]})
                try:
                    if ref is not None:          # check (also the first, untimed call)
                        row["max_rel_err"] = _max_rel_err(cases[p](), ref[p]())
                    sec, best = time_call(cases[p], repeats, min_time)
                    row.update(ms=sec * 1e3, ms_min=best * 1e3,
                               gflops=fl[p] / sec / 1e9 if fl[p] else None)
                    if p in phases:
                        row["gemm"] = time_gemm(core, phases[p], repeats, min_time, rng)
                except Exception as e:  # noqa: BLE001
                    row["error"] = repr(e)
                rows.append(row)
    return rows
