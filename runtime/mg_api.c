/*
** mg_api.c — the embedding API (include/moongrad.h) over the core and the Lua
** bindings. An mg_runtime owns one lua_State and one mg_rt; nothing here is
** process-wide.
**
** Memory limit: one budget for the Lua heap and tensor storage together. The
** Lua allocator counts Lua bytes and refuses growth past limit - tensor bytes;
** tensor allocations (mg_mem.c) are refused past rt->mem_limit, which this file
** keeps equal to limit - Lua bytes. A refusal inside a script is a Lua error;
** the call returns MG_ERR_MEMORY and a full collection frees what it left.
**
** Every entry point that touches Lua runs in lua_pcall (see protect), so no Lua
** error can escape to the host; the message handler adds a traceback.
*/
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "moongrad.h"
#include "mg_core.h"
#include "mg_plugin.h"
#include "l_core.h"

int mgl_open_with(lua_State *L, mg_rt *rt, bool owned);

#define BUDGET_STEP 1000  /* instructions between two count-hook calls at most */

struct mg_value {
  mg_runtime *R;
  mg_tensor *t;           /* one reference */
  mg_value *prev, *next;  /* the runtime's open values, freed by mg_close */
};

#define POOL_CLASSES 8          /* blocks of 16, 32, ..., 128 bytes */
#define POOL_MAX_BYTES ((size_t)8 << 20)

struct mg_runtime {
  lua_State *L;
  mg_rt *rt;
  mg_config cfg;
  /* memory */
  size_t limit;           /* Lua + tensor bytes; 0: none */
  size_t lua_bytes;
  bool relax;             /* error handling and cleanup may pass the limit */
  bool tensor_oom;        /* the tensor allocator hit the limit during this call */
  bool lua_oom;           /* the Lua allocator refused growth during this call */
  /* instruction budget */
  uint64_t budget, used;
  bool budget_hit;
  /* interrupts: `running` and `interrupt` are shared with mg_interrupt (any thread) */
  atomic_bool running;    /* a script call (mg_run_*, mg_call) is under way */
  atomic_bool interrupt;  /* mg_interrupt asked; the hook raises at the next instruction */
  bool interrupted;       /* the hook raised "interrupted" during this call */
  mg_status forced;       /* status for a host-argument error raised inside a call */
  mg_value *values;
  char *msg;              /* last error message (malloc'd), "" if none */
  /* small Lua blocks (every tensor box is one) are recycled per size class */
  void *pool[POOL_CLASSES];
  size_t pool_bytes;
};

static const char EMPTY[] = "";

/* ---- messages ---------------------------------------------------------------- */

static void set_msg(mg_runtime *R, const char *s) {
  if (R->msg != EMPTY) free(R->msg);
  R->msg = (char *)EMPTY;
  if (s && *s) {
    size_t n = strlen(s) + 1;
    char *m = malloc(n);
    if (m) { memcpy(m, s, n); R->msg = m; }
  }
}

static mg_status fail(mg_runtime *R, mg_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static mg_status fail(mg_runtime *R, mg_status st, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  set_msg(R, buf);
  return st;
}

const char *mg_last_error(const mg_runtime *R) { return R ? R->msg : "moongrad: no runtime"; }
const char *mg_version(void) { return MG_VERSION; }

/* ---- memory ----------------------------------------------------------------- */

static void sync_limit(mg_runtime *R) {
  if (!R->limit) { R->rt->mem_limit = 0; return; }
  /* 1, not 0, when Lua holds everything: 0 would mean "no limit" to mg_mem.c */
  R->rt->mem_limit = R->limit > R->lua_bytes ? R->limit - R->lua_bytes : 1;
}

/* Lua's allocations, with a free list per small size class: a tensor op makes
** and a collection frees one small userdata, so the steady state of a loop
** reuses blocks instead of calling malloc. A block's class follows from its
** size, which Lua always passes back. */
static int pool_class(size_t n) { return n && n <= 16 * POOL_CLASSES ? (int)((n - 1) >> 4) : -1; }

static void pool_free(mg_runtime *R, void *p, size_t n) {
  int c = pool_class(n);
  if (c < 0 || R->pool_bytes >= POOL_MAX_BYTES) { free(p); return; }
  *(void **)p = R->pool[c];
  R->pool[c] = p;
  R->pool_bytes += (size_t)(c + 1) << 4;
}

static void *pool_alloc(mg_runtime *R, size_t n) {
  int c = pool_class(n);
  if (c < 0) return malloc(n);
  void *p = R->pool[c];
  if (!p) return malloc((size_t)(c + 1) << 4);
  R->pool[c] = *(void **)p;
  R->pool_bytes -= (size_t)(c + 1) << 4;
  return p;
}

static void pool_trim(mg_runtime *R) {
  for (int c = 0; c < POOL_CLASSES; c++)
    while (R->pool[c]) { void *p = R->pool[c]; R->pool[c] = *(void **)p; free(p); }
  R->pool_bytes = 0;
}

static __attribute__((noinline)) void *l_alloc_any(mg_runtime *R, void *ptr, size_t osize, size_t nsize) {
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (ptr) pool_free(R, ptr, osize);
    R->lua_bytes -= old;
    if (R->limit) sync_limit(R);
    return NULL;
  }
  if (R->limit && nsize > old && !R->relax &&
      R->lua_bytes + R->rt->live_bytes + (nsize - old) > R->limit) {
    R->lua_oom = true;
    return NULL;
  }  /* Lua collects and retries once, then raises "not enough memory" */
  void *p;
  int oc = ptr ? pool_class(osize) : -1, nc = pool_class(nsize);
  if (ptr && oc >= 0 && oc == nc) p = ptr;            /* same block fits */
  else if (ptr && oc < 0 && nc < 0) p = realloc(ptr, nsize);
  else {
    p = pool_alloc(R, nsize);
    if (p && ptr) {
      memcpy(p, ptr, old < nsize ? old : nsize);
      pool_free(R, ptr, osize);
    }
  }
  if (!p) return NULL;
  R->lua_bytes = R->lua_bytes - old + nsize;
  if (R->limit) sync_limit(R);
  return p;
}

