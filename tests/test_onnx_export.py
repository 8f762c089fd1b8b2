"""ONNX export (cnnfast/saving/onnx_export.py): every layer type and activation, run in
onnxruntime against model.predict (1e-5), with a dynamic batch dimension and NHWC input.
Skipped cleanly where onnx / onnxruntime are not installed."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import layers as L
from cnnfast.layers.base import reset_names

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _fresh():
    reset_names()
    cf.utils.set_random_seed(7)


def x_of(shape, n, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def run_onnx(path, xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, xs)))


def check(model, tmp_path, shape, batches=(1, 4)):
    path = tmp_path / "m.onnx"
    model.export(path, format="onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 21
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(shape)
    for n in batches:                                  # one file, any batch size
        x = x_of(shape, n)
        want = model.predict(x, verbose=0)
        got = run_onnx(path, [x])
        want = want if isinstance(want, list) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=0, atol=ATOL)
    return proto


def seq(shape, *layers):
    return cf.Sequential([L.Input(shape)] + list(layers))


def bn(**kw):
    layer = L.BatchNormalization(**kw)
    return layer


def set_bn_stats(model):
    r = np.random.default_rng(2)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([(r.random(w.shape) + 0.5).astype(np.float32)
                               for w in layer.get_weights()])


LAYER_CASES = {
    "conv_valid": lambda: seq((9, 8, 3), L.Conv2D(4, 3)),
    "conv_same_strided": lambda: seq((9, 8, 3), L.Conv2D(5, (3, 2), strides=(2, 3),
                                                         padding="same", use_bias=False)),
    "conv_relu": lambda: seq((7, 7, 2), L.Conv2D(3, 1, activation="relu")),
    "dense": lambda: seq((6,), L.Dense(4, activation="tanh")),
    "dense_no_bias_rank3": lambda: seq((3, 6), L.Dense(2, use_bias=False)),
    "maxpool_valid": lambda: seq((9, 7, 2), L.MaxPooling2D(2)),
    "maxpool_same": lambda: seq((9, 7, 2), L.MaxPooling2D(3, strides=2, padding="same")),
    "avgpool_valid": lambda: seq((9, 7, 2), L.AveragePooling2D((2, 3))),
    "avgpool_same": lambda: seq((9, 7, 2), L.AveragePooling2D(3, strides=2, padding="same")),
    "batchnorm_4d": lambda: seq((5, 5, 3), bn()),
    "batchnorm_2d_no_center": lambda: seq((4,), bn(center=False, epsilon=0.01)),
    "batchnorm_no_scale_after_conv": lambda: seq((5, 5, 2), L.Conv2D(3, 3), bn(scale=False)),
    "global_avg": lambda: seq((5, 6, 3), L.GlobalAveragePooling2D()),
    "global_max_keepdims": lambda: seq((5, 6, 3), L.Conv2D(2, 1),
                                       L.GlobalMaxPooling2D(keepdims=True)),
    "flatten_after_conv": lambda: seq((5, 4, 3), L.Conv2D(2, 3, padding="same"), L.Flatten()),
    "reshape": lambda: seq((4, 6, 2), L.Reshape((8, -1))),
    "rescaling": lambda: seq((3, 3, 2), L.Rescaling(1 / 255.0, offset=-0.5)),
    "zero_padding": lambda: seq((4, 5, 2), L.ZeroPadding2D(((1, 2), (0, 3)))),
    "zero_padding_between_convs": lambda: seq((4, 5, 2), L.Conv2D(2, 1), L.ZeroPadding2D(1),
                                              L.Conv2D(2, 3)),
    "dropout": lambda: seq((6,), L.Dropout(0.5), L.Dense(2)),
    "augmentation": lambda: seq((6, 6, 1), L.RandomFlip(), L.RandomRotation(0.2),
                                L.RandomZoom(0.3)),
    "relu_layer": lambda: seq((6,), L.ReLU()),
    "softmax_layer": lambda: seq((3, 4), L.Flatten(), L.Softmax()),
    "softmax_axes": lambda: seq((3, 4, 5), L.Conv2D(5, 1), L.Softmax(axis=1),
                                L.Softmax(axis=-2), L.Softmax(axis=3)),
    "relu_arguments": lambda: seq((3, 4, 2), L.Rescaling(4.0), L.Conv2D(2, 1),
                                  L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.5),
                                  L.ReLU(max_value=0.7), L.ReLU(threshold=0.3),
                                  L.ReLU(negative_slope=0.05), L.ReLU(max_value=6.0),
                                  L.ReLU(negative_slope=0.3, max_value=1.5)),
    "leaky_relu_elu": lambda: seq((3, 4, 2), L.Rescaling(3.0), L.Conv2D(2, 1), L.LeakyReLU(),
                                  L.LeakyReLU(0.2), L.ELU(0.4), L.ELU()),
    "prelu": lambda: seq((4, 5, 3), L.Conv2D(3, 1), L.PReLU(shared_axes=[1, 2]), L.PReLU(),
                         L.Flatten(), L.PReLU()),
    "conv_dilated": lambda: seq((9, 8, 3), L.Conv2D(4, 3, dilation_rate=2),
                                L.Conv2D(2, (2, 3), dilation_rate=(2, 1), padding="same")),
    "depthwise": lambda: seq((9, 8, 3), L.DepthwiseConv2D(3, depth_multiplier=2,
                                                          activation="relu"),
                             L.DepthwiseConv2D((2, 3), strides=2, padding="same",
                                               use_bias=False),
                             L.DepthwiseConv2D(3, dilation_rate=2, padding="same")),
    "separable": lambda: seq((9, 8, 3), L.SeparableConv2D(4, 3, depth_multiplier=2,
                                                          activation="tanh"),
                             L.SeparableConv2D(3, (2, 3), strides=2, padding="same",
                                               use_bias=False),
                             L.SeparableConv2D(2, 3, dilation_rate=2, padding="same")),
    "augmentation_more": lambda: seq((6, 6, 2), L.SpatialDropout2D(0.5),
                                     L.RandomTranslation(0.2, 0.1), L.RandomContrast(0.4),
                                     L.RandomCrop(6, 6), L.Conv2D(2, 1)),
}


def randomize_weights(model):
    """Random weights everywhere (PReLU's alphas start at zero, biases too)."""
    r = np.random.default_rng(4)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws and not isinstance(layer, L.BatchNormalization):
            layer.set_weights([(r.standard_normal(w.shape) * 0.5).astype(np.float32)
                               for w in ws])


def test_every_layer_class_is_exported_or_refused_by_name():
    from cnnfast.saving import onnx_export, serialization
    assert set(onnx_export.LAYERS) == set(serialization.LAYER_CLASSES) - {"InputLayer"}
    covered = {"Activation"}                   # test_each_activation_matches_predict
    for case in LAYER_CASES.values():
        covered |= {type(layer).__name__ for layer in case().layers}
    assert covered == set(onnx_export.LAYERS)


def test_random_crop_that_resizes_is_refused_by_name(tmp_path):
    m = seq((6, 6, 2), L.RandomCrop(4, 5, name="crop"))
    with pytest.raises(NotImplementedError, match=r"layer 'crop' \(RandomCrop\) has no ONNX "
                       r"mapping: at inference it is a centred crop resized"):
        m.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_each_layer_type_matches_predict(tmp_path, case):
    m = LAYER_CASES[case]()
    randomize_weights(m)
    set_bn_stats(m)
    check(m, tmp_path, m.inputs[0].shape[1:])


ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "gelu", "silu",
               "softplus", "softsign", "leaky_relu", "relu6", "hard_sigmoid", "log_softmax"]


