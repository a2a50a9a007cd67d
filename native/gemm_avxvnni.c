/*
 * gemm_avxvnni.c - the int8 kernel for AVX-VNNI (the VEX form of VPDPBUSD on 256-bit registers:
 * Intel's cores without AVX-512 since Alder Lake, and Zen 5). VPDPBUSD of (a + 128) as u8 with the
 * int8 weights, one instruction where AVX2 needs maddubs, madd and an add (and the sign trick for
 * weights beyond +-16); each 32-block starts its accumulators at rsum (-128 x the block's weight
 * sum), which cancels the offset exactly, so each accumulator ends the block holding the scalar
 * reference's exact int32 sum, folded as acc = fma(float(isum), ws * sa, acc) in its order.
 * Tile: up to 6 token rows x one 16-output panel (two ymm halves) in 12 int32 accumulators; the 16
 * registers leave no room for 12 float accumulators as well, so those live in an L1 tile. One or
 * two rows split even and odd k-groups over two accumulator sets to cover VPDPBUSD's latency.
 * Everything else at this level (activation quantisation, float kernels, attention) is AVX2's.
 * Scalar reference: emb_i8_kernel_scalar in gemm.c. Layouts: gemm_impl.h.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

/* VPDPBUSD with a tied accumulator operand: GCC 12 copies the intrinsic's accumulator to another
   register on every step of a many-accumulator loop (see gemm_avx512vnni.c). {vex} selects the
   AVX-VNNI encoding. */
AI __m256i dpbusd(__m256i acc, __m256i a_u8, __m256i w_s8) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a_u8), "xm"(w_s8));
    return acc;
}

static inline __m256i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* facc = fma(float(isum), ws * sa, facc) for 8 outputs, then for affine weights (AFF, a
   compile-time constant) facc = fma(wmin, asum, facc). */
AI void fold(float *facc, __m256i isum, float sa, const float *ws, const int AFF, const float *wm, const float *as) {
    __m256 s = _mm256_mul_ps(_mm256_load_ps(ws), _mm256_set1_ps(sa));
    __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), s, _mm256_load_ps(facc));
    if (AFF) v = _mm256_fmadd_ps(_mm256_load_ps(wm), _mm256_set1_ps(*as), v);
    _mm256_store_ps(facc, v);
}

/* The accumulators are named variables (GCC keeps those in registers, an array of them it spills);
   MR is a compile-time constant at every call, so unused rows vanish. */
AI void vnni_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                  int64_t m, const int MR, int64_t p, const int AFF, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const int32_t *st = W->rsum + p * ss;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    float facc[6][EMB_PANEL] __attribute__((aligned(32)));
    for (int r = 0; r < MR; r++) {
        _mm256_store_ps(facc[r], _mm256_setzero_ps());
        _mm256_store_ps(facc[r] + 8, _mm256_setzero_ps());
    }
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    for (int64_t b = 0; b < nb; b++) {
        const __m256i s0 = _mm256_load_si256((const __m256i *)(st + b * EMB_PANEL));
        const __m256i s1 = _mm256_load_si256((const __m256i *)(st + b * EMB_PANEL + 8));
        __m256i c00 = s0, c01 = s1, c10 = s0, c11 = s1, c20 = s0, c21 = s1;
        __m256i c30 = s0, c31 = s1, c40 = s0, c41 = s1, c50 = s0, c51 = s1;
#pragma GCC unroll 8
        for (int gg = 0; gg < EMB_QB / 4; gg++) {
            const int8_t *wg = w + (b * (EMB_QB / 4) + gg) * 64;
            const uint8_t *ag = am + (b * (EMB_QB / 4) + gg) * 4;
            const __m256i w0 = _mm256_load_si256((const __m256i *)wg);
            const __m256i w1 = _mm256_load_si256((const __m256i *)(wg + 32));
#define VROW(R)                                      \
    if (MR > R) {                                    \
        const __m256i av = bcast4(ag + R * lda);     \
        c##R##0 = dpbusd(c##R##0, av, w0);           \
        c##R##1 = dpbusd(c##R##1, av, w1);           \
    }
            VROW(0) VROW(1) VROW(2) VROW(3) VROW(4) VROW(5)
#undef VROW
        }
#define VFOLD(R)                                                                                    \
    if (MR > R) {                                                                                   \
        const float *as_ = AFF ? asum + (m + R) * nb + b : NULL;                                    \
        fold(facc[R], c##R##0, sam[R * nb + b], ws + b * EMB_PANEL, AFF, AFF ? wm + b * EMB_PANEL : NULL, as_); \
        fold(facc[R] + 8, c##R##1, sam[R * nb + b], ws + b * EMB_PANEL + 8, AFF,                    \
             AFF ? wm + b * EMB_PANEL + 8 : NULL, as_);                                             \
    }
        VFOLD(0) VFOLD(1) VFOLD(2) VFOLD(3) VFOLD(4) VFOLD(5)
#undef VFOLD
    }
    for (int r = 0; r < MR; r++)
        emb_finish16_avx2(W, m + r, p, _mm256_load_ps(facc[r]), _mm256_load_ps(facc[r] + 8), y, res);
}

