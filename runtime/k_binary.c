/*
** k_binary.c — broadcasting binary ops, comparisons and where: forward loops
** and backward rules side by side. A float32/float64 mix computes in float64.
*/
#include <math.h>
#include <string.h>
#include "mg_core.h"
#include "mg_parallel.h"
#include "mg_iter.h"


static const char *binop_name[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
static const char *cmpop_name[] = {"eq", "ne", "lt", "le", "gt", "ge"};

/* o[i] = EXPR(x = a[i*sa], y = b[i*sb]); the common stride patterns get their
** own loops so the compiler vectorises them, and one element skips loop set-up */
#define MAP2(T, EXPR) do { \
    T *o = out; const T *a = pa, *b = pb; \
    if (n == 1) { T x = a[0], y = b[0]; o[0] = (EXPR); } \
    else if (sa == 1 && sb == 1) for (int64_t i = 0; i < n; i++) { T x = a[i], y = b[i]; o[i] = (EXPR); } \
    else if (sa == 1 && sb == 0) { T y = b[0]; for (int64_t i = 0; i < n; i++) { T x = a[i]; o[i] = (EXPR); } } \
    else if (sa == 0 && sb == 1) { T x = a[0]; for (int64_t i = 0; i < n; i++) { T y = b[i]; o[i] = (EXPR); } } \
    else for (int64_t i = 0; i < n; i++) { T x = a[i * sa], y = b[i * sb]; o[i] = (EXPR); } \
  } while (0)

static void loop_f32(int op, bool cmp, int64_t n, void *out, const void *pa, int64_t sa, const void *pb, int64_t sb) {
  if (cmp) switch (op) {
    case MG_EQ: MAP2(float, x == y); return;
    case MG_NE: MAP2(float, x != y); return;
    case MG_LT: MAP2(float, x < y); return;
    case MG_LE: MAP2(float, x <= y); return;
    case MG_GT: MAP2(float, x > y); return;
    case MG_GE: MAP2(float, x >= y); return;
  }
  switch (op) {
    case MG_ADD: MAP2(float, x + y); break;
    case MG_SUB: MAP2(float, x - y); break;
    case MG_MUL: MAP2(float, x * y); break;
    case MG_DIV: MAP2(float, x / y); break;
    case MG_POW: MAP2(float, powf(x, y)); break;
    case MG_MAXIMUM: MAP2(float, (x > y || isnan(x)) ? x : y); break;
    case MG_MINIMUM: MAP2(float, (x < y || isnan(x)) ? x : y); break;
  }
}

static void loop_f64(int op, bool cmp, int64_t n, void *out, const void *pa, int64_t sa, const void *pb, int64_t sb) {
  if (cmp) switch (op) {
    case MG_EQ: MAP2(double, x == y); return;
    case MG_NE: MAP2(double, x != y); return;
    case MG_LT: MAP2(double, x < y); return;
    case MG_LE: MAP2(double, x <= y); return;
    case MG_GT: MAP2(double, x > y); return;
    case MG_GE: MAP2(double, x >= y); return;
  }
  switch (op) {
    case MG_ADD: MAP2(double, x + y); break;
    case MG_SUB: MAP2(double, x - y); break;
    case MG_MUL: MAP2(double, x * y); break;
    case MG_DIV: MAP2(double, x / y); break;
    case MG_POW: MAP2(double, pow(x, y)); break;
    case MG_MAXIMUM: MAP2(double, (x > y || isnan(x)) ? x : y); break;
    case MG_MINIMUM: MAP2(double, (x < y || isnan(x)) ? x : y); break;
  }
}

/* A large flat loop is split over the runtime's threads (elementwise, so no value
** depends on the split). */
typedef struct { int op; bool cmp; mg_dtype dt; int64_t sa, sb; char *o; const char *a, *b; } fjob;

static void flat_piece(void *ctx, int64_t lo, int64_t hi, int tid) {
  const fjob *j = ctx;
  size_t es = mg_dtype_size(j->dt);
  (void)tid;
  (j->dt == MG_F32 ? loop_f32 : loop_f64)(j->op, j->cmp, hi - lo, j->o + es * (size_t)lo, j->a + es * (size_t)(lo * j->sa),
                                          j->sa, j->b + es * (size_t)(lo * j->sb), j->sb);
}

