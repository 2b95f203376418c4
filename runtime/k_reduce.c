/*
** k_reduce.c — reductions: sum, mean, prod, var/std, norm, logsumexp, max/min
** with indices, argmax/argmin. Forward and backward side by side.
**
** Every reduction sees its (contiguous) input as a block [outer, n, inner]
** reduced over n. With inner == 1 the loop runs down one row; otherwise whole
** rows of `inner` elements are accumulated, so the innermost loop still walks
** contiguous memory. Accumulators are double: float32 sums of millions of
** elements keep float precision.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")  /* -O2 alone leaves these loops scalar */
#endif


/* ---- plans: which block a reduction walks and the shape it produces ---------- */

typedef struct {
  int dim;                        /* reduced dim, -1: all */
  int64_t outer, n, inner;
  int ondim;                      /* result shape */
  int64_t oshape[MG_MAX_DIMS];
  int kndim;                      /* result shape with keepdim */
  int64_t kshape[MG_MAX_DIMS];
} rplan;

static void plan_of(int ndim, const int64_t *shape, int dim, bool keepdim, rplan *p) {
  if (ndim == 0) dim = -1;        /* a 0-dim tensor has one element, whatever the dim */
  p->dim = dim;
  p->outer = p->n = p->inner = 1;
  p->kndim = ndim;
  p->ondim = 0;
  for (int d = 0; d < ndim; d++) {
    bool red = dim < 0 || d == dim;
    if (red) p->n *= shape[d];
    else if (dim >= 0 && d < dim) p->outer *= shape[d];
    else p->inner *= shape[d];
    p->kshape[d] = red ? 1 : shape[d];
    if (!red || keepdim) p->oshape[p->ondim++] = red ? 1 : shape[d];
  }
}

static int plan(mg_tensor *x, int dim, bool keepdim, const char *op, rplan *p) {
  if (mg_check_alive(x, op)) return -1;
  if (dim >= x->ndim && !(x->ndim == 0 && dim == 0)) {
    char b[128];
    return mg_seterr(x->rt, "%s: dim %d out of range for a tensor of shape %s", op, dim + 1,
                     mg_shape_str(x, b, sizeof b));
  }
  plan_of(x->ndim, x->shape, dim, keepdim, p);
  return 0;
}

/* x as contiguous data (a copy without history when it is a strided view) */

/* ---- forward kernels ------------------------------------------------------------ */

typedef enum {
  K_SUM, K_PROD, K_MAX, K_MIN,
  K_SQDEV,    /* sum of (x - c)^2 */
  K_EXPDEV,   /* sum of exp(x - c) */
  K_EQ        /* count of x == c (NaN matches NaN) */
} rkind;

/* the sum of one contiguous row, or of its squared deviations from m, in eight
** independent double accumulators: the compiler packs them into vector lanes */
#define DEF_ROWSUM(T, S)                                                                           \
static double rowsum_##S(const T *x, int64_t n, bool sq, double m) {                               \
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;                           \
  int64_t i = 0;                                                                                   \
  if (!sq)                                                                                         \
    for (; i + 8 <= n; i += 8) {                                                                   \
      s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3];                                  \
      s4 += x[i + 4]; s5 += x[i + 5]; s6 += x[i + 6]; s7 += x[i + 7];                              \
    }                                                                                              \
  else                                                                                             \
    for (; i + 8 <= n; i += 8) {                                                                   \
      double d0 = x[i] - m, d1 = x[i + 1] - m, d2 = x[i + 2] - m, d3 = x[i + 3] - m;               \
      double d4 = x[i + 4] - m, d5 = x[i + 5] - m, d6 = x[i + 6] - m, d7 = x[i + 7] - m;           \
      s0 += d0 * d0; s1 += d1 * d1; s2 += d2 * d2; s3 += d3 * d3;                                  \
      s4 += d4 * d4; s5 += d5 * d5; s6 += d6 * d6; s7 += d7 * d7;                                  \
    }                                                                                              \
  double r = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));                                    \
  for (; i < n; i++) { double d = x[i] - (sq ? m : 0); r += sq ? d * d : d; }                      \
  return r;                                                                                        \
}
DEF_ROWSUM(float, f32)
DEF_ROWSUM(double, f64)

/* max (or min) of one contiguous row of n >= 1 and the index of its first occurrence:
** lanes of four floats (two doubles) compare and select without branches, a NaN
** anywhere wins; the index is then that of the first element equal to the result */
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
typedef double vd2 __attribute__((vector_size(16)));
typedef int64_t vl2 __attribute__((vector_size(16)));

