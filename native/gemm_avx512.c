/*
 * gemm_avx512.c - AVX-512 F/BW kernels: activation quantisation (per 32-block), the float FMA
 * kernel, the int8 kernel for CPUs without VNNI (maddubs, exact int32 sums per 32-block: panels of
 * weights within +-16, from Q5_0/Q4_0, with offset activations and int16 sums of four k-groups;
 * matrices of unsigned 4-bit weights, from Q4_1/Q4_K, with a whole block in one int16 sum; the
 * sign trick for the rest), and the attention sgemms.
 * Scalar references: gemm.c. Layouts: gemm_impl.h.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

static inline __mmask16 tail_mask(int64_t cnt) {
    return cnt >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cnt > 0 ? cnt : 0)) - 1u);
}

/* max |x| over x0 and x1, lane by lane. Each max takes the possibly-NaN value first, so a NaN
   yields the other operand: NaN inputs are ignored, as the scalar reference's comparisons ignore
   them. */
static inline __m512 abs_max_nan_ignored(__m512 x0, __m512 x1) {
    return _mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps()));
}

/* Four 32-blocks at a time: the four block maxima come out of one shuffle tree (instead of four
   horizontal reductions), the four scales from one division each way, and the 128 values narrow
   to bytes through saturating packs (INT_MIN, from a NaN or infinite product, saturates to -128
   and is then raised to -127, as the scalar clamp gives). */
static void quant4_avx512(const float *x, uint8_t *q, float *sa, __m512i off) {
    __m512 v[8], m[4];
    for (int i = 0; i < 8; i++) v[i] = _mm512_loadu_ps(x + 16 * i);
    for (int b = 0; b < 4; b++) m[b] = abs_max_nan_ignored(v[2 * b], v[2 * b + 1]);
    /* 128-bit quarters: lanes 0-7 of m01 hold m0's partial maxima, lanes 8-15 m1's. */
    const __m512 m01 = _mm512_max_ps(_mm512_shuffle_f32x4(m[0], m[1], 0x44), _mm512_shuffle_f32x4(m[0], m[1], 0xEE));
    const __m512 m23 = _mm512_max_ps(_mm512_shuffle_f32x4(m[2], m[3], 0x44), _mm512_shuffle_f32x4(m[2], m[3], 0xEE));
    /* Quarter b now holds four partial maxima of block b. */
    __m512 t = _mm512_max_ps(_mm512_shuffle_f32x4(m01, m23, 0x88), _mm512_shuffle_f32x4(m01, m23, 0xDD));
    t = _mm512_max_ps(t, _mm512_permute_ps(t, 0x4E));
    t = _mm512_max_ps(t, _mm512_permute_ps(t, 0xB1)); /* every lane of quarter b: the maximum of block b */
    const __mmask16 pos = _mm512_cmp_ps_mask(t, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 inv = _mm512_maskz_div_ps(pos, _mm512_set1_ps(127.0f), t);
    const __m512 scale = _mm512_div_ps(t, _mm512_set1_ps(127.0f));
    _mm_storeu_ps(sa, _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), scale)));
    __m512i iv[8];
#define QUANT_BLOCK(B)                                                           \
    do {                                                                         \
        const __m512 vinv = _mm512_shuffle_f32x4(inv, inv, (B) * 0x55);          \
        iv[2 * (B)] = _mm512_cvtps_epi32(_mm512_mul_ps(v[2 * (B)], vinv));       \
        iv[2 * (B) + 1] = _mm512_cvtps_epi32(_mm512_mul_ps(v[2 * (B) + 1], vinv)); \
    } while (0)
    QUANT_BLOCK(0);
    QUANT_BLOCK(1);
    QUANT_BLOCK(2);
    QUANT_BLOCK(3);
#undef QUANT_BLOCK
    /* packs work within 128-bit lanes: lane j of the bytes holds 4-value chunks j of the four
       inputs in turn; one dword permute puts each input's chunks back in order. */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i lo = _mm512_set1_epi8(-127);
    for (int h = 0; h < 2; h++) {
        __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(iv[4 * h], iv[4 * h + 1]),
                                           _mm512_packs_epi32(iv[4 * h + 2], iv[4 * h + 3]));
        bytes = _mm512_permutexvar_epi32(order, bytes);
        bytes = _mm512_xor_si512(_mm512_max_epi8(bytes, lo), off);
        _mm512_storeu_si512((void *)(q + 64 * h), bytes);
    }
}

