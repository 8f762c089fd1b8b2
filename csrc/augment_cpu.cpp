// augment_cpu.cpp -- RandomFlip / RandomRotation / RandomZoom forward (see augment.h).
//   The resampling follows TensorFlow's ImageProjectiveTransformV3 CPU kernel step by step
//   (float32 arithmetic in the same order): map each output pixel through the image's
//   transform, fold the coordinate back into the image by the fill mode, then read the
//   nearest pixel (round half away from zero) or the bilinear mix of the four around it,
//   with fill_value for taps outside the image (constant mode).
#include "augment.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"

namespace cnnfast {

namespace {

// TF's MapCoordinate for one axis of length len (a float coordinate in, one in [0, len-1] out,
// except constant mode, which leaves it for the bounds check of the read).
float map_coord(float c, int64_t len, FillMode mode) {
    switch (mode) {
        case FillMode::Reflect:  // [abcd] -> [dcba|abcd|dcba]
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * len;
                    if (c < sz2) c = sz2 * (int64_t)(-c / sz2) + c;
                    c = (c < -len) ? c + sz2 : -c - 1;
                }
            } else if (c > len - 1) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * len;
                    c -= sz2 * (int64_t)(c / sz2);
                    if (c >= len) c = sz2 - c - 1;
                }
            }
            break;
        case FillMode::Wrap:  // [abcd] -> [abcd|abcd|abcd]
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c += len * ((int64_t)(-c / sz) + 1);
                }
            } else if (c > len - 1) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c -= len * (int64_t)(c / sz);
                }
            }
            break;
        case FillMode::Constant: return c;
        case FillMode::Nearest: break;
    }
    // The clamp matters: 3.5 in a row of 4 would round to 4 in nearest interpolation.
    return std::fmin(std::fmax(c, 0.0f), (float)(len - 1));
}

// Channel values of pixel (y, x) of img (H,W,C) into v, or fill_value outside the image.
inline const float* pixel(const float* img, const float* fill, int64_t y, int64_t x, int H, int W,
                          int C) {
    return (0 <= y && y < H && 0 <= x && x < W) ? img + (y * W + x) * C : fill;
}

// One image (H,W,C) through one transform t[8].
void transform_image(float* out, const float* img, const float* t, int H, int W, int C,
                     FillMode fill, Interpolation interp, const float* fillv) {
    for (int oy = 0; oy < H; ++oy)
        for (int ox = 0; ox < W; ++ox) {
            float* o = out + ((int64_t)oy * W + ox) * C;
            const float fx = (float)ox, fy = (float)oy;
            const float proj = t[6] * fx + t[7] * fy + 1.f;
            if (proj == 0) {
                for (int c = 0; c < C; ++c) o[c] = fillv[c];
                continue;
            }
            const float ix = (t[0] * fx + t[1] * fy + t[2]) / proj;
            const float iy = (t[3] * fx + t[4] * fy + t[5]) / proj;
            const float x = map_coord(ix, W, fill), y = map_coord(iy, H, fill);
            if (interp == Interpolation::Nearest) {
                const float* p =
                    pixel(img, fillv, (int64_t)std::round(y), (int64_t)std::round(x), H, W, C);
                for (int c = 0; c < C; ++c) o[c] = p[c];
                continue;
            }
            const float y0 = std::floor(y), x0 = std::floor(x);
            const float y1 = y0 + 1, x1 = x0 + 1;
            const float* p00 = pixel(img, fillv, (int64_t)y0, (int64_t)x0, H, W, C);
            const float* p01 = pixel(img, fillv, (int64_t)y0, (int64_t)x1, H, W, C);
            const float* p10 = pixel(img, fillv, (int64_t)y1, (int64_t)x0, H, W, C);
            const float* p11 = pixel(img, fillv, (int64_t)y1, (int64_t)x1, H, W, C);
            for (int c = 0; c < C; ++c) {
                const float top = (x1 - x) * p00[c] + (x - x0) * p01[c];
                const float bot = (x1 - x) * p10[c] + (x - x0) * p11[c];
                o[c] = (y1 - y) * top + (y - y0) * bot;
            }
        }
}

// Keras's rotation about the image centre (base_image_preprocessing_layer.py
// _compute_affine_matrix with no shear, scale 1, no translation), in float32 as Keras.
void rotation_matrix(float* t, float angle_deg, int H, int W) {
    const float rad = angle_deg * (float)(M_PI / 180.0);
    const float cx = 0.5f * (float)(W - 1), cy = 0.5f * (float)(H - 1);
    const float c = std::cos(rad), s = std::sin(rad);
    const float a0 = c, a1 = -s, b0 = s, b1 = c;
    t[0] = a0, t[1] = a1, t[2] = cx - cx * a0 - cy * a1;
    t[3] = b0, t[4] = b1, t[5] = cy - cx * b0 - cy * b1;
    t[6] = t[7] = 0.0f;
}

