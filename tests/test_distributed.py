"""cnnfast.distributed: data-parallel fit over MPI (docs/distributed.md).

The MPI tests run tests/distributed_worker.py under `mpiexec -n 2` in a subprocess with a
timeout (a hang fails the test instead of the suite); they skip when mpi4py or mpiexec is
missing. The hooks they rest on (the Net's split step, Dropout's stream offset) are checked
here in-process, without MPI."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import backend, executor, layers
from cnnfast.distributed import launch
from cnnfast.distributed.optimizer import GradientReducer
from cnnfast.layers.base import reset_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed_worker.py")
TIMEOUT = 180  # seconds per mpiexec run (a few seconds on an idle machine)
# The ranks import the cnnfast under test (installed, or this tree's in-place build).
PYTHONPATH = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(cf.__file__)))] +
                             [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def _env(**extra):
    return dict(os.environ, PYTHONPATH=PYTHONPATH, **extra)


def _have_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return launch.find_mpiexec() is not None


mpi = pytest.mark.skipif(not _have_mpi(), reason="mpi4py or mpiexec missing "
                         "(pip install 'cnnfast[mpi]')")


def run_ranks(n, args, tmp_path, plain=False, check=True, timeout=TIMEOUT):
    """Run the worker on n ranks (or alone, plain) in its own folder; returns
    (CompletedProcess, seconds, folder)."""
    out = tmp_path / ("plain" if plain else f"n{n}")
    argv = [sys.executable, WORKER, args[0], str(out)] + list(args[1:])
    if plain:
        cmd, env = argv + ["--plain"], _env(OMP_NUM_THREADS="1")
    else:
        cmd, env = launch.mpiexec_command(n, argv, threads=1)
        env["PYTHONPATH"] = PYTHONPATH
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=tmp_path)
    took = time.monotonic() - t0
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p, took, out


def load(folder, rank):
    with np.load(folder / f"rank{rank}.npz") as f:
        return {k: f[k] for k in f.files}


def rel_diff(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


# ---- without MPI ----------------------------------------------------------------------------
def test_importing_cnnfast_imports_no_mpi(tmp_path):
    code = ("import sys, cnnfast, cnnfast.distributed, cnnfast.distributed.callbacks; "
            "assert 'mpi4py' not in sys.modules, sorted(m for m in sys.modules if 'mpi' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=_env(),
                   timeout=120)


def test_calls_before_init_say_so(tmp_path):
    code = ("import cnnfast.distributed as d\n"
            "try:\n    d.rank()\nexcept RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=_env(), timeout=120).stdout
    assert "call cnnfast.distributed.init() first" in out


@pytest.mark.parametrize("first", [0, 1, 37, 1000])
def test_dropout_forward_at_is_the_whole_batch_mask_of_its_rows(first):
    """Rows [k, B) drawn with first = k * row size give the mask and output the whole batch
    gives those rows: a rank's shard draws the global batch's Dropout."""
    r = np.random.default_rng(0)
    per_row, k = 7, 3
    x = r.random((first // per_row + k + 5, per_row), dtype=np.float32) + 0.5
    full_out, full_mask = np.empty_like(x), np.empty(x.shape, np.uint8)
    backend.dropout_forward(full_out, full_mask, x, 0.4, 1234)
    rows = first // per_row
    part = np.ascontiguousarray(x[rows:])
    out, mask = np.empty_like(part), np.empty(part.shape, np.uint8)
    backend.dropout_forward_at(out, mask, part, 0.4, 1234, rows * per_row)
    np.testing.assert_array_equal(mask, full_mask[rows:])
    np.testing.assert_array_equal(out, full_out[rows:])
    if first == 0:  # first=0 is dropout_forward itself
        backend.dropout_forward_at(out, mask, x, 0.4, 1234, 0)
        np.testing.assert_array_equal(out, full_out)


@pytest.mark.parametrize("layer", [layers.RandomFlip("horizontal_and_vertical"),
                                   layers.RandomRotation(0.3), layers.RandomZoom(0.3)],
                         ids=["flip", "rotation", "zoom"])
def test_augment_forward_first_is_the_whole_batch_draw(layer):
    """Images [k, B) with first = k are transformed as the whole batch transforms them."""
    r = np.random.default_rng(0)
    x = r.random((9, 7, 7, 2), dtype=np.float32)
    layer.build(x.shape)
    full = np.empty_like(x)
    backend.augment_forward(full, x, layer.spec(), 77)
    part, out = np.ascontiguousarray(x[4:]), np.empty_like(x[4:])
    backend.augment_forward(out, part, layer.spec(), 77, 4)
    np.testing.assert_array_equal(out, full[4:])
    with pytest.raises(ValueError, match="augment_forward: first must be >= 0"):
        backend.augment_forward(out, part, layer.spec(), 77, -1)


def test_spatial_dropout_first_is_the_whole_batch_mask():
    r = np.random.default_rng(0)
    x = r.random((7, 3, 3, 5), dtype=np.float32) + 0.5
    full, fmask = np.empty_like(x), np.empty((7, 5), np.uint8)
    backend.spatial_dropout_forward(full, fmask, x, 0.5, 31)
    part, out, mask = np.ascontiguousarray(x[3:]), np.empty_like(x[3:]), np.empty((4, 5), np.uint8)
    backend.spatial_dropout_forward(out, mask, part, 0.5, 31, 3 * 5)
    np.testing.assert_array_equal(mask, fmask[3:])
    np.testing.assert_array_equal(out, full[3:])
    with pytest.raises(ValueError, match="spatial_dropout_forward: first must be >= 0"):
        backend.spatial_dropout_forward(out, mask, part, 0.5, 31, -1)


def test_dropout_forward_at_rejects_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="dropout_forward_at: first must be >= 0"):
        backend.dropout_forward_at(np.empty_like(x), np.empty(x.shape, np.uint8), x, 0.5, 1, -1)
    with pytest.raises(ValueError, match="dropout_forward_at: rate"):
        backend.dropout_forward_at(np.empty_like(x), np.empty(x.shape, np.uint8), x, 1.5, 1, 0)


def _model(dropout=0.3):
    reset_names()
    cf.utils.set_random_seed(2)
    m = cf.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                       layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(8, activation="relu"),
                       layers.Dropout(dropout), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=cf.optimizers.Adam(clipnorm=0.5),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=12):
    r = np.random.default_rng(1)
    return r.random((n, 6, 6, 2), dtype=np.float32), r.integers(0, 3, n).astype(np.int32)


def test_net_split_step_equals_the_fused_step(threads):
    """train_step(update=False) then apply_update is the fused step, bit for bit (clipping
    included), and sample_offset=0 is the default: the split the all-reduce sits in changes
    nothing by itself."""
    x, y = _data()
    idx = np.arange(2, 10, dtype=np.int64)
    results = []
    for split in (False, True):
        m = _model()
        eng = executor.for_model(m, 8, "train")
        assert isinstance(eng, executor.NativeEngine)
        eng._wire_optimizer()
        for step in (1, 2, 3):
            if split:
                r = eng.net.train_step(x, y, idx, 99 + step, 1e-2, step, sample_offset=0,
                                       update=False)
                eng.net.apply_update(1e-2, step)
            else:
                r = eng.net.train_step(x, y, idx, 99 + step, 1e-2, step)
        results.append((r, [w.copy() for w in m.weights]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_net_sample_offset_draws_the_global_batch_dropout():
    """Two halves of a batch, the second with sample_offset = 4, compute the gradients the
    whole batch does (up to the sum's rounding): their masks are the whole batch's."""
    x, y = _data()
    idx = np.arange(8, dtype=np.int64)
    m = _model(0.5)
    eng = executor.for_model(m, 8, "train")
    eng._wire_optimizer()
    eng.net.train_step(x, y, idx, 5, 1e-2, 1, update=False)
    whole = [g.copy() for g in eng._grads]
    halves = []
    for off in (0, 4):
        eng.net.train_step(x, y, idx[off:off + 4], 5, 1e-2, 1, sample_offset=off, update=False)
        halves.append([g.copy() for g in eng._grads])
    for w, a, b in zip(whole, *halves):
        # per half the loss is scaled by 1/4, the whole batch's by 1/8
        np.testing.assert_allclose((a + b) / 2, w, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="sample_offset must be >= 0"):
        eng.net.train_step(x, y, idx, 5, 1e-2, 1, sample_offset=-1, update=False)
    with pytest.raises(ValueError, match="Net.apply_update: step must be >= 1"):
        eng.net.apply_update(1e-2, 0)


class _FakeWorld:
    def __init__(self, rank, size):
        self.rank, self.size, self.comm, self.MPI = rank, size, None, None


@pytest.mark.parametrize("m,size", [(16, 2), (7, 2), (1, 2), (10, 4), (3, 4)])
def test_shards_cover_the_global_batch_in_rank_order(m, size):
    shards = [GradientReducer(_FakeWorld(r, size), "auto").shard(m) for r in range(size)]
    assert sum(n for _, n in shards) == m
    assert [off for off, _ in shards] == list(np.cumsum([0] + [n for _, n in shards])[:-1])
    assert max(n for _, n in shards) - min(n for _, n in shards) <= 1


def test_distributed_optimizer_checks_its_arguments():
    with pytest.raises(ValueError, match="reduction must be one of"):
        cf.distributed.DistributedOptimizer("adam", reduction="ring")
    with pytest.raises(ValueError, match="initial_lr must be a positive number"):
        cf.distributed.callbacks.LearningRateWarmupCallback(0)
    with pytest.raises(ValueError, match="warmup_epochs must be positive"):
        cf.distributed.callbacks.LearningRateWarmupCallback(0.1, warmup_epochs=0)


def test_mpiexec_command_sets_threads_and_flags():
    cmd, env = launch.mpiexec_command(2, ["python", "t.py"], mpiexec="/bin/false", cores=8)
    assert cmd[:3] == ["/bin/false", "-n", "2"] and cmd[-2:] == ["python", "t.py"]
    assert env["OMP_NUM_THREADS"] == "4"
    with pytest.raises(ValueError, match="workers must be a positive int"):
        launch.mpiexec_command(0, ["x"], mpiexec="/bin/false")


# ---- under mpiexec -n 2 ---------------------------------------------------------------------
@mpi
@pytest.mark.parametrize("n,opts", [
    (2, []), (2, ["--layer-engine"]), (2, ["--validation", "--samples", "67"]),
    (2, ["--optimizer", "sgd", "--reduction", "reduce_bcast"]),
    (2, ["--optimizer", "rmsprop", "--reduction", "reduce_scatter"]),
    # 61 rows in global batches of 15: the last has 1 row, so ranks 1 and 2 step with none
    (3, ["--samples", "61", "--reduction", "reduce_scatter"]),
    (3, ["--samples", "61", "--layer-engine"]),
    (2, ["--augment"]), (3, ["--augment", "--layer-engine"]), (2, ["--spatial"])],
    ids=["native", "layer-engine", "validation", "sgd-reduce-bcast", "rmsprop-reduce-scatter",
         "3-ranks-empty-shard", "3-ranks-layer-engine", "augment", "3-ranks-augment-layer",
         "spatial-dropout"])
def test_n_ranks_at_b_equal_one_process_at_nb(tmp_path, n, opts):
    """n ranks x batch 5 with Dropout 0.3 take the steps of one process at batch 5n: the same
    samples and masks in each step, so the weights and the history agree to float32 rounding
    (measured: at most 3.4e-7 relative), and every rank holds the same bits."""
    _, _, d = run_ranks(n, ["train", "--batch", "5"] + opts, tmp_path)
    _, _, p = run_ranks(1, ["train", "--batch", str(5 * n)] + opts, tmp_path, plain=True)
    ranks, ref = [load(d, r) for r in range(n)], load(p, 0)
    assert set(ranks[0]) == set(ref)
    for k in ranks[0]:
        for other in ranks[1:]:
            np.testing.assert_array_equal(ranks[0][k], other[k], err_msg=k)
        if k.startswith(("w", "h_")):
            assert rel_diff(ranks[0][k], ref[k]) < 2e-6, k
    samples = int(opts[opts.index("--samples") + 1]) if "--samples" in opts else 70
    train_rows = int(samples * 0.75) if "--validation" in opts else samples
    assert int(ranks[0]["iterations"]) == int(ref["iterations"]) == 2 * -(-train_rows //
                                                                           (5 * n))
    assert (d / "ckpt-r0.keras").exists()
    assert not any((d / f"ckpt-r{r}.keras").exists() for r in range(1, n))


@mpi
def test_tutorial_cnn_two_ranks_done_when(tmp_path):
    """The issue's done-when: the tutorial CNN (zoo 'cnn') on 2 ranks with DistributedOptimizer
    and the two callbacks ends within 1e-3 relative of one process at twice the batch, ranks
    identical, a checkpoint written by rank 0 only."""
    args = ["--model", "cnn", "--samples", "48", "--epochs", "2"]
    _, _, d = run_ranks(2, ["train", "--batch", "8"] + args, tmp_path)
    _, _, p = run_ranks(1, ["train", "--batch", "16"] + args, tmp_path, plain=True)
    r0, r1, ref = load(d, 0), load(d, 1), load(p, 0)
    for k in r0:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
        if k.startswith(("w", "h_")):
            assert rel_diff(r0[k], ref[k]) < 1e-3, k
    assert (d / "ckpt-r0.keras").exists() and not (d / "ckpt-r1.keras").exists()
    model = cf.models.load_model(d / "ckpt-r0.keras")
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, r0[f"w{i}"])


@mpi
def test_broadcast_gives_every_rank_rank0s_weights(tmp_path):
    _, _, d = run_ranks(2, ["broadcast"], tmp_path)
    r0, r1 = load(d, 0), load(d, 1)
    ws = sorted(k for k in r0 if k.startswith("w"))
    assert any(not np.array_equal(r0["init" + k[1:]], r1["init" + k[1:]]) for k in ws)
    for k in ws:
        np.testing.assert_array_equal(r1[k], r0["init" + k[1:]])
        np.testing.assert_array_equal(r0[k], r0["init" + k[1:]])


@mpi
def test_metric_average_is_exact(tmp_path):
    _, _, d = run_ranks(2, ["metrics"], tmp_path)
    for r in (0, 1):
        got = load(d, r)
        assert float(got["a"]) == 0.5
        assert float(got["b"]) == (0.1 + 0.2) / 2
        assert float(got["same"]) == 0.3


@mpi
def test_warmup_follows_horovods_formula(tmp_path):
    _, _, d = run_ranks(2, ["warmup", "--samples", "64", "--batch", "8", "--epochs", "3"],
                        tmp_path)
    seen = load(d, 0)["seen"]  # (lr, momentum) inside each batch
    steps, size, warm = 4, 2, 2
    lr_prev = 0.1
    for i, (lr, mom) in enumerate(seen):
        epoch, batch = divmod(i, steps)
        if epoch < warm:
            e = epoch + batch / steps + 1 / steps
            want = 0.1 / size * (e * (size - 1) / warm + 1)
            assert lr == pytest.approx(want, rel=1e-12)
            assert mom == pytest.approx(0.9 * want / lr_prev, rel=1e-12)
            lr_prev = want
        else:
            assert (lr, mom) == (pytest.approx(lr_prev), 0.9)
    np.testing.assert_array_equal(load(d, 0)["w0"], load(d, 1)["w0"])


@mpi
def test_mismatched_models_raise_on_every_rank(tmp_path):
    p, took, d = run_ranks(2, ["mismatch"], tmp_path)
    for r in (0, 1):
        msg = (d / f"rank{r}.txt").read_text()
        assert "the ranks disagree on fit(): weight shapes" in msg
        assert "rank 0: [(3, 3, 2, 4)" in msg and "rank 1: [(162, 4)" in msg


@mpi
def test_a_dead_rank_ends_the_job(tmp_path):
    """Rank 1 exits at its second step without a word; mpiexec ends the other rank, which
    would otherwise train for 1000 epochs, with an error, well within the timeout."""
    p, took, _ = run_ranks(2, ["die"], tmp_path, check=False, timeout=120)
    assert p.returncode != 0
    assert took < 60, took


def _have_fashion_mnist():
    from cnnfast import runs
    try:
        runs.load_data(10, 10)
    except runs.RunError:
        return False
    return True


@mpi
def test_cli_train_workers_two(tmp_path):
    """`cnnfast train --workers 2` runs itself on 2 ranks; rank 0 alone writes the run."""
    if not _have_fashion_mnist():
        pytest.skip("Fashion-MNIST is not installed")
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "cnnfast", "train", "--workers", "2", "--model",
                        "mlp", "--epochs", "1", "--limit", "600", "--test-limit", "100",
                        "--out", str(out), "--no-plots", "--verbose", "0"],
                       capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path,
                       env=_env())
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("Test accuracy:") == 1  # rank 0 prints, rank 1 does not
    assert (out / "model.keras").exists()
    assert json.loads((out / "run.json").read_text())["train_images"] == 540


@mpi
def test_an_exception_on_one_rank_aborts_the_job(tmp_path):
    """An uncaught exception on rank 1 (init's hook: MPI_Abort) ends rank 0 too."""
    p, took, _ = run_ranks(2, ["raise"], tmp_path, check=False, timeout=120)
    assert p.returncode != 0
    assert "rank 1 fails on purpose" in p.stdout + p.stderr
    assert took < 60, took


@mpi
def test_one_rank_is_the_plain_run_bit_for_bit(tmp_path):
    """mpiexec -n 1 with the DistributedOptimizer: the split step, the all-reduce of one
    buffer (weight 1) and offset 0 change nothing, on either engine."""
    for opts in ([], ["--layer-engine"]):
        sub = tmp_path / ("layer" if opts else "native")
        sub.mkdir()
        _, _, d = run_ranks(1, ["train", "--batch", "16"] + opts, sub)
        _, _, p = run_ranks(1, ["train", "--batch", "16"] + opts, sub, plain=True)
        got, ref = load(d, 0), load(p, 0)
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def test_scaling_model_formula():
    sys.path.insert(0, ROOT)
    try:
        from bench import distributed as bd
    finally:
        sys.path.remove(ROOT)
    (row,) = bd.scaling_rows("m", 1_000_000, 0.010, 32, nodes=(8,), gbits=(10,))
    nbytes = 2 * 7 / 8 * 4e6
    assert row["mb_per_step"] == pytest.approx(nbytes / 1e6)
    t_ar = nbytes / (10e9 / 8 * 0.8) + 14 * 50e-6
    assert row["allreduce_ms"] == pytest.approx(1e3 * t_ar)
    assert row["efficiency"] == pytest.approx(0.010 / (0.010 + t_ar))
    assert row["images_per_s"] == pytest.approx(8 * 32 / (0.010 + t_ar))


@mpi
def test_bench_distributed_smoke(tmp_path):
    """`python -m bench.distributed` end to end on tiny settings (the figures mean nothing)."""
    import glob
    import importlib.machinery
    if not any(glob.glob(os.path.join(ROOT, "cnnfast", "_core*" + suffix))
               for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        pytest.skip("bench/ runs cnnfast from the source tree, which has no in-place build")
    out = tmp_path / "b.json"
    p = subprocess.run([sys.executable, "-m", "bench.distributed", "--models", "mlp",
                        "--batch", "4", "--steps", "2", "--scaling", "--json", str(out)],
                       capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=_env())
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(out.read_text())
    # the single process runs 2 threads, or 1 in the serial (no OpenMP) build
    threads = 2 if cf.build_info()["openmp"] else 1
    assert res[0]["ranks"]["ranks"] == 2 and res[0]["single"]["threads"] == threads
    assert set(res[0]["ranks"]["reductions_ms"]) == {"allgather", "reduce_scatter",
                                                     "reduce_bcast"}
    assert len(res[0]["scaling"]) == 8


@mpi
def test_stop_training_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    _, _, d = run_ranks(2, ["stop", "--epochs", "5"], tmp_path)
    r0, r1 = load(d, 0), load(d, 1)
    assert int(r0["iterations"]) == int(r1["iterations"]) == 3
    for k in r0:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)

