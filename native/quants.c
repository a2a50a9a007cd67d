/*
 * quants.c - GGUF block formats: type sizes, fp16/bf16 conversion, the scalar reference kernels and
 * the per-SIMD-level traits tables.
 *
 * The scalar kernels are written straight from the format definitions and are the reference every
 * SIMD variant (quants_<isa>.c) is tested against. Float results of to_float are computed with the
 * same operations in the same order as the SIMD variants (a multiply, then an add: no FMA), so they
 * agree bit for bit.
 *
 * Activations for Q4_1 and Q5_1 weights are Q8_0 (not ggml's Q8_1): the sum of the activation
 * values a Q4_1/Q5_1 minimum multiplies is recomputed from the Q8_0 block's int8 values, which is
 * exact and costs little, and keeps one activation format for all 32-element block types.
 *
 * Activations (Q8_0, Q8_K) are quantised symmetrically to -127..127, never -128: the x86 kernels
 * move the weight's sign onto the activation (sign trick), which must not overflow.
 */
#include "quants.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ---- fp16 / bf16 ---------------------------------------------------------------------------- */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Branches on the exponent class; real weights are almost all normal numbers, so the branch is
   predictable and the common path is one add. */
static inline float fp16_to_fp32(emb_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    if (em >= 0x0400u && em < 0x7c00u) /* normal: rebias the exponent by 127 - 15 */
        return f32_from_bits(sign | ((em << 13) + (112u << 23)));
    if (em >= 0x7c00u) {
        uint32_t mant = em & 0x3ffu;
        if (mant == 0) return f32_from_bits(sign | 0x7f800000u); /* infinity */
        /* NaN: payload kept, quiet bit set (as IEEE conversion and F16C do) */
        return f32_from_bits(sign | 0x7fc00000u | (mant << 13));
    }
    if (em == 0) return f32_from_bits(sign);
    /* subnormal: em * 2^-24 with its top bit at position p becomes 1.f * 2^(p - 24) */
    uint32_t p = 31u - (uint32_t)__builtin_clz(em);
    return f32_from_bits(sign | ((p + 103u) << 23) | ((em << (23u - p)) & 0x7fffffu));
}

float emb_fp16_to_fp32(emb_fp16 h) { return fp16_to_fp32(h); }

emb_fp16 emb_fp32_to_fp16(float f) {
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (emb_fp16)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520 rounds to infinity (ties to even: 65504 is odd) */
        return (emb_fp16)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: fp16 subnormal (or zero), units of 2^-24 */
        if (a <= 0x33000000u) return (emb_fp16)sign; /* <= 2^-25: rounds to zero */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (emb_fp16)(sign | q);
    }
    a += 0xfffu + ((a >> 13) & 1u);
    return (emb_fp16)(sign | ((a >> 13) - (112u << 10)));
}

float emb_bf16_to_fp32(emb_bf16 h) { return f32_from_bits((uint32_t)h << 16); }