void emb_quant_row_avx512(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128) {
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    const __m512i off = _mm512_set1_epi32(offset128 ? 128 : 0), off8 = _mm512_set1_epi8((char)(offset128 ? 0x80 : 0));
    int64_t i = 0, b = 0;
    for (; i + 4 * EMB_QB <= k; i += 4 * EMB_QB, b += 4) quant4_avx512(x + i, q + i, sa + b, off8);
    for (; i < k; i += EMB_QB, b++) {
        __mmask16 mk0 = tail_mask(k - i), mk1 = tail_mask(k - i - 16);
        __m512 x0 = _mm512_maskz_loadu_ps(mk0, x + i), x1 = _mm512_maskz_loadu_ps(mk1, x + i + 16);
        float amax = _mm512_reduce_max_ps(abs_max_nan_ignored(x0, x1));
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        const __m512 vinv = _mm512_set1_ps(inv);
        __m512i v0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vinv));
        __m512i v1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vinv));
        v0 = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v0, lo), hi), off);
        v1 = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(v1, lo), hi), off);
        if (i + EMB_QB <= k) {
            /* Narrowing in registers and one plain store: the masked narrowing store is several
               times slower on some cores (AMD Zen 4/5). Same bytes. */
            __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(v0)),
                                                   _mm512_cvtepi32_epi8(v1), 1);
            _mm256_storeu_si256((__m256i *)(q + i), both);
        } else {
            _mm512_mask_cvtepi32_storeu_epi8(q + i, mk0, v0);
            _mm512_mask_cvtepi32_storeu_epi8(q + i + 16, mk1, v1);
        }
        sa[b] = amax / 127.0f;
    }
    if (lda > k) memset(q + k, offset128 ? 128 : 0, (size_t)(lda - k));
}

/* ---- float kernel: tiles of up to 6 rows x 4 panels (64 outputs), 24 zmm accumulators ---------- */

AI void f32_tile(const emb_matrix *W, const float *x, int64_t m, int mr, int64_t p, int np, float *y,
                 const float *res) {
    const int64_t k = W->k, n = W->n, ps = EMB_PANEL * k;
    const float *w = (const float *)W->data + p * ps;
    __m512 acc[6][4];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) acc[r][c] = _mm512_setzero_ps();
    const float *xm = x + m * k;
    for (int64_t kk = 0; kk < k; kk++) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) wv[c] = _mm512_load_ps(w + c * ps + kk * EMB_PANEL);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(xm[r * k + kk]);
#pragma GCC unroll 4
            for (int c = 0; c < np; c++) acc[r][c] = _mm512_fmadd_ps(av, wv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < np; c++) {
        int64_t n0 = (p + c) * EMB_PANEL;
        __mmask16 mk = tail_mask(n - n0);
        __m512 b = W->bias ? _mm512_load_ps(W->bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m512 v = _mm512_add_ps(acc[r][c], b);
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + (m + r) * n + n0));
            _mm512_mask_storeu_ps(y + (m + r) * n + n0, mk, v);
        }
    }
}

#define TILE_CASES_NP(FN, MR, ...)                     \
    switch (np) {                                      \
    case 1: FN(__VA_ARGS__, 1); break;                 \
    case 2: FN(__VA_ARGS__, 2); break;                 \
    case 3: FN(__VA_ARGS__, 3); break;                 \
    default: FN(__VA_ARGS__, 4); break;                \
    }

#define F32_CALL(MR, NP) f32_tile(W, x, m, MR, p, NP, y, residual)
#define F32_NP(MR) TILE_CASES_NP(F32_CALL, MR, MR)

void emb_f32_kernel_avx512(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                           int64_t p1, float *y, const float *residual) {
    /* Rows in near-equal blocks of at most 6 (7 -> 4 + 3): a one-row block has too few
       independent FMA chains to run at full rate. */
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p += 4) {
        int np = p1 - p < 4 ? (int)(p1 - p) : 4;
        int64_t m = m0;
        for (int64_t blk = 0; blk < nblk; blk++) {
            int mr = emb_rows_of_block(rows, nblk, blk);
            EMB_SWITCH_MR6(mr, F32_NP)
            m += mr;
        }
    }
}

/* ---- int8 kernel without VNNI: |a| (u8) x sign(w, a) (s8) through maddubs, exact --------------- */

