"""The layer table `model.summary()` prints, in Keras 3's format (Keras:
utils/summary_utils.print_summary)."""
from __future__ import annotations

from ..layers.base import shape_str

# The layer classes whose output shape Keras 3 records when a subclassed model calls them
# (they are built on their first call; the others are built at construction and show "?"),
# measured on tf.keras 2.21 (tests/test_subclassed_model.py checks the list against Keras).
KERAS_BUILT_ON_CALL = frozenset({
    "BatchNormalization", "Conv2D", "Dense", "DepthwiseConv2D", "Flatten", "PReLU",
    "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation",
    "RandomZoom", "Rescaling", "SeparableConv2D", "ZeroPadding2D"})


def _rows(model):
    return [(f"{layer.name} ({type(layer).__name__})", shape_str(layer.output.shape),
             f"{layer.count_params():,}") for layer in model.layers]


def _subclassed_rows(model):
    """Keras 3's rows for a subclassed model: the tracked layers in assignment order; the
    output shape of the layers built on their first call (with the batch size of the first
    eager call), "?" for the others and for layers never called; "0 (unbuilt)" params for
    a layer still to be built."""
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        on_call = kind in KERAS_BUILT_ON_CALL or not hasattr(layer, "forward") or \
            hasattr(layer, "layers")
        called = layer.output is not None if not hasattr(layer, "layers") else \
            layer._tensors is not None
        if on_call and called:
            out = layer.output.shape if not hasattr(layer, "layers") else layer.outputs[0].shape
            shape = shape_str((model._summary_batch,) + tuple(out[1:]))
        else:
            shape = "?"
        params = f"{layer.count_params():,}" if called or not on_call else "0 (unbuilt)"
        rows.append((f"{layer.name} ({kind})", shape, params))
    return rows


def _wrap(text, width):
    """The lines of a cell as Keras 3's table (rich) folds it: words joined while they fit,
    a word longer than the cell cut to width - 1 characters and an ellipsis."""
    lines = []
    for word in text.split(" "):
        if len(word) > width:
            word = word[:width - 1] + "…"
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines

def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
            show_trainable=False, layer_range=None):
    """Print the layer table like Keras 3: name (type), output shape, param #, totals."""
    subclassed = getattr(model, "_subclassed", False)
    if not subclassed and (not model.built or model._tensors is None):
        raise ValueError(f"Model '{model.name}' has not been built yet: give the first layer "
                         "an input_shape, start with keras.Input(...), or call fit/predict "
                         "first.")
    if expand_nested or show_trainable or layer_range is not None or positions is not None:
        raise NotImplementedError("summary(): expand_nested/show_trainable/layer_range/"
                                  "positions are not supported")
    w = (33, 24, 15)
    out = [f'Model: "{model.name}"']
    line = lambda left, mid, right, c: left + mid.join(c * n for n in w) + right  # noqa: E731
    out.append(line("┏", "┳", "┓", "━"))
    out.append(f"┃ {'Layer (type)':<{w[0] - 2}} ┃ {'Output Shape':<{w[1] - 2}} ┃ "
               f"{'Param #':>{w[2] - 2}} ┃")
    out.append(line("┡", "╇", "┩", "━"))
    rows = _subclassed_rows(model) if subclassed else _rows(model)
    for i, (name, shape, params) in enumerate(rows):
        names, shapes = _wrap(name, w[0] - 2), _wrap(shape, w[1] - 2)
        for k in range(max(len(names), len(shapes))):
            n = names[k] if k < len(names) else ""
            s = shapes[k] if k < len(shapes) else ""
            p = params if k == 0 else ""
            out.append(f"│ {n:<{w[0] - 2}} │ {s:<{w[1] - 2}} │ {p:>{w[2] - 2}} │")
        out.append(line("├", "┼", "┤", "─") if i + 1 < len(rows) else line("└", "┴", "┘", "─"))
    trainable = sum(int(a.size) for a in model._trainable_arrays())
    total = model.count_params()
    opt = model.optimizer.variables_count() if model.optimizer is not None else 0
    # Keras's optimizer counts its `iteration` (int64, 8 bytes) among float32 variables
    opt_bytes = opt * 4 + 4 if opt else 0
    out.append(f" Total params: {total + opt:,} ({_readable(total * 4 + opt_bytes)})")
    out.append(f" Trainable params: {trainable:,} ({_readable(trainable * 4)})")
    out.append(f" Non-trainable params: {total - trainable:,} "
               f"({_readable((total - trainable) * 4)})")
    if opt:
        out.append(f" Optimizer params: {opt:,} ({_readable(opt_bytes)})")
    text = "\n".join(out)
    (print_fn or print)(text)


def _readable(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