/* the steady state of a loop first: without a limit, a small block taken from
** or given back to its pool with no other work */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  mg_runtime *R = ud;
  if (!R->limit) {
    if (!ptr && nsize && nsize <= 16 * POOL_CLASSES && R->pool[(nsize - 1) >> 4]) {
      R->lua_bytes += nsize;
      return pool_alloc(R, nsize);
    }
    if (ptr && !nsize && osize && osize <= 16 * POOL_CLASSES && R->pool_bytes < POOL_MAX_BYTES) {
      R->lua_bytes -= osize;
      pool_free(R, ptr, osize);
      return NULL;
    }
  }
  return l_alloc_any(R, ptr, osize, nsize);
}

/* tensor allocation would pass the limit: collect garbage first (as the bindings do) */
static void on_pressure(mg_rt *rt, void *ud) {
  mg_runtime *R = ud;
  R->tensor_oom = true;
  lua_gc(R->L, LUA_GCCOLLECT);
  rt->since_gc = 0;
}

/* ---- instruction budget and interrupts ------------------------------------------
** One count hook serves both. A budgeted call arms it every min(left, BUDGET_STEP)
** instructions; mg_interrupt sets R->interrupt and re-arms it for the very next
** instruction (lua_sethook may be called asynchronously, as lua.c does from its
** SIGINT handler). The hook counts the instructions that actually elapsed, raises
** "interrupted" once, then restores the budget's arming. Count events only: no
** call or return hooks, so an interrupt is never raised between a C function's
** work and the instruction after it (fashion_mnist.lua relies on this). */

_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "mg_interrupt needs lock-free atomics (signal handlers)");

static mg_runtime *runtime_of(lua_State *L) { return *(mg_runtime **)lua_getextraspace(L); }

static void count_hook(lua_State *L, lua_Debug *ar);

/* L's hook for the rest of the call (L: the main thread or the coroutine running):
** budget steps (every instruction once exhausted), or none */
static void rearm(mg_runtime *R, lua_State *L) {
  if (!R->budget) { lua_sethook(L, NULL, 0, 0); return; }
  uint64_t left = R->used < R->budget ? R->budget - R->used : 1;
  lua_sethook(L, count_hook, LUA_MASKCOUNT, (int)(left < BUDGET_STEP ? left : BUDGET_STEP));
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  mg_runtime *R = runtime_of(L);
  if (!atomic_load(&R->running)) { lua_sethook(L, NULL, 0, 0); return; }  /* a late mg_interrupt */
  if (R->budget) R->used += (uint64_t)lua_gethookcount(L);
  if (atomic_exchange(&R->interrupt, false)) {
    R->interrupted = true;
    rearm(R, L);
    lua_pushliteral(L, "interrupted");
    lua_error(L);
  }
  if (R->budget && R->used >= R->budget) {
    R->budget_hit = true;
    rearm(R, L);  /* from now on every instruction raises, so no pcall loop can outlast it */
    luaL_error(L, "instruction budget exhausted (%I instructions per call)", (lua_Integer)R->budget);
  }
  rearm(R, L);  /* back to budget steps after an interrupt's single step */
}

/* a script call starts: budget counted from 0, interrupts accepted */
static void arm(mg_runtime *R) {
  R->used = 0;
  R->budget_hit = R->interrupted = false;
  atomic_store(&R->interrupt, false);
  atomic_store(&R->running, true);
  rearm(R, R->L);
}

/* a script call ends: an interrupt arriving from now on is dropped */
static void disarm(mg_runtime *R) {
  atomic_store(&R->running, false);
  lua_sethook(R->L, NULL, 0, 0);
  atomic_store(&R->interrupt, false);
}

bool mg_interrupt(mg_runtime *R) {
  if (!R || !atomic_load(&R->running)) return false;
  atomic_store(&R->interrupt, true);
  lua_sethook(R->L, count_hook, LUA_MASKCOUNT, 1);
  return true;
}

/* ---- protected calls --------------------------------------------------------- */

