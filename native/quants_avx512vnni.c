/*
 * quants_avx512vnni.c - AVX-512 VNNI variants: byte dots with VPDPBUSD (unsigned x signed bytes
 * straight into int32, no int16 intermediate), 16-lane dequantisation as quants_avx512.c.
 * Bodies in quants_x86.h.
 */
#include <immintrin.h>

#include "quants.h"

#define QX(name) name##_avx512vnni
#define QX_512 1

static inline __m256i qx_mul_sum_us8(__m256i a, __m256i b) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b);
}

/* VPDPBUSD yields int32 sums of 4 bytes; lanes 0..3 cover bytes 0..15, lanes 4..7 bytes 16..31. */
static inline __m256i qx_scale_vec(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi32(hi), _mm_set1_epi32(lo));
}

static inline __m256i qx_dot_scaled(__m256i a, __m256i b, __m256i sc) {
    return _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b), sc);
}

#include "quants_x86.h"

void emb_quants_setup_avx512vnni(emb_type_traits *t, int n_types) { QX(install)(t, n_types); }
