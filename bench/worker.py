"""One measurement in a fresh process (so thread settings and peak RSS are its own).

    python bench/worker.py train --framework cnnfast --model cnn --batch 32 --threads 2
    python bench/worker.py peak --threads 2
    python bench/worker.py kernels --impl cnnfast --models cnn --batch 128 --threads 2

Prints one line "RESULT {json}" on stdout. The parent (bench/run.py) sets OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS to --threads before starting it.

The `bench` package always comes from this file's tree; `cnnfast` comes from the first
PYTHONPATH entry that has it (run.py puts the measured tree there: this one, or the --baseline
tree for cnnfast@base), else from this tree. Every record names the cnnfast it imported
("cnnfast_file"); run.py checks it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__" and __package__ in (None, ""):   # run as a script: drop bench/ itself
    if sys.path and os.path.abspath(sys.path[0]) == os.path.join(ROOT, "bench"):
        del sys.path[0]
sys.path.insert(0, ROOT)            # import bench from this tree (even if PYTHONPATH has another),
from bench import kernels as K  # noqa: E402
from bench import models as M  # noqa: E402

sys.path.append(sys.path.pop(0))    # then cnnfast resolves through PYTHONPATH (run.py sets it),
                                    # this tree only as the last resort

SEED = 0


def result(rec):
    """Print the record for run.py, with the file of the cnnfast package this process used."""
    mod = sys.modules.get("cnnfast")
    if mod is not None:
        rec["cnnfast_file"] = mod.__file__
    print("RESULT " + json.dumps(rec), flush=True)


def proc_status(key):
    """VmRSS / VmHWM of this process in MiB (Linux), else ru_maxrss for VmHWM, else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if key == "VmHWM":
        import resource
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0
    return None


def load_data(path, n, input_shape, nchw=False):
    """First n training images scaled to float32 [0, 1], in the model's input shape (NHWC, or
    NCHW for torch so that no second copy of the data is held)."""
    if path and os.path.exists(path):
        d = np.load(path, mmap_mode="r")
        x_u8, y = d["x"], d["y"]
        reps = math.ceil(n / x_u8.shape[0])
        idx = np.arange(n) % x_u8.shape[0] if reps > 1 else slice(0, n)
        x = np.asarray(x_u8[idx], dtype=np.float32) / np.float32(255.0)
        y = np.asarray(y[idx]).astype(np.int64)
    else:
        rng = np.random.default_rng(SEED)
        x = rng.random((n, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, n)
    x = x.reshape((n,) + tuple(input_shape))
    if nchw and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), y


