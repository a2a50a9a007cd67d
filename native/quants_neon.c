/*
 * quants_neon.c - arm64 Advanced SIMD variants of the block kernels (baseline ARMv8-A: no dotprod
 * extension assumed; byte dots widen with SMULL and pairwise-accumulate into int32).
 *
 * Every dot reduces each block (or sub-block) to an exact integer and accumulates the floats in the
 * same order as the scalar reference in quants.c, so results match it bit for bit; to_float does a
 * multiply then an add, as the reference does (no fused multiply-add: the build's -std=c11 keeps
 * the compiler from contracting).
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "quants.h"

static inline float n_fp16(emb_fp16 h) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

static inline float32x4_t n_cvt4(int16x4_t v) { return vcvtq_f32_s32(vmovl_s16(v)); }

/* dst[i] = d * (float)q[i] (+ m) for 16 signed bytes. */
static inline void n_store16(float *dst, int8x16_t q, float32x4_t d) {
    int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    vst1q_f32(dst, vmulq_f32(d, n_cvt4(vget_low_s16(lo))));
    vst1q_f32(dst + 4, vmulq_f32(d, n_cvt4(vget_high_s16(lo))));
    vst1q_f32(dst + 8, vmulq_f32(d, n_cvt4(vget_low_s16(hi))));
    vst1q_f32(dst + 12, vmulq_f32(d, n_cvt4(vget_high_s16(hi))));
}

static inline void n_store16_add(float *dst, int8x16_t q, float32x4_t d, float32x4_t m) {
    int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    vst1q_f32(dst, vaddq_f32(vmulq_f32(d, n_cvt4(vget_low_s16(lo))), m));
    vst1q_f32(dst + 4, vaddq_f32(vmulq_f32(d, n_cvt4(vget_high_s16(lo))), m));
    vst1q_f32(dst + 8, vaddq_f32(vmulq_f32(d, n_cvt4(vget_low_s16(hi))), m));
    vst1q_f32(dst + 12, vaddq_f32(vmulq_f32(d, n_cvt4(vget_high_s16(hi))), m));
}

/* Sum of a[i] * b[i] over 16 bytes; |products| <= 128 * 127 fit int16. */
static inline int32x4_t n_dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

/* Bits 16k..16k+15 of a block's qh as 16 bytes, 0xff where set. */
static inline uint8x16_t n_bits16(uint32_t qh, int k) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    uint8x16_t v = vcombine_u8(vdup_n_u8((uint8_t)(qh >> (16 * k))), vdup_n_u8((uint8_t)(qh >> (16 * k + 8))));
    return vtstq_u8(v, vld1q_u8(bit));
}

/* The 32 values of Q5_0/Q5_1 block b (0..31) as two vectors: elements 0..15 and 16..31. */
static inline void n_q5_values(const uint8_t *qs, const uint8_t *qhb, uint8x16_t out[2]) {
    uint32_t qh;
    memcpy(&qh, qhb, 4);
    uint8x16_t raw = vld1q_u8(qs), b4 = vdupq_n_u8(0x10);
    out[0] = vorrq_u8(vandq_u8(raw, vdupq_n_u8(0x0f)), vandq_u8(n_bits16(qh, 0), b4));
    out[1] = vorrq_u8(vshrq_n_u8(raw, 4), vandq_u8(n_bits16(qh, 1), b4));
}

/* ---- to_float -------------------------------------------------------------------------------- */

static void f16_to_float_neon(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(x + i);
        vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))));
        vst1q_f32(dst + i + 4, vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h))));
    }
    for (; i < n; i++) dst[i] = n_fp16(x[i]);
}

static void bf16_to_float_neon(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(x + i);
        vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
        vst1q_f32(dst + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
    }
    for (; i < n; i++) dst[i] = emb_bf16_to_fp32(x[i]);
}

static void q4_0_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    const int8x16_t k8 = vdupq_n_s8(8);
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        uint8x16_t raw = vld1q_u8(b[i].qs);
        float32x4_t d = vdupq_n_f32(n_fp16(b[i].d));
        n_store16(dst, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), k8), d);
        n_store16(dst + 16, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), k8), d);
    }
}

static void q4_1_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        uint8x16_t raw = vld1q_u8(b[i].qs);
        float32x4_t d = vdupq_n_f32(n_fp16(b[i].d)), m = vdupq_n_f32(n_fp16(b[i].m));
        n_store16_add(dst, vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), d, m);
        n_store16_add(dst + 16, vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), d, m);
    }
}

