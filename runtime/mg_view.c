/*
** mg_view.c — views (new shape/strides over the same storage) and copies,
** each with its backward beside it.
*/
#include <string.h>
#include "mg_core.h"


static void set_numel(mg_tensor *t) {
  t->numel = 1;
  for (int d = 0; d < t->ndim; d++) t->numel *= t->shape[d];
}

static int check_dim(mg_tensor *t, int dim, int extra, const char *op) {
  if (dim < 0 || dim >= t->ndim + extra) {
    char b[128];
    return mg_seterr(t->rt, "%s: dim %d out of range for a tensor of shape %s", op, dim + 1,
                     mg_shape_str(t, b, sizeof b));
  }
  return 0;
}

/* ---- reshape-like views: backward reshapes the gradient back ------------------ */

static int reshape_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  gin[0] = mg_reshape(g, n->in[0].ndim, n->in[0].shape);
  return gin[0] ? 0 : -1;
}

/* resolve a -1 in shape against numel; check the element count */
static int infer_shape(mg_tensor *t, const char *op, int ndim, const int64_t *in, int64_t *out) {
  int infer = -1;
  int64_t known = 1;
  if (ndim > MG_MAX_DIMS) return mg_seterr(t->rt, "%s: %d dimensions (at most %d)", op, ndim, MG_MAX_DIMS);
  for (int d = 0; d < ndim; d++) {
    out[d] = in[d];
    if (in[d] == -1) {
      if (infer >= 0) return mg_seterr(t->rt, "%s: only one size may be -1", op);
      infer = d;
    } else if (in[d] < 0) return mg_seterr(t->rt, "%s: invalid size %lld", op, (long long)in[d]);
    else if (in[d] && known > INT64_MAX / in[d]) {  /* the product must not wrap around to numel */
      char b[128];
      return mg_seterr(t->rt, "%s: shape %s is too large", op, mg_dims_str(ndim, in, b, sizeof b));
    } else known *= in[d];
  }
  if (infer >= 0) {
    if (known == 0 || t->numel % known) {
      char b[128];
      return mg_seterr(t->rt, "%s: shape %s is invalid for a tensor of %lld elements", op,
                       mg_dims_str(ndim, in, b, sizeof b), (long long)t->numel);
    }
    out[infer] = t->numel / known;
  } else if (known != t->numel) {
    char b[128], c[128];
    return mg_seterr(t->rt, "%s: shape %s (%lld elements) is invalid for a tensor of shape %s (%lld elements)", op,
                     mg_dims_str(ndim, in, b, sizeof b), (long long)known, mg_shape_str(t, c, sizeof c),
                     (long long)t->numel);
  }
  return 0;
}

static mg_tensor *as_view(mg_tensor *t, int ndim, const int64_t *shape, const char *op) {
  mg_tensor *v = mg_view_header(t);
  v->ndim = ndim;
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) { v->shape[d] = shape[d]; v->stride[d] = s; s *= shape[d]; }
  set_numel(v);
  mg_record(v, op, reshape_bw, 1, &t);
  return v;
}

mg_tensor *mg_view(mg_tensor *t, int ndim, const int64_t *shape) {
  int64_t sh[MG_MAX_DIMS];
  if (infer_shape(t, "view", ndim, shape, sh)) return NULL;
  if (!mg_is_contiguous(t)) {
    char b[128];
    mg_seterr(t->rt, "view: tensor of shape %s is not contiguous (after transpose/permute/narrow); "
              "use reshape, or contiguous() first", mg_shape_str(t, b, sizeof b));
    return NULL;
  }
  return as_view(t, ndim, sh, "view");
}

mg_tensor *mg_reshape(mg_tensor *t, int ndim, const int64_t *shape) {
  int64_t sh[MG_MAX_DIMS];
  if (infer_shape(t, "reshape", ndim, shape, sh)) return NULL;
  if (mg_is_contiguous(t)) return as_view(t, ndim, sh, "reshape");
  mg_tensor *c = mg_contiguous(t);
  if (!c) return NULL;
  mg_tensor *v = as_view(c, ndim, sh, "reshape");
  mg_release(c);
  return v;
}

mg_tensor *mg_flatten(mg_tensor *t, int start, int stop) {
  if (t->ndim == 0) return mg_reshape(t, 1, (int64_t[]){1});
  if (check_dim(t, start, 0, "flatten") || check_dim(t, stop, 0, "flatten")) return NULL;
  if (start > stop) { mg_seterr(t->rt, "flatten: start dim %d is after end dim %d", start + 1, stop + 1); return NULL; }
  int64_t sh[MG_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < start; d++) sh[nd++] = t->shape[d];
  int64_t m = 1;
  for (int d = start; d <= stop; d++) m *= t->shape[d];
  sh[nd++] = m;
  for (int d = stop + 1; d < t->ndim; d++) sh[nd++] = t->shape[d];
  return mg_reshape(t, nd, sh);
}

