/*
** targets.h — the fuzz targets, shared by the libFuzzer harnesses
** (tests/fuzz/fuzz_*.c) and the regression replay (tests/c/io_fuzz_replay.c).
** Each returns 0 if the input parsed, -1 if it was refused; neither may crash,
** leak or read out of bounds (the harnesses run under ASan and UBSan).
*/
#ifndef MG_FUZZ_TARGETS_H
#define MG_FUZZ_TARGETS_H

#include "mg_io.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* a per-process scratch file for the readers that take a path */
static inline const char *fuzz_tmp(void) {
  static char path[64];
  if (!path[0])
    snprintf(path, sizeof path, "%s/mgfuzz-%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (long)getpid());
  return path;
}
static inline int fuzz_put(const uint8_t *d, size_t n, bool gz) {
  if (gz) {
    gzFile f = gzopen(fuzz_tmp(), "wb1");
    if (!f) return -1;
    int ok = n == 0 || gzwrite(f, d, (unsigned)n) == (int)n;
    return gzclose(f) == Z_OK && ok ? 0 : -1;
  }
  FILE *f = fopen(fuzz_tmp(), "wb");
  if (!f) return -1;
  int ok = fwrite(d, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

/* allocations are tracked so a test can check the reader handed every one back */
typedef struct { void *p[64]; int n; } fuzz_allocs;
static inline void *fuzz_alloc(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *err, size_t errlen) {
  fuzz_allocs *a = ud;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  if (a->n == 64) { snprintf(err, errlen, "fuzz: too many tensors"); return NULL; }
  void *p = malloc(n ? n * mgio_itemsize(dt) : 1);
  if (!p) { snprintf(err, errlen, "fuzz: out of memory"); return NULL; }
  if (n) memset(p, 0xA5, n * mgio_itemsize(dt)); /* the reader must overwrite all of it */
  return a->p[a->n++] = p;
}
static inline void fuzz_free(fuzz_allocs *a) {
  for (int i = 0; i < a->n; i++) free(a->p[i]);
  a->n = 0;
}

/* safetensors from memory */
static inline int fuzz_safetensors(const uint8_t *d, size_t n) {
  char err[512];
  mgio_st st;
  if (mgio_st_open_mem(&st, d, n, "fuzz", err, sizeof err)) return -1;
  fuzz_allocs a = {.n = 0};
  int r = mgio_st_read_all(&st, NULL, fuzz_alloc, &a, err, sizeof err);
  fuzz_free(&a);
  mgio_st_close(&st);
  return r;
}

/* IDX; the first byte picks the route: memory, plain file, gzipped file */
static inline int fuzz_idx(const uint8_t *d, size_t n) {
  if (n < 1) return -1;
  int mode = d[0] % 3;
  char err[512];
  mgio_array a;
  fuzz_allocs al = {.n = 0};
  int r;
  if (mode == 0) r = mgio_idx_read_mem(d + 1, n - 1, "fuzz", &a, fuzz_alloc, &al, err, sizeof err);
  else if (fuzz_put(d + 1, n - 1, mode == 2)) return -1;
  else r = mgio_idx_read(fuzz_tmp(), &a, fuzz_alloc, &al, err, sizeof err);
  fuzz_free(&al);
  return r;
}

/* CSV; the first byte picks header on/off, the delimiter and memory or gzipped file */
static inline int fuzz_csv(const uint8_t *d, size_t n) {
  if (n < 1) return -1;
  static const char delims[] = {',', ';', '\t', ' '};
  mgio_csv_opts o = {.header = d[0] & 1, .delim = delims[d[0] >> 1 & 3]};
  char err[512];
  mgio_array a;
  int r;
  if (d[0] & 8) r = fuzz_put(d + 1, n - 1, true) ? -1 : mgio_csv_read(fuzz_tmp(), &o, &a, NULL, NULL, err, sizeof err);
  else r = mgio_csv_read_mem(d + 1, n - 1, "fuzz", &o, &a, NULL, NULL, err, sizeof err);
  if (r == 0) {
    free(a.data);
    mgio_array_free_names(&a);
  }
  return r;
}

#endif
