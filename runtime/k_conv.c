/*
** k_conv.c — 2-D convolution and pooling on NCHW tensors (a 3-D CHW input is
** one image), forward and backward side by side.
** conv2d: im2col over a chunk of images, then one gemm per group and chunk
** (OpenBLAS); the input gradient goes back through col2im. Pooling: direct
** loops over each plane; max_pool2d remembers its argmax for the backward.
*/
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mg_core.h"
#include "mg_parallel.h"
#include "k_sgemm.h"

/* column buffers come from the runtime's size-class cache: a malloc of this size is an
** mmap and a page fault per page on every call */
static void *scratch(mg_rt *rt, size_t n) { return mg_mem_alloc(rt, n ? n : 1); }
static void unscratch(mg_rt *rt, void *p, size_t n) { mg_mem_free(rt, p, n ? n : 1); }

/* sum of n floats: eight float lanes (vectorised), added up in double */
static double sum_f32(const float *t, int64_t n) {
  float acc[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += t[i + k];
  double s = 0;
  for (; i < n; i++) s += t[i];
  for (int k = 0; k < 8; k++) s += acc[k];
  return s;
}

/* C = op(A) op(B) + beta C, row-major, alpha 1 */
static void gemm(mg_dtype dt, bool ta, bool tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                 double beta, void *C, int ldc) {
  enum CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
  if (dt == MG_F32) cblas_sgemm(CblasRowMajor, a, b, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
  else cblas_dgemm(CblasRowMajor, a, b, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

/* ---- geometry ------------------------------------------------------------------ */

typedef struct {
  int64_t N, C, H, W, O, G, Cg, Og, kh, kw, OH, OW;
  int sh, sw, ph, pw, dh, dw;
} geom;

/* output positions ow whose input column ow*s - p + kj*d falls in [0, W) */
static void col_range(int64_t W, int64_t OW, int s, int p, int64_t off, int64_t *lo, int64_t *hi) {
  int64_t a = p - off, b = W - 1 + p - off;
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  *hi = b < 0 ? 0 : b / s + 1;
  if (*hi > OW) *hi = OW;
  if (*lo > *hi) *lo = *hi;
}

/* im2col over images n0..n0+nb-1 and channel group g: col[K][nb*L], K = Cg*kh*kw,
** L = OH*OW, column (n-n0)*L + oh*OW + ow; zeros where the kernel hangs over the
** padding. col2im is its adjoint: it adds the columns back into the image. Rows are
** short (OW), so they are copied four elements at a time inline: a memcpy call per
** row cost more. */
#define IM2COL(T)                                                                                      \
  static void im2col_##T(const geom *q, const T *x, T *col, int64_t n0, int64_t nb, int64_t g) {        \
    int64_t L = q->OH * q->OW, OW = q->OW, sw = q->sw;                                                 \
    for (int64_t c = 0; c < q->Cg; c++)                                                                \
      for (int64_t ki = 0; ki < q->kh; ki++)                                                           \
        for (int64_t kj = 0; kj < q->kw; kj++) {                                                       \
          T *r = col + ((c * q->kh + ki) * q->kw + kj) * nb * L;                                       \
          int64_t off = kj * q->dw - q->pw, lo, hi;                                                    \
          col_range(q->W, OW, q->sw, q->pw, kj * q->dw, &lo, &hi);                                     \
          for (int64_t n = 0; n < nb; n++) {                                                           \
            const T *plane = x + ((n0 + n) * q->C + g * q->Cg + c) * q->H * q->W;                      \
            for (int64_t oh = 0; oh < q->OH; oh++, r += OW) {                                          \
              int64_t ih = oh * q->sh - q->ph + ki * q->dh;                                            \
              if (ih < 0 || ih >= q->H) { memset(r, 0, sizeof(T) * (size_t)OW); continue; }           \
              const T *restrict src = plane + ih * q->W;                                               \
              T *restrict d = r;                                                                       \
              for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;                                           \
              if (sw == 1) {                                                                           \
                int64_t ow = lo;                                                                       \
                for (; ow + 4 <= hi; ow += 4) memcpy(d + ow, src + ow + off, 4 * sizeof(T));           \
                for (; ow < hi; ow++) d[ow] = src[ow + off];                                           \
              } else for (int64_t ow = lo; ow < hi; ow++) d[ow] = src[ow * sw + off];                  \
              for (int64_t ow = hi; ow < OW; ow++) d[ow] = 0;                                          \
            }                                                                                          \
          }                                                                                            \
        }                                                                                              \
  }                                                                                                    \
  static void col2im_##T(const geom *q, T *x, const T *col, int64_t n0, int64_t nb, int64_t g) {        \
    int64_t L = q->OH * q->OW, OW = q->OW, sw = q->sw;                                                 \
    for (int64_t c = 0; c < q->Cg; c++)                                                                \
      for (int64_t ki = 0; ki < q->kh; ki++)                                                           \
        for (int64_t kj = 0; kj < q->kw; kj++) {                                                       \
          const T *r = col + ((c * q->kh + ki) * q->kw + kj) * nb * L;                                 \
          int64_t off = kj * q->dw - q->pw, lo, hi;                                                    \
          col_range(q->W, OW, q->sw, q->pw, kj * q->dw, &lo, &hi);                                     \
          for (int64_t n = 0; n < nb; n++) {                                                           \
            T *plane = x + ((n0 + n) * q->C + g * q->Cg + c) * q->H * q->W;                            \
            for (int64_t oh = 0; oh < q->OH; oh++, r += OW) {                                          \
              int64_t ih = oh * q->sh - q->ph + ki * q->dh;                                            \
              if (ih < 0 || ih >= q->H) continue;                                                      \
              T *restrict dst = plane + ih * q->W;                                                     \
              const T *restrict s = r;                                                                 \
              if (sw == 1) for (int64_t ow = lo; ow < hi; ow++) dst[ow + off] += s[ow];                \
              else for (int64_t ow = lo; ow < hi; ow++) dst[ow * sw + off] += s[ow];                   \
            }                                                                                          \
          }                                                                                            \
        }                                                                                              \
  }
IM2COL(float)
IM2COL(double)

static void im2col(mg_dtype dt, const geom *q, void *x, void *col, int64_t n0, int64_t nb, int64_t g) {
  if (dt == MG_F32) im2col_float(q, x, col, n0, nb, g); else im2col_double(q, x, col, n0, nb, g);
}
static void col2im(mg_dtype dt, const geom *q, void *x, void *col, int64_t n0, int64_t nb, int64_t g) {
  if (dt == MG_F32) col2im_float(q, x, col, n0, nb, g); else col2im_double(q, x, col, n0, nb, g);
}

/* images per chunk: the column buffer stays near 64K elements, so it is still in
** cache when the gemm reads it (at least one image) */
static int64_t chunk(const geom *q) {
  int64_t per = q->Cg * q->kh * q->kw * q->OH * q->OW;
  int64_t nb = per ? ((int64_t)1 << 16) / per : q->N;
  return nb < 1 ? 1 : nb > q->N ? q->N : nb;
}

/* tmp[o][n*L + p] <-> y[n0+n][g*Og+o][p]; to_y adds bias (may be NULL) */
#define SHUFFLE(T)                                                                                     \
  static void shuffle_##T(const geom *q, T *y, T *tmp, const T *bias, int64_t n0, int64_t nb, int64_t g, \
                          bool to_y) {                                                                 \
    int64_t L = q->OH * q->OW;                                                                         \
    for (int64_t o = 0; o < q->Og; o++)                                                                \
      for (int64_t n = 0; n < nb; n++) {                                                               \
        T *t = tmp + (o * nb + n) * L, *yy = y + ((n0 + n) * q->O + g * q->Og + o) * L;                \
        T bv = bias ? bias[g * q->Og + o] : 0;                                                         \
        if (to_y) for (int64_t p = 0; p < L; p++) yy[p] = t[p] + bv;                                   \
        else memcpy(t, yy, sizeof(T) * (size_t)L);                                                     \
      }                                                                                                \
  }
SHUFFLE(float)
SHUFFLE(double)
static void shuffle(mg_dtype dt, const geom *q, void *y, void *tmp, const void *bias, int64_t n0, int64_t nb,
                    int64_t g, bool to_y) {
  if (dt == MG_F32) shuffle_float(q, y, tmp, bias, n0, nb, g, to_y);
  else shuffle_double(q, y, tmp, bias, n0, nb, g, to_y);
}

/* ---- conv2d -------------------------------------------------------------------- */

#define KEEP_COL_MAX ((size_t)32 << 20)  /* bytes of columns a forward may keep for its backward */
static void colctx_free(mg_node *n) { unscratch(n->rt, n->ctx, (size_t)n->i[7]); }

static void conv_geom(geom *q, const mg_tensor *x, const mg_tensor *w, const int64_t *p) {
  int b = x->ndim == 4;
  q->N = b ? x->shape[0] : 1;
  q->C = x->shape[b]; q->H = x->shape[b + 1]; q->W = x->shape[b + 2];
  q->O = w->shape[0]; q->Cg = w->shape[1]; q->kh = w->shape[2]; q->kw = w->shape[3];
  q->sh = (int)p[0]; q->sw = (int)p[1]; q->ph = (int)p[2]; q->pw = (int)p[3];
  q->dh = (int)p[4]; q->dw = (int)p[5]; q->G = p[6];
  q->Og = q->O / q->G;
  q->OH = (q->H + 2 * q->ph - q->dh * (q->kh - 1) - 1) / q->sh + 1;
  q->OW = (q->W + 2 * q->pw - q->dw * (q->kw - 1) - 1) / q->sw + 1;
}

/* Chunks of images run on mg_parallel_for's threads; each thread has its own column
** and tmp buffers (tid * ncol bytes in). Gradients that sum over chunks (weight, bias)
** are kept per chunk and added in chunk order, so the thread count does not change
** them; when those partials would be large, the chunks run serially instead. */
#define PARTIALS_MAX ((size_t)16 << 20)

typedef struct {
  const geom *q;
  mg_dtype dt;
  size_t es, ncol, ntmp;
  int64_t nb, K, L;
  char *x, *w, *b, *y, *g, *gx;  /* dense data (each may be NULL when unused) */
  char *col, *tmp;               /* per-thread scratch, or the kept columns (forward, keep) */
  bool keep;
  char *kept;                    /* backward: the forward's columns, or NULL */
  char *pw;                      /* backward: weight-gradient partials [chunk][O*K], or NULL */
  double *pb;                    /* backward: bias sums [chunk][O], or NULL */
  bool direct;                   /* backward, serial: pw is gw itself, pb [O]; both accumulate */
  bool fast;                     /* float32 through k_sgemm: per-image products read and write the
                                    tensors' own layout, so tmp and the shuffles are not needed */
  const ptrdiff_t *koff;         /* fast and stride 1, no padding: the image's offset of each tap;
                                    forward and weight gradient read the images, no columns */
  const ptrdiff_t *toff;         /* backward, with koff: tap offsets in gx order (below) */
  const float *wt;               /* ... and the weight as [group][tap in that order][Og] */
} cjob;

/* k_sgemm for float32 with at most SGEMM_MAX_OG filters per group: its blocks of 4 or 8
** filters re-read the input for every block, so with more filters OpenBLAS's packed gemm
** wins (measured: even at 32, behind at 64) */
#define SGEMM_MAX_OG 16
static bool use_sgemm(const geom *q, mg_dtype dt) {
  return dt == MG_F32 && q->Cg * q->kh * q->kw > 0 && q->Og <= SGEMM_MAX_OG && mg_sgemm_ok();
}

/* a convolution k_sgemm computes from the images themselves */
static bool direct_ok(const geom *q) { return q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0; }

/* offset in an image of tap k = (channel in group, kernel row, kernel column), from scratch */
static ptrdiff_t *tap_offsets(mg_rt *rt, const geom *q) {
  ptrdiff_t *o = scratch(rt, sizeof *o * (size_t)(q->Cg * q->kh * q->kw));
  if (!o) return NULL;
  for (int64_t c = 0, k = 0; c < q->Cg; c++)
    for (int64_t ki = 0; ki < q->kh; ki++)
      for (int64_t kj = 0; kj < q->kw; kj++) o[k++] = (c * q->H + ki * q->dh) * q->W + kj * q->dw;
  return o;
}

/* The input gradient adds each tap's product into the image. Taps next to each other
** in a row overlap there, one element apart, and an add that reads what the previous
** one is still storing stalls; so it takes the taps kernel column first: (kj, c, ki).
** *wt gets the weight in that order, [group][tap][Og]. Both from scratch. */
static ptrdiff_t *gx_taps(mg_rt *rt, const geom *q, const float *w, float **wt) {
  int64_t K = q->Cg * q->kh * q->kw, i = 0;
  ptrdiff_t *o = scratch(rt, sizeof *o * (size_t)K);
  *wt = o ? scratch(rt, sizeof **wt * (size_t)(q->O * K)) : NULL;
  if (!*wt) { if (o) unscratch(rt, o, sizeof *o * (size_t)K); return NULL; }
  for (int64_t kj = 0; kj < q->kw; kj++)
    for (int64_t c = 0; c < q->Cg; c++)
      for (int64_t ki = 0; ki < q->kh; ki++, i++) {
        int64_t k = (c * q->kh + ki) * q->kw + kj;
        o[i] = (c * q->H + ki * q->dh) * q->W + kj * q->dw;
        for (int64_t g = 0; g < q->G; g++)
          for (int64_t f = 0; f < q->Og; f++) (*wt)[(g * K + i) * q->Og + f] = w[(g * q->Og + f) * K + k];
      }
  return o;
}

/* forward of one chunk straight from the images */
static void conv_fw_direct(const cjob *j, int64_t n0, int64_t m, int64_t g) {
  const geom *q = j->q;
  int64_t K = j->K, L = j->L, HW = q->H * q->W;
  const float *w = (const float *)j->w + g * q->Og * K, *b = j->b ? (const float *)j->b + g * q->Og : NULL;
  for (int64_t n = n0; n < n0 + m; n++)
    mg_sconv_fw((int)q->Og, (int)K, w, j->koff, (const float *)j->x + (n * q->C + g * q->Cg) * HW, q->W, (int)q->OH,
                (int)q->OW, (float *)j->y + (n * q->O + g * q->Og) * L, b);
}

/* forward of one chunk with k_sgemm: y[n][g*Og+o][p] = bias + w_g col[:, n*L + p] */
static void conv_fw_fast(const cjob *j, const float *col, int64_t n0, int64_t m, int64_t g) {
  const geom *q = j->q;
  int64_t K = j->K, L = j->L;
  const float *w = (const float *)j->w + g * q->Og * K, *b = j->b ? (const float *)j->b + g * q->Og : NULL;
  for (int64_t n = 0; n < m; n++)
    mg_sgemm_nn((int)q->Og, (int)L, (int)K, w, K, 1, col + n * L, m * L, (float *)j->y + ((n0 + n) * q->O + g * q->Og) * L,
                L, b);
}

/* backward of one chunk with k_sgemm, reading gout where it is */
static void conv_bw_fast(const cjob *j, int64_t c, int64_t n0, int64_t m, int64_t gr, float *col) {
  const geom *q = j->q;
  int64_t K = j->K, L = j->L, O = q->O, Og = q->Og;
  const float *g = (const float *)j->g + (n0 * O + gr * Og) * L;  /* image n, channel o: g + n*O*L + o*L */
  if (j->pb) for (int64_t o = 0; o < Og; o++) {
    double s = 0;
    for (int64_t n = 0; n < m; n++) s += sum_f32(g + n * O * L + o * L, L);
    if (j->direct) j->pb[gr * Og + o] += s; else j->pb[c * O + gr * Og + o] = s;
  }
  float *pw = j->pw ? (float *)j->pw + (j->direct ? 0 : c) * O * K + gr * Og * K : NULL;
  if (pw && j->koff)  /* from the images */
    mg_sconv_gw((int)Og, (int)K, (int)m, g, O * L, (const float *)j->x + (n0 * q->C + gr * q->Cg) * q->H * q->W,
                q->C * q->H * q->W, j->koff, q->W, (int)q->OH, (int)q->OW, pw, j->direct);
  else if (pw) {  /* gw_g[o][k] (+)= sum over images and positions of gout * columns */
    const float *cb = j->kept ? (const float *)j->kept + q->G * K * L * n0 + gr * K * m * L : col;
    if (!j->kept) im2col(MG_F32, q, j->x, col, n0, m, gr);
    mg_sgemm_nt((int)Og, (int)K, (int)L, (int)m, g, O * L, L, cb, L, m * L, pw, K, j->direct);
  }
  if (j->gx && j->toff) {  /* straight into the images */
    const float *wt = j->wt + gr * K * Og;
    for (int64_t n = 0; n < m; n++)
      mg_sconv_gx((int)Og, (int)K, wt, j->toff, g + n * O * L, q->W, (int)q->OH, (int)q->OW,
                  (float *)j->gx + ((n0 + n) * q->C + gr * q->Cg) * q->H * q->W);
  } else if (j->gx) {  /* col[:, n*L + p] = w_g^T gout[n], then back into the images */
    const float *w = (const float *)j->w + gr * Og * K;
    for (int64_t n = 0; n < m; n++) mg_sgemm_nn((int)K, (int)L, (int)Og, w, 1, K, g + n * O * L, L, col + n * L, m * L, NULL);
    col2im(MG_F32, q, j->gx, col, n0, m, gr);
  }
}

static void conv_fw_chunks(void *ctx, int64_t c0, int64_t c1, int tid) {
  const cjob *j = ctx;
  const geom *q = j->q;
  int64_t K = j->K, L = j->L;
  for (int64_t c = c0; c < c1; c++) {
    int64_t n0 = c * j->nb, m = q->N - n0 < j->nb ? q->N - n0 : j->nb;
    for (int64_t g = 0; g < q->G; g++) {
      if (j->koff) { conv_fw_direct(j, n0, m, g); continue; }
      char *tmp = j->tmp ? j->tmp + (size_t)tid * j->ntmp : NULL;  /* NULL when fast */
      if (K > 0) {
        char *cb = j->keep ? j->col + j->es * (size_t)(q->G * K * L * n0 + g * K * m * L) : j->col + (size_t)tid * j->ncol;
        im2col(j->dt, q, j->x, cb, n0, m, g);
        if (j->fast) { conv_fw_fast(j, (const float *)cb, n0, m, g); continue; }
        gemm(j->dt, false, false, (int)q->Og, (int)(m * L), (int)K, j->w + j->es * (size_t)(g * q->Og * K), (int)K, cb,
             (int)(m * L), 0.0, tmp, (int)(m * L));
      }
      shuffle(j->dt, q, j->y, tmp, j->b, n0, m, g, true);
    }
  }
}

static void conv_bw_chunks(void *ctx, int64_t c0, int64_t c1, int tid) {
  const cjob *j = ctx;
  const geom *q = j->q;
  mg_dtype dt = j->dt;
  size_t es = j->es;
  int64_t K = j->K, L = j->L;
  char *col = j->col ? j->col + (size_t)tid * j->ncol : NULL, *tmp = j->tmp ? j->tmp + (size_t)tid * j->ntmp : NULL;
  for (int64_t c = c0; c < c1; c++) {
    int64_t n0 = c * j->nb, m = q->N - n0 < j->nb ? q->N - n0 : j->nb;
    for (int64_t gr = 0; gr < q->G; gr++) {
      if (j->fast) { conv_bw_fast(j, c, n0, m, gr, (float *)col); continue; }
      shuffle(dt, q, j->g, tmp, NULL, n0, m, gr, false);  /* tmp[Og][m*L] = gout */
      if (j->pb) for (int64_t o = 0; o < q->Og; o++) {  /* bias: sum of gout over images and positions */
        double s = 0;
        if (dt == MG_F32) s = sum_f32((const float *)tmp + o * m * L, m * L);
        else { const double *t = (const double *)tmp + o * m * L; for (int64_t p = 0; p < m * L; p++) s += t[p]; }
        if (j->direct) j->pb[gr * q->Og + o] += s; else j->pb[c * q->O + gr * q->Og + o] = s;
      }
      if (j->pw) {  /* gw_g[Og][K] = tmp[Og][mL] col^T, col kept by the forward or made again */
        char *cb = j->kept ? j->kept + es * (size_t)(q->G * K * L * n0 + gr * K * m * L) : col;
        if (!j->kept) im2col(dt, q, j->x, col, n0, m, gr);
        gemm(dt, false, true, (int)q->Og, (int)K, (int)(m * L), tmp, (int)(m * L), cb, (int)(m * L), j->direct ? 1.0 : 0.0,
             j->pw + es * (size_t)((j->direct ? 0 : c) * q->O * K + gr * q->Og * K), (int)K);
      }
      if (j->gx) {  /* col[K][mL] = w_g^T tmp, then back into the images (this chunk's own) */
        gemm(dt, true, false, (int)K, (int)(m * L), (int)q->Og, j->w + es * (size_t)(gr * q->Og * K), (int)K, tmp,
             (int)(m * L), 0.0, col, (int)(m * L));
        col2im(dt, q, j->gx, col, n0, m, gr);
      }
    }
  }
}

static int conv2d_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  mg_tensor *x0 = mg_saved(n, 0), *w0 = mg_saved(n, 1);
  if (!x0 || !w0) return -1;
  mg_rt *rt = n->rt;
  geom q;
  conv_geom(&q, x0, w0, n->i);
  mg_dtype dt = gout->dtype;
  size_t es = mg_dtype_size(dt);
  bool nx = mg_node_needs(n, 0), nw = mg_node_needs(n, 1), nbias = n->nin > 2 && mg_node_needs(n, 2);
  mg_tensor *x = mg_dense(x0, dt), *w = mg_dense(w0, dt), *g = mg_dense(gout, dt);
  mg_tensor *gx = nx ? mg_full(rt, dt, x0->ndim, x0->shape, 0) : NULL;
  mg_tensor *gw = nw ? mg_full(rt, dt, 4, w0->shape, 0) : NULL;
  mg_tensor *gb = nbias ? mg_full(rt, dt, 1, (int64_t[]){q.O}, 0) : NULL;
  int64_t nb = chunk(&q), K = q.Cg * q.kh * q.kw, L = q.OH * q.OW, nch = (q.N + nb - 1) / nb;
  size_t npw = nw ? es * (size_t)(nch * q.O * K) : 0, npb = nbias ? sizeof(double) * (size_t)(nch * q.O) : 0;
  bool direct = npw + npb > PARTIALS_MAX;  /* depends on the shapes only, never on the thread count */
  if (direct) { npw = 0; npb = sizeof(double) * (size_t)q.O; }
  int nt = direct ? 1 : mg_par_threads(rt, nch, 1);
  cjob j = {&q, dt, es, es * (size_t)(K * nb * L), es * (size_t)(q.Og * nb * L), nb, K, L,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, direct, false, NULL, NULL, NULL};
  j.fast = use_sgemm(&q, dt);
  ptrdiff_t *koff = j.fast && direct_ok(&q) ? tap_offsets(rt, &q) : NULL;
  j.koff = koff;
  float *wt = NULL;
  ptrdiff_t *toff = koff && nx && w ? gx_taps(rt, &q, mg_f32(w), &wt) : NULL;
  j.toff = toff;
  j.wt = wt;
  j.kept = n->ctx && (mg_dtype)n->i[8] == dt ? n->ctx : NULL;
  /* per-thread scratch: columns unless the fast kernels read the images for both
  ** gradients; tmp (gout in column order) only on the BLAS path */
  bool need_col = !j.fast || (nw && !koff && !j.kept) || (nx && !toff);
  size_t ncol = need_col ? j.ncol * (size_t)nt : 0, ntmp = j.fast ? 0 : j.ntmp * (size_t)nt;
  j.col = ncol ? scratch(rt, ncol) : NULL;
  j.tmp = ntmp ? scratch(rt, ntmp) : NULL;
  bool have = (!ncol || j.col) && (!ntmp || j.tmp);
  j.pw = have && nw ? (direct ? (gw ? mg_data(gw) : NULL) : scratch(rt, npw)) : NULL;
  j.pb = have && nbias ? scratch(rt, npb) : NULL;
  if (j.pb) memset(j.pb, 0, npb);
  int r = -1;
  if (!x || !w || !g || (nx && !gx) || (nw && !gw) || (nbias && !gb) || !have || (nw && !j.pw) || (nbias && !j.pb))
    goto done;
  j.x = mg_data(x); j.w = mg_data(w); j.g = mg_data(g); j.gx = gx ? mg_data(gx) : NULL;
  mg_parallel_for(rt, nch, nt > 1 ? 1 : nch + 1, conv_bw_chunks, &j);
  for (int64_t c = 0; c < nch && !direct; c++) {  /* partials added in chunk order */
    if (nw && dt == MG_F32) { float *d = mg_f32(gw), *s = (float *)j.pw + c * q.O * K; for (int64_t i = 0; i < q.O * K; i++) d[i] += s[i]; }
    else if (nw) { double *d = mg_f64(gw), *s = (double *)j.pw + c * q.O * K; for (int64_t i = 0; i < q.O * K; i++) d[i] += s[i]; }
  }
  if (nbias) for (int64_t o = 0; o < q.O; o++) {
    double s = 0;
    for (int64_t c = 0; c < (direct ? 1 : nch); c++) s += j.pb[c * q.O + o];
    if (dt == MG_F32) mg_f32(gb)[o] = (float)s; else mg_f64(gb)[o] = s;
  }
  r = 0;
  if (nx) { r |= mg_grad_out(n, 0, gx, gin); gx = NULL; }
  if (nw) { r |= mg_grad_out(n, 1, gw, gin); gw = NULL; }
  if (nbias) { r |= mg_grad_out(n, 2, gb, gin); gb = NULL; }
done:
  if (j.col) unscratch(rt, j.col, ncol);
  if (j.tmp) unscratch(rt, j.tmp, ntmp);
  if (j.pw && !direct) unscratch(rt, j.pw, npw);
  if (j.pb) unscratch(rt, j.pb, npb);
  if (koff) unscratch(rt, koff, sizeof *koff * (size_t)K);
  if (toff) { unscratch(rt, toff, sizeof *toff * (size_t)K); unscratch(rt, wt, sizeof *wt * (size_t)(q.O * K)); }
  mg_release(x); mg_release(w); mg_release(g); mg_release(gx); mg_release(gw); mg_release(gb);
  return r ? -1 : 0;
}