static int msgh(lua_State *L) {
  mg_runtime *R = runtime_of(L);
  R->relax = true;  /* building the traceback must not fail on the limit */
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    else msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

typedef struct { mg_runtime *R; int (*fn)(lua_State *L, void *ud); void *ud; } pcall_args;

static int trampoline(lua_State *L) {
  pcall_args *a = lua_touserdata(L, 1);
  lua_settop(L, 0);
  return a->fn(L, a->ud);
}

/* run fn(L, ud) in protected mode; a `budgeted` call (one that runs a script) has
** the budget and interrupts armed;
** classify any error and leave the runtime ready for the next call */
static mg_status protect(mg_runtime *R, bool budgeted, int (*fn)(lua_State *, void *), void *ud) {
  lua_State *L = R->L;
  set_msg(R, NULL);
  R->forced = MG_OK;
  R->tensor_oom = R->lua_oom = false;
  R->relax = false;
  bool grad = R->rt->grad_enabled;
  int depth = R->rt->backward_depth;
  int top = lua_gettop(L);
  pcall_args a = {R, fn, ud};
  if (budgeted) arm(R);
  /* the protected function and its argument: pushing them may itself fail */
  int st;
  if (!lua_checkstack(L, 4)) st = LUA_ERRMEM;
  else {
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, trampoline);
    lua_pushlightuserdata(L, &a);
    st = lua_pcall(L, 1, 0, top + 1);
  }
  if (budgeted) disarm(R);
  mg_status s = MG_OK;
  if (st != LUA_OK) {
    R->relax = true;
    const char *m = lua_gettop(L) > top + 1 ? lua_tostring(L, -1) : NULL;
    if (!m) m = st == LUA_ERRMEM ? "not enough memory" : "error";
    if (R->forced != MG_OK) s = R->forced;
    else if (R->budget_hit) s = MG_ERR_BUDGET;
    else if (R->interrupted && strstr(m, "interrupted")) s = MG_ERR_INTERRUPTED;
    else if (st == LUA_ERRMEM || (R->lua_oom && strstr(m, "not enough memory")) ||
             (R->tensor_oom && strstr(m, "out of memory")))
      s = MG_ERR_MEMORY;
    else if (st == LUA_ERRSYNTAX) s = MG_ERR_SYNTAX;
    else if (st == LUA_ERRFILE) s = MG_ERR_FILE;
    else s = MG_ERR_RUN;
    if (s == MG_ERR_MEMORY && R->limit) {  /* the figures go on the first line, before any traceback */
      const char *nl = strchr(m, '\n');
      int first = nl ? (int)(nl - m) : (int)strlen(m);
      fail(R, s, "%.*s (memory limit %zu bytes: Lua %zu, tensors %zu in use)%s", first, m, R->limit, R->lua_bytes,
           R->rt->live_bytes, nl ? nl : "");
    } else set_msg(R, m);
    /* what the failed call left behind is garbage now */
    lua_settop(L, top);
    R->rt->grad_enabled = grad;
    R->rt->backward_depth = depth;
    lua_gc(L, LUA_GCCOLLECT);
    mg_mem_trim(R->rt);
    R->relax = false;
  } else if (budgeted && R->budget_hit) {
    /* the script caught the budget error and carried on: still an error */
    s = fail(R, MG_ERR_BUDGET, "instruction budget exhausted (%llu instructions per call)",
             (unsigned long long)R->budget);
  }
  lua_settop(L, top);
  return s;
}

/* raise an error that classifies as a host-argument error */
static int arg_error(lua_State *L, const char *fmt, ...) {
  mg_runtime *R = runtime_of(L);
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  R->forced = MG_ERR_ARG;
  lua_pushstring(L, buf);
  return lua_error(L);
}

/* ---- values ------------------------------------------------------------------ */

static mg_value *value_new(mg_runtime *R, mg_tensor *t) {  /* takes t's reference */
  mg_value *v = malloc(sizeof *v);
  if (!v) { mg_release(t); return NULL; }
  v->R = R;
  v->t = t;
  v->prev = NULL;
  v->next = R->values;
  if (R->values) R->values->prev = v;
  R->values = v;
  return v;
}

void mg_value_free(mg_value *v) {
  if (!v) return;
  mg_runtime *R = v->R;
  if (v->prev) v->prev->next = v->next; else R->values = v->next;
  if (v->next) v->next->prev = v->prev;
  mg_release(v->t);
  free(v);
}

/* push t as a Lua tensor (a new reference, taken only once the box exists) */
static void push_tensor(lua_State *L, mg_tensor *t) {
  mgl_newbox(L)->t = mg_retain(t);
}

/* the value at idx as a new mg_value: tensor, number/boolean (0-dim float64), nil (NULL) */
static mg_value *to_value(lua_State *L, mg_runtime *R, int idx, const char *what, int k) {
  int ty = lua_type(L, idx);
  if (ty == LUA_TNIL || ty == LUA_TNONE) return NULL;
  mg_tensor *t = NULL;
  if (ty == LUA_TNUMBER || ty == LUA_TBOOLEAN) {
    double x = ty == LUA_TNUMBER ? lua_tonumber(L, idx) : lua_toboolean(L, idx);
    t = mg_scalar(R->rt, MG_F64, x);
    if (!t) luaL_error(L, "%s: %s", what, mg_errmsg(R->rt));
  } else {
    t = mgl_test(L, idx);
    if (!t) luaL_error(L, "%s: result #%d is a %s (expected a tensor, a number or nil)", what, k, luaL_typename(L, idx));
    mg_retain(t);
  }
  mg_value *v = value_new(R, t);
  if (!v) luaL_error(L, "%s: out of memory", what);
  return v;
}

/* ---- opening and closing --------------------------------------------------------- */

void mg_config_init(mg_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->size = sizeof *cfg;
  cfg->default_plugin_dirs = true;
  cfg->allow_plugin_load = true;
}

/* require() in a sandbox: the compiled-in moongrad and nothing else */
static int sandbox_require(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "require: expected a module name (a string), got %s", luaL_typename(L, 1));
  const char *name = lua_tostring(L, 1);
  lua_getfield(L, lua_upvalueindex(1), name);
  if (lua_isnil(L, -1))
    return luaL_error(L, "require: module '%s' is not available in the sandbox (only \"moongrad\")", name);
  return 1;
}

