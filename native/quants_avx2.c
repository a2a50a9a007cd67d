/*
 * quants_avx2.c - AVX2 (+FMA, F16C) variants of the block kernels; the bodies are in quants_x86.h.
 * Byte dots use maddubs (unsigned x signed pairs into int16) then madd with ones into int32.
 */
#include <immintrin.h>

#include "quants.h"

#define QX(name) name##_avx2

static inline __m256i qx_mul_sum_us8(__m256i a, __m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

/* The int16 scale folds into the madd step: each int16 pair sum is multiplied by its scale. */
static inline __m256i qx_scale_vec(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}

static inline __m256i qx_dot_scaled(__m256i a, __m256i b, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), sc);
}

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

static inline void qx_store32_sub(float *dst, __m256i q, float d, float m) {
    qx_store32_add(dst, q, d, -m); /* x - m == x + (-m) exactly */
}

#include "quants_x86.h"

void emb_quants_setup_avx2(emb_type_traits *t, int n_types) { QX(install)(t, n_types); }
