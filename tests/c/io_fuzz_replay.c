/* io_fuzz_replay: every input in tests/fuzz/corpus/<target>/ (seeds and inputs
** the fuzzers found) through the fuzz targets. Names say the expected outcome:
** ok-* must parse, bad-* must be refused; none may crash (check-asan runs this
** under ASan/UBSan too). Run from the repository root, as `make test` does. */
#include "tap.h"
#include "../fuzz/targets.h"

#include <dirent.h>
#include <stdlib.h>

static void replay(const char *target, int (*fn)(const uint8_t *, size_t)) {
  char dir[256];
  snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
  DIR *d = opendir(dir);
  if (!ok(d != NULL, "%s: corpus directory %s exists", target, dir)) return;
  int n = 0, fails = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    FILE *f = fopen(p, "rb");
    if (!f) continue;
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int want = strncmp(e->d_name, "ok-", 3) == 0 ? 0 : -1, got = fn(buf, len);
    n++;
    if (got != want) fails++, diag("%s: %s %s", p, want ? "should be refused" : "should parse", got ? "was refused" : "parsed");
  }
  closedir(d);
  ok(n >= 5 && fails == 0, "%s: %d inputs replayed, each parsed or refused as its name says", target, n);
}

int main(void) {
  replay("safetensors", fuzz_safetensors);
  replay("idx", fuzz_idx);
  replay("csv", fuzz_csv);
  unlink(fuzz_tmp());
  return done_testing();
}
