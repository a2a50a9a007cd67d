/*
 * quants_avx512.c - AVX-512 (F/BW/VL/DQ) variants: 16-lane dequantisation (model load) and float
 * conversion; the byte dots are the AVX2 ones recompiled (bodies in quants_x86.h).
 */
#include <immintrin.h>

#include "quants.h"

#define QX(name) name##_avx512
#define QX_512 1

static inline __m256i qx_mul_sum_us8(__m256i a, __m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

static inline __m256i qx_scale_vec(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)hi), _mm_set1_epi16((short)lo));
}

static inline __m256i qx_dot_scaled(__m256i a, __m256i b, __m256i sc) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), sc);
}

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

static inline void qx_store32_sub(float *dst, __m256i q, float d, float m) { qx_store32_add(dst, q, d, -m); }

#include "quants_x86.h"

void emb_quants_setup_avx512(emb_type_traits *t, int n_types) { QX(install)(t, n_types); }
