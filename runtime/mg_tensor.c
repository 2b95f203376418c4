/* mg_tensor.c — storage, tensor headers, creation, copies and shape helpers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"
#include "mg_iter.h"

/* ---- header recycling: a list of freed headers per runtime ---------------- */

#define MAX_FREE_HEADERS 4096
typedef struct freenode { struct freenode *next; } freenode;

/* a block of size bytes, its first zero bytes zeroed */
static void *hdr_alloc(void **list, int *n, size_t size, size_t zero) {
  freenode *f = *list;
  if (!f) return mg_xcalloc(1, size);
  *list = f->next;
  (*n)--;
  memset(f, 0, zero);
  return f;
}

static void hdr_free(void **list, int *n, void *p) {
  if (*n >= MAX_FREE_HEADERS) { free(p); return; }
  freenode *f = p;
  f->next = *list;
  *list = f;
  (*n)++;
}

void mg_headers_trim(mg_rt *rt);
void mg_headers_trim(mg_rt *rt) {
  for (freenode *f = rt->free_tensors, *nx; f; f = nx) { nx = f->next; free(f); }
  for (freenode *f = rt->free_storages, *nx; f; f = nx) { nx = f->next; free(f); }
  rt->free_tensors = rt->free_storages = NULL;
  rt->nfree_tensors = rt->nfree_storages = 0;
}

/* Every tensor header has room for a storage: a new tensor of at most 32 bytes
** keeps its storage, data included (st.small), in its own header block, so it
** costs one recycled block. The block is freed when both are dead: views may
** keep the storage alive after the tensor. */
typedef struct { mg_tensor t; mg_storage st; } hblock;

/* the tensor zeroed; the block's storage is set up by its user (empty) */
static mg_tensor *tensor_alloc(mg_rt *rt) {
  return hdr_alloc(&rt->free_tensors, &rt->nfree_tensors, sizeof(hblock), sizeof(mg_tensor));
}
static void tensor_free(mg_tensor *t) { hdr_free(&t->rt->free_tensors, &t->rt->nfree_tensors, t); }
static mg_storage *storage_alloc(mg_rt *rt) {
  return hdr_alloc(&rt->free_storages, &rt->nfree_storages, sizeof(mg_storage), sizeof(mg_storage));
}

/* ---- storage ------------------------------------------------------------ */

mg_storage *mg_storage_new(mg_rt *rt, size_t nbytes) {
  void *data = NULL;  /* up to 32 bytes live in the storage header: no allocator round trip */
  if (nbytes > sizeof ((mg_storage *)0)->small && !(data = mg_mem_alloc(rt, nbytes))) return NULL;
  mg_storage *s = storage_alloc(rt);
  s->rt = rt;
  s->data = data ? data : s->small;
  s->nbytes = nbytes;
  s->refcount = 1;
  s->kind = MG_ST_OWN;
  return s;
}

void mg_storage_release(mg_storage *s) {
  if (!s || --s->refcount > 0) return;
  if (s->embedded) {  /* its tensor is dead too (it held a reference): free the block */
    tensor_free(&((hblock *)((char *)s - offsetof(hblock, st)))->t);
    return;
  }
  switch (s->kind) {
    case MG_ST_OWN: if (s->data != s->small) mg_mem_free(s->rt, s->data, s->nbytes); break;
    case MG_ST_CALLBACK: if (s->release) s->release(s->data, s->ud); break;
    case MG_ST_BORROW: break;
  }
  hdr_free(&s->rt->free_storages, &s->rt->nfree_storages, s);
}

/* ---- tensor headers ----------------------------------------------------- */

static void contiguous_strides(mg_tensor *t) {
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) { t->stride[d] = s; s *= t->shape[d]; }
}

/* fill the new header t over st (retained), shape given, contiguous strides */
static mg_tensor *header_at(mg_tensor *t, mg_rt *rt, mg_storage *st, mg_dtype dt, int ndim, const int64_t *shape) {
  t->rt = rt;
  t->st = st;
  st->refcount++;
  t->refcount = 1;
  t->dtype = dt;
  t->ndim = ndim;
  t->numel = 1;
  for (int d = 0; d < ndim; d++) { t->shape[d] = shape[d]; t->numel *= shape[d]; }
  contiguous_strides(t);
  return t;
}

static mg_tensor *header(mg_rt *rt, mg_storage *st, mg_dtype dt, int ndim, const int64_t *shape) {
  return header_at(tensor_alloc(rt), rt, st, dt, ndim, shape);
}

