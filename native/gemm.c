/*
 * gemm.c - packing of weight matrices, the threaded emb_matmul driver, and the scalar reference
 * kernels every SIMD variant in gemm_<isa>.c is tested against.
 *
 * I8 path: weights are re-packed once at load to int8 with one scale per (output row, 32-block):
 * losslessly for the symmetric 32-blocks of Q8_0, Q5_0 and Q4_0 (their integers and d) and for the
 * affine ones of Q4_1, Q5_1, Q4_K and Q5_K (their unsigned integers, scale and offset: weight =
 * q * scale + wmin, the offset's share of a product being wmin times the block's activation sum),
 * by dequantising and requantising (scale max|w| / 127) otherwise (Q6_K, float types). Exact
 * unsigned 4-bit integers also keep |q| <= 16, which the AVX2 kernel multiplies twice as fast. Each call quantises the activations
 * to int8 with one scale per (token row, 32-block). The kernels take the exact int32 sum of each
 * block and accumulate acc = fmaf(isum, ws * sa, acc) block by block (BERT's activations have
 * outlier channels: one scale per row costs ~0.5% cosine, per 32-block ~0.03%). Because the
 * integer sums are exact and the float steps are the same, every level computes the scalar
 * reference's numbers.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "gemm.h"
#include "gemm_impl.h"
#include "ops.h"
#include "pool.h"
#include "quants.h"

/* Rows of M computed per pass over a thread's weights (their activations stay in L2). */
#define EMB_MC 96

static int set_err(char *err, size_t err_len, const char *msg, long long a, long long b) {
    if (err && err_len) snprintf(err, err_len, msg, a, b);
    return -1;
}

static void *alloc64(int64_t bytes) {
    if (bytes <= 0) bytes = 64;
    int64_t rounded;
    if (__builtin_add_overflow(bytes, 63, &rounded)) return NULL;
    rounded &= ~(int64_t)63;
    if ((uint64_t)rounded > (uint64_t)SIZE_MAX) return NULL;
    return aligned_alloc(64, (size_t)rounded);
}

/* Zeroed, 64-byte aligned: the kernels load scale, rsum and bias with aligned vector loads. */
static void *alloc64_zero(int64_t bytes) {
    void *p = alloc64(bytes);
    if (p) memset(p, 0, (size_t)(bytes > 0 ? bytes : 0));
    return p;
}

int32_t emb_matrix_kind_for(int32_t type, int32_t weight_mode) {
    if (type == EMB_TYPE_F32 || type == EMB_TYPE_F16 || type == EMB_TYPE_BF16) return EMB_MAT_F32;
    return weight_mode == EMB_WEIGHTS_BLOCKS ? EMB_MAT_BLOCKS : EMB_MAT_I8;
}

void emb_matrix_free(emb_matrix *m) {
    if (!m) return;
    if (!m->in_arena) {
        free(m->data);
        free(m->scale);
        free(m->rsum);
        free(m->wmin);
        free(m->bias);
        free(m->panel_wmax);
    }
    if (m->c_heap) free(m->c_off);
    memset(m, 0, sizeof *m);
}

/* ---- Arena ------------------------------------------------------------------------------------ */

#define EMB_HUGE_PAGE ((size_t)2 << 20)

int emb_arena_init(emb_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
#if defined(__unix__) || defined(__APPLE__)
    if (cap == 0 || cap > SIZE_MAX / 2 - 2 * EMB_HUGE_PAGE) return -1;
    cap = (cap + EMB_HUGE_PAGE - 1) & ~(EMB_HUGE_PAGE - 1);
    size_t len = cap + EMB_HUGE_PAGE; /* room to align the start to a huge page */
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
    flags |= MAP_NORESERVE;
#endif
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (map == MAP_FAILED) return -1;
    uintptr_t start = ((uintptr_t)map + EMB_HUGE_PAGE - 1) & ~(uintptr_t)(EMB_HUGE_PAGE - 1);
    a->map = map;
    a->map_len = len;
    a->base = (uint8_t *)start;
    a->cap = cap;
#ifdef MADV_HUGEPAGE
    madvise(a->base, a->cap, MADV_HUGEPAGE); /* advice only: without THP we get 4 KB pages */
#endif
    return 0;
#else
    (void)cap;
    return -1;
#endif
}

void *emb_arena_alloc(emb_arena *a, int64_t bytes) {
    if (!a || !a->base || bytes < 0) return NULL;
    size_t b = ((size_t)bytes + 63) & ~(size_t)63;
    if ((uint64_t)bytes > SIZE_MAX - 64 || b > a->cap - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += b;
    return p;
}

void emb_arena_trim(emb_arena *a) {
#if defined(__unix__) || defined(__APPLE__)
    if (!a || !a->base) return;
    size_t keep = (a->used + EMB_HUGE_PAGE - 1) & ~(EMB_HUGE_PAGE - 1);
    if (keep == 0) keep = EMB_HUGE_PAGE;
    uint8_t *map_end = (uint8_t *)a->map + a->map_len;
    if (a->base + keep < map_end && munmap(a->base + keep, (size_t)(map_end - (a->base + keep))) == 0) {
        a->map_len = (size_t)(a->base + keep - (uint8_t *)a->map);
        a->cap = keep;
    }
#else
    (void)a;
#endif
}

int emb_arena_owns(const emb_arena *a, const void *p) {
    return a && a->base && (const uint8_t *)p >= a->base && (const uint8_t *)p < a->base + a->cap;
}

void emb_arena_free(emb_arena *a) {
    if (!a) return;
#if defined(__unix__) || defined(__APPLE__)
    if (a->map) munmap(a->map, a->map_len);
#endif
    memset(a, 0, sizeof *a);
}

/* Rounds like the SIMD conversions (current rounding mode: nearest even) and clamps to +-127. */
static inline int quant_i8(float v) {
    long q = lrintf(v);
    return q > 127 ? 127 : q < -127 ? -127 : (int)q;
}

void emb_quant_row_scalar(const float *x, int64_t k, int64_t lda, uint8_t *q, float *sa, int offset128) {
    int off = offset128 ? 128 : 0;
    for (int64_t i0 = 0, b = 0; i0 < k; i0 += EMB_QB, b++) {
        int64_t i1 = i0 + EMB_QB < k ? i0 + EMB_QB : k;
        float amax = 0.0f;
        for (int64_t i = i0; i < i1; i++) {
            float v = fabsf(x[i]);
            amax = v > amax ? v : amax;
        }
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t i = i0; i < i1; i++) q[i] = (uint8_t)(quant_i8(x[i] * inv) + off);
        sa[b] = amax / 127.0f;
    }
    for (int64_t i = k; i < lda; i++) q[i] = (uint8_t)off;
}

void emb_block_sums_scalar(const uint8_t *q, int64_t nb, int offset128, int32_t *isum) {
    for (int64_t b = 0; b < nb; b++) {
        int32_t sum = 0;
        for (int i = 0; i < EMB_QB; i++) {
            const uint8_t v = q[b * EMB_QB + i];
            sum += offset128 ? (int32_t)v - 128 : (int32_t)(int8_t)v;
        }
        isum[b] = sum;
    }
}

