/*
** l_reduce.c — reductions and linear algebra as tensor methods and mg.*
** functions. Dims and returned indices are 1-based; the core's are 0-based.
** sum and mean also take a table of dims (x:mean({3, 4})).
*/
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "l_core.h"

/* optional boolean argument: def when none/nil */
static bool optbool(lua_State *L, int idx, bool def, const char *op, const char *what) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx))
    luaL_error(L, "%s: argument #%d (%s): expected a boolean, got %s", op, idx, what, mgl_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* dim at 2 (nil: all dims, -1 for the core) and keepdim at 3 */
static int dim_keep(lua_State *L, mg_tensor *t, const char *op, bool *keepdim) {
  int d = mgl_optdim(L, 2, t->ndim, op, -1);
  *keepdim = optbool(L, 3, false, op, "keepdim");
  return d;
}

/* index tensor (0-based, fresh and contiguous) made 1-based in place */
static mg_tensor *one_based(mg_tensor *i) {
  if (!i) return NULL;
  if (i->dtype == MG_F32) { float *p = mg_f32(i); for (int64_t k = 0; k < i->numel; k++) p[k] += 1; }
  else { double *p = mg_f64(i); for (int64_t k = 0; k < i->numel; k++) p[k] += 1; }
  return i;
}

/* sum/mean over a table of dims, e.g. x:mean({3, 4}): one dim at a time, last first */
static int over_dims(lua_State *L, mg_tensor *t, const char *op, mg_tensor *(*core)(mg_tensor *, int, bool)) {
  bool keep = optbool(L, 3, false, op, "keepdim"), seen[MG_MAX_DIMS] = {0};
  int n = (int)lua_rawlen(L, 2);
  for (int k = 1; k <= n; k++) {
    lua_rawgeti(L, 2, k);
    int d = mgl_dim(L, lua_gettop(L), t->ndim, op);
    lua_pop(L, 1);
    if (seen[d]) return luaL_error(L, "%s: dim %d appears twice in the list of dims", op, d + 1);
    seen[d] = true;
  }
  if (n == 0) return mgl_push(L, core(t, -1, keep));  /* as PyTorch: an empty list reduces everything */
  mg_tensor *r = mg_retain(t);
  for (int d = t->ndim - 1; d >= 0 && r; d--) {
    if (!seen[d]) continue;
    mg_tensor *next = core(r, d, keep);
    mg_release(r);
    r = next;
  }
  return mgl_push(L, r);
}

#define REDUCTION(fn, core, name, multi)                      \
  static int fn(lua_State *L) {                               \
    mg_tensor *t = mgl_check(L, 1, name);                     \
    if (multi && lua_istable(L, 2) && !mgl_test(L, 2))        \
      return over_dims(L, t, name, core);                     \
    bool keep;                                                \
    int d = dim_keep(L, t, name, &keep);                      \
    return mgl_push(L, core(t, d, keep));                     \
  }
REDUCTION(r_sum, mg_sum, "sum", true)
REDUCTION(r_mean, mg_mean, "mean", true)
REDUCTION(r_prod, mg_prod, "prod", false)
REDUCTION(r_logsumexp, mg_logsumexp, "logsumexp", false)

/* var([dim [, keepdim [, unbiased]]]) or var(unbiased) */
static int var_std(lua_State *L, bool is_std) {
  const char *op = is_std ? "std" : "var";
  mg_tensor *t = mgl_check(L, 1, op);
  int d = -1;
  bool keep = false, unbiased = true;
  if (lua_isboolean(L, 2)) unbiased = lua_toboolean(L, 2);
  else {
    d = dim_keep(L, t, op, &keep);
    unbiased = optbool(L, 4, true, op, "unbiased");
  }
  return mgl_push(L, is_std ? mg_std(t, d, keep, unbiased) : mg_var(t, d, keep, unbiased));
}
static int r_var(lua_State *L) { return var_std(L, false); }
static int r_std(lua_State *L) { return var_std(L, true); }

/* norm([p]): p a number (default 2, math.huge for the max norm) or "fro". The core also
** reduces over a dim (mg_norm_dim); from Lua a dim is refused for now. */
static int r_norm(lua_State *L) {
  mg_tensor *t = mgl_check(L, 1, "norm");
  double p = 2;
  if (lua_type(L, 2) == LUA_TSTRING && !strcmp(lua_tostring(L, 2), "fro")) p = 2;
  else if (lua_type(L, 2) == LUA_TNUMBER) p = lua_tonumber(L, 2);
  else if (!lua_isnoneornil(L, 2))
    return luaL_error(L, "norm: argument #2 (p): expected a number or \"fro\", got %s", mgl_typename(L, 2));
  if (lua_isnoneornil(L, 3)) return mgl_push(L, mg_norm(t, p));
  int d = mgl_dim(L, 3, t->ndim, "norm");  /* norm(p, dim [, keepdim]) */
  return mgl_push(L, mg_norm_dim(t, p, d, lua_toboolean(L, 4)));
}

/* max() -> 0-dim value; max(dim [, keepdim]) -> values, 1-based indices; max(other) -> maximum */
static int maxmin(lua_State *L, bool is_max) {
  const char *op = is_max ? "max" : "min";
  mg_tensor *t = mgl_check(L, 1, op), *o = mgl_test(L, 2);
  if (o) return mgl_push(L, mg_binary(is_max ? MG_MAXIMUM : MG_MINIMUM, t, o));
  bool keep;
  int d = dim_keep(L, t, op, &keep);
  mg_tensor *v, *i;
  if (d < 0) {
    if (mg_maxmin(t, -1, keep, is_max, &v, NULL)) return mgl_error(L);
    return mgl_push(L, v);
  }
  if (mg_maxmin(t, d, keep, is_max, &v, &i)) return mgl_error(L);
  mgl_push(L, v);
  mgl_push(L, one_based(i));
  return 2;
}
static int r_max(lua_State *L) { return maxmin(L, true); }
static int r_min(lua_State *L) { return maxmin(L, false); }

/* argmax([dim [, keepdim]]): 1-based; over the whole tensor a 0-dim flat index */
static int argmaxmin(lua_State *L, bool is_max) {
  const char *op = is_max ? "argmax" : "argmin";
  mg_tensor *t = mgl_check(L, 1, op);
  bool keep;
  int d = dim_keep(L, t, op, &keep);
  return mgl_push(L, one_based(mg_argmaxmin(t, d, keep, is_max)));
}
static int r_argmax(lua_State *L) { return argmaxmin(L, true); }
static int r_argmin(lua_State *L) { return argmaxmin(L, false); }

static int r_matmul(lua_State *L) { return mgl_push(L, mg_matmul(mgl_check(L, 1, "matmul"), mgl_check(L, 2, "matmul"))); }
static int r_dot(lua_State *L) { return mgl_push(L, mg_dot(mgl_check(L, 1, "dot"), mgl_check(L, 2, "dot"))); }
static int r_outer(lua_State *L) { return mgl_push(L, mg_outer(mgl_check(L, 1, "outer"), mgl_check(L, 2, "outer"))); }

static int r_linear(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "linear"), *w = mgl_check(L, 2, "linear");
  mg_tensor *b = lua_isnoneornil(L, 3) ? NULL : mgl_check(L, 3, "linear");
  return mgl_push(L, mg_linear(x, w, b));
}

