"""The cnnfast command end to end on a Fashion-MNIST subset: train -> evaluate -> predict, bad
arguments (exit 2), missing things (one line, exit 1), the zoo, and the report in a real
headless browser."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import cli, zoo

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cf.__file__)))
FIGURES = ["samples.png", "history.png", "confusion_matrix.png", "predictions.png",
           "filters.png", "feature_maps.png"]

TINY_CONV = [{"class_name": "Conv2D", "config": {"filters": 8, "kernel_size": [3, 3],
                                                 "activation": "relu"}},
             {"class_name": "MaxPooling2D", "config": {"pool_size": [2, 2]}},
             {"class_name": "Flatten"},
             {"class_name": "Dense", "units": 10, "activation": "softmax"}]


def run_cli(*args, cwd=None, timeout=600):
    """`python -m cnnfast ARGS` in a subprocess that imports the same cnnfast as the tests."""
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    # cwd defaults to the package's parent: `-m` puts cwd first on sys.path, and from the
    # repository root that would be the unbuilt source tree instead of the installed package.
    return subprocess.run([sys.executable, "-m", "cnnfast", *map(str, args)],
                          cwd=cwd or PKG_PARENT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def fashion_mnist_or_skip():
    try:
        return cf.datasets.fashion_mnist.load_data()
    except Exception as e:  # noqa: BLE001 - no data on this machine: say why
        pytest.skip(f"Fashion-MNIST not available: {e}")


# ---- the zoo ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", zoo.NAMES)
def test_zoo_param_counts(name):
    model = zoo.build(name)
    assert model.count_params() == zoo.PARAMS[name]
    assert tuple(model.outputs[0].shape) == (None, 10)
    # the architecture written to spec.json rebuilds the same model
    assert zoo.from_layer_list(zoo.to_layer_list(model)).count_params() == zoo.PARAMS[name]


def test_zoo_expected_counts():
    assert zoo.PARAMS == {"mlp": 101_770, "cnn": 421_642, "cnn2": 1_199_882, "cnn3": 94_154}
    with pytest.raises(ValueError, match="choose one of mlp, cnn, cnn2, cnn3"):
        zoo.build("resnet")


def test_spec_forms_and_errors(tmp_path):
    keras_style = {"class_name": "Sequential", "config": {"name": "k", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 28, 28, 1]}},
        {"class_name": "Flatten", "config": {"data_format": "channels_last", "dtype": {
            "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}}},
        {"class_name": "Dense", "config": {"units": 10, "activation": "softmax",
                                           "kernel_regularizer": None,
                                           "kernel_initializer": {"class_name": "GlorotUniform",
                                                                  "config": {"seed": None}}}}]}}
    assert zoo.from_layer_list(keras_style).count_params() == 7850
    assert zoo.from_layer_list(TINY_CONV).count_params() == 8 * 10 + 13 * 13 * 8 * 10 + 10
    for bad, msg in (([], "non-empty"), ([{"class_name": "Nope"}], "unknown layer class"),
                     ([{"class_name": "Dense"}], r"layer 0 \(Dense\)"), ([3], "layer 0")):
        with pytest.raises(zoo.SpecError, match=msg):
            zoo.from_layer_list(bad)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(zoo.SpecError, match="not valid JSON"):
        zoo.from_spec(tmp_path / "bad.json")


# ---- arguments and errors --------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["fly"], "invalid choice"),
    (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
    (["train", "--model", "missing.json"], "no such model spec file"),
    (["train", "--epochs", "0"], "--epochs: must be at least 1"),
    (["train", "--batch-size", "x"], "--batch-size: expected an integer"),
    (["train", "--validation-split", "1"], "--validation-split: must be in"),
    (["train", "--lr", "-1"], "--lr: must be in"),
    (["train", "--optimizer", "adamw"], "invalid choice: 'adamw'"),
    (["train", "--threads", "0"], "--threads: must be at least 1"),
    (["predict", "runs/x"], "required: IMAGE"),
    (["evaluate"], "required: RUN_DIR"),
])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cnnfast") and "error:" in err and message in err, err


def test_bad_arguments_exit_2_from_the_shell():
    r = run_cli("train", "--model", "nope")
    assert r.returncode == 2 and "usage: cnnfast train" in r.stderr
    assert "Traceback" not in r.stderr


def one_line_error(r, command, text):
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"cnnfast {command}: error: ") and text in lines[0], lines[0]


def test_missing_run_dir_and_image_are_one_line(tmp_path):
    one_line_error(run_cli("evaluate", tmp_path / "nope"), "evaluate", "no such run directory")
    one_line_error(run_cli("predict", tmp_path, tmp_path / "nope.png"), "predict",
                   "no such image")
    one_line_error(run_cli("evaluate", tmp_path), "evaluate", "has no model.keras")


def test_missing_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    from cnnfast.datasets import DatasetNotFoundError, fashion_mnist

    def missing():
        raise DatasetNotFoundError("Fashion-MNIST data not found.\nSearched (in order):\n  - x")
    monkeypatch.setattr(fashion_mnist, "load_data", missing)
    assert cli.main(["train", "--out", str(tmp_path / "r"), "--verbose", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Fashion-MNIST data not found" in err[0]
    assert "apt-get install dataset-fashion-mnist" in err[0]


def test_bad_spec_and_early_stopping_without_validation(tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps([{"class_name": "Conv2D", "config": {"filters": 2}}]))
    assert cli.main(["train", "--model", str(spec), "--out", str(tmp_path / "r")]) == 1
    assert "layer 0 (Conv2D)" in capsys.readouterr().err
    assert cli.main(["train", "--early-stopping", "2", "--validation-split", "0",
                     "--out", str(tmp_path / "r")]) == 1
    assert "--validation-split above 0" in capsys.readouterr().err


def test_info(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    info = cf.build_info()
    assert out.startswith(f"cnnfast {cf.__version__}\n")
    assert f"ISA {info['isa']}" in out and "OpenMP" in out and "threads" in out
    assert "CUDA:    no" in out and "data:    Fashion-MNIST" in out


def test_console_script():
    exe = shutil.which("cnnfast")
    if exe is None:
        pytest.skip("the cnnfast console script is not installed (pip install .)")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"cnnfast {cf.__version__}"


def test_predict_top3_in_memory():
    """predict's path after loading: images -> top-3 (the saved-model part is tested below)."""
    cf.utils.set_random_seed(0)
    model = zoo.build("mlp")
    imgs = [np.zeros((28, 28), np.float32), np.ones((28, 28), np.float32)]
    res = cli.predict_images(model, imgs, list(cf.datasets.fashion_mnist.class_names), k=3)
    assert len(res) == 2
    for top in res:
        assert len(top) == 3
        probs = [p for _, _, p in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(cf.datasets.fashion_mnist.class_names[i] == n for n, i, _ in top)


# ---- end to end on a subset ------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One `cnnfast train` run on 600 images with a small conv net given as a JSON spec."""
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    fashion_mnist_or_skip()
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "tiny.json").write_text(json.dumps(TINY_CONV))
    out = tmp / "runs" / "tiny"
    r = run_cli("train", "--model", "tiny.json", "--epochs", "3", "--batch-size", "32",
                "--limit", "600", "--test-limit", "300", "--validation-split", "0.2",
                "--early-stopping", "2", "--seed", "1", "--threads", "1",
                "--out", "runs/tiny", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp, out, r.stdout


@pytest.mark.slow
def test_train_writes_the_run(trained_run):
    _, out, stdout = trained_run
    assert "━" in stdout and "Epoch 1/3" in stdout          # the Keras-style progress bar
    assert "Test accuracy:" in stdout and f"Report: {out / 'report.html'}" in stdout
    for f in ["run.json", "metrics.json", "history.json", "history.csv", "spec.json",
              "classification_report.txt", "confusion_matrix.txt", "model_summary.txt",
              "report.html"] + FIGURES:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert (out / "model.keras").exists()
    with zipfile.ZipFile(out / "model.keras") as z:             # a real Keras 3 file
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    settings = json.loads((out / "run.json").read_text())
    assert settings["train_images"] == 480 and settings["validation_images"] == 120
    assert settings["test_images"] == 300 and settings["threads"] == 1
    hist = json.loads((out / "history.json").read_text())
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    n = len(hist["loss"])
    assert 1 <= n <= 3 and all(len(v) == n for v in hist.values())
    assert (out / "history.csv").read_text().splitlines()[0] == \
        "epoch,accuracy,loss,val_accuracy,val_loss"
    m = json.loads((out / "metrics.json").read_text())
    assert 0.4 < m["test_accuracy"] <= 1.0, m["test_accuracy"]   # chance is 0.1
    assert np.array(m["confusion_matrix"]).sum() == 300
    assert "macro avg" in (out / "classification_report.txt").read_text()
    rebuilt = zoo.from_layer_list(json.loads((out / "spec.json").read_text()))
    assert rebuilt.count_params() == 8 * 10 + 13 * 13 * 8 * 10 + 10


def test_export_onnx(tmp_path, capsys):
    """`cnnfast export RUN --onnx` on a run directory's model.keras (a small CNN)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    run.mkdir()
    m = zoo.build("cnn")
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.save(run / "model.keras")
    assert cli.main(["export", str(run)]) == 1
    assert "choose a format: --onnx" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--onnx"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {run / 'model.onnx'}" in out and "ort.InferenceSession(" in out
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], m.predict(x, verbose=0),
                               rtol=0, atol=1e-5)
    assert cli.main(["export", str(tmp_path / "nope"), "--onnx"]) == 1
    assert "no such run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_train_named_model_mlp(tmp_path):
    fashion_mnist_or_skip()
    r = run_cli("train", "--model", "mlp", "--epochs", "1", "--limit", "500", "--test-limit",
                "200", "--verbose", "0", "--no-plots", "--threads", "1", "--optimizer", "sgd",
                "--lr", "0.05", "--out", tmp_path / "mlp")
    assert r.returncode == 0, r.stdout + r.stderr
    settings = json.loads((tmp_path / "mlp" / "run.json").read_text())
    assert settings["params"] == 101_770 and settings["learning_rate"] == pytest.approx(0.05)
    assert not (tmp_path / "mlp" / "samples.png").exists()


@pytest.mark.slow
def test_evaluate(trained_run):
    _, out, _ = trained_run
    r = run_cli("evaluate", out, "--test-limit", "300")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Test accuracy:" in r.stdout and "Test loss:" in r.stdout
    assert "precision    recall  f1-score   support" in r.stdout
    assert "weighted avg" in r.stdout and "true \\ predicted" in r.stdout
    trained = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    acc = float(re.search(r"Test accuracy: ([0-9.]+)", r.stdout).group(1))
    assert acc == pytest.approx(trained, abs=1e-4)   # the saved model is the trained one


@pytest.mark.slow
def test_predict_png(trained_run):
    from PIL import Image
    tmp, out, _ = trained_run
    (_, _), (x_test, y_test) = cf.datasets.fashion_mnist.load_data()
    # a light-background PNG, as a newcomer's picture would be; the CLI must invert it
    Image.fromarray(255 - x_test[1]).resize((112, 112)).save(tmp / "mine.png")
    r = run_cli("predict", out, "mine.png", "--json", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert [x["image"] for x in res] == ["mine.png"]
    top = res[0]["predictions"]
    assert len(top) == 3 and {"class", "index", "probability"} <= set(top[0])
    probs = [p["probability"] for p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-5
    r = run_cli("predict", out, "mine.png", cwd=tmp)
    assert r.returncode == 0 and r.stdout.startswith(f"mine.png: {top[0]['class']} ")


# ---- the report in a real browser ------------------------------------------------------------
def chromium_or_skip():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("no chromium binary found (Debian: apt-get install chromium; .ci/run does)")


def chromium(exe, *args, timeout=180):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var b = document.body;
  b.setAttribute('data-imgs-total', imgs.length);
  b.setAttribute('data-imgs-ok', ok.length);
  b.setAttribute('data-imgs-sizes', ok.map(function (i) {
    return i.naturalWidth + 'x' + i.naturalHeight; }).join(','));
  b.setAttribute('data-imgs-rects', imgs.map(function (i) {
    var r = i.getBoundingClientRect();
    return [r.left, r.top + window.scrollY, r.width, r.height].map(Math.round).join(' ');
  }).join(','));
  b.setAttribute('data-page-height', document.documentElement.scrollHeight);
});
</script></body>"""


@pytest.mark.slow
def test_report_in_headless_browser(trained_run, tmp_path):
    from PIL import Image
    exe = chromium_or_skip()
    _, out, _ = trained_run
    page = (out / "report.html").read_text(encoding="utf-8")
    # self-contained: no external resources; every <img> is a data: URI holding a valid PNG
    assert not re.search(r'(src|href)="(?!data:)', page)
    srcs = re.findall(r'<img src="([^"]+)"[^>]*data-file="([^"]+)"', page)
    assert [f for _, f in srcs] == FIGURES
    sizes = []
    for src, fname in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.verify()
        with Image.open(out / fname) as im:
            sizes.append(f"{im.size[0]}x{im.size[1]}")
    assert "Test accuracy" in page and "Training time" in page and "Settings" in page

    # every image loads in the browser (no broken-image icons) ...
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", CHECK_SCRIPT), encoding="utf-8")
    r = chromium(exe, "--window-size=1200,3000", "--virtual-time-budget=10000", "--dump-dom",
                 probe.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", r.stdout)
    assert body, r.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-imgs-total") == str(len(FIGURES)), attrs
    assert attrs.get("data-imgs-ok") == str(len(FIGURES)), attrs
    assert attrs["data-imgs-sizes"].split(",") == sizes

    # ... and a screenshot of the whole report is not blank and shows every picture where the
    # page lays it out (same width, window as tall as the page)
    height = int(attrs["data-page-height"])
    rects = [tuple(map(int, r.split())) for r in attrs["data-imgs-rects"].split(",")]
    assert len(rects) == len(FIGURES) and all(w > 100 and h > 100 for _, _, w, h in rects)
    shot = tmp_path / "report.png"
    r = chromium(exe, f"--screenshot={shot}", f"--window-size=1200,{height}",
                 (out / "report.html").as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, height)
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    gray = rgb.mean(axis=2)
    assert gray.std() > 20, "screenshot looks blank"
    assert len(np.unique(gray.astype(np.uint8))) > 100      # pictures, not just text
    assert (rgb[..., 2] - rgb[..., 0] > 60).mean() > 0.001  # the blue of the plots
    corrs = []
    for (x, y, w, h), fname in zip(rects, FIGURES):
        region = gray[y:y + h, x:x + w]
        assert region.shape == (h, w) and region.std() > 10, f"{fname} is blank on screen"
        # compare coarse 8x8-pixel blocks: robust to the browser's resampling of thin lines
        small = (max(1, w // 8), max(1, h // 8))
        with Image.open(out / fname) as im:
            want = np.asarray(im.convert("L").resize(small, Image.BOX), dtype=np.float64)
        seen = np.asarray(Image.fromarray(region.astype(np.uint8)).resize(small, Image.BOX),
                          dtype=np.float64)
        corr = np.corrcoef(seen.ravel(), want.ravel())[0, 1]
        assert corr > 0.9, f"{fname}: the screenshot region does not show it (r={corr:.2f})"
        corrs.append(round(float(corr), 3))
    print("screenshot vs PNG correlations:", dict(zip(FIGURES, corrs)))
    shutil.copy(shot, out / "screenshot.png")  # kept next to the report for a look
