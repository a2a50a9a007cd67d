/*
 * test_ops.c - ops.c's scalar references against double-precision libm, and every SIMD variant
 * this CPU can run against the scalar reference, plus the dispatching entry points of ops.h.
 *
 * Tolerances (absolute unless said): gelu 1e-6, tanh 1e-6, exp 1e-6 relative, softmax 1e-6,
 * layernorm 1e-5, dot 1e-5 relative to sum |x*y|, axpy 1e-6.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedd.h"
#include "ops.h"

#include "ops_impl.h"

typedef struct {
    const char *name;
    int level; /* emb_simd level needed to run it */
    void (*layernorm)(float *, const float *, const float *, const float *, int64_t, float);
    void (*gelu)(float *, int64_t);
    void (*tanh_)(float *, int64_t);
    void (*softmax)(float *, int64_t);
    void (*exp_)(float *, int64_t);
    float (*dot)(const float *, const float *, int64_t);
    void (*axpy)(float *, float, const float *, int64_t);
} variant;

static const variant variants[] = {
    {"scalar", EMB_SIMD_SCALAR, emb_layernorm_ref, emb_gelu_ref, emb_tanh_ref, emb_softmax_ref,
     emb_exp_ref, emb_dot_ref, emb_axpy_ref},
#if defined(__x86_64__)
    {"avx2", EMB_SIMD_AVX2, emb_layernorm_avx2, emb_gelu_avx2, emb_tanh_avx2, emb_softmax_avx2,
     emb_exp_avx2, emb_dot_avx2, emb_axpy_avx2},
    {"avx512", EMB_SIMD_AVX512, emb_layernorm_avx512, emb_gelu_avx512, emb_tanh_avx512,
     emb_softmax_avx512, emb_exp_avx512, emb_dot_avx512, emb_axpy_avx512},
#endif
};

static int passed, failed;

static void check(int ok, const char *what, const char *variant_name, double err, double tol) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s [%s]: error %.3g > tolerance %.3g\n", what, variant_name, err, tol);
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(float lo, float hi) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) / (double)(1ull << 24));
}

#define NMAX 4096
static float xs[NMAX], ys[NMAX], gs[NMAX], bs[NMAX], tmp[NMAX], tmp2[NMAX];

/* Lengths hitting every tail of 8- and 16-wide loops. */
static const int64_t lengths[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 384, 1536, 4096};
#define N_LENGTHS (int64_t)(sizeof(lengths) / sizeof(lengths[0]))

static void test_elementwise(const variant *v) {
    char what[64];
    /* gelu over a dense grid and random points, against double erfc. */
    for (int pass = 0; pass < 2; pass++) {
        const int64_t n = NMAX;
        for (int64_t i = 0; i < n; i++)
            xs[i] = pass == 0 ? -12.0f + 24.0f * (float)i / (float)(n - 1) : frand(-6.0f, 6.0f);
        memcpy(tmp, xs, sizeof(float) * n);
        v->gelu(tmp, n);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double x = xs[i];
            const double want = 0.5 * x * erfc(-x / sqrt(2.0));
            const double e = fabs(tmp[i] - want);
            if (!(e <= worst)) worst = e;
        }
        snprintf(what, sizeof what, "gelu vs double (pass %d)", pass);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);

        memcpy(tmp, xs, sizeof(float) * n);
        v->tanh_(tmp, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double e = fabs(tmp[i] - tanh((double)xs[i]));
            if (!(e <= worst)) worst = e;
        }
        snprintf(what, sizeof what, "tanh vs double (pass %d)", pass);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);
    }
    /* exp over the range softmax and erfc use (arguments <= 0) and a little above. */
    {
        const int64_t n = NMAX;
        for (int64_t i = 0; i < n; i++) xs[i] = -86.0f + 96.0f * (float)i / (float)(n - 1);
        memcpy(tmp, xs, sizeof(float) * n);
        v->exp_(tmp, n);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double want = exp((double)xs[i]);
            const double e = fabs(tmp[i] - want) / want;
            if (!(e <= worst)) worst = e;
        }
        check(worst <= 1e-6, "exp relative vs double", v->name, worst, 1e-6);
        /* far below the range: 0, never garbage */
        for (int64_t i = 0; i < 20; i++) tmp[i] = -100.0f - 50.0f * (float)i;
        v->exp_(tmp, 20);
        double big = 0;
        for (int64_t i = 0; i < 20; i++)
            if (!(fabs(tmp[i]) <= big)) big = fabs(tmp[i]);
        check(big <= 1e-37, "exp of very negative input is ~0", v->name, big, 1e-37);
    }
}

