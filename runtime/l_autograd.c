/*
** l_autograd.c — backward, grad mode, and mg.Function: a differentiable op
** whose forward and backward are Lua functions. (mg.gradcheck lives in
** modules/autograd.lua, over these.)
*/
#include <stdlib.h>
#include <string.h>
#include "l_core.h"

static int m_backward(lua_State *L) {
  mg_tensor *t = mgl_check(L, 1, "backward");
  mg_tensor *g = NULL;
  int opts = 2;
  if (mgl_test(L, 2)) { g = mgl_check(L, 2, "backward"); opts = 3; }
  else if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
    return luaL_error(L, "backward: argument #2: expected a gradient tensor or an options table, got %s", mgl_typename(L, 2));
  static const char *const names[] = {"retain_graph", NULL};
  mgl_checkopts(L, opts, names, "backward");
  bool retain = mgl_optbool(L, opts, "retain_graph", false, "backward");
  if (t->rt->backward_depth) return luaL_error(L, "backward: cannot start a backward pass inside another one");
  if (mg_backward(t, g, retain)) return mgl_error(L);
  return 0;
}

static int m_zero_grad(lua_State *L) {
  mg_tensor *t = mgl_check(L, 1, "zero_grad");
  if (t->grad) {
    if (mg_fill_(t->grad, 0)) return mgl_error(L);
  }
  lua_settop(L, 1);
  return 1;
}

static int l_no_grad(lua_State *L) {
  mgl_checktype(L, 1, LUA_TFUNCTION, "no_grad", "a function");
  mg_rt *rt = mgl_rt(L);
  bool prev = rt->grad_enabled;
  rt->grad_enabled = false;
  int n = lua_gettop(L);
  int st = lua_pcall(L, n - 1, LUA_MULTRET, 0);
  rt->grad_enabled = prev;
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static int l_enable_grad(lua_State *L) {
  mgl_checktype(L, 1, LUA_TFUNCTION, "enable_grad", "a function");
  mg_rt *rt = mgl_rt(L);
  bool prev = rt->grad_enabled;
  rt->grad_enabled = true;
  int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  rt->grad_enabled = prev;
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static int l_grad_enabled(lua_State *L) { lua_pushboolean(L, mgl_rt(L)->grad_enabled); return 1; }

static int l_set_grad_enabled(lua_State *L) {
  mg_rt *rt = mgl_rt(L);
  bool prev = rt->grad_enabled;
  rt->grad_enabled = lua_toboolean(L, 1);
  lua_pushboolean(L, prev);
  return 1;
}

static int l_detect_anomaly(lua_State *L) {
  mg_rt *rt = mgl_rt(L);
  bool prev = rt->anomaly;
  if (!lua_isnone(L, 1)) rt->anomaly = lua_toboolean(L, 1);
  lua_pushboolean(L, prev);
  return 1;
}

/* ---- mg.Function ----------------------------------------------------------------- */

typedef struct { lua_State *L; int fn_ref, ctx_ref; } lfn;

static void lfn_free(mg_node *n) {
  lfn *f = n->ctx;
  luaL_unref(f->L, LUA_REGISTRYINDEX, f->fn_ref);
  luaL_unref(f->L, LUA_REGISTRYINDEX, f->ctx_ref);
  free(f);
}

/* runs backward(ctx, g) in Lua; errors are caught and become the runtime's */
static int lfn_call(lua_State *L) {
  mg_node *n = lua_touserdata(L, 1);
  mg_tensor *g = lua_touserdata(L, 2);
  mg_tensor **gin = lua_touserdata(L, 3);
  lfn *f = n->ctx;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->fn_ref);
  lua_getfield(L, 1, "backward");
  lua_rawgeti(L, LUA_REGISTRYINDEX, f->ctx_ref);
  mgl_push(L, mg_retain(g));
  lua_call(L, 2, n->nin);
  for (int k = 0; k < n->nin; k++) {
    int idx = 2 + k;
    if (!mg_node_needs(n, k) || lua_isnil(L, idx)) continue;
    mg_tensor *gk = mgl_test(L, idx);
    if (!gk) return luaL_error(L, "Function backward: result #%d must be a tensor or nil, got %s", k + 1, mgl_typename(L, idx));
    if (gk->ndim != n->in[k].ndim || memcmp(gk->shape, n->in[k].shape, sizeof(int64_t) * (size_t)gk->ndim)) {
      char s1[128], s2[128];
      return luaL_error(L, "Function backward: gradient #%d has shape %s, but input #%d has shape %s", k + 1,
                        mg_shape_str(gk, s1, sizeof s1), k + 1, mg_dims_str(n->in[k].ndim, n->in[k].shape, s2, sizeof s2));
    }
    gin[k] = mg_retain(gk);
  }
  return 0;
}

static int lfn_backward(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  lfn *f = n->ctx;
  if (!f) return mg_seterr(n->rt, "backward: trying to backward through a Function's graph a second time");
  lua_State *L = f->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, lfn_call);
  lua_pushlightuserdata(L, n);
  lua_pushlightuserdata(L, g);
  lua_pushlightuserdata(L, gin);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    mg_seterr(n->rt, "%s", lua_tostring(L, -1));
    lua_settop(L, top);
    for (int k = 0; k < n->nin; k++) { mg_release(gin[k]); gin[k] = NULL; }
    return -1;
  }
  lua_settop(L, top);
  return 0;
}

