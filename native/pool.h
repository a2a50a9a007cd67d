/*
 * pool.h - the persistent thread pool (internal). The public create/free/threads functions are in
 * embedd.h; this is how the core hands work to it.
 */
#ifndef EMBEDD_POOL_H
#define EMBEDD_POOL_H

#include "embedd.h"

/* A task runs once on every worker: ith in 0..nth-1 says which share of the work is its own. */
typedef void (*emb_task_fn)(void *arg, int ith, int nth);

/* Runs fn(arg, ith, nth) on all nth = emb_pool_threads(p) workers, the caller being worker 0, and
   returns when every worker has finished. Workers spin briefly for the next task before sleeping.
   p may be NULL: then fn(arg, 0, 1) runs on the caller alone. */
void emb_pool_run(emb_pool *p, emb_task_fn fn, void *arg);

/* When the pool has two threads on a machine (or affinity) of exactly two CPUs, with its worker kept
   off the caller's CPU (Linux): the CPU the calling thread runs on, so the worker runs on the other
   one. Else -1: which CPU a share runs on is not known. */
int emb_pool_caller_cpu(const emb_pool *p);

/* Splits [0, n) into nth near-equal parts; part ith is [*lo, *hi). */
static inline void emb_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

#endif
