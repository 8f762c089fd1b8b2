// dense.h -- fully connected layer: out = inp @ weight + bias.
#pragma once
#include <cstddef>

namespace cnnfast {

// out (B,OUT) overwritten; inp (B,IN); weight (IN,OUT); bias (OUT) or nullptr.
// relu: ReLU fused into the GEMM epilogue (same values as activation_forward afterwards).
void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT, bool relu = false);

// dinp (B,IN) overwritten or nullptr to skip; dweight (IN,OUT) and dbias (OUT) overwritten;
// dbias may be nullptr. dout (B,OUT).
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int B, int IN, int OUT);

}  // namespace cnnfast
