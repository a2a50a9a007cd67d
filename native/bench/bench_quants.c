/*
 * bench_quants.c - throughput of to_float (dequantisation) and vec_dot per type and SIMD level.
 * Not a test. Build and run:
 *   make lib && gcc -O2 -std=c11 -D_GNU_SOURCE -Inative native/bench/bench_quants.c \
 *       native/build/libembedd.a -lm -pthread -o /tmp/bench_quants && /tmp/bench_quants
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"
#include "quants.h"

#include "bench_util.h"

int main(void) {
    const int32_t types[] = {EMB_TYPE_F16,  EMB_TYPE_BF16, EMB_TYPE_Q4_0, EMB_TYPE_Q4_1,
                             EMB_TYPE_Q5_0, EMB_TYPE_Q5_1, EMB_TYPE_Q8_0, EMB_TYPE_Q4_K,
                             EMB_TYPE_Q5_K, EMB_TYPE_Q6_K};
    const int64_t n = 1 << 20; /* elements per row: 1 Mi, like a large embedding table slice */
    uint8_t *w = malloc((size_t)n * 4), *a = malloc((size_t)n * 4);
    float *f = malloc((size_t)n * 4), *src = malloc((size_t)n * 4);
    if (!w || !a || !f || !src) return 1;
    for (int64_t i = 0; i < n; i++) src[i] = (float)((i * 7919) % 2001 - 1000) / 1000.0f;
    printf("%-6s %-11s %12s %12s\n", "type", "level", "to_float", "vec_dot");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        for (int level = 0; level < EMB_SIMD_N_LEVELS; level++) {
            if (level == EMB_SIMD_NEON || !emb_simd_can_run(level)) continue;
            const emb_type_traits *t = emb_get_type_traits_level(types[k], level);
            const emb_type_traits *at = emb_get_type_traits_level(t->vec_dot_type, level);
            /* valid weights: quantise through Q8-like random bytes with sane scales */
            for (int64_t i = 0; i < emb_row_bytes(types[k], n); i++) w[i] = (uint8_t)(i * 131 + 7);
            int64_t nb = n / t->blck_elems;
            for (int64_t b = 0; b < nb && t->is_quantized; b++) {
                emb_fp16 one = emb_fp32_to_fp16(0.01f);
                uint8_t *blk = w + b * t->blck_bytes;
                if (types[k] == EMB_TYPE_Q6_K) memcpy(blk + 208, &one, 2);
                else memcpy(blk, &one, 2);
            }
            if (!t->is_quantized) t->from_float(src, w, n); /* realistic float weights */
            at->from_float(src, a, n);
            /* best of several runs: the machine is shared, the minimum is the least disturbed */
            double best_f = 1e9, best_d = 1e9;
            float s = 0;
            for (int r = 0; r < 7; r++) {
                double t0 = now();
                t->to_float(w, f, n);
                double t1 = now();
                t->vec_dot(n, &s, w, a);
                double t2 = now();
                if (t1 - t0 < best_f) best_f = t1 - t0;
                if (t2 - t1 < best_d) best_d = t2 - t1;
            }
            printf("%-6s %-11s %9.0f M/s %9.0f M/s\n", t->name, emb_simd_name(level), (double)n / best_f / 1e6,
                   (double)n / best_d / 1e6);
        }
    }
    free(w); free(a); free(f); free(src);
    return 0;
}
