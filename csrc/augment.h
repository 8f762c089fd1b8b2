// augment.h -- the random image augmentations of Keras's preprocessing layers (RandomFlip,
// RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomCrop), forward only.
//
// Dimension legend (on top of common.h's):
//   B images, H rows, W columns, C channels; images are NHWC, inp and out (B,H,W,C).
//   transforms (B,8): per image [a0 a1 a2 b0 b1 b2 c0 c1], TF's ImageProjectiveTransformV3
//   convention: output pixel (x, y) reads the input at ((a0 x + a1 y + a2) / k,
//   (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1 (x the column, y the row).
//   RandomCrop's out is (B,h,w,C) (augment_out_hw); every other kind keeps (B,H,W,C).
//
// Randomness: image b's j-th parameter comes from the counter-based draw
// augment_uniform(seed, b, j), so the output depends on (seed, image index) only, never on the
// thread count; OpenMP runs over images. The draws are not TF's numbers; their distributions
// and the transform given the drawn parameters are Keras's
// (docs/keras_semantics.md#augmentation-layers).
//
// Backward: these layers sit right after the input; Keras computes no gradient through them
// into the input and the engines never need one (see net_cpu.cpp), so there is none here.
#pragma once
#include <cstddef>
#include <cstdint>

#include "dropout_hash.h"