#if defined(__SSE2__)
/* SSE2 is part of x86-64 itself, so no dispatch: PSADBW sums 8 unsigned bytes at once, and
   flipping the top bit of signed bytes makes them unsigned (+128). The loop compilers made of the
   scalar form widened the bytes step by step (~40 instructions a block against 8) and took 1-1.6%
   of a forward pass. */
void emb_block_sums(const uint8_t *q, int64_t nb, int offset128, int32_t *isum) {
    const __m128i flip = _mm_set1_epi8((char)(offset128 ? 0 : 0x80)), zero = _mm_setzero_si128();
    for (int64_t b = 0; b < nb; b++) {
        const __m128i lo = _mm_loadu_si128((const __m128i *)(q + b * EMB_QB));
        const __m128i hi = _mm_loadu_si128((const __m128i *)(q + b * EMB_QB + 16));
        const __m128i s = _mm_add_epi64(_mm_sad_epu8(_mm_xor_si128(lo, flip), zero), _mm_sad_epu8(_mm_xor_si128(hi, flip), zero));
        isum[b] = _mm_cvtsi128_si32(s) + _mm_cvtsi128_si32(_mm_srli_si128(s, 8)) - 128 * EMB_QB;
    }
}
#else
void emb_block_sums(const uint8_t *q, int64_t nb, int offset128, int32_t *isum) {
    emb_block_sums_scalar(q, nb, offset128, isum);
}
#endif

/* quant_i8 for |v| <= 127 (plus rounding) in a form compilers vectorise: adding and subtracting
   1.5 * 2^23 rounds to nearest even exactly as lrintf does in the default rounding mode. */
static inline int8_t requant_i8(float v) {
    float r = (v + 12582912.0f) - 12582912.0f;
    r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
    return (int8_t)(int)r;
}

/* Types whose blocks are q * d + min with unsigned q: packed with a wmin per (row, 32-block). */
static int type_affine(int32_t type) {
    return type == EMB_TYPE_Q4_1 || type == EMB_TYPE_Q5_1 || type == EMB_TYPE_Q4_K || type == EMB_TYPE_Q5_K;
}

/* Eight bytes in GGUF's (little-endian) order as one word: the Q4/Q5 blocks are unpacked eight
   values at a time in general registers, portably (a value at a time took a third of the packing). */
