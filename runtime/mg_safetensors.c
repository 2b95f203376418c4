/*
** mg_safetensors.c — safetensors reader and atomic writer (see mg_io.h).
**
** Layout: u64 little-endian header length N, N bytes of JSON (name ->
** {dtype, shape, data_offsets}, plus "__metadata__": {string: string}),
** then the data section; offsets are relative to its start. The header is
** parsed with cJSON and checked completely before any data is read.
*/
#include "mg_io.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1u << 20)          /* read/convert granularity; a multiple of every itemsize */
#define MAX_EXACT 9007199254740992.0 /* 2^53: JSON numbers above this are not exact */

int mgio_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

bool mgio_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *e = p + n;
  while (p < e) {
    unsigned c = *p++;
    if (c < 0x80) continue;
    int k;
    unsigned min, v;
    if ((c & 0xE0) == 0xC0) k = 1, min = 0x80, v = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) k = 2, min = 0x800, v = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) k = 3, min = 0x10000, v = c & 0x07;
    else return false;
    if (e - p < k) return false;
    for (int i = 0; i < k; i++) {
      if ((p[i] & 0xC0) != 0x80) return false;
      v = v << 6 | (p[i] & 0x3F);
    }
    p += k;
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
  }
  return true;
}

static bool host_le(void) { const uint16_t x = 1; return *(const unsigned char *)&x == 1; }
static uint16_t ld16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const unsigned char *p) { return ld32(p) | (uint64_t)ld32(p + 4) << 32; }

/* ---- dtypes ---------------------------------------------------------------- */

typedef enum { K_F32, K_F64, K_F16, K_BF16, K_BOOL, K_U8, K_I8, K_U16, K_I16, K_U32, K_I32,
               K_U64, K_I64 } kind;
static const struct { const char *name; kind k; unsigned size; mgio_dtype to; } dtypes[] = {
  {"F32", K_F32, 4, MGIO_F32},   {"F64", K_F64, 8, MGIO_F64},  {"F16", K_F16, 2, MGIO_F32},
  {"BF16", K_BF16, 2, MGIO_F32}, {"BOOL", K_BOOL, 1, MGIO_F32}, {"U8", K_U8, 1, MGIO_F32},
  {"I8", K_I8, 1, MGIO_F32},     {"U16", K_U16, 2, MGIO_F32},  {"I16", K_I16, 2, MGIO_F32},
  {"U32", K_U32, 4, MGIO_F64},   {"I32", K_I32, 4, MGIO_F64},  {"U64", K_U64, 8, MGIO_F64},
  {"I64", K_I64, 8, MGIO_F64},
};
#define NDTYPES (int)(sizeof dtypes / sizeof dtypes[0])

static int find_dtype(const char *s) {
  for (int i = 0; i < NDTYPES; i++)
    if (strcmp(dtypes[i].name, s) == 0) return i;
  return -1;
}

static float half_to_float(uint16_t h) {
  int e = h >> 10 & 0x1F;
  unsigned m = h & 0x3FF;
  float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                     : ldexpf((float)(m | 0x400), e - 25);
  return h & 0x8000 ? -v : v;
}

/* n elements of stored kind k at src (little-endian) into dst as float/double */
static void convert(kind k, const unsigned char *src, size_t n, void *dst, size_t at) {
  float *f = (float *)dst + at;
  double *d = (double *)dst + at;
  for (size_t i = 0; i < n; i++) {
    switch (k) {
    case K_F32: { uint32_t u = ld32(src + 4 * i); memcpy(&f[i], &u, 4); break; }
    case K_F64: { uint64_t u = ld64(src + 8 * i); memcpy(&d[i], &u, 8); break; }
    case K_F16: f[i] = half_to_float(ld16(src + 2 * i)); break;
    case K_BF16: { uint32_t u = (uint32_t)ld16(src + 2 * i) << 16; memcpy(&f[i], &u, 4); break; }
    case K_BOOL: f[i] = src[i] != 0; break;
    case K_U8: f[i] = src[i]; break;
    case K_I8: f[i] = (int8_t)src[i]; break;
    case K_U16: f[i] = ld16(src + 2 * i); break;
    case K_I16: f[i] = (int16_t)ld16(src + 2 * i); break;
    case K_U32: d[i] = ld32(src + 4 * i); break;
    case K_I32: d[i] = (int32_t)ld32(src + 4 * i); break;
    case K_U64: d[i] = (double)ld64(src + 8 * i); break;
    case K_I64: d[i] = (double)(int64_t)ld64(src + 8 * i); break;
    }
  }
}

