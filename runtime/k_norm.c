/*
** k_norm.c — softmax, log_softmax, dropout, batch_norm and layer_norm, each
** forward beside its backward. Loops are written once per element type with a
** macro (float32, float64); statistics accumulate in double.
*/
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#include "mg_core.h"

/* sizes before, along and after dim */
static void split3(const int64_t *shape, int ndim, int dim, int64_t *outer, int64_t *n, int64_t *inner) {
  *outer = *inner = 1;
  *n = ndim ? shape[dim] : 1;
  for (int d = 0; d < dim; d++) *outer *= shape[d];
  for (int d = dim + 1; d < ndim; d++) *inner *= shape[d];
}

/* ---- softmax / log_softmax ------------------------------------------------------ */

#define SOFTMAX(T)                                                                                    \
  static void softmax_##T(const T *x, T *y, int64_t outer, int64_t n, int64_t inner, bool lg) {        \
    for (int64_t o = 0; o < outer; o++)                                                               \
      for (int64_t j = 0; j < inner; j++) {                                                           \
        const T *xp = x + o * n * inner + j;                                                          \
        T *yp = y + o * n * inner + j;                                                                \
        T m = -INFINITY;                                                                              \
        for (int64_t k = 0; k < n; k++) if (xp[k * inner] > m || isnan(xp[k * inner])) m = xp[k * inner]; \
        if (isinf(m)) m = 0; /* all -inf (or +inf present): let exp produce PyTorch's NaN/0 */        \
        double s = 0;                                                                                 \
        for (int64_t k = 0; k < n; k++) { T e = exp(xp[k * inner] - m); if (!lg) yp[k * inner] = e; s += e; } \
        if (lg) { T ls = m + (T)log(s); for (int64_t k = 0; k < n; k++) yp[k * inner] = xp[k * inner] - ls; } \
        else { T inv = (T)(1 / s); for (int64_t k = 0; k < n; k++) yp[k * inner] *= inv; }           \
      }                                                                                               \
  }                                                                                                   \
  /* softmax: gx = y (g - sum g y); log_softmax: gx = g - exp(y) sum g */                             \
  static void softmax_bw_##T(const T *y, const T *g, T *gx, int64_t outer, int64_t n, int64_t inner, bool lg) { \
    for (int64_t o = 0; o < outer; o++)                                                               \
      for (int64_t j = 0; j < inner; j++) {                                                           \
        int64_t b = o * n * inner + j;                                                                \
        double s = 0;                                                                                 \
        for (int64_t k = 0; k < n; k++) s += lg ? g[b + k * inner] : g[b + k * inner] * y[b + k * inner]; \
        T S = (T)s;                                                                                   \
        if (lg) for (int64_t k = 0; k < n; k++) gx[b + k * inner] = g[b + k * inner] - exp(y[b + k * inner]) * S; \
        else for (int64_t k = 0; k < n; k++) gx[b + k * inner] = y[b + k * inner] * (g[b + k * inner] - S); \
      }                                                                                               \
  }
SOFTMAX(float)
SOFTMAX(double)

static int softmax_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  mg_tensor *y0 = mg_saved(n, 0);
  if (!y0) return -1;
  mg_tensor *y = mg_dense(y0, y0->dtype), *g = y ? mg_dense(gout, y0->dtype) : NULL;
  mg_tensor *gx = g ? mg_empty_like(y) : NULL;
  if (gx) {
    int64_t outer, len, inner;
    split3(y->shape, y->ndim, (int)n->i[0], &outer, &len, &inner);
    if (y->dtype == MG_F32) softmax_bw_float(mg_f32(y), mg_f32(g), mg_f32(gx), outer, len, inner, n->i[1]);
    else softmax_bw_double(mg_f64(y), mg_f64(g), mg_f64(gx), outer, len, inner, n->i[1]);
  }
  mg_release(y);
  mg_release(g);
  return mg_grad_out(n, 0, gx, gin);
}

static mg_tensor *softmax_op(mg_tensor *x, int dim, bool lg) {
  const char *op = lg ? "log_softmax" : "softmax";
  if (mg_check_alive(x, op)) return NULL;
  if (dim < 0 || dim >= (x->ndim ? x->ndim : 1)) {
    char b[128];
    mg_seterr(x->rt, "%s: dim %d out of range for a tensor of shape %s", op, dim + 1, mg_shape_str(x, b, sizeof b));
    return NULL;
  }
  mg_tensor *xc = mg_dense(x, x->dtype), *y = xc ? mg_empty_like(xc) : NULL;
  if (y) {
    int64_t outer, len, inner;
    split3(x->shape, x->ndim, dim, &outer, &len, &inner);
    if (x->dtype == MG_F32) softmax_float(mg_f32(xc), mg_f32(y), outer, len, inner, lg);
    else softmax_double(mg_f64(xc), mg_f64(y), outer, len, inner, lg);
  }
  mg_release(xc);
  if (!y) return NULL;
  mg_node *n = mg_record(y, op, softmax_bw, 1, &x);
  if (n) { n->i[0] = dim; n->i[1] = lg; mg_save(n, y); }
  return y;
}