mg_tensor *mg_unsqueeze(mg_tensor *t, int dim) {
  if (check_dim(t, dim, 1, "unsqueeze")) return NULL;
  if (t->ndim >= MG_MAX_DIMS) { mg_seterr(t->rt, "unsqueeze: tensor already has %d dims", MG_MAX_DIMS); return NULL; }
  mg_tensor *v = mg_view_header(t);
  v->ndim = t->ndim + 1;
  for (int d = 0, s = 0; d < v->ndim; d++) {
    if (d == dim) { v->shape[d] = 1; v->stride[d] = dim < t->ndim ? t->stride[dim] * t->shape[dim] : 1; }
    else { v->shape[d] = t->shape[s]; v->stride[d] = t->stride[s]; s++; }
  }
  v->numel = t->numel;
  mg_record(v, "unsqueeze", reshape_bw, 1, &t);
  return v;
}

mg_tensor *mg_squeeze(mg_tensor *t, int dim) {
  if (dim >= 0 && check_dim(t, dim, 0, "squeeze")) return NULL;
  mg_tensor *v = mg_view_header(t);
  int nd = 0;
  for (int d = 0; d < t->ndim; d++) {
    bool drop = t->shape[d] == 1 && (dim < 0 || dim == d);
    if (!drop) { v->shape[nd] = t->shape[d]; v->stride[nd] = t->stride[d]; nd++; }
  }
  v->ndim = nd;
  v->numel = t->numel;
  mg_record(v, "squeeze", reshape_bw, 1, &t);
  return v;
}

/* ---- transpose / permute ---------------------------------------------------------- */

static int permute_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  int inv[MG_MAX_DIMS];
  for (int d = 0; d < n->in[0].ndim; d++) inv[n->i[d]] = d;
  gin[0] = mg_permute(g, inv);
  return gin[0] ? 0 : -1;
}

mg_tensor *mg_permute(mg_tensor *t, const int *perm) {
  bool seen[MG_MAX_DIMS] = {0};
  for (int d = 0; d < t->ndim; d++) {
    if (perm[d] < 0 || perm[d] >= t->ndim || seen[perm[d]]) {
      char b[128];
      mg_seterr(t->rt, "permute: dims must be a permutation of 1..%d for a tensor of shape %s", t->ndim,
                mg_shape_str(t, b, sizeof b));
      return NULL;
    }
    seen[perm[d]] = true;
  }
  mg_tensor *v = mg_view_header(t);
  v->ndim = t->ndim;
  v->numel = t->numel;
  for (int d = 0; d < t->ndim; d++) { v->shape[d] = t->shape[perm[d]]; v->stride[d] = t->stride[perm[d]]; }
  mg_node *n = mg_record(v, "permute", permute_bw, 1, &t);
  if (n) for (int d = 0; d < t->ndim; d++) n->i[d] = perm[d];
  return v;
}

mg_tensor *mg_transpose(mg_tensor *t, int d0, int d1) {
  if (t->ndim == 0 && d0 == 0 && d1 == 0) return mg_permute(t, NULL);
  if (check_dim(t, d0, 0, "transpose") || check_dim(t, d1, 0, "transpose")) return NULL;
  int perm[MG_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) perm[d] = d;
  perm[d0] = d1;
  perm[d1] = d0;
  return mg_permute(t, perm);
}

/* ---- narrow / select: backward scatters the gradient into zeros --------------------- */

static int narrow_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *z = mg_full(n->rt, g->dtype, n->in[0].ndim, n->in[0].shape, 0);
  if (!z) return -1;
  mg_tensor *part = n->i[2] ? mg_select(z, (int)n->i[0], n->i[1]) : mg_narrow(z, (int)n->i[0], n->i[1], n->i[3]);
  int r = part ? mg_copy_(part, g) : -1;
  mg_release(part);
  if (r) { mg_release(z); return -1; }
  gin[0] = z;
  return 0;
}

mg_tensor *mg_narrow(mg_tensor *t, int dim, int64_t start, int64_t len) {
  if (check_dim(t, dim, 0, "narrow")) return NULL;
  if (start < 0 || len < 0 || start + len > t->shape[dim]) {
    char b[128];
    mg_seterr(t->rt, "narrow: start %lld and length %lld out of range for dim %d of size %lld (shape %s)",
              (long long)start + 1, (long long)len, dim + 1, (long long)t->shape[dim], mg_shape_str(t, b, sizeof b));
    return NULL;
  }
  mg_tensor *v = mg_view_header(t);
  v->ndim = t->ndim;
  memcpy(v->shape, t->shape, sizeof v->shape);
  memcpy(v->stride, t->stride, sizeof v->stride);
  v->shape[dim] = len;
  v->offset = t->offset + start * t->stride[dim];
  set_numel(v);
  mg_node *n = mg_record(v, "narrow", narrow_bw, 1, &t);
  if (n) { n->i[0] = dim; n->i[1] = start; n->i[2] = 0; n->i[3] = len; }
  return v;
}