static __attribute__((noinline)) void flat_par(mg_rt *rt, int op, bool cmp, mg_dtype dt, int64_t n, void *out,
                                               const void *a, int64_t sa, const void *b, int64_t sb) {
  fjob j = {op, cmp, dt, sa, sb, out, a, b};
  mg_parallel_for(rt, n, MG_PAR_ELEMS, flat_piece, &j);
}

/* out[i] = a[i*sa] op b[i*sb] for i < n (sa, sb: 1, or 0 for a single element) */
static inline void flat(mg_rt *rt, int op, bool cmp, mg_dtype dt, int64_t n, void *out, const void *a, int64_t sa,
                        const void *b, int64_t sb) {
  if (n >= 2 * MG_PAR_ELEMS && rt->nthreads > 1) flat_par(rt, op, cmp, dt, n, out, a, sa, b, sb);
  else if (dt == MG_F32) loop_f32(op, cmp, n, out, a, sa, b, sb);
  else loop_f64(op, cmp, n, out, a, sa, b, sb);
}

/* out (contiguous, shape of the broadcast) = a op b; a and b of out's dtype */
static void apply(int op, bool cmp, mg_tensor *out, mg_tensor *a, mg_tensor *b) {
  void (*loop)(int, bool, int64_t, void *, const void *, int64_t, const void *, int64_t) =
      out->dtype == MG_F32 ? loop_f32 : loop_f64;
  size_t es = mg_dtype_size(out->dtype);
  char *o = mg_data(out), *pa = mg_data(a), *pb = mg_data(b);
  if (out->numel == 0) return;
  bool ca = mg_is_contiguous(a) && a->numel == out->numel, cb = mg_is_contiguous(b) && b->numel == out->numel;
  if ((ca || a->numel == 1) && (cb || b->numel == 1)) {  /* flat fast path */
    flat(out->rt, op, cmp, out->dtype, out->numel, o, pa, a->numel == 1 && out->numel > 1 ? 0 : 1, pb,
         b->numel == 1 && out->numel > 1 ? 0 : 1);
    return;
  }
  int nd = out->ndim;
  int64_t sa[MG_MAX_DIMS], sb[MG_MAX_DIMS];
  mg_bcast_strides(a, nd, sa);
  mg_bcast_strides(b, nd, sb);
  mg_iter it;
  mg_iter_init(&it, nd, out->shape);
  int64_t n = out->shape[nd - 1], k = 0;
  do {
    loop(op, cmp, n, o + (size_t)k * es, pa + (size_t)mg_iter_off(&it, sa) * es, sa[nd - 1],
         pb + (size_t)mg_iter_off(&it, sb) * es, sb[nd - 1]);
    k += n;
  } while (mg_iter_next(&it));
}

/* a and b in a common dtype (new references) */
static int common(mg_tensor *a, mg_tensor *b, mg_tensor **ca, mg_tensor **cb) {
  mg_dtype dt = mg_promote(a->dtype, b->dtype);
  *ca = a->dtype == dt ? mg_retain(a) : mg_copy_as(a, dt);
  *cb = b->dtype == dt ? mg_retain(b) : mg_copy_as(b, dt);
  if (*ca && *cb) return 0;
  mg_release(*ca); mg_release(*cb);
  return -1;
}

/* contiguous, and same shape, decided without a call for 0- and 1-dim tensors */
static inline bool dense(const mg_tensor *t) {
  return t->ndim == 0 || (t->ndim == 1 && t->stride[0] == 1) || mg_is_contiguous(t);
}
static inline bool same_shape(const mg_tensor *a, const mg_tensor *b) {
  if (a->ndim != b->ndim) return false;
  return a->ndim == 0 || (a->ndim == 1 ? a->shape[0] == b->shape[0] : mg_same_shape(a, b));
}