/* load() in a sandbox: text chunks only */
static int sandbox_load(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 1) return luaL_error(L, "bad argument #1 to 'load' (value expected)");
  if (lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > 0 && lua_tostring(L, 1)[0] == LUA_SIGNATURE[0]) {
    luaL_pushfail(L);
    lua_pushliteral(L, "load: binary chunks are not allowed in the sandbox");
    return 2;
  }
  lua_pushvalue(L, lua_upvalueindex(1));  /* the real load */
  lua_pushvalue(L, 1);
  if (n >= 2) lua_pushvalue(L, 2); else lua_pushnil(L);
  lua_pushliteral(L, "t");
  if (n >= 4) lua_pushvalue(L, 4);
  lua_call(L, n >= 4 ? 4 : 3, LUA_MULTRET);
  return lua_gettop(L) - n;
}

static int disabled(lua_State *L) {
  return luaL_error(L, "%s: %s", lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)));
}

/* replace tbl[key] (tbl at idx) by a function raising "name: why", if present */
static void stub(lua_State *L, int idx, const char *key, const char *name, const char *why) {
  idx = lua_absindex(L, idx);
  if (lua_getfield(L, idx, key) == LUA_TNIL) { lua_pop(L, 1); return; }
  lua_pop(L, 1);
  lua_pushstring(L, name);
  lua_pushstring(L, why);
  lua_pushcclosure(L, disabled, 2);
  lua_setfield(L, idx, key);
}

static void stub_in(lua_State *L, int mg, const char *sub, const char *const *keys, const char *prefix, const char *why) {
  if (lua_getfield(L, mg, sub) == LUA_TTABLE)
    for (int i = 0; keys[i]; i++) {
      char name[64];
      snprintf(name, sizeof name, "%s%s", prefix, keys[i]);
      stub(L, -1, keys[i], name, why);
    }
  lua_pop(L, 1);
}

static int open_state(lua_State *L, void *ud) {
  mg_runtime *R = ud;
  bool sandbox = R->cfg.sandbox;
  if (!sandbox) luaL_openlibs(L);
  else {
    static const luaL_Reg safe[] = {{LUA_GNAME, luaopen_base}, {LUA_COLIBNAME, luaopen_coroutine},
                                    {LUA_TABLIBNAME, luaopen_table}, {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL}};
    for (const luaL_Reg *l = safe; l->func; l++) { luaL_requiref(L, l->name, l->func, 1); lua_pop(L, 1); }
    /* os: only the clock and calendar functions */
    lua_pushcfunction(L, luaopen_os);
    lua_call(L, 0, 1);
    lua_newtable(L);
    static const char *const os_safe[] = {"clock", "time", "date", "difftime", NULL};
    for (int i = 0; os_safe[i]; i++) { lua_getfield(L, -2, os_safe[i]); lua_setfield(L, -2, os_safe[i]); }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    lua_pushnil(L); lua_setglobal(L, "dofile");
    lua_pushnil(L); lua_setglobal(L, "loadfile");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, sandbox_load, 1);
    lua_setglobal(L, "load");
  }
  mgl_open_with(L, R->rt, false);
  int mg = lua_gettop(L);
  /* require("moongrad") */
  if (!sandbox) {
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, mg);
    lua_setfield(L, -2, "moongrad");
    lua_pop(L, 1);
  } else {
    lua_newtable(L);
    lua_pushvalue(L, mg);
    lua_setfield(L, -2, "moongrad");
    lua_pushcclosure(L, sandbox_require, 1);
    lua_setglobal(L, "require");
  }
  if (sandbox || !R->cfg.allow_plugin_load) {
    stub(L, mg, "load_plugin", "load_plugin", "loading plugins from scripts is disabled by the host");
    stub(L, mg, "add_plugin_dir", "add_plugin_dir", "loading plugins from scripts is disabled by the host");
  }
  if (sandbox) {
    static const char *const top[] = {"save", "load", "_idx", "_csv", NULL};
    static const char *const data[] = {"fashion_mnist", "idx", "csv", NULL};
    static const char *const util[] = {"Logger", "plot", NULL};
    const char *why = "file access is disabled in the sandbox";
    for (int i = 0; top[i]; i++) stub(L, mg, top[i], top[i], why);
    stub_in(L, mg, "data", data, "data.", why);
    stub_in(L, mg, "util", util, "util.", why);
  }
  return 0;
}

