/*
 * bench_gemm.c - throughput of emb_matmul on the linear layers of all-MiniLM-L6-v2 (hidden 384,
 * FFN 1536) for M = 10 (a short query), 128 and 1024 tokens, at 1 and 2 threads, per kind and SIMD level, plus the
 * implied linear-layer token rate of the 6-layer model. GOP/s counts 2 * M * n * k per product, per
 * wall second and per CPU second of the process (the second is the kernel's own speed when other
 * programs share the cores; with 2 threads it also counts spinning).
 *
 *   bench_gemm [seconds_per_case (0.15)] [threads: 0 = 1 and 2 (default), or a count] [q5_0|q4_1]
 * With q5_0 the int8 matrices are packed from random Q5_0 blocks (weights within +-16, as the bundled
 * model's attention and FFN-up matrices) instead of requantised floats (+-127); with q4_1 from
 * random Q4_1 blocks (unsigned weights 0..15 plus an offset, as Q4_K packs: the bundled model's
 * FFN-down matrices of four layers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"
#include "gemm.h"
#include "gemm_impl.h"
#include "pool.h"
#include "quants.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU seconds of the whole process (all threads, spinning included): on a shared, oversubscribed
   machine ops per CPU-second still shows what the kernels do while they run. */
static double cpu_now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) / 16777216.0 * 2.0 - 1.0);
}

typedef struct {
    const char *name;
    int64_t n, k, per_layer; /* products of this shape per encoder layer */
} layer_shape;

/* Q, K, V and the attention output are 384 x 384; up is 1536 x 384; down 384 x 1536. */
static const layer_shape shapes[] = {{"qkv/out 384x384", 384, 384, 4}, {"up 1536x384", 1536, 384, 1}, {"down 384x1536", 384, 1536, 1}};
#define N_SHAPES 3

/* Wall seconds per emb_matmul call, timed over at least 3 calls and about budget seconds; *cpu gets
   the CPU seconds per call. */
static double time_matmul(emb_pool *p, const emb_matrix *W, const float *x, int64_t M, float *y, void *scratch, int epi,
                          double budget, double *cpu) {
    emb_matmul(p, W, x, M, y, NULL, epi, scratch); /* warm up */
    int reps = 0;
    double t0 = now(), c0 = cpu_now(), t;
    do {
        emb_matmul(p, W, x, M, y, NULL, epi, scratch);
        reps++;
        t = now() - t0;
    } while (t < budget || reps < 3);
    *cpu = (cpu_now() - c0) / reps;
    return t / reps;
}

/* Every level, fastest first; those this CPU cannot run are skipped. */
static const int level_order[] = {EMB_SIMD_AVX512VNNI, EMB_SIMD_AVX512, EMB_SIMD_AVXVNNI, EMB_SIMD_AVX2,
                                  EMB_SIMD_NEON, EMB_SIMD_SCALAR};
#define N_ORDER ((int)(sizeof level_order / sizeof level_order[0]))

