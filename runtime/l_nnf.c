/*
** l_nnf.c — functional layer ops (conv2d, pooling, softmax, dropout, norms,
** embedding) and index ops (cat, stack, index_select, gather, masked_fill).
** Lua indices are 1-based: index tensors are shifted to the core's 0-based
** convention here, and the core reports offending indices 1-based again.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "l_core.h"


/* the integer at idx (integral floats too), or false; an error when out of range */
static bool as_int(lua_State *L, int idx, const char *op, const char *what, int *out) {
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok || lua_type(L, idx) != LUA_TNUMBER) return false;
  if (v < -1000000 || v > 1000000) luaL_error(L, "%s: %s %I is out of range", op, what, v);
  *out = (int)v;
  return true;
}

/* an integer or a {h, w} pair of integers, from the value at idx */
static void int_pair(lua_State *L, int idx, const char *op, const char *what, int out[2]) {
  if (as_int(L, idx, op, what, &out[0])) { out[1] = out[0]; return; }
  if (lua_istable(L, idx) && lua_rawlen(L, idx) == 2) {
    for (int k = 0; k < 2; k++) {
      lua_rawgeti(L, idx, k + 1);
      bool ok = as_int(L, -1, op, what, &out[k]);
      lua_pop(L, 1);
      if (!ok) break;
      if (k == 1) return;
    }
  }
  luaL_error(L, "%s: %s must be an integer or a {h, w} pair of integers, got %s", op, what,
             lua_type(L, idx) == LUA_TNUMBER ? lua_tostring(L, idx) : mgl_typename(L, idx));
}

/* options-table field as a pair; false if absent */
static bool opt_pair(lua_State *L, int opts, const char *key, const char *op, int out[2]) {
  if (!lua_istable(L, opts)) return false;
  lua_getfield(L, opts, key);
  bool have = !lua_isnil(L, -1);
  if (have) int_pair(L, lua_gettop(L), op, key, out);
  lua_pop(L, 1);
  return have;
}

/* an optional tensor argument: nil/none gives NULL */
static mg_tensor *opt_tensor(lua_State *L, int idx, const char *op, const char *what) {
  if (lua_isnoneornil(L, idx)) return NULL;
  mg_tensor *t = mgl_test(L, idx);
  if (!t) luaL_error(L, "%s: argument #%d (%s): expected a tensor or nil, got %s", op, idx, what, mgl_typename(L, idx));
  return mgl_check(L, idx, op);
}

static bool opt_boolean(lua_State *L, int idx, const char *op, const char *what, bool def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx)) luaL_error(L, "%s: argument #%d (%s): expected a boolean, got %s", op, idx, what, mgl_typename(L, idx));
  return lua_toboolean(L, idx);
}

static double opt_number(lua_State *L, int idx, const char *op, const char *what, double def) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    luaL_error(L, "%s: argument #%d (%s): expected a number, got %s", op, idx, what, mgl_typename(L, idx));
  return lua_tonumber(L, idx);
}

/* ---- convolution and pooling ------------------------------------------------------- */

static int l_conv2d(lua_State *L) {
  static const char *const names[] = {"stride", "padding", "dilation", "groups", NULL};
  mg_tensor *x = mgl_check(L, 1, "conv2d"), *w = mgl_check(L, 2, "conv2d"), *b = NULL;
  int opts = 4;
  if (lua_istable(L, 3) && !mgl_test(L, 3)) opts = 3;
  else b = opt_tensor(L, 3, "conv2d", "bias");
  mgl_checkopts(L, opts, names, "conv2d");
  mg_conv_opts o = {{1, 1}, {0, 0}, {1, 1}, 1};
  opt_pair(L, opts, "stride", "conv2d", o.stride);
  opt_pair(L, opts, "dilation", "conv2d", o.dilation);
  double g = mgl_optnum(L, opts, "groups", 1, "conv2d");
  if (g != floor(g) || g < 1 || g > 1e6) return luaL_error(L, "conv2d: groups must be a positive integer, got %f", g);
  o.groups = (int)g;
  /* padding: sizes, "valid" (none) or "same" (output size = input size, stride 1; an odd
  ** total pads one more at the bottom/right, as PyTorch: pad one more on both sides, then
  ** drop the first output row/column) */
  bool same = false;
  if (lua_istable(L, opts) && lua_getfield(L, opts, "padding") == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (!strcmp(s, "same")) same = true;
    else if (strcmp(s, "valid"))
      return luaL_error(L, "conv2d: padding must be sizes, \"valid\" or \"same\", got \"%s\"", s);
  } else opt_pair(L, opts, "padding", "conv2d", o.padding);
  int drop[2] = {0, 0};
  if (same) {
    if (o.stride[0] != 1 || o.stride[1] != 1)
      return luaL_error(L, "conv2d: padding \"same\" needs stride 1, got {%d,%d}", o.stride[0], o.stride[1]);
    if (w->ndim == 4)
      for (int k = 0; k < 2; k++) {
        int64_t total = (int64_t)o.dilation[k] * (w->shape[2 + k] - 1);
        o.padding[k] = (int)((total + 1) / 2);
        drop[k] = (int)(total % 2);
      }
  }
  mg_tensor *y = mg_conv2d(x, w, b, &o);
  for (int k = 0; k < 2 && y; k++)
    if (drop[k]) {
      int d = y->ndim - 2 + k;
      mg_tensor *v = mg_narrow(y, d, 1, y->shape[d] - 1);
      mg_release(y);
      y = v;
    }
  return mgl_push(L, y);
}

