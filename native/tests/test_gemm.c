/*
 * test_gemm.c - every kind (I8, F32, BLOCKS) and every SIMD level this CPU runs, against
 *   - the scalar I8 reference (exact int32 sums per 32-block and the same float steps: linear
 *     outputs bit for bit equal), and
 *   - a double-precision product of the dequantised weights, within the quantisation error bound
 *     (for I8 summed per 32-block of weights and activations),
 * for awkward shapes, all source weight types, every epilogue; the activation quantisation of every
 * level against the scalar one byte for byte; the lossless repack of Q8_0/Q5_0/Q4_0 and of the
 * affine Q4_1/Q5_1/Q4_K/Q5_K into I8, and of I8 into the compact copy; matrices packed from parts
 * of several types; and the attention sgemms against a naive double product.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedd.h"
#include "gemm.h"
#include "gemm_impl.h"
#include "pool.h"
#include "quants.h"

#include "check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float frand(void) { return (float)((rnd() & 0xFFFFFF) / 16777216.0 * 2.0 - 1.0); }

static void *xmalloc(size_t n) {
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Fills n rows of k elements of `type`: float types from random floats; block types from random
   bytes with their scale fields replaced by sane half floats (any bit pattern of the quants is a
   valid block). */
static void *make_weights(int32_t type, int64_t n, int64_t k) {
    int64_t rb = emb_row_bytes(type, k);
    uint8_t *w = xmalloc((size_t)(rb * n));
    for (int64_t i = 0; i < rb * n; i++) w[i] = (uint8_t)rnd();
    int64_t nel = n * k;
    for (int64_t i = 0; i < nel; i++) {
        float v = frand() * (1.0f + (float)((i / k) % 5)); /* rows of different magnitude */
        if (type == EMB_TYPE_F32) ((float *)w)[i] = v;
        if (type == EMB_TYPE_F16) ((emb_fp16 *)w)[i] = emb_fp32_to_fp16(v);
        if (type == EMB_TYPE_BF16) ((emb_bf16 *)w)[i] = emb_fp32_to_bf16(v);
    }
    int64_t nb = rb * n / emb_type_block_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        emb_fp16 d = emb_fp32_to_fp16(0.002f + 0.01f * (frand() + 1.0f));
        emb_fp16 dmin = emb_fp32_to_fp16(0.001f + 0.004f * (frand() + 1.0f));
        switch (type) {
        case EMB_TYPE_Q8_0: ((block_q8_0 *)w)[b].d = d; break;
        case EMB_TYPE_Q5_0: ((block_q5_0 *)w)[b].d = d; break;
        case EMB_TYPE_Q4_0: ((block_q4_0 *)w)[b].d = d; break;
        case EMB_TYPE_Q4_1: ((block_q4_1 *)w)[b].d = d; ((block_q4_1 *)w)[b].m = emb_fp32_to_fp16(-8.0f * emb_fp16_to_fp32(d) + frand() * 0.01f); break;
        case EMB_TYPE_Q5_1: ((block_q5_1 *)w)[b].d = d; ((block_q5_1 *)w)[b].m = emb_fp32_to_fp16(-16.0f * emb_fp16_to_fp32(d) + frand() * 0.01f); break;
        case EMB_TYPE_Q4_K: ((block_q4_K *)w)[b].d = d; ((block_q4_K *)w)[b].dmin = dmin; break;
        case EMB_TYPE_Q5_K: ((block_q5_K *)w)[b].d = d; ((block_q5_K *)w)[b].dmin = dmin; break;
        case EMB_TYPE_Q6_K: ((block_q6_K *)w)[b].d = d; break;
        default: break;
        }
    }
    return w;
}

typedef struct {
    int64_t M, n, k;
} shape;

static const shape float_shapes[] = {{1, 17, 36}, {2, 40, 36}, {8, 50, 20}, {3, 1, 7}, {17, 100, 384}, {100, 33, 36}, {5, 384, 1536}, {16, 64, 4}};
static const shape q32_shapes[] = {{1, 17, 32}, {2, 70, 96}, {3, 1, 96}, {17, 100, 384}, {100, 33, 64}, {5, 384, 1536}, {3, 24, 2304}};
static const shape qk_shapes[] = {{1, 17, 256}, {2, 20, 256}, {3, 1, 256}, {17, 100, 512}, {100, 33, 256}, {5, 384, 1536}, {3, 24, 2304}};

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

typedef struct {
    int epi;
    int use_bias;
    int use_residual;
} variant;

static const variant variants[] = {{EMB_EPI_NONE, 1, 0}, {EMB_EPI_GELU, 1, 0}, {EMB_EPI_TANH, 0, 0}, {EMB_EPI_NONE, 1, 1}};

/* Runs one product; residual (if used) is passed aliased with y, as the encoder does. */
static void run(emb_pool *pool, const emb_matrix *W, const float *x, int64_t M, float *y,
                const float *res, int epi, void *scratch) {
    if (res) {
        memcpy(y, res, (size_t)(M * W->n) * sizeof *y);
        emb_matmul(pool, W, x, M, y, y, epi, scratch);
    } else {
        emb_matmul(pool, W, x, M, y, NULL, epi, scratch);
    }
}

static const char *kind_name(int kind) { return kind == EMB_MAT_I8 ? "i8" : kind == EMB_MAT_F32 ? "f32" : "blocks"; }

/* A view of W without its compact copy (the buffers stay W's). */
static emb_matrix without_compact(const emb_matrix *W) {
    emb_matrix v = *W;
    v.cdata = NULL;
    return v;
}