/* One or two rows: even k-groups into c (from rsum), odd ones into d (from zero), added exactly per
   block, so each row keeps four independent VPDPBUSD chains. */
AI void vnni_tile_narrow(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                         const float *asum, int64_t m, const int MR, int64_t p, const int AFF, float *y,
                         const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const int32_t *st = W->rsum + p * ss;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    float facc[2][EMB_PANEL] __attribute__((aligned(32)));
    for (int r = 0; r < MR; r++) {
        _mm256_store_ps(facc[r], _mm256_setzero_ps());
        _mm256_store_ps(facc[r] + 8, _mm256_setzero_ps());
    }
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    const __m256i z = _mm256_setzero_si256();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i s0 = _mm256_load_si256((const __m256i *)(st + b * EMB_PANEL));
        const __m256i s1 = _mm256_load_si256((const __m256i *)(st + b * EMB_PANEL + 8));
        __m256i c00 = s0, c01 = s1, c10 = s0, c11 = s1, d00 = z, d01 = z, d10 = z, d11 = z;
#define NSTEP(ACC, R, OFF)                                                                      \
    if (MR > R) {                                                                               \
        const __m256i av = bcast4(ag + R * lda + (OFF) * 4);                                    \
        ACC##R##0 = dpbusd(ACC##R##0, av, _mm256_load_si256((const __m256i *)(wg + (OFF) * 64)));      \
        ACC##R##1 = dpbusd(ACC##R##1, av, _mm256_load_si256((const __m256i *)(wg + (OFF) * 64 + 32))); \
    }
#pragma GCC unroll 4
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g += 2) {
            const int8_t *wg = w + g * 64;
            const uint8_t *ag = am + g * 4;
            NSTEP(c, 0, 0) NSTEP(c, 1, 0) NSTEP(d, 0, 1) NSTEP(d, 1, 1)
        }
#undef NSTEP
#define NFOLD(R)                                                                                     \
    if (MR > R) {                                                                                    \
        const float *as_ = AFF ? asum + (m + R) * nb + b : NULL;                                     \
        fold(facc[R], _mm256_add_epi32(c##R##0, d##R##0), sam[R * nb + b], ws + b * EMB_PANEL, AFF,  \
             AFF ? wm + b * EMB_PANEL : NULL, as_);                                                  \
        fold(facc[R] + 8, _mm256_add_epi32(c##R##1, d##R##1), sam[R * nb + b], ws + b * EMB_PANEL + 8, AFF, \
             AFF ? wm + b * EMB_PANEL + 8 : NULL, as_);                                              \
    }
        NFOLD(0) NFOLD(1)
#undef NFOLD
    }
    for (int r = 0; r < MR; r++)
        emb_finish16_avx2(W, m + r, p, _mm256_load_ps(facc[r]), _mm256_load_ps(facc[r] + 8), y, res);
}

/* AFF: whether W is affine (W->wmin), a compile-time constant in each instantiation. Rows go in
   near-equal blocks of at most 6 (emb_rows_of_block). */
AI void vnni_kernel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                    int64_t m0, int64_t m1, int64_t p0, int64_t p1, const int AFF, float *y,
                    const float *residual) {
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p++) {
        int64_t m = m0;
        for (int64_t blk = 0; blk < nblk; blk++) {
            const int mr = emb_rows_of_block(rows, nblk, blk);
            switch (mr) {
            case 1: vnni_tile_narrow(W, a, lda, sa, asum, m, 1, p, AFF, y, residual); break;
            case 2: vnni_tile_narrow(W, a, lda, sa, asum, m, 2, p, AFF, y, residual); break;
            case 3: vnni_tile(W, a, lda, sa, asum, m, 3, p, AFF, y, residual); break;
            case 4: vnni_tile(W, a, lda, sa, asum, m, 4, p, AFF, y, residual); break;
            case 5: vnni_tile(W, a, lda, sa, asum, m, 5, p, AFF, y, residual); break;
            default: vnni_tile(W, a, lda, sa, asum, m, 6, p, AFF, y, residual); break;
            }
            m += mr;
        }
    }
}

void emb_i8_kernel_avxvnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                           const float *asum, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                           const float *residual) {
    if (W->wmin)
        vnni_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 1, y, residual);
    else
        vnni_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 0, y, residual);
}
