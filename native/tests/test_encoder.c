/*
 * test_encoder.c - emb_model_load and emb_encode on a tiny random BERT built here (F32 weights,
 * E=64, 4 heads, 2 layers, F=128, vocab 100, ctx 32, 2 token types):
 *   - malformed tensor tables, hparams and batches are rejected with a message naming the problem;
 *   - a sequence encodes the same alone and inside a mixed-length batch; 1 and 2 threads agree, and
 *     so do uneven splits of the rows between 2 and 3 workers;
 *   - pooling (mean/cls/last) matches the per-token states; normalised outputs have unit norm;
 *   - rank and SPLADE heads have the right sizes and match a double-precision computation of the
 *     head from the per-token states.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedd.h"
#include "model.h"
#include "quants.h"

#define E 64
#define NH 4
#define NL 2
#define FF 128
#define NV 100
#define NCTX 32
#define NTT 2
#define NLABELS 3

#include "check.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float frand(float lo, float hi) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) / (double)(1ull << 24));
}

/* max that lets a NaN through, so that a NaN error fails its check */
static double worse(double w, double d) { return d <= w ? w : d; }

/* ---- building the tensor table ------------------------------------------------------------ */

#define MAX_TENSORS 64
typedef struct {
    char names[MAX_TENSORS][64];
    emb_tensor t[MAX_TENSORS];
    float *data[MAX_TENSORS]; /* float values (after a type conversion: the rounded values) */
    void *raw[MAX_TENSORS];   /* converted bytes when the tensor is not F32, else NULL */
    int n;
} table;

enum { INIT_WEIGHT, INIT_GAIN, INIT_BIAS, INIT_EMBD };

static void add(table *tb, const char *name, int64_t ne0, int64_t ne1, int init) {
    const int i = tb->n++;
    snprintf(tb->names[i], sizeof tb->names[i], "%s", name);
    const int64_t n = ne0 * ne1;
    float *d = malloc((size_t)n * sizeof(float));
    const float w = 1.0f / sqrtf((float)ne0);
    for (int64_t j = 0; j < n; j++) {
        switch (init) {
        case INIT_WEIGHT: d[j] = frand(-w, w); break;
        case INIT_GAIN: d[j] = frand(0.8f, 1.2f); break;
        case INIT_BIAS: d[j] = frand(-0.1f, 0.1f); break;
        default: d[j] = frand(-1.0f, 1.0f); break;
        }
    }
    tb->data[i] = d;
    emb_tensor *t = &tb->t[i];
    t->name = tb->names[i];
    t->type = EMB_TYPE_F32;
    t->n_dims = ne1 == 1 ? 1 : 2;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->data = d;
    t->size = (uint64_t)n * sizeof(float);
}

static void add_linear(table *tb, const char *prefix, int64_t k, int64_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(tb, name, k, n, INIT_WEIGHT);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(tb, name, n, 1, INIT_BIAS);
}

static void add_norm(table *tb, const char *prefix, int64_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", prefix);
    add(tb, name, n, 1, INIT_GAIN);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add(tb, name, n, 1, INIT_BIAS);
}

static void build_encoder_ctx(table *tb, int n_ctx) {
    memset(tb, 0, sizeof *tb);
    add(tb, "token_embd.weight", E, NV, INIT_EMBD);
    add(tb, "position_embd.weight", E, n_ctx, INIT_EMBD);
    add(tb, "token_types.weight", E, NTT, INIT_EMBD);
    add_norm(tb, "token_embd_norm", E);
    char p[48];
    for (int l = 0; l < NL; l++) {
        const char *lin[4] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        for (int j = 0; j < 4; j++) {
            snprintf(p, sizeof p, "blk.%d.%s", l, lin[j]);
            add_linear(tb, p, E, E);
        }
        snprintf(p, sizeof p, "blk.%d.attn_output_norm", l);
        add_norm(tb, p, E);
        snprintf(p, sizeof p, "blk.%d.ffn_up", l);
        add_linear(tb, p, E, FF);
        snprintf(p, sizeof p, "blk.%d.ffn_down", l);
        add_linear(tb, p, FF, E);
        snprintf(p, sizeof p, "blk.%d.layer_output_norm", l);
        add_norm(tb, p, E);
    }
}

static void build_encoder(table *tb) { build_encoder_ctx(tb, NCTX); }

static void free_table(table *tb) {
    for (int i = 0; i < tb->n; i++) {
        free(tb->data[i]);
        free(tb->raw[i]);
    }
    tb->n = 0;
}

static emb_hparams base_hparams(int pooling, int head) {
    emb_hparams hp = {.n_vocab = NV,
                      .n_ctx = NCTX,
                      .n_embd = E,
                      .n_head = NH,
                      .n_layer = NL,
                      .n_ff = FF,
                      .n_token_types = NTT,
                      .norm_eps = 1e-12f,
                      .pooling = pooling,
                      .head = head,
                      .weight_mode = EMB_WEIGHTS_AUTO};
    return hp;
}

static emb_model *load(const emb_hparams *hp, const table *tb) {
    char err[256] = "";
    emb_model *m = emb_model_load(hp, tb->t, tb->n, err, sizeof err);
    if (!m) printf("load failed: %s\n", err);
    return m;
}

/* ---- malformed models ---------------------------------------------------------------------- */

enum { MUT_REMOVE, MUT_NE0, MUT_SIZE, MUT_TYPE, MUT_DUP, MUT_NULL_DATA, MUT_NDIMS, MUT_NE2 };

typedef struct {
    const char *desc;
    const char *tensor;
    int action;
    int64_t value;
    const char *expect; /* substring of the error */
} bad_table_case;

