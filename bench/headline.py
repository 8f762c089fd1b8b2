"""The headline comparison: cnnfast vs tf.keras vs PyTorch in both layouts, in alternation.

    python -m bench.headline                      # tutorial CNN: train b32, b128, predict b256
    python -m bench.headline --rounds 5 --models cnn,mlp
    python -m bench.headline --sweep              # batch-size sweep: images/s and peak RSS
    python -m bench.headline --sweep --batches 32,256,2048,8192 --frameworks cnnfast,tf.keras

Every measurement is one fresh `bench/worker.py train` process (bench/run.py's workers: the
same models, data, thread settings and timing). A round runs every (framework, batch) once, the
frameworks in a rotated order, so a slow spell of the machine hits all of them; the table gives
the median over rounds and the spread (min-max) in images/s. "best peer" is the faster of
tf.keras and the two PyTorch layouts *in each round*; the ratio column is the median over rounds
of cnnfast / best peer.

Frameworks: cnnfast, tf.keras, torch (NCHW, PyTorch's default), torch-cl (channels_last
weights and inputs: the layout a performance-minded PyTorch user picks on CPU).

--sweep: per batch size, training and predict images/s and the worker's peak RSS (VmHWM, MiB)
for cnnfast and tf.keras (one round by default), with the training run limited to a few steps.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from bench import models as M
from bench.run import OUT, prepare_data, run_worker

PEERS = ("tf.keras", "torch", "torch-cl")
FRAMEWORKS = ("cnnfast",) + PEERS


def worker_args(fw, model, batch, threads, data, target_s, infer=True, train=True):
    args = ["train", "--framework", "torch" if fw == "torch-cl" else fw, "--model", model,
            "--batch", batch, "--threads", threads, "--target-s", target_s, "--min-steps", 2,
            "--max-samples", max(16384, 4 * batch)]
    if fw == "torch-cl":
        args.append("--torch-channels-last")
    if data:
        args += ["--data", data]
    if not infer:
        args.append("--no-infer")
    if not train:
        args.append("--no-train")
    return args


def run_rounds(jobs, rounds, threads, timeout, emit):
    """jobs: list of (key, framework, args). Returns {key: {framework: [record per round]}}."""
    out = {}
    for r in range(rounds):
        shift = r % len(FRAMEWORKS)
        for key, fw, args in sorted(jobs, key=lambda j: (j[0], (FRAMEWORKS.index(j[1]) - shift)
                                                         % len(FRAMEWORKS))):
            t = time.perf_counter()
            rec = run_worker(args, threads, timeout)
            rec.update(kind="headline", key=list(key), framework=fw, round=r)
            emit(rec)
            out.setdefault(key, {}).setdefault(fw, []).append(rec)
            print(f"  round {r + 1}/{rounds} {key} {fw:9s} "
                  f"{summary(rec)} ({time.perf_counter() - t:.0f} s)", flush=True)
    return out


def images_per_s(rec, phase):
    p = rec.get(phase)
    return p["images_per_s"] if p and "error" not in rec else None


def summary(rec):
    if "error" in rec:
        return "ERROR " + rec["error"].splitlines()[-1][:160]
    parts = [f"{ph} {images_per_s(rec, ph):,.0f} img/s" for ph in ("train", "infer")
             if images_per_s(rec, ph)]
    return ", ".join(parts) + f", peak RSS {rec.get('peak_rss_mib', 0):,.0f} MiB"


def cell(vals):
    vals = [v for v in vals if v]
    if not vals:
        return "–"
    med = statistics.median(vals)
    return f"{med:,.0f} ({min(vals):,.0f}–{max(vals):,.0f})" if len(vals) > 1 else f"{med:,.0f}"


def headline_table(res, rows, fws):
    """rows: list of (label, key, phase)."""
    L = ["| model, measure | " + " | ".join(fws) + " | cnnfast / best peer (median, range) |",
         "|---|" + "---:|" * (len(fws) + 1)]
    for label, key, phase in rows:
        per = res.get(key, {})
        cells = [cell([images_per_s(r, phase) for r in per.get(fw, [])]) for fw in fws]
        ratios = []
        n = max((len(v) for v in per.values()), default=0)
        for i in range(n):
            mine = images_per_s(per["cnnfast"][i], phase) if i < len(per.get("cnnfast", [])) \
                else None
            peers = [images_per_s(per[fw][i], phase) for fw in PEERS
                     if fw in per and i < len(per[fw])]
            peers = [p for p in peers if p]
            if mine and peers:
                ratios.append(mine / max(peers))
        ratio = (f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
                 if ratios else "–")
        L.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return L


def sweep_table(res, batches, fws):
    L = ["| batch | " + " | ".join(f"{fw} train img/s | {fw} predict img/s | {fw} peak RSS MiB"
                                   for fw in fws) + " |",
         "|---:|" + "---:|" * (3 * len(fws))]
    for b in batches:
        cells = []
        for fw in fws:
            recs = res.get(("sweep", b), {}).get(fw, [])
            cells += [cell([images_per_s(r, "train") for r in recs]),
                      cell([images_per_s(r, "infer") for r in recs]),
                      cell([r.get("peak_rss_mib") for r in recs if "error" not in r])]
        L.append(f"| {b} | " + " | ".join(cells) + " |")
    return L


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench.headline",
                                description=__doc__.splitlines()[0])
    p.add_argument("--models", default="cnn", help=f"comma list of {','.join(M.MODELS)}")
    p.add_argument("--frameworks", default=None, help="comma list of " + ",".join(FRAMEWORKS))
    p.add_argument("--rounds", type=int, default=None, help="default 5 (--sweep: 1)")
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    p.add_argument("--target-s", type=float, default=2.0, help="seconds per measurement")
    p.add_argument("--predict-batch", type=int, default=256)
    p.add_argument("--sweep", action="store_true", help="the batch-size sweep instead")
    p.add_argument("--batches", default="32,128,512,2048,8192", help="--sweep batch sizes")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--timeout", type=int, default=900)
    a = p.parse_args(argv)
    a.models = [m for m in a.models.split(",") if m]
    for m in a.models:
        if m not in M.MODELS:
            p.error(f"unknown model {m!r}")
    default = "cnnfast,tf.keras" if a.sweep else ",".join(FRAMEWORKS)
    a.frameworks = [f for f in (a.frameworks or default).split(",") if f]
    for f in a.frameworks:
        if f not in FRAMEWORKS:
            p.error(f"unknown framework {f!r}")
    a.batches = [int(b) for b in a.batches.split(",")]
    a.rounds = a.rounds or (1 if a.sweep else 5)
    return a


def main(argv=None):
    a = parse(argv)
    os.makedirs(OUT, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(OUT, f"headline-{stamp}.jsonl")
    data, note = prepare_data(a.synthetic)

    def emit(rec):
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    emit({"kind": "header", "argv": sys.argv[1:] if argv is None else argv, "data": note,
          "threads": a.threads, "loadavg_start": os.getloadavg()})
    jobs = []
    if a.sweep:
        for b in a.batches:
            for fw in a.frameworks:
                # a short training measurement: big batches take seconds per step
                jobs.append((("sweep", b), fw, worker_args(fw, a.models[0], b, a.threads, data,
                                                           min(a.target_s, 1.0))))
    else:
        for m in a.models:
            for b in (32, 128):
                for fw in a.frameworks:
                    jobs.append(((m, b), fw, worker_args(fw, m, b, a.threads, data, a.target_s,
                                                         infer=False)))
            for fw in a.frameworks:
                jobs.append(((m, a.predict_batch), fw,
                             worker_args(fw, m, a.predict_batch, a.threads, data, a.target_s,
                                         train=False)))
    print(f"bench.headline: {len(jobs)} measurements x {a.rounds} rounds, {a.threads} threads, "
          f"load average {os.getloadavg()}; data: {note}", flush=True)
    res = run_rounds(jobs, a.rounds, a.threads, a.timeout, emit)
    load = os.getloadavg()
    L = [f"`python -m bench.headline {' '.join(sys.argv[1:] if argv is None else argv)}` — "
         f"{a.rounds} round(s), {a.threads} threads, images/s median (min–max); load average "
         f"at end {tuple(round(x, 2) for x in load)}", ""]
    if a.sweep:
        L += sweep_table(res, a.batches, a.frameworks)
    else:
        rows = []
        for m in a.models:
            rows += [(f"{m} train b32", (m, 32), "train"), (f"{m} train b128", (m, 128), "train"),
                     (f"{m} predict b{a.predict_batch}", (m, a.predict_batch), "infer")]
        L += headline_table(res, rows, a.frameworks)
    md = "\n".join(L)
    print()
    print(md)
    with open(path.replace(".jsonl", ".md"), "w") as f:
        f.write(md + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
