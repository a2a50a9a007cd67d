/*
 * gemm_neon.c - arm64 Advanced SIMD kernels: activation quantisation (per 32-block), the float FMA
 * kernel (6 rows x 16 outputs), the int8 kernel (SDOT where the CPU has the dot-product extension,
 * else widening multiplies with pairwise accumulation - both exact per 32-block), and the
 * attention sgemms.
 * Scalar references: gemm.c. Layouts: gemm_impl.h.
 */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <math.h>
#include <string.h>
#include <sys/auxv.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif

void emb_quant_row_neon(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128) {
    const int32x4_t lo = vdupq_n_s32(-127), hi = vdupq_n_s32(127);
    const int8x8_t off = vdup_n_s8((int8_t)(offset128 ? -128 : 0));
    int64_t i = 0, b = 0;
    for (; i + EMB_QB <= k; i += EMB_QB, b++) {
        float32x4_t v[8];
        float32x4_t vmax = vdupq_n_f32(0.0f);
        for (int j = 0; j < 8; j++) {
            v[j] = vld1q_f32(x + i + 4 * j);
            vmax = vmaxnmq_f32(vmax, vabsq_f32(v[j])); /* maxNum: a NaN is ignored, as in the scalar reference */
        }
        float amax = vmaxvq_f32(vmax);
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 8; j += 2) {
            /* vcvtnq rounds to nearest even, as lrintf does in the default rounding mode. */
            int32x4_t a0 = vminq_s32(vmaxq_s32(vcvtnq_s32_f32(vmulq_n_f32(v[j], inv)), lo), hi);
            int32x4_t a1 = vminq_s32(vmaxq_s32(vcvtnq_s32_f32(vmulq_n_f32(v[j + 1], inv)), lo), hi);
            int8x8_t qv = vmovn_s16(vcombine_s16(vmovn_s32(a0), vmovn_s32(a1)));
            vst1_u8(q + i + 4 * j, vreinterpret_u8_s8(vadd_s8(qv, off)));
        }
        sa[b] = amax / 127.0f;
    }
    /* The final partial block and the padding: the scalar reference on the rest of the row, which
       starts on a block boundary (same IEEE operations, so the same bytes). */
    emb_quant_row_scalar(x + i, k - i, lda - i, q + i, sa + b, offset128);
}

/* 16 finished outputs of one row (cnt valid), plus the residual if any. */
AI void store16(float *y, const float *res, int64_t cnt, float32x4_t v0, float32x4_t v1, float32x4_t v2,
                float32x4_t v3) {
    float t[16];
    vst1q_f32(t, v0);
    vst1q_f32(t + 4, v1);
    vst1q_f32(t + 8, v2);
    vst1q_f32(t + 12, v3);
    for (int64_t j = 0; j < cnt; j++) y[j] = t[j] + (res ? res[j] : 0.0f);
}

/* ---- float kernel ------------------------------------------------------------------------------ */

AI void f32_tile(const emb_matrix *W, const float *x, int64_t m, int mr, int64_t p, float *y,
                 const float *res) {
    const int64_t k = W->k, n = W->n;
    const float *w = (const float *)W->data + p * EMB_PANEL * k;
    float32x4_t acc[6][4];
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = vdupq_n_f32(0.0f);
    const float *xm = x + m * k;
    for (int64_t kk = 0; kk < k; kk++) {
        const float *wk = w + kk * EMB_PANEL;
        float32x4_t w0 = vld1q_f32(wk), w1 = vld1q_f32(wk + 4), w2 = vld1q_f32(wk + 8), w3 = vld1q_f32(wk + 12);
        for (int r = 0; r < mr; r++) {
            float a = xm[r * k + kk];
            acc[r][0] = vfmaq_n_f32(acc[r][0], w0, a);
            acc[r][1] = vfmaq_n_f32(acc[r][1], w1, a);
            acc[r][2] = vfmaq_n_f32(acc[r][2], w2, a);
            acc[r][3] = vfmaq_n_f32(acc[r][3], w3, a);
        }
    }
    int64_t n0 = p * EMB_PANEL, cnt = n - n0 < EMB_PANEL ? n - n0 : EMB_PANEL;
    float32x4_t b[4];
    for (int c = 0; c < 4; c++) b[c] = W->bias ? vld1q_f32(W->bias + n0 + 4 * c) : vdupq_n_f32(0.0f);
    for (int r = 0; r < mr; r++)
        store16(y + (m + r) * n + n0, res ? res + (m + r) * n + n0 : NULL, cnt, vaddq_f32(acc[r][0], b[0]),
                vaddq_f32(acc[r][1], b[1]), vaddq_f32(acc[r][2], b[2]), vaddq_f32(acc[r][3], b[3]));
}

