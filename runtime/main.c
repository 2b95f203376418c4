/*
** main.c — the `moongrad` runner: run a script, a string, or a REPL with the
** runtime preloaded as require("moongrad").
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <cblas.h>
#include "mg_core.h"

int luaopen_moongrad(lua_State *L);

static void usage(FILE *f) {
  fputs("usage: moongrad [options] [script.lua [args...]]\n"
        "  -e CODE       run CODE (may be repeated)\n"
        "  -t N          use N threads\n"
        "  -P DIR        add a plugin directory\n"
        "  --seed N      seed the random number generator\n"
        "  --plugins     list the registered plugins and exit\n"
        "  --version     print the version and exit\n"
        "  -h, --help    this help\n"
        "With no script and no -e, starts an interactive prompt.\n", f);
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    fprintf(stderr, "moongrad: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int st = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return st;
}

/* the mg table, loaded once */
static int load_mg(lua_State *L) {
  luaL_requiref(L, "moongrad", luaopen_moongrad, 0);
  return 1;
}

static void repl(lua_State *L) {
  char line[8192];
  printf("moongrad %s (Lua 5.4) — `mg` is loaded; Ctrl-D to quit\n", MG_VERSION);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, -1, "moongrad");
  lua_setglobal(L, "mg");
  lua_pop(L, 2);
  for (;;) {
    fputs("> ", stdout);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) { putchar('\n'); break; }
    /* try as an expression first, like lua.c */
    const char *ret = lua_pushfstring(L, "return %s", line);
    int st = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
    lua_remove(L, -2);
    if (st != LUA_OK) { lua_pop(L, 1); st = luaL_loadbuffer(L, line, strlen(line), "=stdin"); }
    if (st == LUA_OK) st = docall(L, 0, LUA_MULTRET);
    if (st != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); lua_settop(L, 0); continue; }
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
      printf("%s%s", i > 1 ? "\t" : "", luaL_tolstring(L, i, NULL));
      lua_pop(L, 1);
    }
    if (n) putchar('\n');
    lua_settop(L, 0);
  }
}

int main(int argc, char **argv) {
  int threads = 0, script = 0, list_plugins = 0, nexec = 0;
  long long seed = -1;
  const char *execs[64], *pdirs[64];
  int npdirs = 0;
  for (int i = 1; i < argc && !script; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-e") && i + 1 < argc && nexec < 64) execs[nexec++] = argv[++i];
    else if (!strcmp(a, "-t") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(a, "-P") && i + 1 < argc && npdirs < 64) pdirs[npdirs++] = argv[++i];
    else if (!strcmp(a, "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
    else if (!strcmp(a, "--plugins")) list_plugins = 1;
    else if (!strcmp(a, "--version")) { printf("moongrad %s (%s)\n", MG_VERSION, LUA_RELEASE); return 0; }
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "moongrad: unknown option '%s'\n", a); usage(stderr); return 1; }
    else script = i;
  }
  if (threads < 0 || threads > 1024) { fprintf(stderr, "moongrad: -t expects 1..1024\n"); return 1; }
  lua_State *L = luaL_newstate();
  if (!L) { fputs("moongrad: cannot create a Lua state\n", stderr); return 1; }
  luaL_openlibs(L);
  /* make require("moongrad") work, then load it now so options apply */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_moongrad);
  lua_setfield(L, -2, "moongrad");
  lua_pop(L, 2);
  lua_pushcfunction(L, load_mg);
  if (report(L, docall(L, 0, 1))) return 1;
  int mg = lua_gettop(L);
  if (threads) {
    lua_getfield(L, mg, "set_num_threads");
    lua_pushinteger(L, threads);
    if (report(L, docall(L, 1, 0))) return 1;
  } else openblas_set_num_threads(1);
  if (seed >= 0) {
    lua_getfield(L, mg, "manual_seed");
    lua_pushinteger(L, seed);
    if (report(L, docall(L, 1, 0))) return 1;
  }
  for (int i = 0; i < npdirs; i++) {
    lua_getfield(L, mg, "add_plugin_dir");
    if (lua_isnil(L, -1)) { lua_pop(L, 1); fprintf(stderr, "moongrad: -P: plugins are not available\n"); return 1; }
    lua_pushstring(L, pdirs[i]);
    if (report(L, docall(L, 1, 0))) return 1;
  }
  if (list_plugins) {
    const char *code =
        "local mg = require('moongrad')\n"
        "if not mg.plugins then print('(no plugin support)') return end\n"
        "for _, p in ipairs(mg.plugins()) do\n"
        "  print(string.format('%-18s %-6s %-8s %s', p.name, p.kind, p.version, p.file or '(built in)'))\n"
        "end\n";
    if (report(L, luaL_loadstring(L, code)) || report(L, docall(L, 0, 0))) return 1;
    lua_close(L);
    return 0;
  }
  int status = 0;
  /* arg table as lua.c builds it: arg[0] = script, arg[1..] = its arguments */
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - (script ? script : argc));
  }
  lua_setglobal(L, "arg");
  for (int i = 0; i < nexec && !status; i++) {
    status = luaL_loadbuffer(L, execs[i], strlen(execs[i]), "=(command line)");
    if (status == LUA_OK) status = docall(L, 0, 0);
    report(L, status);
  }
  if (!status && script) {
    int nargs = argc - script - 1;
    status = luaL_loadfile(L, argv[script]);
    if (status == LUA_OK) {
      for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
      status = docall(L, nargs, 0);
    }
    report(L, status);
  } else if (!status && !nexec) {
    repl(L);
  }
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