mg_tensor *mg_conv2d(mg_tensor *x, mg_tensor *w, mg_tensor *b, const mg_conv_opts *o) {
  mg_rt *rt = x->rt;
  char s1[128], s2[128];
  if (mg_check_alive(x, "conv2d") || mg_check_alive(w, "conv2d") || (b && mg_check_alive(b, "conv2d"))) return NULL;
  mg_conv_opts d = {{1, 1}, {0, 0}, {1, 1}, 1};
  if (!o) o = &d;
  if (x->ndim != 3 && x->ndim != 4) {
    mg_seterr(rt, "conv2d: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape %s", mg_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  if (w->ndim != 4) {
    mg_seterr(rt, "conv2d: expected a 4-D weight (out_channels, in_channels/groups, kH, kW), got shape %s",
              mg_shape_str(w, s1, sizeof s1));
    return NULL;
  }
  for (int k = 0; k < 2; k++)
    if (o->stride[k] < 1 || o->dilation[k] < 1 || o->padding[k] < 0) {
      mg_seterr(rt, "conv2d: stride {%d,%d} and dilation {%d,%d} must be >= 1 and padding {%d,%d} >= 0",
                o->stride[0], o->stride[1], o->dilation[0], o->dilation[1], o->padding[0], o->padding[1]);
      return NULL;
    }
  if (o->groups < 1) { mg_seterr(rt, "conv2d: groups must be >= 1, got %d", o->groups); return NULL; }
  if (w->shape[0] % o->groups) {
    mg_seterr(rt, "conv2d: out_channels %lld (weight shape %s) is not divisible by groups %d", (long long)w->shape[0],
              mg_shape_str(w, s1, sizeof s1), o->groups);
    return NULL;
  }
  int64_t C = x->shape[x->ndim - 3];
  if (C != w->shape[1] * o->groups) {
    if (o->groups == 1)
      mg_seterr(rt, "conv2d: input has %lld channels but weight expects %lld (weight shape %s)", (long long)C,
                (long long)w->shape[1], mg_shape_str(w, s1, sizeof s1));
    else
      mg_seterr(rt, "conv2d: input has %lld channels but weight expects %lld (weight shape %s, groups %d)",
                (long long)C, (long long)(w->shape[1] * o->groups), mg_shape_str(w, s1, sizeof s1), o->groups);
    return NULL;
  }
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
    mg_seterr(rt, "conv2d: bias of shape %s does not match out_channels %lld (weight shape %s)",
              mg_shape_str(b, s1, sizeof s1), (long long)w->shape[0], mg_shape_str(w, s2, sizeof s2));
    return NULL;
  }
  int64_t p[7] = {o->stride[0], o->stride[1], o->padding[0], o->padding[1], o->dilation[0], o->dilation[1], o->groups};
  geom q;
  conv_geom(&q, x, w, p);
  if (q.H + 2 * q.ph - q.dh * (q.kh - 1) - 1 < 0 || q.W + 2 * q.pw - q.dw * (q.kw - 1) - 1 < 0) {
    mg_seterr(rt, "conv2d: input of shape %s is smaller than the kernel (weight shape %s, padding {%d,%d}, "
              "dilation {%d,%d})", mg_shape_str(x, s1, sizeof s1), mg_shape_str(w, s2, sizeof s2), q.ph, q.pw, q.dh, q.dw);
    return NULL;
  }
  mg_dtype dt = mg_promote(x->dtype, w->dtype);
  if (b) dt = mg_promote(dt, b->dtype);
  size_t es = mg_dtype_size(dt);
  int64_t oshape[4] = {q.N, q.O, q.OH, q.OW};
  mg_tensor *xc = mg_dense(x, dt), *wc = xc ? mg_dense(w, dt) : NULL, *bc = wc && b ? mg_dense(b, dt) : NULL;
  mg_tensor *y = wc && (bc || !b) ? mg_empty(rt, dt, x->ndim, oshape + (4 - x->ndim)) : NULL;
  int64_t nb = chunk(&q), K = q.Cg * q.kh * q.kw, L = q.OH * q.OW, nch = (q.N + nb - 1) / nb;
  int nt = mg_par_threads(rt, nch, 1);
  cjob j = {&q, dt, es, es * (size_t)(K * nb * L), es * (size_t)(q.Og * nb * L), nb, K, L,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, false, false, NULL, NULL, NULL};
  /* the weight gradient needs the columns again: keep them for the backward when they
  ** are small enough, instead of redoing im2col there */
  size_t nall = es * (size_t)(q.G * K * q.N * L), ncol = j.ncol * (size_t)nt;
  j.fast = use_sgemm(&q, dt);
  ptrdiff_t *koff = y && y->numel && j.fast && direct_ok(&q) ? tap_offsets(rt, &q) : NULL;
  j.koff = koff;
  j.keep = !koff && K > 0 && nall <= KEEP_COL_MAX && mg_any_requires_grad(rt, 1, &w);
  if (j.keep) ncol = nall;
  size_t ntmp = j.fast ? 0 : j.ntmp * (size_t)nt;  /* the fast kernels write y directly */
  if (y && y->numel && !koff) {
    j.col = scratch(rt, ncol);
    j.tmp = j.col && ntmp ? scratch(rt, ntmp) : NULL;
    if (!j.col || (ntmp && !j.tmp)) { mg_release(y); y = NULL; }
    else if (K == 0) memset(j.tmp, 0, ntmp);
  }
  if (y && y->numel) {
    j.x = mg_data(xc); j.w = mg_data(wc); j.b = bc ? mg_data(bc) : NULL; j.y = mg_data(y);
    mg_parallel_for(rt, nch, 1, conv_fw_chunks, &j);
  }
  if (j.tmp) unscratch(rt, j.tmp, ntmp);
  if (koff) unscratch(rt, koff, sizeof *koff * (size_t)K);
  mg_release(xc); mg_release(wc); mg_release(bc);
  if (!y) { if (j.col) unscratch(rt, j.col, ncol); return NULL; }
  mg_tensor *in[3] = {x, w, b};
  mg_node *n = mg_record(y, "conv2d", conv2d_bw, b ? 3 : 2, in);
  if (n) {
    memcpy(n->i, p, sizeof p);
    mg_save(n, x);
    mg_save(n, w);
  }
  if (n && j.keep && j.col) { n->ctx = j.col; n->i[7] = (int64_t)ncol; n->i[8] = dt; n->ctx_free = colctx_free; }
  else if (j.col) unscratch(rt, j.col, ncol);
  return y;
}

/* ---- pooling ------------------------------------------------------------------- */

typedef struct { int64_t P, H, W, OH, OW; int kh, kw, sh, sw, ph, pw; } pgeom;

static int pool_check(const char *op, mg_tensor *x, const int k[2], const int s[2], const int p[2], pgeom *q) {
  char s1[128];
  mg_rt *rt = x->rt;
  if (mg_check_alive(x, op)) return -1;
  if (x->ndim != 3 && x->ndim != 4)
    return mg_seterr(rt, "%s: expected a 3-D (C,H,W) or 4-D (N,C,H,W) input, got shape %s", op,
                     mg_shape_str(x, s1, sizeof s1));
  if (k[0] < 1 || k[1] < 1) return mg_seterr(rt, "%s: kernel size {%d,%d} must be >= 1", op, k[0], k[1]);
  if (s[0] < 1 || s[1] < 1) return mg_seterr(rt, "%s: stride {%d,%d} must be >= 1", op, s[0], s[1]);
  if (p[0] < 0 || p[1] < 0 || 2 * p[0] > k[0] || 2 * p[1] > k[1])
    return mg_seterr(rt, "%s: padding {%d,%d} must be >= 0 and at most half the kernel size {%d,%d}", op, p[0], p[1],
                     k[0], k[1]);
  q->H = x->shape[x->ndim - 2];
  q->W = x->shape[x->ndim - 1];
  q->P = x->shape[0] * (x->ndim == 4 ? x->shape[1] : 1);
  q->kh = k[0]; q->kw = k[1]; q->sh = s[0]; q->sw = s[1]; q->ph = p[0]; q->pw = p[1];
  if (q->H + 2 * q->ph < q->kh || q->W + 2 * q->pw < q->kw)
    return mg_seterr(rt, "%s: input of shape %s is smaller than the kernel {%d,%d} (padding {%d,%d})", op,
                     mg_shape_str(x, s1, sizeof s1), k[0], k[1], p[0], p[1]);
  q->OH = (q->H + 2 * q->ph - q->kh) / q->sh + 1;
  q->OW = (q->W + 2 * q->pw - q->kw) / q->sw + 1;
  return 0;
}

static mg_tensor *pool_out(mg_tensor *x, mg_dtype dt, const pgeom *q) {
  int64_t sh[MG_MAX_DIMS];
  memcpy(sh, x->shape, sizeof sh);
  sh[x->ndim - 2] = q->OH;
  sh[x->ndim - 1] = q->OW;
  return mg_empty(x->rt, dt, x->ndim, sh);
}

/* one output row of the 2x2, stride-2 max: code[ow] = which of the four won (0..3);
** branch-free selects in a loop the compiler vectorises (random data defeats branches) */
#define POOL2ROW(T)                                                                                       \
  static void pool2_row_##T(const T *restrict r0, const T *restrict r1, T *restrict y, int32_t *restrict code, \
                            int64_t OW) {                                                                 \
    for (int64_t ow = 0; ow < OW; ow++) {                                                                 \
      T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];                           \
      int32_t k = 0, t;                                                                                   \
      T m = a;                                                                                            \
      t = (b > m) | (b != b); m = t ? b : m; k = t ? 1 : k;                                               \
      t = (c > m) | (c != c); m = t ? c : m; k = t ? 2 : k;                                               \
      t = (d > m) | (d != d); m = t ? d : m; k = t ? 3 : k;                                               \
      y[ow] = m;                                                                                          \
      code[ow] = k;                                                                                       \
    }                                                                                                     \
  }
