/*
 * model.c - emb_model_load: checks a BERT tensor table (names, types, shapes, sizes) and builds
 * the model: float norms and biases, packed weight matrices with Q, K and V fused, token
 * embeddings kept in their type. Nothing is read before it has been checked; every error names
 * the tensor and the problem.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "embedd.h"
#include "gemm.h"
#include "model.h"
#include "quants.h"

void emb_set_err(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

typedef struct {
    const emb_hparams *hp;
    const emb_tensor *tensors;
    int32_t n_tensors;
    char *err;
    size_t err_len;
    emb_model *m;
} loader;

/* ---- tensor lookup and checks ------------------------------------------------------------ */

/* Finds name: returns 1 and sets *out if present exactly once, 0 if absent, -1 (error set) if
   duplicated or if the tensor's own description is inconsistent. */
static int find_tensor(loader *ld, const char *name, const emb_tensor **out) {
    const emb_tensor *found = NULL;
    for (int32_t i = 0; i < ld->n_tensors; i++) {
        const emb_tensor *t = &ld->tensors[i];
        if (!t->name || strcmp(t->name, name) != 0) continue;
        if (found) {
            emb_set_err(ld->err, ld->err_len, "tensor %s: appears more than once", name);
            return -1;
        }
        found = t;
    }
    if (!found) return 0;
    const emb_tensor *t = found;
    if (t->n_dims < 1 || t->n_dims > EMB_MAX_DIMS) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: n_dims %d outside 1..%d", name, t->n_dims,
                EMB_MAX_DIMS);
        return -1;
    }
    for (int d = 0; d < EMB_MAX_DIMS; d++) {
        if (d < t->n_dims ? t->ne[d] < 1 : t->ne[d] != 1) {
            emb_set_err(ld->err, ld->err_len, "tensor %s: invalid ne[%d] = %lld", name, d,
                    (long long)t->ne[d]);
            return -1;
        }
    }
    if (!emb_type_supported(t->type)) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: unsupported type %d (%s)", name, t->type,
                emb_type_name(t->type));
        return -1;
    }
    const int64_t row = emb_row_bytes(t->type, t->ne[0]);
    if (row < 0) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: ne[0] = %lld is not a whole number of %s blocks",
                name, (long long)t->ne[0], emb_type_name(t->type));
        return -1;
    }
    int64_t bytes = row;
    for (int d = 1; d < EMB_MAX_DIMS; d++) {
        if (bytes > INT64_MAX / t->ne[d]) {
            emb_set_err(ld->err, ld->err_len, "tensor %s: size overflows", name);
            return -1;
        }
        bytes *= t->ne[d];
    }
    if (t->size != (uint64_t)bytes) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: data size %llu bytes, shape and type need %lld",
                name, (unsigned long long)t->size, (long long)bytes);
        return -1;
    }
    if (!t->data) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: no data", name);
        return -1;
    }
    *out = t;
    return 1;
}

static int check_shape(loader *ld, const emb_tensor *t, int64_t ne0, int64_t ne1) {
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        emb_set_err(ld->err, ld->err_len,
                "tensor %s: shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", t->name,
                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                (long long)t->ne[3], (long long)ne0, (long long)ne1);
        return -1;
    }
    return 0;
}

/* Finds a required tensor of the given shape; -1 with error if absent or wrong. */
static const emb_tensor *require(loader *ld, const char *name, int64_t ne0, int64_t ne1) {
    const emb_tensor *t = NULL;
    const int r = find_tensor(ld, name, &t);
    if (r == 0) emb_set_err(ld->err, ld->err_len, "tensor %s: missing", name);
    if (r != 1) return NULL;
    return check_shape(ld, t, ne0, ne1) == 0 ? t : NULL;
}

/* Memory the model keeps: from its arena if there is room, else from the heap. */
static void *model_alloc(emb_model *m, int64_t bytes) {
    void *p = emb_arena_alloc(&m->arena, bytes);
    return p ? p : malloc((size_t)bytes);
}

/* Frees what model_alloc returned (arena memory goes with the arena). */
static void model_free_ptr(emb_model *m, void *p) {
    if (p && !emb_arena_owns(&m->arena, p)) free(p);
}