int main(int argc, char **argv) {
    double budget = argc > 1 ? atof(argv[1]) : 0.15;
    if (budget <= 0 || budget > 10) budget = 0.15;
    int only_threads = argc > 2 ? atoi(argv[2]) : 0;
    if (only_threads < 0 || only_threads > 256) only_threads = 0;
    char err[256];
    const int64_t Ms[] = {10, 128, 1024}; /* 10: one short query */
    int detected = emb_simd_detect();
    printf("bench_gemm: detected SIMD %s; GOP/s = 2*M*n*k / time\n", emb_simd_name(detected));

    int from_q5 = argc > 3 && strcmp(argv[3], "q5_0") == 0, from_q4 = argc > 3 && strcmp(argv[3], "q4_1") == 0;
    float *wsrc[N_SHAPES];
    emb_matrix Wi8[N_SHAPES], Wf32[N_SHAPES];
    for (int s = 0; s < N_SHAPES; s++) {
        int64_t nk = shapes[s].n * shapes[s].k;
        wsrc[s] = malloc((size_t)nk * sizeof(float));
        for (int64_t i = 0; i < nk; i++) wsrc[s][i] = frand() * 0.1f;
        float *bias = malloc((size_t)shapes[s].n * sizeof(float));
        for (int64_t i = 0; i < shapes[s].n; i++) bias[i] = frand();
        int64_t nblk = nk / QK5_0;
        block_q5_0 *q5 = malloc((size_t)nblk * sizeof *q5);
        for (int64_t b = 0; b < nblk; b++) {
            uint8_t *raw = (uint8_t *)&q5[b];
            for (size_t i = 0; i < sizeof *q5; i++) raw[i] = (uint8_t)(frand() * 127.0f + 128.0f);
            q5[b].d = emb_fp32_to_fp16(0.01f);
        }
        block_q4_1 *q4 = malloc((size_t)nblk * sizeof *q4);
        for (int64_t b = 0; b < nblk; b++) {
            uint8_t *raw = (uint8_t *)&q4[b];
            for (size_t i = 0; i < sizeof *q4; i++) raw[i] = (uint8_t)(frand() * 127.0f + 128.0f);
            q4[b].d = emb_fp32_to_fp16(0.01f);
            q4[b].m = emb_fp32_to_fp16(-0.08f);
        }
        int bad = from_q5   ? emb_matrix_init(&Wi8[s], EMB_MAT_I8, EMB_TYPE_Q5_0, q5, shapes[s].n, shapes[s].k, bias, err, sizeof err)
                  : from_q4 ? emb_matrix_init(&Wi8[s], EMB_MAT_I8, EMB_TYPE_Q4_1, q4, shapes[s].n, shapes[s].k, bias, err, sizeof err)
                            : emb_matrix_init(&Wi8[s], EMB_MAT_I8, EMB_TYPE_F32, wsrc[s], shapes[s].n, shapes[s].k, bias, err, sizeof err);
        free(q5);
        free(q4);
        if (bad ||
            emb_matrix_init(&Wf32[s], EMB_MAT_F32, EMB_TYPE_F32, wsrc[s], shapes[s].n, shapes[s].k, bias, err, sizeof err)) {
            fprintf(stderr, "init: %s\n", err);
            return 1;
        }
        free(bias);
    }
    int64_t maxM = 1024, maxk = 1536, maxn = 1536;
    float *x = aligned_alloc(64, (size_t)(maxM * maxk) * sizeof(float));
    float *y = aligned_alloc(64, (size_t)(maxM * maxn) * sizeof(float));
    for (int64_t i = 0; i < maxM * maxk; i++) x[i] = frand();
    size_t sb = emb_matmul_scratch_bytes(&Wi8[2], maxM);
    void *scratch = aligned_alloc(64, (sb + 63) & ~(size_t)63);

    for (int threads = only_threads ? only_threads : 1; threads <= (only_threads ? only_threads : 2); threads++) {
        emb_pool *pool = emb_pool_create(threads, err, sizeof err);
        if (!pool) {
            fprintf(stderr, "pool: %s\n", err);
            return 1;
        }
        for (int kind = EMB_MAT_I8; kind >= EMB_MAT_F32; kind--) {
            for (int li = 0; li < N_ORDER; li++) {
                const int level = level_order[li];
                if (emb_simd_set(level) != 0) continue;
                /* the VNNI levels' float kernels are avx512's and avx2's */
                if (kind == EMB_MAT_F32 && emb_simd_float_level(level) != level) continue;
                for (int mi = 0; mi < 3; mi++) {
                    int64_t M = Ms[mi];
                    if (level == EMB_SIMD_SCALAR && M > 16) continue; /* reference only */
                    double layer_time = 0, layer_cpu = 0;
                    printf("%-4s %-10s threads=%d M=%-5lld", kind == EMB_MAT_I8 ? "i8" : "f32", emb_simd_name(level), threads, (long long)M);
                    for (int s = 0; s < N_SHAPES; s++) {
                        const emb_matrix *W = kind == EMB_MAT_I8 ? &Wi8[s] : &Wf32[s];
                        double cpu, t = time_matmul(pool, W, x, M, y, scratch, EMB_EPI_NONE, budget, &cpu);
                        double gop = 2.0 * (double)M * (double)shapes[s].n * (double)shapes[s].k * 1e-9;
                        layer_time += t * (double)shapes[s].per_layer;
                        layer_cpu += cpu * (double)shapes[s].per_layer;
                        printf(" | %s %6.1f (cpu %6.1f)", shapes[s].name, gop / t, gop / cpu);
                    }
                    printf(" | x6 layers: %6.0f tok/s (per cpu-s %6.0f)\n", (double)M / (6.0 * layer_time),
                           (double)M / (6.0 * layer_cpu));
                    fflush(stdout);
                }
            }
        }
        emb_pool_free(pool);
    }
    /* Attention per sequence and head: scores = Q K^T (nt, K = head dim 32) and context = P V (nn). */
    {
        const int64_t L = 128, D = 32;
        float *q = malloc((size_t)(L * D) * sizeof(float)), *kv = malloc((size_t)(L * D) * sizeof(float));
        float *sc = malloc((size_t)(L * L) * sizeof(float)), *ctx = malloc((size_t)(L * D) * sizeof(float));
        for (int64_t i = 0; i < L * D; i++) q[i] = frand(), kv[i] = frand();
        for (int64_t i = 0; i < L * L; i++) sc[i] = frand();
        for (int li = 0; li < N_ORDER; li++) {
            const int level = level_order[li];
            if (level == EMB_SIMD_AVXVNNI || emb_simd_set(level) != 0) continue; /* avxvnni: avx2's */
            double gop = 2.0 * (double)(L * L * D) * 1e-9, t[2];
            for (int which = 0; which < 2; which++) {
                int reps = 0;
                double t0 = cpu_now(); /* single-threaded: CPU time is robust to other load */
                do {
                    if (which == 0)
                        emb_sgemm_nt(L, L, D, 0.125f, q, D, kv, D, sc, L);
                    else
                        emb_sgemm_nn(L, D, L, sc, L, kv, D, ctx, D);
                    reps++;
                } while (cpu_now() - t0 < budget / 2 || reps < 3);
                t[which] = (cpu_now() - t0) / reps;
            }
            printf("sgemm %-10s L=%lld d=%lld (per cpu-s) | nt (Q K^T) %6.1f GFLOP/s | nn (P V) %6.1f GFLOP/s\n", emb_simd_name(level), (long long)L,
                   (long long)D, gop / t[0], gop / t[1]);
        }
        free(q);
        free(kv);
        free(sc);
        free(ctx);
    }
    /* Activation quantisation (per 32-block scales), once per row of every product: FFN-down's
       1536-wide rows and the 384-wide rows of the others. */
    {
        enum { QROWS = 64 };
        const int64_t K = 1536;
        float *xq = malloc((size_t)(QROWS * K) * sizeof(float)), *sq = malloc((size_t)(QROWS * K / EMB_QB) * sizeof(float));
        uint8_t *qq = malloc((size_t)(QROWS * K));
        for (int64_t i = 0; i < QROWS * K; i++) xq[i] = frand();
        for (int li = 0; li < N_ORDER; li++) {
            const int level = level_order[li];
            emb_quant_row_fn fn = emb_quant_row_for(level);
            if (level == EMB_SIMD_AVXVNNI || emb_simd_set(level) != 0) continue; /* avxvnni: avx2's */
            printf("quant_row %-10s (per cpu-s)", emb_simd_name(level));
            for (int64_t k = 384; k <= K; k *= 4) {
                int reps = 0;
                double t0 = cpu_now();
                do {
                    for (int pass = 0; pass < 64; pass++) /* ~10-40 us between clock reads */
                        for (int r = 0; r < QROWS; r++) fn(xq + r * k, k, k, qq + r * k, sq + r * (k / EMB_QB), 1);
                    reps += 64;
                } while (cpu_now() - t0 < budget / 4 || reps < 3);
                printf(" | k=%lld %5.2f ns a 32-block", (long long)k, (cpu_now() - t0) / reps / (double)(QROWS * k / EMB_QB) * 1e9);
            }
            printf("\n");
        }
        free(xq);
        free(sq);
        free(qq);
    }
    emb_simd_set(detected);
    for (int s = 0; s < N_SHAPES; s++) {
        emb_matrix_free(&Wi8[s]);
        emb_matrix_free(&Wf32[s]);
        free(wsrc[s]);
    }
    free(x);
    free(y);
    free(scratch);
    return 0;
}
