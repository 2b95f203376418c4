/* embed_install.c — `make install PREFIX=$tmp` lays out a usable tree: the
** embedding example builds against it with pkg-config (the documented command)
** and runs; a stock lua5.4 requires the module; the installed runner finds the
** installed plugins. Run from the source tree by `make test` (MG_BUILD set). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined "
#define SANITIZED 1
#else
#define SAN_FLAGS ""
#define SANITIZED 0
#endif

static char out[1 << 16];

/* run a shell command, capture stdout+stderr into out, return its exit status */
static int sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[4200];
  snprintf(full, sizeof full, "(%s) 2>&1", cmd);
  int st = tap_capture(full, out, sizeof out);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *prefix, const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", prefix, rel);
  return access(p, F_OK) == 0;
}

int main(void) {
  const char *build = getenv("MG_BUILD");
  if (!build) build = "build";
  if (access("examples/embed/host.c", F_OK) != 0) {
    ok(0, "run from the source tree (examples/embed/host.c not found)");
    return done_testing();
  }
  char tmp[] = "/tmp/mg_installXXXXXX";
  ok(mkdtemp(tmp) != NULL, "temp prefix");

  int st = sh("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory BUILD=%s PREFIX=%s install", build, tmp);
  ok(st == 0, "make install PREFIX=%s", tmp);
  if (st) diag("%s", out);
  static const char *const files[] = {
    "bin/moongrad", "lib/libmoongrad.so", "lib/libmoongrad.so.0", "lib/libmoongrad.a", "lib/pkgconfig/moongrad.pc",
    "include/moongrad.h", "include/moongrad_plugin.h", "lib/moongrad/plugins/sgd.so",
    "lib/moongrad/plugins/cross_entropy.so", "lib/lua/5.4/moongrad.so", "share/lua/5.4/moongrad/nn.lua",
    "share/doc/moongrad/embedding.md", "share/doc/moongrad/examples/embed/host.c", NULL};
  for (int i = 0; files[i]; i++) ok(exists(tmp, files[i]), "installed %s", files[i]);

  /* pkg-config sees the tree */
  st = sh("PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --cflags --libs moongrad", tmp);
  ok(st == 0 && strstr(out, "-lmoongrad") && strstr(out, tmp), "pkg-config --cflags --libs moongrad");

  /* the example, with the command from docs/embedding.md */
  st = sh("cd %s && export PKG_CONFIG_PATH=%s/lib/pkgconfig && cc " SAN_FLAGS "-std=c11 -O2 -Wall -Wextra -Werror -o host "
          "share/doc/moongrad/examples/embed/host.c $(pkg-config --cflags --libs moongrad) -lm "
          "-Wl,-rpath,$(pkg-config --variable=libdir moongrad)", tmp, tmp);
  ok(st == 0, "the example builds against the installed tree with pkg-config, without warnings");
  if (st) diag("%s", out);
  st = sh("cd / && %s/host", tmp);
  ok(st == 0, "the example runs and its model learns");
  if (st) diag("%s", out);
  like(out, "host_sgd (optim, from host.c)", "it registered its own optimizer");
  like(out, "prediction error (MSE) 0.00", "it read back predictions (MSE < 0.01)");
  st = sh("ldd %s/host", tmp);
  char want[600];
  snprintf(want, sizeof want, "%s/lib/libmoongrad.so.0", tmp);
  like(out, want, "it is linked to the installed shared library");

  /* a stock lua5.4 requires the installed module */
  if (SANITIZED) {
    ok(1, "# skip stock lua5.4 cannot load a sanitizer-built module");
  } else {
    st = sh("cd / && lua5.4 -e 'package.cpath=\"%s/lib/lua/5.4/?.so;\"..package.cpath; local mg = require(\"moongrad\"); "
            "print(mg.zeros(2)); print(#mg.plugins() > 0 and mg.plugins()[1].file)'", tmp);
    ok(st == 0, "lua5.4 requires the installed moongrad.so");
    if (st) diag("%s", out);
    like(out, "tensor([0, 0], shape={2}, dtype=float32)", "mg.zeros(2) prints");
    snprintf(want, sizeof want, "%s/lib/moongrad/plugins/", tmp);
    like(out, want, "the module finds the installed plugins");
  }

  /* the installed runner */
  st = sh("cd / && %s/bin/moongrad --plugins", tmp);
  ok(st == 0, "installed runner --plugins");
  snprintf(want, sizeof want, "%s/lib/moongrad/plugins/adam.so", tmp);
  like(out, want, "it lists the installed plugins");
  st = sh("cd / && %s/bin/moongrad -e 'local mg = require(\"moongrad\"); local o = mg.optim(\"adam\", {mg.zeros(2, {requires_grad = true})}); print(o.lr)'", tmp);
  ok(st == 0 && strstr(out, "0.001"), "the installed runner uses an installed plugin (adam lr 0.001)");
  if (st) diag("%s", out);

  sh("rm -rf %s", tmp);
  return done_testing();
}
