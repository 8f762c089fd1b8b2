// bind_losses.h -- the binding of the elementwise losses (csrc/losses.h), CPU only: bound by
// cnnfast._core with its HostArrays policy (see bind_kernels.h). Validates, releases the GIL,
// calls the kernel; no math here.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "activations.h"
#include "bind_kernels.h"
#include "losses.h"

namespace cnnfast {
namespace bind {

template <class A>
void bind_losses(py::module_& m) {
    py::enum_<ElementLoss>(m, "ElementLoss", "Elementwise loss kinds (csrc/losses.h).")
        .value("mean_squared_error", ElementLoss::mean_squared_error)
        .value("mean_absolute_error", ElementLoss::mean_absolute_error)
        .value("huber", ElementLoss::huber)
        .value("binary_crossentropy", ElementLoss::binary_crossentropy)
        .value("kl_divergence", ElementLoss::kl_divergence)
        .value("hinge", ElementLoss::hinge)
        .value("squared_hinge", ElementLoss::squared_hinge)
        .value("categorical_hinge", ElementLoss::categorical_hinge);
    m.def(
        "element_loss",
        [](py::object loss, py::object grad, py::object pred, py::object target, ElementLoss kind,
           bool from_logits, float param, float eps, float grad_scale) {
            const char* fn = "element_loss";
            if (!is_valid(kind)) throw py::value_error(std::string(fn) + ": unknown loss kind");
            require_ndim<A>(pred, 2, fn, "pred");
            const auto P = A::shape(pred, fn, "pred");
            const int B = as_int(P[0], fn, "B"), K = as_int(P[1], fn, "K");
            if (K == 0) throw py::value_error(std::string(fn) + ": pred has no columns");
            float* pl = A::template ptr<float>(loss, fn, "loss", true, {B});
            float* pg = A::template opt_ptr<float>(grad, fn, "grad", true, {B, K});
            const float* pp = A::template ptr<float>(pred, fn, "pred", false);
            const float* pt = A::template ptr<float>(target, fn, "target", false, {B, K});
            py::gil_scoped_release nogil;
            element_loss(pl, pg, pp, pt, B, K, kind, from_logits, param, eps, grad_scale);
            return A::loss_mean(pl, B);
        },
        py::arg("loss"), py::arg("grad"), py::arg("pred"), py::arg("target"), py::arg("kind"),
        py::arg("from_logits") = false, py::arg("param") = 0.0f, py::arg("eps") = kXentEps,
        py::arg("grad_scale") = 1.0f,
        "Per-sample elementwise loss `kind` of pred (B,K) against target (B,K) into loss (B,); "
        "grad (B,K) = grad_scale * d(loss)/d(pred), or None. param: huber's delta or "
        "binary_crossentropy's label_smoothing. Returns the batch mean, computed as the Net "
        "computes its loss (loss_batch_mean).");
}

}  // namespace bind
}  // namespace cnnfast
