"""Markdown tables from the JSON records written by bench/run.py."""
from __future__ import annotations

import json
import sys

FW = ["cnnfast", "cnnfast@base", "numpy", "tf.keras", "torch"]
LABEL = {"cnnfast": "cnnfast", "cnnfast@base": "cnnfast@base", "numpy": "NumPy ref",
         "tf.keras": "tf.keras", "torch": "torch"}
TARGET = 0.80          # issue #4: conv and dense GEMM phases >= 80 % of the sgemm peak at b128
TARGET_BATCH = 128


def _fmt(v, nd=1):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def _ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


def _pct(v):
    return f"{100 * v:.0f}%" if v is not None else "–"


def kernel_section(records, head, peaks):
    """Markdown of the kernel-level records ("kernel", "kernel_run") of one run."""
    T = head.get("threads")
    rows = [r for r in records if r.get("kind") == "kernel"]
    run_recs = [r for r in records if r.get("kind") == "kernel_run"]
    if not rows and not run_recs:
        return []
    fws = [f for f in FW if any(r["framework"] == f for r in rows)]
    by = {(r["framework"], r["layer"], r["batch"], r["pass"]): r for r in rows}
    layers, descs = [], {}
    for r in rows:
        if r["layer"] not in descs:
            layers.append(r["layer"])
            descs[r["layer"]] = (r["desc"], r.get("also") or [])
    batches = sorted({r["batch"] for r in rows})
    L = [f"**Kernels, {T} thread{'s' if T != 1 else ''}** — median of "
         f"{head.get('kernel_repeats')} timed repeats "
         f"after a warm-up (short kernels looped to ≥ 20 ms per repeat), one process per "
         f"implementation; % = GFLOP/s ÷ the {peak_text(peaks.get(T, {}), T)}, measured in "
         "this run", ""]
    for r in run_recs:
        if "error" in r:
            L.append(f"- {LABEL.get(r['framework'], r['framework'])}: ERROR "
                     f"{r['error'].splitlines()[-1][:300]}")
        else:
            m = r.get("meta", {})
            src = r.get("cnnfast_file", "")
            L.append(f"- {LABEL.get(r['framework'], r['framework'])}: "
                     + (f"cnnfast {m.get('version')}, ISA {m.get('isa')}, {m.get('threads')} "
                        f"threads, `{src}`" if r["framework"] != "numpy" else
                        f"`cnnfast.reference` conv/pool/dense in float32 (numpy "
                        f"{m.get('version')})")
                     + f"; {r.get('seconds')} s")
    L.append("")
    cf = [f for f in fws if f != "numpy"]
    cols = []
    for f in fws:
        cols += [f"{LABEL[f]} ms", f"{LABEL[f]} GFLOP/s (% peak)"]
    if "cnnfast" in fws:
        cols.append("cnnfast GEMM phases, % peak")
        cols += [f"cnnfast/{LABEL[f]}" for f in fws if f != "cnnfast"]
    L.append("| layer | shape | batch | pass | GFLOP | " + " | ".join(cols) + " |")
    L.append("|---|---|---:|---|---:|" + "---:|" * len(cols))
    for b in batches:
        for lay in layers:
            desc, also = descs[lay]
            name = lay + (f" (= {', '.join(also)})" if also else "")
            for p in ("fwd", "bwd"):
                rs = {f: by.get((f, lay, b, p)) for f in fws}
                any_r = next((r for r in rs.values() if r), None)
                if any_r is None:
                    continue
                flop = any_r.get("flop")
                cells = []
                for f in fws:
                    r = rs[f]
                    if r is None or "error" in r:
                        cells += ["ERROR" if r else "–", "–"]
                        continue
                    gf = r.get("gflops")
                    cells += [f"{r['ms']:.3f}",
                              f"{_fmt(gf)} ({_pct(r.get('frac_peak'))})" if gf else "–"]
                if "cnnfast" in fws:
                    r = rs["cnnfast"]
                    g = (r or {}).get("gemm")
                    cells.append(" · ".join(f"{x['phase']} {_pct(x.get('frac_peak'))}"
                                            for x in g) if g else "–")
                    ms = {f: rs[f]["ms"] if rs[f] and "ms" in rs[f] else None for f in fws}
                    cells += [_ratio(ms[f], ms["cnnfast"]) for f in fws if f != "cnnfast"]
                gfl = f"{flop / 1e9:.3f}" if flop else "–"
                L.append(f"| {name} | {desc} | {b} | {p} | {gfl} | " + " | ".join(cells)
                         + " |")
    L.append("")
    L.append("GFLOP per call (analytic, multiply-add = 2): forward = 2 × MACs; backward = dW "
             "(2 × MACs) + dInput (2 × MACs) — dInput is computed for every layer, the first "
             "one included, so that both implementations do the same work (bias gradient, "
             "pooling and activations not counted; pooling rows: time only). "
             "`cnnfast/X` = X's time ÷ cnnfast's time (> 1: cnnfast faster). GEMM phases = "
             "the `_core.sgemm` calls of the layer's im2col lowering, same shapes, timed on "
             "their own (fwd: col @ W; dW: colᵀ @ dout; dX: dout @ Wᵀ, before col2im). NumPy "
             "ref max-pool backward recomputes the argmax from x; cnnfast keeps it from forward.")
    if any(r.get("frac_peak", 0) > 1 or any(g.get("frac_peak", 0) > 1 for g in r.get("gemm", []))
           for r in rows):
        L.append("")
        L.append("**Some fractions exceed 100 %**: the peak and those kernels ran under "
                 "different load (other processes on the machine); rerun when it is quiet.")
    L.append("")
    for f in cf:
        ph = [(r["layer"], x) for r in rows if r["framework"] == f and r["batch"] == TARGET_BATCH
              and r["op"] in ("conv", "dense") for x in r.get("gemm", [])]
        whole = [r for r in rows if r["framework"] == f and r["batch"] == TARGET_BATCH
                 and r["op"] in ("conv", "dense") and "frac_peak" in r]
        if not ph:
            L.append(f"**Target** (conv and dense GEMM phases ≥ {TARGET:.0%} of the measured "
                     f"sgemm peak at batch {TARGET_BATCH}), {LABEL[f]}: not checkable "
                     f"(batch {TARGET_BATCH} not measured or no peak)")
            continue
        ok = [x for _, x in ph if x.get("frac_peak", 0) >= TARGET]
        below = {}
        for lay, x in ph:
            if x.get("frac_peak", 0) < TARGET:
                below.setdefault(lay, []).append(f"{x['phase']} {_pct(x.get('frac_peak'))}")
        L.append(f"**Target** (conv and dense GEMM phases ≥ {TARGET:.0%} of the measured sgemm "
                 f"peak at batch {TARGET_BATCH}), {LABEL[f]}: **{len(ok)}/{len(ph)} GEMM phases "
                 f"meet it**" + ("; below: " + "; ".join(f"{k} {', '.join(v)}"
                                                        for k, v in below.items())
                                 if below else "")
                 + f". Whole kernels (im2col/col2im and bias included): "
                 f"{sum(1 for r in whole if r['frac_peak'] >= TARGET)}/{len(whole)} passes "
                 f"≥ {TARGET:.0%}.")
        L.append("")
        errs = [(r["max_rel_err"], r["layer"], r["batch"], r["pass"]) for r in rows
                if r["framework"] == f and "max_rel_err" in r]
        if errs:
            e = max(errs)
            L.append(f"{LABEL[f]} outputs vs the NumPy reference (float32, checked before "
                     f"timing): largest relative difference {e[0]:.1e} ({e[1]} b{e[2]} "
                     f"{e[3]})" + (" — **above 1e-4**" if e[0] > 1e-4 else ""))
            L.append("")
    bad = [r for r in rows if "error" in r]
    for r in bad:
        L.append(f"- ERROR {LABEL.get(r['framework'])} {r['layer']} b{r['batch']} {r['pass']}: "
                 f"{r['error'][:300]}")
    if bad:
        L.append("")
    return L


