"""ONNX export: `model.export("model.onnx", format="onnx")` (Keras 3's call).

The graph is built with the `onnx` package (the optional extra `cnnfast[onnx]`), imported on
first use. It computes what `model.predict` computes (inference: Dropout and the augmentation
layers are the identity, BatchNormalization uses its moving statistics), with a dynamic batch
dimension and the model's NHWC input, as the Keras model takes it. Conv and pooling run in
ONNX's NCHW: a Transpose goes in where the layout changes, and runs of NCHW layers
(Conv -> BatchNormalization -> relu -> MaxPool ...) stay in NCHW between them.

One function per layer class in LAYERS; a layer without one is a NotImplementedError naming
it. Reads a model only through its public view (nodes, input_layers, output_layers, layer
attributes); imports no model code.
"""
from __future__ import annotations

import math

import numpy as np

from .archive import atomic_write

OPSET = 21          # Gelu needs 20; onnxruntime >= 1.17 runs 21
HINT = "ONNX export needs the onnx package: pip install 'cnnfast[onnx]' (or pip install onnx)"


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError(f"{HINT} ({e})") from e
    return onnx


class _T:
    """A graph tensor: its name, the Keras (NHWC) shape, and its layout in the graph."""

    def __init__(self, name, shape, layout="NHWC"):
        self.name, self.shape, self.layout = name, tuple(shape), layout


class _Graph:
    def __init__(self, onnx):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits, self.n = [], [], 0

    def fresh(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, value, dtype=np.float32):
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, inputs, base, **attrs):
        out = self.fresh(base)
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def nchw(self, t):
        if len(t.shape) != 4 or t.layout == "NCHW":
            return t
        return _T(self.op("Transpose", [t.name], "to_nchw", perm=[0, 3, 1, 2]), t.shape, "NCHW")

    def nhwc(self, t):
        if t.layout == "NHWC":
            return t
        return _T(self.op("Transpose", [t.name], "to_nhwc", perm=[0, 2, 3, 1]), t.shape)


# ---- activations (a name -> ONNX ops on any layout, except those over the last axis) -------
_UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
          "softsign": "Softsign"}


def _activation(g, t, act, base):
    if act == "linear":
        return t
    if act in _UNARY:
        return _T(g.op(_UNARY[act], [t.name], base), t.shape, t.layout)
    if act in ("softmax", "log_softmax"):
        t = g.nhwc(t)
        return _T(g.op("Softmax" if act == "softmax" else "LogSoftmax", [t.name], base,
                       axis=-1), t.shape)
    if act == "elu":
        name = g.op("Elu", [t.name], base, alpha=1.0)
    elif act == "selu":        # ONNX's default alpha/gamma are Keras's constants in float32
        name = g.op("Selu", [t.name], base)
    elif act == "gelu":        # exact (erf) GELU, Keras's default
        name = g.op("Gelu", [t.name], base, approximate="none")
    elif act == "silu":
        name = g.op("Mul", [t.name, g.op("Sigmoid", [t.name], base)], base)
    elif act == "leaky_relu":
        name = g.op("LeakyRelu", [t.name], base, alpha=0.2)
    elif act == "relu6":
        name = g.op("Clip", [t.name, g.const("zero", 0.0), g.const("six", 6.0)], base)
    elif act == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6
        name = g.op("HardSigmoid", [t.name], base, alpha=1.0 / 6.0, beta=0.5)
    else:
        raise NotImplementedError(f"ONNX export: activation {act!r} has no ONNX mapping")
    return _T(name, t.shape, t.layout)


# ---- layers --------------------------------------------------------------------------------
def _same_pads(in_size, k, s):
    """TF/Keras 'same': total padding max((ceil(n/s) - 1) s + k - n, 0), the extra at the end."""
    total = max((math.ceil(in_size / s) - 1) * s + k - in_size, 0)
    return total // 2, total - total // 2


