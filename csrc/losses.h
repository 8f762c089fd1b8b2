// losses.h -- the elementwise (regression, binary, hinge) losses of Keras, per sample.
//
// Dimension legend: B rows (samples), K values per row (the last axis, which Keras reduces
// with mean or sum). pred and target are (B,K) float32; loss (B) is overwritten with the
// per-sample loss, dpred (B,K) (may be nullptr) is overwritten with grad_scale * d(loss)/d(pred)
// -- the batch reduction sum / B gives grad_scale = 1/B (docs/keras_semantics.md#losses).
#pragma once
#include <cstdint>

namespace cnnfast {

// The one table of elementwise loss kinds, bound as cnnfast._core.ElementLoss (member names
// are Keras's function names), from which cnnfast/losses.py derives its classes' kinds.
enum class ElementLoss : int {
    mean_squared_error = 0,   // mean_k (t - p)^2
    mean_absolute_error = 1,  // mean_k |t - p|
    huber = 2,                // mean_k (|e| <= d ? e^2/2 : d |e| - d^2/2), e = p - t, d = param
    binary_crossentropy = 3,  // mean_k BCE(t', p), t' = t (1 - ls) + ls/2, ls = param
    kl_divergence = 4,        // sum_k t log(t / p), both clipped to [eps, 1]
    hinge = 5,                // mean_k max(1 - t p, 0)
    squared_hinge = 6,        // mean_k max(1 - t p, 0)^2
    categorical_hinge = 7,    // max(max_k (1 - t) p - sum_k t p + 1, 0)
};

// False for a value outside the enum (Python can build _core.ElementLoss(9)).
inline bool is_valid(ElementLoss f) {
    switch (f) {
        case ElementLoss::mean_squared_error:
        case ElementLoss::mean_absolute_error:
        case ElementLoss::huber:
        case ElementLoss::binary_crossentropy:
        case ElementLoss::kl_divergence:
        case ElementLoss::hinge:
        case ElementLoss::squared_hinge:
        case ElementLoss::categorical_hinge: return true;
    }
    return false;
}

// Per-sample loss of kind f. from_logits (binary_crossentropy only): pred holds logits, the
// loss is TF's sigmoid_cross_entropy_with_logits; otherwise probabilities are clipped to
// [eps, 1-eps] (kl_divergence: [eps, 1]). The derivatives are TF's: clip and max pass the
// gradient at their bounds, |x| has slope 0 at 0, a max over k splits it among ties.
void element_loss(float* loss, float* dpred, const float* pred, const float* target, int B, int K,
                  ElementLoss f, bool from_logits, float param, float eps, float grad_scale);

// Keras's weighted sum_over_batch_size reduction (keras/src/losses/loss.py
// reduce_weighted_values) of per-sample losses loss (B) with sample weights w (B): returns
//   (sum_b f32(loss[b] * w[b]), float32 in row order) / B
// and, when dpred is not nullptr, multiplies each of its B rows of K values by w[b] in place
// (a gradient computed with grad_scale 1/B becomes that of the weighted mean).
float weighted_loss_mean(float* dpred, const float* loss, const float* w, int B, int64_t K);

}  // namespace cnnfast
