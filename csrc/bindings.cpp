// bindings.cpp -- PYBIND11_MODULE for cnnfast._core.
// Validates every array (dtype, C-contiguity, writability, shape), releases the GIL and calls
// the kernels. No math here. Errors raise ValueError/TypeError with the argument's name and
// shapes; nothing is converted silently (an output must be the caller's real buffer).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "activations.h"
#include "activations_layers_bind.h"
#include "augment.h"
#include "batchnorm.h"
#include "batchnorm_pool.h"
#include "bind_checks.h"
#include "bind_kernels.h"
#include "bind_losses.h"
#include "common.h"
#include "conv2d.h"
#include "dense.h"
#include "depthwise_bind.h"
#include "gemm.h"
#include "isa.h"
#include "losses.h"
#include "net.h"
#include "optim.h"
#include "pool2d.h"
#include "winograd.h"

namespace py = pybind11;
using namespace cnnfast;
using namespace cnnfast::bind;

namespace {

using bind::shape_str;  // the vector overload; this file adds the py::array one

std::string shape_str(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

// Checks dtype T, C-contiguity, (writability) and, when given, the exact shape. -1 = any.
template <typename T>
T* data_of(const py::object& obj, const char* fn, const char* name, bool writable,
           std::vector<int64_t> shape = {}) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(fn) + ": " + name + " must be a numpy array");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(py::dtype::of<T>()))
        throw py::type_error(std::string(fn) + ": " + name + " must have dtype " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(fn) + ": " + name + " must be C-contiguous");
    if (writable && !a.writeable())
        throw py::value_error(std::string(fn) + ": " + name + " must be writable");
    if (!shape.empty()) {
        bool ok = static_cast<size_t>(a.ndim()) == shape.size();
        for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
        if (!ok)
            throw py::value_error(std::string(fn) + ": " + name + " has shape " + shape_str(a) +
                                  ", expected " + shape_str(shape));
    }
    return static_cast<T*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
}

template <typename T>
T* optional_data_of(const py::object& obj, const char* fn, const char* name, bool writable,
                    std::vector<int64_t> shape = {}) {
    if (obj.is_none()) return nullptr;
    return data_of<T>(obj, fn, name, writable, std::move(shape));
}

py::array as_array(const py::object& obj, const char* fn, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(fn) + ": " + name + " must be a numpy array");
    return py::reinterpret_borrow<py::array>(obj);
}

void require_ndim(const py::array& a, int ndim, const char* fn, const char* name) {
    if (a.ndim() != ndim)
        throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_str(a));
}

