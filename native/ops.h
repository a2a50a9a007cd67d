/*
 * ops.h - vector math of the encoder (internal): normalisation, activations, softmax, attention.
 * Scalar references in ops.c, SIMD variants in ops_<isa>.c chosen by emb_simd_active();
 * tests/test_ops.c compares them.
 */
#ifndef EMBEDD_OPS_H
#define EMBEDD_OPS_H

#include <stdint.h>

/* y = (x - mean) / sqrt(var + eps) * g + b over n values; y may alias x. */
void emb_layernorm(float *y, const float *x, const float *g, const float *b, int64_t n, float eps);
/* In place: exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), to within 1e-6 absolute. */
void emb_gelu(float *x, int64_t n);
/* In place tanh. */
void emb_tanh(float *x, int64_t n);
/* In place softmax, stable for any finite input. */
void emb_softmax(float *x, int64_t n);
/* Attention of one head: out_i = softmax(scale * q_i . k_j over j < L) . V for the nq query rows
   q_i of Q, over one sequence's L keys and values. Rows of Q, K, V and out hold hd floats, ldq,
   ldk, ldv and ldo floats apart. scratch holds emb_attend_scratch(L, hd) floats, 64-byte aligned.
   A row's result depends only on its own query row, not on which rows share the call. */
int64_t emb_attend_scratch(int64_t L, int64_t hd);
void emb_attend(int64_t nq, int64_t L, int64_t hd, float scale, const float *Q, int64_t ldq,
                const float *K, int64_t ldk, const float *V, int64_t ldv, float *out, int64_t ldo,
                float *scratch);
/* Dot product and y += a * x. */
float emb_dot(const float *x, const float *y, int64_t n);
void emb_axpy(float *y, float a, const float *x, int64_t n);

#endif
