/*
** k_linalg.c — matmul (1-D, 2-D, batched with broadcasting), dot, outer and
** linear through OpenBLAS; forward and backward side by side.
**
** A matrix operand is described by a pointer and row/column strides. When the
** strides already form a row-major matrix or the transpose of one (a
** transposed or narrowed view), it goes to gemm as it is, with CblasTrans if
** needed; only other layouts (expanded, permuted N-d) are packed first.
*/
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"
#include "mg_parallel.h"

typedef struct { char *p; int64_t r, c, sr, sc; } mat;  /* r x c, element (i, j) at p + (i*sr + j*sc) */

static mat mat2d(const mg_tensor *t) {
  return (mat){mg_data(t), t->shape[0], t->shape[1], t->stride[0], t->stride[1]};
}

/* can gemm read m as it is (row-major, maybe transposed)? */
static bool blas_view(const mat *m, CBLAS_TRANSPOSE *tr, int64_t *ld) {
  int64_t r1 = m->r > 1 ? m->r : 1, c1 = m->c > 1 ? m->c : 1;
  if ((m->c == 1 || m->sc == 1) && (m->r == 1 || m->sr >= c1)) {
    *tr = CblasNoTrans;
    *ld = m->r == 1 ? c1 : m->sr;
    return true;
  }
  if ((m->r == 1 || m->sr == 1) && (m->c == 1 || m->sc >= r1)) {
    *tr = CblasTrans;
    *ld = m->c == 1 ? r1 : m->sc;
    return true;
  }
  return false;
}

/* a row-major copy of m (malloc'd) */
static void *pack(const mat *m, size_t es) {
  char *o = malloc((size_t)(m->r * m->c) * es + 1);
  if (!o) return NULL;
  for (int64_t i = 0; i < m->r; i++)
    for (int64_t j = 0; j < m->c; j++)
      memcpy(o + (size_t)(i * m->c + j) * es, m->p + (size_t)(i * m->sr + j * m->sc) * es, es);
  return o;
}

/* products of at most this many multiply-adds skip BLAS (measured: the call
** alone costs what ~64 multiply-adds do) */
#define TINY_GEMM 64
/* OpenBLAS runs on one thread (mg_rt_new); a product of at least 2 * PAR_MACS
** multiply-adds is cut into pieces of whole SPLIT-row (or column, when N > M)
** blocks, one gemm each on moongrad's threads. Each element is computed as the
** one-thread call computes it, so results do not depend on the thread count. */
#define PAR_MACS ((int64_t)1 << 18)
#define SPLIT 16

typedef struct {
  mg_dtype dt;
  size_t es;
  CBLAS_TRANSPOSE ta, tb;
  int64_t M, N, K;
  const char *a, *b;
  int64_t lda, ldb;
  double beta;
  char *c;
  bool rows;  /* split M (else N) */
} gjob;

/* C[rows or columns lo*SPLIT .. hi*SPLIT) of the product */
static void gemm_piece(void *ctx, int64_t lo, int64_t hi, int tid) {
  const gjob *j = ctx;
  (void)tid;
  int64_t n = j->rows ? j->M : j->N, i0 = lo * SPLIT, i1 = hi * SPLIT < n ? hi * SPLIT : n;
  int64_t M = j->M, N = j->N;
  const char *a = j->a, *b = j->b;
  char *c = j->c;
  if (j->rows) {  /* rows i0..i1 of op(A) and C */
    M = i1 - i0;
    a += j->es * (size_t)(j->ta == CblasNoTrans ? i0 * j->lda : i0);
    c += j->es * (size_t)(i0 * j->N);
  } else {        /* columns i0..i1 of op(B) and C */
    N = i1 - i0;
    b += j->es * (size_t)(j->tb == CblasNoTrans ? i0 : i0 * j->ldb);
    c += j->es * (size_t)i0;
  }
  if (j->dt == MG_F32)
    cblas_sgemm(CblasRowMajor, j->ta, j->tb, (int)M, (int)N, (int)j->K, 1.0f, (const float *)a, (int)j->lda,
                (const float *)b, (int)j->ldb, (float)j->beta, (float *)c, (int)j->N);
  else
    cblas_dgemm(CblasRowMajor, j->ta, j->tb, (int)M, (int)N, (int)j->K, 1.0, (const double *)a, (int)j->lda,
                (const double *)b, (int)j->ldb, j->beta, (double *)c, (int)j->N);
}

