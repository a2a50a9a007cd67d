/*
 * quants_x86.h - x86 kernel bodies shared by quants_avx2.c, quants_avx512.c and
 * quants_avx512vnni.c (internal to those three files).
 *
 * Each of them includes this file once, compiled with its own ISA flags, after defining:
 *   QX(name)                       name with the ISA's suffix (the kernels are static)
 *   qx_mul_sum_us8(a, b)           int32 x 8: sums of 4 adjacent products of unsigned bytes a and
 *                                  signed bytes b (maddubs + madd, or VPDPBUSD)
 *   qx_scale_vec(lo, hi)           scale operand of qx_dot_scaled: lo for bytes 0..15, hi for 16..31
 *   qx_dot_scaled(a, b, sc)        qx_mul_sum_us8 with every sum multiplied by its half's scale
 * and optionally QX_512 for 16-lane float conversions. It provides the float stores itself (8 or,
 * with QX_512, 16 lanes at a time):
 *   qx_store32(dst, q, dlo, dhi)   dst[i] = d * (float)q[i] for the 32 int8 lanes of q, d = dlo for
 *                                  lanes 0..15 and dhi for 16..31
 *   qx_store32_add(dst, q, d, m)   dst[i] = d * (float)q[i] + m
 *   qx_store32_sub(dst, q, d, m)   dst[i] = d * (float)q[i] - m
 *
 * Bit-exactness with the scalar reference: to_float does a multiply then an add or subtract, as the
 * reference does, and the build's -std=c11 keeps the compiler from contracting them into an FMA.
 * The K-quant dots reduce each super-block to an exact integer and then accumulate in the same
 * float order as the reference, so they match it exactly; the 32-element block dots accumulate in
 * vector lanes (faster; they agree with the reference to rounding).
 *
 * Activation bytes are -127..127 (quants.c); the sign trick below moves the weight's sign onto them,
 * and maddubs pair sums stay below 2 * 128 * 127 = 32512, inside int16.
 */
#ifndef EMBEDD_QUANTS_X86_BODY
#define EMBEDD_QUANTS_X86_BODY

#include <immintrin.h>
#include <string.h>

#include "quants.h"

#ifdef QX_512
static inline __m512 qx_cvt16(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

static inline void qx_store32(float *dst, __m256i q, float dlo, float dhi) {
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_set1_ps(dlo), qx_cvt16(_mm256_castsi256_si128(q))));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_set1_ps(dhi), qx_cvt16(_mm256_extracti128_si256(q, 1))));
}

static inline void qx_store32_add(float *dst, __m256i q, float d, float m) {
    __m512 vd = _mm512_set1_ps(d), vm = _mm512_set1_ps(m);
    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(vd, qx_cvt16(_mm256_castsi256_si128(q))), vm));
    _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(vd, qx_cvt16(_mm256_extracti128_si256(q, 1))), vm));
}
#else
static inline void qx_store8(float *dst, __m128i q8, __m256 d) {
    _mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))));
}

static inline void qx_store32(float *dst, __m256i q, float dlo, float dhi) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m256 vlo = _mm256_set1_ps(dlo), vhi = _mm256_set1_ps(dhi);
    qx_store8(dst, lo, vlo);
    qx_store8(dst + 8, _mm_srli_si128(lo, 8), vlo);
    qx_store8(dst + 16, hi, vhi);
    qx_store8(dst + 24, _mm_srli_si128(hi, 8), vhi);
}

static inline void qx_store8_add(float *dst, __m128i q8, __m256 d, __m256 m) {
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8))), m));
}

static inline void qx_store32_add(float *dst, __m256i q, float d, float m) {
    __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    qx_store8_add(dst, lo, vd, vm);
    qx_store8_add(dst + 8, _mm_srli_si128(lo, 8), vd, vm);
    qx_store8_add(dst + 16, hi, vd, vm);
    qx_store8_add(dst + 24, _mm_srli_si128(hi, 8), vd, vm);
}
#endif

static inline void qx_store32_sub(float *dst, __m256i q, float d, float m) {
    qx_store32_add(dst, q, d, -m); /* x - m == x + (-m) exactly */
}

static inline float qx_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int qx_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float qx_fp16(emb_fp16 h) { return _cvtsh_ss(h); }