emb_bf16 emb_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (emb_bf16)((u >> 16) | 0x40u); /* quiet NaN */
    return (emb_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#define FP16(h) fp16_to_fp32(h)

/* ---- type sizes ------------------------------------------------------------------------------ */

int emb_type_supported(int32_t type) {
    switch (type) {
    case EMB_TYPE_F32: case EMB_TYPE_F16: case EMB_TYPE_BF16:
    case EMB_TYPE_Q4_0: case EMB_TYPE_Q4_1: case EMB_TYPE_Q5_0: case EMB_TYPE_Q5_1:
    case EMB_TYPE_Q8_0: case EMB_TYPE_Q4_K: case EMB_TYPE_Q5_K: case EMB_TYPE_Q6_K:
        return 1;
    default:
        return 0; /* includes Q8_K: activations only */
    }
}

int64_t emb_type_block_elems(int32_t type) {
    switch (type) {
    case EMB_TYPE_F32: case EMB_TYPE_F16: case EMB_TYPE_BF16: return 1;
    case EMB_TYPE_Q4_0: return QK4_0;
    case EMB_TYPE_Q4_1: return QK4_1;
    case EMB_TYPE_Q5_0: return QK5_0;
    case EMB_TYPE_Q5_1: return QK5_1;
    case EMB_TYPE_Q8_0: return QK8_0;
    case EMB_TYPE_Q4_K: case EMB_TYPE_Q5_K: case EMB_TYPE_Q6_K: case EMB_TYPE_Q8_K: return QK_K;
    default: return 0;
    }
}

int64_t emb_type_block_bytes(int32_t type) {
    switch (type) {
    case EMB_TYPE_F32: return 4;
    case EMB_TYPE_F16: case EMB_TYPE_BF16: return 2;
    case EMB_TYPE_Q4_0: return sizeof(block_q4_0);
    case EMB_TYPE_Q4_1: return sizeof(block_q4_1);
    case EMB_TYPE_Q5_0: return sizeof(block_q5_0);
    case EMB_TYPE_Q5_1: return sizeof(block_q5_1);
    case EMB_TYPE_Q8_0: return sizeof(block_q8_0);
    case EMB_TYPE_Q4_K: return sizeof(block_q4_K);
    case EMB_TYPE_Q5_K: return sizeof(block_q5_K);
    case EMB_TYPE_Q6_K: return sizeof(block_q6_K);
    case EMB_TYPE_Q8_K: return sizeof(block_q8_K);
    default: return 0;
    }
}

int64_t emb_row_bytes(int32_t type, int64_t n) {
    int64_t be = emb_type_block_elems(type), bb = emb_type_block_bytes(type);
    if (be <= 0 || bb <= 0 || n < 0 || n % be != 0) return -1;
    int64_t blocks = n / be;
    if (blocks > INT64_MAX / bb) return -1;
    return blocks * bb;
}

const char *emb_type_name(int32_t type) {
    switch (type) {
    case EMB_TYPE_F32: return "f32";
    case EMB_TYPE_F16: return "f16";
    case EMB_TYPE_BF16: return "bf16";
    case EMB_TYPE_Q4_0: return "q4_0";
    case EMB_TYPE_Q4_1: return "q4_1";
    case EMB_TYPE_Q5_0: return "q5_0";
    case EMB_TYPE_Q5_1: return "q5_1";
    case EMB_TYPE_Q8_0: return "q8_0";
    case EMB_TYPE_Q4_K: return "q4_K";
    case EMB_TYPE_Q5_K: return "q5_K";
    case EMB_TYPE_Q6_K: return "q6_K";
    case EMB_TYPE_Q8_K: return "q8_K";
    default: return "unknown";
    }
}

/* ---- scalar to_float ------------------------------------------------------------------------- */

static void f32_to_float(const void *src, float *dst, int64_t n) {
    if (n <= 0) return;
    memmove(dst, src, (size_t)n * sizeof(float));
}

static void f16_to_float(const void *src, float *dst, int64_t n) {
    const emb_fp16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = FP16(x[i]);
}

static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const emb_bf16 *x = src;
    for (int64_t i = 0; i < n; i++) dst[i] = emb_bf16_to_fp32(x[i]);
}

/* Q4_0: x = d * (q - 8); byte j holds element j (low nibble) and element j + 16 (high nibble). */
static void q4_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        float d = FP16(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            dst[j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Q4_1: x = d * q + m. */
static void q4_1_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1) {
        float d = FP16(b[i].d), m = FP16(b[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            dst[j] = d * (float)(b[i].qs[j] & 0x0f) + m;
            dst[j + 16] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}

/* Q5_0: x = d * (q - 16), q's fifth bit for element j is bit j of the little-endian qh. */
static void q5_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        float d = FP16(b[i].d);
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < QK5_0 / 2; j++) {
            int lo = (b[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int hi = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            dst[j] = d * (float)(lo - 16);
            dst[j + 16] = d * (float)(hi - 16);
        }
    }
}

/* Q5_1: x = d * q + m. */
static void q5_1_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        float d = FP16(b[i].d), m = FP16(b[i].m);
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < QK5_1 / 2; j++) {
            int lo = (b[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int hi = (b[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            dst[j] = d * (float)lo + m;
            dst[j + 16] = d * (float)hi + m;
        }
    }
}

static void q8_0_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float d = FP16(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[j] = d * (float)b[i].qs[j];
    }
}


/* Q4_K: 8 sub-blocks of 32; x = d * sc * q - dmin * m. qs byte l of 64-element chunk c holds
   element 64c + l (low nibble, sub-block 2c) and 64c + 32 + l (high nibble, sub-block 2c + 1). */
static void q4_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = FP16(b[i].d), dmin = FP16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, b[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
            float d1 = d * (float)sc1, mm1 = dmin * (float)m1;
            float d2 = d * (float)sc2, mm2 = dmin * (float)m2;
            for (int l = 0; l < 32; l++) {
                dst[l] = d1 * (float)(q[l] & 0x0f) - mm1;
                dst[l + 32] = d2 * (float)(q[l] >> 4) - mm2;
            }
        }
    }
}

