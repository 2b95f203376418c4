/*
** l_tensor.c — the Lua tensor type: construction, inspection, indexing,
** views, printing and the metamethods.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "l_core.h"

void mgl_push_methods(lua_State *L);

/* ---- construction ------------------------------------------------------------ */

static const char *const create_opts[] = {"dtype", "requires_grad", NULL};

/* shape args from 1, then an options table; pushes nothing. Returns ndim. */
static int shape_and_opts(lua_State *L, int from, int64_t *shape, mg_dtype *dt, bool *rg, const char *op) {
  int next;
  int nd = mgl_shape(L, from, shape, op, &next);
  for (int d = 0; d < nd; d++)
    if (shape[d] < 0) mgl_errorf(L, "%s: size #%d is negative (%lld)", op, d + 1, (long long)shape[d]);
  if (!lua_isnoneornil(L, next) && !lua_istable(L, next))
    luaL_error(L, "%s: argument #%d: expected a size or an options table, got %s", op, next, mgl_typename(L, next));
  mgl_checkopts(L, next, create_opts, op);
  *dt = mgl_optdtype(L, next, MG_F32, op);
  *rg = mgl_optbool(L, next, "requires_grad", false, op);
  return nd;
}

static int finish(lua_State *L, mg_tensor *t, bool rg) {
  if (t) t->requires_grad = rg;
  return mgl_push(L, t);
}

static int filled(lua_State *L, double v, const char *op) {
  int64_t shape[MG_MAX_DIMS];
  mg_dtype dt; bool rg;
  int nd = shape_and_opts(L, 1, shape, &dt, &rg, op);
  return finish(L, mg_full(mgl_rt(L), dt, nd, shape, v), rg);
}

static int l_zeros(lua_State *L) { return filled(L, 0, "zeros"); }
static int l_ones(lua_State *L) { return filled(L, 1, "ones"); }

static int l_empty(lua_State *L) {
  int64_t shape[MG_MAX_DIMS];
  mg_dtype dt; bool rg;
  int nd = shape_and_opts(L, 1, shape, &dt, &rg, "empty");
  mg_tensor *t = mg_full(mgl_rt(L), dt, nd, shape, 0);  /* zeroed: never expose stale memory */
  return finish(L, t, rg);
}

static int l_full(lua_State *L) {
  int64_t shape[MG_MAX_DIMS];
  int nd;
  if (lua_istable(L, 1)) nd = mgl_shape(L, 1, shape, "full", NULL);
  else if (lua_type(L, 1) == LUA_TNUMBER) { shape[0] = mgl_checkinteger(L, 1, "full", "a size (integer)"); nd = 1; }
  else return luaL_error(L, "full: argument #1: expected a shape table, got %s", mgl_typename(L, 1));
  if (lua_type(L, 2) != LUA_TNUMBER) return luaL_error(L, "full: argument #2: expected a fill value, got %s", mgl_typename(L, 2));
  double v = lua_tonumber(L, 2);
  mgl_checkopts(L, 3, create_opts, "full");
  for (int d = 0; d < nd; d++) if (shape[d] < 0) luaL_error(L, "full: size #%d is negative", d + 1);
  mg_tensor *t = mg_full(mgl_rt(L), mgl_optdtype(L, 3, MG_F32, "full"), nd, shape, v);
  return finish(L, t, mgl_optbool(L, 3, "requires_grad", false, "full"));
}

static int random_fill(lua_State *L, bool normal, const char *op) {
  int64_t shape[MG_MAX_DIMS];
  mg_dtype dt; bool rg;
  int nd = shape_and_opts(L, 1, shape, &dt, &rg, op);
  mg_tensor *t = mg_empty(mgl_rt(L), dt, nd, shape);
  if (t && (normal ? mg_normal_(t, 0, 1) : mg_uniform_(t, 0, 1))) { mg_release(t); t = NULL; }
  return finish(L, t, rg);
}
static int l_rand(lua_State *L) { return random_fill(L, false, "rand"); }
static int l_randn(lua_State *L) { return random_fill(L, true, "randn"); }

