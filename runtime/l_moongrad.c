/*
** l_moongrad.c — luaopen_moongrad and the helpers every binding file uses:
** argument checking, dims, shapes, options, registration, GC accounting.
*/
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "l_core.h"
#include "l_modules.h"

static const char RT_KEY = 'r';      /* registry: light userdata -> runtime box */
static const char METHODS_KEY = 'm'; /* registry: tensor method table */
static const char MG_KEY = 'g';      /* registry: the mg table */

/* ---- runtime ownership --------------------------------------------------- */

/* One per Lua state: its runtime. Every C function the bindings register
** (mgl_setfuncs) has four upvalues: this box, the tensor metatable, the tensor
** method table, and MARK, a light userdata no other code can make, which says
** the first three are ours. Functions registered elsewhere use the registry. */
typedef struct { mg_rt *rt; bool owned; } rtbox;
static const char MARK = 'k';

static int rtbox_gc(lua_State *L) {
  rtbox *b = lua_touserdata(L, 1);
  if (b->owned && b->rt) mg_rt_free(b->rt);
  b->rt = NULL;
  return 0;
}

/* the running C function has the upvalues of mgl_setfuncs */
static bool ours(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(4)) == &MARK; }

static rtbox *get_box(lua_State *L) {
  if (ours(L)) return lua_touserdata(L, lua_upvalueindex(1));
  lua_rawgetp(L, LUA_REGISTRYINDEX, &RT_KEY);
  rtbox *b = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!b) luaL_error(L, "moongrad: not initialised in this Lua state");
  return b;
}

mg_rt *mgl_rt(lua_State *L) {
  rtbox *b = get_box(L);
  if (!b->rt) luaL_error(L, "moongrad: runtime is closed");
  return b->rt;
}

/* GC pacing. Lua sees only the small box of each tensor, so the bindings tell
** it about the memory behind: every tensor pushed counts as HEADER_COST bytes
** plus the storage allocated since, and each STEP_BYTES of that runs a GC step
** (in the generational mode set at open, a young collection). Garbage tensors
** then die in proportion to what they hold, and freed headers and blocks are
** reused while still in the caches. A full collection backs this up when much
** memory is allocated quickly (or when an allocation would pass the memory
** limit). The step size hardly matters for tiny ops: their GC cost is Lua's
** per-object finaliser work (docs/architecture.md). */
#define HEADER_COST 512
#define STEP_BYTES ((size_t)256 << 10)

static void on_pressure(mg_rt *rt, void *ud) {
  lua_State *L = ud;
  lua_gc(L, LUA_GCCOLLECT);
  rt->since_gc = rt->since_step = 0;
}

static void maybe_collect(lua_State *L, mg_rt *rt) {
  rt->since_step += HEADER_COST;
  if (rt->since_step <= STEP_BYTES) return;  /* since_gc grows with since_step: checked late by < STEP_BYTES */
  size_t threshold = rt->live_bytes / 2;
  if (threshold < ((size_t)64 << 20)) threshold = (size_t)64 << 20;
  if (rt->since_gc > threshold) {
    rt->since_gc = rt->since_step = 0;
    lua_gc(L, LUA_GCCOLLECT);
  } else {
    int kb = (int)(rt->since_step >> 10);
    rt->since_step = 0;
    lua_gc(L, LUA_GCSTEP, kb);
  }
}

/* ---- tensors on the Lua stack ---------------------------------------------- */

/* Tensors are recognised by their tag (mgl_tobox), not by their metatable: no
** metatable is pushed on the per-operand fast path. mgl_box_secret is random,
** per process and never visible from Lua, and Lua cannot write raw bytes into a
** userdata, so a tag cannot be forged; light userdata (rawlen 0) and userdata of
** another size are never read. */
uint64_t mgl_box_secret;
static pthread_once_t box_secret_once = PTHREAD_ONCE_INIT;

static void box_secret_init(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) {  /* no getrandom: time and ASLR */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&s * 0x9e3779b97f4a7c15ull;
  }
  mgl_box_secret = s;
}

mg_tensor *mgl_test(lua_State *L, int idx) {
  mgl_box *b = mgl_tobox(L, idx);
  return b ? b->t : NULL;
}

