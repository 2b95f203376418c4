/* io_data: the IDX and CSV readers (runtime/mg_data.c) */
#include "tap.h"
#include "mg_io.h"

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
static void spit(const char *path, const void *b, size_t n, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    if (n) gzwrite(f, b, (unsigned)n);
    gzclose(f);
    return;
  }
  FILE *f = fopen(path, "wb");
  fwrite(b, 1, n, f);
  fclose(f);
}
/* an IDX image: header for dims, then payload */
static size_t idx(unsigned char *out, int code, int nd, const uint32_t *dims, const void *payload, size_t pn) {
  out[0] = out[1] = 0, out[2] = (unsigned char)code, out[3] = (unsigned char)nd;
  for (int i = 0; i < nd; i++)
    for (int k = 0; k < 4; k++) out[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
  if (pn) memcpy(out + 4 + 4 * nd, payload, pn);
  return 4 + 4 * (size_t)nd + pn;
}

static int ncalls;
static void *counting_alloc(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *e, size_t el) {
  (void)e, (void)el;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  ncalls++;
  *(size_t *)ud = n;
  return malloc(n ? n * mgio_itemsize(dt) : 1);
}
static void *refusing_alloc(void *ud, mgio_dtype dt, int ndim, const int64_t *shape, char *e, size_t el) {
  (void)ud, (void)dt, (void)ndim, (void)shape;
  snprintf(e, el, "my allocator says no");
  return NULL;
}

static void test_idx(void) {
  unsigned char buf[512];
  size_t n;
  mgio_array a;
  /* every type code, plain and gzipped, big-endian values */
  unsigned char ub[6] = {0, 1, 2, 127, 128, 255};
  unsigned char sb[2] = {0xFF, 0x80};
  unsigned char sh[4] = {0xFF, 0xFE, 0x01, 0x2C};               /* -2, 300 */
  unsigned char in[8] = {0xFF, 0xFE, 0xEE, 0x90, 0, 0, 0, 5};    /* -70000, 5 */
  unsigned char fl[8] = {0x3F, 0xC0, 0, 0, 0xC0, 0, 0, 0};        /* 1.5, -2 */
  unsigned char db[8] = {0x3F, 0xD0, 0, 0, 0, 0, 0, 0};           /* 0.25 */
  struct { int code; int nd; uint32_t dims[3]; const void *p; size_t pn; float want[6]; const char *what; } cs[] = {
    {0x08, 2, {2, 3}, ub, 6, {0, 1, 2, 127, 128, 255}, "ubyte {2,3}"},
    {0x09, 1, {2}, sb, 2, {-1, -128}, "byte"},
    {0x0B, 1, {2}, sh, 4, {-2, 300}, "short"},
    {0x0C, 1, {2}, in, 8, {-70000, 5}, "int"},
    {0x0D, 3, {1, 2, 1}, fl, 8, {1.5f, -2}, "float {1,2,1}"},
    {0x0E, 1, {1}, db, 8, {0.25f}, "double"},
  };
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++)
    for (int gz = 0; gz < 2; gz++) {
      n = idx(buf, cs[c].code, cs[c].nd, cs[c].dims, cs[c].p, cs[c].pn);
      const char *p = path_of(gz ? "x.idx.gz" : "x.idx");
      spit(p, buf, n, gz);
      int r = mgio_idx_read(p, &a, NULL, NULL, err, sizeof err);
      int good = r == 0 && a.ndim == cs[c].nd && a.code == cs[c].code;
      int64_t numel = 1;
      for (int d = 0; good && d < a.ndim; d++) good = a.shape[d] == cs[c].dims[d], numel *= a.shape[d];
      for (int64_t i = 0; good && i < numel; i++) good = a.data[i] == cs[c].want[i];
      ok(good, "IDX %s (%s): shape and values", cs[c].what, gz ? "gzipped" : "plain");
      if (r) diag("%s", err);
      if (!r) free(a.data);
    }
  /* memory entry point and allocation callback */
  n = idx(buf, 0x08, 2, (uint32_t[]){2, 3}, ub, 6);
  size_t got = 0;
  ncalls = 0;
  ok(mgio_idx_read_mem(buf, n, "m", &a, counting_alloc, &got, err, sizeof err) == 0 && ncalls == 1 && got == 6 &&
     a.data[5] == 255, "from memory, through the allocation callback (called once, 6 values)");
  free(a.data);
  ok(mgio_idx_read_mem(buf, n, "m", &a, refusing_alloc, NULL, err, sizeof err) == -1, "a failing allocation callback fails the read");
  is_str(err, "my allocator says no", "... with the callback's message");
  /* malformed files: plain and gzipped */
  struct { unsigned char h[16]; size_t hn; size_t pn; const char *want, *what; } bad[] = {
    {{1, 0, 8, 1, 0, 0, 0, 1}, 8, 1, "magic bytes 01 00", "bad magic"},
    {{0, 0, 7, 1, 0, 0, 0, 1}, 8, 1, "unknown data type code 0x07", "bad type code"},
    {{0, 0, 8, 0}, 4, 0, "0 dims", "zero dims"},
    {{0, 0, 8, 9}, 4, 0, "9 dims", "too many dims"},
    {{0, 0, 8, 2, 0, 0, 0, 1}, 8, 0, "truncated in the IDX header", "dims cut short"},
    {{0, 0, 8, 1, 0, 0, 0, 10}, 8, 9, "promises 10 ubyte values (10 bytes), the file has 9", "data cut short"},
    {{0, 0, 0x0B, 1, 0, 0, 0, 2}, 8, 5, "more data than the header", "trailing data"},
    {{0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0}, 16, 0, "implausible", "huge dims"},
    {{0, 0, 8}, 3, 0, "too short for an IDX header", "3 bytes"},
  };
  unsigned char zeros[16] = {0};
  for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++)
    for (int gz = 0; gz < 2; gz++) {
      memcpy(buf, bad[c].h, bad[c].hn);
      memcpy(buf + bad[c].hn, zeros, bad[c].pn);
      const char *p = path_of(gz ? "bad.idx.gz" : "bad.idx");
      spit(p, buf, bad[c].hn + bad[c].pn, gz);
      int r = mgio_idx_read(p, &a, NULL, NULL, err, sizeof err);
      int good = r == -1 && strstr(err, bad[c].want) && strstr(err, p);
      ok(good, "IDX refused (%s): %s", gz ? "gzipped" : "plain", bad[c].what);
      if (!good) diag("  got: %s", r ? err : "(success)");
      if (!r) free(a.data);
    }
  /* a gzip stream cut short, a corrupted gzip stream */
  unsigned char big[1024];
  for (int i = 0; i < 1000; i++) big[i] = (unsigned char)(i * 7);
  n = idx(buf, 0x08, 1, (uint32_t[]){400}, big, 400);
  const char *p = path_of("full.idx.gz");
  spit(p, buf, n, 1);
  FILE *f = fopen(p, "rb");
  unsigned char gzb[2048];
  size_t gn = fread(gzb, 1, sizeof gzb, f);
  fclose(f);
  int all = 1;
  for (size_t cut = 1; cut < gn; cut++) {
    spit(path_of("cut.idx.gz"), gzb, cut, 0);
    int r = mgio_idx_read(path_of("cut.idx.gz"), &a, NULL, NULL, err, sizeof err);
    if (r == 0) { all = 0; free(a.data); diag("cut at %zu accepted", cut); }
  }
  ok(all, "a gzipped IDX file cut at any of %zu lengths is refused", gn - 1);
  gzb[gn - 6] ^= 0x10; /* CRC-32 of the gzip trailer */
  spit(path_of("crc.idx.gz"), gzb, gn, 0);
  ok(mgio_idx_read(path_of("crc.idx.gz"), &a, NULL, NULL, err, sizeof err) == -1 && strstr(err, "gzip"),
     "a gzip trailer with a wrong checksum is refused (%s)", err);
  ok(mgio_idx_read(path_of("none.idx"), &a, NULL, NULL, err, sizeof err) == -1 && strstr(err, "cannot open") &&
     strstr(err, "none.idx"), "a missing file names the path");
  ok(mgio_idx_read(dir, &a, NULL, NULL, err, sizeof err) == -1 && strstr(err, "not a regular file"), "a directory is refused");
  /* an empty dimension is a valid, empty array */
  n = idx(buf, 0x08, 2, (uint32_t[]){0, 5}, NULL, 0);
  ok(mgio_idx_read_mem(buf, n, "m", &a, NULL, NULL, err, sizeof err) == 0 && a.numel == 0 && a.shape[1] == 5,
     "a {0,5} IDX file reads as an empty array");
  free(a.data);
}