/* Per 32-block: exact int32 sums in registers, then acc = fma(float(isum), ws * sa, acc) into a
   float tile in L1 (the scalar reference's float steps in its order). */
AI void i8_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                int64_t m, int mr, int64_t p, int np, const int AFF, const int OFF, float *y, const float *res) {
    const int64_t n = W->n, kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
    float facc[4][4][16] __attribute__((aligned(64)));
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) _mm512_store_ps(facc[r][c], _mm512_setzero_ps());
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    for (int64_t b = 0; b < nb; b++) {
        __m512i acc[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
            for (int c = 0; c < np; c++) acc[r][c] = _mm512_setzero_si512();
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++) {
            __m512i wv[4];
#pragma GCC unroll 4
            for (int c = 0; c < np; c++) wv[c] = _mm512_load_si512((const void *)(w + c * ps + g * 64));
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                int32_t a4;
                memcpy(&a4, am + r * lda + g * 4, 4);
                __m512i av = _mm512_set1_epi32(a4);
                if (OFF) av = _mm512_xor_si512(av, _mm512_set1_epi8((char)0x80));
                __m512i aabs = _mm512_abs_epi8(av);
                __mmask64 neg = _mm512_movepi8_mask(av);
#pragma GCC unroll 4
                for (int c = 0; c < np; c++) {
                    __m512i wsg = _mm512_mask_sub_epi8(wv[c], neg, zero, wv[c]);
                    __m512i s16 = _mm512_maddubs_epi16(aabs, wsg);
                    acc[r][c] = _mm512_add_epi32(acc[r][c], _mm512_madd_epi16(s16, ones));
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m512 sav = _mm512_set1_ps(sam[r * nb + b]);
#pragma GCC unroll 4
            for (int c = 0; c < np; c++) {
                __m512 s = _mm512_mul_ps(_mm512_load_ps(ws + c * ss + b * EMB_PANEL), sav);
                __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][c]), s, _mm512_load_ps(facc[r][c]));
                if (AFF) v = _mm512_fmadd_ps(_mm512_load_ps(wm + c * ss + b * EMB_PANEL), _mm512_set1_ps(asum[(m + r) * nb + b]), v);
                _mm512_store_ps(facc[r][c], v);
            }
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < np; c++) {
        int64_t n0 = (p + c) * EMB_PANEL;
        __mmask16 mk = tail_mask(n - n0);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            __m512 v = _mm512_load_ps(facc[r][c]);
            if (W->bias) v = _mm512_add_ps(v, _mm512_load_ps(W->bias + n0));
            if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + (m + r) * n + n0));
            _mm512_mask_storeu_ps(y + (m + r) * n + n0, mk, v);
        }
    }
}

AI __m512i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* For the register tiles below (MR rows x NP panels, float accumulators named f00 .. f31): the fold
   of block b's int32 sums ISUM(R, C) into them, the scalar reference's float steps in its order;
   and y = acc + bias (+ residual) for each of the tile's 16-output vectors. */
#define FINISH_RC(R, C)                                                                     \
    if (MR > R && NP > C) {                                                                 \
        const int64_t n0 = (p + C) * EMB_PANEL;                                             \
        const __mmask16 mk = tail_mask(n - n0);                                             \
        __m512 v = f##R##C;                                                                 \
        if (W->bias) v = _mm512_add_ps(v, _mm512_load_ps(W->bias + n0));                   \
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + (m + R) * n + n0));   \
        _mm512_mask_storeu_ps(y + (m + R) * n + n0, mk, v);                                 \
    }
#define FOLD_RC(R, C, ISUM)                                                                             \
    if (MR > R && NP > C) {                                                                             \
        const __m512 s_ = _mm512_mul_ps(_mm512_load_ps(ws + C * ss + b * EMB_PANEL), _mm512_set1_ps(sa[(m + R) * nb + b])); \
        f##R##C = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ISUM), s_, f##R##C);                               \
        if (AFF) f##R##C = _mm512_fmadd_ps(_mm512_load_ps(wm + C * ss + b * EMB_PANEL), _mm512_set1_ps(asum[(m + R) * nb + b]), f##R##C); \
    }
#define FOLD_TILE(ISUM)                                                                                 \
    FOLD_RC(0, 0, ISUM(0, 0)) FOLD_RC(0, 1, ISUM(0, 1)) FOLD_RC(1, 0, ISUM(1, 0)) FOLD_RC(1, 1, ISUM(1, 1)) \
    FOLD_RC(2, 0, ISUM(2, 0)) FOLD_RC(2, 1, ISUM(2, 1)) FOLD_RC(3, 0, ISUM(3, 0)) FOLD_RC(3, 1, ISUM(3, 1))