void emb_f32_kernel_neon(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                         int64_t p1, float *y, const float *residual) {
    for (int64_t p = p0; p < p1; p++)
        for (int64_t m = m0; m < m1; m += 6) {
            switch (m1 - m < 6 ? m1 - m : 6) {
            case 1: f32_tile(W, x, m, 1, p, y, residual); break;
            case 2: f32_tile(W, x, m, 2, p, y, residual); break;
            case 3: f32_tile(W, x, m, 3, p, y, residual); break;
            case 4: f32_tile(W, x, m, 4, p, y, residual); break;
            case 5: f32_tile(W, x, m, 5, p, y, residual); break;
            default: f32_tile(W, x, m, 6, p, y, residual); break;
            }
        }
}

/* ---- int8 kernels ------------------------------------------------------------------------------ */

/* fa = fma(float(isum), ws * sa, fa) for the 16 outputs of one row and one 32-block, then for
   affine weights (wm not NULL) fa = fma(wm, asum, fa) (the scalar reference's float steps in its
   order). */
AI void i8_fold(float32x4_t fa[4], const float *ws, float sa, const float *wm, const float *as, int32x4_t a0,
                int32x4_t a1, int32x4_t a2, int32x4_t a3) {
    int32x4_t a[4] = {a0, a1, a2, a3};
    for (int c = 0; c < 4; c++) fa[c] = vfmaq_f32(fa[c], vcvtq_f32_s32(a[c]), vmulq_n_f32(vld1q_f32(ws + 4 * c), sa));
    if (wm)
        for (int c = 0; c < 4; c++) fa[c] = vfmaq_n_f32(fa[c], vld1q_f32(wm + 4 * c), *as);
}

/* y = fa + bias (+ residual) for the 16 outputs of row m. */
AI void i8_store(const emb_matrix *W, int64_t m, int64_t n0, float *y, const float *res, const float32x4_t fa[4]) {
    const int64_t n = W->n, cnt = n - n0 < EMB_PANEL ? n - n0 : EMB_PANEL;
    float32x4_t v[4];
    for (int c = 0; c < 4; c++) v[c] = W->bias ? vaddq_f32(fa[c], vld1q_f32(W->bias + n0 + 4 * c)) : fa[c];
    store16(y + m * n + n0, res ? res + m * n + n0 : NULL, cnt, v[0], v[1], v[2], v[3]);
}

static inline int8x16_t bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* Without SDOT: vmull_s8 gives 8 exact int16 products (|p| <= 127 * 127), vpadalq adds neighbour
   pairs into int32; a final pairwise add joins each row's two halves. Two rows per tile. */
