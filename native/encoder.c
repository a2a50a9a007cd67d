/*
 * encoder.c - the forward pass: emb_ctx (scratch that only grows) and emb_encode.
 *
 * The batch is packed (sequences end to end, no padding). Every per-token step (embeddings,
 * matrix products, LayerNorm, GELU) runs over all tokens of the batch at once; only attention
 * looks at sequence boundaries.
 *
 * Everything in a layer but reading the keys and values of attention is row-local: a token's
 * attention output needs its own query row (and its sequence's K and V), its output projection,
 * LayerNorms and FFN only its own row. So each worker owns a contiguous block of rows and carries
 * them, in one pool run per layer, through attention (all heads of its query rows), the layer's
 * tail and the next layer's QKV product; the run's end is the only barrier, after which every
 * row's K and V are written. QKV alternates between two buffers so that a worker writing the next
 * layer's cannot overwrite keys another worker is still reading. Each worker's products run on its
 * own slice of the matmul scratch. A group with fewer than ROW_LOCAL_MIN rows per worker goes step
 * by step instead, every product split over the workers by columns and attention by (sequence,
 * head).
 *
 * The row-local split follows the workers' speeds (plan_rows, learn_rows): on a shared machine one
 * vCPU is often slower than the other for seconds at a time, and with one barrier a layer the
 * faster worker would wait for it at every layer. Which worker computes a row never changes its
 * result.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"
#include "gemm.h"
#include "model.h"
#include "ops.h"
#include "pool.h"
#include "quants.h"

/* Tokens per FFN step (up, GELU, down): 288 x 1536 floats is 1.8 MB, cache-resident between the
   steps; a multiple of the matmul's row block (EMB_MC = 96). Any value gives the same results.
   FFN_ROWS is the same for one worker's rows in the row-local path (see ffn_chunks). */
#define FFN_CHUNK 288
#define FFN_ROWS 96
/* Rows per worker below which a group takes the step-by-step path, each product split over the
   workers by columns (a worker with a few rows would read all the weights for little work). */
#define ROW_LOCAL_MIN 4
/* Workers whose row-local shares follow their speeds (more run with an even split). A share may
   grow to SHARE_GROWTH times the even one, so each worker's slice of the matmul scratch is sized
   for that (share_cap). */
#define SPLIT_MAX_WORKERS 16
#define SHARE_GROWTH 1.5
/* Tokens per SPLADE decoder step: logits scratch is SPLADE_CHUNK x n_vocab. */
#define SPLADE_CHUNK 64

/* Most tokens of one pass through the layers: a batch is run as consecutive groups of whole
   sequences of at most this many tokens (a longer sequence alone). The per-layer scratch (work,
   mm_scratch) is then bounded by max(ENC_CHUNK, longest sequence) rows instead of growing with
   the batch, and each group's activations stay in cache between the steps of a layer. */
#define ENC_CHUNK 384

struct emb_ctx {
    const emb_model *m;
    int64_t cap_tokens;  /* token rows of hidden, pos, seq_of, seq_off, head_x */
    int64_t cap_rows;    /* rows of work and mm_scratch (one group of sequences) */
    float *hidden;       /* [T][E] */
    /* qkv, attn and ff share one allocation, `work`. */
    float *work;         /* [R][7E + F], R = cap_rows */
    float *qkv;          /* [R][3E], in work */
    float *qkv2;         /* [R][3E], in work after qkv: the odd layers' QKV on the row-local path */
    float *attn;         /* [R][E], in work after qkv */
    float *ff;           /* [R][F], in work after attn (workers write it while others still read attn) */
    int32_t *pos;        /* [T] position of each token in its sequence */
    int32_t *seq_of;     /* [T] sequence of each token */
    int64_t *seq_off;    /* [T + 1] first token of each sequence */
    float *head_x;       /* SPLADE: [SPLADE_CHUNK][E]; rank: [T][E] */
    float *logits;       /* SPLADE: [SPLADE_CHUNK][V] */
    void *mm_scratch;    /* emb_matmul scratch: R rows, or cap_workers slices of mm_slice bytes */
    size_t mm_scratch_bytes, mm_slice;
    float *scores;      /* per worker emb_attend's scratch for cap_len tokens: scores_stride floats */
    int64_t cap_len, cap_workers, scores_stride;
    /* The row-local split: each worker's fraction of a group's rows (split_nth workers; 0 before the
       first run), and how long each worker's share of the last pool run took (written by whoever
       ran the share, read only for shares that had rows in that run). */
    int split_nth;
    int split_cpu; /* emb_pool_caller_cpu when the fractions were last planned */
    double split_frac[SPLIT_MAX_WORKERS];
    double share_secs[SPLIT_MAX_WORKERS];
    double split_lag[SPLIT_MAX_WORKERS]; /* smoothed: how much later than the mean each share ends */
};

/* 64-byte aligned allocation of n elements of size sz; NULL on overflow or failure. */
static void *alloc_aligned(int64_t n, size_t sz) {
    if (n <= 0) n = 1;
    if ((uint64_t)n > (SIZE_MAX - 64) / sz) return NULL;
    const size_t bytes = ((size_t)n * sz + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes);
}

