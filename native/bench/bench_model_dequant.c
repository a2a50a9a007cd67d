/*
 * bench_model_dequant.c - dequantises every tensor of a GGUF file with each runnable SIMD level:
 * total time per level (the model-load cost of dequantisation), and a check that every level
 * produces the same bits as the scalar reference on real weights. Not a test. Build and run:
 *   make lib && gcc -O2 -std=c11 -D_GNU_SOURCE -Inative native/bench/bench_model_dequant.c \
 *       native/build/libembedd.a -lm -pthread -o /tmp/bmd && /tmp/bmd models/all-MiniLM-L6-v2-Q4_K_M.gguf
 * The GGUF reading here is minimal (the real parser is the Go package gguf) but bounds-checked.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"
#include "quants.h"

#include "bench_util.h"

#define MAXT 1024

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s model.gguf\n", argv[0]); return 2; }
    rd r;
    uint64_t nt, nkv;
    if (open_gguf(argv[1], &r, &nt, &nkv, MAXT) != 0) return 1;
    const uint8_t *buf = r.p;
    const size_t sz = r.len;
    uint64_t align = 32;
    for (uint64_t i = 0; i < nkv && !r.bad; i++) {
        uint64_t kl = u64(&r);
        if (kl > 256) { r.bad = 1; break; }
        char key[257] = {0};
        take(&r, key, (size_t)kl);
        uint32_t t = u32(&r);
        if (strcmp(key, "general.alignment") == 0 && t == 4) align = u32(&r);
        else skip_value(&r, t, 0);
    }
    static struct { int32_t type; int64_t n, rows, ne0; uint64_t off; } ts[MAXT];
    for (uint64_t i = 0; i < nt && !r.bad; i++) {
        uint64_t nl = u64(&r);
        take(&r, NULL, nl > r.len ? r.len + 1 : (size_t)nl);
        uint32_t nd = u32(&r);
        if (nd < 1 || nd > 4) { r.bad = 1; break; }
        int64_t n = 1, ne0 = 0;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t e = u64(&r);
            if (e == 0 || e > (1ull << 32) || n > INT64_MAX / (int64_t)e) { r.bad = 1; break; }
            if (d == 0) ne0 = (int64_t)e;
            n *= (int64_t)e;
        }
        ts[i].type = (int32_t)u32(&r);
        ts[i].off = u64(&r);
        ts[i].n = n;
        ts[i].ne0 = ne0;
        ts[i].rows = ne0 ? n / ne0 : 0;
    }
    if (r.bad || align == 0) { fprintf(stderr, "malformed GGUF header\n"); return 1; }
    size_t data = (r.pos + align - 1) / align * align;
    int64_t total = 0, max_n = 0;
    int64_t per_type[32] = {0};
    for (uint64_t i = 0; i < nt; i++) {
        int64_t rb = emb_row_bytes(ts[i].type, ts[i].ne0);
        if (!emb_type_supported(ts[i].type) || rb < 0 || ts[i].off > (uint64_t)sz - data ||
            (uint64_t)(rb * ts[i].rows) > (uint64_t)sz - data - ts[i].off) {
            fprintf(stderr, "tensor %llu: bad type/extent\n", (unsigned long long)i);
            return 1;
        }
        total += ts[i].n;
        if (ts[i].n > max_n) max_n = ts[i].n;
        per_type[ts[i].type & 31] += ts[i].n;
    }
    printf("%llu tensors, %lld elements:", (unsigned long long)nt, (long long)total);
    for (int t = 0; t < 32; t++)
        if (per_type[t]) printf(" %s %lld", emb_type_name(t), (long long)per_type[t]);
    printf("\n");
    float *ref = malloc((size_t)max_n * 4), *out = malloc((size_t)max_n * 4);
    if (!ref || !out) return 1;
    int det = emb_simd_detect();
    int levels[5], nl = 0;
    levels[nl++] = EMB_SIMD_SCALAR;
    if (det == EMB_SIMD_NEON) levels[nl++] = det;
    else for (int l = 1; l <= det; l++) levels[nl++] = l;
    int64_t mismatches = 0, nonfinite = 0;
    for (int li = 0; li < nl; li++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            for (uint64_t i = 0; i < nt; i++) {
                const emb_type_traits *tr = emb_get_type_traits_level(ts[i].type, levels[li]);
                tr->to_float(buf + data + ts[i].off, out, ts[i].n);
            }
            double t1 = now();
            if (t1 - t0 < best) best = t1 - t0;
        }
        /* correctness pass, untimed: every tensor against scalar */
        for (uint64_t i = 0; li > 0 && i < nt; i++) {
            emb_get_type_traits_level(ts[i].type, EMB_SIMD_SCALAR)->to_float(buf + data + ts[i].off, ref, ts[i].n);
            emb_get_type_traits_level(ts[i].type, levels[li])->to_float(buf + data + ts[i].off, out, ts[i].n);
            if (memcmp(ref, out, (size_t)ts[i].n * 4) != 0) mismatches++;
        }
        printf("%-11s whole model dequantised in %.2f ms (%.0f M elements/s)\n", emb_simd_name(levels[li]),
               best * 1e3, (double)total / best / 1e6);
    }
    for (uint64_t i = 0; i < nt; i++) {
        emb_get_type_traits_level(ts[i].type, EMB_SIMD_SCALAR)->to_float(buf + data + ts[i].off, ref, ts[i].n);
        for (int64_t j = 0; j < ts[i].n; j++) nonfinite += !isfinite(ref[j]);
    }
    printf("tensors differing from scalar: %lld; non-finite values: %lld\n", (long long)mismatches,
           (long long)nonfinite);
    free(ref); free(out); free((void *)buf);
    return mismatches != 0 || nonfinite != 0;
}
