"""The layer table `model.summary()` prints, in Keras 3's format (Keras:
utils/summary_utils.print_summary)."""
from __future__ import annotations

from ..layers.base import shape_str


def _rows(model):
    return [(f"{layer.name} ({type(layer).__name__})", shape_str(layer.output.shape),
             layer.count_params()) for layer in model.layers]


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
    if not model.built or model._tensors is None:
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
    rows = _rows(model)
    for i, (name, shape, params) in enumerate(rows):
        names, shapes = _wrap(name, w[0] - 2), _wrap(shape, w[1] - 2)
        for k in range(max(len(names), len(shapes))):
            n = names[k] if k < len(names) else ""
            s = shapes[k] if k < len(shapes) else ""
            p = f"{params:,}" if k == 0 else ""
            out.append(f"│ {n:<{w[0] - 2}} │ {s:<{w[1] - 2}} │ {p:>{w[2] - 2}} │")
        out.append(line("├", "┼", "┤", "─") if i + 1 < len(rows) else line("└", "┴", "┘", "─"))
    trainable = sum(int(a.size) for a in model.trainable_weights)
    total = model.count_params()
    opt = model.optimizer.variables_count() if model.optimizer is not None else 0
    out.append(f" Total params: {total + opt:,} ({_readable((total + opt) * 4)})")
    out.append(f" Trainable params: {trainable:,} ({_readable(trainable * 4)})")
    out.append(f" Non-trainable params: {total - trainable:,} "
               f"({_readable((total - trainable) * 4)})")
    if opt:
        out.append(f" Optimizer params: {opt:,} ({_readable(opt * 4)})")
    text = "\n".join(out)
    (print_fn or print)(text)


def _readable(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
