// activations_layers.h -- the activation layers with arguments: ReLU(max_value, negative_slope,
// threshold) and LeakyReLU, ELU(alpha), PReLU (a learned alpha), Softmax over any axis.
// Formulas, as Keras 3's TF backend computes them: docs/keras_semantics.md#activation-layers.
//   n        elements (any shape, flat)
//   B, S, A  PReLU: batch, elements per sample, alpha elements; aidx (S) maps each element of a
//            sample to its alpha element (the broadcast of alpha over the shared axes)
//   O, K, I  Softmax: the (O, K, I) view of the array, K the softmax axis
// Every kernel is elementwise or a fixed-order reduction: bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace cnnfast {

// Which of Keras's formulas a ReLU runs (keras/src/activations ReLU.static_call):
//   leaky:  tf.nn.leaky_relu, x > 0 ? x : x * slope (slope != 0, no max_value, threshold 0;
//           LeakyReLU always)
//   else    p = threshold != 0 ? (x > t ? x : 0) : relu6mode ? relu6(x) : max(x, 0);
//           clip ? p = max(min(p, max_value), 0);  slope != 0 ? p -= slope * max(t - x, 0)
// relu6mode: max_value == 6 and threshold 0 (tf.nn.relu6, whose gradient is 0 at 6); clip:
// any other max_value (clip_by_value, whose gradient passes at x == max_value).
struct ReluSpec {
    float negative_slope = 0.0f;
    float threshold = 0.0f;
    float max_value = 0.0f;
    bool leaky = false;
    bool relu6 = false;
    bool clip = false;
};
// Keras's branch choice for ReLU(max_value (has_max), negative_slope, threshold); the Python
// values in double, compared as Keras compares them, then rounded to float32 as TF casts them.
// Throws for a negative or non-finite argument.
ReluSpec make_relu_spec(double negative_slope, double threshold, bool has_max, double max_value);
// LeakyReLU(negative_slope): always tf.nn.leaky_relu's formula.
ReluSpec make_leaky_spec(double negative_slope);

// out (n) overwritten; may alias inp.
void relu_forward(float* out, const float* inp, int64_t n, const ReluSpec& s);
// dinp (n) overwritten, from the forward input; may alias dout.
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n, const ReluSpec& s);

// ELU: res = x < 0 ? exp(x) - 1 : x (tf.nn.elu); alpha != 1: out = x > 0 ? res : alpha * res.
void elu_forward(float* out, const float* inp, int64_t n, float alpha);
// dinp (n) overwritten, from the forward input (res is recomputed); may alias dout.
void elu_backward(float* dinp, const float* dout, const float* inp, int64_t n, float alpha);

// PReLU: out = relu(x) - alpha * relu(-x), i.e. x > 0 ? x : alpha[aidx] * x. inp (B,S).
void prelu_forward(float* out, const float* inp, const float* alpha, const int32_t* aidx, int64_t B,
                   int64_t S);
// dinp (B,S) overwritten (nullptr: not computed); dalpha (A) overwritten with
// -sum(dout * relu(-x)) over the batch and the shared axes. partial (B,A) is scratch: each
// sample's sums in element order, then summed over the batch in order (fixed order).
void prelu_backward(float* dinp, float* dalpha, float* partial, const float* dout, const float* inp,
                    const float* alpha, const int32_t* aidx, int64_t B, int64_t S, int64_t A);

// Softmax over K of the (O,K,I) view: exp(x - max) * (1 / sum), as TF's kernel; out overwritten.
void softmax_axis_forward(float* out, const float* inp, int64_t O, int64_t K, int64_t I);
// TF's SoftmaxGrad: dinp = (dout - sum_K(dout * out)) * out; dinp overwritten, may alias dout.
void softmax_axis_backward(float* dinp, const float* dout, const float* out, int64_t O, int64_t K,
                           int64_t I);

}  // namespace cnnfast