static const bad_table_case bad_tables[] = {
    {"missing token embeddings", "token_embd.weight", MUT_REMOVE, 0, "token_embd.weight: missing"},
    {"missing layer weight", "blk.1.ffn_down.weight", MUT_REMOVE, 0, "blk.1.ffn_down.weight: missing"},
    {"missing bias", "blk.0.attn_k.bias", MUT_REMOVE, 0, "blk.0.attn_k.bias: missing"},
    {"missing norm", "blk.1.layer_output_norm.bias", MUT_REMOVE, 0, "layer_output_norm.bias: missing"},
    {"missing token types", "token_types.weight", MUT_REMOVE, 0, "token_types.weight: missing"},
    {"wrong shape ne0", "blk.0.ffn_up.weight", MUT_NE0, 32, "blk.0.ffn_up.weight: shape"},
    {"wrong shape bias", "blk.1.attn_v.bias", MUT_NE0, 63, "blk.1.attn_v.bias: shape"},
    {"wrong shape position", "position_embd.weight", MUT_NE0, 32, "position_embd.weight: shape"},
    {"extra dimension", "blk.0.attn_q.weight", MUT_NE2, 2, "blk.0.attn_q.weight: shape"},
    {"size too small", "blk.0.attn_output.weight", MUT_SIZE, -4, "blk.0.attn_output.weight: data size"},
    {"size too large", "token_embd_norm.weight", MUT_SIZE, 4, "token_embd_norm.weight: data size"},
    {"unsupported type q8_K", "blk.1.ffn_up.weight", MUT_TYPE, EMB_TYPE_Q8_K,
     "blk.1.ffn_up.weight: unsupported type"},
    {"unknown type 99", "blk.0.attn_q.weight", MUT_TYPE, 99, "blk.0.attn_q.weight: unsupported type"},
    {"quantized norm", "token_embd_norm.bias", MUT_TYPE, EMB_TYPE_Q8_0, "token_embd_norm.bias"},
    {"duplicated tensor", "blk.0.attn_v.weight", MUT_DUP, 0, "blk.0.attn_v.weight: appears more than once"},
    {"NULL data", "blk.1.attn_q.weight", MUT_NULL_DATA, 0, "blk.1.attn_q.weight: no data"},
    {"n_dims 0", "blk.0.ffn_down.bias", MUT_NDIMS, 0, "blk.0.ffn_down.bias: n_dims"},
    {"n_dims 5", "blk.0.ffn_down.bias", MUT_NDIMS, 5, "blk.0.ffn_down.bias: n_dims"},
};

static void apply_mutation(table *copy, const bad_table_case *bc) {
    int idx = -1;
    for (int i = 0; i < copy->n; i++)
        if (strcmp(copy->t[i].name, bc->tensor) == 0) idx = i;
    if (idx < 0) return;
    emb_tensor *t = &copy->t[idx];
    switch (bc->action) {
    case MUT_REMOVE:
        copy->t[idx] = copy->t[copy->n - 1];
        copy->n--;
        break;
    case MUT_NE0: /* consistent size: only the shape is wrong (data holds at least that much) */
        if (bc->value * t->ne[1] * 4 <= (int64_t)t->size) {
            t->ne[0] = bc->value;
            t->size = (uint64_t)(t->ne[0] * t->ne[1] * 4);
        } else {
            t->ne[0] = bc->value; /* size now mismatching too: rejected either way */
        }
        break;
    case MUT_NE2:
        t->n_dims = 3;
        t->ne[1] /= bc->value;
        t->ne[2] = bc->value;
        break;
    case MUT_SIZE: t->size = (uint64_t)((int64_t)t->size + bc->value); break;
    case MUT_TYPE: t->type = (int32_t)bc->value; break;
    case MUT_DUP: copy->t[copy->n++] = *t; break;
    case MUT_NULL_DATA: t->data = NULL; break;
    case MUT_NDIMS: t->n_dims = (int32_t)bc->value; break;
    }
}

static void test_bad_tables(const table *good) {
    const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
    for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
        table *copy = malloc(sizeof *copy);
        memcpy(copy, good, sizeof *copy);
        for (int j = 0; j < copy->n; j++) copy->t[j].name = copy->names[j];
        apply_mutation(copy, &bad_tables[i]);
        char err[256] = "";
        emb_model *m = emb_model_load(&hp, copy->t, copy->n, err, sizeof err);
        CHECK(m == NULL && strstr(err, bad_tables[i].expect) != NULL,
              "bad table '%s': model %p, error '%s', expected '%s'", bad_tables[i].desc, (void *)m,
              err, bad_tables[i].expect);
        emb_model_free(m);
        free(copy);
    }
}

typedef struct {
    const char *desc;
    emb_hparams hp;
    const char *expect;
} bad_hp_case;

static void test_bad_hparams(const table *good) {
    bad_hp_case cases[16];
    int n = 0;
    const emb_hparams base = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
#define HP_CASE(d, field, val, exp)                                                             \
    do {                                                                                       \
        cases[n].desc = d;                                                                     \
        cases[n].hp = base;                                                                    \
        cases[n].hp.field = val;                                                               \
        cases[n].expect = exp;                                                                 \
        n++;                                                                                   \
    } while (0)
    HP_CASE("n_head not dividing n_embd", n_head, 5, "not divisible");
    HP_CASE("n_layer 0", n_layer, 0, "n_layer");
    HP_CASE("negative n_vocab", n_vocab, -1, "n_vocab");
    HP_CASE("absurd n_ctx", n_ctx, 1 << 30, "n_ctx");
    HP_CASE("n_embd 0", n_embd, 0, "n_embd");
    HP_CASE("negative token types", n_token_types, -2, "n_token_types");
    HP_CASE("norm_eps 0", norm_eps, 0.0f, "norm_eps");
    HP_CASE("norm_eps NaN", norm_eps, NAN, "norm_eps");
    HP_CASE("pooling 9", pooling, 9, "pooling");
    HP_CASE("head 7", head, 7, "head");
    HP_CASE("weight mode 3", weight_mode, 3, "weight_mode");
    HP_CASE("rank pooling without rank head", pooling, EMB_POOL_RANK, "rank pooling");
    HP_CASE("n_ctx above position rows", n_ctx, NCTX + 1, "position_embd.weight: shape");
    HP_CASE("n_ff mismatching tensors", n_ff, FF * 2, "ffn_up.weight: shape");
#undef HP_CASE
    for (int i = 0; i < n; i++) {
        char err[256] = "";
        emb_model *m = emb_model_load(&cases[i].hp, good->t, good->n, err, sizeof err);
        CHECK(m == NULL && strstr(err, cases[i].expect) != NULL,
              "bad hparams '%s': model %p, error '%s', expected '%s'", cases[i].desc, (void *)m,
              err, cases[i].expect);
        emb_model_free(m);
    }
    char err[256] = "";
    CHECK(emb_model_load(NULL, good->t, good->n, err, sizeof err) == NULL && err[0],
          "NULL hparams rejected");
    CHECK(emb_model_load(&base, NULL, 5, err, sizeof err) == NULL && err[0],
          "NULL tensor table rejected");
    CHECK(emb_model_load(&base, good->t, -1, err, sizeof err) == NULL, "negative count rejected");
    emb_model *m = emb_model_load(&base, good->t, good->n, NULL, 0);
    CHECK(m != NULL, "load with NULL err buffer");
    emb_model_free(m);
}

