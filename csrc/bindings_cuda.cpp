// bindings_cuda.cpp -- PYBIND11_MODULE for cnnfast._cuda (built only with CNNFAST_CUDA=1).
// The same functions, names and argument order as cnnfast._core, but every array is a
// DeviceArray (device memory, shape, dtype) instead of a NumPy array. Validates like
// bindings.cpp, then calls the cnnfast::cuda kernels, which enqueue on the module's stream.
// No math here, and no CUDA call at import: the module loads on a machine without a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "cuda_kernels.h"

namespace py = pybind11;
using namespace cnnfast;
using namespace cnnfast::bind;

#ifndef CNNFAST_CUDA_ARCHS
#define CNNFAST_CUDA_ARCHS "unknown"
#endif
#ifndef CNNFAST_NVCC_VERSION
#define CNNFAST_NVCC_VERSION "unknown"
#endif

namespace {

enum class DType { F32, I32, U8 };

const char* dtype_name(DType d) {
    return d == DType::F32 ? "float32" : d == DType::I32 ? "int32" : "uint8";
}
size_t itemsize(DType d) {
    return d == DType::F32 ? 4 : d == DType::I32 ? 4 : 1;
}
DType parse_dtype(const py::object& o) {
    std::string s = py::str(py::dtype::from_args(o));
    if (s == "float32") return DType::F32;
    if (s == "int32") return DType::I32;
    if (s == "uint8") return DType::U8;
    throw py::type_error("DeviceArray: dtype must be float32, int32 or uint8, got " + s);
}
template <typename T>
DType dtype_of();
template <>
DType dtype_of<float>() {
    return DType::F32;
}
template <>
DType dtype_of<int32_t>() {
    return DType::I32;
}
template <>
DType dtype_of<uint8_t>() {
    return DType::U8;
}

// Device memory with a shape and dtype. Owns its allocation: freed by free() or when the
// Python object dies. Allocated once and reused by an executor; kernels get raw pointers.
struct DeviceArray {
    void* ptr = nullptr;
    std::vector<int64_t> shape;
    DType dtype = DType::F32;
    bool freed = false;

