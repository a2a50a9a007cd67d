/*
 * gemm_avx2.c - AVX2/FMA kernels: activation quantisation (per 32-block), the float FMA kernel
 * (6 rows x 16 outputs), the int8 kernel (maddubs of |a| with sign(w, a): values are in +-127, so
 * every pair sum is at most 2 * 127 * 127 < 32767, nothing saturates and the int32 sums of each
 * 32-block are exact; panels whose weights are within +-16, i.e. from Q5_0/Q4_0, take a faster
 * offset-activation path with int16 partial sums, see i8_tile_small and i8_tile_small_wide;
 * matrices whose weights are all within 0..16, from Q4_1/Q4_K, a faster one still with a whole
 * block in one int16 sum, see i8_tile_unsigned), and the attention sgemms. Scalar references:
 * gemm.c. Layouts: gemm_impl.h.
 */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define AI static inline __attribute__((always_inline))

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* The maximum of |x| over 32 values. Each max takes the possibly-NaN value first, so a NaN yields
   the other operand: NaN inputs are ignored, as the scalar reference's comparisons ignore them. */
static inline __m256 abs_max32_nan_ignored(const float *x) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x), absmask), _mm256_setzero_ps());
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8), absmask), m);
    m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 16), absmask), m);
    return _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 24), absmask), m);
}

/* One 32-block's bytes: x * inv rounded, through saturating packs (INT_MIN, from a NaN or infinite
   product, saturates to -128 and is then raised to -127, as the scalar clamp gives), plus off. */
static inline void quant32_avx2(const float *x, __m256 vinv, uint8_t *q, __m256i off) {
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vinv));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vinv));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vinv));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vinv));
    /* packs work within 128-bit lanes: reorder the 32-bit groups afterwards. */
    __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    bytes = _mm256_xor_si256(_mm256_max_epi8(bytes, _mm256_set1_epi8(-127)), off);
    _mm256_storeu_si256((__m256i *)q, bytes);
}

/* Four 32-blocks at a time: one shuffle tree gives the four maxima (instead of four horizontal
   reductions) and one division each way the four scales. The values are read again from L1 after
   the maxima: 16 ymm registers cannot hold 128 values. */
static void quant4_avx2(const float *x, uint8_t *q, float *sa, __m256i off) {
    __m256 m[4];
    for (int b = 0; b < 4; b++) m[b] = abs_max32_nan_ignored(x + 32 * b);
    /* 128-bit halves: m01 holds m0's partial maxima in its low half, m1's in its high half. */
    const __m256 m01 = _mm256_max_ps(_mm256_permute2f128_ps(m[0], m[1], 0x20), _mm256_permute2f128_ps(m[0], m[1], 0x31));
    const __m256 m23 = _mm256_max_ps(_mm256_permute2f128_ps(m[2], m[3], 0x20), _mm256_permute2f128_ps(m[2], m[3], 0x31));
    /* Low half: two partials of block 0, two of block 2; high half: blocks 1 and 3. */
    __m256 t = _mm256_max_ps(_mm256_shuffle_ps(m01, m23, 0x44), _mm256_shuffle_ps(m01, m23, 0xEE));
    t = _mm256_max_ps(t, _mm256_permute_ps(t, 0xB1)); /* lanes 0, 4, 2, 6: the maxima of blocks 0-3 */
    const __m256 pos = _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_GT_OQ);
    const __m256 inv = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(127.0f), t), pos);
    static const int block_lane[4] = {0, 4, 2, 6}; /* where t holds block b's maximum */
    const __m256i lanes = _mm256_setr_epi32(block_lane[0], block_lane[1], block_lane[2], block_lane[3], 0, 0, 0, 0);
    _mm_storeu_ps(sa, _mm256_castps256_ps128(_mm256_permutevar8x32_ps(_mm256_div_ps(t, _mm256_set1_ps(127.0f)), lanes)));
    for (int b = 0; b < 4; b++)
        quant32_avx2(x + 32 * b, _mm256_permutevar8x32_ps(inv, _mm256_set1_epi32(block_lane[b])), q + 32 * b, off);
}

/* Full 32-blocks in vectors (four at a time, then one at a time); a final partial block the scalar
   way (same results: max is exact, and the products and roundings are the same IEEE operations). */