/* The common case without the broadcast machinery: same dtype, both contiguous,
** same shape, or one side a single element with no more dims than the other
** (the result then has the other's shape): the loop of apply's flat path. False
** if it does not apply; else *out is the result, or NULL with the error set. */
static bool forward_flat(int op, bool cmp, mg_tensor *a, mg_tensor *b, mg_tensor **out) {
  if (a->dtype != b->dtype || a->st->detached || b->st->detached || !dense(a) || !dense(b)) return false;
  const mg_tensor *like;
  int64_t sa = 1, sb = 1;
  if (same_shape(a, b)) like = a;
  else if (b->numel == 1 && b->ndim <= a->ndim) { like = a; sb = 0; }
  else if (a->numel == 1 && a->ndim <= b->ndim) { like = b; sa = 0; }
  else return false;
  mg_tensor *o = *out = mg_empty_like(like);
  if (o && o->numel) flat(o->rt, op, cmp, o->dtype, o->numel, mg_data(o), mg_data(a), sa, mg_data(b), sb);
  return true;
}

static __attribute__((noinline)) mg_tensor *forward_general(int op, bool cmp, mg_tensor *a, mg_tensor *b) {
  const char *name = cmp ? cmpop_name[op] : binop_name[op];
  if (mg_check_alive(a, name) || mg_check_alive(b, name)) return NULL;
  int nd;
  int64_t shape[MG_MAX_DIMS];
  if (mg_broadcast_shape(name, a, b, &nd, shape)) return NULL;
  mg_tensor *x, *y;
  if (common(a, b, &x, &y)) return NULL;
  mg_tensor *out = mg_empty(a->rt, x->dtype, nd, shape);
  if (out) apply(op, cmp, out, x, y);
  mg_release(x);
  mg_release(y);
  return out;
}

static mg_tensor *forward(int op, bool cmp, mg_tensor *a, mg_tensor *b) {
  mg_tensor *out;
  return forward_flat(op, cmp, a, b, &out) ? out : forward_general(op, cmp, a, b);
}

/* ---- backward ------------------------------------------------------------------ */

/* gin[k] = sum_to(g, input k's shape) in input k's dtype; takes g */
static int reduce_to(mg_node *n, int k, mg_tensor *g, mg_tensor **gin) {
  if (!g) return -1;
  mg_tensor *s = mg_sum_to(g, n->in[k].ndim, n->in[k].shape);
  mg_release(g);
  if (!s) return -1;
  gin[k] = mg_to(s, n->in[k].dtype);
  mg_release(s);
  return gin[k] ? 0 : -1;
}

static mg_tensor *mul3(mg_tensor *a, mg_tensor *b, mg_tensor *c) {
  mg_tensor *ab = mg_binary(MG_MUL, a, b);
  if (!ab) return NULL;
  mg_tensor *r = mg_binary(MG_MUL, ab, c);
  mg_release(ab);
  return r;
}

