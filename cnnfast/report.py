"""Classification metrics as text (like scikit-learn's) and the run's self-contained HTML report.

html_page()/write_html() lay out any page; run_page() fills one from a cnnfast.runs.Run.
NumPy only; the pictures themselves come from cnnfast.plotting.
"""
from __future__ import annotations

import base64
import html
import os

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(K, K) int64 counts, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    k = num_classes or int(max(y_true.max(initial=-1), y_pred.max(initial=-1)) + 1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_metrics(cm, class_names=None):
    """Per-class precision / recall / F1 / support and the averages, from a confusion matrix,
    with scikit-learn's conventions (0.0 where a ratio is 0/0)."""
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    names = list(class_names or [str(i) for i in range(k)])
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    total = support.sum()
    per_class = {names[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                            "f1-score": float(f1[i]), "support": int(support[i])}
                 for i in range(k)}
    w = support / total if total else np.zeros(k)
    return {
        "classes": per_class,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro avg": {"precision": float(precision.mean()), "recall": float(recall.mean()),
                      "f1-score": float(f1.mean()), "support": int(total)},
        "weighted avg": {"precision": float((precision * w).sum()),
                         "recall": float((recall * w).sum()),
                         "f1-score": float((f1 * w).sum()), "support": int(total)},
    }


def classification_report(cm, class_names=None, digits=2):
    """The text table of sklearn.metrics.classification_report, from a confusion matrix."""
    m = classification_metrics(cm, class_names)
    names = list(m["classes"]) + ["weighted avg"]
    width = max(len(n) for n in names)
    head = ["precision", "recall", "f1-score", "support"]
    lines = [" " * width + "".join(f"{h:>10}" for h in head), ""]

    def row(name, r):
        return (f"{name:>{width}}" + "".join(f"{r[h]:>10.{digits}f}" for h in head[:3]) +
                f"{r['support']:>10}")

    for name, r in m["classes"].items():
        lines.append(row(name, r))
    lines.append("")
    total = m["macro avg"]["support"]
    lines.append(f"{'accuracy':>{width}}" + " " * 20 + f"{m['accuracy']:>10.{digits}f}" +
                 f"{total:>10}")
    lines.append(row("macro avg", m["macro avg"]))
    lines.append(row("weighted avg", m["weighted avg"]))
    return "\n".join(lines) + "\n"


def confusion_matrix_text(cm, class_names=None):
    """The confusion matrix as an aligned text table (rows true, columns predicted), with the
    column numbers explained by the row labels."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = list(class_names or [str(i) for i in range(k)])
    width = max(len(n) for n in names) + 5
    cell = max(5, len(str(int(cm.max(initial=0)))) + 2)
    corner = "true \\ predicted"
    lines = [f"{corner:<{width}}" + "".join(f"{j:>{cell}}" for j in range(k))]
    for i in range(k):
        lines.append(f"{i:>2} {names[i]:<{width - 3}}" +
                     "".join(f"{int(cm[i, j]):>{cell}}" for j in range(k)))
    return "\n".join(lines) + "\n"


# ---- HTML -------------------------------------------------------------------------------------
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; background: #fff; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 0.7em 1.2em; min-width: 10em; }
.card b { display: block; font-size: 1.8em; color: #1f77b4; }
table.kv { border-collapse: collapse; } table.kv td { padding: 0.15em 1em 0.15em 0; }
table.kv td:first-child { color: #666; }
pre { background: #f6f8fa; padding: 0.8em; border-radius: 6px; overflow-x: auto;
      font-size: 0.85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
.note { color: #a00; }
"""


def png_data_uri(path):
    """The PNG file at `path` as a data: URI string."""
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _kv_table(items):
    """[(key, value)] as an HTML two-column table, escaped."""
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in items)
    return f'<table class="kv">{rows}</table>'