POOL2ROW(float)
POOL2ROW(double)

/* max: y = max over the window (padding is -inf), idx = flat position in the
** plane of the first maximum (a NaN wins, as PyTorch); branch-free selects */
#define MAXPOOL(T)                                                                                        \
  static void maxpool_##T(const pgeom *q, const T *x, T *y, int64_t *idx, int32_t *code) {                \
    const int64_t H = q->H, W = q->W, OH = q->OH, OW = q->OW, kh = q->kh, kw = q->kw;                      \
    const int64_t sh = q->sh, sw = q->sw, ph = q->ph, pw = q->pw;                                          \
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) { /* the common case */          \
      for (int64_t pl = 0; pl < q->P; pl++)                                                                \
        for (int64_t oh = 0; oh < OH; oh++, y += OW) {                                                     \
          const T *r0 = x + pl * H * W + 2 * oh * W;                                                       \
          pool2_row_##T(r0, r0 + W, y, code, OW);                                                          \
          if (idx) {                                                                                       \
            int64_t base = 2 * oh * W, off[4] = {0, 1, W, W + 1};                                          \
            for (int64_t ow = 0; ow < OW; ow++) *idx++ = base + 2 * ow + off[code[ow]];                    \
          }                                                                                                \
        }                                                                                                  \
      return;                                                                                              \
    }                                                                                                      \
    for (int64_t pl = 0; pl < q->P; pl++) {                                                                \
      const T *xp = x + pl * H * W;                                                                        \
      for (int64_t oh = 0; oh < OH; oh++) {                                                                \
        int64_t h0 = oh * sh - ph, i0 = h0 < 0 ? 0 : h0, i1 = h0 + kh < H ? h0 + kh : H;                   \
        for (int64_t ow = 0; ow < OW; ow++) {                                                              \
          int64_t w0 = ow * sw - pw, j0 = w0 < 0 ? 0 : w0, j1 = w0 + kw < W ? w0 + kw : W;                 \
          int64_t best = i0 * W + j0;                                                                      \
          T m = xp[best];                                                                                  \
          for (int64_t i = i0; i < i1; i++)                                                                \
            for (int64_t j = j0; j < j1; j++) {                                                            \
              T v = xp[i * W + j];                                                                         \
              int take = (v > m) | (v != v); /* NaN propagates, as PyTorch */                               \
              best = take ? i * W + j : best;                                                              \
              m = take ? v : m;                                                                            \
            }                                                                                              \
          *y++ = m;                                                                                        \
          if (idx) *idx++ = best;                                                                          \
        }                                                                                                  \
      }                                                                                                    \
    }                                                                                                      \
  }
