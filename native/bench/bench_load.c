/*
 * bench_load.c - times emb_model_load on a BERT GGUF file (the C share of model load: checks,
 * copies, int8 repacking), then one short encode to check the model runs. Not a test. Build, run:
 *   make lib && gcc -O2 -std=c11 -D_GNU_SOURCE -pthread -Inative native/bench/bench_load.c \
 *       native/build/libembedd.a -lm -o /tmp/bench_load && /tmp/bench_load models/all-MiniLM-L6-v2-Q4_K_M.gguf
 * Hyperparameters are read from the bert.* metadata; the GGUF reading is minimal but bounds-checked
 * (the real parser is the Go package gguf).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"

#include "bench_util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAXT 1024
#define NAMELEN 128

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s model.gguf [loads]\n", argv[0]); return 2; }
    int loads = argc > 2 ? atoi(argv[2]) : 9;
    if (loads < 1 || loads > 1000) loads = 9;
    rd r;
    uint64_t nt, nkv;
    if (open_gguf(argv[1], &r, &nt, &nkv, MAXT) != 0) return 1;
    const uint8_t *buf = r.p;
    const size_t sz = r.len;
    uint64_t align = 32;
    emb_hparams hp = {.pooling = EMB_POOL_MEAN, .head = EMB_HEAD_EMBED, .norm_eps = 1e-12f};
    for (uint64_t i = 0; i < nkv && !r.bad; i++) {
        uint64_t kl = u64(&r);
        if (kl > 256) { r.bad = 1; break; }
        char key[257] = {0};
        take(&r, key, (size_t)kl);
        uint32_t t = u32(&r);
        int32_t *dst = NULL;
        if (strcmp(key, "bert.context_length") == 0) dst = &hp.n_ctx;
        else if (strcmp(key, "bert.embedding_length") == 0) dst = &hp.n_embd;
        else if (strcmp(key, "bert.feed_forward_length") == 0) dst = &hp.n_ff;
        else if (strcmp(key, "bert.attention.head_count") == 0) dst = &hp.n_head;
        else if (strcmp(key, "bert.block_count") == 0) dst = &hp.n_layer;
        if (strcmp(key, "general.alignment") == 0 && t == 4) align = u32(&r);
        else if (dst && t == 4) *dst = (int32_t)u32(&r);
        else if (strcmp(key, "bert.attention.layer_norm_epsilon") == 0 && t == 6) take(&r, &hp.norm_eps, 4);
        else skip_value(&r, t, 0);
    }
    static emb_tensor ts[MAXT];
    static char names[MAXT][NAMELEN];
    static uint64_t offs[MAXT];
    for (uint64_t i = 0; i < nt && !r.bad; i++) {
        uint64_t nl = u64(&r);
        if (nl >= NAMELEN) { r.bad = 1; break; }
        take(&r, names[i], (size_t)nl);
        ts[i].name = names[i];
        uint32_t nd = u32(&r);
        if (nd < 1 || nd > EMB_MAX_DIMS) { r.bad = 1; break; }
        ts[i].n_dims = (int32_t)nd;
        for (int d = 0; d < EMB_MAX_DIMS; d++) ts[i].ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t e = u64(&r);
            if (e == 0 || e > (1ull << 32)) { r.bad = 1; break; }
            ts[i].ne[d] = (int64_t)e;
        }
        ts[i].type = (int32_t)u32(&r);
        offs[i] = u64(&r);
    }
    if (r.bad || align == 0) { fprintf(stderr, "malformed GGUF header\n"); return 1; }
    size_t data = (r.pos + align - 1) / align * align;
    for (uint64_t i = 0; i < nt; i++) {
        int64_t rb = emb_row_bytes(ts[i].type, ts[i].ne[0]);
        int64_t rows = ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3];
        if (rb < 0 || data > (size_t)sz || offs[i] > (uint64_t)sz - data ||
            (uint64_t)rb * (uint64_t)rows > (uint64_t)sz - data - offs[i]) {
            fprintf(stderr, "tensor %s: bad type/extent\n", names[i]);
            return 1;
        }
        ts[i].data = buf + data + offs[i];
        ts[i].size = (uint64_t)rb * (uint64_t)rows;
        if (strcmp(names[i], "token_embd.weight") == 0) hp.n_vocab = (int32_t)ts[i].ne[1];
        if (strcmp(names[i], "token_types.weight") == 0) hp.n_token_types = (int32_t)ts[i].ne[1];
    }
    char err[256];
    double *t = malloc((size_t)loads * sizeof *t);
    emb_model *m = NULL;
    for (int i = 0; i < loads; i++) {
        double t0 = now();
        m = emb_model_load(&hp, ts, (int32_t)nt, err, sizeof err);
        t[i] = now() - t0;
        if (!m) { fprintf(stderr, "load: %s\n", err); return 1; }
        if (i + 1 < loads) emb_model_free(m);
    }
    qsort(t, (size_t)loads, sizeof *t, cmp_double);
    printf("emb_model_load (%s): median %.2f ms, min %.2f ms over %d loads; model %.1f MB\n",
           emb_simd_name(emb_simd_active()), t[loads / 2] * 1e3, t[0] * 1e3, loads,
           (double)emb_model_bytes(m) / 1e6);
    emb_pool *p = emb_pool_create(2, err, sizeof err);
    emb_ctx *c = p ? emb_ctx_create(m, err, sizeof err) : NULL;
    if (!c) { fprintf(stderr, "%s\n", err); return 1; }
    int32_t toks[4] = {101, 7592, 2088, 102}, lens[1] = {4};
    emb_batch b = {.n_seqs = 1, .seq_lens = lens, .tokens = toks};
    float out[4096];
    if (emb_model_output_dim(m) > 4096 || emb_encode(c, p, &b, out, 4096, err, sizeof err) != 0) {
        fprintf(stderr, "encode: %s\n", err);
        return 1;
    }
    printf("encode ok: out[0..3] = %.6f %.6f %.6f %.6f\n", out[0], out[1], out[2], out[3]);
    emb_ctx_free(c);
    emb_pool_free(p);
    emb_model_free(m);
    free(t);
    free((void *)buf);
    return 0;
}
