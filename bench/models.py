"""The four tutorial models as one framework-neutral spec, and a builder per framework.

Layer spec tuples:
    ("conv", filters, padding)        Conv2D 3x3, stride 1, ReLU
    ("pool",)                         MaxPooling2D 2x2, stride 2, valid
    ("flatten",)
    ("dense", units, activation)      activation in {"relu", "softmax", None}
    ("dropout", rate)
    ("bn",)                           BatchNormalization (Keras defaults), after a ReLU conv
The last Dense is the classifier (10 classes). Loss: sparse categorical cross-entropy; with a
final softmax Keras/cnnfast use the cached logits, torch and the NumPy trainer take the logits
directly (same math).
"""
from __future__ import annotations

MODELS = {
    "mlp": {
        "title": "MLP Flatten-Dense128-Dropout0.2-Dense10 (logits)",
        "input": (28, 28),
        "layers": [("flatten",), ("dense", 128, "relu"), ("dropout", 0.2), ("dense", 10, None)],
        "params": 101_770,
    },
    "cnn": {
        "title": "CNN Conv32s-Pool-Conv64s-Pool-Dense128-Dense10",
        "input": (28, 28, 1),
        "layers": [("conv", 32, "same"), ("pool",), ("conv", 64, "same"), ("pool",),
                   ("flatten",), ("dense", 128, "relu"), ("dense", 10, "softmax")],
        "params": 421_642,
    },
    "cnn_dropout": {
        "title": "Conv32v-Conv64v-Pool-Drop0.25-Dense128-Drop0.5-Dense10",
        "input": (28, 28, 1),
        "layers": [("conv", 32, "valid"), ("conv", 64, "valid"), ("pool",), ("dropout", 0.25),
                   ("flatten",), ("dense", 128, "relu"), ("dropout", 0.5),
                   ("dense", 10, "softmax")],
        "params": 1_199_882,
    },
    # The tutorial CNN with BatchNormalization after each conv (Keras applies the conv's ReLU
    # first): what BN costs on top of `cnn`.
    "cnn_bn": {
        "title": "CNN Conv32s-BN-Pool-Conv64s-BN-Pool-Dense128-Dense10",
        "input": (28, 28, 1),
        "layers": [("conv", 32, "same"), ("bn",), ("pool",), ("conv", 64, "same"), ("bn",),
                   ("pool",), ("flatten",), ("dense", 128, "relu"), ("dense", 10, "softmax")],
        "params": 422_026,
    },
    # The tutorial CNN behind the augmentation layers a learner adds next (active in training
    # only): what augmentation costs on top of `cnn`. No torch/NumPy builder: those do it in the
    # data loader, outside the model.
    "cnn_aug": {
        "title": "Flip-Rotate0.1-Zoom0.1 + CNN Conv32s-Pool-Conv64s-Pool-Dense128-Dense10",
        "input": (28, 28, 1),
        "layers": [("flip",), ("rotate", 0.1), ("zoom", 0.1), ("conv", 32, "same"), ("pool",),
                   ("conv", 64, "same"), ("pool",), ("flatten",), ("dense", 128, "relu"),
                   ("dense", 10, "softmax")],
        "params": 421_642,
    },
    # The issue gives only the parameter count (94,154) and "3 convs + Dense 512". The one
    # plausible tutorial-style stack with exactly that count (found by search over inputs,
    # paddings, filter and dense sizes; checked with cnnfast's count_params): three valid
    # Conv-Pool blocks on 28x28x1 (26->13->11->5->3->1), so Flatten gives 64 features.
    "cnn3_d512": {
        "title": "Conv32v-Pool-Conv64v-Pool-Conv64v-Pool-Dense512-Dense10",
        "input": (28, 28, 1),
        "layers": [("conv", 32, "valid"), ("pool",), ("conv", 64, "valid"), ("pool",),
                   ("conv", 64, "valid"), ("pool",), ("flatten",), ("dense", 512, "relu"),
                   ("dense", 10, "softmax")],
        "params": 94_154,
    },
}


