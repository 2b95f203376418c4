/* embed_runner.c — the `moongrad` runner (a thin program over moongrad.h):
** script arguments, -e, --version, --plugins, -P, -t, --seed, error exit. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "tap.h"

static char out[1 << 16];
static const char *build;

static int run(const char *fmt, ...) {
  char cmd[4096], full[4200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  snprintf(full, sizeof full, "(%s/moongrad %s) 2>&1 </dev/null", build, cmd);
  int st = tap_capture(full, out, sizeof out);
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  build = getenv("MG_BUILD");
  if (!build) build = "build";
  char dir[] = "/tmp/mg_runnerXXXXXX";
  ok(mkdtemp(dir) != NULL, "temp dir");
  char script[600], bad[600], pdir[600];
  snprintf(script, sizeof script, "%s/s.lua", dir);
  snprintf(bad, sizeof bad, "%s/bad.lua", dir);
  FILE *f = fopen(script, "w");
  fputs("local mg = require('moongrad')\nlocal a, b = ...\n"
        "print('args', a, b, select('#', ...), arg[0] ~= nil, arg[1], arg[2], arg[-1] ~= nil)\n"
        "print('threads', mg.get_num_threads())\nprint('rand', mg.rand(1):item())\n", f);
  fclose(f);
  f = fopen(bad, "w");
  fputs("local function inner() error('kaboom') end\ninner()\n", f);
  fclose(f);

  ok(run("--version") == 0, "--version exits 0");
  like(out, "moongrad 0.1.0", "prints the version");
  ok(run("%s x y", script) == 0, "a script with arguments");
  like(out, "args\tx\ty\t2\ttrue\tx\ty\ttrue", "arguments arrive as ... and in arg");
  like(out, "threads\t1", "one thread by default");
  ok(run("-t 2 %s", script) == 0 && strstr(out, "threads\t2"), "-t 2");
  ok(run("--seed 5 %s", script) == 0, "--seed 5");
  char first[128] = {0};
  const char *r = strstr(out, "rand\t");
  if (r) snprintf(first, sizeof first, "%.20s", r);
  ok(run("--seed 5 %s", script) == 0 && r && strstr(out, first), "--seed makes runs repeatable");
  ok(run("--seed 6 %s", script) == 0 && r && !strstr(out, first), "another seed, other numbers");
  ok(run("-e \"print(1 + 1)\" -e \"print(require('moongrad').ones(2):sum():item())\"") == 0, "-e twice");
  like(out, "2\n2.0", "both ran, in order");
  ok(run("%s", bad) == 1, "a failing script exits 1");
  like(out, "kaboom", "the message is printed");
  like(out, "stack traceback:", "with a traceback");
  like(out, "in local 'inner'", "naming the function");
  ok(run("-e \"x = = 1\"") == 1, "a syntax error in -e exits 1");
  ok(run("%s/nothere.lua", dir) == 1, "a missing script exits 1");
  like(out, "cannot open", "message");
  ok(run("--frobnicate") == 1, "an unknown option exits 1");
  ok(run("-t 0 -e \"\"") == 1, "-t 0 is refused");

  ok(run("--plugins") == 0, "--plugins");
  like(out, "adam               optim", "lists adam");
  ok(!strstr(out, "lion"), "no lion among the built-ins");
  /* -P: a directory with the example plugin, built with its documented command */
  snprintf(pdir, sizeof pdir, "%s/plug", dir);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "mkdir -p %s && cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -o %s/lion.so "
           "examples/plugins/lion.c", pdir, pdir);
  ok(system(cmd) == 0, "a plugin directory for -P (examples/plugins/lion.c built into it)");
  ok(run("-P %s --plugins", pdir) == 0, "-P DIR --plugins");
  like(out, "lion               optim", "lists the plugin found through -P");
  ok(run("-P %s -e \"local mg = require('moongrad'); print(mg.optim('lion', {mg.zeros(1, {requires_grad = true})}, {lr = 0.01}).lr)\"", pdir) == 0,
     "a script uses the -P plugin");
  like(out, "0.01", "with its hyperparameters");
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  ok(system(cmd) == 0, "clean up");
  return done_testing();
}