/* 16 bytes of packed nibbles -> 32 bytes: the low nibbles (elements 0..15), then the high ones. */
static inline __m256i qx_nibbles(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* 32 bits (little-endian) -> 32 bytes, 0xff where the bit is set. */
static inline __m256i qx_bits_to_bytes(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* Dot of signed bytes x and activation bytes y (-127..127): |x| times y with x's sign. */
static inline __m256i qx_dot_s8(__m256i x, __m256i y) {
    return qx_mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

#define LOADU(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

/* ---- to_float -------------------------------------------------------------------------------- */

static void QX(f16_to_float)(const void *src, float *dst, int64_t n) {
    const emb_fp16 *x = src;
    int64_t i = 0;
#ifdef QX_512
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
#endif
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) dst[i] = qx_fp16(x[i]);
}

static void QX(bf16_to_float)(const void *src, float *dst, int64_t n) {
    const emb_bf16 *x = src;
    int64_t i = 0;
#ifdef QX_512
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
#endif
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = emb_bf16_to_fp32(x[i]);
}

static void QX(q4_0_to_float)(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        float d = qx_fp16(b[i].d);
        qx_store32(dst, _mm256_sub_epi8(qx_nibbles(b[i].qs), _mm256_set1_epi8(8)), d, d);
    }
}

static void QX(q4_1_to_float)(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < n / QK4_1; i++, dst += QK4_1)
        qx_store32_add(dst, qx_nibbles(b[i].qs), qx_fp16(b[i].d), qx_fp16(b[i].m));
}

static void QX(q5_0_to_float)(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    for (int64_t i = 0; i < n / QK5_0; i++, dst += QK5_0) {
        /* nibble - 16 is nibble | 0xf0 as a byte; where the fifth bit is set it is nibble itself */
        __m256i q = _mm256_or_si256(qx_nibbles(b[i].qs),
                                    _mm256_andnot_si256(qx_bits_to_bytes(b[i].qh), _mm256_set1_epi8((char)0xf0)));
        float d = qx_fp16(b[i].d);
        qx_store32(dst, q, d, d);
    }
}

static void QX(q5_1_to_float)(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    for (int64_t i = 0; i < n / QK5_1; i++, dst += QK5_1) {
        __m256i q = _mm256_or_si256(qx_nibbles(b[i].qs),
                                    _mm256_and_si256(qx_bits_to_bytes(b[i].qh), _mm256_set1_epi8(0x10)));
        qx_store32_add(dst, q, qx_fp16(b[i].d), qx_fp16(b[i].m));
    }
}

static void QX(q8_0_to_float)(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        float d = qx_fp16(b[i].d);
        qx_store32(dst, LOADU(b[i].qs), d, d);
    }
}

static void QX(q4_K_to_float)(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = qx_fp16(b[i].d), dmin = qx_fp16(b[i].dmin);
        for (int c = 0; c < 4; c++, dst += 64) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, b[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
            __m256i raw = LOADU(b[i].qs + 32 * c);
            qx_store32_sub(dst, _mm256_and_si256(raw, m4), d * (float)sc1, dmin * (float)m1);
            qx_store32_sub(dst + 32, _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), d * (float)sc2,
                           dmin * (float)m2);
        }
    }
}

static void QX(q5_K_to_float)(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = qx_fp16(b[i].d), dmin = qx_fp16(b[i].dmin);
        __m256i hb = LOADU(b[i].qh); /* bit j of byte l: fifth bit of sub-block j, position l */
        for (int c = 0; c < 4; c++, dst += 64) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, b[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, b[i].scales, &sc2, &m2);
            __m256i raw = LOADU(b[i].qs + 32 * c);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            qx_store32_sub(dst, lo, d * (float)sc1, dmin * (float)m1);
            qx_store32_sub(dst + 32, hi, d * (float)sc2, dmin * (float)m2);
        }
    }
}

