/*
 * ops_avx2.c - AVX2/FMA variants of ops.c's vector math (built with -mavx2 -mfma).
 *
 * exp: x = n ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial (truncation
 * error < 6e-9 relative), 2^n assembled in the exponent bits. Inputs below -87 give 0 (the true
 * value is a denormal below 1.7e-38); inputs are clamped at 88 above (used only for x <= 0 here).
 * GELU: piecewise polynomials of Phi(-|x|) (gelu_tables.h, scripts/gelu_tables.py), within 5e-8
 * absolute. Tails are done by the scalar reference of ops.c.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "gelu_tables.h"
#include "ops_impl.h"

void emb_layernorm_ref(float *y, const float *x, const float *g, const float *b, int64_t n,
                       float eps);
void emb_gelu_ref(float *x, int64_t n);
void emb_tanh_ref(float *x, int64_t n);
void emb_exp_ref(float *x, int64_t n);

static inline __m256 exp8(__m256 x) {
    const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 split in two so that n * ln2_hi is exact. */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, res);
}

void emb_exp_avx2(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) emb_exp_ref(x + i, n - i);
}

/* GELU(x) = x (1 - g(|x|)) for x >= 0, x g(|x|) for x < 0, with g(a) = Phi(-a) from the eight
   degree-6 pieces of gelu_tables.h: each lane picks its interval's coefficients with one permute per
   power (no division, no exp; about half the time of the erfc formula it replaced, which took 7% of
   the AVX2 forward pass). g = 0 from GELU_A_MAX on; NaN stays NaN. */
void emb_gelu_avx2(float *x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 per_unit = _mm256_set1_ps(8.0f / GELU_A_MAX), amax = _mm256_set1_ps(GELU_A_MAX);
    const __m256i last = _mm256_set1_epi32(7);
    __m256 tab[7];
    for (int j = 0; j < 7; j++) tab[j] = _mm256_load_ps(gelu_tab8[j]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 a = _mm256_andnot_ps(sign, v);
        const __m256 u = _mm256_mul_ps(a, per_unit);
        const __m256i k = _mm256_min_epi32(_mm256_cvttps_epi32(u), last);
        const __m256 t = _mm256_fmsub_ps(_mm256_sub_ps(u, _mm256_cvtepi32_ps(k)), _mm256_set1_ps(2.0f), one);
        __m256 g = _mm256_permutevar8x32_ps(tab[6], k);
        for (int j = 5; j >= 0; j--) g = _mm256_fmadd_ps(g, t, _mm256_permutevar8x32_ps(tab[j], k));
        g = _mm256_andnot_ps(_mm256_cmp_ps(a, amax, _CMP_GE_OQ), g);
        /* blendv picks by the sign bit: g for negative x (and -0), 1 - g otherwise. */
        _mm256_storeu_ps(x + i, _mm256_mul_ps(v, _mm256_blendv_ps(_mm256_sub_ps(one, g), g, v)));
    }
    if (i < n) emb_gelu_ref(x + i, n - i);
}

void emb_tanh_avx2(float *x, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 a = _mm256_andnot_ps(sign, v);
        /* tanh|x| = (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 1]: no overflow anywhere. */
        const __m256 e = exp8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
        const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
        _mm256_storeu_ps(x + i, _mm256_or_ps(t, _mm256_and_ps(sign, v)));
    }
    if (i < n) emb_tanh_ref(x + i, n - i);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* In place s[j] = exp(s[j] - max) for j < n; returns 1 / sum (one term is exp(0) = 1). Softmax
   without its last pass: attention applies the 1 / sum to its weighted sums instead. */
