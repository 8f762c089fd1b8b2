"""Kernel-level and end-to-end benchmark: cnnfast's conv/pool/dense kernels vs the NumPy
reference kernels and the measured sgemm peak; training/inference images/s of cnnfast vs the
NumPy reference trainer, tf.keras and PyTorch eager on the four tutorial models. See
bench/README.md.

    python -m bench                 # full run (~10 min on 2 cores)
    python -m bench --quick         # smoke run (~1-2 min)
    python -m bench --models cnn,mlp --batch 32 --frameworks cnnfast,torch --threads 2
    python -m bench --kernels-only  # kernel section only
    python -m bench --baseline ../base   # also cnnfast@base: the cnnfast of another built tree
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import models as M  # noqa: E402
from bench import report  # noqa: E402

FRAMEWORKS = ["cnnfast", "numpy", "tf.keras", "torch"]
BASE = "cnnfast@base"          # cnnfast imported from the --baseline tree
NEEDS = {"cnnfast": "cnnfast._core", "numpy": "numpy", "tf.keras": "tensorflow",
         "torch": "torch"}
OUT = os.path.join(ROOT, "bench", "out")
WORKER = os.path.join(ROOT, "bench", "worker.py")


def available(fw):
    try:
        return importlib.util.find_spec(NEEDS[fw]) is not None
    except (ImportError, ValueError):
        return False


def worker_env(threads, tree=ROOT, blas_threads=None):
    """Environment of a worker: thread counts, and PYTHONPATH=tree so that it imports the
    cnnfast of `tree` (this checkout, or the --baseline one; bench/ always comes from ROOT).
    blas_threads: numpy's BLAS threads when they should differ from `threads`."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(blas_threads)
    env["CNNFAST_NUM_THREADS"] = str(threads)
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"       # TF's default fast path on x86, stated explicitly
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH")) if p)
    if os.path.realpath(tree) != os.path.realpath(ROOT):
        env["PYTHONDONTWRITEBYTECODE"] = "1"     # leave the baseline tree as it was
    return env


def imported_from(cnnfast_file, tree):
    """None if cnnfast_file lies in tree/cnnfast/, else the error message."""
    want = os.path.join(os.path.realpath(os.path.join(tree, "cnnfast")), "")
    if cnnfast_file and os.path.realpath(cnnfast_file).startswith(want):
        return None
    return f"worker imported cnnfast from {cnnfast_file}, expected {want}"


def run_worker(args, threads, timeout, tree=ROOT, blas_threads=None):
    """Run bench/worker.py (as a script, so that PYTHONPATH decides where cnnfast comes from)
    and return its RESULT record; an "error" record when it failed, or when it imported
    cnnfast from somewhere else than `tree`."""
    cmd = [sys.executable, WORKER] + [str(a) for a in args]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=worker_env(threads, tree, blas_threads),
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s", "cmd": " ".join(cmd)}
    wall = time.perf_counter() - t
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            rec = json.loads(line[7:])
            rec["worker_wall_s"] = round(wall, 2)
            if "cnnfast_file" in rec:
                bad = imported_from(rec["cnnfast_file"], tree)
                if bad:
                    rec["error"] = bad
            return rec
    return {"error": f"exit {p.returncode}: {(p.stderr or p.stdout)[-1500:]}",
            "cmd": " ".join(cmd)}


def git_info(tree):
    """Commit and dirty flag of a checkout (None when git is unavailable)."""
    try:
        head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=20)
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def prepare_data(synthetic):
    """Save Fashion-MNIST's training set once as bench/out/fmnist_train.npz (uint8) for the
    workers; None (synthetic data) when it cannot be loaded."""
    if synthetic:
        return None, "synthetic (seeded uniform noise, random labels)"
    path = os.path.join(OUT, "fmnist_train.npz")
    if not os.path.exists(path):
        try:
            import cnnfast as cf
            (x, y), _ = cf.datasets.fashion_mnist.load_data()
        except Exception as e:  # noqa: BLE001 - any failure: fall back to synthetic data
            return None, f"synthetic (Fashion-MNIST unavailable: {type(e).__name__})"
        import numpy as np
        np.savez(path, x=x, y=y)
    return path, "Fashion-MNIST training images (cnnfast.datasets.fashion_mnist.load_data)"


