/* test_pool.c - the thread pool runs every worker's share exactly once per emb_pool_run (whether the
   worker or, when the worker is late, the caller runs it), real work is shared between threads,
   workers keep off the caller's CPU (and the pool reports the caller's CPU where that places the
   worker), and the pool names its threads. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "embedd.h"
#include "pool.h"

#include "check.h"

#define MAX_T 64

typedef struct {
    atomic_int count[MAX_T]; /* runs seen by worker ith */
    atomic_int bad_nth;      /* calls whose nth disagreed with the pool */
    int expect_nth;
    int64_t sums[MAX_T];     /* each worker's share of a split sum, written without atomics */
    int64_t n;
} task_state;

static void count_task(void *arg, int ith, int nth) {
    task_state *s = arg;
    if (nth != s->expect_nth || ith < 0 || ith >= nth || ith >= MAX_T) {
        atomic_fetch_add(&s->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&s->count[ith], 1);
    int64_t lo, hi, acc = 0;
    emb_split(s->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) acc += i;
    s->sums[ith] = acc;
}

static void run_pool(int n_threads, int runs) {
    char err[256] = "";
    emb_pool *p = emb_pool_create(n_threads, err, sizeof err);
    CHECK(p != NULL, "create %d threads: %s", n_threads, err);
    if (!p) return;
    int nth = emb_pool_threads(p);
    CHECK(nth == n_threads, "threads %d, want %d", nth, n_threads);
    task_state *s = calloc(1, sizeof *s);
    s->expect_nth = nth;
    int ok_sums = 1;
    for (int r = 0; r < runs; r++) {
        s->n = 1000 + r;
        memset(s->sums, 0xff, sizeof s->sums);
        emb_pool_run(p, count_task, s);
        /* All workers have finished when run returns: their plain writes are visible. */
        int64_t total = 0;
        for (int i = 0; i < nth; i++) total += s->sums[i];
        if (total != s->n * (s->n - 1) / 2) ok_sums = 0;
        for (int i = 0; i < nth; i++)
            if (atomic_load(&s->count[i]) != r + 1) ok_sums = 0;
    }
    CHECK(ok_sums, "%d threads: a run returned before every worker finished exactly once", nth);
    for (int i = 0; i < nth; i++)
        CHECK(atomic_load(&s->count[i]) == runs, "%d threads: worker %d ran %d times, want %d", nth, i,
              atomic_load(&s->count[i]), runs);
    CHECK(atomic_load(&s->bad_nth) == 0, "bad ith/nth seen %d times", atomic_load(&s->bad_nth));
    emb_pool_free(p);
    free(s);
}

/* Chunks claimed from a counter, as the encoder's tasks do; records which threads did work. */
typedef struct {
    atomic_int next, done;
    int chunks;
    pthread_t caller;
    atomic_int by_other; /* chunks run by a thread other than the caller */
    atomic_int shares[MAX_T];
} chunk_state;

static void chunk_task(void *arg, int ith, int nth) {
    chunk_state *s = arg;
    (void)nth;
    atomic_fetch_add(&s->shares[ith], 1);
    for (;;) {
        int c = atomic_fetch_add(&s->next, 1);
        if (c >= s->chunks) break;
        volatile double x = 1.0;
        for (int i = 0; i < 20000; i++) x = x * 1.0000001 + 1e-9; /* ~tens of microseconds */
        atomic_fetch_add(&s->done, 1);
        if (!pthread_equal(pthread_self(), s->caller)) atomic_fetch_add(&s->by_other, 1);
    }
}

/* A run whose workers are asleep or late still completes every chunk and every share exactly
   once; and over many runs with real work, the other threads take part (the pool is not silently
   single-threaded because the caller steals every share). */
static void test_sharing(void) {
    char err[256];
    emb_pool *p = emb_pool_create(2, err, sizeof err);
    CHECK(p != NULL, "create: %s", err);
    if (!p) return;
    chunk_state *s = calloc(1, sizeof *s);
    s->caller = pthread_self();
    int ok = 1, other_total = 0;
    const int runs = 60;
    for (int r = 0; r < runs; r++) {
        atomic_store(&s->next, 0);
        atomic_store(&s->done, 0);
        atomic_store(&s->by_other, 0);
        s->chunks = 64;
        if (r % 20 == 0) { /* let the worker fall asleep on its condition variable first */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        emb_pool_run(p, chunk_task, s);
        if (atomic_load(&s->done) != s->chunks) ok = 0;
        other_total += atomic_load(&s->by_other);
        for (int i = 0; i < 2; i++)
            if (atomic_load(&s->shares[i]) != r + 1) ok = 0;
    }
    CHECK(ok, "chunked runs: every chunk and every share exactly once per run");
    CHECK(other_total > 0, "over %d runs of 64 chunks the worker thread ran no chunk: pool is single-threaded", runs);
    /* Tiny runs back to back (where a late worker is skipped most often) stay exact. */
    task_state *t = calloc(1, sizeof *t);
    t->expect_nth = 2;
    int sums_ok = 1;
    for (int r = 0; r < 20000; r++) {
        t->n = 3 + r % 5;
        memset(t->sums, 0xff, sizeof t->sums);
        emb_pool_run(p, count_task, t);
        if (t->sums[0] + t->sums[1] != t->n * (t->n - 1) / 2) sums_ok = 0;
    }
    CHECK(sums_ok && atomic_load(&t->count[0]) == 20000 && atomic_load(&t->count[1]) == 20000,
          "tiny runs: shares %d and %d of 20000", atomic_load(&t->count[0]), atomic_load(&t->count[1]));
    emb_pool_free(p);
    free(t);
    free(s);
}

#ifdef __linux__
typedef struct {
    pthread_t caller;
    int caller_cpu;
    atomic_int worker_shares; /* shares run by the worker thread */
    atomic_int bad_mask;      /* ... whose affinity still allowed the caller's CPU */
} steer_state;

static void steer_task(void *arg, int ith, int nth) {
    steer_state *s = arg;
    if (ith == 0) {
        /* Hold the caller's share until the worker has run its own (at most a second), so the
           worker's affinity is always observed and never stolen away. */
        for (int i = 0; i < 1000 && atomic_load(&s->worker_shares) == 0; i++) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return;
    }
    if (pthread_equal(pthread_self(), s->caller)) return;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_ISSET(s->caller_cpu, &set)) atomic_fetch_add(&s->bad_mask, 1);
    atomic_fetch_add(&s->worker_shares, 1);
}

/* Workers are kept off the CPU the caller runs on (a woken worker must not queue behind the
   caller while another CPU idles), and follow the caller when it moves. */
static void test_steering(void) {
    cpu_set_t allowed;
    CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0, "sched_getaffinity");
    if (CPU_COUNT(&allowed) < 2) {
        printf("test_pool: one CPU allowed, steering not exercised\n");
        return;
    }
    int cpus[2], k = 0;
    for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &allowed)) cpus[k++] = c;
    char err[256];
    emb_pool *p = emb_pool_create(2, err, sizeof err);
    CHECK(p != NULL, "create: %s", err);
    if (!p) return;
    steer_state s = {.caller = pthread_self()};
    for (int k2 = 0; k2 < 2; k2++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[k2], &one);
        CHECK(pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0, "pinning the caller");
        s.caller_cpu = cpus[k2];
        /* The caller's CPU is reported only where it also says where the worker runs. */
        const int want = CPU_COUNT(&allowed) == 2 ? cpus[k2] : -1;
        CHECK(emb_pool_caller_cpu(p) == want, "caller pinned to CPU %d: emb_pool_caller_cpu %d, want %d", cpus[k2],
              emb_pool_caller_cpu(p), want);
        for (int r = 0; r < 3; r++) {
            atomic_store(&s.worker_shares, 0);
            struct timespec ts = {0, 30 * 1000 * 1000}; /* the worker falls asleep first */
            nanosleep(&ts, NULL);
            emb_pool_run(p, steer_task, &s);
            CHECK(atomic_load(&s.worker_shares) == 1, "caller on CPU %d, run %d: the worker ran %d shares", cpus[k2], r,
                  atomic_load(&s.worker_shares));
        }
    }
    CHECK(atomic_load(&s.bad_mask) == 0, "%d worker shares ran with the caller's CPU allowed", atomic_load(&s.bad_mask));
    pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed);
    emb_pool_free(p);
    emb_pool *one = emb_pool_create(1, err, sizeof err), *three = emb_pool_create(3, err, sizeof err);
    CHECK(emb_pool_caller_cpu(one) == -1 && emb_pool_caller_cpu(three) == -1 && emb_pool_caller_cpu(NULL) == -1,
          "a caller CPU reported for a pool of other than 2 threads");
    emb_pool_free(one);
    emb_pool_free(three);
}
#endif