mg_tensor *mgl_check(lua_State *L, int idx, const char *op) {
  mgl_box *b = mgl_tobox(L, idx);
  if (!b || !b->t) mgl_argerror(L, idx, op, "a tensor");
  return b->t;
}

mg_tensor *mgl_operand(lua_State *L, int idx, const char *op, mg_dtype dt, mg_tensor **tmp) {
  *tmp = NULL;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *tmp = mg_scalar(mgl_rt(L), dt, lua_tonumber(L, idx));
    if (!*tmp) mgl_error(L);
    return *tmp;
  }
  mgl_box *b = mgl_tobox(L, idx);
  if (!b || !b->t) mgl_argerror(L, idx, op, "a tensor or a number");
  return b->t;
}

/* mgl_operands when not both are live tensors: a number operand, or an error */
static void operands_slow(lua_State *L, const char *op, mgl_box *ba, mgl_box *bb, mg_tensor **x, mg_tensor **y,
                          mg_tensor **tmp) {
  if ((ba && !ba->t) || (bb && !bb->t)) luaL_error(L, "%s: argument #%d: tensor was closed", op, ba && !ba->t ? 1 : 2);
  if (!ba && !bb) mgl_operands_error(L, op);
  mg_tensor *t = ba ? ba->t : bb->t;
  int num = ba ? 2 : 1;
  if (lua_type(L, num) != LUA_TNUMBER) mgl_argerror(L, num, op, "a tensor or a number");
  *tmp = mg_scalar(t->rt, t->dtype, lua_tonumber(L, num));
  if (!*tmp) mgl_error(L);
  *x = ba ? t : *tmp;
  *y = ba ? *tmp : t;
}

void mgl_operands(lua_State *L, const char *op, mg_tensor **x, mg_tensor **y, mg_tensor **tmp) {
  mgl_box *ba = mgl_tobox(L, 1), *bb = mgl_tobox(L, 2);
  *tmp = NULL;
  if (ba && bb && ba->t && bb->t) { *x = ba->t; *y = bb->t; return; }  /* the common case */
  operands_slow(L, op, ba, bb, x, y, tmp);
}

int mgl_error(lua_State *L) {
  return luaL_error(L, "%s", mg_errmsg(mgl_rt(L)));
}

int mgl_errorf(lua_State *L, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  luaL_where(L, 1);
  lua_pushstring(L, buf);
  lua_concat(L, 2);
  return lua_error(L);
}

/* ---- argument errors ------------------------------------------------------------ */

const char *mgl_typename(lua_State *L, int idx) {
  mgl_box *b = mgl_tobox(L, idx);
  if (b) return b->t ? "tensor" : "closed tensor";
  if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {  /* a userdata or object naming its type */
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);  /* the name stays alive in the metatable */
    if (s) return s;
  }
  return luaL_typename(L, idx);
}

bool mgl_is_closed(lua_State *L, int idx) {
  mgl_box *b = mgl_tobox(L, idx);
  return b && !b->t;
}

/* The name under which the running C function was called when that was t.name(...)
** for a tensor method (not t:name(...)), else NULL: a misplaced self then explains
** an argument error. The methods table tells tensor methods from mg.* functions. */
static const char *dot_call(lua_State *L, lua_Debug *ar) {
  if (!lua_getstack(L, 0, ar) || !lua_getinfo(L, "nf", ar)) return NULL;
  bool found = false;
  if (ar->name && strcmp(ar->namewhat, "field") == 0) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      found = lua_rawequal(L, -1, -4);
      lua_pop(L, 1);
      if (found) { lua_pop(L, 1); break; }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found ? ar->name : NULL;
}

int mgl_selferror(lua_State *L, int idx, const char *op, const char *var, const char *name, const char *what) {
  return mgl_errorf(L, "%s: expected %s as self (did you call %s.%s(...) instead of %s:%s(...)?), got %s", op, what,
                    var, name, var, name, mgl_typename(L, idx));
}

