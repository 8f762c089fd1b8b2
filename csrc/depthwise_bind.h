// depthwise_bind.h -- bindings of the depthwise and dilated Conv2D kernels for cnnfast._core
// (the Arrays policy of bind_kernels.h). Validates shapes/dtypes, releases the GIL, calls.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bind_checks.h"
#include "bind_kernels.h"
#include "conv2d_dilated.h"
#include "depthwise.h"

namespace cnnfast {
namespace bind {

namespace py = pybind11;

// The dilated kernel's extent (K - 1) * D + 1 of both axes must fit in an int (the geometry
// computes it in int: an overflow there is undefined); the geometry's own checks (a window
// larger than a 'valid' input, ...) come back as std::invalid_argument and are named here.
inline void check_dilated_extent(const std::vector<int64_t>& in, const std::vector<int64_t>& ker,
                                 std::pair<int, int> dil, const char* fn) {
    const int64_t d[2] = {dil.first, dil.second};
    for (int a = 0; a < 2; ++a)
        if ((ker[a] - 1) * d[a] + 1 > INT32_MAX)
            throw py::value_error(std::string(fn) + ": weight " + shape_str(ker) +
                                  " with dilation_rate (" + std::to_string(dil.first) + ", " +
                                  std::to_string(dil.second) +
                                  ") spans more than 2**31 - 1 pixels; inp " + shape_str(in));
}

template <class F>
auto named_geometry(const std::vector<int64_t>& in, const std::vector<int64_t>& ker, const char* fn,
                    F make) -> decltype(make()) {
    try {
        return make();
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string(fn) + ": " + e.what() + "; inp " + shape_str(in) +
                              ", weight " + shape_str(ker));
    }
}

// Depthwise geometry from an input (N,H,W,C) and a kernel (KH,KW,C,DM) shape.
inline DepthwiseParams depthwise_params(const std::vector<int64_t>& in,
                                        const std::vector<int64_t>& ker, std::pair<int, int> st,
                                        const std::string& padding, std::pair<int, int> dil,
                                        const char* fn) {
    check_input_kernel(in, ker, fn, "inp and weight");
    pair_of(st, fn, "strides");
    pair_of(dil, fn, "dilation_rate");
    if (ker[0] <= 0 || ker[1] <= 0 || ker[3] <= 0)
        throw py::value_error(std::string(fn) + ": weight shape " + shape_str(ker) +
                              " must be positive");
    const Padding pad = parse_padding(padding, fn);
    check_dilated_extent(in, ker, dil, fn);
    return named_geometry(in, ker, fn, [&] {
        return make_depthwise_params(as_int(in[0], fn, "N"), as_int(in[1], fn, "H"),
                                     as_int(in[2], fn, "W"), as_int(in[3], fn, "C"),
                                     as_int(ker[0], fn, "KH"), as_int(ker[1], fn, "KW"),
                                     as_int(ker[3], fn, "depth_multiplier"), st.first, st.second,
                                     dil.first, dil.second, pad);
    });
}

inline Conv2DDilatedParams dilated_params(const std::vector<int64_t>& in,
                                          const std::vector<int64_t>& ker, std::pair<int, int> st,
                                          const std::string& padding, std::pair<int, int> dil,
                                          const char* fn) {
    conv_params(in, ker, st, padding, fn);  // the shape/channel/stride checks, undilated
    pair_of(dil, fn, "dilation_rate");
    const Padding pad = parse_padding(padding, fn);
    check_dilated_extent(in, ker, dil, fn);
    return named_geometry(in, ker, fn, [&] {
        return make_conv2d_dilated_params(
            as_int(in[0], fn, "N"), as_int(in[1], fn, "H"), as_int(in[2], fn, "W"),
            as_int(in[3], fn, "C"), as_int(ker[0], fn, "KH"), as_int(ker[1], fn, "KW"),
            as_int(ker[3], fn, "OC"), st.first, st.second, dil.first, dil.second, pad);
    });
}

// The forward (out, inp, weight, bias, strides, padding, dilation_rate) and backward (dinp,
// dweight, dbias, dout, inp, weight, strides, padding, dilation_rate) bindings of a dilated
// convolution-like op: geometry(inp shape, weight shape, strides, padding, dilation_rate, fn)
// builds its params P, dims(P) gives out's shape (N, OH, OW, OC); bias and dbias are (OC,) or
// None, dinp None or the shape of inp, dweight the shape of weight. `dil` is the py::arg of
// dilation_rate (with or without a default).
template <class A, class Geometry, class Dims, class Forward, class Backward, class DilArg>
void bind_dilated_like(py::module_& m, const char* fwd_name, const char* bwd_name,
                       Geometry geometry, Dims dims, Forward forward, Backward backward,
                       DilArg dil) {
    auto params_of = [geometry](const py::object& inp, const py::object& weight,
                                std::pair<int, int> strides, const std::string& padding,
                                std::pair<int, int> dilation_rate, const char* fn) {
        require_ndim<A>(inp, 4, fn, "inp");
        require_ndim<A>(weight, 4, fn, "weight");
        return geometry(A::shape(inp, fn, "inp"), A::shape(weight, fn, "weight"), strides, padding,
                        dilation_rate, fn);
    };
    m.def(
        fwd_name,
        [=](py::object out, py::object inp, py::object weight, py::object bias,
            std::pair<int, int> strides, const std::string& padding,
            std::pair<int, int> dilation_rate) {
            const char* fn = fwd_name;
            const auto p = params_of(inp, weight, strides, padding, dilation_rate, fn);
            const std::vector<int64_t> os = dims(p);
            float* po = A::template ptr<float>(out, fn, "out", true, os);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            const float* pb = A::template opt_ptr<float>(bias, fn, "bias", false, {os[3]});
            py::gil_scoped_release nogil;
            forward(po, pi, pw, pb, p, false);  // no ReLU epilogue (the Net's)
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"), py::arg("strides"),
        py::arg("padding"), dil);
    m.def(
        bwd_name,
        [=](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
            py::object weight, std::pair<int, int> strides, const std::string& padding,
            std::pair<int, int> dilation_rate) {
            const char* fn = bwd_name;
            const auto p = params_of(inp, weight, strides, padding, dilation_rate, fn);
            const std::vector<int64_t> os = dims(p);
            float* pdi = A::template opt_ptr<float>(dinp, fn, "dinp", true, A::shape(inp, fn, ""));
            float* pdw =
                A::template ptr<float>(dweight, fn, "dweight", true, A::shape(weight, fn, ""));
            float* pdb = A::template opt_ptr<float>(dbias, fn, "dbias", true, {os[3]});
            const float* pdo = A::template ptr<float>(dout, fn, "dout", false, os);
            const float* pi = A::template ptr<float>(inp, fn, "inp", false);
            const float* pw = A::template ptr<float>(weight, fn, "weight", false);
            py::gil_scoped_release nogil;
            backward(pdi, pdw, pdb, pdo, pi, pw, p);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"), py::arg("strides"), py::arg("padding"), dil);
}

template <class A>
void bind_depthwise(py::module_& m) {
    m.def(
        "depthwise_conv2d_geometry",
        [](std::vector<int64_t> in_shape, std::vector<int64_t> kernel_shape,
           std::pair<int, int> strides, const std::string& padding,
           std::pair<int, int> dilation_rate) {
            DepthwiseParams p = depthwise_params(in_shape, kernel_shape, strides, padding,
                                                 dilation_rate, "depthwise_conv2d_geometry");
            py::dict d;
            d["out_shape"] = py::make_tuple(p.N, p.OH, p.OW, p.OC());
            d["pad_top"] = p.PT;
            d["pad_left"] = p.PL;
            return d;
        },
        py::arg("in_shape"), py::arg("kernel_shape"), py::arg("strides"), py::arg("padding"),
        py::arg("dilation_rate") = std::make_pair(1, 1));
    bind_dilated_like<A>(
        m, "depthwise_conv2d_forward", "depthwise_conv2d_backward", &depthwise_params,
        [](const DepthwiseParams& p) { return std::vector<int64_t>{p.N, p.OH, p.OW, p.OC()}; },
        &depthwise_forward, &depthwise_backward, py::arg("dilation_rate") = std::make_pair(1, 1));
}

template <class A>
void bind_conv2d_dilated(py::module_& m) {
    bind_dilated_like<A>(
        m, "conv2d_dilated_forward", "conv2d_dilated_backward", &dilated_params,
        [](const Conv2DDilatedParams& dp) {
            return std::vector<int64_t>{dp.g.N, dp.g.OH, dp.g.OW, dp.g.OC};
        },
        &conv2d_dilated_forward, &conv2d_dilated_backward, py::arg("dilation_rate"));
}

}  // namespace bind
}  // namespace cnnfast