// Keras's zoom about the image centre (random_zoom.py _get_zoom_matrix).
void zoom_matrix(float* t, float zy, float zx, int H, int W) {
    t[0] = zx, t[1] = 0.0f, t[2] = (((float)W - 1.0f) / 2.0f) * (1.0f - zx);
    t[3] = 0.0f, t[4] = zy, t[5] = (((float)H - 1.0f) / 2.0f) * (1.0f - zy);
    t[6] = t[7] = 0.0f;
}

float uniform_in(uint64_t seed, int64_t b, int j, double lo, double hi) {
    return (float)(lo + (hi - lo) * augment_uniform(seed, b, j));
}

}  // namespace

int augment_num_params(AugmentKind kind) {
    return kind == AugmentKind::Rotation ? 1 : 2;
}

void augment_params(float* params, float* transforms, const AugmentSpec& s, int B, int H, int W,
                    uint64_t seed, int64_t first) {
    const int P = augment_num_params(s.kind);
    for (int b = 0; b < B; ++b) {
        float* p = params + (int64_t)b * P;
        float* t = transforms ? transforms + (int64_t)b * 8 : nullptr;
        const int64_t g = first + b;  // the image's position in the (global) batch
        switch (s.kind) {
            case AugmentKind::Flip: {
                // Keras draws one uniform per image and flips at <= 0.5; in
                // horizontal_and_vertical mode the same draw flips both axes (random_flip.py).
                const bool flip = augment_uniform(seed, g, 0) <= 0.5;
                p[0] = s.flip_h && flip;
                p[1] = s.flip_v && flip;
            } break;
            case AugmentKind::Rotation:
                p[0] = uniform_in(seed, g, 0, s.lo0 * 360.0, s.hi0 * 360.0);
                if (t) rotation_matrix(t, p[0], H, W);
                break;
            case AugmentKind::Zoom:
                p[0] = uniform_in(seed, g, 0, 1.0 + s.lo0, 1.0 + s.hi0);
                p[1] = s.has_width ? uniform_in(seed, g, 1, 1.0 + s.lo1, 1.0 + s.hi1) : p[0];
                if (t) zoom_matrix(t, p[0], p[1], H, W);
                break;
        }
    }
}

void projective_transform(float* out, const float* inp, const float* transforms, int B, int H,
                          int W, int C, FillMode fill, Interpolation interp, float fill_value) {
    const int64_t n = (int64_t)H * W * C;
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        std::vector<float> fillv(C, fill_value);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int b = 0; b < B; ++b)
            transform_image(out + b * n, inp + b * n, transforms + (int64_t)b * 8, H, W, C, fill,
                            interp, fillv.data());
    }
}

// Image (H,W,C) reversed along W (flip_h) and/or H (flip_v), or copied.
static void flip_image(float* out, const float* img, bool fh, bool fv, int H, int W, int C) {
    for (int y = 0; y < H; ++y) {
        const float* row = img + (int64_t)(fv ? H - 1 - y : y) * W * C;
        float* orow = out + (int64_t)y * W * C;
        if (!fh) {
            std::memcpy(orow, row, sizeof(float) * W * C);
            continue;
        }
        for (int x = 0; x < W; ++x)
            std::memcpy(orow + (int64_t)x * C, row + (int64_t)(W - 1 - x) * C, sizeof(float) * C);
    }
}

void augment_forward(float* out, const float* inp, float* work, const AugmentSpec& s, int B, int H,
                     int W, int C, uint64_t seed, int64_t first) {
    CNNFAST_CHECK(B >= 0 && H > 0 && W > 0 && C > 0, "augment_forward: bad image shape");
    if (s.kind == AugmentKind::Flip) {
        augment_params(work, nullptr, s, B, H, W, seed, first);
        const int64_t n = (int64_t)H * W * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (int b = 0; b < B; ++b)
            flip_image(out + b * n, inp + b * n, work[2 * b] != 0.0f, work[2 * b + 1] != 0.0f, H, W,
                       C);
        return;
    }
    // work: the transforms (B,8), then the parameters (B,P <= 2)
    augment_params(work + (int64_t)B * 8, work, s, B, H, W, seed, first);
    projective_transform(out, inp, work, B, H, W, C, s.fill, s.interp, s.fill_value);
}

}  // namespace cnnfast