def shapes_and_macs(name):
    """[(layer spec, output per-sample shape, MACs per image)] by shape propagation."""
    spec = MODELS[name]
    shape = tuple(spec["input"])
    out = []
    for layer in spec["layers"]:
        kind, macs = layer[0], 0
        if kind == "conv":
            h, w, c = shape
            oh, ow = (h, w) if layer[2] == "same" else (h - 2, w - 2)
            macs = oh * ow * 9 * c * layer[1]
            shape = (oh, ow, layer[1])
        elif kind == "pool":
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
        elif kind == "flatten":
            n = 1
            for d in shape:
                n *= d
            shape = (n,)
        elif kind == "dense":
            macs = shape[0] * layer[1]
            shape = (layer[1],)
        out.append((layer, shape, macs))
    return out


def params(name):
    spec = MODELS[name]
    shape, total = tuple(spec["input"]), 0
    for layer, out_shape, _ in shapes_and_macs(name):
        if layer[0] == "conv":
            total += 9 * shape[-1] * layer[1] + layer[1]
        elif layer[0] == "bn":
            total += 4 * shape[-1]
        elif layer[0] == "dense":
            total += shape[0] * layer[1] + layer[1]
        shape = out_shape
    return total


def flops(name):
    """(train FLOP/image, inference FLOP/image), multiply-adds counted as 2 FLOPs.

    forward = 2 * sum(MACs); backward = weight gradients (2 * MACs of every layer) + input
    gradients (2 * MACs of every layer but the first, whose input gradient is not needed), i.e.
    ~2x forward. Bias, activation, pooling, dropout, loss and optimizer work are not counted."""
    macs = [m for _, _, m in shapes_and_macs(name) if m]
    fwd = 2 * sum(macs)
    bwd = 2 * sum(macs) + 2 * sum(macs[1:])
    return fwd + bwd, fwd


# ---- builders ---------------------------------------------------------------------------------
_AUGMENT = ("flip", "rotate", "zoom")


def _augment_layer(L, layer):
    """The Keras preprocessing layer of an augmentation entry (cnnfast and tf.keras alike)."""
    kind = layer[0]
    if kind == "flip":
        return L.RandomFlip("horizontal")
    if kind == "rotate":
        return L.RandomRotation(layer[1])
    return L.RandomZoom(layer[1])


def _no_augment(name, who):
    if any(layer[0] in _AUGMENT for layer in MODELS[name]["layers"]):
        raise ValueError(f"bench model {name!r} has augmentation layers: no {who} builder "
                         "(that framework augments in its data loader)")


def build_cnnfast(name):
    import cnnfast as cf
    from cnnfast import layers as L

    spec = MODELS[name]
    seq = [L.Input(spec["input"])]
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "conv":
            seq.append(L.Conv2D(layer[1], (3, 3), padding=layer[2], activation="relu"))
        elif kind == "pool":
            seq.append(L.MaxPooling2D((2, 2)))
        elif kind == "flatten":
            seq.append(L.Flatten())
        elif kind == "dense":
            seq.append(L.Dense(layer[1], activation=layer[2]))
        elif kind == "dropout":
            seq.append(L.Dropout(layer[1]))
        elif kind == "bn":
            seq.append(L.BatchNormalization())
        elif kind in _AUGMENT:
            seq.append(_augment_layer(L, layer))
    model = cf.Sequential(seq)
    from_logits = spec["layers"][-1][2] is None
    model.compile(optimizer="adam",
                  loss=cf.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])
    return model


def build_keras(name):
    import tensorflow as tf

    keras = tf.keras
    spec = MODELS[name]
    seq = [keras.Input(shape=spec["input"])]
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "conv":
            seq.append(keras.layers.Conv2D(layer[1], (3, 3), padding=layer[2],
                                           activation="relu"))
        elif kind == "pool":
            seq.append(keras.layers.MaxPooling2D((2, 2)))
        elif kind == "flatten":
            seq.append(keras.layers.Flatten())
        elif kind == "dense":
            seq.append(keras.layers.Dense(layer[1], activation=layer[2]))
        elif kind == "dropout":
            seq.append(keras.layers.Dropout(layer[1]))
        elif kind == "bn":
            seq.append(keras.layers.BatchNormalization())
        elif kind in _AUGMENT:
            seq.append(_augment_layer(keras.layers, layer))
    model = keras.Sequential(seq)
    from_logits = spec["layers"][-1][2] is None
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"], jit_compile=False)
    return model