mg_tensor *mg_softmax(mg_tensor *x, int dim) { return softmax_op(x, dim, false); }
mg_tensor *mg_log_softmax(mg_tensor *x, int dim) { return softmax_op(x, dim, true); }

/* ---- dropout: y = x * m, m = keep / (1 - p) --------------------------------------- */

static int dropout_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *m = mg_saved(n, 0);
  if (!m) return -1;
  return mg_grad_out(n, 0, mg_binary(MG_MUL, g, m), gin);
}

mg_tensor *mg_dropout(mg_tensor *x, double p, bool training) {
  if (mg_check_alive(x, "dropout")) return NULL;
  if (!(p >= 0 && p <= 1)) { mg_seterr(x->rt, "dropout: p must be a probability in [0, 1], got %g", p); return NULL; }
  if (!training) return mg_retain(x);
  mg_tensor *m = mg_empty(x->rt, x->dtype, x->ndim, x->shape);
  if (!m) return NULL;
  double scale = p < 1 ? 1 / (1 - p) : 0;
  for (int64_t i = 0; i < m->numel; i++) {
    double v = mg_rand_uniform(x->rt) >= p ? scale : 0;
    if (m->dtype == MG_F32) mg_f32(m)[i] = (float)v; else mg_f64(m)[i] = v;
  }
  bool prev = x->rt->grad_enabled;
  x->rt->grad_enabled = false;
  mg_tensor *y = mg_binary(MG_MUL, x, m);
  x->rt->grad_enabled = prev;
  if (y) {
    mg_node *n = mg_record(y, "dropout", dropout_bw, 1, &x);
    if (n) mg_save(n, m);
  }
  mg_release(m);
  return y;
}

/* ---- normalisation shared by batch_norm and layer_norm --------------------------------
** x is seen as (A, C, S): statistics per c over a and s (batch_norm: A = N, S = spatial;
** layer_norm: A = 1, C = rows, S = D with the affine index s). */

typedef struct { double *mean, *invstd; } normctx;

/* mean and biased variance of group c */
#define STATS(T)                                                                                    \
  static void stats_##T(const T *x, int64_t A, int64_t C, int64_t S, int64_t c, double *mean, double *var) { \
    double s = 0, q = 0;                                                                            \
    for (int64_t a = 0; a < A; a++) { const T *p = x + (a * C + c) * S; for (int64_t k = 0; k < S; k++) s += p[k]; } \
    double m = s / (double)(A * S);                                                                 \
    for (int64_t a = 0; a < A; a++) {                                                               \
      const T *p = x + (a * C + c) * S;                                                             \
      for (int64_t k = 0; k < S; k++) { double d = p[k] - m; q += d * d; }                          \
    }                                                                                               \
    *mean = m; *var = q / (double)(A * S);                                                          \
  }                                                                                                 \
  /* y = (x - mean) * invstd * w + b; w, b indexed per channel (wc) or per position s */            \
  static void normalize_##T(const T *x, T *y, int64_t A, int64_t C, int64_t S, int64_t c, double mean, \
                            double invstd, const T *w, const T *b, bool wc) {                       \
    T M = (T)mean, IS = (T)invstd;                                                                   \
    for (int64_t a = 0; a < A; a++) {                                                               \
      const T *p = x + (a * C + c) * S;                                                             \
      T *q = y + (a * C + c) * S;                                                                   \
      if (wc) { T ww = w ? w[c] : 1, bb = b ? b[c] : 0; for (int64_t k = 0; k < S; k++) q[k] = (p[k] - M) * IS * ww + bb; } \
      else for (int64_t k = 0; k < S; k++) q[k] = (p[k] - M) * IS * (w ? w[k] : 1) + (b ? b[k] : 0); \
    }                                                                                               \
  }                                                                                                 \
  /* backward of group c: gx (when asked) and accumulation into gw, gb (per channel or position).  \
  ** batch: through the statistics (training) or not (fixed statistics) */                         \
  static void norm_bw_##T(const T *x, const T *g, T *gx, T *gw, T *gb, int64_t A, int64_t C, int64_t S, int64_t c, \
                          double mean, double invstd, const T *w, bool wc, bool batch) {             \
    double sg = 0, sgx = 0, cnt = (double)(A * S);                                                  \
    for (int64_t a = 0; a < A; a++) {                                                               \
      const T *xp = x + (a * C + c) * S, *gp = g + (a * C + c) * S;                                 \
      for (int64_t k = 0; k < S; k++) {                                                             \
        double xh = (xp[k] - mean) * invstd, gh = gp[k] * (w && !wc ? (double)w[k] : 1);            \
        sg += gh; sgx += gh * xh;                                                                   \
        if (gw && !wc) gw[k] += (T)(gp[k] * xh);                                                    \
        if (gb && !wc) gb[k] += gp[k];                                                              \
      }                                                                                             \
    }                                                                                               \
    double wv = w && wc ? (double)w[c] : 1;                                                         \
    if (wc) { if (gw) gw[c] = (T)sgx; if (gb) gb[c] = (T)sg; }                                      \
    if (!gx) return;                                                                                \
    for (int64_t a = 0; a < A; a++) {                                                               \
      const T *xp = x + (a * C + c) * S, *gp = g + (a * C + c) * S;                                 \
      T *o = gx + (a * C + c) * S;                                                                  \
      for (int64_t k = 0; k < S; k++) {                                                             \
        double gh = gp[k] * wv * (w && !wc ? (double)w[k] : 1);                                     \
        if (batch) { double xh = (xp[k] - mean) * invstd;                                           \
          o[k] = (T)(invstd * (gh - (wc ? wv : 1) * (sg / cnt + xh * sgx / cnt))); }                \
        else o[k] = (T)(gh * invstd);                                                               \
      }                                                                                             \
    }                                                                                               \
  }