MAXPOOL(float)
MAXPOOL(double)

/* avg (count_include_pad): y = sum over the window / (kh*kw); backward spreads g/(kh*kw) */
#define AVGPOOL(T)                                                                                      \
  static void avgpool_##T(const pgeom *q, T *x, T *y, bool back) {                                       \
    T inv = (T)1 / (T)(q->kh * q->kw);                                                                   \
    for (int64_t pl = 0; pl < q->P; pl++) {                                                              \
      T *xp = x + pl * q->H * q->W;                                                                      \
      for (int64_t oh = 0; oh < q->OH; oh++)                                                             \
        for (int64_t ow = 0; ow < q->OW; ow++, y++) {                                                    \
          int64_t h0 = oh * q->sh - q->ph, w0 = ow * q->sw - q->pw;                                      \
          int64_t i0 = h0 < 0 ? 0 : h0, i1 = h0 + q->kh < q->H ? h0 + q->kh : q->H;                      \
          int64_t j0 = w0 < 0 ? 0 : w0, j1 = w0 + q->kw < q->W ? w0 + q->kw : q->W;                      \
          if (back) {                                                                                    \
            T gv = *y * inv;                                                                             \
            for (int64_t i = i0; i < i1; i++) for (int64_t j = j0; j < j1; j++) xp[i * q->W + j] += gv;  \
          } else {                                                                                       \
            T acc = 0;                                                                                   \
            for (int64_t i = i0; i < i1; i++) for (int64_t j = j0; j < j1; j++) acc += xp[i * q->W + j]; \
            *y = acc * inv;                                                                              \
          }                                                                                              \
        }                                                                                                \
    }                                                                                                    \
  }