/* ---- reader ----------------------------------------------------------------- */

static int src_read(mgio_st *st, uint64_t off, void *dst, size_t n, char *err, size_t errlen) {
  if (off > st->size || n > st->size - off)
    return mgio_err(err, errlen, "%s: truncated: needs bytes up to %llu, file has %llu", st->name,
                    (unsigned long long)(off + n), (unsigned long long)st->size);
  if (st->mem) { memcpy(dst, st->mem + off, n); return 0; }
  if (fseeko(st->f, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, st->f) != n)
    return mgio_err(err, errlen, "%s: read error at byte %llu: %s", st->name,
                    (unsigned long long)off, ferror(st->f) ? strerror(errno) : "unexpected end of file");
  return 0;
}

void mgio_st_close(mgio_st *st) {
  if (!st) return;
  if (st->f) fclose(st->f);
  for (int i = 0; i < st->n; i++) free(st->t[i].name);
  for (int i = 0; i < st->nmeta; i++) free(st->mkey[i]), free(st->mval[i]);
  free(st->t), free(st->order), free(st->mkey), free(st->mval), free(st->name);
  memset(st, 0, sizeof *st);
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* an exact non-negative integer from a JSON number */
static bool json_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j)) return false;
  double v = j->valuedouble;
  if (!(v >= 0 && v <= MAX_EXACT) || v != floor(v)) return false;
  *out = (uint64_t)v;
  return true;
}

static int by_offset(const void *a, const void *b, void *ud) {
  const mgio_entry *t = ud, *x = &t[*(const int *)a], *y = &t[*(const int *)b];
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}
static int by_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
/* the first duplicate in a list of n strings (sorted in place), or NULL */
static const char *find_dup(char **s, int n) {
  qsort(s, (size_t)n, sizeof *s, by_str);
  for (int i = 1; i < n; i++)
    if (strcmp(s[i - 1], s[i]) == 0) return s[i];
  return NULL;
}

static int parse_entry(mgio_st *st, const cJSON *j, mgio_entry *e, char *err, size_t errlen) {
  const char *nm = st->name, *tn = e->name;
  if (!cJSON_IsObject(j))
    return mgio_err(err, errlen, "%s: tensor '%s': header entry is not an object", nm, tn);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
  if (!cJSON_IsString(dt))
    return mgio_err(err, errlen, "%s: tensor '%s': missing or non-string \"dtype\"", nm, tn);
  int k = find_dtype(dt->valuestring);
  if (k < 0)
    return mgio_err(err, errlen, "%s: tensor '%s': dtype '%.20s' is not supported (readable: "
                    "F32 F64 F16 BF16 BOOL U8 I8 U16 I16 U32 I32 U64 I64)", nm, tn, dt->valuestring);
  snprintf(e->stype, sizeof e->stype, "%s", dtypes[k].name);
  e->dtype = dtypes[k].to;
  if (!cJSON_IsArray(sh))
    return mgio_err(err, errlen, "%s: tensor '%s': missing or non-array \"shape\"", nm, tn);
  int nd = cJSON_GetArraySize(sh);
  if (nd > MGIO_MAX_DIMS)
    return mgio_err(err, errlen, "%s: tensor '%s': %d dims, at most %d supported", nm, tn, nd,
                    MGIO_MAX_DIMS);
  e->ndim = nd;
  uint64_t numel = 1, nz = 1; /* nz: product of the non-zero sizes, to catch overflow */
  int i = 0;
  for (const cJSON *d = sh->child; d; d = d->next, i++) {
    uint64_t v;
    if (!json_uint(d, &v))
      return mgio_err(err, errlen, "%s: tensor '%s': shape[%d] is not a non-negative integer", nm, tn, i);
    e->shape[i] = (int64_t)v;
    if (v && nz > (uint64_t)MAX_EXACT / v)
      return mgio_err(err, errlen, "%s: tensor '%s': shape has too many elements", nm, tn);
    numel *= v, nz *= v ? v : 1;
  }
  e->numel = (int64_t)numel;
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &e->begin) ||
      !json_uint(off->child->next, &e->end))
    return mgio_err(err, errlen, "%s: tensor '%s': \"data_offsets\" must be [begin, end] "
                    "(non-negative integers)", nm, tn);
  if (e->end < e->begin)
    return mgio_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                    nm, tn, (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end - e->begin != numel * dtypes[k].size)
    return mgio_err(err, errlen, "%s: tensor '%s': %s shape of %llu elements needs %llu bytes, "
                    "data_offsets [%llu, %llu] hold %llu", nm, tn, dtypes[k].name,
                    (unsigned long long)numel, (unsigned long long)(numel * dtypes[k].size),
                    (unsigned long long)e->begin, (unsigned long long)e->end,
                    (unsigned long long)(e->end - e->begin));
  return 0;
}