void emb_quant_row_avx2(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128) {
    const __m256i off = _mm256_set1_epi8((char)(offset128 ? 0x80 : 0));
    int64_t i = 0, b = 0;
    for (; i + 4 * EMB_QB <= k; i += 4 * EMB_QB, b += 4) quant4_avx2(x + i, q + i, sa + b, off);
    for (; i + EMB_QB <= k; i += EMB_QB, b++) {
        float amax = hmax8(abs_max32_nan_ignored(x + i));
        quant32_avx2(x + i, _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f), q + i, off);
        sa[b] = amax / 127.0f;
    }
    /* The final partial block and the padding: the scalar reference on the rest of the row, which
       starts on a block boundary (same IEEE operations, so the same bytes). */
    emb_quant_row_scalar(x + i, k - i, lda - i, q + i, sa + b, offset128);
}

/* ---- float kernel ------------------------------------------------------------------------------ */

AI void f32_tile(const emb_matrix *W, const float *x, int64_t m, int mr, int64_t p, float *y,
                 const float *res) {
    const int64_t k = W->k;
    const float *w = (const float *)W->data + p * EMB_PANEL * k;
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *xm = x + m * k;
    for (int64_t kk = 0; kk < k; kk++) {
        __m256 w0 = _mm256_load_ps(w + kk * EMB_PANEL), w1 = _mm256_load_ps(w + kk * EMB_PANEL + 8);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(xm + r * k + kk);
            acc[r][0] = _mm256_fmadd_ps(av, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, w1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) emb_finish16_avx2(W, m + r, p, acc[r][0], acc[r][1], y, res);
}

void emb_f32_kernel_avx2(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                         int64_t p1, float *y, const float *residual) {
    /* Rows in near-equal blocks (7 -> 4 + 3): a one-row block has too few FMA chains. */
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t blk = 0, m = m0; blk < nblk; m += emb_rows_of_block(rows, nblk, blk), blk++) {
            switch (emb_rows_of_block(rows, nblk, blk)) {
            case 1: f32_tile(W, x, m, 1, p, y, residual); break;
            case 2: f32_tile(W, x, m, 2, p, y, residual); break;
            case 3: f32_tile(W, x, m, 3, p, y, residual); break;
            case 4: f32_tile(W, x, m, 4, p, y, residual); break;
            case 5: f32_tile(W, x, m, 5, p, y, residual); break;
            default: f32_tile(W, x, m, 6, p, y, residual); break;
            }
        }
}

/* ---- int8 kernel ------------------------------------------------------------------------------- */

/* fa[r] = fma(wmin, asum of row r, fa[r]) for rows 0..mr-1 of a tile (affine weights): the
   block's offset times its dequantised activation sum, after the block's integer product. */
AI void affine_fold(__m256 fa[][2], int mr, const float *wm, const float *as, int64_t nb) {
    const __m256 w0 = _mm256_load_ps(wm), w1 = _mm256_load_ps(wm + 8);
    for (int r = 0; r < mr; r++) {
        __m256 av = _mm256_broadcast_ss(as + r * nb);
        fa[r][0] = _mm256_fmadd_ps(w0, av, fa[r][0]);
        fa[r][1] = _mm256_fmadd_ps(w1, av, fa[r][1]);
    }
}

/* Per 32-block: exact int32 sums, then acc = fma(float(isum), ws * sa, acc) (the scalar
   reference's float steps in its order; then the affine term, if any). 3 rows x 16 outputs: 6 int
   + 6 float accumulators. OFF (a compile-time constant): the activations come offset (a + 128,
   for the small-weights panels of the same matrix), flipped back to int8 per broadcast. */
AI void i8_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                int64_t m, int mr, int64_t p, const int AFF, const int OFF, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const float *ws = W->scale + p * nb * EMB_PANEL;
    const float *wm = AFF ? W->wmin + p * nb * EMB_PANEL : NULL;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 fa[3][2];
