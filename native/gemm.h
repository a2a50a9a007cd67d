/*
 * gemm.h - weight matrices packed for the matrix-product kernels, and the products (internal).
 *
 * A linear layer y = x W^T + b has W stored as n rows of k values (GGUF: ne[0] = k, ne[1] = n).
 * At load every W is packed once into the layout its kernel streams:
 *   EMB_MAT_F32    float weights (from F32/F16/BF16), float FMA kernels;
 *   EMB_MAT_I8     quantized weights as int8 with one scale per (output row, 32 inputs) - Q8_0,
 *                  Q5_0, Q4_0 losslessly, Q4_1, Q5_1, Q4_K, Q5_K losslessly as unsigned integers
 *                  with a scale and an offset, other types requantised - dotted with int8 activations
 *                  quantised per (token row, 32 inputs) (VNNI / maddubs / sdot kernels);
 *   EMB_MAT_BLOCKS the GGUF blocks as they are, dotted by the per-type vec_dot kernels of quants.h
 *                  against activations quantised to the type's vec_dot_type.
 * Each kernel has a scalar reference in gemm.c and SIMD variants in gemm_<isa>.c, chosen by
 * emb_simd_active(); tests/test_gemm.c compares them.
 */
#ifndef EMBEDD_GEMM_H
#define EMBEDD_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "embedd.h"

typedef enum { EMB_MAT_F32 = 0, EMB_MAT_I8 = 1, EMB_MAT_BLOCKS = 2 } emb_mat_kind;

/* The level whose float kernels (float products, attention, element-wise ops) `level` runs: the
   VNNI levels differ from AVX-512 and AVX2 only in the int8 matrix kernel. */
static inline int emb_simd_float_level(int level) {
    if (level == EMB_SIMD_AVX512VNNI) return EMB_SIMD_AVX512;
    if (level == EMB_SIMD_AVXVNNI) return EMB_SIMD_AVX2;
    return level;
}

typedef enum {
    EMB_EPI_NONE = 0, /* y = x W^T + b (+ residual) */
    EMB_EPI_GELU = 1, /* y = gelu(x W^T + b), exact erf GELU */
    EMB_EPI_TANH = 2, /* y = tanh(x W^T + b) */
} emb_epilogue;

typedef struct {
    int32_t kind;  /* emb_mat_kind */
    int32_t type;  /* GGUF type the weights came from (the first part's, if packed from parts) */
    int64_t n, k;  /* output rows, input features */
    void *data;    /* packed weights; layout private to gemm*.c */
    int64_t data_bytes;
    float *scale;    /* EMB_MAT_I8: one scale per (row, 32-block), padded (gemm_impl.h); else NULL */
    int32_t *rsum;   /* EMB_MAT_I8: -128 x each (row, 32-block)'s int8 sum, same layout; else NULL */
    float *wmin;     /* EMB_MAT_I8 from an affine type (Q4_1, Q5_1, Q4_K, Q5_K): each (row, 32-block)'s
                        offset, weight = q * scale + wmin, same layout; else NULL */
    int32_t wmax;    /* EMB_MAT_I8: the largest |int8 weight| (kernels pick tighter paths for small ones) */
    int32_t wlow;    /* EMB_MAT_I8: the smallest int8 weight, or 0 if none is negative (unsigned weights,
                        as the affine types pack, let the AVX2 kernel sum a whole block in int16) */
    uint8_t *panel_wmax; /* EMB_MAT_I8: the largest |int8 weight| of each 16-row panel; else NULL */
    int32_t small_panels; /* EMB_MAT_I8: panels whose weights are within +-EMB_I8_SMALL_WMAX */
    float *bias;     /* n floats, or NULL */
    int32_t in_arena; /* 1: the buffers above belong to an emb_arena, emb_matrix_free leaves them */
    /* EMB_MAT_I8: the compact copy of the weights that the AVX-512 VNNI kernel streams for products
       of few rows (emb_matrix_compact; layout in gemm_impl.h), or NULL. */
    uint8_t *cdata;
    int64_t *c_off;   /* per panel: the offset of its blocks in cdata */
    uint8_t *c_bits;  /* per panel: 4, 5 or 8 bits a weight */
    uint8_t *c_zero;  /* per panel: what is added to each int8 weight to make it unsigned */
    int32_t c_heap;   /* 1: c_off starts a heap block holding all four (else they are in an arena) */
    int64_t c_bytes;  /* that block's size */
} emb_matrix;

/* A bump allocator over one anonymous mapping with transparent huge pages advised: a model's
   weights then cost a dozen 2 MB page faults at load instead of thousands of 4 KB ones (each a
   few microseconds, more under virtualisation). Memory is never reused, so it is zero when handed
   out; it is all released at once by emb_arena_free. */
typedef struct {
    uint8_t *base;  /* 2 MB aligned start of the usable range */
    size_t cap, used;
    void *map;      /* the mapping itself and its length, for munmap */
    size_t map_len;
} emb_arena;