def markdown(records):
    head = next((r for r in records if r.get("kind") == "header"), {})
    foot = next((r for r in records if r.get("kind") == "footer"), {})
    models = {r["model"]: r for r in records if r.get("kind") == "model"}
    peaks = {r["threads"]: r for r in records if r.get("kind") == "peak"}
    vals = [r for r in records if r.get("kind") == "validate"]
    runs = [r for r in records if r.get("kind") == "train"]
    T = head.get("threads")
    main = {(r["model"], r["batch"], r["framework"]): r for r in runs
            if r["threads"] == T and "error" not in r}
    batches = sorted({r["batch"] for r in runs})
    fws = [f for f in FW if f in head.get("frameworks", FW)]
    mach = head.get("machine", {})
    cf = mach.get("cnnfast", {})
    meta = {}
    for r in runs:
        if "meta" in r:
            meta.setdefault(r["framework"], r["meta"])
    L = []
    cmd = " ".join(["python -m bench"] + [str(a) for a in head.get("argv", [])])
    L.append(f"Run {head.get('date')} — `{cmd}`")
    L.append("")
    L.append(f"- machine: {mach.get('cpu', '?')}, {mach.get('cpu_count')} cores; "
             f"**load average at start {tuple(round(x, 2) for x in head.get('loadavg_start', []))}"
             f", at end {tuple(round(x, 2) for x in foot.get('loadavg_end', []))}** "
             f"(other jobs were running: numbers are indicative); wall {foot.get('wall_s')} s")
    L.append(f"- threads: {T} for every framework (OMP/OpenBLAS/MKL env, cnnfast "
             f"set_num_threads" + (", TF intra/inter-op, torch.set_num_threads)" if runs
                                   else ")"))
    if head.get("data"):
        L.append(f"- data: {head.get('data')}")
    tree = head.get("tree") or {}
    if isinstance(cf, dict):
        L.append(f"- cnnfast {cf.get('version')}: {cf.get('compiler')}, OpenMP "
                 f"{cf.get('openmp')}, GEMM ISA **{cf.get('isa')}** (supported: "
                 f"{cf.get('supported_isas')})"
                 + (f"; tree `{tree.get('dir')}` at {tree.get('git')}" if tree else ""))
    base = head.get("baseline")
    if base:
        bm = meta.get("cnnfast@base") or next(
            (r.get("meta", {}) for r in records if r.get("kind") == "kernel_run"
             and r.get("framework") == "cnnfast@base"), {})
        L.append(f"- **cnnfast@base**: the cnnfast of `{base.get('dir')}` at {base.get('git')}"
                 f" (version {bm.get('version')}, GEMM ISA {bm.get('isa')}), imported by its "
                 f"workers through PYTHONPATH (checked: every worker reports the cnnfast file "
                 f"it imported); `cnnfast/cnnfast@base` > 1 means this tree is faster")
    if runs:
        L.append(f"- NumPy ref: `cnnfast.reference.trainer` (float32 reference kernels), "
                 f"numpy {mach.get('numpy')}")
    if "tf.keras" in meta:
        L.append(f"- tf.keras: TF {meta['tf.keras'].get('version')}, oneDNN on "
                 f"(TF_ENABLE_ONEDNN_OPTS=1, TF's default on x86), jit_compile=False, "
                 f"model.fit/predict, verbose=0")
    if "torch" in meta:
        L.append(f"- torch: {meta['torch'].get('version')} eager, layout "
                 f"{meta['torch'].get('layout')}, Adam(eps=1e-7), F.cross_entropy on logits, "
                 f"plain loop over shuffled index batches; inference under inference_mode")
    for n in head.get("notes", []):
        L.append(f"- {n}")
    if runs:
        L.append("- images/s: steady state, timed over K whole batches after a warm-up "
                 "(K from a ~" + f"{head.get('target_s')} s target, at least 2 steps)")
    L.append("")
    if not runs:
        L += kernel_section(records, head, peaks)
        return "\n".join(L) + "\n"

    if vals:
        L.append("**Validation** (cnnfast vs NumPy reference trainer, identical weights and "
                 "dropout masks, batch 32; loss of steps 1 and 2, tolerance 1e-4 relative): "
                 + "; ".join(f"{v['model']} " + ("ok" if v.get("ok") else "**FAILED**") +
                             (f" ({max(s['rel_err'] for s in v['steps']):.1e})"
                              if v.get("steps") else f" ({v.get('error', '')[:80]})")
                             for v in vals))
        L.append("")

    for what, key in (("Training", "train"), ("Inference (predict)", "infer")):
        L.append(f"**{what} images/s, {T} threads**")
        L.append("")
        cols = [LABEL[f] for f in fws]
        ratios = [f"cnnfast/{LABEL[f]}" for f in fws if f != "cnnfast"] \
            if "cnnfast" in fws else []
        L.append("| model | batch | " + " | ".join(cols + ratios) + " |")
        L.append("|---|---:|" + "---:|" * (len(cols) + len(ratios)))
        for m in models:
            for b in batches:
                v = {}
                for f in fws:
                    r = main.get((m, b, f))
                    v[f] = (r.get(key) or {}).get("images_per_s") if r else None
                cells = [_fmt(v[f]) for f in fws]
                if "cnnfast" in fws:
                    cells += [_ratio(v["cnnfast"], v[f]) for f in fws if f != "cnnfast"]
                L.append(f"| {m} | {b} | " + " | ".join(cells) + " |")
        L.append("")

    pk = peaks.get(T, {})
    L.append(f"**FLOPs and fraction of the FLOP-limited rate** — {peak_text(pk, T)}; "
             "fraction = images/s × FLOP/image ÷ peak (train / inference)")
    L.append("")
    L.append("| model | params | MFLOP/img train | MFLOP/img infer | batch | "
             + " | ".join(LABEL[f] for f in fws) + " |")
    L.append("|---|---:|---:|---:|---:|" + "---:|" * len(fws))
    peak = pk.get("peak_gflops")
    for m, mr in models.items():
        for b in batches:
            cells = []
            for f in fws:
                r = main.get((m, b, f))
                if not r or not peak:
                    cells.append("–")
                    continue
                tr = r["train"]["images_per_s"] * mr["train_flop_per_image"] / (peak * 1e9)
                inf = r.get("infer")
                fi = inf["images_per_s"] * mr["infer_flop_per_image"] / (peak * 1e9) \
                    if inf else None
                cells.append(f"{100 * tr:.1f}% / " + (f"{100 * fi:.1f}%" if fi else "–"))
            L.append(f"| {m} | {mr['params']:,} | {mr['train_flop_per_image'] / 1e6:.2f} | "
                     f"{mr['infer_flop_per_image'] / 1e6:.2f} | {b} | " + " | ".join(cells)
                     + " |")
    L.append("")

    S = head.get("scaling_threads")
    sc = {(r["model"], r["threads"]): r for r in runs if r["framework"] == "cnnfast"
          and r["batch"] == 128 and "error" not in r}
    if S and S != T and any(k[1] == S for k in sc):
        L.append(f"**cnnfast thread scaling, batch 128** (peak sgemm {S}T: "
                 f"{_fmt(peaks.get(S, {}).get('peak_gflops'))}, {T}T: "
                 f"{_fmt(peaks.get(T, {}).get('peak_gflops'))} GFLOP/s)")
        L.append("")
        L.append(f"| model | {S} thread train img/s | {T} threads train img/s | speed-up |")
        L.append("|---|---:|---:|---:|")
        for m in models:
            a, b = sc.get((m, S)), sc.get((m, T))
            ia = a["train"]["images_per_s"] if a else None
            ib = b["train"]["images_per_s"] if b else None
            L.append(f"| {m} | {_fmt(ia)} | {_fmt(ib)} | {_ratio(ib, ia)} |")
        L.append("")

    L.append(f"**Peak resident memory of the training process (VmHWM, MiB)**, {T} threads — "
             "includes the interpreter, the framework import and the loaded data "
             f"(same number of images for every framework)")
    L.append("")
    L.append("| model | batch | " + " | ".join(LABEL[f] for f in fws) + " |")
    L.append("|---|---:|" + "---:|" * len(fws))
    for m in models:
        for b in batches:
            cells = []
            for f in fws:
                r = main.get((m, b, f))
                cells.append(_fmt(r.get("peak_rss_mib_train"), 0) if r else "–")
            L.append(f"| {m} | {b} | " + " | ".join(cells) + " |")
    L.append("")
    growth = [(r["model"], r["batch"], r["rss_epochs"]) for r in runs if r.get("rss_epochs")]
    if growth:
        L.append("**cnnfast RSS after epochs 1, 2, 3** (MiB; epochs of a non-multiple of the "
                 "batch, so the partial last batch is included): " + "; ".join(
                     f"{m} b{b}: {g['rss_mib_after_epoch']} (Δ {g['growth_mib_epoch1_to_last']:+})"
                     for m, b, g in growth))
        L.append("")
    errs = [r for r in runs if "error" in r]
    for r in errs:
        L.append(f"- ERROR {r['model']} b{r['batch']} {r['framework']} {r['threads']}T: "
                 f"{r['error'].splitlines()[-1][:300]}")
    if errs:
        L.append("")
    L += kernel_section(records, head, peaks)
    return "\n".join(L) + "\n"


def peak_text(pk, T):
    """The measured sgemm peak of `T` threads and where it comes from, in one line."""
    return (f"peak sgemm at {T} threads = {_fmt(pk.get('peak_gflops'))} GFLOP/s (best of numpy "
            f"matmul 2048²: {_fmt(pk.get('numpy_matmul_2048_gflops'))}, cnnfast `_core.sgemm` "
            + ", ".join(f"{k.split('_')[2]}²: {_fmt(v)}" for k, v in pk.items()
                        if k.startswith("cnnfast_sgemm"))
            + (f"; {pk['error'][:200]}" if pk.get("error") else "") + ")")


if __name__ == "__main__":
    recs = [json.loads(line) for line in open(sys.argv[1])]
    print(markdown(recs))