static int l_randint(lua_State *L) {
  lua_Integer lo = mgl_checkinteger(L, 1, "randint", "an integer (lo)"), hi = mgl_checkinteger(L, 2, "randint", "an integer (hi)");
  if (hi < lo) return mgl_errorf(L, "randint: empty range [%lld, %lld] (lo must be <= hi)", (long long)lo, (long long)hi);
  int64_t shape[MG_MAX_DIMS];
  mg_dtype dt; bool rg;
  int nd = shape_and_opts(L, 3, shape, &dt, &rg, "randint");
  mg_rt *rt = mgl_rt(L);
  mg_tensor *t = mg_empty(rt, dt, nd, shape);
  if (t) {
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;  /* 0: the full 64-bit range */
    for (int64_t i = 0; i < t->numel; i++) {
      uint64_t r = mg_rand_u64(rt);
      double v = (double)(lua_Integer)((uint64_t)lo + (span ? r % span : r));
      if (dt == MG_F32) mg_f32(t)[i] = (float)v; else mg_f64(t)[i] = v;
    }
  }
  return finish(L, t, false);
}

static int l_randperm(lua_State *L) {
  lua_Integer n = mgl_checkinteger(L, 1, "randperm", "an integer (n)");
  if (n < 0) return luaL_error(L, "randperm: n must be >= 0, got %d", (int)n);
  mgl_checkopts(L, 2, create_opts, "randperm");
  mg_rt *rt = mgl_rt(L);
  mg_tensor *t = mg_empty(rt, mgl_optdtype(L, 2, MG_F32, "randperm"), 1, (int64_t[]){n});
  if (!t) return mgl_error(L);
  int64_t *p = mg_xmalloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) p[i] = i + 1;
  for (int64_t i = n - 1; i > 0; i--) {  /* Fisher-Yates */
    int64_t j = (int64_t)(mg_rand_u64(rt) % (uint64_t)(i + 1)), x = p[i];
    p[i] = p[j]; p[j] = x;
  }
  for (int64_t i = 0; i < n; i++) {
    if (t->dtype == MG_F32) mg_f32(t)[i] = (float)p[i]; else mg_f64(t)[i] = (double)p[i];
  }
  free(p);
  return mgl_push(L, t);
}

static int l_range(lua_State *L) {
  double a = mgl_checknumber(L, 1, "range", "a number (start)"), b = mgl_checknumber(L, 2, "range", "a number (stop)");
  double step = lua_type(L, 3) == LUA_TNUMBER ? lua_tonumber(L, 3) : 1;
  int opts = lua_type(L, 3) == LUA_TNUMBER ? 4 : 3;
  mgl_checkopts(L, opts, create_opts, "range");
  if (step == 0 || isnan(step)) return mgl_errorf(L, "range: step must be nonzero, got %g", step);
  if (!isfinite(a) || !isfinite(b) || !isfinite(step))
    return mgl_errorf(L, "range: bounds and step must be finite, got %g, %g, %g", a, b, step);
  double cnt = floor((b - a) / step + 1e-9) + 1;
  if (cnt < 0) cnt = 0;
  if (cnt > 1e12) return mgl_errorf(L, "range: %g elements is too many", cnt);
  mg_tensor *t = mg_empty(mgl_rt(L), mgl_optdtype(L, opts, MG_F32, "range"), 1, (int64_t[]){(int64_t)cnt});
  if (!t) return mgl_error(L);
  for (int64_t i = 0; i < t->numel; i++) {
    if (t->dtype == MG_F32) mg_f32(t)[i] = (float)(a + step * (double)i); else mg_f64(t)[i] = a + step * (double)i;
  }
  return finish(L, t, mgl_optbool(L, opts, "requires_grad", false, "range"));
}

static int l_eye(lua_State *L) {
  lua_Integer n = mgl_checkinteger(L, 1, "eye", "a size (integer)");
  lua_Integer m = lua_isinteger(L, 2) ? lua_tointeger(L, 2) : n;
  int opts = lua_isinteger(L, 2) ? 3 : 2;
  if (n < 0 || m < 0) return mgl_errorf(L, "eye: sizes must be >= 0, got %lld x %lld", (long long)n, (long long)m);
  mgl_checkopts(L, opts, create_opts, "eye");
  mg_tensor *t = mg_full(mgl_rt(L), mgl_optdtype(L, opts, MG_F32, "eye"), 2, (int64_t[]){n, m}, 0);
  if (!t) return mgl_error(L);
  for (lua_Integer i = 0; i < n && i < m; i++) {
    if (t->dtype == MG_F32) mg_f32(t)[i * m + i] = 1; else mg_f64(t)[i * m + i] = 1;
  }
  return finish(L, t, mgl_optbool(L, opts, "requires_grad", false, "eye"));
}

static int like(lua_State *L, double v, const char *op) {
  mg_tensor *x = mgl_check(L, 1, op);
  mgl_checkopts(L, 2, create_opts, op);
  mg_tensor *t = mg_full(x->rt, mgl_optdtype(L, 2, x->dtype, op), x->ndim, x->shape, v);
  return finish(L, t, mgl_optbool(L, 2, "requires_grad", false, op));
}
static int l_zeros_like(lua_State *L) { return like(L, 0, "zeros_like"); }
static int l_ones_like(lua_State *L) { return like(L, 1, "ones_like"); }

