/*
 * test_quants.c - block formats and kernels: known answers, every SIMD level against the scalar
 * reference, dots against double-precision dots, activation quantisation bounds, fp16/bf16
 * conversion over every bit pattern, and row size checks.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedd.h"
#include "quants.h"

#include "check.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float rndf(void) { return (float)(rnd() & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f; }

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static const int32_t k_weight_types[] = {EMB_TYPE_F32,  EMB_TYPE_F16,  EMB_TYPE_BF16, EMB_TYPE_Q4_0,
                                         EMB_TYPE_Q4_1, EMB_TYPE_Q5_0, EMB_TYPE_Q5_1, EMB_TYPE_Q8_0,
                                         EMB_TYPE_Q4_K, EMB_TYPE_Q5_K, EMB_TYPE_Q6_K};
#define N_WEIGHT_TYPES ((int)(sizeof k_weight_types / sizeof k_weight_types[0]))

/* A random fp16 scale of either sign, magnitude in [2^-9, 2^-3). */
static emb_fp16 rnd_scale(void) {
    float mag = ldexpf(1.0f + (float)(rnd() & 1023) / 1024.0f, -9 + (int)(rnd() % 6));
    return emb_fp32_to_fp16(rnd() & 1 ? -mag : mag);
}

static int8_t rnd_act(void) { /* activation values are -127..127 */
    int8_t v = (int8_t)(rnd() & 0xff);
    return v == -128 ? -127 : v;
}

static void fix_q8_K(block_q8_K *b) {
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += b->qs[16 * g + l];
        b->bsums[g] = (int16_t)s;
    }
}

/* Fills n elements of `type` with random valid data. unit: all scales 1 (and mins 1), so every
   dot is an exact small integer. */
static void fill_random(int32_t type, void *dst, int64_t n, int unit) {
    int64_t nb = n / emb_type_block_elems(type);
    uint8_t *bytes = dst;
    for (int64_t i = 0; i < emb_row_bytes(type, n); i++) bytes[i] = (uint8_t)rnd();
    emb_fp16 one = emb_fp32_to_fp16(1.0f);
    for (int64_t i = 0; i < nb; i++) {
        switch (type) {
        case EMB_TYPE_F32: ((float *)dst)[i] = unit ? (float)((int)(rnd() % 21) - 10) : rndf(); break;
        case EMB_TYPE_F16:
            ((emb_fp16 *)dst)[i] = emb_fp32_to_fp16(unit ? (float)((int)(rnd() % 21) - 10) : rndf());
            break;
        case EMB_TYPE_BF16:
            ((emb_bf16 *)dst)[i] = emb_fp32_to_bf16(unit ? (float)((int)(rnd() % 21) - 10) : rndf());
            break;
        case EMB_TYPE_Q4_0: ((block_q4_0 *)dst)[i].d = unit ? one : rnd_scale(); break;
        case EMB_TYPE_Q4_1:
            ((block_q4_1 *)dst)[i].d = unit ? one : rnd_scale();
            ((block_q4_1 *)dst)[i].m = unit ? one : rnd_scale();
            break;
        case EMB_TYPE_Q5_0: ((block_q5_0 *)dst)[i].d = unit ? one : rnd_scale(); break;
        case EMB_TYPE_Q5_1:
            ((block_q5_1 *)dst)[i].d = unit ? one : rnd_scale();
            ((block_q5_1 *)dst)[i].m = unit ? one : rnd_scale();
            break;
        case EMB_TYPE_Q8_0: {
            block_q8_0 *b = &((block_q8_0 *)dst)[i];
            b->d = unit ? one : rnd_scale();
            break;
        }
        case EMB_TYPE_Q4_K:
            ((block_q4_K *)dst)[i].d = unit ? one : rnd_scale();
            ((block_q4_K *)dst)[i].dmin = unit ? one : rnd_scale();
            break;
        case EMB_TYPE_Q5_K:
            ((block_q5_K *)dst)[i].d = unit ? one : rnd_scale();
            ((block_q5_K *)dst)[i].dmin = unit ? one : rnd_scale();
            break;
        case EMB_TYPE_Q6_K: ((block_q6_K *)dst)[i].d = unit ? one : rnd_scale(); break;
        case EMB_TYPE_Q8_K: {
            block_q8_K *b = &((block_q8_K *)dst)[i];
            b->d = unit ? 1.0f : fabsf(rndf()) * 0.01f + 1e-4f;
            for (int j = 0; j < QK_K; j++) b->qs[j] = rnd_act();
            fix_q8_K(b);
            break;
        }
        }
    }
}