AVGPOOL(float)
AVGPOOL(double)

/* Pooling splits its planes over the runtime's threads, at least POOL_MIN input
** elements each; planes are independent, so the split changes no value. */
#define POOL_MIN 16384
typedef struct {
  pgeom q;
  mg_dtype dt;
  char *x, *y;      /* input (or gx) and output (or g) planes */
  int64_t *idx;     /* max: argmax per output, or NULL */
  int32_t *code;    /* max forward: a row of scratch per thread */
  int kind;         /* 0 max forward, 1 max backward, 2 avg forward, 3 avg backward */
} pjob;

static void pool_piece(void *ctx, int64_t lo, int64_t hi, int tid) {
  const pjob *j = ctx;
  pgeom q = j->q;
  size_t es = mg_dtype_size(j->dt);
  int64_t HW = q.H * q.W, L = q.OH * q.OW;
  char *x = j->x + es * (size_t)(lo * HW), *y = j->y + es * (size_t)(lo * L);
  int64_t *idx = j->idx ? j->idx + lo * L : NULL;
  bool f32 = j->dt == MG_F32;
  q.P = hi - lo;
  if (j->kind == 0) {
    int32_t *code = j->code + (size_t)tid * (size_t)(q.OW + 1);
    if (f32) maxpool_float(&q, (float *)x, (float *)y, idx, code); else maxpool_double(&q, (double *)x, (double *)y, idx, code);
  } else if (j->kind == 1) {
    for (int64_t pl = 0; pl < q.P; pl++)
      for (int64_t k = 0; k < L; k++) {
        int64_t s = pl * HW + idx[pl * L + k];
        if (f32) ((float *)x)[s] += ((float *)y)[pl * L + k];
        else ((double *)x)[s] += ((double *)y)[pl * L + k];
      }
  } else if (f32) avgpool_float(&q, (float *)x, (float *)y, j->kind == 3);
  else avgpool_double(&q, (double *)x, (double *)y, j->kind == 3);
}

