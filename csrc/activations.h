// activations.h -- elementwise activations, softmax, fused softmax + cross-entropy, dropout.
#pragma once
#include <cstdint>

namespace cnnfast {

// The one table of activation kinds: bound as cnnfast._core.Activation (member names are the
// strings Keras users type, "relu", ...), from which Python derives its name -> kind maps.
// Keras 3 definitions and defaults (docs/keras_semantics.md#activations): elu alpha 1, selu's
// TF constants, gelu exact (erf; Keras's default approximate=False), silu (= "swish"),
// leaky_relu negative_slope 0.2 (the function's default), hard_sigmoid relu6(x + 3) / 6.
enum class Activation : int {
    Linear = 0,
    ReLU = 1,
    Sigmoid = 2,
    Tanh = 3,
    Softmax = 4,
    ELU = 5,
    SELU = 6,
    GELU = 7,
    SiLU = 8,
    Softplus = 9,
    Softsign = 10,
    LeakyReLU = 11,
    ReLU6 = 12,
    HardSigmoid = 13,
    LogSoftmax = 14
};

// False for a value outside the enum (Python can build _core.Activation(7)). A switch with no
// default: the compiler warns (-Wswitch) when a new kind is not listed here.
inline bool is_valid(Activation a) {
    switch (a) {
        case Activation::Linear:
        case Activation::ReLU:
        case Activation::Sigmoid:
        case Activation::Tanh:
        case Activation::Softmax:
        case Activation::ELU:
        case Activation::SELU:
        case Activation::GELU:
        case Activation::SiLU:
        case Activation::Softplus:
        case Activation::Softsign:
        case Activation::LeakyReLU:
        case Activation::ReLU6:
        case Activation::HardSigmoid:
        case Activation::LogSoftmax: return true;
    }
    return false;
}

// Kinds whose backward reads the forward INPUT (the derivative is not a function of the
// output, or TF computes it from the input): activation_backward's inp must then be given.
inline bool backward_needs_input(Activation a) {
    return a == Activation::GELU || a == Activation::SiLU || a == Activation::Softplus ||
           a == Activation::Softsign;
}

// out (rows,cols) overwritten; may alias inp. Softmax and log_softmax are over the last axis.
void activation_forward(float* out, const float* inp, int64_t rows, int64_t cols, Activation a);
// dinp overwritten, may alias dout. Uses the forward OUTPUT `out` (ReLU: out > 0 <=> inp > 0,
// so the derivative at 0 is 0 as in TF's ReluGrad), and the forward input `inp` for the kinds
// of backward_needs_input (nullptr allowed for the others).
void activation_backward(float* dinp, const float* dout, const float* out, int64_t rows,
                         int64_t cols, Activation a, const float* inp = nullptr);

// ---- cross-entropy, (B,K) rows; per-sample losses into loss (B), overwritten ----
// From logits (TF's cached-logits rule / from_logits=True):
//   loss = logsumexp(z) - z[y];  dlogits = grad_scale * (softmax(z) - onehot(y)).
// labels are int32 in [0,K) (checked; throws otherwise). dlogits may be nullptr.
void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int B, int K, float grad_scale);
// Dense targets t (B,K): loss = sum_k t_k (logsumexp(z) - z_k); dlogits = scale*(softmax - t).
void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int B, int K, float grad_scale);
// From probabilities (Keras TF backend, from_logits=False without cached logits):
//   sparse: q = clip(p, eps, 1-eps); loss = -log(q_y / sum(q))
//   dense:  q = clip(p / sum(p), eps, 1-eps); loss = -sum_k t_k log q_k
// dprobs = grad_scale * dloss/dp (zero where clipping applied); may be nullptr.
void xent_probs_sparse(float* loss, float* dprobs, const float* probs, const int32_t* labels, int B,
                       int K, float eps, float grad_scale);
void xent_probs_dense(float* loss, float* dprobs, const float* probs, const float* targets, int B,
                      int K, float eps, float grad_scale);

// Clipping of the probability path (Keras' backend.epsilon()): the Net's and the binding's.
constexpr float kXentEps = 1e-7f;

// The batch mean of per-sample losses (B) as Keras reduces them ('sum_over_batch_size'): a
// float32 sequential sum divided by B. The Net's loss and the cross_entropy binding both call
// this, so both engines report bit-identical losses.
inline float loss_batch_mean(const float* loss, int B) {
    float sum = 0.0f;
    for (int b = 0; b < B; ++b) sum += loss[b];
    return sum / (float)B;
}

// ---- Rescaling: out = inp * scale + offset (n), two float32 roundings as Keras computes it
// (the multiply, then the add; never contracted into an FMA). out may alias inp. ----
void rescale_forward(float* out, const float* inp, int64_t n, float scale, float offset);
// dinp = dout * scale (n), overwritten; may alias dout.
void rescale_backward(float* dinp, const float* dout, int64_t n, float scale);

// ---- inverted dropout ----
// keep[i] = 1 with probability 1-rate from a counter-based hash of (seed, i): the same mask for
// any thread count. out = inp * keep * f32(1 / (1-rate)). rate in [0,1); mask (n) overwritten.
// rate is the Python float: the scale is computed in double and rounded once, as TF does
// (rate 0.9 gives 10.0f, whereas 1.0f / (1.0f - 0.9f) = 9.9999976f).
// first: the stream position of element 0 (element i draws at first + i), so a shard of a
// larger batch draws the mask the whole batch would give its rows (cnnfast.distributed: a
// rank's rows start at first = (its row offset) * (values per row)); 0 for a whole batch.
void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, double rate,
                     uint64_t seed, int64_t first = 0);
void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, double rate);

}  // namespace cnnfast