/* Random activations of type (Q8_0 blocks as from_float would make them: values -127..127). In unit
   mode the values are -3..3 so that every dot stays below 2^24 and is exact in float. */
static void fill_activations(int32_t type, void *dst, int64_t n, int unit) {
    fill_random(type, dst, n, unit);
    if (type == EMB_TYPE_Q8_0) {
        block_q8_0 *b = dst;
        for (int64_t i = 0; i < n / QK8_0; i++)
            for (int j = 0; j < QK8_0; j++) {
                if (b[i].qs[j] == -128) b[i].qs[j] = -127;
                if (unit) b[i].qs[j] = (int8_t)(b[i].qs[j] % 4);
            }
    }
    if (type == EMB_TYPE_Q8_K && unit) {
        block_q8_K *b = dst;
        for (int64_t i = 0; i < n / QK_K; i++) {
            for (int j = 0; j < QK_K; j++) b[i].qs[j] = (int8_t)(b[i].qs[j] % 4);
            fix_q8_K(&b[i]);
        }
    }
}

/* Unit mode: small sub-block scales too (K types), for the same reason. */
static void shrink_scales(int32_t type, void *x, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t *s = NULL;
        if (type == EMB_TYPE_Q4_K) s = ((block_q4_K *)x)[i].scales;
        if (type == EMB_TYPE_Q5_K) s = ((block_q5_K *)x)[i].scales;
        if (s)
            for (int j = 0; j < K_SCALE_SIZE; j++) s[j] &= 0x33; /* every 6-bit field <= 3 */
        if (type == EMB_TYPE_Q6_K)
            for (int j = 0; j < 16; j++) ((block_q6_K *)x)[i].scales[j] %= 3;
    }
}

/* Zeroes the quant fields so that to_float yields only the per-element offset (the mins). */
static void zero_quants(int32_t type, void *x, int64_t n) {
    int64_t nb = n / emb_type_block_elems(type);
    for (int64_t i = 0; i < nb; i++) {
        switch (type) {
        case EMB_TYPE_Q4_1: memset(((block_q4_1 *)x)[i].qs, 0, 16); break;
        case EMB_TYPE_Q5_1:
            memset(((block_q5_1 *)x)[i].qs, 0, 16);
            memset(((block_q5_1 *)x)[i].qh, 0, 4);
            break;
        case EMB_TYPE_Q4_K: memset(((block_q4_K *)x)[i].qs, 0, 128); break;
        case EMB_TYPE_Q5_K:
            memset(((block_q5_K *)x)[i].qs, 0, 128);
            memset(((block_q5_K *)x)[i].qh, 0, 32);
            break;
        default: memset(x, 0, (size_t)emb_row_bytes(type, n)); return;
        }
    }
}

static int cpu_levels(int *levels) {
    int n = 0;
    for (int l = EMB_SIMD_SCALAR; l < EMB_SIMD_N_LEVELS; l++)
        if (emb_simd_can_run(l)) levels[n++] = l;
    return n;
}

/* ---- known answers --------------------------------------------------------------------------- */

/* Packers written from the format descriptions, the inverse direction of the kernels. */
static void pack_q4(uint8_t *qs, const int *q) { /* 32 values 0..15 */
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
}
static void pack_qh32(uint8_t *qh, const int *q) { /* bit j = fifth bit of element j */
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}
static void pack_k_scales(uint8_t *s, const int *sc, const int *m) { /* 8 each, 0..63 */
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}
static void pack_k_qs(uint8_t *qs, uint8_t *qh, const int *q) { /* 256 values, 0..15 or 0..31 */
    memset(qs, 0, 128);
    if (qh) memset(qh, 0, 32);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, l = e % 32, c = j / 2;
        qs[32 * c + l] |= (uint8_t)((q[e] & 15) << (4 * (j & 1)));
        if (qh) qh[l] |= (uint8_t)(((q[e] >> 4) & 1) << j);
    }
}
static void pack_q6_K(block_q6_K *b, const int *q) { /* 256 values 0..63 */
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
        b->ql[64 * h + l + 32 * (g & 1)] |= (uint8_t)((q[e] & 15) << (4 * (g >> 1)));
        b->qh[32 * h + l] |= (uint8_t)(((q[e] >> 4) & 3) << (2 * g));
    }
}

