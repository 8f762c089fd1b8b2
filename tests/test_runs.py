"""cnnfast.runs (train, write and load a run directory) and report.run_page, in process on tiny
synthetic data: no Fashion-MNIST needed, a few seconds in all."""
import json
import os

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import cli, report, runs

TINY_CONV = [{"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [3, 3],
                                                 "activation": "relu"}},
             {"class_name": "MaxPooling2D", "config": {"pool_size": [2, 2]}},
             {"class_name": "Flatten"},
             {"class_name": "Dense", "units": 10, "activation": "softmax"}]
FIGURES = ["samples.png", "history.png", "confusion_matrix.png", "predictions.png",
           "filters.png", "feature_maps.png"]


def fake_data(n_train=40, n_test=20, seed=0):
    """Fashion-MNIST-shaped ((x_train, y_train), (x_test, y_test)): uint8 images, labels 0..9."""
    r = np.random.default_rng(seed)
    return ((r.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), r.integers(0, 10, n_train)),
            (r.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), r.integers(0, 10, n_test)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    spec = tmp_path_factory.mktemp("spec") / "tiny.json"
    spec.write_text(json.dumps(TINY_CONV))
    cfg = runs.RunConfig(model=str(spec), epochs=2, batch_size=8, validation_split=0.25,
                         early_stopping=3, seed=1, verbose=0)
    return runs.train_run(cfg, fake_data())


# ---- config and small contracts ----------------------------------------------------------------
def test_config_rejects_early_stopping_without_validation():
    with pytest.raises(runs.RunError, match="--validation-split above 0"):
        runs.RunConfig(early_stopping=2, validation_split=0.0)
    assert runs.RunConfig(model="specs/my_net.json").label == "my_net"
    assert runs.RunConfig(model="cnn2").label == "cnn2"


def test_cli_run_config_takes_every_train_option():
    args = cli.build_parser().parse_args(["train", "--model", "mlp", "--epochs", "2", "--lr",
                                          "0.01", "--limit", "50", "--seed", "7"])
    cfg = cli.run_config(args)
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.limit, cfg.seed) == ("mlp", 2, 0.01, 50, 7)
    assert cfg.batch_size == 32 and cfg.validation_split == 0.1 and cfg.verbose == 1


def test_validation_count_is_keras_split():
    assert runs.validation_count(100, 0.0) == 0
    assert runs.validation_count(100, 0.1) == 10
    assert runs.validation_count(7, 0.5) == 4        # Keras: floor(7 * 0.5) = 3 train
    for n, split in ((1, 0.5), (10, 1e-17)):   # no training images; no validation images
        with pytest.raises(runs.RunError, match="leaves no training or no validation"):
            runs.validation_count(n, split)


def test_history_text():
    text = report.history_text({"loss": [1.0, 0.5], "accuracy": [0.25, 0.75]}, 2)
    assert text.splitlines() == ["epoch " + f"{'accuracy':>14} {'loss':>14}",
                                 f"{1:>5} {0.25:>14.4f} {1.0:>14.4f}",
                                 f"{2:>5} {0.75:>14.4f} {0.5:>14.4f}"]


# ---- train_run, write_run_dir, load_run --------------------------------------------------------
def test_train_run_records_the_run(tiny_run):
    run = tiny_run
    assert (run.n_train, run.n_val) == (30, 10)
    assert 1 <= run.epochs_run <= 2
    assert set(run.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert run.probs.shape == (20, 10) and run.confusion.sum() == 20
    assert run.settings["train_images"] == 30 and run.settings["test_images"] == 20
    assert run.settings["params"] == run.model.count_params()
    assert run.settings["description"].startswith("custom layer list from ")
    assert run.images_per_second > 0


def test_write_run_dir_writes_exactly_the_run_files(tiny_run, tmp_path):
    written = runs.write_run_dir(str(tmp_path), tiny_run)
    assert written == list(runs.RUN_FILES)
    assert sorted(os.listdir(tmp_path)) == sorted(runs.RUN_FILES)
    assert json.loads((tmp_path / "run.json").read_text()) == tiny_run.settings
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test_accuracy"] == tiny_run.test_accuracy and m["epochs_run"] == tiny_run.epochs_run
    assert np.array(m["confusion_matrix"]).sum() == 20
    assert json.loads((tmp_path / "history.json").read_text()) == tiny_run.history
    assert (tmp_path / "model_summary.txt").read_text() == tiny_run.summary
    # load_run gives back the trained model
    model = runs.load_run(str(tmp_path))
    x = runs.model_input(model, tiny_run.data[1][0][:4].astype(np.float32) / 255)
    np.testing.assert_allclose(model.predict(x, verbose=0), tiny_run.probs[:4],
                               atol=1e-6, rtol=1e-5)


def test_load_run_errors(tmp_path):
    with pytest.raises(runs.RunError, match="no such run directory"):
        runs.load_run(str(tmp_path / "nope"))
    with pytest.raises(runs.RunError, match="has no model.keras"):
        runs.load_run(str(tmp_path))
    (tmp_path / "model.keras").write_text("not a model")
    with pytest.raises(runs.RunError, match="cannot load"):
        runs.load_run(str(tmp_path))


def test_load_data_limits():
    try:
        (x_train, y_train), (x_test, y_test) = runs.load_data(limit=30, test_limit=5)
    except runs.RunError as e:
        pytest.skip(f"Fashion-MNIST not available: {e}")
    assert x_train.shape == (30, 28, 28) and y_train.shape == (30,)
    assert x_test.shape == (5, 28, 28) and x_test.dtype == np.uint8


def test_load_data_missing_is_a_run_error(monkeypatch):
    def missing():
        raise cf.datasets.DatasetNotFoundError("not here")
    monkeypatch.setattr(cf.datasets.fashion_mnist, "load_data", missing)
    with pytest.raises(runs.RunError, match="apt-get install dataset-fashion-mnist"):
        runs.load_data()


# ---- pictures and the page ---------------------------------------------------------------------
def test_draw_pictures_and_run_page(tiny_run, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) is not installed")
    figures, notes = runs.draw_pictures(str(tmp_path), tiny_run)
    assert notes == [] and [os.path.basename(p) for p, _ in figures] == FIGURES
    page = report.run_page(tiny_run, str(tmp_path), figures, ["a note"], total_seconds=1.5)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>\n")
    for f in FIGURES:
        assert f'data-file="{f}"' in page
    assert page.count('<img src="data:image/png;base64,') == len(FIGURES)
    assert f"cnnfast run: {tmp_path.name}" in page and '<p class="note">a note</p>' in page
    for heading in ("Settings", "Pictures", "Per-class report (test set)", "History", "Model"):
        assert f"<h2>{heading}" in page
    assert "whole run 1.5 s" in page and f"{100 * tiny_run.test_accuracy:.2f} %" in page


def test_run_page_without_figures(tiny_run, tmp_path):
    page = report.run_page(tiny_run, str(tmp_path))
    assert "<img" not in page and "<h2>Pictures</h2>" not in page
    assert "Test accuracy" in page and "Training time" in page