/* ---- batches ------------------------------------------------------------------------------- */

static int32_t toks[4 * NCTX], types[4 * NCTX];

static void fill_tokens(int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        toks[i] = (int32_t)(frand(0.0f, 1.0f) * NV) % NV;
        types[i] = (int32_t)(frand(0.0f, 1.0f) * NTT) % NTT;
    }
}

static int encode(emb_ctx *c, emb_pool *p, const emb_batch *b, float *out, int64_t out_len) {
    char err[256] = "";
    const int rc = emb_encode(c, p, b, out, out_len, err, sizeof err);
    if (rc != 0) printf("encode failed: %s\n", err);
    return rc;
}

static void test_bad_batches(emb_model *m, emb_ctx *c, emb_pool *p) {
    static float out[4 * NCTX * E];
    int32_t lens[3] = {5, 9, 3};
    int32_t bad_toks[17], bad_types[17];
    memcpy(bad_toks, toks, sizeof bad_toks);
    memcpy(bad_types, types, sizeof bad_types);
    struct {
        const char *desc;
        int32_t n_seqs;
        int32_t lens[3];
        int tok_at, tok_val, type_at, type_val;
        int null_lens, null_toks, null_out;
        int64_t out_len;
        const char *expect;
    } cases[] = {
        {"token id = n_vocab", 3, {5, 9, 3}, 7, NV, -1, 0, 0, 0, 0, 1000, "id 100"},
        {"negative token id", 3, {5, 9, 3}, 16, -1, -1, 0, 0, 0, 0, 1000, "id -1"},
        {"token type out of range", 3, {5, 9, 3}, -1, 0, 3, NTT, 0, 0, 0, 1000, "type 2"},
        {"negative token type", 3, {5, 9, 3}, -1, 0, 0, -1, 0, 0, 0, 1000, "type -1"},
        {"length 0", 3, {5, 0, 3}, -1, 0, -1, 0, 0, 0, 0, 1000, "length 0"},
        {"negative length", 3, {5, -4, 3}, -1, 0, -1, 0, 0, 0, 0, 1000, "length -4"},
        {"length > n_ctx", 3, {5, NCTX + 1, 3}, -1, 0, -1, 0, 0, 0, 0, 1000, "length 33"},
        {"n_seqs 0", 0, {5, 9, 3}, -1, 0, -1, 0, 0, 0, 0, 1000, "n_seqs"},
        {"negative n_seqs", -3, {5, 9, 3}, -1, 0, -1, 0, 0, 0, 0, 1000, "n_seqs"},
        {"out_len too small", 3, {5, 9, 3}, -1, 0, -1, 0, 0, 0, 0, 3 * E - 1, "output holds"},
        {"NULL seq_lens", 3, {5, 9, 3}, -1, 0, -1, 0, 1, 0, 0, 1000, "NULL"},
        {"NULL tokens", 3, {5, 9, 3}, -1, 0, -1, 0, 0, 1, 0, 1000, "NULL"},
        {"NULL output", 3, {5, 9, 3}, -1, 0, -1, 0, 0, 0, 1, 1000, "NULL output"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad_toks, toks, sizeof bad_toks);
        memcpy(bad_types, types, sizeof bad_types);
        memcpy(lens, cases[i].lens, sizeof lens);
        if (cases[i].tok_at >= 0) bad_toks[cases[i].tok_at] = cases[i].tok_val;
        if (cases[i].type_at >= 0) bad_types[cases[i].type_at] = cases[i].type_val;
        emb_batch b = {cases[i].n_seqs, cases[i].null_lens ? NULL : lens,
                       cases[i].null_toks ? NULL : bad_toks, bad_types, 0};
        /* the length cases would read beyond bad_toks if they were accepted: they must not be */
        char err[256] = "";
        const int rc = emb_encode(c, p, &b, cases[i].null_out ? NULL : out, cases[i].out_len, err,
                                  sizeof err);
        CHECK(rc == -1 && strstr(err, cases[i].expect) != NULL,
              "bad batch '%s': rc %d, error '%s', expected '%s'", cases[i].desc, rc, err,
              cases[i].expect);
        if (!cases[i].null_out && cases[i].out_len == 1000)
            CHECK(emb_output_len(m, &b) == -1, "emb_output_len rejects '%s'", cases[i].desc);
    }
    char err[256] = "";
    emb_batch ok = {1, lens, toks, NULL, 0};
    lens[0] = 4;
    CHECK(emb_encode(NULL, p, &ok, out, 1000, err, sizeof err) == -1 && err[0], "NULL ctx rejected");
    err[0] = 0;
    CHECK(emb_encode(c, p, NULL, out, 1000, err, sizeof err) == -1 && err[0], "NULL batch rejected");
    CHECK(emb_output_len(NULL, &ok) == -1 && emb_output_len(m, NULL) == -1, "emb_output_len NULLs");
    CHECK(emb_output_len(m, &ok) == E, "emb_output_len of a good batch is %lld",
          (long long)emb_output_len(m, &ok));
    CHECK(emb_ctx_create(NULL, err, sizeof err) == NULL, "ctx of NULL model rejected");
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d;
    }
    return w;
}