STATS(float)
STATS(double)

/* the per-group statistics of (A, C, S) in dtype dt; ctx arrays of C */
static void run_stats(mg_dtype dt, const void *x, int64_t A, int64_t C, int64_t S, int64_t c, double *m, double *v) {
  if (dt == MG_F32) stats_float(x, A, C, S, c, m, v); else stats_double(x, A, C, S, c, m, v);
}
static void run_normalize(mg_dtype dt, const void *x, void *y, int64_t A, int64_t C, int64_t S, int64_t c, double m,
                          double is, const void *w, const void *b, bool wc) {
  if (dt == MG_F32) normalize_float(x, y, A, C, S, c, m, is, w, b, wc);
  else normalize_double(x, y, A, C, S, c, m, is, w, b, wc);
}

static void *data_or_null(mg_tensor *t) { return t ? mg_data(t) : NULL; }

/* backward shared by both: i[0] = A, i[1] = C, i[2] = S, i[3] = per-channel affine,
** i[4] = gradient through the statistics, i[5] = has weight (saved[1]) */
static int norm_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  normctx *cx = n->ctx;
  mg_tensor *x0 = mg_saved(n, 0), *w0 = n->i[5] ? mg_saved(n, 1) : NULL;
  if (!x0 || (n->i[5] && !w0)) return -1;
  mg_dtype dt = gout->dtype;
  int64_t A = n->i[0], C = n->i[1], S = n->i[2];
  bool wc = n->i[3], batch = n->i[4];
  bool nx = mg_node_needs(n, 0), nw = mg_node_needs(n, 1), nb = mg_node_needs(n, 2);
  mg_tensor *x = mg_dense(x0, dt), *g = mg_dense(gout, dt), *w = w0 ? mg_dense(w0, dt) : NULL;
  mg_tensor *gx = nx ? mg_empty(n->rt, dt, x0->ndim, x0->shape) : NULL;
  mg_tensor *gw = nw ? mg_full(n->rt, dt, n->in[1].ndim, n->in[1].shape, 0) : NULL;
  mg_tensor *gb = nb ? mg_full(n->rt, dt, n->in[2].ndim, n->in[2].shape, 0) : NULL;
  int r = -1;
  if (x && g && (w || !w0) && (gx || !nx) && (gw || !nw) && (gb || !nb)) {
    for (int64_t c = 0; c < C; c++) {
      if (dt == MG_F32)
        norm_bw_float(mg_data(x), mg_data(g), data_or_null(gx), data_or_null(gw), data_or_null(gb), A, C, S, c,
                      cx->mean[c], cx->invstd[c], data_or_null(w), wc, batch);
      else
        norm_bw_double(mg_data(x), mg_data(g), data_or_null(gx), data_or_null(gw), data_or_null(gb), A, C, S, c,
                       cx->mean[c], cx->invstd[c], data_or_null(w), wc, batch);
    }
    r = 0;
    if (nx) { r |= mg_grad_out(n, 0, gx, gin); gx = NULL; }
    if (nw) { r |= mg_grad_out(n, 1, gw, gin); gw = NULL; }
    if (nb) { r |= mg_grad_out(n, 2, gb, gin); gb = NULL; }
  }
  mg_release(x); mg_release(g); mg_release(w); mg_release(gx); mg_release(gw); mg_release(gb);
  return r ? -1 : 0;
}