#pragma GCC unroll 3
    for (int r = 0; r < mr; r++) fa[r][0] = fa[r][1] = _mm256_setzero_ps();
    const uint8_t *am = a + m * lda;
    const float *sam = sa + m * nb;
    for (int64_t b = 0; b < nb; b++) {
        __m256i acc[3][2];
#pragma GCC unroll 3
        for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++) {
            __m256i w0 = _mm256_load_si256((const __m256i *)(w + g * 64));
            __m256i w1 = _mm256_load_si256((const __m256i *)(w + g * 64 + 32));
#pragma GCC unroll 3
            for (int r = 0; r < mr; r++) {
                int32_t a4;
                memcpy(&a4, am + r * lda + g * 4, 4);
                __m256i av = _mm256_set1_epi32(a4);
                if (OFF) av = _mm256_xor_si256(av, _mm256_set1_epi8((char)0x80));
                __m256i aabs = _mm256_abs_epi8(av);
                __m256i s0 = _mm256_maddubs_epi16(aabs, _mm256_sign_epi8(w0, av));
                __m256i s1 = _mm256_maddubs_epi16(aabs, _mm256_sign_epi8(w1, av));
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(s0, ones));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(s1, ones));
            }
        }
        __m256 ws0 = _mm256_load_ps(ws + b * EMB_PANEL), ws1 = _mm256_load_ps(ws + b * EMB_PANEL + 8);
#pragma GCC unroll 3
        for (int r = 0; r < mr; r++) {
            __m256 sv = _mm256_broadcast_ss(sam + r * nb + b);
            fa[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][0]), _mm256_mul_ps(ws0, sv), fa[r][0]);
            fa[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][1]), _mm256_mul_ps(ws1, sv), fa[r][1]);
        }
        if (AFF) affine_fold(fa, mr, wm + b * EMB_PANEL, asum + m * nb + b, nb);
    }
#pragma GCC unroll 3
    for (int r = 0; r < mr; r++) emb_finish16_avx2(W, m + r, p, fa[r][0], fa[r][1], y, res);
}

/* The affine term of the small tiles' rows m and, if MR > 1, m + 1 (float accumulators f00, f01
   and f10, f11, named so that they stay in registers): f = fma(wmin, asum, f). */
AI void affine_fold2(__m256 *f00, __m256 *f01, __m256 *f10, __m256 *f11, const int MR, const float *wm,
                     const float *as, int64_t nb) {
    const __m256 wm0 = _mm256_load_ps(wm), wm1 = _mm256_load_ps(wm + 8);
    __m256 av = _mm256_broadcast_ss(as);
    *f00 = _mm256_fmadd_ps(wm0, av, *f00);
    *f01 = _mm256_fmadd_ps(wm1, av, *f01);
    if (MR > 1) {
        av = _mm256_broadcast_ss(as + nb);
        *f10 = _mm256_fmadd_ps(wm0, av, *f10);
        *f11 = _mm256_fmadd_ps(wm1, av, *f11);
    }
}

/* Weights within +-EMB_I8_SMALL_WMAX (panels from Q5_0 or Q4_0 blocks, and Q4_1/Q4_K panels of a
   matrix packed from parts that also holds signed ones): the activations come offset (a + 128,
   1..255, as u8; emb_i8_maddubs_offset), so maddubs multiplies them straight with the int8 weights,
   no sign trick. A pair sum is at most 2 * 255 * 16 = 8160 and four k-groups summed
   in int16 at most 32640 < 32767, so nothing saturates; two madds per 32-block widen to int32,
   starting from rsum (-128 x the block's weight sum), which cancels the offset exactly. About
   half the instructions per multiply of the sign-trick tile. 2 rows x 16 outputs: 4 float, 4 int32
   and 4 int16 accumulators. */
AI __m256i bcast_a(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Four k-groups starting at g of one row against one panel's two weight halves, summed in int16
   (the first product initialises the sum: no zeroing, one add fewer). Rows go one after the other
   (weights re-read from L1): sharing weight registers between two rows measured slower. */
#define SMALL_HALF(H0, H1, AROW, G)                                                                 \
    do {                                                                                          \
        __m256i av_ = bcast_a((AROW) + (G) * 4);                                                  \
        H0 = _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(w + (G) * 64)));       \
        H1 = _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(w + (G) * 64 + 32)));  \
        for (int gg_ = 1; gg_ < 4; gg_++) {                                                       \
            av_ = bcast_a((AROW) + ((G) + gg_) * 4);                                              \
            H0 = _mm256_add_epi16(H0, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(w + ((G) + gg_) * 64))));      \
            H1 = _mm256_add_epi16(H1, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(w + ((G) + gg_) * 64 + 32)))); \
        }                                                                                         \
    } while (0)