def _window_attrs(t, kernel, strides, padding, dilation=(1, 1)):
    attrs = {"kernel_shape": list(kernel), "strides": list(strides)}
    if tuple(dilation) != (1, 1):
        attrs["dilations"] = list(dilation)
    if padding == "same":
        h, w = t.shape[1], t.shape[2]
        if h is None or w is None:
            attrs["auto_pad"] = "SAME_UPPER"
        else:          # the dilated kernel's extent, as TF pads
            eh, ew = ((k - 1) * d + 1 for k, d in zip(kernel, dilation))
            (t0, b0), (l0, r0) = (_same_pads(h, eh, strides[0]), _same_pads(w, ew, strides[1]))
            attrs["pads"] = [t0, l0, b0, r0]
    return attrs


def _conv_op(g, t, layer, kernel_oihw, bias, base, **extra):
    ins = [t.name, g.const(f"{base}_kernel", kernel_oihw)]
    if bias is not None:
        ins.append(g.const(f"{base}_bias", bias))
    return g.op("Conv", ins, base, **_window_attrs(t, layer.kernel_size, layer.strides,
                                                   layer.padding, layer.dilation_rate), **extra)


def _conv(g, layer, t, out_shape):
    t = g.nchw(t)
    w = np.transpose(layer.kernel, (3, 2, 0, 1))       # (kh, kw, cin, cout) -> OIHW
    name = _conv_op(g, t, layer, w, layer.bias if layer.use_bias else None, layer.name)
    return _activation(g, _T(name, out_shape, "NCHW"), layer.activation, layer.name)


def _depthwise_oihw(kernel):
    """(kh, kw, C, M) -> a grouped Conv's (C * M, 1, kh, kw): output channel c * M + m is
    channel c through filter m, as Keras orders them."""
    kh, kw, c, m = kernel.shape
    return np.transpose(kernel, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw)


def _depthwise(g, layer, t, out_shape):
    t = g.nchw(t)
    name = _conv_op(g, t, layer, _depthwise_oihw(layer.kernel),
                    layer.bias if layer.use_bias else None, layer.name,
                    group=int(layer.kernel.shape[2]))
    return _activation(g, _T(name, out_shape, "NCHW"), layer.activation, layer.name)


def _separable(g, layer, t, out_shape):
    """The depthwise stage (strides, padding, dilation), then a 1x1 Conv with the bias."""
    t = g.nchw(t)
    mid = _conv_op(g, t, layer, _depthwise_oihw(layer.depthwise_kernel), None,
                   f"{layer.name}_depthwise", group=int(layer.depthwise_kernel.shape[2]))
    ins = [mid, g.const(f"{layer.name}_pointwise",
                        np.transpose(layer.pointwise_kernel, (3, 2, 0, 1)))]
    if layer.use_bias:
        ins.append(g.const(f"{layer.name}_bias", layer.bias))
    name = g.op("Conv", ins, layer.name, kernel_shape=[1, 1])
    return _activation(g, _T(name, out_shape, "NCHW"), layer.activation, layer.name)


def _pool(op_type):
    def build(g, layer, t, out_shape):
        t = g.nchw(t)
        attrs = _window_attrs(t, layer.pool_size, layer.strides, layer.padding)
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0         # Keras averages the real cells only
        return _T(g.op(op_type, [t.name], layer.name, **attrs), out_shape, "NCHW")
    return build


def _dense(g, layer, t, out_shape):
    t = g.nhwc(t)
    name = g.op("MatMul", [t.name, g.const(f"{layer.name}_kernel", layer.kernel)], layer.name)
    if layer.use_bias:
        name = g.op("Add", [name, g.const(f"{layer.name}_bias", layer.bias)], layer.name)
    return _activation(g, _T(name, out_shape), layer.activation, layer.name)


def _batchnorm(g, layer, t, out_shape):
    """Inference: x * a + b with a = gamma / sqrt(var + eps), b = beta - mean * a (float64
    folding, then float32), broadcast over the channel axis of the tensor's layout."""
    ws = list(layer.get_weights())
    gamma = ws.pop(0) if layer.scale else None
    beta = ws.pop(0) if layer.center else None
    mean, var = (np.asarray(w, np.float64) for w in ws)
    a = 1.0 / np.sqrt(var + np.float64(np.float32(layer.epsilon)))
    if gamma is not None:
        a = a * gamma
    b = -mean * a + (0.0 if beta is None else beta)
    shape = (-1, 1, 1) if t.layout == "NCHW" else (-1,)
    name = g.op("Mul", [t.name, g.const(f"{layer.name}_a", a.reshape(shape))], layer.name)
    name = g.op("Add", [name, g.const(f"{layer.name}_b", b.reshape(shape))], layer.name)
    return _T(name, out_shape, t.layout)


