/*
** mg_parallel.h — moongrad's own threads for its kernels (conv2d chunks, large
** elementwise loops), sized by rt->nthreads and never running while OpenBLAS's
** threads do: inside a parallel region OpenBLAS is set to one thread, so a gemm
** called by a worker runs in that worker; the count is restored afterwards.
** Workers only compute: they must not allocate through the runtime or touch
** autodiff state. Work is split into contiguous ranges fixed by n and the
** thread count; kernels that reduce keep per-chunk partials and add them in
** chunk order, so results do not depend on the thread count.
*/
#ifndef MG_PARALLEL_H
#define MG_PARALLEL_H
#include "mg_core.h"

/* elementwise kernels split their elements into pieces of at least this many, so a
** tensor is split from twice this size */
#define MG_PAR_ELEMS 32768

/* fn(ctx, lo, hi, tid) over a piece [lo, hi) of [0, n); tid 0 is the caller */
typedef void (*mg_par_fn)(void *ctx, int64_t lo, int64_t hi, int tid);

/* how many threads mg_parallel_for would use for n items of which each thread
** should get at least min_each */
int mg_par_threads(mg_rt *rt, int64_t n, int64_t min_each);
/* run fn over [0, n) on that many threads (serially when it is 1, or when
** another runtime holds the pool); waits for all pieces */
void mg_parallel_for(mg_rt *rt, int64_t n, int64_t min_each, mg_par_fn fn, void *ctx);

#endif
