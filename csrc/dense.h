// dense.h -- fully connected layer: out = inp @ weight + bias.
#pragma once
#include <cstddef>

namespace cnnfast {

// out (B,OUT) overwritten; inp (B,IN); weight (IN,OUT); bias (OUT) or nullptr.
void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT);

// dinp (B,IN) overwritten or nullptr to skip; dweight (IN,OUT) and dbias (OUT) overwritten;
// dbias may be nullptr. dout (B,OUT).
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int IN, int OUT);

}  // namespace cnnfast