/* c (row-major m x n, contiguous) = a @ b + beta * c */
static int gemm(mg_rt *rt, const char *op, mg_dtype dt, mat a, mat b, void *c, double beta) {
  int64_t M = a.r, K = a.c, N = b.c;
  size_t es = mg_dtype_size(dt);
  if (M == 0 || N == 0) return 0;
  if (K == 0) {
    if (beta == 0) memset(c, 0, (size_t)(M * N) * es);
    return 0;
  }
  if (M <= TINY_GEMM && N <= TINY_GEMM && K <= TINY_GEMM && M * N * K <= TINY_GEMM) {  /* a BLAS call costs ~0.3 us; a tiny product is cheaper by hand */
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        if (dt == MG_F32)
          for (int64_t k = 0; k < K; k++) s += (double)((float *)a.p)[i * a.sr + k * a.sc] * ((float *)b.p)[k * b.sr + j * b.sc];
        else
          for (int64_t k = 0; k < K; k++) s += ((double *)a.p)[i * a.sr + k * a.sc] * ((double *)b.p)[k * b.sr + j * b.sc];
        if (dt == MG_F32) { float *o = (float *)c + i * N + j; *o = (float)(s + (beta != 0 ? beta * *o : 0)); }
        else { double *o = (double *)c + i * N + j; *o = s + (beta != 0 ? beta * *o : 0); }
      }
    return 0;
  }
  CBLAS_TRANSPOSE ta, tb;
  int64_t lda, ldb;
  void *pa = NULL, *pb = NULL;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)  /* before packing gigabytes for nothing */
    return mg_seterr(rt, "%s: a %lld x %lld x %lld product is too large for BLAS", op, (long long)M, (long long)K, (long long)N);
  if (!blas_view(&a, &ta, &lda)) {
    if (!(pa = pack(&a, es))) return mg_seterr(rt, "%s: out of memory packing a %lld x %lld matrix", op, (long long)M, (long long)K);
    a.p = pa; ta = CblasNoTrans; lda = K;
  }
  if (!blas_view(&b, &tb, &ldb)) {
    if (!(pb = pack(&b, es))) {
      free(pa);
      return mg_seterr(rt, "%s: out of memory packing a %lld x %lld matrix", op, (long long)K, (long long)N);
    }
    b.p = pb; tb = CblasNoTrans; ldb = N;
  }
  int r = 0;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX)
    r = mg_seterr(rt, "%s: a %lld x %lld x %lld product is too large for BLAS", op, (long long)M, (long long)K, (long long)N);
  else if (N == 1 || M == 1) {  /* a matrix-vector product: gemv is several times faster */
    /* N == 1: c = op(A) b. M == 1: c^T = op(B)^T a^T. The matrix as stored is sr x sc. */
    bool col = N == 1;
    CBLAS_TRANSPOSE mt;
    int sr, sc, ld, inc;
    const void *mp, *vp;
    if (col) {
      mt = ta; mp = a.p; vp = b.p; ld = (int)lda;
      sr = ta == CblasNoTrans ? (int)M : (int)K;
      sc = ta == CblasNoTrans ? (int)K : (int)M;
      inc = tb == CblasNoTrans ? (int)ldb : 1;  /* b is K x 1 */
    } else {
      mt = tb == CblasNoTrans ? CblasTrans : CblasNoTrans; mp = b.p; vp = a.p; ld = (int)ldb;
      sr = tb == CblasNoTrans ? (int)K : (int)N;
      sc = tb == CblasNoTrans ? (int)N : (int)K;
      inc = ta == CblasNoTrans ? 1 : (int)lda;  /* a is 1 x K */
    }
    if (dt == MG_F32) cblas_sgemv(CblasRowMajor, mt, sr, sc, 1.0f, mp, ld, vp, inc, (float)beta, c, 1);
    else cblas_dgemv(CblasRowMajor, mt, sr, sc, 1.0, mp, ld, vp, inc, beta, c, 1);
  } else {
    gjob j = {dt, es, ta, tb, M, N, K, a.p, b.p, lda, ldb, beta, c, M >= N};
    int64_t nblk = ((j.rows ? M : N) + SPLIT - 1) / SPLIT;  /* pieces of SPLIT rows or columns */
    int64_t per = SPLIT * (j.rows ? N : M) * K;             /* multiply-adds in one piece */
    int64_t min_each = (PAR_MACS + per - 1) / per;
    int nt = mg_par_threads(rt, nblk, min_each);  /* one piece per thread: each gemm call packs A again */
    mg_parallel_for(rt, nblk, nblk / nt, gemm_piece, &j);
  }
  free(pa);
  free(pb);
  return r;
}

