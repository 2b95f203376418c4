/*
** mg_iter.h — walking strided N-d tensors. A loop nest over the outer dims
** with a tight innermost loop the compiler can vectorise when strides are 1.
** Usage:
**   mg_iter it; mg_iter_init(&it, ndim, shape);
**   do { ... it.idx[] holds the outer position; inner loop over shape[ndim-1] ... }
**   while (mg_iter_next(&it));
*/
#ifndef MG_ITER_H
#define MG_ITER_H
#include "mg_core.h"

typedef struct { int ndim; int64_t shape[MG_MAX_DIMS], idx[MG_MAX_DIMS]; } mg_iter;

static inline void mg_iter_init(mg_iter *it, int ndim, const int64_t *shape) {
  it->ndim = ndim;
  for (int d = 0; d < ndim; d++) { it->shape[d] = shape[d]; it->idx[d] = 0; }
}
/* advance the outer dims (all but the last); false when done */
static inline bool mg_iter_next(mg_iter *it) {
  for (int d = it->ndim - 2; d >= 0; d--) {
    if (++it->idx[d] < it->shape[d]) return true;
    it->idx[d] = 0;
  }
  return false;
}
/* element offset of the current outer position for the given strides */
static inline int64_t mg_iter_off(const mg_iter *it, const int64_t *stride) {
  int64_t o = 0;
  for (int d = 0; d < it->ndim - 1; d++) o += it->idx[d] * stride[d];
  return o;
}
/* strides of t seen through a broadcast to (ndim, shape): 0 on broadcast dims */
static inline void mg_bcast_strides(const mg_tensor *t, int ndim, int64_t *st) {
  int off = ndim - t->ndim;
  for (int d = 0; d < ndim; d++) {
    int td = d - off;
    st[d] = (td < 0 || t->shape[td] == 1) ? 0 : t->stride[td];
  }
}
#endif