/* An upper bound of the bytes the model may keep for this tensor in any form (its GGUF bytes,
   floats, or packed int8 with scales and padding), used only to reserve address space; 0 if the
   tensor's shape is invalid (the loader reports that) or the bound overflows. */
static int64_t tensor_bound(const emb_tensor *t) {
    int64_t rows = 1, per_row, total;
    for (int d = 1; d < EMB_MAX_DIMS; d++) {
        if (t->ne[d] < 1 || t->ne[d] > INT32_MAX || __builtin_mul_overflow(rows, t->ne[d], &rows)) return 0;
    }
    if (t->ne[0] < 1 || t->ne[0] > INT32_MAX) return 0;
    per_row = 4 * (t->ne[0] + 128) + 12 * (t->ne[0] / 32 + 2) + 8; /* data, scale + rsum + wmin */
    if (__builtin_mul_overflow(per_row, rows + 16, &total) || total > INT64_MAX - 4096) return 0;
    return total + 4096;
}

/* The tensors usually sit in a file mapping the caller just made: reading them page by page
   costs one fault per 4 KB (thousands, each microseconds). Asking the kernel to map the pages in
   one call per tensor is several times cheaper. Advice only: failures (an older kernel, memory
   that is not a mapping) change nothing. Only tensors whose size agrees with their type and shape
   are touched (the loader reports the others), and the kernel validates the range itself. */
static void prefault_tensors(const emb_tensor *tensors, int32_t n_tensors) {
#if defined(__linux__)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
    const uintptr_t page = 4096;
    for (int32_t i = 0; i < n_tensors; i++) {
        const emb_tensor *t = &tensors[i];
        if (!t->data || t->size < 64 * 1024 || t->size > (uint64_t)SIZE_MAX / 2) continue;
        if (t->n_dims < 1 || t->n_dims > EMB_MAX_DIMS) continue;
        int64_t bytes = emb_row_bytes(t->type, t->ne[0]);
        int ok = bytes > 0;
        for (int d = 1; ok && d < EMB_MAX_DIMS; d++)
            ok = t->ne[d] >= 1 && !__builtin_mul_overflow(bytes, t->ne[d], &bytes);
        if (!ok || (uint64_t)bytes != t->size) continue;
        const uintptr_t lo = (uintptr_t)t->data & ~(page - 1);
        if ((uintptr_t)t->data > UINTPTR_MAX - (uintptr_t)t->size) continue;
        const uintptr_t hi = (uintptr_t)t->data + (uintptr_t)t->size;
        madvise((void *)lo, (size_t)(hi - lo), MADV_POPULATE_READ);
    }
#else
    (void)tensors;
    (void)n_tensors;
#endif
}

/* n floats from a float-typed tensor (F32/F16/BF16) into a new allocation: the model's arena if
   keep, else the heap (a temporary the caller frees). */
static float *to_floats_in(loader *ld, const emb_tensor *t, int64_t n, int keep) {
    if (t->type != EMB_TYPE_F32 && t->type != EMB_TYPE_F16 && t->type != EMB_TYPE_BF16) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: type %s, expected f32, f16 or bf16", t->name,
                emb_type_name(t->type));
        return NULL;
    }
    float *out = keep ? model_alloc(ld->m, n * (int64_t)sizeof(float)) : malloc((size_t)n * sizeof(float));
    if (!out) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: out of memory", t->name);
        return NULL;
    }
    if (t->type == EMB_TYPE_F32) {
        memcpy(out, t->data, (size_t)n * sizeof(float));
    } else {
        const emb_type_traits *tr = emb_get_type_traits(t->type);
        if (!tr || !tr->to_float) {
            if (keep) model_free_ptr(ld->m, out); else free(out);
            emb_set_err(ld->err, ld->err_len, "tensor %s: no conversion for type %s", t->name,
                    emb_type_name(t->type));
            return NULL;
        }
        tr->to_float(t->data, out, n);
    }
    if (keep) ld->m->bytes += n * (int64_t)sizeof(float);
    return out;
}

/* A temporary float copy (the caller frees it). */
static float *to_floats(loader *ld, const emb_tensor *t, int64_t n) { return to_floats_in(ld, t, n, 0); }