/* planes per piece: at least POOL_MIN input elements */
static int64_t pool_min_planes(const pgeom *q) {
  int64_t hw = q->H * q->W;
  return hw > 0 ? (POOL_MIN + hw - 1) / hw : 1;
}

static void pool_run(mg_rt *rt, pjob *j) { mg_parallel_for(rt, j->q.P, pool_min_planes(&j->q), pool_piece, j); }

/* a backward's planes: gx has the input's shape, g the output's */
static void pool_bw_geom(pgeom *q, const mg_tensor *gx, const mg_tensor *g) {
  int nd = gx->ndim;
  q->H = gx->shape[nd - 2]; q->W = gx->shape[nd - 1]; q->OH = g->shape[nd - 2]; q->OW = g->shape[nd - 1];
  q->P = gx->shape[0] * (nd == 4 ? gx->shape[1] : 1);
}

/* the argmax buffer (n->i[0] bytes) comes from the runtime's cache, as column buffers do */
static void poolctx_free(mg_node *n) { unscratch(n->rt, n->ctx, (size_t)n->i[0]); }

static int max_pool2d_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  int64_t *idx = n->ctx;
  mg_tensor *g = mg_dense(gout, n->in[0].dtype);
  mg_tensor *gx = g ? mg_full(n->rt, g->dtype, n->in[0].ndim, n->in[0].shape, 0) : NULL;
  if (!gx) { mg_release(g); return -1; }
  pjob j = {.dt = g->dtype, .x = mg_data(gx), .y = mg_data(g), .idx = idx, .kind = 1};
  pool_bw_geom(&j.q, gx, g);
  pool_run(n->rt, &j);
  mg_release(g);
  gin[0] = gx;
  return 0;
}