def _global_pool(op_type):
    def build(g, layer, t, out_shape):
        axes = [2, 3] if t.layout == "NCHW" else [1, 2]
        name = g.op(op_type, [t.name, g.const("axes", axes, np.int64)], layer.name,
                    keepdims=int(layer.keepdims))
        return _T(name, out_shape, t.layout if layer.keepdims else "NHWC")
    return build


def _flatten(g, layer, t, out_shape):
    t = g.nhwc(t)
    return _T(g.op("Flatten", [t.name], layer.name, axis=1), out_shape)


def _reshape(g, layer, t, out_shape):
    t = g.nhwc(t)
    shape = g.const("shape", [0] + [int(d) for d in layer.target_shape], np.int64)
    return _T(g.op("Reshape", [t.name, shape], layer.name), out_shape)


def _rescaling(g, layer, t, out_shape):
    name = g.op("Mul", [t.name, g.const("scale", layer.scale)], layer.name)
    name = g.op("Add", [name, g.const("offset", layer.offset)], layer.name)
    return _T(name, out_shape, t.layout)


def _zero_padding(g, layer, t, out_shape):
    (top, bottom), (left, right) = layer.padding
    pads = [0, 0, top, left, 0, 0, bottom, right] if t.layout == "NCHW" else \
        [0, top, left, 0, 0, bottom, right, 0]
    name = g.op("Pad", [t.name, g.const("pads", pads, np.int64)], layer.name, mode="constant")
    return _T(name, out_shape, t.layout)


def _activation_layer(g, layer, t, out_shape):
    return _activation(g, _T(t.name, out_shape, t.layout), layer.activation, layer.name)


def _relu(g, layer, t, out_shape):
    """Keras's ReLU.static_call, op for op: x * (x > threshold) (relu(x) at threshold 0),
    clipped to [0, max_value], minus negative_slope * relu(threshold - x)."""
    if layer.activation is not None:            # one of the activation kinds
        return _activation_layer(g, layer, t, out_shape)
    thr, slope, top = layer.threshold, layer.negative_slope, layer.max_value
    if slope != 0.0 and top is None and thr == 0.0:
        return _T(g.op("LeakyRelu", [t.name], layer.name, alpha=slope), out_shape, t.layout)
    if thr != 0.0:
        above = g.op("Cast", [g.op("Greater", [t.name, g.const("threshold", thr)], layer.name)],
                     layer.name, to=g.onnx.TensorProto.FLOAT)
        y = g.op("Mul", [t.name, above], layer.name)
    else:
        y = g.op("Relu", [t.name], layer.name)
    if top is not None:
        y = g.op("Clip", [y, g.const("zero", 0.0), g.const("max_value", top)], layer.name)
    if slope != 0.0:
        neg = g.op("Relu", [g.op("Sub", [g.const("threshold", thr), t.name], layer.name)
                            if thr != 0.0 else g.op("Neg", [t.name], layer.name)], layer.name)
        y = g.op("Sub", [y, g.op("Mul", [g.const("slope", slope), neg], layer.name)],
                 layer.name)
    return _T(y, out_shape, t.layout)


def _leaky_relu(g, layer, t, out_shape):
    return _T(g.op("LeakyRelu", [t.name], layer.name, alpha=layer.negative_slope), out_shape,
              t.layout)


def _elu(g, layer, t, out_shape):
    return _T(g.op("Elu", [t.name], layer.name, alpha=layer.alpha), out_shape, t.layout)


def _prelu(g, layer, t, out_shape):
    t = g.nhwc(t)                               # alpha has the NHWC sample shape
    return _T(g.op("PRelu", [t.name, g.const(f"{layer.name}_alpha", layer.alpha)],
                   layer.name), out_shape)


def _softmax(g, layer, t, out_shape):
    if layer.activation is not None:            # over the last axis
        return _activation_layer(g, layer, t, out_shape)
    t = g.nhwc(t)
    return _T(g.op("Softmax", [t.name], layer.name, axis=layer._axis), out_shape)