#define DEF_ROWMAX(T, S, VT, VI, W)                                                                \
static T rowmax_##S(const T *x, int64_t n, bool is_max, int64_t *ix) {                             \
  T best = x[0];                                                                                   \
  bool nan = x[0] != x[0];                                                                         \
  int64_t i = 0;                                                                                   \
  if (n >= 2 * W) {                                                                                \
    VT m, v;                                                                                       \
    VI bad = {0};                                                                                  \
    memcpy(&m, x, sizeof m);                                                                       \
    for (i = W; i + W <= n; i += W) {                                                              \
      memcpy(&v, x + i, sizeof v);                                                                 \
      VI take = is_max ? v > m : v < m;                                                            \
      m = (VT)(((VI)v & take) | ((VI)m & ~take));                                                  \
      bad |= v != v;                                                                               \
    }                                                                                              \
    for (int l = 0; l < W; l++) { nan |= bad[l] != 0 || m[l] != m[l]; if (is_max ? m[l] > best : m[l] < best) best = m[l]; } \
  }                                                                                                \
  for (; i < n; i++) { nan |= x[i] != x[i]; if (is_max ? x[i] > best : x[i] < best) best = x[i]; } \
  if (nan) best = (T)NAN;                                                                          \
  if (ix) {                                                                                        \
    int64_t k = 0;                                                                                 \
    if (nan) while (x[k] == x[k]) k++;                                                             \
    else while (x[k] != best) k++;                                                                 \
    *ix = k;                                                                                       \
  }                                                                                                \
  return best;                                                                                     \
}
DEF_ROWMAX(float, f32, vf4, vi4, 4)
DEF_ROWMAX(double, f64, vd2, vl2, 2)