static int parse_meta(mgio_st *st, const cJSON *m, char *err, size_t errlen) {
  if (!cJSON_IsObject(m))
    return mgio_err(err, errlen, "%s: \"__metadata__\" is not an object", st->name);
  int n = cJSON_GetArraySize(m);
  st->mkey = calloc((size_t)n + 1, sizeof(char *));
  st->mval = calloc((size_t)n + 1, sizeof(char *));
  if (!st->mkey || !st->mval) return mgio_err(err, errlen, "%s: out of memory", st->name);
  for (const cJSON *c = m->child; c; c = c->next) {
    if (!cJSON_IsString(c))
      return mgio_err(err, errlen, "%s: __metadata__ entry '%s' is not a string", st->name, c->string);
    int i = st->nmeta;
    st->mkey[i] = xstrdup(c->string);
    st->mval[i] = xstrdup(c->valuestring);
    if (!st->mkey[i] || !st->mval[i]) return mgio_err(err, errlen, "%s: out of memory", st->name);
    st->nmeta++;
  }
  char **tmp = malloc(((size_t)n + 1) * sizeof(char *));
  if (!tmp) return mgio_err(err, errlen, "%s: out of memory", st->name);
  memcpy(tmp, st->mkey, (size_t)n * sizeof(char *));
  const char *dup = find_dup(tmp, n);
  int r = dup ? mgio_err(err, errlen, "%s: __metadata__ key '%s' appears twice", st->name, dup) : 0;
  free(tmp);
  if (r) return r;
  const char *crc = mgio_st_meta(st, MGIO_CRC_KEY);
  if (crc) {
    size_t k = strspn(crc, "0123456789abcdefABCDEF");
    unsigned long v = strtoul(crc, NULL, 16);
    if (k != 8 || crc[k])
      return mgio_err(err, errlen, "%s: metadata %s = '%.20s' is not 8 hex digits", st->name,
                      MGIO_CRC_KEY, crc);
    st->has_crc = true;
    st->crc = (uint32_t)v;
  }
  return 0;
}

