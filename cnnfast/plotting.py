"""The tutorials' pictures, without writing plotting code.

    from cnnfast import plotting
    plotting.plot_samples(x_train, y_train, path="samples.png")
    plotting.plot_history(model.fit(...), path="history.png")
    plotting.plot_confusion_matrix(cm, path="confusion_matrix.png")
    plotting.plot_predictions(x_test, y_test, model.predict(x_test), path="predictions.png")
    plotting.plot_filters(model, path="filters.png")
    plotting.plot_feature_maps(model, x_test[0], path="feature_maps.png")

Every function returns a matplotlib ``Figure`` (no pyplot state, so nothing leaks and no display
is needed) and, given ``path``, also writes it as a PNG of exactly ``figsize * DPI`` pixels.
matplotlib is the optional ``plot`` extra (``pip install 'cnnfast[plot]'``); it is imported only
when a picture is drawn, and its absence raises PlottingUnavailable with that hint.
"""
from __future__ import annotations

import math

import numpy as np

DPI = 100
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")  # = cnnfast.datasets.fashion_mnist.class_names
RIGHT, WRONG = "tab:blue", "tab:red"

__all__ = ["DPI", "PlottingUnavailable", "plot_samples", "plot_history", "plot_confusion_matrix",
           "plot_predictions", "plot_filters", "plot_feature_maps", "feature_maps", "save"]


class PlottingUnavailable(ImportError):
    """matplotlib is not installed."""


MISSING_MESSAGE = ("cnnfast's pictures need matplotlib, which is not installed: "
                   "pip install 'cnnfast[plot]' (or pip install matplotlib)")


def available():
    """True when matplotlib can be imported (checked without importing it)."""
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def _figure(width, height):
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise PlottingUnavailable(MISSING_MESSAGE) from None
    kw = {"layout": "constrained"} if tuple(
        int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 6) else \
        {"constrained_layout": True}
    return Figure(figsize=(width, height), dpi=DPI, facecolor="white", **kw)


def save(fig, path):
    """Write `fig` as a PNG of figsize * DPI pixels (no tight bbox, so the size is known)."""
    fig.savefig(path, dpi=DPI, format="png", facecolor="white")
    return path


def _finish(fig, path):
    if path is not None:
        save(fig, path)
    return fig