/* The four 32-element groups of one 128-element half of a Q6_K block, as unsigned 0..63 bytes. */
static inline void qx_q6_K_half(const uint8_t *ql, const uint8_t *qh, __m256i v[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    __m256i q1 = LOADU(ql), q2 = LOADU(ql + 32), h = LOADU(qh);
    v[0] = _mm256_or_si256(_mm256_and_si256(q1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
    v[1] = _mm256_or_si256(_mm256_and_si256(q2, m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
    v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
    v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
}

static void QX(q6_K_to_float)(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    const __m256i k32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = qx_fp16(b[i].d);
        for (int h = 0; h < 2; h++) {
            __m256i v[4];
            qx_q6_K_half(b[i].ql + 64 * h, b[i].qh + 32 * h, v);
            const int8_t *sc = b[i].scales + 8 * h;
            for (int g = 0; g < 4; g++, dst += 32)
                qx_store32(dst, _mm256_sub_epi8(v[g], k32), d * (float)sc[2 * g], d * (float)sc[2 * g + 1]);
        }
    }
}

static void QX(q8_K_to_float)(const void *src, float *dst, int64_t n) {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j += 32, dst += 32) qx_store32(dst, LOADU(b[i].qs + j), b[i].d, b[i].d);
}

/* ---- from_float ------------------------------------------------------------------------------ */

static void QX(f16_from_float)(const float *src, void *dst, int64_t n) {
    emb_fp16 *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = emb_fp32_to_fp16(src[i]);
}

static void QX(bf16_from_float)(const float *src, void *dst, int64_t n) {
    emb_bf16 *y = dst;
    int64_t i = 0;
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(src + i);
        __m256i u = _mm256_castps_si256(v);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
        __m256i nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
        r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
    }
    for (; i < n; i++) y[i] = emb_fp32_to_bf16(src[i]);
}

/* Quantises 32 floats with 1/d = id into 32 bytes (round to nearest even, as nearbyintf). */
static inline void qx_quant32(const float *x, __m256 vid, int8_t *out) {
    __m256i q[4];
    for (int k = 0; k < 4; k++) {
        __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q)); /* NaN -> 0, as the reference */
        q[k] = _mm256_cvtps_epi32(r);
    }
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    p = _mm256_max_epi8(p, _mm256_set1_epi8(-127)); /* never -128 (only reachable with inf scales) */
    /* the packs work within 128-bit lanes: dwords come out as 0 2 4 6 / 1 3 5 7 of the wanted order */
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)out, p);
}

static inline __m256 qx_absmax8(const float *x, int64_t n, __m256 m) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    /* max_ps returns its second operand when either is NaN: NaN inputs are skipped, as fmaxf does */
    for (int64_t j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
    return m;
}

static inline float qx_hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static void QX(q8_0_from_float)(const float *src, void *dst, int64_t n) {
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, src += QK8_0) {
        float amax = qx_hmax_ps(qx_absmax8(src, QK8_0, _mm256_setzero_ps()));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = emb_fp32_to_fp16(d);
        qx_quant32(src, _mm256_set1_ps(id), y[i].qs);
    }
}

static void QX(q8_K_from_float)(const float *src, void *dst, int64_t n) {
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, src += QK_K) {
        float amax = qx_hmax_ps(qx_absmax8(src, QK_K, _mm256_setzero_ps()));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = d;
        __m256 vid = _mm256_set1_ps(id);
        for (int j = 0; j < QK_K; j += 32) qx_quant32(src + j, vid, y[i].qs + j);
        /* sums of each 16 bytes: maddubs with ones gives pair sums, madd with ones sums of 4 */
        const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
        for (int j = 0; j < QK_K; j += 64) {
            __m256i a = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, LOADU(y[i].qs + j)), ones16);
            __m256i b = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, LOADU(y[i].qs + j + 32)), ones16);
            /* a: sums of 4 for bytes 0..31 (lanes: 0-3 | 4-7); hadd pairs twice -> sums of 16 */
            __m256i s = _mm256_hadd_epi32(a, b);  /* a01 a23 b01 b23 | a45 a67 b45 b67 */
            s = _mm256_hadd_epi32(s, s);          /* A0 B0 A0 B0 | A1 B1 A1 B1 */
            y[i].bsums[j / 16 + 0] = (int16_t)_mm256_extract_epi32(s, 0);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm256_extract_epi32(s, 4);
            y[i].bsums[j / 16 + 2] = (int16_t)_mm256_extract_epi32(s, 1);
            y[i].bsums[j / 16 + 3] = (int16_t)_mm256_extract_epi32(s, 5);
        }
    }
}

/* ---- vec_dot --------------------------------------------------------------------------------- */

static void QX(f32_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = qx_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i] * y[i];
    *s = sum;
}