emb_ctx *emb_ctx_create(const emb_model *m, char *err, size_t err_len) {
    if (!m) {
        emb_set_err(err, err_len, "emb_ctx_create: NULL model");
        return NULL;
    }
    emb_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        emb_set_err(err, err_len, "emb_ctx_create: out of memory");
        return NULL;
    }
    c->m = m;
    return c;
}

static void free_row_buffers(emb_ctx *c) {
    free(c->work);
    free(c->mm_scratch);
    c->work = c->qkv = c->qkv2 = c->attn = c->ff = NULL;
    c->mm_scratch = NULL;
    c->mm_scratch_bytes = c->mm_slice = 0;
    c->cap_rows = 0;
}

static void free_token_buffers(emb_ctx *c) {
    free(c->hidden);
    free(c->pos);
    free(c->seq_of);
    free(c->seq_off);
    free(c->head_x);
    free(c->logits);
    c->hidden = c->head_x = c->logits = NULL;
    c->pos = c->seq_of = NULL;
    c->seq_off = NULL;
    c->cap_tokens = 0;
}

void emb_ctx_free(emb_ctx *c) {
    if (!c) return;
    free_token_buffers(c);
    free_row_buffers(c);
    free(c->scores);
    free(c);
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Scratch emb_matmul needs over every matrix of the model for up to M rows. */
static size_t model_scratch_bytes(const emb_model *m, int64_t M) {
    size_t s = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const emb_layer *L = &m->layers[il];
        s = max_size(s, emb_matmul_scratch_bytes(&L->qkv, M));
        s = max_size(s, emb_matmul_scratch_bytes(&L->out, M));
        s = max_size(s, emb_matmul_scratch_bytes(&L->up, M));
        s = max_size(s, emb_matmul_scratch_bytes(&L->down, M));
    }
    if (m->has_pooler) s = max_size(s, emb_matmul_scratch_bytes(&m->pooler, M));
    if (m->has_cls_out) s = max_size(s, emb_matmul_scratch_bytes(&m->cls_out, M));
    if (m->hp.head == EMB_HEAD_SPLADE) {
        const int64_t Ms = M < SPLADE_CHUNK ? M : SPLADE_CHUNK;
        s = max_size(s, emb_matmul_scratch_bytes(&m->mlm_dense, Ms));
        s = max_size(s, emb_matmul_scratch_bytes(&m->decoder, Ms));
    }
    return s;
}

/* Rows of the per-layer scratch for a batch of T tokens, n_seqs sequences, the longest max_len:
   one group of sequences (see ENC_CHUNK); the rank head also runs its products over n_seqs rows. */
static int64_t rows_needed(const emb_model *m, int64_t T, int64_t n_seqs, int64_t max_len) {
    int64_t R = max_len > ENC_CHUNK ? max_len : ENC_CHUNK;
    if (R > T) R = T;
    if (m->hp.head == EMB_HEAD_RANK && n_seqs > R) R = n_seqs;
    return R;
}

/* The most rows one worker's row-local share of a group of R rows may hold: SHARE_GROWTH times an
   even share, and one more for rounding. */
static int64_t share_cap(int64_t R, int64_t nth) {
    const int64_t cap = (int64_t)(SHARE_GROWTH * (double)R / (double)nth) + 1;
    return cap < R ? cap : R;
}

/* Matmul scratch for R rows: enough for products over all R rows, and for nth workers each running
   products over its own share (at most share_cap rows) on a slice of *slice bytes. SIZE_MAX on
   overflow. */
static size_t scratch_for(const emb_model *m, int64_t R, int64_t nth, size_t *slice) {
    const size_t whole = model_scratch_bytes(m, R);
    const size_t part = model_scratch_bytes(m, share_cap(R, nth));
    if (whole == SIZE_MAX || part == SIZE_MAX || part > SIZE_MAX / 2) return SIZE_MAX;
    *slice = (part + 63) & ~(size_t)63;
    if ((uint64_t)*slice > (uint64_t)(SIZE_MAX / 2) / (uint64_t)nth) return SIZE_MAX;
    return max_size(whole, *slice * (size_t)nth);
}

/* Grows the scratch to hold T tokens, R rows per group, sequences up to max_len and nth workers.
   Allocates nothing when the batch fits what an earlier batch needed. */