int mgl_argerror(lua_State *L, int idx, const char *op, const char *what) {
  mgl_box *b = mgl_tobox(L, idx);
  if (b && !b->t) return luaL_error(L, "%s: argument #%d: tensor was closed", op, idx);
  lua_Debug ar;
  const char *name = dot_call(L, &ar);
  if (name && idx == 1) return mgl_selferror(L, idx, op, "t", name, what);
  if (name)
    return mgl_errorf(L, "%s: argument #%d: expected %s, got %s (did you call t.%s(...) instead of t:%s(...)?)", op,
                      idx, what, mgl_typename(L, idx), name, name);
  return mgl_errorf(L, "%s: argument #%d: expected %s, got %s", op, idx, what, mgl_typename(L, idx));
}

/* neither of a binary op's first two arguments is a tensor */
void mgl_operands_error(lua_State *L, const char *op) {
  lua_Debug ar;
  const char *name = dot_call(L, &ar);
  if (name) mgl_selferror(L, 1, op, "t", name, "a tensor");
  mgl_errorf(L, "%s: expected a tensor operand, got %s and %s", op, mgl_typename(L, 1), mgl_typename(L, 2));
}

double mgl_checknumber(lua_State *L, int idx, const char *op, const char *what) {
  if (lua_type(L, idx) != LUA_TNUMBER) mgl_argerror(L, idx, op, what ? what : "a number");
  return lua_tonumber(L, idx);
}

double mgl_optnumber(lua_State *L, int idx, const char *op, const char *what, double def) {
  return lua_isnoneornil(L, idx) ? def : mgl_checknumber(L, idx, op, what);
}

lua_Integer mgl_checkinteger(lua_State *L, int idx, const char *op, const char *what) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint || lua_type(L, idx) != LUA_TNUMBER) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      mgl_errorf(L, "%s: argument #%d: expected %s, got %.17g", op, idx, what ? what : "an integer", lua_tonumber(L, idx));
    mgl_argerror(L, idx, op, what ? what : "an integer");
  }
  return v;
}

lua_Integer mgl_optinteger(lua_State *L, int idx, const char *op, const char *what, lua_Integer def) {
  return lua_isnoneornil(L, idx) ? def : mgl_checkinteger(L, idx, op, what);
}

const char *mgl_checkstring(lua_State *L, int idx, const char *op, const char *what) {
  if (lua_type(L, idx) != LUA_TSTRING) mgl_argerror(L, idx, op, what ? what : "a string");
  return lua_tostring(L, idx);
}

void mgl_checktype(lua_State *L, int idx, int type, const char *op, const char *what) {
  if (lua_type(L, idx) != type) mgl_argerror(L, idx, op, what);
}

/* mg.detect_anomaly(true): an op whose output holds NaN or Inf is an error naming it */
static void check_anomaly(lua_State *L, mg_tensor *t) {
  for (int64_t i = 0; i < t->numel; i++) {
    double v = mg_get_flat(t, i);
    if (isfinite(v)) continue;
    const char *op = t->grad_fn ? t->grad_fn->op : "an operation";
    char sh[128];
    mg_shape_str(t, sh, sizeof sh);
    mg_release(t);
    mgl_errorf(L, "anomaly: '%s' produced %s in its output (shape %s, element %lld)", op,
               isnan(v) ? "NaN" : "Inf", sh, (long long)i + 1);
  }
}

static inline mgl_box *newbox(lua_State *L) {
  mgl_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->t = NULL;
  b->tag = mgl_box_secret ^ (uint64_t)(uintptr_t)b;
  if (ours(L)) lua_pushvalue(L, lua_upvalueindex(2));  /* the tensor metatable */
  else luaL_getmetatable(L, MGL_TENSOR);
  lua_setmetatable(L, -2);
  return b;
}

mgl_box *mgl_newbox(lua_State *L) { return newbox(L); }

int mgl_push(lua_State *L, mg_tensor *t) {
  if (!t) return mgl_error(L);
  if (t->rt->anomaly) check_anomaly(L, t);
  newbox(L)->t = t;
  maybe_collect(L, t->rt);
  return 1;
}

/* ---- arguments -------------------------------------------------------------- */

int mgl_dim(lua_State *L, int idx, int ndim, const char *op) {
  if (!lua_isinteger(L, idx)) {
    if (lua_type(L, idx) == LUA_TNUMBER) luaL_error(L, "%s: dim must be an integer, got %s", op, lua_tostring(L, idx));
    luaL_error(L, "%s: argument #%d: expected a dim (integer), got %s", op, idx, mgl_typename(L, idx));
  }
  lua_Integer d = lua_tointeger(L, idx);
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    luaL_error(L, "%s: dim %d out of range for a tensor with %d dims (expected 1..%d or -%d..-1)", op,
               (int)d, ndim, n, n);
  return d > 0 ? (int)d - 1 : (int)(n + d);
}