static inline uint64_t load_le8(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
#define BYTES8(c) (0x0101010101010101ull * (uint64_t)(uint8_t)(c))

/* Byte t: 16 if bit t of the low byte of bits is set, else 0 (the fifth bits of eight Q5 values).
   Byte t of the product keeps only bit t; adding 0x7f then carries into bit 7 iff it was set. */
static inline uint64_t fifth_bits(uint32_t bits) {
    const uint64_t x = (uint64_t)(bits & 0xffu) * BYTES8(1) & 0x8040201008040201ull;
    return ((x + BYTES8(0x7f)) & BYTES8(0x80)) >> 3;
}

/* Each byte (at most 127) minus c (at most 128), modulo 256: setting bit 7 first keeps a borrow
   from crossing into the next byte. */
static inline uint64_t sub_bytes(uint64_t v, unsigned c) { return ((v | BYTES8(0x80)) - BYTES8(c)) ^ BYTES8(0x80); }

/* The 32 integers of a Q4_0/Q4_1/Q5_0/Q5_1 block: value j < 16 is the low nibble of qs[j], value
   j + 16 its high nibble; bit j of qh (0 for Q4) is value j's fifth bit; minus zero. */
static void nibble_ints(const uint8_t *qs, uint32_t qh, unsigned zero, int8_t q[EMB_QB]) {
    const uint64_t w[2] = {load_le8(qs), load_le8(qs + 8)};
    for (int i = 0; i < 4; i++) {
        uint64_t v = (i < 2 ? w[i] : w[i - 2] >> 4) & BYTES8(0x0f);
        v |= fifth_bits(qh >> (8 * i));
        if (zero) v = sub_bytes(v, zero);
        memcpy(q + 8 * i, &v, 8);
    }
}

/* The integers of 32-block b of a row of `type`, read from the blocks themselves, such that the
   GGUF dequantisation of value i is exactly q[i] * d + mn (mn = 0 for the symmetric types; the
   products of an fp16 and an integer of at most 8 bits, and d * sc of the K types, are exact in
   float, and the dequantisers of quants.c compute these same two roundings). Q8_0, Q5_0, Q4_0:
   q * d; Q4_1, Q5_1: q * d + m; Q4_K, Q5_K: q * (d * sc_j) - dmin * m_j for sub-block j. Returns 0
   if the block has no such form with |q| <= 127 and finite d and mn (a Q8_0 value of -128, an
   inf/NaN scale, another type): the caller requantises. */
static int block_ints(int32_t type, const uint8_t *row, int64_t b, int8_t q[EMB_QB], float *d_out, float *mn_out) {
    float d, mn = 0.0f;
    switch (type) {
    case EMB_TYPE_Q8_0: {
        const block_q8_0 *blk = (const block_q8_0 *)row + b;
        d = emb_fp16_to_fp32(blk->d);
        for (int i = 0; i < EMB_QB; i++) {
            if (blk->qs[i] == -128) return 0;
            q[i] = blk->qs[i];
        }
        break;
    }
    case EMB_TYPE_Q4_0:
    case EMB_TYPE_Q4_1: {
        int affine = type == EMB_TYPE_Q4_1;
        const uint8_t *qs = affine ? ((const block_q4_1 *)row)[b].qs : ((const block_q4_0 *)row)[b].qs;
        d = emb_fp16_to_fp32(affine ? ((const block_q4_1 *)row)[b].d : ((const block_q4_0 *)row)[b].d);
        if (affine) mn = emb_fp16_to_fp32(((const block_q4_1 *)row)[b].m);
        nibble_ints(qs, 0, affine ? 0 : 8, q);
        break;
    }
    case EMB_TYPE_Q5_0:
    case EMB_TYPE_Q5_1: {
        int affine = type == EMB_TYPE_Q5_1;
        const uint8_t *qs = affine ? ((const block_q5_1 *)row)[b].qs : ((const block_q5_0 *)row)[b].qs;
        uint32_t qh;
        memcpy(&qh, affine ? ((const block_q5_1 *)row)[b].qh : ((const block_q5_0 *)row)[b].qh, 4);
        d = emb_fp16_to_fp32(affine ? ((const block_q5_1 *)row)[b].d : ((const block_q5_0 *)row)[b].d);
        if (affine) mn = emb_fp16_to_fp32(((const block_q5_1 *)row)[b].m);
        nibble_ints(qs, qh, affine ? 0 : 16, q);
        break;
    }
    case EMB_TYPE_Q4_K:
    case EMB_TYPE_Q5_K: {
        /* Sub-block j of super-block b / 8; qs byte 32 * (j / 2) + l holds element l of sub-block j
           in its low (j even) or high (j odd) nibble; Q5_K's fifth bit is bit j of qh[l]. */
        const int j = (int)(b % 8), shift = 4 * (j & 1);
        const uint8_t *scales, *qs, *qh = NULL;
        emb_fp16 dh, mh;
        if (type == EMB_TYPE_Q4_K) {
            const block_q4_K *blk = (const block_q4_K *)row + b / 8;
            scales = blk->scales, qs = blk->qs + 32 * (j / 2), dh = blk->d, mh = blk->dmin;
        } else {
            const block_q5_K *blk = (const block_q5_K *)row + b / 8;
            scales = blk->scales, qs = blk->qs + 32 * (j / 2), qh = blk->qh, dh = blk->d, mh = blk->dmin;
        }
        int sc, m;
        emb_k_scale_min(j, scales, &sc, &m);
        d = emb_fp16_to_fp32(dh) * (float)sc;
        mn = -(emb_fp16_to_fp32(mh) * (float)m);
        for (int l = 0; l < EMB_QB; l++)
            q[l] = (int8_t)(((qs[l] >> shift) & 0x0f) | (qh ? ((qh[l] >> j) & 1) << 4 : 0));
        break;
    }
    default:
        return 0;
    }
    if (!isfinite(d) || !isfinite(mn)) return 0;
    /* A zero scale makes every q * d zero: store zero integers so the block's sum is 0 too. */
    if (d == 0.0f) memset(q, 0, EMB_QB);
    *d_out = d;
    *mn_out = mn;
    return 1;
}

/* Buffer sizes of a packed matrix. */
typedef struct {
    int64_t data, scale, rsum, wmin, bias, panel_wmax;
} mat_sizes;

/* affine: some part's type is affine (the matrix then carries a wmin per (row, block), zero for
   the rows of the other parts). gguf_bytes: the raw size, for EMB_MAT_BLOCKS. */
static int sizes_for(int32_t kind, int affine, int64_t n, int64_t k, int64_t gguf_bytes, int has_bias, mat_sizes *s) {
    int64_t npad = emb_panels(n) * EMB_PANEL, kp = emb_i8_kp(k), nb = emb_i8_nb(k), nscale;
    memset(s, 0, sizeof *s);
    switch (kind) {
    case EMB_MAT_I8:
        if (__builtin_mul_overflow(npad, kp, &s->data) || __builtin_mul_overflow(npad, nb, &nscale) ||
            nscale > INT64_MAX / 8)
            return -1;
        s->scale = s->rsum = nscale * 4;
        s->wmin = affine ? nscale * 4 : 0;
        s->panel_wmax = emb_panels(n);
        break;
    case EMB_MAT_F32:
        if (__builtin_mul_overflow(npad, k, &s->data) || s->data > INT64_MAX / 4) return -1;
        s->data *= 4;
        break;
    default:
        s->data = gguf_bytes;
        npad = n;
        break;
    }
    s->bias = has_bias ? npad * 4 : 0;
    return 0;
}

static int64_t round64_i(int64_t x) { return (x + 63) & ~(int64_t)63; }

/* Allocates the matrix's buffers, zeroed: all in the arena if it has room, else on the heap. */
static int alloc_buffers(emb_matrix *m, emb_arena *arena, const mat_sizes *s) {
    int64_t total = 0;
    const int64_t parts[6] = {s->data, s->scale, s->rsum, s->wmin, s->bias, s->panel_wmax};
    for (int i = 0; i < 6; i++) {
        if (parts[i] > INT64_MAX / 2 || total > INT64_MAX / 2) return -1;
        total += round64_i(parts[i]);
    }
    uint8_t *block = arena ? emb_arena_alloc(arena, total) : NULL;
    if (block) {
        m->in_arena = 1;
        m->data = block;
        block += round64_i(s->data);
        if (s->scale) m->scale = (float *)block;
        block += round64_i(s->scale);
        if (s->rsum) m->rsum = (int32_t *)block;
        block += round64_i(s->rsum);
        if (s->wmin) m->wmin = (float *)block;
        block += round64_i(s->wmin);
        if (s->bias) m->bias = (float *)block;
        block += round64_i(s->bias);
        if (s->panel_wmax) m->panel_wmax = block;
        return 0;
    }
    m->data = alloc64_zero(s->data);
    if (s->scale) m->scale = alloc64_zero(s->scale);
    if (s->rsum) m->rsum = alloc64_zero(s->rsum);
    if (s->wmin) m->wmin = alloc64_zero(s->wmin);
    if (s->bias) m->bias = alloc64_zero(s->bias);
    if (s->panel_wmax) m->panel_wmax = alloc64_zero(s->panel_wmax);
    if (!m->data || (s->scale && !m->scale) || (s->rsum && !m->rsum) || (s->wmin && !m->wmin) || (s->bias && !m->bias) ||
        (s->panel_wmax && !m->panel_wmax))
        return -1;
    return 0;
}

/* Row r of a matrix packed from parts: the part's type and the row's bytes. */
typedef struct {
    const emb_matrix_part *parts;
    int nparts;
    int64_t k;
} part_rows;

static const uint8_t *part_row(const part_rows *pr, int64_t r, int32_t *type) {
    for (int i = 0; i < pr->nparts; i++) {
        if (r < pr->parts[i].n) {
            *type = pr->parts[i].type;
            return (const uint8_t *)pr->parts[i].w + r * emb_row_bytes(pr->parts[i].type, pr->k);
        }
        r -= pr->parts[i].n;
    }
    return NULL; /* unreachable: r < the parts' total, checked by the caller */
}

/* The smallest and largest int8 weight of panel p (0 if none is below, or above, 0). */
static void panel_bounds(const emb_matrix *m, int64_t p, int8_t *lo_out, int8_t *hi_out) {
    const int64_t len = EMB_PANEL * emb_i8_kp(m->k);
    const int8_t *w = (const int8_t *)m->data + p * len;
    /* As unsigned bytes (+128): x86-64's baseline SSE2 has unsigned byte minimum and maximum only. */
    uint8_t lo = 128, hi = 128;
    for (int64_t i = 0; i < len; i++) {
        const uint8_t u = (uint8_t)(w[i] ^ 0x80);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    *lo_out = (int8_t)(lo - 128);
    *hi_out = (int8_t)(hi - 128);
}

/* Panel p just packed (6-24 KB, still in L1): its rsums (-128 times each row's sum of a 32-block)
   and its bounds (panel_bounds). In one pass over the panel rather than per row and block, where
   the loops read back bytes just stored eight at a time, which the CPU cannot forward (the
   per-block version took 30% of the packing). */
static void panel_stats(emb_matrix *m, int64_t p, int8_t *lo, int8_t *hi) {
    const int64_t kp = emb_i8_kp(m->k), nb = emb_i8_nb(m->k);
    const int8_t *w = (const int8_t *)m->data + p * EMB_PANEL * kp;
    int32_t *rs = m->rsum + p * nb * EMB_PANEL;
    enum { LINE = EMB_PANEL * 4 }; /* one k-group: 4 consecutive k of each of the 16 rows */
    for (int64_t b = 0; b < nb; b++, w += (EMB_QB / 4) * LINE) {
        int16_t acc[LINE] = {0}; /* |sum| <= 8 * 127 */
        for (int g = 0; g < EMB_QB / 4; g++)
            for (int j = 0; j < LINE; j++) acc[j] = (int16_t)(acc[j] + w[g * LINE + j]);
        for (int rr = 0; rr < EMB_PANEL; rr++)
            rs[b * EMB_PANEL + rr] = -128 * (acc[4 * rr] + acc[4 * rr + 1] + acc[4 * rr + 2] + acc[4 * rr + 3]);
    }
    panel_bounds(m, p, lo, hi);
}

/* Packs the parts' rows into m's I8 layout; bounds, if not NULL, gets each panel's panel_bounds
   (2 per panel), which emb_matrix_compact would otherwise scan for again. */
static int pack_i8(emb_matrix *m, const part_rows *pr, int8_t *bounds, char *err, size_t err_len) {
    int64_t n = m->n, k = m->k, kp = emb_i8_kp(k), nb = emb_i8_nb(k);
    float *row = malloc((size_t)kp * sizeof *row);
    if (!row) return set_err(err, err_len, "matrix: out of memory packing %lld x %lld int8 weights", n, k);
    int8_t *data = m->data;
    for (int64_t r = 0; r < n; r++) {
        int32_t type = EMB_TYPE_F32;
        const uint8_t *wr = part_row(pr, r, &type);
        /* The active level's dequantisation: every level gives the scalar reference's bits
           (tests/test_quants.c), so the packed bytes do not depend on the level. */
        const emb_type_traits *tr = emb_get_type_traits(type);
        if (!tr || !tr->to_float) {
            free(row);
            return set_err(err, err_len, "matrix: type %lld cannot be dequantised (row %lld)", type, r);
        }
        int have_row = 0; /* dequantised lazily: exact blocks need no floats */
        int8_t *panel = data + (r / EMB_PANEL) * EMB_PANEL * kp;
        int64_t rr = r % EMB_PANEL, sidx0 = (r / EMB_PANEL) * nb * EMB_PANEL + rr;
        for (int64_t b = 0; b < nb; b++) {
            int8_t q[EMB_QB];
            float d, mn = 0.0f;
            if (!block_ints(type, wr, b, q, &d, &mn)) {
                if (!have_row) {
                    tr->to_float(wr, row, k);
                    for (int64_t i = k; i < kp; i++) row[i] = 0.0f;
                    have_row = 1;
                }
                const float *wb = row + b * EMB_QB;
                float amax = 0.0f;
                int finite = 1; /* NaN and inf both fail v <= FLT_MAX */
                for (int i = 0; i < EMB_QB; i++) {
                    float v = fabsf(wb[i]);
                    finite &= v <= FLT_MAX;
                    amax = v > amax ? v : amax;
                }
                if (!finite) {
                    free(row);
                    return set_err(err, err_len, "matrix: row %lld of %lld holds a non-finite weight", r, n);
                }
                float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                for (int i = 0; i < EMB_QB; i++) q[i] = requant_i8(wb[i] * inv);
                d = amax / 127.0f;
                mn = 0.0f;
            }
            /* 4 consecutive k of one row are contiguous in the panel */
            for (int g = 0; g < EMB_QB / 4; g++)
                memcpy(panel + (b * (EMB_QB / 4) + g) * (EMB_PANEL * 4) + rr * 4, q + 4 * g, 4);
            m->scale[sidx0 + b * EMB_PANEL] = d;
            if (m->wmin) m->wmin[sidx0 + b * EMB_PANEL] = mn;
        }
        if (rr == EMB_PANEL - 1 || r == n - 1) {
            const int64_t p = r / EMB_PANEL;
            int8_t lo, hi;
            panel_stats(m, p, &lo, &hi);
            m->panel_wmax[p] = (uint8_t)(hi > -lo ? hi : -lo); /* |weights| <= 127 */
            m->wlow = lo < m->wlow ? lo : m->wlow;
            if (bounds) bounds[2 * p] = lo, bounds[2 * p + 1] = hi;
        }
    }
    free(row);
    for (int64_t p = 0; p < emb_panels(n); p++) {
        m->wmax = m->panel_wmax[p] > m->wmax ? m->panel_wmax[p] : m->wmax;
        m->small_panels += m->panel_wmax[p] <= EMB_I8_SMALL_WMAX;
    }
    return 0;
}

/* The activations a level's I8 kernel reads: int8; uint8 = int8 + 128 (VPDPBUSD's unsigned
   operand); or the latter only for matrices with small-weight panels (the maddubs kernels,
   emb_i8_maddubs_offset). */
enum { ACT_SIGNED, ACT_OFFSET, ACT_OFFSET_IF_SMALL };

typedef struct {
    emb_quant_row_fn quant_row;
    emb_i8_kernel_fn i8;
    int i8_act; /* ACT_* */
    emb_i8c_kernel_fn i8c; /* the products of few rows from a compact copy, or NULL at this level */
    emb_f32_kernel_fn f32;
} emb_kernels;

static emb_kernels kernels_for(int level) {
    emb_kernels k = {emb_quant_row_scalar, emb_i8_kernel_scalar, ACT_SIGNED, NULL, emb_f32_kernel_scalar};
#if defined(__x86_64__) || defined(_M_X64)
    switch (level) {
    case EMB_SIMD_AVX512VNNI:
        k = (emb_kernels){emb_quant_row_avx512, emb_i8_kernel_avx512vnni, ACT_OFFSET, emb_i8c_kernel_avx512vnni,
                          emb_f32_kernel_avx512};
        break;
    case EMB_SIMD_AVX512:
        k = (emb_kernels){emb_quant_row_avx512, emb_i8_kernel_avx512, ACT_OFFSET_IF_SMALL, NULL, emb_f32_kernel_avx512};
        break;
    case EMB_SIMD_AVX2:
        k = (emb_kernels){emb_quant_row_avx2, emb_i8_kernel_avx2, ACT_OFFSET_IF_SMALL, NULL, emb_f32_kernel_avx2};
        break;
    case EMB_SIMD_AVXVNNI:
        k = (emb_kernels){emb_quant_row_avx2, emb_i8_kernel_avxvnni, ACT_OFFSET, NULL, emb_f32_kernel_avx2};
        break;
    default:
        break;
    }
#elif defined(__aarch64__)
    if (level == EMB_SIMD_NEON) k = (emb_kernels){emb_quant_row_neon, emb_i8_kernel_neon, ACT_SIGNED, NULL, emb_f32_kernel_neon};
#else
    (void)level;
#endif
    return k;
}

/* The compact form of a panel with weights within lo..hi (see gemm_impl.h): the fewest bits that
   hold them all after adding one of the offsets the kernel knows. */
static void compact_form(int lo, int hi, uint8_t *bits, uint8_t *zero) {
    static const struct { int lo, hi, bits, zero; } forms[] = {
        {0, 15, 4, 0}, {-8, 7, 4, 8}, {0, 31, 5, 0}, {-16, 15, 5, 16}, {-128, 127, 8, 128}};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++)
        if (lo >= forms[f].lo && hi <= forms[f].hi) {
            *bits = (uint8_t)forms[f].bits;
            *zero = (uint8_t)forms[f].zero;
            return;
        }
}

/* Writes nb blocks of one panel's I8 data w in the compact form (bits, zero) to dst. */
static void compact_panel(uint8_t *dst, const int8_t *w, int64_t nb, int bits, uint8_t zero) {
    enum { LINES = EMB_QB / 4, BLOCK = LINES * 64 };
    for (int64_t b = 0; b < nb; b++, w += BLOCK, dst += emb_c_block_bytes(bits)) {
        uint8_t u[BLOCK];
        for (int i = 0; i < BLOCK; i++) u[i] = (uint8_t)(w[i] + zero);
        if (bits == 8) {
            memcpy(dst, u, BLOCK);
            continue;
        }
        for (int i = 0; i < LINES / 2; i++)
            for (int j = 0; j < 64; j++) dst[i * 64 + j] = (uint8_t)((u[2 * i * 64 + j] & 15) | (u[(2 * i + 1) * 64 + j] << 4));
        if (bits == 5)
            for (int q = 0; q < BLOCK / 8; q++) {
                /* eight fifth bits as 0/1 bytes, gathered into one byte (bit t from byte t) by one
                   multiply */
                const uint64_t ones = (load_le8(u + q * 8) >> 4) & BYTES8(1);
                dst[LINES / 2 * 64 + q] = (uint8_t)((ones * 0x0102040810204080ull) >> 56);
            }
    }
}

/* emb_matrix_compact with the panels' bounds from pack_i8, or NULL to scan for them. */
static int matrix_compact(emb_matrix *m, emb_arena *arena, const int8_t *bounds) {
    if (!m || m->kind != EMB_MAT_I8 || m->cdata) return -1;
    const int64_t np = emb_panels(m->n), nb = emb_i8_nb(m->k), kp = emb_i8_kp(m->k);
    uint8_t *bits = malloc((size_t)np * 2);
    if (!bits) return -1;
    uint8_t *zero = bits + np;
    int64_t data = 0, head = round64_i(np * (int64_t)(sizeof(int64_t) + 2));
    for (int64_t p = 0; p < np; p++) {
        int8_t lo, hi;
        if (bounds)
            lo = bounds[2 * p], hi = bounds[2 * p + 1];
        else
            panel_bounds(m, p, &lo, &hi);
        compact_form(lo, hi, &bits[p], &zero[p]);
        data += nb * emb_c_block_bytes(bits[p]); /* <= the I8 data's size: no overflow */
    }
    uint8_t *block = arena ? emb_arena_alloc(arena, head + data) : NULL;
    int heap = block == NULL;
    if (heap && !(block = alloc64_zero(head + data))) {
        free(bits);
        return -1;
    }
    m->c_off = (int64_t *)block;
    m->c_bits = block + np * (int64_t)sizeof(int64_t);
    m->c_zero = m->c_bits + np;
    m->cdata = block + head;
    m->c_heap = heap;
    memcpy(m->c_bits, bits, (size_t)np);
    memcpy(m->c_zero, zero, (size_t)np);
    free(bits);
    for (int64_t p = 0, off = 0; p < np; p++) {
        m->c_off[p] = off;
        compact_panel(m->cdata + off, (const int8_t *)m->data + p * EMB_PANEL * kp, nb, m->c_bits[p], m->c_zero[p]);
        off += nb * emb_c_block_bytes(m->c_bits[p]);
    }
    m->c_bytes = head + data;
    return 0;
}

int emb_matrix_compact(emb_matrix *m, emb_arena *arena) { return matrix_compact(m, arena, NULL); }

static int pack_f32(emb_matrix *m, const part_rows *pr, char *err, size_t err_len) {
    int64_t n = m->n, k = m->k;
    float *data = m->data;
    float *row = malloc((size_t)k * sizeof *row);
    if (!row) return set_err(err, err_len, "matrix: out of memory packing %lld x %lld float weights", n, k);
    for (int64_t r = 0; r < n; r++) {
        int32_t type = EMB_TYPE_F32;
        const uint8_t *wr = part_row(pr, r, &type);
        emb_get_type_traits(type)->to_float(wr, row, k); /* checked by emb_matrix_init_parts_in */
        float *panel = data + (r / EMB_PANEL) * EMB_PANEL * k;
        int64_t rr = r % EMB_PANEL;
        for (int64_t i = 0; i < k; i++) panel[i * EMB_PANEL + rr] = row[i];
    }
    free(row);
    return 0;
}

int emb_matrix_init(emb_matrix *m, int32_t kind, int32_t type, const void *w, int64_t n, int64_t k,
                    const float *bias, char *err, size_t err_len) {
    return emb_matrix_init_in(m, NULL, kind, type, w, n, k, bias, err, err_len);
}

int emb_matrix_init_in(emb_matrix *m, emb_arena *arena, int32_t kind, int32_t type, const void *w,
                       int64_t n, int64_t k, const float *bias, char *err, size_t err_len) {
    const emb_matrix_part part = {type, w, n};
    return emb_matrix_init_parts_in(m, arena, kind, &part, 1, k, bias, err, err_len);
}

/* Checks one part against kind; adds its raw bytes to *total. */
static int check_part(const emb_matrix_part *pt, int32_t kind, int64_t k, int64_t *total, char *err, size_t err_len) {
    if (!pt->w) return set_err(err, err_len, "matrix: NULL weights (%lld x %lld)", pt->n, k);
    if (pt->n <= 0 || pt->n > INT32_MAX) return set_err(err, err_len, "matrix: bad shape %lld x %lld", pt->n, k);
    const emb_type_traits *tr = emb_get_type_traits(pt->type);
    if (!tr || !emb_type_supported(pt->type))
        return set_err(err, err_len, "matrix: unsupported weight type %lld (k = %lld)", pt->type, k);
    int64_t row_bytes = emb_row_bytes(pt->type, k), bytes;
    if (row_bytes <= 0)
        return set_err(err, err_len, "matrix: k = %lld is not a multiple of the block size of type %lld", k, pt->type);
    if (__builtin_mul_overflow(row_bytes, pt->n, &bytes) || __builtin_add_overflow(*total, bytes, total))
        return set_err(err, err_len, "matrix: %lld x %lld too large", pt->n, k);
    switch (kind) {
    case EMB_MAT_I8:
        break;
    case EMB_MAT_F32:
        if (!tr->to_float) return set_err(err, err_len, "matrix: type %lld cannot be converted (n = %lld)", pt->type, pt->n);
        break;
    case EMB_MAT_BLOCKS: {
        const emb_type_traits *vt = emb_get_type_traits(tr->vec_dot_type);
        if (!tr->vec_dot || !vt || !vt->from_float)
            return set_err(err, err_len, "matrix: type %lld has no block dot kernel (n = %lld)", pt->type, pt->n);
        if (vt->blck_elems <= 0 || k % vt->blck_elems != 0)
            return set_err(err, err_len, "matrix: k = %lld not a multiple of the activation block of type %lld", k, tr->vec_dot_type);
        break;
    }
    default:
        return set_err(err, err_len, "matrix: unknown kind %lld (type %lld)", kind, pt->type);
    }
    return 0;
}

int emb_matrix_init_parts_in(emb_matrix *m, emb_arena *arena, int32_t kind, const emb_matrix_part *parts,
                             int nparts, int64_t k, const float *bias, char *err, size_t err_len) {
    if (!m) return set_err(err, err_len, "matrix: NULL matrix", 0, 0);
    memset(m, 0, sizeof *m);
    if (!parts || nparts < 1) return set_err(err, err_len, "matrix: %lld parts", nparts, 0);
    if (k <= 0 || k > INT32_MAX) return set_err(err, err_len, "matrix: bad shape %lld x %lld", parts[0].n, k);
    int64_t n = 0, total = 0;
    int affine = 0;
    for (int i = 0; i < nparts; i++) {
        if (check_part(&parts[i], kind, k, &total, err, err_len) != 0) return -1;
        if (kind == EMB_MAT_BLOCKS && parts[i].type != parts[0].type)
            return set_err(err, err_len, "matrix: block kernels need one type, got %lld and %lld", parts[0].type, parts[i].type);
        n += parts[i].n;
        if (n > INT32_MAX) return set_err(err, err_len, "matrix: bad shape %lld x %lld", n, k);
        affine |= type_affine(parts[i].type);
    }
    mat_sizes sz;
    if (sizes_for(kind, affine, n, k, total, bias != NULL, &sz) != 0)
        return set_err(err, err_len, "matrix: %lld x %lld too large", n, k);
    m->kind = kind;
    m->type = parts[0].type;
    m->n = n;
    m->k = k;
    if (alloc_buffers(m, arena, &sz) != 0) {
        emb_matrix_free(m);
        return set_err(err, err_len, "matrix: out of memory for %lld x %lld weights", n, k);
    }
    m->data_bytes = sz.data;
    const part_rows pr = {parts, nparts, k};
    int rc = 0;
    switch (kind) {
    case EMB_MAT_I8: {
        /* The compact copy only for a level that reads it (6.9 MB for the bundled model, which a
           CPU with AVX-512 VNNI made to run AVX2 would carry for nothing). Optional: without it
           (another level, a level set after the load, no memory) short products use the I8 data,
           to the same bits. */
        const int compact = kernels_for(emb_simd_active()).i8c != NULL;
        int8_t *bounds = compact ? malloc((size_t)emb_panels(n) * 2) : NULL; /* NULL: scanned again */
        rc = pack_i8(m, &pr, bounds, err, err_len);
        if (rc == 0 && compact) matrix_compact(m, arena, bounds);
        free(bounds);
        break;
    }
    case EMB_MAT_F32:
        rc = pack_f32(m, &pr, err, err_len);
        break;
    default: {
        uint8_t *dst = m->data;
        for (int i = 0; i < nparts; i++) {
            const size_t bytes = (size_t)(emb_row_bytes(parts[i].type, k) * parts[i].n);
            memcpy(dst, parts[i].w, bytes);
            dst += bytes;
        }
        break;
    }
    }
    if (rc != 0) {
        emb_matrix_free(m);
        return -1;
    }
    if (bias) memcpy(m->bias, bias, (size_t)n * sizeof *bias);
    return 0;
}

static size_t round64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Activation bytes per row for the BLOCKS kind, or -1. */
static int64_t blocks_act_row_bytes(const emb_matrix *W) {
    const emb_type_traits *tr = emb_get_type_traits(W->type);
    if (!tr) return -1;
    return emb_row_bytes(tr->vec_dot_type, W->k);
}

size_t emb_matmul_scratch_bytes(const emb_matrix *W, int64_t M) {
    if (!W || M <= 0) return 0;
    size_t row;
    switch (W->kind) {
    case EMB_MAT_I8: {
        /* Quantised rows, then nb float scales per row, then (affine weights) nb block sums, then
           (with a compact copy) nb integer block sums. */
        size_t sab = (size_t)emb_i8_nb(W->k) * sizeof(float) * (1 + (W->wmin ? 1 : 0) + (W->cdata ? 1 : 0));
        row = (size_t)emb_i8_lda(W->k);
        if ((uint64_t)M > SIZE_MAX / (row + sab) - 128) return SIZE_MAX;
        return round64((size_t)M * row) + round64((size_t)M * sab);
    }
    case EMB_MAT_BLOCKS: {
        int64_t rb = blocks_act_row_bytes(W);
        if (rb <= 0) return 0;
        row = round64((size_t)rb);
        if ((uint64_t)M > SIZE_MAX / row - 1) return SIZE_MAX;
        return (size_t)M * row;
    }
    default:
        return 0;
    }
}

/* ---- Scalar reference kernels --------------------------------------------------------------- */

static inline void store_row(float *y, const float *res, int64_t n0, int64_t cnt, const float *v) {
    for (int64_t j = 0; j < cnt; j++) y[n0 + j] = v[j] + (res ? res[n0 + j] : 0.0f);
}

void emb_i8_kernel_scalar(const emb_matrix *W, const uint8_t *a, int64_t lda, const float *sa,
                          const float *asum, int64_t m0, int64_t m1, int64_t p0, int64_t p1, float *y,
                          const float *residual) {
    const int8_t *w = W->data;
    int64_t n = W->n, kp = emb_i8_kp(W->k), nb = emb_i8_nb(W->k);
    for (int64_t p = p0; p < p1; p++) {
        const int8_t *panel = w + p * EMB_PANEL * kp;
        const float *ws = W->scale + p * nb * EMB_PANEL;
        const float *wm = W->wmin ? W->wmin + p * nb * EMB_PANEL : NULL;
        int64_t n0 = p * EMB_PANEL, cnt = n - n0 < EMB_PANEL ? n - n0 : EMB_PANEL;
        for (int64_t m = m0; m < m1; m++) {
            const int8_t *am = (const int8_t *)(a + m * lda);
            float acc[EMB_PANEL] = {0};
            for (int64_t b = 0; b < nb; b++) {
                int32_t isum[EMB_PANEL] = {0};
                for (int64_t g = b * (EMB_QB / 4); g < (b + 1) * (EMB_QB / 4); g++)
                    for (int r = 0; r < EMB_PANEL; r++)
                        for (int j = 0; j < 4; j++) isum[r] += (int32_t)am[g * 4 + j] * panel[(g * EMB_PANEL + r) * 4 + j];
                for (int r = 0; r < EMB_PANEL; r++) {
                    acc[r] = fmaf((float)isum[r], ws[b * EMB_PANEL + r] * sa[m * nb + b], acc[r]);
                    if (wm) acc[r] = fmaf(wm[b * EMB_PANEL + r], asum[m * nb + b], acc[r]);
                }
            }
            for (int r = 0; r < EMB_PANEL; r++) acc[r] += W->bias ? W->bias[n0 + r] : 0.0f;
            store_row(y + m * n, residual ? residual + m * n : NULL, n0, cnt, acc);
        }
    }
}

void emb_f32_kernel_scalar(const emb_matrix *W, const float *x, int64_t m0, int64_t m1, int64_t p0,
                           int64_t p1, float *y, const float *residual) {
    const float *w = W->data;
    int64_t n = W->n, k = W->k;
    for (int64_t p = p0; p < p1; p++) {
        const float *panel = w + p * EMB_PANEL * k;
        int64_t n0 = p * EMB_PANEL, cnt = n - n0 < EMB_PANEL ? n - n0 : EMB_PANEL;
        for (int64_t m = m0; m < m1; m++) {
            const float *xm = x + m * k;
            float acc[EMB_PANEL] = {0};
            for (int64_t i = 0; i < k; i++)
                for (int r = 0; r < EMB_PANEL; r++) acc[r] += xm[i] * panel[i * EMB_PANEL + r];
            for (int r = 0; r < EMB_PANEL; r++) acc[r] += W->bias ? W->bias[n0 + r] : 0.0f;
            store_row(y + m * n, residual ? residual + m * n : NULL, n0, cnt, acc);
        }
    }
}

void emb_sgemm_nt_scalar(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float s = 0.0f;
            for (int64_t kk = 0; kk < K; kk++) s += A[i * lda + kk] * B[j * ldb + kk];
            C[i * ldc + j] = alpha * s;
        }
}