/* Q5_K: as Q4_K with a fifth bit: qh byte l, bit 2c for element 64c + l, bit 2c + 1 for
   64c + 32 + l. */
static void q5_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = FP16(b[i].d), dmin = FP16(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int c = 0; c < 4; c++, q += 32, dst += 64) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, b[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
            float d1 = d * (float)sc1, mm1 = dmin * (float)m1;
            float d2 = d * (float)sc2, mm2 = dmin * (float)m2;
            for (int l = 0; l < 32; l++) {
                int lo = (q[l] & 0x0f) | (((b[i].qh[l] >> (2 * c)) & 1) << 4);
                int hi = (q[l] >> 4) | (((b[i].qh[l] >> (2 * c + 1)) & 1) << 4);
                dst[l] = d1 * (float)lo - mm1;
                dst[l + 32] = d2 * (float)hi - mm2;
            }
        }
    }
}

/* The 256 values of a Q6_K block, 0..63. Each 128-element half h uses ql[64h..64h+63] and
   qh[32h..32h+31]; within it, for l in 0..31, element l takes the low nibble of ql[l], element
   l + 32 the low nibble of ql[l + 32], elements l + 64 and l + 96 the high nibbles of the same two
   bytes, and their top two bits are bits 0-1, 2-3, 4-5, 6-7 of qh[l]. */
static void q6_K_unpack(const block_q6_K *b, uint8_t q[QK_K]) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        uint8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4));
            o[l + 32] = (uint8_t)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4));
            o[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * sc * (q - 32). */
static void q6_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    uint8_t q[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K) {
        float d = FP16(b[i].d);
        q6_K_unpack(&b[i], q);
        for (int s = 0; s < 16; s++) {
            float ds = d * (float)b[i].scales[s];
            for (int l = 0; l < 16; l++) dst[16 * s + l] = ds * (float)(q[16 * s + l] - 32);
        }
    }
}

static void q8_K_to_float(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, dst += QK_K)
        for (int j = 0; j < QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
}

/* ---- scalar from_float ----------------------------------------------------------------------- */

static void f32_from_float(const float *src, void *dst, int64_t n) {
    if (n <= 0) return;
    memmove(dst, src, (size_t)n * sizeof(float));
}

static void f16_from_float(const float *src, void *dst, int64_t n) {
    emb_fp16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = emb_fp32_to_fp16(src[i]);
}

static void bf16_from_float(const float *src, void *dst, int64_t n) {
    emb_bf16 *y = dst;
    for (int64_t i = 0; i < n; i++) y[i] = emb_fp32_to_bf16(src[i]);
}

/* Rounds v (x * 1/d, so |v| <= 127 up to rounding) to nearest even and clamps to -127..127; a NaN
   input becomes 0 rather than undefined behaviour. */
static inline int8_t quant_round(float v) {
    float r = nearbyintf(v);
    if (!(r == r)) return 0;
    if (r > 127.0f) r = 127.0f;
    if (r < -127.0f) r = -127.0f;
    return (int8_t)r;
}

static void q8_0_from_float(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = emb_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = quant_round(src[j] * id);
    }
}

static void q8_K_from_float(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(src[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int j = 0; j < QK_K; j++) y[i].qs[j] = quant_round(src[j] * id);
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)s;
        }
    }
}

/* ---- scalar vec_dot -------------------------------------------------------------------------- */

/* Float dots accumulate in double: this is the reference the SIMD variants are measured against. */
static void f32_vec_dot(int64_t n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)a[i] * (double)b[i];
    *s = (float)sum;
}

static void f16_vec_dot(int64_t n, float *s, const void *x, const void *y) {
    const emb_fp16 *a = x;
    const float *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)FP16(a[i]) * (double)b[i];
    *s = (float)sum;
}