static int check_row(const char *what, int32_t type, const void *blk, const float *want, int n) {
    float got[256];
    int bad = 0;
    for (int li = 0; li < 5; li++) {
        const emb_type_traits *t = emb_get_type_traits_level(type, li);
        if (!t || (li != 0 && li > emb_simd_detect())) continue;
        if (emb_simd_detect() == EMB_SIMD_NEON && li != 0 && li != EMB_SIMD_NEON) continue;
        t->to_float(blk, got, n);
        for (int i = 0; i < n; i++)
            if (got[i] != want[i]) {
                if (bad++ < 3)
                    fprintf(stderr, "%s level %d elem %d: got %g want %g\n", what, li, i, got[i],
                            want[i]);
            }
    }
    CHECK(bad == 0, "%s known answer: %d mismatches", what, bad);
    return bad;
}

static void test_known_answers(void) {
    int q[256], sc[8], mn[8];
    float want[256];
    /* scales chosen so every product and sum is exact in float */
    const float d = 0.5f, m = -1.25f, dmin = 0.25f;
    for (int i = 0; i < 256; i++) q[i] = (i * 7 + 3) % 16;

    block_q4_0 b40 = {emb_fp32_to_fp16(d), {0}};
    pack_q4(b40.qs, q);
    for (int i = 0; i < 32; i++) want[i] = d * (float)(q[i] - 8);
    check_row("q4_0", EMB_TYPE_Q4_0, &b40, want, 32);

    block_q4_1 b41 = {emb_fp32_to_fp16(d), emb_fp32_to_fp16(m), {0}};
    pack_q4(b41.qs, q);
    for (int i = 0; i < 32; i++) want[i] = d * (float)q[i] + m;
    check_row("q4_1", EMB_TYPE_Q4_1, &b41, want, 32);

    for (int i = 0; i < 256; i++) q[i] = (i * 13 + 5) % 32;
    block_q5_0 b50 = {emb_fp32_to_fp16(d), {0}, {0}};
    pack_q4(b50.qs, (int[32]){0}); /* cleared, then refilled with the low nibbles below */
    {
        int lo[32];
        for (int i = 0; i < 32; i++) lo[i] = q[i] & 15;
        pack_q4(b50.qs, lo);
        pack_qh32(b50.qh, q);
        for (int i = 0; i < 32; i++) want[i] = d * (float)(q[i] - 16);
        check_row("q5_0", EMB_TYPE_Q5_0, &b50, want, 32);

        block_q5_1 b51 = {emb_fp32_to_fp16(d), emb_fp32_to_fp16(m), {0}, {0}};
        pack_q4(b51.qs, lo);
        pack_qh32(b51.qh, q);
        for (int i = 0; i < 32; i++) want[i] = d * (float)q[i] + m;
        check_row("q5_1", EMB_TYPE_Q5_1, &b51, want, 32);
    }

    block_q8_0 b80;
    b80.d = emb_fp32_to_fp16(d);
    for (int i = 0; i < 32; i++) b80.qs[i] = (int8_t)(i * 8 - 128);
    for (int i = 0; i < 32; i++) want[i] = d * (float)(i * 8 - 128);
    check_row("q8_0", EMB_TYPE_Q8_0, &b80, want, 32);

    /* K types: distinct scales/mins per sub-block, including values >= 16 and 63 */
    for (int j = 0; j < 8; j++) {
        sc[j] = (j * 11 + 7) % 64;
        mn[j] = (j * 23 + 63) % 64;
    }
    for (int i = 0; i < 256; i++) q[i] = (i * 5 + i / 7) % 16;
    block_q4_K b4k;
    b4k.d = emb_fp32_to_fp16(d);
    b4k.dmin = emb_fp32_to_fp16(dmin);
    pack_k_scales(b4k.scales, sc, mn);
    pack_k_qs(b4k.qs, NULL, q);
    for (int i = 0; i < 256; i++) want[i] = d * (float)sc[i / 32] * (float)q[i] - dmin * (float)mn[i / 32];
    check_row("q4_K", EMB_TYPE_Q4_K, &b4k, want, 256);

    for (int i = 0; i < 256; i++) q[i] = (i * 5 + i / 3) % 32;
    block_q5_K b5k;
    b5k.d = emb_fp32_to_fp16(d);
    b5k.dmin = emb_fp32_to_fp16(dmin);
    pack_k_scales(b5k.scales, sc, mn);
    pack_k_qs(b5k.qs, b5k.qh, q);
    for (int i = 0; i < 256; i++) want[i] = d * (float)sc[i / 32] * (float)q[i] - dmin * (float)mn[i / 32];
    check_row("q5_K", EMB_TYPE_Q5_K, &b5k, want, 256);

    for (int i = 0; i < 256; i++) q[i] = (i * 37 + i / 5) % 64;
    block_q6_K b6k;
    b6k.d = emb_fp32_to_fp16(d);
    for (int s = 0; s < 16; s++) b6k.scales[s] = (int8_t)(s * 17 - 128);
    pack_q6_K(&b6k, q);
    for (int i = 0; i < 256; i++) want[i] = d * (float)b6k.scales[i / 16] * (float)(q[i] - 32);
    check_row("q6_K", EMB_TYPE_Q6_K, &b6k, want, 256);

    block_q8_K b8k;
    b8k.d = 0.125f;
    for (int i = 0; i < 256; i++) b8k.qs[i] = (int8_t)((i * 3) % 255 - 127);
    for (int i = 0; i < 256; i++) want[i] = 0.125f * (float)b8k.qs[i];
    check_row("q8_K", EMB_TYPE_Q8_K, &b8k, want, 256);

    /* float types */
    emb_fp16 h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, 2^-24, 65504 */
    float hw[4] = {1.0f, -2.0f, ldexpf(1.0f, -24), 65504.0f};
    check_row("f16", EMB_TYPE_F16, h, hw, 4);
    emb_bf16 bh[3] = {0x3f80, 0xc040, 0x0001}; /* 1, -3, smallest subnormal */
    float bw[3] = {1.0f, -3.0f, bitsf(0x00010000u)};
    check_row("bf16", EMB_TYPE_BF16, bh, bw, 3);
}