/* mg.tensor(number | nested table [, opts]) */
static void nested_shape(lua_State *L, int idx, int depth, int64_t *shape, int *nd) {
  if (lua_type(L, idx) == LUA_TNUMBER) { *nd = depth; return; }
  if (!lua_istable(L, idx)) luaL_error(L, "tensor: expected numbers or nested tables, got %s", mgl_typename(L, idx));
  if (depth >= MG_MAX_DIMS) luaL_error(L, "tensor: nesting deeper than %d dims", MG_MAX_DIMS);
  shape[depth] = (int64_t)lua_rawlen(L, idx);
  if (shape[depth] == 0) { *nd = depth + 1; return; }
  lua_rawgeti(L, idx, 1);
  nested_shape(L, lua_gettop(L), depth + 1, shape, nd);
  lua_pop(L, 1);
}

static void nested_fill(lua_State *L, int idx, int depth, int nd, const int64_t *shape, double *out, int64_t *k) {
  if (depth == nd) {
    if (lua_type(L, idx) != LUA_TNUMBER)
      luaL_error(L, "tensor: expected a number at depth %d, got %s (ragged nesting?)", depth, mgl_typename(L, idx));
    out[(*k)++] = lua_tonumber(L, idx);
    return;
  }
  if (!lua_istable(L, idx) || (int64_t)lua_rawlen(L, idx) != shape[depth])
    luaL_error(L, "tensor: ragged nested table: expected %d elements at depth %d, got %s", (int)shape[depth], depth + 1,
               lua_istable(L, idx) ? lua_pushfstring(L, "%d", (int)lua_rawlen(L, idx)) : mgl_typename(L, idx));
  for (int64_t i = 1; i <= shape[depth]; i++) {
    lua_rawgeti(L, idx, i);
    nested_fill(L, lua_gettop(L), depth + 1, nd, shape, out, k);
    lua_pop(L, 1);
  }
}

static int l_tensor(lua_State *L) {
  mgl_checkopts(L, 2, create_opts, "tensor");
  mg_dtype dt = mgl_optdtype(L, 2, MG_F32, "tensor");
  bool rg = mgl_optbool(L, 2, "requires_grad", false, "tensor");
  mg_tensor *src = mgl_test(L, 1);
  if (src) {  /* a copy of a tensor */
    mg_tensor *c = mg_to(src, dt);
    mg_tensor *t = c ? mg_clone(c) : NULL;
    mg_release(c);
    if (t && t->grad_fn) { mg_tensor *d = mg_detach(t); mg_release(t); t = d; }
    return finish(L, t, rg);
  }
  int64_t shape[MG_MAX_DIMS];
  int nd = 0;
  nested_shape(L, 1, 0, shape, &nd);
  int64_t n = 1;
  for (int d = 0; d < nd; d++) n *= shape[d];
  double *vals = lua_newuserdatauv(L, sizeof(double) * (size_t)(n ? n : 1), 0);
  int64_t k = 0;
  nested_fill(L, 1, 0, nd, shape, vals, &k);
  return finish(L, mg_from_data(mgl_rt(L), dt, nd, shape, vals), rg);
}

/* ---- inspection -------------------------------------------------------------- */

#define SELF(op) mg_tensor *t = mgl_check(L, 1, op)

static void push_dims(lua_State *L, int nd, const int64_t *v) {
  lua_createtable(L, nd, 0);
  for (int d = 0; d < nd; d++) { lua_pushinteger(L, v[d]); lua_rawseti(L, -2, d + 1); }
}

static int m_shape(lua_State *L) { SELF("shape"); push_dims(L, t->ndim, t->shape); return 1; }
static int m_stride(lua_State *L) { SELF("stride"); push_dims(L, t->ndim, t->stride); return 1; }
static int m_dim(lua_State *L) { SELF("dim"); lua_pushinteger(L, t->ndim); return 1; }
static int m_numel(lua_State *L) { SELF("numel"); lua_pushinteger(L, t->numel); return 1; }
static int m_dtype(lua_State *L) { SELF("dtype"); lua_pushstring(L, mg_dtype_name(t->dtype)); return 1; }
static int m_is_contiguous(lua_State *L) { SELF("is_contiguous"); lua_pushboolean(L, mg_is_contiguous(t)); return 1; }

