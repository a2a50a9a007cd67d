/*
 * ops.h - vector math of the encoder (internal): normalisation, activations, softmax.
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
/* Dot product and y += a * x. */
float emb_dot(const float *x, const float *y, int64_t n);
void emb_axpy(float *y, float a, const float *x, int64_t n);

#endif