static int ctx_reserve(emb_ctx *c, int64_t T, int64_t R, int64_t max_len, int64_t nth, char *err,
                       size_t err_len) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, F = m->hp.n_ff, V = m->hp.n_vocab;
    size_t slice = 0;
    const int64_t rows = R > c->cap_rows ? R : c->cap_rows;
    const size_t mm = scratch_for(m, rows, nth, &slice);
    if (R > c->cap_rows || mm > c->mm_scratch_bytes || slice > c->mm_slice) {
        free_row_buffers(c);
        c->work = alloc_aligned(rows * (7 * E + F), sizeof(float));
        c->qkv = c->work;
        c->qkv2 = c->work ? c->work + rows * 3 * E : NULL;
        c->attn = c->work ? c->work + rows * 6 * E : NULL;
        c->ff = c->work ? c->work + rows * 7 * E : NULL;
        int ok = c->work != NULL && mm != SIZE_MAX;
        if (ok && mm > 0) {
            c->mm_scratch = alloc_aligned((int64_t)((mm + 63) / 64), 64);
            ok = c->mm_scratch != NULL;
        }
        if (!ok) {
            free_row_buffers(c);
            emb_set_err(err, err_len, "emb_encode: out of memory for %lld rows of layer scratch",
                    (long long)R);
            return -1;
        }
        c->mm_scratch_bytes = mm;
        c->mm_slice = slice;
        c->cap_rows = rows;
    }
    if (T > c->cap_tokens) {
        free_token_buffers(c);
        c->hidden = alloc_aligned(T * E, sizeof(float));
        c->pos = alloc_aligned(T, sizeof(int32_t));
        c->seq_of = alloc_aligned(T, sizeof(int32_t));
        c->seq_off = alloc_aligned(T + 1, sizeof(int64_t));
        int ok = c->hidden && c->pos && c->seq_of && c->seq_off;
        if (m->hp.head == EMB_HEAD_SPLADE) {
            c->head_x = alloc_aligned(SPLADE_CHUNK * E, sizeof(float));
            c->logits = alloc_aligned(SPLADE_CHUNK * V, sizeof(float));
            ok = ok && c->head_x && c->logits;
        } else if (m->hp.head == EMB_HEAD_RANK) {
            c->head_x = alloc_aligned(T * E, sizeof(float));
            ok = ok && c->head_x;
        }
        if (!ok) {
            free_token_buffers(c);
            emb_set_err(err, err_len, "emb_encode: out of memory for a batch of %lld tokens",
                    (long long)T);
            return -1;
        }
        c->cap_tokens = T;
    }
    if (max_len > c->cap_len || nth > c->cap_workers) {
        const int64_t len = max_len > c->cap_len ? max_len : c->cap_len;
        const int64_t w = nth > c->cap_workers ? nth : c->cap_workers;
        const int64_t stride = emb_attend_scratch(len, c->m->hp.n_embd / c->m->hp.n_head);
        free(c->scores);
        c->scores = alloc_aligned(w * stride, sizeof(float));
        if (!c->scores) {
            c->cap_len = c->cap_workers = c->scores_stride = 0;
            emb_set_err(err, err_len, "emb_encode: out of memory for attention over %lld tokens",
                    (long long)max_len);
            return -1;
        }
        c->cap_len = len;
        c->cap_workers = w;
        c->scores_stride = stride;
    }
    return 0;
}

/* Checks the batch; returns the total token count (and the longest sequence), or -1 with err. */
static int64_t check_batch(const emb_model *m, const emb_batch *b, int64_t *max_len, char *err,
                           size_t err_len) {
    if (!m || !b) {
        emb_set_err(err, err_len, "batch: NULL model or batch");
        return -1;
    }
    if (b->n_seqs < 1) {
        emb_set_err(err, err_len, "batch: n_seqs = %d, need at least 1", b->n_seqs);
        return -1;
    }
    if (!b->seq_lens || !b->tokens) {
        emb_set_err(err, err_len, "batch: NULL seq_lens or tokens");
        return -1;
    }
    int64_t T = 0, longest = 0;
    for (int32_t s = 0; s < b->n_seqs; s++) {
        const int32_t len = b->seq_lens[s];
        if (len < 1 || len > m->hp.n_ctx) {
            emb_set_err(err, err_len, "batch: sequence %d has length %d, must be 1..%d", s, len,
                    m->hp.n_ctx);
            return -1;
        }
        T += len; /* cannot overflow: checked against the cap at every step */
        if (T > EMB_MAX_BATCH_TOKENS) {
            emb_set_err(err, err_len, "batch: more than %d tokens", EMB_MAX_BATCH_TOKENS);
            return -1;
        }
        if (len > longest) longest = len;
    }
    for (int64_t t = 0; t < T; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= m->hp.n_vocab) {
            emb_set_err(err, err_len, "batch: token %lld has id %d, must be 0..%d", (long long)t,
                    b->tokens[t], m->hp.n_vocab - 1);
            return -1;
        }
    }
    if (b->token_types) {
        /* A model without a token type table accepts only type 0 (meaning: nothing to add). */
        const int32_t n_types = m->hp.n_token_types > 0 ? m->hp.n_token_types : 1;
        for (int64_t t = 0; t < T; t++) {
            if (b->token_types[t] < 0 || b->token_types[t] >= n_types) {
                emb_set_err(err, err_len, "batch: token %lld has type %d, must be 0..%d",
                        (long long)t, b->token_types[t], n_types - 1);
                return -1;
            }
        }
    }
    if (max_len) *max_len = longest;
    return T;
}

static int64_t output_len(const emb_model *m, const emb_batch *b, int64_t T) {
    if (m->hp.head == EMB_HEAD_EMBED && m->hp.pooling == EMB_POOL_NONE) return T * m->out_dim;
    return (int64_t)b->n_seqs * m->out_dim;
}

