/*
 * bench_host.c - the state of the host, beside `make bench`'s figures: on a shared VM the same
 * binary's figures move by a quarter from minute to minute, and this says which state a run met.
 * One thread per online CPU (at most MAX_THREADS), all at once, as the engine runs, each:
 *   - clock: a chain of dependent integer adds (one a cycle on every core we know), in GHz;
 *   - reads: the rate at which it reads its own 4 MB buffer, over and over (more than a core's L2,
 *     less than the L3), in GB/s.
 * What the test VM's states looked like, beside the engine's figures: docs/performance.md, "The
 * host's state beside each run".
 * Not a test and not part of the library; plain C11 + pthreads, any architecture. Usage:
 *   bench_host [label]    prints one line: "label: 3.30 GHz 64.1 GB/s | 3.28 GHz 63.9 GB/s", a
 *                         clock and a read rate for each thread
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define READ_BYTES (4u << 20)
#define SECONDS_EACH 0.12

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    pthread_barrier_t *start;
    double ghz, gbps;
    int failed;
} probe;

/* Dependent adds: each needs the last one's result, so the chain runs at one a cycle. The empty asm
   keeps the compiler from folding the chain into one multiply. */
static double clock_ghz(void) {
    const long chunk = 1000000;
    uint64_t x = 1;
    long adds = 0;
    const double t0 = now();
    double t;
    do {
        for (long i = 0; i < chunk; i++) {
            x += 3;
            __asm__ volatile("" : "+r"(x));
        }
        adds += chunk;
        t = now();
    } while (t - t0 < SECONDS_EACH);
    return (double)adds / (t - t0) / 1e9;
}

/* XORs the buffer into eight accumulators, one per word of a 64-byte line: no dependences but
   each accumulator's own and one cheap operation a load, so the loads set the pace. (A sum of
   each line's words made GCC shuffle vectors and ran at two thirds of the rate.) */
static double read_gbps(const uint64_t *buf, size_t words) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    double bytes = 0.0;
    const double t0 = now();
    double t;
    do {
        for (size_t i = 0; i < words; i += 8) {
            a0 ^= buf[i];
            a1 ^= buf[i + 1];
            a2 ^= buf[i + 2];
            a3 ^= buf[i + 3];
            a4 ^= buf[i + 4];
            a5 ^= buf[i + 5];
            a6 ^= buf[i + 6];
            a7 ^= buf[i + 7];
        }
        /* the sums are "used": the compiler must do every pass */
        __asm__ volatile("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5), "+r"(a6), "+r"(a7));
        bytes += (double)words * 8.0;
        t = now();
    } while (t - t0 < SECONDS_EACH);
    return bytes / (t - t0) / 1e9;
}

static void *run(void *arg) {
    probe *p = arg;
    const size_t words = READ_BYTES / 8;
    uint64_t *buf = aligned_alloc(64, READ_BYTES);
    if (!buf) {
        p->failed = 1;
    } else {
        for (size_t i = 0; i < words; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    }
    pthread_barrier_wait(p->start);
    if (buf) {
        p->ghz = clock_ghz();
        pthread_barrier_wait(p->start);
        p->gbps = read_gbps(buf, words);
        free(buf);
    } else {
        pthread_barrier_wait(p->start);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    probe p[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, (unsigned)n) != 0) {
        fprintf(stderr, "bench_host: pthread_barrier_init failed\n");
        return 1;
    }
    memset(p, 0, sizeof p);
    long started = 0;
    for (long i = 0; i < n; i++) {
        p[i].start = &start;
        if (i > 0 && pthread_create(&th[i], NULL, run, &p[i]) != 0) break;
        started = i + 1;
    }
    if (started < n) {
        fprintf(stderr, "bench_host: could not start %ld threads\n", n);
        return 1;
    }
    run(&p[0]); /* this thread is the first probe */
    for (long i = 1; i < n; i++) pthread_join(th[i], NULL);
    printf("%s:", argc > 1 ? argv[1] : "host");
    int failed = 0;
    for (long i = 0; i < n; i++) {
        printf("%s %.2f GHz %.1f GB/s", i ? " |" : "", p[i].ghz, p[i].gbps);
        failed |= p[i].failed;
    }
    printf("\n");
    if (failed) fprintf(stderr, "bench_host: out of memory for a 4 MB buffer\n");
    return failed;
}