static void test_type_shape(emb_pool *pool, emb_pool *pool3, int32_t type, shape s, int kind) {
    int64_t M = s.M, n = s.n, k = s.k;
    void *w = make_weights(type, n, k);
    float *x = xmalloc((size_t)(M * k) * sizeof(float));
    /* Outlier channels like BERT's: a per-row activation scale would break the per-block bound. */
    for (int64_t i = 0; i < M * k; i++) x[i] = frand() * (i % 11 == 0 ? 3.0f : (i % k) % 97 == 5 ? 60.0f : 1.0f);
    if (M > 1) memset(x + k, 0, (size_t)k * sizeof(float)); /* an all-zero row */
    float *bias = xmalloc((size_t)n * sizeof(float));
    float *res = xmalloc((size_t)(M * n) * sizeof(float));
    for (int64_t i = 0; i < n; i++) bias[i] = frand();
    for (int64_t i = 0; i < M * n; i++) res[i] = frand();

    /* Dequantised weights by the scalar reference of quants.c, and the double products. */
    const emb_type_traits *ref = emb_get_type_traits_level(type, EMB_SIMD_SCALAR);
    float *wd = xmalloc((size_t)(n * k) * sizeof(float));
    int64_t rb = emb_row_bytes(type, k);
    for (int64_t r = 0; r < n; r++) ref->to_float((const uint8_t *)w + r * rb, wd + r * k, k);
    double *dot = xmalloc((size_t)(M * n) * sizeof(double));
    double *bound = xmalloc((size_t)(M * n) * sizeof(double));
    for (int64_t m = 0; m < M; m++) {
        double xmax = 0;
        for (int64_t i = 0; i < k; i++) xmax = fmax(xmax, fabs(x[m * k + i]));
        double sa_row = xmax / 127.0;
        for (int64_t c = 0; c < n; c++) {
            const float *wr = wd + c * k;
            double acc = 0, wsum = 0, abs_prod = 0, b_i8 = 0;
            for (int64_t i0 = 0; i0 < k; i0 += 32) {
                /* Per 32-block: |da| <= sa/2, |dw| <= sw/2 for each value, so the block's error is
                   at most sw/2 sum|x| + sa/2 sum|w| + 32 sa sw / 4. */
                double bx = 0, bxmax = 0, bw = 0, bwmax = 0;
                for (int64_t i = i0; i < k && i < i0 + 32; i++) {
                    double xi = x[m * k + i], wi = wr[i];
                    acc += xi * wi;
                    abs_prod += fabs(xi * wi);
                    bx += fabs(xi);
                    bxmax = fmax(bxmax, fabs(xi));
                    bw += fabs(wi);
                    bwmax = fmax(bwmax, fabs(wi));
                }
                double sa = bxmax / 127.0, sw = bwmax / 127.0;
                b_i8 += 0.5 * sw * bx + 0.5 * sa * bw + 8.0 * sa * sw;
                wsum += bw;
            }
            double b;
            dot[m * n + c] = acc;
            if (kind == EMB_MAT_I8)
                b = b_i8;
            else if (kind == EMB_MAT_BLOCKS)
                b = 0.6 * sa_row * wsum; /* Q8 activations with their (half-precision) block scales */
            else
                b = 0;
            bound[m * n + c] = 1.05 * b + 2e-5 * abs_prod + 1e-5 * (1.0 + fabs(acc));
        }
    }

    char err[256] = "";
    emb_matrix W;
    int rc = emb_matrix_init(&W, kind, type, w, n, k, bias, err, sizeof err);
    CHECK(rc == 0, "init %s %s %lldx%lld: %s", emb_type_name(type), kind_name(kind), (long long)n, (long long)k, err);
    emb_matrix Wnb; /* without bias */
    rc |= emb_matrix_init(&Wnb, kind, type, w, n, k, NULL, err, sizeof err);
    if (rc != 0) goto out;

    size_t sb = emb_matmul_scratch_bytes(&W, M);
    void *scratch = sb ? xmalloc(sb) : NULL;
    float *y = xmalloc((size_t)(M * n) * sizeof(float));
    float *yref = xmalloc((size_t)(M * n) * sizeof(float));
    int saved = emb_simd_active();
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const variant *var = &variants[v];
        const emb_matrix *Wv = var->use_bias ? &W : &Wnb;
        const float *rv = var->use_residual ? res : NULL;
        if (kind == EMB_MAT_I8) {
            emb_simd_set(EMB_SIMD_SCALAR);
            run(NULL, Wv, x, M, yref, rv, var->epi, scratch);
        }
        for (int level = EMB_SIMD_SCALAR; level < EMB_SIMD_N_LEVELS; level++) {
            if (emb_simd_set(level) != 0) continue;
            /* With a compact copy, also without it: the VNNI level then takes its I8 kernel. */
            for (int pi = 0; pi < (Wv->cdata ? 4 : 2); pi++) {
                emb_pool *p = pi % 2 == 0 ? pool : pool3;
                const emb_matrix Wrun = pi < 2 ? *Wv : without_compact(Wv);
                for (int64_t i = 0; i < M * n; i++) y[i] = NAN;
                run(p, &Wrun, x, M, y, rv, var->epi, scratch);
                int bad_ref = 0, bad_true = 0;
                double worst = 0;
                for (int64_t m = 0; m < M; m++)
                    for (int64_t c = 0; c < n; c++) {
                        int64_t i = m * n + c;
                        double pre = dot[i] + (var->use_bias ? bias[c] : 0.0), want, slack = bound[i];
                        if (var->epi == EMB_EPI_GELU)
                            want = gelu_d(pre), slack = slack * 1.13 + 2e-6;
                        else if (var->epi == EMB_EPI_TANH)
                            want = tanh(pre), slack += 2e-6;
                        else
                            want = pre + (rv ? rv[i] : 0.0), slack += 1e-6 * fabs(want);
                        double e = fabs((double)y[i] - want);
                        if (!(e <= slack)) bad_true++;
                        if (e / slack > worst) worst = e / slack;
                        /* The int32 block sums are exact and the float steps the same, so the linear
                           outputs are equal; GELU/tanh may differ by the SIMD approximations of
                           ops.c (1e-7). */
                        if (kind == EMB_MAT_I8) {
                            if (var->epi == EMB_EPI_NONE ? !(y[i] == yref[i])
                                                         : !(fabs((double)y[i] - yref[i]) <= 1e-6 * fabs(yref[i]) + 1e-7))
                                bad_ref++;
                        }
                    }
                CHECK(bad_true == 0, "%s %s M=%lld n=%lld k=%lld epi=%d bias=%d res=%d level=%s threads=%d compact=%d: %d outputs beyond the error bound (worst %.2f x bound)",
                      emb_type_name(type), kind_name(kind), (long long)M, (long long)n, (long long)k, var->epi, var->use_bias,
                      var->use_residual, emb_simd_name(level), emb_pool_threads(p), Wrun.cdata != NULL, bad_true, worst);
                if (kind == EMB_MAT_I8)
                    CHECK(bad_ref == 0, "%s i8 M=%lld n=%lld k=%lld epi=%d level=%s compact=%d: %d outputs differ from the scalar reference",
                          emb_type_name(type), (long long)M, (long long)n, (long long)k, var->epi, emb_simd_name(level),
                          Wrun.cdata != NULL, bad_ref);
            }
        }
    }
    emb_simd_set(saved);
    free(scratch);
    free(y);
    free(yref);