/* a view header: same storage as src, caller fills shape/stride/offset */
mg_tensor *mg_view_header(mg_tensor *src) {
  mg_tensor *t = tensor_alloc(src->rt);
  t->rt = src->rt;
  t->st = src->st;
  t->st->refcount++;
  t->refcount = 1;
  t->dtype = src->dtype;
  t->offset = src->offset;
  return t;
}

mg_tensor *mg_retain(mg_tensor *t) { if (t) t->refcount++; return t; }

void mg_release(mg_tensor *t) {
  if (!t || --t->refcount > 0) return;
  if (t->grad) mg_release(t->grad);
  if (t->grad_fn) mg_node_release(t->grad_fn);
  mg_storage *st = t->st;
  if (st == &((hblock *)t)->st) {  /* its own block: freed when the storage dies (views may hold it) */
    if (--st->refcount == 0) tensor_free(t);
  } else {
    mg_storage_release(st);
    tensor_free(t);
  }
}

static int check_shape(mg_rt *rt, int ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 0 || ndim > MG_MAX_DIMS)
    return mg_seterr(rt, "tensor: %d dimensions (at most %d are supported)", ndim, MG_MAX_DIMS);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) {
      char b[128];
      return mg_seterr(rt, "tensor: negative size %lld in shape %s", (long long)shape[d],
                       mg_dims_str(ndim, shape, b, sizeof b));
    }
    if (shape[d] && n > ((int64_t)1 << 46) / 8 / shape[d]) {  /* over 64 TiB: no machine has it */
      char b[128];
      return mg_seterr(rt, "tensor: shape %s is too large", mg_dims_str(ndim, shape, b, sizeof b));
    }
    n *= shape[d];
  }
  *numel = n;
  return 0;
}

/* a new contiguous tensor of n elements; shape already checked */
static mg_tensor *empty(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, int64_t n) {
  size_t nbytes = (size_t)n * mg_dtype_size(dt);
  if (nbytes <= sizeof ((mg_storage *)0)->small) {  /* storage and data in the header block */
    mg_tensor *t = tensor_alloc(rt);
    mg_storage *st = &((hblock *)t)->st;
    *st = (mg_storage){.rt = rt, .data = st->small, .nbytes = nbytes, .kind = MG_ST_OWN, .embedded = true};
    return header_at(t, rt, st, dt, ndim, shape);
  }
  mg_storage *st = mg_storage_new(rt, nbytes);
  if (!st) {
    char b[128], why[MG_ERRLEN];
    snprintf(why, sizeof why, "%s", rt->err);
    mg_seterr(rt, "tensor: cannot allocate %s %s (%lld bytes): %s", mg_dtype_name(dt),
              mg_dims_str(ndim, shape, b, sizeof b), (long long)n * (long long)mg_dtype_size(dt), why);
    return NULL;
  }
  mg_tensor *t = header(rt, st, dt, ndim, shape);
  st->refcount--;  /* header took the only reference */
  return t;
}

mg_tensor *mg_empty(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape) {
  int64_t n;
  if (check_shape(rt, ndim, shape, &n)) return NULL;
  return empty(rt, dt, ndim, shape, n);
}

int mg_fill_(mg_tensor *t, double v) {
  if (mg_check_alive(t, "fill_")) return -1;
  if (mg_is_contiguous(t)) {
    if (t->dtype == MG_F32) { float *p = mg_f32(t), f = (float)v; for (int64_t i = 0; i < t->numel; i++) p[i] = f; }
    else { double *p = mg_f64(t); for (int64_t i = 0; i < t->numel; i++) p[i] = v; }
  } else {
    mg_tensor *s = mg_scalar(t->rt, t->dtype, v);
    if (!s) return -1;
    int r = mg_copy_(t, s);
    mg_release(s);
    return r;
  }
  mg_bump_version(t);
  return 0;
}

mg_tensor *mg_full(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, double v) {
  mg_tensor *t = mg_empty(rt, dt, ndim, shape);
  if (t && v == 0) memset(mg_data(t), 0, (size_t)t->numel * mg_dtype_size(dt));
  else if (t) mg_fill_(t, v);
  if (t) t->st->version = 0;
  return t;
}