static int m_size(lua_State *L) {
  SELF("size");
  if (lua_isnoneornil(L, 2)) { push_dims(L, t->ndim, t->shape); return 1; }
  lua_pushinteger(L, t->shape[mgl_dim(L, 2, t->ndim, "size")]);
  return 1;
}

static int m_len(lua_State *L) {
  SELF("#");
  if (t->ndim == 0) return luaL_error(L, "#: a 0-dim tensor has no length");
  lua_pushinteger(L, t->shape[0]);
  return 1;
}

static int m_item(lua_State *L) {
  SELF("item");
  if (t->numel != 1) {
    char b[128];
    return mgl_errorf(L, "item: tensor of shape %s has %lld elements (expected exactly 1)", mg_shape_str(t, b, sizeof b), (long long)t->numel);
  }
  if (mg_check_alive(t, "item")) return mgl_error(L);
  lua_pushnumber(L, mg_get_flat(t, 0));
  return 1;
}

/* element offset from 1-based indices at stack positions from..from+ndim-1 */
static int64_t elem_offset(lua_State *L, mg_tensor *t, int from, const char *op) {
  int64_t off = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (!lua_isinteger(L, from + d)) {
      char b[128];
      luaL_error(L, "%s: expected %d integer indices for a tensor of shape %s, argument #%d is %s", op, t->ndim,
                 mg_shape_str(t, b, sizeof b), from + d, lua_isnone(L, from + d) ? "missing" : mgl_typename(L, from + d));
    }
    lua_Integer i = lua_tointeger(L, from + d);
    if (i < 0) i += t->shape[d] + 1;
    if (i < 1 || i > t->shape[d]) {
      char b[128];
      mgl_errorf(L, "%s: index %lld out of range for dim %d of size %lld (shape %s)", op,
                 (long long)lua_tointeger(L, from + d), d + 1, (long long)t->shape[d], mg_shape_str(t, b, sizeof b));
    }
    off += (i - 1) * t->stride[d];
  }
  if (mg_check_alive(t, op)) mgl_error(L);
  return off;
}

static int m_get(lua_State *L) {
  SELF("get");
  if (lua_gettop(L) - 1 != t->ndim) {
    char b[128];
    return luaL_error(L, "get: expected %d indices for a tensor of shape %s, got %d", t->ndim, mg_shape_str(t, b, sizeof b),
                      lua_gettop(L) - 1);
  }
  int64_t off = elem_offset(L, t, 2, "get");
  lua_pushnumber(L, t->dtype == MG_F32 ? mg_f32(t)[off] : mg_f64(t)[off]);
  return 1;
}

static int m_set(lua_State *L) {
  SELF("set");
  int n = lua_gettop(L);
  if (n - 2 != t->ndim) {
    char b[128];
    return luaL_error(L, "set: expected %d indices and a value for a tensor of shape %s, got %d arguments", t->ndim,
                      mg_shape_str(t, b, sizeof b), n - 1);
  }
  if (lua_type(L, n) != LUA_TNUMBER) return luaL_error(L, "set: value must be a number, got %s", mgl_typename(L, n));
  if (mg_check_inplace("set", t, NULL)) return mgl_error(L);
  int64_t off = elem_offset(L, t, 2, "set");
  double v = lua_tonumber(L, n);
  if (t->dtype == MG_F32) mg_f32(t)[off] = (float)v; else mg_f64(t)[off] = v;
  mg_bump_version(t);
  lua_settop(L, 1);
  return 1;
}