#define FINISH_TILE() \
    FINISH_RC(0, 0) FINISH_RC(0, 1) FINISH_RC(1, 0) FINISH_RC(1, 1) FINISH_RC(2, 0) FINISH_RC(2, 1) FINISH_RC(3, 0) FINISH_RC(3, 1)

/* Panels whose weights are within +-EMB_I8_SMALL_WMAX (Q5_0, Q4_0): the activations come offset
   (a + 128, 1..255, as u8; emb_i8_maddubs_offset), so maddubs multiplies them straight with the int8
   weights (from memory), no sign trick: a pair sum is at most 2 * 255 * 16 and four k-groups summed
   in int16 at most 32640, widened by madd twice a block into int32 sums that start from rsum
   (-128 x the block's weight sum, which cancels the offset exactly), as gemm_avx2.c's
   i8_tile_small. Up to 4 rows x 2 panels; int16 and int32 sums and float accumulators (24 of the
   32 zmm) named, in registers. */
AI void i8_tile_small(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                      const float *asum, int64_t m, const int MR, int64_t p, const int NP, const int AFF,
                      float *y, const float *res) {
    const int64_t n = W->n, kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const int32_t *rs = W->rsum + p * ss;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    const __m512i ones = _mm512_set1_epi16(1), z = _mm512_setzero_si512();
    __m512 f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00, f30 = f00, f31 = f00;
    const uint8_t *am = a + m * lda;
    for (int64_t b = 0; b < nb; b++) {
        const __m512i r0 = _mm512_load_si512((const void *)(rs + b * EMB_PANEL));
        const __m512i r1 = NP > 1 ? _mm512_load_si512((const void *)(rs + ss + b * EMB_PANEL)) : z;
        __m512i i00 = r0, i01 = r1, i10 = r0, i11 = r1, i20 = r0, i21 = r1, i30 = r0, i31 = r1;
#pragma GCC unroll 2
        for (int64_t g0 = b * (EMB_QB / 4); g0 < (b + 1) * (EMB_QB / 4); g0 += 4) {
            __m512i h00 = z, h01 = z, h10 = z, h11 = z, h20 = z, h21 = z, h30 = z, h31 = z;
#pragma GCC unroll 4
            for (int64_t g = g0; g < g0 + 4; g++) {
#define SROW(R)                                                                                                     \
    if (MR > R) {                                                                                                   \
        const __m512i av = bcast4(am + R * lda + g * 4);                                                            \
        h##R##0 = _mm512_add_epi16(h##R##0, _mm512_maddubs_epi16(av, _mm512_load_si512((const void *)(w + g * 64)))); \
        if (NP > 1)                                                                                                 \
            h##R##1 = _mm512_add_epi16(h##R##1, _mm512_maddubs_epi16(av, _mm512_load_si512((const void *)(w + ps + g * 64)))); \
    }
                SROW(0) SROW(1) SROW(2) SROW(3)
#undef SROW
                __asm__("" : "+v"(h00), "+v"(h01), "+v"(h10), "+v"(h11), "+v"(h20), "+v"(h21), "+v"(h30), "+v"(h31));
            }
#define SWIDEN(R, C) \
    if (MR > R && NP > C) i##R##C = _mm512_add_epi32(i##R##C, _mm512_madd_epi16(h##R##C, ones));
            SWIDEN(0, 0) SWIDEN(0, 1) SWIDEN(1, 0) SWIDEN(1, 1) SWIDEN(2, 0) SWIDEN(2, 1) SWIDEN(3, 0) SWIDEN(3, 1)
#undef SWIDEN
        }
#define SMALL_ISUM(R, C) i##R##C
        FOLD_TILE(SMALL_ISUM)
#undef SMALL_ISUM
    }
    FINISH_TILE()
}

/* Weights all within 0..EMB_I8_SMALL_WMAX (emb_i8_unsigned_small: Q4_1, Q4_K): maddubs of the
   weights as its unsigned operand with the plain int8 activations; a product is at most 16 * 127,
   so a whole 32-block's 16 products per int16 lane fit (32512), as in gemm_avx2.c's
   i8_tile_unsigned: one int16 sum per block, one madd to widen it, no sign trick. Up to 4 rows x 2
   panels, sums and float accumulators in registers (named: GCC spills arrays of them); the empty
   asm keeps GCC from hoisting a block's products ahead of their sums. */