def html_page(*, title, subtitle, cards, settings, figures, sections=(), notes=()):
    """A self-contained HTML page, as a string: `cards` [(label, value)], `settings`
    [(key, value)], `figures` [(png_path, caption)] embedded as data: URIs, `sections`
    [(heading, preformatted text)], `notes` [text] shown in red (e.g. pictures that could not
    be drawn)."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p class=\"sub\">{html.escape(subtitle)}</p>",
             '<div class="cards">' + "".join(
                 f'<div class="card">{html.escape(label)}<b>{html.escape(str(value))}</b></div>'
                 for label, value in cards) + "</div>"]
    for note in notes:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    parts.append("<h2>Settings</h2>" + _kv_table(settings))
    if figures:
        parts.append("<h2>Pictures</h2>")
    for png, caption in figures:
        alt = html.escape(caption)
        parts.append(f'<figure><img src="{png_data_uri(png)}" alt="{alt}" '
                     f'data-file="{html.escape(os.path.basename(png))}">'
                     f"<figcaption>{alt}</figcaption></figure>")
    for heading, text in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2><pre>{html.escape(text)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(path, **page):
    """Write html_page(**page) to `path` (UTF-8). Returns `path`."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(html_page(**page))
    return path


# ---- the run report ---------------------------------------------------------------------------
def _run_cards(run):
    """The headline numbers: [(label, value)]."""
    s = run.settings
    return [("Test accuracy", f"{100 * run.test_accuracy:.2f} %"),
            ("Test loss", f"{run.test_loss:.4f}"),
            ("Training time", f"{run.train_seconds:.1f} s"),
            ("Images / s", f"{run.images_per_second:,.0f}"),
            ("Epochs", f"{s['epochs_run']} of {s['epochs']}")]


def _run_settings_table(run, run_dir, total_seconds):
    """The Settings table: [(key, value)], from run.json's content and the timings."""
    s, build = run.settings, run.settings["build"]
    stopping = (f" (early stopping, patience {s['early_stopping']})"
                if s["early_stopping"] is not None else "")
    ips = run.images_per_second
    kv = [("Model", f"{s['model']}: {s['description']}"), ("Parameters", f"{s['params']:,}"),
          ("Optimizer", f"{s['optimizer']}, learning rate {s['learning_rate']:g}"),
          ("Batch size", s["batch_size"]),
          ("Epochs", f"{s['epochs_run']} run of {s['epochs']}" + stopping),
          ("Images", f"{s['train_images']:,} training, {s['validation_images']:,} validation "
                     f"(last {s['validation_split']:g}), {s['test_images']:,} test"),
          ("Seed", s["seed"]), ("Threads", s["threads"]),
          ("Timing", f"training {run.train_seconds:.2f} s ({ips:,.0f} images/s), test "
                     f"evaluation {run.eval_seconds:.2f} s, whole run {total_seconds:.1f} s"),
          ("cnnfast", f"{s['cnnfast']} ({build['compiler']}, ISA {build['isa']}, OpenMP "
                      f"{'on' if build['openmp'] else 'off'}), Python {s['python']}, "
                      f"NumPy {s['numpy']}"),
          ("Run directory", os.path.abspath(run_dir))]
    if s["command"]:
        kv.append(("Command", s["command"]))
    return kv


def history_text(history, epochs):
    """The per-epoch history as a text table: one column per key (sorted), `epochs` rows."""
    keys = sorted(history)
    lines = ["epoch " + " ".join(f"{k:>14}" for k in keys)]
    for i in range(epochs):
        lines.append(f"{i + 1:>5} " + " ".join(f"{history[k][i]:>14.4f}" for k in keys))
    return "\n".join(lines) + "\n"


def run_page(run, run_dir, figures=(), notes=(), total_seconds=0.0):
    """report.html for a trained run, as a string. `run` is a cnnfast.runs.Run (read through
    its fields and `settings`, run.json's content), `run_dir` the directory it is written to,
    `figures` [(png path, caption)] embedded in the page, `notes` [text] shown in red, and
    `total_seconds` the whole run's wall time."""
    s, n = run.settings, run.epochs_run
    return html_page(
        title=f"cnnfast run: {os.path.basename(os.path.abspath(run_dir))}",
        subtitle=f"{s['model']} on Fashion-MNIST — test accuracy "
                 f"{100 * run.test_accuracy:.2f} % after {n} epoch{'s' if n != 1 else ''}, "
                 f"{s['started'].replace('T', ' ')}",
        cards=_run_cards(run), settings=_run_settings_table(run, run_dir, total_seconds),
        figures=list(figures), notes=list(notes),
        sections=[("Per-class report (test set)", run.report_text),
                  ("Confusion matrix (rows: true class, columns: predicted)",
                   run.confusion_text),
                  ("History", history_text(run.history, n)),
                  ("Model", run.summary)])