mg_runtime *mg_open(const mg_config *cfg, char *err, size_t errlen) {
  mg_config c;
  mg_config_init(&c);
  if (cfg) {
    if (cfg->size != sizeof c) {
      if (err && errlen) snprintf(err, errlen, "mg_open: config size %zu (expected %zu; use mg_config_init)", cfg->size, sizeof c);
      return NULL;
    }
    c = *cfg;
  }
  if (c.threads < 0 || c.threads > 1024) {
    if (err && errlen) snprintf(err, errlen, "mg_open: threads must be 0..1024, got %d", c.threads);
    return NULL;
  }
  mg_runtime *R = calloc(1, sizeof *R);
  if (!R) goto oom;
  R->msg = (char *)EMPTY;
  R->cfg = c;
  R->cfg.plugin_dirs = NULL;  /* not kept: borrowed for this call */
  R->limit = c.mem_limit;
  R->budget = c.instruction_budget;
  if (!(R->rt = mg_rt_new())) { free(R); goto oom; }
  R->rt->host = R;
  if (c.threads > 0) R->rt->nthreads = c.threads;
  mg_plugin_default_dirs(R->rt, c.default_plugin_dirs);
  for (int i = 0; c.plugin_dirs && c.plugin_dirs[i]; i++) mg_plugin_add_dir(R->rt, c.plugin_dirs[i]);
  mg_plugin_allow_script_load(R->rt, c.allow_plugin_load && !c.sandbox);
  sync_limit(R);
  R->L = lua_newstate(l_alloc, R);
  if (!R->L) {
    if (err && errlen) snprintf(err, errlen, "mg_open: cannot create a Lua state%s", c.mem_limit ? " (memory limit too small?)" : "");
    pool_trim(R);  /* the failed lua_newstate freed its blocks into the pool */
    mg_rt_free(R->rt);
    free(R);
    return NULL;
  }
  *(mg_runtime **)lua_getextraspace(R->L) = R;
  mg_status st = protect(R, false, open_state, R);
  if (st != MG_OK) {
    if (err && errlen) snprintf(err, errlen, "mg_open: %s", R->msg);
    mg_close(R);
    return NULL;
  }
  R->rt->pressure = on_pressure;
  R->rt->pressure_ud = R;
  return R;
oom:
  if (err && errlen) snprintf(err, errlen, "mg_open: out of memory");
  return NULL;
}

void mg_close(mg_runtime *R) {
  if (!R) return;
  while (R->values) mg_value_free(R->values);
  if (R->L) {
    R->relax = true;
    R->rt->pressure = NULL;
    lua_close(R->L);
  }
  pool_trim(R);
  mg_rt_free(R->rt);
  set_msg(R, NULL);
  free(R);
}

/* ---- settings ---------------------------------------------------------------- */

mg_status mg_set_budget(mg_runtime *R, uint64_t n) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  R->budget = n;
  return MG_OK;
}

mg_status mg_set_mem_limit(mg_runtime *R, size_t bytes) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  R->limit = bytes;
  sync_limit(R);
  return MG_OK;
}

mg_status mg_seed(mg_runtime *R, uint64_t seed) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  mg_manual_seed(R->rt, seed);
  return MG_OK;
}

static int do_collect(lua_State *L, void *ud) { (void)ud; lua_gc(L, LUA_GCCOLLECT); return 0; }

mg_status mg_collect(mg_runtime *R) {
  if (!R) return MG_ERR_ARG;
  mg_status s = protect(R, false, do_collect, NULL);
  mg_mem_trim(R->rt);
  return s;
}

void mg_memory_used(const mg_runtime *R, size_t *lua_bytes, size_t *tensor_bytes) {
  if (lua_bytes) *lua_bytes = R ? R->lua_bytes : 0;
  if (tensor_bytes) *tensor_bytes = R ? R->rt->live_bytes : 0;
}

/* ---- running code ------------------------------------------------------------- */

typedef struct { const char *code; size_t len; const char *name; } chunk_args;

static int do_chunk(lua_State *L, void *ud) {
  chunk_args *a = ud;
  mg_runtime *R = runtime_of(L);
  int st = luaL_loadbufferx(L, a->code, a->len, a->name, R->cfg.sandbox ? "t" : "bt");
  if (st != LUA_OK) {
    if (st == LUA_ERRSYNTAX) {  /* keep the class: raise, and mark it */
      R->forced = MG_ERR_SYNTAX;
    }
    return lua_error(L);
  }
  lua_call(L, 0, 0);
  return 0;
}

mg_status mg_run_buffer(mg_runtime *R, const char *code, size_t len, const char *name) {
  if (!R) return MG_ERR_ARG;
  if (!code) return fail(R, MG_ERR_ARG, "mg_run_buffer: code is NULL");
  chunk_args a = {code, len, name ? name : "=(string)"};
  return protect(R, true, do_chunk, &a);
}

mg_status mg_run_string(mg_runtime *R, const char *code) {
  if (!R) return MG_ERR_ARG;
  if (!code) return fail(R, MG_ERR_ARG, "mg_run_string: code is NULL");
  return mg_run_buffer(R, code, strlen(code), "=(string)");
}

typedef struct { const char *path; int argc; const char *const *argv; } file_args;

static int do_file(lua_State *L, void *ud) {
  file_args *a = ud;
  mg_runtime *R = runtime_of(L);
  int st = luaL_loadfilex(L, a->path, R->cfg.sandbox ? "t" : NULL);
  if (st != LUA_OK) {
    R->forced = st == LUA_ERRSYNTAX ? MG_ERR_SYNTAX : st == LUA_ERRFILE ? MG_ERR_FILE : MG_OK;
    return lua_error(L);
  }
  luaL_checkstack(L, a->argc + 1, "too many arguments");
  for (int i = 0; i < a->argc; i++) lua_pushstring(L, a->argv[i]);
  lua_call(L, a->argc, 0);
  return 0;
}

mg_status mg_run_file(mg_runtime *R, const char *path, int argc, const char *const *argv) {
  if (!R) return MG_ERR_ARG;
  if (!path) return fail(R, MG_ERR_ARG, "mg_run_file: path is NULL");
  if (argc < 0 || (argc > 0 && !argv)) return fail(R, MG_ERR_ARG, "mg_run_file: bad argc/argv");
  for (int i = 0; i < argc; i++)
    if (!argv[i]) return fail(R, MG_ERR_ARG, "mg_run_file: argv[%d] is NULL", i);
  file_args a = {path, argc, argv};
  return protect(R, true, do_file, &a);
}