/* acc[o, j] = reduction over k of x[o, k, j]; c[o, j] is the centre of SQDEV,
** EXPDEV and EQ; MAX and MIN (n >= 1) also write the first arg index into idx
** (NaN wins, as in PyTorch) */
#define DEF_REDUCE(T, S, EXP)                                                                      \
static void reduce_##S(rkind kind, const T *restrict x, const rplan *p, const double *restrict c,  \
                       double *restrict acc, int64_t *restrict idx) {                              \
  int64_t n = p->n, in = p->inner;                                                                 \
  for (int64_t o = 0; o < p->outer; o++, x += n * in, acc += in) {                                 \
    const double *cc = c ? c + o * in : NULL;                                                      \
    int64_t *ix = idx ? idx + o * in : NULL;                                                       \
    if (in == 1) {                                                                                 \
      double r = 0;                                                                                \
      int64_t i = 0;                                                                               \
      switch (kind) {                                                                              \
        case K_SUM: r = rowsum_##S(x, n, false, 0); break;                                         \
        case K_SQDEV: r = rowsum_##S(x, n, true, cc[0]); break;                                    \
        case K_PROD: r = 1; for (; i < n; i++) r *= x[i]; break;                                   \
        case K_EXPDEV: for (; i < n; i++) r += EXP((T)(x[i] - cc[0])); break;                      \
        case K_EQ: {                                                                               \
          double m = cc[0];                                                                        \
          for (; i < n; i++) r += (x[i] == m) | (x[i] != x[i] && m != m);                          \
          break;                                                                                   \
        }                                                                                          \
        case K_MAX: case K_MIN: r = rowmax_##S(x, n, kind == K_MAX, ix); break;                    \
      }                                                                                            \
      acc[0] = r;                                                                                  \
      continue;                                                                                    \
    }                                                                                              \
    /* whole rows: acc[j] op= x[k, j] */                                                           \
    switch (kind) {                                                                                \
      case K_SUM: case K_SQDEV: case K_EXPDEV: case K_EQ:                                          \
        for (int64_t j = 0; j < in; j++) acc[j] = 0;                                               \
        break;                                                                                     \
      case K_PROD: for (int64_t j = 0; j < in; j++) acc[j] = 1; break;                             \
      case K_MAX: case K_MIN:                                                                      \
        for (int64_t j = 0; j < in; j++) { acc[j] = x[j]; if (ix) ix[j] = 0; }                     \
        break;                                                                                     \
    }                                                                                              \
    for (int64_t k = (kind == K_MAX || kind == K_MIN) ? 1 : 0; k < n; k++) {                       \
      const T *r = x + k * in;                                                                     \
      switch (kind) {                                                                              \
        case K_SUM: for (int64_t j = 0; j < in; j++) acc[j] += r[j]; break;                        \
        case K_PROD: for (int64_t j = 0; j < in; j++) acc[j] *= r[j]; break;                       \
        case K_SQDEV:                                                                              \
          for (int64_t j = 0; j < in; j++) { double d = r[j] - cc[j]; acc[j] += d * d; }           \
          break;                                                                                   \
        case K_EXPDEV: for (int64_t j = 0; j < in; j++) acc[j] += EXP((T)(r[j] - cc[j])); break;   \
        case K_EQ:                                                                                 \
          for (int64_t j = 0; j < in; j++) acc[j] += (r[j] == cc[j]) | (r[j] != r[j] && cc[j] != cc[j]); \
          break;                                                                                   \
        case K_MAX: case K_MIN:                                                                    \
          if (ix) for (int64_t j = 0; j < in; j++) {  /* branch-free, so it vectorises */          \
            double v = r[j], b = acc[j];                                                           \
            bool t = (b == b) & ((kind == K_MAX ? v > b : v < b) | (v != v));                      \
            acc[j] = t ? v : b;                                                                    \
            ix[j] = t ? k : ix[j];                                                                 \
          } else for (int64_t j = 0; j < in; j++) {                                                \
            double v = r[j], b = acc[j];                                                           \
            bool t = (b == b) & ((kind == K_MAX ? v > b : v < b) | (v != v));                      \
            acc[j] = t ? v : b;                                                                    \
          }                                                                                        \
          break;                                                                                   \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
}

DEF_REDUCE(float, f32, expf)
DEF_REDUCE(double, f64, exp)

/* does x cover one dense block of memory, its dims in some order (a transpose or permute)? */
static bool dense_permuted(const mg_tensor *x) {
  int64_t need = 1;
  bool used[MG_MAX_DIMS] = {0};
  for (int k = 0; k < x->ndim; k++) {  /* find the dim with stride `need`, innermost first */
    int found = -1;
    for (int d = 0; d < x->ndim && found < 0; d++)
      if (!used[d] && (x->shape[d] == 1 || x->stride[d] == need)) found = d;
    if (found < 0) return false;
    used[found] = true;
    need *= x->shape[found];
  }
  return true;
}

static void dispatch(rkind kind, mg_dtype dt, const void *data, const rplan *p, const double *c, double *acc, int64_t *idx) {
  if (dt == MG_F32) reduce_f32(kind, data, p, c, acc, idx);
  else reduce_f64(kind, data, p, c, acc, idx);
}

/* acc (outer*inner doubles) = reduction of x as planned. Strided inputs are copied
** first, except two layouts read in place: a transposed matrix
** (reduce its contiguous base over the other dim) and, when only values are wanted from a
** whole-tensor reduction, any permutation of a dense block. */
static int run(rkind kind, mg_tensor *x, const rplan *p, const double *c, double *acc, int64_t *idx) {
  if (!mg_is_contiguous(x)) {
    if (x->ndim == 2 && p->dim >= 0 && x->stride[0] == 1 && x->stride[1] == x->shape[0]) {
      rplan q;
      plan_of(2, (int64_t[]){x->shape[1], x->shape[0]}, 1 - p->dim, false, &q);
      dispatch(kind, x->dtype, mg_data(x), &q, c, acc, idx);
      return 0;
    }
    if (p->dim < 0 && !idx && dense_permuted(x)) {
      dispatch(kind, x->dtype, mg_data(x), p, c, acc, NULL);
      return 0;
    }
  }
  mg_tensor *xc = mg_dense(x, x->dtype);
  if (!xc) return -1;
  dispatch(kind, xc->dtype, mg_data(xc), p, c, acc, idx);
  mg_release(xc);
  return 0;
}

static double *scratch(mg_rt *rt, int64_t n, const char *op) {
  double *b = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
  if (!b) mg_seterr(rt, "%s: out of memory for %lld accumulators", op, (long long)n);
  return b;
}

/* a new tensor of the planned shape (keepdim or not) holding acc */
static mg_tensor *result(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, const double *acc) {
  mg_tensor *t = mg_empty(rt, dt, ndim, shape);
  if (!t) return NULL;
  if (dt == MG_F32) { float *o = mg_f32(t); for (int64_t i = 0; i < t->numel; i++) o[i] = (float)acc[i]; }
  else memcpy(mg_f64(t), acc, sizeof(double) * (size_t)t->numel);
  return t;
}

static mg_tensor *result_of(mg_tensor *x, const rplan *p, const double *acc) {
  return result(x->rt, x->dtype, p->ondim, p->oshape, acc);
}

/* ---- backward helpers -------------------------------------------------------------- */

/* the plan of node n's reduction (dim in n->i[0]) */
static void node_plan(mg_node *n, rplan *p) { plan_of(n->in[0].ndim, n->in[0].shape, (int)n->i[0], true, p); }

/* g (result-shaped) broadcast back over the reduced dims to the input's shape (a view) */
static mg_tensor *expand_back(mg_node *n, mg_tensor *g) {
  rplan p;
  node_plan(n, &p);
  mg_tensor *r = mg_reshape(g, p.kndim, p.kshape);
  mg_tensor *e = r ? mg_expand(r, n->in[0].ndim, n->in[0].shape) : NULL;
  mg_release(r);
  return e;
}

/* g as outer*inner doubles (caller frees) */
static double *grad_vals(mg_node *n, mg_tensor *g) {
  double *v = scratch(n->rt, g->numel, n->op);
  if (!v) return NULL;
  mg_tensor *gc = mg_dense(g, g->dtype);
  if (!gc) { free(v); return NULL; }
  for (int64_t i = 0; i < gc->numel; i++) v[i] = gc->dtype == MG_F32 ? mg_f32(gc)[i] : mg_f64(gc)[i];
  mg_release(gc);
  return v;
}

typedef enum { B_LIN, B_EXP, B_EQ } bkind;

/* gx[o, k, j] = a[o, j] * f(x[o, k, j], c[o, j]) with f = x - c, exp(x - c) or [x == c] */
#define DEF_SPREAD(T, S, EXP)                                                                      \
static void spread_##S(bkind kind, T *gx, const T *x, const rplan *p, const double *a, const double *c) { \
  int64_t n = p->n, in = p->inner;                                                                 \
  for (int64_t o = 0; o < p->outer; o++, x += n * in, gx += n * in) {                              \
    const double *ao = a + o * in, *co = c + o * in;                                               \
    for (int64_t k = 0; k < n; k++) {                                                              \
      const T *r = x + k * in;                                                                     \
      T *q = gx + k * in;                                                                          \
      switch (kind) {                                                                              \
        case B_LIN: for (int64_t j = 0; j < in; j++) q[j] = (T)(ao[j] * (r[j] - co[j])); break;    \
        case B_EXP: for (int64_t j = 0; j < in; j++) q[j] = (T)(ao[j] * EXP((T)(r[j] - co[j]))); break; \
        case B_EQ:                                                                                 \
          for (int64_t j = 0; j < in; j++)                                                         \
            q[j] = (r[j] == co[j] || (r[j] != r[j] && co[j] != co[j])) ? (T)ao[j] : 0;             \
          break;                                                                                   \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
}
DEF_SPREAD(float, f32, expf)
DEF_SPREAD(double, f64, exp)

static mg_tensor *spread(bkind kind, mg_tensor *x, const rplan *p, const double *a, const double *c) {
  mg_tensor *xc = mg_dense(x, x->dtype);
  mg_tensor *gx = xc ? mg_empty_like(xc) : NULL;
  if (gx && xc->dtype == MG_F32) spread_f32(kind, mg_f32(gx), mg_f32(xc), p, a, c);
  else if (gx) spread_f64(kind, mg_f64(gx), mg_f64(xc), p, a, c);
  mg_release(xc);
  return gx;
}

/* ---- sum, mean -------------------------------------------------------------------- */

static int sum_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  gin[0] = expand_back(n, g);
  return gin[0] ? 0 : -1;
}

static int mean_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *e = expand_back(n, g), *k = mg_scalar(n->rt, g->dtype, n->f[0]);
  gin[0] = e && k ? mg_binary(MG_MUL, e, k) : NULL;
  mg_release(e);
  mg_release(k);
  return gin[0] ? 0 : -1;
}

static mg_tensor *sum_mean(mg_tensor *x, int dim, bool keepdim, bool mean) {
  const char *op = mean ? "mean" : "sum";
  rplan p;
  if (plan(x, dim, keepdim, op, &p)) return NULL;
  double *acc = scratch(x->rt, p.outer * p.inner, op);
  if (!acc) return NULL;
  mg_tensor *out = NULL;
  if (!run(K_SUM, x, &p, NULL, acc, NULL)) {
    if (mean) for (int64_t i = 0; i < p.outer * p.inner; i++) acc[i] /= (double)p.n;  /* n = 0: NaN */
    out = result_of(x, &p, acc);
  }
  free(acc);
  if (!out) return NULL;
  mg_node *n = mg_record(out, op, mean ? mean_bw : sum_bw, 1, &x);
  if (n) { n->i[0] = p.dim; n->f[0] = 1.0 / (double)p.n; }
  return out;
}

mg_tensor *mg_sum(mg_tensor *x, int dim, bool keepdim) { return sum_mean(x, dim, keepdim, false); }
mg_tensor *mg_mean(mg_tensor *x, int dim, bool keepdim) { return sum_mean(x, dim, keepdim, true); }

/* ---- prod ------------------------------------------------------------------------- */

/* d prod / d x_k = product of the others: prefix products times suffix products,
** exact with any number of zeros (PyTorch's prod_safe_zeros_backward) */
#define DEF_PROD_BW(T, S)                                                                          \
static void prod_bw_##S(T *gx, const T *x, const rplan *p, const double *g) {                      \
  int64_t n = p->n, in = p->inner;                                                                 \
  for (int64_t o = 0; o < p->outer; o++, x += n * in, gx += n * in) {                              \
    for (int64_t j = 0; j < in; j++) {                                                             \
      double run = 1;                                                                              \
      for (int64_t k = 0; k < n; k++) { gx[k * in + j] = (T)run; run *= x[k * in + j]; }           \
      run = g[o * in + j];                                                                         \
      for (int64_t k = n - 1; k >= 0; k--) { gx[k * in + j] = (T)(gx[k * in + j] * run); run *= x[k * in + j]; } \
    }                                                                                              \
  }                                                                                                \
}
DEF_PROD_BW(float, f32)
DEF_PROD_BW(double, f64)

static int prod_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *x = mg_saved(n, 0);
  if (!x) return -1;
  rplan p;
  node_plan(n, &p);
  double *gv = grad_vals(n, g);
  mg_tensor *xc = gv ? mg_dense(x, x->dtype) : NULL;
  mg_tensor *gx = xc ? mg_empty_like(xc) : NULL;
  if (gx && x->dtype == MG_F32) prod_bw_f32(mg_f32(gx), mg_f32(xc), &p, gv);
  else if (gx) prod_bw_f64(mg_f64(gx), mg_f64(xc), &p, gv);
  free(gv);
  mg_release(xc);
  gin[0] = gx;
  return gx ? 0 : -1;
}

mg_tensor *mg_prod(mg_tensor *x, int dim, bool keepdim) {
  rplan p;
  if (plan(x, dim, keepdim, "prod", &p)) return NULL;
  double *acc = scratch(x->rt, p.outer * p.inner, "prod");
  if (!acc) return NULL;
  mg_tensor *out = run(K_PROD, x, &p, NULL, acc, NULL) ? NULL : result_of(x, &p, acc);
  free(acc);
  if (!out) return NULL;
  mg_node *n = mg_record(out, "prod", prod_bw, 1, &x);
  if (n) { n->i[0] = p.dim; mg_save(n, x); }
  return out;
}

/* ---- var, std ------------------------------------------------------------------- */

/* mean (into m) and the sum of squared deviations (into acc) */
static int moments(mg_tensor *x, const rplan *p, double *m, double *acc) {
  if (run(K_SUM, x, p, NULL, m, NULL)) return -1;
  for (int64_t i = 0; i < p->outer * p->inner; i++) m[i] /= (double)p->n;
  return run(K_SQDEV, x, p, m, acc, NULL);
}

static double dof(const rplan *p, bool unbiased) {
  double d = (double)p->n - (unbiased ? 1 : 0);
  return d > 0 ? d : 0;  /* 0: the result is NaN (or Inf), as PyTorch's */
}

/* var: gx = g * 2 (x - mean) / dof. std: gx = g * (x - mean) / (dof * std), 0 where std == 0 */
static int var_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  bool is_std = n->i[1];
  mg_tensor *x = mg_saved(n, 0), *y = is_std ? mg_saved(n, 1) : NULL;
  if (!x || (is_std && !y)) return -1;
  rplan p;
  node_plan(n, &p);
  int64_t m_ = p.outer * p.inner;
  double *a = grad_vals(n, g), *m = scratch(n->rt, m_, n->op), *acc = scratch(n->rt, m_, n->op);
  double *sv = is_std && a ? grad_vals(n, y) : NULL;
  int r = -1;
  if (a && m && acc && (!is_std || sv) && !moments(x, &p, m, acc)) {
    double d = n->f[0];
    for (int64_t i = 0; i < m_; i++) a[i] = is_std ? (sv[i] == 0 ? 0 : a[i] / (d * sv[i])) : a[i] * 2 / d;
    gin[0] = spread(B_LIN, x, &p, a, m);
    r = gin[0] ? 0 : -1;
  }
  free(a); free(m); free(acc); free(sv);
  return r;
}