/* t in dtype dt: t itself (retained) or a contiguous copy without history */
static mg_tensor *in_dtype(mg_tensor *t, mg_dtype dt) { return t->dtype == dt ? mg_retain(t) : mg_copy_as(t, dt); }

/* gin[k] = g in input k's dtype; takes g */
static int give(mg_node *n, int k, mg_tensor *g, mg_tensor **gin) {
  if (!g) return -1;
  gin[k] = mg_to(g, n->in[k].dtype);
  mg_release(g);
  return gin[k] ? 0 : -1;
}

/* ---- matmul ---------------------------------------------------------------------- */

static mg_tensor *tr(mg_tensor *t) { return mg_transpose(t, t->ndim - 2, t->ndim - 1); }

/* a and b seen with their 1-D operands made 2-D: A' {.., m, k}, B' {.., k, n}; G' the gradient
** with the removed dims put back. gA' = G' @ B'^T, gB' = A'^T @ G', summed over broadcast dims. */
static int matmul_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *a = mg_saved(n, 0), *b = a ? mg_saved(n, 1) : NULL;
  if (!b) return -1;
  mg_tensor *A = a->ndim == 1 ? mg_unsqueeze(a, 0) : mg_retain(a);
  mg_tensor *B = b->ndim == 1 ? mg_unsqueeze(b, 1) : mg_retain(b);
  int nd = (int)n->i[0];
  int64_t gs[MG_MAX_DIMS];
  for (int d = 0; d < nd; d++) gs[d] = n->i[1 + d];
  mg_tensor *G = mg_reshape(g, nd, gs);
  int r = A && B && G ? 0 : -1;
  if (!r && mg_node_needs(n, 0)) {
    mg_tensor *bt = tr(B), *ga = bt ? mg_matmul(G, bt) : NULL;
    mg_tensor *s = ga ? mg_sum_to(ga, A->ndim, A->shape) : NULL;
    r |= give(n, 0, s ? mg_reshape(s, a->ndim, a->shape) : NULL, gin);
    mg_release(bt); mg_release(ga); mg_release(s);
  }
  if (!r && mg_node_needs(n, 1)) {
    mg_tensor *gb = NULL;
    if (B->ndim == 2 && A->ndim > 2) {  /* one gemm over all the rows of the batch */
      int64_t rows = 1;
      for (int d = 0; d < A->ndim - 1; d++) rows *= A->shape[d];
      int64_t ka[2] = {rows, A->shape[A->ndim - 1]}, kg[2] = {rows, G->shape[nd - 1]};
      mg_tensor *a2 = mg_reshape(A, 2, ka), *g2 = mg_reshape(G, 2, kg), *at = a2 ? tr(a2) : NULL;
      gb = at && g2 ? mg_matmul(at, g2) : NULL;
      mg_release(a2); mg_release(g2); mg_release(at);
    } else {
      mg_tensor *at = tr(A), *p = at ? mg_matmul(at, G) : NULL;
      gb = p ? mg_sum_to(p, B->ndim, B->shape) : NULL;
      mg_release(at); mg_release(p);
    }
    r |= give(n, 1, gb ? mg_reshape(gb, b->ndim, b->shape) : NULL, gin);
    mg_release(gb);
  }
  mg_release(A); mg_release(B); mg_release(G);
  return r;
}

