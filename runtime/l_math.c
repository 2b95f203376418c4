/*
** l_math.c — elementwise math, comparisons and in-place arithmetic as tensor
** methods and as mg.* functions.
*/
#include <math.h>
#include "l_core.h"

static int binop(lua_State *L, mg_binop op, const char *name) {
  mg_tensor *x, *y, *tmp;
  mgl_operands(L, name, &x, &y, &tmp);
  mg_tensor *r = mg_binary(op, x, y);
  mg_release(tmp);
  return mgl_push(L, r);
}

static int m_add(lua_State *L) {
  if (!lua_isnoneornil(L, 3)) {  /* a:add(b, alpha) = a + alpha * b */
    mg_tensor *a = mgl_check(L, 1, "add"), *tb;
    double alpha = mgl_checknumber(L, 3, "add", "a number (alpha)");  /* before tb exists: may raise */
    mg_tensor *b = mgl_operand(L, 2, "add", a->dtype, &tb);
    mg_tensor *k = mg_scalar(a->rt, b->dtype, alpha);
    mg_tensor *s = k ? mg_binary(MG_MUL, b, k) : NULL;
    mg_tensor *r = s ? mg_binary(MG_ADD, a, s) : NULL;
    mg_release(tb); mg_release(k); mg_release(s);
    return mgl_push(L, r);
  }
  return binop(L, MG_ADD, "add");
}
static int m_sub(lua_State *L) { return binop(L, MG_SUB, "sub"); }
static int m_mul(lua_State *L) { return binop(L, MG_MUL, "mul"); }
static int m_div(lua_State *L) { return binop(L, MG_DIV, "div"); }
static int m_maximum(lua_State *L) { return binop(L, MG_MAXIMUM, "maximum"); }
static int m_minimum(lua_State *L) { return binop(L, MG_MINIMUM, "minimum"); }
static int m_pow(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER && mgl_test(L, 1))
    return mgl_push(L, mg_unary(MG_POWS, mgl_check(L, 1, "pow"), lua_tonumber(L, 2), 0));
  return binop(L, MG_POW, "pow");
}

static int cmp(lua_State *L, mg_cmpop op, const char *name) {
  mg_tensor *a = mgl_check(L, 1, name), *tb;
  mg_tensor *b = mgl_operand(L, 2, name, a->dtype, &tb);
  mg_tensor *r = mg_compare(op, a, b);
  mg_release(tb);
  return mgl_push(L, r);
}
static int m_eq(lua_State *L) { return cmp(L, MG_EQ, "eq"); }
static int m_ne(lua_State *L) { return cmp(L, MG_NE, "ne"); }
static int m_lt(lua_State *L) { return cmp(L, MG_LT, "lt"); }
static int m_le(lua_State *L) { return cmp(L, MG_LE, "le"); }
static int m_gt(lua_State *L) { return cmp(L, MG_GT, "gt"); }
static int m_ge(lua_State *L) { return cmp(L, MG_GE, "ge"); }

#define UNARY(fn, OP, name) \
  static int fn(lua_State *L) { return mgl_push(L, mg_unary(OP, mgl_check(L, 1, name), 0, 0)); }
UNARY(m_neg, MG_NEG, "neg")
UNARY(m_exp, MG_EXP, "exp")
UNARY(m_log, MG_LOG, "log")
UNARY(m_sqrt, MG_SQRT, "sqrt")
UNARY(m_rsqrt, MG_RSQRT, "rsqrt")
UNARY(m_abs, MG_ABS, "abs")
UNARY(m_sign, MG_SIGN, "sign")
UNARY(m_sin, MG_SIN, "sin")
UNARY(m_cos, MG_COS, "cos")
UNARY(m_tanh, MG_TANH, "tanh")
UNARY(m_sigmoid, MG_SIGMOID, "sigmoid")
UNARY(m_relu, MG_RELU, "relu")
UNARY(m_gelu, MG_GELU, "gelu")
UNARY(m_softplus, MG_SOFTPLUS, "softplus")

static int m_leaky_relu(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "leaky_relu");
  double s = mgl_optnumber(L, 2, "leaky_relu", "a number (slope)", 0.01);
  return mgl_push(L, mg_unary(MG_LEAKY_RELU, x, s, 0));
}

