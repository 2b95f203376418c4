/*
** mg_parallel.c — a small pool of worker threads shared by the process. One
** parallel region at a time: a runtime that finds the pool busy (another
** runtime in another thread, or a region inside a region) runs its loop
** serially, which gives the same results.
**
** Waking a sleeping thread costs 50-200 us on a virtual machine, more than a
** whole small gemm, so threads spin a while before they sleep: a worker that
** finished a region polls for the next one for SPIN_NS before it waits on the
** condition variable, and the caller polls for the workers' pieces. In a
** training loop regions come every few hundred microseconds, so the workers
** mostly stay awake through it and sleep once it ends. The spin is short
** because a spinning thread takes its core from whatever else wants it (on a
** shared machine, sometimes our own caller); a worker that sleeps through a
** region costs little, since the caller takes the grains it leaves.
*/
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include "mg_parallel.h"

#define MAXT 64
#define SPIN_NS 300000  /* 0.3 ms */

#define GRAINS 4  /* pieces per thread, at most (callers set the smallest piece) */

/* A region's work is cut into grains (GRAINS per thread, contiguous ranges of the
** items) that threads take from a shared counter: a worker that is late, asleep or
** preempted by another process leaves its grains to the others instead of making
** them wait. Which thread runs a grain changes no result: every kernel writes each
** grain's outputs (or per-chunk partials) the same way. */
typedef struct {
  pthread_mutex_t busy;       /* held by the runtime running a region */
  pthread_mutex_t mu;         /* guards sleeping, with go */
  pthread_cond_t go;
  int nworkers;               /* threads started (never stopped) */
  _Atomic uint64_t gen;       /* region count << 8 | its thread count; set after the rest */
  _Atomic uint64_t next;      /* region (32 bits) << 32 | grains << 16 | next grain to take */
  _Atomic int64_t done;       /* grains of this region finished */
  int64_t n;
  mg_par_fn fn;
  void *ctx;
} pool;

static pool P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0,
                 NULL, NULL};

/* take and run grains of region r until none is left. A grain taken keeps region r
** open (the caller waits for every grain), so n, fn and ctx stay those of r. */
static void run_grains(uint32_t r, int tid) {
  for (;;) {
    uint64_t c = atomic_load_explicit(&P.next, memory_order_acquire);
    uint64_t k = c & 0xffff, g = (c >> 16) & 0xffff;
    if ((uint32_t)(c >> 32) != r || k >= g) return;
    if (!atomic_compare_exchange_weak_explicit(&P.next, &c, c + 1, memory_order_acq_rel, memory_order_relaxed))
      continue;
    int64_t lo = P.n * (int64_t)k / (int64_t)g, hi = P.n * (int64_t)(k + 1) / (int64_t)g;
    if (hi > lo) P.fn(P.ctx, lo, hi, tid);
    atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
  }
}

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* the next generation after seen: polled for SPIN_NS, then slept for */
static uint64_t wait_gen(uint64_t seen) {
  int64_t t0 = now_ns();
  for (unsigned i = 1;; i++) {
    uint64_t g = atomic_load_explicit(&P.gen, memory_order_acquire);
    if (g != seen) return g;
    relax();
    if (i % 256 == 0) {
      if (now_ns() - t0 > SPIN_NS) break;
      sched_yield();  /* lets a thread that shares this core run (and valgrind's scheduler) */
    }
  }
  pthread_mutex_lock(&P.mu);
  uint64_t g;
  while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) pthread_cond_wait(&P.go, &P.mu);
  pthread_mutex_unlock(&P.mu);
  return g;
}

static void *worker(void *arg) {
  int tid = (int)(intptr_t)arg;
  uint64_t seen = 0;
  for (;;) {
    seen = wait_gen(seen);
    int nt = (int)(seen & 0xff);  /* scratch buffers exist for tids below the region's count */
    if (tid < nt) run_grains((uint32_t)(seen >> 8), tid);
  }
  return NULL;
}

/* spinning threads must not outnumber the cores: more than the online CPUs are not used */
static int ncpu(void) {
  static _Atomic int n;
  int v = atomic_load_explicit(&n, memory_order_relaxed);
  if (v == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    v = c < 1 ? 1 : c > MAXT ? MAXT : (int)c;
    atomic_store_explicit(&n, v, memory_order_relaxed);
  }
  return v;
}

int mg_par_threads(mg_rt *rt, int64_t n, int64_t min_each) {
  int64_t nt = rt->nthreads < ncpu() ? rt->nthreads : ncpu();
  if (min_each < 1) min_each = 1;
  if (nt > n / min_each) nt = n / min_each;
  if (nt > MAXT) nt = MAXT;
  return nt < 1 ? 1 : (int)nt;
}

/* a child process has none of the parent's workers: it starts its own */
static void forget_workers(void) {
  P.nworkers = 0;
  atomic_store(&P.next, 0);
  atomic_store(&P.done, 0);
  pthread_mutex_init(&P.busy, NULL);
  pthread_mutex_init(&P.mu, NULL);
  pthread_cond_init(&P.go, NULL);
}
static void on_first_use(void) { pthread_atfork(NULL, NULL, forget_workers); }
static pthread_once_t once = PTHREAD_ONCE_INIT;

void mg_parallel_for(mg_rt *rt, int64_t n, int64_t min_each, mg_par_fn fn, void *ctx) {
  int nt = mg_par_threads(rt, n, min_each);
  if (nt <= 1 || pthread_mutex_trylock(&P.busy) != 0) {
    if (n > 0) fn(ctx, 0, n, 0);
    return;
  }
  pthread_once(&once, on_first_use);
  if (P.nworkers < nt - 1) {  /* start workers 1..nt-1 on first use */
    sigset_t all, old;  /* with every signal blocked, so that signals reach the caller's threads */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (P.nworkers < nt - 1) {
      pthread_t th;
      pthread_attr_t at;
      pthread_attr_init(&at);
      pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
      int e = pthread_create(&th, &at, worker, (void *)(intptr_t)(P.nworkers + 1));
      pthread_attr_destroy(&at);
      if (e) break;
      P.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  if (nt > P.nworkers + 1) nt = P.nworkers + 1;
  if (nt <= 1) {
    pthread_mutex_unlock(&P.busy);
    fn(ctx, 0, n, 0);
    return;
  }
  if (min_each < 1) min_each = 1;
  int64_t grains = n / min_each < (int64_t)GRAINS * nt ? n / min_each : (int64_t)GRAINS * nt;  /* >= nt */
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  atomic_store_explicit(&P.done, 0, memory_order_relaxed);
  uint64_t g = (atomic_load_explicit(&P.gen, memory_order_relaxed) >> 8) + 1;
  uint32_t r = (uint32_t)g;
  atomic_store_explicit(&P.next, (uint64_t)r << 32 | (uint64_t)grains << 16, memory_order_release);
  atomic_store_explicit(&P.gen, g << 8 | (uint64_t)nt, memory_order_release);
  pthread_mutex_lock(&P.mu);  /* wake the workers that went to sleep */
  pthread_cond_broadcast(&P.go);
  pthread_mutex_unlock(&P.mu);
  run_grains(r, 0);
  for (unsigned i = 1; atomic_load_explicit(&P.done, memory_order_acquire) < grains; i++) {
    relax();
    if (i % 256 == 0) sched_yield();
  }
  pthread_mutex_unlock(&P.busy);
}