static mg_tensor *var_std(mg_tensor *x, int dim, bool keepdim, bool unbiased, bool is_std) {
  const char *op = is_std ? "std" : "var";
  rplan p;
  if (plan(x, dim, keepdim, op, &p)) return NULL;
  int64_t m_ = p.outer * p.inner;
  double *m = scratch(x->rt, m_, op), *acc = m ? scratch(x->rt, m_, op) : NULL;
  mg_tensor *out = NULL;
  if (acc && !moments(x, &p, m, acc)) {
    double d = dof(&p, unbiased);
    for (int64_t i = 0; i < m_; i++) acc[i] = is_std ? sqrt(acc[i] / d) : acc[i] / d;
    out = result_of(x, &p, acc);
  }
  free(m);
  free(acc);
  if (!out) return NULL;
  mg_node *n = mg_record(out, op, var_bw, 1, &x);
  if (n) {
    n->i[0] = p.dim;
    n->i[1] = is_std;
    n->f[0] = dof(&p, unbiased);
    mg_save(n, x);
    if (is_std) mg_save(n, out);
  }
  return out;
}

mg_tensor *mg_var(mg_tensor *x, int dim, bool keepdim, bool unbiased) { return var_std(x, dim, keepdim, unbiased, false); }
mg_tensor *mg_std(mg_tensor *x, int dim, bool keepdim, bool unbiased) { return var_std(x, dim, keepdim, unbiased, true); }

