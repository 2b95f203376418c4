/*
** mg_data.c — data set readers (see mg_io.h): IDX arrays (the MNIST family's
** format) and numeric CSV. Files are read through zlib's gz* functions, which
** read gzipped and plain files alike.
*/
#include "mg_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- byte streams: a gzFile or a memory buffer ------------------------------ */

typedef struct {
  gzFile gz;
  const unsigned char *mem;
  size_t n, at;
  const char *name;
} stream;

static int s_open(stream *s, const char *path, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->name = path;
  struct stat sb;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mgio_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return mgio_err(err, errlen, "%s: not a regular file", path);
  }
  if (!(s->gz = gzdopen(fd, "rb"))) {
    close(fd);
    return mgio_err(err, errlen, "%s: cannot open: out of memory", path);
  }
  gzbuffer(s->gz, 1 << 17);
  return 0;
}

static void s_close(stream *s) {
  if (s->gz) gzclose_r(s->gz);
  s->gz = NULL;
}

/* up to n bytes into dst: the count read (< n only at the end), or -1 */
static int64_t s_read(stream *s, void *dst, size_t n, char *err, size_t errlen) {
  if (!s->gz) {
    size_t k = s->n - s->at < n ? s->n - s->at : n;
    memcpy(dst, s->mem + s->at, k);
    s->at += k;
    return (int64_t)k;
  }
  size_t done = 0;
  while (done < n) {
    unsigned want = n - done > (1u << 30) ? 1u << 30 : (unsigned)(n - done);
    int got = gzread(s->gz, (char *)dst + done, want);
    if (got < 0) {
      int code;
      const char *msg = gzerror(s->gz, &code);
      return mgio_err(err, errlen, "%s: %s: %s", s->name,
                      code == Z_ERRNO ? "read error" : "corrupt gzip data",
                      code == Z_ERRNO ? strerror(errno) : msg);
    }
    if (got == 0) break;
    done += (size_t)got;
  }
  if (done < n) { /* at the end: a gzip stream cut short shows up as an error here */
    int code;
    const char *msg = gzerror(s->gz, &code);
    if (code != Z_OK && code != Z_STREAM_END)
      return mgio_err(err, errlen, "%s: corrupt or truncated gzip data: %s", s->name, msg);
  }
  return (int64_t)done;
}

/* ---- IDX ---------------------------------------------------------------------- */

static const char *idx_type(int code, size_t *size) {
  switch (code) {
  case 0x08: *size = 1; return "ubyte";
  case 0x09: *size = 1; return "byte";
  case 0x0B: *size = 2; return "short";
  case 0x0C: *size = 4; return "int";
  case 0x0D: *size = 4; return "float";
  case 0x0E: *size = 8; return "double";
  default: return NULL;
  }
}