static void bf16_vec_dot(int64_t n, float *s, const void *x, const void *y) {
    const emb_bf16 *a = x;
    const float *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)emb_bf16_to_fp32(a[i]) * (double)b[i];
    *s = (float)sum;
}

static void q4_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sum += FP16(x[i].d) * FP16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

static void q4_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0, sumy = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (x[i].qs[j] & 0x0f) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
            sumy += y[i].qs[j] + y[i].qs[j + 16];
        }
        float dy = FP16(y[i].d);
        sum += FP16(x[i].d) * dy * (float)sumi + FP16(x[i].m) * dy * (float)sumy;
    }
    *s = sum;
}

static void q5_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int lo = ((x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4)) - 16;
            int hi = ((x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16;
            sumi += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
        }
        sum += FP16(x[i].d) * FP16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

static void q5_1_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0, sumy = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (x[i].qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            int hi = (x[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            sumi += lo * y[i].qs[j] + hi * y[i].qs[j + 16];
            sumy += y[i].qs[j] + y[i].qs[j + 16];
        }
        float dy = FP16(y[i].d);
        sum += FP16(x[i].d) * dy * (float)sumi + FP16(x[i].m) * dy * (float)sumy;
    }
    *s = sum;
}

static void q8_0_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sum += FP16(x[i].d) * FP16(y[i].d) * (float)sumi;
    }
    *s = sum;
}

/* Q4_K . Q8_K: sum_j d*sc_j*dot_j - dmin*m_j*sum(y in j); the activation sums come from bsums. */
static void q4_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            emb_k_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int8_t *a = y[i].qs + 32 * j;
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += ((j & 1) ? (q[l] >> 4) : (q[l] & 0x0f)) * a[l];
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

static void q5_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            emb_k_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            const int8_t *a = y[i].qs + 32 * j;
            int dot = 0;
            for (int l = 0; l < 32; l++) {
                int v = ((j & 1) ? (q[l] >> 4) : (q[l] & 0x0f)) | (((x[i].qh[l] >> j) & 1) << 4);
                dot += v * a[l];
            }
            sumi += sc * dot;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi - FP16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

static void q6_K_vec_dot(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    uint8_t q[QK_K];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        q6_K_unpack(&x[i], q);
        int sumi = 0;
        for (int sb = 0; sb < 16; sb++) {
            int dot = 0;
            for (int l = 0; l < 16; l++) dot += (q[16 * sb + l] - 32) * y[i].qs[16 * sb + l];
            sumi += x[i].scales[sb] * dot;
        }
        sum += FP16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}

/* ---- traits tables --------------------------------------------------------------------------- */

#define EMB_N_TYPES 31 /* highest type id (BF16 = 30) + 1 */
#define EMB_N_LEVELS EMB_SIMD_N_LEVELS

static emb_type_traits g_traits[EMB_N_LEVELS][EMB_N_TYPES];
static int g_level_built[EMB_N_LEVELS];
static pthread_once_t g_traits_once = PTHREAD_ONCE_INIT;

/* Each ISA file overrides the entries it has faster variants for (declared here rather than in a
   header: only this file builds the tables). */
#if defined(__x86_64__) || defined(_M_X64)
void emb_quants_setup_avx2(emb_type_traits *t, int n_types);
void emb_quants_setup_avx512(emb_type_traits *t, int n_types);
void emb_quants_setup_avx512vnni(emb_type_traits *t, int n_types);
#endif
#if defined(__aarch64__)
void emb_quants_setup_neon(emb_type_traits *t, int n_types);
#endif

static void set_traits(emb_type_traits *t, int32_t type, emb_to_float_fn to_float,
                       emb_from_float_fn from_float, int32_t vec_dot_type, emb_vec_dot_fn vec_dot) {
    emb_type_traits *e = &t[type];
    e->name = emb_type_name(type);
    e->blck_elems = emb_type_block_elems(type);
    e->blck_bytes = emb_type_block_bytes(type);
    e->is_quantized = !(type == EMB_TYPE_F32 || type == EMB_TYPE_F16 || type == EMB_TYPE_BF16);
    e->to_float = to_float;
    e->from_float = from_float;
    e->vec_dot_type = vec_dot_type;
    e->vec_dot = vec_dot;
}