static int csv(const char *text, int header, char delim, mgio_array *a) {
  mgio_csv_opts o = {.header = header, .delim = delim};
  return mgio_csv_read_mem(text, strlen(text), "t.csv", &o, a, NULL, NULL, err, sizeof err);
}

static void test_csv(void) {
  mgio_array a;
  ok(csv("1,2,3\n4,5,6\n", 0, 0, &a) == 0 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 && a.data[0] == 1 &&
     a.data[5] == 6 && !a.names, "2x3, comma by default, no header");
  free(a.data);
  ok(csv("a, b\n1.5,-2e3\r\n\n  3 , 4\n\n", 1, ',', &a) == 0 && a.shape[0] == 2 && a.shape[1] == 2 &&
     a.data[1] == -2000 && a.data[2] == 3 && a.names && !strcmp(a.names[0], "a") && !strcmp(a.names[1], "b"),
     "header names, CRLF, blank lines, spaces around cells");
  free(a.data);
  mgio_array_free_names(&a);
  ok(csv("\xEF\xBB\xBF\"x,1\";\"say \"\"hi\"\"\"\n1;\"2\"\n", 1, ';', &a) == 0 && !strcmp(a.names[0], "x,1") &&
     !strcmp(a.names[1], "say \"hi\"") && a.data[1] == 2, "BOM, ';' delimiter, quoted names with the delimiter and \"\"");
  free(a.data);
  mgio_array_free_names(&a);
  ok(csv("1\t2\n3\t4.25", 0, '\t', &a) == 0 && a.shape[0] == 2, "tab delimiter, no final newline");
  is_num(a.data[3], 4.25, 0, "... last value");
  free(a.data);
  ok(csv("a,b,c\n", 1, ',', &a) == 0 && a.shape[0] == 0 && a.shape[1] == 3 && a.ncols == 3, "header only: 0x3");
  free(a.data);
  mgio_array_free_names(&a);
  ok(csv("nan,inf,-0.0,1e-50\n", 0, ',', &a) == 0 && isnan(a.data[0]) && isinf(a.data[1]) && a.data[3] == 0,
     "nan, inf and float32 underflow");
  free(a.data);
  struct { const char *text; int header; const char *want, *what; } bad[] = {
    {"1,2\n3,4\n5\n", 0, "t.csv: line 3 has 1 column, expected 2 (as line 1)", "short row"},
    {"\n1,2\n3,4,5\n", 0, "line 3 has 3 columns, expected 2 (as line 2)", "long row after a blank line"},
    {"a,b\n1,2,3\n", 1, "line 2 has 3 columns, expected 2 (as line 1)", "row wider than the header"},
    {"1,2\n3,x7\n", 0, "t.csv: line 2, column 2: 'x7' is not a number", "non-numeric cell"},
    {"1,,3\n", 0, "line 1, column 2: empty cell", "empty cell"},
    {"a,b\n1,2\n", 0, "pass {header = true}", "header without header=true: a hint"},
    {"1,2 3\n", 0, "'2 3' is not a number", "two numbers in a cell"},
    {"\"1,2\n", 0, "line 1, column 1: unterminated quote", "unterminated quote"},
    {"\"1\"x,2\n", 0, "text after a closing quote", "text after a quote"},
    {"", 0, "empty file", "empty input"},
    {"\n \n", 1, "no header line", "blank input with header"},
  };
  for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
    int r = csv(bad[c].text, bad[c].header, ',', &a);
    int good = r == -1 && strstr(err, bad[c].want);
    ok(good, "CSV refused: %s", bad[c].what);
    if (!good) diag("  got: %s", r ? err : "(success)");
    if (!r) free(a.data), mgio_array_free_names(&a);
  }
  /* from files, gzipped too */
  const char *text = "x,y\n1,2\n3,4\n";
  mgio_csv_opts o = {.header = true};
  for (int gz = 0; gz < 2; gz++) {
    const char *p = path_of(gz ? "d.csv.gz" : "d.csv");
    spit(p, text, strlen(text), gz);
    size_t got = 0;
    int r = mgio_csv_read(p, &o, &a, counting_alloc, &got, err, sizeof err);
    ok(r == 0 && got == 4 && a.data[3] == 4 && !strcmp(a.names[1], "y"), "CSV file (%s) through the callback",
       gz ? "gzipped" : "plain");
    if (!r) free(a.data), mgio_array_free_names(&a);
  }
  ok(mgio_csv_read(path_of("none.csv"), &o, &a, NULL, NULL, err, sizeof err) == -1, "a missing CSV file is refused");
  like(err, "none.csv: cannot open", "... naming the path");
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mgdata-XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_idx();
  test_csv();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) diag("could not remove %s", dir);
  return done_testing();
}