AI void i8_tile_small(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                      const float *asum, int64_t m, const int MR, int64_t p, const int AFF, float *y,
                      const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const float *ws = W->scale + p * nb * EMB_PANEL;
    const float *wm = AFF ? W->wmin + p * nb * EMB_PANEL : NULL;
    const int32_t *rs = W->rsum + p * nb * EMB_PANEL;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00;
    const uint8_t *a0 = a + m * lda, *a1 = a + (m + (MR > 1 ? 1 : 0)) * lda;
    const float *sa0 = sa + m * nb, *sa1 = sa + (m + (MR > 1 ? 1 : 0)) * nb;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t g0 = b * (EMB_QB / 4);
        __m256i h00, h01, h10, h11, i00, i01, i10, i11;
        SMALL_HALF(h00, h01, a0, g0);
        i00 = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL)), _mm256_madd_epi16(h00, ones));
        i01 = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL + 8)), _mm256_madd_epi16(h01, ones));
        SMALL_HALF(h00, h01, a0, g0 + 4);
        i00 = _mm256_add_epi32(i00, _mm256_madd_epi16(h00, ones));
        i01 = _mm256_add_epi32(i01, _mm256_madd_epi16(h01, ones));
        const __m256 ws0 = _mm256_load_ps(ws + b * EMB_PANEL), ws1 = _mm256_load_ps(ws + b * EMB_PANEL + 8);
        __m256 sv = _mm256_broadcast_ss(sa0 + b);
        f00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i00), _mm256_mul_ps(ws0, sv), f00);
        f01 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i01), _mm256_mul_ps(ws1, sv), f01);
        if (MR > 1) {
            SMALL_HALF(h10, h11, a1, g0);
            i10 = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL)), _mm256_madd_epi16(h10, ones));
            i11 = _mm256_add_epi32(_mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL + 8)), _mm256_madd_epi16(h11, ones));
            SMALL_HALF(h10, h11, a1, g0 + 4);
            i10 = _mm256_add_epi32(i10, _mm256_madd_epi16(h10, ones));
            i11 = _mm256_add_epi32(i11, _mm256_madd_epi16(h11, ones));
            sv = _mm256_broadcast_ss(sa1 + b);
            f10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i10), _mm256_mul_ps(ws0, sv), f10);
            f11 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i11), _mm256_mul_ps(ws1, sv), f11);
        }
        if (AFF) affine_fold2(&f00, &f01, &f10, &f11, MR, wm + b * EMB_PANEL, asum + m * nb + b, nb);
    }
    emb_finish16_avx2(W, m, p, f00, f01, y, res);
    if (MR > 1) emb_finish16_avx2(W, m + 1, p, f10, f11, y, res);
}

/* Two panels' weights (32 x kp bytes) that i8_tile_small_wide streams once per row: at most 24 KB,
   so that they stay in a 32 KB L1 across the rows. */
#define WIDE_MAX_KP 768

/* One k-group G of i8_tile_small_wide: the row's broadcast against the four weight vectors of
   panels p and p + 1 (ps bytes apart), into the tile's int16 sums h0..h3. */
#define WIDE_GROUP(G)                                                                                 \
    do {                                                                                              \
        const __m256i av_ = bcast_a(a0 + (G) * 4);                                                    \
        const int8_t *wg_ = w + (G) * 64;                                                             \
        h0 = _mm256_add_epi16(h0, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)wg_)));             \
        h1 = _mm256_add_epi16(h1, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(wg_ + 32))));      \
        h2 = _mm256_add_epi16(h2, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(wg_ + ps))));      \
        h3 = _mm256_add_epi16(h3, _mm256_maddubs_epi16(av_, _mm256_load_si256((const __m256i *)(wg_ + ps + 32)))); \
        __asm__("" : "+x"(h0), "+x"(h1), "+x"(h2), "+x"(h3)); /* as in i8_tile_unsigned */           \
    } while (0)

