// bindings_cuda.cpp -- PYBIND11_MODULE for cnnfast._cuda (built only with CNNFAST_CUDA=1).
// The same functions, names and argument order as cnnfast._core (both bind the kernels from
// the templates in bind_kernels.h), but every array is a DeviceArray (device memory, shape,
// dtype) instead of a NumPy array; the cnnfast::cuda kernels enqueue on the module's stream.
// No math here, and no CUDA call at import: the module loads on a machine without a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "bind_kernels.h"
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

// The array policy of bind_kernels.h for _cuda: DeviceArrays and the cnnfast::cuda kernels.
struct DeviceArrays {
    static std::vector<int64_t> shape(const py::object& obj, const char* fn, const char* name) {
        return arr(obj, fn, name).shape;
    }
    static int64_t size(const py::object& obj, const char* fn, const char* name) {
        return arr(obj, fn, name).size();
    }
    // Device memory has no read-only or strided form: `writable` needs no check.
    template <typename T>
    static T* ptr(const py::object& obj, const char* fn, const char* name, bool /*writable*/,
                  std::vector<int64_t> shape = {}) {
        return dptr<T>(obj, fn, name, std::move(shape));
    }
    template <typename T>
    static T* opt_ptr(const py::object& obj, const char* fn, const char* name, bool /*writable*/,
                      std::vector<int64_t> shape = {}) {
        return opt_dptr<T>(obj, fn, name, std::move(shape));
    }
    template <typename T>
    static bool is_dtype(const py::object& obj) {
        return obj.cast<const DeviceArray&>().dtype == dtype_of<T>();
    }
    static std::string dtype_name(const py::object& obj) {
        return ::dtype_name(obj.cast<const DeviceArray&>().dtype);
    }
    static size_t conv2d_workspace_size(const Conv2DParams& p) {
        return cuda::conv2d_workspace_size(p);
    }
    static constexpr const char* workspace_hint = " (cnnfast.cuda.conv2d_workspace_size)";
    // The kernel checks argmax on the device (and throws like the CPU's check).
    static void check_argmax(const int32_t*, const Pool2DParams&) {}
    // Reads the B losses back (the sparse kernels have synced already, checking labels).
    static float loss_mean(const float* loss, int B) {
        std::vector<float> host(B);
        cuda::memcpy_d2h(host.data(), loss, sizeof(float) * B);
        return loss_batch_mean(host.data(), B);
    }

    // The kernels (csrc/cuda_kernels.h), under the names bind_kernels.h calls.
    struct K {
#define CNNFAST_CUDA_KERNEL(name) \
    template <class... Args>      \
    static void name(Args... a) { \
        cuda::name(a...);         \
    }
        CNNFAST_CUDA_KERNEL(conv2d_forward)
        CNNFAST_CUDA_KERNEL(conv2d_backward)
        CNNFAST_CUDA_KERNEL(maxpool2d_forward)
        CNNFAST_CUDA_KERNEL(maxpool2d_backward)
        CNNFAST_CUDA_KERNEL(avgpool2d_forward)
        CNNFAST_CUDA_KERNEL(avgpool2d_backward)
        CNNFAST_CUDA_KERNEL(dense_forward)
        CNNFAST_CUDA_KERNEL(dense_backward)
        CNNFAST_CUDA_KERNEL(activation_forward)
        CNNFAST_CUDA_KERNEL(activation_backward)
        CNNFAST_CUDA_KERNEL(softmax_xent_sparse)
        CNNFAST_CUDA_KERNEL(softmax_xent_dense)
        CNNFAST_CUDA_KERNEL(xent_probs_sparse)
        CNNFAST_CUDA_KERNEL(xent_probs_dense)
        CNNFAST_CUDA_KERNEL(dropout_forward)
        CNNFAST_CUDA_KERNEL(dropout_backward)
        CNNFAST_CUDA_KERNEL(adam_update)
        CNNFAST_CUDA_KERNEL(sgd_update)
        CNNFAST_CUDA_KERNEL(rmsprop_update)
#undef CNNFAST_CUDA_KERNEL
    };
};

// Build and runtime information (device_count never raises), device and stream.
void bind_device(py::module_& m) {
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
}

// DeviceArray: device memory with a shape and dtype.
void bind_memory(py::module_& m) {
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
}

// The GPU conv's workspace size (differs from the CPU's).
void bind_workspace(py::module_& m) {
    m.def(
        "conv2d_workspace_size",
        [](std::vector<int64_t> in_shape, std::vector<int64_t> kernel_shape,
           std::pair<int, int> strides, const std::string& padding) {
            return cuda::conv2d_workspace_size(
                conv_params(in_shape, kernel_shape, strides, padding, "conv2d_workspace_size"));
        },
        py::arg("in_shape"), py::arg("kernel_shape"), py::arg("strides"), py::arg("padding"),
        "Floats of device workspace the GPU conv needs (differs from the CPU's).");
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "cnnfast CUDA kernels (fp32). Called only from cnnfast.cuda.";
    bind::register_error_translator();
    // The kinds are registered once, by cnnfast._core (pybind11 shares registered types across
    // modules); re-exported here so cnnfast._cuda.Activation is the same class.
    m.attr("Activation") = py::module_::import("cnnfast._core").attr("Activation");
    bind_device(m);
    bind_memory(m);
    bind::bind_gemm<DeviceArrays>(m, "sgemm", &cuda::sgemm);
    bind_workspace(m);
    bind::bind_kernels<DeviceArrays>(m);
}