static void q5_0_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    const int8x16_t k16 = vdupq_n_s8(16);
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        uint8x16_t v[2];
        n_q5_values(b[i].qs, b[i].qh, v);
        float32x4_t d = vdupq_n_f32(n_fp16(b[i].d));
        n_store16(dst, vsubq_s8(vreinterpretq_s8_u8(v[0]), k16), d);
        n_store16(dst + 16, vsubq_s8(vreinterpretq_s8_u8(v[1]), k16), d);
    }
}

static void q5_1_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        uint8x16_t v[2];
        n_q5_values(b[i].qs, b[i].qh, v);
        float32x4_t d = vdupq_n_f32(n_fp16(b[i].d)), m = vdupq_n_f32(n_fp16(b[i].m));
        n_store16_add(dst, vreinterpretq_s8_u8(v[0]), d, m);
        n_store16_add(dst + 16, vreinterpretq_s8_u8(v[1]), d, m);
    }
}

static void q8_0_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float32x4_t d = vdupq_n_f32(n_fp16(b[i].d));
        n_store16(dst, vld1q_s8(b[i].qs), d);
        n_store16(dst + 16, vld1q_s8(b[i].qs + 16), d);
    }
}

/* Q4_K and Q5_K share this: qh NULL for Q4_K. */
static inline void n_qk_to_float(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float d,
                                 float dmin, float *dst) {
    for (int j = 0; j < 8; j++, dst += 32) {
        int sc, m;
        emb_k_scale_min(j, scales, &sc, &m);
        float32x4_t vd = vdupq_n_f32(d * (float)sc), vm = vdupq_n_f32(-(dmin * (float)m));
        const uint8_t *q = qs + 32 * (j / 2);
        for (int h = 0; h < 2; h++) {
            uint8x16_t raw = vld1q_u8(q + 16 * h);
            uint8x16_t v = (j & 1) ? vshrq_n_u8(raw, 4) : vandq_u8(raw, vdupq_n_u8(0x0f));
            if (qh) {
                uint8x16_t hb = vandq_u8(vld1q_u8(qh + 16 * h), vdupq_n_u8((uint8_t)(1u << j)));
                v = vorrq_u8(v, vandq_u8(vtstq_u8(hb, hb), vdupq_n_u8(0x10)));
            }
            n_store16_add(dst + 16 * h, vreinterpretq_s8_u8(v), vd, vm);
        }
    }
}

static void q4_K_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        n_qk_to_float(b[i].scales, b[i].qs, NULL, n_fp16(b[i].d), n_fp16(b[i].dmin), dst);
}

static void q5_K_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        n_qk_to_float(b[i].scales, b[i].qs, b[i].qh, n_fp16(b[i].d), n_fp16(b[i].dmin), dst);
}

/* Q6_K values minus 32 (signed), 16 at a time: vector v (0..15) of the block covers elements
   16v..16v+15, exactly sub-block v. */
static inline void n_q6_K_values(const block_q6_K *b, int8x16_t out[16]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(3);
    const int8x16_t k32 = vdupq_n_s8(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int p = 0; p < 2; p++) { /* l in 16p..16p+15 */
            uint8x16_t q1 = vld1q_u8(ql + 16 * p), q2 = vld1q_u8(ql + 32 + 16 * p), hh = vld1q_u8(qh + 16 * p);
            uint8x16_t v0 = vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8(vandq_u8(hh, m2), 4));
            uint8x16_t v1 = vorrq_u8(vandq_u8(q2, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 2), m2), 4));
            uint8x16_t v2 = vorrq_u8(vshrq_n_u8(q1, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hh, 4), m2), 4));
            uint8x16_t v3 = vorrq_u8(vshrq_n_u8(q2, 4), vshlq_n_u8(vshrq_n_u8(hh, 6), 4));
            int base = 8 * h + p;
            out[base + 0] = vsubq_s8(vreinterpretq_s8_u8(v0), k32);
            out[base + 2] = vsubq_s8(vreinterpretq_s8_u8(v1), k32);
            out[base + 4] = vsubq_s8(vreinterpretq_s8_u8(v2), k32);
            out[base + 6] = vsubq_s8(vreinterpretq_s8_u8(v3), k32);
        }
    }
}

static void q6_K_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    int8x16_t v[16];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = n_fp16(b[i].d);
        n_q6_K_values(&b[i], v);
        for (int s = 0; s < 16; s++) n_store16(dst + 16 * s, v[s], vdupq_n_f32(d * (float)b[i].scales[s]));
    }
}

static void q8_K_to_float_neon(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j += 16, dst += 16) n_store16(dst, vld1q_s8(b[i].qs + j), vdupq_n_f32(b[i].d));
}

/* ---- from_float ------------------------------------------------------------------------------ */

static void f16_from_float_neon(const float *src, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) y[i] = emb_fp32_to_fp16(src[i]);
}