int mgl_optdim(lua_State *L, int idx, int ndim, const char *op, int def) {
  return lua_isnoneornil(L, idx) ? def : mgl_dim(L, idx, ndim, op);
}

static int64_t shape_item(lua_State *L, int idx, const char *op, int k) {
  int isint;
  lua_Integer v = lua_tointegerx(L, idx, &isint);
  if (!isint) luaL_error(L, "%s: size #%d must be an integer, got %s", op, k, lua_type(L, idx) == LUA_TNUMBER ?
                         lua_tostring(L, idx) : mgl_typename(L, idx));
  if (v < -1) mgl_errorf(L, "%s: size #%d is negative (%lld)", op, k, (long long)v);
  return (int64_t)v;
}

int mgl_shape(lua_State *L, int idx, int64_t *shape, const char *op, int *next) {
  int nd = 0;
  if (lua_istable(L, idx) && lua_rawlen(L, idx) > 0) {
    int n = (int)lua_rawlen(L, idx);
    if (n > MG_MAX_DIMS) luaL_error(L, "%s: %d dims given (at most %d)", op, n, MG_MAX_DIMS);
    for (int k = 1; k <= n; k++) {
      lua_rawgeti(L, idx, k);
      shape[nd++] = shape_item(L, -1, op, k);
      lua_pop(L, 1);
    }
    if (next) *next = idx + 1;
    return nd;
  }
  if (lua_istable(L, idx) && lua_rawlen(L, idx) == 0 && !lua_getmetatable(L, idx)) {
    /* {} alone: an options table, not a shape; a 0-dim shape */
    if (next) *next = idx;
    return 0;
  }
  while (lua_type(L, idx) == LUA_TNUMBER) {
    if (nd >= MG_MAX_DIMS) luaL_error(L, "%s: more than %d dims given", op, MG_MAX_DIMS);
    shape[nd] = shape_item(L, idx, op, nd + 1);
    nd++;
    idx++;
  }
  if (next) *next = idx;
  return nd;
}

double mgl_optnum(lua_State *L, int opts, const char *key, double def, const char *op) {
  if (!lua_istable(L, opts)) return def;
  lua_getfield(L, opts, key);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: option '%s' must be a number, got %s", op, key, mgl_typename(L, -1));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

bool mgl_optbool(lua_State *L, int opts, const char *key, bool def, const char *op) {
  if (!lua_istable(L, opts)) return def;
  lua_getfield(L, opts, key);
  bool v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1)) luaL_error(L, "%s: option '%s' must be a boolean, got %s", op, key, mgl_typename(L, -1));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

mg_dtype mgl_optdtype(lua_State *L, int opts, mg_dtype def, const char *op) {
  if (!lua_istable(L, opts)) return def;
  lua_getfield(L, opts, "dtype");
  mg_dtype dt = def;
  if (!lua_isnil(L, -1)) {
    const char *s = lua_tostring(L, -1);
    if (s && (!strcmp(s, "float32") || !strcmp(s, "float"))) dt = MG_F32;
    else if (s && (!strcmp(s, "float64") || !strcmp(s, "double"))) dt = MG_F64;
    else luaL_error(L, "%s: unknown dtype '%s' (expected \"float32\" or \"float64\")", op, s ? s : mgl_typename(L, -1));
  }
  lua_pop(L, 1);
  return dt;
}

void mgl_checkopts(lua_State *L, int opts, const char *const *names, const char *op) {
  if (lua_isnoneornil(L, opts)) return;
  if (!lua_istable(L, opts)) luaL_error(L, "%s: options must be a table, got %s", op, mgl_typename(L, opts));
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    bool ok = false;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; names[i]; i++) if (!strcmp(names[i], lua_tostring(L, -1))) ok = true;
    if (!ok) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; names[i]; i++) { if (i) luaL_addstring(&b, ", "); luaL_addstring(&b, names[i]); }
      luaL_pushresult(&b);
      const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : mgl_typename(L, -2);
      luaL_error(L, "%s: unknown option '%s' (accepted: %s)", op, key, lua_tostring(L, -1));
    }
  }
}