mg_tensor *mg_matmul(mg_tensor *a0, mg_tensor *b0) {
  if (mg_check_alive(a0, "matmul") || mg_check_alive(b0, "matmul")) return NULL;
  mg_rt *rt = a0->rt;
  char s1[128], s2[128];
  if (a0->ndim == 0 || b0->ndim == 0) {
    mg_seterr(rt, "matmul: both arguments need at least 1 dim, got shapes %s and %s", mg_shape_str(a0, s1, sizeof s1),
              mg_shape_str(b0, s2, sizeof s2));
    return NULL;
  }
  int an = a0->ndim, bn = b0->ndim;
  int64_t k = a0->shape[an - 1], kb = b0->shape[bn == 1 ? 0 : bn - 2];
  if (k != kb) {
    mg_seterr(rt, "matmul: shapes %s and %s do not match (%lld ~= %lld)", mg_shape_str(a0, s1, sizeof s1),
              mg_shape_str(b0, s2, sizeof s2), (long long)k, (long long)kb);
    return NULL;
  }
  /* broadcast batch dims */
  int ba = an > 2 ? an - 2 : 0, bb = bn > 2 ? bn - 2 : 0, nb = ba > bb ? ba : bb;
  int64_t bshape[MG_MAX_DIMS], nbatch = 1;
  for (int d = 0; d < nb; d++) {
    int da = d - (nb - ba), db = d - (nb - bb);
    int64_t x = da < 0 ? 1 : a0->shape[da], y = db < 0 ? 1 : b0->shape[db];
    if (x != y && x != 1 && y != 1) {
      mg_seterr(rt, "matmul: batch dims of shapes %s and %s cannot be broadcast (size %lld vs %lld at batch dim %d)",
                mg_shape_str(a0, s1, sizeof s1), mg_shape_str(b0, s2, sizeof s2), (long long)x, (long long)y, d + 1);
      return NULL;
    }
    bshape[d] = x == 1 ? y : x;
    nbatch *= bshape[d];
  }
  mg_dtype dt = mg_promote(a0->dtype, b0->dtype);
  mg_tensor *a = in_dtype(a0, dt), *b = a ? in_dtype(b0, dt) : NULL;
  if (!b) { mg_release(a); return NULL; }
  int64_t m = an >= 2 ? a->shape[an - 2] : 1, n = bn >= 2 ? b->shape[bn - 1] : 1;
  int64_t oshape[MG_MAX_DIMS], full[MG_MAX_DIMS];
  int ond = 0;
  for (int d = 0; d < nb; d++) oshape[ond++] = full[d] = bshape[d];
  full[nb] = m;
  full[nb + 1] = n;
  if (an >= 2) oshape[ond++] = m;
  if (bn >= 2) oshape[ond++] = n;
  mg_tensor *out = mg_empty(rt, dt, ond, oshape);
  mat A = {mg_data(a), m, k, an >= 2 ? a->stride[an - 2] : k, a->stride[an - 1]};
  mat B = {mg_data(b), k, n, bn >= 2 ? b->stride[bn - 2] : b->stride[0], bn >= 2 ? b->stride[bn - 1] : 1};
  size_t es = mg_dtype_size(dt);
  int r = out ? 0 : -1;
  if (!r && (nb == 0 || (bb == 0 && mg_is_contiguous(a)))) {  /* one gemm; a's batch folds into its rows */
    A.r = m * nbatch;
    A.sr = k;
    if (nb == 0) A.sr = an >= 2 ? a->stride[an - 2] : k;
    r = gemm(rt, "matmul", dt, A, B, mg_data(out), 0);
  } else if (!r) {
    int64_t sa[MG_MAX_DIMS], sb[MG_MAX_DIMS];
    for (int d = 0; d < nb; d++) {
      int da = d - (nb - ba), db = d - (nb - bb);
      sa[d] = da < 0 || a->shape[da] == 1 ? 0 : a->stride[da];
      sb[d] = db < 0 || b->shape[db] == 1 ? 0 : b->stride[db];
    }
    char *pa = mg_data(a), *pb = mg_data(b), *po = mg_data(out);
    for (int64_t t = 0; t < nbatch && !r; t++) {
      int64_t oa = 0, ob = 0, rem = t;
      for (int d = nb - 1; d >= 0; d--) {
        int64_t i = rem % bshape[d];
        rem /= bshape[d];
        oa += i * sa[d];
        ob += i * sb[d];
      }
      A.p = pa + (size_t)oa * es;
      B.p = pb + (size_t)ob * es;
      r = gemm(rt, "matmul", dt, A, B, po + (size_t)(t * m * n) * es, 0);
    }
  }
  mg_release(a);
  mg_release(b);
  if (r) { mg_release(out); return NULL; }
  mg_tensor *in[2] = {a0, b0};
  mg_node *nd = mg_record(out, "matmul", matmul_bw, 2, in);
  if (nd) {
    nd->i[0] = nb + 2;
    for (int d = 0; d < nb + 2; d++) nd->i[1 + d] = full[d];
    mg_save(nd, a0);
    mg_save(nd, b0);
  }
  return out;
}

