/*
** mg_parallel.c — a small pool of worker threads shared by the process. One
** parallel region at a time: a runtime that finds the pool busy (another
** runtime in another thread) runs its loop serially, which gives the same
** results. Workers sleep on a condition variable between regions, so they
** never spin against OpenBLAS's threads.
*/
#include <cblas.h>
#include <pthread.h>
#include "mg_parallel.h"

#define MAXT 64

typedef struct {
  pthread_mutex_t busy;       /* held by the runtime running a region */
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int nworkers;               /* threads started (never stopped) */
  uint64_t gen;               /* bumped per region */
  int nt, pending;            /* threads in this region; pieces not yet finished */
  int64_t n;
  mg_par_fn fn;
  void *ctx;
} pool;

static pool P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                 PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, NULL, NULL};

static void piece(int64_t n, int nt, int tid, int64_t *lo, int64_t *hi) {
  *lo = n * tid / nt;
  *hi = n * (tid + 1) / nt;
}

static void *worker(void *arg) {
  int tid = (int)(intptr_t)arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&P.mu);
  for (;;) {
    while (P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
    seen = P.gen;
    if (tid >= P.nt) continue;
    mg_par_fn fn = P.fn;
    void *ctx = P.ctx;
    int64_t lo, hi;
    piece(P.n, P.nt, tid, &lo, &hi);
    pthread_mutex_unlock(&P.mu);
    if (hi > lo) fn(ctx, lo, hi, tid);
    pthread_mutex_lock(&P.mu);
    if (--P.pending == 0) pthread_cond_signal(&P.done);
  }
  return NULL;
}

int mg_par_threads(mg_rt *rt, int64_t n, int64_t min_each) {
  int64_t nt = rt->nthreads;
  if (min_each < 1) min_each = 1;
  if (nt > n / min_each) nt = n / min_each;
  if (nt > MAXT) nt = MAXT;
  return nt < 1 ? 1 : (int)nt;
}

void mg_parallel_for(mg_rt *rt, int64_t n, int64_t min_each, mg_par_fn fn, void *ctx) {
  int nt = mg_par_threads(rt, n, min_each);
  if (nt <= 1 || pthread_mutex_trylock(&P.busy) != 0) {
    if (n > 0) fn(ctx, 0, n, 0);
    return;
  }
  pthread_mutex_lock(&P.mu);
  while (P.nworkers < nt - 1) {  /* start workers 1..nt-1 on first use */
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&th, &at, worker, (void *)(intptr_t)(P.nworkers + 1));
    pthread_attr_destroy(&at);
    if (e) break;
    P.nworkers++;
  }
  if (nt > P.nworkers + 1) nt = P.nworkers + 1;
  if (nt <= 1) {
    pthread_mutex_unlock(&P.mu);
    pthread_mutex_unlock(&P.busy);
    fn(ctx, 0, n, 0);
    return;
  }
  openblas_set_num_threads(1);  /* a gemm inside a piece runs in its own thread */
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  P.nt = nt;
  P.pending = nt - 1;
  P.gen++;
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.mu);
  int64_t lo, hi;
  piece(n, nt, 0, &lo, &hi);
  if (hi > lo) fn(ctx, lo, hi, 0);
  pthread_mutex_lock(&P.mu);
  while (P.pending > 0) pthread_cond_wait(&P.done, &P.mu);
  pthread_mutex_unlock(&P.mu);
  openblas_set_num_threads(rt->nthreads);
  pthread_mutex_unlock(&P.busy);
}
