/*
 * bench_pipes.c - how many of each instruction the kernels are built from this CPU issues a cycle,
 * alone and beside VPDPBUSD or maddubs: which execution pipes they share, and how many vector
 * loads a cycle go through. The kernels' tile shapes follow from these figures (gemm_avx2.c's
 * i8_tile_small_wide: loads bound the AVX2 small-weights tile; the VNNI kernels' fold: its
 * multiplies share VPDPBUSD's pipes). Not a test. x86-64 only; each group runs only where the CPU
 * has its instructions. Build and run:
 *   make bench-native   (or: gcc -O2 -Inative native/bench/bench_pipes.c native/build/libembedd.a -lm)
 *
 * Cycles are reckoned from wall time at a nominal clock: the first line measures it with a chain
 * of dependent integer adds (one a cycle), so "per cycle" figures hold at whatever clock the core
 * ran. Independent destination registers everywhere: throughput, not latency.
 */
#include <stdio.h>
#include <time.h>

#include "embedd.h"

#if defined(__x86_64__)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define ITERS 50000000L

static _Alignas(64) unsigned char buf[4096];

/* Runs BODY (an asm string of N instructions reading buf through %0) ITERS times; prints the
   cycles a loop and the instructions a cycle at ghz. */
#define TIME(NAME, N, BODY, ...)                                                                  \
    do {                                                                                          \
        double t_ = now();                                                                        \
        for (long i_ = 0; i_ < ITERS; i_++) __asm__ volatile(BODY : : "r"(buf) : __VA_ARGS__);    \
        const double cyc_ = (now() - t_) * ghz * 1e9 / ITERS;                                    \
        printf("  %-44s %2d in %5.2f cycles: %4.2f a cycle\n", NAME, N, cyc_, (double)(N) / cyc_); \
    } while (0)

/* Four copies of an instruction with distinct destinations. */
#define X4(I, A, B, C, D) I " " A "\n\t" I " " B "\n\t" I " " C "\n\t" I " " D "\n\t"

#define ZREG "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
             "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22"
#define YREG "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", \
             "xmm12", "xmm13", "xmm14", "xmm15"

/* Twelve VPDPBUSD (zmm) into zmm0-11: the VNNI tile's 6 rows x 2 panels. */
#define VNNI12                                                                                      \
    X4("vpdpbusd %%zmm20, %%zmm21,", "%%zmm0", "%%zmm1", "%%zmm2", "%%zmm3")                        \
    X4("vpdpbusd %%zmm20, %%zmm21,", "%%zmm4", "%%zmm5", "%%zmm6", "%%zmm7")                        \
    X4("vpdpbusd %%zmm20, %%zmm21,", "%%zmm8", "%%zmm9", "%%zmm10", "%%zmm11")
#define ZOP4(I) X4(I, "%%zmm16", "%%zmm17", "%%zmm18", "%%zmm19")

/* Eight maddubs (ymm) into ymm0-7. */
#define MADDUBS8                                                                                    \
    X4("vpmaddubsw %%ymm14, %%ymm15,", "%%ymm0", "%%ymm1", "%%ymm2", "%%ymm3")                      \
    X4("vpmaddubsw %%ymm14, %%ymm15,", "%%ymm4", "%%ymm5", "%%ymm6", "%%ymm7")
#define YOP4(I) X4(I, "%%ymm8", "%%ymm9", "%%ymm10", "%%ymm11")

static double measure_ghz(void) {
    const long n = 200000000L;
    long x = 0;
    double t = now();
    for (long i = 0; i < n; i++) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    t = now() - t;
    return 4.0 * (double)n / t * 1e-9;
}

/* Each group in a function compiled for its instructions, so that the asm may name (and clobber)
   their registers. */
__attribute__((target("avx2"))) static void loads(double ghz) {
    printf("loads (16 a loop):\n");
    TIME("vmovdqa ymm", 16, X4("vmovdqa", "(%0), %%ymm0", "32(%0), %%ymm1", "64(%0), %%ymm2", "96(%0), %%ymm3")
         X4("vmovdqa", "128(%0), %%ymm0", "160(%0), %%ymm1", "192(%0), %%ymm2", "224(%0), %%ymm3")
         X4("vmovdqa", "256(%0), %%ymm0", "288(%0), %%ymm1", "320(%0), %%ymm2", "352(%0), %%ymm3")
         X4("vmovdqa", "384(%0), %%ymm0", "416(%0), %%ymm1", "448(%0), %%ymm2", "480(%0), %%ymm3"), YREG);
    TIME("vpbroadcastd ymm from memory", 16, X4("vpbroadcastd", "(%0), %%ymm0", "4(%0), %%ymm1", "8(%0), %%ymm2", "12(%0), %%ymm3")
         X4("vpbroadcastd", "16(%0), %%ymm0", "20(%0), %%ymm1", "24(%0), %%ymm2", "28(%0), %%ymm3")
         X4("vpbroadcastd", "32(%0), %%ymm0", "36(%0), %%ymm1", "40(%0), %%ymm2", "44(%0), %%ymm3")
         X4("vpbroadcastd", "48(%0), %%ymm0", "52(%0), %%ymm1", "56(%0), %%ymm2", "60(%0), %%ymm3"), YREG);
    TIME("mov 64-bit", 16, X4("mov", "(%0), %%r8", "8(%0), %%r9", "16(%0), %%r10", "24(%0), %%r11")
         X4("mov", "32(%0), %%r8", "40(%0), %%r9", "48(%0), %%r10", "56(%0), %%r11")
         X4("mov", "64(%0), %%r8", "72(%0), %%r9", "80(%0), %%r10", "88(%0), %%r11")
         X4("mov", "96(%0), %%r8", "104(%0), %%r9", "112(%0), %%r10", "120(%0), %%r11"), "r8", "r9", "r10", "r11");
}

