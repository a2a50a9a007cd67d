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

#include "quants_x86.h"

void emb_quants_setup_avx2(emb_type_traits *t, int n_types) { QX(install)(t, n_types); }