def _images(x):
    """(N, H, W) float images from (N, H, W) or (N, H, W, 1) uint8/float arrays."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected grayscale images of shape (N, H, W) or (N, H, W, 1), got "
                         f"{x.shape}")
    x = x.astype(np.float32)
    return x / 255.0 if x.max(initial=0.0) > 1.0 else x


def _grid(n):
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _names(class_names, k):
    names = list(class_names if class_names is not None else CLASS_NAMES)
    return names if len(names) >= k else names + [str(i) for i in range(len(names), k)]


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def plot_samples(images, labels, class_names=None, n=25, path=None, title="Training images"):
    """The first `n` images in a square grid, each labelled with its class name (as the
    tutorials' 5x5 plt.cm.binary grid). 1000x1050 pixels for n=25."""
    x = _images(images)[:n]
    labels = np.asarray(labels)[:len(x)]
    names = _names(class_names, int(labels.max(initial=0)) + 1)
    rows, cols = _grid(len(x))
    fig = _figure(2.0 * cols, 2.0 * rows + 0.5)
    fig.suptitle(title, fontsize=14)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        _off(ax)
        if i < len(x):
            ax.imshow(x[i], cmap="binary", vmin=0.0, vmax=1.0)
            ax.set_xlabel(names[int(labels[i])], fontsize=10)
        else:
            ax.set_frame_on(False)
    return _finish(fig, path)


def plot_history(history, path=None):
    """Loss and accuracy per epoch, training and validation (History, or its .history dict).
    1200x450 pixels."""
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h.get("loss"):
        raise ValueError("plot_history needs a History or a dict with at least a 'loss' list")
    fig = _figure(12, 4.5)
    for k, (key, label) in enumerate((("loss", "Loss"), ("accuracy", "Accuracy"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for name, style in ((key, "o-"), ("val_" + key, "s--")):
            if h.get(name):
                ep = np.arange(1, len(h[name]) + 1)
                ax.plot(ep, h[name], style, label="validation" if name.startswith("val_")
                        else "training")
        ax.set_title(f"{label} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label.lower())
        ax.grid(alpha=0.3)
        n = len(h.get(key) or h["loss"])
        ax.set_xticks(np.arange(1, n + 1, max(1, n // 10)))
        if ax.lines:
            ax.legend()
    return _finish(fig, path)


def plot_confusion_matrix(cm, class_names=None, path=None, title="Confusion matrix (test set)"):
    """Heat map of a (K, K) confusion matrix (rows true, columns predicted) with the counts
    written in the cells. 900x800 pixels."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    k = cm.shape[0]
    names = _names(class_names, k)[:k]
    fig = _figure(9, 8)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    top = cm.max(initial=0)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > top / 2 else "black")
    return _finish(fig, path)


def plot_predictions(images, labels, probs, class_names=None, n=25, path=None,
                     title="Test images: predicted confidence (true)"):
    """The tutorials' prediction grid: each image labelled "Predicted 97% (True)", blue when
    right and red when wrong. 1000x1050 pixels for n=25."""
    x = _images(images)[:n]
    labels = np.asarray(labels)[:len(x)]
    probs = np.asarray(probs)[:len(x)]
    names = _names(class_names, probs.shape[-1])
    rows, cols = _grid(len(x))
    fig = _figure(2.0 * cols, 2.0 * rows + 0.5)
    fig.suptitle(title, fontsize=14)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        _off(ax)
        if i >= len(x):
            ax.set_frame_on(False)
            continue
        pred = int(np.argmax(probs[i]))
        color = RIGHT if pred == int(labels[i]) else WRONG
        ax.imshow(x[i], cmap="binary", vmin=0.0, vmax=1.0)
        ax.set_xlabel(f"{names[pred]} {100 * float(probs[i][pred]):2.0f}% "
                      f"({names[int(labels[i])]})", color=color, fontsize=9)
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(2)
    return _finish(fig, path)


def _first_weighted_layer(model):
    for layer in model.layers:
        if layer.weights_list:
            return layer
    raise ValueError(f"model '{model.name}' has no layer with weights")


def plot_filters(model, path=None, max_filters=32):
    """The first weighted layer's filters: each Conv2D kernel as a small image (channel 0), or,
    for an MLP, each of the first Dense units' 784 input weights as a 28x28 image. Diverging
    colours: red positive, blue negative. 1200 pixels wide."""
    layer = _first_weighted_layer(model)
    w = np.asarray(layer.weights_list[0])
    kind = type(layer).__name__
    if w.ndim == 4:                        # Conv2D kernel (kh, kw, in, out)
        tiles = np.moveaxis(w[:, :, 0, :], -1, 0)
        what = f"{kind} '{layer.name}': {w.shape[3]} filters {w.shape[0]}x{w.shape[1]}"
    elif w.ndim == 2:                      # Dense kernel (in, out)
        side = int(round(math.sqrt(w.shape[0])))
        if side * side != w.shape[0]:
            raise ValueError(f"cannot draw {kind} '{layer.name}' weights ({w.shape[0]} inputs) "
                             "as square images")
        tiles = w.T.reshape(-1, side, side)
        what = f"{kind} '{layer.name}': weights of the first units as {side}x{side} images"
    else:
        raise ValueError(f"cannot draw the weights of {kind} '{layer.name}' (shape {w.shape})")
    tiles = tiles[:max_filters]
    cols = min(8, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig = _figure(12, 1.5 * rows + 0.6)
    fig.suptitle(f"First-layer filters — {what}", fontsize=12)
    lim = float(np.abs(tiles).max()) or 1.0
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        _off(ax)
        if i < len(tiles):
            ax.imshow(tiles[i], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(str(i), fontsize=8)
        else:
            ax.set_frame_on(False)
    return _finish(fig, path)


def feature_maps(model, image):
    """[(layer, (H, W, C) array)] for every Conv2D / pooling layer, as `image` (28x28, 0..1 or
    0..255) passes through the model in inference mode."""
    x = _images(image)[:1]
    shape = tuple(model.inputs[0].shape[1:])
    x = np.ascontiguousarray(x.reshape((1,) + shape), dtype=np.float32)
    vals = {id(model.input_layers[0]): x}      # layer -> its output
    out = []
    for layer, inbound in model.nodes:
        if not inbound:
            continue
        y = np.array(layer.forward(vals[id(inbound[0])], False), copy=True)
        vals[id(layer)] = y
        name = type(layer).__name__
        if y.ndim == 4 and ("Conv" in name or "Pool" in name):
            out.append((layer, y[0]))
    return out


def plot_feature_maps(model, image, path=None, max_channels=8, label=None):
    """One image and its feature maps after every Conv2D and pooling layer: one row per layer,
    the first `max_channels` channels. Raises ValueError for a model without such layers.
    1200 pixels wide."""
    maps = feature_maps(model, image)
    if not maps:
        raise ValueError(f"model '{model.name}' has no Conv2D or pooling layers")
    cols = max(2, min(max_channels, max(m.shape[-1] for _, m in maps)))
    rows = 1 + len(maps)
    fig = _figure(12, 12 / cols * 1.12 * rows + 0.5)
    title = "Feature maps of one test image" + (f" ({label})" if label else "")
    fig.suptitle(title, fontsize=13)
    gs = fig.add_gridspec(rows, cols)
    ax = fig.add_subplot(gs[0, 0])
    _off(ax)
    ax.imshow(_images(image)[0], cmap="binary", vmin=0.0, vmax=1.0)
    ax.set_title("input", fontsize=9)
    ax = fig.add_subplot(gs[0, 1:])
    ax.axis("off")
    ax.text(0.0, 0.5, "Each row: one layer's output channels (bright = strong activation).",
            fontsize=10, va="center")
    for r, (layer, m) in enumerate(maps, start=1):
        for c in range(cols):
            ax = fig.add_subplot(gs[r, c])
            _off(ax)
            if c < m.shape[-1]:
                ax.imshow(m[:, :, c], cmap="viridis", interpolation="nearest")
            else:
                ax.set_frame_on(False)
            if c == 0:
                ax.set_ylabel(f"{layer.name}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}",
                              fontsize=8)
    return _finish(fig, path)
