/*
 * embedd.h - the one public header of embedd's C inference core.
 *
 * The core runs BERT-style encoders (dense embeddings, cross-encoder reranking, SPLADE) on CPU
 * threads. It knows nothing of files: the caller (Go) parses GGUF and hands the core a table of
 * tensors. Every size, shape and type in that table is checked here before any byte is read, and
 * all data is copied or repacked during emb_model_load, so the caller may unmap its file afterwards.
 *
 * Threading: an emb_pool is a persistent set of worker threads. An emb_ctx holds the scratch memory
 * of one model and must not be used by two callers at once; many contexts may share one pool, but
 * emb_encode calls on the same pool must not overlap (the Go side serialises them).
 *
 * Errors: functions that can fail take (char *err, size_t err_len) and write a one-line,
 * NUL-terminated message there; they return NULL or -1 on failure.
 */
#ifndef EMBEDD_H
#define EMBEDD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMB_MAX_DIMS 4

/* Tensor element types, numbered as GGUF (ggml) numbers them. */
typedef enum {
    EMB_TYPE_F32 = 0,
    EMB_TYPE_F16 = 1,
    EMB_TYPE_Q4_0 = 2,
    EMB_TYPE_Q4_1 = 3,
    EMB_TYPE_Q5_0 = 6,
    EMB_TYPE_Q5_1 = 7,
    EMB_TYPE_Q8_0 = 8,
    EMB_TYPE_Q4_K = 12,
    EMB_TYPE_Q5_K = 13,
    EMB_TYPE_Q6_K = 14,
    EMB_TYPE_Q8_K = 15, /* activations only: never accepted as a weight type */
    EMB_TYPE_BF16 = 30,
} emb_type;

/* 1 if the core can read weights of this type. */
int emb_type_supported(int32_t type);
/* Elements per block (1 for F32/F16/BF16), or 0 for an unknown type. */
int64_t emb_type_block_elems(int32_t type);
/* Bytes per block, or 0 for an unknown type. */
int64_t emb_type_block_bytes(int32_t type);
/* Bytes of a row of n elements; -1 if the type is unknown, n < 0, n is not a multiple of the
   block size, or the result would overflow. */
int64_t emb_row_bytes(int32_t type, int64_t n);
/* Short name ("q4_K", "f16", ...) or "unknown". */
const char *emb_type_name(int32_t type);

/* ---- SIMD dispatch ------------------------------------------------------------------------ */

typedef enum {
    EMB_SIMD_SCALAR = 0,
    EMB_SIMD_AVX2 = 1,       /* AVX2 + FMA + F16C */
    EMB_SIMD_AVX512 = 2,     /* AVX-512 F/BW/VL/DQ */
    EMB_SIMD_AVX512VNNI = 3, /* AVX-512 + VNNI */
    EMB_SIMD_NEON = 4,       /* arm64 Advanced SIMD (+ dotprod where present) */
    EMB_SIMD_AVXVNNI = 5,    /* AVX2 + AVX-VNNI (VPDPBUSD on 256 bits, CPUs without AVX-512) */
    EMB_SIMD_N_LEVELS = 6
} emb_simd;

/* The best level this CPU supports. Not every level below it need run: a CPU with AVX-512 may lack
   AVX-VNNI, so ask emb_simd_can_run. */
int emb_simd_detect(void);
/* 1 if this CPU can run `level`, else 0. */
int emb_simd_can_run(int level);
/* The level kernels currently dispatch to. At first use it is the detected level, or the one named
   by the environment variable EMBEDD_SIMD (scalar|avx2|avxvnni|avx512|avx512vnni|neon) if this CPU
   can run it; a name the CPU cannot run is ignored with the detected level kept. */
int emb_simd_active(void);
/* Forces a level; returns 0, or -1 if this CPU cannot run it (the active level is unchanged).
   Must not be called while any emb_encode is running. */
int emb_simd_set(int level);
/* "scalar", "avx2", "avx512", "avx512vnni", "neon", "avxvnni", or "unknown". */
const char *emb_simd_name(int level);

/* ---- Models ------------------------------------------------------------------------------- */

typedef enum {
    EMB_POOL_NONE = 0, /* no pooling: one vector per token */
    EMB_POOL_MEAN = 1,
    EMB_POOL_CLS = 2,
    EMB_POOL_LAST = 3,
    EMB_POOL_RANK = 4, /* CLS state through the classifier head (cross-encoders) */
} emb_pooling;

typedef enum {
    EMB_HEAD_EMBED = 0,  /* pooled hidden states */
    EMB_HEAD_RANK = 1,   /* cls.* classifier: one logit per label */
    EMB_HEAD_SPLADE = 2, /* mlm.* head, max over tokens of log(1 + relu(logit)) per vocabulary entry */
} emb_head;

