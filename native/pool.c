/*
 * pool.c - persistent worker threads.
 *
 * emb_pool_run publishes (fn, arg) and bumps a generation counter. Workers spin on that counter for
 * a short while after each task (the encoder issues dozens of runs back to back, microseconds
 * apart, and a futex wake costs more than the small-batch matmuls themselves), then fall asleep on
 * a condition variable so an idle server burns no CPU. The caller is worker 0 and waits for the
 * others the same way: spin on a countdown, then sleep.
 *
 * Late workers are skipped: every run has one claim slot per worker. A worker runs its share only if
 * it claims its slot (POSTED -> TAKEN); the caller, once its own share is done, claims every slot
 * still POSTED (-> STOLEN) and runs those shares itself. On a busy machine a worker thread the OS
 * has not scheduled yet (or one still waking from its condition variable) then costs nothing instead
 * of holding the whole run up; shares are the same calls fn(arg, ith, nth) whoever runs them, so
 * results do not change. A worker that finds its slot stolen goes back to waiting.
 *
 * emb_pool_park ends the spinning early: between requests of an idle server a spinning worker
 * only takes a core from the threads writing the response and from the client reading it (on 2
 * vCPUs parking cut the HTTP short-query p99 from 3.3-4.3 to 2.9-3.1 ms). emb_pool_run clears it.
 * emb_pool_wake is its counterpart for the next request: sleeping workers start spinning while the
 * request is still being parsed and tokenised, so that its first task does not wait for a wake-up
 * (tens of microseconds on a virtual machine whose idle vCPU has halted).
 *
 * On Linux the workers' affinity excludes the CPU the caller last ran on (steer_workers), so a woken
 * worker never waits in the caller's run queue while another CPU idles.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "embedd.h"
#include "pool.h"

#define EMB_POOL_MAX_THREADS 1024
/* Waiting goes through three stages: EMB_POOL_SPIN pause instructions (tens of cycles each: the
   common case on dedicated cores, where the next task or the last worker is microseconds away),
   then up to EMB_POOL_YIELD sched_yield calls (on an oversubscribed machine the thread we wait for
   may be runnable but not running; yielding lets it run instead of burning our time slice), then
   sleep on a condition variable. */
#define EMB_POOL_SPIN 2000
#define EMB_POOL_YIELD 2000

struct emb_pool;

typedef struct {
    struct emb_pool *pool;
    int ith;
    int64_t tid; /* the thread's OS id (Linux), 0 elsewhere; set before it counts itself in ready */
} emb_worker;

struct emb_pool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    emb_worker *workers;
    int n_started; /* pthreads actually created */
    int n_ready;   /* workers that have set their tid, under mtx */

    emb_task_fn fn;
    void *arg;
    atomic_uint_fast64_t generation;
    atomic_int pending; /* shares of workers 1..n-1 not yet finished in the current run */
    atomic_int *slot;   /* per worker: SLOT_POSTED, SLOT_TAKEN or SLOT_STOLEN (index 0 unused) */
    atomic_int stop;
    atomic_int parked; /* emb_pool_park: workers skip spinning until the next run */
    uint64_t wakes;    /* emb_pool_wake calls, under mtx: sleeping workers go back to spinning */

#ifdef __linux__
    cpu_set_t allowed; /* the CPUs the process could run on when the pool was made */
    int steer;        /* 1: every thread can have a CPU of its own, so steer_workers acts */
    int steered_from; /* the CPU the workers were last kept off (-1: none), under mtx */
#endif

    pthread_mutex_t mtx;
    pthread_cond_t wake; /* generation changed or stop */
    pthread_cond_t done; /* pending reached 0, or a worker set its tid */
};

enum { SLOT_IDLE = 0, SLOT_POSTED = 1, SLOT_TAKEN = 2, SLOT_STOLEN = 3 };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void wait_step(int i) {
    if (i < EMB_POOL_SPIN)
        cpu_relax();
    else
        sched_yield();
}

static void *worker_main(void *p) {
    emb_worker *w = p;
    struct emb_pool *pool = w->pool;
    uint64_t seen = 0;
#ifdef __linux__
    w->tid = (int64_t)syscall(SYS_gettid);
#endif
    pthread_mutex_lock(&pool->mtx);
    pool->n_ready++;
    pthread_cond_broadcast(&pool->done);
    pthread_mutex_unlock(&pool->mtx);
    for (;;) {
        uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int i = 0; gen == seen && i < EMB_POOL_SPIN + EMB_POOL_YIELD; i++) {
            if (atomic_load_explicit(&pool->stop, memory_order_relaxed) ||
                atomic_load_explicit(&pool->parked, memory_order_relaxed))
                break;
            wait_step(i);
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mtx);
            const uint64_t wakes = pool->wakes;
            while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
                   !atomic_load(&pool->stop) && pool->wakes == wakes)
                pthread_cond_wait(&pool->wake, &pool->mtx);
            pthread_mutex_unlock(&pool->mtx);
        }
        if (gen == seen) {
            if (atomic_load(&pool->stop)) return NULL; /* stop requested, no new task */
            continue;                                  /* emb_pool_wake: spin for the coming task */
        }
        seen = gen;
        /* Claim this worker's share; if the caller took it already, wait for the next run. The
           acquire pairs with the caller's release store of SLOT_POSTED, made after fn and arg. */
        int expect = SLOT_POSTED;
        if (!atomic_compare_exchange_strong_explicit(&pool->slot[w->ith], &expect, SLOT_TAKEN,
                                                     memory_order_acq_rel, memory_order_acquire))
            continue;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mtx);
            pthread_cond_broadcast(&pool->done);
            pthread_mutex_unlock(&pool->mtx);
        }
    }
}