/* ---- fp16 / bf16 ----------------------------------------------------------------------------- */

static double fp16_value(uint16_t h) { /* independent decoding for finite values */
    int e = (h >> 10) & 31, mant = h & 1023;
    double v = e == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, e - 25);
    return (h & 0x8000) ? -v : v;
}

static void test_fp16_exhaustive(void) {
    int bad_dec = 0, bad_rt = 0, bad_round = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = emb_fp16_to_fp32((emb_fp16)h);
        int e = (h >> 10) & 31, mant = h & 1023;
        if (e == 31 && mant) {
            uint32_t u = fbits(f);
            int ok = isnan(f) && (u & 0x00400000u) && ((u >> 13) & 0x1ff) == (uint32_t)(mant & 0x1ff) &&
                     (u >> 31) == (h >> 15);
            if (!ok) bad_dec++;
            emb_fp16 back = emb_fp32_to_fp16(f);
            if (back != (emb_fp16)(h | 0x200)) bad_rt++;
            continue;
        }
        double want = e == 31 ? ((h & 0x8000) ? -INFINITY : INFINITY) : fp16_value((uint16_t)h);
        if ((double)f != want || !!signbit(f) != !!(h & 0x8000)) bad_dec++;
        if (emb_fp32_to_fp16(f) != h) bad_rt++;
        /* rounding between h and its successor (positive, finite, successor finite) */
        if (!(h & 0x8000) && h < 0x7bff) {
            double a = fp16_value((uint16_t)h), b = fp16_value((uint16_t)(h + 1));
            float mid = (float)((a + b) / 2); /* exact: 12 significant bits */
            uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (emb_fp32_to_fp16(mid) != even) bad_round++;
            if (emb_fp32_to_fp16(nextafterf(mid, 0.0f)) != h) bad_round++;
            if (emb_fp32_to_fp16(nextafterf(mid, INFINITY)) != h + 1) bad_round++;
            if (emb_fp32_to_fp16(-mid) != (even | 0x8000)) bad_round++;
        }
    }
    CHECK(bad_dec == 0, "fp16 decode: %d wrong", bad_dec);
    CHECK(bad_rt == 0, "fp16 round trip: %d wrong", bad_rt);
    CHECK(bad_round == 0, "fp16 round to nearest even: %d wrong", bad_round);
    /* overflow and underflow edges */
    CHECK(emb_fp32_to_fp16(65519.996f) == 0x7bff, "65519.996 -> max");
    CHECK(emb_fp32_to_fp16(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(emb_fp32_to_fp16(1e30f) == 0x7c00 && emb_fp32_to_fp16(-1e30f) == 0xfc00, "big -> inf");
    CHECK(emb_fp32_to_fp16(INFINITY) == 0x7c00, "inf");
    CHECK(emb_fp32_to_fp16(ldexpf(1.0f, -25)) == 0x0000, "2^-25 ties to zero");
    CHECK(emb_fp32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001, "above 2^-25 -> min");
    CHECK(emb_fp32_to_fp16(ldexpf(1.0f, -140)) == 0x0000, "f32 tiny -> 0");
    CHECK(emb_fp32_to_fp16(bitsf(0x00000001u)) == 0x0000, "f32 subnormal -> 0");
    CHECK(emb_fp32_to_fp16(-0.0f) == 0x8000, "-0");
    emb_fp16 qn = emb_fp32_to_fp16(bitsf(0x7f800001u)); /* sNaN with payload only in low bits */
    CHECK((qn & 0x7c00) == 0x7c00 && (qn & 0x3ff) != 0, "NaN stays NaN: %04x", qn);
}

static void test_bf16_exhaustive(void) {
    int bad = 0, bad_rt = 0, bad_round = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = emb_bf16_to_fp32((emb_bf16)h);
        if (fbits(f) != h << 16) bad++;
        int nan = ((h >> 7) & 0xff) == 0xff && (h & 0x7f);
        emb_bf16 back = emb_fp32_to_bf16(f);
        if (nan ? back != (h | 0x40) : back != h) bad_rt++;
        if (!nan && (h & 0x7fff) < 0x7f7f) { /* finite with a finite successor */
            uint32_t lo = h << 16;
            float mid = bitsf(lo | 0x8000u); /* exactly halfway to the next bf16 */
            uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (emb_fp32_to_bf16(mid) != even) bad_round++;
            if (emb_fp32_to_bf16(bitsf(lo | 0x7fffu)) != h) bad_round++;
            if (emb_fp32_to_bf16(bitsf(lo | 0x8001u)) != (uint16_t)(h + 1)) bad_round++;
        }
    }
    CHECK(bad == 0, "bf16 decode: %d wrong", bad);
    CHECK(bad_rt == 0, "bf16 round trip: %d wrong", bad_rt);
    CHECK(bad_round == 0, "bf16 round to nearest even: %d wrong", bad_round);
    CHECK(emb_fp32_to_bf16(bitsf(0x7f7fffffu)) == 0x7f80, "max float rounds to inf");
}