typedef struct { const char *fn; int nin; mg_value *const *in; int nout; mg_value **out; } call_args;

static int do_call(lua_State *L, void *ud) {
  call_args *a = ud;
  mg_runtime *R = runtime_of(L);
  luaL_checkstack(L, a->nin + 2, "too many arguments");
  int ty = lua_getglobal(L, a->fn);
  if (ty != LUA_TFUNCTION) {
    bool callable = false;
    if (luaL_getmetafield(L, -1, "__call") != LUA_TNIL) { lua_pop(L, 1); callable = true; }
    if (!callable) return arg_error(L, "mg_call: global '%s' is %s, not a function", a->fn,
                                    ty == LUA_TNIL ? "nil" : luaL_typename(L, -1));
  }
  for (int i = 0; i < a->nin; i++) {
    if (a->in[i]) push_tensor(L, a->in[i]->t);
    else lua_pushnil(L);
  }
  lua_call(L, a->nin, a->nout);
  char what[128];
  snprintf(what, sizeof what, "mg_call '%s'", a->fn);
  int base = lua_gettop(L) - a->nout;
  for (int i = 0; i < a->nout; i++) a->out[i] = to_value(L, R, base + 1 + i, what, i + 1);
  return 0;
}

mg_status mg_call(mg_runtime *R, const char *fn, int nin, mg_value *const *in, int nout, mg_value **out) {
  if (!R) return MG_ERR_ARG;
  if (nout > 0 && !out) return fail(R, MG_ERR_ARG, "mg_call: out is NULL with nout = %d", nout);
  for (int i = 0; i < nout; i++) out[i] = NULL;
  if (!fn) return fail(R, MG_ERR_ARG, "mg_call: function name is NULL");
  if (nin < 0 || nout < 0 || (nin > 0 && !in)) return fail(R, MG_ERR_ARG, "mg_call '%s': bad nin/nout", fn);
  for (int i = 0; i < nin; i++)
    if (in[i] && in[i]->R != R) return fail(R, MG_ERR_ARG, "mg_call '%s': argument #%d belongs to another runtime", fn, i + 1);
  call_args a = {fn, nin, in, nout, out};
  mg_status s = protect(R, true, do_call, &a);
  if (s != MG_OK)
    for (int i = 0; i < nout; i++) { mg_value_free(out[i]); out[i] = NULL; }
  return s;
}

/* ---- globals --------------------------------------------------------------------- */

typedef struct { const char *name; mg_value *v; mg_value **out; double num; const char *str;
                 int n, first; const char *const *strs; } global_args;

static int do_get_tensor(lua_State *L, void *ud) {
  global_args *a = ud;
  lua_getglobal(L, a->name);
  if (!mgl_test(L, -1)) return arg_error(L, "global '%s' is a %s, not a tensor", a->name, luaL_typename(L, -1));
  *a->out = to_value(L, runtime_of(L), -1, "mg_get_global_tensor", 1);
  return 0;
}

static int do_set_tensor(lua_State *L, void *ud) {
  global_args *a = ud;
  if (a->v) push_tensor(L, a->v->t); else lua_pushnil(L);
  lua_setglobal(L, a->name);
  return 0;
}

static int do_get_number(lua_State *L, void *ud) {
  global_args *a = ud;
  lua_getglobal(L, a->name);
  int isnum;
  a->num = lua_tonumberx(L, -1, &isnum);
  if (!isnum) {
    mg_tensor *t = mgl_test(L, -1);
    if (!t || t->numel != 1) return arg_error(L, "global '%s' is a %s, not a number", a->name, luaL_typename(L, -1));
    if (mg_check_alive(t, "mg_get_global_number")) return arg_error(L, "%s", mg_errmsg(t->rt));
    a->num = mg_get_flat(t, 0);
  }
  return 0;
}

static int do_set_number(lua_State *L, void *ud) {
  global_args *a = ud;
  lua_pushnumber(L, a->num);
  lua_setglobal(L, a->name);
  return 0;
}

static int do_set_string(lua_State *L, void *ud) {
  global_args *a = ud;
  lua_pushstring(L, a->str);
  lua_setglobal(L, a->name);
  return 0;
}

static int do_set_strings(lua_State *L, void *ud) {
  global_args *a = ud;
  lua_createtable(L, a->n, 1);
  for (int i = 0; i < a->n; i++) {
    lua_pushstring(L, a->strs[i]);
    lua_rawseti(L, -2, (lua_Integer)a->first + i);
  }
  lua_setglobal(L, a->name);
  return 0;
}

#define CHECK_NAME(R, name, fn)                                         \
  do {                                                                  \
    if (!(R)) return MG_ERR_ARG;                                        \
    if (!(name)) return fail((R), MG_ERR_ARG, fn ": name is NULL");     \
  } while (0)

mg_status mg_get_global_tensor(mg_runtime *R, const char *name, mg_value **out) {
  CHECK_NAME(R, name, "mg_get_global_tensor");
  if (!out) return fail(R, MG_ERR_ARG, "mg_get_global_tensor: out is NULL");
  *out = NULL;
  global_args a = {.name = name, .out = out};
  mg_status s = protect(R, false, do_get_tensor, &a);
  if (s != MG_OK) { mg_value_free(*out); *out = NULL; }
  return s;
}