/* ---- norm --------------------------------------------------------------------------------- */

/* the p-norm of n elements at stride s */
#define DEF_NORM(T, S)                                                                             \
static double norm_##S(const T *x, int64_t n, int64_t s, double p) {                               \
  double r = 0;                                                                                    \
  if (p == 2 && s == 1) return sqrt(rowsum_##S(x, n, true, 0));                                    \
  if (p == 2) { for (int64_t i = 0; i < n; i++) r += (double)x[i * s] * x[i * s]; return sqrt(r); } \
  if (p == 1) { for (int64_t i = 0; i < n; i++) r += fabs((double)x[i * s]); return r; }           \
  if (p == 0) { for (int64_t i = 0; i < n; i++) r += x[i * s] != 0; return r; }                    \
  if (isinf(p)) {                                                                                  \
    r = n ? fabs((double)x[0]) : (p > 0 ? 0 : INFINITY);                                           \
    for (int64_t i = 1; i < n && r == r; i++) {                                                    \
      double v = fabs((double)x[i * s]);                                                           \
      if ((p > 0 ? v > r : v < r) || v != v) r = v;                                                \
    }                                                                                              \
    return r;                                                                                      \
  }                                                                                                \
  for (int64_t i = 0; i < n; i++) r += pow(fabs((double)x[i * s]), p);                             \
  return pow(r, 1 / p);                                                                            \
}                                                                                                  \
/* PyTorch's norm_backward: sign(x)|x|^(p-1) / norm^(p-1), 0 where norm == 0 (p >= 1);           \
** p < 1 masks x == 0 instead; +-inf shares the gradient among the ties |x| == norm */            \
static void norm_bw_##S(T *gx, const T *x, int64_t n, int64_t s, double p, double nrm, double g) { \
  if (p == 0) { for (int64_t i = 0; i < n; i++) gx[i * s] = 0; return; }                          \
  if (isinf(p)) {                                                                                  \
    double cnt = 0;                                                                                \
    for (int64_t i = 0; i < n; i++) { double v = fabs((double)x[i * s]); cnt += v == nrm || v != v; } \
    for (int64_t i = 0; i < n; i++) {                                                              \
      double v = fabs((double)x[i * s]), sg = (x[i * s] > 0) - (x[i * s] < 0);                     \
      gx[i * s] = (T)((v == nrm || v != v) ? sg * g / cnt : 0);                                    \
    }                                                                                              \
    return;                                                                                        \
  }                                                                                                \
  for (int64_t i = 0; i < n; i++) {                                                                \
    double v = x[i * s], sg = (v > 0) - (v < 0), d;                                                \
    if (p == 1) d = sg;                                                                            \
    else if (p == 2) d = nrm == 0 ? 0 : v / nrm;                                                   \
    else if (p < 1) d = v == 0 ? 0 : sg * pow(fabs(v), p - 1) * pow(nrm, 1 - p);                   \
    else if (p < 2) d = nrm == 0 ? 0 : sg * pow(fabs(v), p - 1) / pow(nrm, p - 1);                 \
    else d = nrm == 0 ? 0 : v * pow(fabs(v), p - 2) / pow(nrm, p - 1);                             \
    gx[i * s] = (T)(g * d);                                                                        \
  }                                                                                                \
}
DEF_NORM(float, f32)
DEF_NORM(double, f64)