/* ---- levels against scalar ------------------------------------------------------------------- */

static const int64_t k_lengths[] = {1, 2, 3, 7, 16};

static void test_levels_match_scalar(void) {
    int levels[8], nl = cpu_levels(levels);
    enum { MAXE = 16 * 256 };
    static uint8_t x[MAXE * 4 + 64], y[MAXE * 4 + 64];
    static float fa[MAXE], fb[MAXE], off[MAXE];
    for (int ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        int32_t type = k_weight_types[ti];
        const emb_type_traits *ref = emb_get_type_traits_level(type, EMB_SIMD_SCALAR);
        CHECK(ref && ref->to_float && ref->vec_dot, "%s: scalar traits", emb_type_name(type));
        if (!ref) continue;
        int64_t be = ref->blck_elems;
        int32_t vt = ref->vec_dot_type;
        for (int li = 0; li < (int)(sizeof k_lengths / sizeof k_lengths[0]); li++) {
            int64_t n = k_lengths[li] * (be == 1 ? 33 : be); /* float types: odd lengths */
            for (int unit = 0; unit < 2; unit++) {
                fill_random(type, x, n, unit);
                if (unit) shrink_scales(type, x, n);
                fill_activations(vt, y, n, unit);
                ref->to_float(x, fa, n);
                float sref;
                ref->vec_dot(n, &sref, x, y);
                /* the magnitude the rounding errors scale with: |x| and the mins, times |y| */
                const emb_type_traits *yt = emb_get_type_traits_level(vt, EMB_SIMD_SCALAR);
                yt->to_float(y, fb, n);
                static uint8_t xz[MAXE * 4 + 64];
                memcpy(xz, x, (size_t)emb_row_bytes(type, n));
                zero_quants(type, xz, n);
                ref->to_float(xz, off, n);
                double mag = 0.0, dot = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    mag += (fabs(fa[i]) + fabs(off[i])) * fabs(fb[i]);
                    dot += (double)fa[i] * (double)fb[i];
                }
                /* scalar reference against the double dot of the dequantised operands */
                CHECK(fabs((double)sref - dot) <= 1e-5 * mag + 1e-30, "%s n=%lld: scalar %.9g vs double %.9g",
                      emb_type_name(type), (long long)n, sref, dot);
                if (unit)
                    CHECK(sref == (float)dot, "%s n=%lld unit scales: scalar %.9g vs exact %.9g",
                          emb_type_name(type), (long long)n, sref, dot);
                for (int l = 1; l < nl; l++) {
                    const emb_type_traits *t = emb_get_type_traits_level(type, levels[l]);
                    static float fl[MAXE];
                    t->to_float(x, fl, n);
                    CHECK(memcmp(fl, fa, (size_t)n * 4) == 0, "%s n=%lld %s: to_float differs",
                          emb_type_name(type), (long long)n, emb_simd_name(levels[l]));
                    float s;
                    t->vec_dot(n, &s, x, y);
                    if (unit)
                        CHECK(s == sref, "%s n=%lld %s unit: %.9g vs %.9g", emb_type_name(type),
                              (long long)n, emb_simd_name(levels[l]), s, sref);
                    else
                        CHECK(fabs((double)s - (double)sref) <= 1e-5 * mag + 1e-30,
                              "%s n=%lld %s: vec_dot %.9g vs scalar %.9g (mag %g)", emb_type_name(type),
                              (long long)n, emb_simd_name(levels[l]), s, sref, mag);
                }
            }
        }
    }
}

