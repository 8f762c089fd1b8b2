// bind_kernels.h -- the kernel bindings shared by cnnfast._core (NumPy arrays, CPU kernels) and
// cnnfast._cuda (DeviceArrays, CUDA kernels): one template per op family, instantiated by each
// module with its Arrays policy, so the two modules have the same names, arguments and checks.
//
// An Arrays policy provides (see HostArrays in bindings.cpp, DeviceArrays in bindings_cuda.cpp):
//   shape(obj, fn, name)                      the array's shape; TypeError if obj is not one
//   size(obj, fn, name)                       its element count
//   ptr<T>(obj, fn, name, writable, shape)    checked data pointer: dtype T (TypeError), the
//                                             exact shape when given (-1 = any), plus host-only
//                                             checks (C-contiguous, writable)
//   opt_ptr<T>(...)                           the same, nullptr for None
//   is_dtype<T>(obj), dtype_name(obj)         for labels that pick a kernel by dtype
//   conv2d_workspace_size(p), workspace_hint  the workspace the conv kernels need
//   check_argmax(argmax, p)                   validates maxpool argmax (host; the CUDA kernel
//                                             checks on the device)
//   loss_mean(loss, B)                        loss_batch_mean of the (possibly device) losses
//   K                                         the kernels: a struct of static functions with
//                                             the signatures of csrc/*.h
// Every family validates, releases the GIL and calls the kernel; no math here.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "activations.h"
#include "batchnorm.h"
#include "bind_checks.h"
#include "conv2d.h"
#include "optim.h"
#include "pool2d.h"