out:
    emb_matrix_free(&W);
    emb_matrix_free(&Wnb);
    free(w);
    free(x);
    free(bias);
    free(res);
    free(wd);
    free(dot);
    free(bound);
}

/* emb_block_sums (SSE2 on x86-64) and its scalar form against the sums written out, on random
   bytes and on blocks of each extreme byte, both signed and offset. */
static void test_block_sums(void) {
    enum { NB = 70 };
    static uint8_t q[NB * 32];
    static const int fill[] = {-1, 0x00, 0xFF, 0x80, 0x7F, 0x81};
    static const int64_t nbs[] = {0, 1, 2, 3, 17, 48, NB};
    for (size_t f = 0; f < sizeof fill / sizeof fill[0]; f++) {
        for (int i = 0; i < NB * 32; i++) q[i] = (uint8_t)(fill[f] < 0 ? rnd() : (uint32_t)fill[f]);
        for (int off = 0; off < 2; off++)
            for (size_t n = 0; n < sizeof nbs / sizeof nbs[0]; n++) {
                const int64_t nb = nbs[n];
                int32_t want[NB], got[NB + 1], got_scalar[NB + 1];
                for (int64_t b = 0; b < nb; b++) {
                    want[b] = 0;
                    for (int i = 0; i < 32; i++) want[b] += off ? (int32_t)q[b * 32 + i] - 128 : (int8_t)q[b * 32 + i];
                }
                got[nb] = got_scalar[nb] = 12345; /* nothing past nb is written */
                emb_block_sums(q, nb, off, got);
                emb_block_sums_scalar(q, nb, off, got_scalar);
                CHECK(memcmp(got, want, (size_t)nb * sizeof want[0]) == 0 && memcmp(got_scalar, want, (size_t)nb * sizeof want[0]) == 0 &&
                          got[nb] == 12345 && got_scalar[nb] == 12345,
                      "block sums fill=%d offset=%d nb=%lld", fill[f], off, (long long)nb);
            }
    }
}

/* Every level's activation quantisation gives the scalar bytes and block scales; the scales are
   max|x| / 127 of each 32-block and every value is within half a step of x. */
static void test_quant_rows(void) {
    static const int64_t ks[] = {1, 7, 31, 32, 33, 64, 100, 384, 1536};
    int saved = emb_simd_active();
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        int64_t k = ks[ki], lda = emb_i8_lda(k), nb = emb_i8_nb(k);
        float *x = xmalloc((size_t)k * sizeof(float));
        for (int64_t i = 0; i < k; i++) x[i] = frand() * (i % 37 == 3 ? 50.0f : 1.0f);
        if (k > 40) for (int64_t i = 32; i < 64 && i < k; i++) x[i] = 0.0f; /* an all-zero block */
        uint8_t *qref = xmalloc((size_t)lda), *q = xmalloc((size_t)lda);
        float *saref = xmalloc((size_t)nb * sizeof(float)), *sa = xmalloc((size_t)nb * sizeof(float));
        for (int off = 0; off < 2; off++) {
            emb_quant_row_scalar(x, k, lda, qref, saref, off);
            int bad = 0;
            for (int64_t b = 0; b < nb; b++) {
                float amax = 0.0f;
                for (int64_t i = b * 32; i < k && i < b * 32 + 32; i++) amax = fmaxf(amax, fabsf(x[i]));
                if (saref[b] != amax / 127.0f) bad++;
                for (int64_t i = b * 32; i < k && i < b * 32 + 32; i++) {
                    double qi = off ? (double)qref[i] - 128.0 : (double)(int8_t)qref[i];
                    if (!(fabs(qi * saref[b] - x[i]) <= 0.5001 * saref[b])) bad++;
                }
            }
            for (int64_t i = k; i < lda; i++)
                if (qref[i] != (off ? 128 : 0)) bad++;
            CHECK(bad == 0, "quant_row scalar k=%lld offset=%d: %d wrong values", (long long)k, off, bad);
            for (int level = EMB_SIMD_SCALAR + 1; level < EMB_SIMD_N_LEVELS; level++) {
                emb_quant_row_fn fn = emb_quant_row_for(level);
                if (!fn || emb_simd_set(level) != 0) continue;
                memset(q, 0xAB, (size_t)lda);
                for (int64_t b = 0; b < nb; b++) sa[b] = -1.0f;
                fn(x, k, lda, q, sa, off);
                CHECK(memcmp(q, qref, (size_t)lda) == 0 && memcmp(sa, saref, (size_t)nb * sizeof(float)) == 0,
                      "quant_row %s k=%lld offset=%d differs from the scalar one", emb_simd_name(level), (long long)k, off);
            }
        }
        free(x);
        free(qref);
        free(q);
        free(saref);
        free(sa);
    }
    /* Non-finite and tiny inputs: a NaN among finite values is ignored by its block's maximum, an
       infinity makes its block's scale infinite, and a block of denormals overflows 127 / max.
       Blocks in groups of four and alone. What a NaN or infinite product converts to differs
       between architectures (x86: INT_MIN, clamped to -127; arm64: 0, or saturated and clamped to
       127), but every level must give its own architecture's scalar bytes. */
    for (int64_t k = 96; k <= 160; k += 64) {
        int64_t lda = emb_i8_lda(k), nb = emb_i8_nb(k);
        float *x = xmalloc((size_t)k * sizeof(float));
        for (int64_t i = 0; i < k; i++) x[i] = frand();
        x[3] = NAN;
        x[20] = NAN;
        x[40] = INFINITY;
        x[41] = -INFINITY;
        for (int64_t i = 64; i < 96; i++) x[i] = (float)(i - 80) * 1e-41f;
        if (k > 128) {
            x[125] = -NAN;
            x[130] = -NAN;
            x[150] = NAN;
            x[158] = NAN;
        }
        uint8_t *qref = xmalloc((size_t)lda), *q = xmalloc((size_t)lda);
        float *saref = xmalloc((size_t)nb * sizeof(float)), *sa = xmalloc((size_t)nb * sizeof(float));
        for (int off = 0; off < 2; off++) {
            emb_quant_row_scalar(x, k, lda, qref, saref, off);
            for (int level = EMB_SIMD_SCALAR + 1; level < EMB_SIMD_N_LEVELS; level++) {
                emb_quant_row_fn fn = emb_quant_row_for(level);
                if (!fn || emb_simd_set(level) != 0) continue;
                fn(x, k, lda, q, sa, off);
                int same = memcmp(q, qref, (size_t)lda) == 0;
                for (int64_t b = 0; b < nb; b++) same &= sa[b] == saref[b] || (isnan(sa[b]) && isnan(saref[b]));
                CHECK(same, "quant_row %s k=%lld offset=%d: non-finite inputs quantised unlike the scalar reference",
                      emb_simd_name(level), (long long)k, off);
            }
        }
        free(x);
        free(qref);
        free(q);
        free(saref);
        free(sa);
    }
    emb_simd_set(saved);
}