/* ---- dot, outer ------------------------------------------------------------------------ */

static int check_1d(mg_tensor *a, mg_tensor *b, const char *op) {
  char s1[128], s2[128];
  if (mg_check_alive(a, op) || mg_check_alive(b, op)) return -1;
  if (a->ndim != 1 || b->ndim != 1)
    return mg_seterr(a->rt, "%s: expected two 1-D tensors, got shapes %s and %s", op, mg_shape_str(a, s1, sizeof s1),
                     mg_shape_str(b, s2, sizeof s2));
  return 0;
}

static int dot_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *a = mg_saved(n, 0), *b = a ? mg_saved(n, 1) : NULL;
  if (!b) return -1;
  int r = 0;
  if (mg_node_needs(n, 0)) r |= give(n, 0, mg_binary(MG_MUL, g, b), gin);
  if (!r && mg_node_needs(n, 1)) r |= give(n, 1, mg_binary(MG_MUL, g, a), gin);
  return r;
}

mg_tensor *mg_dot(mg_tensor *a0, mg_tensor *b0) {
  if (check_1d(a0, b0, "dot")) return NULL;
  if (a0->shape[0] != b0->shape[0]) {
    char s1[128], s2[128];
    mg_seterr(a0->rt, "dot: shapes %s and %s do not match (%lld ~= %lld)", mg_shape_str(a0, s1, sizeof s1),
              mg_shape_str(b0, s2, sizeof s2), (long long)a0->shape[0], (long long)b0->shape[0]);
    return NULL;
  }
  if (a0->shape[0] > INT_MAX) {  /* before copying gigabytes for nothing */
    mg_seterr(a0->rt, "dot: %lld elements is too many for BLAS", (long long)a0->shape[0]);
    return NULL;
  }
  mg_dtype dt = mg_promote(a0->dtype, b0->dtype);
  mg_tensor *a = in_dtype(a0, dt), *b = a ? in_dtype(b0, dt) : NULL;
  if (!b) { mg_release(a); return NULL; }
  /* BLAS takes int strides >= 1; other layouts are copied */
  if (a->stride[0] < 1 || a->stride[0] > INT_MAX) { mg_tensor *c = mg_copy_as(a, dt); mg_release(a); a = c; }
  if (a && (b->stride[0] < 1 || b->stride[0] > INT_MAX)) { mg_tensor *c = mg_copy_as(b, dt); mg_release(b); b = c; }
  mg_tensor *out = NULL;
  int64_t len = a0->shape[0];
  if (!a || !b) ;
  else if (len > INT_MAX) mg_seterr(a0->rt, "dot: %lld elements is too many for BLAS", (long long)len);
  else if (dt == MG_F32)  /* float32 accumulated in double */
    out = mg_scalar(a0->rt, dt, len ? cblas_dsdot((int)len, mg_f32(a), (int)a->stride[0], mg_f32(b), (int)b->stride[0]) : 0);
  else out = mg_scalar(a0->rt, dt, len ? cblas_ddot((int)len, mg_f64(a), (int)a->stride[0], mg_f64(b), (int)b->stride[0]) : 0);
  mg_release(a);
  mg_release(b);
  if (!out) return NULL;
  mg_tensor *in[2] = {a0, b0};
  mg_node *n = mg_record(out, "dot", dot_bw, 2, in);
  if (n) { mg_save(n, a0); mg_save(n, b0); }
  return out;
}

