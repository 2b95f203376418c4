/* io_safetensors: the safetensors writer and reader (runtime/mg_safetensors.c) */
#include "tap.h"
#include "mg_io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64], err[1024];

static char *path_of(const char *name) {
  static char p[4][256];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)sz + 1);
  *n = fread(b, 1, (size_t)sz, f);
  fclose(f);
  return b;
}
static void spit(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}
/* a safetensors file from a given header (padded to 8) and data section */
static unsigned char *make_st(const char *hdr, const void *data, size_t dn, uint64_t hlen_override, size_t *n) {
  size_t h = strlen(hdr);
  *n = 8 + h + dn;
  unsigned char *b = malloc(*n);
  uint64_t hl = hlen_override ? hlen_override : h;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
  memcpy(b + 8, hdr, h);
  if (dn) memcpy(b + 8 + h, data, dn);
  return b;
}
/* open from memory; returns the error (or "" on success after reading everything) */
static const char *try_mem(const void *b, size_t n) {
  mgio_st st;
  err[0] = 0;
  if (mgio_st_open_mem(&st, b, n, "mem.st", err, sizeof err)) return err;
  void *dst[16] = {0};
  for (int i = 0; i < st.n && i < 16; i++) dst[i] = malloc((size_t)st.t[i].numel * mgio_itemsize(st.t[i].dtype) + 1);
  int r = st.n <= 16 ? mgio_st_read_all(&st, dst, NULL, NULL, err, sizeof err) : 0;
  for (int i = 0; i < 16; i++) free(dst[i]);
  mgio_st_close(&st);
  return r ? err : "";
}
static int count_tmp(void) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

/* ---- the values written ---- */
static float w[6] = {1.5f, -2.25f, 0.0f, -0.0f, 3e38f, 1e-40f};
static double b[4] = {0.1, -1e300, 4.9e-324, 1.0 / 3};
static float s0 = 7.0f;
static const int64_t wsh[2] = {2, 3}, bsh[1] = {4}, zsh[2] = {0, 5};

static void write_ref(const char *path) {
  w[2] = NAN;
  mgio_wtensor ts[] = {
    {"layer.weight", MGIO_F32, 2, wsh, w}, {"layer.bias", MGIO_F64, 1, bsh, b},
    {"scalar", MGIO_F32, 0, NULL, &s0},    {"empty", MGIO_F32, 2, zsh, NULL},
  };
  mgio_kv meta[] = {{"epoch", "3"}, {"note", "quote \" backslash \\ tab \t é"}};
  int r = mgio_st_write(path, ts, 4, meta, 2, err, sizeof err);
  ok(r == 0, "write a checkpoint of 4 tensors and 2 metadata entries");
  if (r) diag("%s", err);
}

static void test_round_trip(void) {
  const char *p = path_of("ref.safetensors");
  write_ref(p);
  mgio_st st;
  if (!ok(mgio_st_open(&st, p, err, sizeof err) == 0, "open it")) { diag("%s", err); return; }
  ok(st.n == 4, "4 tensors");
  is_str(st.t[0].name, "layer.weight", "header order kept: first name");
  is_str(st.t[3].name, "empty", "last name");
  ok(st.t[0].dtype == MGIO_F32 && !strcmp(st.t[0].stype, "F32") && st.t[0].ndim == 2 && st.t[0].shape[0] == 2 &&
     st.t[0].shape[1] == 3 && st.t[0].numel == 6, "weight: F32 {2,3}");
  ok(st.t[1].dtype == MGIO_F64 && st.t[1].ndim == 1 && st.t[1].shape[0] == 4, "bias: F64 {4}");
  ok(st.t[2].ndim == 0 && st.t[2].numel == 1, "scalar: 0 dims, 1 element");
  ok(st.t[3].ndim == 2 && st.t[3].numel == 0 && st.t[3].shape[1] == 5, "empty: {0,5}");
  is_str(mgio_st_meta(&st, "epoch"), "3", "metadata epoch");
  is_str(mgio_st_meta(&st, "note"), "quote \" backslash \\ tab \t é", "metadata with escapes round-trips");
  ok(st.has_crc, "the writer stored a checksum");
  ok(mgio_st_meta(&st, "missing") == NULL, "absent metadata is NULL");
  float w2[6];
  double b2[4];
  float s2;
  void *dst[4] = {w2, b2, &s2, NULL};
  ok(mgio_st_read_all(&st, dst, NULL, NULL, err, sizeof err) == 0, "read all");
  ok(!memcmp(w, w2, sizeof w) && !memcmp(b, b2, sizeof b) && s2 == 7.0f,
     "values identical bit for bit (NaN, -0, denormals, extremes)");
  mgio_st_close(&st);
  ok(count_tmp() == 0, "no temporary file left behind");
}