/* emb_matrix_init builds the compact copy only when the active level reads it (AVX-512 VNNI):
   forced to another level, a VNNI CPU does not carry it. */
static void test_compact_only_when_read(void) {
    const int saved = emb_simd_active();
    const int64_t n = 32, k = 64;
    void *w = make_weights(EMB_TYPE_Q5_0, n, k);
    for (int level = EMB_SIMD_SCALAR; level < EMB_SIMD_N_LEVELS; level++) {
        if (emb_simd_set(level) != 0) continue;
        char err[256] = "";
        emb_matrix W;
        if (emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_Q5_0, w, n, k, NULL, err, sizeof err) != 0) {
            CHECK(0, "init at %s: %s", emb_simd_name(level), err);
            continue;
        }
        const int want = level == EMB_SIMD_AVX512VNNI;
        CHECK((W.cdata != NULL) == want && (W.c_bytes > 0) == want, "level %s: compact copy %d, want %d",
              emb_simd_name(level), W.cdata != NULL, want);
        emb_matrix_free(&W);
    }
    emb_simd_set(saved);
    free(w);
}

/* The compact copy (built here unless emb_matrix_init made it) read back, by the layout of
   gemm_impl.h, gives every int8 weight of W's data, in the fewest bits its type needs. */
static void check_compact(emb_matrix *W, int32_t type) {
    if (!W->cdata) CHECK(emb_matrix_compact(W, NULL) == 0, "%s: compact copy", emb_type_name(type));
    if (!W->cdata) return;
    const int want_bits = type == EMB_TYPE_Q8_0 ? 8 : type == EMB_TYPE_Q5_0 || type == EMB_TYPE_Q5_1 || type == EMB_TYPE_Q5_K ? 5 : 4;
    const int want_zero = type == EMB_TYPE_Q8_0 ? 128 : type == EMB_TYPE_Q5_0 ? 16 : type == EMB_TYPE_Q4_0 ? 8 : 0;
    const int64_t kp = emb_i8_kp(W->k), nb = emb_i8_nb(W->k);
    int bad = 0, bad_form = 0;
    for (int64_t p = 0; p < emb_panels(W->n); p++) {
        const int bits = W->c_bits[p], zero = W->c_zero[p];
        bad_form += bits != want_bits || zero != want_zero;
        const uint8_t *c = W->cdata + W->c_off[p];
        const int8_t *d = (const int8_t *)W->data + p * 16 * kp;
        for (int64_t b = 0; b < nb; b++, c += emb_c_block_bytes(bits))
            for (int g = 0; g < 8; g++)
                for (int j = 0; j < 64; j++) {
                    int u = bits == 8 ? c[g * 64 + j] : (c[(g / 2) * 64 + j] >> (4 * (g % 2))) & 15;
                    if (bits == 5) u |= ((c[256 + g * 8 + j / 8] >> (j % 8)) & 1) << 4;
                    bad += u - zero != d[(b * 8 + g) * 64 + j];
                }
    }
    CHECK(bad == 0 && bad_form == 0, "%s compact copy: %d weights differ, %d panels not in %d bits + %d",
          emb_type_name(type), bad, bad_form, want_bits, want_zero);
}

/* Q8_0, Q5_0 and Q4_0 blocks are repacked into I8 without loss: q * scale of the packed matrix is
   exactly the GGUF dequantised value; so is q * scale + wmin for the affine Q4_1, Q5_1, Q4_K and
   Q5_K, whose integers stay unsigned (0..15 for the 4-bit types: the AVX2 kernel's fast path). A
   Q8_0 block holding -128 (outside the kernels' +-127) is requantised instead, within half a step
   of its largest value / 127. */