/* F(...): forward(ctx, ...) with recording off, then one node over the tensor arguments */
static int fn_call(lua_State *L) {
  int nargs = lua_gettop(L) - 1;  /* self is 1 */
  mg_rt *rt = mgl_rt(L);
  lua_newtable(L);  /* ctx */
  int ctx = lua_gettop(L);
  lua_getfield(L, 1, "forward");
  lua_pushvalue(L, ctx);
  for (int i = 2; i <= nargs + 1; i++) lua_pushvalue(L, i);
  bool prev = rt->grad_enabled;
  rt->grad_enabled = false;
  int st = lua_pcall(L, nargs + 1, 1, 0);
  rt->grad_enabled = prev;
  if (st != LUA_OK) return lua_error(L);
  mg_tensor *out = mgl_test(L, -1);
  if (!out) return luaL_error(L, "Function forward: must return a tensor, got %s", mgl_typename(L, -1));
  mg_tensor *in[64];
  if (nargs > 64) return luaL_error(L, "Function: at most 64 arguments");
  for (int i = 0; i < nargs; i++) in[i] = mgl_test(L, 2 + i);
  if (!mg_any_requires_grad(rt, nargs, in)) return 1;
  /* the output gets its own header so the Lua value returned by forward keeps no history */
  mg_tensor *res = mg_detach(out);
  mg_node *n = mg_record(res, "Function", lfn_backward, nargs, in);
  lfn *f = mg_xmalloc(sizeof *f);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  f->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 1);
  f->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ctx);
  f->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  n->ctx = f;
  n->ctx_free = lfn_free;
  lua_getfield(L, 1, "name");
  if (lua_isstring(L, -1)) n->op = "Function";  /* names are for messages; keep it static */
  lua_pop(L, 1);
  return mgl_push(L, res);
}

static int l_Function(lua_State *L) {
  mgl_checktype(L, 1, LUA_TTABLE, "Function", "a table {forward = f, backward = g}");
  lua_getfield(L, 1, "forward");
  if (!lua_isfunction(L, -1)) return luaL_error(L, "Function: 'forward' must be a function, got %s", mgl_typename(L, -1));
  lua_getfield(L, 1, "backward");
  if (!lua_isfunction(L, -1)) return luaL_error(L, "Function: 'backward' must be a function, got %s", mgl_typename(L, -1));
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 1)) { lua_pushvalue(L, -2); lua_insert(L, -2); lua_settable(L, -4); }
  lua_newtable(L);
  lua_pushcfunction(L, fn_call);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_pushcfunction(L, fn_call);
  lua_setfield(L, -2, "apply_raw");
  return 1;
}

void mgl_open_autograd(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"no_grad", l_no_grad}, {"enable_grad", l_enable_grad}, {"grad_enabled", l_grad_enabled},
    {"set_grad_enabled", l_set_grad_enabled}, {"detect_anomaly", l_detect_anomaly}, {"Function", l_Function},
    {NULL, NULL}};
  static const luaL_Reg methods[] = {{"backward", m_backward}, {"zero_grad", m_zero_grad}, {NULL, NULL}};
  mgl_register(L, fns, methods);
}