/* Quantises 16 floats with 1/d = id (round to nearest even, as nearbyintf; NaN -> 0 as there). */
static inline int8x16_t n_quant16(const float *x, float32x4_t id) {
    int32x4_t a = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x), id));
    int32x4_t b = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4), id));
    int32x4_t c = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 8), id));
    int32x4_t d = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 12), id));
    int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)), cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    int8x16_t q = vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
    return vmaxq_s8(q, vdupq_n_s8(-127));
}

static inline float n_absmax(const float *x, int n) {
    float32x4_t m = vdupq_n_f32(0.0f);
    /* maxNum semantics: NaN inputs are skipped, as fmaxf does */
    for (int j = 0; j < n; j += 4) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + j)));
    return vmaxnmvq_f32(m);
}

static void q8_0_from_float_neon(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float d = n_absmax(src, QK8_0) / 127.0f;
        float32x4_t id = vdupq_n_f32(d != 0.0f ? 1.0f / d : 0.0f);
        y[i].d = emb_fp32_to_fp16(d);
        vst1q_s8(y[i].qs, n_quant16(src, id));
        vst1q_s8(y[i].qs + 16, n_quant16(src + 16, id));
    }
}

static void q8_K_from_float_neon(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float d = n_absmax(src, QK_K) / 127.0f;
        float32x4_t id = vdupq_n_f32(d != 0.0f ? 1.0f / d : 0.0f);
        y[i].d = d;
        for (int g = 0; g < QK_K / 16; g++) {
            int8x16_t q = n_quant16(src + 16 * g, id);
            vst1q_s8(y[i].qs + 16 * g, q);
            y[i].bsums[g] = vaddlvq_s8(q);
        }
    }
}

/* ---- vec_dot --------------------------------------------------------------------------------- */

static void f32_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static void f16_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(x + i);
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h))), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h))), vld1q_f32(y + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) sum += n_fp16(x[i]) * y[i];
    *s = sum;
}

static void bf16_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const uint16_t *x = vx;
    const float *y = vy;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(x + i);
        a0 = vfmaq_f32(a0, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)), vld1q_f32(y + i + 4));
    }
    float sum = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) sum += emb_bf16_to_fp32(x[i]) * y[i];
    *s = sum;
}

static void q4_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    const int8x16_t k8 = vdupq_n_s8(8);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t raw = vld1q_u8(x[i].qs);
        int32x4_t acc = n_dot16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), k8),
                                vld1q_s8(y[i].qs));
        acc = n_dot16(acc, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), k8), vld1q_s8(y[i].qs + 16));
        sum += n_fp16(x[i].d) * n_fp16(y[i].d) * (float)vaddvq_s32(acc);
    }
    *s = sum;
}

static void q4_1_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t raw = vld1q_u8(x[i].qs);
        int8x16_t y0 = vld1q_s8(y[i].qs), y1 = vld1q_s8(y[i].qs + 16);
        int32x4_t acc = n_dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), y0);
        acc = n_dot16(acc, vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), y1);
        int sumy = vaddlvq_s8(y0) + vaddlvq_s8(y1);
        float dy = n_fp16(y[i].d);
        sum += n_fp16(x[i].d) * dy * (float)vaddvq_s32(acc) + n_fp16(x[i].m) * dy * (float)sumy;
    }
    *s = sum;
}

static void q5_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    const int8x16_t k16 = vdupq_n_s8(16);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t v[2];
        n_q5_values(x[i].qs, x[i].qh, v);
        int32x4_t acc = n_dot16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(v[0]), k16), vld1q_s8(y[i].qs));
        acc = n_dot16(acc, vsubq_s8(vreinterpretq_s8_u8(v[1]), k16), vld1q_s8(y[i].qs + 16));
        sum += n_fp16(x[i].d) * n_fp16(y[i].d) * (float)vaddvq_s32(acc);
    }
    *s = sum;
}

static void q5_1_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint8x16_t v[2];
        n_q5_values(x[i].qs, x[i].qh, v);
        int8x16_t y0 = vld1q_s8(y[i].qs), y1 = vld1q_s8(y[i].qs + 16);
        int32x4_t acc = n_dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(v[0]), y0);
        acc = n_dot16(acc, vreinterpretq_s8_u8(v[1]), y1);
        int sumy = vaddlvq_s8(y0) + vaddlvq_s8(y1);
        float dy = n_fp16(y[i].d);
        sum += n_fp16(x[i].d) * dy * (float)vaddvq_s32(acc) + n_fp16(x[i].m) * dy * (float)sumy;
    }
    *s = sum;
}

