// dropout_spatial.h -- SpatialDropout2D: inverted dropout of whole channels, noise shape
// (B,1,1,C) as keras.layers.SpatialDropout2D (channels_last).
//   B batch, HW positions per channel (H*W), C channels; inp/out (B,H,W,C), mask (B,C)
#pragma once
#include <cstdint>

namespace cnnfast {

// keep[b,c] = dropout_keep(mix64(seed), first + b*C + c, rate) (dropout_hash.h: the same stream
// for any thread count); out = keep ? inp * f32(1 / (1 - rate)) : 0. rate in [0, 1) (throws
// otherwise); mask and out overwritten; out may alias inp. first: 0, or for a shard of a larger
// batch (cnnfast.distributed) its row offset * C, so it draws that batch's mask for its rows.
void spatial_dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t B, int64_t HW,
                             int64_t C, double rate, uint64_t seed, int64_t first = 0);
// dinp = keep ? dout * scale : 0 from the forward's mask; dinp overwritten, may alias dout.
void spatial_dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t B,
                              int64_t HW, int64_t C, double rate);

}  // namespace cnnfast
