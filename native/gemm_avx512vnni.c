/*
 * gemm_avx512vnni.c - the int8 kernel for AVX-512 VNNI: VPDPBUSD of (a + 128) as u8 with int8
 * weights, 6 token rows x 64 outputs in 24 zmm accumulators; each k-step loads 4 weight lines once
 * and broadcasts 4 activation bytes per row. The +128 offset keeps VPDPBUSD's unsigned operand
 * exact; the epilogue subtracts 128 * rsum (the row sums of the int8 weights), which gives the
 * scalar reference's int32 sums exactly. Scalar reference: emb_i8_kernel_scalar in gemm.c.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

static inline __mmask16 tail_mask(int64_t cnt) {
    return cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt > 0 ? cnt : 0)) - 1u);
}

/* Finishes one 16-output vector of row m: exact int32 sum -> y = sa * sw * acc + bias (+ res). */
AI void vnni_store(const emb_matrix *W, __m512i acc, const float *sa, int64_t m, int64_t n0, float *y,
                   const float *res) {
    const int64_t n = W->n;
    __mmask16 mk = tail_mask(n - n0);
    __m512i corr = _mm512_slli_epi32(_mm512_load_si512((const void *)(W->rsum + n0)), 7);
    __m512 s = _mm512_mul_ps(_mm512_set1_ps(sa[m]), _mm512_load_ps(W->scale + n0));
    __m512 b = W->bias ? _mm512_load_ps(W->bias + n0) : _mm512_setzero_ps();
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, corr)), s), b);
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + m * n + n0));
    _mm512_mask_storeu_ps(y + m * n + n0, mk, v);
}

/* VPDPBUSD through inline asm: GCC 12 copies the accumulator of the intrinsic to another register
   (and the stack) on every step of a 24-accumulator loop; the asm form with a tied operand
   allocates cleanly. */
AI __m512i dpbusd(__m512i acc, __m512i a_u8, __m512i w_s8) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a_u8), "vm"(w_s8));
    return acc;
}

static inline __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* The accumulators are named variables, not an array: GCC keeps named vectors in registers but
   spills an array of 24 zmm to the stack on every update. MR and NP are compile-time constants at
   every call, so the unused rows and columns vanish. */
AI void vnni_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, int64_t m,
                  const int MR, int64_t p, const int NP, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), G = kp / 4, ps = EMB_PANEL * kp;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    __m512i c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
    const uint8_t *am = a + m * lda;
    for (int64_t g = 0; g < G; g++) {
        const int8_t *wg = w + g * 64;
        const uint8_t *ag = am + g * 4;
        __m512i w0 = _mm512_load_si512((const void *)wg);
        __m512i w1 = NP > 1 ? _mm512_load_si512((const void *)(wg + ps)) : z;
        __m512i w2 = NP > 2 ? _mm512_load_si512((const void *)(wg + 2 * ps)) : z;
        __m512i w3 = NP > 3 ? _mm512_load_si512((const void *)(wg + 3 * ps)) : z;
#define VROW(R)                                                      \
    if (MR > R) {                                                    \
        __m512i av = bcast4(ag + R * lda);                           \
        c##R##0 = dpbusd(c##R##0, av, w0);              \
        if (NP > 1) c##R##1 = dpbusd(c##R##1, av, w1);  \
        if (NP > 2) c##R##2 = dpbusd(c##R##2, av, w2);  \
        if (NP > 3) c##R##3 = dpbusd(c##R##3, av, w3);  \
    }
        VROW(0) VROW(1) VROW(2) VROW(3) VROW(4) VROW(5)
#undef VROW
    }
#define VEPI(R, C) \
    if (MR > R && NP > C) vnni_store(W, c##R##C, sa, m + R, (p + C) * EMB_PANEL, y, res);
#define VEPI_ROW(R) VEPI(R, 0) VEPI(R, 1) VEPI(R, 2) VEPI(R, 3)
    VEPI_ROW(0) VEPI_ROW(1) VEPI_ROW(2) VEPI_ROW(3) VEPI_ROW(4) VEPI_ROW(5)
#undef VEPI_ROW
#undef VEPI
}

