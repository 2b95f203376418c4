/*
** k_index.c — cat, stack, index_select, gather, masked_fill and embedding,
** forward beside backward. Index tensors hold 0-based integers in a float
** dtype; they are read once, checked, and kept (as int64) for the backward.
** The backward of the selecting ops is a scatter-add into zeros.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"
#include "mg_iter.h"

/* ---- cat / stack ---------------------------------------------------------------- */

/* ctx: offsets of each input along dim (n+1 entries; -1 for a skipped input) */
static int cat_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  int64_t *off = n->ctx;
  int dim = (int)n->i[0];
  for (int k = 0; k < n->nin; k++) {
    if (!mg_node_needs(n, k) || off[k] < 0) continue;
    mg_tensor *part = mg_narrow(g, dim, off[k], n->in[k].shape[dim]);
    if (mg_grad_out(n, k, part, gin)) return -1;
  }
  return 0;
}

/* PyTorch skips 1-D empty tensors in cat whatever the other shapes */
static bool skippable(const mg_tensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

mg_tensor *mg_cat(int n, mg_tensor *const *ts, int dim) {
  char s1[128], s2[128];
  if (n < 1 || !ts || !ts[0]) return NULL;
  mg_rt *rt = ts[0]->rt;
  int ref = -1;
  mg_dtype dt = ts[0]->dtype;
  for (int k = 0; k < n; k++) {
    if (mg_check_alive(ts[k], "cat")) return NULL;
    dt = mg_promote(dt, ts[k]->dtype);
    if (ts[k]->ndim == 0) { mg_seterr(rt, "cat: tensor %d is 0-dim and cannot be concatenated", k + 1); return NULL; }
    if (ref < 0 && !skippable(ts[k])) ref = k;
  }
  if (ref < 0) ref = 0;
  const mg_tensor *r = ts[ref];
  if (dim < 0 || dim >= r->ndim) {
    mg_seterr(rt, "cat: dim %d out of range for tensors of shape %s (expected 1..%d)", dim + 1,
              mg_shape_str(r, s1, sizeof s1), r->ndim);
    return NULL;
  }
  int64_t shape[MG_MAX_DIMS], total = 0;
  memcpy(shape, r->shape, sizeof shape);
  for (int k = 0; k < n; k++) {
    const mg_tensor *t = ts[k];
    if (skippable(t) && !skippable(r)) continue;
    bool ok = t->ndim == r->ndim;
    for (int d = 0; ok && d < r->ndim; d++) ok = d == dim || t->shape[d] == r->shape[d];
    if (!ok) {
      mg_seterr(rt, "cat: tensor %d has shape %s but tensor %d has shape %s (sizes must match except in dim %d)", k + 1,
                mg_shape_str(t, s1, sizeof s1), ref + 1, mg_shape_str(r, s2, sizeof s2), dim + 1);
      return NULL;
    }
    total += t->shape[dim];
  }
  shape[dim] = total;
  mg_tensor *y = mg_empty(rt, dt, r->ndim, shape);
  if (!y) return NULL;
  int64_t *off = mg_xmalloc(sizeof(int64_t) * (size_t)(n + 1)), at = 0;
  for (int k = 0; k < n; k++) {
    const mg_tensor *t = ts[k];
    if (skippable(t) && !skippable(r)) { off[k] = -1; continue; }
    off[k] = at;
    if (t->shape[dim] == 0) continue;
    mg_tensor *part = mg_narrow(y, dim, at, t->shape[dim]);
    int e = part ? mg_copy_(part, ts[k]) : -1;
    mg_release(part);
    if (e) { free(off); mg_release(y); return NULL; }
    at += t->shape[dim];
  }
  mg_node *nd = mg_record(y, "cat", cat_bw, n, ts);
  if (nd) { nd->i[0] = dim; nd->ctx = off; nd->ctx_free = mg_ctx_free; }
  else free(off);
  return y;
}

mg_tensor *mg_stack(int n, mg_tensor *const *ts, int dim) {
  char s1[128], s2[128];
  if (n < 1 || !ts || !ts[0]) return NULL;
  mg_rt *rt = ts[0]->rt;
  for (int k = 1; k < n; k++)
    if (!mg_same_shape(ts[k], ts[0])) {
      mg_seterr(rt, "stack: expected tensors of the same shape, but tensor 1 has shape %s and tensor %d has shape %s",
                mg_shape_str(ts[0], s1, sizeof s1), k + 1, mg_shape_str(ts[k], s2, sizeof s2));
      return NULL;
    }
  if (dim < 0 || dim > ts[0]->ndim || ts[0]->ndim >= MG_MAX_DIMS) {
    mg_seterr(rt, "stack: dim %d out of range for stacking tensors of shape %s (expected 1..%d)", dim + 1,
              mg_shape_str(ts[0], s1, sizeof s1), ts[0]->ndim + 1);
    return NULL;
  }
  mg_tensor **u = mg_xcalloc((size_t)n, sizeof *u);
  mg_tensor *y = NULL;
  int k = 0;
  for (; k < n; k++) if (!(u[k] = mg_unsqueeze(ts[k], dim))) break;
  if (k == n) y = mg_cat(n, u, dim);
  for (int j = 0; j < k; j++) mg_release(u[j]);
  free(u);
  return y;
}

/* ---- reading index tensors ---------------------------------------------------------- */

/* the elements of idx (row-major) as int64 in out, each checked against [0, size) */
static int read_index(const char *op, mg_tensor *idx, int64_t size, int dim, const mg_tensor *x, int64_t *out) {
  char s1[128];
  if (mg_check_alive(idx, op)) return -1;
  mg_tensor *c = mg_dense(idx, idx->dtype);
  if (!c) return -1;
  int r = 0;
  for (int64_t i = 0; i < c->numel && !r; i++) {
    double v = c->dtype == MG_F32 ? mg_f32(c)[i] : mg_f64(c)[i];
    if (v != floor(v))
      r = mg_seterr(idx->rt, "%s: index %g is not an integer (indices must be whole numbers)", op, v + 1);
    else if (v < 0 || v >= (double)size)
      r = mg_seterr(idx->rt, "%s: index %.0f is out of range for dim %d of size %lld (shape %s)", op, v + 1, dim + 1,
                    (long long)size, mg_shape_str(x, s1, sizeof s1));
    else out[i] = (int64_t)v;
  }
  mg_release(c);
  return r;
}

/* ---- index_select / embedding: rows of x along dim ------------------------------------ */

typedef struct { int64_t outer, size, inner, nidx; int64_t ix[]; } rowsctx;

static void copy_rows(mg_dtype dt, const rowsctx *q, const void *x, void *y, bool back) {
  size_t es = mg_dtype_size(dt);
  for (int64_t o = 0; o < q->outer; o++)
    for (int64_t k = 0; k < q->nidx; k++) {
      size_t xo = (size_t)((o * q->size + q->ix[k]) * q->inner), yo = (size_t)((o * q->nidx + k) * q->inner);
      if (!back) memcpy((char *)y + yo * es, (const char *)x + xo * es, es * (size_t)q->inner);
      else if (dt == MG_F32) {
        float *gx = (float *)x + xo; const float *g = (const float *)y + yo;
        for (int64_t j = 0; j < q->inner; j++) gx[j] += g[j];
      } else {
        double *gx = (double *)x + xo; const double *g = (const double *)y + yo;
        for (int64_t j = 0; j < q->inner; j++) gx[j] += g[j];
      }
    }
}

static int rows_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  mg_tensor *g = mg_dense(gout, n->in[0].dtype);
  mg_tensor *gx = g ? mg_full(n->rt, g->dtype, n->in[0].ndim, n->in[0].shape, 0) : NULL;
  if (gx) copy_rows(g->dtype, n->ctx, mg_data(gx), mg_data(g), true);
  mg_release(g);
  gin[0] = gx;
  return gx ? 0 : -1;
}

