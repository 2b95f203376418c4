/*
** main.c — the `moongrad` runner: a thin program over the embedding API
** (moongrad.h). Runs a script, -e strings, or a REPL; require("moongrad") works
** in all of them. Ctrl-C interrupts the running script (mg_interrupt): it gets
** the error "interrupted", and uncaught, the runner exits with status 130; a
** second Ctrl-C kills at once.
*/
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moongrad.h"

static void usage(FILE *f) {
  fputs("usage: moongrad [options] [script.lua [args...]]\n"
        "  -e CODE       run CODE (may be repeated)\n"
        "  -t N          use N threads\n"
        "  -P DIR        add a plugin directory (may be repeated)\n"
        "  --seed N      seed the random number generator\n"
        "  --plugins     list the registered plugins and exit\n"
        "  --version     print the version and exit\n"
        "  -h, --help    this help\n"
        "With no script and no -e, starts an interactive prompt.\n", f);
}

/* the prompt, in Lua: an expression is printed, a statement is run */
static const char REPL[] =
    "mg = require('moongrad')\n"
    "io.write('moongrad ', mg.version, ' (Lua 5.4) - `mg` is loaded; Ctrl-D to quit\\n')\n"
    "while true do\n"
    "  io.write('> '); io.flush()\n"
    "  local line = io.read('L')\n"
    "  if not line then io.write('\\n') break end\n"
    "  local f, err = load('return ' .. line, '=stdin')\n"
    "  if not f then f, err = load(line, '=stdin') end\n"
    "  if not f then io.stderr:write(err, '\\n')\n"
    "  else\n"
    "    local r = table.pack(xpcall(f, debug.traceback))\n"
    "    if not r[1] then io.stderr:write(tostring(r[2]), '\\n')\n"
    "    elseif r.n > 1 then print(table.unpack(r, 2, r.n)) end\n"
    "  end\n"
    "end\n";

static int failed(mg_runtime *R, mg_status st) {
  if (st == MG_OK) return 0;
  if (st == MG_ERR_INTERRUPTED) { fputs("moongrad: interrupted\n", stderr); return 128 + SIGINT; }
  fprintf(stderr, "moongrad: %s\n", mg_last_error(R));
  return 1;
}

static mg_runtime *volatile interruptee;  /* the runtime SIGINT interrupts */

/* SIGINT (installed with SA_RESETHAND, so a second one kills): interrupt the
** script, or die now as by default when none runs */
static void on_sigint(int sig) {
  if (!mg_interrupt(interruptee)) raise(sig);
}

/* run a script call with Ctrl-C handled; its status */
#define GUARDED(R, call) (catch_sigint(R), guard_end(call))
static void catch_sigint(mg_runtime *R) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  interruptee = R;
  sigaction(SIGINT, &sa, NULL);
}
static mg_status guard_end(mg_status st) {
  signal(SIGINT, SIG_DFL);
  return st;
}

int main(int argc, char **argv) {
  int threads = 1, script = 0, list_plugins = 0, nexec = 0, npdirs = 0;
  long long seed = -1;
  const char *execs[64], *pdirs[65];
  for (int i = 1; i < argc && !script; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-e") && i + 1 < argc && nexec < 64) execs[nexec++] = argv[++i];
    else if (!strcmp(a, "-t") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(a, "-P") && i + 1 < argc && npdirs < 64) pdirs[npdirs++] = argv[++i];
    else if (!strcmp(a, "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
    else if (!strcmp(a, "--plugins")) list_plugins = 1;
    else if (!strcmp(a, "--version")) { printf("moongrad %s (Lua 5.4)\n", mg_version()); return 0; }
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "moongrad: unknown option '%s'\n", a); usage(stderr); return 1; }
    else script = i;
  }
  if (threads < 1 || threads > 1024) { fprintf(stderr, "moongrad: -t expects 1..1024\n"); return 1; }
  pdirs[npdirs] = NULL;

  mg_config cfg;
  mg_config_init(&cfg);
  cfg.threads = threads;
  cfg.plugin_dirs = pdirs;
  char err[512];
  mg_runtime *R = mg_open(&cfg, err, sizeof err);
  if (!R) { fprintf(stderr, "moongrad: %s\n", err); return 1; }
  int status = 0;
  if (seed >= 0) mg_seed(R, (unsigned long long)seed);

  if (list_plugins) {
    for (int i = 0, n = mg_plugin_list_count(R); i < n; i++) {
      mg_plugin_entry p;
      if (mg_plugin_list_get(R, i, &p) == MG_OK)
        printf("%-18s %-6s %-8s %s\n", p.name, p.kind, p.version, p.file ? p.file : "(built in)");
    }
    mg_close(R);
    return 0;
  }
  /* arg as lua.c builds it: arg[0] = script, arg[1..] its arguments, options below 0 */
  status = failed(R, mg_set_global_strings(R, "arg", argc, (const char *const *)argv, -(script ? script : argc)));
  for (int i = 0; i < nexec && !status; i++)
    status = failed(R, GUARDED(R, mg_run_buffer(R, execs[i], strlen(execs[i]), "=(command line)")));
  if (!status && script)
    status = failed(R, GUARDED(R, mg_run_file(R, argv[script], argc - script - 1, (const char *const *)argv + script + 1)));
  else if (!status && !nexec)
    status = failed(R, GUARDED(R, mg_run_string(R, REPL)));
  mg_close(R);
  return status;
}