/* One or two rows leave too few independent accumulators to cover VPDPBUSD's latency, so even
   and odd k-groups go to separate sets, added (exactly) at the end. */
AI void vnni_tile_narrow(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, int64_t m,
                         const int MR, int64_t p, const int NP, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), G = kp / 4, ps = EMB_PANEL * kp;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512i d00 = z, d01 = z, d02 = z, d03 = z, d10 = z, d11 = z, d12 = z, d13 = z;
    const uint8_t *am = a + m * lda;
#define NSTEP(ACC, R, OFF)                                                                      \
    if (MR > R) {                                                                               \
        __m512i av = bcast4(ag + R * lda + (OFF) * 4);                                          \
        ACC##R##0 = dpbusd(ACC##R##0, av, _mm512_load_si512((const void *)(wg + (OFF) * 64)));  \
        if (NP > 1) ACC##R##1 = dpbusd(ACC##R##1, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + ps)));     \
        if (NP > 2) ACC##R##2 = dpbusd(ACC##R##2, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + 2 * ps))); \
        if (NP > 3) ACC##R##3 = dpbusd(ACC##R##3, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + 3 * ps))); \
    }
    int64_t g = 0;
    for (; g + 2 <= G; g += 2) {
        const int8_t *wg = w + g * 64;
        const uint8_t *ag = am + g * 4;
        NSTEP(c, 0, 0) NSTEP(c, 1, 0) NSTEP(d, 0, 1) NSTEP(d, 1, 1)
    }
    if (g < G) {
        const int8_t *wg = w + g * 64;
        const uint8_t *ag = am + g * 4;
        NSTEP(c, 0, 0) NSTEP(c, 1, 0)
    }
#undef NSTEP
#define NEPI(R, C) \
    if (MR > R && NP > C) vnni_store(W, _mm512_add_epi32(c##R##C, d##R##C), sa, m + R, (p + C) * EMB_PANEL, y, res);
    NEPI(0, 0) NEPI(0, 1) NEPI(0, 2) NEPI(0, 3) NEPI(1, 0) NEPI(1, 1) NEPI(1, 2) NEPI(1, 3)
#undef NEPI
}

#define VNNI_CALL(MR, NP) vnni_tile(W, a, lda, sa, m, MR, p, NP, y, residual)
#define VNNI_NARROW_CALL(MR, NP) vnni_tile_narrow(W, a, lda, sa, m, MR, p, NP, y, residual)
#define VNNI_NP(CALL, MR)                       \
    switch (np) {                               \
    case 1: CALL(MR, 1); break;                 \
    case 2: CALL(MR, 2); break;                 \
    case 3: CALL(MR, 3); break;                 \
    default: CALL(MR, 4); break;                \
    }

void emb_i8_kernel_avx512vnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                              int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                              const float *residual) {
    /* Rows are dealt into near-equal blocks of at most 6 (7 rows -> 4 + 3, not 6 + 1): a thin
       block runs at a fraction of the throughput of a full one. */
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p += 4) {
        int np = p1 - p < 4 ? (int)(p1 - p) : 4;
        int64_t m = m0;
        for (int64_t b = 0; b < nblk; b++) {
            int mr = (int)(rows / nblk + (b < rows % nblk ? 1 : 0));
            switch (mr) {
            case 1: VNNI_NP(VNNI_NARROW_CALL, 1); break;
            case 2: VNNI_NP(VNNI_NARROW_CALL, 2); break;
            case 3: VNNI_NP(VNNI_CALL, 3); break;
            case 4: VNNI_NP(VNNI_CALL, 4); break;
            case 5: VNNI_NP(VNNI_CALL, 5); break;
            default: VNNI_NP(VNNI_CALL, 6); break;
            }
            m += mr;
        }
    }
}