int64_t emb_output_len(const emb_model *m, const emb_batch *b) {
    const int64_t T = check_batch(m, b, NULL, NULL, 0);
    return T < 0 ? -1 : output_len(m, b, T);
}

/* ---- parallel steps ------------------------------------------------------------------------ */

typedef struct {
    const emb_model *m;
    const emb_batch *b;
    const int32_t *pos;
    emb_to_float_fn to_float;
    float *hidden;
    int64_t T;
} embed_task;

/* token + position + token type embeddings, then LayerNorm, for this worker's tokens */
static void run_embed(void *arg, int ith, int nth) {
    const embed_task *a = arg;
    const emb_model *m = a->m;
    const int64_t E = m->hp.n_embd;
    int64_t lo, hi;
    emb_split(a->T, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *h = a->hidden + t * E;
        a->to_float(m->tok_embd + (int64_t)a->b->tokens[t] * m->tok_row_bytes, h, E);
        emb_axpy(h, 1.0f, m->pos_embd + (int64_t)a->pos[t] * E, E);
        if (m->type_embd) {
            const int32_t tt = a->b->token_types ? a->b->token_types[t] : 0;
            emb_axpy(h, 1.0f, m->type_embd + (int64_t)tt * E, E);
        }
        emb_layernorm(h, h, m->embd_norm_g, m->embd_norm_b, E, m->hp.norm_eps);
    }
}

typedef struct {
    float *x;
    const float *g, *b;
    int64_t rows, n;
    float eps;
} norm_task;

static void run_norm(void *arg, int ith, int nth) {
    const norm_task *a = arg;
    int64_t lo, hi;
    emb_split(a->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float *row = a->x + r * a->n;
        emb_layernorm(row, row, a->g, a->b, a->n, a->eps);
    }
}

/* Floats up to which a per-row step runs on the caller alone: LayerNorm of ~20 rows of 384 takes
   about as long as one pool round trip (publish, wake, wait), and short queries issue several such
   steps per layer. Rows are independent, so who runs them does not change the results. */
#define SERIAL_ROW_FLOATS 8192

static void layernorm_rows(emb_pool *p, float *x, const float *g, const float *b, int64_t rows,
                           int64_t n, float eps) {
    norm_task a = {x, g, b, rows, n, eps};
    if (rows * n <= SERIAL_ROW_FLOATS)
        run_norm(&a, 0, 1);
    else
        emb_pool_run(p, run_norm, &a);
}

typedef struct {
    const float *qkv; /* [T][3E] */
    float *out;       /* [T][E] */
    const int64_t *seq_off; /* the group's first sequence; offsets relative to base */
    int64_t base;
    int64_t n_units; /* sequences of the group * n_head */
    int64_t n_head, hd, E;
    float scale;
    float *scores;
    int64_t scores_stride; /* floats per worker */
} attn_task;

/* Each worker computes the (sequence, head) units of its share. A unit's result does not depend
   on which worker computes it, so outputs are identical for any thread count. Shares used to be
   claimed from an atomic counter (heads of one sequence alternating between threads); static
   shares that follow row ownership measured 28.1k -> 31.3k tok/s at 2 threads (bench-engine,
   corpus order, alternating runs), at the cost of no rebalancing when lengths differ. */
static void run_attention(void *arg, int ith, int nth) {
    attn_task *a = arg;
    float *S = a->scores + ith * a->scores_stride;
    const int64_t ld = 3 * a->E;
    /* Static shares: worker ith takes the sequences whose first row lies in its row share of the
       matmuls (emb_split over rows, as emb_matmul splits them), so Q, K and V are mostly read by
       the core that wrote them. */
    const int64_t n_seqs = a->n_units / a->n_head;
    const int64_t rows = a->seq_off[n_seqs] - a->seq_off[0];
    int64_t r_lo, r_hi;
    emb_split(rows, ith, nth, &r_lo, &r_hi);
    /* Fewer sequences than workers (a single short query): row ownership would give all of them
       to worker 0, so split the (sequence, head) units evenly instead. */
    const int by_units = n_seqs < nth;
    int64_t u_lo = 0, u_hi = a->n_units;
    if (by_units) emb_split(a->n_units, ith, nth, &u_lo, &u_hi);
    for (int64_t u = u_lo; u < u_hi; u++) {
        const int64_t s = u / a->n_head, h = u % a->n_head;
        const int64_t first = a->seq_off[s] - a->seq_off[0];
        if (!by_units && first < r_lo) continue;
        if (!by_units && first >= r_hi) break;
        const int64_t off = a->seq_off[s] - a->base, L = a->seq_off[s + 1] - a->seq_off[s];
        const float *Q = a->qkv + off * ld + h * a->hd;
        emb_attend(L, L, a->hd, a->scale, Q, ld, Q + a->E, ld, Q + 2 * a->E, ld, a->out + off * a->E + h * a->hd,
                   a->E, S);
    }
}

typedef struct {
    float *out;          /* [n_seqs][V]: running max of logits, floored at 0 */
    const float *logits; /* [rows][V] */
    const int32_t *seq_of;
    int64_t rows, V;
} splade_task;

