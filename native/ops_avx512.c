/*
 * ops_avx512.c - AVX-512F variants of ops.c's vector math. Same algorithms as ops_avx2.c (see its
 * header for the exp and erfc approximations); tails use masked loads and stores.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "gelu_tables.h"
#include "ops_impl.h"

static inline __m512 exp16(__m512 x) {
    const __mmask16 underflow = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    const __m512 res = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    return _mm512_mask_blend_ps(underflow, res, _mm512_setzero_ps());
}

static inline __mmask16 tail_mask(int64_t rem) { return (__mmask16)((1u << rem) - 1u); }

void emb_exp_avx512(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* GELU of one vector: as emb_gelu_avx2, with the sixteen degree-5 pieces of gelu_tables.h (one
   permutexvar each). */
static inline __m512 gelu16(__m512 v, const __m512 tab[6]) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 a = _mm512_abs_ps(v);
    const __m512 u = _mm512_mul_ps(a, _mm512_set1_ps(16.0f / GELU_A_MAX));
    const __m512i k = _mm512_min_epi32(_mm512_cvttps_epi32(u), _mm512_set1_epi32(15));
    const __m512 t = _mm512_fmsub_ps(_mm512_sub_ps(u, _mm512_cvtepi32_ps(k)), _mm512_set1_ps(2.0f), one);
    __m512 g = _mm512_permutexvar_ps(k, tab[5]);
    for (int j = 4; j >= 0; j--) g = _mm512_fmadd_ps(g, t, _mm512_permutexvar_ps(k, tab[j]));
    g = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(GELU_A_MAX), _CMP_GE_OQ), g, _mm512_setzero_ps());
    /* g for negative x (and -0), 1 - g otherwise. */
    const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(v));
    return _mm512_mul_ps(v, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, g), g));
}

/* Two vectors a step: one vector's chain of dependent steps (the Horner sum above all) is longer
   than the core covers from one iteration to the next; two independent chains side by side, same
   results: 0.17-0.19 against 0.22-0.38 ns a value (rows of 64 and of 1536 values, Zen 5); GELU's
   share of the engine's bulk run 3.7 -> 2.9%. The AVX2 loop gained nothing so: on Zen 5 its
   permutes and FMAs issue on the same two pipes (4 + 4 take 4 cycles), which its seven of each a
   vector already fill. */
void emb_gelu_avx512(float *x, int64_t n) {
    __m512 tab[6];
    for (int j = 0; j < 6; j++) tab[j] = _mm512_load_ps(gelu_tab16[j]);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 g0 = gelu16(_mm512_loadu_ps(x + i), tab), g1 = gelu16(_mm512_loadu_ps(x + i + 16), tab);
        _mm512_storeu_ps(x + i, g0);
        _mm512_storeu_ps(x + i + 16, g1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i), tab));
    }
}

void emb_tanh_avx512(float *x, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m512 e = exp16(_mm512_mul_ps(_mm512_abs_ps(v), _mm512_set1_ps(-2.0f)));
        const __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
        const __m512i s = _mm512_and_si512(_mm512_castps_si512(v), sign);
        _mm512_mask_storeu_ps(x + i, m, _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), s)));
    }
}

/* In place s[j] = exp(s[j] - max) for j < n; returns 1 / sum (one term is exp(0) = 1). Softmax
   without its last pass: attention applies the 1 / sum to its weighted sums instead. */
static float exp_row(float *s, int64_t n) {
    __m512 vmax = _mm512_set1_ps(s[0]);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, s + i));
    }
    vmax = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + i), vmax));
        _mm512_mask_storeu_ps(s + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    }
    return 1.0f / _mm512_reduce_add_ps(acc);
}

void emb_softmax_avx512(float *x, int64_t n) {
    if (n <= 0) return;
    const __m512 vinv = _mm512_set1_ps(exp_row(x, n));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv));
    }
}

