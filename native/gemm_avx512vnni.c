/*
 * gemm_avx512vnni.c - the int8 kernel for AVX-512 VNNI: VPDPBUSD of (a + 128) as u8 with int8
 * weights, 6 token rows x 32 outputs (two panels) in 12 zmm int32 accumulators; each k-step loads 2
 * weight lines once and broadcasts 4 activation bytes per row. Every 32-block starts its
 * accumulators at rsum (-128 x the block's weight sum), which cancels the +128 offset exactly, so
 * each accumulator ends the block holding the scalar reference's exact int32 sum. It is then folded
 * into one of 12 float accumulators, also in registers: acc = fma(float(isum), ws * sa, acc), the
 * scalar reference's float steps in its order.
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

/* acc = fma(float(isum), ws * sa, acc) for one 16-output vector, then for affine weights (AFF, a
   compile-time constant: the plain tiles carry no trace of it) acc = fma(wm, asum, acc). */
AI __m512 fold(__m512 acc, __m512i isum, float sa, const float *ws, const int AFF, const float *wm, const float *as) {
    __m512 s = _mm512_mul_ps(_mm512_load_ps(ws), _mm512_set1_ps(sa));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), s, acc);
    if (AFF) acc = _mm512_fmadd_ps(_mm512_load_ps(wm), _mm512_set1_ps(*as), acc);
    return acc;
}

/* y = acc + bias (+ residual) for one 16-output vector of row m. */
AI void finish(const emb_matrix *W, __m512 v, int64_t m, int64_t n0, float *y, const float *res) {
    const int64_t n = W->n;
    __mmask16 mk = tail_mask(n - n0);
    if (W->bias) v = _mm512_add_ps(v, _mm512_load_ps(W->bias + n0));
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + m * n + n0));
    _mm512_mask_storeu_ps(y + m * n + n0, mk, v);
}

/* What a tile of rows m.. of panel p declares for the macros below, once nb (blocks a row) and ss
   (floats of one panel's scales) are set: the panel's scales and offsets (the next panel's start
   ss floats on), the rows' activations and scales, a zero vector, and for a 6 x 2 tile the 12
   float accumulators fRC (row R, panel C). */
#define TILE_VARS                                                \
    const float *ws = W->scale + p * ss;                         \
    const float *wm = AFF ? W->wmin + p * ss : NULL;             \
    const uint8_t *am = a + m * lda;                             \
    const float *sam = sa + m * nb;                              \
    const __m512i z = _mm512_setzero_si512();
#define TILE_FACC                                                                                 \
    __m512 f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00;      \
    __m512 f30 = f00, f31 = f00, f40 = f00, f41 = f00, f50 = f00, f51 = f00;

/* The end of a block and of a tile of up to 6 rows x 2 panels whose int32 accumulators are cRC
   and float accumulators fRC (row R, panel C), in the tiles' own variables. */
#define VFOLD(R, C) \
    if (MR > R && NP > C)                                                                            \
        f##R##C = fold(f##R##C, c##R##C, sam[R * nb + b], ws + C * ss + b * EMB_PANEL, AFF,          \
                       AFF ? wm + C * ss + b * EMB_PANEL : NULL, AFF ? asum + (m + R) * nb + b : NULL);