static void test_vectors(const variant *v) {
    char what[80];
    for (int64_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        for (int64_t i = 0; i < n; i++) {
            xs[i] = frand(-3.0f, 3.0f) + 0.5f;
            ys[i] = frand(-2.0f, 2.0f);
            gs[i] = frand(0.5f, 1.5f);
            bs[i] = frand(-0.5f, 0.5f);
        }
        /* layernorm against a double computation */
        v->layernorm(tmp, xs, gs, bs, n, 1e-12f);
        double mean = 0, var = 0;
        for (int64_t i = 0; i < n; i++) mean += xs[i];
        mean /= (double)n;
        for (int64_t i = 0; i < n; i++) var += (xs[i] - mean) * (xs[i] - mean);
        var /= (double)n;
        double worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double want = (xs[i] - mean) / sqrt(var + 1e-12) * gs[i] + bs[i];
            const double e = fabs(tmp[i] - want);
            if (!(e <= worst)) worst = e;
        }
        snprintf(what, sizeof what, "layernorm n=%lld", (long long)n);
        check(worst <= 1e-5, what, v->name, worst, 1e-5);
        /* in place (y aliases x) gives the same */
        memcpy(tmp2, xs, sizeof(float) * n);
        v->layernorm(tmp2, tmp2, gs, bs, n, 1e-12f);
        worst = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(tmp2[i] - tmp[i]) <= worst)) worst = fabs(tmp2[i] - tmp[i]);
        snprintf(what, sizeof what, "layernorm in place n=%lld", (long long)n);
        check(worst == 0, what, v->name, worst, 0);

        /* softmax against double */
        for (int64_t i = 0; i < n; i++) tmp[i] = xs[i] * 4.0f;
        v->softmax(tmp, n);
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n; i++) mx = fmax(mx, xs[i] * 4.0);
        for (int64_t i = 0; i < n; i++) sum += exp(xs[i] * 4.0 - mx);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double e = fabs(tmp[i] - exp(xs[i] * 4.0 - mx) / sum);
            if (!(e <= worst)) worst = e;
        }
        snprintf(what, sizeof what, "softmax n=%lld", (long long)n);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);

        /* dot and axpy */
        double d = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            d += (double)xs[i] * ys[i];
            mag += fabs((double)xs[i] * ys[i]);
        }
        const double de = fabs(v->dot(xs, ys, n) - d) / (mag + 1e-30);
        snprintf(what, sizeof what, "dot n=%lld", (long long)n);
        check(de <= 1e-5, what, v->name, de, 1e-5);
        memcpy(tmp, ys, sizeof(float) * n);
        v->axpy(tmp, 0.75f, xs, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++) {
            const double e = fabs(tmp[i] - (ys[i] + 0.75 * xs[i]));
            if (!(e <= worst)) worst = e;
        }
        snprintf(what, sizeof what, "axpy n=%lld", (long long)n);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);

        /* element-wise kernels on this length against the scalar reference (tails) */
        for (int64_t i = 0; i < n; i++) tmp[i] = tmp2[i] = xs[i];
        v->gelu(tmp, n);
        emb_gelu_ref(tmp2, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(tmp[i] - tmp2[i]) <= worst)) worst = fabs(tmp[i] - tmp2[i]);
        snprintf(what, sizeof what, "gelu vs scalar n=%lld", (long long)n);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);
        for (int64_t i = 0; i < n; i++) tmp[i] = tmp2[i] = xs[i];
        v->tanh_(tmp, n);
        emb_tanh_ref(tmp2, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(tmp[i] - tmp2[i]) <= worst)) worst = fabs(tmp[i] - tmp2[i]);
        snprintf(what, sizeof what, "tanh vs scalar n=%lld", (long long)n);
        check(worst <= 1e-6, what, v->name, worst, 1e-6);
    }
}