/* mg._bench_sgemm(m, n, k [, reps [, transa [, transb]]]) -> the best time in seconds of
** reps raw row-major sgemm calls C{m,n} = op(A) op(B), on OpenBLAS's own threads (as many as
** the runtime's; moongrad otherwise keeps OpenBLAS on one): a baseline for benchmarks of layers */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int r_bench_sgemm(lua_State *L) {
  const char *op = "_bench_sgemm";
  lua_Integer m = mgl_checkinteger(L, 1, op, NULL), n = mgl_checkinteger(L, 2, op, NULL);
  lua_Integer k = mgl_checkinteger(L, 3, op, NULL), reps = mgl_optinteger(L, 4, op, NULL, 1);
  bool ta = lua_toboolean(L, 5), tb = lua_toboolean(L, 6);
  if (m < 1 || n < 1 || k < 1 || reps < 1 || m > 65536 || n > 65536 || k > 65536)
    return luaL_error(L, "_bench_sgemm: sizes must be in 1..65536 and reps >= 1");
  float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
  float *c = malloc(sizeof(float) * (size_t)(m * n));
  if (!a || !b || !c) { free(a); free(b); free(c); return luaL_error(L, "_bench_sgemm: out of memory"); }
  for (lua_Integer i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 0.01f;
  for (lua_Integer i = 0; i < k * n; i++) b[i] = (float)(i % 5) * 0.01f;
  memset(c, 0, sizeof(float) * (size_t)(m * n));  /* page faults out of the timing */
  double best = 1e300;
  openblas_set_num_threads(mgl_rt(L)->nthreads);
  for (lua_Integer r = 0; r < reps; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                1.0f, a, ta ? (int)m : (int)k, b, tb ? (int)k : (int)n, 0.0f, c, (int)n);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  openblas_set_num_threads(1);
  free(a); free(b); free(c);
  lua_pushnumber(L, best);
  return 1;
}

void mgl_open_reduce(lua_State *L) {
  static const luaL_Reg both[] = {
    {"sum", r_sum}, {"mean", r_mean}, {"prod", r_prod}, {"var", r_var}, {"std", r_std}, {"norm", r_norm},
    {"max", r_max}, {"min", r_min}, {"argmax", r_argmax}, {"argmin", r_argmin}, {"logsumexp", r_logsumexp},
    {"matmul", r_matmul}, {"dot", r_dot}, {"outer", r_outer}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"linear", r_linear}, {"_bench_sgemm", r_bench_sgemm}, {NULL, NULL}};
  mgl_register(L, both, both);
  mgl_register(L, fns, NULL);
}