mg_tensor *mg_select(mg_tensor *t, int dim, int64_t i) {
  if (t->ndim == 0) { mg_seterr(t->rt, "select: cannot index a 0-dim tensor"); return NULL; }
  if (check_dim(t, dim, 0, "select")) return NULL;
  if (i < 0 || i >= t->shape[dim]) {
    char b[128];
    mg_seterr(t->rt, "select: index %lld out of range for dim %d of size %lld (shape %s)", (long long)i + 1,
              dim + 1, (long long)t->shape[dim], mg_shape_str(t, b, sizeof b));
    return NULL;
  }
  mg_tensor *v = mg_view_header(t);
  v->ndim = t->ndim - 1;
  for (int d = 0, k = 0; d < t->ndim; d++)
    if (d != dim) { v->shape[k] = t->shape[d]; v->stride[k] = t->stride[d]; k++; }
  v->offset = t->offset + i * t->stride[dim];
  set_numel(v);
  mg_node *n = mg_record(v, "select", narrow_bw, 1, &t);
  if (n) { n->i[0] = dim; n->i[1] = i; n->i[2] = 1; }
  return v;
}

/* ---- expand: backward sums over the broadcast dims ------------------------------------ */

static int expand_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  gin[0] = mg_sum_to(g, n->in[0].ndim, n->in[0].shape);
  return gin[0] ? 0 : -1;
}

mg_tensor *mg_expand(mg_tensor *t, int ndim, const int64_t *shape) {
  char b[128], c[128];
  if (ndim < t->ndim || ndim > MG_MAX_DIMS) {
    mg_seterr(t->rt, "expand: cannot expand shape %s to %s (fewer dims)", mg_shape_str(t, b, sizeof b),
              mg_dims_str(ndim, shape, c, sizeof c));
    return NULL;
  }
  mg_tensor *v = mg_view_header(t);
  v->ndim = ndim;
  int off = ndim - t->ndim;
  for (int d = 0; d < ndim; d++) {
    int td = d - off;
    int64_t have = td < 0 ? 1 : t->shape[td], want = shape[d] == -1 && td >= 0 ? have : shape[d];
    if (want < 0 || (have != want && have != 1)) {
      mg_release(v);
      mg_seterr(t->rt, "expand: cannot expand shape %s to %s (size %lld vs %lld at dim %d)", mg_shape_str(t, b, sizeof b),
                mg_dims_str(ndim, shape, c, sizeof c), (long long)have, (long long)shape[d], d + 1);
      return NULL;
    }
    v->shape[d] = want;
    v->stride[d] = (td < 0 || have != want) ? 0 : t->stride[td];
  }
  for (int64_t d = 0, n = 1; d < ndim; n *= v->shape[d], d++)
    if (v->shape[d] && n > ((int64_t)1 << 43) / v->shape[d]) {  /* as mg_empty's limit: numel must not overflow */
      mg_release(v);
      mg_seterr(t->rt, "expand: shape %s is too large", mg_dims_str(ndim, shape, c, sizeof c));
      return NULL;
    }
  set_numel(v);
  mg_record(v, "expand", expand_bw, 1, &t);
  return v;
}

/* ---- copies ---------------------------------------------------------------------------- */

static int copy_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  gin[0] = mg_to(g, n->in[0].dtype);
  return gin[0] ? 0 : -1;
}

static mg_tensor *copy_op(mg_tensor *t, mg_dtype dt, const char *op) {
  mg_tensor *o = mg_copy_as(t, dt);
  if (o) mg_record(o, op, copy_bw, 1, &t);
  return o;
}

mg_tensor *mg_contiguous(mg_tensor *t) {
  if (mg_is_contiguous(t)) return mg_retain(t);
  return copy_op(t, t->dtype, "contiguous");
}
mg_tensor *mg_clone(mg_tensor *t) { return copy_op(t, t->dtype, "clone"); }
mg_tensor *mg_to(mg_tensor *t, mg_dtype dt) { return t->dtype == dt ? mg_retain(t) : copy_op(t, dt, "to"); }

mg_tensor *mg_detach(mg_tensor *t) {
  mg_tensor *v = mg_view_header(t);
  v->ndim = t->ndim;
  v->numel = t->numel;
  memcpy(v->shape, t->shape, sizeof v->shape);
  memcpy(v->stride, t->stride, sizeof v->stride);
  return v;
}