static int pool(lua_State *L, bool is_max) {
  const char *op = is_max ? "max_pool2d" : "avg_pool2d";
  static const char *const names[] = {"stride", "padding", NULL};
  mg_tensor *x = mgl_check(L, 1, op);
  int k[2], s[2], p[2] = {0, 0};
  if (lua_isnoneornil(L, 2)) return luaL_error(L, "%s: argument #2: expected a kernel size, got no value", op);
  int_pair(L, 2, op, "kernel size", k);
  mgl_checkopts(L, 3, names, op);
  if (!opt_pair(L, 3, "stride", op, s)) { s[0] = k[0]; s[1] = k[1]; }
  opt_pair(L, 3, "padding", op, p);
  return mgl_push(L, is_max ? mg_max_pool2d(x, k, s, p) : mg_avg_pool2d(x, k, s, p));
}
static int l_max_pool2d(lua_State *L) { return pool(L, true); }
static int l_avg_pool2d(lua_State *L) { return pool(L, false); }

/* ---- softmax, dropout, norms -------------------------------------------------------- */

static int softmax(lua_State *L, bool lg) {
  const char *op = lg ? "log_softmax" : "softmax";
  mg_tensor *x = mgl_check(L, 1, op);
  int d = mgl_dim(L, 2, x->ndim, op);
  return mgl_push(L, lg ? mg_log_softmax(x, d) : mg_softmax(x, d));
}
static int l_softmax(lua_State *L) { return softmax(L, false); }
static int l_log_softmax(lua_State *L) { return softmax(L, true); }

static int l_dropout(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "dropout");
  double p = opt_number(L, 2, "dropout", "p", 0.5);
  bool training = opt_boolean(L, 3, "dropout", "training", true);
  return mgl_push(L, mg_dropout(x, p, training));
}

static int l_batch_norm(lua_State *L) {
  const char *op = "batch_norm";
  mg_tensor *x = mgl_check(L, 1, op);
  mg_tensor *rm = opt_tensor(L, 2, op, "running_mean"), *rv = opt_tensor(L, 3, op, "running_var");
  mg_tensor *w = opt_tensor(L, 4, op, "weight"), *b = opt_tensor(L, 5, op, "bias");
  bool training = opt_boolean(L, 6, op, "training", false);
  double momentum = opt_number(L, 7, op, "momentum", 0.1), eps = opt_number(L, 8, op, "eps", 1e-5);
  if (training && ((rm && rm->requires_grad) || (rv && rv->requires_grad)) && mgl_rt(L)->grad_enabled)
    return luaL_error(L, "batch_norm: running_mean and running_var are updated in place and must not require grad");
  return mgl_push(L, mg_batch_norm(x, rm, rv, w, b, training, momentum, eps));
}

static int l_layer_norm(lua_State *L) {
  const char *op = "layer_norm";
  mg_tensor *x = mgl_check(L, 1, op);
  int64_t shape[MG_MAX_DIMS];
  int nd;
  if (lua_isinteger(L, 2)) { shape[0] = lua_tointeger(L, 2); nd = 1; }
  else if (lua_istable(L, 2) && !mgl_test(L, 2) && lua_rawlen(L, 2) > 0) nd = mgl_shape(L, 2, shape, op, NULL);
  else return luaL_error(L, "layer_norm: argument #2 (normalized_shape): expected an integer or a non-empty table of sizes, got %s",
                         mgl_typename(L, 2));
  mg_tensor *w = opt_tensor(L, 3, op, "weight"), *b = opt_tensor(L, 4, op, "bias");
  double eps = opt_number(L, 5, op, "eps", 1e-5);
  return mgl_push(L, mg_layer_norm(x, nd, shape, w, b, eps));
}

/* ---- index ops ------------------------------------------------------------------------- */