static int norm_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *x = mg_saved(n, 0), *y = x ? mg_saved(n, 1) : NULL;
  if (!y) return -1;
  rplan p;
  node_plan(n, &p);
  double *gv = grad_vals(n, g), *nv = gv ? grad_vals(n, y) : NULL;
  mg_tensor *xc = nv ? mg_dense(x, x->dtype) : NULL, *gx = xc ? mg_empty_like(xc) : NULL;
  for (int64_t o = 0; gx && o < p.outer; o++)
    for (int64_t j = 0; j < p.inner; j++) {
      int64_t r = o * p.inner + j, at = o * p.n * p.inner + j;
      if (x->dtype == MG_F32) norm_bw_f32(mg_f32(gx) + at, mg_f32(xc) + at, p.n, p.inner, n->f[0], nv[r], gv[r]);
      else norm_bw_f64(mg_f64(gx) + at, mg_f64(xc) + at, p.n, p.inner, n->f[0], nv[r], gv[r]);
    }
  free(gv);
  free(nv);
  mg_release(xc);
  gin[0] = gx;
  return gx ? 0 : -1;
}

mg_tensor *mg_norm_dim(mg_tensor *x, double p, int dim, bool keepdim) {
  rplan pl;
  if (plan(x, dim, keepdim, "norm", &pl)) return NULL;
  if (isnan(p)) { mg_seterr(x->rt, "norm: p must be a number, got nan"); return NULL; }
  double *acc = scratch(x->rt, pl.outer * pl.inner, "norm");
  mg_tensor *xc = acc ? mg_dense(x, x->dtype) : NULL, *out = NULL;
  if (xc) {
    for (int64_t o = 0; o < pl.outer; o++)
      for (int64_t j = 0; j < pl.inner; j++) {
        int64_t at = o * pl.n * pl.inner + j;
        acc[o * pl.inner + j] = xc->dtype == MG_F32 ? norm_f32(mg_f32(xc) + at, pl.n, pl.inner, p)
                                                    : norm_f64(mg_f64(xc) + at, pl.n, pl.inner, p);
      }
    out = result_of(x, &pl, acc);
  }
  free(acc);
  mg_release(xc);
  if (!out) return NULL;
  mg_node *n = mg_record(out, "norm", norm_bw, 1, &x);
  if (n) { n->i[0] = pl.dim; n->f[0] = p; mg_save(n, x); mg_save(n, out); }
  return out;
}