/* i8_tile_small's products for one row against two small-weights panels (32 outputs): each
   broadcast feeds four maddubs, so a k-group's 128 products take five loads where the two-row tile
   takes six (it re-reads the weights for each row, for want of registers). Loads bound that tile
   on Zen 5, which issues two 256-bit vector loads a cycle: this one runs 12-15% faster there
   (bench_gemm q5_0, AVX2, one thread, M = 128: 241-250 against 212-220 G ops/s). 4 int16, 4 int32
   and 4 float accumulators. */
AI void i8_tile_small_wide(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                           const float *asum, int64_t m, int64_t p, const int AFF, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const float *ws = W->scale + p * ss;
    const float *wm = AFF ? W->wmin + p * ss : NULL;
    const int32_t *rs = W->rsum + p * ss;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
    const uint8_t *a0 = a + m * lda;
    for (int64_t b = 0; b < nb; b++) {
        __m256i i0 = _mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL));
        __m256i i1 = _mm256_load_si256((const __m256i *)(rs + b * EMB_PANEL + 8));
        __m256i i2 = _mm256_load_si256((const __m256i *)(rs + ss + b * EMB_PANEL));
        __m256i i3 = _mm256_load_si256((const __m256i *)(rs + ss + b * EMB_PANEL + 8));
        for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g += 4) {
            __m256i h0 = _mm256_setzero_si256(), h1 = h0, h2 = h0, h3 = h0;
            WIDE_GROUP(g);
            WIDE_GROUP(g + 1);
            WIDE_GROUP(g + 2);
            WIDE_GROUP(g + 3);
            i0 = _mm256_add_epi32(i0, _mm256_madd_epi16(h0, ones));
            i1 = _mm256_add_epi32(i1, _mm256_madd_epi16(h1, ones));
            i2 = _mm256_add_epi32(i2, _mm256_madd_epi16(h2, ones));
            i3 = _mm256_add_epi32(i3, _mm256_madd_epi16(h3, ones));
        }
        const __m256 sv = _mm256_broadcast_ss(sa + m * nb + b);
        f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(_mm256_load_ps(ws + b * EMB_PANEL), sv), f0);
        f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(_mm256_load_ps(ws + b * EMB_PANEL + 8), sv), f1);
        f2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(_mm256_load_ps(ws + ss + b * EMB_PANEL), sv), f2);
        f3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(_mm256_load_ps(ws + ss + b * EMB_PANEL + 8), sv), f3);
        if (AFF) {
            affine_fold2(&f0, &f1, NULL, NULL, 1, wm + b * EMB_PANEL, asum + m * nb + b, nb);
            affine_fold2(&f2, &f3, NULL, NULL, 1, wm + ss + b * EMB_PANEL, asum + m * nb + b, nb);
        }
    }
    emb_finish16_avx2(W, m, p, f0, f1, y, res);
    emb_finish16_avx2(W, m, p + 1, f2, f3, y, res);
}
#undef WIDE_GROUP

/* Weights all within 0..EMB_I8_SMALL_WMAX (emb_i8_unsigned_small: Q4_1, Q4_K): maddubs takes them as
   its unsigned operand against the plain int8 activations (within +-127), so a product is at most
   16 * 127 and the 16 products an int16 lane gathers over a whole 32-block (two per k-group, eight
   k-groups) at most 32512 < 32767: one int16 sum per block and half, one madd to widen it, and no
   offset to cancel. As the unsigned operand the weights cannot come from memory inside maddubs, so
   each k-group's two weight vectors are loaded once for both rows. MR (1 or 2) rows x 16 outputs. */