static void build_tables(void) {
    emb_type_traits *s = g_traits[EMB_SIMD_SCALAR];
    set_traits(s, EMB_TYPE_F32, f32_to_float, f32_from_float, EMB_TYPE_F32, f32_vec_dot);
    set_traits(s, EMB_TYPE_F16, f16_to_float, f16_from_float, EMB_TYPE_F32, f16_vec_dot);
    set_traits(s, EMB_TYPE_BF16, bf16_to_float, bf16_from_float, EMB_TYPE_F32, bf16_vec_dot);
    set_traits(s, EMB_TYPE_Q4_0, q4_0_to_float, NULL, EMB_TYPE_Q8_0, q4_0_vec_dot);
    set_traits(s, EMB_TYPE_Q4_1, q4_1_to_float, NULL, EMB_TYPE_Q8_0, q4_1_vec_dot);
    set_traits(s, EMB_TYPE_Q5_0, q5_0_to_float, NULL, EMB_TYPE_Q8_0, q5_0_vec_dot);
    set_traits(s, EMB_TYPE_Q5_1, q5_1_to_float, NULL, EMB_TYPE_Q8_0, q5_1_vec_dot);
    set_traits(s, EMB_TYPE_Q8_0, q8_0_to_float, q8_0_from_float, EMB_TYPE_Q8_0, q8_0_vec_dot);
    set_traits(s, EMB_TYPE_Q4_K, q4_K_to_float, NULL, EMB_TYPE_Q8_K, q4_K_vec_dot);
    set_traits(s, EMB_TYPE_Q5_K, q5_K_to_float, NULL, EMB_TYPE_Q8_K, q5_K_vec_dot);
    set_traits(s, EMB_TYPE_Q6_K, q6_K_to_float, NULL, EMB_TYPE_Q8_K, q6_K_vec_dot);
    set_traits(s, EMB_TYPE_Q8_K, q8_K_to_float, q8_K_from_float, EMB_TYPE_Q8_K, NULL);
    g_level_built[EMB_SIMD_SCALAR] = 1;

    /* A level starts as a copy of the one below it, so a missing variant falls back. */
#if defined(__x86_64__) || defined(_M_X64)
    memcpy(g_traits[EMB_SIMD_AVX2], s, sizeof g_traits[0]);
    emb_quants_setup_avx2(g_traits[EMB_SIMD_AVX2], EMB_N_TYPES);
    g_level_built[EMB_SIMD_AVX2] = 1;
    memcpy(g_traits[EMB_SIMD_AVX512], g_traits[EMB_SIMD_AVX2], sizeof g_traits[0]);
    emb_quants_setup_avx512(g_traits[EMB_SIMD_AVX512], EMB_N_TYPES);
    g_level_built[EMB_SIMD_AVX512] = 1;
    memcpy(g_traits[EMB_SIMD_AVX512VNNI], g_traits[EMB_SIMD_AVX512], sizeof g_traits[0]);
    emb_quants_setup_avx512vnni(g_traits[EMB_SIMD_AVX512VNNI], EMB_N_TYPES);
    g_level_built[EMB_SIMD_AVX512VNNI] = 1;
    /* AVX-VNNI changes the int8 matrix kernel only: the block kernels are AVX2's */
    memcpy(g_traits[EMB_SIMD_AVXVNNI], g_traits[EMB_SIMD_AVX2], sizeof g_traits[0]);
    g_level_built[EMB_SIMD_AVXVNNI] = 1;
#endif
#if defined(__aarch64__)
    memcpy(g_traits[EMB_SIMD_NEON], s, sizeof g_traits[0]);
    emb_quants_setup_neon(g_traits[EMB_SIMD_NEON], EMB_N_TYPES);
    g_level_built[EMB_SIMD_NEON] = 1;
#endif
}

const emb_type_traits *emb_get_type_traits_level(int32_t type, int level) {
    if (type < 0 || type >= EMB_N_TYPES || level < 0 || level >= EMB_N_LEVELS) return NULL;
    pthread_once(&g_traits_once, build_tables);
    if (!g_level_built[level]) return NULL;
    /* a level this CPU cannot run would fault on its first instruction: refuse it */
    if (!emb_simd_can_run(level)) return NULL;
    const emb_type_traits *t = &g_traits[level][type];
    return t->to_float ? t : NULL;
}

const emb_type_traits *emb_get_type_traits(int32_t type) {
    return emb_get_type_traits_level(type, emb_simd_active());
}
