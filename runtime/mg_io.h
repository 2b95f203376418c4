/*
** mg_io.h — file formats: safetensors checkpoints, IDX arrays, numeric CSV.
** Plain C: no Lua and no mg_tensor here, so the readers can be tested and
** fuzzed alone (tests/c/io_*.c, tests/fuzz/). The Lua bindings live in l_io.c.
**
** Errors: every function that can fail returns -1 and writes a message into
** err (errlen bytes, may be 0). Messages name the file and the problem
** ("ckpt.safetensors: truncated: ..."); callers prefix the operation name.
** Readers validate everything they are given before using it: a corrupt or
** hostile file is an error, never a crash or an unbounded allocation.
*/
#ifndef MG_IO_H
#define MG_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MGIO_MAX_DIMS 8
#define MGIO_MAX_HEADER 100000000u    /* safetensors JSON header, bytes (as upstream) */
#define MGIO_CRC_KEY "moongrad.crc32" /* __metadata__ key of the data checksum */

typedef enum { MGIO_F32 = 0, MGIO_F64 = 1 } mgio_dtype;
static inline size_t mgio_itemsize(mgio_dtype dt) { return dt == MGIO_F64 ? 8 : 4; }

/* Called by a reader once the data is known to exist, to get the destination
** of numel values of dtype dt (or float32 for IDX/CSV). Returning NULL aborts
** the read with -1; the callback writes its own message into err then. */
typedef void *(*mgio_alloc_fn)(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *err,
                               size_t errlen);

/* ---- safetensors (mg_safetensors.c) --------------------------------------- */

/* One tensor to write: contiguous, host byte order. */
typedef struct {
  const char *name;
  mgio_dtype dtype;
  int ndim;
  const int64_t *shape;
  const void *data;
} mgio_wtensor;

typedef struct { const char *key, *val; } mgio_kv;

/* Write tensors (in the given order) and string metadata to path atomically:
** a unique temporary file next to it, fsync, rename over path, fsync of the
** directory. Adds MGIO_CRC_KEY (CRC-32 of the data section) to the metadata.
** Names and metadata must be valid UTF-8 without NUL; names unique and not
** "__metadata__"; metadata keys unique and not MGIO_CRC_KEY. */
int mgio_st_write(const char *path, const mgio_wtensor *ts, int n, const mgio_kv *meta, int nmeta,
                  char *err, size_t errlen);

/* A tensor described by a validated header. */
typedef struct {
  char *name;
  char stype[8];       /* dtype as stored: "F32", "BF16", "I64", ... */
  mgio_dtype dtype;    /* read as: F32 (F32, F16, BF16, BOOL, U8, I8, U16, I16) or F64 (others) */
  int ndim;
  int64_t shape[MGIO_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end; /* byte range in the data section */
} mgio_entry;

/* An open safetensors file whose header has been parsed and validated:
** offsets cover the data section exactly (no gaps, no overlaps), every
** byte length equals numel * itemsize, the file length matches. */
typedef struct {
  char *name;          /* path, or the name given to mgio_st_open_mem */
  FILE *f;             /* file source, or ... */
  const unsigned char *mem; /* ... memory source */
  uint64_t size;       /* total bytes of the source */
  uint64_t data_start, data_len;
  int n;               /* tensors, in header order */
  mgio_entry *t;
  int *order;          /* indices of t by increasing offset */
  int nmeta;           /* __metadata__, in header order */
  char **mkey, **mval;
  bool has_crc;
  uint32_t crc;
} mgio_st;

int mgio_st_open(mgio_st *st, const char *path, char *err, size_t errlen);
/* buf must stay valid until mgio_st_close; name is used in messages */
int mgio_st_open_mem(mgio_st *st, const void *buf, size_t n, const char *name, char *err,
                     size_t errlen);
/* Read every tensor, converted to its entry's dtype, into dst[i] (numel
** values for st->t[i]); with dst NULL, calls alloc for each tensor instead.
** Verifies the checksum when the file has one. */
int mgio_st_read_all(mgio_st *st, void *const *dst, mgio_alloc_fn alloc, void *ud, char *err,
                     size_t errlen);
const char *mgio_st_meta(const mgio_st *st, const char *key); /* NULL if absent */
void mgio_st_close(mgio_st *st);  /* safe on a zeroed or failed-to-open st */

/* ---- IDX (mg_idx.c) and CSV (mg_csv.c): float32 arrays --------------------- */

typedef struct {
  int ndim;
  int64_t shape[MGIO_MAX_DIMS];
  int64_t numel;
  float *data;         /* from alloc, or malloc'ed (caller frees) when alloc is NULL */
  int code;            /* IDX: stored type code (0x08 ubyte ... 0x0E double) */
  int ncols;           /* CSV: columns, and with a header row ... */
  char **names;        /* ... the column names (free with mgio_array_free_names) */
} mgio_array;

/* IDX files, gzipped or plain (read through zlib). Checks the magic, type
** code, dims and that the file holds exactly the promised data. */
int mgio_idx_read(const char *path, mgio_array *out, mgio_alloc_fn alloc, void *ud, char *err,
                  size_t errlen);
int mgio_idx_read_mem(const void *buf, size_t n, const char *name, mgio_array *out,
                      mgio_alloc_fn alloc, void *ud, char *err, size_t errlen);

/* Numeric CSV to a rows x cols array. header: the first line holds column
** names. Blank lines are skipped; a non-numeric cell or a row of the wrong
** width is an error naming line and column. Gzipped files are read too. */
typedef struct { bool header; char delim; } mgio_csv_opts;
int mgio_csv_read(const char *path, const mgio_csv_opts *o, mgio_array *out, mgio_alloc_fn alloc,
                  void *ud, char *err, size_t errlen);
int mgio_csv_read_mem(const void *buf, size_t n, const char *name, const mgio_csv_opts *o,
                      mgio_array *out, mgio_alloc_fn alloc, void *ud, char *err, size_t errlen);
void mgio_array_free_names(mgio_array *a);

/* ---- shared helpers (mg_safetensors.c) ------------------------------------ */
int mgio_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool mgio_utf8_valid(const char *s, size_t n);

#endif