AI void i8_tile_unsigned(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                         const float *asum, int64_t m, const int MR, int64_t p, const int AFF, float *y,
                         const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB;
    const int8_t *w = (const int8_t *)W->data + p * EMB_PANEL * kp;
    const float *ws = W->scale + p * nb * EMB_PANEL;
    const float *wm = AFF ? W->wmin + p * nb * EMB_PANEL : NULL;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00;
    const uint8_t *a0 = a + m * lda, *a1 = a + (m + (MR > 1 ? 1 : 0)) * lda;
    for (int64_t b = 0; b < nb; b++) {
        const int8_t *wb = w + b * (EMB_QB / 4) * 64;
        __m256i h00 = _mm256_setzero_si256(), h01 = h00, h10 = h00, h11 = h00;
#pragma GCC unroll 8
        for (int g = 0; g < EMB_QB / 4; g++) {
            const __m256i w0 = _mm256_load_si256((const __m256i *)(wb + g * 64));
            const __m256i w1 = _mm256_load_si256((const __m256i *)(wb + g * 64 + 32));
            __m256i av = bcast_a(a0 + b * EMB_QB + g * 4);
            h00 = _mm256_add_epi16(h00, _mm256_maddubs_epi16(w0, av));
            h01 = _mm256_add_epi16(h01, _mm256_maddubs_epi16(w1, av));
            if (MR > 1) {
                av = bcast_a(a1 + b * EMB_QB + g * 4);
                h10 = _mm256_add_epi16(h10, _mm256_maddubs_epi16(w0, av));
                h11 = _mm256_add_epi16(h11, _mm256_maddubs_epi16(w1, av));
            }
            /* Keeps GCC from hoisting all the block's products ahead of the sums (it then spills
               them to the stack): each k-group's sums are complete before the next one loads. */
            __asm__("" : "+x"(h00), "+x"(h01), "+x"(h10), "+x"(h11));
        }
        const __m256 ws0 = _mm256_load_ps(ws + b * EMB_PANEL), ws1 = _mm256_load_ps(ws + b * EMB_PANEL + 8);
        __m256 sv = _mm256_broadcast_ss(sa + m * nb + b);
        f00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(h00, ones)), _mm256_mul_ps(ws0, sv), f00);
        f01 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(h01, ones)), _mm256_mul_ps(ws1, sv), f01);
        if (MR > 1) {
            sv = _mm256_broadcast_ss(sa + (m + 1) * nb + b);
            f10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(h10, ones)), _mm256_mul_ps(ws0, sv), f10);
            f11 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(h11, ones)), _mm256_mul_ps(ws1, sv), f11);
        }
        if (AFF) affine_fold2(&f00, &f01, &f10, &f11, MR, wm + b * EMB_PANEL, asum + m * nb + b, nb);
    }
    emb_finish16_avx2(W, m, p, f00, f01, y, res);
    if (MR > 1) emb_finish16_avx2(W, m + 1, p, f10, f11, y, res);
}

/* The sign-trick tiles of panel p over rows [m0, m1), in near-equal blocks of at most 3 rows. */
AI void i8_panel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                 int64_t m0, int64_t m1, int64_t p, const int AFF, const int OFF, float *y, const float *residual) {
    const int64_t rows = m1 - m0, nblk = (rows + 2) / 3;
    for (int64_t blk = 0, m = m0; blk < nblk; m += emb_rows_of_block(rows, nblk, blk), blk++) {
        switch (emb_rows_of_block(rows, nblk, blk)) {
        case 1: i8_tile(W, a, lda, sa, asum, m, 1, p, AFF, OFF, y, residual); break;
        case 2: i8_tile(W, a, lda, sa, asum, m, 2, p, AFF, OFF, y, residual); break;
        default: i8_tile(W, a, lda, sa, asum, m, 3, p, AFF, OFF, y, residual); break;
        }
    }
}

/* AFF: whether W is affine (W->wmin), a compile-time constant in each instantiation, so the plain
   tiles carry no trace of the affine term. Each panel takes the small-weights path if its weights
   allow (a matrix packed from parts of several types may mix both kinds of panel). */
