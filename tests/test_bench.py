"""Fast checks of the benchmark harness (bench/), tiny settings (~20 s on 2 busy cores).

The harness runs cnnfast from the source tree (its workers get PYTHONPATH=<repo>), so these
tests need an in-place build (python setup.py build_ext --inplace); against an installed
package with no build in the tree (CI's first runs) they skip, and CI's in-place serial-build
run executes them.
"""
import glob
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The compiled module itself (not _core.pyi, the type stub that is always there).
if not any(glob.glob(os.path.join(ROOT, "cnnfast", "_core*" + suffix))
           for suffix in importlib.machinery.EXTENSION_SUFFIXES):
    pytest.skip("bench/ runs cnnfast from the source tree, which has no in-place build",
                allow_module_level=True)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import kernels as K  # noqa: E402
from bench import models as M  # noqa: E402
from bench import report, run  # noqa: E402

assert run.ROOT == ROOT


def test_kernel_layers():
    layers = M.kernel_layers(list(M.MODELS))
    names = [la["name"] for la in layers]
    assert names[:6] == ["cnn/conv1", "cnn/pool1", "cnn/conv2", "cnn/pool2", "cnn/dense1",
                         "cnn/dense2"]
    assert M.kernel_layers(["mlp"]) == []
    # the first conv of cnn_dropout and cnn3_d512 is the same layer: listed once
    dup = next(la for la in layers if la["name"] == "cnn_dropout/conv1")
    assert dup["also"] == ["cnn3_d512/conv1"] and "cnn3_d512/conv1" not in names
    # the per-image MACs of cnn's conv/dense layers give the model's forward FLOPs
    assert 2 * sum(la["macs"] for la in M.kernel_layers(["cnn"])) == M.flops("cnn")[1]


def test_gemm_phases_add_up_to_the_layer_flops():
    for layer in M.kernel_layers(list(M.MODELS)):
        fl, ph = K.flops(layer, 8), K.gemm_phases(layer, 8)
        if layer["op"] == "pool":
            assert fl == (None, None) and ph == {}
            continue
        assert [sum(2 * m * n * k for _, m, n, k, _, _ in ph[p]) for p in ("fwd", "bwd")] \
            == list(fl)


@pytest.mark.parametrize("impl", ["cnnfast", "numpy"])
def test_kernel_rows_tiny(impl):
    pytest.importorskip("cnnfast._core")
    layers = M.kernel_layers(["cnn", "cnn3_d512"])
    rows = K.run(impl, layers, [2], repeats=1, min_time=0.0)
    assert [(r["layer"], r["pass"]) for r in rows] == \
        [(la["name"], p) for la in layers for p in ("fwd", "bwd")]
    for r in rows:
        assert "error" not in r, r
        assert r["ms"] > 0
        assert (r["gflops"] is None) == (r["op"] == "pool")
        if impl == "cnnfast":
            assert r["max_rel_err"] < 1e-4
            assert bool(r.get("gemm")) == (r["op"] != "pool")


def test_imported_from(tmp_path):
    init = os.path.join(ROOT, "cnnfast", "__init__.py")
    assert run.imported_from(init, ROOT) is None
    assert "expected" in run.imported_from(init, str(tmp_path))
    assert run.imported_from(None, ROOT)


def test_parse_flags(tmp_path):
    a = run.parse(["--kernels-only", "--quick"])
    assert (a.kernels, a.kernel_repeats, a.baseline) == ("only", 3, None)
    assert run.parse([]).kernels == "yes"
    assert run.parse(["--no-kernels"]).kernels == "no"
    with pytest.raises(SystemExit):
        run.parse(["--no-kernels", "--kernels-only"])
    with pytest.raises(SystemExit):                   # no built cnnfast there
        run.parse(["--baseline", str(tmp_path)])


def test_cli_with_baseline(tmp_path):
    """One tiny run of both sections with a copy of this tree's cnnfast as the baseline: the
    baseline's workers must import the copy, and the report must compare the two."""
    pytest.importorskip("cnnfast._core")
    base = tmp_path / "base"
    shutil.copytree(os.path.join(ROOT, "cnnfast"), base / "cnnfast",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (base / "bench").mkdir()           # a baseline tree's own bench/ must not be the one used
    (base / "bench" / "__init__.py").write_text("raise ImportError('baseline bench/ used')\n")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--models", "cnn",
                        "--batch", "4", "--frameworks", "cnnfast,numpy", "--threads", "1",
                        "--scaling-threads", "0", "--synthetic", "--target-s", "0.01",
                        "--kernel-repeats", "1", "--baseline", str(base), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items()
                            if k != "PYTHONDONTWRITEBYTECODE"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert not list(base.rglob("__pycache__"))      # nothing written into the baseline tree
    recs = [json.loads(line) for line in open(out / "latest.jsonl")]
    runs = {r["framework"]: r for r in recs if r["kind"] == "kernel_run"}
    assert set(runs) == {"cnnfast", "cnnfast@base", "numpy"}
    assert all("error" not in r for r in runs.values())
    assert runs["cnnfast@base"]["cnnfast_file"].startswith(str(base))
    assert runs["cnnfast"]["cnnfast_file"].startswith(os.path.join(ROOT, "cnnfast"))
    kern = [r for r in recs if r["kind"] == "kernel"]
    assert len(kern) == 3 * 6 * 2 and all("error" not in r for r in kern)
    assert all(r["frac_peak"] > 0 for r in kern if r["op"] != "pool")
    train = {r["framework"]: r for r in recs if r["kind"] == "train"}
    assert set(train) == {"cnnfast", "cnnfast@base", "numpy"}
    assert all("error" not in r for r in train.values())
    assert train["cnnfast@base"]["cnnfast_file"].startswith(str(base))
    md = (out / "latest.md").read_text()
    assert "cnnfast/cnnfast@base" in md and "**Training images/s" in md
    assert "**Kernels, 1 thread**" in md and "**Target**" in md
    # kernels-only records render without the end-to-end tables
    md = report.markdown([r for r in recs if r["kind"] not in ("model", "validate", "train")])
    assert "**Kernels" in md and "images/s" not in md


def test_step_cpu_compares_two_trees():
    """bench.step_cpu against this tree itself: one round, both columns filled, ratio near 1."""
    out = subprocess.run([sys.executable, "-m", "bench.step_cpu", "--baseline", ROOT,
                          "--models", "mlp", "--batch", "32", "--rounds", "1", "--steps", "20"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    row = next(ln for ln in out.splitlines() if ln.startswith("| mlp | 32 |"))
    cur, base, ratio = (float(v) for v in row.strip("| ").split("|")[2:])
    assert cur > 0 and base > 0 and 0.2 < ratio < 5


def test_fit_overhead_splits_the_loop():
    """bench.fit_overhead: the Net step is most of the fit step, the loop's phases are filled
    and the loop alone (no-op Net) costs less than the fit step."""
    import cnnfast as cf
    from bench import fit_overhead

    threads = cf.get_num_threads()
    try:
        rows, phases = fit_overhead.measure("mlp", 32, 30, verbose=1)  # sets 1 thread
    finally:
        cf.set_num_threads(threads)
    fit, net = rows["fit (one epoch, per step)"], rows["Net step (C++ train_step)"]
    assert 0 < net < 2 * fit
    assert 0 < rows["fit - validation with a no-op Net (the loop alone, warm caches)"] < fit
    assert all(v >= 0 for k, v in phases.items() if not k.startswith("rest")), phases
    assert phases["callbacks (on_train_batch_begin/end, progress bar)"] > 0