/* Max-reduces a chunk's logits into the sequences' rows, split over vocabulary columns. */
static void run_splade_max(void *arg, int ith, int nth) {
    const splade_task *a = arg;
    int64_t lo, hi;
    emb_split(a->V, ith, nth, &lo, &hi);
    for (int64_t r = 0; r < a->rows; r++) {
        const float *l = a->logits + r * a->V;
        float *o = a->out + (int64_t)a->seq_of[r] * a->V;
        for (int64_t v = lo; v < hi; v++)
            if (l[v] > o[v]) o[v] = l[v];
    }
}

typedef struct {
    float *x;
    int64_t n;
} log1p_task;

static void run_log1p(void *arg, int ith, int nth) {
    const log1p_task *a = arg;
    int64_t lo, hi;
    emb_split(a->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) a->x[i] = log1pf(a->x[i]);
}

/* ---- heads --------------------------------------------------------------------------------- */

static void l2_normalize_rows(float *x, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * n;
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)v[i] * v[i];
        if (ss > 0) {
            const float inv = (float)(1.0 / sqrt(ss));
            for (int64_t i = 0; i < n; i++) v[i] *= inv;
        }
    }
}

static void pool_embed(const emb_ctx *c, const emb_batch *b, int64_t T, float *out) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd;
    if (m->hp.pooling == EMB_POOL_NONE) {
        memcpy(out, c->hidden, (size_t)(T * E) * sizeof(float));
        if (b->normalize) l2_normalize_rows(out, T, E);
        return;
    }
    for (int32_t s = 0; s < b->n_seqs; s++) {
        const int64_t off = c->seq_off[s], L = c->seq_off[s + 1] - off;
        float *o = out + (int64_t)s * E;
        switch (m->hp.pooling) {
        case EMB_POOL_MEAN:
            memset(o, 0, (size_t)E * sizeof(float));
            for (int64_t t = 0; t < L; t++) emb_axpy(o, 1.0f, c->hidden + (off + t) * E, E);
            for (int64_t i = 0; i < E; i++) o[i] /= (float)L;
            break;
        case EMB_POOL_LAST:
            memcpy(o, c->hidden + (off + L - 1) * E, (size_t)E * sizeof(float));
            break;
        default: /* CLS */
            memcpy(o, c->hidden + off * E, (size_t)E * sizeof(float));
            break;
        }
    }
    if (b->normalize) l2_normalize_rows(out, b->n_seqs, E);
}

static void head_rank(emb_ctx *c, emb_pool *p, const emb_batch *b, float *out) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, S = b->n_seqs;
    /* CLS states, then the pooler (dense + tanh) into attn, then the label projection. */
    for (int64_t s = 0; s < S; s++)
        memcpy(c->head_x + s * E, c->hidden + c->seq_off[s] * E, (size_t)E * sizeof(float));
    const float *x = c->head_x;
    if (m->has_pooler) {
        emb_matmul(p, &m->pooler, c->head_x, S, c->attn, NULL, EMB_EPI_TANH, c->mm_scratch);
        x = c->attn;
    }
    if (m->has_cls_out)
        emb_matmul(p, &m->cls_out, x, S, out, NULL, EMB_EPI_NONE, c->mm_scratch);
    else
        memcpy(out, x, (size_t)(S * E) * sizeof(float));
}

static void head_splade(emb_ctx *c, emb_pool *p, const emb_batch *b, int64_t T, float *out) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    /* log(1 + relu(x)) is non-decreasing, so the max over tokens is taken on the logits (floored
       at 0) and the log applied once per output. */
    memset(out, 0, (size_t)((int64_t)b->n_seqs * V) * sizeof(float));
    for (int64_t t0 = 0; t0 < T; t0 += SPLADE_CHUNK) {
        const int64_t rows = T - t0 < SPLADE_CHUNK ? T - t0 : SPLADE_CHUNK;
        emb_matmul(p, &m->mlm_dense, c->hidden + t0 * E, rows, c->head_x, NULL, EMB_EPI_GELU,
                   c->mm_scratch);
        layernorm_rows(p, c->head_x, m->mlm_norm_g, m->mlm_norm_b, rows, E, m->hp.norm_eps);
        emb_matmul(p, &m->decoder, c->head_x, rows, c->logits, NULL, EMB_EPI_NONE, c->mm_scratch);
        splade_task st = {out, c->logits, c->seq_of + t0, rows, V};
        emb_pool_run(p, run_splade_max, &st);
    }
    log1p_task lt = {out, (int64_t)b->n_seqs * V};
    emb_pool_run(p, run_log1p, &lt);
}

/* ---- emb_encode ---------------------------------------------------------------------------- */

/* Attention of the group's query rows [r0, r1) (relative to its first row), every head, into
   attn: each row attends over its own sequence's keys and values in qkv. S is the worker's
   emb_attend scratch. A row's result does not depend on which rows share the call. */
