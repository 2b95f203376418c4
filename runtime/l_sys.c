/* l_sys.c — clock, threads, seeds, memory figures, terminal check. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "l_core.h"

static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
  return 1;
}

static int l_manual_seed(lua_State *L) {
  if (!lua_isinteger(L, 1)) return luaL_error(L, "manual_seed: expected an integer seed, got %s", mgl_typename(L, 1));
  mg_manual_seed(mgl_rt(L), (uint64_t)lua_tointeger(L, 1));
  return 0;
}

static int l_set_num_threads(lua_State *L) {
  lua_Integer n = mgl_checkinteger(L, 1, "set_num_threads", "a thread count (integer)");
  if (n < 1 || n > 1024) return luaL_error(L, "set_num_threads: expected 1..1024 threads, got %d", (int)n);
  mgl_rt(L)->nthreads = (int)n;
  return 0;
}

static int l_get_num_threads(lua_State *L) { lua_pushinteger(L, mgl_rt(L)->nthreads); return 1; }

static int l_isatty(lua_State *L) { lua_pushboolean(L, isatty((int)mgl_optinteger(L, 1, "isatty", "a file descriptor (integer)", 1))); return 1; }

/* resident set size of the process in bytes (Linux), or -1 */
static long long resident_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long long size, res;
  int n = f ? fscanf(f, "%lld %lld", &size, &res) : 0;
  if (f) fclose(f);
  return n == 2 ? res * sysconf(_SC_PAGESIZE) : -1;
}

static int l_memory(lua_State *L) {
  mg_rt *rt = mgl_rt(L);
  lua_createtable(L, 0, 4);
  long long rss = resident_bytes();
  if (rss >= 0) { lua_pushinteger(L, (lua_Integer)rss); lua_setfield(L, -2, "rss"); }
  lua_pushinteger(L, (lua_Integer)rt->live_bytes); lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)rt->peak_bytes); lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)rt->mem_limit); lua_setfield(L, -2, "limit");
  return 1;
}

void mgl_open_sys(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"clock", l_clock}, {"manual_seed", l_manual_seed}, {"set_num_threads", l_set_num_threads},
    {"get_num_threads", l_get_num_threads}, {"isatty", l_isatty}, {"memory", l_memory}, {NULL, NULL}};
  mgl_register(L, fns, NULL);
}
