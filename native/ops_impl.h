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

/* emb_attend's scalar reference; the composition of emb_sgemm_nt, emb_softmax and emb_sgemm_nn
   that levels without a fused kernel run (query rows in blocks of EMB_ATTN_Q_BLOCK); the fused
   AVX2 and AVX-512 kernels, which fall back to the composition when hd is not a multiple of their
   vector width. */
#define EMB_ATTN_Q_BLOCK 64
#define EMB_ATTEND_ARGS                                                                        \
    int64_t nq, int64_t L, int64_t hd, float scale, const float *Q, int64_t ldq, const float *K, \
        int64_t ldk, const float *V, int64_t ldv, float *out, int64_t ldo, float *scratch
void emb_attend_ref(EMB_ATTEND_ARGS);
void emb_attend_sgemm(EMB_ATTEND_ARGS);
#if defined(__x86_64__)
void emb_attend_avx2(EMB_ATTEND_ARGS);
void emb_attend_avx512(EMB_ATTEND_ARGS);
#endif

#endif