static void totable(lua_State *L, mg_tensor *t, int d, int64_t off) {
  if (d == t->ndim) { lua_pushnumber(L, t->dtype == MG_F32 ? mg_f32(t)[off] : mg_f64(t)[off]); return; }
  lua_createtable(L, (int)t->shape[d], 0);
  for (int64_t i = 0; i < t->shape[d]; i++) {
    totable(L, t, d + 1, off + i * t->stride[d]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  SELF("totable");
  if (mg_check_alive(t, "totable")) return mgl_error(L);
  luaL_checkstack(L, t->ndim + 4, "totable");
  totable(L, t, 0, 0);
  return 1;
}

/* ---- printing ------------------------------------------------------------------ */

#define EDGE 3  /* elements shown at each end of an elided dim */

static void fmt_num(char *b, size_t n, double v, bool ints, bool sci) {
  if (isnan(v)) snprintf(b, n, "nan");
  else if (isinf(v)) snprintf(b, n, v > 0 ? "inf" : "-inf");
  else if (ints) snprintf(b, n, "%.0f", v);
  else if (sci) snprintf(b, n, "%.4e", v);
  else snprintf(b, n, "%.4f", v);
}

static void print_rec(luaL_Buffer *B, mg_tensor *t, int d, int64_t off, int width, bool ints, bool sci, bool elide, int indent) {
  char num[64];
  if (d == t->ndim) {
    fmt_num(num, sizeof num, t->dtype == MG_F32 ? mg_f32(t)[off] : mg_f64(t)[off], ints, sci);
    char pad[96];
    snprintf(pad, sizeof pad, "%*s", width, num);
    luaL_addstring(B, pad);
    return;
  }
  luaL_addchar(B, '[');
  int64_t n = t->shape[d];
  for (int64_t i = 0; i < n; i++) {
    if (elide && n > 2 * EDGE && i == EDGE) {
      luaL_addstring(B, d == t->ndim - 1 ? "..., " : "...,\n");
      if (d != t->ndim - 1) for (int k = 0; k < indent + d + 1; k++) luaL_addchar(B, ' ');
      i = n - EDGE;
    }
    print_rec(B, t, d + 1, off + i * t->stride[d], width, ints, sci, elide, indent);
    if (i < n - 1) {
      if (d == t->ndim - 1) luaL_addstring(B, ", ");
      else {
        luaL_addchar(B, ',');
        for (int k = d; k < t->ndim - 1; k++) luaL_addchar(B, '\n');
        for (int k = 0; k < indent + d + 1; k++) luaL_addchar(B, ' ');
      }
    }
  }
  luaL_addchar(B, ']');
}

static int m_tostring(lua_State *L) {
  mgl_box *bx = mgl_tobox(L, 1);  /* also accepts a closed tensor */
  if (!bx) return mgl_argerror(L, 1, "tostring", "a tensor");
  if (!bx->t) { lua_pushliteral(L, "tensor(closed)"); return 1; }
  mg_tensor *t = bx->t;
  if (t->st->detached) { lua_pushliteral(L, "tensor(detached host memory)"); return 1; }
  bool elide = t->numel > 1000;
  /* scan the values to choose a format */
  bool ints = true;
  double amax = 0, amin = INFINITY;
  int64_t step = elide ? t->numel / 997 + 1 : 1;
  for (int64_t i = 0; i < t->numel; i += step) {
    double v = mg_get_flat(t, i);
    if (!isfinite(v)) continue;
    if (v != floor(v) || fabs(v) > 1e9) ints = false;
    if (fabs(v) > amax) amax = fabs(v);
    if (v != 0 && fabs(v) < amin) amin = fabs(v);
  }
  bool sci = !ints && (amax >= 1e5 || (amin < 1e-4 && amax < 1e-2 && amax > 0));
  int width = 1;
  char num[64];
  for (int64_t i = 0; i < t->numel; i += step) {
    fmt_num(num, sizeof num, mg_get_flat(t, i), ints, sci);
    if ((int)strlen(num) > width) width = (int)strlen(num);
  }
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  luaL_addstring(&B, "tensor(");
  print_rec(&B, t, 0, 0, width, ints, sci, elide, 7);
  char tail[256], sh[128];
  snprintf(tail, sizeof tail, ", shape=%s, dtype=%s", mg_shape_str(t, sh, sizeof sh), mg_dtype_name(t->dtype));
  luaL_addstring(&B, tail);
  if (t->grad_fn) { luaL_addstring(&B, ", grad_fn="); luaL_addstring(&B, t->grad_fn->op); }
  else if (t->requires_grad) luaL_addstring(&B, ", requires_grad=true");
  luaL_addchar(&B, ')');
  luaL_pushresult(&B);
  return 1;
}

/* ---- views -------------------------------------------------------------------------- */

static int m_view_like(lua_State *L, bool reshape) {
  const char *op = reshape ? "reshape" : "view";
  SELF(op);
  int64_t shape[MG_MAX_DIMS];
  int nd = mgl_shape(L, 2, shape, op, NULL);
  return mgl_push(L, reshape ? mg_reshape(t, nd, shape) : mg_view(t, nd, shape));
}
static int m_view(lua_State *L) { return m_view_like(L, false); }
static int m_reshape(lua_State *L) { return m_view_like(L, true); }

static int m_transpose(lua_State *L) {
  SELF("transpose");
  int d0 = mgl_dim(L, 2, t->ndim, "transpose"), d1 = mgl_dim(L, 3, t->ndim, "transpose");
  return mgl_push(L, mg_transpose(t, d0, d1));
}

static int m_t(lua_State *L) {
  SELF("t");
  if (t->ndim > 2) {
    char b[128];
    return luaL_error(L, "t: expects a tensor with at most 2 dims, got shape %s (use transpose)", mg_shape_str(t, b, sizeof b));
  }
  if (t->ndim < 2) return mgl_push(L, mg_retain(t));
  return mgl_push(L, mg_transpose(t, 0, 1));
}

static int m_permute(lua_State *L) {
  SELF("permute");
  int64_t p[MG_MAX_DIMS];
  int nd = mgl_shape(L, 2, p, "permute", NULL);
  if (nd != t->ndim) {
    char b[128];
    return luaL_error(L, "permute: %d dims given for a tensor of shape %s", nd, mg_shape_str(t, b, sizeof b));
  }
  int perm[MG_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    lua_pushinteger(L, p[d]);
    perm[d] = mgl_dim(L, lua_gettop(L), t->ndim, "permute");
    lua_pop(L, 1);
  }
  return mgl_push(L, mg_permute(t, perm));
}

static int m_narrow(lua_State *L) {
  SELF("narrow");
  int d = mgl_dim(L, 2, t->ndim, "narrow");
  lua_Integer s = mgl_checkinteger(L, 3, "narrow", "an integer (start)"), n = mgl_checkinteger(L, 4, "narrow", "an integer (length)");
  if (s < 0) s += t->shape[d] + 1;
  return mgl_push(L, mg_narrow(t, d, s - 1, n));
}

static int m_select(lua_State *L) {
  SELF("select");
  int d = mgl_dim(L, 2, t->ndim, "select");
  lua_Integer i = mgl_checkinteger(L, 3, "select", "an integer (index)");
  if (i < 0) i += t->shape[d] + 1;
  return mgl_push(L, mg_select(t, d, i - 1));
}

static int m_unsqueeze(lua_State *L) {
  SELF("unsqueeze");
  return mgl_push(L, mg_unsqueeze(t, mgl_dim(L, 2, t->ndim + 1, "unsqueeze")));
}

static int m_squeeze(lua_State *L) {
  SELF("squeeze");
  return mgl_push(L, mg_squeeze(t, mgl_optdim(L, 2, t->ndim, "squeeze", -1)));
}

static int m_expand(lua_State *L) {
  SELF("expand");
  int64_t shape[MG_MAX_DIMS];
  int nd = mgl_shape(L, 2, shape, "expand", NULL);
  return mgl_push(L, mg_expand(t, nd, shape));
}

static int m_expand_as(lua_State *L) {
  SELF("expand_as");
  mg_tensor *o = mgl_check(L, 2, "expand_as");
  return mgl_push(L, mg_expand(t, o->ndim, o->shape));
}

static int m_flatten(lua_State *L) {
  SELF("flatten");
  if (t->ndim == 0) return mgl_push(L, mg_flatten(t, 0, 0));
  int a = mgl_optdim(L, 2, t->ndim, "flatten", 0), b = mgl_optdim(L, 3, t->ndim, "flatten", t->ndim - 1);
  return mgl_push(L, mg_flatten(t, a, b));
}

static int m_contiguous(lua_State *L) { SELF("contiguous"); return mgl_push(L, mg_contiguous(t)); }
static int m_clone(lua_State *L) { SELF("clone"); return mgl_push(L, mg_clone(t)); }
static int m_float(lua_State *L) { SELF("float"); return mgl_push(L, mg_to(t, MG_F32)); }
static int m_double(lua_State *L) { SELF("double"); return mgl_push(L, mg_to(t, MG_F64)); }
static int m_detach(lua_State *L) { SELF("detach"); return mgl_push(L, mg_detach(t)); }

static int m_to(lua_State *L) {
  SELF("to");
  const char *s = mgl_checkstring(L, 2, "to", "a dtype name (\"float32\" or \"float64\")");
  mg_dtype dt;
  if (!strcmp(s, "float32") || !strcmp(s, "float")) dt = MG_F32;
  else if (!strcmp(s, "float64") || !strcmp(s, "double")) dt = MG_F64;
  else return luaL_error(L, "to: unknown dtype '%s' (expected \"float32\" or \"float64\")", s);
  return mgl_push(L, mg_to(t, dt));
}

static int m_type_as(lua_State *L) {
  SELF("type_as");
  return mgl_push(L, mg_to(t, mgl_check(L, 2, "type_as")->dtype));
}

/* ---- in place ----------------------------------------------------------------------- */

static int ret_self(lua_State *L, int status) {
  if (status) return mgl_error(L);
  lua_settop(L, 1);
  return 1;
}

static int m_fill_(lua_State *L) {
  SELF("fill_");
  double v = mgl_checknumber(L, 2, "fill_", "a number (the fill value)");
  if (mg_check_inplace("fill_", t, NULL)) return mgl_error(L);
  return ret_self(L, mg_fill_(t, v));
}

static int m_zero_(lua_State *L) {
  SELF("zero_");
  if (mg_check_inplace("zero_", t, NULL)) return mgl_error(L);
  return ret_self(L, mg_fill_(t, 0));
}

static int m_copy_(lua_State *L) {
  SELF("copy_");
  mg_tensor *s = mgl_check(L, 2, "copy_");
  if (mg_check_inplace("copy_", t, s)) return mgl_error(L);
  return ret_self(L, mg_copy_(t, s));
}

static int m_uniform_(lua_State *L) {
  SELF("uniform_");
  double a = mgl_optnumber(L, 2, "uniform_", NULL, 0), b = mgl_optnumber(L, 3, "uniform_", NULL, 1);
  if (!(a <= b)) return mgl_errorf(L, "uniform_: expected a <= b, got a=%g, b=%g", a, b);
  return ret_self(L, mg_uniform_(t, a, b));
}

static int m_normal_(lua_State *L) {
  SELF("normal_");
  double m = mgl_optnumber(L, 2, "normal_", "a number (mean)", 0), s = mgl_optnumber(L, 3, "normal_", "a number (std)", 1);
  if (!(s >= 0)) return mgl_errorf(L, "normal_: std must be >= 0, got %g", s);
  return ret_self(L, mg_normal_(t, m, s));
}

/* ---- metamethods -------------------------------------------------------------------- */

static int mm_gc(lua_State *L) {
  mgl_box *b = mgl_tobox(L, 1);
  if (b && b->t) { mg_release(b->t); b->t = NULL; }
  return 0;
}

static int m_requires_grad_(lua_State *L) {
  SELF("requires_grad_");
  bool v = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
  if (!v && t->grad_fn)
    return luaL_error(L, "requires_grad_: cannot turn off requires_grad of a non-leaf tensor (use detach)");
  t->requires_grad = v;
  lua_settop(L, 1);
  return 1;
}

/* t[i] (a view like t:select(1, i)), t.grad, t.requires_grad, t.is_leaf, methods */
static int mm_index(lua_State *L) {
  mgl_box *b = mgl_tobox(L, 1);
  if (!b) return mgl_argerror(L, 1, "index", "a tensor");
  if (lua_type(L, 2) == LUA_TSTRING) {
    mgl_push_methods(L);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    const char *k = lua_tostring(L, 2);
    if (!b->t) return luaL_error(L, "tensor was closed (field '%s')", k);
    if (!strcmp(k, "grad")) {
      if (b->t->grad) return mgl_push(L, mg_retain(b->t->grad));
      lua_pushnil(L);
      return 1;
    }
    if (!strcmp(k, "requires_grad")) { lua_pushboolean(L, b->t->requires_grad); return 1; }
    if (!strcmp(k, "is_leaf")) { lua_pushboolean(L, b->t->grad_fn == NULL); return 1; }
    if (!strcmp(k, "grad_fn")) {
      if (b->t->grad_fn) lua_pushstring(L, b->t->grad_fn->op); else lua_pushnil(L);
      return 1;
    }
    lua_pushnil(L);
    return 1;
  }
  if (lua_isinteger(L, 2)) {
    mg_tensor *t = mgl_check(L, 1, "index");
    if (t->ndim == 0) return luaL_error(L, "index: cannot index a 0-dim tensor");
    lua_Integer i = lua_tointeger(L, 2);
    if (i < 0) i += t->shape[0] + 1;
    return mgl_push(L, mg_select(t, 0, i - 1));
  }
  return luaL_error(L, "index: expected an integer index or a method name, got %s", mgl_typename(L, 2));
}

static int mm_newindex(lua_State *L) {
  mg_tensor *t = mgl_check(L, 1, "newindex");
  if (lua_isinteger(L, 2)) {  /* t[i] = number or tensor */
    if (t->ndim == 0) return luaL_error(L, "index: cannot index a 0-dim tensor");
    lua_Integer i = lua_tointeger(L, 2);
    if (i < 0) i += t->shape[0] + 1;
    mg_tensor *tmp, *src = mgl_operand(L, 3, "index assignment", t->dtype, &tmp);
    mg_tensor *row = mg_select(t, 0, i - 1);
    if (!row) { mg_release(tmp); return mgl_error(L); }
    int r = mg_check_inplace("index assignment", t, src);
    if (!r) r = mg_copy_(row, src);
    mg_release(tmp);
    mg_release(row);
    if (r) return mgl_error(L);
    return 0;
  }
  const char *k = lua_tostring(L, 2);
  if (k && !strcmp(k, "grad")) {
    if (lua_isnil(L, 3)) { mg_release(t->grad); t->grad = NULL; return 0; }
    mg_tensor *g = mgl_check(L, 3, "grad assignment");
    char s1[128], s2[128];
    if (!mg_same_shape(g, t))
      return luaL_error(L, "grad assignment: gradient of shape %s for a tensor of shape %s", mg_shape_str(g, s1, sizeof s1),
                        mg_shape_str(t, s2, sizeof s2));
    if (g->dtype != t->dtype)  /* as PyTorch: no silent conversion */
      return luaL_error(L, "grad assignment: gradient of dtype %s for a %s tensor (shape %s); convert it with :to(\"%s\")",
                        mg_dtype_name(g->dtype), mg_dtype_name(t->dtype), mg_shape_str(t, s2, sizeof s2),
                        mg_dtype_name(t->dtype));
    mg_release(t->grad);
    t->grad = mg_retain(g);
    return 0;
  }
  if (k && !strcmp(k, "requires_grad")) {
    bool v = lua_toboolean(L, 3);
    if (!v && t->grad_fn) return luaL_error(L, "requires_grad: cannot turn off requires_grad of a non-leaf tensor (use detach)");
    t->requires_grad = v;
    return 0;
  }
  return luaL_error(L, "tensor: cannot set field '%s' (tensors have no custom fields)", k ? k : mgl_typename(L, 2));
}

static int arith(lua_State *L, mg_binop op, const char *name) {
  mg_tensor *x, *y, *tmp;
  mgl_operands(L, name, &x, &y, &tmp);
  mg_tensor *r = mg_binary(op, x, y);
  mg_release(tmp);
  return mgl_push(L, r);
}
static int mm_add(lua_State *L) { return arith(L, MG_ADD, "add"); }
static int mm_sub(lua_State *L) { return arith(L, MG_SUB, "sub"); }
static int mm_mul(lua_State *L) { return arith(L, MG_MUL, "mul"); }
static int mm_div(lua_State *L) { return arith(L, MG_DIV, "div"); }
static int mm_pow(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER && mgl_test(L, 1))
    return mgl_push(L, mg_unary(MG_POWS, mgl_check(L, 1, "pow"), lua_tonumber(L, 2), 0));
  return arith(L, MG_POW, "pow");
}
static int mm_unm(lua_State *L) { return mgl_push(L, mg_unary(MG_NEG, mgl_check(L, 1, "neg"), 0, 0)); }

static int mm_close(lua_State *L) { return mm_gc(L); }

void mgl_open_tensor(lua_State *L) {
  static const luaL_Reg mt[] = {
    {"__gc", mm_gc}, {"__close", mm_close}, {"__index", mm_index}, {"__newindex", mm_newindex},
    {"__tostring", m_tostring}, {"__len", m_len}, {"__add", mm_add}, {"__sub", mm_sub}, {"__mul", mm_mul},
    {"__div", mm_div}, {"__pow", mm_pow}, {"__unm", mm_unm}, {NULL, NULL}};
  luaL_newmetatable(L, MGL_TENSOR);
  mgl_setfuncs(L, mt);
  lua_pushliteral(L, "moongrad.Tensor");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty}, {"full", l_full},
    {"rand", l_rand}, {"randn", l_randn}, {"randint", l_randint}, {"randperm", l_randperm}, {"range", l_range},
    {"eye", l_eye}, {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"shape", m_shape}, {"size", m_size}, {"dim", m_dim}, {"numel", m_numel}, {"dtype", m_dtype},
    {"stride", m_stride}, {"is_contiguous", m_is_contiguous}, {"item", m_item}, {"get", m_get}, {"set", m_set},
    {"totable", m_totable}, {"view", m_view}, {"reshape", m_reshape}, {"transpose", m_transpose}, {"t", m_t},
    {"permute", m_permute}, {"narrow", m_narrow}, {"select", m_select}, {"unsqueeze", m_unsqueeze},
    {"squeeze", m_squeeze}, {"expand", m_expand}, {"expand_as", m_expand_as}, {"flatten", m_flatten},
    {"contiguous", m_contiguous}, {"clone", m_clone}, {"float", m_float}, {"double", m_double}, {"to", m_to},
    {"type_as", m_type_as}, {"detach", m_detach}, {"fill_", m_fill_}, {"zero_", m_zero_}, {"copy_", m_copy_},
    {"uniform_", m_uniform_}, {"normal_", m_normal_}, {"requires_grad_", m_requires_grad_},
    {"tostring", m_tostring}, {NULL, NULL}};
  mgl_register(L, fns, methods);
}