/* Reserves cap bytes of address space (nothing is touched yet). Returns 0, or -1 if the system
   gives no such mapping (callers then allocate from the heap). */
int emb_arena_init(emb_arena *a, size_t cap);
/* bytes of zeroed, 64-byte aligned memory, or NULL if the arena is absent or full. */
void *emb_arena_alloc(emb_arena *a, int64_t bytes);
/* Returns the reserved but unused tail (whole 2 MB pages past `used`) to the system. */
void emb_arena_trim(emb_arena *a);
/* 1 if p points into the arena's reserved range. */
int emb_arena_owns(const emb_arena *a, const void *p);
void emb_arena_free(emb_arena *a);

/* Packs n rows of k elements of `type` (the caller has checked that w holds
   n * emb_row_bytes(type, k) bytes) into `kind`'s layout, copying bias (n floats) if not NULL.
   Returns 0, or -1 with err set (allocation failure, kind impossible for type). */
int emb_matrix_init(emb_matrix *m, int32_t kind, int32_t type, const void *w, int64_t n, int64_t k,
                    const float *bias, char *err, size_t err_len);
/* The same, placing all of the matrix's buffers in arena when it has room for them (else, or if
   arena is NULL, on the heap). */
int emb_matrix_init_in(emb_matrix *m, emb_arena *arena, int32_t kind, int32_t type, const void *w,
                       int64_t n, int64_t k, const float *bias, char *err, size_t err_len);
/* Rows of one GGUF type for emb_matrix_init_parts_in: n rows of k elements at w (the caller has
   checked that w holds n * emb_row_bytes(type, k) bytes). */
typedef struct {
    int32_t type;
    const void *w;
    int64_t n;
} emb_matrix_part;
/* Packs the rows of parts[0..nparts) one after the other into one matrix (e.g. a layer's Q, K and
   V, whose GGUF types may differ), each part's rows from its own type: the I8 kind keeps exact
   integers wherever emb_matrix_init would. EMB_MAT_BLOCKS needs every part of one type. bias
   holds the total row count of floats, or is NULL. */
int emb_matrix_init_parts_in(emb_matrix *m, emb_arena *arena, int32_t kind, const emb_matrix_part *parts,
                             int nparts, int64_t k, const float *bias, char *err, size_t err_len);
void emb_matrix_free(emb_matrix *m);
/* Adds the compact copy of an I8 matrix (in arena if it has room, else on the heap): every panel's
   weights shifted to unsigned integers of 4, 5 or 8 bits, for the AVX-512 VNNI kernel of products
   of few rows, whose time goes to streaming the weights. emb_matrix_init does this itself when
   the active level is AVX-512 VNNI. Returns 0, or -1 (not I8, out of memory: the matrix is unchanged). */
int emb_matrix_compact(emb_matrix *m, emb_arena *arena);
/* The kind the fast path uses for weights of this type: F32 for F32/F16/BF16, I8 otherwise. */
int32_t emb_matrix_kind_for(int32_t type, int32_t weight_mode);

/* Bytes of scratch emb_matmul needs for M rows of input (quantised activations etc.). */
size_t emb_matmul_scratch_bytes(const emb_matrix *W, int64_t M);

/* Rows up to which emb_matmul, at the AVX-512 VNNI level, multiplies by a matrix's compact copy
   (per call: each worker's rows in the row split, all rows in the column split): one sequence of
   up to 160 tokens on two workers, while batches of many take the I8 data. With few rows a call
   is bound by streaming its weights from the shared L3, and the smaller stream wins outright
   (bundled model, 2 threads, one sequence of 8 to 47 tokens in a C loop: 4-28% faster). Longer
   sequences unpack each weight line in more tiles: 79 and 152 tokens ran 3-5% slower in that loop,
   where the I8 data stays warm. Queries arriving one at a time leave it cold, so through HTTP
   those of 48 tokens and more were 8% faster from the compact copy (docs/performance.md). */
#define EMB_MATMUL_FEW_ROWS 80

/* y[M][n] = epi(x[M][k] W^T + bias) (+ residual[M][n] if residual != NULL, only with
   EMB_EPI_NONE). x, y, residual are row-major with leading dimensions k, n, n; y must not alias x;
   y may alias residual. scratch holds emb_matmul_scratch_bytes(W, M) bytes, 64-byte aligned.
   The work is split over the pool's workers. */
void emb_matmul(emb_pool *p, const emb_matrix *W, const float *x, int64_t M, float *y,
                const float *residual, int epi, void *scratch);

/* Single-threaded float products for attention (row-major, explicit leading dimensions):
   C[M][N] = alpha * A[M][K] B[N][K]^T          (emb_sgemm_nt)
   C[M][N] = A[M][K] B[K][N]                    (emb_sgemm_nn) */
void emb_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float *C, int64_t ldc);
void emb_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float *C, int64_t ldc);

#endif