static void attend_rows(const emb_ctx *c, const float *qkv, int32_t s0, int32_t s1, int64_t r0, int64_t r1,
                        float *S) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, H = m->hp.n_head, hd = E / H, ld = 3 * E, base = c->seq_off[s0];
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t s = s0; s < s1; s++) {
        const int64_t off = c->seq_off[s] - base, L = c->seq_off[s + 1] - c->seq_off[s];
        if (off + L <= r0) continue;
        if (off >= r1) break;
        const int64_t q_lo = off > r0 ? off : r0, q_hi = off + L < r1 ? off + L : r1;
        for (int64_t h = 0; h < H; h++) {
            const float *K = qkv + off * ld + E + h * hd, *V = qkv + off * ld + 2 * E + h * hd;
            emb_attend(q_hi - q_lo, L, hd, scale, qkv + q_lo * ld + h * hd, ld, K, ld, V, ld,
                       c->attn + q_lo * E + h * hd, E, S);
        }
    }
}

/* One worker's rows [r0, r1) of a group through one pool run: attention over qkv_in and the tail of
   layer `tail` (output projection + residual, LayerNorm, FFN in FFN_ROWS blocks + residual,
   LayerNorm), then the QKV product of layer `next` into qkv_out; either layer may be NULL. Products
   run single-threaded on the worker's slice of the matmul scratch. */
typedef struct {
    emb_ctx *c;
    int32_t s0, s1;
    const emb_layer *tail, *next;
    const float *qkv_in;
    float *qkv_out;
    float *hid; /* the group's first row of hidden */
    int64_t R;
    int planned;                        /* 1: worker ith's rows are [cut[ith], cut[ith + 1]) */
    int64_t cut[SPLIT_MAX_WORKERS + 1]; /* else an even split */
} rows_task;

static double now_secs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Cuts the group's rows by the workers' fractions (even at first, or for more workers than
   SPLIT_MAX_WORKERS). A share over share_cap, which the fractions' bounds in learn_rows only allow
   through rounding, falls back to the even split. The speeds learnt are the CPUs', not the shares':
   when the caller (share 0) is found on the other of two CPUs, the pool has moved the worker to the
   one it left, so the two fractions swap. (A server's calls come from whichever thread the Go
   runtime runs them on: without the swap the HTTP short-query p99 was worse than with an even
   split in 6 of 8 alternating runs, with it in 8 of 16.) cpu is emb_pool_caller_cpu's answer. */
static void plan_rows(emb_ctx *c, rows_task *rt, int nth, int cpu) {
    rt->planned = 0;
    if (nth > SPLIT_MAX_WORKERS) return;
    if (c->split_nth != nth) {
        for (int i = 0; i < nth; i++) {
            c->split_frac[i] = 1.0 / nth;
            c->split_lag[i] = 0.0;
        }
        c->split_nth = nth;
        c->split_cpu = cpu;
    } else if (cpu != c->split_cpu) {
        if (nth == 2 && cpu >= 0 && c->split_cpu >= 0) {
            const double f = c->split_frac[0], l = c->split_lag[0];
            c->split_frac[0] = c->split_frac[1];
            c->split_lag[0] = c->split_lag[1];
            c->split_frac[1] = f;
            c->split_lag[1] = l;
        }
        c->split_cpu = cpu;
    }
    const int64_t R = rt->R, cap = share_cap(R, nth);
    double acc = 0.0;
    rt->cut[0] = 0;
    for (int i = 0; i < nth; i++) {
        acc += c->split_frac[i];
        int64_t cut = i + 1 < nth ? (int64_t)(acc * (double)R + 0.5) : R;
        if (cut < rt->cut[i]) cut = rt->cut[i];
        if (cut > R) cut = R;
        if (cut - rt->cut[i] > cap) return;
        rt->cut[i + 1] = cut;
    }
    rt->planned = 1;
}

/* After a pool run: each worker's lag (its share's time minus the mean share time, each run's
   sample clipped to two of its rows' time) is smoothed over runs; once the most lagging worker
   trails the least by more than one of its rows' time, one row's fraction moves from it to the
   other and the lags start again from zero. Moving a row at a time toward equal finishing times
   stays stable where a share's time is not proportional to its rows (a few rows' time is mostly
   reading the weights); the smoothing and the clipping keep a single slow run (an interrupt, the
   worker descheduled) from moving rows back and forth. Fractions stay within 1 / SHARE_GROWTH to
   SHARE_GROWTH times the even one. */