/* A required float tensor of shape [ne0, ne1], kept by the model. */
static float *load_floats(loader *ld, const char *name, int64_t ne0, int64_t ne1) {
    const emb_tensor *t = require(ld, name, ne0, ne1);
    return t ? to_floats_in(ld, t, ne0 * ne1, 1) : NULL;
}

/* Bytes a packed matrix holds: its data plus, for I8, one float scale and one int32 row sum (and
   for affine types one float offset) per (panel row, 32-block) and the compact copy if any, and
   the bias padded to whole panels. */
static int64_t matrix_bytes(const emb_matrix *w) {
    int64_t b = w->data_bytes;
    const int64_t npad = (w->n + 15) / 16 * 16, nb = (w->k + 31) / 32;
    if (w->scale) b += npad * nb * (int64_t)sizeof(float);
    if (w->rsum) b += npad * nb * (int64_t)sizeof(int32_t);
    if (w->wmin) b += npad * nb * (int64_t)sizeof(float);
    if (w->bias) b += (w->kind == EMB_MAT_BLOCKS ? w->n : npad) * (int64_t)sizeof(float);
    if (w->panel_wmax) b += npad / 16;
    return b + w->c_bytes;
}

static int init_matrix_parts(loader *ld, emb_matrix *w, const char *name, int32_t kind, const emb_matrix_part *parts,
                             int nparts, int64_t k, const float *bias) {
    char msg[256];
    if (emb_matrix_init_parts_in(w, &ld->m->arena, kind, parts, nparts, k, bias, msg, sizeof msg) != 0) {
        memset(w, 0, sizeof *w);
        emb_set_err(ld->err, ld->err_len, "tensor %s: %s", name, msg);
        return -1;
    }
    ld->m->bytes += matrix_bytes(w);
    return 0;
}

static int init_matrix(loader *ld, emb_matrix *w, const char *name, int32_t kind, int32_t type,
                       const void *data, int64_t n, int64_t k, const float *bias) {
    const emb_matrix_part part = {type, data, n};
    return init_matrix_parts(ld, w, name, kind, &part, 1, k, bias);
}

/* A linear layer: weight [k, n] (k inputs, n outputs) and bias [n]. The bias is required unless
   bias_optional. */
static int load_linear(loader *ld, emb_matrix *w, const emb_tensor *wt, const char *bias_name,
                       int bias_optional) {
    const int64_t k = wt->ne[0], n = wt->ne[1];
    float *bias = NULL;
    const emb_tensor *bt = NULL;
    const int r = find_tensor(ld, bias_name, &bt);
    if (r < 0) return -1;
    if (r == 0 && !bias_optional) {
        emb_set_err(ld->err, ld->err_len, "tensor %s: missing", bias_name);
        return -1;
    }
    if (r == 1) {
        if (check_shape(ld, bt, n, 1) != 0) return -1;
        if (!(bias = to_floats(ld, bt, n))) return -1;
    }
    const int rc = init_matrix(ld, w, wt->name, emb_matrix_kind_for(wt->type, ld->hp->weight_mode),
                               wt->type, wt->data, n, k, bias);
    free(bias);
    return rc;
}

static int load_linear_named(loader *ld, emb_matrix *w, const char *w_name, const char *b_name,
                             int64_t k, int64_t n) {
    const emb_tensor *wt = require(ld, w_name, k, n);
    return wt ? load_linear(ld, w, wt, b_name, 0) : -1;
}

