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
#include "bind_checks.h"
#include "common.h"
#include "conv2d.h"
#include "dense.h"
#include "gemm.h"
#include "net.h"
#include "optim.h"
#include "pool2d.h"

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

Conv2DParams conv_params(const py::array& inp, const py::array& weight, std::pair<int, int> st,
                         const std::string& padding, const char* fn) {
    require_ndim(inp, 4, fn, "inp");
    require_ndim(weight, 4, fn, "weight");
    return bind::conv_params(shape_of(inp), shape_of(weight), st, padding, fn);
}

Pool2DParams pool_params(const py::array& inp, std::pair<int, int> pool, std::pair<int, int> st,
                         const std::string& padding, const char* fn) {
    require_ndim(inp, 4, fn, "input");
    return bind::pool_params(shape_of(inp), pool, st, padding, fn);
}

// (rows, cols) view of an array whose last axis is the feature axis.
std::pair<int64_t, int64_t> rows_cols(const py::array& a, const char* fn, const char* name) {
    if (a.ndim() < 1) throw py::value_error(std::string(fn) + ": " + name + " must be >= 1-D");
    int64_t cols = a.shape(a.ndim() - 1);
    int64_t rows = cols ? a.size() / cols : 0;
    return {rows, cols};
}

// One op of a Net (_core.Op) plus the NumPy arrays its spec points into; built by the typed
// factories below, which check the arrays (dtype, contiguity, writability, shapes).
struct PyOp {
    OpSpec spec;
    std::vector<py::object> keep;
};

// cross_entropy's labels: int32 (B,) class indices (sparse) or float32 (B,K) targets (dense).
bool xent_is_sparse(const py::array& y, int B, int K) {
    const char* fn = "cross_entropy";
    const bool sparse = y.dtype().is(py::dtype::of<int32_t>());
    if (!sparse && !y.dtype().is(py::dtype::of<float>()))
        throw py::type_error(std::string(fn) +
                             ": labels must have dtype int32 (class indices, (B,)) or float32 "
                             "(targets, (B, K)), got " +
                             std::string(py::str(y.dtype())));
    const std::vector<int64_t> want = sparse ? std::vector<int64_t>{B} : std::vector<int64_t>{B, K};
    if (shape_of(y) != want)
        throw py::value_error(std::string(fn) + ": labels has shape " + shape_str(y) +
                              ", expected " + shape_str(want) +
                              (sparse ? " (int32 labels are class indices; one-hot targets "
                                        "must be float32)"
                                      : " (float32 labels are targets; class indices must be "
                                        "int32)"));
    return sparse;
}

// A Net plus the NumPy arrays it points into (kept alive as long as the Net).
struct PyNet {
    std::unique_ptr<Net> net;
    std::vector<py::object> keep;
    OptSpec opt;
    std::vector<ParamSlot> params;
    bool sparse = true;
};

