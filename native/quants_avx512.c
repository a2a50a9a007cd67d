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

#include "quants_x86.h"

void emb_quants_setup_avx512(emb_type_traits *t, int n_types) { QX(install)(t, n_types); }