mg_tensor *mg_max_pool2d(mg_tensor *x, const int k[2], const int stride[2], const int pad[2]) {
  pgeom q;
  const int *s = stride ? stride : k;
  int zero[2] = {0, 0};
  if (pool_check("max_pool2d", x, k, s, pad ? pad : zero, &q)) return NULL;
  mg_tensor *xc = mg_dense(x, x->dtype), *y = xc ? pool_out(x, x->dtype, &q) : NULL;
  bool rec = mg_any_requires_grad(x->rt, 1, &x);
  size_t nidx = sizeof(int64_t) * (size_t)(y ? y->numel : 0);
  int64_t *idx = rec && y ? scratch(x->rt, nidx) : NULL;
  if (y && rec && !idx) { mg_release(y); y = NULL; }
  if (y) {
    int nt = mg_par_threads(x->rt, q.P, pool_min_planes(&q));
    pjob j = {q, x->dtype, mg_data(xc), mg_data(y), idx, malloc(sizeof(int32_t) * (size_t)(q.OW + 1) * (size_t)nt), 0};
    if (!j.code) { mg_seterr(x->rt, "max_pool2d: out of memory"); mg_release(y); y = NULL; if (idx) unscratch(x->rt, idx, nidx); idx = NULL; }
    else pool_run(x->rt, &j);
    free(j.code);
  }
  mg_release(xc);
  if (!y) return NULL;
  mg_node *n = mg_record(y, "max_pool2d", max_pool2d_bw, 1, &x);
  if (n) { n->ctx = idx; n->i[0] = (int64_t)nidx; n->ctx_free = poolctx_free; }
  else if (idx) unscratch(x->rt, idx, nidx);
  return y;
}