bool is_valid(OpKind k) {
    switch (k) {
        case OpKind::Conv2D:
        case OpKind::MaxPool2D:
        case OpKind::AvgPool2D:
        case OpKind::Dense:
        case OpKind::Flatten:
        case OpKind::Dropout:
        case OpKind::Activation: return true;
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
    }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "cnnfast native kernels (C++17, OpenMP). Called only from cnnfast.backend.";

    bind::register_error_translator();

    // ---- kinds: the one table of each, for Python and C++ ----
    // Activation's member names are the strings Keras users type; Python derives its
    // name -> kind maps from Activation.__members__ (cnnfast/backend.py).
    py::enum_<Activation>(m, "Activation", "Activation kinds (csrc/activations.h).")
        .value("linear", Activation::Linear)
        .value("relu", Activation::ReLU)
        .value("sigmoid", Activation::Sigmoid)
        .value("tanh", Activation::Tanh)
        .value("softmax", Activation::Softmax);
    py::enum_<OpKind>(m, "OpKind", "Kinds of the Net's ops (csrc/net.h).")
        .value("conv2d", OpKind::Conv2D)
        .value("max_pool2d", OpKind::MaxPool2D)
        .value("avg_pool2d", OpKind::AvgPool2D)
        .value("dense", OpKind::Dense)
        .value("flatten", OpKind::Flatten)
        .value("dropout", OpKind::Dropout)
        .value("activation", OpKind::Activation);
    py::enum_<LossKind>(m, "LossKind", "The Net's cross-entropy variants (csrc/net.h).")
        .value("sparse_logits", LossKind::SparseLogits)
        .value("dense_logits", LossKind::DenseLogits)
        .value("sparse_probs", LossKind::SparseProbs)
        .value("dense_probs", LossKind::DenseProbs);
    py::enum_<OptKind>(m, "OptKind", "The Net's optimizers (csrc/net.h).")
        .value("adam", OptKind::Adam)
        .value("sgd", OptKind::SGD)
        .value("rmsprop", OptKind::RMSprop);

    // ---- build / runtime information ----
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
        d["isa"] = std::string(gemm_isa());
        d["supported_isas"] = std::string(gemm_supported_isas());
        d["num_threads"] = num_threads();
        d["cuda"] = false;
        return d;
    });
    m.def("num_threads", &num_threads);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("gemm_isa", &gemm_isa);
    m.def("set_gemm_isa", [](const std::string& s) { set_gemm_isa(s.c_str()); }, py::arg("name"));

    // ---- GEMM (exposed for tests and benchmarks) ----
    auto bind_gemm = [&m](const char* name, decltype(&sgemm) fn) {
        m.def(
            name,
            [fn, name](py::object c, py::object a, py::object b, bool trans_a, bool trans_b,
                       float alpha, float beta) {
                py::array A = as_array(a, name, "a"), B = as_array(b, name, "b");
                py::array C = as_array(c, name, "c");
                require_ndim(A, 2, name, "a");
                require_ndim(B, 2, name, "b");
                require_ndim(C, 2, name, "c");
                int M = as_int(trans_a ? A.shape(1) : A.shape(0), name, "M");
                int K = as_int(trans_a ? A.shape(0) : A.shape(1), name, "K");
                int Kb = as_int(trans_b ? B.shape(1) : B.shape(0), name, "K");
                int N = as_int(trans_b ? B.shape(0) : B.shape(1), name, "N");
                if (K != Kb)
                    throw py::value_error(std::string(name) + ": inner dimensions differ: a " +
                                          shape_str(A) + ", b " + shape_str(B));
                float* pc = data_of<float>(c, name, "c", true, {M, N});
                const float* pa = data_of<float>(a, name, "a", false);
                const float* pb = data_of<float>(b, name, "b", false);
                int lda = as_int(A.shape(1), name, "lda"), ldb = as_int(B.shape(1), name, "ldb");
                py::gil_scoped_release nogil;
                fn(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, pc, N);
            },
            py::arg("c"), py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
            py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
            "c (M,N) = alpha * op(a) @ op(b) + beta * c");
    };
    bind_gemm("sgemm", &sgemm);
    bind_gemm("sgemm_reference", &sgemm_reference);

    // ---- Conv2D ----
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
        "conv2d_forward",
        [](py::object out, py::object inp, py::object weight, py::object bias,
           std::pair<int, int> strides, const std::string& padding, py::object workspace) {
            const char* fn = "conv2d_forward";
            py::array I = as_array(inp, fn, "inp"), Wt = as_array(weight, fn, "weight");
            Conv2DParams p = conv_params(I, Wt, strides, padding, fn);
            float* po = data_of<float>(out, fn, "out", true, {p.N, p.OH, p.OW, p.OC});
            const float* pi = data_of<float>(inp, fn, "inp", false);
            const float* pw = data_of<float>(weight, fn, "weight", false);
            const float* pb = optional_data_of<float>(bias, fn, "bias", false, {p.OC});
            size_t need = conv2d_workspace_size(p);
            float* ws = optional_data_of<float>(workspace, fn, "workspace", true);
            if (need && (!ws || (size_t)as_array(workspace, fn, "workspace").size() < need))
                throw py::value_error("conv2d_forward: workspace needs " + std::to_string(need) +
                                      " floats");
            py::gil_scoped_release nogil;
            conv2d_forward(po, pi, pw, pb, p, ws);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"), py::arg("strides"),
        py::arg("padding"), py::arg("workspace"));
    m.def(
        "conv2d_backward",
        [](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
           py::object weight, std::pair<int, int> strides, const std::string& padding,
           py::object workspace) {
            const char* fn = "conv2d_backward";
            py::array I = as_array(inp, fn, "inp"), Wt = as_array(weight, fn, "weight");
            Conv2DParams p = conv_params(I, Wt, strides, padding, fn);
            float* pdi = optional_data_of<float>(dinp, fn, "dinp", true, shape_of(I));
            float* pdw = data_of<float>(dweight, fn, "dweight", true, shape_of(Wt));
            float* pdb = optional_data_of<float>(dbias, fn, "dbias", true, {p.OC});
            const float* pdo = data_of<float>(dout, fn, "dout", false, {p.N, p.OH, p.OW, p.OC});
            const float* pi = data_of<float>(inp, fn, "inp", false);
            const float* pw = data_of<float>(weight, fn, "weight", false);
            size_t need = conv2d_workspace_size(p);
            float* ws = optional_data_of<float>(workspace, fn, "workspace", true);
            if (need && (!ws || (size_t)as_array(workspace, fn, "workspace").size() < need))
                throw py::value_error("conv2d_backward: workspace needs " + std::to_string(need) +
                                      " floats");
            py::gil_scoped_release nogil;
            conv2d_backward(pdi, pdw, pdb, pdo, pi, pw, p, ws);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"), py::arg("strides"), py::arg("padding"), py::arg("workspace"));

    // ---- Pooling ----
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
    m.def(
        "maxpool2d_forward",
        [](py::object out, py::object argmax, py::object inp, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_forward";
            Pool2DParams p = pool_params(as_array(inp, fn, "inp"), pool, strides, padding, fn);
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* po = data_of<float>(out, fn, "out", true, os);
            int32_t* pa = optional_data_of<int32_t>(argmax, fn, "argmax", true, os);
            const float* pi = data_of<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            maxpool2d_forward(po, pa, pi, p);
        },
        py::arg("out"), py::arg("argmax"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "maxpool2d_backward",
        [](py::object dinp, py::object dout, py::object argmax, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_backward";
            Pool2DParams p = pool_params(as_array(dinp, fn, "dinp"), pool, strides, padding, fn);
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* pdi = data_of<float>(dinp, fn, "dinp", true);
            const float* pdo = data_of<float>(dout, fn, "dout", false, os);
            const int32_t* pa = data_of<int32_t>(argmax, fn, "argmax", false, os);
            // The kernel trusts argmax to be what maxpool2d_forward wrote: check that every
            // index is a cell of its own window (clipped to the input) before it runs. Per
            // window row r, v is in it iff v - (r*W + w0) is in [0, w1-w0): no division, and
            // the channel loop vectorises.
            std::vector<uint8_t> in_window(p.C);
            for (int n = 0; n < p.N; ++n)
                for (int oh = 0; oh < p.OH; ++oh)
                    for (int ow = 0; ow < p.OW; ++ow) {
                        const int h0 = std::max(oh * p.SH - p.PT, 0);
                        const int h1 = std::min(oh * p.SH - p.PT + p.PH, p.H);
                        const int w0 = std::max(ow * p.SW - p.PL, 0);
                        const int w1 = std::min(ow * p.SW - p.PL + p.PW, p.W);
                        const int32_t* __restrict a =
                            pa + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C;
                        uint8_t* __restrict ok = in_window.data();
                        const int C = p.C;
                        for (int c = 0; c < C; ++c) ok[c] = 0;
                        for (int r = h0; r < h1; ++r) {
                            const uint32_t base = (uint32_t)(r * p.W + w0);
                            const uint32_t width = (uint32_t)(w1 - w0);
                            for (int c = 0; c < C; ++c)
                                ok[c] |= (uint8_t)((uint32_t)a[c] - base < width);
                        }
                        uint8_t all = 1;
                        for (int c = 0; c < C; ++c) all &= ok[c];
                        if (all) continue;
                        const int c = (int)(std::find(ok, ok + C, 0) - ok);  // first offender
                        throw py::value_error(
                            "maxpool2d_backward: argmax out of range: " + std::to_string(a[c]) +
                            " at (" + std::to_string(n) + ", " + std::to_string(oh) + ", " +
                            std::to_string(ow) + ", " + std::to_string(c) +
                            ") is not a cell of that output's window");
                    }
            py::gil_scoped_release nogil;
            maxpool2d_backward(pdi, pdo, pa, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("argmax"), py::arg("pool_size"),
        py::arg("strides"), py::arg("padding"));
    m.def(
        "avgpool2d_forward",
        [](py::object out, py::object inp, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_forward";
            Pool2DParams p = pool_params(as_array(inp, fn, "inp"), pool, strides, padding, fn);
            float* po = data_of<float>(out, fn, "out", true, {p.N, p.OH, p.OW, p.C});
            const float* pi = data_of<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            avgpool2d_forward(po, pi, p);
        },
        py::arg("out"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "avgpool2d_backward",
        [](py::object dinp, py::object dout, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_backward";
            Pool2DParams p = pool_params(as_array(dinp, fn, "dinp"), pool, strides, padding, fn);
            float* pdi = data_of<float>(dinp, fn, "dinp", true);
            const float* pdo = data_of<float>(dout, fn, "dout", false, {p.N, p.OH, p.OW, p.C});
            py::gil_scoped_release nogil;
            avgpool2d_backward(pdi, pdo, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));

    // ---- Dense ----
    m.def(
        "dense_forward",
        [](py::object out, py::object inp, py::object weight, py::object bias) {
            const char* fn = "dense_forward";
            py::array I = as_array(inp, fn, "inp"), Wt = as_array(weight, fn, "weight");
            require_ndim(I, 2, fn, "inp");
            require_ndim(Wt, 2, fn, "weight");
            if (Wt.shape(0) != I.shape(1))
                throw py::value_error("dense_forward: inp " + shape_str(I) +
                                      " does not match weight " + shape_str(Wt));
            int B = as_int(I.shape(0), fn, "B"), IN = as_int(I.shape(1), fn, "IN"),
                OUT = as_int(Wt.shape(1), fn, "OUT");
            float* po = data_of<float>(out, fn, "out", true, {B, OUT});
            const float* pi = data_of<float>(inp, fn, "inp", false);
            const float* pw = data_of<float>(weight, fn, "weight", false);
            const float* pb = optional_data_of<float>(bias, fn, "bias", false, {OUT});
            py::gil_scoped_release nogil;
            dense_forward(po, pi, pw, pb, B, IN, OUT);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"));
    m.def(
        "dense_backward",
        [](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
           py::object weight) {
            const char* fn = "dense_backward";
            py::array I = as_array(inp, fn, "inp"), Wt = as_array(weight, fn, "weight");
            require_ndim(I, 2, fn, "inp");
            require_ndim(Wt, 2, fn, "weight");
            if (Wt.shape(0) != I.shape(1))
                throw py::value_error("dense_backward: inp " + shape_str(I) +
                                      " does not match weight " + shape_str(Wt));
            int B = as_int(I.shape(0), fn, "B"), IN = as_int(I.shape(1), fn, "IN"),
                OUT = as_int(Wt.shape(1), fn, "OUT");
            float* pdi = optional_data_of<float>(dinp, fn, "dinp", true, {B, IN});
            float* pdw = data_of<float>(dweight, fn, "dweight", true, {IN, OUT});
            float* pdb = optional_data_of<float>(dbias, fn, "dbias", true, {OUT});
            const float* pdo = data_of<float>(dout, fn, "dout", false, {B, OUT});
            const float* pi = data_of<float>(inp, fn, "inp", false);
            const float* pw = data_of<float>(weight, fn, "weight", false);
            py::gil_scoped_release nogil;
            dense_backward(pdi, pdw, pdb, pdo, pi, pw, B, IN, OUT);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"));

    // ---- Activations ----
    m.def(
        "activation_forward",
        [](py::object out, py::object inp, Activation act) {
            const char* fn = "activation_forward";
            py::array I = as_array(inp, fn, "inp");
            auto rc = rows_cols(I, fn, "inp");
            float* po = data_of<float>(out, fn, "out", true, shape_of(I));
            const float* pi = data_of<float>(inp, fn, "inp", false);
            Activation a = check_activation(act, fn);
            py::gil_scoped_release nogil;
            activation_forward(po, pi, rc.first, rc.second, a);
        },
        py::arg("out"), py::arg("inp"), py::arg("activation"));
    m.def(
        "activation_backward",
        [](py::object dinp, py::object dout, py::object out, Activation act) {
            const char* fn = "activation_backward";
            py::array O = as_array(out, fn, "out");
            auto rc = rows_cols(O, fn, "out");
            float* pdi = data_of<float>(dinp, fn, "dinp", true, shape_of(O));
            const float* pdo = data_of<float>(dout, fn, "dout", false, shape_of(O));
            const float* po = data_of<float>(out, fn, "out", false);
            Activation a = check_activation(act, fn);
            py::gil_scoped_release nogil;
            activation_backward(pdi, pdo, po, rc.first, rc.second, a);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("out"), py::arg("activation"));

    // ---- Cross-entropy: one binding; the labels' dtype picks sparse or dense ----
    m.def(
        "cross_entropy",
        [](py::object loss, py::object grad, py::object pred, py::object labels, bool from_logits,
           float eps, float grad_scale) {
            const char* fn = "cross_entropy";
            py::array P = as_array(pred, fn, "pred");
            require_ndim(P, 2, fn, "pred");
            const int B = as_int(P.shape(0), fn, "B"), K = as_int(P.shape(1), fn, "K");
            const bool sparse = xent_is_sparse(as_array(labels, fn, "labels"), B, K);
            float* pl = data_of<float>(loss, fn, "loss", true, {B});
            float* pg = optional_data_of<float>(grad, fn, "grad", true, {B, K});
            const float* pp = data_of<float>(pred, fn, "pred", false);
            const void* py_ = sparse ? (const void*)data_of<int32_t>(labels, fn, "labels", false)
                                     : (const void*)data_of<float>(labels, fn, "labels", false);
            py::gil_scoped_release nogil;
            if (from_logits && sparse)
                softmax_xent_sparse(pl, pg, pp, (const int32_t*)py_, B, K, grad_scale);
            else if (from_logits)
                softmax_xent_dense(pl, pg, pp, (const float*)py_, B, K, grad_scale);
            else if (sparse)
                xent_probs_sparse(pl, pg, pp, (const int32_t*)py_, B, K, eps, grad_scale);
            else
                xent_probs_dense(pl, pg, pp, (const float*)py_, B, K, eps, grad_scale);
            return loss_batch_mean(pl, B);
        },
        py::arg("loss"), py::arg("grad"), py::arg("pred"), py::arg("labels"),
        py::arg("from_logits"), py::arg("eps") = kXentEps, py::arg("grad_scale") = 1.0f,
        "Per-sample cross-entropy of pred (B,K) (logits, or probabilities clipped at eps) into "
        "loss (B,); grad (B,K) = grad_scale * d(loss)/d(pred), or None. labels: int32 (B,) "
        "class indices (sparse) or float32 (B,K) targets (dense). Returns the batch mean, "
        "computed as the Net computes its loss.");

    // ---- Dropout ----
    m.def(
        "dropout_forward",
        [](py::object out, py::object mask, py::object inp, double rate, uint64_t seed) {
            const char* fn = "dropout_forward";
            py::array I = as_array(inp, fn, "inp");
            if (!(rate >= 0.0 && rate < 1.0))
                throw py::value_error("dropout_forward: rate must be in [0, 1), got " +
                                      std::to_string(rate));
            float* po = data_of<float>(out, fn, "out", true, shape_of(I));
            uint8_t* pm = data_of<uint8_t>(mask, fn, "mask", true, shape_of(I));
            const float* pi = data_of<float>(inp, fn, "inp", false);
            int64_t n = I.size();
            py::gil_scoped_release nogil;
            dropout_forward(po, pm, pi, n, rate, seed);
        },
        py::arg("out"), py::arg("mask"), py::arg("inp"), py::arg("rate"), py::arg("seed"));
    m.def(
        "dropout_backward",
        [](py::object dinp, py::object dout, py::object mask, double rate) {
            const char* fn = "dropout_backward";
            py::array D = as_array(dout, fn, "dout");
            if (!(rate >= 0.0 && rate < 1.0))
                throw py::value_error("dropout_backward: rate must be in [0, 1), got " +
                                      std::to_string(rate));
            float* pdi = data_of<float>(dinp, fn, "dinp", true, shape_of(D));
            const float* pdo = data_of<float>(dout, fn, "dout", false);
            const uint8_t* pm = data_of<uint8_t>(mask, fn, "mask", false, shape_of(D));
            int64_t n = D.size();
            py::gil_scoped_release nogil;
            dropout_backward(pdi, pdo, pm, n, rate);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("mask"), py::arg("rate"));

    // ---- Optimizers ----
    m.def(
        "adam_update",
        [](py::object w, py::object mo, py::object v, py::object vhat, py::object g, float lr,
           double beta1, double beta2, double eps, int64_t step) {
            const char* fn = "adam_update";
            py::array Wa = as_array(w, fn, "w");
            auto s = shape_of(Wa);
            float* pw = data_of<float>(w, fn, "w", true);
            float* pm = data_of<float>(mo, fn, "m", true, s);
            float* pv = data_of<float>(v, fn, "v", true, s);
            float* pvh = optional_data_of<float>(vhat, fn, "vhat", true, s);
            const float* pg = data_of<float>(g, fn, "g", false, s);
            if (step < 1) throw py::value_error("adam_update: step must be >= 1");
            int64_t n = Wa.size();
            py::gil_scoped_release nogil;
            adam_update(pw, pm, pv, pvh, pg, n, lr, beta1, beta2, eps, step);
        },
        py::arg("w"), py::arg("m"), py::arg("v"), py::arg("vhat"), py::arg("g"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("step"));
    m.def(
        "sgd_update",
        [](py::object w, py::object vel, py::object g, float lr, double momentum, bool nesterov) {
            const char* fn = "sgd_update";
            py::array Wa = as_array(w, fn, "w");
            auto s = shape_of(Wa);
            float* pw = data_of<float>(w, fn, "w", true);
            float* pv = optional_data_of<float>(vel, fn, "velocity", true, s);
            const float* pg = data_of<float>(g, fn, "g", false, s);
            if (momentum != 0.0 && !pv)
                throw py::value_error("sgd_update: momentum != 0 needs a velocity buffer");
            int64_t n = Wa.size();
            py::gil_scoped_release nogil;
            sgd_update(pw, pv, pg, n, lr, momentum, nesterov);
        },
        py::arg("w"), py::arg("velocity"), py::arg("g"), py::arg("lr"), py::arg("momentum"),
        py::arg("nesterov"));
    m.def(
        "rmsprop_update",
        [](py::object w, py::object v, py::object mom, py::object avg, py::object g, float lr,
           double rho, double momentum, double eps, bool centered) {
            const char* fn = "rmsprop_update";
            py::array Wa = as_array(w, fn, "w");
            auto s = shape_of(Wa);
            float* pw = data_of<float>(w, fn, "w", true);
            float* pv = data_of<float>(v, fn, "v", true, s);
            float* pmo = optional_data_of<float>(mom, fn, "mom", true, s);
            float* pa = optional_data_of<float>(avg, fn, "avg", true, s);
            const float* pg = data_of<float>(g, fn, "g", false, s);
            if (momentum > 0.0 && !pmo)
                throw py::value_error("rmsprop_update: momentum > 0 needs a momentum buffer");
            if (centered && !pa)
                throw py::value_error("rmsprop_update: centered needs an average-gradient buffer");
            int64_t n = Wa.size();
            py::gil_scoped_release nogil;
            rmsprop_update(pw, pv, pmo, pa, pg, n, lr, rho, momentum, eps, centered);
        },
        py::arg("w"), py::arg("v"), py::arg("mom"), py::arg("avg"), py::arg("g"), py::arg("lr"),
        py::arg("rho"), py::arg("momentum"), py::arg("eps"), py::arg("centered"));
    // ---- Net: the whole training step of a chain model in one call ----
    // Op and OptSpec are built by typed factories (one per op / optimizer), which check every
    // array; the Net checks the weights' sizes against the geometry it derives from in_shape.
    py::class_<PyOp>(m, "Op", "One op of a Net; build it with the static factories.")
        .def_property_readonly("kind", [](const PyOp& o) { return o.spec.kind; })
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
            py::arg("act"));
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
            py::arg("rho"), py::arg("momentum"), py::arg("eps"), py::arg("centered"));
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
            [](PyNet& h, const OptSpec& o, py::list params) {
                const char* fn = "Net.set_optimizer";
                std::vector<ParamSlot> ps;
                std::vector<py::object> keep;
                for (py::handle item : params) {
                    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
                    if (t.size() != 5) throw py::value_error("Net: a param is (w, g, s0, s1, s2)");
                    py::array W = as_array(t[0], fn, "w");
                    auto s = shape_of(W);
                    ParamSlot p{data_of<float>(t[0], fn, "w", true),
                                data_of<float>(t[1], fn, "g", true, s),
                                optional_data_of<float>(t[2], fn, "slot0", true, s),
                                optional_data_of<float>(t[3], fn, "slot1", true, s),
                                optional_data_of<float>(t[4], fn, "slot2", true, s),
                                W.size()};
                    check_slots(o, p);
                    for (int i = 0; i < 5; ++i)
                        if (!t[i].is_none()) keep.push_back(t[i]);
                    ps.push_back(p);
                }
                h.keep.insert(h.keep.end(), keep.begin(), keep.end());
                h.opt = o;
                h.params = std::move(ps);
            },
            py::arg("spec"), py::arg("params"),
            "spec: an OptSpec; params: (w, g, s0, s1, s2) tuples (slots: see net.h ParamSlot).")
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
               int64_t step) {
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
                StepResult r;
                {
                    py::gil_scoped_release nogil;
                    r = h.net->train_step(px, py_, pi, B, seed, h.opt, h.params, lr, step);
                }
                return py::make_tuple(r.loss, r.correct);
            },
            py::arg("x"), py::arg("y"), py::arg("idx"), py::arg("seed"), py::arg("lr"),
            py::arg("step"))
        .def(
            "evaluate",
            [](PyNet& h, py::object x, py::object y) {
                const char* fn = "Net.evaluate";
                py::array X = as_array(x, fn, "x");
                const int B = as_int(X.shape(0), fn, "batch");
                if (X.size() != (int64_t)B * h.net->in_size())
                    throw py::value_error("Net.evaluate: x has shape " + shape_str(X));
                const float* px = data_of<float>(x, fn, "x", false);
                const void* py_ = h.sparse ? (const void*)data_of<int32_t>(y, fn, "y", false, {B})
                                           : (const void*)data_of<float>(y, fn, "y", false,
                                                                         {B, h.net->out_size()});
                StepResult r;
                {
                    py::gil_scoped_release nogil;
                    r = h.net->evaluate(px, py_, B);
                }
                return py::make_tuple(r.loss, r.correct);
            },
            py::arg("x"), py::arg("y"))
        .def(
            "predict",
            [](PyNet& h, py::object x, py::object out) {
                const char* fn = "Net.predict";
                py::array X = as_array(x, fn, "x");
                const int B = as_int(X.shape(0), fn, "batch");
                if (X.size() != (int64_t)B * h.net->in_size())
                    throw py::value_error("Net.predict: x has shape " + shape_str(X));
                const float* px = data_of<float>(x, fn, "x", false);
                float* po = data_of<float>(out, fn, "out", true);
                if (as_array(out, fn, "out").size() != (int64_t)B * h.net->out_size())
                    throw py::value_error("Net.predict: out has the wrong size");
                py::gil_scoped_release nogil;
                h.net->predict(px, B);
                std::memcpy(po, h.net->output(), sizeof(float) * B * h.net->out_size());
            },
            py::arg("x"), py::arg("out"))
        .def_property_readonly("max_batch", [](const PyNet& h) { return h.net->max_batch(); });
}