/* the header at bytes [8, 8+hlen) is in hdr (NUL-terminated) */
static int parse_header(mgio_st *st, char *hdr, uint64_t hlen, char *err, size_t errlen) {
  const char *nm = st->name;
  if (memchr(hdr, 0, hlen)) return mgio_err(err, errlen, "%s: corrupt header: contains a NUL byte", nm);
  if (!mgio_utf8_valid(hdr, hlen)) return mgio_err(err, errlen, "%s: corrupt header: not valid UTF-8", nm);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
  if (!root) {
    size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
    return mgio_err(err, errlen, "%s: corrupt header: invalid JSON at byte %zu of %llu", nm, at,
                    (unsigned long long)hlen);
  }
  int r = 0;
  for (const char *p = end; p && p < hdr + hlen; p++)
    if (!strchr(" \t\r\n", *p)) {
      r = mgio_err(err, errlen, "%s: corrupt header: unexpected bytes after the JSON object at byte %zu",
                   nm, (size_t)(p - hdr));
      goto done;
    }
  if (!cJSON_IsObject(root)) { r = mgio_err(err, errlen, "%s: corrupt header: not a JSON object", nm); goto done; }
  int n = 0;
  for (const cJSON *c = root->child; c; c = c->next) n += strcmp(c->string, "__metadata__") != 0;
  st->t = calloc((size_t)n + 1, sizeof *st->t);
  st->order = calloc((size_t)n + 1, sizeof *st->order);
  char **names = calloc((size_t)n + 1, sizeof(char *));
  if (!st->t || !st->order || !names) { free(names); r = mgio_err(err, errlen, "%s: out of memory", nm); goto done; }
  int nmeta_seen = 0;
  for (const cJSON *c = root->child; c && !r; c = c->next) {
    if (strcmp(c->string, "__metadata__") == 0) {
      r = nmeta_seen++ ? mgio_err(err, errlen, "%s: \"__metadata__\" appears twice", nm)
                       : parse_meta(st, c, err, errlen);
      continue;
    }
    mgio_entry *e = &st->t[st->n];
    if (!(e->name = xstrdup(c->string))) { r = mgio_err(err, errlen, "%s: out of memory", nm); break; }
    names[st->n] = e->name;
    st->order[st->n] = st->n;
    st->n++;
    r = parse_entry(st, c, e, err, errlen);
  }
  if (!r) {
    const char *dup = find_dup(names, st->n);
    if (dup) r = mgio_err(err, errlen, "%s: tensor name '%s' appears twice", nm, dup);
  }
  free(names);
  if (r) goto done;
  /* the offsets must tile the data section exactly */
  uint64_t need = 0;
  for (int i = 0; i < st->n; i++) need = st->t[i].end > need ? st->t[i].end : need;
  if (need > st->data_len) {
    r = mgio_err(err, errlen, "%s: truncated: the header describes %llu bytes of tensor data, the file "
                 "holds %llu (file size %llu)", nm, (unsigned long long)need,
                 (unsigned long long)st->data_len, (unsigned long long)st->size);
    goto done;
  }
  qsort_r(st->order, (size_t)st->n, sizeof *st->order, by_offset, st->t);
  uint64_t at = 0;
  for (int i = 0; i < st->n; i++) {
    const mgio_entry *e = &st->t[st->order[i]];
    if (e->begin < at) {
      const mgio_entry *p = &st->t[st->order[i - 1]];
      r = mgio_err(err, errlen, "%s: corrupt header: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) "
                   "overlap", nm, p->name, (unsigned long long)p->begin, (unsigned long long)p->end,
                   e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
      goto done;
    }
    if (e->begin > at) {
      r = mgio_err(err, errlen, "%s: corrupt header: data bytes [%llu, %llu) belong to no tensor", nm,
                   (unsigned long long)at, (unsigned long long)e->begin);
      goto done;
    }
    at = e->end;
  }
  if (at != st->data_len)
    r = mgio_err(err, errlen, "%s: corrupt file: %llu bytes after the last tensor's data", nm,
                 (unsigned long long)(st->data_len - at));
done:
  cJSON_Delete(root);
  return r;
}

static int st_open(mgio_st *st, char *err, size_t errlen) {
  unsigned char b[8];
  if (st->size < 8)
    return mgio_err(err, errlen, "%s: truncated: %llu bytes, too short for a safetensors file", st->name,
                    (unsigned long long)st->size);
  if (src_read(st, 0, b, 8, err, errlen)) return -1;
  uint64_t hlen = ld64(b);
  if (hlen > st->size - 8)
    return mgio_err(err, errlen, "%s: truncated or not safetensors: header length %llu exceeds the "
                    "file size %llu", st->name, (unsigned long long)hlen, (unsigned long long)st->size);
  if (hlen > MGIO_MAX_HEADER || hlen < 2)
    return mgio_err(err, errlen, "%s: corrupt or not safetensors: header length %llu is implausible",
                    st->name, (unsigned long long)hlen);
  st->data_start = 8 + hlen;
  st->data_len = st->size - st->data_start;
  char *hdr = malloc(hlen + 1);
  if (!hdr) return mgio_err(err, errlen, "%s: out of memory for a %llu-byte header", st->name,
                            (unsigned long long)hlen);
  int r = src_read(st, 8, hdr, hlen, err, errlen);
  hdr[hlen] = 0;
  if (!r) r = parse_header(st, hdr, hlen, err, errlen);
  free(hdr);
  return r;
}

int mgio_st_open(mgio_st *st, const char *path, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  if (!(st->name = xstrdup(path))) return mgio_err(err, errlen, "%s: out of memory", path);
  struct stat sb;
  if (!(st->f = fopen(path, "rb")) || fstat(fileno(st->f), &sb) != 0) {
    mgio_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    mgio_st_close(st);
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    mgio_err(err, errlen, "%s: not a regular file", path);
    mgio_st_close(st);
    return -1;
  }
  st->size = (uint64_t)sb.st_size;
  if (st_open(st, err, errlen)) { mgio_st_close(st); return -1; }
  return 0;
}

int mgio_st_open_mem(mgio_st *st, const void *buf, size_t n, const char *name, char *err, size_t errlen) {
  memset(st, 0, sizeof *st);
  if (!(st->name = xstrdup(name ? name : "<memory>"))) return mgio_err(err, errlen, "out of memory");
  static const unsigned char empty[1];
  st->mem = buf ? buf : empty;
  st->size = buf ? n : 0;
  if (st_open(st, err, errlen)) { mgio_st_close(st); return -1; }
  return 0;
}

const char *mgio_st_meta(const mgio_st *st, const char *key) {
  for (int i = 0; i < st->nmeta; i++)
    if (strcmp(st->mkey[i], key) == 0) return st->mval[i];
  return NULL;
}

int mgio_st_read_all(mgio_st *st, void *const *dst, mgio_alloc_fn alloc, void *ud, char *err, size_t errlen) {
  unsigned char *buf = malloc(CHUNK);
  if (!buf) return mgio_err(err, errlen, "%s: out of memory", st->name);
  uLong crc = crc32(0L, Z_NULL, 0);
  int r = 0;
  for (int i = 0; i < st->n && !r; i++) {
    const mgio_entry *e = &st->t[st->order[i]];
    void *out = dst ? dst[st->order[i]] : alloc(ud, e->dtype, e->ndim, e->shape, err, errlen);
    if (!out && (!dst || e->numel)) { r = dst ? mgio_err(err, errlen, "%s: no buffer", st->name) : -1; break; }
    int k = find_dtype(e->stype);
    size_t isz = dtypes[k].size;
    uint64_t len = e->end - e->begin, done = 0;
    bool direct = host_le() && (dtypes[k].k == K_F32 || dtypes[k].k == K_F64);
    while (done < len) {
      size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
      unsigned char *p = direct ? (unsigned char *)out + done : buf;
      if ((r = src_read(st, st->data_start + e->begin + done, p, n, err, errlen))) break;
      crc = crc32_z(crc, p, n);
      if (!direct) convert(dtypes[k].k, p, n / isz, out, (size_t)(done / isz));
      done += n;
    }
  }
  free(buf);
  if (!r && st->has_crc && (uint32_t)crc != st->crc)
    r = mgio_err(err, errlen, "%s: corrupt data: checksum mismatch (stored %08x, computed %08x)",
                 st->name, (unsigned)st->crc, (unsigned)crc);
  return r;
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = true; return; }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_fmt(sbuf *b, const char *fmt, unsigned long long v) {
  char t[32];
  int n = snprintf(t, sizeof t, fmt, v);
  sb_add(b, t, (size_t)n);
}
/* a JSON string literal */
static void sb_json(sbuf *b, const char *s) {
  sb_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') { char t[2] = {'\\', (char)*p}; sb_add(b, t, 2); }
    else if (*p < 0x20) sb_fmt(b, "\\u%04llx", (unsigned long long)*p);
    else sb_add(b, (const char *)p, 1);
  }
  sb_add(b, "\"", 1);
}