#define VFOLD_ROW(R) VFOLD(R, 0) VFOLD(R, 1)
#define TILE_FOLD VFOLD_ROW(0) VFOLD_ROW(1) VFOLD_ROW(2) VFOLD_ROW(3) VFOLD_ROW(4) VFOLD_ROW(5)
#define VFINISH(R, C) \
    if (MR > R && NP > C) finish(W, f##R##C, m + R, (p + C) * EMB_PANEL, y, res);
#define TILE_FINISH                                                                                \
    VFINISH(0, 0) VFINISH(0, 1) VFINISH(1, 0) VFINISH(1, 1) VFINISH(2, 0) VFINISH(2, 1)           \
    VFINISH(3, 0) VFINISH(3, 1) VFINISH(4, 0) VFINISH(4, 1) VFINISH(5, 0) VFINISH(5, 1)

/* Up to 6 rows x 2 panels: 12 int32 and 12 float accumulators, all in registers (with the two
   weight lines and the broadcast, 27 of the 32 zmm). Of the tile shapes timed on one Zen 5 core
   (docs/performance.md), those of 8 to 18 accumulators and at least 4 rows ran fastest; the 6 x 4
   tile used before (float accumulators in an L1 tile) ran 15-20% slower, tiles of 3 rows slower
   still. Six rows keep a short query's weights read once per worker. The accumulators are named
   variables, not an array: GCC keeps named vectors in registers but spills an array of zmm on
   every update. MR and NP are compile-time constants at every call, so the unused rows and
   columns vanish. */
AI void vnni_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                  int64_t m, const int MR, int64_t p, const int NP, const int AFF, float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const int32_t *st = W->rsum + p * ss;
    TILE_VARS
    TILE_FACC
    for (int64_t b = 0; b < nb; b++) {
        const __m512i s0 = _mm512_load_si512((const void *)(st + b * EMB_PANEL));
        const __m512i s1 = NP > 1 ? _mm512_load_si512((const void *)(st + ss + b * EMB_PANEL)) : z;
        __m512i c00 = s0, c01 = s1, c10 = s0, c11 = s1, c20 = s0, c21 = s1;
        __m512i c30 = s0, c31 = s1, c40 = s0, c41 = s1, c50 = s0, c51 = s1;
#pragma GCC unroll 8
        for (int gg = 0; gg < EMB_QB / 4; gg++) {
            const int8_t *wg = w + (b * (EMB_QB / 4) + gg) * 64;
            const uint8_t *ag = am + (b * (EMB_QB / 4) + gg) * 4;
            __m512i w0 = _mm512_load_si512((const void *)wg);
            __m512i w1 = NP > 1 ? _mm512_load_si512((const void *)(wg + ps)) : z;
#define VROW(R)                                                      \
    if (MR > R) {                                                    \
        __m512i av = bcast4(ag + R * lda);                           \
        c##R##0 = dpbusd(c##R##0, av, w0);                           \
        if (NP > 1) c##R##1 = dpbusd(c##R##1, av, w1);               \
    }
            VROW(0) VROW(1) VROW(2) VROW(3) VROW(4) VROW(5)
#undef VROW
        }
        TILE_FOLD
    }
    TILE_FINISH
}

/* One or two rows leave too few independent accumulators to cover VPDPBUSD's latency, so even
   and odd k-groups go to separate sets (c starts at rsum, d at zero), added (exactly) per block. */