AI void i8_tile_unsigned(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                         const float *asum, int64_t m, const int MR, int64_t p, const int NP, const int AFF,
                         float *y, const float *res) {
    const int64_t n = W->n, kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    const __m512i ones = _mm512_set1_epi16(1), z = _mm512_setzero_si512();
    __m512 f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00, f30 = f00, f31 = f00;
    const uint8_t *am = a + m * lda;
    for (int64_t b = 0; b < nb; b++) {
        __m512i h00 = z, h01 = z, h10 = z, h11 = z, h20 = z, h21 = z, h30 = z, h31 = z;
#pragma GCC unroll 8
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++) {
            const __m512i w0 = _mm512_load_si512((const void *)(w + g * 64));
            const __m512i w1 = NP > 1 ? _mm512_load_si512((const void *)(w + ps + g * 64)) : z;
#define UROW(R)                                                                   \
    if (MR > R) {                                                                 \
        const __m512i av = bcast4(am + R * lda + g * 4);                          \
        h##R##0 = _mm512_add_epi16(h##R##0, _mm512_maddubs_epi16(w0, av));       \
        if (NP > 1) h##R##1 = _mm512_add_epi16(h##R##1, _mm512_maddubs_epi16(w1, av)); \
    }
            UROW(0) UROW(1) UROW(2) UROW(3)
#undef UROW
            __asm__("" : "+v"(h00), "+v"(h01), "+v"(h10), "+v"(h11), "+v"(h20), "+v"(h21), "+v"(h30), "+v"(h31));
        }
#define UNSIGNED_ISUM(R, C) _mm512_madd_epi16(h##R##C, ones)
        FOLD_TILE(UNSIGNED_ISUM)
#undef UNSIGNED_ISUM
    }
    FINISH_TILE()
}

#define UNSIGNED_CALL(MR, NP) i8_tile_unsigned(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define SMALL_CALL(MR, NP) i8_tile_small(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define SIGN_OFF_CALL(MR) i8_tile(W, a, lda, sa, asum, m, MR, p, 1, AFF, 1, y, residual)
#define UNSIGNED_NP(MR) TWO_NP(UNSIGNED_CALL, MR)
#define SMALL_NP(MR) TWO_NP(SMALL_CALL, MR)
#define TWO_NP(CALL, MR) \
    if (np == 1)         \
        CALL(MR, 1);     \
    else                 \
        CALL(MR, 2);

#define I8_CALL(MR, NP) i8_tile(W, a, lda, sa, asum, m, MR, p, NP, AFF, 0, y, residual)
#define I8_NP(MR) TILE_CASES_NP(I8_CALL, MR, MR)

/* AFF: whether W is affine (W->wmin), a compile-time constant in each instantiation. */
AI void i8_kernel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                  int64_t m0, int64_t m1, int64_t p0, int64_t p1, const int AFF, float *y,
                  const float *residual) {
    if (emb_i8_unsigned_small(W)) {
        for (int64_t p = p0; p < p1; p += 2) {
            const int np = p1 - p < 2 ? (int)(p1 - p) : 2;
            for (int64_t m = m0; m < m1; m += 4) {
                switch (m1 - m < 4 ? (int)(m1 - m) : 4) {
                case 1: UNSIGNED_NP(1); break;
                case 2: UNSIGNED_NP(2); break;
                case 3: UNSIGNED_NP(3); break;
                default: UNSIGNED_NP(4); break;
                }
            }
        }
        return;
    }
    if (!emb_i8_maddubs_offset(W)) {
        for (int64_t p = p0; p < p1; p += 4) {
            int np = p1 - p < 4 ? (int)(p1 - p) : 4;
            for (int64_t m = m0; m < m1; m += 4) {
                int mr = m1 - m < 4 ? (int)(m1 - m) : 4;
                switch (mr) {
                case 1: I8_NP(1); break;
                case 2: I8_NP(2); break;
                case 3: I8_NP(3); break;
                default: I8_NP(4); break;
                }
            }
        }
        return;
    }
    /* Offset activations: small panels two at a time where both are, the others one at a time
       through the sign trick with the offset flipped back. */
    for (int64_t p = p0; p < p1;) {
        const int small = emb_i8_panel_small(W, p);
        const int np = small && p + 1 < p1 && emb_i8_panel_small(W, p + 1) ? 2 : 1;
        for (int64_t m = m0; m < m1; m += 4) {
            const int mr = m1 - m < 4 ? (int)(m1 - m) : 4;
            switch (mr) {
            case 1: if (small) { SMALL_NP(1) } else { SIGN_OFF_CALL(1); } break;
            case 2: if (small) { SMALL_NP(2) } else { SIGN_OFF_CALL(2); } break;
            case 3: if (small) { SMALL_NP(3) } else { SIGN_OFF_CALL(3); } break;
            default: if (small) { SMALL_NP(4) } else { SIGN_OFF_CALL(4); } break;
            }
        }
        p += np;
    }
}