/* t's shape was checked when t was made */
mg_tensor *mg_empty_like(const mg_tensor *t) { return empty(t->rt, t->dtype, t->ndim, t->shape, t->numel); }
mg_tensor *mg_zeros_like(const mg_tensor *t) { return mg_full(t->rt, t->dtype, t->ndim, t->shape, 0); }
mg_tensor *mg_scalar(mg_rt *rt, mg_dtype dt, double v) {
  mg_tensor *t = empty(rt, dt, 0, NULL, 1);
  if (t && dt == MG_F32) *mg_f32(t) = (float)v;
  else if (t) *mg_f64(t) = v;
  return t;
}

mg_tensor *mg_from_data(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, const double *vals) {
  mg_tensor *t = mg_empty(rt, dt, ndim, shape);
  if (!t) return NULL;
  if (dt == MG_F32) { float *p = mg_f32(t); for (int64_t i = 0; i < t->numel; i++) p[i] = (float)vals[i]; }
  else memcpy(mg_f64(t), vals, (size_t)t->numel * sizeof(double));
  return t;
}

mg_tensor *mg_wrap(mg_rt *rt, mg_dtype dt, int ndim, const int64_t *shape, void *data,
                   mg_st_kind kind, void (*release)(void *, void *), void *ud) {
  int64_t n;
  if (!data || check_shape(rt, ndim, shape, &n)) {
    if (!data) mg_seterr(rt, "wrap: data pointer is NULL");
    if (kind == MG_ST_CALLBACK && release) release(data, ud);
    return NULL;
  }
  mg_storage *s = storage_alloc(rt);
  s->rt = rt;
  s->data = data;
  s->nbytes = (size_t)n * mg_dtype_size(dt);
  s->refcount = 0;
  s->kind = kind;
  s->release = release;
  s->ud = ud;
  return header(rt, s, dt, ndim, shape);
}

/* ---- inspection ----------------------------------------------------------- */

bool mg_is_contiguous(const mg_tensor *t) {
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != s) return false;
    s *= t->shape[d];
  }
  return true;
}

bool mg_same_shape(const mg_tensor *a, const mg_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++) if (a->shape[d] != b->shape[d]) return false;
  return true;
}

char *mg_dims_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "{");
  for (int d = 0; d < ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)shape[d]);
  if (k < n) snprintf(buf + k, n - k, "}");
  return buf;
}

char *mg_shape_str(const mg_tensor *t, char *buf, size_t n) { return mg_dims_str(t->ndim, t->shape, buf, n); }

int mg_check_alive(const mg_tensor *t, const char *op) {
  if (t->st->detached)
    return mg_seterr(t->rt, "%s: tensor wraps host memory that the host has detached", op);
  return 0;
}

void mg_bump_version(mg_tensor *t) { t->st->version++; }

double mg_get_flat(const mg_tensor *t, int64_t i) {
  int64_t off = 0;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->stride[d];
    i /= t->shape[d];
  }
  return t->dtype == MG_F32 ? (double)mg_f32(t)[off] : mg_f64(t)[off];
}

/* ---- copies ----------------------------------------------------------------- */

int mg_broadcast_shape(const char *op, const mg_tensor *a, const mg_tensor *b, int *ondim, int64_t *out) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < n; d++) {
    int da = d - (n - a->ndim), db = d - (n - b->ndim);
    int64_t sa = da < 0 ? 1 : a->shape[da], sb = db < 0 ? 1 : b->shape[db];
    if (sa != sb && sa != 1 && sb != 1) {
      char s1[128], s2[128];
      return mg_seterr(a->rt, "%s: shapes %s and %s cannot be broadcast (size %lld vs %lld at dim %d)", op,
                       mg_shape_str(a, s1, sizeof s1), mg_shape_str(b, s2, sizeof s2),
                       (long long)sa, (long long)sb, d + 1);
    }
    out[d] = sa == 1 ? sb : sa;
  }
  *ondim = n;
  return 0;
}

