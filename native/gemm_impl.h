/*
 * gemm_impl.h - private contract between gemm.c (packing, threading, scalar references) and the
 * SIMD kernels in gemm_<isa>.c. Nothing outside gemm*.c includes this.
 *
 * Packed layouts (one canonical layout per kind, read by every level, so emb_simd_set may switch
 * levels after load):
 *   EMB_MAT_I8:  kp = k rounded up to 32 (EMB_QB), nb = kp / 32 blocks, np = ceil(n / 16) panels.
 *                data is int8 [np][kp/4][16][4]: panel p, k-group g, output row r within the panel,
 *                4 consecutive k. One 64-byte line is exactly one VPDPBUSD operand. Rows >= n and
 *                k >= k are zero. scale is float [np][nb][16]: the scale of (row, 32-block), the 16
 *                rows of one panel's block in one 64-byte vector; rsum is int32 [np][nb][16] holding
 *                -128 x the block's int8 weight sum (the VPDPBUSD start value that cancels the +128
 *                activation offset). wmin (affine types only) is float [np][nb][16]: the block's
 *                offset c in weight = q * scale + c. bias (if any) holds np * 16 entries; all
 *                padding is zero.
 *   Compact copy of EMB_MAT_I8 (cdata, for products of few rows on AVX-512 VNNI): panel p's weights
 *                plus c_zero[p] (0, 8, 16 or 128, the smallest that makes them all unsigned) in
 *                c_bits[p] bits, its nb blocks one after the other from cdata + c_off[p]. A block's
 *                eight k-group lines (64 bytes each, byte j = output row j / 4, k j % 4, as in data)
 *                are stored as: 8 bits: the eight lines of unsigned bytes (512 bytes); 4 bits: four
 *                lines of nibbles, line i holding k-group 2i in its low and 2i + 1 in its high
 *                nibbles (256 bytes); 5 bits: the same nibbles, then each k-group's fifth bits as
 *                one little-endian 64-bit mask, bit j for byte j (256 + 64 bytes). The scales and
 *                wmin are the I8 kind's; no rsum: the activations stay signed and each block starts
 *                from -c_zero[p] x the block's activation sum.
 *   EMB_MAT_F32: float [np][k][16]: panel p, input index k, output row r. Rows >= n are zero.
 *   Activations for I8: rows of lda = round_up(kp, 64) bytes, int8 (or int8 + 128 as uint8 for
 *                VPDPBUSD, and for the maddubs kernels when emb_i8_maddubs_offset(W)), values past k are 0 (128 with the offset); one float scale per (row,
 *                32-block): sa[m * nb + b].
 *
 * Every level computes, per output, the exact int32 sum isum_b of each 32-block and then, in block
 * order, acc = fmaf((float)isum_b, ws_b * sa_b, acc) (one rounding for the product of scales, one
 * for the fma), followed for affine matrices by acc = fmaf(wmin_b, asum_b, acc), where asum_b =
 * (float)(sum of the block's int8 activations) * sa_b is the block's dequantised activation sum
 * (emb_matmul computes it once per row); finally y = (acc + bias) + residual: the same float
 * operations in the same order, so every level gives the scalar reference's results bit for bit.
 */
#ifndef EMBEDD_GEMM_IMPL_H
#define EMBEDD_GEMM_IMPL_H

#include <stdint.h>

#include "gemm.h"

#define EMB_PANEL 16

/* Values per quantisation block of the I8 kind (weights and activations alike). */
#define EMB_QB 32

static inline int64_t emb_i8_kp(int64_t k) { return (k + EMB_QB - 1) & ~(int64_t)(EMB_QB - 1); }
static inline int64_t emb_i8_nb(int64_t k) { return emb_i8_kp(k) / EMB_QB; }
static inline int64_t emb_i8_lda(int64_t k) { return (emb_i8_kp(k) + 63) & ~(int64_t)63; }
static inline int64_t emb_panels(int64_t n) { return (n + EMB_PANEL - 1) / EMB_PANEL; }
/* Rows of block blk when a kernel deals rows into nblk near-equal blocks (7 rows in blocks of at
   most 6: 4 + 3, not 6 + 1, since a thin block runs at a fraction of a full one's throughput). */