AI void i8_kernel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                  int64_t m0, int64_t m1, int64_t p0, int64_t p1, const int AFF, float *y,
                  const float *residual) {
    if (emb_i8_unsigned_small(W)) {
        for (int64_t p = p0; p < p1; p++) {
            int64_t m = m0;
            for (; m + 2 <= m1; m += 2) i8_tile_unsigned(W, a, lda, sa, asum, m, 2, p, AFF, y, residual);
            if (m < m1) i8_tile_unsigned(W, a, lda, sa, asum, m, 1, p, AFF, y, residual);
        }
        return;
    }
    if (!emb_i8_maddubs_offset(W)) {
        for (int64_t p = p0; p < p1; p++) i8_panel(W, a, lda, sa, asum, m0, m1, p, AFF, 0, y, residual);
        return;
    }
    for (int64_t p = p0; p < p1; p++) {
        if (!emb_i8_panel_small(W, p)) {
            i8_panel(W, a, lda, sa, asum, m0, m1, p, AFF, 1, y, residual);
            continue;
        }
        if (emb_i8_kp(W->k) <= WIDE_MAX_KP && p + 1 < p1 && emb_i8_panel_small(W, p + 1)) {
            for (int64_t m = m0; m < m1; m++) i8_tile_small_wide(W, a, lda, sa, asum, m, p, AFF, y, residual);
            p++; /* both panels done */
            continue;
        }
        int64_t m = m0;
        for (; m + 2 <= m1; m += 2) i8_tile_small(W, a, lda, sa, asum, m, 2, p, AFF, y, residual);
        if (m < m1) i8_tile_small(W, a, lda, sa, asum, m, 1, p, AFF, y, residual);
    }
}

void emb_i8_kernel_avx2(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                        const float *asum, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                        const float *residual) {
    if (W->wmin)
        i8_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 1, y, residual);
    else
        i8_kernel(W, a, lda, sa, asum, m0, m1, p0, p1, 0, y, residual);
}

/* ---- attention sgemms: tiles of 6 rows x 16 columns --------------------------------------------- */

AI __m256i col_mask(int64_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(cnt < 8 ? (cnt > 0 ? cnt : 0) : 8)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AI void sg_tile(int mr, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                int64_t ldc, int64_t ncols, float alpha, int accumulate) {
    const __m256i mk0 = col_mask(ncols), mk1 = col_mask(ncols - 8);
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < K; kk++) {
        __m256 b0 = _mm256_maskload_ps(B + kk * ldb, mk0), b1 = _mm256_maskload_ps(B + kk * ldb + 8, mk1);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(A + r * lda + kk);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        float *cp = C + r * ldc;
        __m256 v0 = _mm256_mul_ps(acc[r][0], va), v1 = _mm256_mul_ps(acc[r][1], va);
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cp, mk0));
            v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cp + 8, mk1));
        }
        _mm256_maskstore_ps(cp, mk0, v0);
        _mm256_maskstore_ps(cp + 8, mk1, v1);
    }
}

static void sg_panel(int64_t M, int64_t K, const float *A, int64_t lda, const float *Bp, int64_t ldbp,
                     float *C, int64_t ldc, int64_t ncols, float alpha, int accumulate) {
    for (int64_t i = 0; i < M; i += 6) {
        const float *Ai = A + i * lda;
        float *Ci = C + i * ldc;
        switch (M - i < 6 ? M - i : 6) {
        case 1: sg_tile(1, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        case 2: sg_tile(2, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        case 3: sg_tile(3, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        case 4: sg_tile(4, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        case 5: sg_tile(5, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        default: sg_tile(6, K, Ai, lda, Bp, ldbp, Ci, ldc, ncols, alpha, accumulate); break;
        }
    }
}

void emb_sgemm_nn_avx2(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc) {
    for (int64_t j = 0; j < N; j += 16)
        sg_panel(M, K, A, lda, B + j, ldb, C + j, ldc, N - j < 16 ? N - j : 16, 1.0f, 0);
}

#define NT_KC 256

void emb_sgemm_nt_avx2(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float *C, int64_t ldc) {
    float bt[NT_KC * 16] __attribute__((aligned(32)));
    for (int64_t j = 0; j < N; j += 16) {
        int64_t ncols = N - j < 16 ? N - j : 16;
        if (K <= 0) {
            sg_panel(M, 0, A, lda, bt, 16, C + j, ldc, ncols, alpha, 0);
            continue;
        }
        for (int64_t k0 = 0; k0 < K; k0 += NT_KC) {
            int64_t kc = K - k0 < NT_KC ? K - k0 : NT_KC;
            for (int64_t jj = 0; jj < ncols; jj++) {
                const float *b = B + (j + jj) * ldb + k0;
                for (int64_t kk = 0; kk < kc; kk++) bt[kk * 16 + jj] = b[kk];
            }
            sg_panel(M, kc, A + k0, lda, bt, 16, C + j, ldc, ncols, alpha, k0 > 0);
        }
    }
}
