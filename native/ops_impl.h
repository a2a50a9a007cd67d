/*
 * ops_impl.h - the per-level variants of the vector ops (internal). Only ops.c's dispatch and
 * tests/test_ops.c (which compares every level with the scalar reference) call them by level.
 */
#ifndef EMBEDD_OPS_IMPL_H
#define EMBEDD_OPS_IMPL_H

#include <stdint.h>

#define EMB_OPS_DECLARE(sfx)                                                                   \
    void emb_layernorm_##sfx(float *y, const float *x, const float *g, const float *b,         \
                             int64_t n, float eps);                                            \
    void emb_gelu_##sfx(float *x, int64_t n);                                                  \
    void emb_tanh_##sfx(float *x, int64_t n);                                                  \
    void emb_softmax_##sfx(float *x, int64_t n);                                               \
    void emb_exp_##sfx(float *x, int64_t n);                                                   \
    float emb_dot_##sfx(const float *x, const float *y, int64_t n);                            \
    void emb_axpy_##sfx(float *y, float a, const float *x, int64_t n);

EMB_OPS_DECLARE(ref)
#if defined(__x86_64__)
EMB_OPS_DECLARE(avx2)
EMB_OPS_DECLARE(avx512)
#endif

#endif
