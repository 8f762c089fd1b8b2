"""Tutorial-style scripts written for TensorFlow (tests/tutorials/*.py) run on cnnfast after
the one allowed edit: the word `tensorflow` replaced by `cnnfast` in the imports. Each runs on a
small data subset; the parity test runs the untouched script under TensorFlow and compares what
both print and return (summary tables, shapes, parameter counts, history keys and lengths)."""
import glob
import io
import os
import re
from contextlib import redirect_stdout

import numpy as np
import pytest

HERE = os.path.join(os.path.dirname(__file__), "tutorials")
SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "tut_*.py")))
SAMPLES = "600"


def to_cnnfast(source):
    """The drop-in rule: only the import lines change, `tensorflow` -> `cnnfast`."""
    out = []
    for line in source.splitlines():
        if re.match(r"\s*(import|from)\s+tensorflow\b", line):
            line = line.replace("tensorflow", "cnnfast")
        out.append(line)
    return "\n".join(out) + "\n"


def _needs(src, engine):
    """Skip a tutorial whose optional packages are missing (TensorBoard: tensorboardX for
    cnnfast, tensorboard for TensorFlow's writer)."""
    if "TensorBoard(" in src:
        pytest.importorskip("tensorboardX" if engine == "cnnfast" else "tensorboard")


def run_script(name, engine, monkeypatch):
    with open(os.path.join(HERE, name)) as f:
        src = f.read()
    _needs(src, engine)
    if engine == "cnnfast":
        src = to_cnnfast(src)
        assert "tensorflow" not in "\n".join(
            ln for ln in src.splitlines() if ln.lstrip().startswith(("import", "from")))
        import cnnfast
        cnnfast.keras.backend.clear_session()
        cnnfast.utils.set_random_seed(0)
    else:
        import keras
        import tensorflow as tf

        from cnnfast.datasets import fashion_mnist
        # Keras would download the files (no network here); serve it the same arrays.
        for mod in {tf.keras.datasets.fashion_mnist, keras.datasets.fashion_mnist}:
            monkeypatch.setattr(mod, "load_data", fashion_mnist.load_data)
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
    monkeypatch.setenv("TUTORIAL_SAMPLES", SAMPLES)
    ns = {"__name__": "__main__"}
    buf = io.StringIO()
    with redirect_stdout(buf):
        exec(compile(src, name, "exec"), ns)
    return buf.getvalue(), ns["RESULT"]


def _have_data():
    try:
        from cnnfast.datasets import fashion_mnist
        fashion_mnist.load_data()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_data = pytest.mark.skipif(not _have_data(), reason="Fashion-MNIST files not available")


@needs_data
@pytest.mark.parametrize("name", SCRIPTS)
def test_tutorial_runs_on_cnnfast(name, monkeypatch):
    out, res = run_script(name, "cnnfast", monkeypatch)
    if "history" in res:
        h = res["history"]
        assert "loss" in h and all(np.isfinite(v).all() for v in h.values())
        assert res["test_acc"] > 0.3, out  # 600 images, 1-3 epochs: well above chance (0.1)
    else:
        assert res["shapes"][0] == (1, 28, 28, 32) and len(res["shapes"]) == 7


def _summary_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith(("│", "Model:", " Total", " Trainable",
                                                          " Non-trainable"))]


def _comparable(text):
    """Printed lines minus what legitimately differs (timings, trained numbers, progress)."""
    keep = []
    for ln in text.splitlines():
        if re.search(r"\d+(ms|us|s)/step|accuracy: 0\.\d+|loss: \d|Test (loss|accuracy)|"
                     r"test accuracy", ln):
            continue
        keep.append(ln)
    return keep


@pytest.mark.tf
@needs_data
@pytest.mark.parametrize("name", SCRIPTS)
def test_tutorial_matches_tensorflow(name, monkeypatch, tf_keras):
    tf_out, tf_res = run_script(name, "tensorflow", monkeypatch)
    cf_out, cf_res = run_script(name, "cnnfast", monkeypatch)
    # Summary tables: names, types, output shapes, parameter counts and totals, line by line.
    assert _summary_lines(cf_out) == _summary_lines(tf_out)
    # Everything else printed that does not depend on trained values or timing.
    assert _comparable(cf_out) == _comparable(tf_out)
    if "history" in tf_res:
        th, ch = tf_res["history"], cf_res["history"]
        assert sorted(ch) == sorted(th)
        assert {k: len(v) for k, v in ch.items()} == {k: len(v) for k, v in th.items()}
        if "predictions" in tf_res:
            assert cf_res["predictions"].shape == tf_res["predictions"].shape
            assert cf_res["predictions"].dtype == np.float32
    else:
        assert cf_res["shapes"] == [tuple(s) for s in tf_res["shapes"]]
        assert cf_res["names"] == tf_res["names"]