def test_every_activation_is_covered():
    assert sorted(ACTIVATIONS) == sorted(cf.backend.ACTIVATIONS)


LAST_AXIS = ("softmax", "log_softmax")


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_each_activation_matches_predict(tmp_path, act):
    # as a layer on NCHW data (after a conv; rank 2 for those over the last axis, see below),
    # and fused into Dense
    if act in LAST_AXIS:
        m = seq((5, 4, 3), L.Conv2D(3, 1), L.Flatten(), L.Activation(act),
                L.Dense(4, activation=act))
    else:
        m = seq((5, 4, 3), L.Conv2D(3, 1), L.Activation(act), L.Flatten(),
                L.Dense(4, activation=act))
    check(m, tmp_path, (5, 4, 3))


# The native Net normalised a rank > 2 softmax over all of a sample's elements; since the fix
# (executor._net_op declines those layers) cnnfast, Keras and the export agree.
@pytest.mark.parametrize("act", LAST_AXIS + ("Softmax(axis=-1)", "Softmax(axis=3)"))
def test_last_axis_activations_on_rank4_follow_keras(tmp_path, act):
    # the Softmax layer over the last axis of a rank-4 input is the 'softmax' kind: the same
    layer = {"Softmax(axis=-1)": lambda: L.Softmax(axis=-1),
             "Softmax(axis=3)": lambda: L.Softmax(axis=3)}.get(act, lambda: L.Activation(act))()
    check(seq((3, 3, 4), layer), tmp_path, (3, 3, 4))


def test_tutorial_cnn_and_functional_multi_output(tmp_path):
    m = seq((28, 28, 1), L.Rescaling(1 / 255.0), L.Conv2D(8, 3, padding="same",
                                                           activation="relu"),
            L.BatchNormalization(), L.MaxPooling2D(), L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(), L.Flatten(), L.Dropout(0.5), L.Dense(32, activation="relu"),
            L.Dense(10, activation="softmax"))
    x, y = x_of((28, 28, 1), 32) * 50 + 100, np.random.default_rng(1).integers(0, 10, 32)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)     # trained: non-trivial BN statistics
    proto = check(m, tmp_path, (28, 28, 1))
    ops = [n.op_type for n in proto.graph.node]
    # conv -> bn -> pool -> conv -> pool run in NCHW: one Transpose in, one out (before Flatten)
    assert ops.count("Transpose") == 2, ops
    inp = L.Input((6, 6, 2), name="img")
    h = L.Conv2D(3, 3, activation="relu")(inp)
    a = L.Dense(2, activation="softmax")(L.Flatten()(h))
    b = L.GlobalAveragePooling2D()(h)
    check(cf.Model(inp, [a, b, h]), tmp_path, (6, 6, 2))


def test_export_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not been built"):
        cf.Sequential([L.Dense(2)]).export(tmp_path / "m.onnx")
    m = seq((4,), L.Dense(2))
    with pytest.raises(NotImplementedError, match="format='tf_saved_model' is not supported"):
        m.export(tmp_path / "saved", format="tf_saved_model")
    with pytest.raises(NotImplementedError, match="input_signature"):
        m.export(tmp_path / "m.onnx", format="onnx", input_signature=[1])
    with pytest.raises(ValueError, match="opset_version must be >= 18"):
        m.export(tmp_path / "m.onnx", format="onnx", opset_version=13)
    m.export(tmp_path / "m.onnx")                      # format from the extension
    assert (tmp_path / "m.onnx").stat().st_size > 0