/* dst[...] = src[...] over dst's shape, src broadcast; dtypes may differ */
static void strided_copy(mg_tensor *dst, const mg_tensor *src) {
  int nd = dst->ndim ? dst->ndim : 1;
  int64_t shape[MG_MAX_DIMS] = {0}, sd[MG_MAX_DIMS] = {0}, ss[MG_MAX_DIMS] = {0};
  if (dst->ndim == 0) { shape[0] = 1; sd[0] = 0; ss[0] = 0; }
  else {
    memcpy(shape, dst->shape, sizeof shape);
    memcpy(sd, dst->stride, sizeof sd);
    mg_bcast_strides(src, nd, ss);
  }
  mg_iter it;
  mg_iter_init(&it, nd, shape);
  int64_t n = shape[nd - 1], a = sd[nd - 1], b = ss[nd - 1];
  char *dp = mg_data(dst), *sp = mg_data(src);
  do {
    int64_t od = mg_iter_off(&it, sd), os = mg_iter_off(&it, ss);
    if (dst->dtype == MG_F32 && src->dtype == MG_F32) {
      float *y = (float *)dp + od, *x = (float *)sp + os;
      if (a == 1 && b == 1) memcpy(y, x, (size_t)n * 4);
      else for (int64_t i = 0; i < n; i++) y[i * a] = x[i * b];
    } else if (dst->dtype == MG_F64 && src->dtype == MG_F64) {
      double *y = (double *)dp + od, *x = (double *)sp + os;
      if (a == 1 && b == 1) memcpy(y, x, (size_t)n * 8);
      else for (int64_t i = 0; i < n; i++) y[i * a] = x[i * b];
    } else if (dst->dtype == MG_F32) {
      float *y = (float *)dp + od; double *x = (double *)sp + os;
      for (int64_t i = 0; i < n; i++) y[i * a] = (float)x[i * b];
    } else {
      double *y = (double *)dp + od; float *x = (float *)sp + os;
      for (int64_t i = 0; i < n; i++) y[i * a] = x[i * b];
    }
  } while (mg_iter_next(&it));
}

int mg_copy_(mg_tensor *dst, mg_tensor *src) {
  if (mg_check_alive(dst, "copy_") || mg_check_alive(src, "copy_")) return -1;
  int nd;
  int64_t shape[MG_MAX_DIMS];
  if (mg_broadcast_shape("copy_", dst, src, &nd, shape)) return -1;
  if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd)) {
    char s1[128], s2[128];
    return mg_seterr(dst->rt, "copy_: source of shape %s cannot be broadcast to destination shape %s",
                     mg_shape_str(src, s1, sizeof s1), mg_shape_str(dst, s2, sizeof s2));
  }
  if (dst->numel) strided_copy(dst, src);
  mg_bump_version(dst);
  return 0;
}

mg_tensor *mg_copy_as(mg_tensor *t, mg_dtype dt) {
  if (mg_check_alive(t, "copy")) return NULL;
  mg_tensor *o = mg_empty(t->rt, dt, t->ndim, t->shape);
  if (o && o->numel) strided_copy(o, t);
  return o;
}

mg_tensor *mg_dense(mg_tensor *t, mg_dtype dt) {
  if (t->dtype == dt && mg_is_contiguous(t)) return mg_retain(t);
  return mg_copy_as(t, dt);
}

/* ---- sum_to: reduce a broadcast gradient to a shape ------------------------- */

mg_tensor *mg_sum_to(mg_tensor *g, int ndim, const int64_t *shape) {
  if (g->ndim == ndim && !memcmp(g->shape, shape, sizeof(int64_t) * (size_t)ndim)) return mg_retain(g);
  mg_tensor *o = mg_full(g->rt, g->dtype, ndim, shape, 0);
  if (!o) return NULL;
  /* walk g; accumulate into o through broadcast strides (0 on reduced dims) */
  int nd = g->ndim ? g->ndim : 1;
  int64_t gs[MG_MAX_DIMS] = {0}, os[MG_MAX_DIMS] = {0}, gshape[MG_MAX_DIMS] = {0};
  if (g->ndim == 0) { gshape[0] = 1; gs[0] = 0; os[0] = 0; }
  else { memcpy(gshape, g->shape, sizeof gshape); memcpy(gs, g->stride, sizeof gs); mg_bcast_strides(o, nd, os); }
  mg_iter it;
  mg_iter_init(&it, nd, gshape);
  int64_t n = gshape[nd - 1], a = gs[nd - 1], b = os[nd - 1];
  do {
    int64_t og = mg_iter_off(&it, gs), oo = mg_iter_off(&it, os);
    if (g->dtype == MG_F32) {
      float *x = mg_f32(g) + og, *y = mg_f32(o) + oo;
      if (b == 0) { double s = 0; for (int64_t i = 0; i < n; i++) s += x[i * a]; y[0] += (float)s; }
      else for (int64_t i = 0; i < n; i++) y[i * b] += x[i * a];
    } else {
      double *x = mg_f64(g) + og, *y = mg_f64(o) + oo;
      if (b == 0) { double s = 0; for (int64_t i = 0; i < n; i++) s += x[i * a]; y[0] += s; }
      else for (int64_t i = 0; i < n; i++) y[i * b] += x[i * a];
    }
  } while (mg_iter_next(&it));
  return o;
}