/* ga = G @ b, gb = G^T @ a */
static int outer_bw(mg_node *n, mg_tensor *g, mg_tensor **gin) {
  mg_tensor *a = mg_saved(n, 0), *b = a ? mg_saved(n, 1) : NULL;
  if (!b) return -1;
  int r = 0;
  if (mg_node_needs(n, 0)) r |= give(n, 0, mg_matmul(g, b), gin);
  if (!r && mg_node_needs(n, 1)) {
    mg_tensor *gt = mg_transpose(g, 0, 1);
    r |= give(n, 1, gt ? mg_matmul(gt, a) : NULL, gin);
    mg_release(gt);
  }
  return r;
}

mg_tensor *mg_outer(mg_tensor *a0, mg_tensor *b0) {
  if (check_1d(a0, b0, "outer")) return NULL;
  mg_dtype dt = mg_promote(a0->dtype, b0->dtype);
  mg_tensor *a = in_dtype(a0, dt), *b = a ? in_dtype(b0, dt) : NULL;
  int64_t m = a0->shape[0], n = b0->shape[0];
  mg_tensor *out = b ? mg_empty(a0->rt, dt, 2, (int64_t[]){m, n}) : NULL;
  if (out) {
    int64_t sa = a->stride[0], sb = b->stride[0];
    for (int64_t i = 0; i < m; i++) {
      if (dt == MG_F32) {
        float *o = mg_f32(out) + i * n, x = mg_f32(a)[i * sa], *y = mg_f32(b);
        for (int64_t j = 0; j < n; j++) o[j] = x * y[j * sb];
      } else {
        double *o = mg_f64(out) + i * n, x = mg_f64(a)[i * sa], *y = mg_f64(b);
        for (int64_t j = 0; j < n; j++) o[j] = x * y[j * sb];
      }
    }
  }
  mg_release(a);
  mg_release(b);
  if (!out) return NULL;
  mg_tensor *in[2] = {a0, b0};
  mg_node *nd = mg_record(out, "outer", outer_bw, 2, in);
  if (nd) { mg_save(nd, a0); mg_save(nd, b0); }
  return out;
}

/* ---- linear: y = x @ w^T + b ------------------------------------------------------------ */

/* x {..., k} as an m x k matrix: its own strides when 1-D or 2-D or contiguous, else a copy (*tmp) */
static int rows_of(mg_tensor *x, int64_t m, int64_t k, mat *A, mg_tensor **tmp) {
  *tmp = NULL;
  if (x->ndim == 2) { *A = mat2d(x); return 0; }
  if (x->ndim == 1) { *A = (mat){mg_data(x), 1, k, k, x->stride[0]}; return 0; }
  if (!mg_is_contiguous(x) && !(*tmp = x = mg_copy_as(x, x->dtype))) return -1;
  *A = (mat){mg_data(x), m, k, k, 1};
  return 0;
}

/* gx = g @ w, gw = g^T @ x, gb = g summed over the rows: one gemm each */
static int linear_bw(mg_node *n, mg_tensor *g0, mg_tensor **gin) {
  mg_tensor *x = mg_saved(n, 0), *w = x ? mg_saved(n, 1) : NULL;
  if (!w) return -1;
  mg_dtype dt = x->dtype;
  int64_t N = w->shape[0], K = w->shape[1], M = K ? x->numel / K : 0;
  if (!K) { M = 1; for (int d = 0; d < x->ndim - 1; d++) M *= x->shape[d]; }
  mg_tensor *gd = in_dtype(g0, dt), *g = gd ? mg_reshape(gd, 2, (int64_t[]){M, N}) : NULL;
  mg_release(gd);
  if (!g) return -1;
  mat G = mat2d(g);
  int r = 0;
  if (mg_node_needs(n, 0)) {
    mg_tensor *gx = mg_empty(n->rt, dt, 2, (int64_t[]){M, K});
    if (gx && gemm(n->rt, "linear", dt, G, mat2d(w), mg_data(gx), 0)) { mg_release(gx); gx = NULL; }
    r |= give(n, 0, gx ? mg_reshape(gx, x->ndim, x->shape) : NULL, gin);
    mg_release(gx);
  }
  if (!r && mg_node_needs(n, 1)) {
    mg_tensor *tmp = NULL, *gw = mg_empty(n->rt, dt, 2, (int64_t[]){N, K});
    mat X, GT = {G.p, N, M, G.sc, G.sr};
    if (gw && (rows_of(x, M, K, &X, &tmp) || gemm(n->rt, "linear", dt, GT, X, mg_data(gw), 0))) {
      mg_release(gw);
      gw = NULL;
    }
    mg_release(tmp);
    r |= give(n, 1, gw, gin);
  }
  if (!r && n->nin > 2 && mg_node_needs(n, 2)) r |= give(n, 2, mg_sum(g, 0, false), gin);
  mg_release(g);
  return r;
}