static void test_lossless_repack(void) {
    static const int32_t types[] = {EMB_TYPE_Q8_0, EMB_TYPE_Q5_0, EMB_TYPE_Q4_0, EMB_TYPE_Q4_1,
                                    EMB_TYPE_Q5_1, EMB_TYPE_Q4_K, EMB_TYPE_Q5_K};
    const int64_t n = 37, k = 512, nb = k / 32;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        int32_t type = types[t];
        uint8_t *w = make_weights(type, n, k);
        int64_t rb = emb_row_bytes(type, k);
        int64_t minus128_block = -1;
        if (type == EMB_TYPE_Q8_0) {
            for (int64_t b = 0; b < n * nb; b++)
                for (int i = 0; i < 32; i++)
                    if (((block_q8_0 *)w)[b].qs[i] == -128) ((block_q8_0 *)w)[b].qs[i] = -127;
            minus128_block = 5;
            ((block_q8_0 *)w)[minus128_block].qs[3] = -128;
        }
        const emb_type_traits *ref = emb_get_type_traits_level(type, EMB_SIMD_SCALAR);
        float *wd = xmalloc((size_t)(n * k) * sizeof(float));
        for (int64_t r = 0; r < n; r++) ref->to_float(w + r * rb, wd + r * k, k);
        char err[256] = "";
        emb_matrix W;
        if (emb_matrix_init(&W, EMB_MAT_I8, type, w, n, k, NULL, err, sizeof err) != 0) {
            CHECK(0, "init %s: %s", emb_type_name(type), err);
            free(w);
            free(wd);
            continue;
        }
        int64_t kp = emb_i8_kp(k);
        int bad = 0, bad128 = 0;
        int affine = type == EMB_TYPE_Q4_1 || type == EMB_TYPE_Q5_1 || type == EMB_TYPE_Q4_K || type == EMB_TYPE_Q5_K;
        int wmax = type == EMB_TYPE_Q4_1 || type == EMB_TYPE_Q4_K ? 15 : type == EMB_TYPE_Q5_1 || type == EMB_TYPE_Q5_K ? 31 : 127;
        CHECK((W.wmin != NULL) == affine && W.wmax <= wmax, "%s -> i8: wmin %s, largest |q| %d (want <= %d)",
              emb_type_name(type), W.wmin ? "set" : "NULL", (int)W.wmax, wmax);
        /* The affine types' integers are unsigned; the 4-bit ones take the AVX2 kernel's unsigned path. */
        CHECK((W.wlow >= 0) == affine && emb_i8_unsigned_small(&W) == (affine && wmax == 15),
              "%s -> i8: smallest q %d, unsigned-small %d", emb_type_name(type), (int)W.wlow, emb_i8_unsigned_small(&W));
        for (int64_t r = 0; r < n; r++)
            for (int64_t i = 0; i < k; i++) {
                const int8_t *panel = (const int8_t *)W.data + (r / 16) * 16 * kp;
                int q = panel[(i / 4) * 64 + (r % 16) * 4 + i % 4];
                int64_t si = (r / 16) * nb * 16 + (i / 32) * 16 + r % 16;
                float v = (float)q * W.scale[si], want = wd[r * k + i];
                if (W.wmin) v += W.wmin[si];
                if (r * nb + i / 32 == minus128_block) {
                    float bmax = 0.0f;
                    for (int j = 0; j < 32; j++) bmax = fmaxf(bmax, fabsf(wd[r * k + (i / 32) * 32 + j]));
                    if (!(fabsf(v - want) <= 0.5001f * bmax / 127.0f)) bad128++;
                } else if (v != want) {
                    bad++;
                }
            }
        CHECK(bad == 0 && bad128 == 0, "%s -> i8 repack: %d values not exact, %d of the -128 block beyond half a step",
              emb_type_name(type), bad, bad128);
        check_compact(&W, type);
        emb_matrix_free(&W);
        free(w);
        free(wd);
    }
}

/* The int16 sums of the AVX2 kernel's paths at their bounds: every weight of a block at the largest
   value its type holds (15 for the unsigned 4-bit path, -16 or 15 for Q5_0's offset path, 31 and
   +-127 for the sign trick; -8 and 7 of Q4_0 for the compact copy's 4 bits) against activations
   that all quantise to +-127, of one sign and of alternating signs. Every level (VNNI with and
   without the compact copy) must still give the scalar reference's outputs bit for bit. */