static int binary_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  int op = (int)n->i[0];
  mg_tensor *a = NULL, *b = NULL;
  if (n->nsaved == 2 && (!(a = mg_saved(n, 0)) || !(b = mg_saved(n, 1)))) return -1;
  mg_rt *rt = n->rt;
  int r = 0;
  switch (op) {
    case MG_ADD:
      if (mg_node_needs(n, 0)) r |= reduce_to(n, 0, mg_retain(g), gin);
      if (mg_node_needs(n, 1)) r |= reduce_to(n, 1, mg_retain(g), gin);
      break;
    case MG_SUB:
      if (mg_node_needs(n, 0)) r |= reduce_to(n, 0, mg_retain(g), gin);
      if (mg_node_needs(n, 1)) r |= reduce_to(n, 1, mg_unary(MG_NEG, g, 0, 0), gin);
      break;
    case MG_MUL:
      if (mg_node_needs(n, 0)) r |= reduce_to(n, 0, mg_binary(MG_MUL, g, b), gin);
      if (mg_node_needs(n, 1)) r |= reduce_to(n, 1, mg_binary(MG_MUL, g, a), gin);
      break;
    case MG_DIV:
      if (mg_node_needs(n, 0)) r |= reduce_to(n, 0, mg_binary(MG_DIV, g, b), gin);
      if (mg_node_needs(n, 1)) {  /* -g * a / b^2 */
        mg_tensor *q = mg_binary(MG_DIV, a, b), *q2 = q ? mg_binary(MG_DIV, q, b) : NULL;
        mg_tensor *t = q2 ? mg_binary(MG_MUL, g, q2) : NULL;
        r |= reduce_to(n, 1, t ? mg_unary(MG_NEG, t, 0, 0) : NULL, gin);
        mg_release(q); mg_release(q2); mg_release(t);
      }
      break;
    case MG_POW: {
      if (mg_node_needs(n, 0)) {  /* g * b * a^(b-1) */
        mg_tensor *one = mg_scalar(rt, b->dtype, 1.0), *bm1 = one ? mg_binary(MG_SUB, b, one) : NULL;
        mg_tensor *p = bm1 ? mg_binary(MG_POW, a, bm1) : NULL;
        r |= reduce_to(n, 0, p ? mul3(g, b, p) : NULL, gin);
        mg_release(one); mg_release(bm1); mg_release(p);
      }
      if (mg_node_needs(n, 1)) {  /* g * a^b * log(a), 0 where a == 0 and b >= 0 (as PyTorch) */
        mg_tensor *p = mg_binary(MG_POW, a, b), *l = mg_unary(MG_LOG, a, 0, 0);
        mg_tensor *t = p && l ? mul3(g, p, l) : NULL;
        mg_tensor *z = mg_scalar(rt, a->dtype, 0.0);
        mg_tensor *az = z ? mg_compare(MG_EQ, a, z) : NULL, *bp = z ? mg_compare(MG_GE, b, z) : NULL;
        mg_tensor *m = az && bp ? mg_binary(MG_MUL, az, bp) : NULL;
        mg_tensor *w = m && t ? mg_where(m, z, t) : NULL;
        r |= reduce_to(n, 1, w, gin);
        mg_release(p); mg_release(l); mg_release(t); mg_release(z); mg_release(az); mg_release(bp); mg_release(m);
      }
      break;
    }
    case MG_MAXIMUM: case MG_MINIMUM: {
      /* the larger (smaller) input takes the gradient; a tie splits it in half */
      mg_tensor *half = mg_scalar(rt, g->dtype, 0.5), *eq = mg_compare(MG_EQ, a, b);
      mg_tensor *sel = mg_compare(op == MG_MAXIMUM ? MG_GT : MG_LT, a, b);
      mg_tensor *sel2 = mg_compare(op == MG_MAXIMUM ? MG_LT : MG_GT, a, b);
      mg_tensor *he = half && eq ? mg_binary(MG_MUL, eq, half) : NULL;
      mg_tensor *wa = he && sel ? mg_binary(MG_ADD, sel, he) : NULL, *wb = he && sel2 ? mg_binary(MG_ADD, sel2, he) : NULL;
      if (mg_node_needs(n, 0)) r |= reduce_to(n, 0, wa ? mg_binary(MG_MUL, g, wa) : NULL, gin);
      if (mg_node_needs(n, 1)) r |= reduce_to(n, 1, wb ? mg_binary(MG_MUL, g, wb) : NULL, gin);
      mg_release(half); mg_release(eq); mg_release(sel); mg_release(sel2); mg_release(he); mg_release(wa); mg_release(wb);
      break;
    }
  }
  return r ? -1 : 0;
}

mg_tensor *mg_binary(mg_binop op, mg_tensor *a, mg_tensor *b) {
  mg_tensor *out = forward(op, false, a, b);
  if (!out || (!a->requires_grad && !b->requires_grad)) return out;  /* nothing to record */
  mg_tensor *in[2] = {a, b};
  mg_node *n = mg_record(out, binop_name[op], binary_bw, 2, in);
  if (n) {
    n->i[0] = op;
    if (op != MG_ADD && op != MG_SUB) { mg_save(n, a); mg_save(n, b); }
  }
  return out;
}

mg_tensor *mg_compare(mg_cmpop op, mg_tensor *a, mg_tensor *b) { return forward(op, true, a, b); }

