/*
 * bench_util.h - what the benchmark programs share: a minimal, bounds-checked GGUF reader (the
 * real parser is the Go package gguf) and a monotonic clock. Not part of the library.
 */
#ifndef EMBEDD_BENCH_UTIL_H
#define EMBEDD_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint8_t *p; size_t len, pos; int bad; } rd;

static inline int take(rd *r, void *out, size_t n) {
    if (r->bad || n > r->len - r->pos) { r->bad = 1; return -1; }
    if (out) memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}
static inline uint64_t u64(rd *r) { uint64_t v = 0; take(r, &v, 8); return v; }
static inline uint32_t u32(rd *r) { uint32_t v = 0; take(r, &v, 4); return v; }

/* Reads the GGUF file at path into memory (r->p, r->len; the caller frees r->p) and its header:
   on success r reads on from just after it, and *nt and *nkv are the tensor and key counts.
   Returns 0, or 1 with a message on stderr (unreadable, not GGUF v2+, more than max_tensors). */
static inline int open_gguf(const char *path, rd *r, uint64_t *nt, uint64_t *nkv, uint64_t max_tensors) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = sz > 0 ? malloc((size_t)sz) : NULL;
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        free(buf);
        fprintf(stderr, "%s: read failed\n", path);
        return 1;
    }
    fclose(f);
    *r = (rd){buf, (size_t)sz, 0, 0};
    char magic[4];
    take(r, magic, 4);
    uint32_t version = u32(r);
    *nt = u64(r);
    *nkv = u64(r);
    if (r->bad || memcmp(magic, "GGUF", 4) != 0 || version < 2 || *nt > max_tensors) {
        fprintf(stderr, "%s: not a GGUF file (v2+, at most %llu tensors)\n", path, (unsigned long long)max_tensors);
        free(buf);
        return 1;
    }
    return 0;
}

static inline void skip_value(rd *r, uint32_t type, int depth) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) { uint64_t n = u64(r); take(r, NULL, n > r->len ? r->len + 1 : (size_t)n); return; }
    if (type == 9 && depth < 2) {
        uint32_t et = u32(r);
        uint64_t n = u64(r);
        for (uint64_t i = 0; i < n && !r->bad; i++) skip_value(r, et, depth + 1);
        return;
    }
    if (type > 12 || type == 9) { r->bad = 1; return; }
    take(r, NULL, sizes[type]);
}

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