/* Same sequence alone and inside a mixed batch; 1 vs 2 threads vs no pool; ctx reuse. */
static void test_batching(const table *tb, emb_pool *p1, emb_pool *p2) {
    const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
    emb_model *m = load(&hp, tb);
    CHECK(m != NULL, "load tiny model");
    if (!m) return;
    CHECK(emb_model_output_dim(m) == E, "output dim %d", emb_model_output_dim(m));
    CHECK(emb_model_bytes(m) > (int64_t)(NL * (4 * E * E + 2 * E * FF) * sizeof(float)),
          "model bytes %lld", (long long)emb_model_bytes(m));
    emb_ctx *c = emb_ctx_create(m, NULL, 0);
    emb_ctx *c2 = emb_ctx_create(m, NULL, 0);
    fill_tokens(4 * NCTX);
    /* batch: lengths 20, 7, 1, 32; sequence 1 (7 tokens at offset 20) alone */
    int32_t lens[4] = {20, 7, 1, NCTX};
    const int64_t T = 20 + 7 + 1 + NCTX;
    emb_batch batch = {4, lens, toks, types, 0};
    static float outb[4 * E], out1[E], outc[E], out2[4 * E], outn[4 * E];
    CHECK(emb_output_len(m, &batch) == 4 * E, "output len of batch");
    if (encode(c, p1, &batch, outb, 4 * E) != 0) goto done;
    int32_t len1 = 7;
    emb_batch alone = {1, &len1, toks + 20, types + 20, 0};
    if (encode(c, p1, &alone, out1, E) != 0) goto done;
    double d = max_abs_diff(out1, outb + E, E);
    CHECK(d <= 1e-5, "sequence alone vs in batch: max diff %g", d);
    int32_t lenc = 1;
    emb_batch single = {1, &lenc, toks + 27, types + 27, 0};
    if (encode(c2, p2, &single, outc, E) != 0) goto done;
    d = max_abs_diff(outc, outb + 2 * E, E);
    CHECK(d <= 1e-5, "one-token sequence alone vs in batch: max diff %g", d);

    /* threads: 2 workers, no pool and a fresh context must give bit-identical outputs */
    if (encode(c2, p2, &batch, out2, 4 * E) != 0) goto done;
    CHECK(memcmp(out2, outb, sizeof out2) == 0, "1 vs 2 threads identical (max diff %g)",
          max_abs_diff(out2, outb, 4 * E));
    if (encode(c2, NULL, &batch, out2, 4 * E) != 0) goto done;
    CHECK(memcmp(out2, outb, sizeof out2) == 0, "no pool vs 1 thread identical");

    /* token types change the output; NULL types equal explicit zeros */
    static int32_t zeros[4 * NCTX];
    emb_batch bz = {4, lens, toks, zeros, 0}, bn = {4, lens, toks, NULL, 0};
    static float oz[4 * E], on[4 * E];
    if (encode(c, p1, &bz, oz, 4 * E) != 0 || encode(c, p1, &bn, on, 4 * E) != 0) goto done;
    CHECK(memcmp(oz, on, sizeof oz) == 0, "NULL token types == zeros");
    CHECK(max_abs_diff(oz, outb, 4 * E) > 1e-3, "token types matter");

    /* normalisation: unit norm, and the direction of the unnormalised output */
    batch.normalize = 1;
    if (encode(c, p2, &batch, outn, 4 * E) != 0) goto done;
    for (int s = 0; s < 4; s++) {
        double nn = 0, raw = 0;
        for (int i = 0; i < E; i++) {
            nn += (double)outn[s * E + i] * outn[s * E + i];
            raw += (double)outb[s * E + i] * outb[s * E + i];
        }
        CHECK(fabs(sqrt(nn) - 1.0) <= 1e-5, "seq %d norm %g", s, sqrt(nn));
        d = 0;
        for (int i = 0; i < E; i++) {
            const double e = fabs(outn[s * E + i] - outb[s * E + i] / sqrt(raw));
            if (e > d) d = e;
        }
        CHECK(d <= 1e-6, "normalised seq %d is the raw output scaled (diff %g)", s, d);
    }
    (void)T;
done:
    emb_ctx_free(c);
    emb_ctx_free(c2);
    emb_model_free(m);
}

/* The row-local path splits a group's rows by the workers' measured speeds; whatever the split, every
   output must be the one-thread output bit for bit. Lengths from 8 (the smallest row-local group
   on 2 workers) to NCTX, odd and even, with forced fractions up to and past the bounds the encoder
   learns within (each worker 1/1.5 to 1.5 times an even share), on 2 and 3 workers; each encode
   also moves the split on from the forced one. */
static void test_uneven_splits(const table *tb, emb_pool *p1, emb_pool *p2, emb_pool *p3) {
    const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
    emb_model *m = load(&hp, tb);
    CHECK(m != NULL, "load tiny model for splits");
    if (!m) return;
    emb_ctx *c1 = emb_ctx_create(m, NULL, 0), *c = emb_ctx_create(m, NULL, 0);
    static const double two[][2] = {{0.5, 0.5}, {1.0 / 3, 2.0 / 3}, {2.0 / 3, 1.0 / 3}, {0.4, 0.6}, {0.75, 0.25}};
    static const double three[][3] = {{0.2, 0.5, 0.3}, {0.5, 0.25, 0.25}, {0.25, 0.25, 0.5}};
    static float ref[E], out[E];
    const int lens[] = {8, 9, 12, 17, 24, NCTX - 1, NCTX};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int32_t len = lens[li];
        emb_batch b = {1, &len, toks, types, 0};
        if (encode(c1, p1, &b, ref, E) != 0) break;
        for (size_t k = 0; k < sizeof two / sizeof two[0]; k++) {
            emb_ctx_set_split(c, 2, two[k]);
            for (int rep = 0; rep < 2; rep++) {
                if (encode(c, p2, &b, out, E) != 0) break;
                CHECK(memcmp(out, ref, sizeof out) == 0, "%d tokens, 2 workers, split %.3f/%.3f, encode %d: max diff %g",
                      len, two[k][0], two[k][1], rep, max_abs_diff(out, ref, E));
            }
        }
        for (size_t k = 0; k < sizeof three / sizeof three[0] && len >= 12; k++) {
            emb_ctx_set_split(c, 3, three[k]);
            if (encode(c, p3, &b, out, E) != 0) break;
            CHECK(memcmp(out, ref, sizeof out) == 0, "%d tokens, 3 workers, split %.2f/%.2f/%.2f: max diff %g", len,
                  three[k][0], three[k][1], three[k][2], max_abs_diff(out, ref, E));
        }
    }
    emb_ctx_free(c1);
    emb_ctx_free(c);
    emb_model_free(m);
}