/* feed the data of t to fn as little-endian bytes */
static int le_bytes(const mgio_wtensor *t, uint64_t nbytes, int (*fn)(void *, const void *, size_t), void *ud) {
  if (host_le()) {
    for (uint64_t at = 0; at < nbytes; at += CHUNK)
      if (fn(ud, (const char *)t->data + at, nbytes - at < CHUNK ? (size_t)(nbytes - at) : CHUNK)) return -1;
    return 0;
  }
  unsigned char sw[4096];
  size_t isz = mgio_itemsize(t->dtype);
  for (uint64_t at = 0; at < nbytes; at += sizeof sw) {
    size_t n = nbytes - at < sizeof sw ? (size_t)(nbytes - at) : sizeof sw;
    const unsigned char *s = (const unsigned char *)t->data + at;
    for (size_t i = 0; i < n; i++) sw[i] = s[i - i % isz + (isz - 1 - i % isz)];
    if (fn(ud, sw, n)) return -1;
  }
  return 0;
}

static int crc_fn(void *ud, const void *p, size_t n) {
  *(uLong *)ud = crc32_z(*(uLong *)ud, p, n);
  return 0;
}
static int write_fn(void *ud, const void *p, size_t n) {
  int fd = *(int *)ud;
  const char *s = p;
  while (n) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) { if (w == 0) errno = EIO; return -1; }
    s += w, n -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *path) {
  size_t n = strlen(path);
  char *dir = malloc(n + 2);
  if (!dir) return -1;
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
  if (fd >= 0) { r = fsync(fd) && errno == EIO ? -1 : 0; close(fd); } /* EINVAL: fs can't; fine */
  free(dir);
  return r;
}