AI void vnni_tile_narrow(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                         const float *asum, int64_t m, const int MR, int64_t p, const int NP, const int AFF,
                         float *y, const float *res) {
    const int64_t kp = emb_i8_kp(W->k), nb = kp / EMB_QB, ps = EMB_PANEL * kp, ss = nb * EMB_PANEL;
    const int8_t *w = (const int8_t *)W->data + p * ps;
    const int32_t *st = W->rsum + p * ss;
    TILE_VARS
    __m512 f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00;
    for (int64_t b = 0; b < nb; b++) {
        const __m512i s0 = _mm512_load_si512((const void *)(st + b * EMB_PANEL));
        const __m512i s1 = NP > 1 ? _mm512_load_si512((const void *)(st + ss + b * EMB_PANEL)) : z;
        __m512i c00 = s0, c01 = s1, c10 = s0, c11 = s1, d00 = z, d01 = z, d10 = z, d11 = z;
#define NSTEP(ACC, R, OFF)                                                                      \
    if (MR > R) {                                                                               \
        __m512i av = bcast4(ag + R * lda + (OFF) * 4);                                          \
        ACC##R##0 = dpbusd(ACC##R##0, av, _mm512_load_si512((const void *)(wg + (OFF) * 64)));  \
        if (NP > 1) ACC##R##1 = dpbusd(ACC##R##1, av, _mm512_load_si512((const void *)(wg + (OFF) * 64 + ps))); \
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
        f##R##C = fold(f##R##C, _mm512_add_epi32(c##R##C, d##R##C), sam[R * nb + b],                 \
                       ws + C * ss + b * EMB_PANEL, AFF, AFF ? wm + C * ss + b * EMB_PANEL : NULL,    \
                       AFF ? asum + (m + R) * nb + b : NULL);
        NFOLD(0, 0) NFOLD(0, 1) NFOLD(1, 0) NFOLD(1, 1)
#undef NFOLD
    }
#define NFINISH(R, C) \
    if (MR > R && NP > C) finish(W, f##R##C, m + R, (p + C) * EMB_PANEL, y, res);
    NFINISH(0, 0) NFINISH(0, 1) NFINISH(1, 0) NFINISH(1, 1)
#undef NFINISH
}

#define VNNI_CALL(MR, NP) vnni_tile(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define VNNI_NARROW_CALL(MR, NP) vnni_tile_narrow(W, a, lda, sa, asum, m, MR, p, NP, AFF, y, residual)
#define VNNI_NP(CALL, MR)                       \
    if (np == 1)                                \
        CALL(MR, 1);                            \
    else                                        \
        CALL(MR, 2);

/* AFF: whether W is affine (W->wmin), a compile-time constant in each instantiation. */
AI void vnni_kernel(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                    int64_t m0, int64_t m1, int64_t p0, int64_t p1, const int AFF, float *y,
                    const float *residual) {
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    for (int64_t p = p0; p < p1; p += 2) {
        int np = p1 - p < 2 ? (int)(p1 - p) : 2;
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

/* ---- Products of few rows from the compact copy ------------------------------------------------
   A call of few rows (EMB_MATMUL_FEW_ROWS) reads each weight line for a handful of tiles, and
   streaming the 12.6 MB of the bundled model's I8 weights and their scales from the shared L3
   bounds it. The compact copy (gemm_impl.h) holds most panels in 4 or 5 bits a weight and needs no
   rsum: 384 bytes a panel's block for Q5_0 or Q4_K weights against 640 or 704. The weights, shifted
   to unsigned, are VPDPBUSD's unsigned operand against the plain int8 activations, and each block
   starts from -zero x the row's activation sum: sum((w + zero) a) - zero sum(a) is the exact sum of
   w a, folded as vnni_tile folds it, so the results are the same bits. */

/* The unsigned weight line of k-group g (a compile-time constant) of one compact block. */
AI __m512i c_line(const uint8_t *blk, const int g, const int BITS) {
    if (BITS == 8) return _mm512_load_si512((const void *)(blk + g * 64));
    __m512i v = _mm512_load_si512((const void *)(blk + (g / 2) * 64));
    if (g & 1) v = _mm512_srli_epi16(v, 4);
    if (BITS == 4) return _mm512_and_si512(v, _mm512_set1_epi8(15));
    uint64_t fifth;
    memcpy(&fifth, blk + 256 + g * 8, 8);
    /* (v & 15) | (16 where the fifth bit is set) in one ternary-logic step */
    const __m512i hi = _mm512_maskz_mov_epi8(_cvtu64_mask64(fifth), _mm512_set1_epi8(16));
    return _mm512_ternarylogic_epi32(v, _mm512_set1_epi8(15), hi, 0xEA);
}

/* vnni_tile's shape and fold over the compact copy; both panels have BITS bits and one zero. */
AI void c_tile(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
               const int32_t *isa, int64_t m, const int MR, int64_t p, const int NP, const int BITS,
               const int AFF, float *y, const float *res) {
    const int64_t nb = emb_i8_nb(W->k), ss = nb * EMB_PANEL, bb = emb_c_block_bytes(BITS);
    const uint8_t *w0 = W->cdata + W->c_off[p];
    const uint8_t *w1 = NP > 1 ? W->cdata + W->c_off[p + 1] : w0;
    const int32_t zero = W->c_zero[p];
    TILE_VARS
    const int32_t *im = isa + m * nb;
    TILE_FACC
    for (int64_t b = 0; b < nb; b++) {
        __m512i c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
        __m512i c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
#define CSTART(R) \
    if (MR > R) c##R##0 = c##R##1 = _mm512_set1_epi32(-zero * im[R * nb + b]);
        CSTART(0) CSTART(1) CSTART(2) CSTART(3) CSTART(4) CSTART(5)
#undef CSTART
        const uint8_t *b0 = w0 + b * bb, *b1 = w1 + b * bb;
        const uint8_t *ab = am + b * EMB_QB;
#define CROW(R, G)                                                   \
    if (MR > R) {                                                    \
        __m512i av = bcast4(ab + R * lda + G * 4);                   \
        c##R##0 = dpbusd(c##R##0, wv0, av);                          \
        if (NP > 1) c##R##1 = dpbusd(c##R##1, wv1, av);              \
    }
#define CGROUP(G)                                                    \
    {                                                                \
        const __m512i wv0 = c_line(b0, G, BITS);                     \
        const __m512i wv1 = NP > 1 ? c_line(b1, G, BITS) : z;        \
        CROW(0, G) CROW(1, G) CROW(2, G) CROW(3, G) CROW(4, G) CROW(5, G)\
    }
        CGROUP(0) CGROUP(1) CGROUP(2) CGROUP(3) CGROUP(4) CGROUP(5) CGROUP(6) CGROUP(7)
#undef CGROUP
#undef CROW
        TILE_FOLD
    }
    TILE_FINISH
}

#define C_CALL(MR, NP) c_tile(W, a, lda, sa, asum, isa, m, MR, p, NP, BITS, AFF, y, residual)
#define C_NP(MR)           \
    if (np == 1)           \
        C_CALL(MR, 1);     \
    else                   \
        C_CALL(MR, 2);

/* Rows [m0, m1) against panels p (and p + 1 if np == 2) of BITS bits. */
AI void c_panels(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa, const float *asum,
                 const int32_t *isa, int64_t m0, int64_t m1, int64_t p, int np, const int BITS, const int AFF,
                 float *y, const float *residual) {
    const int64_t rows = m1 - m0, nblk = (rows + 5) / 6;
    int64_t m = m0;
    for (int64_t blk = 0; blk < nblk; blk++) {
        int mr = emb_rows_of_block(rows, nblk, blk);
        EMB_SWITCH_MR6(mr, C_NP)
        m += mr;
    }
}

#define C_PANELS_FN(BITS, AFF)                                                                                   \
    static void c_panels_##BITS##_##AFF(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,     \
                                        const float *asum, const int32_t *isa, int64_t m0, int64_t m1, int64_t p, \
                                        int np, float *y, const float *residual) {                              \
        c_panels(W, a, lda, sa, asum, isa, m0, m1, p, np, BITS, AFF, y, residual);                             \
    }
C_PANELS_FN(4, 0) C_PANELS_FN(4, 1) C_PANELS_FN(5, 0) C_PANELS_FN(5, 1) C_PANELS_FN(8, 0) C_PANELS_FN(8, 1)
#undef C_PANELS_FN
#undef C_NP
#undef C_CALL

void emb_i8c_kernel_avx512vnni(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                               const float *asum, const int32_t *isa, int64_t m0, int64_t m1, int64_t p0,
                               int64_t p1, float *y, const float *residual) {
    const int aff = W->wmin != NULL;
    for (int64_t p = p0; p < p1;) {
        /* Two panels share a tile only in the same form (panels of one GGUF part always do). */
        const int np = p + 1 < p1 && W->c_bits[p + 1] == W->c_bits[p] && W->c_zero[p + 1] == W->c_zero[p] ? 2 : 1;
        switch (W->c_bits[p] * 2 + aff) {
        case 8: c_panels_4_0(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        case 9: c_panels_4_1(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        case 10: c_panels_5_0(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        case 11: c_panels_5_1(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        case 16: c_panels_8_0(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        default: c_panels_8_1(W, a, lda, sa, asum, isa, m0, m1, p, np, y, residual); break;
        }
        p += np;
    }
}
