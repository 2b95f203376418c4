/*
** k_unary.c — elementwise functions of one tensor. Each op is one line of
** forward (y from x) and one line of backward (dy/dx from the saved x or y),
** written once with <tgmath.h> so float32 loops call the float functions.
*/
#include <tgmath.h>
#include "mg_core.h"
#include "mg_parallel.h"

static const char *unop_name[] = {"neg", "exp", "log", "sqrt", "rsqrt", "abs", "sign", "sin", "cos",
                                  "tanh", "sigmoid", "relu", "leaky_relu", "gelu", "softplus", "clamp", "pow"};

#define INV_SQRT_2PI 0.3989422804014327
#define MAP1(T, EXPR) do { T *y = out; const T *px = in; \
    for (int64_t i = 0; i < n; i++) { T x = px[i]; y[i] = (EXPR); } } while (0)

/* the forward of every op, for element type T; a, b are the op's numbers */
#define FORWARD(T) do { T A = (T)a, B = (T)b; (void)A; (void)B; switch (op) { \
    case MG_NEG:        MAP1(T, -x); break; \
    case MG_EXP:        MAP1(T, exp(x)); break; \
    case MG_LOG:        MAP1(T, log(x)); break; \
    case MG_SQRT:       MAP1(T, sqrt(x)); break; \
    case MG_RSQRT:      MAP1(T, 1 / sqrt(x)); break; \
    case MG_ABS:        MAP1(T, fabs(x)); break; \
    case MG_SIGN:       MAP1(T, (T)((x > 0) - (x < 0))); break; \
    case MG_SIN:        MAP1(T, sin(x)); break; \
    case MG_COS:        MAP1(T, cos(x)); break; \
    case MG_TANH:       MAP1(T, tanh(x)); break; \
    case MG_SIGMOID:    MAP1(T, 1 / (1 + exp(-x))); break; \
    case MG_RELU:       MAP1(T, x > 0 ? x : 0); break; \
    case MG_LEAKY_RELU: MAP1(T, x > 0 ? x : x * A); break; \
    case MG_GELU:       MAP1(T, (T)0.5 * x * (1 + erf(x * (T)M_SQRT1_2))); break; \
    case MG_SOFTPLUS:   MAP1(T, x > 20 ? x : log1p(exp(x))); break; \
    case MG_CLAMP:      MAP1(T, a != a || b != b ? A + B : x < A ? A : x > B ? B : x); break; /* NaN x stays */ \
    case MG_POWS:       MAP1(T, pow(x, A)); break; \
  } } while (0)

/* which value the backward reads: the input x (1), the output y (2) or neither (0) */
static int saves(mg_unop op) {
  switch (op) {
    case MG_NEG: case MG_SIGN: return 0;
    case MG_EXP: case MG_SQRT: case MG_RSQRT: case MG_TANH: case MG_SIGMOID: case MG_RELU: return 2;
    default: return 1;
  }
}

/* gx is a fresh tensor, so restrict holds and the loops vectorise */
#define MAPBW(T, EXPR) do { T *restrict gx = pgx; const T *restrict g = pg, *restrict pv = pvv; \
    for (int64_t i = 0; i < n; i++) { T v = pv[i]; gx[i] = g[i] * (EXPR); } } while (0)
#define MAPBWSEL(T, COND) do { T *restrict gx = pgx; const T *restrict g = pg, *restrict pv = pvv; \
    for (int64_t i = 0; i < n; i++) { T v = pv[i], gi = g[i]; gx[i] = (COND) ? gi : 0; } } while (0)

/* dy/dx in terms of v, the saved x or y */
#define BACKWARD(T) do { T A = (T)a, B = (T)b; (void)A; (void)B; switch (op) { \
    case MG_NEG: case MG_SIGN: break; \
    case MG_EXP:        MAPBW(T, v); break; \
    case MG_LOG:        MAPBW(T, 1 / v); break; \
    case MG_SQRT:       MAPBW(T, (T)0.5 / v); break; \
    case MG_RSQRT:      MAPBW(T, (T)-0.5 * v * v * v); break; \
    case MG_ABS:        MAPBW(T, (T)((v > 0) - (v < 0))); break; \
    case MG_SIN:        MAPBW(T, cos(v)); break; \
    case MG_COS:        MAPBW(T, -sin(v)); break; \
    case MG_TANH:       MAPBW(T, 1 - v * v); break; \
    case MG_SIGMOID:    MAPBW(T, v * (1 - v)); break; \
    case MG_RELU:       MAPBWSEL(T, v > 0); break; /* as PyTorch: 0 where y <= 0, even for inf g */ \
    case MG_LEAKY_RELU: MAPBW(T, v > 0 ? 1 : A); break; \
    case MG_GELU:       MAPBW(T, (T)0.5 * (1 + erf(v * (T)M_SQRT1_2)) + v * exp(-(T)0.5 * v * v) * (T)INV_SQRT_2PI); break; \
    case MG_SOFTPLUS:   MAPBW(T, v > 20 ? 1 : 1 / (1 + exp(-v))); break; \
    case MG_CLAMP:      MAPBWSEL(T, v >= A && v <= B); break; /* 0 for NaN x or bound */ \
    case MG_POWS:       MAPBW(T, a == 0 ? 0 : A * pow(v, A - 1)); break; \
  } } while (0)

