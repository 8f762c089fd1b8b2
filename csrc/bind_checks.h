// bind_checks.h -- argument checks shared by the pybind11 modules (_core and _cuda): shapes,
// int ranges, padding strings, window pairs, activation kinds and the geometry built from them.
// Every failure raises a Python ValueError naming the function and the offending values.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "activations.h"
#include "common.h"
#include "conv2d.h"
#include "pool2d.h"

namespace cnnfast {
namespace bind {

namespace py = pybind11;

inline std::string shape_str(const std::vector<int64_t>& v) {
    std::ostringstream s;
    s << "(";
    for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
    s << (v.size() == 1 ? ",)" : ")");
    return s.str();
}

inline int as_int(int64_t v, const char* fn, const char* what) {
    if (v > (1LL << 31) - 1 || v < -(1LL << 31))
        throw py::value_error(std::string(fn) + ": " + what + " too large for the kernels");
    return static_cast<int>(v);
}

inline Padding parse_padding(const std::string& s, const char* fn) {
    if (s == "valid") return Padding::Valid;
    if (s == "same") return Padding::Same;
    throw py::value_error(std::string(fn) + ": padding must be 'valid' or 'same', got '" + s + "'");
}

inline std::pair<int, int> pair_of(const std::pair<int, int>& p, const char* fn, const char* what) {
    if (p.first <= 0 || p.second <= 0)
        throw py::value_error(std::string(fn) + ": " + what + " must be positive, got (" +
                              std::to_string(p.first) + ", " + std::to_string(p.second) + ")");
    return p;
}

// A _core.Activation from Python: the type is checked by pybind11 (an int is a TypeError), the
// value here (Python can build Activation(7), which names no member).
inline Activation check_activation(Activation a, const char* fn) {
    if (!is_valid(a))
        throw py::value_error(std::string(fn) + ": activation " + std::to_string((int)a) +
                              " is not a member of cnnfast._core.Activation");
    return a;
}

// An input (N,H,W,C) and a kernel (KH,KW,C,·) shape: both 4-D (`names` names the two in the
// message), the kernel's input channels the input's C.
inline void check_input_kernel(const std::vector<int64_t>& in, const std::vector<int64_t>& ker,
                               const char* fn, const char* names) {
    if (in.size() != 4 || ker.size() != 4)
        throw py::value_error(std::string(fn) + ": " + names + " must be 4-D, got " +
                              shape_str(in) + " and " + shape_str(ker));
    if (ker[2] != in[3])
        throw py::value_error(std::string(fn) + ": weight " + shape_str(ker) + " expects " +
                              std::to_string(ker[2]) + " input channels but inp has shape " +
                              shape_str(in));
}

// Conv2D geometry from an input (N,H,W,C) and a kernel (KH,KW,C,OC) shape.
inline Conv2DParams conv_params(const std::vector<int64_t>& in, const std::vector<int64_t>& ker,
                                std::pair<int, int> st, const std::string& padding,
                                const char* fn) {
    check_input_kernel(in, ker, fn, "input and kernel");
    pair_of(st, fn, "strides");
    const Padding pad = parse_padding(padding, fn);
    try {
        return make_conv2d_params(as_int(in[0], fn, "N"), as_int(in[1], fn, "H"),
                                  as_int(in[2], fn, "W"), as_int(in[3], fn, "C"),
                                  as_int(ker[0], fn, "KH"), as_int(ker[1], fn, "KW"),
                                  as_int(ker[3], fn, "OC"), st.first, st.second, pad);
    } catch (const std::invalid_argument& e) {  // the geometry's own checks, named here
        throw py::value_error(std::string(fn) + ": " + e.what() + "; input " + shape_str(in) +
                              ", kernel " + shape_str(ker));
    }
}

// Pooling geometry from an input (N,H,W,C) shape.
inline Pool2DParams pool_params(const std::vector<int64_t>& in, std::pair<int, int> pool,
                                std::pair<int, int> st, const std::string& padding,
                                const char* fn) {
    if (in.size() != 4)
        throw py::value_error(std::string(fn) + ": input must be 4-D, got " + shape_str(in));
    pair_of(pool, fn, "pool_size");
    pair_of(st, fn, "strides");
    const Padding pad = parse_padding(padding, fn);
    try {
        return make_pool2d_params(as_int(in[0], fn, "N"), as_int(in[1], fn, "H"),
                                  as_int(in[2], fn, "W"), as_int(in[3], fn, "C"), pool.first,
                                  pool.second, st.first, st.second, pad);
    } catch (const std::invalid_argument& e) {  // the geometry's own checks, named here
        throw py::value_error(std::string(fn) + ": " + e.what() + "; input " + shape_str(in) +
                              ", pool_size (" + std::to_string(pool.first) + ", " +
                              std::to_string(pool.second) + ")");
    }
}

// Kernel precondition failures (std::invalid_argument) become Python ValueError.
inline void register_error_translator() {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
}

}  // namespace bind
}  // namespace cnnfast