    DeviceArray(std::vector<int64_t> shp, DType dt) : shape(std::move(shp)), dtype(dt) {
        for (int64_t d : shape)
            if (d < 0)
                throw py::value_error("DeviceArray: negative dimension in " + shape_str(shape));
        ptr = cuda::device_malloc(nbytes());
        cuda::memset_zero(ptr, nbytes());
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    ~DeviceArray() { release(); }

    int64_t size() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    size_t nbytes() const { return (size_t)size() * itemsize(dtype); }
    void release() {
        cuda::device_free(ptr);
        ptr = nullptr;
        freed = true;
    }
    void check_live(const char* what) const {
        if (freed) throw py::value_error(std::string(what) + ": DeviceArray was freed");
    }
};

py::dtype np_dtype(DType d) {
    return d == DType::F32   ? py::dtype::of<float>()
           : d == DType::I32 ? py::dtype::of<int32_t>()
                             : py::dtype::of<uint8_t>();
}

void upload(DeviceArray& a, const py::array& host) {
    a.check_live("upload");
    if (!host.dtype().is(np_dtype(a.dtype)))
        throw py::type_error(std::string("upload: array must have dtype ") + dtype_name(a.dtype) +
                             ", got " + std::string(py::str(host.dtype())));
    if (!(host.flags() & py::array::c_style))
        throw py::value_error("upload: array must be C-contiguous");
    std::vector<int64_t> hs(host.shape(), host.shape() + host.ndim());
    if (hs != a.shape)
        throw py::value_error("upload: array has shape " + shape_str(hs) + ", DeviceArray has " +
                              shape_str(a.shape));
    const void* src = host.data();
    py::gil_scoped_release nogil;
    cuda::memcpy_h2d(a.ptr, src, a.nbytes());
}

py::array download(const DeviceArray& a) {
    a.check_live("download");
    py::array out(np_dtype(a.dtype), a.shape);
    void* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        cuda::memcpy_d2h(dst, a.ptr, a.nbytes());
    }
    return out;
}

// The device pointer of `obj` (a DeviceArray of dtype T and, when given, the exact shape).
template <typename T>
T* dptr(const py::object& obj, const char* fn, const char* name, std::vector<int64_t> shape = {},
        bool optional = false) {
    if (obj.is_none()) {
        if (optional) return nullptr;
        throw py::type_error(std::string(fn) + ": " + name + " must be a DeviceArray, got None");
    }
    if (!py::isinstance<DeviceArray>(obj))
        throw py::type_error(std::string(fn) + ": " + name + " must be a DeviceArray, got " +
                             std::string(Py_TYPE(obj.ptr())->tp_name));
    const DeviceArray& a = obj.cast<const DeviceArray&>();
    a.check_live(fn);
    if (a.dtype != dtype_of<T>())
        throw py::type_error(std::string(fn) + ": " + name + " must have dtype " +
                             dtype_name(dtype_of<T>()) + ", got " + dtype_name(a.dtype));
    if (!shape.empty()) {
        bool ok = a.shape.size() == shape.size();
        for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape[i] == shape[i];
        if (!ok)
            throw py::value_error(std::string(fn) + ": " + name + " has shape " +
                                  shape_str(a.shape) + ", expected " + shape_str(shape));
    }
    return static_cast<T*>(a.ptr);
}
template <typename T>
T* opt_dptr(const py::object& obj, const char* fn, const char* name,
            std::vector<int64_t> shape = {}) {
    return dptr<T>(obj, fn, name, std::move(shape), true);
}

const DeviceArray& arr(const py::object& obj, const char* fn, const char* name) {
    if (!py::isinstance<DeviceArray>(obj))
        throw py::type_error(std::string(fn) + ": " + name + " must be a DeviceArray");
    return obj.cast<const DeviceArray&>();
}

void require_ndim(const DeviceArray& a, size_t nd, const char* fn, const char* name) {
    if (a.shape.size() != nd)
        throw py::value_error(std::string(fn) + ": " + name + " must be " + std::to_string(nd) +
                              "-D, got shape " + shape_str(a.shape));
}

float* workspace_of(const py::object& ws, size_t need, const char* fn) {
    if (!need) return opt_dptr<float>(ws, fn, "workspace");
    float* p = opt_dptr<float>(ws, fn, "workspace");
    if (!p || (size_t)arr(ws, fn, "workspace").size() < need)
        throw py::value_error(std::string(fn) + ": workspace needs " + std::to_string(need) +
                              " floats (cnnfast.cuda.conv2d_workspace_size)");
    return p;
}

std::pair<int64_t, int64_t> rows_cols(const DeviceArray& a, const char* fn, const char* name) {
    if (a.shape.empty()) throw py::value_error(std::string(fn) + ": " + name + " must be >= 1-D");
    int64_t cols = a.shape.back();
    return {cols ? a.size() / cols : 0, cols};
}

// cross_entropy's labels: int32 (B,) class indices (sparse) or float32 (B,K) targets (dense).
bool xent_is_sparse(const DeviceArray& y, int B, int K) {
    const char* fn = "cross_entropy";
    const bool sparse = y.dtype == DType::I32;
    if (!sparse && y.dtype != DType::F32)
        throw py::type_error(std::string(fn) +
                             ": labels must have dtype int32 (class indices, (B,)) or float32 "
                             "(targets, (B, K)), got " +
                             dtype_name(y.dtype));
    const std::vector<int64_t> want = sparse ? std::vector<int64_t>{B} : std::vector<int64_t>{B, K};
    if (y.shape != want)
        throw py::value_error(std::string(fn) + ": labels has shape " + shape_str(y.shape) +
                              ", expected " + shape_str(want));
    return sparse;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "cnnfast CUDA kernels (fp32). Called only from cnnfast.cuda.";

    bind::register_error_translator();

    // The kinds are registered once, by cnnfast._core (pybind11 shares registered types across
    // modules); re-exported here so cnnfast._cuda.Activation is the same class.
    py::module_ core = py::module_::import("cnnfast._core");
    m.attr("Activation") = core.attr("Activation");

    // ---- build and runtime information (device_count never raises) ----
    m.attr("archs") = CNNFAST_CUDA_ARCHS;
    m.attr("nvcc_version") = CNNFAST_NVCC_VERSION;
    m.attr("cublas") = false;
    m.attr("tf32") = false;
    m.def("device_count", &cuda::device_count);
    m.def("device_name", &cuda::device_name, py::arg("device") = 0);
    m.def("set_device", &cuda::set_device, py::arg("device"));
    m.def("get_device", &cuda::get_device);
    m.def("runtime_version", &cuda::runtime_version);
    m.def("driver_version", &cuda::driver_version);
    m.def("synchronize", []() {
        py::gil_scoped_release nogil;
        cuda::synchronize();
    });
    m.def(
        "stream", []() { return reinterpret_cast<uintptr_t>(cuda::stream()); },
        "The cudaStream_t kernels are enqueued on, as an integer (0: legacy default stream).");
    m.def(
        "set_stream", [](uintptr_t s) { cuda::set_stream(reinterpret_cast<void*>(s)); },
        py::arg("stream"));

    // ---- device memory ----
    py::class_<DeviceArray>(m, "DeviceArray")
        .def(py::init([](std::vector<int64_t> shape, py::object dtype) {
                 return std::make_unique<DeviceArray>(std::move(shape), parse_dtype(dtype));
             }),
             py::arg("shape"), py::arg("dtype") = "float32",
             "Zero-filled device memory of this shape and dtype (float32, int32 or uint8).")
        .def_property_readonly("shape",
                               [](const DeviceArray& a) {
                                   py::tuple t(a.shape.size());
                                   for (size_t i = 0; i < a.shape.size(); ++i) t[i] = a.shape[i];
                                   return t;
                               })
        .def_property_readonly("dtype", [](const DeviceArray& a) { return np_dtype(a.dtype); })
        .def_property_readonly("size", &DeviceArray::size)
        .def_property_readonly("nbytes", &DeviceArray::nbytes)
        .def_property_readonly(
            "ptr", [](const DeviceArray& a) { return reinterpret_cast<uintptr_t>(a.ptr); })
        .def_property_readonly("freed", [](const DeviceArray& a) { return a.freed; })
        .def("upload", &upload, py::arg("host"), "Copy a NumPy array of the same shape/dtype in.")
        .def("download", &download, "Copy out into a new NumPy array (waits for the stream).")
        .def("free", &DeviceArray::release, "Release the device memory now (idempotent).")
        .def("__repr__", [](const DeviceArray& a) {
            return "DeviceArray(shape=" + shape_str(a.shape) + ", dtype=" + dtype_name(a.dtype) +
                   (a.freed ? ", freed)" : ")");
        });

    // ---- GEMM ----
    m.def(
        "sgemm",
        [](py::object c, py::object a, py::object b, bool trans_a, bool trans_b, float alpha,
           float beta) {
            const char* fn = "sgemm";
            const DeviceArray &A = arr(a, fn, "a"), &B = arr(b, fn, "b");
            require_ndim(A, 2, fn, "a");
            require_ndim(B, 2, fn, "b");
            int M = as_int(trans_a ? A.shape[1] : A.shape[0], fn, "M");
            int K = as_int(trans_a ? A.shape[0] : A.shape[1], fn, "K");
            int Kb = as_int(trans_b ? B.shape[1] : B.shape[0], fn, "K");
            int N = as_int(trans_b ? B.shape[0] : B.shape[1], fn, "N");
            if (K != Kb)
                throw py::value_error("sgemm: inner dimensions differ: a " + shape_str(A.shape) +
                                      ", b " + shape_str(B.shape));
            float* pc = dptr<float>(c, fn, "c", {M, N});
            const float* pa = dptr<float>(a, fn, "a");
            const float* pb = dptr<float>(b, fn, "b");
            int lda = as_int(A.shape[1], fn, "lda"), ldb = as_int(B.shape[1], fn, "ldb");
            py::gil_scoped_release nogil;
            cuda::sgemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, pc, N);
        },
        py::arg("c"), py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f);