static normctx *new_ctx(int64_t C) {
  normctx *cx = mg_xmalloc(sizeof *cx + 2 * sizeof(double) * (size_t)(C ? C : 1));
  cx->mean = (double *)(cx + 1);
  cx->invstd = cx->mean + (C ? C : 1);
  return cx;
}

/* y from x (A, C, S) with the statistics in cx; records the node */
static mg_tensor *norm_finish(mg_tensor *x, mg_tensor *w, mg_tensor *b, mg_dtype dt, int64_t A, int64_t C, int64_t S,
                              bool wc, bool batch, normctx *cx, const char *op) {
  mg_tensor *xc = mg_dense(x, dt), *wd = w ? mg_dense(w, dt) : NULL, *bd = b ? mg_dense(b, dt) : NULL;
  mg_tensor *y = xc && (wd || !w) && (bd || !b) ? mg_empty(x->rt, dt, x->ndim, x->shape) : NULL;
  if (y)
    for (int64_t c = 0; c < C; c++)
      run_normalize(dt, mg_data(xc), mg_data(y), A, C, S, c, cx->mean[c], cx->invstd[c], data_or_null(wd),
                    data_or_null(bd), wc);
  mg_release(xc); mg_release(wd); mg_release(bd);
  if (!y) { free(cx); return NULL; }
  mg_tensor *in[3] = {x, w, b};
  mg_node *n = mg_record(y, op, norm_bw, 3, in);
  if (!n) { free(cx); return y; }
  n->ctx = cx;
  n->ctx_free = mg_ctx_free;
  n->i[0] = A; n->i[1] = C; n->i[2] = S; n->i[3] = wc; n->i[4] = batch; n->i[5] = w != NULL;
  mg_save(n, x);
  if (w) mg_save(n, w);
  return y;
}

/* ---- batch_norm --------------------------------------------------------------------- */

static int bn_param(mg_tensor *x, mg_tensor *p, const char *name, int64_t C) {
  if (!p) return 0;
  if (mg_check_alive(p, "batch_norm")) return -1;
  if (p->ndim != 1 || p->shape[0] != C) {
    char s1[128], s2[128];
    return mg_seterr(x->rt, "batch_norm: %s of shape %s does not match the input's %lld channels (input shape %s)",
                     name, mg_shape_str(p, s1, sizeof s1), (long long)C, mg_shape_str(x, s2, sizeof s2));
  }
  return 0;
}

static double get1(mg_tensor *t, int64_t i) {
  int64_t o = i * t->stride[0];
  return t->dtype == MG_F32 ? mg_f32(t)[o] : mg_f64(t)[o];
}
static void set1(mg_tensor *t, int64_t i, double v) {
  int64_t o = i * t->stride[0];
  if (t->dtype == MG_F32) mg_f32(t)[o] = (float)v; else mg_f64(t)[o] = v;
}