static void test_edge_cases(const variant *v) {
    /* softmax of huge and hugely negative finite inputs: finite, sums to 1, right argmax. */
    float s[19];
    for (int i = 0; i < 19; i++) s[i] = (i % 2 ? -1.0f : 1.0f) * (3.0e38f / 19.0f) * (float)(i + 1);
    s[7] = 3.3e38f;
    v->softmax(s, 19);
    double sum = 0;
    int finite = 1;
    for (int i = 0; i < 19; i++) {
        sum += s[i];
        finite &= isfinite(s[i]) && s[i] >= 0;
    }
    check(finite && fabs(sum - 1.0) <= 1e-6 && s[7] > 0.99f, "softmax of huge inputs", v->name,
          fabs(sum - 1.0), 1e-6);
    for (int i = 0; i < 19; i++) s[i] = -1.0e4f - (float)i;
    v->softmax(s, 19);
    double gsum = 0; /* the shifted inputs are 0, -1, ..., -18 */
    for (int i = 0; i < 19; i++) gsum += exp(-(double)i);
    const double e0 = fabs(s[0] - 1.0 / gsum);
    check(e0 <= 1e-6, "softmax of large negative inputs", v->name, e0, 1e-6);
    /* softmax of one value is 1 */
    s[0] = -5.0e30f;
    v->softmax(s, 1);
    check(s[0] == 1.0f, "softmax of one value", v->name, fabs(s[0] - 1.0), 0);

    /* LayerNorm of a constant row is exactly the bias (zero variance, eps keeps it finite). */
    for (int64_t li = 0; li < N_LENGTHS; li++) {
        const int64_t n = lengths[li];
        for (int64_t i = 0; i < n; i++) {
            xs[i] = 2.5f;
            gs[i] = frand(0.5f, 1.5f);
            bs[i] = frand(-1.0f, 1.0f);
        }
        v->layernorm(tmp, xs, gs, bs, n, 1e-12f);
        double worst = 0;
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(tmp[i] - bs[i]) <= worst)) worst = fabs(tmp[i] - bs[i]);
        check(worst == 0, "layernorm of a constant row", v->name, worst, 0);
    }
    /* gelu / tanh of extremes */
    float ex[5] = {-100.0f, 100.0f, 0.0f, -1e-20f, 30.0f};
    v->gelu(ex, 5);
    check(ex[0] == 0.0f && ex[1] == 100.0f && ex[2] == 0.0f && fabs(ex[3]) < 1e-19 &&
              ex[4] == 30.0f,
          "gelu of extremes", v->name, 0, 0);
    float et[4] = {-100.0f, 100.0f, 0.0f, 1e-3f};
    v->tanh_(et, 4);
    check(et[0] == -1.0f && et[1] == 1.0f && et[2] == 0.0f && fabs(et[3] - tanh(1e-3)) < 1e-6,
          "tanh of extremes", v->name, 0, 0);
}

/* The ops.h entry points dispatch to the variant of the active level. */
static void test_dispatch(const variant *v) {
    if (emb_simd_set(v->level) != 0) {
        check(0, "emb_simd_set to a detected level", v->name, 0, 0);
        return;
    }
    const int64_t n = 77;
    for (int64_t i = 0; i < n; i++) xs[i] = frand(-4.0f, 4.0f);
    memcpy(tmp, xs, sizeof(float) * n);
    memcpy(tmp2, xs, sizeof(float) * n);
    emb_gelu(tmp, n);
    v->gelu(tmp2, n);
    check(memcmp(tmp, tmp2, sizeof(float) * n) == 0, "emb_gelu dispatches", v->name, 0, 0);
    memcpy(tmp, xs, sizeof(float) * n);
    memcpy(tmp2, xs, sizeof(float) * n);
    emb_softmax(tmp, n);
    v->softmax(tmp2, n);
    check(memcmp(tmp, tmp2, sizeof(float) * n) == 0, "emb_softmax dispatches", v->name, 0, 0);
}

/* emb_attend: the sgemm composition at every level this CPU runs and the fused AVX-512 kernel
   against the scalar reference (1e-5 absolute; outputs are O(1)), on the packed QKV layout the
   encoder uses; and a row's result must not depend on the rows that share its call (the encoder
   splits query rows between threads). */
#define ATT_MAXL 160
#define ATT_MAXHD 64
static float att_qkv[ATT_MAXL * 3 * 4 * ATT_MAXHD], att_out[ATT_MAXL * 4 * ATT_MAXHD],
    att_want[ATT_MAXL * 4 * ATT_MAXHD], att_row[4 * ATT_MAXHD];
static float att_scratch[64 * ATT_MAXL + (ATT_MAXHD + 4) * (ATT_MAXL + 16)] __attribute__((aligned(64)));