    // ---- Conv2D ----
    m.def(
        "conv2d_workspace_size",
        [](std::vector<int64_t> in_shape, std::vector<int64_t> kernel_shape,
           std::pair<int, int> strides, const std::string& padding) {
            return cuda::conv2d_workspace_size(
                conv_params(in_shape, kernel_shape, strides, padding, "conv2d_workspace_size"));
        },
        py::arg("in_shape"), py::arg("kernel_shape"), py::arg("strides"), py::arg("padding"),
        "Floats of device workspace the GPU conv needs (differs from the CPU's).");
    m.def(
        "conv2d_forward",
        [](py::object out, py::object inp, py::object weight, py::object bias,
           std::pair<int, int> strides, const std::string& padding, py::object workspace) {
            const char* fn = "conv2d_forward";
            Conv2DParams p = conv_params(arr(inp, fn, "inp").shape, arr(weight, fn, "weight").shape,
                                         strides, padding, fn);
            float* po = dptr<float>(out, fn, "out", {p.N, p.OH, p.OW, p.OC});
            const float* pi = dptr<float>(inp, fn, "inp");
            const float* pw = dptr<float>(weight, fn, "weight");
            const float* pb = opt_dptr<float>(bias, fn, "bias", {p.OC});
            float* ws = workspace_of(workspace, cuda::conv2d_workspace_size(p), fn);
            py::gil_scoped_release nogil;
            cuda::conv2d_forward(po, pi, pw, pb, p, ws);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"), py::arg("strides"),
        py::arg("padding"), py::arg("workspace"));
    m.def(
        "conv2d_backward",
        [](py::object dinp, py::object dweight, py::object dbias, py::object dout, py::object inp,
           py::object weight, std::pair<int, int> strides, const std::string& padding,
           py::object workspace) {
            const char* fn = "conv2d_backward";
            const DeviceArray &I = arr(inp, fn, "inp"), &Wt = arr(weight, fn, "weight");
            Conv2DParams p = conv_params(I.shape, Wt.shape, strides, padding, fn);
            float* pdi = opt_dptr<float>(dinp, fn, "dinp", I.shape);
            float* pdw = dptr<float>(dweight, fn, "dweight", Wt.shape);
            float* pdb = opt_dptr<float>(dbias, fn, "dbias", {p.OC});
            const float* pdo = dptr<float>(dout, fn, "dout", {p.N, p.OH, p.OW, p.OC});
            const float* pi = dptr<float>(inp, fn, "inp");
            const float* pw = dptr<float>(weight, fn, "weight");
            float* ws = workspace_of(workspace, cuda::conv2d_workspace_size(p), fn);
            py::gil_scoped_release nogil;
            cuda::conv2d_backward(pdi, pdw, pdb, pdo, pi, pw, p, ws);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"), py::arg("strides"), py::arg("padding"), py::arg("workspace"));

    // ---- Pooling ----
    m.def(
        "maxpool2d_forward",
        [](py::object out, py::object argmax, py::object inp, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_forward";
            Pool2DParams p = pool_params(arr(inp, fn, "inp").shape, pool, strides, padding, fn);
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* po = dptr<float>(out, fn, "out", os);
            int32_t* pa = opt_dptr<int32_t>(argmax, fn, "argmax", os);
            const float* pi = dptr<float>(inp, fn, "inp");
            py::gil_scoped_release nogil;
            cuda::maxpool2d_forward(po, pa, pi, p);
        },
        py::arg("out"), py::arg("argmax"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "maxpool2d_backward",
        [](py::object dinp, py::object dout, py::object argmax, std::pair<int, int> pool,
           std::pair<int, int> strides, const std::string& padding) {
            const char* fn = "maxpool2d_backward";
            Pool2DParams p = pool_params(arr(dinp, fn, "dinp").shape, pool, strides, padding, fn);
            std::vector<int64_t> os = {p.N, p.OH, p.OW, p.C};
            float* pdi = dptr<float>(dinp, fn, "dinp");
            const float* pdo = dptr<float>(dout, fn, "dout", os);
            const int32_t* pa = dptr<int32_t>(argmax, fn, "argmax", os);
            py::gil_scoped_release nogil;
            cuda::maxpool2d_backward(pdi, pdo, pa, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("argmax"), py::arg("pool_size"),
        py::arg("strides"), py::arg("padding"));
    m.def(
        "avgpool2d_forward",
        [](py::object out, py::object inp, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_forward";
            Pool2DParams p = pool_params(arr(inp, fn, "inp").shape, pool, strides, padding, fn);
            float* po = dptr<float>(out, fn, "out", {p.N, p.OH, p.OW, p.C});
            const float* pi = dptr<float>(inp, fn, "inp");
            py::gil_scoped_release nogil;
            cuda::avgpool2d_forward(po, pi, p);
        },
        py::arg("out"), py::arg("inp"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));
    m.def(
        "avgpool2d_backward",
        [](py::object dinp, py::object dout, std::pair<int, int> pool, std::pair<int, int> strides,
           const std::string& padding) {
            const char* fn = "avgpool2d_backward";
            Pool2DParams p = pool_params(arr(dinp, fn, "dinp").shape, pool, strides, padding, fn);
            float* pdi = dptr<float>(dinp, fn, "dinp");
            const float* pdo = dptr<float>(dout, fn, "dout", {p.N, p.OH, p.OW, p.C});
            py::gil_scoped_release nogil;
            cuda::avgpool2d_backward(pdi, pdo, p);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("pool_size"), py::arg("strides"),
        py::arg("padding"));

    // ---- Dense ----
    auto dense_dims = [](const DeviceArray& I, const DeviceArray& Wt, const char* fn) {
        require_ndim(I, 2, fn, "inp");
        require_ndim(Wt, 2, fn, "weight");
        if (Wt.shape[0] != I.shape[1])
            throw py::value_error(std::string(fn) + ": inp " + shape_str(I.shape) +
                                  " does not match weight " + shape_str(Wt.shape));
        return std::make_tuple(as_int(I.shape[0], fn, "B"), as_int(I.shape[1], fn, "IN"),
                               as_int(Wt.shape[1], fn, "OUT"));
    };
    m.def(
        "dense_forward",
        [dense_dims](py::object out, py::object inp, py::object weight, py::object bias) {
            const char* fn = "dense_forward";
            auto [B, IN, OUT] = dense_dims(arr(inp, fn, "inp"), arr(weight, fn, "weight"), fn);
            float* po = dptr<float>(out, fn, "out", {B, OUT});
            const float* pi = dptr<float>(inp, fn, "inp");
            const float* pw = dptr<float>(weight, fn, "weight");
            const float* pb = opt_dptr<float>(bias, fn, "bias", {OUT});
            py::gil_scoped_release nogil;
            cuda::dense_forward(po, pi, pw, pb, B, IN, OUT);
        },
        py::arg("out"), py::arg("inp"), py::arg("weight"), py::arg("bias"));
    m.def(
        "dense_backward",
        [dense_dims](py::object dinp, py::object dweight, py::object dbias, py::object dout,
                     py::object inp, py::object weight) {
            const char* fn = "dense_backward";
            auto [B, IN, OUT] = dense_dims(arr(inp, fn, "inp"), arr(weight, fn, "weight"), fn);
            float* pdi = opt_dptr<float>(dinp, fn, "dinp", {B, IN});
            float* pdw = dptr<float>(dweight, fn, "dweight", {IN, OUT});
            float* pdb = opt_dptr<float>(dbias, fn, "dbias", {OUT});
            const float* pdo = dptr<float>(dout, fn, "dout", {B, OUT});
            const float* pi = dptr<float>(inp, fn, "inp");
            const float* pw = dptr<float>(weight, fn, "weight");
            py::gil_scoped_release nogil;
            cuda::dense_backward(pdi, pdw, pdb, pdo, pi, pw, B, IN, OUT);
        },
        py::arg("dinp"), py::arg("dweight"), py::arg("dbias"), py::arg("dout"), py::arg("inp"),
        py::arg("weight"));

    // ---- Activations ----
    m.def(
        "activation_forward",
        [](py::object out, py::object inp, Activation act) {
            const char* fn = "activation_forward";
            const DeviceArray& I = arr(inp, fn, "inp");
            auto rc = rows_cols(I, fn, "inp");
            float* po = dptr<float>(out, fn, "out", I.shape);
            const float* pi = dptr<float>(inp, fn, "inp");
            Activation a = check_activation(act, fn);
            py::gil_scoped_release nogil;
            cuda::activation_forward(po, pi, rc.first, rc.second, a);
        },
        py::arg("out"), py::arg("inp"), py::arg("activation"));
    m.def(
        "activation_backward",
        [](py::object dinp, py::object dout, py::object out, Activation act) {
            const char* fn = "activation_backward";
            const DeviceArray& O = arr(out, fn, "out");
            auto rc = rows_cols(O, fn, "out");
            float* pdi = dptr<float>(dinp, fn, "dinp", O.shape);
            const float* pdo = dptr<float>(dout, fn, "dout", O.shape);
            const float* po = dptr<float>(out, fn, "out");
            Activation a = check_activation(act, fn);
            py::gil_scoped_release nogil;
            cuda::activation_backward(pdi, pdo, po, rc.first, rc.second, a);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("out"), py::arg("activation"));

    // ---- Cross-entropy: one binding; the labels' dtype picks sparse or dense. The sparse
    // kernels check the labels on the device, and the mean reads the loss back (both sync) ----
    m.def(
        "cross_entropy",
        [](py::object loss, py::object grad, py::object pred, py::object labels, bool from_logits,
           float eps, float grad_scale) {
            const char* fn = "cross_entropy";
            const DeviceArray& P = arr(pred, fn, "pred");
            require_ndim(P, 2, fn, "pred");
            const int B = as_int(P.shape[0], fn, "B"), K = as_int(P.shape[1], fn, "K");
            const bool sparse = xent_is_sparse(arr(labels, fn, "labels"), B, K);
            float* pl = dptr<float>(loss, fn, "loss", {B});
            float* pg = opt_dptr<float>(grad, fn, "grad", {B, K});
            const float* pp = dptr<float>(pred, fn, "pred");
            const void* py_ = sparse ? (const void*)dptr<int32_t>(labels, fn, "labels")
                                     : (const void*)dptr<float>(labels, fn, "labels");
            std::vector<float> host(B);
            py::gil_scoped_release nogil;
            if (from_logits && sparse)
                cuda::softmax_xent_sparse(pl, pg, pp, (const int32_t*)py_, B, K, grad_scale);
            else if (from_logits)
                cuda::softmax_xent_dense(pl, pg, pp, (const float*)py_, B, K, grad_scale);
            else if (sparse)
                cuda::xent_probs_sparse(pl, pg, pp, (const int32_t*)py_, B, K, eps, grad_scale);
            else
                cuda::xent_probs_dense(pl, pg, pp, (const float*)py_, B, K, eps, grad_scale);
            cuda::memcpy_d2h(host.data(), pl, sizeof(float) * B);
            return loss_batch_mean(host.data(), B);
        },
        py::arg("loss"), py::arg("grad"), py::arg("pred"), py::arg("labels"),
        py::arg("from_logits"), py::arg("eps") = kXentEps, py::arg("grad_scale") = 1.0f);

    // ---- Dropout ----
    m.def(
        "dropout_forward",
        [](py::object out, py::object mask, py::object inp, double rate, uint64_t seed) {
            const char* fn = "dropout_forward";
            const DeviceArray& I = arr(inp, fn, "inp");
            float* po = dptr<float>(out, fn, "out", I.shape);
            uint8_t* pm = dptr<uint8_t>(mask, fn, "mask", I.shape);
            const float* pi = dptr<float>(inp, fn, "inp");
            int64_t n = I.size();
            py::gil_scoped_release nogil;
            cuda::dropout_forward(po, pm, pi, n, rate, seed);
        },
        py::arg("out"), py::arg("mask"), py::arg("inp"), py::arg("rate"), py::arg("seed"));
    m.def(
        "dropout_backward",
        [](py::object dinp, py::object dout, py::object mask, double rate) {
            const char* fn = "dropout_backward";
            const DeviceArray& D = arr(dout, fn, "dout");
            float* pdi = dptr<float>(dinp, fn, "dinp", D.shape);
            const float* pdo = dptr<float>(dout, fn, "dout");
            const uint8_t* pm = dptr<uint8_t>(mask, fn, "mask", D.shape);
            int64_t n = D.size();
            py::gil_scoped_release nogil;
            cuda::dropout_backward(pdi, pdo, pm, n, rate);
        },
        py::arg("dinp"), py::arg("dout"), py::arg("mask"), py::arg("rate"));

    // ---- Optimizers (in place on device arrays) ----
    m.def(
        "adam_update",
        [](py::object w, py::object mo, py::object v, py::object vhat, py::object g, float lr,
           double beta1, double beta2, double eps, int64_t step) {
            const char* fn = "adam_update";
            auto s = arr(w, fn, "w").shape;
            float* pw = dptr<float>(w, fn, "w");
            float* pm = dptr<float>(mo, fn, "m", s);
            float* pv = dptr<float>(v, fn, "v", s);
            float* pvh = opt_dptr<float>(vhat, fn, "vhat", s);
            const float* pg = dptr<float>(g, fn, "g", s);
            int64_t n = arr(w, fn, "w").size();
            py::gil_scoped_release nogil;
            cuda::adam_update(pw, pm, pv, pvh, pg, n, lr, beta1, beta2, eps, step);
        },
        py::arg("w"), py::arg("m"), py::arg("v"), py::arg("vhat"), py::arg("g"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("step"));
    m.def(
        "sgd_update",
        [](py::object w, py::object vel, py::object g, float lr, double momentum, bool nesterov) {
            const char* fn = "sgd_update";
            auto s = arr(w, fn, "w").shape;
            float* pw = dptr<float>(w, fn, "w");
            float* pv = opt_dptr<float>(vel, fn, "velocity", s);
            const float* pg = dptr<float>(g, fn, "g", s);
            int64_t n = arr(w, fn, "w").size();
            py::gil_scoped_release nogil;
            cuda::sgd_update(pw, pv, pg, n, lr, momentum, nesterov);
        },
        py::arg("w"), py::arg("velocity"), py::arg("g"), py::arg("lr"), py::arg("momentum"),
        py::arg("nesterov"));
    m.def(
        "rmsprop_update",
        [](py::object w, py::object v, py::object mom, py::object avg, py::object g, float lr,
           double rho, double momentum, double eps, bool centered) {
            const char* fn = "rmsprop_update";
            auto s = arr(w, fn, "w").shape;
            float* pw = dptr<float>(w, fn, "w");
            float* pv = dptr<float>(v, fn, "v", s);
            float* pmo = opt_dptr<float>(mom, fn, "mom", s);
            float* pa = opt_dptr<float>(avg, fn, "avg", s);
            const float* pg = dptr<float>(g, fn, "g", s);
            int64_t n = arr(w, fn, "w").size();
            py::gil_scoped_release nogil;
            cuda::rmsprop_update(pw, pv, pmo, pa, pg, n, lr, rho, momentum, eps, centered);
        },
        py::arg("w"), py::arg("v"), py::arg("mom"), py::arg("avg"), py::arg("g"), py::arg("lr"),
        py::arg("rho"), py::arg("momentum"), py::arg("eps"), py::arg("centered"));
}