/* Pooling against the per-token states of EMB_POOL_NONE. */
/* A batch larger than one pass of the layers (ENC_CHUNK = 384 tokens in encoder.c) runs as several
   groups of whole sequences; every sequence must come out as it does alone, whatever group it
   landed in, with a context reused across batch sizes. */
static void test_groups(const table *tb, emb_pool *p) {
    enum { NS = 60 };
    static int32_t gtoks[NS * NCTX], gtypes[NS * NCTX], lens[NS];
    static float outb[NS * E], out1[E], outs[4 * E];
    const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
    emb_model *m = load(&hp, tb);
    CHECK(m != NULL, "load tiny model");
    if (!m) return;
    emb_ctx *c = emb_ctx_create(m, NULL, 0);
    int64_t T = 0;
    for (int s = 0; s < NS; s++) {
        lens[s] = 1 + (s * 7 + 3) % NCTX;
        T += lens[s];
    }
    for (int64_t i = 0; i < T; i++) {
        gtoks[i] = (int32_t)(frand(0.0f, 1.0f) * NV) % NV;
        gtypes[i] = (int32_t)(frand(0.0f, 1.0f) * NTT) % NTT;
    }
    CHECK(T > 2 * 384, "the batch spans several groups (%lld tokens)", (long long)T);
    emb_batch batch = {NS, lens, gtoks, gtypes, 0};
    /* a small batch first: the context must grow for the big one */
    emb_batch small = {4, lens, gtoks, gtypes, 0};
    if (encode(c, p, &small, outs, 4 * E) != 0 || encode(c, p, &batch, outb, NS * E) != 0) goto done;
    double worst = 0;
    int64_t off = 0;
    for (int s = 0; s < NS; s++) {
        emb_batch alone = {1, &lens[s], gtoks + off, gtypes + off, 0};
        if (encode(c, p, &alone, out1, E) != 0) goto done;
        const double d = max_abs_diff(out1, outb + (int64_t)s * E, E);
        if (d > worst) worst = d;
        off += lens[s];
    }
    CHECK(worst <= 1e-5, "sequences alone vs in a multi-group batch: max diff %g", worst);
    CHECK(max_abs_diff(outs, outb, 4 * E) <= 1e-5, "small batch vs the same sequences in the big one");
done:
    emb_ctx_free(c);
    emb_model_free(m);
}

static void test_pooling(const table *tb, emb_pool *p) {
    const int poolings[4] = {EMB_POOL_NONE, EMB_POOL_MEAN, EMB_POOL_CLS, EMB_POOL_LAST};
    emb_model *ms[4];
    emb_ctx *cs[4];
    for (int i = 0; i < 4; i++) {
        const emb_hparams hp = base_hparams(poolings[i], EMB_HEAD_EMBED);
        ms[i] = load(&hp, tb);
        cs[i] = ms[i] ? emb_ctx_create(ms[i], NULL, 0) : NULL;
        CHECK(cs[i] != NULL, "pooling %d model", poolings[i]);
        if (!cs[i]) return;
    }
    int32_t lens[3] = {9, 4, 13};
    const int64_t T = 26;
    emb_batch b = {3, lens, toks, types, 0};
    CHECK(emb_output_len(ms[0], &b) == T * E, "per-token output len");
    static float tok[26 * E], pooled[3][3 * E];
    if (encode(cs[0], p, &b, tok, T * E) != 0) return;
    for (int i = 1; i < 4; i++)
        if (encode(cs[i], p, &b, pooled[i - 1], 3 * E) != 0) return;
    int64_t off = 0;
    for (int s = 0; s < 3; s++) {
        double dm = 0, dc = 0, dl = 0, cls_last = 0;
        for (int i = 0; i < E; i++) {
            double mean = 0;
            for (int t = 0; t < lens[s]; t++) mean += tok[(off + t) * E + i];
            mean /= lens[s];
            dm = worse(dm, fabs(pooled[0][s * E + i] - mean));
            dc = worse(dc, fabs(pooled[1][s * E + i] - tok[off * E + i]));
            dl = worse(dl, fabs(pooled[2][s * E + i] - tok[(off + lens[s] - 1) * E + i]));
            cls_last = worse(cls_last, fabs(pooled[1][s * E + i] - pooled[2][s * E + i]));
        }
        CHECK(dm <= 1e-5, "mean pooling seq %d diff %g", s, dm);
        CHECK(dc == 0, "cls pooling seq %d diff %g", s, dc);
        CHECK(dl == 0, "last pooling seq %d diff %g", s, dl);
        CHECK(cls_last > 1e-3, "cls and last differ for seq %d", s);
        off += lens[s];
    }
    /* per-token normalisation */
    b.normalize = 1;
    if (encode(cs[0], p, &b, tok, T * E) != 0) return;
    double worst = 0;
    for (int64_t t = 0; t < T; t++) {
        double nn = 0;
        for (int i = 0; i < E; i++) nn += (double)tok[t * E + i] * tok[t * E + i];
        worst = worse(worst, fabs(sqrt(nn) - 1.0));
    }
    CHECK(worst <= 1e-5, "per-token normalised norms off by %g", worst);
    for (int i = 0; i < 4; i++) {
        emb_ctx_free(cs[i]);
        emb_model_free(ms[i]);
    }
}

/* ---- heads --------------------------------------------------------------------------------- */

static void matvec(double *y, const float *W, const float *bias, const double *x, int k, int n) {
    for (int o = 0; o < n; o++) {
        double s = bias ? bias[o] : 0.0;
        for (int i = 0; i < k; i++) s += (double)W[o * k + i] * x[i];
        y[o] = s;
    }
}

/* The float values of a tensor (for converted tensors, the values after rounding). */
static const float *tdata(const table *tb, const char *name) {
    for (int i = 0; i < tb->n; i++)
        if (strcmp(tb->names[i], name) == 0) return tb->data[i];
    return NULL;
}