static uint32_t be32(const unsigned char *q) {
  return (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
}

/* n big-endian values of IDX type code into floats */
static void idx_convert(int code, const unsigned char *p, int64_t n, float *out) {
  switch (code) {
  case 0x08: for (int64_t i = 0; i < n; i++) out[i] = p[i]; break;
  case 0x09: for (int64_t i = 0; i < n; i++) out[i] = (int8_t)p[i]; break;
  case 0x0B: for (int64_t i = 0; i < n; i++) out[i] = (int16_t)(p[2 * i] << 8 | p[2 * i + 1]); break;
  case 0x0C: for (int64_t i = 0; i < n; i++) out[i] = (float)(int32_t)be32(p + 4 * i); break;
  case 0x0D:
    for (int64_t i = 0; i < n; i++) {
      uint32_t u = be32(p + 4 * i);
      memcpy(&out[i], &u, 4);
    }
    break;
  case 0x0E:
    for (int64_t i = 0; i < n; i++) {
      uint64_t u = (uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4);
      double d;
      memcpy(&d, &u, 8);
      out[i] = (float)d;
    }
    break;
  }
}

static void *default_alloc(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *err, size_t errlen) {
  (void)ud;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  void *p = malloc(n ? n * mgio_itemsize(dt) : 1);
  if (!p) mgio_err(err, errlen, "out of memory for %zu values", n);
  return p;
}

static int idx_read(stream *s, mgio_array *out, mgio_alloc_fn alloc, void *ud, char *err, size_t errlen) {
  const char *nm = s->name;
  unsigned char h[4 + 4 * 255];
  memset(out, 0, sizeof *out);
  int64_t got = s_read(s, h, 4, err, errlen);
  if (got < 0) return -1;
  if (got < 4) return mgio_err(err, errlen, "%s: truncated: %d bytes, too short for an IDX header", nm, (int)got);
  if (h[0] || h[1])
    return mgio_err(err, errlen, "%s: not an IDX file: magic bytes %02x %02x, expected 00 00", nm, h[0], h[1]);
  size_t isz;
  const char *tname = idx_type(h[2], &isz);
  if (!tname)
    return mgio_err(err, errlen, "%s: not an IDX file: unknown data type code 0x%02X (expected 0x08, 0x09, "
                    "0x0B, 0x0C, 0x0D or 0x0E)", nm, h[2]);
  int ndim = h[3];
  if (ndim < 1 || ndim > MGIO_MAX_DIMS)
    return mgio_err(err, errlen, "%s: IDX header has %d dims (1..%d supported)", nm, ndim, MGIO_MAX_DIMS);
  got = s_read(s, h + 4, 4 * (size_t)ndim, err, errlen);
  if (got < 0) return -1;
  if (got < 4 * ndim) return mgio_err(err, errlen, "%s: truncated in the IDX header (%d dims)", nm, ndim);
  uint64_t numel = 1, nz = 1;
  char dims[160] = "";
  for (int i = 0; i < ndim; i++) {
    uint64_t d = be32(h + 4 + 4 * i);
    out->shape[i] = (int64_t)d;
    if (d && nz > ((uint64_t)1 << 48) / d)
      return mgio_err(err, errlen, "%s: IDX header promises an implausible number of values", nm);
    numel *= d, nz *= d ? d : 1;
    size_t l = strlen(dims);
    snprintf(dims + l, sizeof dims - l, "%s%llu", i ? "x" : "", (unsigned long long)d);
  }
  out->ndim = ndim;
  out->numel = (int64_t)numel;
  out->code = h[2];
  /* the raw data: the buffer grows only as data actually arrives */
  uint64_t need = numel * isz, have = 0, cap = need < (1u << 20) ? need : (1u << 20);
  unsigned char *raw = malloc(cap ? cap : 1);
  if (!raw) return mgio_err(err, errlen, "%s: out of memory", nm);
  while (have < need) {
    if (have == cap) {
      cap = cap * 2 < need ? cap * 2 : need;
      unsigned char *p = realloc(raw, cap);
      if (!p) { free(raw); return mgio_err(err, errlen, "%s: out of memory reading %s values", nm, dims); }
      raw = p;
    }
    got = s_read(s, raw + have, cap - have, err, errlen);
    if (got < 0) { free(raw); return -1; }
    have += (uint64_t)got;
    if (have < cap) break;
  }
  if (have < need) {
    free(raw);
    return mgio_err(err, errlen, "%s: truncated: the header promises %s %s values (%llu bytes), the file "
                    "has %llu", nm, dims, tname, (unsigned long long)need, (unsigned long long)have);
  }
  unsigned char extra;
  got = s_read(s, &extra, 1, err, errlen); /* also makes zlib check the gzip trailer */
  if (got != 0) {
    free(raw);
    return got < 0 ? -1 : mgio_err(err, errlen, "%s: corrupt: more data than the header's %s %s values",
                                   nm, dims, tname);
  }
  float *dst = (alloc ? alloc : default_alloc)(ud, MGIO_F32, ndim, out->shape, err, errlen);
  if (!dst) { free(raw); return -1; }
  idx_convert(out->code, raw, out->numel, dst);
  free(raw);
  out->data = dst;
  return 0;
}

int mgio_idx_read(const char *path, mgio_array *out, mgio_alloc_fn alloc, void *ud, char *err, size_t errlen) {
  stream s;
  memset(out, 0, sizeof *out);
  if (s_open(&s, path, err, errlen)) return -1;
  int r = idx_read(&s, out, alloc, ud, err, errlen);
  s_close(&s);
  return r;
}

int mgio_idx_read_mem(const void *buf, size_t n, const char *name, mgio_array *out, mgio_alloc_fn alloc,
                      void *ud, char *err, size_t errlen) {
  stream s = {.mem = buf, .n = buf ? n : 0, .name = name ? name : "<memory>"};
  return idx_read(&s, out, alloc, ud, err, errlen);
}

/* ---- CSV -------------------------------------------------------------------- */

void mgio_array_free_names(mgio_array *a) {
  if (a->names)
    for (int i = 0; i < a->ncols; i++) free(a->names[i]);
  free(a->names);
  a->names = NULL;
}

typedef struct { const char *p; size_t n; char *own; } cell; /* own: unquoted copy */

/* split one line (no newline) into cells; quoted cells may hold the delimiter */
static int split(const char *l, size_t n, char delim, cell **cells, int *ncells, int *cap, const char *nm,
                 long line, char *err, size_t errlen) {
  int k = 0;
  size_t i = 0;
  for (;;) {
    if (k == *cap) {
      int nc = *cap ? *cap * 2 : 16;
      cell *c = realloc(*cells, (size_t)nc * sizeof *c);
      if (!c) return mgio_err(err, errlen, "%s: out of memory", nm);
      *cells = c, *cap = nc;
    }
    cell *c = &(*cells)[k++];
    c->own = NULL;
    *ncells = k;
    while (i < n && (l[i] == ' ' || l[i] == '\t') && l[i] != delim) i++;
    if (i < n && l[i] == '"') { /* "quoted", with "" for a quote */
      char *o = malloc(n - i + 1);
      if (!o) return mgio_err(err, errlen, "%s: out of memory", nm);
      size_t m = 0;
      c->own = o;
      for (i++;; i++) {
        if (i >= n) return mgio_err(err, errlen, "%s: line %ld, column %d: unterminated quote", nm, line, k);
        if (l[i] == '"') {
          if (i + 1 < n && l[i + 1] == '"') o[m++] = '"', i++;
          else { i++; break; }
        } else o[m++] = l[i];
      }
      c->p = o, c->n = m;
      while (i < n && (l[i] == ' ' || l[i] == '\t') && l[i] != delim) i++;
      if (i < n && l[i] != delim)
        return mgio_err(err, errlen, "%s: line %ld, column %d: text after a closing quote", nm, line, k);
    } else {
      size_t b = i;
      while (i < n && l[i] != delim) i++;
      size_t e = i;
      while (e > b && (l[e - 1] == ' ' || l[e - 1] == '\t') && l[e - 1] != delim) e--;
      c->p = l + b, c->n = e - b;
    }
    if (i >= n) break;
    i++; /* past the delimiter */
  }
  *ncells = k;
  return 0;
}

static void free_cells(cell *c, int n) {
  for (int i = 0; i < n; i++) free(c[i].own), c[i].own = NULL;
}

static bool parse_num(const cell *c, float *v) {
  char b[128];
  if (c->n == 0 || c->n >= sizeof b) return false;
  memcpy(b, c->p, c->n);
  b[c->n] = 0;
  char *end;
  double d = strtod(b, &end);
  if (*end || end == b) return false;
  *v = (float)d;
  return true;
}

static int csv_parse(const char *buf, size_t n, const char *nm, const mgio_csv_opts *o, mgio_array *out,
                     mgio_alloc_fn alloc, void *ud, char *err, size_t errlen) {
  char delim = o && o->delim ? o->delim : ',';
  bool header = o && o->header;
  memset(out, 0, sizeof *out);
  if (n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) buf += 3, n -= 3; /* UTF-8 byte order mark */
  cell *cells = NULL;
  int ncells = 0, cap = 0, ncols = -1, r = 0;
  long line = 0, first = 0;
  float *vals = NULL;
  size_t nv = 0, vcap = 0;
  int64_t rows = 0;
  for (size_t at = 0; at < n && !r;) {
    const char *l = buf + at, *nl = memchr(l, '\n', n - at);
    size_t len = nl ? (size_t)(nl - l) : n - at;
    at += len + (nl != NULL);
    line++;
    if (len && l[len - 1] == '\r') len--;
    size_t i = 0;
    while (i < len && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r')) i++;
    if (i == len) continue; /* blank */
    if ((r = split(l, len, delim, &cells, &ncells, &cap, nm, line, err, errlen))) break;
    if (ncols < 0 && header) {
      out->names = calloc((size_t)ncells, sizeof(char *));
      if (!out->names) { r = mgio_err(err, errlen, "%s: out of memory", nm); break; }
      out->ncols = ncells;
      for (int k = 0; k < ncells && !r; k++) {
        if (!(out->names[k] = malloc(cells[k].n + 1))) { r = mgio_err(err, errlen, "%s: out of memory", nm); break; }
        memcpy(out->names[k], cells[k].p, cells[k].n);
        out->names[k][cells[k].n] = 0;
      }
      ncols = ncells, first = line;
      free_cells(cells, ncells);
      continue;
    }
    if (ncols < 0) ncols = ncells, first = line;
    if (ncells != ncols) {
      r = mgio_err(err, errlen, "%s: line %ld has %d column%s, expected %d (as line %ld)", nm, line, ncells,
                   ncells == 1 ? "" : "s", ncols, first);
      break;
    }
    if (nv + (size_t)ncols > vcap) {
      size_t nc = vcap ? vcap * 2 : 1024;
      while (nc < nv + (size_t)ncols) nc *= 2;
      float *p = realloc(vals, nc * sizeof *p);
      if (!p) { r = mgio_err(err, errlen, "%s: out of memory", nm); break; }
      vals = p, vcap = nc;
    }
    for (int k = 0; k < ncols; k++) {
      if (parse_num(&cells[k], &vals[nv + (size_t)k])) continue;
      if (cells[k].n == 0) r = mgio_err(err, errlen, "%s: line %ld, column %d: empty cell", nm, line, k + 1);
      else
        r = mgio_err(err, errlen, "%s: line %ld, column %d: '%.*s%s' is not a number%s", nm, line, k + 1,
                     cells[k].n > 40 ? 40 : (int)cells[k].n, cells[k].p, cells[k].n > 40 ? "..." : "",
                     !header && rows == 0 ? " (if this line holds column names, pass {header = true})" : "");
      break;
    }
    free_cells(cells, ncells);
    nv += (size_t)ncols;
    rows++;
  }
  free_cells(cells, ncells);
  free(cells);
  if (!r && ncols < 0) r = mgio_err(err, errlen, "%s: empty file: no %s", nm, header ? "header line" : "data");
  if (!r) {
    out->ndim = 2;
    out->shape[0] = rows, out->shape[1] = ncols;
    out->numel = rows * ncols;
    out->ncols = ncols;
    float *dst = (alloc ? alloc : default_alloc)(ud, MGIO_F32, 2, out->shape, err, errlen);
    if (!dst) r = -1;
    else {
      if (nv) memcpy(dst, vals, nv * sizeof *vals);
      out->data = dst;
    }
  }
  free(vals);
  if (r) mgio_array_free_names(out);
  return r;
}

int mgio_csv_read_mem(const void *buf, size_t n, const char *name, const mgio_csv_opts *o, mgio_array *out,
                      mgio_alloc_fn alloc, void *ud, char *err, size_t errlen) {
  return csv_parse(buf ? buf : "", buf ? n : 0, name ? name : "<memory>", o, out, alloc, ud, err, errlen);
}

int mgio_csv_read(const char *path, const mgio_csv_opts *o, mgio_array *out, mgio_alloc_fn alloc, void *ud,
                  char *err, size_t errlen) {
  stream s;
  memset(out, 0, sizeof *out);
  if (s_open(&s, path, err, errlen)) return -1;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  int r = buf ? 0 : mgio_err(err, errlen, "%s: out of memory", path);
  while (!r) {
    if (n == cap) {
      char *p = cap < ((size_t)1 << 62) ? realloc(buf, cap * 2) : NULL;
      if (!p) { r = mgio_err(err, errlen, "%s: out of memory", path); break; }
      buf = p, cap *= 2;
    }
    int64_t got = s_read(&s, buf + n, cap - n, err, errlen);
    if (got < 0) r = -1;
    else if (got == 0) break;
    else n += (size_t)got;
  }
  s_close(&s);
  if (!r) r = csv_parse(buf, n, path, o, out, alloc, ud, err, errlen);
  free(buf);
  return r;
}