/* Keeps the workers off the CPU the calling thread runs on, under p->mtx. A sleeping worker woken
   by the caller is otherwise often queued on the caller's own CPU (the scheduler's wake-affine
   choice) and waits there behind it for a time slice while the other vCPU idles: the HTTP short
   queries of a 2-vCPU server showed runs where one CPU sat idle for 2-4 ms (traced with
   sched_switch events). Only a change of the caller's CPU costs system calls. A pool with more
   threads than CPUs is left to the scheduler: its workers could not all run beside the caller. */
static void steer_workers(emb_pool *p) {
#ifdef __linux__
    if (!p->steer) return;
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || cpu == p->steered_from || !CPU_ISSET(cpu, &p->allowed)) return;
    cpu_set_t set = p->allowed;
    CPU_CLR(cpu, &set);
    for (int i = 0; i < p->n_started; i++) pthread_setaffinity_np(p->threads[i], sizeof set, &set);
    p->steered_from = cpu;
#else
    (void)p;
#endif
}

static void pool_stop_and_join(emb_pool *p) {
    pthread_mutex_lock(&p->mtx);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
}

emb_pool *emb_pool_create(int32_t n_threads, char *err, size_t err_len) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int32_t)(n < EMB_POOL_MAX_THREADS ? n : EMB_POOL_MAX_THREADS) : 1;
    }
    if (n_threads > EMB_POOL_MAX_THREADS) {
        if (err && err_len) snprintf(err, err_len, "pool: %d threads requested, at most %d", (int)n_threads, EMB_POOL_MAX_THREADS);
        return NULL;
    }
    emb_pool *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->n_threads = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->parked, 0);
#ifdef __linux__
    p->steered_from = -1;
    if (sched_getaffinity(0, sizeof p->allowed, &p->allowed) == 0) {
        const int n_allowed = CPU_COUNT(&p->allowed);
        p->steer = n_allowed >= 2 && n_threads <= n_allowed;
    }
#endif
    if (pthread_mutex_init(&p->mtx, NULL) != 0) { free(p); goto oom; }
    if (pthread_cond_init(&p->wake, NULL) != 0) { pthread_mutex_destroy(&p->mtx); free(p); goto oom; }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mtx);
        free(p);
        goto oom;
    }
    if (n_threads > 1) {
        p->threads = calloc((size_t)n_threads - 1, sizeof *p->threads);
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        p->slot = calloc((size_t)n_threads, sizeof *p->slot);
        if (!p->threads || !p->workers || !p->slot) {
            emb_pool_free(p);
            goto oom;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]);
            if (rc != 0) {
                emb_pool_free(p);
                if (err && err_len) snprintf(err, err_len, "pool: creating thread %d of %d: %s", i + 2, (int)n_threads, strerror(rc));
                return NULL;
            }
            p->n_started++;
        }
    }
    return p;
oom:
    if (err && err_len) snprintf(err, err_len, "pool: out of memory");
    return NULL;
}

void emb_pool_free(emb_pool *p) {
    if (!p) return;
    pool_stop_and_join(p);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mtx);
    free(p->threads);
    free(p->workers);
    free((void *)p->slot);
    free(p);
}

int32_t emb_pool_threads(const emb_pool *p) { return p ? p->n_threads : 1; }

int emb_pool_caller_cpu(const emb_pool *p) {
#ifdef __linux__
    if (p && p->steer && p->n_threads == 2 && CPU_COUNT(&p->allowed) == 2) return sched_getcpu();
#else
    (void)p;
#endif
    return -1;
}

int32_t emb_pool_thread_ids(emb_pool *p, int64_t *ids, int32_t cap) {
    if (!p || p->n_started == 0) return 0;
    pthread_mutex_lock(&p->mtx);
    while (p->n_ready < p->n_started) pthread_cond_wait(&p->done, &p->mtx);
    pthread_mutex_unlock(&p->mtx);
    if (p->workers[0].tid == 0) return 0;
    for (int i = 0; i < p->n_started && i < cap; i++) ids[i] = p->workers[i].tid;
    return p->n_started;
}

void emb_pool_park(emb_pool *p) {
    if (p) atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
}

void emb_pool_wake(emb_pool *p) {
    if (!p || p->n_threads <= 1) return;
    atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mtx);
    steer_workers(p);
    p->wakes++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);
}

void emb_pool_run(emb_pool *p, emb_task_fn fn, void *arg) {
    if (!p || p->n_threads <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    for (int i = 1; i < p->n_threads; i++)
        atomic_store_explicit(&p->slot[i], SLOT_POSTED, memory_order_release);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    /* Sleeping workers check the generation under the mutex, so broadcasting under it cannot be
       missed; with no sleepers glibc's broadcast makes no system call. */
    pthread_mutex_lock(&p->mtx);
    steer_workers(p);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mtx);

    fn(arg, 0, p->n_threads);

    /* Shares no worker has claimed yet are run here rather than waited for. */
    int stolen = 0;
    for (int i = 1; i < p->n_threads; i++) {
        int expect = SLOT_POSTED;
        if (atomic_compare_exchange_strong_explicit(&p->slot[i], &expect, SLOT_STOLEN,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            fn(arg, i, p->n_threads);
            stolen++;
        }
    }
    if (stolen > 0 && atomic_fetch_sub_explicit(&p->pending, stolen, memory_order_acq_rel) == stolen)
        return;

    for (int i = 0; i < EMB_POOL_SPIN + EMB_POOL_YIELD; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        wait_step(i);
    }
    pthread_mutex_lock(&p->mtx);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->mtx);
    pthread_mutex_unlock(&p->mtx);
}