static void test_rank(emb_pool *p) {
    int32_t lens[2] = {6, 11};
    emb_batch b = {2, lens, toks, types, 0};
    for (int variant = 0; variant < 3; variant++) {
        /* 0: pooler + 3 labels; 1: no pooler, one label stored 1-D; 2: no head tensors */
        table tb;
        build_encoder(&tb);
        if (variant == 0) {
            add_linear(&tb, "cls", E, E);
            add_linear(&tb, "cls.output", E, NLABELS);
        } else if (variant == 1) {
            add(&tb, "cls.output.weight", E, 1, INIT_WEIGHT);
            add(&tb, "cls.output.bias", 1, 1, INIT_BIAS);
        }
        const int want_dim = variant == 0 ? NLABELS : variant == 1 ? 1 : E;
        emb_hparams hp = base_hparams(EMB_POOL_RANK, EMB_HEAD_RANK);
        emb_model *m = load(&hp, &tb);
        hp = base_hparams(EMB_POOL_NONE, EMB_HEAD_EMBED);
        emb_model *mt = load(&hp, &tb);
        CHECK(m && mt, "rank variant %d loads", variant);
        if (!m || !mt) continue;
        CHECK(emb_model_output_dim(m) == want_dim, "rank variant %d dim %d", variant,
              emb_model_output_dim(m));
        CHECK(emb_output_len(m, &b) == 2 * want_dim, "rank output len");
        emb_ctx *c = emb_ctx_create(m, NULL, 0), *ct = emb_ctx_create(mt, NULL, 0);
        static float out[2 * E], tok[17 * E];
        if (encode(c, p, &b, out, 2 * want_dim) == 0 && encode(ct, p, &b, tok, 17 * E) == 0) {
            double worst = 0;
            for (int s = 0; s < 2; s++) {
                double x[E], h[E], y[E];
                const int64_t off = s == 0 ? 0 : 6;
                for (int i = 0; i < E; i++) x[i] = tok[off * E + i];
                const double *cur = x;
                if (variant == 0) {
                    matvec(h, tdata(&tb, "cls.weight"), tdata(&tb, "cls.bias"), x, E, E);
                    for (int i = 0; i < E; i++) h[i] = tanh(h[i]);
                    cur = h;
                }
                if (variant < 2) {
                    matvec(y, tdata(&tb, "cls.output.weight"), tdata(&tb, "cls.output.bias"), cur,
                           E, want_dim);
                    cur = y;
                }
                for (int i = 0; i < want_dim; i++)
                    worst = worse(worst, fabs(out[s * want_dim + i] - cur[i]));
            }
            CHECK(worst <= 1e-4, "rank variant %d vs double head: diff %g", variant, worst);
        }
        emb_ctx_free(c);
        emb_ctx_free(ct);
        emb_model_free(m);
        emb_model_free(mt);
        free_table(&tb);
    }
    /* a rank model with a wrongly shaped label bias is rejected */
    table tb;
    build_encoder(&tb);
    add(&tb, "cls.output.weight", E, NLABELS, INIT_WEIGHT);
    add(&tb, "cls.output.bias", NLABELS + 1, 1, INIT_BIAS);
    const emb_hparams hp = base_hparams(EMB_POOL_RANK, EMB_HEAD_RANK);
    char err[256] = "";
    emb_model *m = emb_model_load(&hp, tb.t, tb.n, err, sizeof err);
    CHECK(!m && strstr(err, "cls.output.bias: shape"), "bad label bias: '%s'", err);
    emb_model_free(m);
    free_table(&tb);
}

static void test_splade(emb_pool *p) {
    int32_t lens[3] = {5, 30, 12}; /* 47 tokens: the decoder runs in chunks */
    emb_batch b = {3, lens, toks, types, 0};
    for (int tied = 0; tied < 2; tied++) {
        table tb;
        build_encoder(&tb);
        add_linear(&tb, "mlm.dense", E, E);
        add_norm(&tb, "mlm.norm", E);
        if (!tied) add(&tb, "mlm.decoder.weight", E, NV, INIT_WEIGHT);
        add(&tb, "mlm.bias", NV, 1, INIT_BIAS);
        emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_SPLADE);
        emb_model *m = load(&hp, &tb);
        hp = base_hparams(EMB_POOL_NONE, EMB_HEAD_EMBED);
        emb_model *mt = load(&hp, &tb);
        CHECK(m && mt, "splade (tied %d) loads", tied);
        if (!m || !mt) continue;
        CHECK(emb_model_output_dim(m) == NV, "splade dim %d", emb_model_output_dim(m));
        CHECK(emb_output_len(m, &b) == 3 * NV, "splade output len");
        emb_ctx *c = emb_ctx_create(m, NULL, 0), *ct = emb_ctx_create(mt, NULL, 0);
        static float out[3 * NV], tok[47 * E];
        if (encode(c, p, &b, out, 3 * NV) == 0 && encode(ct, p, &b, tok, 47 * E) == 0) {
            int nonneg = 1, positive = 0;
            for (int i = 0; i < 3 * NV; i++) {
                nonneg &= out[i] >= 0.0f && isfinite(out[i]);
                positive += out[i] > 0.0f;
            }
            CHECK(nonneg, "splade values >= 0 and finite");
            CHECK(positive > 0, "splade has positive values");
            /* double-precision head from the per-token states */
            const float *dec = tied ? tdata(&tb, "token_embd.weight") : tdata(&tb, "mlm.decoder.weight");
            const float *g = tdata(&tb, "mlm.norm.weight"), *nb = tdata(&tb, "mlm.norm.bias");
            double worst = 0;
            int64_t off = 0;
            for (int s = 0; s < 3; s++) {
                double best[NV];
                for (int v = 0; v < NV; v++) best[v] = 0;
                for (int t = 0; t < lens[s]; t++) {
                    double x[E], h[E], lg[NV];
                    for (int i = 0; i < E; i++) x[i] = tok[(off + t) * E + i];
                    matvec(h, tdata(&tb, "mlm.dense.weight"), tdata(&tb, "mlm.dense.bias"), x, E, E);
                    double mean = 0, var = 0;
                    for (int i = 0; i < E; i++) {
                        h[i] = 0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0)));
                        mean += h[i];
                    }
                    mean /= E;
                    for (int i = 0; i < E; i++) var += (h[i] - mean) * (h[i] - mean);
                    var /= E;
                    for (int i = 0; i < E; i++) h[i] = (h[i] - mean) / sqrt(var + 1e-12) * g[i] + nb[i];
                    matvec(lg, dec, tdata(&tb, "mlm.bias"), h, E, NV);
                    for (int v = 0; v < NV; v++) best[v] = fmax(best[v], log1p(fmax(lg[v], 0.0)));
                }
                for (int v = 0; v < NV; v++) worst = worse(worst, fabs(out[s * NV + v] - best[v]));
                off += lens[s];
            }
            CHECK(worst <= 1e-4, "splade (tied %d) vs double head: diff %g", tied, worst);
        }
        emb_ctx_free(c);
        emb_ctx_free(ct);
        emb_model_free(m);
        emb_model_free(mt);
        free_table(&tb);
    }
    /* missing SPLADE tensors are named */
    table tb;
    build_encoder(&tb);
    add_linear(&tb, "mlm.dense", E, E);
    add(&tb, "mlm.bias", NV, 1, INIT_BIAS);
    const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_SPLADE);
    char err[256] = "";
    emb_model *m = emb_model_load(&hp, tb.t, tb.n, err, sizeof err);
    CHECK(!m && strstr(err, "mlm.norm.weight: missing"), "splade without norm: '%s'", err);
    emb_model_free(m);
    free_table(&tb);
}