static inline __m256 qx_load_f16(const emb_fp16 *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 qx_load_bf16(const emb_bf16 *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static void QX(f16_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const emb_fp16 *x = vx;
    const float *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(qx_load_f16(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(qx_load_f16(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(qx_load_f16(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(qx_load_f16(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(qx_load_f16(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = qx_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += qx_fp16(x[i]) * y[i];
    *s = sum;
}

static void QX(bf16_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const emb_bf16 *x = vx;
    const float *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(qx_load_bf16(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(qx_load_bf16(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(qx_load_bf16(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(qx_load_bf16(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(qx_load_bf16(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = qx_hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += emb_bf16_to_fp32(x[i]) * y[i];
    *s = sum;
}

static void QX(q4_0_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i k8 = _mm256_set1_epi8(8);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256i qx = _mm256_sub_epi8(qx_nibbles(x[i].qs), k8);
        __m256 p = _mm256_cvtepi32_ps(qx_dot_s8(qx, LOADU(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].d) * qx_fp16(y[i].d)), p, acc);
    }
    *s = qx_hsum_ps(acc);
}

/* Q4_1/Q5_1: d*dy*dot(q, qy) + m*dy*sum(qy), the activation sum taken from the Q8_0 bytes. */
static void QX(q4_1_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_1 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256i qy = LOADU(y[i].qs);
        float dy = qx_fp16(y[i].d);
        __m256 p = _mm256_cvtepi32_ps(qx_mul_sum_us8(qx_nibbles(x[i].qs), qy));
        __m256 sy = _mm256_cvtepi32_ps(qx_mul_sum_us8(ones, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].d) * dy), p, acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].m) * dy), sy, acc);
    }
    *s = qx_hsum_ps(acc);
}

static void QX(q5_0_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i hi4 = _mm256_set1_epi8((char)0xf0);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256i qx = _mm256_or_si256(qx_nibbles(x[i].qs), _mm256_andnot_si256(qx_bits_to_bytes(x[i].qh), hi4));
        __m256 p = _mm256_cvtepi32_ps(qx_dot_s8(qx, LOADU(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].d) * qx_fp16(y[i].d)), p, acc);
    }
    *s = qx_hsum_ps(acc);
}

static void QX(q5_1_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_1 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi8(1), b4 = _mm256_set1_epi8(0x10);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256i qx = _mm256_or_si256(qx_nibbles(x[i].qs), _mm256_and_si256(qx_bits_to_bytes(x[i].qh), b4));
        __m256i qy = LOADU(y[i].qs);
        float dy = qx_fp16(y[i].d);
        __m256 p = _mm256_cvtepi32_ps(qx_mul_sum_us8(qx, qy));
        __m256 sy = _mm256_cvtepi32_ps(qx_mul_sum_us8(ones, qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].d) * dy), p, acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].m) * dy), sy, acc);
    }
    *s = qx_hsum_ps(acc);
}

static void QX(q8_0_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q8_0 *x = vx;
    const block_q8_0 *y = vy;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        __m256 p = _mm256_cvtepi32_ps(qx_dot_s8(LOADU(x[i].qs), LOADU(y[i].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(qx_fp16(x[i].d) * qx_fp16(y[i].d)), p, acc);
    }
    *s = qx_hsum_ps(acc);
}

static void QX(q4_K_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i acc = _mm256_setzero_si256();
        int summ = 0;
        for (int c = 0; c < 4; c++) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, x[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, x[i].scales, &sc2, &m2);
            __m256i raw = LOADU(x[i].qs + 32 * c);
            acc = _mm256_add_epi32(acc, qx_dot_scaled(_mm256_and_si256(raw, m4), LOADU(y[i].qs + 64 * c),
                                                      qx_scale_vec(sc1, sc1)));
            acc = _mm256_add_epi32(acc, qx_dot_scaled(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                                      LOADU(y[i].qs + 64 * c + 32), qx_scale_vec(sc2, sc2)));
            summ += m1 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m2 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        int sumi = qx_hsum_epi32(acc);
        sum += qx_fp16(x[i].d) * y[i].d * (float)sumi - qx_fp16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

static void QX(q5_K_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i acc = _mm256_setzero_si256();
        __m256i hb = LOADU(x[i].qh);
        int summ = 0;
        for (int c = 0; c < 4; c++) {
            int sc1, m1, sc2, m2;
            emb_k_scale_min(2 * c, x[i].scales, &sc1, &m1);
            emb_k_scale_min(2 * c + 1, x[i].scales, &sc2, &m2);
            __m256i raw = LOADU(x[i].qs + 32 * c);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                         _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            acc = _mm256_add_epi32(acc, qx_dot_scaled(lo, LOADU(y[i].qs + 64 * c), qx_scale_vec(sc1, sc1)));
            acc = _mm256_add_epi32(acc, qx_dot_scaled(hi, LOADU(y[i].qs + 64 * c + 32), qx_scale_vec(sc2, sc2)));
            summ += m1 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) +
                    m2 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        int sumi = qx_hsum_epi32(acc);
        sum += qx_fp16(x[i].d) * y[i].d * (float)sumi - qx_fp16(x[i].dmin) * y[i].d * (float)summ;
    }
    *s = sum;
}

/* Q6_K: dot of the unsigned 0..63 values, minus 32 * the activation sums (bsums) per sub-block. */
static void QX(q6_K_vec_dot)(int64_t n, float *s, const void *vx, const void *vy) {
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i acc = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i v[4];
            qx_q6_K_half(x[i].ql + 64 * h, x[i].qh + 32 * h, v);
            const int8_t *sc = x[i].scales + 8 * h;
            const int8_t *a = y[i].qs + 128 * h;
            for (int g = 0; g < 4; g++)
                acc = _mm256_add_epi32(acc, qx_dot_scaled(v[g], LOADU(a + 32 * g), qx_scale_vec(sc[2 * g], sc[2 * g + 1])));
        }
        int off = 0;
        for (int sb = 0; sb < 16; sb++) off += x[i].scales[sb] * y[i].bsums[sb];
        int sumi = qx_hsum_epi32(acc) - 32 * off;
        sum += qx_fp16(x[i].d) * y[i].d * (float)sumi;
    }
    *s = sum;
}

/* Installs every kernel of this file into a traits table. */
static void QX(install)(emb_type_traits *t, int n_types) {
    if (n_types <= EMB_TYPE_BF16) return;
    t[EMB_TYPE_F16].to_float = QX(f16_to_float);
    t[EMB_TYPE_BF16].to_float = QX(bf16_to_float);
    t[EMB_TYPE_Q4_0].to_float = QX(q4_0_to_float);
    t[EMB_TYPE_Q4_1].to_float = QX(q4_1_to_float);
    t[EMB_TYPE_Q5_0].to_float = QX(q5_0_to_float);
    t[EMB_TYPE_Q5_1].to_float = QX(q5_1_to_float);
    t[EMB_TYPE_Q8_0].to_float = QX(q8_0_to_float);
    t[EMB_TYPE_Q4_K].to_float = QX(q4_K_to_float);
    t[EMB_TYPE_Q5_K].to_float = QX(q5_K_to_float);
    t[EMB_TYPE_Q6_K].to_float = QX(q6_K_to_float);
    t[EMB_TYPE_Q8_K].to_float = QX(q8_K_to_float);

    t[EMB_TYPE_F16].from_float = QX(f16_from_float);
    t[EMB_TYPE_BF16].from_float = QX(bf16_from_float);
    t[EMB_TYPE_Q8_0].from_float = QX(q8_0_from_float);
    t[EMB_TYPE_Q8_K].from_float = QX(q8_K_from_float);

    t[EMB_TYPE_F32].vec_dot = QX(f32_vec_dot);
    t[EMB_TYPE_F16].vec_dot = QX(f16_vec_dot);
    t[EMB_TYPE_BF16].vec_dot = QX(bf16_vec_dot);
    t[EMB_TYPE_Q4_0].vec_dot = QX(q4_0_vec_dot);
    t[EMB_TYPE_Q4_1].vec_dot = QX(q4_1_vec_dot);
    t[EMB_TYPE_Q5_0].vec_dot = QX(q5_0_vec_dot);
    t[EMB_TYPE_Q5_1].vec_dot = QX(q5_1_vec_dot);
    t[EMB_TYPE_Q8_0].vec_dot = QX(q8_0_vec_dot);
    t[EMB_TYPE_Q4_K].vec_dot = QX(q4_K_vec_dot);
    t[EMB_TYPE_Q5_K].vec_dot = QX(q5_K_vec_dot);
    t[EMB_TYPE_Q6_K].vec_dot = QX(q6_K_vec_dot);
}

#undef LOADU
#endif