/* Q, K and V of a layer as one [3E] matrix, so one product over the batch yields all three. */
static int load_qkv(loader *ld, emb_layer *L, int il) {
    const int64_t E = ld->hp->n_embd;
    const char *names[3] = {"attn_q", "attn_k", "attn_v"};
    const emb_tensor *wt[3];
    char name[96];
    int rc = -1;
    float *bias = malloc((size_t)(3 * E) * sizeof(float));
    if (!bias) {
        emb_set_err(ld->err, ld->err_len, "layer %d qkv: out of memory", il);
        return -1;
    }
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, names[p]);
        if (!(wt[p] = require(ld, name, E, E))) goto done;
        snprintf(name, sizeof name, "blk.%d.%s.bias", il, names[p]);
        const emb_tensor *bt = require(ld, name, E, 1);
        if (!bt) goto done;
        float *b = to_floats(ld, bt, E);
        if (!b) goto done;
        memcpy(bias + p * E, b, (size_t)E * sizeof(float));
        free(b);
    }
    snprintf(name, sizeof name, "blk.%d.attn_qkv (fused)", il);
    /* Each part packed from its own type (Q, K and V may differ, e.g. Q5_0 with a Q8_0 V): the
       int8 kind keeps every part's exact integers. One type: that type's kind. Mixed types: int8
       in the automatic mode if any part would be int8; floats for float parts or the block
       kernels' mode (whose matrices hold one type). */
    const emb_matrix_part parts[3] = {{wt[0]->type, wt[0]->data, E}, {wt[1]->type, wt[1]->data, E},
                                      {wt[2]->type, wt[2]->data, E}};
    int32_t kind = emb_matrix_kind_for(wt[0]->type, ld->hp->weight_mode);
    if (wt[0]->type != wt[1]->type || wt[1]->type != wt[2]->type) {
        kind = EMB_MAT_F32;
        for (int p = 0; p < 3; p++)
            if (ld->hp->weight_mode == EMB_WEIGHTS_AUTO && emb_matrix_kind_for(wt[p]->type, EMB_WEIGHTS_AUTO) != EMB_MAT_F32)
                kind = EMB_MAT_I8;
    }
    rc = init_matrix_parts(ld, &L->qkv, name, kind, parts, 3, E, bias);
done:
    free(bias);
    return rc;
}

static int load_layer(loader *ld, int il) {
    const int64_t E = ld->hp->n_embd, F = ld->hp->n_ff;
    emb_layer *L = &ld->m->layers[il];
    char w[96], b[96];
    if (load_qkv(ld, L, il) != 0) return -1;
    snprintf(w, sizeof w, "blk.%d.attn_output.weight", il);
    snprintf(b, sizeof b, "blk.%d.attn_output.bias", il);
    if (load_linear_named(ld, &L->out, w, b, E, E) != 0) return -1;
    snprintf(w, sizeof w, "blk.%d.attn_output_norm.weight", il);
    snprintf(b, sizeof b, "blk.%d.attn_output_norm.bias", il);
    if (!(L->attn_norm_g = load_floats(ld, w, E, 1))) return -1;
    if (!(L->attn_norm_b = load_floats(ld, b, E, 1))) return -1;
    snprintf(w, sizeof w, "blk.%d.ffn_up.weight", il);
    snprintf(b, sizeof b, "blk.%d.ffn_up.bias", il);
    if (load_linear_named(ld, &L->up, w, b, E, F) != 0) return -1;
    snprintf(w, sizeof w, "blk.%d.ffn_down.weight", il);
    snprintf(b, sizeof b, "blk.%d.ffn_down.bias", il);
    if (load_linear_named(ld, &L->down, w, b, F, E) != 0) return -1;
    snprintf(w, sizeof w, "blk.%d.layer_output_norm.weight", il);
    snprintf(b, sizeof b, "blk.%d.layer_output_norm.bias", il);
    if (!(L->out_norm_g = load_floats(ld, w, E, 1))) return -1;
    if (!(L->out_norm_b = load_floats(ld, b, E, 1))) return -1;
    return 0;
}

static int load_rank_head(loader *ld) {
    emb_model *m = ld->m;
    const int64_t E = ld->hp->n_embd;
    const emb_tensor *t = NULL;
    int r = find_tensor(ld, "cls.weight", &t);
    if (r < 0) return -1;
    if (r == 1) {
        if (check_shape(ld, t, E, E) != 0 || load_linear(ld, &m->pooler, t, "cls.bias", 1) != 0)
            return -1;
        m->has_pooler = 1;
    }
    r = find_tensor(ld, "cls.output.weight", &t);
    if (r < 0) return -1;
    m->n_labels = (int32_t)E;
    if (r == 1) {
        /* [E, n_labels]; a one-label head may be stored 1-D as [E], which reads as [E, 1]. */
        if (t->ne[1] > EMB_MAX_LABELS) {
            emb_set_err(ld->err, ld->err_len, "tensor %s: %lld labels, at most %d", t->name,
                    (long long)t->ne[1], EMB_MAX_LABELS);
            return -1;
        }
        if (check_shape(ld, t, E, t->ne[1]) != 0 ||
            load_linear(ld, &m->cls_out, t, "cls.output.bias", 1) != 0)
            return -1;
        m->has_cls_out = 1;
        m->n_labels = (int32_t)t->ne[1];
    }
    m->out_dim = m->n_labels;
    return 0;
}