mg_tensor *mg_linear(mg_tensor *x0, mg_tensor *w0, mg_tensor *b0) {
  if (mg_check_alive(x0, "linear") || mg_check_alive(w0, "linear") || (b0 && mg_check_alive(b0, "linear"))) return NULL;
  mg_rt *rt = x0->rt;
  char s1[128], s2[128];
  if (w0->ndim != 2) {
    mg_seterr(rt, "linear: weight must be 2-D {out, in}, got shape %s", mg_shape_str(w0, s1, sizeof s1));
    return NULL;
  }
  if (x0->ndim == 0 || x0->shape[x0->ndim - 1] != w0->shape[1]) {
    mg_seterr(rt, "linear: input of shape %s and weight of shape %s do not match (%lld ~= %lld)",
              mg_shape_str(x0, s1, sizeof s1), mg_shape_str(w0, s2, sizeof s2),
              (long long)(x0->ndim ? x0->shape[x0->ndim - 1] : 1), (long long)w0->shape[1]);
    return NULL;
  }
  int64_t N = w0->shape[0], K = w0->shape[1], M = 1;
  if (b0 && (b0->ndim != 1 || b0->shape[0] != N)) {
    mg_seterr(rt, "linear: bias of shape %s does not match weight of shape %s (expected {%lld})",
              mg_shape_str(b0, s1, sizeof s1), mg_shape_str(w0, s2, sizeof s2), (long long)N);
    return NULL;
  }
  for (int d = 0; d < x0->ndim - 1; d++) M *= x0->shape[d];
  mg_dtype dt = mg_promote(mg_promote(x0->dtype, w0->dtype), b0 ? b0->dtype : MG_F32);
  mg_tensor *x = in_dtype(x0, dt), *w = x ? in_dtype(w0, dt) : NULL, *tmp = NULL;
  int64_t oshape[MG_MAX_DIMS];
  for (int d = 0; d < x0->ndim - 1; d++) oshape[d] = x0->shape[d];
  oshape[x0->ndim - 1] = N;
  mg_tensor *out = w ? mg_empty(rt, dt, x0->ndim, oshape) : NULL;
  mat X;
  int r = out && !rows_of(x, M, K, &X, &tmp) ? 0 : -1;
  if (!r && b0) {  /* every row starts as the bias; gemm adds x @ w^T */
    for (int64_t j = 0; j < N; j++) {
      double v = b0->dtype == MG_F32 ? mg_f32(b0)[j * b0->stride[0]] : mg_f64(b0)[j * b0->stride[0]];
      if (dt == MG_F32) mg_f32(out)[j] = (float)v; else mg_f64(out)[j] = v;
    }
    size_t row = (size_t)N * mg_dtype_size(dt);
    for (int64_t i = 1; i < M; i++) memcpy((char *)mg_data(out) + (size_t)i * row, mg_data(out), row);
  }
  if (!r) {
    mat WT = {mg_data(w), K, N, w->stride[1], w->stride[0]};
    r = gemm(rt, "linear", dt, X, WT, mg_data(out), b0 ? 1 : 0);
  }
  mg_release(tmp);
  if (r) { mg_release(x); mg_release(w); mg_release(out); return NULL; }
  mg_tensor *in[3] = {x0, w0, b0};
  mg_node *n = mg_record(out, "linear", linear_bw, b0 ? 3 : 2, in);
  if (n) { mg_save(n, x); mg_save(n, w); }
  mg_release(x);
  mg_release(w);
  return out;
}
