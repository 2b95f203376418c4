/* mg_rt.c — the runtime context: errors, settings, lifetime. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "mg_core.h"

int mg_plugins_init(mg_rt *rt);
void mg_plugins_free(mg_rt *rt);
void mg_headers_trim(mg_rt *rt);
void mg_nodes_trim(mg_rt *rt);

mg_rt *mg_rt_new(void) {
  mg_rt *rt = calloc(1, sizeof *rt);
  if (!rt) return NULL;
  rt->grad_enabled = true;
  rt->nthreads = 1;
  openblas_set_num_threads(1);  /* moongrad splits work over its own threads (mg_parallel.c) */
  mg_manual_seed(rt, 0x6d6f6f6e67726164ull);  /* "moongrad" */
  if (mg_plugins_init(rt) != 0) { free(rt); return NULL; }
  return rt;
}

void mg_rt_free(mg_rt *rt) {
  if (!rt) return;
  mg_plugins_free(rt);
  mg_mem_trim(rt);
  mg_headers_trim(rt);
  mg_nodes_trim(rt);
  free(rt->cache);
  free(rt);
}

int mg_seterr(mg_rt *rt, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rt->err, sizeof rt->err, fmt, ap);
  va_end(ap);
  return -1;
}

const char *mg_errmsg(const mg_rt *rt) { return rt->err; }

void *mg_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) { fprintf(stderr, "moongrad: out of memory (%zu bytes)\n", n); abort(); }
  return p;
}

void *mg_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) { fprintf(stderr, "moongrad: out of memory (%zu bytes)\n", n * sz); abort(); }
  return p;
}