mg_status mg_set_global_tensor(mg_runtime *R, const char *name, mg_value *v) {
  CHECK_NAME(R, name, "mg_set_global_tensor");
  if (v && v->R != R) return fail(R, MG_ERR_ARG, "mg_set_global_tensor: the value belongs to another runtime");
  global_args a = {.name = name, .v = v};
  return protect(R, false, do_set_tensor, &a);
}

mg_status mg_get_global_number(mg_runtime *R, const char *name, double *out) {
  CHECK_NAME(R, name, "mg_get_global_number");
  if (!out) return fail(R, MG_ERR_ARG, "mg_get_global_number: out is NULL");
  global_args a = {.name = name};
  mg_status s = protect(R, false, do_get_number, &a);
  if (s == MG_OK) *out = a.num;
  return s;
}

mg_status mg_set_global_number(mg_runtime *R, const char *name, double v) {
  CHECK_NAME(R, name, "mg_set_global_number");
  global_args a = {.name = name, .num = v};
  return protect(R, false, do_set_number, &a);
}

mg_status mg_set_global_string(mg_runtime *R, const char *name, const char *s) {
  CHECK_NAME(R, name, "mg_set_global_string");
  if (!s) return fail(R, MG_ERR_ARG, "mg_set_global_string: string is NULL");
  global_args a = {.name = name, .str = s};
  return protect(R, false, do_set_string, &a);
}

mg_status mg_set_global_strings(mg_runtime *R, const char *name, int n, const char *const *strs, int first) {
  CHECK_NAME(R, name, "mg_set_global_strings");
  if (n < 0 || (n > 0 && !strs)) return fail(R, MG_ERR_ARG, "mg_set_global_strings: bad n/strs");
  for (int i = 0; i < n; i++)
    if (!strs[i]) return fail(R, MG_ERR_ARG, "mg_set_global_strings: strs[%d] is NULL", i);
  global_args a = {.name = name, .n = n, .strs = strs, .first = first};
  return protect(R, false, do_set_strings, &a);
}

/* ---- tensors ------------------------------------------------------------------------ */

static int check_dims(mg_runtime *R, const char *op, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > MOONGRAD_MAX_DIMS)
    return fail(R, MG_ERR_ARG, "%s: ndim %d (expected 0..%d)", op, ndim, MOONGRAD_MAX_DIMS), -1;
  if (ndim > 0 && !shape) return fail(R, MG_ERR_ARG, "%s: shape is NULL", op), -1;
  for (int d = 0; d < ndim; d++)
    if (shape[d] < 0) return fail(R, MG_ERR_ARG, "%s: negative size %lld in dim %d", op, (long long)shape[d], d), -1;
  return 0;
}

static mg_status new_value(mg_runtime *R, mg_tensor *t, mg_value **out) {
  if (!t) return fail(R, strstr(mg_errmsg(R->rt), "out of memory") ? MG_ERR_MEMORY : MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  *out = value_new(R, t);
  return *out ? MG_OK : fail(R, MG_ERR_MEMORY, "out of memory");
}

mg_status mg_tensor_wrap(mg_runtime *R, mg_type ty, int ndim, const int64_t *shape, void *data,
                         mg_ownership own, void (*release)(void *, void *), void *ud, mg_value **out) {
  bool cb = own == MG_CALLBACK && release;
  if (out) *out = NULL;
  mg_status s = MG_OK;
  if (!R) s = MG_ERR_ARG;
  else {
    set_msg(R, NULL);
    if (!out) s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: out is NULL");
    else if (ty != MG_FLOAT32 && ty != MG_FLOAT64) s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: unknown type %d", (int)ty);
    else if (own != MG_BORROW && own != MG_COPY && own != MG_CALLBACK)
      s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: unknown ownership mode %d", (int)own);
    else if (own == MG_CALLBACK && !release) s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: MG_CALLBACK needs a release function");
    else if (!data) s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: data is NULL");
    else if ((uintptr_t)data % (ty == MG_FLOAT64 ? sizeof(double) : sizeof(float)))
      s = fail(R, MG_ERR_ARG, "mg_tensor_wrap: data %p is not aligned for %s", data, ty == MG_FLOAT64 ? "double" : "float");
    else if (check_dims(R, "mg_tensor_wrap", ndim, shape)) s = MG_ERR_ARG;
  }
  if (s != MG_OK) {
    if (cb) release(data, ud);
    return s;
  }
  mg_dtype dt = ty == MG_FLOAT64 ? MG_F64 : MG_F32;
  mg_tensor *t;
  if (own == MG_COPY) {
    t = mg_empty(R->rt, dt, ndim, shape);
    if (t) memcpy(mg_data(t), data, (size_t)t->numel * mg_dtype_size(dt));
  } else {
    /* mg_wrap runs release itself when it fails */
    t = mg_wrap(R->rt, dt, ndim, shape, data, own == MG_BORROW ? MG_ST_BORROW : MG_ST_CALLBACK, release, ud);
  }
  return new_value(R, t, out);
}

mg_status mg_tensor_zeros(mg_runtime *R, mg_type ty, int ndim, const int64_t *shape, mg_value **out) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  if (!out) return fail(R, MG_ERR_ARG, "mg_tensor_zeros: out is NULL");
  *out = NULL;
  if (ty != MG_FLOAT32 && ty != MG_FLOAT64) return fail(R, MG_ERR_ARG, "mg_tensor_zeros: unknown type %d", (int)ty);
  if (check_dims(R, "mg_tensor_zeros", ndim, shape)) return MG_ERR_ARG;
  return new_value(R, mg_full(R->rt, ty == MG_FLOAT64 ? MG_F64 : MG_F32, ndim, shape, 0), out);
}