/* ---- the whole forward pass against a double-precision reference ------------------------- */

/* Stores tensor `name` as `type` (F16 or Q8_0); the table's floats become the rounded values the
   model will see, so the reference uses exactly the same weights. */
static int convert(table *tb, const char *name, int32_t type) {
    for (int i = 0; i < tb->n; i++) {
        if (strcmp(tb->names[i], name) != 0) continue;
        emb_tensor *t = &tb->t[i];
        const emb_type_traits *tr = emb_get_type_traits(type);
        const int64_t rb = emb_row_bytes(type, t->ne[0]);
        if (!tr || !tr->from_float || !tr->to_float || rb < 0) return -1;
        void *raw = malloc((size_t)(rb * t->ne[1]));
        for (int64_t r = 0; r < t->ne[1]; r++) {
            tr->from_float(tb->data[i] + r * t->ne[0], (uint8_t *)raw + r * rb, t->ne[0]);
            tr->to_float((uint8_t *)raw + r * rb, tb->data[i] + r * t->ne[0], t->ne[0]);
        }
        tb->raw[i] = raw;
        t->type = type;
        t->data = raw;
        t->size = (uint64_t)(rb * t->ne[1]);
        return 0;
    }
    return -1;
}

static void ref_layernorm(double *x, const float *g, const float *b, int n) {
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    for (int i = 0; i < n; i++) x[i] = (x[i] - mean) / sqrt(var + 1e-12) * g[i] + b[i];
}

/* BERT encoder in double, one sequence, written out step by step. h is [L][E]. */
static void ref_forward(const table *tb, const int32_t *ids, const int32_t *tt, int L, double *h) {
    const int hd = E / NH;
    double *q = malloc(sizeof(double) * L * E), *k = malloc(sizeof(double) * L * E),
           *v = malloc(sizeof(double) * L * E), *o = malloc(sizeof(double) * L * E),
           *p = malloc(sizeof(double) * L), f[FF], tmp[E];
    for (int t = 0; t < L; t++) {
        for (int i = 0; i < E; i++)
            h[t * E + i] = (double)tdata(tb, "token_embd.weight")[ids[t] * E + i] +
                           tdata(tb, "position_embd.weight")[t * E + i] +
                           tdata(tb, "token_types.weight")[tt[t] * E + i];
        ref_layernorm(h + t * E, tdata(tb, "token_embd_norm.weight"), tdata(tb, "token_embd_norm.bias"), E);
    }
    char w[64], b[64];
#define W(l, part) (snprintf(w, sizeof w, "blk.%d.%s.weight", l, part), tdata(tb, w))
#define B(l, part) (snprintf(b, sizeof b, "blk.%d.%s.bias", l, part), tdata(tb, b))
    for (int l = 0; l < NL; l++) {
        for (int t = 0; t < L; t++) {
            matvec(q + t * E, W(l, "attn_q"), B(l, "attn_q"), h + t * E, E, E);
            matvec(k + t * E, W(l, "attn_k"), B(l, "attn_k"), h + t * E, E, E);
            matvec(v + t * E, W(l, "attn_v"), B(l, "attn_v"), h + t * E, E, E);
        }
        for (int hh = 0; hh < NH; hh++) {
            for (int i = 0; i < L; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < L; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += q[i * E + hh * hd + d] * k[j * E + hh * hd + d];
                    p[j] = s / sqrt((double)hd);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < L; j++) sum += (p[j] = exp(p[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++) acc += p[j] / sum * v[j * E + hh * hd + d];
                    o[i * E + hh * hd + d] = acc;
                }
            }
        }
        for (int t = 0; t < L; t++) {
            matvec(tmp, W(l, "attn_output"), B(l, "attn_output"), o + t * E, E, E);
            for (int i = 0; i < E; i++) h[t * E + i] += tmp[i];
            ref_layernorm(h + t * E, W(l, "attn_output_norm"), B(l, "attn_output_norm"), E);
            matvec(f, W(l, "ffn_up"), B(l, "ffn_up"), h + t * E, E, FF);
            for (int i = 0; i < FF; i++) f[i] = 0.5 * f[i] * (1.0 + erf(f[i] / sqrt(2.0)));
            matvec(tmp, W(l, "ffn_down"), B(l, "ffn_down"), f, FF, E);
            for (int i = 0; i < E; i++) h[t * E + i] += tmp[i];
            ref_layernorm(h + t * E, W(l, "layer_output_norm"), B(l, "layer_output_norm"), E);
        }
    }
#undef W
#undef B
    free(q);
    free(k);
    free(v);
    free(o);
    free(p);
}