static int load_splade_head(loader *ld, const emb_tensor *tok) {
    emb_model *m = ld->m;
    const int64_t E = ld->hp->n_embd, V = ld->hp->n_vocab;
    if (load_linear_named(ld, &m->mlm_dense, "mlm.dense.weight", "mlm.dense.bias", E, E) != 0)
        return -1;
    if (!(m->mlm_norm_g = load_floats(ld, "mlm.norm.weight", E, 1))) return -1;
    if (!(m->mlm_norm_b = load_floats(ld, "mlm.norm.bias", E, 1))) return -1;
    const emb_tensor *dec = NULL;
    const int r = find_tensor(ld, "mlm.decoder.weight", &dec);
    if (r < 0) return -1;
    if (r == 1 && check_shape(ld, dec, E, V) != 0) return -1;
    /* absent: the decoder is tied to the token embeddings */
    if (load_linear(ld, &m->decoder, r == 1 ? dec : tok, "mlm.bias", 0) != 0) return -1;
    m->out_dim = (int32_t)V;
    return 0;
}

static int check_hparams(const emb_hparams *hp, char *err, size_t err_len) {
#define HP_RANGE(field, lo, hi)                                                                \
    if (hp->field < (lo) || hp->field > (hi)) {                                                \
        emb_set_err(err, err_len, "hparams: " #field " = %lld outside %lld..%lld",               \
                (long long)hp->field, (long long)(lo), (long long)(hi));                       \
        return -1;                                                                             \
    }
    HP_RANGE(n_vocab, 1, EMB_MAX_VOCAB)
    HP_RANGE(n_ctx, 1, EMB_MAX_CTX)
    HP_RANGE(n_embd, 1, EMB_MAX_EMBD)
    HP_RANGE(n_head, 1, EMB_MAX_HEAD)
    HP_RANGE(n_layer, 1, EMB_MAX_LAYER)
    HP_RANGE(n_ff, 1, EMB_MAX_FF)
    HP_RANGE(n_token_types, 0, EMB_MAX_TOKEN_TYPES)
    HP_RANGE(pooling, EMB_POOL_NONE, EMB_POOL_RANK)
    HP_RANGE(head, EMB_HEAD_EMBED, EMB_HEAD_SPLADE)
    HP_RANGE(weight_mode, EMB_WEIGHTS_AUTO, EMB_WEIGHTS_BLOCKS)
#undef HP_RANGE
    if (hp->n_embd % hp->n_head != 0) {
        emb_set_err(err, err_len, "hparams: n_embd %d is not divisible by n_head %d", hp->n_embd,
                hp->n_head);
        return -1;
    }
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f)) {
        emb_set_err(err, err_len, "hparams: norm_eps %g outside (0, 1)", (double)hp->norm_eps);
        return -1;
    }
    if (hp->head == EMB_HEAD_RANK && hp->pooling != EMB_POOL_RANK && hp->pooling != EMB_POOL_CLS) {
        emb_set_err(err, err_len, "hparams: the rank head needs rank (or cls) pooling, not %d",
                hp->pooling);
        return -1;
    }
    if (hp->pooling == EMB_POOL_RANK && hp->head != EMB_HEAD_RANK) {
        emb_set_err(err, err_len, "hparams: rank pooling needs the rank head");
        return -1;
    }
    return 0;
}

