"""cnnfast.plotting, cnnfast.report and cnnfast.images: every picture is a non-empty PNG of the
expected size, the metrics match hand counts, images convert as Fashion-MNIST expects."""
import base64
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import report, zoo

pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
Image = pytest.importorskip("PIL.Image", reason="Pillow (the 'images' extra) is not installed")

from cnnfast import plotting  # noqa: E402

TINY_CONV = [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3,
                                                 "activation": "relu"}},
             {"class_name": "MaxPooling2D"},
             {"class_name": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same",
              "activation": "relu"},
             {"class_name": "Flatten"},
             {"class_name": "Dense", "units": 10, "activation": "softmax"}]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 10
    probs = rng.random((40, 10)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    return x, y, probs


@pytest.fixture(scope="module")
def conv_model():
    cf.utils.set_random_seed(0)
    return zoo.from_layer_list(TINY_CONV)


def check_png(path, size):
    assert os.path.getsize(path) > 1000, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == size, f"{path}: {im.size} != {size}"
        a = np.asarray(im.convert("L"), dtype=np.float32)
    assert a.std() > 5.0, f"{path} looks blank"


def fig_px(fig):
    w, h = fig.get_size_inches() * plotting.DPI
    return int(round(w)), int(round(h))


def test_samples(tmp_path, data):
    x, y, _ = data
    fig = plotting.plot_samples(x, y, path=tmp_path / "s.png")
    check_png(tmp_path / "s.png", (1000, 1050))
    labels = [ax.xaxis.label.get_text() for ax in fig.axes[:25]]
    assert labels[:3] == ["T-shirt/top", "Trouser", "Pullover"]


def test_history(tmp_path):
    h = {"loss": [1.0, 0.6, 0.5], "accuracy": [0.6, 0.75, 0.8],
         "val_loss": [0.8, 0.7, 0.65], "val_accuracy": [0.7, 0.72, 0.74]}
    fig = plotting.plot_history(h, path=tmp_path / "h.png")
    check_png(tmp_path / "h.png", (1200, 450))
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    with pytest.raises(ValueError):
        plotting.plot_history({})


def test_confusion_matrix(tmp_path, data):
    _, y, probs = data
    cm = report.confusion_matrix(y, probs.argmax(1), 10)
    plotting.plot_confusion_matrix(cm, path=tmp_path / "c.png")
    check_png(tmp_path / "c.png", (900, 800))


def test_predictions_blue_right_red_wrong(tmp_path, data):
    x, y, probs = data
    probs = probs.copy()
    probs[0] = 0.0
    probs[0, y[0]] = 0.97                 # right, 97 %
    probs[1] = 0.0
    probs[1, (y[1] + 1) % 10] = 0.6       # wrong
    fig = plotting.plot_predictions(x, y, probs, path=tmp_path / "p.png")
    check_png(tmp_path / "p.png", (1000, 1050))
    right, wrong = fig.axes[0].xaxis.label, fig.axes[1].xaxis.label
    assert right.get_text() == "T-shirt/top 97% (T-shirt/top)"
    assert right.get_color() == plotting.RIGHT and wrong.get_color() == plotting.WRONG
    assert wrong.get_text() == "Pullover 60% (Trouser)"


def test_filters_conv_and_mlp(tmp_path, conv_model):
    fig = plotting.plot_filters(conv_model, path=tmp_path / "f.png")
    check_png(tmp_path / "f.png", fig_px(fig))
    assert fig_px(fig)[0] == 1200
    fig = plotting.plot_filters(zoo.build("mlp"), path=tmp_path / "fm.png")
    check_png(tmp_path / "fm.png", fig_px(fig))
    assert fig.axes[0].images[0].get_array().shape == (28, 28)


def test_feature_maps(tmp_path, conv_model, data):
    x = data[0]
    maps = plotting.feature_maps(conv_model, x[0])
    assert [type(layer).__name__ for layer, _ in maps] == ["Conv2D", "MaxPooling2D", "Conv2D"]
    assert [m.shape for _, m in maps] == [(26, 26, 4), (13, 13, 4), (13, 13, 6)]
    # the same numbers as the model's own forward pass up to that layer
    partial = cf.Model(conv_model.inputs[0], conv_model.layers[0].output)
    np.testing.assert_allclose(maps[0][1], partial.predict(x[:1] / 255.0, verbose=0)[0],
                               rtol=1e-5, atol=1e-6)
    fig = plotting.plot_feature_maps(conv_model, x[0], path=tmp_path / "fm.png", label="test")
    check_png(tmp_path / "fm.png", fig_px(fig))
    with pytest.raises(ValueError, match="no Conv2D or pooling"):
        plotting.plot_feature_maps(zoo.build("mlp"), x[0])


def test_missing_matplotlib_is_a_clear_message(monkeypatch, data):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(plotting.PlottingUnavailable, match=r"pip install 'cnnfast\[plot\]'"):
        plotting.plot_samples(data[0], data[1])


def test_cli_does_not_import_matplotlib_or_pillow():
    code = ("import sys, cnnfast.cli; cnnfast.cli.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))")
    parent = os.path.dirname(os.path.dirname(cf.__file__))
    env = dict(os.environ, PYTHONPATH=parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=parent, check=True).stdout
    assert out.strip() == "[]"


# ---- report ----------------------------------------------------------------------------------
def test_classification_report_by_hand():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    cm = report.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = report.classification_metrics(cm, ["a", "b", "c"])
    assert m["classes"]["a"] == {"precision": 1.0, "recall": 2 / 3, "f1-score": 0.8,
                                 "support": 3}
    assert m["classes"]["b"]["precision"] == 0.5 and m["classes"]["c"]["recall"] == 1.0
    assert m["accuracy"] == pytest.approx(4 / 6)
    text = report.classification_report(cm, ["a", "b", "c"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["a", "1.00", "0.67", "0.80", "3"]
    assert [ln.split() for ln in lines if ln.strip().startswith("accuracy")] == \
        [["accuracy", "0.67", "6"]]
    assert "macro avg" in text and "weighted avg" in text
    # a class never predicted: precision 0, not NaN (sklearn's zero_division behaviour)
    m = report.classification_metrics(report.confusion_matrix([0, 1], [0, 0], 2))
    assert m["classes"]["1"]["precision"] == 0.0


def test_html_embeds_valid_pngs(tmp_path, data):
    x, y, _ = data
    plotting.plot_samples(x, y, n=4, path=tmp_path / "a.png")
    out = report.write_html(tmp_path / "r.html", title="T <1>", subtitle="s",
                            cards=[("Acc", "90 %")], settings=[("k", "<v>")],
                            figures=[(tmp_path / "a.png", "cap")], sections=[("S", "x < y")])
    text = open(out, encoding="utf-8").read()
    assert "T &lt;1&gt;" in text and "&lt;v&gt;" in text and "x &lt; y" in text
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(srcs[0].split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.size == (400, 450)  # 2x2 grid


# ---- images ----------------------------------------------------------------------------------
def _shirt():
    a = np.zeros((28, 28), np.uint8)
    a[4:24, 8:20] = 200
    a[4:10, 3:25] = 180
    return a


def test_image_light_background_is_inverted(tmp_path):
    from cnnfast.images import load_image
    a = _shirt()
    Image.fromarray(255 - a).save(tmp_path / "light.png")
    np.testing.assert_allclose(load_image(tmp_path / "light.png"), a / 255.0, atol=1e-6)
    Image.fromarray(a).save(tmp_path / "dark.png")     # already Fashion-MNIST style
    np.testing.assert_allclose(load_image(tmp_path / "dark.png"), a / 255.0, atol=1e-6)


def test_image_color_jpeg_any_size_and_transparency(tmp_path):
    from cnnfast.images import load_image
    big = Image.fromarray(255 - _shirt()).resize((140, 100)).convert("RGB")
    big.save(tmp_path / "photo.jpg", quality=95)
    out = load_image(tmp_path / "photo.jpg")
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out[:, :2].max() < 0.1          # background black after inversion and padding
    assert out[10:20, 10:18].mean() > 0.5  # the object light
    rgba = np.zeros((28, 28, 4), np.uint8)  # black object on a transparent background
    rgba[8:20, 8:20] = (0, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png")
    assert out[0, 0] == 0.0 and out[12, 12] == 1.0


def test_image_errors(tmp_path, monkeypatch):
    from cnnfast import images
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        images.load_image(tmp_path / "not.png")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(images.ImagesUnavailable, match=r"cnnfast\[images\]"):
        images.load_image(tmp_path / "not.png")