/* emb_pool_thread_ids names the pool's own threads: distinct tasks of this process, not the caller. */
static void test_thread_ids(void) {
    char err[256];
    int64_t ids[8] = {0};
    CHECK(emb_pool_thread_ids(NULL, ids, 8) == 0, "NULL pool has thread ids");
    emb_pool *one = emb_pool_create(1, err, sizeof err);
    CHECK(one && emb_pool_thread_ids(one, ids, 8) == 0, "a 1-thread pool has threads of its own");
    emb_pool_free(one);
    emb_pool *p = emb_pool_create(4, err, sizeof err);
    CHECK(p != NULL, "create: %s", err);
    if (!p) return;
    int64_t first[1] = {0};
    const int32_t n_first = emb_pool_thread_ids(p, first, 1);
    const int32_t n = emb_pool_thread_ids(p, ids, 8);
#ifdef __linux__
    CHECK(n_first == 3 && first[0] != 0, "cap 1: %d ids, first %lld", n_first, (long long)first[0]);
    CHECK(n == 3, "4-thread pool: %d thread ids, want 3", n);
    const int64_t self = (int64_t)syscall(SYS_gettid);
    for (int i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%lld", (long long)ids[i]);
        CHECK(ids[i] > 0 && ids[i] != self && access(path, F_OK) == 0, "thread id %lld is not a worker of this process",
              (long long)ids[i]);
        for (int j = 0; j < i; j++) CHECK(ids[i] != ids[j], "thread id %lld twice", (long long)ids[i]);
    }
    CHECK(ids[0] == first[0], "ids in a different order on a second call");
#else
    CHECK(n == 0 && n_first == 0, "thread ids on a system without them: %d", n);
#endif
    emb_pool_free(p);
}