static inline int emb_rows_of_block(int64_t rows, int64_t nblk, int64_t blk) {
    return (int)(rows / nblk + (blk < rows % nblk ? 1 : 0));
}

/* A switch over a tile's row count, 1 to 6 (more is 6), that runs CASE(MR) with MR a compile-time
   constant, so that each tile shape is its own instantiation. */
#define EMB_SWITCH_MR6(mr, CASE) \
    switch (mr) {                 \
    case 1: CASE(1); break;       \
    case 2: CASE(2); break;       \
    case 3: CASE(3); break;       \
    case 4: CASE(4); break;       \
    case 5: CASE(5); break;       \
    default: CASE(6); break;      \
    }

/* Bytes of one 32-block of one panel in the compact copy, for c_bits 4, 5 or 8. */
static inline int64_t emb_c_block_bytes(int bits) { return bits == 8 ? 512 : bits == 5 ? 320 : 256; }

/* Largest |weight| for which the AVX2 kernel takes its offset-activation path (see gemm_avx2.c:
   four k-groups of maddubs pair sums, each <= 2 * 255 * 16, fit int16 exactly). */
#define EMB_I8_SMALL_WMAX 16

/* Whether panel p of W takes the AVX2 kernel's small-weights path. */
static inline int emb_i8_panel_small(const emb_matrix *W, int64_t p) { return W->panel_wmax[p] <= EMB_I8_SMALL_WMAX; }
/* Whether every weight of W is within 0..EMB_I8_SMALL_WMAX (the affine Q4_1 and Q4_K pack so): the
   AVX2 kernel then multiplies the weights, as maddubs' unsigned operand, with the plain int8
   activations, and a whole 32-block's products fit one int16 sum (see i8_tile_unsigned). */
static inline int emb_i8_unsigned_small(const emb_matrix *W) { return W->wlow >= 0 && W->wmax <= EMB_I8_SMALL_WMAX; }
/* Whether the maddubs kernels (AVX2, AVX-512 without VNNI) want W's activations offset: when some
   panel takes the small-weights path (the others then flip the offset back per broadcast), unless
   all weights are unsigned. */
static inline int emb_i8_maddubs_offset(const emb_matrix *W) { return W->small_panels > 0 && !emb_i8_unsigned_small(W); }

/* Quantises one activation row x[0..k) to q[0..lda) per 32-block (symmetric, scale = max|x| / 127
   of the block's values, x * (127 / max) rounded to nearest even and clamped to +-127), adding 128
   to every byte if offset128; writes the emb_i8_nb(k) block scales to sa. Every level must give
   identical bytes and scales. */
typedef void (*emb_quant_row_fn)(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128);
/* The activation quantisation that `level` uses (the scalar one for levels this build lacks). */
emb_quant_row_fn emb_quant_row_for(int level);

/* Computes rows [m0, m1) and panels [p0, p1) of y = sum_b (sa[m][b] * ws[n][b] * (a_b . w_b) +
   wmin[n][b] * asum[m][b]) + bias (+ residual), without the GELU/tanh activation, for an I8
   matrix. a holds signed or offset bytes as the kernel's level wants (offset for VNNI); sa and
   asum have emb_i8_nb(W->k) entries per row; asum is read only when W->wmin is set. */
typedef void (*emb_i8_kernel_fn)(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                                 int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                                 const float *residual);
/* The same products from W's compact copy (W->cdata, gemm.h): signed activations a, and isa holding
   each (row, 32-block)'s sum of them (nb per row). */
typedef void (*emb_i8c_kernel_fn)(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                                  const int32_t *isa, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                                  const float *residual);
/* The same for an F32 matrix; x has leading dimension W->k. */
typedef void (*emb_f32_kernel_fn)(const emb_matrix *W, const float *x, int64_t m0, int64_t m1,
                                  int64_t p0, int64_t p1, float *y, const float *residual);