mg_tensor *mg_norm(mg_tensor *x, double p) { return mg_norm_dim(x, p, -1, false); }

/* ---- logsumexp ------------------------------------------------------------------------ */

/* gx = g * exp(x - out) */
static int lse_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *x = mg_saved(n, 0), *y = x ? mg_saved(n, 1) : NULL;
  if (!y) return -1;
  rplan p;
  node_plan(n, &p);
  double *a = grad_vals(n, g), *c = a ? grad_vals(n, y) : NULL;
  gin[0] = c ? spread(B_EXP, x, &p, a, c) : NULL;
  free(a);
  free(c);
  return gin[0] ? 0 : -1;
}

/* m + log(sum exp(x - m)), m the max (0 where it is infinite, so all -inf gives -inf) */
mg_tensor *mg_logsumexp(mg_tensor *x, int dim, bool keepdim) {
  rplan p;
  if (plan(x, dim, keepdim, "logsumexp", &p)) return NULL;
  int64_t m_ = p.outer * p.inner;
  double *m = scratch(x->rt, m_, "logsumexp"), *acc = m ? scratch(x->rt, m_, "logsumexp") : NULL;
  mg_tensor *out = NULL;
  if (acc) {
    int r = 0;
    for (int64_t i = 0; i < m_; i++) m[i] = 0;
    if (p.n > 0) r = run(K_MAX, x, &p, NULL, m, NULL);
    for (int64_t i = 0; i < m_; i++) if (isinf(m[i])) m[i] = 0;
    if (!r && !run(K_EXPDEV, x, &p, m, acc, NULL)) {
      for (int64_t i = 0; i < m_; i++) acc[i] = m[i] + log(acc[i]);
      out = result_of(x, &p, acc);
    }
  }
  free(m);
  free(acc);
  if (!out) return NULL;
  mg_node *n = mg_record(out, "logsumexp", lse_bw, 1, &x);
  if (n) { n->i[0] = p.dim; mg_save(n, x); mg_save(n, out); }
  return out;
}

/* ---- max, min, argmax, argmin -------------------------------------------------------------- */

static int check_nonempty(mg_tensor *x, const rplan *p, const char *op) {
  if (p->n > 0) return 0;
  char b[128];
  if (p->dim < 0)
    return mg_seterr(x->rt, "%s: cannot reduce an empty tensor of shape %s (no elements)", op, mg_shape_str(x, b, sizeof b));
  return mg_seterr(x->rt, "%s: cannot reduce dim %d of size 0 (shape %s)", op, p->dim + 1, mg_shape_str(x, b, sizeof b));
}