static void test_attend(void) {
    static const int64_t cases[][3] = {{1, 1, 32},  {3, 5, 32},    {7, 17, 32},  {12, 12, 32}, {47, 47, 32},
                                       {5, 64, 64}, {9, 100, 64},  {33, 130, 16}, {4, 20, 48},  {6, 10, 24},
                                       {70, 150, 32}, {2, 33, 64},  {3, 9, 8},    {5, 7, 20}};
    typedef void (*attend_fn)(int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                              const float *, int64_t, float *, int64_t, float *);
    struct { const char *name; int level; attend_fn fn; } fns[] = {
        {"sgemm", EMB_SIMD_SCALAR, emb_attend_sgemm},
#if defined(__x86_64__)
        {"avx2", EMB_SIMD_AVX2, emb_attend_avx2},
        {"avx512", EMB_SIMD_AVX512, emb_attend_avx512},
#endif
    };
    const int detected = emb_simd_detect();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t nq = cases[c][0], L = cases[c][1], hd = cases[c][2], E = 4 * hd, ld = 3 * E;
        if (emb_attend_scratch(L, hd) > (int64_t)(sizeof att_scratch / sizeof att_scratch[0])) {
            check(0, "attend scratch size", "test", (double)emb_attend_scratch(L, hd), 0);
            continue;
        }
        for (int64_t i = 0; i < L * ld; i++) att_qkv[i] = frand(-2.0f, 2.0f);
        const float *Q = att_qkv + hd, *K = att_qkv + E + hd, *V = att_qkv + 2 * E + hd; /* head 1 */
        const float scale = 1.0f / sqrtf((float)hd);
        emb_attend_ref(nq, L, hd, scale, Q, ld, K, ld, V, ld, att_want, E, att_scratch);
        for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
            if (fns[f].level != EMB_SIMD_SCALAR && (detected == EMB_SIMD_NEON || detected < fns[f].level)) continue;
            const int levels[] = {EMB_SIMD_SCALAR, detected};
            for (int li = 0; li < (fns[f].level == EMB_SIMD_SCALAR ? 2 : 1); li++) {
                emb_simd_set(levels[li]); /* the composition's sgemm and softmax dispatch by level */
                memset(att_out, 0, sizeof att_out);
                fns[f].fn(nq, L, hd, scale, Q, ld, K, ld, V, ld, att_out, E, att_scratch);
                double worst = 0;
                for (int64_t i = 0; i < nq; i++)
                    for (int64_t k = 0; k < hd; k++) {
                        const double e = fabs(att_out[i * E + k] - att_want[i * E + k]);
                        if (!(e <= worst)) worst = e;
                    }
                char what[96];
                snprintf(what, sizeof what, "attend nq=%lld L=%lld hd=%lld (%s level)", (long long)nq, (long long)L,
                         (long long)hd, emb_simd_name(levels[li]));
                check(worst <= 1e-5, what, fns[f].name, worst, 1e-5);
                /* Row by row: the same bits. */
                int same = 1;
                for (int64_t i = 0; i < nq; i++) {
                    fns[f].fn(1, L, hd, scale, Q + i * ld, ld, K, ld, V, ld, att_row, E, att_scratch);
                    if (memcmp(att_row, att_out + i * E, (size_t)hd * sizeof(float)) != 0) same = 0;
                }
                snprintf(what, sizeof what, "attend nq=%lld L=%lld hd=%lld one row at a time", (long long)nq, (long long)L,
                         (long long)hd);
                check(same, what, fns[f].name, same ? 0 : 1, 0);
            }
        }
    }
    emb_simd_set(emb_simd_detect());
}

int main(void) {
    const int detected = emb_simd_detect();
    const int initial = emb_simd_active();
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        const variant *v = &variants[i];
        /* AVX-512 variants run on AVX512 and AVX512VNNI CPUs; NEON is not an x86 level. */
        const int runnable = v->level == EMB_SIMD_SCALAR ||
                             (detected != EMB_SIMD_NEON && detected >= v->level);
        if (!runnable) {
            printf("test_ops: %s not supported by this CPU, not run\n", v->name);
            continue;
        }
        test_elementwise(v);
        test_vectors(v);
        test_edge_cases(v);
        test_dispatch(v);
    }
    test_attend();
    emb_simd_set(initial);
    printf("test_ops: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