/* a missing bound is -inf / inf; a NaN bound is kept (the result is NaN, as PyTorch) */
static void clamp_bounds(lua_State *L, const char *op, double *lo, double *hi) {
  if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3)) luaL_error(L, "%s: at least one of lo and hi must be given", op);
  *lo = mgl_optnumber(L, 2, op, "a number or nil (lo)", -INFINITY);
  *hi = mgl_optnumber(L, 3, op, "a number or nil (hi)", INFINITY);
  if (*lo > *hi) mgl_errorf(L, "%s: lo (%g) is greater than hi (%g)", op, *lo, *hi);
}

static int m_clamp(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "clamp");
  double lo, hi;
  clamp_bounds(L, "clamp", &lo, &hi);
  return mgl_push(L, mg_unary(MG_CLAMP, x, lo, hi));
}

static int m_clamp_(lua_State *L) {
  mg_tensor *x = mgl_check(L, 1, "clamp_");
  double lo, hi;
  clamp_bounds(L, "clamp_", &lo, &hi);
  if (mg_unary_(MG_CLAMP, x, lo, hi)) return mgl_error(L);
  lua_settop(L, 1);
  return 1;
}

static int l_where(lua_State *L) {
  mg_tensor *c = mgl_check(L, 1, "where");
  mg_tensor *a0 = mgl_test(L, 2), *b0 = mgl_test(L, 3);
  mg_dtype dt = a0 ? a0->dtype : b0 ? b0->dtype : MG_F32;
  mg_tensor *ta, *tb;
  if (lua_type(L, 3) != LUA_TNUMBER && !mgl_test(L, 3))  /* raise before ta exists */
    mgl_argerror(L, 3, "where", "a tensor or a number");
  mg_tensor *a = mgl_operand(L, 2, "where", dt, &ta), *b = mgl_operand(L, 3, "where", dt, &tb);
  mg_tensor *r = mg_where(c, a, b);
  mg_release(ta);
  mg_release(tb);
  return mgl_push(L, r);
}

static int inplace(lua_State *L, mg_binop op, const char *name) {
  mg_tensor *t = mgl_check(L, 1, name), *tmp;
  double alpha = mgl_optnumber(L, 3, name, "a number (alpha)", 1.0);  /* before tmp exists: may raise */
  mg_tensor *o = mgl_operand(L, 2, name, t->dtype, &tmp);
  int r = mg_binary_(op, t, o, alpha);
  mg_release(tmp);
  if (r) return mgl_error(L);
  lua_settop(L, 1);
  return 1;
}
static int m_add_(lua_State *L) { return inplace(L, MG_ADD, "add_"); }
static int m_sub_(lua_State *L) { return inplace(L, MG_SUB, "sub_"); }
static int m_mul_(lua_State *L) { return inplace(L, MG_MUL, "mul_"); }
static int m_div_(lua_State *L) { return inplace(L, MG_DIV, "div_"); }

void mgl_open_math(lua_State *L) {
  static const luaL_Reg both[] = {
    {"add", m_add}, {"sub", m_sub}, {"mul", m_mul}, {"div", m_div}, {"pow", m_pow}, {"maximum", m_maximum},
    {"minimum", m_minimum}, {"eq", m_eq}, {"ne", m_ne}, {"lt", m_lt}, {"le", m_le}, {"gt", m_gt}, {"ge", m_ge},
    {"neg", m_neg}, {"exp", m_exp}, {"log", m_log}, {"sqrt", m_sqrt}, {"rsqrt", m_rsqrt}, {"abs", m_abs},
    {"sign", m_sign}, {"sin", m_sin}, {"cos", m_cos}, {"tanh", m_tanh}, {"sigmoid", m_sigmoid}, {"relu", m_relu},
    {"leaky_relu", m_leaky_relu}, {"gelu", m_gelu}, {"softplus", m_softplus}, {"clamp", m_clamp}, {NULL, NULL}};
  static const luaL_Reg methods[] = {
    {"add_", m_add_}, {"sub_", m_sub_}, {"mul_", m_mul_}, {"div_", m_div_}, {"clamp_", m_clamp_}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"where", l_where}, {NULL, NULL}};
  mgl_register(L, both, both);
  mgl_register(L, fns, methods);
}