/* y (shape yshape) = x's slices along dim picked by idx; idx already read into q */
static mg_tensor *select_rows(const char *op, mg_tensor *x, int dim, rowsctx *q, int ynd, const int64_t *yshape) {
  mg_tensor *xc = mg_dense(x, x->dtype), *y = xc ? mg_empty(x->rt, x->dtype, ynd, yshape) : NULL;
  if (y) copy_rows(x->dtype, q, mg_data(xc), mg_data(y), false);
  mg_release(xc);
  if (!y) { free(q); return NULL; }
  mg_node *n = mg_record(y, op, rows_bw, 1, &x);
  if (n) { n->i[0] = dim; n->ctx = q; n->ctx_free = mg_ctx_free; }
  else free(q);
  return y;
}

static rowsctx *rows_ctx(const char *op, mg_tensor *x, int dim, mg_tensor *idx) {
  rowsctx *q = mg_xmalloc(sizeof *q + sizeof(int64_t) * (size_t)(idx->numel + 1));
  q->outer = q->inner = 1;
  for (int d = 0; d < dim; d++) q->outer *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) q->inner *= x->shape[d];
  q->size = x->shape[dim];
  q->nidx = idx->numel;
  if (read_index(op, idx, q->size, dim, x, q->ix)) { free(q); return NULL; }
  return q;
}