static void learn_rows(emb_ctx *c, const rows_task *rt, int nth) {
    if (!rt->planned || nth < 2) return;
    double mean = 0.0;
    int shares = 0;
    for (int i = 0; i < nth; i++) {
        if (rt->cut[i + 1] > rt->cut[i]) {
            mean += c->share_secs[i];
            shares++;
        }
    }
    if (shares < 2) return;
    mean /= shares;
    int slow = -1, fast = -1;
    for (int i = 0; i < nth; i++) {
        const int64_t rows = rt->cut[i + 1] - rt->cut[i];
        if (rows <= 0) continue;
        const double row_secs = c->share_secs[i] / (double)rows;
        double lag = c->share_secs[i] - mean;
        if (lag > 2 * row_secs) lag = 2 * row_secs;
        if (lag < -2 * row_secs) lag = -2 * row_secs;
        c->split_lag[i] = 0.75 * c->split_lag[i] + 0.25 * lag;
        if (slow < 0 || c->split_lag[i] > c->split_lag[slow]) slow = i;
        if (fast < 0 || c->split_lag[i] < c->split_lag[fast]) fast = i;
    }
    if (slow < 0 || slow == fast) return;
    const double slow_rows = (double)(rt->cut[slow + 1] - rt->cut[slow]);
    const double row_secs = (mean + c->split_lag[slow]) / slow_rows;
    if (c->split_lag[slow] - c->split_lag[fast] <= row_secs) return;
    const double step = 1.0 / (double)rt->R, even = 1.0 / nth;
    if (c->split_frac[slow] - step < even / SHARE_GROWTH || c->split_frac[fast] + step > even * SHARE_GROWTH) return;
    c->split_frac[slow] -= step;
    c->split_frac[fast] += step;
    for (int i = 0; i < nth; i++) c->split_lag[i] = 0.0;
}

void emb_ctx_set_split(emb_ctx *c, int nth, const double *frac) {
    if (!c || !frac || nth < 1 || nth > SPLIT_MAX_WORKERS) return;
    for (int i = 0; i < nth; i++) {
        c->split_frac[i] = frac[i];
        c->split_lag[i] = 0.0;
    }
    c->split_nth = nth;
    c->split_cpu = -1;
}

/* FFN chunks for a worker's n rows: even ones of at most FFN_ROWS rows, except that a worker with
   more than EMB_MATMUL_FEW_ROWS rows takes one chunk fewer when the chunks would be that small
   (then 97-160 rows a chunk): its products would otherwise run from the compact weights, made for
   short inputs, while the rest of its rows stream the I8 ones, and both would compete for the L3. */
static int64_t ffn_chunks(int64_t n) {
    int64_t chunks = (n + FFN_ROWS - 1) / FFN_ROWS;
    if (chunks > 1 && n / chunks <= EMB_MATMUL_FEW_ROWS) chunks--;
    return chunks;
}

static void run_rows(void *arg, int ith, int nth) {
    const rows_task *a = arg;
    emb_ctx *c = a->c;
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
    const float eps = m->hp.norm_eps;
    int64_t r0, r1;
    if (a->planned) {
        r0 = a->cut[ith];
        r1 = a->cut[ith + 1];
    } else {
        emb_split(a->R, ith, nth, &r0, &r1);
    }
    if (r1 <= r0) return;
    const double start = a->planned ? now_secs() : 0.0;
    void *scratch = (uint8_t *)c->mm_scratch + (size_t)ith * c->mm_slice;
    float *h = a->hid + r0 * E;
    const int64_t n = r1 - r0;
    if (a->tail) {
        const emb_layer *L = a->tail;
        attend_rows(c, a->qkv_in, a->s0, a->s1, r0, r1, c->scores + ith * c->scores_stride);
        emb_matmul(NULL, &L->out, c->attn + r0 * E, n, h, h, EMB_EPI_NONE, scratch);
        for (int64_t r = 0; r < n; r++) emb_layernorm(h + r * E, h + r * E, L->attn_norm_g, L->attn_norm_b, E, eps);
        const int64_t chunks = ffn_chunks(n);
        for (int ci = 0; ci < chunks; ci++) {
            int64_t f0, f1;
            emb_split(n, ci, (int)chunks, &f0, &f1);
            const int64_t rows = f1 - f0;
            float *ff = c->ff + (r0 + f0) * F;
            emb_matmul(NULL, &L->up, h + f0 * E, rows, ff, NULL, EMB_EPI_GELU, scratch);
            emb_matmul(NULL, &L->down, ff, rows, h + f0 * E, h + f0 * E, EMB_EPI_NONE, scratch);
        }
        for (int64_t r = 0; r < n; r++) emb_layernorm(h + r * E, h + r * E, L->out_norm_g, L->out_norm_b, E, eps);
    }
    if (a->next) emb_matmul(NULL, &a->next->qkv, h, n, a->qkv_out + r0 * 3 * E, NULL, EMB_EPI_NONE, scratch);
    if (a->planned) c->share_secs[ith] = now_secs() - start;
}

static void attention(emb_ctx *c, emb_pool *p, int32_t s0, int32_t s1) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd, H = m->hp.n_head;
    attn_task at = {.qkv = c->qkv,
                    .out = c->attn,
                    .seq_off = c->seq_off + s0,
                    .base = c->seq_off[s0],
                    .n_units = (int64_t)(s1 - s0) * H,
                    .n_head = H,
                    .hd = E / H,
                    .E = E,
                    .scale = 1.0f / sqrtf((float)(E / H)),
                    .scores = c->scores,
                    .scores_stride = c->scores_stride};
    emb_pool_run(p, run_attention, &at);
}

/* Every layer over sequences [s0, s1): rows seq_off[s0] .. seq_off[s1] of hidden, which must fit
   cap_rows (ctx_reserve made sure). */