AI void i8_tile_mull(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                     int64_t m, int mr, int64_t p, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const float *ws = W->scale + p * nb * EMB_PANEL;
    const float *wm = W->wmin ? W->wmin + p * nb * EMB_PANEL : NULL;
    float32x4_t fa[2][4];
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < 4; c++) fa[r][c] = vdupq_n_f32(0.0f);
    const uint8_t *am = a + m * lda;
    for (int64_t b = 0; b < nb; b++) {
        int32x4_t acc[2][8];
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < 8; j++) acc[r][j] = vdupq_n_s32(0);
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++) {
            int8x16_t wv[4];
            for (int c = 0; c < 4; c++) wv[c] = vld1q_s8(w + g * 64 + 16 * c);
            for (int r = 0; r < mr; r++) {
                int8x16_t av = bcast4(am + r * lda + g * 4);
                for (int c = 0; c < 4; c++) {
                    acc[r][2 * c] = vpadalq_s16(acc[r][2 * c], vmull_s8(vget_low_s8(wv[c]), vget_low_s8(av)));
                    acc[r][2 * c + 1] = vpadalq_s16(acc[r][2 * c + 1], vmull_high_s8(wv[c], av));
                }
            }
        }
        /* acc[r][2c] lanes: (row 4c: k0+k1, k2+k3; row 4c+1: ...); pairwise add gives rows 4c..4c+3. */
        for (int r = 0; r < mr; r++)
            i8_fold(fa[r], ws + b * EMB_PANEL, sa[(m + r) * nb + b], wm ? wm + b * EMB_PANEL : NULL,
                    wm ? asum + (m + r) * nb + b : NULL, vpaddq_s32(acc[r][0], acc[r][1]),
                    vpaddq_s32(acc[r][2], acc[r][3]), vpaddq_s32(acc[r][4], acc[r][5]), vpaddq_s32(acc[r][6], acc[r][7]));
    }
    for (int r = 0; r < mr; r++) i8_store(W, m + r, p * EMB_PANEL, y, res, fa[r]);
}

__attribute__((target("arch=armv8.2-a+dotprod"))) static void i8_kernel_sdot(const emb_matrix *W, const uint8_t *a, int64_t lda,
                                                               const float *sa, const float *asum, int64_t m0, int64_t m1,
                                                               int64_t p0, int64_t p1, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB;
    for (int64_t p = p0; p < p1; p++) {
        const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
        const float *ws = W->scale + p * nb * EMB_PANEL;
        const float *wm = W->wmin ? W->wmin + p * nb * EMB_PANEL : NULL;
        for (int64_t m = m0; m < m1; m += 4) {
            int mr = m1 - m < 4 ? (int)(m1 - m) : 4;
            float32x4_t fa[4][4];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) fa[r][c] = vdupq_n_f32(0.0f);
            const uint8_t *am = a + m * lda;
            for (int64_t b = 0; b < nb; b++) {
                int32x4_t acc[4][4];
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) acc[r][c] = vdupq_n_s32(0);
                for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++) {
                    int8x16_t w0 = vld1q_s8(w + g * 64), w1 = vld1q_s8(w + g * 64 + 16);
                    int8x16_t w2 = vld1q_s8(w + g * 64 + 32), w3 = vld1q_s8(w + g * 64 + 48);
                    for (int r = 0; r < mr; r++) {
                        int8x16_t av = bcast4(am + r * lda + g * 4);
                        acc[r][0] = vdotq_s32(acc[r][0], w0, av);
                        acc[r][1] = vdotq_s32(acc[r][1], w1, av);
                        acc[r][2] = vdotq_s32(acc[r][2], w2, av);
                        acc[r][3] = vdotq_s32(acc[r][3], w3, av);
                    }
                }
                for (int r = 0; r < mr; r++)
                    i8_fold(fa[r], ws + b * EMB_PANEL, sa[(m + r) * nb + b], wm ? wm + b * EMB_PANEL : NULL,
                            wm ? asum + (m + r) * nb + b : NULL, acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
            }
            for (int r = 0; r < mr; r++) i8_store(W, m + r, p * EMB_PANEL, y, res, fa[r]);
        }
    }
}

static int have_sdot(void) {
    static int cached = -1;
    if (cached < 0) cached = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) ? 1 : 0;
    return cached;
}