namespace cnnfast {

// Scratch floats per image that augment_forward needs (a transform and its parameters); the
// whole scratch of a call is augment_work_size (below).
constexpr int kAugmentWork = 10;

enum class AugmentKind : int {
    Flip = 0,
    Rotation = 1,
    Zoom = 2,
    Translation = 3,
    Contrast = 4,
    Crop = 5
};
// Keras's fill_mode values, and its interpolation values (bilinear, nearest).
enum class FillMode : int { Reflect = 0, Wrap = 1, Constant = 2, Nearest = 3 };
enum class Interpolation : int { Bilinear = 0, Nearest = 1 };

// One augmentation layer's parameters, as Keras's layer holds them after parsing.
struct AugmentSpec {
    AugmentKind kind = AugmentKind::Flip;
    bool flip_h = true, flip_v = false;  // Flip: mode horizontal / vertical / both
    // Rotation: the angle is uniform in [lo0, hi0) * 360 degrees.
    // Zoom: height zoom uniform in [1 + lo0, 1 + hi0); width zoom in [1 + lo1, 1 + hi1) when
    //   has_width, else the height zoom.
    // Translation: row shift uniform in [lo0, hi0) * H, column shift in [lo1, hi1) * W.
    // Contrast: factor uniform in [1 - lo0, 1 + hi0) (Keras's quirk: a number f gives
    //   lo0 = 0, hi0 = f), clipped to [vmin, vmax].
    double lo0 = 0.0, hi0 = 0.0, lo1 = 0.0, hi1 = 0.0;
    float vmin = 0.0f, vmax = 255.0f;
    int crop_h = 0, crop_w = 0;  // Crop: the output size
    bool has_width = false;
    FillMode fill = FillMode::Reflect;
    Interpolation interp = Interpolation::Bilinear;
    float fill_value = 0.0f;
};

// Draw j of image b, uniform in [0, 1) (24 random bits, exact in float).
inline double augment_uniform(uint64_t seed, int64_t b, int j) {
    return (double)(mix64(mix64(seed) ^ (uint64_t)(b * 8 + j)) >> 40) * (1.0 / 16777216.0);
}

// params (B,P) overwritten with each image's drawn parameters: Flip P=2 (flip_h, flip_v as
// 0/1; one draw per image, flipping when <= 0.5, both axes at once in
// horizontal_and_vertical mode, as Keras), Rotation P=1 (angle in degrees), Zoom P=2
// (height zoom, width zoom), Translation P=2 (row shift, column shift in pixels), Contrast
// P=1 (the factor), Crop P=2 (the window's first row and column: one draw per batch, as
// Keras, repeated on every row; the centred window when the image is not larger than the
// crop in both axes). transforms (B,8) overwritten for the resampling kinds (nullptr allowed;
// never written for Flip, Contrast and Crop).
int augment_num_params(AugmentKind kind);
// first: the batch position of image 0 (image b draws as image first + b), so a shard of a
// larger batch draws what the whole batch gives its images (cnnfast.distributed); 0 otherwise.
void augment_params(float* params, float* transforms, const AugmentSpec& s, int B, int H, int W,
                    uint64_t seed, int64_t first = 0);

// out (B,H,W,C) overwritten with inp resampled through transforms (B,8), exactly as
// tf.raw_ops.ImageProjectiveTransformV3 with output_shape (H,W) (fill modes, rounding,
// bilinear weights). out must not alias inp.
void projective_transform(float* out, const float* inp, const float* transforms, int B, int H,
                          int W, int C, FillMode fill, Interpolation interp, float fill_value);

// The scratch floats augment_forward needs for B images of (H, W, C): kAugmentWork * B, plus
// contrast_work_size(W, C) = W * C + C per image for Contrast (its column and channel means).
size_t contrast_work_size(int W, int C);
size_t augment_work_size(const AugmentSpec& s, int B, int W, int C);

// The output's (rows, columns) for an input of H x W: (crop_h, crop_w) for Crop, else (H, W).
void augment_out_hw(const AugmentSpec& s, int H, int W, int* oh, int* ow);

// out (B,oh,ow,C) overwritten: the training forward of the layer `s` with stream `seed`
// (the parameters of augment_params, then the flip, the resampling, the contrast or the crop).
// work: augment_work_size(s, B, W, C) floats of scratch (the caller's: nothing is allocated).
void augment_forward(float* out, const float* inp, float* work, const AugmentSpec& s, int B, int H,
                     int W, int C, uint64_t seed, int64_t first = 0);

// out (B,oh,ow,C) overwritten: the inference forward (a copy, except Crop: Keras's centred
// window of the crop's aspect ratio, resized to the crop size when it differs).
void augment_inference(float* out, const float* inp, const AugmentSpec& s, int B, int H, int W,
                       int C);

// RandomCrop given its window: out (B,oh,ow,C) = inp[:, h0:h0+oh, w0:w0+ow] (clipped to the
// image), resized to (oh, ow) as tf.image.resize bilinear (half-pixel centres, no antialias)
// when the clipped window is smaller. (h0, w0) is Keras's crop_box start.
void crop_resize(float* out, const float* inp, int B, int H, int W, int C, int h0, int w0, int oh,
                 int ow);

// out (B,oh,ow,C) = inp (B,H,W,C) resized as tf.image.resize(method='bilinear',
// antialias=False) (TF's ResizeBilinear with half_pixel_centers, float32 in TF's order).
void resize_bilinear(float* out, const float* inp, int B, int H, int W, int C, int oh, int ow);

// ---- the legacy ImageDataGenerator's warp (keras/src/legacy/preprocessing/image.py) ----
// scipy.ndimage.affine_transform per channel, orders 0 and 1, in double as scipy: output
// (r, c) reads the input at (m0 r + m1 c + m2, m3 r + m4 c + m5) (rows, columns), the
// coordinate folded by scipy's mode (reflect = half-sample symmetric, wrap = scipy's 'wrap'
// whose period is len - 1, nearest, constant = cval outside [0, len - 1]).
enum class WarpMode : int { Reflect = 0, Wrap = 1, Constant = 2, Nearest = 3 };
// flags per image: 1 warp through m (else the image is copied), 2 then flip the columns,
// 4 then flip the rows (Keras's order: the warp, then flip_axis).
void affine_warp(float* out, const float* inp, const double* m, const uint8_t* flags, int B, int H,
                 int W, int C, WarpMode mode, int order, double cval);

}  // namespace cnnfast