def machine_info():
    import numpy as np
    info = {"python": platform.python_version(), "numpy": np.__version__,
            "platform": platform.platform(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import cnnfast as cf
        b = cf.build_info()
        info["cnnfast"] = {k: b[k] for k in ("version", "compiler", "openmp", "isa",
                                             "supported_isas") if k in b}
    except Exception as e:  # noqa: BLE001
        info["cnnfast"] = f"unavailable: {e!r}"
    return info


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: batch 128 only, short "
                   "measurements (~1-2 min)")
    # cnn_aug has no torch/NumPy builder (they augment in the data loader): asked for by name
    p.add_argument("--models", default=",".join(m for m in M.MODELS if m != "cnn_aug"),
                   help=f"comma list of {','.join(M.MODELS)}")
    p.add_argument("--batch", default=None, help="comma list of batch sizes (default 32,128; "
                   "--quick: 128)")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                   help=f"comma list of {','.join(FRAMEWORKS)}")
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2),
                   help="threads for every framework (default: min(cores, 2))")
    p.add_argument("--scaling-threads", type=int, default=1,
                   help="cnnfast is also run with this many threads at batch 128 (0: skip)")
    p.add_argument("--target-s", type=float, default=None,
                   help="seconds per timed measurement (default 2.0; --quick 0.5)")
    p.add_argument("--synthetic", action="store_true", help="random data instead of "
                   "Fashion-MNIST")
    p.add_argument("--torch-channels-last", action="store_true",
                   help="run torch in channels_last memory format (default NCHW)")
    p.add_argument("--timeout", type=int, default=900, help="per worker, seconds")
    p.add_argument("--out", default=OUT)
    k = p.add_mutually_exclusive_group()
    k.add_argument("--no-kernels", dest="kernels", action="store_const", const="no",
                   default="yes", help="skip the kernel-level section")
    k.add_argument("--kernels-only", dest="kernels", action="store_const", const="only",
                   help="run only the kernel-level section (and the sgemm peak it needs)")
    p.add_argument("--kernel-repeats", type=int, default=None,
                   help="timed repeats per kernel, median reported (default 7; --quick 3)")
    p.add_argument("--baseline", metavar="DIR", default=None,
                   help=f"another cnnfast source tree, built in place (cnnfast/_core*.so); "
                   f"its cnnfast runs as framework {BASE} beside cnnfast in both sections")
    a = p.parse_args(argv)
    a.models = [m for m in a.models.split(",") if m]
    for m in a.models:
        if m not in M.MODELS:
            p.error(f"unknown model {m!r}")
    a.frameworks = [f for f in a.frameworks.split(",") if f]
    for f in a.frameworks:
        if f not in FRAMEWORKS:
            p.error(f"unknown framework {f!r}")
    a.batch = [int(b) for b in (a.batch or ("128" if a.quick else "32,128")).split(",")]
    if a.target_s is None:
        a.target_s = 0.5 if a.quick else 2.0
    if a.kernel_repeats is None:
        a.kernel_repeats = 3 if a.quick else 7
    if a.baseline is not None:
        a.baseline = os.path.abspath(a.baseline)
        if not glob.glob(os.path.join(a.baseline, "cnnfast", "_core*")):
            p.error(f"--baseline {a.baseline}: no cnnfast/_core*.so there (build it in place: "
                    "python setup.py build_ext --inplace in that tree)")
    return a


def tree_of(fw, a):
    """The source tree whose cnnfast a framework's workers import."""
    return a.baseline if fw == BASE else ROOT