int mg_binary_(mg_binop op, mg_tensor *t, mg_tensor *o, double alpha) {
  const char *name = binop_name[op];
  if (mg_check_alive(t, name) || mg_check_alive(o, name) || mg_check_inplace(name, t, o)) return -1;
  mg_tensor *s = NULL;
  if (alpha != 1.0) {
    mg_tensor *k = mg_scalar(t->rt, o->dtype, alpha);
    if (!k) return -1;
    s = mg_binary(MG_MUL, o, k);
    mg_release(k);
    if (!s) return -1;
    o = s;
  }
  int nd;
  int64_t shape[MG_MAX_DIMS];
  int r = -1;
  if (mg_broadcast_shape(name, t, o, &nd, shape)) goto done;
  if (nd != t->ndim || memcmp(shape, t->shape, sizeof(int64_t) * (size_t)nd)) {
    char s1[128], s2[128];
    mg_seterr(t->rt, "%s_: argument of shape %s cannot be broadcast to the tensor's shape %s (in place)", name,
              mg_shape_str(o, s1, sizeof s1), mg_shape_str(t, s2, sizeof s2));
    goto done;
  }
  if (mg_is_contiguous(t) && o->dtype == t->dtype) {
    apply(op, false, t, t, o);  /* elementwise, so writing over t while reading it is safe */
    mg_bump_version(t);
    r = 0;
  } else {
    mg_tensor *res = forward(op, false, t, o);
    if (res) { r = mg_copy_(t, res); mg_release(res); }
  }
done:
  mg_release(s);
  return r;
}

/* ---- where ---------------------------------------------------------------------- */

static int where_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *c = mg_saved(n, 0);
  if (!c) return -1;
  mg_tensor *z = mg_scalar(n->rt, g->dtype, 0.0);
  if (!z) return -1;
  int r = 0;
  if (mg_node_needs(n, 1)) r |= reduce_to(n, 1, mg_where(c, g, z), gin);
  if (mg_node_needs(n, 2)) r |= reduce_to(n, 2, mg_where(c, z, g), gin);
  mg_release(z);
  return r ? -1 : 0;
}

mg_tensor *mg_where(mg_tensor *cond, mg_tensor *a, mg_tensor *b) {
  if (mg_check_alive(cond, "where") || mg_check_alive(a, "where") || mg_check_alive(b, "where")) return NULL;
  int nd, nd2;
  int64_t s1[MG_MAX_DIMS], s2[MG_MAX_DIMS];
  if (mg_broadcast_shape("where", a, b, &nd, s1)) return NULL;
  mg_tensor *ab = mg_empty(a->rt, mg_promote(a->dtype, b->dtype), nd, s1);  /* shape carrier */
  if (!ab) return NULL;
  int e = mg_broadcast_shape("where", cond, ab, &nd2, s2);
  mg_release(ab);
  if (e) return NULL;
  mg_tensor *x, *y;
  if (common(a, b, &x, &y)) return NULL;
  mg_tensor *out = mg_empty(a->rt, x->dtype, nd2, s2);
  if (!out) { mg_release(x); mg_release(y); return NULL; }
  int64_t sc[MG_MAX_DIMS], sx[MG_MAX_DIMS], sy[MG_MAX_DIMS];
  int n_ = nd2 ? nd2 : 1;
  int64_t shape[MG_MAX_DIMS];
  if (nd2 == 0) { shape[0] = 1; sc[0] = sx[0] = sy[0] = 0; }
  else { memcpy(shape, s2, sizeof shape); mg_bcast_strides(cond, n_, sc); mg_bcast_strides(x, n_, sx); mg_bcast_strides(y, n_, sy); }
  mg_iter it;
  mg_iter_init(&it, n_, shape);
  int64_t n = shape[n_ - 1], k = 0;
  if (out->numel) do {
    int64_t oc = mg_iter_off(&it, sc), ox = mg_iter_off(&it, sx), oy = mg_iter_off(&it, sy);
    for (int64_t i = 0; i < n; i++, k++) {
      double cv = cond->dtype == MG_F32 ? mg_f32(cond)[oc + i * sc[n_ - 1]] : mg_f64(cond)[oc + i * sc[n_ - 1]];
      if (out->dtype == MG_F32) mg_f32(out)[k] = cv != 0 ? mg_f32(x)[ox + i * sx[n_ - 1]] : mg_f32(y)[oy + i * sy[n_ - 1]];
      else mg_f64(out)[k] = cv != 0 ? mg_f64(x)[ox + i * sx[n_ - 1]] : mg_f64(y)[oy + i * sy[n_ - 1]];
    }
  } while (mg_iter_next(&it));
  mg_release(x);
  mg_release(y);
  mg_tensor *in[3] = {NULL, a, b};
  mg_node *nd_ = mg_record(out, "where", where_bw, 3, in);
  if (nd_) mg_save(nd_, cond);
  return out;
}
