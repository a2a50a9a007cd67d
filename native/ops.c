/*
 * ops.c - vector math of the encoder: scalar references and the dispatch to SIMD variants.
 *
 * The scalar references are written for auditability: libm (expf, erfcf, tanhf) and two-pass
 * LayerNorm. The SIMD variants in ops_avx2.c / ops_avx512.c use polynomial exp/erfc and are
 * compared with these references by tests/test_ops.c.
 */
#include <math.h>
#include <stdint.h>

#include "embedd.h"
#include "gemm.h"
#include "ops.h"

#include "ops_impl.h"

/* ---- scalar references ------------------------------------------------------------------- */

void emb_layernorm_ref(float *y, const float *x, const float *g, const float *b, int64_t n,
                       float eps) {
    if (n <= 0) return;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    const float mean = sum / (float)n;
    float var = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float d = x[i] - mean;
        var += d * d;
    }
    const float rstd = 1.0f / sqrtf(var / (float)n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * g[i] + b[i];
}

/* 1 + erf(y) == erfc(-y): the erfc form keeps full relative precision for negative x, where
   1 + erf(y) would cancel. */
void emb_gelu_ref(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * erfcf(-x[i] * 0.70710678118654752f);
}

void emb_tanh_ref(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

void emb_exp_ref(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = expf(x[i]);
}

void emb_softmax_ref(float *x, int64_t n) {
    if (n <= 0) return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    /* sum >= 1: the maximum contributes exp(0). */
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

float emb_dot_ref(const float *x, const float *y, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

void emb_axpy_ref(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void emb_attend_ref(EMB_ATTEND_ARGS) {
    float *s = scratch; /* L scores */
    for (int64_t i = 0; i < nq; i++) {
        const float *q = Q + i * ldq;
        for (int64_t j = 0; j < L; j++) {
            float d = 0.0f;
            for (int64_t k = 0; k < hd; k++) d += q[k] * K[j * ldk + k];
            s[j] = scale * d;
        }
        emb_softmax_ref(s, L);
        float *o = out + i * ldo;
        for (int64_t k = 0; k < hd; k++) o[k] = 0.0f;
        for (int64_t j = 0; j < L; j++)
            for (int64_t k = 0; k < hd; k++) o[k] += s[j] * V[j * ldv + k];
    }
}

void emb_attend_sgemm(EMB_ATTEND_ARGS) {
    for (int64_t q0 = 0; q0 < nq; q0 += EMB_ATTN_Q_BLOCK) {
        const int64_t mq = nq - q0 < EMB_ATTN_Q_BLOCK ? nq - q0 : EMB_ATTN_Q_BLOCK;
        emb_sgemm_nt(mq, L, hd, scale, Q + q0 * ldq, ldq, K, ldk, scratch, L);
        for (int64_t r = 0; r < mq; r++) emb_softmax(scratch + r * L, L);
        emb_sgemm_nn(mq, hd, L, scratch, L, V, ldv, out + q0 * ldo, ldo);
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

#if defined(__x86_64__)
#define EMB_DISPATCH(call_ref, call_avx2, call_avx512)                                         \
    do {                                                                                       \
        const int level_ = emb_simd_float_level(emb_simd_active());                            \
        if (level_ == EMB_SIMD_AVX512) {                                                       \
            call_avx512;                                                                       \
        } else if (level_ == EMB_SIMD_AVX2) {                                                  \
            call_avx2;                                                                         \
        } else {                                                                               \
            call_ref;                                                                          \
        }                                                                                      \
    } while (0)
#else
#define EMB_DISPATCH(call_ref, call_avx2, call_avx512) call_ref
#endif

void emb_layernorm(float *y, const float *x, const float *g, const float *b, int64_t n,
                   float eps) {
    EMB_DISPATCH(emb_layernorm_ref(y, x, g, b, n, eps), emb_layernorm_avx2(y, x, g, b, n, eps),
                 emb_layernorm_avx512(y, x, g, b, n, eps));
}

void emb_gelu(float *x, int64_t n) {
    EMB_DISPATCH(emb_gelu_ref(x, n), emb_gelu_avx2(x, n), emb_gelu_avx512(x, n));
}

void emb_tanh(float *x, int64_t n) {
    EMB_DISPATCH(emb_tanh_ref(x, n), emb_tanh_avx2(x, n), emb_tanh_avx512(x, n));
}

void emb_softmax(float *x, int64_t n) {
    EMB_DISPATCH(emb_softmax_ref(x, n), emb_softmax_avx2(x, n), emb_softmax_avx512(x, n));
}

/* The sgemm composition needs EMB_ATTN_Q_BLOCK x L scores; the fused kernel hd x L16 transposed
   keys and 4 x L16 scores (L16: L rounded up to 16). */
int64_t emb_attend_scratch(int64_t L, int64_t hd) {
    const int64_t l16 = (L + 15) / 16 * 16, fused = (hd + 4) * l16, composed = EMB_ATTN_Q_BLOCK * L;
    return ((fused > composed ? fused : composed) + 15) / 16 * 16;
}

void emb_attend(EMB_ATTEND_ARGS) {
    EMB_DISPATCH(emb_attend_sgemm(nq, L, hd, scale, Q, ldq, K, ldk, V, ldv, out, ldo, scratch),
                 emb_attend_avx2(nq, L, hd, scale, Q, ldq, K, ldk, V, ldv, out, ldo, scratch),
                 emb_attend_avx512(nq, L, hd, scale, Q, ldq, K, ldk, V, ldv, out, ldo, scratch));
}

float emb_dot(const float *x, const float *y, int64_t n) {
    float r;
    EMB_DISPATCH(r = emb_dot_ref(x, y, n), r = emb_dot_avx2(x, y, n), r = emb_dot_avx512(x, y, n));
    return r;
}

void emb_axpy(float *y, float a, const float *x, int64_t n) {
    EMB_DISPATCH(emb_axpy_ref(y, a, x, n), emb_axpy_avx2(y, a, x, n),
                 emb_axpy_avx512(y, a, x, n));
}