void emb_i8_kernel_neon(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                        int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y, const float *residual) {
    if (have_sdot()) {
        i8_kernel_sdot(W, a, lda, sa, asum, m0, m1, p0, p1, y, residual);
        return;
    }
    for (int64_t p = p0; p < p1; p++)
        for (int64_t m = m0; m < m1; m += 2) {
            if (m1 - m >= 2)
                i8_tile_mull(W, a, lda, sa, asum, m, 2, p, y, residual);
            else
                i8_tile_mull(W, a, lda, sa, asum, m, 1, p, y, residual);
        }
}

/* ---- attention sgemms: tiles of 4 rows x 16 columns --------------------------------------------- */

/* C[0..mr)[0..ncols) (= or +=) alpha * A B over K, B rows of 16 readable floats when ncols == 16;
   narrower panels go through a zero-padded copy. */
static void sg_tile(int mr, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                    int64_t ldc, int64_t ncols, float alpha, int accumulate) {
    float32x4_t acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = vdupq_n_f32(0.0f);
    for (int64_t kk = 0; kk < K; kk++) {
        const float *b = B + kk * ldb;
        float32x4_t b0, b1, b2, b3;
        if (ncols == 16) {
            b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
        } else {
            float t[16] = {0};
            memcpy(t, b, (size_t)ncols * sizeof(float));
            b0 = vld1q_f32(t), b1 = vld1q_f32(t + 4), b2 = vld1q_f32(t + 8), b3 = vld1q_f32(t + 12);
        }
        for (int r = 0; r < mr; r++) {
            float a = A[r * lda + kk];
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, a);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, a);
            acc[r][2] = vfmaq_n_f32(acc[r][2], b2, a);
            acc[r][3] = vfmaq_n_f32(acc[r][3], b3, a);
        }
    }
    for (int r = 0; r < mr; r++) {
        float t[16];
        for (int c = 0; c < 4; c++) vst1q_f32(t + 4 * c, vmulq_n_f32(acc[r][c], alpha));
        float *cp = C + r * ldc;
        for (int64_t j = 0; j < ncols; j++) cp[j] = accumulate ? cp[j] + t[j] : t[j];
    }
}

static void sg_panel(int64_t M, int64_t K, const float *A, int64_t lda, const float *Bp, int64_t ldbp,
                     float *C, int64_t ldc, int64_t ncols, float alpha, int accumulate) {
    for (int64_t i = 0; i < M; i += 4)
        sg_tile(M - i < 4 ? (int)(M - i) : 4, K, A + i * lda, lda, Bp, ldbp, C + i * ldc, ldc, ncols, alpha, accumulate);
}

void emb_sgemm_nn_neon(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float *C, int64_t ldc) {
    for (int64_t j = 0; j < N; j += 16)
        sg_panel(M, K, A, lda, B + j, ldb, C + j, ldc, N - j < 16 ? N - j : 16, 1.0f, 0);
}

#define NT_KC 256

void emb_sgemm_nt_neon(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc) {
    float bt[NT_KC * 16];
    for (int64_t j = 0; j < N; j += 16) {
        int64_t ncols = N - j < 16 ? N - j : 16;
        if (K <= 0) {
            sg_panel(M, 0, A, lda, bt, 16, C + j, ldc, ncols, alpha, 0);
            continue;
        }
        for (int64_t k0 = 0; k0 < K; k0 += NT_KC) {
            int64_t kc = K - k0 < NT_KC ? K - k0 : NT_KC;
            memset(bt, 0, sizeof bt);
            for (int64_t jj = 0; jj < ncols; jj++) {
                const float *b = B + (j + jj) * ldb + k0;
                for (int64_t kk = 0; kk < kc; kk++) bt[kk * 16 + jj] = b[kk];
            }
            /* bt rows are 16 wide and zero padded, so the full-width loads are safe. */
            for (int64_t i = 0; i < M; i += 4)
                sg_tile(M - i < 4 ? (int)(M - i) : 4, kc, A + i * lda + k0, lda, bt, 16, C + i * ldc + j, ldc,
                        16 == ncols ? 16 : ncols, alpha, k0 > 0);
        }
    }
}

#endif