static void q8_0_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32x4_t acc = n_dot16(vdupq_n_s32(0), vld1q_s8(x[i].qs), vld1q_s8(y[i].qs));
        acc = n_dot16(acc, vld1q_s8(x[i].qs + 16), vld1q_s8(y[i].qs + 16));
        sum += n_fp16(x[i].d) * n_fp16(y[i].d) * (float)vaddvq_s32(acc);
    }
    *s = sum;
}

/* Q4_K/Q5_K: integer dot per sub-block times its scale, the mins from the activation bsums. */
static inline void n_qk_dot(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, const block_q8_K *y,
                            int *sumi_out, int *summ_out) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        emb_k_scale_min(j, scales, &sc, &m);
        const uint8_t *q = qs + 32 * (j / 2);
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint8x16_t raw = vld1q_u8(q + 16 * h);
            uint8x16_t v = (j & 1) ? vshrq_n_u8(raw, 4) : vandq_u8(raw, vdupq_n_u8(0x0f));
            if (qh) {
                uint8x16_t hb = vandq_u8(vld1q_u8(qh + 16 * h), vdupq_n_u8((uint8_t)(1u << j)));
                v = vorrq_u8(v, vandq_u8(vtstq_u8(hb, hb), vdupq_n_u8(0x10)));
            }
            acc = n_dot16(acc, vreinterpretq_s8_u8(v), vld1q_s8(y->qs + 32 * j + 16 * h));
        }
        sumi += sc * vaddvq_s32(acc);
        summ += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    *sumi_out = sumi;
    *summ_out = summ;
}

static void q4_K_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi, summ;
        n_qk_dot(x[i].scales, x[i].qs, NULL, &y[i], &sumi, &summ);
        sum += n_fp16(x[i].d) * y[i].d * (float)sumi - n_fp16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

static void q5_K_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi, summ;
        n_qk_dot(x[i].scales, x[i].qs, x[i].qh, &y[i], &sumi, &summ);
        sum += n_fp16(x[i].d) * y[i].d * (float)sumi - n_fp16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

static void q6_K_vec_dot_neon(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    int8x16_t v[16];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        n_q6_K_values(&x[i], v);
        int sumi = 0;
        for (int sb = 0; sb < 16; sb++)
            sumi += x[i].scales[sb] * vaddvq_s32(n_dot16(vdupq_n_s32(0), v[sb], vld1q_s8(y[i].qs + 16 * sb)));
        sum += n_fp16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}

void emb_quants_setup_neon(emb_type_traits *t, int n_types) {
    if (n_types <= EMB_TYPE_BF16) return;
    t[EMB_TYPE_F16].to_float = f16_to_float_neon;
    t[EMB_TYPE_BF16].to_float = bf16_to_float_neon;
    t[EMB_TYPE_Q4_0].to_float = q4_0_to_float_neon;
    t[EMB_TYPE_Q4_1].to_float = q4_1_to_float_neon;
    t[EMB_TYPE_Q5_0].to_float = q5_0_to_float_neon;
    t[EMB_TYPE_Q5_1].to_float = q5_1_to_float_neon;
    t[EMB_TYPE_Q8_0].to_float = q8_0_to_float_neon;
    t[EMB_TYPE_Q4_K].to_float = q4_K_to_float_neon;
    t[EMB_TYPE_Q5_K].to_float = q5_K_to_float_neon;
    t[EMB_TYPE_Q6_K].to_float = q6_K_to_float_neon;
    t[EMB_TYPE_Q8_K].to_float = q8_K_to_float_neon;

    t[EMB_TYPE_F16].from_float = f16_from_float_neon;
    t[EMB_TYPE_Q8_0].from_float = q8_0_from_float_neon;
    t[EMB_TYPE_Q8_K].from_float = q8_K_from_float_neon;

    t[EMB_TYPE_F32].vec_dot = f32_vec_dot_neon;
    t[EMB_TYPE_F16].vec_dot = f16_vec_dot_neon;
    t[EMB_TYPE_BF16].vec_dot = bf16_vec_dot_neon;
    t[EMB_TYPE_Q4_0].vec_dot = q4_0_vec_dot_neon;
    t[EMB_TYPE_Q4_1].vec_dot = q4_1_vec_dot_neon;
    t[EMB_TYPE_Q5_0].vec_dot = q5_0_vec_dot_neon;
    t[EMB_TYPE_Q5_1].vec_dot = q5_1_vec_dot_neon;
    t[EMB_TYPE_Q8_0].vec_dot = q8_0_vec_dot_neon;
    t[EMB_TYPE_Q4_K].vec_dot = q4_K_vec_dot_neon;
    t[EMB_TYPE_Q5_K].vec_dot = q5_K_vec_dot_neon;
    t[EMB_TYPE_Q6_K].vec_dot = q6_K_vec_dot_neon;
}
#endif