/* F16/BF16 rows over every bit pattern: each level converts exactly as the scalar reference. */
static void test_float_rows_exhaustive(void) {
    int levels[8], nl = cpu_levels(levels);
    static emb_fp16 h[65536];
    static float ref[65536], got[65536];
    for (uint32_t i = 0; i < 65536; i++) h[i] = (emb_fp16)i;
    int32_t types[2] = {EMB_TYPE_F16, EMB_TYPE_BF16};
    for (int k = 0; k < 2; k++) {
        emb_get_type_traits_level(types[k], EMB_SIMD_SCALAR)->to_float(h, ref, 65536);
        for (int l = 1; l < nl; l++) {
            emb_get_type_traits_level(types[k], levels[l])->to_float(h, got, 65536);
            CHECK(memcmp(ref, got, sizeof ref) == 0, "%s %s to_float exhaustive",
                  emb_type_name(types[k]), emb_simd_name(levels[l]));
        }
    }
    /* from_float: fp16/bf16 neighbours, midpoints and specials */
    enum { NF = 4096 };
    static float src[NF];
    static emb_fp16 o1[NF], o2[NF];
    for (int i = 0; i < NF; i++) {
        uint32_t u = rnd();
        switch (i % 4) {
        case 0: src[i] = bitsf(u); break;                         /* any pattern incl. NaN */
        case 1: src[i] = bitsf((u & 0x8fffffffu) | 0x30000000u); break; /* fp16 range */
        case 2: src[i] = bitsf((u & 0x80ff0000u) | 0x38008000u); break; /* bf16-ish ties */
        default: src[i] = bitsf((u & 0x807fe000u) | 0x38001000u); break; /* fp16 ties */
        }
    }
    for (int k = 0; k < 2; k++) {
        emb_get_type_traits_level(types[k], EMB_SIMD_SCALAR)->from_float(src, o1, NF);
        for (int l = 1; l < nl; l++) {
            emb_get_type_traits_level(types[k], levels[l])->from_float(src, o2, NF);
            CHECK(memcmp(o1, o2, sizeof o1) == 0, "%s %s from_float", emb_type_name(types[k]),
                  emb_simd_name(levels[l]));
        }
    }
}

/* ---- activation quantisation ----------------------------------------------------------------- */