typedef enum {
    EMB_WEIGHTS_AUTO = 0,   /* quantized weights repacked to int8 rows for the integer GEMM,
                               float weights kept as float: the fast path */
    EMB_WEIGHTS_BLOCKS = 1, /* quantized weights kept in their GGUF blocks, dotted with Q8
                               activations by the per-type kernels: the slower, exact-weights path */
} emb_weight_mode;

typedef struct {
    int32_t n_vocab;
    int32_t n_ctx; /* rows of position_embd: the longest sequence accepted */
    int32_t n_embd;
    int32_t n_head;
    int32_t n_layer;
    int32_t n_ff;
    int32_t n_token_types; /* rows of token_types (0 if the model has none) */
    float norm_eps;
    int32_t pooling;     /* emb_pooling */
    int32_t head;        /* emb_head */
    int32_t weight_mode; /* emb_weight_mode */
} emb_hparams;

typedef struct {
    const char *name; /* "token_embd.weight", "blk.0.attn_q.weight", ... */
    int32_t type;     /* emb_type */
    int32_t n_dims;   /* 1..EMB_MAX_DIMS */
    int64_t ne[EMB_MAX_DIMS]; /* ggml order: ne[0] is the contiguous dimension; unused dims = 1 */
    const void *data;
    uint64_t size; /* bytes readable at data; must equal the size implied by type and ne */
} emb_tensor;

typedef struct emb_model emb_model;

/* Builds a model from the tensor table. Unknown tensor names are ignored; a missing or misshapen
   required tensor is an error naming it. All data is copied; the table may be freed afterwards. */
emb_model *emb_model_load(const emb_hparams *hp, const emb_tensor *tensors, int32_t n_tensors,
                          char *err, size_t err_len);
void emb_model_free(emb_model *m);
/* Floats per sequence in emb_encode's output: n_embd (embed), n_labels (rank), n_vocab (splade).
   With EMB_POOL_NONE it is floats per token. */
int32_t emb_model_output_dim(const emb_model *m);
/* Bytes of memory the model holds. */
int64_t emb_model_bytes(const emb_model *m);

/* ---- Thread pool and contexts -------------------------------------------------------------- */

typedef struct emb_pool emb_pool;
/* n_threads <= 0 means one per online core. The calling thread of emb_encode is worker 0. */
emb_pool *emb_pool_create(int32_t n_threads, char *err, size_t err_len);
void emb_pool_free(emb_pool *p);
int32_t emb_pool_threads(const emb_pool *p);
/* Says no work is coming soon (a server whose queue just emptied): the workers, which otherwise
   spin for a while after each task so that the dozens of tasks of one forward pass reach them in
   microseconds, go to sleep at once and leave the cores to the threads that answer the request.
   The next task wakes them. A hint: safe to call at any time, also during emb_encode. */
void emb_pool_park(emb_pool *p);
/* Says work is coming (a request just arrived): sleeping workers wake and spin for a while, so the
   next task starts on all of them without a wake-up delay. A hint, like emb_pool_park. */
void emb_pool_wake(emb_pool *p);
/* The operating-system thread ids (Linux TIDs) of the pool's own threads, not counting the caller of
   emb_encode (worker 0): writes up to cap of them to ids and returns how many there are, 0 where
   the system has no such ids. Lets the embedding program tell its compute threads from the rest,
   say to give them a different scheduling policy. Waits until every thread has started. */
int32_t emb_pool_thread_ids(emb_pool *p, int64_t *ids, int32_t cap);

typedef struct emb_ctx emb_ctx;
emb_ctx *emb_ctx_create(const emb_model *m, char *err, size_t err_len);
void emb_ctx_free(emb_ctx *c);

/* A packed batch: sequences laid end to end, no padding. */
typedef struct {
    int32_t n_seqs;
    const int32_t *seq_lens;    /* n_seqs lengths, each in 1..n_ctx */
    const int32_t *tokens;      /* sum(seq_lens) ids, each in 0..n_vocab-1 */
    const int32_t *token_types; /* sum(seq_lens) type ids in 0..n_token_types-1, or NULL for 0 */
    int32_t normalize;          /* 1: L2-normalise each pooled embedding (embed head only) */
} emb_batch;

/* Floats emb_encode writes for this batch, or -1 if the batch is malformed. */
int64_t emb_output_len(const emb_model *m, const emb_batch *b);

/* Runs the encoder over the batch and writes emb_output_len floats to out (capacity out_len).
   Every length and id is validated first. Returns 0, or -1 with err set. */
int emb_encode(emb_ctx *c, emb_pool *p, const emb_batch *b, float *out, int64_t out_len, char *err,
               size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