/* check the written file with cJSON and byte arithmetic only */
static void test_independent_parse(void) {
  size_t n;
  unsigned char *f = slurp(path_of("ref.safetensors"), &n);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | f[i];
  ok(8 + hl <= n && (8 + hl) % 8 == 0, "header length %llu fits and aligns the data to 8 bytes", (unsigned long long)hl);
  char *h = malloc(hl + 1);
  memcpy(h, f + 8, hl);
  h[hl] = 0;
  cJSON *j = cJSON_Parse(h);
  ok(j && cJSON_IsObject(j), "header is a JSON object");
  cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "__metadata__");
  ok(cJSON_IsObject(m) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "epoch")), "__metadata__ holds strings");
  const unsigned char *data = f + 8 + hl;
  size_t dlen = n - 8 - hl;
  char crc[16];
  snprintf(crc, sizeof crc, "%08lx", crc32(0, data, (uInt)dlen));
  cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "moongrad.crc32");
  is_str(c ? c->valuestring : NULL, crc, "moongrad.crc32 is the CRC-32 of the data section");
  struct { const char *name, *dtype; int nd; int64_t sh[2]; const void *src; size_t bytes; } want[] = {
    {"layer.weight", "F32", 2, {2, 3}, w, sizeof w}, {"layer.bias", "F64", 1, {4}, b, sizeof b},
    {"scalar", "F32", 0, {0}, &s0, 4},               {"empty", "F32", 2, {0, 5}, NULL, 0},
  };
  uint64_t at = 0;
  int all = 1;
  for (int i = 0; i < 4; i++) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, want[i].name);
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int good = cJSON_IsString(dt) && !strcmp(dt->valuestring, want[i].dtype) && cJSON_GetArraySize(sh) == want[i].nd &&
               cJSON_GetArraySize(off) == 2;
    for (int d = 0; good && d < want[i].nd; d++) good = cJSON_GetArrayItem(sh, d)->valuedouble == (double)want[i].sh[d];
    if (good) {
      uint64_t b0 = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble, e0 = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
      good = b0 == at && e0 - b0 == want[i].bytes && e0 <= dlen && (!want[i].bytes || !memcmp(data + b0, want[i].src, want[i].bytes));
      at = e0;
    }
    all &= ok(good, "entry '%s': dtype %s, shape, contiguous offsets, raw little-endian bytes", want[i].name, want[i].dtype);
  }
  ok(at == dlen, "offsets cover the data section exactly (%llu bytes)", (unsigned long long)dlen);
  ok(cJSON_GetArraySize(j) == 5, "5 header entries (4 tensors + __metadata__)");
  cJSON_Delete(j);
  free(h);
  free(f);
}

static void test_truncation(void) {
  size_t n;
  unsigned char *f = slurp(path_of("ref.safetensors"), &n);
  int refused = 0, named = 0;
  for (size_t len = 0; len < n; len++) {
    const char *e = try_mem(f, len);
    refused += e[0] != 0;
    named += strstr(e, "mem.st") != NULL && strstr(e, "truncated") != NULL;
  }
  ok(refused == (int)n, "every truncation (0..%zu bytes) is refused", n - 1);
  ok(named == (int)n, "... with a message naming the file and saying 'truncated'");
  /* on disk too */
  const char *p = path_of("trunc.safetensors");
  spit(p, f, n - 3);
  mgio_st st;
  ok(mgio_st_open(&st, p, err, sizeof err) == -1, "a truncated file on disk is refused");
  like(err, p, "the message names the path");
  like(err, "truncated", "... and says truncated");
  diag("%s", err);
  free(f);
}

static void test_bit_flips(void) {
  size_t n;
  unsigned char *f = slurp(path_of("ref.safetensors"), &n);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | f[i];
  int caught = 0, total = 0;
  for (size_t i = 8 + hl; i < n; i++)
    for (int bit = 0; bit < 8; bit++, total++) {
      f[i] ^= (unsigned char)(1 << bit);
      caught += strstr(try_mem(f, n), "checksum mismatch") != NULL;
      f[i] ^= (unsigned char)(1 << bit);
    }
  ok(caught == total, "all %d single-bit flips in the data are checksum errors (%d caught)", total, caught);
  /* flips in the header: refused or parsed, never a crash (ASan builds check memory) */
  int refused = 0;
  for (size_t i = 0; i < 8 + hl; i++)
    for (int bit = 0; bit < 8; bit++) {
      f[i] ^= (unsigned char)(1 << bit);
      refused += try_mem(f, n)[0] != 0;
      f[i] ^= (unsigned char)(1 << bit);
    }
  ok(refused > 0, "header bit flips: %d of %d refused, the rest parse (e.g. a changed name letter)", refused,
     (int)(8 * (8 + hl)));
  ok(try_mem(f, n)[0] == 0, "the unmodified file still reads");
  free(f);
}

