/*
 * gemm_avx512vnni.c - the int8 kernel for AVX-512 VNNI: VPDPBUSD of (a + 128) as u8 with int8
 * weights, 6 token rows x 64 outputs in 24 zmm int32 accumulators; each k-step loads 4 weight lines
 * once and broadcasts 4 activation bytes per row. Every 32-block starts its accumulators at rsum
 * (-128 x the block's weight sum), which cancels the +128 offset exactly, so each accumulator ends
 * the block holding the scalar reference's exact int32 sum. It is then folded into a float tile
 * kept in L1 (24 more accumulators would not fit the 32 zmm registers): acc = fma(float(isum),
 * ws * sa, acc), the scalar reference's float steps in its order.
 * Scalar reference: emb_i8_kernel_scalar in gemm.c. Layouts: gemm_impl.h.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

static inline __mmask16 tail_mask(int64_t cnt) {
    return cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt > 0 ? cnt : 0)) - 1u);
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

/* facc[i] = fma(float(isum), ws * sa, facc[i]) for one 16-output vector, then for affine weights
   (AFF, a compile-time constant: the plain tiles carry no trace of it) facc[i] = fma(wm, asum,
   facc[i]). */
AI void fold(float *facc, __m512i isum, float sa, const float *ws, const int AFF, const float *wm, const float *as) {
    __m512 s = _mm512_mul_ps(_mm512_load_ps(ws), _mm512_set1_ps(sa));
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), s, _mm512_load_ps(facc));
    if (AFF) v = _mm512_fmadd_ps(_mm512_load_ps(wm), _mm512_set1_ps(*as), v);
    _mm512_store_ps(facc, v);
}

/* y = facc + bias (+ residual) for one 16-output vector of row m. */
AI void finish(const emb_matrix *W, const float *facc, int64_t m, int64_t n0, float *y, const float *res) {
    const int64_t n = W->n;
    __mmask16 mk = tail_mask(n - n0);
    __m512 v = _mm512_load_ps(facc);
    if (W->bias) v = _mm512_add_ps(v, _mm512_load_ps(W->bias + n0));
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + m * n + n0));
    _mm512_mask_storeu_ps(y + m * n + n0, mk, v);
}

/* The accumulators are named variables, not an array: GCC keeps named vectors in registers but
   spills an array of 24 zmm to the stack on every update. MR and NP are compile-time constants at
   every call, so the unused rows and columns vanish. */
AI void vnni_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                  int64_t m, const int MR, int64_t p, const int NP, const int AFF, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const int32_t *st = W->rsum + p * ss;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    float facc[6][4][16] __attribute__((aligned(64)));
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NP; c++) _mm512_store_ps(facc[r][c], _mm512_setzero_ps());
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    const __m512i z = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i s0 = _mm512_load_si512((const void *)(st + b * EMB_PANEL));
        const __m512i s1 = NP > 1 ? _mm512_load_si512((const void *)(st + ss + b * EMB_PANEL)) : z;
        const __m512i s2 = NP > 2 ? _mm512_load_si512((const void *)(st + 2 * ss + b * EMB_PANEL)) : z;
        const __m512i s3 = NP > 3 ? _mm512_load_si512((const void *)(st + 3 * ss + b * EMB_PANEL)) : z;
        __m512i c00 = s0, c01 = s1, c02 = s2, c03 = s3, c10 = s0, c11 = s1, c12 = s2, c13 = s3;
        __m512i c20 = s0, c21 = s1, c22 = s2, c23 = s3, c30 = s0, c31 = s1, c32 = s2, c33 = s3;
        __m512i c40 = s0, c41 = s1, c42 = s2, c43 = s3, c50 = s0, c51 = s1, c52 = s2, c53 = s3;
#pragma GCC unroll 8
        for (int gg = 0; gg < EMB_QB / 4; gg++) {
            const int8_t *wg = w + (b * (EMB_QB / 4) + gg) * 64;
            const uint8_t *ag = am + (b * (EMB_QB / 4) + gg) * 4;
            __m512i w0 = _mm512_load_si512((const void *)wg);
            __m512i w1 = NP > 1 ? _mm512_load_si512((const void *)(wg + ps)) : z;
            __m512i w2 = NP > 2 ? _mm512_load_si512((const void *)(wg + 2 * ps)) : z;
            __m512i w3 = NP > 3 ? _mm512_load_si512((const void *)(wg + 3 * ps)) : z;
#define VROW(R)                                                      \
    if (MR > R) {                                                    \
        __m512i av = bcast4(ag + R * lda);                           \
        c##R##0 = dpbusd(c##R##0, av, w0);                           \
        if (NP > 1) c##R##1 = dpbusd(c##R##1, av, w1);               \
        if (NP > 2) c##R##2 = dpbusd(c##R##2, av, w2);               \
        if (NP > 3) c##R##3 = dpbusd(c##R##3, av, w3);               \
    }
            VROW(0) VROW(1) VROW(2) VROW(3) VROW(4) VROW(5)
#undef VROW
        }