void emb_sgemm_nn_scalar(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) c[j] = 0.0f;
        for (int64_t kk = 0; kk < K; kk++) {
            float a = A[i * lda + kk];
            const float *b = B + kk * ldb;
            for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/* ---- Dispatch --------------------------------------------------------------------------------- */

emb_quant_row_fn emb_quant_row_for(int level) { return kernels_for(level).quant_row; }

void emb_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if defined(__x86_64__) || defined(_M_X64)
    const int level = emb_simd_float_level(emb_simd_active());
    if (level == EMB_SIMD_AVX512) {
        emb_sgemm_nt_avx512(M, N, K, alpha, A, lda, B, ldb, C, ldc);
        return;
    }
    if (level == EMB_SIMD_AVX2) {
        emb_sgemm_nt_avx2(M, N, K, alpha, A, lda, B, ldb, C, ldc);
        return;
    }
#elif defined(__aarch64__)
    if (emb_simd_active() == EMB_SIMD_NEON) {
        emb_sgemm_nt_neon(M, N, K, alpha, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    emb_sgemm_nt_scalar(M, N, K, alpha, A, lda, B, ldb, C, ldc);
}

void emb_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#if defined(__x86_64__) || defined(_M_X64)
    const int level = emb_simd_float_level(emb_simd_active());
    if (level == EMB_SIMD_AVX512) {
        emb_sgemm_nn_avx512(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
    if (level == EMB_SIMD_AVX2) {
        emb_sgemm_nn_avx2(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
#elif defined(__aarch64__)
    if (emb_simd_active() == EMB_SIMD_NEON) {
        emb_sgemm_nn_neon(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    emb_sgemm_nn_scalar(M, N, K, A, lda, B, ldb, C, ldc);
}

/* ---- Threaded driver ---------------------------------------------------------------------------- */

typedef struct {
    const emb_matrix *W;
    const float *x;
    int64_t M;
    float *y;
    const float *residual;
    int epi;
    emb_kernels kern;
    /* I8 */
    int offset; /* activations as uint8 = int8 + 128 */
    uint8_t *qa;
    float *sa;   /* nb scales per row */
    float *asum; /* nb dequantised block sums per row (affine weights only), else NULL */
    int32_t *isa; /* nb integer block sums per row when the compact copy is used, else NULL */
    int64_t lda, nb;
    /* BLOCKS */
    uint8_t *qb;
    int64_t qb_row; /* stride of quantised activation rows */
    int64_t qb_bytes; /* bytes of one quantised row */
    const emb_type_traits *tr, *vt;
    atomic_int_fast64_t next; /* next chunk to claim */
} mm_task;

static void quantise_rows(const mm_task *t, int64_t m0, int64_t m1) {
    if (t->W->kind == EMB_MAT_I8) {
        for (int64_t m = m0; m < m1; m++) {
            uint8_t *q = t->qa + m * t->lda;
            float *sa = t->sa + m * t->nb;
            t->kern.quant_row(t->x + m * t->W->k, t->W->k, t->lda, q, sa, t->offset);
            if (!t->asum && !t->isa) continue;
            /* Bytes past k are 0 (128 with the offset): whole blocks can be summed. Without isa
               the sums go through a stack buffer, a piece of the row at a time. */
            int32_t buf[64];
            for (int64_t b0 = 0; b0 < t->nb; b0 += 64) {
                const int64_t n = t->nb - b0 < 64 ? t->nb - b0 : 64;
                int32_t *isum = t->isa ? t->isa + m * t->nb + b0 : buf;
                emb_block_sums(q + b0 * EMB_QB, n, t->offset, isum);
                if (t->asum)
                    for (int64_t b = 0; b < n; b++) t->asum[m * t->nb + b0 + b] = (float)isum[b] * sa[b0 + b];
            }
        }
    } else if (t->W->kind == EMB_MAT_BLOCKS) {
        for (int64_t m = m0; m < m1; m++) t->vt->from_float(t->x + m * t->W->k, t->qb + m * t->qb_row, t->W->k);
    }
}

/* Rows quantised per claimed chunk. */
#define EMB_QUANT_ROWS 16

/* Work is claimed in chunks from an atomic counter rather than split by ith: a worker that the OS
   has not scheduled yet (other programs on the same cores) then costs nothing but its late
   arrival, instead of holding up its whole share. */
static void quantise_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    (void)ith;
    (void)nth;
    int64_t chunks = (t->M + EMB_QUANT_ROWS - 1) / EMB_QUANT_ROWS;
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (c >= chunks) break;
        int64_t m0 = c * EMB_QUANT_ROWS, m1 = m0 + EMB_QUANT_ROWS < t->M ? m0 + EMB_QUANT_ROWS : t->M;
        quantise_rows(t, m0, m1);
    }
}

static void apply_activation(const mm_task *t, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
    if (t->epi == EMB_EPI_NONE || c1 <= c0) return;
    int64_t n = t->W->n;
    for (int64_t m = m0; m < m1; m++) {
        if (t->epi == EMB_EPI_GELU)
            emb_gelu(t->y + m * n + c0, c1 - c0);
        else
            emb_tanh(t->y + m * n + c0, c1 - c0);
    }
}

/* Outputs [c0, c1) of rows [m0, m1) of a BLOCKS matrix: one vec_dot per output. */
static void blocks_chunk(const mm_task *t, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
    const emb_matrix *W = t->W;
    int64_t n = W->n, wrow = emb_row_bytes(W->type, W->k);
    const uint8_t *w = W->data;
    for (int64_t m = m0; m < m1; m++) {
        const uint8_t *am = t->qb + m * t->qb_row;
        float *ym = t->y + m * n;
        const float *rm = t->residual ? t->residual + m * n : NULL;
        for (int64_t c = c0; c < c1; c++) {
            float s = 0.0f;
            t->tr->vec_dot(W->k, &s, w + c * wrow, am);
            s += W->bias ? W->bias[c] : 0.0f;
            ym[c] = s + (rm ? rm[c] : 0.0f);
        }
    }
}

/* Work splits. Work used to be claimed in (64 outputs x 96 rows) chunks from a shared counter, so
   both threads read every activation row and, over the row blocks, every weight panel. Two threads
   of one process then ran ~22% slower each than two independent single-thread processes (the VM
   exposes no hardware counters to say which cache level paid). Static shares that do not overlap
   removed most of it (2 Zen 5 vCPUs, bench_gemm i8 avx512vnni, 2 threads, M=128: 36.4k -> 47.3k
   tok/s; 1 thread 24.6k):
   - Enough rows (M >= EMB_ROW_SPLIT_MIN per thread): share ith is a contiguous block of rows, which
     it also quantises itself, so one pool run suffices and activations never cross threads.
   - Few rows (short queries): share ith is a contiguous range of column groups (weights split).
   Shares are the same calls whoever runs them (the pool's caller runs a late worker's share); the
   cost is that a worker descheduled mid-share is no longer helped by the other. */
#define EMB_ROW_SPLIT_MIN 4

/* Outputs [c0, c1) of rows [m0, m1), walked in EMB_MC-row blocks and column groups. A column group
   is 4 panels (64 outputs: a whole number of register tiles at every level) for the packed kinds
   and 32 weight rows (which stay in L1 while the rows pass) for BLOCKS. */
static void compute_range(const mm_task *t, int64_t m_lo, int64_t m_hi, int64_t g_lo, int64_t g_hi) {
    const emb_matrix *W = t->W;
    int64_t n = W->n;
    int blocks = W->kind == EMB_MAT_BLOCKS;
    int64_t group = blocks ? 32 : 4 * EMB_PANEL;
    for (int64_t m0 = m_lo; m0 < m_hi; m0 += EMB_MC) {
        int64_t m1 = m0 + EMB_MC < m_hi ? m0 + EMB_MC : m_hi;
        for (int64_t g = g_lo; g < g_hi; g++) {
            int64_t c0 = g * group, c1 = c0 + group < n ? c0 + group : n;
            if (blocks) {
                blocks_chunk(t, m0, m1, c0, c1);
            } else {
                int64_t p0 = c0 / EMB_PANEL, p1 = emb_panels(c1);
                if (t->isa)
                    t->kern.i8c(W, t->qa, t->lda, t->sa, t->asum, t->isa, m0, m1, p0, p1, t->y, t->residual);
                else if (W->kind == EMB_MAT_I8)
                    t->kern.i8(W, t->qa, t->lda, t->sa, t->asum, m0, m1, p0, p1, t->y, t->residual);
                else
                    t->kern.f32(W, t->x, m0, m1, p0, p1, t->y, t->residual);
            }
            apply_activation(t, m0, m1, c0, c1);
        }
    }
}

static int64_t column_groups(const emb_matrix *W) {
    int64_t group = W->kind == EMB_MAT_BLOCKS ? 32 : 4 * EMB_PANEL;
    return (W->n + group - 1) / group;
}

/* Row split: quantise own rows, then compute them against all weights. */
static void rows_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    int64_t m0, m1;
    emb_split(t->M, ith, nth, &m0, &m1);
    if (m1 <= m0) return;
    quantise_rows(t, m0, m1);
    compute_range(t, m0, m1, 0, column_groups(t->W));
}

/* Column split: all (already quantised) rows against own column groups. */
static void cols_task(void *arg, int ith, int nth) {
    mm_task *t = arg;
    int64_t g0, g1;
    emb_split(column_groups(t->W), ith, nth, &g0, &g1);
    compute_range(t, 0, t->M, g0, g1);
}

void emb_matmul(emb_pool *p, const emb_matrix *W, const float *x, int64_t M, float *y,
                const float *residual, int epi, void *scratch) {
    if (!W || M <= 0) return;
    mm_task t = {.W = W, .x = x, .M = M, .y = y, .residual = epi == EMB_EPI_NONE ? residual : NULL,
                 .epi = epi, .kern = kernels_for(emb_simd_active())};
    int need_quant = 0;
    const int nth = emb_pool_threads(p);
    if (W->kind == EMB_MAT_I8) {
        t.offset = t.kern.i8_act == ACT_OFFSET || (t.kern.i8_act == ACT_OFFSET_IF_SMALL && emb_i8_maddubs_offset(W));
        t.lda = emb_i8_lda(W->k);
        t.nb = emb_i8_nb(W->k);
        t.qa = scratch;
        t.sa = (float *)((uint8_t *)scratch + round64((size_t)M * (size_t)t.lda));
        t.asum = W->wmin ? t.sa + M * t.nb : NULL;
        /* Few rows per call (the row split gives each worker its own) take the compact copy. */
        const int64_t call_rows = nth > 1 && M >= (int64_t)EMB_ROW_SPLIT_MIN * nth ? (M + nth - 1) / nth : M;
        if (W->cdata && t.kern.i8c && call_rows <= EMB_MATMUL_FEW_ROWS) {
            t.offset = 0;
            t.isa = (int32_t *)(t.sa + M * t.nb * (W->wmin ? 2 : 1));
        }
        need_quant = 1;
    } else if (W->kind == EMB_MAT_BLOCKS) {
        t.tr = emb_get_type_traits(W->type);
        t.vt = t.tr ? emb_get_type_traits(t.tr->vec_dot_type) : NULL;
        if (!t.tr || !t.vt) return;
        t.qb_bytes = emb_row_bytes(t.tr->vec_dot_type, W->k);
        t.qb_row = (int64_t)round64((size_t)t.qb_bytes);
        t.qb = scratch;
        need_quant = 1;
    }
    if (nth > 1 && M >= (int64_t)EMB_ROW_SPLIT_MIN * nth) {
        emb_pool_run(p, rows_task, &t);
        return;
    }
    if (need_quant) {
        /* Small inputs are quantised by the caller: a pool round trip would cost more. */
        if (M * W->k <= 32768 || nth == 1) {
            quantise_rows(&t, 0, M);
        } else {
            atomic_store(&t.next, 0);
            emb_pool_run(p, quantise_task, &t);
        }
    }
    if (nth == 1)
        cols_task(&t, 0, 1);
    else
        emb_pool_run(p, cols_task, &t);
}