int main(void) {
    /* NULL pool: the caller alone, nth = 1. */
    task_state *s = calloc(1, sizeof *s);
    s->expect_nth = 1;
    s->n = 10;
    emb_pool_run(NULL, count_task, s);
    CHECK(atomic_load(&s->count[0]) == 1 && s->sums[0] == 45, "NULL pool ran wrongly");
    CHECK(emb_pool_threads(NULL) == 1, "threads of NULL pool");
    free(s);
    emb_pool_free(NULL);

    run_pool(1, 100);
    run_pool(2, 3000);
    run_pool(8, 500);
    test_sharing();
    test_thread_ids();
#ifdef __linux__
    test_steering();
#endif

    /* Workers asleep (after their spin) must wake for the next run. */
    {
        char err[256];
        emb_pool *p = emb_pool_create(3, err, sizeof err);
        CHECK(p != NULL, "create: %s", err);
        task_state *t = calloc(1, sizeof *t);
        t->expect_nth = 3;
        t->n = 7;
        for (int r = 0; r < 3; r++) {
            emb_pool_run(p, count_task, t);
            struct timespec ts = {0, 30 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < 3; i++) CHECK(atomic_load(&t->count[i]) == 3, "sleepy worker %d ran %d", i, atomic_load(&t->count[i]));
        emb_pool_free(p);
        free(t);
    }

    /* Parked and woken workers (emb_pool_park, emb_pool_wake, also while runs are under way) still
       run every share of the next runs exactly once. */
    {
        char err[256];
        emb_pool *p = emb_pool_create(3, err, sizeof err);
        CHECK(p != NULL, "create: %s", err);
        task_state *t = calloc(1, sizeof *t);
        t->expect_nth = 3;
        t->n = 11;
        int runs = 600, ok = 1;
        for (int r = 0; r < runs; r++) {
            emb_pool_run(p, count_task, t);
            if (t->sums[0] + t->sums[1] + t->sums[2] != 55) ok = 0;
            if (r % 3 == 0) emb_pool_park(p);
            if (r % 5 == 0) emb_pool_wake(p);
            if (r % 100 == 0) {
                struct timespec ts = {0, 2 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        CHECK(ok, "parked pool: a run returned before its shares were done");
        for (int i = 0; i < 3; i++)
            CHECK(atomic_load(&t->count[i]) == runs, "parked pool: worker %d ran %d of %d", i, atomic_load(&t->count[i]), runs);
        emb_pool_park(NULL);
        emb_pool_wake(NULL);
        /* A worker woken without a task goes back to sleep, and still stops when the pool is freed. */
        emb_pool_wake(p);
        emb_pool_free(p);
        free(t);
    }

    /* Several pools at once, and the default size. */
    {
        char err[256];
        emb_pool *a = emb_pool_create(2, err, sizeof err), *b = emb_pool_create(0, err, sizeof err);
        CHECK(a && b, "two pools: %s", err);
        if (b) CHECK(emb_pool_threads(b) >= 1, "default pool size %d", emb_pool_threads(b));
        if (a && b) {
            task_state *ta = calloc(1, sizeof *ta), *tb = calloc(1, sizeof *tb);
            ta->expect_nth = 2;
            tb->expect_nth = emb_pool_threads(b);
            ta->n = tb->n = 100;
            for (int r = 0; r < 50; r++) {
                emb_pool_run(a, count_task, ta);
                emb_pool_run(b, count_task, tb);
            }
            CHECK(atomic_load(&ta->count[1]) == 50 && atomic_load(&tb->count[0]) == 50, "interleaved pools");
            free(ta);
            free(tb);
        }
        emb_pool_free(a);
        emb_pool_free(b);
    }
    {
        char err[256] = "";
        emb_pool *p = emb_pool_create(100000, err, sizeof err);
        CHECK(p == NULL && strstr(err, "threads") != NULL, "absurd thread count accepted (err '%s')", err);
        emb_pool_free(p);
    }

    return check_summary("test_pool", NULL);
}