def run_kernels(a, fws, peak, emit):
    """Kernel section: one worker per implementation (cnnfast, cnnfast@base, numpy), each row
    emitted as a "kernel" JSON line with its fraction of the measured sgemm peak."""
    layers = M.kernel_layers(a.models)
    impls = [f for f in fws if f in ("cnnfast", BASE, "numpy")]
    if not layers or not impls:
        print("  kernels: nothing to run (needs a conv model in --models and cnnfast or numpy "
              "in --frameworks)", flush=True)
        return
    for fw in impls:
        rec = run_worker(["kernels", "--impl", "numpy" if fw == "numpy" else "cnnfast",
                          "--models", ",".join(a.models),
                          "--batch", ",".join(map(str, a.batch)), "--threads", a.threads,
                          "--repeats", a.kernel_repeats], a.threads, a.timeout, tree_of(fw, a),
                         # In a cnnfast worker numpy only builds inputs and checks results with
                         # the reference kernels; with 2 BLAS threads, OpenBLAS's worker spins
                         # on after each check and takes a core from cnnfast's OpenMP threads
                         # (some calls then took 8 ms instead of 0.4).
                         blas_threads=None if fw == "numpy" else 1)
        rows = rec.pop("rows", [])
        rec.update(kind="kernel_run", framework=fw, threads=a.threads)
        emit(rec)
        if "error" in rec:
            print(f"  kernels {fw}: ERROR {rec['error'].splitlines()[-1][:200]}", flush=True)
            continue
        for row in rows:
            row.update(kind="kernel", framework=fw, threads=a.threads)
            if peak and row.get("gflops"):
                row["frac_peak"] = row["gflops"] / peak
            for g in row.get("gemm", []):
                if peak:
                    g["frac_peak"] = g["gflops"] / peak
            emit(row)
        errs = sum(1 for r in rows if "error" in r)
        print(f"  kernels {fw}: {len(rows)} measurements" + (f", {errs} failed" if errs else "")
              + f" ({rec.get('worker_wall_s', '?')} s)", flush=True)