def build_torch(name):
    """nn.Sequential taking NCHW (N, 1, 28, 28) input (or (N, 28, 28) for the MLP); returns
    logits (the final softmax is folded into F.cross_entropy)."""
    from torch import nn

    _no_augment(name, "torch")
    spec = MODELS[name]
    mods = []
    shape = tuple(spec["input"])
    for layer, out_shape, _ in shapes_and_macs(name):
        kind = layer[0]
        if kind == "conv":
            mods += [nn.Conv2d(shape[-1], layer[1], 3, padding=1 if layer[2] == "same" else 0),
                     nn.ReLU()]
        elif kind == "pool":
            mods.append(nn.MaxPool2d(2))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        elif kind == "dense":
            mods.append(nn.Linear(shape[0], layer[1]))
            if layer[2] == "relu":
                mods.append(nn.ReLU())
        elif kind == "dropout":
            mods.append(nn.Dropout(layer[1]))
        elif kind == "bn":   # Keras's defaults in torch's terms (momentum = 1 - Keras's)
            mods.append(nn.BatchNorm2d(shape[-1], eps=1e-3, momentum=0.01))
        shape = out_shape
    return nn.Sequential(*mods)


def build_numpy(name, seed=0):
    from cnnfast.reference import trainer as rt

    _no_augment(name, "NumPy reference")
    spec = MODELS[name]
    seq = []
    for layer in spec["layers"]:
        kind = layer[0]
        if kind == "conv":
            seq.append(rt.Conv2D(layer[1], 3, padding=layer[2], activation="relu"))
        elif kind == "pool":
            seq.append(rt.MaxPooling2D(2))
        elif kind == "flatten":
            seq.append(rt.Flatten())
        elif kind == "dense":
            seq.append(rt.Dense(layer[1], activation=layer[2]))
        elif kind == "dropout":
            seq.append(rt.Dropout(layer[1]))
        elif kind == "bn":
            seq.append(rt.BatchNormalization())
    return rt.Trainer(seq, spec["input"], seed=seed)


# ---- kernel benchmark ---------------------------------------------------------------------------
KERNEL_OPS = {"cnn": ("conv", "pool", "dense")}   # every other model: its conv layers only


def _dims(shape):
    return "x".join(map(str, shape))


def kernel_layers(names):
    """The distinct conv/pool/dense layers of the models `names` for the kernel benchmark: every
    layer of the tutorial `cnn`, the conv layers of the other conv models (mlp: none).

    Returns [{"name", "op", "in", "out", "filters"|"units", "padding", "macs" (per image),
    "desc", "also"}] in model order; a layer that repeats one already listed (same op, input
    shape and size) is listed once, with the other models' names in "also"."""
    out, seen = [], {}
    for name in names:
        ops = KERNEL_OPS.get(name, ("conv",))
        shape, count = tuple(MODELS[name]["input"]), {}
        for layer, out_shape, macs in shapes_and_macs(name):
            kind = layer[0]
            count[kind] = count.get(kind, 0) + 1
            if kind in ops:
                lname = f"{name}/{kind}{count[kind]}"
                rec = {"name": lname, "op": kind, "in": shape, "out": out_shape, "macs": macs}
                if kind == "conv":
                    rec.update(filters=layer[1], padding=layer[2],
                               desc=f"3x3 {layer[2]} {_dims(shape)}→{_dims(out_shape)}")
                elif kind == "pool":
                    rec.update(desc=f"max 2x2 {_dims(shape)}→{_dims(out_shape)}")
                else:
                    rec.update(units=layer[1], desc=f"{shape[0]}→{layer[1]}")
                key = (kind, shape, out_shape, layer[1:2] if kind != "pool" else ())
                if key in seen:
                    seen[key]["also"].append(lname)
                else:
                    rec["also"] = []
                    seen[key] = rec
                    out.append(rec)
            shape = out_shape
    return out