static void test_activation_quant(void) {
    int levels[8], nl = cpu_levels(levels);
    enum { N = 7 * 256 };
    static float src[N], back[N];
    static uint8_t q1[N * 2], q2[N * 2];
    for (int i = 0; i < N; i++) src[i] = rndf() * (i % 3 == 0 ? 100.0f : 0.5f);
    for (int i = 256; i < 512; i++) src[i] = 0.0f;  /* an all-zero block of each size */
    src[600] = 3e4f;                                /* one dominant value */
    int32_t types[2] = {EMB_TYPE_Q8_0, EMB_TYPE_Q8_K};
    for (int k = 0; k < 2; k++) {
        int32_t type = types[k];
        const emb_type_traits *t = emb_get_type_traits_level(type, EMB_SIMD_SCALAR);
        CHECK(t && t->from_float, "%s from_float", emb_type_name(type));
        t->from_float(src, q1, N);
        t->to_float(q1, back, N);
        int64_t be = t->blck_elems;
        int bad = 0, bad_range = 0, bad_sums = 0;
        for (int64_t b = 0; b < N / be; b++) {
            float amax = 0.0f;
            for (int64_t j = 0; j < be; j++) amax = fmaxf(amax, fabsf(src[b * be + j]));
            float d = amax / 127.0f;
            /* half a step, plus (Q8_0) the fp16 rounding of d applied to |q| <= 127 */
            double bound = type == EMB_TYPE_Q8_0 ? 0.5 * d + 127.0 * d * ldexp(1.0, -11) : 0.5 * d * (1 + 1e-6);
            for (int64_t j = 0; j < be; j++)
                if (fabs((double)src[b * be + j] - back[b * be + j]) > bound * (1 + 1e-6)) bad++;
            const int8_t *qs = type == EMB_TYPE_Q8_0 ? ((block_q8_0 *)q1)[b].qs : ((block_q8_K *)q1)[b].qs;
            for (int64_t j = 0; j < be; j++)
                if (qs[j] < -127) bad_range++;
            if (type == EMB_TYPE_Q8_K) {
                const block_q8_K *kb = &((block_q8_K *)q1)[b];
                for (int g = 0; g < 16; g++) {
                    int s = 0;
                    for (int l = 0; l < 16; l++) s += kb->qs[16 * g + l];
                    if (s != kb->bsums[g]) bad_sums++;
                }
            }
        }
        CHECK(bad == 0, "%s round trip: %d values beyond half a step", emb_type_name(type), bad);
        CHECK(bad_range == 0, "%s: %d values at -128", emb_type_name(type), bad_range);
        CHECK(bad_sums == 0, "%s: %d wrong bsums", emb_type_name(type), bad_sums);
        for (int l = 1; l < nl; l++) {
            memset(q2, 0, sizeof q2);
            emb_get_type_traits_level(type, levels[l])->from_float(src, q2, N);
            CHECK(memcmp(q1, q2, (size_t)emb_row_bytes(type, N)) == 0, "%s %s from_float differs",
                  emb_type_name(type), emb_simd_name(levels[l]));
        }
    }
    /* non-finite inputs: every level agrees with the reference and never emits -128 */
    {
        static float bad_src[2 * 256];
        for (int i = 0; i < 512; i++) bad_src[i] = rndf();
        bad_src[3] = NAN;
        bad_src[40] = INFINITY; /* second Q8_0 block, first Q8_K block: scale infinite */
        bad_src[300] = -INFINITY;
        bad_src[301] = NAN;
        for (int k = 0; k < 2; k++) {
            const emb_type_traits *t0 = emb_get_type_traits_level(types[k], EMB_SIMD_SCALAR);
            t0->from_float(bad_src, q1, 512);
            int64_t nbytes = emb_row_bytes(types[k], 512), be = t0->blck_elems, bb = t0->blck_bytes;
            int neg128 = 0;
            for (int64_t b = 0; b < 512 / be; b++) {
                const int8_t *qs = (const int8_t *)(q1 + b * bb + (types[k] == EMB_TYPE_Q8_0 ? 2 : 4));
                for (int64_t j = 0; j < be; j++) neg128 += qs[j] == -128;
            }
            CHECK(neg128 == 0, "%s non-finite input: %d values at -128", emb_type_name(types[k]), neg128);
            for (int l = 1; l < nl; l++) {
                emb_get_type_traits_level(types[k], levels[l])->from_float(bad_src, q2, 512);
                CHECK(memcmp(q1, q2, (size_t)nbytes) == 0, "%s %s non-finite input differs", emb_type_name(types[k]),
                      emb_simd_name(levels[l]));
            }
        }
    }
    /* the end-to-end path: float activations quantised, dotted with each quantised weight type;
       the error is bounded by the activation quantisation step */
    for (int ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        int32_t type = k_weight_types[ti];
        const emb_type_traits *wt = emb_get_type_traits(type);
        const emb_type_traits *at = emb_get_type_traits(wt->vec_dot_type);
        if (!wt->is_quantized) continue;
        int64_t n = 3 * 256;
        static uint8_t w[N * 2];
        static float wf[N], yq[N];
        fill_random(type, w, n, 0);
        wt->to_float(w, wf, n);
        at->from_float(src, q1, n);
        at->to_float(q1, yq, n);
        double exact = 0.0, bound = 0.0, mag = 0.0;
        int64_t ab = at->blck_elems;
        for (int64_t b = 0; b < n / ab; b++) {
            float amax = 0.0f;
            for (int64_t j = 0; j < ab; j++) amax = fmaxf(amax, fabsf(src[b * ab + j]));
            double step = amax / 127.0 * (0.5 + 127.0 * ldexp(1.0, -11));
            for (int64_t j = 0; j < ab; j++) {
                int64_t i = b * ab + j;
                exact += (double)wf[i] * src[i];
                bound += fabs(wf[i]) * step;
                mag += fabs(wf[i] * src[i]) + fabs(wf[i] * yq[i]);
            }
        }
        float s;
        wt->vec_dot(n, &s, w, q1);
        CHECK(fabs(s - exact) <= bound + 1e-4 * mag, "%s: quantised dot %.6g vs exact %.6g, bound %.3g",
              emb_type_name(type), s, exact, bound);
    }
}