/* Four accumulators in the two reductions, as emb_layernorm_avx2. */
void emb_layernorm_avx512(float *y, const float *x, const float *g, const float *b, int64_t n,
                          float eps) {
    if (n <= 0) return;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, x + i));
    }
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) / (float)n;
    const __m512 vmean = _mm512_set1_ps(mean);
    a0 = a1 = a2 = a3 = _mm512_setzero_ps();
    for (i = 0; i + 64 <= n; i += 64) {
        const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vmean), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vmean);
        const __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), vmean), d3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), vmean);
        a0 = _mm512_fmadd_ps(d0, d0, a0);
        a1 = _mm512_fmadd_ps(d1, d1, a1);
        a2 = _mm512_fmadd_ps(d2, d2, a2);
        a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vmean);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    const float rstd = 1.0f / sqrtf(_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) / (float)n + eps);
    const __m512 vrstd = _mm512_set1_ps(rstd);
    for (i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmean), vrstd);
        const __m512 r = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

float emb_dot_avx512(const float *x, const float *y, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

void emb_axpy_avx512(float *y, float a, const float *x, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        const __m512 r =
            _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/* ---- attention ------------------------------------------------------------------------------ */

/* dst row c (16 floats, rows ldd apart) = column c of the 16 x 16 block at src (rows lds apart);
   source rows at or past `rows` read as zeros. Three rounds: 32-bit unpacks pair rows, 64-bit
   unpacks gather four rows of one column per 128-bit lane, lane shuffles assemble the columns. */
static void transpose16(const float *src, int64_t lds, int rows, float *dst, int64_t ldd) {
    __m512 r[16], t[16], u[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[k + 4g], lane l: column k + 4l of rows 4g .. 4g+3. */
    for (int g = 0; g < 4; g++) {
        const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[0 + 4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[1 + 4 * g] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[2 + 4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[3 + 4 * g] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int k = 0; k < 4; k++) {
        const __m512 x01 = _mm512_shuffle_f32x4(u[k], u[k + 4], 0x44), y01 = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0x44);
        const __m512 x23 = _mm512_shuffle_f32x4(u[k], u[k + 4], 0xEE), y23 = _mm512_shuffle_f32x4(u[k + 8], u[k + 12], 0xEE);
        _mm512_store_ps(dst + (k + 0) * ldd, _mm512_shuffle_f32x4(x01, y01, 0x88));
        _mm512_store_ps(dst + (k + 4) * ldd, _mm512_shuffle_f32x4(x01, y01, 0xDD));
        _mm512_store_ps(dst + (k + 8) * ldd, _mm512_shuffle_f32x4(x23, y23, 0x88));
        _mm512_store_ps(dst + (k + 12) * ldd, _mm512_shuffle_f32x4(x23, y23, 0xDD));
    }
}

/* Scores of up to 4 query rows (q[r]; unused rows repeat row 0) against 32 keys' transposed
   columns kt (hd rows, ldk apart), scaled, into s[r * lds]; `two` = 0 does only the first 16. */
static inline void scores_4x32(const float *const q[4], const float *kt, int64_t ldk, int64_t hd, int two,
                               float scale, float *s, int64_t lds) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t d = 0; d < hd; d++) {
        const __m512 k0 = _mm512_load_ps(kt + d * ldk), k1 = two ? _mm512_load_ps(kt + d * ldk + 16) : k0;
        __m512 b = _mm512_set1_ps(q[0][d]);
        a00 = _mm512_fmadd_ps(b, k0, a00), a01 = _mm512_fmadd_ps(b, k1, a01);
        b = _mm512_set1_ps(q[1][d]);
        a10 = _mm512_fmadd_ps(b, k0, a10), a11 = _mm512_fmadd_ps(b, k1, a11);
        b = _mm512_set1_ps(q[2][d]);
        a20 = _mm512_fmadd_ps(b, k0, a20), a21 = _mm512_fmadd_ps(b, k1, a21);
        b = _mm512_set1_ps(q[3][d]);
        a30 = _mm512_fmadd_ps(b, k0, a30), a31 = _mm512_fmadd_ps(b, k1, a31);
    }
    const __m512 vs = _mm512_set1_ps(scale);
    _mm512_store_ps(s, _mm512_mul_ps(a00, vs));
    _mm512_store_ps(s + lds, _mm512_mul_ps(a10, vs));
    _mm512_store_ps(s + 2 * lds, _mm512_mul_ps(a20, vs));
    _mm512_store_ps(s + 3 * lds, _mm512_mul_ps(a30, vs));
    if (two) {
        _mm512_store_ps(s + 16, _mm512_mul_ps(a01, vs));
        _mm512_store_ps(s + lds + 16, _mm512_mul_ps(a11, vs));
        _mm512_store_ps(s + 2 * lds + 16, _mm512_mul_ps(a21, vs));
        _mm512_store_ps(s + 3 * lds + 16, _mm512_mul_ps(a31, vs));
    }
}

/* out rows (up to 4) = inv[r] * sum_j e[r][j] V_j for 32 (or, two = 0, 16) values from column h. */
static inline void pv_4x32(const float *e, int64_t lde, int rows, int64_t L, const float *V, int64_t ldv,
                           int64_t h, int two, const float inv[4], float *out, int64_t ldo) {
    __m512 o00 = _mm512_setzero_ps(), o01 = o00, o10 = o00, o11 = o00, o20 = o00, o21 = o00, o30 = o00, o31 = o00;
    const float *e1 = e + (rows > 1 ? lde : 0), *e2 = e + (rows > 2 ? 2 * lde : 0), *e3 = e + (rows > 3 ? 3 * lde : 0);
    for (int64_t j = 0; j < L; j++) {
        const __m512 v0 = _mm512_loadu_ps(V + j * ldv + h), v1 = two ? _mm512_loadu_ps(V + j * ldv + h + 16) : v0;
        __m512 b = _mm512_set1_ps(e[j]);
        o00 = _mm512_fmadd_ps(b, v0, o00), o01 = _mm512_fmadd_ps(b, v1, o01);
        b = _mm512_set1_ps(e1[j]);
        o10 = _mm512_fmadd_ps(b, v0, o10), o11 = _mm512_fmadd_ps(b, v1, o11);
        b = _mm512_set1_ps(e2[j]);
        o20 = _mm512_fmadd_ps(b, v0, o20), o21 = _mm512_fmadd_ps(b, v1, o21);
        b = _mm512_set1_ps(e3[j]);
        o30 = _mm512_fmadd_ps(b, v0, o30), o31 = _mm512_fmadd_ps(b, v1, o31);
    }
    const __m512 acc[4][2] = {{o00, o01}, {o10, o11}, {o20, o21}, {o30, o31}};
    for (int r = 0; r < rows; r++) {
        const __m512 vi = _mm512_set1_ps(inv[r]);
        _mm512_storeu_ps(out + r * ldo + h, _mm512_mul_ps(acc[r][0], vi));
        if (two) _mm512_storeu_ps(out + r * ldo + h + 16, _mm512_mul_ps(acc[r][1], vi));
    }
}

/* Fused attention: the head's keys are transposed once per call (hd x L16 in scratch), then query
   rows go in blocks of 4 through scores (FMAs over the transposed keys, no horizontal sums),
   exponentials, and the weighted sum of values, normalised at the end. Every row takes the same
   steps whichever block it is in. */
void emb_attend_avx512(EMB_ATTEND_ARGS) {
    if (hd % 16 != 0 || nq <= 0 || L <= 0) {
        emb_attend_sgemm(nq, L, hd, scale, Q, ldq, K, ldk, V, ldv, out, ldo, scratch);
        return;
    }
    const int64_t l16 = (L + 15) / 16 * 16;
    float *kt = scratch, *s = scratch + hd * l16;
    for (int64_t j0 = 0; j0 < l16; j0 += 16)
        for (int64_t d0 = 0; d0 < hd; d0 += 16)
            transpose16(K + j0 * ldk + d0, ldk, L - j0 < 16 ? (int)(L - j0) : 16, kt + d0 * l16 + j0, l16);
    for (int64_t i0 = 0; i0 < nq; i0 += 4) {
        const int rows = nq - i0 < 4 ? (int)(nq - i0) : 4;
        const float *q[4];
        for (int r = 0; r < 4; r++) q[r] = Q + (i0 + (r < rows ? r : 0)) * ldq;
        for (int64_t j0 = 0; j0 < l16; j0 += 32)
            scores_4x32(q, kt + j0, l16, hd, j0 + 16 < l16, scale, s + j0, l16);
        float inv[4] = {0, 0, 0, 0};
        for (int r = 0; r < rows; r++) inv[r] = exp_row(s + r * l16, L);
        for (int64_t h = 0; h < hd; h += 32)
            pv_4x32(s, l16, rows, L, V, ldv, h, h + 16 < hd, inv, out + i0 * ldo, ldo);
    }
}
