// activations_layers_bind.h -- bindings of the activation layers' kernels
// (csrc/activations_layers.h: ReluSpec, relu/elu/prelu/softmax_axis) and of SpatialDropout2D's
// (csrc/dropout_spatial.h), for cnnfast._core (host arrays). Validates, releases the GIL and
// calls the kernel; no math here.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "activations_layers.h"
#include "bind_checks.h"
#include "dropout_spatial.h"

namespace cnnfast {
namespace bind {

namespace py = pybind11;

inline void check_same_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                             const char* fn, const char* na, const char* nb) {
    if (a != b)
        throw py::value_error(std::string(fn) + ": " + na + " has shape " + shape_str(a) + " but " +
                              nb + " has shape " + shape_str(b));
}

// An elementwise op's forward fwd_name(out, inp, param) (out the shape of inp) and backward
// bwd_name(dinp, dout, inp, param) (dinp and dout the shape of inp), param of type P.
template <class A, class P, class Forward, class Backward>
void def_elementwise(py::module_& m, const char* fwd_name, const char* bwd_name, Forward forward,
                     Backward backward, const char* param) {
    m.def(
        fwd_name,
        [fwd_name, forward](py::object out, py::object inp, P arg) {
            const char* fn = fwd_name;
            const auto s = A::shape(inp, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const int64_t n = A::size(inp, fn, "inp");
            py::gil_scoped_release nogil;
            forward(po, pi, n, arg);
        },
        py::arg("out"), py::arg("inp"), py::arg(param));
    m.def(
        bwd_name,
        [bwd_name, backward](py::object dinp, py::object dout, py::object inp, P arg) {
            const char* fn = bwd_name;
            const auto s = A::shape(inp, fn, "inp");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const int64_t n = A::size(inp, fn, "inp");
            py::gil_scoped_release nogil;
            backward(pdi, pdo, pi, n, arg);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("inp"), py::arg(param),
        "dinp from dout and the forward input inp.");
}

// softmax over `axis` of an array of shape s: the (outer, axis, inner) sizes (O, K, I);
// `name` names the array whose shape s is.
inline std::array<int64_t, 3> axis_split(const std::vector<int64_t>& s, int axis, const char* fn,
                                         const char* name) {
    const int nd = (int)s.size();
    if (axis < -nd || axis >= nd)
        throw py::value_error(std::string(fn) + ": axis " + std::to_string(axis) +
                              " is out of range for " + name + " of shape " + shape_str(s));
    const int ax = axis < 0 ? axis + nd : axis;
    int64_t O = 1, I = 1;
    for (int i = 0; i < ax; ++i) O *= s[i];
    for (int i = ax + 1; i < nd; ++i) I *= s[i];
    return {O, s[ax], I};
}

// SpatialDropout2D's (B,H,W,C) shape of `name`.
template <class A>
std::vector<int64_t> dropout_image_shape(const py::object& obj, const char* fn, const char* name) {
    const auto s = A::shape(obj, fn, name);
    if (s.size() != 4)
        throw py::value_error(std::string(fn) + ": " + name + " must be 4-D (B,H,W,C), got shape " +
                              shape_str(s));
    return s;
}

template <class A>
void bind_relu_elu(py::module_& m) {
    py::class_<ReluSpec>(m, "ReluSpec",
                         "A ReLU's formula (csrc/activations_layers.h); build with relu_spec or "
                         "leaky_relu_spec.")
        .def_property_readonly("negative_slope", [](const ReluSpec& s) { return s.negative_slope; })
        .def_property_readonly("threshold", [](const ReluSpec& s) { return s.threshold; })
        .def_property_readonly("max_value",
                               [](const ReluSpec& s) -> std::optional<float> {
                                   if (s.clip || s.relu6) return s.max_value;
                                   return std::nullopt;
                               })
        .def_property_readonly("leaky", [](const ReluSpec& s) { return s.leaky; })
        .def_property_readonly("relu6", [](const ReluSpec& s) { return s.relu6; });
    m.def(
        "relu_spec",
        [](double negative_slope, double threshold, std::optional<double> max_value) {
            return make_relu_spec(negative_slope, threshold, max_value.has_value(),
                                  max_value.value_or(0.0));
        },
        py::arg("negative_slope"), py::arg("threshold"), py::arg("max_value") = py::none(),
        "Keras's ReLU(max_value, negative_slope, threshold) formula; ValueError for a negative "
        "argument.");
    m.def(
        "leaky_relu_spec", [](double negative_slope) { return make_leaky_spec(negative_slope); },
        py::arg("negative_slope"), "tf.nn.leaky_relu's formula (keras.layers.LeakyReLU).");
    def_elementwise<A, const ReluSpec&>(m, "relu_forward", "relu_backward", &relu_forward,
                                        &relu_backward, "spec");
    def_elementwise<A, float>(m, "elu_forward", "elu_backward", &elu_forward, &elu_backward,
                              "alpha");
}

// PReLU: inp (B, ...), alpha (A,) flat, aidx int32 (S,) with S = inp.size / B, values in [0, A).
template <class A>
void prelu_dims(const py::object& inp, const py::object& alpha, const py::object& aidx,
                const char* fn, int64_t* B, int64_t* S, int64_t* Na) {
    const auto s = A::shape(inp, fn, "inp");
    if (s.size() < 2)
        throw py::value_error(std::string(fn) + ": inp must be >= 2-D (batch, ...), got shape " +
                              shape_str(s));
    *B = s[0];
    *S = 1;
    for (size_t i = 1; i < s.size(); ++i) *S *= s[i];
    *Na = A::size(alpha, fn, "alpha");
    const auto si = A::shape(aidx, fn, "alpha_index");
    if (si != std::vector<int64_t>{*S})
        throw py::value_error(std::string(fn) + ": alpha_index has shape " + shape_str(si) +
                              ", expected (" + std::to_string(*S) + ",) for inp " + shape_str(s));
    const int32_t* pa = A::template ptr<int32_t>(aidx, fn, "alpha_index", false);
    for (int64_t i = 0; i < *S; ++i)
        if (pa[i] < 0 || pa[i] >= *Na)
            throw py::value_error(std::string(fn) + ": alpha_index[" + std::to_string(i) + "] = " +
                                  std::to_string(pa[i]) + " is outside [0, " + std::to_string(*Na) +
                                  ") for alpha of " + std::to_string(*Na) + " elements");
}

template <class A>
void bind_prelu_softmax(py::module_& m) {
    m.def(
        "prelu_forward",
        [](py::object out, py::object inp, py::object alpha, py::object aidx) {
            const char* fn = "prelu_forward";
            int64_t B, S, Na;
            prelu_dims<A>(inp, alpha, aidx, fn, &B, &S, &Na);
            const auto s = A::shape(inp, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pa = A::template ptr<float>(alpha, fn, "alpha", false);
            const int32_t* px = A::template ptr<int32_t>(aidx, fn, "alpha_index", false);
            py::gil_scoped_release nogil;
            prelu_forward(po, pi, pa, px, B, S);
        },
        py::arg("out"), py::arg("inp"), py::arg("alpha"), py::arg("alpha_index"),
        "out = inp > 0 ? inp : alpha.flat[alpha_index] * inp, per sample.");
    m.def(
        "prelu_backward",
        [](py::object dinp, py::object dalpha, py::object partial, py::object dout, py::object inp,
           py::object alpha, py::object aidx) {
            const char* fn = "prelu_backward";
            int64_t B, S, Na;
            prelu_dims<A>(inp, alpha, aidx, fn, &B, &S, &Na);
            const auto s = A::shape(inp, fn, "inp");
            float* pdi = A::template opt_ptr<float>(dinp, fn, "dinp", true, s);
            check_same_shape(A::shape(dalpha, fn, "dalpha"), A::shape(alpha, fn, "alpha"), fn,
                             "dalpha", "alpha");
            float* pda = A::template ptr<float>(dalpha, fn, "dalpha", true);
            float* pp = A::template ptr<float>(partial, fn, "partial", true, {B, Na});
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pa = A::template ptr<float>(alpha, fn, "alpha", false);
            const int32_t* px = A::template ptr<int32_t>(aidx, fn, "alpha_index", false);
            py::gil_scoped_release nogil;
            prelu_backward(pdi, pda, pp, pdo, pi, pa, px, B, S, Na);
        },
        py::arg("dinp"), py::arg("dalpha"), py::arg("partial"), py::arg("dout"), py::arg("inp"),
        py::arg("alpha"), py::arg("alpha_index"),
        "dinp (or None) and dalpha (overwritten); partial (B, alpha.size) is scratch.");
    m.def(
        "softmax_axis_forward",
        [](py::object out, py::object inp, int axis) {
            const char* fn = "softmax_axis_forward";
            const auto s = A::shape(inp, fn, "inp");
            const auto [O, K, I] = axis_split(s, axis, fn, "inp");
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            softmax_axis_forward(po, pi, O, K, I);
        },
        py::arg("out"), py::arg("inp"), py::arg("axis"));
    m.def(
        "softmax_axis_backward",
        [](py::object dinp, py::object dout, py::object out, int axis) {
            const char* fn = "softmax_axis_backward";
            const auto s = A::shape(out, fn, "out");
            const auto [O, K, I] = axis_split(s, axis, fn, "out");
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, s);
            const float* po = A::template ptr<float>(out, fn, "out", false);
            py::gil_scoped_release nogil;
            softmax_axis_backward(pdi, pdo, po, O, K, I);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("out"), py::arg("axis"),
        "dinp from dout and the forward output out.");
}

// SpatialDropout2D: inp (B,H,W,C), mask uint8 (B,C).
template <class A>
void bind_spatial_dropout(py::module_& m) {
    auto rate_ok = [](double rate, const char* fn) {
        if (!(rate >= 0.0 && rate < 1.0))
            throw py::value_error(std::string(fn) + ": rate must be in [0, 1), got " +
                                  std::to_string(rate));
    };
    m.def(
        "spatial_dropout_forward",
        [rate_ok](py::object out, py::object mask, py::object inp, double rate, uint64_t seed,
                  int64_t first) {
            const char* fn = "spatial_dropout_forward";
            if (first < 0)
                throw py::value_error(std::string(fn) + ": first must be >= 0, got " +
                                      std::to_string(first));
            const auto s = dropout_image_shape<A>(inp, fn, "inp");
            rate_ok(rate, fn);
            float* po = A::template ptr<float>(out, fn, "out", true, s);
            uint8_t* pm = A::template ptr<uint8_t>(mask, fn, "mask", true, {s[0], s[3]});
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            py::gil_scoped_release nogil;
            spatial_dropout_forward(po, pm, pi, s[0], s[1] * s[2], s[3], rate, seed, first);
        },
        py::arg("out"), py::arg("mask"), py::arg("inp"), py::arg("rate"), py::arg("seed"),
        py::arg("first") = 0,
        "first: the stream position of mask[0, 0] (a shard of a larger batch: row offset * C).");
    m.def(
        "spatial_dropout_backward",
        [rate_ok](py::object dinp, py::object dout, py::object mask, double rate) {
            const char* fn = "spatial_dropout_backward";
            const auto s = dropout_image_shape<A>(dout, fn, "dout");
            rate_ok(rate, fn);
            float* pdi = A::template ptr<float>(dinp, fn, "dinp", true, s);
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false);
            const uint8_t* pm = A::template ptr<uint8_t>(mask, fn, "mask", false, {s[0], s[3]});
            py::gil_scoped_release nogil;
            spatial_dropout_backward(pdi, pdo, pm, s[0], s[1] * s[2], s[3], rate);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("mask"), py::arg("rate"));
}

template <class A>
void bind_activation_layers(py::module_& m) {
    bind_relu_elu<A>(m);
    bind_prelu_softmax<A>(m);
    bind_spatial_dropout<A>(m);
}

}  // namespace bind
}  // namespace cnnfast