namespace cnnfast {
namespace bind {

namespace py = pybind11;

template <class A>
void require_ndim(const py::object& obj, size_t ndim, const char* fn, const char* name) {
    const std::vector<int64_t> s = A::shape(obj, fn, name);
    if (s.size() != ndim)
        throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_str(s));
}

// (rows, cols) view of an array whose last axis is the feature axis.
inline std::pair<int64_t, int64_t> rows_cols(const std::vector<int64_t>& s, const char* fn,
                                             const char* name) {
    if (s.empty()) throw py::value_error(std::string(fn) + ": " + name + " must be >= 1-D");
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    const int64_t cols = s.back();
    return {cols ? n / cols : 0, cols};
}

template <class A>
float* workspace_of(const py::object& ws, size_t need, const char* fn) {
    float* p = A::template opt_ptr<float>(ws, fn, "workspace", true);
    if (need && (!p || (size_t)A::size(ws, fn, "workspace") < need))
        throw py::value_error(std::string(fn) + ": workspace needs " + std::to_string(need) +
                              " floats" + A::workspace_hint);
    return p;
}

// ---- image ops: an NHWC float batch in, another out that must not overlap it ----
// (B, H, W, C) of an image batch array; ValueError naming it unless it is 4-D.
template <class A>
std::vector<int64_t> image_shape(const py::object& obj, const char* fn, const char* name) {
    require_ndim<A>(obj, 4, fn, name);
    return A::shape(obj, fn, name);
}

inline int64_t num_elements(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

// ValueError unless out (shape so) and inp (shape si), both contiguous, share no byte: an op
// that reads a neighbourhood of every output pixel cannot write over its input, and an
// overlap that is not the same pointer (a shifted view) is as wrong as exact aliasing.
inline void require_disjoint(const float* out, const std::vector<int64_t>& so, const float* inp,
                             const std::vector<int64_t>& si, const char* fn) {
    const uintptr_t o = reinterpret_cast<uintptr_t>(out), i = reinterpret_cast<uintptr_t>(inp);
    const uintptr_t no = (uintptr_t)num_elements(so) * sizeof(float);
    const uintptr_t ni = (uintptr_t)num_elements(si) * sizeof(float);
    if (o == i || (no && ni && o < i + ni && i < o + no))
        throw py::value_error(std::string(fn) + ": out " + shape_str(so) + " must not alias inp " +
                              shape_str(si) + " (their memory overlaps)");
}

// The checked arrays of an image op: inp (B,H,W,C) float32, out float32 (B,OH,OW,C) of the shape
// out_shape(inp's shape) gives (a function, which may read out's own shape), out writable and
// apart from inp in memory; the dimensions as the kernels' ints.
struct ImageIO {
    std::vector<int64_t> in_shape, out_shape;
    const float* inp;
    float* out;
    int B, H, W, C, OH, OW;
};

template <class A, class OutShape>
ImageIO image_io(const py::object& out, const py::object& inp, const char* fn, OutShape out_shape) {
    ImageIO io;
    io.in_shape = image_shape<A>(inp, fn, "inp");
    io.inp = A::template ptr<float>(inp, fn, "inp", false);
    io.out_shape = out_shape(io.in_shape);
    io.out = A::template ptr<float>(out, fn, "out", true, io.out_shape);
    require_disjoint(io.out, io.out_shape, io.inp, io.in_shape, fn);
    io.B = as_int(io.in_shape[0], fn, "B"), io.H = as_int(io.in_shape[1], fn, "H");
    io.W = as_int(io.in_shape[2], fn, "W"), io.C = as_int(io.in_shape[3], fn, "C");
    io.OH = as_int(io.out_shape[1], fn, "OH"), io.OW = as_int(io.out_shape[2], fn, "OW");
    return io;
}

// out_shape for image_io: out has inp's shape.
inline std::vector<int64_t> same_shape(const std::vector<int64_t>& s) {
    return s;
}

// ---- GEMM: c (M,N) = alpha * op(a) @ op(b) + beta * c ----
template <class A, class Fn>
void bind_gemm(py::module_& m, const char* name, Fn gemm) {
    m.def(
        name,
        [gemm, name](py::object c, py::object a, py::object b, bool trans_a, bool trans_b,
                     float alpha, float beta) {
            require_ndim<A>(a, 2, name, "a");
            require_ndim<A>(b, 2, name, "b");
            require_ndim<A>(c, 2, name, "c");
            const auto As = A::shape(a, name, "a"), Bs = A::shape(b, name, "b");
            int M = as_int(trans_a ? As[1] : As[0], name, "M");
            int K = as_int(trans_a ? As[0] : As[1], name, "K");
            int Kb = as_int(trans_b ? Bs[1] : Bs[0], name, "K");
            int N = as_int(trans_b ? Bs[0] : Bs[1], name, "N");
            if (K != Kb)
                throw py::value_error(std::string(name) + ": inner dimensions differ: a " +
                                      shape_str(As) + ", b " + shape_str(Bs));
            float* pc = A::template ptr<float>(c, name, "c", true, {M, N});
            const float* pa = A::template ptr<float>(a, name, "a", false);
            const float* pb = A::template ptr<float>(b, name, "b", false);
            int lda = as_int(As[1], name, "lda"), ldb = as_int(Bs[1], name, "ldb");
            py::gil_scoped_release nogil;
            gemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, pc, N);
        },
        py::arg("c"), py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
        "c (M,N) = alpha * op(a) @ op(b) + beta * c");
}

// ---- Conv2D ----
template <class A>
Conv2DParams conv_params_of(const py::object& inp, const py::object& weight, std::pair<int, int> st,
                            const std::string& padding, const char* fn) {
    require_ndim<A>(inp, 4, fn, "inp");
    require_ndim<A>(weight, 4, fn, "weight");
    return conv_params(A::shape(inp, fn, "inp"), A::shape(weight, fn, "weight"), st, padding, fn);
}

template <class A>
void bind_conv2d(py::module_& m) {
    m.def(
        "conv2d_forward",
        [](py::object out, py::object inp, py::object weight, py::object bias,
           std::pair<int, int> strides, const std::string& padding, py::object workspace) {
            const char* fn = "conv2d_forward";
            Conv2DParams p = conv_params_of<A>(inp, weight, strides, padding, fn);
            float* po = A::template ptr<float>(out, fn, "out", true, {p.N, p.OH, p.OW, p.OC});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            const float* pb = A::template opt_ptr<float>(bias, fn, "bias", false, {p.OC});
            float* ws = workspace_of<A>(workspace, A::conv2d_workspace_size(p), fn);
            py::gil_scoped_release nogil;
            A::K::conv2d_forward(po, pi, pw, pb, p, ws);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"), py::arg("strides"),
        py::arg("padding"), py::arg("workspace"));
    m.def(
        "conv2d_backward",
        [](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
           py::object weight, std::pair<int, int> strides, const std::string& padding,
           py::object workspace) {
            const char* fn = "conv2d_backward";
            Conv2DParams p = conv_params_of<A>(inp, weight, strides, padding, fn);
            float* pdi = A::template opt_ptr<float>(dinp, fn, "dinp", true, A::shape(inp, fn, ""));
            float* pdw =
                A::template ptr<float>(dweight, fn, "dweight", true, A::shape(weight, fn, ""));
            float* pdb = A::template opt_ptr<float>(dbias, fn, "dbias", true, {p.OC});
            const float* pdo =
                A::template ptr<float>(dout, fn, "dout", false, {p.N, p.OH, p.OW, p.OC});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            float* ws = workspace_of<A>(workspace, A::conv2d_workspace_size(p), fn);
            py::gil_scoped_release nogil;
            A::K::conv2d_backward(pdi, pdw, pdb, pdo, pi, pw, p, ws);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"), py::arg("strides"), py::arg("padding"), py::arg("workspace"));
}

// ---- Pooling ----
template <class A>
Pool2DParams pool_params_of(const py::object& inp, std::pair<int, int> pool, std::pair<int, int> st,
                            const std::string& padding, const char* fn, const char* name) {
    require_ndim<A>(inp, 4, fn, name);
    return pool_params(A::shape(inp, fn, name), pool, st, padding, fn);
}

template <class A>
void bind_pool2d(py::module_& m) {
    m.def(
        "maxpool2d_forward",
        [](py::object out, py::object argmax, py::object inp, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_forward";
            Pool2DParams p = pool_params_of<A>(inp, pool, strides, padding, fn, "inp");
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* po = A::template ptr<float>(out, fn, "out", true, os);
            int32_t* pa = A::template opt_ptr<int32_t>(argmax, fn, "argmax", true, os);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            A::K::maxpool2d_forward(po, pa, pi, p);
        },
        py::arg("out"), py::arg("argmax"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "maxpool2d_backward",
        [](py::object dinp, py::object dout, py::object argmax, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_backward";
            Pool2DParams p = pool_params_of<A>(dinp, pool, strides, padding, fn, "dinp");
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, os);
            const int32_t* pa = A::template ptr<int32_t>(argmax, fn, "argmax", false, os);
            A::check_argmax(pa, p);
            py::gil_scoped_release nogil;
            A::K::maxpool2d_backward(pdi, pdo, pa, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("argmax"), py::arg("pool_size"),
        py::arg("strides"), py::arg("padding"));
    m.def(
        "avgpool2d_forward",
        [](py::object out, py::object inp, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_forward";
            Pool2DParams p = pool_params_of<A>(inp, pool, strides, padding, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, {p.N, p.OH, p.OW, p.C});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            A::K::avgpool2d_forward(po, pi, p);
        },
        py::arg("out"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "avgpool2d_backward",
        [](py::object dinp, py::object dout, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_backward";
            Pool2DParams p = pool_params_of<A>(dinp, pool, strides, padding, fn, "dinp");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true);
            const float* pdo =
                A::template ptr<float>(dout, fn, "dout", false, {p.N, p.OH, p.OW, p.C});
            py::gil_scoped_release nogil;
            A::K::avgpool2d_backward(pdi, pdo, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
}

// ---- Dense ----
template <class A>
std::tuple<int, int, int> dense_dims(const py::object& inp, const py::object& weight,
                                     const char* fn) {
    require_ndim<A>(inp, 2, fn, "inp");
    require_ndim<A>(weight, 2, fn, "weight");
    const auto I = A::shape(inp, fn, "inp"), Wt = A::shape(weight, fn, "weight");
    if (Wt[0] != I[1])
        throw py::value_error(std::string(fn) + ": inp " + shape_str(I) +
                              " does not match weight " + shape_str(Wt));
    return {as_int(I[0], fn, "B"), as_int(I[1], fn, "IN"), as_int(Wt[1], fn, "OUT")};
}

template <class A>
void bind_dense(py::module_& m) {
    m.def(
        "dense_forward",
        [](py::object out, py::object inp, py::object weight, py::object bias) {
            const char* fn = "dense_forward";
            auto [B, IN, OUT] = dense_dims<A>(inp, weight, fn);
            float* po = A::template ptr<float>(out, fn, "out", true, {B, OUT});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            const float* pb = A::template opt_ptr<float>(bias, fn, "bias", false, {OUT});
            py::gil_scoped_release nogil;
            A::K::dense_forward(po, pi, pw, pb, B, IN, OUT);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"));
    m.def(
        "dense_backward",
        [](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
           py::object weight) {
            const char* fn = "dense_backward";
            auto [B, IN, OUT] = dense_dims<A>(inp, weight, fn);
            float* pdi = A::template opt_ptr<float>(dinp, fn, "dinp", true, {B, IN});
            float* pdw = A::template ptr<float>(dweight, fn, "dweight", true, {IN, OUT});
            float* pdb = A::template opt_ptr<float>(dbias, fn, "dbias", true, {OUT});
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, {B, OUT});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            py::gil_scoped_release nogil;
            A::K::dense_backward(pdi, pdw, pdb, pdo, pi, pw, B, IN, OUT);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"));
}

// ---- Activations ----
template <class A>
void bind_activations(py::module_& m) {
    m.def(
        "activation_forward",
        [](py::object out, py::object inp, Activation act) {
            const char* fn = "activation_forward";
            const auto s = A::shape(inp, fn, "inp");
            auto rc = rows_cols(s, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            Activation a = check_activation(act, fn);
            py::gil_scoped_release nogil;
            A::K::activation_forward(po, pi, rc.first, rc.second, a);
        },
        py::arg("out"), py::arg("inp"), py::arg("activation"));
    m.def(
        "activation_backward",
        [](py::object dinp, py::object dout, py::object out, Activation act, py::object inp) {
            const char* fn = "activation_backward";
            const auto s = A::shape(out, fn, "out");
            auto rc = rows_cols(s, fn, "out");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, s);
            const float* po = A::template ptr<float>(out, fn, "out", false);
            const float* pi = A::template opt_ptr<float>(inp, fn, "inp", false, s);
            Activation a = check_activation(act, fn);
            if (!pi && backward_needs_input(a))
                throw py::value_error(std::string(fn) +
                                      ": this activation's gradient needs inp, the forward input");
            py::gil_scoped_release nogil;
            A::K::activation_backward(pdi, pdo, po, rc.first, rc.second, a, pi);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("out"), py::arg("activation"),
        py::arg("inp") = py::none(),
        "dinp from dout and the forward output out; inp (the forward input) is needed by gelu, "
        "silu, softplus and softsign.");
}

// ---- Cross-entropy: one binding; the labels' dtype picks sparse or dense ----
// labels: int32 (B,) class indices (sparse) or float32 (B,K) targets (dense).
template <class A>
bool xent_is_sparse(const py::object& labels, int B, int K) {
    const char* fn = "cross_entropy";
    const auto s = A::shape(labels, fn, "labels");
    const bool sparse = A::template is_dtype<int32_t>(labels);
    if (!sparse && !A::template is_dtype<float>(labels))
        throw py::type_error(std::string(fn) +
                             ": labels must have dtype int32 (class indices, (B,)) or float32 "
                             "(targets, (B, K)), got " +
                             A::dtype_name(labels));
    const std::vector<int64_t> want = sparse ? std::vector<int64_t>{B} : std::vector<int64_t>{B, K};
    if (s != want)
        throw py::value_error(std::string(fn) + ": labels has shape " + shape_str(s) +
                              ", expected " + shape_str(want) +
                              (sparse ? " (int32 labels are class indices; one-hot targets "
                                        "must be float32)"
                                      : " (float32 labels are targets; class indices must be "
                                        "int32)"));
    return sparse;
}

template <class A>
void bind_xent(py::module_& m) {
    m.def(
        "cross_entropy",
        [](py::object loss, py::object grad, py::object pred, py::object labels, bool from_logits,
           float eps, float grad_scale) {
            const char* fn = "cross_entropy";
            require_ndim<A>(pred, 2, fn, "pred");
            const auto P = A::shape(pred, fn, "pred");
            const int B = as_int(P[0], fn, "B"), K = as_int(P[1], fn, "K");
            const bool sparse = xent_is_sparse<A>(labels, B, K);
            float* pl = A::template ptr<float>(loss, fn, "loss", true, {B});
            float* pg = A::template opt_ptr<float>(grad, fn, "grad", true, {B, K});
            const float* pp = A::template ptr<float>(pred, fn, "pred", false);
            const int32_t* pi =
                sparse ? A::template ptr<int32_t>(labels, fn, "labels", false) : nullptr;
            const float* pt =
                sparse ? nullptr : A::template ptr<float>(labels, fn, "labels", false);
            py::gil_scoped_release nogil;
            if (from_logits && sparse)
                A::K::softmax_xent_sparse(pl, pg, pp, pi, B, K, grad_scale);
            else if (from_logits)
                A::K::softmax_xent_dense(pl, pg, pp, pt, B, K, grad_scale);
            else if (sparse)
                A::K::xent_probs_sparse(pl, pg, pp, pi, B, K, eps, grad_scale);
            else
                A::K::xent_probs_dense(pl, pg, pp, pt, B, K, eps, grad_scale);
            return A::loss_mean(pl, B);
        },
        py::arg("loss"), py::arg("grad"), py::arg("pred"), py::arg("labels"),
        py::arg("from_logits"), py::arg("eps") = kXentEps, py::arg("grad_scale") = 1.0f,
        "Per-sample cross-entropy of pred (B,K) (logits, or probabilities clipped at eps) into "
        "loss (B,); grad (B,K) = grad_scale * d(loss)/d(pred), or None. labels: int32 (B,) "
        "class indices (sparse) or float32 (B,K) targets (dense). Returns the batch mean, "
        "computed as the Net computes its loss (loss_batch_mean).");
}

// ---- Dropout ----
inline void check_rate(double rate, const char* fn) {
    if (!(rate >= 0.0 && rate < 1.0))
        throw py::value_error(std::string(fn) + ": rate must be in [0, 1), got " +
                              std::to_string(rate));
}

template <class A>
void bind_dropout(py::module_& m) {
    m.def(
        "dropout_forward",
        [](py::object out, py::object mask, py::object inp, double rate, uint64_t seed) {
            const char* fn = "dropout_forward";
            const auto s = A::shape(inp, fn, "inp");
            check_rate(rate, fn);
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            uint8_t* pm = A::template ptr<uint8_t>(mask, fn, "mask", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            int64_t n = A::size(inp, fn, "inp");
            py::gil_scoped_release nogil;
            A::K::dropout_forward(po, pm, pi, n, rate, seed);
        },
        py::arg("out"), py::arg("mask"), py::arg("inp"), py::arg("rate"), py::arg("seed"));
    m.def(
        "dropout_backward",
        [](py::object dinp, py::object dout, py::object mask, double rate) {
            const char* fn = "dropout_backward";
            const auto s = A::shape(dout, fn, "dout");
            check_rate(rate, fn);
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false);
            const uint8_t* pm = A::template ptr<uint8_t>(mask, fn, "mask", false, s);
            int64_t n = A::size(dout, fn, "dout");
            py::gil_scoped_release nogil;
            A::K::dropout_backward(pdi, pdo, pm, n, rate);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("mask"), py::arg("rate"));
}

// ---- BatchNormalization over the last axis (bound by _core only: no CUDA kernel yet) ----
template <class A>
void bind_batchnorm(py::module_& m) {
    m.def(
        "batchnorm_forward",
        [](py::object out, py::object mean, py::object rstd, py::object moving_mean,
           py::object moving_var, py::object inp, py::object gamma, py::object beta, double eps,
           double momentum, bool training) {
            const char* fn = "batchnorm_forward";
            const auto s = A::shape(inp, fn, "inp");
            auto [M, C64] = rows_cols(s, fn, "inp");
            const int C = as_int(C64, fn, "C");
            if (M == 0 || C == 0)
                throw py::value_error(std::string(fn) + ": inp has no elements, shape " +
                                      shape_str(s));
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            float* pm = A::template ptr<float>(mean, fn, "mean", true, {C});
            float* pr = A::template ptr<float>(rstd, fn, "rstd", true, {C});
            float* pmm = A::template ptr<float>(moving_mean, fn, "moving_mean", true, {C});
            float* pmv = A::template ptr<float>(moving_var, fn, "moving_var", true, {C});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pg = A::template opt_ptr<float>(gamma, fn, "gamma", false, {C});
            const float* pb = A::template opt_ptr<float>(beta, fn, "beta", false, {C});
            if (!(eps > 0.0)) throw py::value_error(std::string(fn) + ": eps must be > 0");
            py::gil_scoped_release nogil;
            A::K::batchnorm_forward(po, pm, pr, pmm, pmv, pi, pg, pb, M, C, eps, momentum,
                                    training);
        },
        py::arg("out"), py::arg("mean"), py::arg("rstd"), py::arg("moving_mean"),
        py::arg("moving_var"), py::arg("inp"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
        py::arg("momentum"), py::arg("training"),
        "Normalise inp (..., C) over every axis but the last (csrc/batchnorm.h); when "
        "training, also update moving_mean/moving_var in place.");
    m.def(
        "batchnorm_backward",
        [](py::object dinp, py::object dgamma, py::object dbeta, py::object dout, py::object inp,
           py::object mean, py::object rstd, py::object gamma, bool training) {
            const char* fn = "batchnorm_backward";
            const auto s = A::shape(inp, fn, "inp");
            auto [M, C64] = rows_cols(s, fn, "inp");
            const int C = as_int(C64, fn, "C");
            if (M == 0 || C == 0)
                throw py::value_error(std::string(fn) + ": inp has no elements, shape " +
                                      shape_str(s));
            float* pdi = A::template opt_ptr<float>(dinp, fn, "dinp", true, s);
            float* pdg = A::template opt_ptr<float>(dgamma, fn, "dgamma", true, {C});
            float* pdb = A::template opt_ptr<float>(dbeta, fn, "dbeta", true, {C});
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pm = A::template ptr<float>(mean, fn, "mean", false, {C});
            const float* pr = A::template ptr<float>(rstd, fn, "rstd", false, {C});
            const float* pg = A::template opt_ptr<float>(gamma, fn, "gamma", false, {C});
            if (pdi && pdi == pdo)
                throw py::value_error(std::string(fn) + ": dinp must not be dout");
            py::gil_scoped_release nogil;
            A::K::batchnorm_backward(pdi, pdg, pdb, pdo, pi, pm, pr, pg, M, C, training);
        },
        py::arg("dinp"), py::arg("dgamma"), py::arg("dbeta"), py::arg("dout"), py::arg("inp"),
        py::arg("mean"), py::arg("rstd"), py::arg("gamma"), py::arg("training"),
        "Gradients of batchnorm_forward: dinp (..., C), dgamma, dbeta (C,), each or None.");
}

// ---- Global pooling: inp (N,H,W,C), out (N,C) ----
template <class A>
std::tuple<int, int, int> global_pool_dims(const py::object& inp, const char* fn,
                                           const char* name) {
    require_ndim<A>(inp, 4, fn, name);
    const auto s = A::shape(inp, fn, name);
    if (s[0] <= 0 || s[1] <= 0 || s[2] <= 0 || s[3] <= 0)
        throw py::value_error(std::string(fn) + ": " + name + " must have positive sizes, got " +
                              shape_str(s));
    return {as_int(s[0], fn, "N"), as_int(s[1] * s[2], fn, "H*W"), as_int(s[3], fn, "C")};
}

template <class A>
void bind_global_pool2d(py::module_& m) {
    m.def(
        "global_avgpool2d_forward",
        [](py::object out, py::object inp) {
            const char* fn = "global_avgpool2d_forward";
            auto [N, HW, C] = global_pool_dims<A>(inp, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, {N, C});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            A::K::global_avgpool2d_forward(po, pi, N, HW, C);
        },
        py::arg("out"), py::arg("inp"), "out (N,C) = mean of inp (N,H,W,C) over H and W.");
    m.def(
        "global_avgpool2d_backward",
        [](py::object dinp, py::object dout) {
            const char* fn = "global_avgpool2d_backward";
            auto [N, HW, C] = global_pool_dims<A>(dinp, fn, "dinp");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, {N, C});
            py::gil_scoped_release nogil;
            A::K::global_avgpool2d_backward(pdi, pdo, N, HW, C);
        },
        py::arg("dinp"), py::arg("dout"), "dinp (N,H,W,C) = dout (N,C) / (H*W).");
    m.def(
        "global_maxpool2d_forward",
        [](py::object out, py::object inp) {
            const char* fn = "global_maxpool2d_forward";
            auto [N, HW, C] = global_pool_dims<A>(inp, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, {N, C});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            A::K::global_maxpool2d_forward(po, pi, N, HW, C);
        },
        py::arg("out"), py::arg("inp"), "out (N,C) = max of inp (N,H,W,C) over H and W.");
    m.def(
        "global_maxpool2d_backward",
        [](py::object dinp, py::object dout, py::object inp, py::object out) {
            const char* fn = "global_maxpool2d_backward";
            auto [N, HW, C] = global_pool_dims<A>(inp, fn, "inp");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, A::shape(inp, fn, ""));
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, {N, C});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* po = A::template ptr<float>(out, fn, "out", false, {N, C});
            py::gil_scoped_release nogil;
            A::K::global_maxpool2d_backward(pdi, pdo, pi, po, N, HW, C);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("inp"), py::arg("out"),
        "dinp (N,H,W,C): dout split evenly among the cells equal to the max (TF's rule).");
}

// ---- Rescaling: any shape, elementwise ----
template <class A>
void bind_rescale(py::module_& m) {
    m.def(
        "rescale_forward",
        [](py::object out, py::object inp, float scale, float offset) {
            const char* fn = "rescale_forward";
            const auto s = A::shape(inp, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const int64_t n = A::size(inp, fn, "inp");
            py::gil_scoped_release nogil;
            A::K::rescale_forward(po, pi, n, scale, offset);
        },
        py::arg("out"), py::arg("inp"), py::arg("scale"), py::arg("offset"),
        "out = inp * scale + offset (float32 multiply, then add).");
    m.def(
        "rescale_backward",
        [](py::object dinp, py::object dout, float scale) {
            const char* fn = "rescale_backward";
            const auto s = A::shape(dout, fn, "dout");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false);
            const int64_t n = A::size(dout, fn, "dout");
            py::gil_scoped_release nogil;
            A::K::rescale_backward(pdi, pdo, n, scale);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("scale"), "dinp = dout * scale.");
}

// ---- ZeroPadding2D: pads ((top, bottom), (left, right)) ----
using Pads2D = std::pair<std::pair<int, int>, std::pair<int, int>>;

template <class A>
void bind_zeropad2d(py::module_& m) {
    auto dims = [](const py::object& small, const py::object& big, const Pads2D& p, const char* fn,
                   const char* sname, const char* bname) {
        require_ndim<A>(small, 4, fn, sname);
        const auto s = A::shape(small, fn, sname);
        const int t = p.first.first, b = p.first.second, l = p.second.first, r = p.second.second;
        if (t < 0 || b < 0 || l < 0 || r < 0)
            throw py::value_error(std::string(fn) + ": padding must be >= 0");
        A::template ptr<float>(big, fn, bname, false, {s[0], s[1] + t + b, s[2] + l + r, s[3]});
        return std::array<int, 8>{as_int(s[0], fn, "N"),
                                  as_int(s[1], fn, "H"),
                                  as_int(s[2], fn, "W"),
                                  as_int(s[3], fn, "C"),
                                  t,
                                  b,
                                  l,
                                  r};
    };
    m.def(
        "zeropad2d_forward",
        [dims](py::object out, py::object inp, Pads2D pads) {
            const char* fn = "zeropad2d_forward";
            auto d = dims(inp, out, pads, fn, "inp", "out");
            float* po = A::template ptr<float>(out, fn, "out", true);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            A::K::zeropad2d_forward(po, pi, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
        },
        py::arg("out"), py::arg("inp"), py::arg("padding"),
        "out (N,T+H+B,L+W+R,C): zeros around inp (N,H,W,C); padding ((T,B),(L,R)).");
    m.def(
        "zeropad2d_backward",
        [dims](py::object dinp, py::object dout, Pads2D pads) {
            const char* fn = "zeropad2d_backward";
            auto d = dims(dinp, dout, pads, fn, "dinp", "dout");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false);
            py::gil_scoped_release nogil;
            A::K::zeropad2d_backward(pdi, pdo, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("padding"), "dinp: the interior of dout.");
}

// ---- Optimizers (in place) ----
template <class A>
void bind_optim(py::module_& m) {
    m.def(
        "adam_update",
        [](py::object w, py::object mo, py::object v, py::object vhat, py::object g, float lr,
           double beta1, double beta2, double eps, int64_t step) {
            const char* fn = "adam_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pm = A::template ptr<float>(mo, fn, "m", true, s);
            float* pv = A::template ptr<float>(v, fn, "v", true, s);
            float* pvh = A::template opt_ptr<float>(vhat, fn, "vhat", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            if (step < 1) throw py::value_error("adam_update: step must be >= 1");
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::adam_update(pw, pm, pv, pvh, pg, n, lr, beta1, beta2, eps, step);
        },
        py::arg("w"), py::arg("m"), py::arg("v"), py::arg("vhat"), py::arg("g"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("step"));
    m.def(
        "sgd_update",
        [](py::object w, py::object vel, py::object g, float lr, double momentum, bool nesterov) {
            const char* fn = "sgd_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pv = A::template opt_ptr<float>(vel, fn, "velocity", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            if (momentum != 0.0 && !pv)
                throw py::value_error("sgd_update: momentum != 0 needs a velocity buffer");
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::sgd_update(pw, pv, pg, n, lr, momentum, nesterov);
        },
        py::arg("w"), py::arg("velocity"), py::arg("g"), py::arg("lr"), py::arg("momentum"),
        py::arg("nesterov"));
    m.def(
        "rmsprop_update",
        [](py::object w, py::object v, py::object mom, py::object avg, py::object g, float lr,
           double rho, double momentum, double eps, bool centered) {
            const char* fn = "rmsprop_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pv = A::template ptr<float>(v, fn, "v", true, s);
            float* pmo = A::template opt_ptr<float>(mom, fn, "mom", true, s);
            float* pa = A::template opt_ptr<float>(avg, fn, "avg", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            if (momentum > 0.0 && !pmo)
                throw py::value_error("rmsprop_update: momentum > 0 needs a momentum buffer");
            if (centered && !pa)
                throw py::value_error("rmsprop_update: centered needs an average-gradient buffer");
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::rmsprop_update(pw, pv, pmo, pa, pg, n, lr, rho, momentum, eps, centered);
        },
        py::arg("w"), py::arg("v"), py::arg("mom"), py::arg("avg"), py::arg("g"), py::arg("lr"),
        py::arg("rho"), py::arg("momentum"), py::arg("eps"), py::arg("centered"));
}

// Nadam, Adamax, Adagrad, Adadelta, clipping and weight decay (in place). _core binds them;
// _cuda does not have these kernels yet.
template <class A>
void bind_optim_more(py::module_& m) {
    m.def(
        "nadam_update",
        [](py::object w, py::object mo, py::object v, py::object g, float lr, double beta1,
           double beta2, double eps, int64_t step, float u_product) {
            const char* fn = "nadam_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pm = A::template ptr<float>(mo, fn, "m", true, s);
            float* pv = A::template ptr<float>(v, fn, "v", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            if (step < 1) throw py::value_error("nadam_update: step must be >= 1");
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::nadam_update(pw, pm, pv, pg, n, lr, beta1, beta2, eps, step, u_product);
        },
        py::arg("w"), py::arg("m"), py::arg("v"), py::arg("g"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("step"), py::arg("u_product"));
    m.def(
        "nadam_u_product_next",
        [](float u, double beta1, int64_t step) {
            if (step < 1) throw py::value_error("nadam_u_product_next: step must be >= 1");
            return A::K::nadam_u_product_next(u, beta1, step);
        },
        py::arg("u_product"), py::arg("beta1"), py::arg("step"));
    m.def(
        "adamax_update",
        [](py::object w, py::object mo, py::object u, py::object g, float lr, double beta1,
           double beta2, double eps, int64_t step) {
            const char* fn = "adamax_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pm = A::template ptr<float>(mo, fn, "m", true, s);
            float* pu = A::template ptr<float>(u, fn, "u", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            if (step < 1) throw py::value_error("adamax_update: step must be >= 1");
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::adamax_update(pw, pm, pu, pg, n, lr, beta1, beta2, eps, step);
        },
        py::arg("w"), py::arg("m"), py::arg("u"), py::arg("g"), py::arg("lr"), py::arg("beta1"),
        py::arg("beta2"), py::arg("eps"), py::arg("step"));
    m.def(
        "adagrad_update",
        [](py::object w, py::object acc, py::object g, float lr, double eps) {
            const char* fn = "adagrad_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pa = A::template ptr<float>(acc, fn, "acc", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::adagrad_update(pw, pa, pg, n, lr, eps);
        },
        py::arg("w"), py::arg("acc"), py::arg("g"), py::arg("lr"), py::arg("eps"));
    m.def(
        "adadelta_update",
        [](py::object w, py::object ag, py::object ad, py::object g, float lr, double rho,
           double eps) {
            const char* fn = "adadelta_update";
            const auto s = A::shape(w, fn, "w");
            float* pw = A::template ptr<float>(w, fn, "w", true);
            float* pag = A::template ptr<float>(ag, fn, "acc_grad", true, s);
            float* pad = A::template ptr<float>(ad, fn, "acc_delta", true, s);
            const float* pg = A::template ptr<float>(g, fn, "g", false, s);
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::adadelta_update(pw, pag, pad, pg, n, lr, rho, eps);
        },
        py::arg("w"), py::arg("acc_grad"), py::arg("acc_delta"), py::arg("g"), py::arg("lr"),
        py::arg("rho"), py::arg("eps"));
    m.def(
        "weight_decay_update",
        [](py::object w, float lr, double weight_decay) {
            const char* fn = "weight_decay_update";
            float* pw = A::template ptr<float>(w, fn, "w", true);
            int64_t n = A::size(w, fn, "w");
            py::gil_scoped_release nogil;
            A::K::weight_decay_update(pw, n, lr, weight_decay);
        },
        py::arg("w"), py::arg("lr"), py::arg("weight_decay"));
    m.def(
        "clip_gradients",
        [](py::list grads, ClipKind kind, double clip) {
            const char* fn = "clip_gradients";
            if (kind != ClipKind::None && !(clip > 0.0))
                throw py::value_error("clip_gradients: clip must be > 0, got " +
                                      std::to_string(clip));
            std::vector<float*> ps;
            std::vector<int64_t> ns;
            for (py::handle h : grads) {
                py::object g = py::reinterpret_borrow<py::object>(h);
                ps.push_back(A::template ptr<float>(g, fn, "grads[i]", true));
                ns.push_back(A::size(g, fn, "grads[i]"));
            }
            py::gil_scoped_release nogil;
            A::K::clip_gradients(ps.data(), ns.data(), (int)ps.size(), kind, clip);
        },
        py::arg("grads"), py::arg("kind"), py::arg("clip"));
    m.def("f32_pow", &A::K::f32_pow, py::arg("x"), py::arg("y"));
    m.def("f32_cos", &A::K::f32_cos, py::arg("x"));
    m.def("f32_log", &A::K::f32_log, py::arg("x"));
}

// Every kernel family both modules bind (GEMM is bound per module: _core also binds its
// reference GEMM).
template <class A>
void bind_kernels(py::module_& m) {
    bind_conv2d<A>(m);
    bind_pool2d<A>(m);
    bind_dense<A>(m);
    bind_activations<A>(m);
    bind_xent<A>(m);
    bind_dropout<A>(m);
    bind_optim<A>(m);
}

}  // namespace bind
}  // namespace cnnfast