__attribute__((target("avx2"))) static void avx2_pipes(double ghz) {
    printf("AVX2 (per loop: 8 maddubs, then 4 to 16 of another instruction):\n");
    /* Zero sources: no denormal or special operands in the float instructions. */
    __asm__ volatile("vpxor %%xmm12, %%xmm12, %%xmm12\n\tvpxor %%xmm13, %%xmm13, %%xmm13\n\t"
                     "vpxor %%xmm14, %%xmm14, %%xmm14\n\tvpxor %%xmm15, %%xmm15, %%xmm15" ::: "xmm12", "xmm13", "xmm14", "xmm15");
    TIME("vpmaddubsw alone", 8, MADDUBS8, YREG);
    TIME("vpmaddubsw with a memory operand", 8,
         X4("vpmaddubsw", "(%0), %%ymm15, %%ymm0", "32(%0), %%ymm15, %%ymm1", "64(%0), %%ymm15, %%ymm2", "96(%0), %%ymm15, %%ymm3")
         X4("vpmaddubsw", "128(%0), %%ymm15, %%ymm4", "160(%0), %%ymm15, %%ymm5", "192(%0), %%ymm15, %%ymm6", "224(%0), %%ymm15, %%ymm7"), YREG);
    TIME("vpaddw alone", 16, YOP4("vpaddw %%ymm12, %%ymm13,") YOP4("vpaddw %%ymm12, %%ymm13,")
         YOP4("vpaddw %%ymm12, %%ymm13,") YOP4("vpaddw %%ymm12, %%ymm13,"), YREG);
    TIME("maddubs + vpaddw (8 + 8)", 16, MADDUBS8 YOP4("vpaddw %%ymm12, %%ymm13,") YOP4("vpaddw %%ymm12, %%ymm13,"), YREG);
    TIME("maddubs + vpaddw (8 + 16)", 24, MADDUBS8 YOP4("vpaddw %%ymm12, %%ymm13,") YOP4("vpaddw %%ymm12, %%ymm13,")
         YOP4("vpaddw %%ymm12, %%ymm13,") YOP4("vpaddw %%ymm12, %%ymm13,"), YREG);
    TIME("maddubs + vpmaddwd (8 + 4)", 12, MADDUBS8 YOP4("vpmaddwd %%ymm12, %%ymm13,"), YREG);
    TIME("maddubs + vmulps (8 + 4)", 12, MADDUBS8 YOP4("vmulps %%ymm12, %%ymm13,"), YREG);
    TIME("maddubs + vpbroadcastd from memory (8 + 8)", 16, MADDUBS8
         X4("vpbroadcastd", "(%0), %%ymm8", "4(%0), %%ymm9", "8(%0), %%ymm10", "12(%0), %%ymm11")
         X4("vpbroadcastd", "16(%0), %%ymm8", "20(%0), %%ymm9", "24(%0), %%ymm10", "28(%0), %%ymm11"), YREG);
}

__attribute__((target("avx512f,avx512vnni"))) static void vnni_pipes(double ghz) {
    printf("AVX-512 VNNI (per loop: 12 vpdpbusd zmm, then 4 of another instruction):\n");
    __asm__ volatile("vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                     "vpxord %%zmm22, %%zmm22, %%zmm22" ::: "xmm20", "xmm21", "xmm22");
    TIME("vpdpbusd alone", 12, VNNI12, ZREG);
    TIME("vpdpbusd + vcvtdq2ps", 16, VNNI12 ZOP4("vcvtdq2ps %%zmm22,"), ZREG);
    TIME("vpdpbusd + vmulps", 16, VNNI12 ZOP4("vmulps %%zmm22, %%zmm22,"), ZREG);
    TIME("vpdpbusd + vfmadd231ps", 16, VNNI12 ZOP4("vfmadd231ps %%zmm22, %%zmm22,"), ZREG);
    TIME("vpdpbusd + vpternlogd", 16, VNNI12 ZOP4("vpternlogd $0xEA, %%zmm22, %%zmm22,"), ZREG);
    TIME("vpdpbusd + vpsrlw", 16, VNNI12 ZOP4("vpsrlw $4, %%zmm22,"), ZREG);
    TIME("vpdpbusd + vpaddd", 16, VNNI12 ZOP4("vpaddd %%zmm22, %%zmm22,"), ZREG);
}

int main(void) {
    const double ghz = measure_ghz();
    printf("bench_pipes: detected SIMD %s; clock from a chain of dependent adds: %.2f GHz\n",
           emb_simd_name(emb_simd_detect()), ghz);
    if (!emb_simd_can_run(EMB_SIMD_AVX2)) return 0;
    loads(ghz);
    avx2_pipes(ghz);
    if (emb_simd_can_run(EMB_SIMD_AVX512VNNI)) vnni_pipes(ghz);
    return 0;
}

#else

int main(void) {
    printf("bench_pipes: x86-64 only\n");
    return 0;
}

#endif