/* idx - 1 as a new tensor without history (Lua's 1-based indices to the core's 0-based) */
static mg_tensor *zero_based(lua_State *L, int arg, const char *op) {
  mg_tensor *idx = mgl_check(L, arg, op);
  mg_tensor *c = mg_copy_as(idx, idx->dtype);
  if (!c) mgl_error(L);
  for (int64_t i = 0; i < c->numel; i++) {
    if (c->dtype == MG_F32) mg_f32(c)[i] -= 1; else mg_f64(c)[i] -= 1;
  }
  return c;
}

static int l_embedding(lua_State *L) {
  mg_tensor *w = mgl_check(L, 2, "embedding");
  mg_tensor *idx = zero_based(L, 1, "embedding");
  mg_tensor *y = mg_embedding(idx, w);
  mg_release(idx);
  return mgl_push(L, y);
}

static int m_index_select(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "index_select");
  int d = mgl_dim(L, 2, x->ndim, "index_select");
  mg_tensor *idx = zero_based(L, 3, "index_select");
  mg_tensor *y = mg_index_select(x, d, idx);
  mg_release(idx);
  return mgl_push(L, y);
}

static int m_gather(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "gather");
  int d = mgl_dim(L, 2, x->ndim, "gather");
  mg_tensor *idx = zero_based(L, 3, "gather");
  mg_tensor *y = mg_gather(x, d, idx);
  mg_release(idx);
  return mgl_push(L, y);
}

static int m_masked_fill(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "masked_fill"), *m = mgl_check(L, 2, "masked_fill");
  if (lua_type(L, 3) != LUA_TNUMBER)
    return luaL_error(L, "masked_fill: argument #3: expected a number (the fill value), got %s", mgl_typename(L, 3));
  return mgl_push(L, mg_masked_fill(x, m, lua_tonumber(L, 3)));
}

/* the tensors of a Lua list at idx (array freed by the caller); *n = count */
static mg_tensor **tensor_list(lua_State *L, int idx, const char *op, int *n) {
  if (!lua_istable(L, idx) || mgl_test(L, idx))
    luaL_error(L, "%s: argument #%d: expected a list of tensors, got %s", op, idx, mgl_typename(L, idx));
  lua_Integer len = luaL_len(L, idx);
  if (len < 1) luaL_error(L, "%s: expected a non-empty list of tensors", op);
  if (len > 1000000) luaL_error(L, "%s: too many tensors (%d)", op, (int)len);
  for (lua_Integer k = 1; k <= len; k++) {
    lua_rawgeti(L, idx, k);
    if (mgl_is_closed(L, -1)) luaL_error(L, "%s: tensor #%d in the list was closed", op, (int)k);
    if (!mgl_test(L, -1)) luaL_error(L, "%s: element %d of the list is a %s, expected a tensor", op, (int)k, mgl_typename(L, -1));
    lua_pop(L, 1);
  }
  mg_tensor **ts = malloc(sizeof *ts * (size_t)len);
  if (!ts) luaL_error(L, "%s: out of memory", op);
  for (lua_Integer k = 1; k <= len; k++) {
    lua_rawgeti(L, idx, k);
    ts[k - 1] = mgl_test(L, -1);  /* kept alive by the list */
    lua_pop(L, 1);
  }
  *n = (int)len;
  return ts;
}

static int catstack(lua_State *L, bool stack) {
  const char *op = stack ? "stack" : "cat";
  int n;
  if (!lua_istable(L, 1))
    return luaL_error(L, "%s: argument #1: expected a list of tensors, got %s", op,
                      mgl_test(L, 1) ? "a tensor" : mgl_typename(L, 1));
  lua_rawgeti(L, 1, 1);
  mg_tensor *first = mgl_test(L, -1);
  lua_pop(L, 1);
  int nd = first ? first->ndim + (stack ? 1 : 0) : 1;
  int d = mgl_optdim(L, 2, nd, op, 0);
  mg_tensor **ts = tensor_list(L, 1, op, &n);
  mg_tensor *y = stack ? mg_stack(n, ts, d) : mg_cat(n, ts, d);
  free(ts);
  return mgl_push(L, y);
}
static int l_cat(lua_State *L) { return catstack(L, false); }
static int l_stack(lua_State *L) { return catstack(L, true); }

void mgl_open_nnf(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"conv2d", l_conv2d}, {"max_pool2d", l_max_pool2d}, {"avg_pool2d", l_avg_pool2d}, {"dropout", l_dropout},
    {"batch_norm", l_batch_norm}, {"layer_norm", l_layer_norm}, {"embedding", l_embedding}, {"cat", l_cat},
    {"stack", l_stack}, {NULL, NULL}};
  static const luaL_Reg both[] = {
    {"softmax", l_softmax}, {"log_softmax", l_log_softmax}, {"index_select", m_index_select}, {"gather", m_gather},
    {"masked_fill", m_masked_fill}, {NULL, NULL}};
  mgl_register(L, fns, NULL);
  mgl_register(L, both, both);
}
