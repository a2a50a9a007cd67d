/*
 * cpu.c - SIMD level detection and the active dispatch level.
 *
 * x86-64: CPUID says what the processor implements and XGETBV says which register state the OS
 * saves on context switch; a level counts only when both agree. The AVX2 level also requires FMA,
 * F16C and BMI2 because the Makefile compiles *_avx2.c with -mfma -mf16c -mbmi2, so the compiler
 * may emit those instructions anywhere in those files. The levels are not one ladder: AVX-VNNI
 * (the VEX form of VPDPBUSD, on Intel's cores without AVX-512 since Alder Lake, and on Zen 5) is
 * an AVX2 level of its own, which an AVX-512 CPU may or may not also run. arm64: Advanced SIMD is
 * architectural.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned int lo, hi;
    /* xgetbv with ecx = 0, spelt as bytes so no -mxsave is needed */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static int g_has_avxvnni; /* set by detect: AVX2 level and CPUID.(7,1):EAX[4] */

static int detect(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return EMB_SIMD_SCALAR;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return EMB_SIMD_SCALAR;
    unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return EMB_SIMD_SCALAR; /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return EMB_SIMD_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1, bmi2 = (b >> 8) & 1;
    if (!(avx2 && fma && f16c && bmi2)) return EMB_SIMD_SCALAR;
    int level = EMB_SIMD_AVX2;
    const unsigned int ext_c = c;
    unsigned int a1 = 0, b1, c1, d1;
    if (a >= 1) __cpuid_count(7, 1, a1, b1, c1, d1); /* a: leaf 7's highest subleaf */
    (void)b1, (void)c1, (void)d1;
    g_has_avxvnni = (a1 >> 4) & 1;
    if (g_has_avxvnni) level = EMB_SIMD_AVXVNNI;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int zmm_state = (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 upper halves, ZMM16-31 */
    if (f && dq && bw && vl && zmm_state) {
        level = EMB_SIMD_AVX512;
        if ((ext_c >> 11) & 1) level = EMB_SIMD_AVX512VNNI;
    }
    return level;
}
#elif defined(__aarch64__)
static const int g_has_avxvnni = 0;
static int detect(void) { return EMB_SIMD_NEON; }
#else
static const int g_has_avxvnni = 0;
static int detect(void) { return EMB_SIMD_SCALAR; }
#endif

static int g_detected;
static _Atomic int g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Whether this CPU can run `level`: scalar always; neon on arm64; on x86-64 AVX2 with any AVX
   level detected, AVX-VNNI where its CPUID bit is set, AVX-512 up to the detected one. */
static int can_run(int level, int detected) {
    switch (level) {
    case EMB_SIMD_SCALAR: return 1;
    case EMB_SIMD_NEON: return detected == EMB_SIMD_NEON;
    case EMB_SIMD_AVX2: return detected != EMB_SIMD_SCALAR && detected != EMB_SIMD_NEON;
    case EMB_SIMD_AVXVNNI: return g_has_avxvnni;
    case EMB_SIMD_AVX512:
    case EMB_SIMD_AVX512VNNI: return (detected == EMB_SIMD_AVX512 || detected == EMB_SIMD_AVX512VNNI) && level <= detected;
    default: return 0;
    }
}

static int level_from_name(const char *s) {
    for (int i = 0; i < EMB_SIMD_N_LEVELS; i++)
        if (strcmp(s, emb_simd_name(i)) == 0) return i;
    return -1;
}

static void init_active(void) {
    g_detected = detect();
    int level = g_detected;
    const char *env = getenv("EMBEDD_SIMD");
    if (env && *env) {
        int want = level_from_name(env);
        if (want < 0)
            fprintf(stderr, "embedd: EMBEDD_SIMD=%s is not a known level; using %s\n", env,
                    emb_simd_name(g_detected));
        else if (!can_run(want, g_detected))
            fprintf(stderr, "embedd: EMBEDD_SIMD=%s is not supported by this CPU; using %s\n", env,
                    emb_simd_name(g_detected));
        else
            level = want;
    }
    atomic_store(&g_active, level);
}

int emb_simd_detect(void) {
    pthread_once(&g_once, init_active);
    return g_detected;
}

int emb_simd_active(void) {
    pthread_once(&g_once, init_active);
    return atomic_load_explicit(&g_active, memory_order_relaxed);
}

int emb_simd_can_run(int level) {
    pthread_once(&g_once, init_active);
    return can_run(level, g_detected);
}

int emb_simd_set(int level) {
    pthread_once(&g_once, init_active);
    if (!can_run(level, g_detected)) return -1;
    atomic_store(&g_active, level);
    return 0;
}

const char *emb_simd_name(int level) {
    switch (level) {
    case EMB_SIMD_SCALAR: return "scalar";
    case EMB_SIMD_AVX2: return "avx2";
    case EMB_SIMD_AVX512: return "avx512";
    case EMB_SIMD_AVX512VNNI: return "avx512vnni";
    case EMB_SIMD_NEON: return "neon";
    case EMB_SIMD_AVXVNNI: return "avxvnni";
    default: return "unknown";
    }
}