std::vector<int64_t> shape_of(const py::array& a) {
    return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// The array policy of bind_kernels.h for _core: NumPy arrays and the CPU kernels.
struct HostArrays {
    static std::vector<int64_t> shape(const py::object& obj, const char* fn, const char* name) {
        return shape_of(as_array(obj, fn, name));
    }
    static int64_t size(const py::object& obj, const char* fn, const char* name) {
        return as_array(obj, fn, name).size();
    }
    template <typename T>
    static T* ptr(const py::object& obj, const char* fn, const char* name, bool writable,
                  std::vector<int64_t> shape = {}) {
        return data_of<T>(obj, fn, name, writable, std::move(shape));
    }
    template <typename T>
    static T* opt_ptr(const py::object& obj, const char* fn, const char* name, bool writable,
                      std::vector<int64_t> shape = {}) {
        return optional_data_of<T>(obj, fn, name, writable, std::move(shape));
    }
    template <typename T>
    static bool is_dtype(const py::object& obj) {
        return py::reinterpret_borrow<py::array>(obj).dtype().is(py::dtype::of<T>());
    }
    static std::string dtype_name(const py::object& obj) {
        return py::str(py::reinterpret_borrow<py::array>(obj).dtype());
    }
    static size_t conv2d_workspace_size(const Conv2DParams& p) {
        return cnnfast::conv2d_workspace_size(p);
    }
    static constexpr const char* workspace_hint = "";
    static float loss_mean(const float* loss, int B) { return loss_batch_mean(loss, B); }

    // maxpool2d_backward's kernel trusts argmax (N,OH,OW,C) to be what maxpool2d_forward
    // wrote: check that every index is a cell of its own window (clipped to the input) before
    // it runs. Per window row r, v is in it iff v - (r*W + w0) is in [0, w1-w0): no division,
    // and the channel loop vectorises.
    static void check_argmax(const int32_t* pa, const Pool2DParams& p,
                             const char* fn = "maxpool2d_backward") {
        std::vector<uint8_t> in_window(p.C);
        for (int n = 0; n < p.N; ++n)
            for (int oh = 0; oh < p.OH; ++oh)
                for (int ow = 0; ow < p.OW; ++ow) {
                    const int h0 = std::max(oh * p.SH - p.PT, 0);
                    const int h1 = std::min(oh * p.SH - p.PT + p.PH, p.H);
                    const int w0 = std::max(ow * p.SW - p.PL, 0);
                    const int w1 = std::min(ow * p.SW - p.PL + p.PW, p.W);
                    const int32_t* __restrict a = pa + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C;
                    uint8_t* __restrict ok = in_window.data();
                    const int C = p.C;
                    for (int c = 0; c < C; ++c) ok[c] = 0;
                    for (int r = h0; r < h1; ++r) {
                        // in int64: r * W overflows int once H * W > 2^31 - 1
                        const uint32_t base = (uint32_t)((int64_t)r * p.W + w0);
                        const uint32_t width = (uint32_t)(w1 - w0);
                        for (int c = 0; c < C; ++c)
                            ok[c] |= (uint8_t)((uint32_t)a[c] - base < width);
                    }
                    uint8_t all = 1;
                    for (int c = 0; c < C; ++c) all &= ok[c];
                    if (all) continue;
                    const int c = (int)(std::find(ok, ok + C, 0) - ok);  // first offender
                    throw py::value_error(std::string(fn) +
                                          ": argmax out of range: " + std::to_string(a[c]) +
                                          " at (" + std::to_string(n) + ", " + std::to_string(oh) +
                                          ", " + std::to_string(ow) + ", " + std::to_string(c) +
                                          ") is not a cell of that output's window");
                }
    }

    // The kernels (csrc/*.h), under the names bind_kernels.h calls.
    struct K {
#define CNNFAST_HOST_KERNEL(name) \
    template <class... Args>      \
    static void name(Args... a) { \
        cnnfast::name(a...);      \
    }
        CNNFAST_HOST_KERNEL(conv2d_forward)
        CNNFAST_HOST_KERNEL(conv2d_backward)
        CNNFAST_HOST_KERNEL(maxpool2d_forward)
        CNNFAST_HOST_KERNEL(maxpool2d_backward)
        CNNFAST_HOST_KERNEL(avgpool2d_forward)
        CNNFAST_HOST_KERNEL(avgpool2d_backward)
        CNNFAST_HOST_KERNEL(dense_forward)
        CNNFAST_HOST_KERNEL(dense_backward)
        CNNFAST_HOST_KERNEL(activation_forward)
        CNNFAST_HOST_KERNEL(activation_backward)
        CNNFAST_HOST_KERNEL(softmax_xent_sparse)
        CNNFAST_HOST_KERNEL(softmax_xent_dense)
        CNNFAST_HOST_KERNEL(xent_probs_sparse)
        CNNFAST_HOST_KERNEL(xent_probs_dense)
        CNNFAST_HOST_KERNEL(dropout_forward)
        CNNFAST_HOST_KERNEL(dropout_backward)
        CNNFAST_HOST_KERNEL(adam_update)
        CNNFAST_HOST_KERNEL(sgd_update)
        CNNFAST_HOST_KERNEL(rmsprop_update)
        CNNFAST_HOST_KERNEL(nadam_update)
        CNNFAST_HOST_KERNEL(adamax_update)
        CNNFAST_HOST_KERNEL(adagrad_update)
        CNNFAST_HOST_KERNEL(adadelta_update)
        CNNFAST_HOST_KERNEL(weight_decay_update)
        CNNFAST_HOST_KERNEL(clip_gradients)
        CNNFAST_HOST_KERNEL(batchnorm_forward)
        CNNFAST_HOST_KERNEL(batchnorm_backward)
        CNNFAST_HOST_KERNEL(global_avgpool2d_forward)
        CNNFAST_HOST_KERNEL(global_avgpool2d_backward)
        CNNFAST_HOST_KERNEL(global_maxpool2d_forward)
        CNNFAST_HOST_KERNEL(global_maxpool2d_backward)
        CNNFAST_HOST_KERNEL(rescale_forward)
        CNNFAST_HOST_KERNEL(rescale_backward)
        CNNFAST_HOST_KERNEL(zeropad2d_forward)
        CNNFAST_HOST_KERNEL(zeropad2d_backward)
#undef CNNFAST_HOST_KERNEL
        static float nadam_u_product_next(float u, double beta1, int64_t step) {
            return cnnfast::nadam_u_product_next(u, beta1, step);
        }
        static float f32_pow(float x, float y) { return cnnfast::f32_pow(x, y); }
        static float f32_cos(float x) { return cnnfast::f32_cos(x); }
        static float f32_log(float x) { return cnnfast::f32_log(x); }
    };
};

// One op of a Net (_core.Op) plus the NumPy arrays its spec points into; built by the typed
// factories below, which check the arrays (dtype, contiguity, writability, shapes).
struct PyOp {
    OpSpec spec;
    std::vector<py::object> keep;
};

// A Net plus the NumPy arrays it points into (kept alive as long as the Net).
struct PyNet {
    std::unique_ptr<Net> net;
    std::vector<py::object> keep;
    OptSpec opt;
    std::vector<ParamSlot> params;
    bool sparse = true;
    float penalty = 0.0f;   // the weight penalties of the last train_step
    float activity = 0.0f;  // the activity penalties of the last train_step or evaluate
};

bool is_valid(OpKind k) {
    switch (k) {
        case OpKind::Conv2D:
        case OpKind::MaxPool2D:
        case OpKind::AvgPool2D:
        case OpKind::Dense:
        case OpKind::Flatten:
        case OpKind::Dropout:
        case OpKind::Activation:
        case OpKind::BatchNorm:
        case OpKind::Augment:
        case OpKind::GlobalAvgPool2D:
        case OpKind::GlobalMaxPool2D:
        case OpKind::Rescale:
        case OpKind::Reshape:
        case OpKind::ZeroPad2D:
        // ---- issue #11
        case OpKind::Relu:
        case OpKind::Elu:
        case OpKind::PRelu:
        case OpKind::SpatialDropout2D:
        // depthwise/separable/dilated (netconv)
        case OpKind::DepthwiseConv2D:
        case OpKind::SeparableConv2D:
        case OpKind::Conv2DDilated: return true;
    }
    return false;
}

bool is_valid(LossKind k) {
    switch (k) {
        case LossKind::SparseLogits:
        case LossKind::DenseLogits:
        case LossKind::SparseProbs:
        case LossKind::DenseProbs: return true;
    }
    return false;
}

// Weight (ndim-D) and gradient (same shape) of a Conv2D/Dense op; bias and dbias (units,) or
// both None. Returns the weight's shape.
std::vector<int64_t> set_weights(PyOp& op, const py::object& weight, const py::object& bias,
                                 const py::object& dweight, const py::object& dbias, int ndim,
                                 const char* fn) {
    py::array W = as_array(weight, fn, "weight");
    require_ndim(W, ndim, fn, "weight");
    const std::vector<int64_t> ws = shape_of(W);
    OpSpec& o = op.spec;
    o.weight = data_of<float>(weight, fn, "weight", true);
    o.dweight = data_of<float>(dweight, fn, "dweight", true, ws);
    o.weight_n = W.size();
    o.units = as_int(ws.back(), fn, "units");
    op.keep = {weight, dweight};
    if (bias.is_none() != dbias.is_none())
        throw py::value_error(std::string(fn) + ": bias and dbias must both be arrays or None");
    if (!bias.is_none()) {
        o.bias = data_of<float>(bias, fn, "bias", true, {ws.back()});
        o.dbias = data_of<float>(dbias, fn, "dbias", true, {ws.back()});
        o.bias_n = ws.back();
        op.keep.push_back(bias);
        op.keep.push_back(dbias);
    }
    return ws;
}

void set_window(OpSpec& o, std::pair<int, int> k, std::pair<int, int> st,
                const std::string& padding, const char* fn, const char* what) {
    pair_of(k, fn, what);
    pair_of(st, fn, "strides");
    o.kh = k.first, o.kw = k.second;
    o.sh = st.first, o.sw = st.second;
    o.pad = parse_padding(padding, fn);
}

// Checks an optimizer slot list against the OptSpec: see ParamSlot (net.h) for what s0..s2
// hold per optimizer.
void check_slots(const OptSpec& o, const ParamSlot& p) {
    switch (o.kind) {
        case OptKind::Adam:
            if (!(p.s0 && p.s1 && (p.s2 || !o.amsgrad)))
                throw py::value_error("Net: Adam needs m, v (and vhat with amsgrad)");
            break;
        case OptKind::SGD:
            if (o.momentum != 0.0 && !p.s0)
                throw py::value_error("Net: SGD with momentum needs a velocity");
            break;
        case OptKind::RMSprop:
            if (!p.s0 || (o.momentum > 0 && !p.s1) || (o.centered && !p.s2))
                throw py::value_error("Net: RMSprop slots missing");
            break;
        case OptKind::Nadam:
        case OptKind::Adamax:
        case OptKind::Adadelta:
            if (!(p.s0 && p.s1)) throw py::value_error("Net: this optimizer needs two slots");
            break;
        case OptKind::Adagrad:
            if (!p.s0) throw py::value_error("Net: Adagrad needs an accumulator");
            break;
        default: throw py::value_error("Net: unknown optimizer kind");
    }
}

// The kinds: the one table of each, for Python and C++.
// BatchNormalization [+ ReLU] + MaxPool2D fused (csrc/batchnorm_pool.h): the Net's kernels,
// exposed so tests can hold them to the unfused sequence bit for bit.
// ValueError unless the writable array a (na floats) shares no byte with b (nb floats).
void require_apart(const char* fn, const void* a, int64_t na, const char* an, const void* b,
                   int64_t nb, const char* bn) {
    if (!a || !b) return;
    const uintptr_t x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
    if (x < y + (uintptr_t)nb * 4 && y < x + (uintptr_t)na * 4)
        throw py::value_error(std::string(fn) + ": " + an + " must not overlap " + bn);
}

// The pool geometry over inp (N,H,W,C); ValueError unless its windows tile the input.
Pool2DParams tiled_pool_params(const py::object& inp, std::pair<int, int> pool,
                               std::pair<int, int> strides, const std::string& padding,
                               const char* fn) {
    const Pool2DParams p = pool_params_of<HostArrays>(inp, pool, strides, padding, fn, "inp");
    if (!pool_windows_tile(p))
        throw py::value_error(std::string(fn) +
                              ": the pool's windows must tile its input (strides == pool_size, "
                              "no leading padding)");
    return p;
}

void bind_batchnorm_pool(py::module_& m) {
    using A = HostArrays;
    m.def(
        "batchnorm_maxpool_forward",
        [](py::object out, py::object argmax, py::object xwin, py::object mean, py::object rstd,
           py::object moving_mean, py::object moving_var, py::object inp, py::object gamma,
           py::object beta, double eps, double momentum, bool training, bool relu,
           std::pair<int, int> pool, std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "batchnorm_maxpool_forward";
            const Pool2DParams p = tiled_pool_params(inp, pool, strides, padding, fn);
            const std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* po = A::ptr<float>(out, fn, "out", true, os);
            int32_t* pa = A::opt_ptr<int32_t>(argmax, fn, "argmax", true, os);
            float* pw = A::opt_ptr<float>(xwin, fn, "xwin", true, os);
            if (!pa != !pw)
                throw py::value_error(std::string(fn) + ": argmax and xwin go together");
            float* pm = A::ptr<float>(mean, fn, "mean", true, {p.C});
            float* pr = A::ptr<float>(rstd, fn, "rstd", true, {p.C});
            float* pmm = A::ptr<float>(moving_mean, fn, "moving_mean", true, {p.C});
            float* pmv = A::ptr<float>(moving_var, fn, "moving_var", true, {p.C});
            const float* pi = A::ptr<float>(inp, fn, "inp", false);
            const float* pg = A::opt_ptr<float>(gamma, fn, "gamma", false, {p.C});
            const float* pb = A::opt_ptr<float>(beta, fn, "beta", false, {p.C});
            if (!(eps > 0.0)) throw py::value_error(std::string(fn) + ": eps must be > 0");
            const int64_t ni = (int64_t)p.N * p.H * p.W * p.C,
                          no = (int64_t)p.N * p.OH * p.OW * p.C;
            require_apart(fn, po, no, "out", pi, ni, "inp");
            require_apart(fn, pw, no, "xwin", pi, ni, "inp");
            require_apart(fn, pw, no, "xwin", po, no, "out");
            py::gil_scoped_release nogil;
            batchnorm_maxpool_forward(po, pa, pw, pm, pr, pmm, pmv, pi, pg, pb, eps, momentum,
                                      training, relu, p);
        },
        py::arg("out"), py::arg("argmax"), py::arg("xwin"), py::arg("mean"), py::arg("rstd"),
        py::arg("moving_mean"), py::arg("moving_var"), py::arg("inp"), py::arg("gamma"),
        py::arg("beta"), py::arg("eps"), py::arg("momentum"), py::arg("training"), py::arg("relu"),
        py::arg("pool_size"), py::arg("strides"), py::arg("padding"),
        "batchnorm_forward [then a ReLU] then maxpool2d_forward in one pass, the normalised "
        "values never stored; xwin gets inp at each argmax (csrc/batchnorm_pool.h).");
    m.def(
        "batchnorm_maxpool_backward",
        [](py::object dinp, py::object dgamma, py::object dbeta, py::object dout, py::object argmax,
           py::object xwin, py::object pooled, py::object inp, py::object mean, py::object rstd,
           py::object gamma, bool training, bool relu_mask, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "batchnorm_maxpool_backward";
            const Pool2DParams p = tiled_pool_params(inp, pool, strides, padding, fn);
            const std::vector<int64_t> is = {p.N, p.H, p.W, p.C}, os = {p.N, p.OH, p.OW, p.C};
            float* pdi = A::opt_ptr<float>(dinp, fn, "dinp", true, is);
            float* pdg = A::opt_ptr<float>(dgamma, fn, "dgamma", true, {p.C});
            float* pdb = A::opt_ptr<float>(dbeta, fn, "dbeta", true, {p.C});
            const float* pdo = A::ptr<float>(dout, fn, "dout", false, os);
            const int32_t* pa = A::ptr<int32_t>(argmax, fn, "argmax", false, os);
            const float* pw = A::ptr<float>(xwin, fn, "xwin", false, os);
            const float* pp = A::opt_ptr<float>(pooled, fn, "pooled", false, os);
            const float* pi = A::ptr<float>(inp, fn, "inp", false);
            const float* pm = A::ptr<float>(mean, fn, "mean", false, {p.C});
            const float* pr = A::ptr<float>(rstd, fn, "rstd", false, {p.C});
            const float* pg = A::opt_ptr<float>(gamma, fn, "gamma", false, {p.C});
            A::check_argmax(pa, p, fn);
            const int64_t ni = (int64_t)p.N * p.H * p.W * p.C,
                          no = (int64_t)p.N * p.OH * p.OW * p.C;
            require_apart(fn, pdi, ni, "dinp", pdo, no, "dout");
            require_apart(fn, pdi, ni, "dinp", pi, ni, "inp");
            require_apart(fn, pdi, ni, "dinp", pw, no, "xwin");
            require_apart(fn, pdi, ni, "dinp", pp, no, "pooled");
            py::gil_scoped_release nogil;
            batchnorm_maxpool_backward(pdi, pdg, pdb, pdo, pa, pw, pp, pi, pm, pr, pg, p, training,
                                       relu_mask);
        },
        py::arg("dinp"), py::arg("dgamma"), py::arg("dbeta"), py::arg("dout"), py::arg("argmax"),
        py::arg("xwin"), py::arg("pooled"), py::arg("inp"), py::arg("mean"), py::arg("rstd"),
        py::arg("gamma"), py::arg("training"), py::arg("relu_mask"), py::arg("pool_size"),
        py::arg("strides"), py::arg("padding"),
        "maxpool2d_backward then batchnorm_backward in one pass over dinp, from the pooled "
        "gradient, argmax and xwin of batchnorm_maxpool_forward (csrc/batchnorm_pool.h).");
}

void bind_kinds(py::module_& m) {
    // Activation's member names are the strings Keras users type; Python derives its
    // name -> kind maps from Activation.__members__ (cnnfast/backend.py).
    py::enum_<Activation>(m, "Activation", "Activation kinds (csrc/activations.h).")
        .value("linear", Activation::Linear)
        .value("relu", Activation::ReLU)
        .value("sigmoid", Activation::Sigmoid)
        .value("tanh", Activation::Tanh)
        .value("softmax", Activation::Softmax)
        .value("elu", Activation::ELU)
        .value("selu", Activation::SELU)
        .value("gelu", Activation::GELU)
        .value("silu", Activation::SiLU)
        .value("softplus", Activation::Softplus)
        .value("softsign", Activation::Softsign)
        .value("leaky_relu", Activation::LeakyReLU)
        .value("relu6", Activation::ReLU6)
        .value("hard_sigmoid", Activation::HardSigmoid)
        .value("log_softmax", Activation::LogSoftmax);
    py::enum_<OpKind>(m, "OpKind", "Kinds of the Net's ops (csrc/net.h).")
        .value("conv2d", OpKind::Conv2D)
        .value("max_pool2d", OpKind::MaxPool2D)
        .value("avg_pool2d", OpKind::AvgPool2D)
        .value("dense", OpKind::Dense)
        .value("flatten", OpKind::Flatten)
        .value("dropout", OpKind::Dropout)
        .value("activation", OpKind::Activation)
        .value("batch_norm", OpKind::BatchNorm)
        .value("augment", OpKind::Augment)
        .value("global_avg_pool2d", OpKind::GlobalAvgPool2D)
        .value("global_max_pool2d", OpKind::GlobalMaxPool2D)
        .value("rescale", OpKind::Rescale)
        .value("reshape", OpKind::Reshape)
        .value("zero_pad2d", OpKind::ZeroPad2D)
        // ---- issue #11
        .value("relu", OpKind::Relu)
        .value("elu", OpKind::Elu)
        .value("prelu", OpKind::PRelu)
        .value("spatial_dropout2d", OpKind::SpatialDropout2D)
        // depthwise/separable/dilated (netconv)
        .value("depthwise_conv2d", OpKind::DepthwiseConv2D)
        .value("separable_conv2d", OpKind::SeparableConv2D)
        .value("conv2d_dilated", OpKind::Conv2DDilated);
    py::enum_<LossKind>(m, "LossKind", "The Net's cross-entropy variants (csrc/net.h).")
        .value("sparse_logits", LossKind::SparseLogits)
        .value("dense_logits", LossKind::DenseLogits)
        .value("sparse_probs", LossKind::SparseProbs)
        .value("dense_probs", LossKind::DenseProbs);
    py::enum_<OptKind>(m, "OptKind", "The Net's optimizers (csrc/net.h).")
        .value("adam", OptKind::Adam)
        .value("sgd", OptKind::SGD)
        .value("rmsprop", OptKind::RMSprop)
        .value("nadam", OptKind::Nadam)
        .value("adamax", OptKind::Adamax)
        .value("adagrad", OptKind::Adagrad)
        .value("adadelta", OptKind::Adadelta);
    py::enum_<ClipKind>(m, "ClipKind", "Gradient clipping (csrc/optim.h clip_gradients).")
        .value("none", ClipKind::None)
        .value("value", ClipKind::Value)
        .value("norm", ClipKind::Norm)
        .value("global_norm", ClipKind::GlobalNorm);
}

// Build and runtime information.
void bind_info(py::module_& m) {
    m.def("build_info", []() {
        py::dict d;
#if defined(__clang__)
        d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
        d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
        d["compiler"] = std::string("msvc ") + std::to_string(_MSC_VER);
#else
        d["compiler"] = std::string("unknown");
#endif
        d["openmp"] = has_openmp();
        d["isa"] = std::string(isa_name(active_isa()));
        d["supported_isas"] = std::string(supported_isas());
        d["num_threads"] = num_threads();
        d["cuda"] = false;
        return d;
    });
    m.def("num_threads", &num_threads);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("gemm_isa", [] { return std::string(isa_name(active_isa())); });
    m.def("set_gemm_isa", [](const std::string& s) { set_isa(s.c_str()); }, py::arg("name"));
    // docs/winograd.md: which algorithm the 3x3 stride-1 convolutions use.
    m.def(
        "set_conv_algorithm",
        [](const std::string& s) {
            if (s == "auto")
                set_conv_algorithm(ConvAlgorithm::Auto);
            else if (s == "direct")
                set_conv_algorithm(ConvAlgorithm::Direct);
            else if (s == "winograd")
                set_conv_algorithm(ConvAlgorithm::Winograd);
            else
                throw py::value_error("set_conv_algorithm: unknown algorithm '" + s +
                                      "'; expected 'auto', 'direct' or 'winograd'");
        },
        py::arg("name"));
    m.def("conv_algorithm", [] {
        switch (conv_algorithm()) {
            case ConvAlgorithm::Direct: return std::string("direct");
            case ConvAlgorithm::Winograd: return std::string("winograd");
            default: return std::string("auto");
        }
    });
    m.def(
        "conv_uses_winograd",
        [](int N, int H, int W, int C, int KH, int KW, int OC, int SH, int SW,
           const std::string& padding, const std::string& direction, bool input_grad) {
            const Conv2DParams p = make_conv2d_params(
                N, H, W, C, KH, KW, OC, SH, SW, padding == "same" ? Padding::Same : Padding::Valid);
            if (direction == "forward") return use_winograd(p);
            if (direction == "input_grad") return use_winograd_backward(p);
            if (direction == "weight_grad") return use_winograd_weight(p, input_grad);
            throw py::value_error("conv_uses_winograd: unknown direction '" + direction +
                                  "'; expected 'forward', 'input_grad' or 'weight_grad'");
        },
        py::arg("N"), py::arg("H"), py::arg("W"), py::arg("C"), py::arg("KH"), py::arg("KW"),
        py::arg("OC"), py::arg("SH"), py::arg("SW"), py::arg("padding"),
        py::arg("direction") = "forward", py::arg("input_grad") = true,
        "Whether a conv of this shape runs Winograd under the current setting, for the forward "
        "pass, the input gradient or the weight gradient (input_grad: whether the backward pass "
        "also computes the input gradient).");
}

// Output shapes, padding and workspace sizes of the conv and pooling kernels.
void bind_geometry(py::module_& m) {
    m.def(
        "conv2d_geometry",
        [](std::vector<int64_t> in_shape, std::vector<int64_t> kernel_shape,
           std::pair<int, int> strides, const std::string& padding) {
            Conv2DParams p =
                bind::conv_params(in_shape, kernel_shape, strides, padding, "conv2d_geometry");
            py::dict d;
            d["out_shape"] = py::make_tuple(p.N, p.OH, p.OW, p.OC);
            d["pad"] = py::make_tuple(p.PT, p.PL);
            d["workspace"] = conv2d_workspace_size(p);
            return d;
        },
        py::arg("in_shape"), py::arg("kernel_shape"), py::arg("strides"), py::arg("padding"));
    m.def(
        "pool2d_geometry",
        [](std::vector<int64_t> in_shape, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            Pool2DParams p = bind::pool_params(in_shape, pool, strides, padding, "pool2d_geometry");
            py::dict d;
            d["out_shape"] = py::make_tuple(p.N, p.OH, p.OW, p.C);
            d["pad"] = py::make_tuple(p.PT, p.PL);
            return d;
        },
        py::arg("in_shape"), py::arg("pool_size"), py::arg("strides"), py::arg("padding"));
}

// Op: one op of a Net. Op and OptSpec are built by typed factories (one per op / optimizer),
// which check every array; the Net checks the weights' sizes against the geometry it derives
// from in_shape.
void bind_net_ops_more(py::class_<PyOp>& ops);

void bind_net_ops(py::module_& m) {
    py::class_<PyOp> ops(m, "Op", "One op of a Net; build it with the static factories.");
    ops.def_property_readonly("kind", [](const PyOp& o) { return o.spec.kind; })
        .def_static(
            "conv2d",
            [](py::object weight, py::object bias, py::object dweight, py::object dbias,
               std::pair<int, int> kernel, std::pair<int, int> strides, const std::string& padding,
               Activation act) {
                const char* fn = "Op.conv2d";
                PyOp op;
                op.spec.kind = OpKind::Conv2D;
                op.spec.act = check_activation(act, fn);
                auto ws = set_weights(op, weight, bias, dweight, dbias, 4, fn);
                set_window(op.spec, kernel, strides, padding, fn, "kernel");
                if (ws[0] != kernel.first || ws[1] != kernel.second)
                    throw py::value_error("Op.conv2d: weight has shape " + shape_str(ws) +
                                          " but kernel is (" + std::to_string(kernel.first) + ", " +
                                          std::to_string(kernel.second) + ")");
                return op;
            },
            py::arg("weight"), py::arg("bias"), py::arg("dweight"), py::arg("dbias"),
            py::arg("kernel"), py::arg("strides"), py::arg("padding"), py::arg("act"),
            "Conv2D: weight/dweight (KH,KW,C,OC), bias/dbias (OC,) or None, fused act.")
        .def_static(
            "pool",
            [](OpKind kind, std::pair<int, int> pool_size, std::pair<int, int> strides,
               const std::string& padding) {
                const char* fn = "Op.pool";
                if (kind != OpKind::MaxPool2D && kind != OpKind::AvgPool2D)
                    throw py::value_error(
                        "Op.pool: kind must be OpKind.max_pool2d or OpKind.avg_pool2d");
                PyOp op;
                op.spec.kind = kind;
                set_window(op.spec, pool_size, strides, padding, fn, "pool_size");
                return op;
            },
            py::arg("kind"), py::arg("pool_size"), py::arg("strides"), py::arg("padding"))
        .def_static(
            "dense",
            [](py::object weight, py::object bias, py::object dweight, py::object dbias,
               Activation act) {
                const char* fn = "Op.dense";
                PyOp op;
                op.spec.kind = OpKind::Dense;
                op.spec.act = check_activation(act, fn);
                set_weights(op, weight, bias, dweight, dbias, 2, fn);
                return op;
            },
            py::arg("weight"), py::arg("bias"), py::arg("dweight"), py::arg("dbias"),
            py::arg("act"), "Dense: weight/dweight (IN,OUT), bias/dbias (OUT,) or None.")
        .def_static("flatten",
                    []() {
                        PyOp op;
                        op.spec.kind = OpKind::Flatten;
                        return op;
                    })
        .def_static(
            "dropout",
            [](double rate) {
                if (!(rate >= 0.0 && rate < 1.0))
                    throw py::value_error("Op.dropout: rate must be in [0, 1), got " +
                                          std::to_string(rate));
                PyOp op;
                op.spec.kind = OpKind::Dropout;
                op.spec.rate = rate;
                return op;
            },
            py::arg("rate"))
        .def_static(
            "activation",
            [](Activation act) {
                PyOp op;
                op.spec.kind = OpKind::Activation;
                op.spec.act = check_activation(act, "Op.activation");
                return op;
            },
            py::arg("act"))
        .def_static(
            "global_pool",
            [](OpKind kind, bool keepdims) {
                if (kind != OpKind::GlobalAvgPool2D && kind != OpKind::GlobalMaxPool2D)
                    throw py::value_error(
                        "Op.global_pool: kind must be OpKind.global_avg_pool2d or "
                        "OpKind.global_max_pool2d");
                PyOp op;
                op.spec.kind = kind;
                op.spec.keepdims = keepdims;
                return op;
            },
            py::arg("kind"), py::arg("keepdims"),
            "Global pooling over H and W: (H,W,C) -> (C) or, keepdims, (1,1,C).")
        .def_static(
            "rescale",
            [](float scale, float offset) {
                PyOp op;
                op.spec.kind = OpKind::Rescale;
                op.spec.scale = scale;
                op.spec.offset = offset;
                return op;
            },
            py::arg("scale"), py::arg("offset"), "Rescaling: x * scale + offset.")
        .def_static(
            "reshape",
            [](std::vector<int> shape) {
                for (int d : shape)
                    if (d <= 0)
                        throw py::value_error("Op.reshape: sizes must be positive, got " +
                                              std::to_string(d));
                if (shape.empty()) throw py::value_error("Op.reshape: empty shape");
                PyOp op;
                op.spec.kind = OpKind::Reshape;
                op.spec.target = std::move(shape);
                return op;
            },
            py::arg("shape"), "Reshape to the per-sample shape (a view of its input).")
        .def_static(
            "zero_pad2d",
            [](bind::Pads2D p) {
                if (p.first.first < 0 || p.first.second < 0 || p.second.first < 0 ||
                    p.second.second < 0)
                    throw py::value_error("Op.zero_pad2d: padding must be >= 0");
                PyOp op;
                op.spec.kind = OpKind::ZeroPad2D;
                const int pads[4] = {p.first.first, p.first.second, p.second.first,
                                     p.second.second};
                std::copy(pads, pads + 4, op.spec.pads);
                return op;
            },
            py::arg("padding"), "ZeroPadding2D with padding ((top, bottom), (left, right)).")
        .def_static(
            "batch_norm",
            [](py::object gamma, py::object beta, py::object dgamma, py::object dbeta,
               py::object moving_mean, py::object moving_var, double eps, double momentum,
               bool training) {
                const char* fn = "Op.batch_norm";
                PyOp op;
                OpSpec& o = op.spec;
                o.kind = OpKind::BatchNorm;
                py::array mm = as_array(moving_mean, fn, "moving_mean");
                require_ndim(mm, 1, fn, "moving_mean");
                const int64_t C = mm.shape(0);
                o.units = as_int(C, fn, "C");
                o.moving_mean = data_of<float>(moving_mean, fn, "moving_mean", true, {C});
                o.moving_var = data_of<float>(moving_var, fn, "moving_var", true, {C});
                op.keep = {moving_mean, moving_var};
                if (gamma.is_none() != dgamma.is_none() || beta.is_none() != dbeta.is_none())
                    throw py::value_error(
                        "Op.batch_norm: gamma/dgamma and beta/dbeta must both be arrays or None");
                if (!gamma.is_none()) {
                    o.weight = data_of<float>(gamma, fn, "gamma", true, {C});
                    o.dweight = data_of<float>(dgamma, fn, "dgamma", true, {C});
                    o.weight_n = C;
                    op.keep.insert(op.keep.end(), {gamma, dgamma});
                }
                if (!beta.is_none()) {
                    o.bias = data_of<float>(beta, fn, "beta", true, {C});
                    o.dbias = data_of<float>(dbeta, fn, "dbeta", true, {C});
                    o.bias_n = C;
                    op.keep.insert(op.keep.end(), {beta, dbeta});
                }
                if (!(eps > 0.0)) throw py::value_error("Op.batch_norm: eps must be > 0");
                o.eps = eps;
                o.momentum = momentum;
                o.bn_training = training;
                return op;
            },
            py::arg("gamma"), py::arg("beta"), py::arg("dgamma"), py::arg("dbeta"),
            py::arg("moving_mean"), py::arg("moving_var"), py::arg("eps"), py::arg("momentum"),
            py::arg("training"),
            "BatchNorm over the last axis: gamma/dgamma, beta/dbeta (C,) or None; the moving "
            "statistics (C,) are updated in place by train steps when training (False: frozen, "
            "normalises with the moving statistics).");
    bind_net_ops_more(ops);
}

// depthwise/separable/dilated (netconv): the Op factories of DepthwiseConv2D, SeparableConv2D
// and Conv2D with dilation_rate > 1, added to the Op class bind_net_ops made.
void set_dilated_window(OpSpec& o, const py::object& weight, std::pair<int, int> kernel,
                        std::pair<int, int> strides, const std::string& padding,
                        std::pair<int, int> dilation, const char* fn) {
    set_window(o, kernel, strides, padding, fn, "kernel");
    pair_of(dilation, fn, "dilation");
    o.dh = dilation.first, o.dw = dilation.second;
    const std::vector<int64_t> ws = shape_of(as_array(weight, fn, "weight"));
    if (ws[0] != kernel.first || ws[1] != kernel.second)
        throw py::value_error(std::string(fn) + ": weight has shape " + shape_str(ws) +
                              " but kernel is (" + std::to_string(kernel.first) + ", " +
                              std::to_string(kernel.second) + ")");
}

// The bias (n,) and its gradient, or both None.
void set_bias(PyOp& op, const py::object& bias, const py::object& dbias, int64_t n,
              const char* fn) {
    if (bias.is_none() != dbias.is_none())
        throw py::value_error(std::string(fn) + ": bias and dbias must both be arrays or None");
    if (bias.is_none()) return;
    op.spec.bias = data_of<float>(bias, fn, "bias", true, {n});
    op.spec.dbias = data_of<float>(dbias, fn, "dbias", true, {n});
    op.spec.bias_n = n;
    op.keep.insert(op.keep.end(), {bias, dbias});
}

void bind_netconv_ops(py::module_& m) {
    auto op_cls = py::reinterpret_borrow<py::class_<PyOp>>(m.attr("Op"));
    op_cls
        .def_static(
            "conv2d_dilated",
            [](py::object weight, py::object bias, py::object dweight, py::object dbias,
               std::pair<int, int> kernel, std::pair<int, int> strides, const std::string& padding,
               std::pair<int, int> dilation, Activation act) {
                const char* fn = "Op.conv2d_dilated";
                PyOp op;
                op.spec.kind = OpKind::Conv2DDilated;
                op.spec.act = check_activation(act, fn);
                set_weights(op, weight, bias, dweight, dbias, 4, fn);
                set_dilated_window(op.spec, weight, kernel, strides, padding, dilation, fn);
                return op;
            },
            py::arg("weight"), py::arg("bias"), py::arg("dweight"), py::arg("dbias"),
            py::arg("kernel"), py::arg("strides"), py::arg("padding"), py::arg("dilation"),
            py::arg("act"),
            "Conv2D with dilation_rate (DH, DW): weight/dweight (KH,KW,C,OC), bias/dbias (OC,) "
            "or None, fused act.")
        .def_static(
            "depthwise_conv2d",
            [](py::object weight, py::object bias, py::object dweight, py::object dbias,
               std::pair<int, int> kernel, std::pair<int, int> strides, const std::string& padding,
               std::pair<int, int> dilation, Activation act) {
                const char* fn = "Op.depthwise_conv2d";
                PyOp op;
                OpSpec& o = op.spec;
                o.kind = OpKind::DepthwiseConv2D;
                o.act = check_activation(act, fn);
                py::array W = as_array(weight, fn, "weight");
                require_ndim(W, 4, fn, "weight");
                const std::vector<int64_t> ws = shape_of(W);
                o.weight = data_of<float>(weight, fn, "weight", true);
                o.dweight = data_of<float>(dweight, fn, "dweight", true, ws);
                o.weight_n = W.size();
                o.dm = o.units = as_int(ws[3], fn, "depth_multiplier");
                op.keep = {weight, dweight};
                set_bias(op, bias, dbias, ws[2] * ws[3], fn);
                set_dilated_window(o, weight, kernel, strides, padding, dilation, fn);
                return op;
            },
            py::arg("weight"), py::arg("bias"), py::arg("dweight"), py::arg("dbias"),
            py::arg("kernel"), py::arg("strides"), py::arg("padding"), py::arg("dilation"),
            py::arg("act"),
            "DepthwiseConv2D: weight/dweight (KH,KW,C,DM), bias/dbias (C*DM,) or None, fused "
            "act.")
        .def_static(
            "separable_conv2d",
            [](py::object weight, py::object pointwise, py::object bias, py::object dweight,
               py::object dpointwise, py::object dbias, std::pair<int, int> kernel,
               std::pair<int, int> strides, const std::string& padding,
               std::pair<int, int> dilation, Activation act) {
                const char* fn = "Op.separable_conv2d";
                PyOp op;
                OpSpec& o = op.spec;
                o.kind = OpKind::SeparableConv2D;
                o.act = check_activation(act, fn);
                py::array W = as_array(weight, fn, "weight");
                require_ndim(W, 4, fn, "weight");
                const std::vector<int64_t> ws = shape_of(W);
                py::array P = as_array(pointwise, fn, "pointwise");
                require_ndim(P, 4, fn, "pointwise");
                const std::vector<int64_t> ps = shape_of(P);
                if (ps[0] != 1 || ps[1] != 1 || ps[2] != ws[2] * ws[3])
                    throw py::value_error(std::string(fn) + ": pointwise has shape " +
                                          shape_str(ps) + ", expected (1, 1, " +
                                          std::to_string(ws[2] * ws[3]) + ", filters) for weight " +
                                          shape_str(ws));
                o.weight = data_of<float>(weight, fn, "weight", true);
                o.dweight = data_of<float>(dweight, fn, "dweight", true, ws);
                o.weight_n = W.size();
                o.weight2 = data_of<float>(pointwise, fn, "pointwise", true);
                o.dweight2 = data_of<float>(dpointwise, fn, "dpointwise", true, ps);
                o.weight2_n = P.size();
                o.dm = as_int(ws[3], fn, "depth_multiplier");
                o.units = as_int(ps[3], fn, "filters");
                op.keep = {weight, dweight, pointwise, dpointwise};
                set_bias(op, bias, dbias, ps[3], fn);
                set_dilated_window(o, weight, kernel, strides, padding, dilation, fn);
                return op;
            },
            py::arg("weight"), py::arg("pointwise"), py::arg("bias"), py::arg("dweight"),
            py::arg("dpointwise"), py::arg("dbias"), py::arg("kernel"), py::arg("strides"),
            py::arg("padding"), py::arg("dilation"), py::arg("act"),
            "SeparableConv2D: depthwise weight/dweight (KH,KW,C,DM), pointwise/dpointwise "
            "(1,1,C*DM,F), bias/dbias (F,) or None, fused act.");
}

// OptSpec: the Net's optimizer, one typed factory per optimizer.
void bind_opt_spec(py::module_& m) {
    py::class_<OptSpec>(m, "OptSpec", "The Net's optimizer; build it with the static factories.")
        .def_property_readonly("kind", [](const OptSpec& o) { return o.kind; })
        .def_static(
            "adam",
            [](double beta1, double beta2, double eps, bool amsgrad) {
                OptSpec o;
                o.kind = OptKind::Adam;
                o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.amsgrad = amsgrad;
                return o;
            },
            py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("amsgrad"))
        .def_static(
            "sgd",
            [](double momentum, bool nesterov) {
                OptSpec o;
                o.kind = OptKind::SGD;
                o.momentum = momentum, o.nesterov = nesterov;
                return o;
            },
            py::arg("momentum"), py::arg("nesterov"))
        .def_static(
            "rmsprop",
            [](double rho, double momentum, double eps, bool centered) {
                OptSpec o;
                o.kind = OptKind::RMSprop;
                o.rho = rho, o.momentum = momentum, o.eps = eps, o.centered = centered;
                return o;
            },
            py::arg("rho"), py::arg("momentum"), py::arg("eps"), py::arg("centered"))
        .def_static(
            "nadam",
            [](double beta1, double beta2, double eps) {
                OptSpec o;
                o.kind = OptKind::Nadam;
                o.beta1 = beta1, o.beta2 = beta2, o.eps = eps;
                return o;
            },
            py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
            "Needs set_optimizer(..., state=u_product), a float32 array of one element.")
        .def_static(
            "adamax",
            [](double beta1, double beta2, double eps) {
                OptSpec o;
                o.kind = OptKind::Adamax;
                o.beta1 = beta1, o.beta2 = beta2, o.eps = eps;
                return o;
            },
            py::arg("beta1"), py::arg("beta2"), py::arg("eps"))
        .def_static(
            "adagrad",
            [](double eps) {
                OptSpec o;
                o.kind = OptKind::Adagrad;
                o.eps = eps;
                return o;
            },
            py::arg("eps"))
        .def_static(
            "adadelta",
            [](double rho, double eps) {
                OptSpec o;
                o.kind = OptKind::Adadelta;
                o.rho = rho, o.eps = eps;
                return o;
            },
            py::arg("rho"), py::arg("eps"))
        .def(
            "with_clip",
            [](OptSpec o, ClipKind kind, double value) {
                if (kind != ClipKind::None && !(value > 0.0))
                    throw py::value_error("OptSpec.with_clip: value must be > 0");
                o.clip = kind, o.clip_value = value;
                return o;
            },
            py::arg("kind"), py::arg("value"), "A copy that clips the gradients first.")
        .def(
            "with_weight_decay",
            [](OptSpec o, double weight_decay) {
                o.has_weight_decay = true, o.weight_decay = weight_decay;
                return o;
            },
            py::arg("weight_decay"), "A copy that decays the weights before the update.")
        .def_property_readonly("clip", [](const OptSpec& o) { return o.clip; })
        .def_property_readonly("clip_value", [](const OptSpec& o) { return o.clip_value; })
        .def_property_readonly("weight_decay", [](const OptSpec& o) -> py::object {
            if (!o.has_weight_decay) return py::none();
            return py::float_(o.weight_decay);
        });
}

// The Net: the whole training step of a chain model in one call.
void bind_net(py::module_& m) {
    m.def("layer_seed", &layer_seed, py::arg("seed"), py::arg("i"),
          "The random stream of the op at position i of the model's plan in the step with "
          "`seed` (csrc/net.h); both engines use it.");
    // dropout_forward with the stream position of element 0 (csrc/activations.h): a shard of
    // a global batch draws that batch's mask for its rows (cnnfast.distributed). CPU only.
    m.def(
        "dropout_forward_at",
        [](py::object out, py::object mask, py::object inp, double rate, uint64_t seed,
           int64_t first) {
            const char* fn = "dropout_forward_at";
            const auto s = HostArrays::shape(inp, fn, "inp");
            check_rate(rate, fn);
            if (first < 0)
                throw py::value_error("dropout_forward_at: first must be >= 0, got " +
                                      std::to_string(first));
            float* po = HostArrays::ptr<float>(out, fn, "out", true, s);
            uint8_t* pm = HostArrays::ptr<uint8_t>(mask, fn, "mask", true, s);
            const float* pi = HostArrays::ptr<float>(inp, fn, "inp", false);
            const int64_t n = HostArrays::size(inp, fn, "inp");
            py::gil_scoped_release nogil;
            cnnfast::dropout_forward(po, pm, pi, n, rate, seed, first);
        },
        py::arg("out"), py::arg("mask"), py::arg("inp"), py::arg("rate"), py::arg("seed"),
        py::arg("first"));
    py::class_<PyNet>(m, "Net")
        .def(py::init([](const std::vector<PyOp>& ops, std::vector<int> in_shape, int max_batch,
                         LossKind loss, int num_classes, bool fused) {
                 if (!is_valid(loss)) throw py::value_error("Net: bad loss kind");
                 auto h = std::make_unique<PyNet>();
                 std::vector<OpSpec> specs;
                 for (const PyOp& op : ops) {
                     if (!is_valid(op.spec.kind)) throw py::value_error("Net: unknown op kind");
                     specs.push_back(op.spec);
                     h->keep.insert(h->keep.end(), op.keep.begin(), op.keep.end());
                 }
                 h->sparse = is_sparse(loss);
                 h->net = std::make_unique<Net>(std::move(specs), in_shape, max_batch, loss,
                                                num_classes, fused);
                 return h;
             }),
             py::arg("ops"), py::arg("in_shape"), py::arg("max_batch"), py::arg("loss"),
             py::arg("num_classes"), py::arg("fused"))
        .def(
            "set_optimizer",
            [](PyNet& h, OptSpec o, py::list params, py::object state) {
                const char* fn = "Net.set_optimizer";
                if (o.kind == OptKind::Nadam) {
                    o.u_product = data_of<float>(state, fn, "state", true, {1});
                } else if (!state.is_none()) {
                    throw py::value_error("Net.set_optimizer: only Nadam takes a state array");
                }
                std::vector<ParamSlot> ps;
                std::vector<py::object> keep;
                for (py::handle item : params) {
                    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
                    if (t.size() != 5 && t.size() != 7)
                        throw py::value_error("Net: a param is (w, g, s0, s1, s2[, l1, l2])");
                    py::array W = as_array(t[0], fn, "w");
                    auto s = shape_of(W);
                    ParamSlot p{data_of<float>(t[0], fn, "w", true),
                                data_of<float>(t[1], fn, "g", true, s),
                                optional_data_of<float>(t[2], fn, "slot0", true, s),
                                optional_data_of<float>(t[3], fn, "slot1", true, s),
                                optional_data_of<float>(t[4], fn, "slot2", true, s),
                                W.size()};
                    if (t.size() == 7) {
                        p.l1 = t[5].cast<double>(), p.l2 = t[6].cast<double>();
                        if (!(p.l1 >= 0.0 && p.l2 >= 0.0))
                            throw py::value_error("Net.set_optimizer: l1 and l2 must be >= 0");
                    }
                    check_slots(o, p);
                    for (int i = 0; i < 5; ++i)
                        if (!t[i].is_none()) keep.push_back(t[i]);
                    ps.push_back(p);
                }
                if (!state.is_none()) keep.push_back(state);
                h.keep.insert(h.keep.end(), keep.begin(), keep.end());
                h.opt = o;
                h.params = std::move(ps);
            },
            py::arg("spec"), py::arg("params"), py::arg("state") = py::none(),
            "spec: an OptSpec; params: (w, g, s0, s1, s2) tuples (slots: see net.h ParamSlot); "
            "state: Nadam's u_product (float32, shape (1,)), None for the other kinds.")
        .def(
            "set_profiling", [](PyNet& h, bool on) { h.net->set_profiling(on); }, py::arg("on"),
            "Record per-op wall times in train_step from now on (resets them); False stops.")
        .def(
            "profile",
            [](PyNet& h) {
                const Net::Profile& p = h.net->profile();
                py::dict d;
                d["fwd_ms"] = p.fwd_ms;
                d["bwd_ms"] = p.bwd_ms;
                d["gather_ms"] = p.gather_ms;
                d["loss_ms"] = p.loss_ms;
                d["update_ms"] = p.update_ms;
                d["steps"] = p.steps;
                return d;
            },
            "Summed ms per op (fwd_ms, bwd_ms lists) and per phase since set_profiling(True).")
        .def(
            "train_step",
            [](PyNet& h, py::object x, py::object y, py::object idx, uint64_t seed, float lr,
               int64_t step, py::object sw, int64_t sample_offset, bool update) {
                const char* fn = "Net.train_step";
                py::array X = as_array(x, fn, "x"), I = as_array(idx, fn, "idx");
                const int64_t in_n = h.net->in_size();
                if (X.ndim() < 1 || (X.shape(0) && X.size() / X.shape(0) != in_n))
                    throw py::value_error("Net.train_step: x rows must have " +
                                          std::to_string(in_n) + " values, got shape " +
                                          shape_str(X));
                const int64_t N = X.shape(0);
                const float* px = data_of<float>(x, fn, "x", false);
                const void* py_ = h.sparse ? (const void*)data_of<int32_t>(y, fn, "y", false, {N})
                                           : (const void*)data_of<float>(y, fn, "y", false,
                                                                         {N, h.net->out_size()});
                const int64_t* pi = data_of<int64_t>(idx, fn, "idx", false, {-1});
                const int B = as_int(I.size(), fn, "batch");
                for (int b = 0; b < B; ++b)
                    if (pi[b] < 0 || pi[b] >= N)
                        throw py::value_error("Net.train_step: index out of range");
                if (step < 1) throw py::value_error("Net.train_step: step must be >= 1");
                const float* psw = optional_data_of<float>(sw, fn, "sw", false, {N});
                if (sample_offset < 0)
                    throw py::value_error("Net.train_step: sample_offset must be >= 0, got " +
                                          std::to_string(sample_offset));
                StepResult r;
                {
                    py::gil_scoped_release nogil;
                    r = h.net->train_step(px, py_, pi, B, seed, h.opt, h.params, lr, step, psw,
                                          sample_offset, update);
                }
                h.penalty = r.penalty;
                h.activity = r.activity;
                return py::make_tuple(r.loss, r.correct);
            },
            py::arg("x"), py::arg("y"), py::arg("idx"), py::arg("seed"), py::arg("lr"),
            py::arg("step"), py::arg("sw") = py::none(), py::arg("sample_offset") = 0,
            py::arg("update") = true,
            "sw: the dataset's sample weights or None; sample_offset: these rows' position in a "
            "larger global batch (Dropout masks); update=False: stop after backward, gradients "
            "in the g arrays (apply_update next).")
        .def(
            "apply_update",
            [](PyNet& h, float lr, int64_t step) {
                if (step < 1) throw py::value_error("Net.apply_update: step must be >= 1");
                py::gil_scoped_release nogil;
                h.net->apply_update(h.opt, h.params, lr, step);
            },
            py::arg("lr"), py::arg("step"),
            "The optimizer part of a step (clip, weight decay, update) on the g arrays.")
        .def(
            "evaluate",
            [](PyNet& h, py::object x, py::object y, py::object sw) {
                const char* fn = "Net.evaluate";
                py::array X = as_array(x, fn, "x");
                const int64_t N = X.ndim() ? X.shape(0) : 0;
                if (N < 1 || X.size() != N * h.net->in_size())
                    throw py::value_error("Net.evaluate: x has shape " + shape_str(X) +
                                          "; expected (N >= 1, " +
                                          std::to_string(h.net->in_size()) + " values per row)");
                const int n = as_int(N, fn, "batch");
                const float* px = data_of<float>(x, fn, "x", false);
                const void* py_ = h.sparse ? (const void*)data_of<int32_t>(y, fn, "y", false, {n})
                                           : (const void*)data_of<float>(y, fn, "y", false,
                                                                         {n, h.net->out_size()});
                const float* psw = optional_data_of<float>(sw, fn, "sw", false, {n});
                StepResult r;
                {
                    py::gil_scoped_release nogil;
                    r = h.net->evaluate(px, py_, N, psw);
                }
                h.activity = r.activity;
                return py::make_tuple(r.loss, r.correct);
            },
            py::arg("x"), py::arg("y"), py::arg("sw") = py::none(),
            "Loss and correct count over x's rows (any count; max_batch rows per pass); sw: "
            "the rows' sample weights or None.")
        .def(
            "predict",
            [](PyNet& h, py::object x, py::object out) {
                const char* fn = "Net.predict";
                py::array X = as_array(x, fn, "x");
                const int64_t N = X.ndim() ? X.shape(0) : 0;
                if (N < 1 || X.size() != N * h.net->in_size())
                    throw py::value_error("Net.predict: x has shape " + shape_str(X) +
                                          "; expected (N >= 1, " +
                                          std::to_string(h.net->in_size()) + " values per row)");
                as_int(N, fn, "batch");
                const float* px = data_of<float>(x, fn, "x", false);
                float* po = data_of<float>(out, fn, "out", true);
                if (as_array(out, fn, "out").size() != N * h.net->out_size())
                    throw py::value_error("Net.predict: out has shape " +
                                          shape_str(as_array(out, fn, "out")) + "; expected (" +
                                          std::to_string(N) + ", " +
                                          std::to_string(h.net->out_size()) + ")");
                py::gil_scoped_release nogil;
                h.net->predict_rows(px, po, N);
            },
            py::arg("x"), py::arg("out"),
            "Outputs of x's rows (any count; max_batch rows per pass) into out.")
        .def_property_readonly("max_batch", [](const PyNet& h) { return h.net->max_batch(); })
        .def_property_readonly("fused_ops", [](const PyNet& h) { return h.net->fused_ops(); })
        .def_property_readonly("fused_batchnorm_ops",
                               [](const PyNet& h) { return h.net->fused_batchnorm_ops(); })
        .def_property_readonly(
            "penalty", [](const PyNet& h) { return h.penalty; },
            "The weight regularizers' penalty (float32) of the last train_step, 0 without any.")
        .def_property_readonly(
            "activity", [](const PyNet& h) { return h.activity; },
            "The activity regularizers' penalty (float32) of the last train_step or evaluate, "
            "0 without any.")
        .def_property_readonly(
            "activities", [](const PyNet& h) { return h.net->activities(); },
            "Each op's activity penalty (float32) of the last forward (train_step, evaluate, "
            "predict), 0 for an op without an activity regularizer.");
}

// ---- issue #11: the ops of the activation layers with arguments and SpatialDropout2D, and
// an op's activity regularizer
void bind_net_ops_more(py::class_<PyOp>& ops) {
    ops.def_static(
           "relu",
           [](const ReluSpec& spec) {
               PyOp op;
               op.spec.kind = OpKind::Relu;
               op.spec.relu = spec;
               return op;
           },
           py::arg("spec"), "ReLU(max_value, negative_slope, threshold) / LeakyReLU.")
        .def_static(
            "elu",
            [](float alpha) {
                PyOp op;
                op.spec.kind = OpKind::Elu;
                op.spec.alpha = alpha;
                return op;
            },
            py::arg("alpha"), "ELU(alpha).")
        .def_static(
            "prelu",
            [](py::object alpha, py::object dalpha, py::object alpha_index) {
                const char* fn = "Op.prelu";
                PyOp op;
                OpSpec& o = op.spec;
                o.kind = OpKind::PRelu;
                py::array A = as_array(alpha, fn, "alpha");
                o.weight = data_of<float>(alpha, fn, "alpha", true);
                o.dweight = data_of<float>(dalpha, fn, "dalpha", true, shape_of(A));
                o.weight_n = A.size();
                py::array X = as_array(alpha_index, fn, "alpha_index");
                require_ndim(X, 1, fn, "alpha_index");
                const int32_t* px = data_of<int32_t>(alpha_index, fn, "alpha_index", false);
                o.aidx.assign(px, px + X.size());
                op.keep = {alpha, dalpha};
                return op;
            },
            py::arg("alpha"), py::arg("dalpha"), py::arg("alpha_index"),
            "PReLU: alpha/dalpha (any shape, A elements); alpha_index int32 (S,): each element "
            "of a sample -> its alpha element (the Net checks S against its input).")
        .def_static(
            "spatial_dropout2d",
            [](double rate) {
                if (!(rate >= 0.0 && rate < 1.0))
                    throw py::value_error("Op.spatial_dropout2d: rate must be in [0, 1), got " +
                                          std::to_string(rate));
                PyOp op;
                op.spec.kind = OpKind::SpatialDropout2D;
                op.spec.rate = rate;
                return op;
            },
            py::arg("rate"), "SpatialDropout2D: whole (sample, channel) maps, (H,W,C) input.")
        .def(
            "with_activity",
            [](const PyOp& o, double l1, double l2) {
                if (!(l1 >= 0.0 && l2 >= 0.0))
                    throw py::value_error("Op.with_activity: l1 and l2 must be >= 0");
                PyOp op = o;
                op.spec.act_l1 = l1, op.spec.act_l2 = l2;
                return op;
            },
            py::arg("l1"), py::arg("l2"),
            "This op with an activity regularizer (l1, l2) on its output: the penalty in the "
            "step's activity, its gradient into backward.");
}

// Keras's regularizers and sample weights (csrc/optim.h weight_penalty, csrc/losses.h
// weighted_loss_mean), shared by both engines.
void bind_weighting(py::module_& m) {
    m.def(
        "weight_penalty",
        [](py::object dx, py::object x, double l1, double l2, float scale) {
            const char* fn = "weight_penalty";
            if (!(l1 >= 0.0 && l2 >= 0.0))
                throw py::value_error("weight_penalty: l1 and l2 must be >= 0");
            py::array X = as_array(x, fn, "x");
            const float* px = data_of<float>(x, fn, "x", false);
            float* pd = optional_data_of<float>(dx, fn, "dx", true, shape_of(X));
            const int64_t n = X.size();
            py::gil_scoped_release nogil;
            return weight_penalty(pd, px, n, l1, l2, scale);
        },
        py::arg("dx"), py::arg("x"), py::arg("l1"), py::arg("l2"), py::arg("scale"),
        "l1 * sum|x| + l2 * sum(x*x) (float32); dx (x's shape, or None) += its gradient * scale.");
    m.def(
        "weighted_loss_mean",
        [](py::object dpred, py::object loss, py::object w) {
            const char* fn = "weighted_loss_mean";
            py::array L = as_array(loss, fn, "loss");
            require_ndim(L, 1, fn, "loss");
            const int64_t B = L.shape(0);
            const float* pl = data_of<float>(loss, fn, "loss", false, {B});
            const float* pw = data_of<float>(w, fn, "w", false, {B});
            int64_t K = 0;
            float* pd = nullptr;
            if (!dpred.is_none()) {
                py::array D = as_array(dpred, fn, "dpred");
                if (D.ndim() < 1 || D.shape(0) != B)
                    throw py::value_error("weighted_loss_mean: dpred must have " +
                                          std::to_string(B) + " rows, got shape " + shape_str(D));
                K = B ? D.size() / B : 0;
                pd = data_of<float>(dpred, fn, "dpred", true, shape_of(D));
            }
            if (B == 0) throw py::value_error("weighted_loss_mean: empty batch");
            py::gil_scoped_release nogil;
            return weighted_loss_mean(pd, pl, pw, (int)B, K);
        },
        py::arg("dpred"), py::arg("loss"), py::arg("w"),
        "sum(loss * w) / B (float32, row order); dpred's rows (or None) are scaled by w in place.");
}

// ---- augmentation (csrc/augment.h): the kinds, AugmentSpec, its kernels and Op.augment ----
const char* const kFillModes[] = {"reflect", "wrap", "constant", "nearest"};
const char* const kInterpolations[] = {"bilinear", "nearest"};

template <class E, size_t N>
E parse_name(const std::string& v, const char* const (&names)[N], const char* fn,
             const char* what) {
    for (size_t i = 0; i < N; ++i)
        if (v == names[i]) return (E)i;
    throw py::value_error(std::string(fn) + ": unknown " + what + " '" + v + "'");
}

// image_io's out shape for augmentation `s`: (B, crop_h, crop_w, C) for RandomCrop, else inp's.
auto augment_out_shape(const AugmentSpec& s) {
    return [&s](const std::vector<int64_t>& sh) {
        int oh, ow;
        augment_out_hw(s, (int)sh[1], (int)sh[2], &oh, &ow);
        return std::vector<int64_t>{sh[0], oh, ow, sh[3]};
    };
}

// image_io's out shape for a resize: out's own rows and columns, inp's B and C.
auto resized_shape(const py::object& out, const char* fn) {
    return [&out, fn](const std::vector<int64_t>& sh) {
        const std::vector<int64_t> so = image_shape<HostArrays>(out, fn, "out");
        return std::vector<int64_t>{sh[0], so[1], so[2], sh[3]};
    };
}

void bind_augment(py::module_& m) {
    py::enum_<AugmentKind>(m, "AugmentKind", "Augmentation kinds (csrc/augment.h).")
        .value("flip", AugmentKind::Flip)
        .value("rotation", AugmentKind::Rotation)
        .value("zoom", AugmentKind::Zoom)
        .value("translation", AugmentKind::Translation)
        .value("contrast", AugmentKind::Contrast)
        .value("crop", AugmentKind::Crop);
    py::class_<AugmentSpec>(m, "AugmentSpec", "One augmentation layer; build with the factories.")
        .def_property_readonly("kind", [](const AugmentSpec& s) { return s.kind; })
        .def_static(
            "flip",
            [](bool h, bool v) {
                AugmentSpec s;
                s.kind = AugmentKind::Flip, s.flip_h = h, s.flip_v = v;
                return s;
            },
            py::arg("horizontal"), py::arg("vertical"))
        .def_static(
            "resample",
            [](AugmentKind kind, double lo0, double hi0, bool has_width, double lo1, double hi1,
               const std::string& fill, const std::string& interp, float fill_value) {
                const char* fn = "AugmentSpec.resample";
                if (kind != AugmentKind::Rotation && kind != AugmentKind::Zoom &&
                    kind != AugmentKind::Translation)
                    throw py::value_error("AugmentSpec.resample: not a resampling kind");
                if (!(lo0 <= hi0 && lo1 <= hi1))
                    throw py::value_error("AugmentSpec.resample: lower > upper");
                AugmentSpec s;
                s.kind = kind, s.lo0 = lo0, s.hi0 = hi0, s.has_width = has_width;
                s.lo1 = lo1, s.hi1 = hi1, s.fill_value = fill_value;
                s.fill = parse_name<FillMode>(fill, kFillModes, fn, "fill_mode");
                s.interp = parse_name<Interpolation>(interp, kInterpolations, fn, "interpolation");
                return s;
            },
            py::arg("kind"), py::arg("lo0"), py::arg("hi0"), py::arg("has_width"), py::arg("lo1"),
            py::arg("hi1"), py::arg("fill_mode"), py::arg("interpolation"), py::arg("fill_value"),
            "Rotation: angle in [lo0, hi0) * 360 degrees; Zoom: height zoom in [1+lo0, 1+hi0), "
            "width zoom in [1+lo1, 1+hi1) when has_width (else the height zoom); Translation: "
            "row shift in [lo0, hi0) * H, column shift in [lo1, hi1) * W.")
        .def_static(
            "contrast",
            [](double lower, double upper, float vmin, float vmax) {
                AugmentSpec s;
                s.kind = AugmentKind::Contrast, s.lo0 = lower, s.hi0 = upper;
                s.vmin = vmin, s.vmax = vmax;
                return s;
            },
            py::arg("lower"), py::arg("upper"), py::arg("vmin"), py::arg("vmax"),
            "Contrast factor uniform in [1 - lower, 1 + upper), output clipped to [vmin, vmax].")
        .def_static(
            "crop",
            [](int h, int w) {
                if (h <= 0 || w <= 0)
                    throw py::value_error("AugmentSpec.crop: height and width must be positive");
                AugmentSpec s;
                s.kind = AugmentKind::Crop, s.crop_h = h, s.crop_w = w;
                return s;
            },
            py::arg("height"), py::arg("width"), "RandomCrop to (height, width).");
    m.def(
        "augment_params",
        [](py::object params, py::object transforms, const AugmentSpec& s, int H, int W,
           uint64_t seed) {
            const char* fn = "augment_params";
            py::array p = as_array(params, fn, "params");
            require_ndim(p, 2, fn, "params");
            const int64_t B = p.shape(0);
            float* pp = data_of<float>(params, fn, "params", true, {B, augment_num_params(s.kind)});
            float* pt = optional_data_of<float>(transforms, fn, "transforms", true, {B, 8});
            py::gil_scoped_release nogil;
            augment_params(pp, pt, s, (int)B, H, W, seed);
        },
        py::arg("params"), py::arg("transforms"), py::arg("spec"), py::arg("H"), py::arg("W"),
        py::arg("seed"), "Each image's drawn parameters (B,P) and transform (B,8) or None.");
    m.def(
        "projective_transform",
        [](py::object out, py::object inp, py::object transforms, const std::string& fill,
           const std::string& interp, float fill_value) {
            const char* fn = "projective_transform";
            const ImageIO io = image_io<HostArrays>(out, inp, fn, same_shape);
            const float* pt = data_of<float>(transforms, fn, "transforms", false, {io.B, 8});
            const FillMode f = parse_name<FillMode>(fill, kFillModes, fn, "fill_mode");
            const Interpolation it =
                parse_name<Interpolation>(interp, kInterpolations, fn, "interpolation");
            py::gil_scoped_release nogil;
            projective_transform(io.out, io.inp, pt, io.B, io.H, io.W, io.C, f, it, fill_value);
        },
        py::arg("out"), py::arg("inp"), py::arg("transforms"), py::arg("fill_mode"),
        py::arg("interpolation"), py::arg("fill_value"),
        "out (B,H,W,C) = inp resampled as tf.raw_ops.ImageProjectiveTransformV3.");
    m.def(
        "augment_forward",
        [](py::object out, py::object inp, const AugmentSpec& s, uint64_t seed, int64_t first) {
            const char* fn = "augment_forward";
            if (first < 0)
                throw py::value_error("augment_forward: first must be >= 0, got " +
                                      std::to_string(first));
            const ImageIO io = image_io<HostArrays>(out, inp, fn, augment_out_shape(s));
            std::vector<float> work(augment_work_size(s, std::max(io.B, 1), io.W, io.C));
            py::gil_scoped_release nogil;
            augment_forward(io.out, io.inp, work.data(), s, io.B, io.H, io.W, io.C, seed, first);
        },
        py::arg("out"), py::arg("inp"), py::arg("spec"), py::arg("seed"), py::arg("first") = 0,
        "The training forward of one augmentation layer with stream seed (out (B,H,W,C); "
        "RandomCrop: (B,h,w,C)); first: the batch position of image 0 (a shard of a larger "
        "batch).");
    m.def(
        "augment_inference",
        [](py::object out, py::object inp, const AugmentSpec& s) {
            const char* fn = "augment_inference";
            const ImageIO io = image_io<HostArrays>(out, inp, fn, augment_out_shape(s));
            py::gil_scoped_release nogil;
            augment_inference(io.out, io.inp, s, io.B, io.H, io.W, io.C);
        },
        py::arg("out"), py::arg("inp"), py::arg("spec"),
        "The inference forward of one augmentation layer (a copy; RandomCrop: its centred "
        "crop, resized).");
    m.def(
        "crop_resize",
        [](py::object out, py::object inp, int h0, int w0) {
            const char* fn = "crop_resize";
            const ImageIO io = image_io<HostArrays>(out, inp, fn, resized_shape(out, fn));
            if (h0 < 0 || h0 >= io.H || w0 < 0 || w0 >= io.W)
                throw py::value_error("crop_resize: the window's start (" + std::to_string(h0) +
                                      ", " + std::to_string(w0) + ") is outside the image " +
                                      shape_str(io.in_shape));
            py::gil_scoped_release nogil;
            crop_resize(io.out, io.inp, io.B, io.H, io.W, io.C, h0, w0, io.OH, io.OW);
        },
        py::arg("out"), py::arg("inp"), py::arg("h0"), py::arg("w0"),
        "out (B,h,w,C) = inp[:, h0:h0+h, w0:w0+w] (clipped), resized bilinearly to (h, w).");
    m.def(
        "resize_bilinear",
        [](py::object out, py::object inp) {
            const char* fn = "resize_bilinear";
            const ImageIO io = image_io<HostArrays>(out, inp, fn, resized_shape(out, fn));
            py::gil_scoped_release nogil;
            resize_bilinear(io.out, io.inp, io.B, io.H, io.W, io.C, io.OH, io.OW);
        },
        py::arg("out"), py::arg("inp"),
        "out (B,h,w,C) = tf.image.resize(inp, (h, w), 'bilinear') (half-pixel centres).");
    m.def(
        "affine_warp",
        [](py::object out, py::object inp, py::object matrices, py::object flags,
           const std::string& fill, int order, double cval) {
            const char* fn = "affine_warp";
            const ImageIO io = image_io<HostArrays>(out, inp, fn, same_shape);
            const std::vector<int64_t>& sh = io.in_shape;
            const double* pm = data_of<double>(matrices, fn, "matrices", false, {sh[0], 6});
            const uint8_t* pf = data_of<uint8_t>(flags, fn, "flags", false, {sh[0]});
            for (int64_t i = 0; i < sh[0]; ++i)
                if (pf[i] > 7)
                    throw py::value_error("affine_warp: flags[" + std::to_string(i) +
                                          "] = " + std::to_string((int)pf[i]) +
                                          " has bits other than 1 (warp), 2 (flip columns) and "
                                          "4 (flip rows); inp " +
                                          shape_str(sh));
            if (order != 0 && order != 1)
                throw py::value_error("affine_warp: order must be 0 or 1, got " +
                                      std::to_string(order));
            const WarpMode md = parse_name<WarpMode>(fill, kFillModes, fn, "fill_mode");
            py::gil_scoped_release nogil;
            affine_warp(io.out, io.inp, pm, pf, io.B, io.H, io.W, io.C, md, order, cval);
        },
        py::arg("out"), py::arg("inp"), py::arg("matrices"), py::arg("flags"), py::arg("fill_mode"),
        py::arg("order"), py::arg("cval"),
        "out (B,H,W,C) = each image through scipy.ndimage.affine_transform (rows, columns) "
        "with matrices (B,6) float64, then flipped per flags (B,) uint8 (1 warp, 2 columns, "
        "4 rows).");
    py::reinterpret_borrow<py::class_<PyOp>>(m.attr("Op"))
        .def_static(
            "augment",
            [](const AugmentSpec& s) {
                PyOp op;
                op.spec.kind = OpKind::Augment;
                op.spec.aug = s;
                return op;
            },
            py::arg("spec"), "An augmentation layer (identity outside train steps).");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "cnnfast native kernels (C++17, OpenMP). Called only from cnnfast.backend.";
    bind::register_error_translator();
    bind_kinds(m);
    bind_info(m);
    bind::bind_gemm<HostArrays>(m, "sgemm", &sgemm);  // GEMM, exposed for tests and benchmarks
    bind::bind_gemm<HostArrays>(m, "sgemm_reference", &sgemm_reference);
    bind_geometry(m);
    bind::bind_kernels<HostArrays>(m);
    bind::bind_optim_more<HostArrays>(m);
    bind::bind_batchnorm<HostArrays>(m);
    bind_batchnorm_pool(m);
    bind::bind_global_pool2d<HostArrays>(m);
    bind::bind_losses<HostArrays>(m);
    bind::bind_rescale<HostArrays>(m);
    bind::bind_zeropad2d<HostArrays>(m);
    bind::bind_activation_layers<HostArrays>(m);
    bind::bind_depthwise<HostArrays>(m);
    bind::bind_conv2d_dilated<HostArrays>(m);
    bind_net_ops(m);
    bind_netconv_ops(m);
    bind_opt_spec(m);
    bind_net(m);
    bind_augment(m);
    bind_weighting(m);
}