static int avg_pool2d_bw(mg_node *n, mg_tensor *gout, mg_tensor **gin) {
  pgeom q;
  mg_tensor *g = mg_dense(gout, n->in[0].dtype);
  mg_tensor *gx = g ? mg_full(n->rt, g->dtype, n->in[0].ndim, n->in[0].shape, 0) : NULL;
  if (!gx) { mg_release(g); return -1; }
  pool_bw_geom(&q, gx, g);
  q.kh = (int)n->i[0]; q.kw = (int)n->i[1]; q.sh = (int)n->i[2]; q.sw = (int)n->i[3]; q.ph = (int)n->i[4]; q.pw = (int)n->i[5];
  pjob j = {q, g->dtype, mg_data(gx), mg_data(g), NULL, NULL, 3};
  pool_run(n->rt, &j);
  mg_release(g);
  gin[0] = gx;
  return 0;
}

mg_tensor *mg_avg_pool2d(mg_tensor *x, const int k[2], const int stride[2], const int pad[2]) {
  pgeom q;
  const int *s = stride ? stride : k;
  int zero[2] = {0, 0};
  const int *p = pad ? pad : zero;
  if (pool_check("avg_pool2d", x, k, s, p, &q)) return NULL;
  mg_tensor *xc = mg_dense(x, x->dtype), *y = xc ? pool_out(x, x->dtype, &q) : NULL;
  if (y) {
    pjob j = {q, x->dtype, mg_data(xc), mg_data(y), NULL, NULL, 2};
    pool_run(x->rt, &j);
  }
  mg_release(xc);
  if (!y) return NULL;
  mg_node *n = mg_record(y, "avg_pool2d", avg_pool2d_bw, 1, &x);
  if (n) { n->i[0] = k[0]; n->i[1] = k[1]; n->i[2] = s[0]; n->i[3] = s[1]; n->i[4] = p[0]; n->i[5] = p[1]; }
  return y;
}
