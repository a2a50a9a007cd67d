/*
 * quants.h - GGUF block formats: layouts, dequantisation and dot kernels (internal).
 *
 * Each weight type has a scalar reference in quants.c and SIMD variants in quants_<isa>.c; the table
 * returned by emb_type_traits() points at the best variant for the active SIMD level
 * (emb_simd_active()). Every variant must agree with the scalar reference (tests/test_quants.c).
 */
#ifndef EMBEDD_QUANTS_H
#define EMBEDD_QUANTS_H

#include <stdint.h>

#include "embedd.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t emb_fp16;
typedef uint16_t emb_bf16;

typedef struct { emb_fp16 d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { emb_fp16 d; emb_fp16 m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { emb_fp16 d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { emb_fp16 d; emb_fp16 m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { emb_fp16 d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { emb_fp16 d; emb_fp16 dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { emb_fp16 d; emb_fp16 dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; emb_fp16 d; } block_q6_K;
/* Activations for the K types: float scale, 256 int8 values, sums of each 16 values. */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 size");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K size");

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: sub-blocks 0..3 use the low
   six bits of bytes 0..3 (scales) and 4..7 (mins); 4..7 take their low nibbles from bytes 8..11 and
   their top two bits from the spare top bits of bytes 0..7. */
static inline void emb_k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* n is always a positive multiple of the type's block size; callers check that. */
typedef void (*emb_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*emb_from_float_fn)(const float *src, void *dst, int64_t n);
/* *s = dot(x, y) over n elements, x of the weight type, y of its vec_dot_type. */
typedef void (*emb_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);

typedef struct {
    const char *name;
    int64_t blck_elems;
    int64_t blck_bytes;
    int is_quantized;
    emb_to_float_fn to_float;     /* dequantise (or convert) a row */
    emb_from_float_fn from_float; /* quantise a row; set for Q8_0 and Q8_K (activations) and
                                     for F32/F16/BF16 conversion; NULL otherwise */
    int32_t vec_dot_type;         /* type the other operand of vec_dot must be in */
    emb_vec_dot_fn vec_dot;       /* NULL for Q8_K */
} emb_type_traits;

/* Traits of the active SIMD level, or NULL for an unknown type. */
const emb_type_traits *emb_get_type_traits(int32_t type);
/* Traits of a given level (for tests comparing levels); NULL if unknown type or level. */
const emb_type_traits *emb_get_type_traits_level(int32_t type, int level);

float emb_fp16_to_fp32(emb_fp16 h);
emb_fp16 emb_fp32_to_fp16(float f);
float emb_bf16_to_fp32(emb_bf16 h);
emb_bf16 emb_fp32_to_bf16(float f);

#endif