/* ---- registration ------------------------------------------------------------- */

void mgl_setfuncs(lua_State *L, const luaL_Reg *funcs) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &RT_KEY);
  luaL_getmetatable(L, MGL_TENSOR);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
  lua_pushlightuserdata(L, (void *)&MARK);
  luaL_setfuncs(L, funcs, 4);
}

void mgl_register(lua_State *L, const luaL_Reg *mgfuncs, const luaL_Reg *methods) {
  if (mgfuncs) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &MG_KEY);
    mgl_setfuncs(L, mgfuncs);
    lua_pop(L, 1);
  }
  if (methods) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
    mgl_setfuncs(L, methods);
    lua_pop(L, 1);
  }
}

/* registry helpers for l_tensor.c */
void mgl_push_methods(lua_State *L);
void mgl_push_methods(lua_State *L) {
  if (ours(L)) lua_pushvalue(L, lua_upvalueindex(3));
  else lua_rawgetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
}

/* Load the embedded Lua modules (modules/NAME.lua): each chunk gets mg; a returned
** value becomes mg[name]. Order: as listed here, then the rest. */
static void load_module(lua_State *L, int mg, int i) {
  char chunk[256];
  snprintf(chunk, sizeof chunk, "@%s", mgl_modules[i].path);
  if (luaL_loadbufferx(L, mgl_modules[i].src, mgl_modules[i].len, chunk, "t") != LUA_OK) lua_error(L);
  lua_pushvalue(L, mg);
  lua_call(L, 1, 1);
  if (!lua_isnil(L, -1)) lua_setfield(L, mg, mgl_modules[i].name);
  else lua_pop(L, 1);
}

static void load_modules(lua_State *L, int mg) {
  static const char *const order[] = {"test", "util", "data", "nn", "optim", NULL};
  char done[256] = {0};
  for (int k = 0; order[k]; k++)
    for (int i = 0; mgl_modules[i].name && i < 256; i++)
      if (!strcmp(order[k], mgl_modules[i].name)) { load_module(L, mg, i); done[i] = 1; }
  for (int i = 0; mgl_modules[i].name && i < 256; i++)
    if (!done[i]) load_module(L, mg, i);
}

int mgl_open_with(lua_State *L, mg_rt *rt, bool owned);
int mgl_open_with(lua_State *L, mg_rt *rt, bool owned) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MG_KEY);
  if (!lua_isnil(L, -1)) return 1;  /* already open in this state */
  lua_pop(L, 1);
  rtbox *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->rt = rt;
  b->owned = owned;
  pthread_once(&box_secret_once, box_secret_init);
  lua_newtable(L);
  lua_pushcfunction(L, rtbox_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &RT_KEY);
  luaL_newmetatable(L, MGL_TENSOR);  /* filled by mgl_open_tensor; an upvalue from here on */
  lua_pop(L, 1);
  rt->pressure = on_pressure;
  rt->pressure_ud = L;

  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
  lua_newtable(L);
  int mg = lua_gettop(L);
  lua_pushvalue(L, mg);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MG_KEY);
  lua_pushliteral(L, MG_VERSION);
  lua_setfield(L, mg, "version");

  mgl_open_tensor(L);
  /* tensors are many short-lived objects: generational collection suits them */
  lua_gc(L, LUA_GCGEN, 0, 0);
  mgl_open_math(L);
  mgl_open_reduce(L);
  mgl_open_nnf(L);
  mgl_open_autograd(L);
  mgl_open_sys(L);
  mgl_open_plugin(L);
  mgl_open_io(L);
  load_modules(L, mg);
  return 1;
}

__attribute__((visibility("default"))) int luaopen_moongrad(lua_State *L);
int luaopen_moongrad(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &MG_KEY);
  if (!lua_isnil(L, -1)) return 1;
  lua_pop(L, 1);
  mg_rt *rt = mg_rt_new();
  if (!rt) return luaL_error(L, "moongrad: cannot create a runtime (out of memory)");
  return mgl_open_with(L, rt, true);
}
