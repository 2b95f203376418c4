/*
** mg_mem.c — tensor memory: 64-byte aligned blocks, accounted per runtime,
** with a size-class cache so a training loop's steady state does not call
** malloc. Classes: 4 per power of two (at most 25% slack) from 256 bytes up;
** a freed block waits in its class's list until reused or trimmed.
*/
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"

#define NCLASS 160
#define CACHE_MAX_BYTES ((size_t)1 << 30)  /* never hold more than this in the cache */

typedef struct block { struct block *next; } block;
struct mg_cache { block *free[NCLASS]; size_t cached; };

/* class index and rounded size for n bytes */
static int size_class(size_t n, size_t *rounded) {
  if (n <= 256) { *rounded = 256; return 0; }
  int lg = 63 - __builtin_clzll((unsigned long long)(n - 1));  /* 2^lg < n <= 2^(lg+1) */
  size_t base = (size_t)1 << lg, step = base / 4;
  size_t k = (n - base + step - 1) / step;                       /* 1..4 */
  *rounded = base + k * step;
  int c = (lg - 8) * 4 + (int)k;
  return c < NCLASS ? c : -1;
}

static void *raw_alloc(size_t n) { return aligned_alloc(64, (n + 63) & ~(size_t)63); }

void *mg_mem_alloc(mg_rt *rt, size_t n) {
  size_t rounded;
  int c = size_class(n, &rounded);
  if (rt->mem_limit && rt->live_bytes + rounded > rt->mem_limit) {
    if (rt->pressure) rt->pressure(rt, rt->pressure_ud);
    mg_mem_trim(rt);
    if (rt->live_bytes + rounded > rt->mem_limit) {
      mg_seterr(rt, "out of memory: %zu bytes requested, %zu of the %zu-byte limit in use",
                n, rt->live_bytes, rt->mem_limit);
      return NULL;
    }
  }
  void *p = NULL;
  if (c >= 0 && rt->cache && rt->cache->free[c]) {
    block *b = rt->cache->free[c];
    rt->cache->free[c] = b->next;
    rt->cache->cached -= rounded;
    p = b;
  } else {
    p = raw_alloc(c >= 0 ? rounded : n);
    if (!p && rt->cache && rt->cache->cached) { mg_mem_trim(rt); p = raw_alloc(c >= 0 ? rounded : n); }
    if (!p) { mg_seterr(rt, "out of memory"); return NULL; }
  }
  size_t acc = c >= 0 ? rounded : n;
  rt->live_bytes += acc;
  rt->since_gc += acc;
  rt->since_step += acc;
  if (rt->live_bytes > rt->peak_bytes) rt->peak_bytes = rt->live_bytes;
  return p;
}

void mg_mem_free(mg_rt *rt, void *p, size_t n) {
  if (!p) return;
  size_t rounded;
  int c = size_class(n, &rounded);
  size_t acc = c >= 0 ? rounded : n;
  rt->live_bytes -= acc;
  if (c < 0 || rounded > CACHE_MAX_BYTES / 8) { free(p); return; }
  if (!rt->cache) rt->cache = calloc(1, sizeof *rt->cache);
  if (!rt->cache || rt->cache->cached + rounded > CACHE_MAX_BYTES ||
      (rt->mem_limit && rt->live_bytes + rt->cache->cached + rounded > rt->mem_limit)) {
    free(p);
    return;
  }
  block *b = p;
  b->next = rt->cache->free[c];
  rt->cache->free[c] = b;
  rt->cache->cached += rounded;
}

void mg_mem_trim(mg_rt *rt) {
  if (!rt->cache) return;
  for (int c = 0; c < NCLASS; c++) {
    block *b = rt->cache->free[c];
    while (b) { block *nx = b->next; free(b); b = nx; }
    rt->cache->free[c] = NULL;
  }
  rt->cache->cached = 0;
}