mg_status mg_tensor_detach(mg_value *v) {
  if (!v) return MG_ERR_ARG;
  set_msg(v->R, NULL);
  if (v->t->st->kind != MG_ST_BORROW)
    return fail(v->R, MG_ERR_ARG, "mg_tensor_detach: the tensor does not borrow host memory (only MG_BORROW can be detached)");
  v->t->st->detached = true;
  return MG_OK;
}

mg_type mg_tensor_type(const mg_value *v) { return v && v->t->dtype == MG_F64 ? MG_FLOAT64 : MG_FLOAT32; }
int mg_tensor_ndim(const mg_value *v) { return v ? v->t->ndim : 0; }
int64_t mg_tensor_dim(const mg_value *v, int d) { return v && d >= 0 && d < v->t->ndim ? v->t->shape[d] : 0; }
int64_t mg_tensor_numel(const mg_value *v) { return v ? v->t->numel : 0; }
void *mg_tensor_data(const mg_value *v) { return v && !v->t->st->detached ? mg_data(v->t) : NULL; }
bool mg_tensor_is_contiguous(const mg_value *v) { return v && mg_is_contiguous(v->t); }

mg_status mg_tensor_read(mg_value *v, mg_type ty, void *dst, size_t n) {
  if (!v) return MG_ERR_ARG;
  mg_runtime *R = v->R;
  set_msg(R, NULL);
  mg_tensor *t = v->t;
  if (!dst) return fail(R, MG_ERR_ARG, "mg_tensor_read: dst is NULL");
  if (n < (size_t)t->numel) return fail(R, MG_ERR_ARG, "mg_tensor_read: room for %zu elements, the tensor has %lld", n, (long long)t->numel);
  if (mg_check_alive(t, "mg_tensor_read")) return fail(R, MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  bool contig = mg_is_contiguous(t);
  for (int64_t i = 0; i < t->numel; i++) {
    double x;
    if (contig) x = t->dtype == MG_F64 ? mg_f64(t)[i] : mg_f32(t)[i];
    else x = mg_get_flat(t, i);
    if (ty == MG_FLOAT64) ((double *)dst)[i] = x; else ((float *)dst)[i] = (float)x;
  }
  return MG_OK;
}

mg_status mg_tensor_write(mg_value *v, mg_type ty, const void *src, size_t n) {
  if (!v) return MG_ERR_ARG;
  mg_runtime *R = v->R;
  set_msg(R, NULL);
  mg_tensor *t = v->t;
  if (!src) return fail(R, MG_ERR_ARG, "mg_tensor_write: src is NULL");
  if (n != (size_t)t->numel) return fail(R, MG_ERR_ARG, "mg_tensor_write: %zu elements given, the tensor has %lld", n, (long long)t->numel);
  if (mg_check_alive(t, "mg_tensor_write")) return fail(R, MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  mg_dtype sdt = ty == MG_FLOAT64 ? MG_F64 : MG_F32;
  int64_t shape[1] = {(int64_t)n};
  /* a borrowed view of src, copied with the core's strided copy (handles views) */
  mg_tensor *s = mg_wrap(R->rt, sdt, 1, shape, (void *)src, MG_ST_BORROW, NULL, NULL);
  mg_tensor *sv = s ? mg_view(s, t->ndim, t->shape) : NULL;
  bool grad = R->rt->grad_enabled;
  R->rt->grad_enabled = false;
  int rc = sv ? mg_copy_(t, sv) : -1;
  R->rt->grad_enabled = grad;
  mg_release(sv);
  mg_release(s);
  return rc ? fail(R, MG_ERR_ARG, "mg_tensor_write: %s", mg_errmsg(R->rt)) : MG_OK;
}

/* ---- plugins -------------------------------------------------------------------------- */

mg_status mg_register_plugin(mg_runtime *R, const void *desc, const char *origin) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  if (!desc) return fail(R, MG_ERR_ARG, "register_plugin: descriptor is NULL");
  if (mg_plugin_register(R->rt, desc, origin ? origin : "static")) return fail(R, MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  return MG_OK;
}

mg_status mg_add_plugin_dir(mg_runtime *R, const char *dir) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  if (mg_plugin_add_dir(R->rt, dir)) return fail(R, MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  return MG_OK;
}

mg_status mg_load_plugin(mg_runtime *R, const char *path) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  if (mg_plugin_load(R->rt, path)) return fail(R, MG_ERR_ARG, "%s", mg_errmsg(R->rt));
  return MG_OK;
}

int mg_plugin_list_count(mg_runtime *R) { return R ? mg_plugin_count(R->rt) : 0; }

mg_status mg_plugin_list_get(mg_runtime *R, int i, mg_plugin_entry *out) {
  if (!R) return MG_ERR_ARG;
  set_msg(R, NULL);
  mg_plugin_info info;
  if (!out || i < 0 || i >= mg_plugin_count(R->rt) || mg_plugin_get(R->rt, i, &info))
    return fail(R, MG_ERR_ARG, "mg_plugin_list_get: no plugin #%d", i);
  out->name = info.name;
  out->kind = info.kind;
  out->version = info.version;
  out->file = info.file;
  out->doc = info.doc;
  return MG_OK;
}

const struct mgp_host *mg_plugin_host_table(void) { return mg_plugin_host(); }