/* Sequences longer than one attention block of 64 queries, Q8_0 token embeddings, F16 position
   embeddings and norm, and Q/K/V of different types (the fused matrix built from floats) in layer
   0. Variant 1 also stores layer 1's Q, K and V as Q8_0 (fused by concatenating their blocks) and
   runs both weight modes: int8 activations then bound the error, not the float kernels. */
static void test_vs_reference(emb_pool *p) {
    enum { CTX = 150 };
    for (int variant = 0; variant < 3; variant++) {
        table tb;
        build_encoder_ctx(&tb, CTX);
        int conv_ok = convert(&tb, "token_embd.weight", EMB_TYPE_Q8_0) == 0 &&
                      convert(&tb, "position_embd.weight", EMB_TYPE_F16) == 0 &&
                      convert(&tb, "blk.0.attn_k.weight", EMB_TYPE_F16) == 0 &&
                      convert(&tb, "blk.1.attn_output_norm.weight", EMB_TYPE_F16) == 0;
        if (variant > 0)
            conv_ok = conv_ok && convert(&tb, "blk.1.attn_q.weight", EMB_TYPE_Q8_0) == 0 &&
                      convert(&tb, "blk.1.attn_k.weight", EMB_TYPE_Q8_0) == 0 &&
                      convert(&tb, "blk.1.attn_v.weight", EMB_TYPE_Q8_0) == 0;
        CHECK(conv_ok, "tensor conversion for the reference test");
        emb_hparams hp = base_hparams(EMB_POOL_NONE, EMB_HEAD_EMBED);
        hp.n_ctx = CTX;
        hp.weight_mode = variant == 2 ? EMB_WEIGHTS_BLOCKS : EMB_WEIGHTS_AUTO;
        /* float weights: float kernels only; quantized Q/K/V: int8 or Q8_0 activations */
        const double tol = variant == 0 ? 2e-5 : 1e-2;
        emb_model *m = conv_ok ? load(&hp, &tb) : NULL;
        CHECK(m != NULL, "reference model %d loads", variant);
        if (m) {
            emb_ctx *c = emb_ctx_create(m, NULL, 0);
            int32_t lens[2] = {CTX, 70};
            int32_t *ids = malloc(sizeof(int32_t) * (CTX + 70));
            int32_t *tt = malloc(sizeof(int32_t) * (CTX + 70));
            for (int i = 0; i < CTX + 70; i++) {
                ids[i] = (int32_t)(frand(0.0f, 1.0f) * NV) % NV;
                tt[i] = i % 3 == 0;
            }
            float *out = malloc(sizeof(float) * (CTX + 70) * E);
            double *want = malloc(sizeof(double) * CTX * E);
            emb_batch b = {2, lens, ids, tt, 0};
            if (encode(c, p, &b, out, (int64_t)(CTX + 70) * E) == 0) {
                int64_t off = 0;
                for (int s = 0; s < 2; s++) {
                    ref_forward(&tb, ids + off, tt + off, lens[s], want);
                    double worst = 0;
                    for (int64_t i = 0; i < (int64_t)lens[s] * E; i++)
                        worst = worse(worst, fabs(out[off * E + i] - want[i]));
                    CHECK(worst <= tol,
                          "variant %d: %d tokens vs double reference: max diff %g (tolerance %g)",
                          variant, lens[s], worst, tol);
                    off += lens[s];
                }
            }
            free(ids);
            free(tt);
            free(out);
            free(want);
            emb_ctx_free(c);
            emb_model_free(m);
        }
        free_table(&tb);
    }
}

/* A model without token types: types must be NULL or 0. */
static void test_no_token_types(emb_pool *p) {
    table tb;
    build_encoder(&tb);
    emb_hparams hp = base_hparams(EMB_POOL_CLS, EMB_HEAD_EMBED);
    hp.n_token_types = 0;
    emb_model *m = load(&hp, &tb); /* the token_types tensor is present but unused */
    CHECK(m != NULL, "model without token types loads");
    if (m) {
        emb_ctx *c = emb_ctx_create(m, NULL, 0);
        int32_t len = 5, zero[5] = {0}, one[5] = {0, 0, 1, 0, 0};
        static float a[E], bb[E];
        emb_batch b1 = {1, &len, toks, NULL, 0}, b2 = {1, &len, toks, zero, 0},
                  b3 = {1, &len, toks, one, 0};
        CHECK(encode(c, p, &b1, a, E) == 0 && encode(c, p, &b2, bb, E) == 0 &&
                  memcmp(a, bb, sizeof a) == 0,
              "no token types: NULL == zeros");
        char err[256] = "";
        CHECK(emb_encode(c, p, &b3, a, E, err, sizeof err) == -1 && strstr(err, "type 1"),
              "no token types: type 1 rejected ('%s')", err);
        emb_ctx_free(c);
        emb_model_free(m);
    }
    free_table(&tb);
}

int main(void) {
    char err[256] = "";
    emb_pool *p1 = emb_pool_create(1, err, sizeof err);
    emb_pool *p2 = emb_pool_create(2, err, sizeof err);
    emb_pool *p3 = emb_pool_create(3, err, sizeof err);
    if (!p1 || !p2 || !p3) {
        printf("test_encoder: pool creation failed: %s\n", err);
        return 1;
    }
    table tb;
    build_encoder(&tb);
    fill_tokens(4 * NCTX);

    test_bad_tables(&tb);
    test_bad_hparams(&tb);
    {
        const emb_hparams hp = base_hparams(EMB_POOL_MEAN, EMB_HEAD_EMBED);
        emb_model *m = load(&hp, &tb);
        CHECK(m != NULL, "load for batch checks");
        if (m) {
            emb_ctx *c = emb_ctx_create(m, NULL, 0);
            test_bad_batches(m, c, p2);
            emb_ctx_free(c);
            emb_model_free(m);
        }
    }
    test_batching(&tb, p1, p2);
    test_uneven_splits(&tb, p1, p2, p3);
    test_groups(&tb, p2);
    test_pooling(&tb, p2);
    test_rank(p2);
    test_splade(p2);
    test_no_token_types(p1);
    test_vs_reference(p2);

    free_table(&tb);
    emb_pool_free(p1);
    emb_pool_free(p2);
    emb_pool_free(p3);
    return check_summary("test_encoder", NULL);
}
