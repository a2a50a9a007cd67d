/*
 * cpu.c - SIMD level detection and the active dispatch level.
 *
 * x86-64: CPUID says what the processor implements and XGETBV says which register state the OS
 * saves on context switch; a level counts only when both agree. The AVX2 level also requires FMA,
 * F16C and BMI2 because the Makefile compiles *_avx2.c with -mfma -mf16c -mbmi2, so the compiler
 * may emit those instructions anywhere in those files. arm64: Advanced SIMD is architectural.
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
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int zmm_state = (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 upper halves, ZMM16-31 */
    if (f && dq && bw && vl && zmm_state) {
        level = EMB_SIMD_AVX512;
        if ((c >> 11) & 1) level = EMB_SIMD_AVX512VNNI;
    }
    return level;
}
#elif defined(__aarch64__)
static int detect(void) { return EMB_SIMD_NEON; }
#else
static int detect(void) { return EMB_SIMD_SCALAR; }
#endif

static int g_detected;
static _Atomic int g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Whether this CPU can run `level`: scalar always; otherwise a level of this architecture's ladder
   at or below the detected one. */
static int can_run(int level, int detected) {
    if (level == EMB_SIMD_SCALAR) return 1;
    if (detected == EMB_SIMD_NEON) return level == EMB_SIMD_NEON;
    if (level >= EMB_SIMD_AVX2 && level <= EMB_SIMD_AVX512VNNI) return level <= detected;
    return 0;
}

static int level_from_name(const char *s) {
    static const char *names[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) return i;
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
    default: return "unknown";
    }
}