emb_model *emb_model_load(const emb_hparams *hp, const emb_tensor *tensors, int32_t n_tensors,
                          char *err, size_t err_len) {
    if (!hp || (!tensors && n_tensors != 0) || n_tensors < 0) {
        emb_set_err(err, err_len, "emb_model_load: NULL hparams or tensor table");
        return NULL;
    }
    if (check_hparams(hp, err, err_len) != 0) return NULL;
    emb_model *m = calloc(1, sizeof *m);
    if (!m) {
        emb_set_err(err, err_len, "emb_model_load: out of memory");
        return NULL;
    }
    m->hp = *hp;
    m->bytes = sizeof *m;
    loader ld = {hp, tensors, n_tensors, err, err_len, m};
    const int64_t E = hp->n_embd;

    const emb_tensor *tok = require(&ld, "token_embd.weight", E, hp->n_vocab);
    if (!tok) goto fail;
    const emb_type_traits *tr = emb_get_type_traits(tok->type);
    if (!tr || !tr->to_float) {
        emb_set_err(err, err_len, "tensor token_embd.weight: no dequantisation for type %s",
                emb_type_name(tok->type));
        goto fail;
    }
    m->tok_type = tok->type;
    m->tok_row_bytes = emb_row_bytes(tok->type, E);
    {
        /* One mapping for everything the model keeps (see emb_arena); the bound is generous, only
           the used part is ever touched and the rest is returned after loading. */
        int64_t cap = 0;
        for (int32_t i = 0; i < n_tensors; i++) {
            const int64_t b = tensor_bound(&tensors[i]);
            if (b == 0 || cap > INT64_MAX / 2 - b) {
                cap = 0;
                break;
            }
            cap += b;
        }
        if (cap > 0 && (uint64_t)cap < (uint64_t)SIZE_MAX / 2) emb_arena_init(&m->arena, (size_t)cap);
    }
    prefault_tensors(tensors, n_tensors);
    if (!(m->tok_embd = model_alloc(m, (int64_t)tok->size))) {
        emb_set_err(err, err_len, "tensor token_embd.weight: out of memory");
        goto fail;
    }
    memcpy(m->tok_embd, tok->data, (size_t)tok->size);
    m->bytes += (int64_t)tok->size;

    if (!(m->pos_embd = load_floats(&ld, "position_embd.weight", E, hp->n_ctx))) goto fail;
    if (hp->n_token_types > 0 &&
        !(m->type_embd = load_floats(&ld, "token_types.weight", E, hp->n_token_types)))
        goto fail;
    if (!(m->embd_norm_g = load_floats(&ld, "token_embd_norm.weight", E, 1))) goto fail;
    if (!(m->embd_norm_b = load_floats(&ld, "token_embd_norm.bias", E, 1))) goto fail;

    if (!(m->layers = calloc((size_t)hp->n_layer, sizeof(emb_layer)))) {
        emb_set_err(err, err_len, "emb_model_load: out of memory");
        goto fail;
    }
    m->bytes += hp->n_layer * (int64_t)sizeof(emb_layer);
    for (int il = 0; il < hp->n_layer; il++)
        if (load_layer(&ld, il) != 0) goto fail;

    m->out_dim = (int32_t)E;
    if (hp->head == EMB_HEAD_RANK && load_rank_head(&ld) != 0) goto fail;
    if (hp->head == EMB_HEAD_SPLADE && load_splade_head(&ld, tok) != 0) goto fail;
    emb_arena_trim(&m->arena);
    return m;
fail:
    emb_model_free(m);
    return NULL;
}

void emb_model_free(emb_model *m) {
    if (!m) return;
    model_free_ptr(m, m->tok_embd);
    model_free_ptr(m, m->pos_embd);
    model_free_ptr(m, m->type_embd);
    model_free_ptr(m, m->embd_norm_g);
    model_free_ptr(m, m->embd_norm_b);
    if (m->layers) {
        for (int il = 0; il < m->hp.n_layer; il++) {
            emb_layer *L = &m->layers[il];
            emb_matrix_free(&L->qkv);
            emb_matrix_free(&L->out);
            emb_matrix_free(&L->up);
            emb_matrix_free(&L->down);
            model_free_ptr(m, L->attn_norm_g);
            model_free_ptr(m, L->attn_norm_b);
            model_free_ptr(m, L->out_norm_g);
            model_free_ptr(m, L->out_norm_b);
        }
        free(m->layers);
    }
    emb_matrix_free(&m->pooler);
    emb_matrix_free(&m->cls_out);
    emb_matrix_free(&m->mlm_dense);
    emb_matrix_free(&m->decoder);
    model_free_ptr(m, m->mlm_norm_g);
    model_free_ptr(m, m->mlm_norm_b);
    emb_arena_free(&m->arena);
    free(m);
}

int32_t emb_model_output_dim(const emb_model *m) { return m ? m->out_dim : 0; }

int64_t emb_model_bytes(const emb_model *m) { return m ? m->bytes : 0; }