def _random_crop(g, layer, t, out_shape):
    if tuple(t.shape[1:3]) == (layer.height, layer.width):
        return _identity(g, layer, t, out_shape)
    raise NotImplementedError(
        f"ONNX export: layer '{layer.name}' (RandomCrop) has no ONNX mapping: at inference "
        "it is a centred crop resized to (height, width) (smart_resize), which the exporter "
        f"does not build (only the identity, for {t.shape[1:3]} images already of the crop's "
        "size); remove the layer for export")


def _identity(g, layer, t, out_shape):
    """Dropout and the augmentation layers: the identity at inference, as in predict."""
    return _T(t.name, out_shape, t.layout)


LAYERS = {
    "Conv2D": _conv, "Dense": _dense,
    "MaxPooling2D": _pool("MaxPool"), "AveragePooling2D": _pool("AveragePool"),
    "BatchNormalization": _batchnorm,
    "GlobalAveragePooling2D": _global_pool("ReduceMean"),
    "GlobalMaxPooling2D": _global_pool("ReduceMax"),
    "Flatten": _flatten, "Reshape": _reshape, "Rescaling": _rescaling,
    "ZeroPadding2D": _zero_padding,
    "DepthwiseConv2D": _depthwise, "SeparableConv2D": _separable,
    "Activation": _activation_layer, "ReLU": _relu, "Softmax": _softmax,
    "LeakyReLU": _leaky_relu, "ELU": _elu, "PReLU": _prelu,
    "Dropout": _identity, "SpatialDropout2D": _identity, "RandomFlip": _identity,
    "RandomRotation": _identity, "RandomZoom": _identity, "RandomTranslation": _identity,
    "RandomContrast": _identity, "RandomCrop": _random_crop,
}


def _value_info(onnx, name, shape):
    dims = ["batch"] + [None if d is None else int(d) for d in shape[1:]]
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def build_onnx(model, opset=OPSET):
    """The onnx.ModelProto of a built Sequential or functional model."""
    onnx = _onnx()
    if not getattr(model, "built", False) or not model.input_layers:
        raise ValueError(f"cannot export model '{model.name}': it has not been built yet (give "
                         "it an Input or input_shape, or call it on data first)")
    if opset < 18:
        raise ValueError(f"ONNX export: opset_version must be >= 18 (ReduceMean/ReduceMax take "
                         f"axes as an input from 18 on), got {opset}")
    g = _Graph(onnx)
    tensors, inputs = {}, []
    for i, layer in enumerate(model.input_layers):
        name = "input" if len(model.input_layers) == 1 else f"input_{i}"
        shape = layer.output.shape
        tensors[id(layer)] = _T(name, shape)
        inputs.append(_value_info(onnx, name, shape))
    for node in model.nodes:
        layer = node.layer
        if id(layer) in tensors:
            continue
        if type(layer).__name__ == "InputLayer":
            raise ValueError(f"input layer '{layer.name}' is not among the model's inputs")
        build = LAYERS.get(type(layer).__name__)
        if build is None:
            raise NotImplementedError(f"ONNX export: layer '{layer.name}' "
                                      f"({type(layer).__name__}) has no ONNX mapping; "
                                      f"supported: {sorted(LAYERS)}")
        src = tensors[id(node.inbound_layers[0])]
        tensors[id(layer)] = build(g, layer, src, layer.output.shape)
    outputs = []
    for i, layer in enumerate(model.output_layers):
        t = g.nhwc(tensors[id(layer)])
        name = "output" if len(model.output_layers) == 1 else f"output_{i}"
        g.nodes.append(onnx.helper.make_node("Identity", [t.name], [name], name=name))
        outputs.append(_value_info(onnx, name, t.shape))
    graph = onnx.helper.make_graph(g.nodes, model.name, inputs, outputs, g.inits)
    proto = onnx.helper.make_model(graph, producer_name="cnnfast",
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    proto.ir_version = min(proto.ir_version, 10)     # readable by onnxruntime >= 1.17
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, filepath, opset=OPSET, overwrite=True):
    """Write the ONNX file of `model` (atomic, like every cnnfast save)."""
    data = build_onnx(model, opset).SerializeToString()
    atomic_write(filepath, overwrite, lambda f: f.write(data))