/* max(dim): the gradient goes to the selected index */
#define DEF_SCATTER(T, S)                                                                          \
static void scatter_##S(T *gx, const rplan *p, const double *g, const T *idx) {                    \
  int64_t n = p->n, in = p->inner;                                                                 \
  memset(gx, 0, sizeof(T) * (size_t)(p->outer * n * in));                                          \
  for (int64_t o = 0; o < p->outer; o++)                                                           \
    for (int64_t j = 0; j < in; j++) {                                                             \
      int64_t k = (int64_t)idx[o * in + j];                                                        \
      gx[(o * n + k) * in + j] = (T)g[o * in + j];                                                 \
    }                                                                                              \
}
DEF_SCATTER(float, f32)
DEF_SCATTER(double, f64)

static int maxmin_dim_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *ix = mg_saved(n, 0);
  if (!ix) return -1;
  rplan p;
  node_plan(n, &p);
  double *gv = grad_vals(n, g);
  mg_tensor *ic = gv ? mg_dense(ix, ix->dtype) : NULL;
  mg_tensor *gx = ic ? mg_empty(n->rt, n->in[0].dtype, n->in[0].ndim, n->in[0].shape) : NULL;
  if (gx && gx->dtype == MG_F32) scatter_f32(mg_f32(gx), &p, gv, mg_f32(ic));
  else if (gx) scatter_f64(mg_f64(gx), &p, gv, mg_f64(ic));
  free(gv);
  mg_release(ic);
  gin[0] = gx;
  return gx ? 0 : -1;
}

/* max(): the gradient is shared evenly by every element equal to the result (amax) */
static int maxmin_all_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *x = mg_saved(n, 0), *y = x ? mg_saved(n, 1) : NULL;
  if (!y) return -1;
  rplan p;
  node_plan(n, &p);
  double *a = grad_vals(n, g), *c = a ? grad_vals(n, y) : NULL, cnt = 0;
  if (c && !run(K_EQ, x, &p, c, &cnt, NULL)) {
    a[0] /= cnt;
    gin[0] = spread(B_EQ, x, &p, a, c);
  }
  free(a);
  free(c);
  return gin[0] ? 0 : -1;
}

/* values and/or 0-based indices (as x's dtype) */
static int maxmin(mg_tensor *x, int dim, bool keepdim, bool is_max, const char *op, mg_tensor **val, mg_tensor **idx) {
  rplan p;
  if (plan(x, dim, keepdim, op, &p) || check_nonempty(x, &p, op)) return -1;
  int64_t m_ = p.outer * p.inner;
  double *acc = scratch(x->rt, m_, op);
  int64_t *ix = acc && idx ? malloc(sizeof(int64_t) * (size_t)(m_ ? m_ : 1)) : NULL;
  int r = -1;
  if (acc && (!idx || ix) && !run(is_max ? K_MAX : K_MIN, x, &p, NULL, acc, ix)) {
    r = 0;
    if (val && !(*val = result_of(x, &p, acc))) r = -1;
    if (!r && idx) {
      for (int64_t i = 0; i < m_; i++) acc[i] = (double)ix[i];  /* whole tensor: the flat index */
      if (!(*idx = result_of(x, &p, acc))) { r = -1; if (val) { mg_release(*val); *val = NULL; } }
    }
  } else if (acc && idx && !ix) mg_seterr(x->rt, "%s: out of memory", op);
  free(acc);
  free(ix);
  return r;
}

int mg_maxmin(mg_tensor *x, int dim, bool keepdim, bool is_max, mg_tensor **val, mg_tensor **idx) {
  const char *op = is_max ? "max" : "min";
  mg_tensor *v = NULL, *i = NULL;
  bool whole = dim < 0 || x->ndim == 0;
  if (maxmin(x, dim, keepdim, is_max, op, &v, whole ? (idx ? &i : NULL) : &i)) return -1;
  mg_node *n = whole ? mg_record(v, op, maxmin_all_bw, 1, &x) : mg_record(v, op, maxmin_dim_bw, 1, &x);
  if (n) {
    n->i[0] = whole ? -1 : dim;
    if (whole) { mg_save(n, x); mg_save(n, v); }
    else {  /* a private copy: the caller owns i and may write into it */
      mg_tensor *c = mg_copy_as(i, i->dtype);
      if (!c) { mg_release(v); mg_release(i); return -1; }
      mg_save(n, c);
      mg_release(c);
    }
  }
  *val = v;
  if (idx) *idx = i;
  else mg_release(i);
  return 0;
}

mg_tensor *mg_argmaxmin(mg_tensor *x, int dim, bool keepdim, bool is_max) {
  mg_tensor *i = NULL;
  if (maxmin(x, dim, keepdim, is_max, is_max ? "argmax" : "argmin", NULL, &i)) return NULL;
  return i;
}