static _Atomic unsigned tmp_counter;

/* Remove path.tmp.<pid>.<n> files left by saves killed mid-write: only those whose
** process is gone (kill(pid, 0) fails with ESRCH). Ours and live processes' may be
** in use by a concurrent save. Best effort: errors are ignored. */
static void remove_stale_tmps(const char *path) {
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  size_t blen = strlen(base), dlen = slash ? (size_t)(slash - path) : 0;
  char *dir = malloc(dlen + 2);
  if (!dir) return;
  if (!slash) strcpy(dir, ".");
  else if (dlen == 0) strcpy(dir, "/");
  else memcpy(dir, path, dlen), dir[dlen] = 0;
  DIR *d = opendir(dir);
  free(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *nm = e->d_name, *p = nm + blen + 5;  /* after "<base>.tmp." */
    if (strncmp(nm, base, blen) != 0 || strncmp(nm + blen, ".tmp.", 5) != 0 || !isdigit((unsigned char)*p)) continue;
    char *end;
    errno = 0;
    long pid = strtol(p, &end, 10);
    if (errno || pid <= 0 || pid > 0x7fffffffL || *end != '.' || !isdigit((unsigned char)end[1])) continue;
    strtoul(end + 1, &end, 10);
    if (*end || (pid_t)pid == getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;  /* alive, or not ours to judge */
    size_t n = dlen + 1 + strlen(nm) + 1;
    char *full = malloc(n);
    if (!full) break;
    snprintf(full, n, "%.*s%s%s", (int)dlen, path, slash ? "/" : "", nm);
    unlink(full);
    free(full);
  }
  closedir(d);
}

int mgio_st_write(const char *path, const mgio_wtensor *ts, int n, const mgio_kv *meta, int nmeta,
                  char *err, size_t errlen) {
  if (n < 0 || nmeta < 0) return mgio_err(err, errlen, "%s: negative count", path);
  /* check names */
  char **names = malloc(((size_t)n + (size_t)nmeta + 1) * sizeof(char *));
  if (!names) return mgio_err(err, errlen, "%s: out of memory", path);
  int r = 0;
  for (int i = 0; i < n && !r; i++) {
    const mgio_wtensor *t = &ts[i];
    names[i] = (char *)t->name;
    if (!t->name || !mgio_utf8_valid(t->name, strlen(t->name)))
      r = mgio_err(err, errlen, "%s: tensor name #%d is not a valid UTF-8 string", path, i + 1);
    else if (strcmp(t->name, "__metadata__") == 0)
      r = mgio_err(err, errlen, "%s: '__metadata__' cannot name a tensor", path);
    else if (t->dtype != MGIO_F32 && t->dtype != MGIO_F64)
      r = mgio_err(err, errlen, "%s: tensor '%s': unknown dtype", path, t->name);
    else if (t->ndim < 0 || t->ndim > MGIO_MAX_DIMS)
      r = mgio_err(err, errlen, "%s: tensor '%s': %d dims (0..%d supported)", path, t->name, t->ndim,
                   MGIO_MAX_DIMS);
    for (int d = 0; d < t->ndim && !r; d++)
      if (t->shape[d] < 0)
        r = mgio_err(err, errlen, "%s: tensor '%s': negative size in its shape", path, t->name);
  }
  const char *dup = r ? NULL : find_dup(names, n);
  if (dup) r = mgio_err(err, errlen, "%s: tensor name '%s' appears twice", path, dup);
  for (int i = 0; i < nmeta && !r; i++) {
    names[i] = (char *)meta[i].key;
    if (!meta[i].key || !meta[i].val || !mgio_utf8_valid(meta[i].key, strlen(meta[i].key)) ||
        !mgio_utf8_valid(meta[i].val, strlen(meta[i].val)))
      r = mgio_err(err, errlen, "%s: metadata entry #%d is not a pair of valid UTF-8 strings", path, i + 1);
    else if (strcmp(meta[i].key, MGIO_CRC_KEY) == 0)
      r = mgio_err(err, errlen, "%s: metadata key '%s' is reserved", path, MGIO_CRC_KEY);
  }
  dup = r ? NULL : find_dup(names, nmeta);
  if (dup) r = mgio_err(err, errlen, "%s: metadata key '%s' appears twice", path, dup);
  free(names);
  if (r) return r;

  /* offsets and checksum */
  uint64_t *nbytes = calloc((size_t)n + 1, sizeof *nbytes);
  if (!nbytes) return mgio_err(err, errlen, "%s: out of memory", path);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int i = 0; i < n; i++) {
    uint64_t c = mgio_itemsize(ts[i].dtype);
    for (int d = 0; d < ts[i].ndim; d++) c *= (uint64_t)ts[i].shape[d];
    nbytes[i] = c;
    if (c && !ts[i].data) { free(nbytes); return mgio_err(err, errlen, "%s: tensor '%s' has no data", path, ts[i].name); }
    le_bytes(&ts[i], c, crc_fn, &crc);
  }

  /* header */
  sbuf h = {0};
  sb_str(&h, "{\"__metadata__\":{");
  char crcs[16];
  snprintf(crcs, sizeof crcs, "%08lx", (unsigned long)crc & 0xFFFFFFFFul);
  sb_json(&h, MGIO_CRC_KEY), sb_str(&h, ":"), sb_json(&h, crcs);
  for (int i = 0; i < nmeta; i++) sb_str(&h, ","), sb_json(&h, meta[i].key), sb_str(&h, ":"), sb_json(&h, meta[i].val);
  sb_str(&h, "}");
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    sb_str(&h, ","), sb_json(&h, ts[i].name);
    sb_str(&h, ts[i].dtype == MGIO_F64 ? ":{\"dtype\":\"F64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < ts[i].ndim; d++) sb_fmt(&h, d ? ",%llu" : "%llu", (unsigned long long)ts[i].shape[d]);
    sb_fmt(&h, "],\"data_offsets\":[%llu,", at);
    sb_fmt(&h, "%llu]}", at += nbytes[i]);
  }
  sb_str(&h, "}");
  while (!h.oom && (8 + h.n) % 8) sb_str(&h, " "); /* align the data section to 8 bytes */
  if (h.oom || h.n > MGIO_MAX_HEADER) {
    free(h.p), free(nbytes);
    return mgio_err(err, errlen, "%s: %s", path, h.oom ? "out of memory" : "header too large");
  }

  /* write a temporary file, then rename it over path */
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 64);
  int fd = -1;
  if (tmp) {
    for (int tries = 0; tries < 2 && fd < 0; tries++) {
      snprintf(tmp, plen + 64, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
      fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 && errno == EEXIST) unlink(tmp); /* left by a dead process with our pid */
    }
  }
  if (fd < 0) {
    r = mgio_err(err, errlen, "%s: cannot create a temporary file next to it: %s", path,
                 tmp ? strerror(errno) : "out of memory");
    free(tmp), free(h.p), free(nbytes);
    return r;
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
  r = write_fn(&fd, len8, 8) || write_fn(&fd, h.p, h.n);
  for (int i = 0; i < n && !r; i++) r = le_bytes(&ts[i], nbytes[i], write_fn, &fd);
  if (!r) r = fsync(fd);
  if (close(fd) && !r) r = -1;
  if (!r) r = rename(tmp, path);
  if (r) {
    r = mgio_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    unlink(tmp);
  } else if (fsync_dir(path)) {
    r = mgio_err(err, errlen, "%s: written, but syncing its directory failed: %s", path, strerror(errno));
  } else remove_stale_tmps(path);
  free(tmp), free(h.p), free(nbytes);
  return r;
}
