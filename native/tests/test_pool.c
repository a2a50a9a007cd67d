/* test_pool.c - the thread pool runs every worker exactly once per emb_pool_run. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedd.h"
#include "pool.h"

static int n_pass, n_fail;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (cond) {                                               \
            n_pass++;                                             \
        } else {                                                  \
            n_fail++;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
        }                                                         \
    } while (0)

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

    printf("test_pool: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