static void run_layers(emb_ctx *c, emb_pool *p, int32_t s0, int32_t s1) {
    const emb_model *m = c->m;
    const int64_t E = m->hp.n_embd;
    const int64_t t0 = c->seq_off[s0], R = c->seq_off[s1] - t0;
    float *hid = c->hidden + t0 * E;
    const int nl = m->hp.n_layer;
    const int nth = emb_pool_threads(p);
    if (R >= (int64_t)ROW_LOCAL_MIN * nth) {
        float *const qkv[2] = {c->qkv, c->qkv2};
        rows_task rt = {.c = c, .s0 = s0, .s1 = s1, .next = &m->layers[0], .qkv_out = qkv[0], .hid = hid, .R = R};
        for (int il = -1; il < nl; il++) { /* il = -1: the first layer's QKV product alone */
            if (il >= 0) {
                rt.tail = &m->layers[il];
                rt.qkv_in = qkv[il % 2];
                rt.next = il + 1 < nl ? &m->layers[il + 1] : NULL;
                rt.qkv_out = qkv[(il + 1) % 2];
            }
            plan_rows(c, &rt, nth, emb_pool_caller_cpu(p));
            emb_pool_run(p, run_rows, &rt);
            learn_rows(c, &rt, nth);
        }
        return;
    }
    /* Few rows: step by step, every product split over the workers. */
    for (int il = 0; il < nl; il++) {
        const emb_layer *L = &m->layers[il];
        emb_matmul(p, &L->qkv, hid, R, c->qkv, NULL, EMB_EPI_NONE, c->mm_scratch);
        attention(c, p, s0, s1);
        /* hidden = hidden + attn Wo^T + bo, then LayerNorm */
        emb_matmul(p, &L->out, c->attn, R, hid, hid, EMB_EPI_NONE, c->mm_scratch);
        layernorm_rows(p, hid, L->attn_norm_g, L->attn_norm_b, R, E, m->hp.norm_eps);
        /* The FFN in token chunks: each chunk's [rows][F] activations are written, quantised and
           read back while still in cache. Rows are independent: any chunking gives the same
           results. */
        for (int64_t f0 = 0; f0 < R; f0 += FFN_CHUNK) {
            const int64_t rows = R - f0 < FFN_CHUNK ? R - f0 : FFN_CHUNK;
            float *h = hid + f0 * E;
            emb_matmul(p, &L->up, h, rows, c->ff, NULL, EMB_EPI_GELU, c->mm_scratch);
            emb_matmul(p, &L->down, c->ff, rows, h, h, EMB_EPI_NONE, c->mm_scratch);
        }
        layernorm_rows(p, hid, L->out_norm_g, L->out_norm_b, R, E, m->hp.norm_eps);
    }
}

int emb_encode(emb_ctx *c, emb_pool *p, const emb_batch *b, float *out, int64_t out_len, char *err,
               size_t err_len) {
    if (!c || !c->m) {
        emb_set_err(err, err_len, "emb_encode: NULL context");
        return -1;
    }
    const emb_model *m = c->m;
    int64_t max_len = 0;
    const int64_t T = check_batch(m, b, &max_len, err, err_len);
    if (T < 0) return -1;
    const int64_t need = output_len(m, b, T);
    if (!out) {
        emb_set_err(err, err_len, "emb_encode: NULL output");
        return -1;
    }
    if (out_len < need) {
        emb_set_err(err, err_len, "emb_encode: output holds %lld floats, the batch needs %lld",
                (long long)out_len, (long long)need);
        return -1;
    }
    const emb_type_traits *tr = emb_get_type_traits(m->tok_type);
    if (!tr || !tr->to_float) {
        emb_set_err(err, err_len, "emb_encode: no dequantisation for token embeddings");
        return -1;
    }
    const int64_t nth = p ? emb_pool_threads(p) : 1;
    if (ctx_reserve(c, T, rows_needed(m, T, b->n_seqs, max_len), max_len, nth, err, err_len) != 0)
        return -1;

    int64_t t = 0;
    c->seq_off[0] = 0;
    for (int32_t s = 0; s < b->n_seqs; s++) {
        for (int32_t i = 0; i < b->seq_lens[s]; i++, t++) {
            c->pos[t] = i; /* positions restart for each sequence */
            c->seq_of[t] = s;
        }
        c->seq_off[s + 1] = t;
    }

    embed_task et = {m, b, c->pos, tr->to_float, c->hidden, T};
    if (T * m->hp.n_embd <= SERIAL_ROW_FLOATS)
        run_embed(&et, 0, 1);
    else
        emb_pool_run(p, run_embed, &et);

    for (int32_t s0 = 0; s0 < b->n_seqs;) {
        int32_t s1 = s0 + 1;
        while (s1 < b->n_seqs && c->seq_off[s1 + 1] - c->seq_off[s0] <= ENC_CHUNK) s1++;
        run_layers(c, p, s0, s1);
        s0 = s1;
    }

    switch (m->hp.head) {
    case EMB_HEAD_RANK:
        head_rank(c, p, b, out);
        break;
    case EMB_HEAD_SPLADE:
        head_splade(c, p, b, T, out);
        break;
    default:
        pool_embed(c, b, T, out);
        break;
    }
    return 0;
}