def main(argv=None):
    a = parse(argv)
    os.makedirs(a.out, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    jsonl = os.path.join(a.out, f"results-{stamp}.jsonl")
    records = []

    def emit(rec):
        records.append(rec)
        with open(jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")

    t_start = time.time()
    e2e = a.kernels != "only"
    data, data_note = prepare_data(a.synthetic) if e2e else (None, None)
    fws, notes = [], []
    for fw in a.frameworks:
        if available(fw):
            fws.append(fw)
        else:
            notes.append(f"{fw} skipped: {NEEDS[fw]} is not installed "
                         "(pip install '.[bench]')")
    if a.baseline:
        fws.insert(fws.index("cnnfast") + 1 if "cnnfast" in fws else 0, BASE)
    header = {"kind": "header", "date": stamp, "argv": sys.argv[1:] if argv is None else argv,
              "loadavg_start": os.getloadavg(), "threads": a.threads,
              "scaling_threads": a.scaling_threads, "data": data_note, "quick": a.quick,
              "target_s": a.target_s, "frameworks": fws, "notes": notes,
              "torch_layout": "channels_last" if a.torch_channels_last else "NCHW (default)",
              "kernels": a.kernels, "kernel_repeats": a.kernel_repeats,
              "tree": {"dir": ROOT, "git": git_info(ROOT)},
              "baseline": {"dir": a.baseline, "git": git_info(a.baseline)} if a.baseline
              else None,
              "machine": machine_info()}
    emit(header)
    print(f"bench: {len(a.models)} models x batch {a.batch} x {fws}, {a.threads} threads; "
          f"kernels: {a.kernels}; load average {header['loadavg_start']}; data: {data_note}",
          flush=True)
    if a.baseline:
        print(f"  {BASE}: {a.baseline} ({header['baseline']['git']})", flush=True)
    for n in notes:
        print("  note:", n, flush=True)

    for m in (a.models if e2e else []):
        train_flop, infer_flop = M.flops(m)
        emit({"kind": "model", "model": m, "title": M.MODELS[m]["title"],
              "params": M.params(m), "train_flop_per_image": train_flop,
              "infer_flop_per_image": infer_flop})

    scaling = {a.scaling_threads} if a.scaling_threads and e2e else set()
    peaks = {}
    for t in sorted({a.threads} | scaling):
        rec = run_worker(["peak", "--threads", t, "--n", 512 if a.quick else 1024,
                          "--reps", 2 if a.quick else 3], t, a.timeout)
        rec.setdefault("kind", "peak")
        rec.setdefault("threads", t)
        emit(rec)
        peaks[t] = rec.get("peak_gflops")
        print(f"  peak sgemm {t} thread(s): {rec.get('peak_gflops', rec.get('error'))}",
              flush=True)

    if a.kernels != "no":
        run_kernels(a, fws, peaks.get(a.threads), emit)

    common = ["--target-s", a.target_s, "--min-steps", 2]
    if a.quick:
        common += ["--max-samples", 4096]
    if data:
        common += ["--data", data]
    if "cnnfast" in fws and e2e:
        for m in a.models:
            rec = run_worker(["validate", "--model", m, "--batch", 32, "--threads", a.threads]
                             + (["--data", data] if data else []), a.threads, a.timeout)
            rec.setdefault("kind", "validate")
            rec.setdefault("model", m)
            emit(rec)
            print(f"  validate {m}: {'ok' if rec.get('ok') else 'FAILED'} "
                  f"{[round(s['rel_err'], 8) for s in rec.get('steps', [])] or rec.get('error')}",
                  flush=True)

    jobs = []
    for m in (a.models if e2e else []):
        for b in a.batch:
            for fw in fws:
                extra = []
                if fw == "cnnfast" and b == min(a.batch):
                    extra += ["--rss-epochs", "--rss-steps", 1 if a.quick else 2]
                if fw == "torch" and a.torch_channels_last:
                    extra.append("--torch-channels-last")
                jobs.append((m, b, fw, a.threads, extra))
            if "cnnfast" in fws and a.scaling_threads and a.scaling_threads != a.threads \
                    and b == 128:
                jobs.append((m, b, "cnnfast", a.scaling_threads, ["--no-infer"]))
    for i, (m, b, fw, t, extra) in enumerate(jobs, 1):
        rec = run_worker(["train", "--framework", "cnnfast" if fw == BASE else fw,
                          "--model", m, "--batch", b, "--threads", t] + common + extra,
                         t, a.timeout, tree_of(fw, a))
        rec.update(kind="train", framework=fw, model=m, batch=b, threads=t)
        emit(rec)
        if "error" in rec:
            msg = "ERROR " + rec["error"].splitlines()[-1][:200]
        else:
            inf = rec.get("infer")
            msg = (f"train {rec['train']['images_per_s']:9.1f} img/s"
                   + (f", infer {inf['images_per_s']:9.1f} img/s" if inf else "")
                   + f", peak RSS {rec['peak_rss_mib_train']:.0f} MiB")
        print(f"  [{i}/{len(jobs)}] {m:12s} b{b:<4d} {fw:12s} {t}T: {msg} "
              f"({rec.get('worker_wall_s', '?')} s)", flush=True)

    emit({"kind": "footer", "loadavg_end": os.getloadavg(),
          "wall_s": round(time.time() - t_start, 1)})
    md = report.markdown(records)
    md_path = os.path.join(a.out, f"results-{stamp}.md")
    with open(md_path, "w") as f:
        f.write(md)
    for name, src in (("latest.jsonl", jsonl), ("latest.md", md_path)):
        dst = os.path.join(a.out, name)
        with open(src) as fi, open(dst, "w") as fo:
            fo.write(fi.read())
    print()
    print(md)
    print(f"wrote {jsonl} and {md_path}")
    bad = [r for r in records if r.get("kind") == "validate" and not r.get("ok")]
    wrong = [r for r in records if "worker imported cnnfast from" in r.get("error", "")]
    for r in wrong:
        print("ERROR:", r["error"])
    return 1 if bad or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