static void test_extreme_sums(emb_pool *pool) {
    static const int32_t types[] = {EMB_TYPE_Q4_1, EMB_TYPE_Q5_1, EMB_TYPE_Q5_0, EMB_TYPE_Q4_0, EMB_TYPE_Q8_0};
    const int64_t M = 5, n = 48, k = 256;
    int saved = emb_simd_active();
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        const int32_t type = types[t];
        const int64_t nb = emb_row_bytes(type, k) * n / emb_type_block_bytes(type);
        void *w = make_weights(type, n, k);
        for (int64_t b = 0; b < nb; b++) {
            if (type == EMB_TYPE_Q4_1) memset(((block_q4_1 *)w)[b].qs, 0xFF, sizeof ((block_q4_1 *)w)[b].qs);
            if (type == EMB_TYPE_Q5_1) { /* all 31 */
                memset(((block_q5_1 *)w)[b].qs, 0xFF, sizeof ((block_q5_1 *)w)[b].qs);
                memset(((block_q5_1 *)w)[b].qh, 0xFF, sizeof ((block_q5_1 *)w)[b].qh);
            }
            if (type == EMB_TYPE_Q5_0) { /* all -16 (low nibble 0, high bit 0) or all 15 */
                const int top = b % 2;
                memset(((block_q5_0 *)w)[b].qs, top ? 0xFF : 0x00, sizeof ((block_q5_0 *)w)[b].qs);
                memset(((block_q5_0 *)w)[b].qh, top ? 0xFF : 0x00, sizeof ((block_q5_0 *)w)[b].qh);
            }
            if (type == EMB_TYPE_Q4_0) /* all -8 or all 7: the compact copy's 4-bit extremes */
                memset(((block_q4_0 *)w)[b].qs, b % 2 ? 0xFF : 0x00, sizeof ((block_q4_0 *)w)[b].qs);
            if (type == EMB_TYPE_Q8_0) memset(((block_q8_0 *)w)[b].qs, b % 2 ? 127 : 0x81 /* -127 */, sizeof ((block_q8_0 *)w)[b].qs);
        }
        float *x = xmalloc((size_t)(M * k) * sizeof(float));
        for (int64_t m = 0; m < M; m++)
            for (int64_t i = 0; i < k; i++) x[m * k + i] = m % 2 ? (i % 2 ? -3.0f : 3.0f) : (m == 2 ? -3.0f : 3.0f);
        char err[256] = "";
        emb_matrix W;
        if (emb_matrix_init(&W, EMB_MAT_I8, type, w, n, k, NULL, err, sizeof err) != 0) {
            CHECK(0, "init %s: %s", emb_type_name(type), err);
            free(w);
            free(x);
            continue;
        }
        void *scratch = xmalloc(emb_matmul_scratch_bytes(&W, M));
        float *y = xmalloc((size_t)(M * n) * sizeof(float)), *yref = xmalloc((size_t)(M * n) * sizeof(float));
        emb_simd_set(EMB_SIMD_SCALAR);
        emb_matmul(NULL, &W, x, M, yref, NULL, EMB_EPI_NONE, scratch);
        for (int level = EMB_SIMD_SCALAR + 1; level < EMB_SIMD_N_LEVELS; level++) {
            if (emb_simd_set(level) != 0) continue;
            for (int plain = 0; plain < (W.cdata ? 2 : 1); plain++) {
                const emb_matrix Wrun = plain ? without_compact(&W) : W;
                emb_matmul(pool, &Wrun, x, M, y, NULL, EMB_EPI_NONE, scratch);
                int bad = 0;
                for (int64_t i = 0; i < M * n; i++) bad += !(y[i] == yref[i]);
                CHECK(bad == 0, "%s i8 at the int16 bounds, level %s, compact %d: %d outputs differ from the scalar reference",
                      emb_type_name(type), emb_simd_name(level), Wrun.cdata != NULL, bad);
            }
        }
        emb_matrix_free(&W);
        free(scratch);
        free(y);
        free(yref);
        free(w);
        free(x);
    }
    emb_simd_set(saved);
}

static void test_sgemm(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 32}, {17, 33, 64}, {128, 128, 128}, {5, 70, 300}, {6, 64, 0}, {3, 129, 100}};
    int saved = emb_simd_active();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        int64_t lda = K + 3, ldbt = K + 5, ldb = N + 2, ldc = N + 7;
        float *A = xmalloc((size_t)(M * lda + 1) * sizeof(float));
        float *Bt = xmalloc((size_t)(N * ldbt + 1) * sizeof(float)); /* N x K for nt */
        float *B = xmalloc((size_t)(K * ldb + 1) * sizeof(float));   /* K x N for nn */
        float *C = xmalloc((size_t)(M * ldc) * sizeof(float));
        for (int64_t i = 0; i < M * lda + 1; i++) A[i] = frand();
        for (int64_t i = 0; i < N * ldbt + 1; i++) Bt[i] = frand();
        for (int64_t i = 0; i < K * ldb + 1; i++) B[i] = frand();
        for (int level = EMB_SIMD_SCALAR; level < EMB_SIMD_N_LEVELS; level++) {
            if (emb_simd_set(level) != 0) continue;
            for (int nn = 0; nn < 2; nn++) {
                for (int64_t i = 0; i < M * ldc; i++) C[i] = 12345.0f; /* padding must survive */
                float alpha = 0.125f;
                if (nn)
                    emb_sgemm_nn(M, N, K, A, lda, B, ldb, C, ldc);
                else
                    emb_sgemm_nt(M, N, K, alpha, A, lda, Bt, ldbt, C, ldc);
                int bad = 0, pad_bad = 0;
                for (int64_t i = 0; i < M; i++) {
                    for (int64_t j = 0; j < N; j++) {
                        double s = 0, sabs = 0;
                        for (int64_t kk = 0; kk < K; kk++) {
                            double p = nn ? (double)A[i * lda + kk] * B[kk * ldb + j] : (double)A[i * lda + kk] * Bt[j * ldbt + kk];
                            s += p;
                            sabs += fabs(p);
                        }
                        if (!nn) s *= alpha, sabs *= alpha;
                        if (!(fabs(C[i * ldc + j] - s) <= 1e-5 * sabs + 1e-30)) bad++;
                    }
                    for (int64_t j = N; j < ldc && i * ldc + j < M * ldc; j++)
                        if (C[i * ldc + j] != 12345.0f) pad_bad++;
                }
                CHECK(bad == 0 && pad_bad == 0, "sgemm_%s M=%lld N=%lld K=%lld level=%s: %d wrong, %d padding overwritten",
                      nn ? "nn" : "nt", (long long)M, (long long)N, (long long)K, emb_simd_name(level), bad, pad_bad);
            }
        }
        free(A);
        free(Bt);
        free(B);
        free(C);
    }
    emb_simd_set(saved);
}