static float exp_row(float *s, int64_t n) {
    float max = s[0];
    int64_t i = 0;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(s);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
        max = hmax8(m);
    }
    for (; i < n; i++)
        if (s[i] > max) max = s[i];
    const __m256 vmax = _mm256_set1_ps(max);
    __m256 acc = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmax));
        _mm256_storeu_ps(s + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        /* The last 1-7 values as a masked vector (lanes past n zeroed before the sum), not libm's
           expf a value at a time, which in a short row cost more than the vectors (12 keys: four
           calls beside one vector). */
        const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(s + i, mk), vmax)), _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(s + i, mk, e);
        acc = _mm256_add_ps(acc, e);
    }
    return 1.0f / hsum8(acc);
}

void emb_softmax_avx2(float *x, int64_t n) {
    if (n <= 0) return;
    const float inv = exp_row(x, n);
    const __m256 vinv = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] *= inv;
}

/* Four accumulators in the two reductions: with one, each row was a chain of dependent adds and
   FMAs (n / 8 of each, 3-4 cycles apiece) that left the core waiting. */
void emb_layernorm_avx2(float *y, const float *x, const float *g, const float *b, int64_t n,
                        float eps) {
    if (n <= 0) return;
    int64_t i = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) sum += x[i];
    const float mean = sum / (float)n;
    const __m256 vmean = _mm256_set1_ps(mean);
    a0 = a1 = a2 = a3 = _mm256_setzero_ps();
    for (i = 0; i + 32 <= n; i += 32) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmean);
        const __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), vmean), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), vmean);
        a0 = _mm256_fmadd_ps(d0, d0, a0);
        a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2);
        a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean);
        a0 = _mm256_fmadd_ps(d, d, a0);
    }
    float var = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    const float rstd = 1.0f / sqrtf(var / (float)n + eps);
    const __m256 vrstd = _mm256_set1_ps(rstd);
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmean), vrstd);
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * g[i] + b[i];
}