mg_tensor *mg_index_select(mg_tensor *x, int dim, mg_tensor *idx) {
  char s1[128];
  if (mg_check_alive(x, "index_select")) return NULL;
  if (x->ndim == 0) { mg_seterr(x->rt, "index_select: cannot index a 0-dim tensor"); return NULL; }
  if (dim < 0 || dim >= x->ndim) {
    mg_seterr(x->rt, "index_select: dim %d out of range for a tensor of shape %s", dim + 1, mg_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  if (idx->ndim > 1) {
    mg_seterr(x->rt, "index_select: index must be a 1-D tensor, got shape %s", mg_shape_str(idx, s1, sizeof s1));
    return NULL;
  }
  rowsctx *q = rows_ctx("index_select", x, dim, idx);
  if (!q) return NULL;
  int64_t shape[MG_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[dim] = idx->numel;
  return select_rows("index_select", x, dim, q, x->ndim, shape);
}

mg_tensor *mg_embedding(mg_tensor *idx, mg_tensor *weight) {
  char s1[128];
  if (mg_check_alive(weight, "embedding")) return NULL;
  if (weight->ndim != 2) {
    mg_seterr(weight->rt, "embedding: weight must be 2-D {num_embeddings, embedding_dim}, got shape %s",
              mg_shape_str(weight, s1, sizeof s1));
    return NULL;
  }
  if (idx->ndim >= MG_MAX_DIMS) {
    mg_seterr(weight->rt, "embedding: index of shape %s has too many dims (at most %d)", mg_shape_str(idx, s1, sizeof s1),
              MG_MAX_DIMS - 1);
    return NULL;
  }
  rowsctx *q = rows_ctx("embedding", weight, 0, idx);
  if (!q) return NULL;
  int64_t shape[MG_MAX_DIMS];
  memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
  shape[idx->ndim] = weight->shape[1];
  return select_rows("embedding", weight, 0, q, idx->ndim + 1, shape);
}

/* ---- gather: y[..i..] = x[.. idx[..i..] (at dim) ..]; ctx: flat source offsets ------------ */

static int gather_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  const int64_t *src = n->ctx;
  mg_tensor *g = mg_dense(gout, n->in[0].dtype);
  mg_tensor *gx = g ? mg_full(n->rt, g->dtype, n->in[0].ndim, n->in[0].shape, 0) : NULL;
  if (gx) {
    if (gx->dtype == MG_F32) for (int64_t k = 0; k < g->numel; k++) mg_f32(gx)[src[k]] += mg_f32(g)[k];
    else for (int64_t k = 0; k < g->numel; k++) mg_f64(gx)[src[k]] += mg_f64(g)[k];
  }
  mg_release(g);
  gin[0] = gx;
  return gx ? 0 : -1;
}

mg_tensor *mg_gather(mg_tensor *x, int dim, mg_tensor *idx) {
  char s1[128], s2[128];
  mg_rt *rt = x->rt;
  if (mg_check_alive(x, "gather")) return NULL;
  if (x->ndim == 0) { mg_seterr(rt, "gather: cannot gather from a 0-dim tensor"); return NULL; }
  if (dim < 0 || dim >= x->ndim) {
    mg_seterr(rt, "gather: dim %d out of range for a tensor of shape %s", dim + 1, mg_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  bool ok = idx->ndim == x->ndim;
  for (int d = 0; ok && d < x->ndim; d++) ok = d == dim || idx->shape[d] <= x->shape[d];
  if (!ok) {
    mg_seterr(rt, "gather: index of shape %s does not fit input of shape %s (same number of dims, and no larger "
              "except in dim %d)", mg_shape_str(idx, s1, sizeof s1), mg_shape_str(x, s2, sizeof s2), dim + 1);
    return NULL;
  }
  int64_t *src = mg_xmalloc(sizeof(int64_t) * (size_t)(idx->numel + 1));
  if (read_index("gather", idx, x->shape[dim], dim, x, src)) { free(src); return NULL; }
  /* contiguous strides of x; turn each index into a flat offset */
  int64_t xs[MG_MAX_DIMS], pos[MG_MAX_DIMS] = {0}, s = 1;
  for (int d = x->ndim - 1; d >= 0; d--) { xs[d] = s; s *= x->shape[d]; }
  for (int64_t k = 0; k < idx->numel; k++) {
    int64_t off = 0;
    for (int d = 0; d < x->ndim; d++) off += (d == dim ? src[k] : pos[d]) * xs[d];
    src[k] = off;
    for (int d = x->ndim - 1; d >= 0; d--) { if (++pos[d] < idx->shape[d]) break; pos[d] = 0; }
  }
  mg_tensor *xc = mg_dense(x, x->dtype), *y = xc ? mg_empty(rt, x->dtype, idx->ndim, idx->shape) : NULL;
  if (y) {
    if (y->dtype == MG_F32) for (int64_t k = 0; k < y->numel; k++) mg_f32(y)[k] = mg_f32(xc)[src[k]];
    else for (int64_t k = 0; k < y->numel; k++) mg_f64(y)[k] = mg_f64(xc)[src[k]];
  }
  mg_release(xc);
  if (!y) { free(src); return NULL; }
  mg_node *n = mg_record(y, "gather", gather_bw, 1, &x);
  if (n) { n->i[0] = dim; n->ctx = src; n->ctx_free = mg_ctx_free; }
  else free(src);
  return y;
}

/* ---- masked_fill: y = mask != 0 ? v : x, mask broadcast to x ------------------------------ */

static int masked_fill_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *m = mg_saved(n, 0);
  if (!m) return -1;
  mg_tensor *z = mg_scalar(n->rt, g->dtype, 0);
  mg_tensor *gx = z ? mg_where(m, z, g) : NULL;
  mg_release(z);
  return mg_grad_out(n, 0, gx, gin);
}

mg_tensor *mg_masked_fill(mg_tensor *x, mg_tensor *mask, double v) {
  char s1[128], s2[128];
  if (mg_check_alive(x, "masked_fill") || mg_check_alive(mask, "masked_fill")) return NULL;
  bool ok = mask->ndim <= x->ndim;
  for (int d = 0; ok && d < mask->ndim; d++) {
    int64_t ms = mask->shape[mask->ndim - 1 - d], xs = x->shape[x->ndim - 1 - d];
    ok = ms == xs || ms == 1;
  }
  if (!ok) {
    mg_seterr(x->rt, "masked_fill: mask of shape %s cannot be broadcast to the input's shape %s",
              mg_shape_str(mask, s1, sizeof s1), mg_shape_str(x, s2, sizeof s2));
    return NULL;
  }
  mg_tensor *y = mg_copy_as(x, x->dtype);
  if (!y) return NULL;
  if (y->numel) {
    int n_ = x->ndim ? x->ndim : 1;
    int64_t sh[MG_MAX_DIMS] = {0}, ms[MG_MAX_DIMS] = {0};
    if (x->ndim == 0) { sh[0] = 1; ms[0] = 0; }
    else { memcpy(sh, x->shape, sizeof sh); mg_bcast_strides(mask, n_, ms); }
    mg_iter it;
    mg_iter_init(&it, n_, sh);
    int64_t len = sh[n_ - 1], k = 0, st = ms[n_ - 1];
    do {
      int64_t om = mg_iter_off(&it, ms);
      for (int64_t i = 0; i < len; i++, k++) {
        double mv = mask->dtype == MG_F32 ? mg_f32(mask)[om + i * st] : mg_f64(mask)[om + i * st];
        if (mv != 0) { if (y->dtype == MG_F32) mg_f32(y)[k] = (float)v; else mg_f64(y)[k] = v; }
      }
    } while (mg_iter_next(&it));
  }
  mg_node *n = mg_record(y, "masked_fill", masked_fill_bw, 1, &x);
  if (n) mg_save(n, mask);
  return y;
}
