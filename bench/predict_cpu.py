"""Images per CPU-second of predict on the tutorial CNN: cnnfast with and without the fused
Conv2D + MaxPool2D pass (CNNFAST_FUSED_INFERENCE, docs/fused_inference.md) and PyTorch
(channels_last), each run in a fresh process, alternating, several rounds.

    python -m bench.predict_cpu --rounds 3 --threads 1,2

CPU seconds (time.process_time around model.predict(x, batch_size)) hold on a busy machine
where wall-clock figures do not; with 2 threads they are both threads' seconds. The report is
the median over rounds of images per CPU-second, and the ratios to the unfused path and to torch.
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
VARIANTS = ("fused", "unfused", "torch_cl")


def worker(variant, model_name, threads, n, batch, reps):
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("bench_models",
                                                  os.path.join(ROOT, "bench", "models.py"))
    M = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(M)
    shape = tuple(M.MODELS[model_name]["input"])
    x = np.random.default_rng(0).random((n,) + shape, dtype=np.float32)
    if variant == "torch_cl":
        import torch

        torch.set_num_threads(threads)
        net = M.build_torch(model_name).eval().to(memory_format=torch.channels_last)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)

        def run():
            with torch.no_grad():
                return torch.cat([net(xt[i:i + batch]) for i in range(0, n, batch)])
    else:
        import cnnfast as cf

        cf.set_num_threads(threads)
        cf.utils.set_random_seed(0)
        model = M.build_cnnfast(model_name)

        def run():
            return model.predict(x, batch_size=batch, verbose=0)
    run()  # warm-up: builds the engine, touches the buffers
    t = time.process_time()
    for _ in range(reps):
        run()
    return {"img_per_cpu_s": reps * n / (time.process_time() - t)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        v, m, t, n, b, r = a.worker
        print(json.dumps(worker(v, m, int(t), int(n), int(b), int(r))))
        return
    res = {}
    variants = a.variants.split(",")
    for _ in range(a.rounds):
        for t in [int(s) for s in a.threads.split(",")]:
            for v in variants:
                env = dict(os.environ, OMP_NUM_THREADS=str(t), PYTHONDONTWRITEBYTECODE="1",
                           PYTHONPATH=ROOT, CNNFAST_FUSED_INFERENCE="0" if v == "unfused" else "1")
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", v,
                                      a.model, str(t), str(a.n), str(a.batch), str(a.reps)],
                                     env=env, capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])["img_per_cpu_s"]
                res.setdefault((t, v), []).append(r)
                print(f"  threads {t} {v}: {r:.0f}", file=sys.stderr, flush=True)
    print(f"{a.model}, {a.n} images, batch {a.batch}, median of {a.rounds} rounds "
          f"(images per CPU-second)")
    for t in sorted({k[0] for k in res}):
        med = {v: statistics.median(res[(t, v)]) for v in variants}
        row = "  ".join(f"{v} {med[v]:8.0f}" for v in variants)
        extra = ""
        if "fused" in med and "unfused" in med:
            extra += f"  fused/unfused {med['fused'] / med['unfused']:.2f}x"
        if "fused" in med and "torch_cl" in med:
            extra += f"  fused/torch_cl {med['fused'] / med['torch_cl']:.2f}x"
        print(f"threads {t}: {row}{extra}")
        print("   rounds: " + "; ".join(f"{v} " + ",".join(f"{x:.0f}" for x in res[(t, v)])
                                        for v in variants))


if __name__ == "__main__":
    main()