float emb_dot_avx2(const float *x, const float *y, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

void emb_axpy_avx2(float *y, float a, const float *x, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* ---- attention: emb_attend_avx512's steps at 8 lanes ---------------------------------------- */

/* dst row c (8 floats, rows ldd apart) = column c of the 8 x 8 block at src (rows lds apart);
   source rows at or past `rows` read as zeros. */
static void transpose8(const float *src, int64_t lds, int rows, float *dst, int64_t ldd) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[k + 4g], lane l: column k + 4l of rows 4g .. 4g+3. */
    for (int g = 0; g < 2; g++) {
        u[0 + 4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[1 + 4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[2 + 4 * g] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[3 + 4 * g] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; k++) {
        _mm256_store_ps(dst + k * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_store_ps(dst + (k + 4) * ldd, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}

/* Scores of up to 4 query rows (unused rows repeat row 0) against 16 keys' transposed columns kt
   (hd rows, ldk apart), scaled, into s[r * lds]. */
static inline void scores_4x16(const float *const q[4], const float *kt, int64_t ldk, int64_t hd, float scale,
                               float *s, int64_t lds) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int64_t d = 0; d < hd; d++) {
        const __m256 k0 = _mm256_load_ps(kt + d * ldk), k1 = _mm256_load_ps(kt + d * ldk + 8);
        __m256 b = _mm256_broadcast_ss(q[0] + d);
        a00 = _mm256_fmadd_ps(b, k0, a00), a01 = _mm256_fmadd_ps(b, k1, a01);
        b = _mm256_broadcast_ss(q[1] + d);
        a10 = _mm256_fmadd_ps(b, k0, a10), a11 = _mm256_fmadd_ps(b, k1, a11);
        b = _mm256_broadcast_ss(q[2] + d);
        a20 = _mm256_fmadd_ps(b, k0, a20), a21 = _mm256_fmadd_ps(b, k1, a21);
        b = _mm256_broadcast_ss(q[3] + d);
        a30 = _mm256_fmadd_ps(b, k0, a30), a31 = _mm256_fmadd_ps(b, k1, a31);
    }
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
    for (int r = 0; r < 4; r++) {
        _mm256_store_ps(s + r * lds, _mm256_mul_ps(acc[r][0], vs));
        _mm256_store_ps(s + r * lds + 8, _mm256_mul_ps(acc[r][1], vs));
    }
}

/* out rows (up to 4) = inv[r] * sum_j e[r][j] V_j for 16 (or, two = 0, 8) values from column h. */
static inline void pv_4x16(const float *e, int64_t lde, int rows, int64_t L, const float *V, int64_t ldv, int64_t h,
                           int two, const float inv[4], float *out, int64_t ldo) {
    __m256 o00 = _mm256_setzero_ps(), o01 = o00, o10 = o00, o11 = o00, o20 = o00, o21 = o00, o30 = o00, o31 = o00;
    const float *e1 = e + (rows > 1 ? lde : 0), *e2 = e + (rows > 2 ? 2 * lde : 0), *e3 = e + (rows > 3 ? 3 * lde : 0);
    for (int64_t j = 0; j < L; j++) {
        const __m256 v0 = _mm256_loadu_ps(V + j * ldv + h), v1 = two ? _mm256_loadu_ps(V + j * ldv + h + 8) : v0;
        __m256 b = _mm256_broadcast_ss(e + j);
        o00 = _mm256_fmadd_ps(b, v0, o00), o01 = _mm256_fmadd_ps(b, v1, o01);
        b = _mm256_broadcast_ss(e1 + j);
        o10 = _mm256_fmadd_ps(b, v0, o10), o11 = _mm256_fmadd_ps(b, v1, o11);
        b = _mm256_broadcast_ss(e2 + j);
        o20 = _mm256_fmadd_ps(b, v0, o20), o21 = _mm256_fmadd_ps(b, v1, o21);
        b = _mm256_broadcast_ss(e3 + j);
        o30 = _mm256_fmadd_ps(b, v0, o30), o31 = _mm256_fmadd_ps(b, v1, o31);
    }
    const __m256 acc[4][2] = {{o00, o01}, {o10, o11}, {o20, o21}, {o30, o31}};
    for (int r = 0; r < rows; r++) {
        const __m256 vi = _mm256_set1_ps(inv[r]);
        _mm256_storeu_ps(out + r * ldo + h, _mm256_mul_ps(acc[r][0], vi));
        if (two) _mm256_storeu_ps(out + r * ldo + h + 8, _mm256_mul_ps(acc[r][1], vi));
    }
}

void emb_attend_avx2(EMB_ATTEND_ARGS) {
    if (hd % 8 != 0 || nq <= 0 || L <= 0) {
        emb_attend_sgemm(nq, L, hd, scale, Q, ldq, K, ldk, V, ldv, out, ldo, scratch);
        return;
    }
    const int64_t l16 = (L + 15) / 16 * 16;
    float *kt = scratch, *s = scratch + hd * l16;
    for (int64_t j0 = 0; j0 < l16; j0 += 8)
        for (int64_t d0 = 0; d0 < hd; d0 += 8)
            transpose8(K + j0 * ldk + d0, ldk, L - j0 < 8 ? (int)(L - j0 > 0 ? L - j0 : 0) : 8, kt + d0 * l16 + j0, l16);
    for (int64_t i0 = 0; i0 < nq; i0 += 4) {
        const int rows = nq - i0 < 4 ? (int)(nq - i0) : 4;
        const float *q[4];
        for (int r = 0; r < 4; r++) q[r] = Q + (i0 + (r < rows ? r : 0)) * ldq;
        for (int64_t j0 = 0; j0 < l16; j0 += 16) scores_4x16(q, kt + j0, l16, hd, scale, s + j0, l16);
        float inv[4] = {0, 0, 0, 0};
        for (int r = 0; r < rows; r++) inv[r] = exp_row(s + r * l16, L);
        for (int64_t h = 0; h < hd; h += 16)
            pv_4x16(s, l16, rows, L, V, ldv, h, h + 8 < hd, inv, out + i0 * ldo, ldo);
    }
}