static void test_errors(void) {
    char err[256];
    emb_matrix W;
    float w[64] = {0};
    err[0] = 0;
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_F32, w, 0, 4, NULL, err, sizeof err) == -1 && err[0], "n = 0 accepted");
    err[0] = 0;
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_F32, w, 4, -1, NULL, err, sizeof err) == -1 && err[0], "k < 0 accepted");
    err[0] = 0;
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, 99, w, 2, 32, NULL, err, sizeof err) == -1 && err[0], "unknown type accepted");
    err[0] = 0;
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_Q8_0, w, 1, 31, NULL, err, sizeof err) == -1 && err[0], "k not a block multiple accepted");
    err[0] = 0;
    CHECK(emb_matrix_init(&W, 7, EMB_TYPE_F32, w, 2, 2, NULL, err, sizeof err) == -1 && err[0], "unknown kind accepted");
    err[0] = 0;
    CHECK(emb_matrix_init(&W, EMB_MAT_F32, EMB_TYPE_F32, w, (int64_t)1 << 40, (int64_t)1 << 30, NULL, err, sizeof err) == -1 && err[0],
          "huge shape accepted");
    err[0] = 0;
    float inf_w[4] = {1, INFINITY, 2, 3};
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_F32, inf_w, 1, 4, NULL, err, sizeof err) == -1 && err[0], "non-finite weight accepted for I8");
    err[0] = 0;
    float nan_w[4] = {1, NAN, 2, 3}; /* NaN compares false with everything: a max alone misses it */
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_F32, nan_w, 1, 4, NULL, err, sizeof err) == -1 && err[0], "NaN weight accepted for I8");
    err[0] = 0;
    block_q8_0 nan_blk[1];
    memset(nan_blk, 0, sizeof nan_blk);
    nan_blk[0].d = 0x7e00; /* fp16 NaN scale */
    CHECK(emb_matrix_init(&W, EMB_MAT_I8, EMB_TYPE_Q8_0, nan_blk, 1, 32, NULL, err, sizeof err) == -1 && err[0], "Q8_0 block with a NaN scale accepted for I8");
    CHECK(emb_matrix_kind_for(EMB_TYPE_F16, EMB_WEIGHTS_AUTO) == EMB_MAT_F32 && emb_matrix_kind_for(EMB_TYPE_Q4_K, EMB_WEIGHTS_AUTO) == EMB_MAT_I8 &&
              emb_matrix_kind_for(EMB_TYPE_Q6_K, EMB_WEIGHTS_BLOCKS) == EMB_MAT_BLOCKS && emb_matrix_kind_for(EMB_TYPE_BF16, EMB_WEIGHTS_BLOCKS) == EMB_MAT_F32,
          "emb_matrix_kind_for");
    emb_matrix_free(NULL);
}

/* Copies the outputs of columns [c0, c0 + nc) of y (M x n) to out (M x nc). */
static void take_cols(const float *y, int64_t M, int64_t n, int64_t c0, int64_t nc, float *out) {
    for (int64_t m = 0; m < M; m++) memcpy(out + m * nc, y + m * n + c0, (size_t)nc * sizeof(float));
}

/* A matrix packed from parts of several types (as a layer's Q, K and V may be): each part's rows
   keep their exact integers (q * scale + wmin is the GGUF value), panels record their largest
   weight, and at every level and thread count each part's outputs equal, bit for bit, those of
   the part packed alone (so the AVX2 kernel's per-panel choice between its small-weights and
   sign-trick paths, with offset activations flipped back for the latter, changes no result). Part
   sizes are not multiples of 16, so panels mix rows of two types. */