#define VFOLD(R, C) \
    if (MR > R && NP > C)                                                                            \
        fold(facc[R][C], c##R##C, sam[R * nb + b], ws + C * ss + b * EMB_PANEL, AFF,                 \
             AFF ? wm + C * ss + b * EMB_PANEL : NULL, AFF ? asum + (m + R) * nb + b : NULL);
#define VFOLD_ROW(R) VFOLD(R, 0) VFOLD(R, 1) VFOLD(R, 2) VFOLD(R, 3)
        VFOLD_ROW(0) VFOLD_ROW(1) VFOLD_ROW(2) VFOLD_ROW(3) VFOLD_ROW(4) VFOLD_ROW(5)
#undef VFOLD_ROW
#undef VFOLD
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NP; c++) finish(W, facc[r][c], m + r, (p + c) * EMB_PANEL, y, res);
}

/* One or two rows leave too few independent accumulators to cover VPDPBUSD's latency, so even
   and odd k-groups go to separate sets (c starts at rsum, d at zero), added (exactly) per block. */
AI void vnni_tile_narrow(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                         const float *asum, int64_t m, const int MR, int64_t p, const int NP, const int AFF,
                         float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const int32_t *st = W->rsum + p * ss;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    float facc[2][4][16] __attribute__((aligned(64)));
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NP; c++) _mm512_store_ps(facc[r][c], _mm512_setzero_ps());
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    const __m512i z = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i s0 = _mm512_load_si512((const void *)(st + b * EMB_PANEL));
        const __m512i s1 = NP > 1 ? _mm512_load_si512((const void *)(st + ss + b * EMB_PANEL)) : z;
        const __m512i s2 = NP > 2 ? _mm512_load_si512((const void *)(st + 2 * ss + b * EMB_PANEL)) : z;
        const __m512i s3 = NP > 3 ? _mm512_load_si512((const void *)(st + 3 * ss + b * EMB_PANEL)) : z;
        __m512i c00 = s0, c01 = s1, c02 = s2, c03 = s3, c10 = s0, c11 = s1, c12 = s2, c13 = s3;
        __m512i d00 = z, d01 = z, d02 = z, d03 = z, d10 = z, d11 = z, d12 = z, d13 = z;
#define NSTEP(ACC, R, OFF)                                                                      \
    if (MR > R) {                                                                               \
        __m512i av = bcast4(ag + R * lda + (OFF) * 4);                                          \
        ACC##R##0 = dpbusd(ACC##R##0, av, _mm512_load_si512((const void *)(wg + (OFF) * 64)));  \
        if (NP > 1) ACC##R##1 = dpbusd(ACC##R##1, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + ps)));     \
        if (NP > 2) ACC##R##2 = dpbusd(ACC##R##2, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + 2 * ps))); \
        if (NP > 3) ACC##R##3 = dpbusd(ACC##R##3, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + 3 * ps))); \
    }
#pragma GCC unroll 4
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g += 2) {
            const int8_t *wg = w + g * 64;
            const uint8_t *ag = am + g * 4;
            NSTEP(c, 0, 0) NSTEP(c, 1, 0) NSTEP(d, 0, 1) NSTEP(d, 1, 1)
        }
#undef NSTEP
#define NFOLD(R, C)                                                                                  \
    if (MR > R && NP > C)                                                                            \
        fold(facc[R][C], _mm512_add_epi32(c##R##C, d##R##C), sam[R * nb + b], ws + C * ss + b * EMB_PANEL, \
             AFF, AFF ? wm + C * ss + b * EMB_PANEL : NULL, AFF ? asum + (m + R) * nb + b : NULL);
        NFOLD(0, 0) NFOLD(0, 1) NFOLD(0, 2) NFOLD(0, 3) NFOLD(1, 0) NFOLD(1, 1) NFOLD(1, 2) NFOLD(1, 3)
#undef NFOLD
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NP; c++) finish(W, facc[r][c], m + r, (p + c) * EMB_PANEL, y, res);
}

#define VNNI_CALL(MR, NP) vnni_tile(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define VNNI_NARROW_CALL(MR, NP) vnni_tile_narrow(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define VNNI_NP(CALL, MR)                       \
    switch (np) {                               \
    case 1: CALL(MR, 1); break;                 \
    case 2: CALL(MR, 2); break;                 \
    case 3: CALL(MR, 3); break;                 \
    default: CALL(MR, 4); break;                \
    }

/* AFF: whether W is affine (W->wmin), a compile-time constant in each instantiation. */
AI void vnni_kernel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                    int64_t m0, int64_t m1, int64_t p0, int64_t p1, const int AFF, float *y,
                    const float *residual) {
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p += 4) {
        int np = p1 - p < 4 ? (int)(p1 - p) : 4;
        int64_t m = m0;
        for (int64_t b = 0; b < nblk; b++) {
            int mr = emb_rows_of_block(rows, nblk, b);
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

void emb_i8_kernel_avx512vnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                              const float *asum, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                              const float *residual) {
    if (W->wmin)
        vnni_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 1, y, residual);
    else
        vnni_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 0, y, residual);
}