def timed_steps(run, batch, opts):
    """Warm up, estimate the time per step, then time K steps (K from --target-s).

    run(k) must execute k steps of `batch` images (k >= 1). Returns a dict."""
    run(1)                                         # first call: allocation / tracing
    w = opts.min_steps
    t = time.perf_counter()
    run(w)                                         # warm-up, also the time-per-step estimate
    dt = time.perf_counter() - t
    if dt >= opts.target_s:                        # slow config: the warm-up run is the sample
        return {"steps": w, "seconds": dt, "images_per_s": w * batch / dt}
    k = int(min(max(math.ceil(opts.target_s / (dt / w)), w), opts.max_samples // batch))
    t = time.perf_counter()
    run(k)
    dt = time.perf_counter() - t
    return {"steps": k, "seconds": dt, "images_per_s": k * batch / dt}


# ---- per framework: (setup, train(k), infer(k)) -------------------------------------------------
def setup_cnnfast(model_name, batch, opts, x, y):
    import cnnfast as cf

    cf.set_num_threads(opts.threads)
    cf.utils.set_random_seed(SEED)
    model = M.build_cnnfast(model_name)
    info = cf.build_info()
    meta = {"version": info["version"], "isa": info["isa"], "openmp": info["openmp"],
            "threads": cf.get_num_threads()}

    def train(k):
        model.fit(x[:k * batch], y[:k * batch], batch_size=batch, epochs=1, verbose=0)

    def infer(k):
        model.predict(x[:k * batch], batch_size=batch, verbose=0)

    return model, train, infer, meta


def setup_numpy(model_name, batch, opts, x, y):
    net = M.build_numpy(model_name, seed=SEED)
    meta = {"version": np.__version__, "dtype": "float32"}

    def train(k):
        net.fit(x[:k * batch], y[:k * batch], batch_size=batch, epochs=1)

    def infer(k):
        net.predict(x[:k * batch], batch_size=batch)

    return net, train, infer, meta


def setup_keras(model_name, batch, opts, x, y):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(opts.threads)
    tf.config.threading.set_inter_op_parallelism_threads(opts.threads)
    tf.keras.utils.set_random_seed(SEED)
    model = M.build_keras(model_name)
    meta = {"version": tf.__version__, "keras": tf.keras.__version__ if hasattr(
        tf.keras, "__version__") else None,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default(on)"),
        "jit_compile": False, "intra_op": opts.threads, "inter_op": opts.threads}

    def train(k):
        model.fit(x[:k * batch], y[:k * batch], batch_size=batch, epochs=1, verbose=0)

    def infer(k):
        model.predict(x[:k * batch], batch_size=batch, verbose=0)

    return model, train, infer, meta


def setup_torch(model_name, batch, opts, x, y):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(opts.threads)
    torch.manual_seed(SEED)
    net = M.build_torch(model_name)
    xt = torch.from_numpy(x)                           # already NCHW (load_data(nchw=True))
    if xt.ndim == 4:
        if opts.torch_channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
            net = net.to(memory_format=torch.channels_last)
    yt = torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    gen = torch.Generator().manual_seed(SEED)
    meta = {"version": torch.__version__, "threads": torch.get_num_threads(),
            "layout": "channels_last" if opts.torch_channels_last else "NCHW (default)",
            "mkldnn": bool(torch.backends.mkldnn.is_available())}

    def train(k):
        n = k * batch
        net.train()
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            xb, yb = xt[idx], yt[idx]
            if opts.torch_channels_last and xb.ndim == 4:  # what a channels_last user writes
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
        float(loss)

    def infer(k):
        net.eval()
        with torch.inference_mode():
            for s in range(0, k * batch, batch):
                torch.softmax(net(xt[s:s + batch]), 1)

    return net, train, infer, meta


SETUPS = {"cnnfast": setup_cnnfast, "numpy": setup_numpy, "tf.keras": setup_keras,
          "torch": setup_torch}


# ---- validation: cnnfast vs the NumPy reference trainer ----------------------------------------
def validate(model_name, batch, x, y, steps=2):
    """Two train steps from identical weights (and identical dropout masks) in cnnfast and the
    NumPy trainer; the losses must agree within 1e-4 relative (the second checks the update)."""
    import cnnfast as cf

    cf.utils.set_random_seed(SEED + 1)
    model = M.build_cnnfast(model_name)
    ref = M.build_numpy(model_name, seed=SEED + 1)
    ref.set_weights(model.get_weights())
    drops = [layer for layer in model.layers if isinstance(layer, cf.layers.Dropout)]
    # The masks are read back from the layers, which the per-layer engine uses (the native
    # engine keeps them inside the Net; both engines draw the same masks for a step seed).
    model.use_native_executor = False
    out = []
    for s in range(steps):
        xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
        lc = float(model.train_on_batch(xb, yb)[0])
        masks = [d._mask.copy() for d in drops]         # cnnfast's masks, replayed in NumPy
        lr_ = float(ref.train_step(xb, yb, masks=masks))
        out.append({"step": s + 1, "cnnfast": lc, "numpy": lr_,
                    "rel_err": abs(lc - lr_) / max(abs(lr_), 1e-30)})
    # BatchNormalization removes the effect of some parameters (a bias or beta whose shift a
    # later BN subtracts), so their gradients are rounding noise, and Adam's first, sign-like
    # step moves them by +-lr in a noise-given direction: measured 2.0e-4 on the second loss of
    # cnn_bn (the first agrees to 2e-6). tests/test_batchnorm_parity.py explains the same
    # effect against tf.keras.
    tol = 1e-3 if any(layer[0] == "bn" for layer in M.MODELS[model_name]["layers"]) else 1e-4
    ok = all(o["rel_err"] <= tol for o in out)
    return {"ok": ok, "steps": out}


def rss_epochs(model_name, batch, x, y, opts, epochs=3):
    """VmRSS after each of `epochs` cnnfast epochs (n not a multiple of batch, so the last
    partial batch's buffers are exercised too)."""
    import cnnfast as cf

    cf.utils.set_random_seed(SEED)
    model = M.build_cnnfast(model_name)
    rss = []

    class Probe(cf.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rss.append(round(proc_status("VmRSS"), 2))

    n = min(opts.rss_steps * batch + batch // 2, x.shape[0])
    model.fit(x[:n], y[:n], batch_size=batch, epochs=epochs, verbose=0, callbacks=[Probe()])
    return {"samples_per_epoch": n, "rss_mib_after_epoch": rss,
            "growth_mib_epoch1_to_last": round(rss[-1] - rss[0], 2)}


def cmd_train(opts):
    spec = M.MODELS[opts.model]
    need = max(opts.max_samples, 4 * opts.batch)
    x, y = load_data(opts.data, need, spec["input"], nchw=opts.framework == "torch")
    rec = {"kind": "train", "framework": opts.framework, "model": opts.model,
           "batch": opts.batch, "threads": opts.threads, "samples_loaded": need}
    rec["rss_mib_before"] = proc_status("VmRSS")
    model, train, infer, meta = SETUPS[opts.framework](opts.model, opts.batch, opts, x, y)
    rec["meta"] = meta
    rec["train"] = timed_steps(train, opts.batch, opts) if opts.train else None
    rec["peak_rss_mib_train"] = proc_status("VmHWM")
    rec["infer"] = timed_steps(infer, opts.batch, opts) if opts.infer else None
    rec["peak_rss_mib"] = proc_status("VmHWM")
    if opts.framework == "cnnfast" and opts.rss_epochs:
        rec["rss_epochs"] = rss_epochs(opts.model, opts.batch, x, y, opts)
    result(rec)


def cmd_validate(opts):
    x, y = load_data(opts.data, 4 * opts.batch, M.MODELS[opts.model]["input"])
    import cnnfast as cf

    cf.set_num_threads(opts.threads)
    rec = {"kind": "validate", "model": opts.model, "batch": opts.batch}
    rec.update(validate(opts.model, opts.batch, x, y))
    result(rec)


def cmd_peak(opts):
    """sgemm GFLOP/s: numpy matmul (its BLAS) at 2048^2 and cnnfast _core.sgemm at opts.n."""
    rec = {"kind": "peak", "threads": opts.threads}
    rng = np.random.default_rng(SEED)

    def best(fn, flop, reps):
        fn()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return flop / min(ts) / 1e9

    n = 2048
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    rec["numpy_matmul_2048_gflops"] = best(lambda: a @ b, 2.0 * n ** 3, opts.reps)
    try:
        import cnnfast as cf
        from cnnfast import _core

        cf.set_num_threads(opts.threads)
        m = opts.n
        a, b = rng.random((m, m), dtype=np.float32), rng.random((m, m), dtype=np.float32)
        c = np.empty((m, m), np.float32)
        rec[f"cnnfast_sgemm_{m}_gflops"] = best(lambda: _core.sgemm(c, a, b), 2.0 * m ** 3,
                                                 opts.reps)
        rec["cnnfast_isa"] = _core.gemm_isa()
    except Exception as e:  # noqa: BLE001 - report, don't die: numpy's number still stands
        rec["cnnfast_error"] = repr(e)
    rec["peak_gflops"] = max(v for k, v in rec.items() if k.endswith("_gflops"))
    result(rec)


def cmd_kernels(opts):
    """Kernel timings of one implementation (bench/kernels.py) for the models' layers."""
    layers = M.kernel_layers(opts.models.split(","))
    rec = {"kind": "kernels", "impl": opts.impl, "threads": opts.threads}
    if opts.impl == "cnnfast":
        import cnnfast as cf
        from cnnfast import _core

        _core.set_num_threads(opts.threads)
        info = cf.build_info()
        rec["meta"] = {"version": info.get("version"), "isa": _core.gemm_isa(),
                       "openmp": info.get("openmp"), "threads": _core.num_threads()}
    else:
        rec["meta"] = {"version": np.__version__, "dtype": "float32"}
    t = time.perf_counter()
    rec["rows"] = K.run(opts.impl, layers, [int(b) for b in opts.batch.split(",")],
                        opts.repeats, opts.min_time)
    rec["seconds"] = round(time.perf_counter() - t, 2)
    result(rec)


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--framework", choices=sorted(SETUPS), required=True)
    t.add_argument("--model", choices=sorted(M.MODELS), required=True)
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--data", default=None)
    t.add_argument("--target-s", type=float, default=2.5)
    t.add_argument("--min-steps", type=int, default=2)
    t.add_argument("--max-samples", type=int, default=16384)
    t.add_argument("--no-infer", dest="infer", action="store_false")
    t.add_argument("--no-train", dest="train", action="store_false",
                   help="time predict only (bench/headline.py's predict rows)")
    t.add_argument("--rss-epochs", action="store_true")
    t.add_argument("--rss-steps", type=int, default=2)
    t.add_argument("--torch-channels-last", action="store_true")
    v = sub.add_parser("validate")
    v.add_argument("--model", choices=sorted(M.MODELS), required=True)
    v.add_argument("--batch", type=int, default=32)
    v.add_argument("--threads", type=int, required=True)
    v.add_argument("--data", default=None)
    k = sub.add_parser("peak")
    k.add_argument("--threads", type=int, required=True)
    k.add_argument("--n", type=int, default=1024)
    k.add_argument("--reps", type=int, default=3)
    k = sub.add_parser("kernels")
    k.add_argument("--impl", choices=["cnnfast", "numpy"], required=True)
    k.add_argument("--models", required=True, help="comma list; see models.kernel_layers")
    k.add_argument("--batch", default="32,128", help="comma list of batch sizes")
    k.add_argument("--threads", type=int, required=True)
    k.add_argument("--repeats", type=int, default=7)
    k.add_argument("--min-time", type=float, default=0.02,
                   help="each repeat loops a short kernel until it lasts this long (s)")
    opts = p.parse_args(argv)
    {"train": cmd_train, "validate": cmd_validate, "peak": cmd_peak,
     "kernels": cmd_kernels}[opts.cmd](opts)


if __name__ == "__main__":
    main()
