/*
 * model.h - the loaded encoder (internal, shared by model.c which builds it and encoder.c which
 * runs it). Everything here was checked and copied by emb_model_load: the forward pass trusts it.
 */
#ifndef EMBEDD_MODEL_H
#define EMBEDD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "embedd.h"
#include "gemm.h"

/* Sanity caps on hyperparameters: far above any BERT-family model, low enough that products of
   them fit comfortably in int64 and sizes stay allocatable. */
#define EMB_MAX_VOCAB (1 << 22)
#define EMB_MAX_CTX (1 << 16)
#define EMB_MAX_EMBD (1 << 14)
#define EMB_MAX_HEAD 1024
#define EMB_MAX_LAYER 256
#define EMB_MAX_FF (1 << 17)
#define EMB_MAX_TOKEN_TYPES 1024
#define EMB_MAX_LABELS (1 << 16)
/* Most tokens one emb_encode call accepts (sum of the sequence lengths). */
#define EMB_MAX_BATCH_TOKENS (1 << 18)

/* Formats an error message into err (err_len bytes, always terminated); nothing if err is NULL. */
void emb_set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct {
    emb_matrix qkv; /* [3E] outputs: Q rows, then K rows, then V rows */
    emb_matrix out; /* attention output projection [E] */
    emb_matrix up;  /* [F] */
    emb_matrix down; /* [E] */
    float *attn_norm_g, *attn_norm_b;
    float *out_norm_g, *out_norm_b;
} emb_layer;

struct emb_model {
    emb_hparams hp;

    /* token embeddings kept in their GGUF type; rows dequantised per batch */
    int32_t tok_type;
    int64_t tok_row_bytes;
    uint8_t *tok_embd; /* n_vocab rows of tok_row_bytes */
    float *pos_embd;   /* [n_ctx][E] */
    float *type_embd;  /* [n_token_types][E], NULL when n_token_types == 0 */
    float *embd_norm_g, *embd_norm_b;

    emb_layer *layers; /* n_layer */

    /* EMB_HEAD_RANK */
    int has_pooler, has_cls_out;
    emb_matrix pooler;  /* cls.weight: dense then tanh */
    emb_matrix cls_out; /* cls.output.weight: n_labels logits */
    int32_t n_labels;

    /* EMB_HEAD_SPLADE */
    emb_matrix mlm_dense; /* then GELU */
    float *mlm_norm_g, *mlm_norm_b;
    emb_matrix decoder; /* [n_vocab] outputs with mlm.bias */

    int32_t out_dim; /* emb_model_output_dim */
    int64_t bytes;

    /* Weights, embeddings and norms live here when the system gave the mapping (else on the heap:
       free with model_free_ptr semantics, see model.c). */
    emb_arena arena;
};

/* Tests only: sets the fractions of a group's rows that the nth workers of the row-local path take
   next (encoder.c adjusts them after every pool run), so that a test can check that any split gives
   the same outputs. Ignored for nth outside 1..16. */
void emb_ctx_set_split(emb_ctx *c, int nth, const double *frac);

#endif