void emb_quant_row_scalar(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128);
/* isum[b] = the sum of block b's 32 activations (q as quantise_row wrote them: signed, or offset by
   128 if offset128) for b < nb; emb_block_sums is the one the engine uses (SSE2 on x86-64). */
void emb_block_sums_scalar(const uint8_t *q, int64_t nb, int offset128, int32_t *isum);
void emb_block_sums(const uint8_t *q, int64_t nb, int offset128, int32_t *isum);
void emb_i8_kernel_scalar(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                          int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                          const float *residual);
void emb_f32_kernel_scalar(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                           int64_t p1, float *y, const float *residual);
void emb_sgemm_nt_scalar(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc);
void emb_sgemm_nn_scalar(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc);

#if defined(__x86_64__) || defined(_M_X64)
void emb_quant_row_avx2(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128);
void emb_i8_kernel_avx2(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                        int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                        const float *residual);
void emb_f32_kernel_avx2(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                         int64_t p1, float *y, const float *residual);
void emb_sgemm_nt_avx2(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc);
void emb_sgemm_nn_avx2(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc);

void emb_quant_row_avx512(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128);
void emb_i8_kernel_avx512(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                          int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                          const float *residual);
void emb_f32_kernel_avx512(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                           int64_t p1, float *y, const float *residual);
void emb_sgemm_nt_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc);
void emb_sgemm_nn_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc);

/* Reads offset (uint8 = int8 + 128) activations; each block starts from rsum (-128 x weight sum). */
void emb_i8_kernel_avx512vnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                              int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                              const float *residual);
/* The same contract on 256-bit AVX-VNNI. */
void emb_i8_kernel_avxvnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                           int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y, const float *residual);
/* emb_i8c_kernel_fn for AVX-512 VNNI. */
void emb_i8c_kernel_avx512vnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                               const int32_t *isa, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                               const float *residual);
#endif

#if defined(__AVX2__)
#include <immintrin.h>
/* For the 256-bit kernels (gemm_avx2.c, gemm_avxvnni.c): writes 16 finished outputs (cnt of them
   valid) of one row, adding the residual if any. */
static inline __attribute__((always_inline)) void emb_store16_avx2(float *y, const float *res, int64_t cnt,
                                                                   __m256 v0, __m256 v1) {
    if (cnt == 16) {
        if (res) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(res + 8));
        }
        _mm256_storeu_ps(y, v0);
        _mm256_storeu_ps(y + 8, v1);
        return;
    }
    float t[16];
    _mm256_storeu_ps(t, v0);
    _mm256_storeu_ps(t + 8, v1);
    for (int64_t j = 0; j < cnt; j++) y[j] = t[j] + (res ? res[j] : 0.0f);
}

/* Row m's 16 outputs of panel p of W: v0, v1 plus the bias (zero without one, as the scalar
   reference adds it) and the residual (if any) into y (W->n outputs a row). */
static inline __attribute__((always_inline)) void emb_finish16_avx2(const emb_matrix *W, int64_t m, int64_t p,
                                                                    __m256 v0, __m256 v1, float *y, const float *res) {
    const int64_t n = W->n, n0 = p * EMB_PANEL, cnt = n - n0 < EMB_PANEL ? n - n0 : EMB_PANEL;
    const __m256 b0 = W->bias ? _mm256_load_ps(W->bias + n0) : _mm256_setzero_ps();
    const __m256 b1 = W->bias ? _mm256_load_ps(W->bias + n0 + 8) : _mm256_setzero_ps();
    emb_store16_avx2(y + m * n + n0, res ? res + m * n + n0 : NULL, cnt, _mm256_add_ps(v0, b0), _mm256_add_ps(v1, b1));
}
#endif

#if defined(__aarch64__)
void emb_quant_row_neon(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128);
void emb_i8_kernel_neon(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum, int64_t m0,
                        int64_t m1, int64_t p0, int64_t p1, float *y, const float *residual);
void emb_f32_kernel_neon(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                         int64_t p1, float *y, const float *residual);
void emb_sgemm_nt_neon(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc);
void emb_sgemm_nn_neon(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                       int64_t ldb, float *C, int64_t ldc);
#endif

#endif