mg_tensor *mg_batch_norm(mg_tensor *x, mg_tensor *rmean, mg_tensor *rvar, mg_tensor *w, mg_tensor *b,
                         bool training, double momentum, double eps) {
  char s1[128];
  if (mg_check_alive(x, "batch_norm")) return NULL;
  if (x->ndim < 2) {
    mg_seterr(x->rt, "batch_norm: expected an input of shape {N,C} or {N,C,...}, got %s", mg_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  int64_t A = x->shape[0], C = x->shape[1], S = 1;
  for (int d = 2; d < x->ndim; d++) S *= x->shape[d];
  if (bn_param(x, w, "weight", C) || bn_param(x, b, "bias", C) || bn_param(x, rmean, "running_mean", C) ||
      bn_param(x, rvar, "running_var", C))
    return NULL;
  if ((rmean == NULL) != (rvar == NULL)) {
    mg_seterr(x->rt, "batch_norm: running_mean and running_var must be given together");
    return NULL;
  }
  if (!training && !rmean) {
    mg_seterr(x->rt, "batch_norm: running_mean and running_var are required when not training");
    return NULL;
  }
  if (!(eps >= 0)) { mg_seterr(x->rt, "batch_norm: eps must be >= 0, got %g", eps); return NULL; }
  if (training && A * S <= 1) {
    mg_seterr(x->rt, "batch_norm: expected more than 1 value per channel when training, got input of shape %s",
              mg_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  mg_dtype dt = x->dtype;
  if (w) dt = mg_promote(dt, w->dtype);
  if (b) dt = mg_promote(dt, b->dtype);
  normctx *cx = new_ctx(C);
  if (training) {
    mg_tensor *xc = mg_dense(x, dt);
    if (!xc) { free(cx); return NULL; }
    double cnt = (double)(A * S);
    for (int64_t c = 0; c < C; c++) {
      double m, v;
      run_stats(dt, mg_data(xc), A, C, S, c, &m, &v);
      cx->mean[c] = m;
      cx->invstd[c] = 1 / sqrt(v + eps);
      if (rmean) {
        set1(rmean, c, (1 - momentum) * get1(rmean, c) + momentum * m);
        set1(rvar, c, (1 - momentum) * get1(rvar, c) + momentum * v * cnt / (cnt - 1));
      }
    }
    mg_release(xc);
    if (rmean) { mg_bump_version(rmean); mg_bump_version(rvar); }
  } else {
    for (int64_t c = 0; c < C; c++) {
      cx->mean[c] = get1(rmean, c);
      cx->invstd[c] = 1 / sqrt(get1(rvar, c) + eps);
    }
  }
  return norm_finish(x, w, b, dt, A, C, S, true, training, cx, "batch_norm");
}

/* ---- layer_norm -------------------------------------------------------------------- */

static int ln_param(mg_tensor *x, mg_tensor *p, const char *name, int nnorm, const int64_t *nshape) {
  if (!p) return 0;
  if (mg_check_alive(p, "layer_norm")) return -1;
  bool ok = p->ndim == nnorm;
  for (int d = 0; ok && d < nnorm; d++) ok = p->shape[d] == nshape[d];
  if (!ok) {
    char s1[128], s2[128];
    return mg_seterr(x->rt, "layer_norm: %s of shape %s does not match normalized_shape %s", name,
                     mg_shape_str(p, s1, sizeof s1), mg_dims_str(nnorm, nshape, s2, sizeof s2));
  }
  return 0;
}

mg_tensor *mg_layer_norm(mg_tensor *x, int nnorm, const int64_t *nshape, mg_tensor *w, mg_tensor *b, double eps) {
  char s1[128], s2[128];
  if (mg_check_alive(x, "layer_norm")) return NULL;
  if (nnorm < 1 || nnorm > MG_MAX_DIMS) {
    mg_seterr(x->rt, "layer_norm: normalized_shape must have 1 to %d sizes, got %d", MG_MAX_DIMS, nnorm);
    return NULL;
  }
  bool ok = x->ndim >= nnorm;
  for (int d = 0; ok && d < nnorm; d++) ok = x->shape[x->ndim - nnorm + d] == nshape[d];
  if (!ok) {
    mg_seterr(x->rt, "layer_norm: input of shape %s does not end with normalized_shape %s",
              mg_shape_str(x, s1, sizeof s1), mg_dims_str(nnorm, nshape, s2, sizeof s2));
    return NULL;
  }
  if (ln_param(x, w, "weight", nnorm, nshape) || ln_param(x, b, "bias", nnorm, nshape)) return NULL;
  if (!(eps >= 0)) { mg_seterr(x->rt, "layer_norm: eps must be >= 0, got %g", eps); return NULL; }
  int64_t D = 1;
  for (int d = 0; d < nnorm; d++) D *= nshape[d];
  int64_t R = 1;
  for (int d = 0; d < x->ndim - nnorm; d++) R *= x->shape[d];
  mg_dtype dt = x->dtype;
  if (w) dt = mg_promote(dt, w->dtype);
  if (b) dt = mg_promote(dt, b->dtype);
  mg_tensor *xc = mg_dense(x, dt);
  if (!xc) return NULL;
  normctx *cx = new_ctx(R);
  for (int64_t r = 0; r < R; r++) {
    double m, v;
    run_stats(dt, mg_data(xc), 1, R, D, r, &m, &v);
    cx->mean[r] = m;
    cx->invstd[r] = 1 / sqrt(v + eps);
  }
  mg_release(xc);
  return norm_finish(x, w, b, dt, 1, R, D, false, true, cx, "layer_norm");
}