static void test_parts(emb_pool *pool) {
    const int64_t k = 256, kp = emb_i8_kp(k), nb = emb_i8_nb(k);
    const emb_matrix_part spec[3] = {{EMB_TYPE_Q5_0, NULL, 40}, {EMB_TYPE_Q8_0, NULL, 24}, {EMB_TYPE_Q4_K, NULL, 20}};
    emb_matrix_part parts[3];
    emb_matrix alone[3];
    int64_t n = 0;
    for (int i = 0; i < 3; i++) {
        parts[i] = spec[i];
        uint8_t *w = make_weights(spec[i].type, spec[i].n, k);
        if (spec[i].type == EMB_TYPE_Q8_0) /* -128 is requantised, not kept: keep this test exact */
            for (int64_t b = 0; b < spec[i].n * k / 32; b++)
                for (int j = 0; j < 32; j++)
                    if (((block_q8_0 *)w)[b].qs[j] == -128) ((block_q8_0 *)w)[b].qs[j] = -127;
        parts[i].w = w;
        n += spec[i].n;
    }
    float *bias = xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) bias[i] = frand();
    char err[256] = "";
    emb_matrix W;
    int ok = emb_matrix_init_parts_in(&W, NULL, EMB_MAT_I8, parts, 3, k, bias, err, sizeof err) == 0;
    CHECK(ok, "parts -> i8: %s", err);
    int64_t off = 0;
    for (int i = 0; i < 3; i++) {
        CHECK(emb_matrix_init(&alone[i], EMB_MAT_I8, parts[i].type, parts[i].w, parts[i].n, k, bias + off, err, sizeof err) == 0,
              "%s alone -> i8: %s", emb_type_name(parts[i].type), err);
        off += parts[i].n;
    }
    if (!ok) goto out;
    CHECK(W.n == n && W.wmin != NULL, "parts -> i8: n %lld (want %lld), wmin %s (a part is affine)", (long long)W.n, (long long)n,
          W.wmin ? "set" : "NULL");
    /* Exact values, row by row against each part's GGUF dequantisation; largest |q| per panel. */
    int bad = 0, small = 0, bad_pmax = 0;
    int pmax[8] = {0};
    off = 0;
    for (int i = 0; i < 3; i++) {
        const int64_t rb = emb_row_bytes(parts[i].type, k);
        float *wd = xmalloc((size_t)k * sizeof(float));
        for (int64_t r = 0; r < parts[i].n; r++) {
            emb_get_type_traits_level(parts[i].type, EMB_SIMD_SCALAR)->to_float((const uint8_t *)parts[i].w + r * rb, wd, k);
            const int64_t R = off + r;
            for (int64_t j = 0; j < k; j++) {
                const int8_t *panel = (const int8_t *)W.data + (R / 16) * 16 * kp;
                int q = panel[(j / 4) * 64 + (R % 16) * 4 + j % 4];
                int64_t si = (R / 16) * nb * 16 + (j / 32) * 16 + R % 16;
                if ((float)q * W.scale[si] + W.wmin[si] != wd[j]) bad++;
                pmax[R / 16] = abs(q) > pmax[R / 16] ? abs(q) : pmax[R / 16];
            }
        }
        free(wd);
        off += parts[i].n;
    }
    for (int64_t p = 0; p < emb_panels(n); p++) {
        bad_pmax += W.panel_wmax[p] != pmax[p];
        small += pmax[p] <= EMB_I8_SMALL_WMAX;
    }
    CHECK(bad == 0, "parts -> i8: %d values differ from their part's dequantisation", bad);
    CHECK(bad_pmax == 0 && W.small_panels == small && small > 0 && small < emb_panels(n),
          "parts -> i8: %d panels with a wrong largest |q|; %d small panels (want %d, some but not all)", bad_pmax,
          (int)W.small_panels, small);
    static const int64_t Ms[] = {1, 2, 3, 5, 7, 13};
    const int64_t maxM = 13;
    float *x = xmalloc((size_t)(maxM * k) * sizeof(float)), *y = xmalloc((size_t)(maxM * n) * sizeof(float));
    float *ya = xmalloc((size_t)(maxM * n) * sizeof(float)), *yc = xmalloc((size_t)(maxM * n) * sizeof(float));
    for (int64_t i = 0; i < maxM * k; i++) x[i] = frand() * (i % 97 == 0 ? 20.0f : 1.0f);
    void *scratch = xmalloc(emb_matmul_scratch_bytes(&W, maxM));
    int saved = emb_simd_active();
    for (int level = EMB_SIMD_SCALAR; level < EMB_SIMD_N_LEVELS; level++) {
        if (emb_simd_set(level) != 0) continue;
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            const int64_t M = Ms[mi];
            for (int pi = 0; pi < 2; pi++) {
                emb_pool *p = pi ? pool : NULL;
                emb_matmul(p, &W, x, M, y, NULL, EMB_EPI_NONE, scratch);
                int diff = 0;
                off = 0;
                for (int i = 0; i < 3; i++) {
                    emb_matmul(p, &alone[i], x, M, ya, NULL, EMB_EPI_NONE, scratch);
                    take_cols(y, M, n, off, parts[i].n, yc);
                    for (int64_t j = 0; j < M * parts[i].n; j++) diff += !(yc[j] == ya[j]);
                    off += parts[i].n;
                }
                CHECK(diff == 0, "parts -> i8 level=%s M=%lld threads=%d: %d outputs differ from the parts packed alone",
                      emb_simd_name(level), (long long)M, p ? emb_pool_threads(p) : 1, diff);
            }
        }
    }
    emb_simd_set(saved);
    free(scratch);
    free(x);
    free(y);
    free(ya);
    free(yc);
    emb_matrix_free(&W);
    /* Errors: no parts, a part without weights, block kernels over two types. */
    CHECK(emb_matrix_init_parts_in(&W, NULL, EMB_MAT_I8, parts, 0, k, NULL, err, sizeof err) == -1 && err[0], "0 parts accepted");
    emb_matrix_part holed[2] = {parts[0], {EMB_TYPE_Q5_0, NULL, 4}};
    err[0] = 0;
    CHECK(emb_matrix_init_parts_in(&W, NULL, EMB_MAT_I8, holed, 2, k, NULL, err, sizeof err) == -1 && err[0], "a part with NULL weights accepted");
    err[0] = 0;
    CHECK(emb_matrix_init_parts_in(&W, NULL, EMB_MAT_BLOCKS, parts, 2, k, NULL, err, sizeof err) == -1 && err[0],
          "block kernels over Q5_0 and Q8_0 parts accepted");
out:
    for (int i = 0; i < 3; i++) {
        emb_matrix_free(&alone[i]);
        free((void *)parts[i].w);
    }
    free(bias);
}

int main(void) {
    char err[256];
    emb_pool *pool = emb_pool_create(2, err, sizeof err), *pool3 = emb_pool_create(3, err, sizeof err);
    if (!pool || !pool3) {
        fprintf(stderr, "pool: %s\n", err);
        return 1;
    }
    static const int32_t float_types[] = {EMB_TYPE_F32, EMB_TYPE_F16, EMB_TYPE_BF16};
    static const int32_t q32_types[] = {EMB_TYPE_Q8_0, EMB_TYPE_Q5_0, EMB_TYPE_Q4_0, EMB_TYPE_Q4_1, EMB_TYPE_Q5_1};
    static const int32_t qk_types[] = {EMB_TYPE_Q4_K, EMB_TYPE_Q5_K, EMB_TYPE_Q6_K};
    for (size_t t = 0; t < 3; t++)
        for (size_t s = 0; s < sizeof float_shapes / sizeof float_shapes[0]; s++) {
            test_type_shape(pool, pool3, float_types[t], float_shapes[s], EMB_MAT_F32);
            test_type_shape(pool, pool3, float_types[t], float_shapes[s], EMB_MAT_I8);
        }
    for (size_t t = 0; t < sizeof q32_types / sizeof q32_types[0]; t++)
        for (size_t s = 0; s < sizeof q32_shapes / sizeof q32_shapes[0]; s++) {
            test_type_shape(pool, pool3, q32_types[t], q32_shapes[s], EMB_MAT_I8);
            test_type_shape(pool, pool3, q32_types[t], q32_shapes[s], EMB_MAT_BLOCKS);
        }
    for (size_t t = 0; t < sizeof qk_types / sizeof qk_types[0]; t++)
        for (size_t s = 0; s < sizeof qk_shapes / sizeof qk_shapes[0]; s++) {
            test_type_shape(pool, pool3, qk_types[t], qk_shapes[s], EMB_MAT_I8);
            test_type_shape(pool, pool3, qk_types[t], qk_shapes[s], EMB_MAT_BLOCKS);
        }
    test_quant_rows();
    test_block_sums();
    test_lossless_repack();
    test_compact_only_when_read();
    test_extreme_sums(pool);
    test_parts(pool);
    test_sgemm();
    test_errors();
    emb_pool_free(pool);
    emb_pool_free(pool3);
    return check_summary("test_gemm", NULL);
}