void emb_i8_kernel_avx512(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                          const float *asum, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                          const float *residual) {
    if (W->wmin)
        i8_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 1, y, residual);
    else
        i8_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 0, y, residual);
}

/* ---- attention sgemms ------------------------------------------------------------------------- */

/* C[0..mr)[0..ncols) (= or +=) alpha * A[0..mr)[0..K) B[0..K)[0..ncols), ncols <= 16 * np. B rows
   are read with masks, so nothing past column ncols is touched. */
AI void sg_tile(int mr, int np, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                float *C, int64_t ldc, int64_t ncols, float alpha, int accumulate) {
    __m512 acc[6][4];
    __mmask16 mk[4];
#pragma GCC unroll 4
    for (int c = 0; c < np; c++) mk[c] = tail_mask(ncols - 16 * c);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) acc[r][c] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < K; kk++) {
        __m512 bv[4];
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) bv[c] = _mm512_maskz_loadu_ps(mk[c], B + kk * ldb + 16 * c);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(A[r * lda + kk]);
#pragma GCC unroll 4
            for (int c = 0; c < np; c++) acc[r][c] = _mm512_fmadd_ps(av, bv[c], acc[r][c]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int c = 0; c < np; c++) {
            float *cp = C + r * ldc + 16 * c;
            __m512 v = _mm512_mul_ps(acc[r][c], va);
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk[c], cp));
            _mm512_mask_storeu_ps(cp, mk[c], v);
        }
}

#define SG_CALL(MR, NP) sg_tile(MR, NP, K, A + i * lda, lda, Bp, ldbp, C + i * ldc + j, ldc, ncols, alpha, accumulate)
#define SG_NP(MR) TILE_CASES_NP(SG_CALL, MR, MR)

/* C[:, j..j+ncols) over all M rows, in tiles of 6 rows. */
static void sg_panel(int64_t M, int64_t K, const float *A, int64_t lda, const float *Bp, int64_t ldbp,
                     float *C, int64_t ldc, int64_t j, int64_t ncols, float alpha, int accumulate) {
    int np = (int)((ncols + 15) / 16);
    for (int64_t i = 0; i < M; i += 6) {
        int mr = M - i < 6 ? (int)(M - i) : 6;
        EMB_SWITCH_MR6(mr, SG_NP)
    }
}

void emb_sgemm_nn_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc) {
    for (int64_t j = 0; j < N; j += 64) {
        int64_t ncols = N - j < 64 ? N - j : 64;
        sg_panel(M, K, A, lda, B + j, ldb, C, ldc, j, ncols, 1.0f, 0);
    }
}

#define NT_KC 128

void emb_sgemm_nt_avx512(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc) {
    /* B^T is packed a 64-column by NT_KC-deep block at a time so the tile kernel streams it. */
    float bt[NT_KC * 64] __attribute__((aligned(64)));
    for (int64_t j = 0; j < N; j += 64) {
        int64_t ncols = N - j < 64 ? N - j : 64;
        if (K <= 0) {
            sg_panel(M, 0, A, lda, bt, 64, C, ldc, j, ncols, alpha, 0);
            continue;
        }
        for (int64_t k0 = 0; k0 < K; k0 += NT_KC) {
            int64_t kc = K - k0 < NT_KC ? K - k0 : NT_KC;
            for (int64_t jj = 0; jj < ncols; jj++) {
                const float *b = B + (j + jj) * ldb + k0;
                for (int64_t kk = 0; kk < kc; kk++) bt[kk * 64 + jj] = b[kk];
            }
            sg_panel(M, kc, A + k0, lda, bt, 64, C, ldc, j, ncols, alpha, k0 > 0);
        }
    }
}