/* ---- sizes ----------------------------------------------------------------------------------- */

static void test_sizes(void) {
    struct { int32_t type; int64_t n, want; } rows[] = {
        {EMB_TYPE_F32, 0, 0},           {EMB_TYPE_F32, 3, 12},
        {EMB_TYPE_F16, 5, 10},          {EMB_TYPE_BF16, 7, 14},
        {EMB_TYPE_Q4_0, 32, 18},        {EMB_TYPE_Q4_0, 64, 36},
        {EMB_TYPE_Q4_0, 33, -1},        {EMB_TYPE_Q4_0, -32, -1},
        {EMB_TYPE_Q4_1, 32, 20},        {EMB_TYPE_Q5_0, 32, 22},
        {EMB_TYPE_Q5_1, 32, 24},        {EMB_TYPE_Q8_0, 384, 408},
        {EMB_TYPE_Q4_K, 256, 144},      {EMB_TYPE_Q4_K, 384, -1},
        {EMB_TYPE_Q5_K, 512, 352},      {EMB_TYPE_Q6_K, 1536, 1260},
        {EMB_TYPE_Q8_K, 256, 292},      {EMB_TYPE_F32, INT64_MAX / 4, (INT64_MAX / 4) * 4},
        {EMB_TYPE_F32, INT64_MAX / 4 + 1, -1},
        {EMB_TYPE_Q8_K, (INT64_MAX / 256) * 256, -1},
        {EMB_TYPE_Q4_0, INT64_MIN, -1}, {4, 32, -1},
        {-1, 32, -1},                   {31, 32, -1},
        {1000000, 1, -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t got = emb_row_bytes(rows[i].type, rows[i].n);
        CHECK(got == rows[i].want, "emb_row_bytes(%d, %lld) = %lld, want %lld", rows[i].type,
              (long long)rows[i].n, (long long)got, (long long)rows[i].want);
    }
    int32_t unknown[] = {-5, 4, 5, 9, 10, 11, 16, 29, 31, 64, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int32_t t = unknown[i];
        CHECK(!emb_type_supported(t) && emb_type_block_elems(t) == 0 && emb_type_block_bytes(t) == 0 &&
                  strcmp(emb_type_name(t), "unknown") == 0 && emb_get_type_traits(t) == NULL &&
                  emb_get_type_traits_level(t, EMB_SIMD_SCALAR) == NULL,
              "unknown type %d rejected", t);
    }
    CHECK(!emb_type_supported(EMB_TYPE_Q8_K), "q8_K is not a weight type");
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        int32_t t = k_weight_types[i];
        const emb_type_traits *tr = emb_get_type_traits(t);
        CHECK(emb_type_supported(t) && tr && tr->blck_bytes == emb_type_block_bytes(t) &&
                  tr->blck_elems == emb_type_block_elems(t) && strcmp(tr->name, emb_type_name(t)) == 0,
              "%s traits consistent", emb_type_name(t));
    }
    CHECK(emb_get_type_traits_level(EMB_TYPE_F32, -1) == NULL && emb_get_type_traits_level(EMB_TYPE_F32, EMB_SIMD_N_LEVELS) == NULL,
          "unknown level rejected");
    CHECK(strcmp(emb_type_name(EMB_TYPE_Q4_K), "q4_K") == 0 && strcmp(emb_type_name(EMB_TYPE_BF16), "bf16") == 0,
          "names");
}

int main(void) {
    test_sizes();
    test_known_answers();
    test_fp16_exhaustive();
    test_bf16_exhaustive();
    test_float_rows_exhaustive();
    test_levels_match_scalar();
    test_activation_quant();
    char extra[64];
    snprintf(extra, sizeof extra, " (levels up to %s)", emb_simd_name(emb_simd_detect()));
    return check_summary("test_quants", extra);
}