static void run_forward(mg_unop op, mg_dtype dt, int64_t n, void *out, const void *in, double a, double b) {
  if (dt == MG_F32) FORWARD(float); else FORWARD(double);
}

static void run_backward(mg_unop op, mg_dtype dt, int64_t n, void *pgx, const void *pg, const void *pvv, double a, double b) {
  if (dt == MG_F32) BACKWARD(float); else BACKWARD(double);
}

/* Large tensors are split over the runtime's threads (each element is computed
** alone, so the split does not change any value). */
typedef struct { mg_unop op; mg_dtype dt; char *out; const char *in, *v; double a, b; } ujob;

static void unary_piece(void *ctx, int64_t lo, int64_t hi, int tid) {
  const ujob *j = ctx;
  size_t es = mg_dtype_size(j->dt), o = es * (size_t)lo;
  (void)tid;
  if (j->v) run_backward(j->op, j->dt, hi - lo, j->out + o, j->in + o, j->v + o, j->a, j->b);
  else run_forward(j->op, j->dt, hi - lo, j->out + o, j->in + o, j->a, j->b);
}

/* out = op(in), or with v the backward gx = g op'(v) (in is g) */
static void unary_run(mg_rt *rt, mg_unop op, mg_dtype dt, int64_t n, void *out, const void *in, const void *v, double a,
                      double b) {
  ujob j = {op, dt, out, in, v, a, b};
  mg_parallel_for(rt, n, MG_PAR_ELEMS, unary_piece, &j);
}

static int unary_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_unop op = (mg_unop)n->i[0];
  if (op == MG_NEG) { gin[0] = mg_unary(MG_NEG, g, 0, 0); return gin[0] ? 0 : -1; }
  if (op == MG_SIGN) { gin[0] = mg_zeros_like(g); return gin[0] ? 0 : -1; }
  mg_tensor *v = mg_saved(n, 0);
  if (!v) return -1;
  mg_tensor *gc = g->dtype == v->dtype ? mg_contiguous(g) : mg_to(g, v->dtype);
  mg_tensor *vc = gc ? mg_contiguous(v) : NULL;
  mg_tensor *gx = vc ? mg_empty_like(vc) : NULL;
  if (gx) unary_run(n->rt, op, v->dtype, v->numel, mg_data(gx), mg_data(gc), mg_data(vc), n->f[0], n->f[1]);
  mg_release(gc);
  mg_release(vc);
  gin[0] = gx;
  return gx ? 0 : -1;
}

mg_tensor *mg_unary(mg_unop op, mg_tensor *x, double a, double b) {
  if (mg_check_alive(x, unop_name[op])) return NULL;
  mg_tensor *xc = mg_contiguous(x);
  if (!xc) return NULL;
  mg_tensor *y = mg_empty_like(xc);
  if (y) unary_run(x->rt, op, x->dtype, x->numel, mg_data(y), mg_data(xc), NULL, a, b);
  mg_release(xc);
  if (!y) return NULL;
  mg_node *n = mg_record(y, unop_name[op], unary_bw, 1, &x);
  if (n) {
    n->i[0] = op;
    n->f[0] = a;
    n->f[1] = b;
    if (saves(op) == 1) mg_save(n, x);
    else if (saves(op) == 2) mg_save(n, y);
  }
  return y;
}

int mg_unary_(mg_unop op, mg_tensor *x, double a, double b) {
  const char *name = unop_name[op];
  if (mg_check_alive(x, name) || mg_check_inplace(name, x, NULL)) return -1;
  if (mg_is_contiguous(x)) {
    unary_run(x->rt, op, x->dtype, x->numel, mg_data(x), mg_data(x), NULL, a, b);
    mg_bump_version(x);
    return 0;
  }
  mg_tensor *y = mg_unary(op, x, a, b);
  if (!y) return -1;
  int r = mg_copy_(x, y);
  mg_release(y);
  return r;
}