static void test_bad_headers(void) {
  size_t n;
  unsigned char *b;
  float two[2] = {1, 2};
  struct { const char *hdr; size_t dn; uint64_t hl; const char *want, *what; } cases[] = {
    {"{\"a\":{\"dtype\":\"F32\",", 0, 0, "invalid JSON", "cut-off JSON"},
    {"[1,2]", 0, 0, "not a JSON object", "root is an array"},
    {"{\"a\":1}", 0, 0, "not an object", "entry is a number"},
    {"{} x", 0, 0, "unexpected bytes", "garbage after the JSON"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
     8, 0, "overlap", "overlapping offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0, "belong to no tensor", "a gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 0, "after the last tensor", "trailing data"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "needs 12 bytes", "shape vs byte length"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, "end before", "end < begin"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0, "non-negative", "negative size"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, 0, "non-negative integer", "fractional size"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, 0, "9 dims", "too many dims"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, 0,
     "too many elements", "element count overflow"},
    {"{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, 0, "dtype 'C64' is not supported", "unknown dtype"},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "missing or non-string \"dtype\"", "no dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, 0, "data_offsets", "one offset"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
     8, 0, "'a' appears twice", "duplicate tensor name"},
    {"{\"__metadata__\":{\"k\":1}}", 0, 0, "'k' is not a string", "non-string metadata"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0, "'k' appears twice", "duplicate metadata key"},
    {"{\"__metadata__\":{\"moongrad.crc32\":\"xyz\"}}", 0, 0, "not 8 hex digits", "malformed checksum"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, 0, "truncated", "data cut short"},
    {"{}", 0, (uint64_t)1 << 62, "exceeds the file size", "huge header length"},
    {"{}", 0, 1, "implausible", "1-byte header"},
    {"{\"a\xff\":{}}", 0, 0, "not valid UTF-8", "invalid UTF-8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    b = make_st(cases[i].hdr, two, cases[i].dn, cases[i].hl, &n);
    const char *e = try_mem(b, n);
    int c = ok(strstr(e, cases[i].want) && strstr(e, "mem.st"), "refused: %s", cases[i].what);
    if (!c) diag("  got '%s', want '%s'", e, cases[i].want);
    free(b);
  }
  /* a NUL byte inside the header */
  b = make_st("{\"a\":{}}  ", NULL, 0, 0, &n);
  b[8 + 3] = 0;
  like(try_mem(b, n), "NUL", "refused: NUL byte in the header");
  free(b);
  /* a header length over the 100 MB limit in a (sparse) file big enough to hold it */
  const char *p = path_of("sparse.safetensors");
  b = make_st("{}", NULL, 0, MGIO_MAX_HEADER + 1, &n);
  spit(p, b, n);
  free(b);
  ok(truncate(p, MGIO_MAX_HEADER + 64) == 0, "made a sparse file of 100 MB");
  mgio_st st;
  ok(mgio_st_open(&st, p, err, sizeof err) == -1 && strstr(err, "implausible"), "header length over the limit refused");
  unlink(p);
  /* not a file */
  ok(mgio_st_open(&st, dir, err, sizeof err) == -1 && strstr(err, "not a regular file"), "a directory is refused");
  ok(mgio_st_open(&st, path_of("nope"), err, sizeof err) == -1 && strstr(err, "cannot open") && strstr(err, "nope"),
     "a missing file: 'cannot open' and the path");
  ok(try_mem(NULL, 0)[0] != 0, "an empty buffer is refused");
}

static void test_foreign(void) {
  /* other tools' files: no checksum, padding spaces, other dtypes */
  unsigned char data[64];
  size_t at = 0;
  uint16_t h16[2] = {0x3E00, 0xC000}; /* 1.5, -2 */
  uint16_t bf[1] = {0x3F80};          /* 1.0 */
  int64_t i64[2] = {-5, (int64_t)1 << 40};
  uint8_t u8[3] = {0, 7, 255};
  memcpy(data + at, h16, 4), at += 4;
  memcpy(data + at, bf, 2), at += 2;
  memcpy(data + at, i64, 16), at += 16;
  memcpy(data + at, u8, 3), at += 3;
  data[at++] = 1; /* BOOL */
  size_t n;
  unsigned char *b = make_st("{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                             "\"bf\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]},"
                             "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[6,22]},"
                             "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[22,25]},"
                             "\"t\":{\"dtype\":\"BOOL\",\"shape\":[1,1],\"data_offsets\":[25,26]}}   ",
                             data, at, 0, &n);
  mgio_st st;
  if (!ok(mgio_st_open_mem(&st, b, n, "foreign", err, sizeof err) == 0, "a file without checksum, with padding")) {
    diag("%s", err);
    free(b);
    return;
  }
  ok(!st.has_crc && st.nmeta == 1, "no checksum; its metadata kept");
  float h[2], bfv, u[3], t;
  double iv[2];
  void *dst[5] = {h, &bfv, iv, u, &t};
  ok(mgio_st_read_all(&st, dst, NULL, NULL, err, sizeof err) == 0, "reads");
  ok(st.t[0].dtype == MGIO_F32 && st.t[2].dtype == MGIO_F64 && !strcmp(st.t[0].stype, "F16"), "F16 read as F32, I64 as F64");
  ok(h[0] == 1.5f && h[1] == -2.0f, "F16 values");
  is_num(bfv, 1.0, 0, "BF16 value");
  ok(iv[0] == -5 && iv[1] == 1099511627776.0, "I64 values");
  ok(u[0] == 0 && u[1] == 7 && u[2] == 255 && t == 1, "U8 and BOOL values");
  mgio_st_close(&st);
  free(b);
}

static void test_writer(void) {
  float x = 1;
  int64_t one = 1;
  const char *p = path_of("w.safetensors");
  mgio_wtensor a[2] = {{"a", MGIO_F32, 1, &one, &x}, {"a", MGIO_F32, 1, &one, &x}};
  ok(mgio_st_write(p, a, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "'a' appears twice"), "duplicate names refused");
  mgio_wtensor m[1] = {{"__metadata__", MGIO_F32, 1, &one, &x}};
  ok(mgio_st_write(p, m, 1, NULL, 0, err, sizeof err) == -1 && strstr(err, "__metadata__"), "'__metadata__' refused as a name");
  mgio_wtensor u[1] = {{"bad\xff", MGIO_F32, 1, &one, &x}};
  ok(mgio_st_write(p, u, 1, NULL, 0, err, sizeof err) == -1 && strstr(err, "UTF-8"), "invalid UTF-8 name refused");
  mgio_kv kv[1] = {{MGIO_CRC_KEY, "0"}};
  ok(mgio_st_write(p, a, 1, kv, 1, err, sizeof err) == -1 && strstr(err, "reserved"), "the checksum key is reserved");
  ok(access(p, F_OK) != 0, "nothing written on refusal");
  const char *q = path_of("no/such/dir/x.safetensors");
  ok(mgio_st_write(q, a, 1, NULL, 0, err, sizeof err) == -1 && strstr(err, q), "unwritable path: error names it");
  diag("%s", err);
  /* replacing an existing checkpoint */
  ok(mgio_st_write(p, a, 1, NULL, 0, err, sizeof err) == 0, "write version 1");
  x = 2;
  ok(mgio_st_write(p, a, 1, NULL, 0, err, sizeof err) == 0, "overwrite with version 2");
  mgio_st st;
  float y = 0;
  void *dst[1] = {&y};
  ok(mgio_st_open(&st, p, err, sizeof err) == 0 && mgio_st_read_all(&st, dst, NULL, NULL, err, sizeof err) == 0 && y == 2,
     "the file holds version 2");
  mgio_st_close(&st);
  /* a stale temporary file from a killed writer does not matter */
  char stale[300];
  snprintf(stale, sizeof stale, "%s.tmp.%ld.0", p, (long)getpid());
  spit(stale, "junk", 4);
  x = 3;
  ok(mgio_st_write(p, a, 1, NULL, 0, err, sizeof err) == 0, "write with a stale temporary file (from a killed writer) next to it");
  ok(mgio_st_open(&st, p, err, sizeof err) == 0 && mgio_st_read_all(&st, dst, NULL, NULL, err, sizeof err) == 0 && y == 3,
     "the file holds version 3");
  mgio_st_close(&st);
  unlink(stale);
  ok(count_tmp() == 0, "no temporary files left");
  /* an empty checkpoint */
  ok(mgio_st_write(p, NULL, 0, NULL, 0, err, sizeof err) == 0, "write no tensors");
  ok(mgio_st_open(&st, p, err, sizeof err) == 0 && st.n == 0 && st.has_crc, "reads back: 0 tensors, checksum");
  mgio_st_close(&st);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mgio-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_round_trip();
  test_independent_parse();
  test_truncation();
  test_bit_flips();
  test_bad_headers();
  test_foreign();
  test_writer();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
