/*
** k_sgemm.c — float32 products with few rows, for conv2d (see k_sgemm.h).
** A block of C (4 rows x 16 columns, or 4 x 2 dot products) stays in AVX2
** registers while the operands stream past; compiled for AVX2 + FMA with a
** function attribute and used only when the CPU has them. The general
** kernels (nn_rows, nt_block) are inlined into each caller with its
** constant block sizes and addressing, so each copy keeps its block in registers.
*/
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "k_sgemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")  /* keep the C block in registers */
#define UNROLL8 _Pragma("GCC unroll 8")

/* MOONGRAD_NO_SIMD=1 in the environment turns the kernels off (tests run the BLAS path so) */
bool mg_sgemm_ok(void) {
  static _Atomic int ok = -1;
  int v = atomic_load_explicit(&ok, memory_order_relaxed);
  if (v < 0) {
    const char *e = getenv("MOONGRAD_NO_SIMD");
    v = !(e && *e && strcmp(e, "0") != 0) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    atomic_store_explicit(&ok, v, memory_order_relaxed);
  }
  return v;
}

/* Row k of B is at B + koff[k], or B + k*ldb when koff is NULL. Row r of C is at
** C + r*ldc, or, when coff is not NULL, at C + coff[r] and the product is added to
** it. Eight accumulators per block, so that eight FMA chains overlap. */
#define BROW(k) (B + (koff ? koff[k] : (k) * ldb))
#define CROW(r) (C + (coff ? coff[r] : (r) * ldc))

/* rows 0..R-1 (R <= 4), columns j0..j1 (a multiple of 16 apart): two vectors per row */
INLINE AVX2 void nn_16(int R, int j0, int j1, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                       const ptrdiff_t *koff, ptrdiff_t ldb, float *C, const ptrdiff_t *coff, ptrdiff_t ldc,
                       const float *bias) {
  for (int j = j0; j < j1; j += 16) {
    __m256 c0[4], c1[4];
    UNROLL
    for (int r = 0; r < R; r++) c0[r] = c1[r] = _mm256_set1_ps(bias ? bias[r] : 0.0f);
    for (int k = 0; k < K; k++) {
      const float *b = BROW(k) + j;
      __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      UNROLL
      for (int r = 0; r < R; r++) {
        __m256 a = _mm256_broadcast_ss(A + r * ars + k * acs);
        c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
        c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
      }
    }
    UNROLL
    for (int r = 0; r < R; r++) {
      float *c = CROW(r) + j;
      if (coff) {
        c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
        c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
      }
      _mm256_storeu_ps(c, c0[r]);
      _mm256_storeu_ps(c + 8, c1[r]);
    }
  }
}

/* lanes 0..w-1 of a vector (w <= 8): masked loads read nothing past them */
INLINE AVX2 __m256i lanes(int w) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
INLINE AVX2 __m256 load_w(const float *p, int w, __m256i m) { return w == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
INLINE AVX2 void store_w(float *p, __m256 v, int w, __m256i m) {
  if (w == 8) _mm256_storeu_ps(p, v); else _mm256_maskstore_ps(p, m, v);
}

/* rows 0..R-1 (R <= 8), columns j..j+w-1 (w <= 8): one vector per row */
INLINE AVX2 void nn_8(int R, int j, int w, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                      const ptrdiff_t *koff, ptrdiff_t ldb, float *C, const ptrdiff_t *coff, ptrdiff_t ldc,
                      const float *bias) {
  __m256i m = lanes(w);
  __m256 c0[8];
  UNROLL8
  for (int r = 0; r < R; r++) c0[r] = _mm256_set1_ps(bias ? bias[r] : 0.0f);
  for (int k = 0; k < K; k++) {
    __m256 b0 = load_w(BROW(k) + j, w, m);
    UNROLL8
    for (int r = 0; r < R; r++) c0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + r * ars + k * acs), b0, c0[r]);
  }
  UNROLL8
  for (int r = 0; r < R; r++) {
    float *c = CROW(r) + j;
    store_w(c, coff ? _mm256_add_ps(c0[r], load_w(c, w, m)) : c0[r], w, m);
  }
}

/* C = bias + A B, all M rows and N columns. Called with koff and coff NULL or known
** non-NULL, so the inlined tests fold away. */
INLINE AVX2 void nn(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                    const ptrdiff_t *koff, ptrdiff_t ldb, float *C, const ptrdiff_t *coff, ptrdiff_t ldc,
                    const float *bias) {
#define AT(i) A + (i) * ars, ars, acs, B, koff, ldb, coff ? C : C + (i) * ldc, coff ? coff + (i) : NULL, ldc, \
              bias ? bias + (i) : NULL
  int n16 = N / 16 * 16, n8 = N / 8 * 8, i;
  if (n16 > 0) {
    for (i = 0; i + 4 <= M; i += 4) nn_16(4, 0, n16, K, AT(i));
    for (; i < M; i++) nn_16(1, 0, n16, K, AT(i));
  }
  if (n8 > n16) {
    for (i = 0; i + 8 <= M; i += 8) nn_8(8, n16, 8, K, AT(i));
    for (; i + 4 <= M; i += 4) nn_8(4, n16, 8, K, AT(i));
    for (; i < M; i++) nn_8(1, n16, 8, K, AT(i));
  }
  if (N > n8) {  /* the last 1..7 columns, masked */
    for (i = 0; i + 8 <= M; i += 8) nn_8(8, n8, N - n8, K, AT(i));
    for (; i + 4 <= M; i += 4) nn_8(4, n8, N - n8, K, AT(i));
    for (; i < M; i++) nn_8(1, n8, N - n8, K, AT(i));
  }
#undef AT
}
#undef BROW
#undef CROW

AVX2 void mg_sgemm_nn(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                      ptrdiff_t ldb, float *C, ptrdiff_t ldc, const float *bias) {
  nn(M, N, K, A, ars, acs, B, NULL, ldb, C, NULL, ldc, bias);
}

AVX2 void mg_sconv_fw(int M, int K, const float *w, const ptrdiff_t *koff, const float *x, ptrdiff_t W, int OH, int OW,
                      float *y, const float *bias) {
  if (!koff) __builtin_unreachable();
  for (int oh = 0; oh < OH; oh++) nn(M, OW, K, w, K, 1, x + oh * W, koff, 0, y + oh * OW, NULL, (ptrdiff_t)OH * OW, bias);
}

AVX2 void mg_sconv_gx(int M, int K, const float *wt, const ptrdiff_t *koff, const float *g, ptrdiff_t W, int OH, int OW,
                      float *gx) {
  if (!koff) __builtin_unreachable();
  for (int oh = 0; oh < OH; oh++)
    nn(K, OW, M, wt, M, 1, g + oh * OW, NULL, (ptrdiff_t)OH * OW, gx + oh * W, koff, 0, NULL);
}

INLINE AVX2 float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* C[0..R)[0..S) (+)= dot products of length K, summed over n < nimg and t < nrow, R <= 4, S <= 2:
**   row i of A at A + n*aimg + t*arow + i*lda; row s of B at B + n*bimg + t*brow + (koff ? koff[s] : s*ldb) */
INLINE AVX2 void nt_block(int R, int S, int K, int nimg, int nrow, const float *A, ptrdiff_t aimg, ptrdiff_t arow,
                          ptrdiff_t lda, const float *B, ptrdiff_t bimg, ptrdiff_t brow, const ptrdiff_t *koff,
                          ptrdiff_t ldb, float *C, ptrdiff_t ldc, bool acc) {
  __m256 v[4][2];
  ptrdiff_t bo[2];
  UNROLL
  for (int s = 0; s < S; s++) bo[s] = koff ? koff[s] : s * ldb;
  UNROLL
  for (int r = 0; r < R; r++)
    UNROLL
    for (int s = 0; s < S; s++) v[r][s] = _mm256_setzero_ps();
  for (int n = 0; n < nimg; n++)
    for (int row = 0; row < nrow; row++) {
      const float *a = A + n * aimg + row * arow, *b = B + n * bimg + row * brow;
      int k = 0;
      for (; k + 8 <= K; k += 8) {
        __m256 bv[2];
        UNROLL
        for (int s = 0; s < S; s++) bv[s] = _mm256_loadu_ps(b + bo[s] + k);
        UNROLL
        for (int r = 0; r < R; r++) {
          __m256 av = _mm256_loadu_ps(a + r * lda + k);
          UNROLL
          for (int s = 0; s < S; s++) v[r][s] = _mm256_fmadd_ps(av, bv[s], v[r][s]);
        }
      }
      if (k < K) {  /* the last 1..7, masked */
        __m256i m = lanes(K - k);
        __m256 bv[2];
        UNROLL
        for (int s = 0; s < S; s++) bv[s] = _mm256_maskload_ps(b + bo[s] + k, m);
        UNROLL
        for (int r = 0; r < R; r++) {
          __m256 av = _mm256_maskload_ps(a + r * lda + k, m);
          UNROLL
          for (int s = 0; s < S; s++) v[r][s] = _mm256_fmadd_ps(av, bv[s], v[r][s]);
        }
      }
    }
  UNROLL
  for (int r = 0; r < R; r++)
    UNROLL
    for (int s = 0; s < S; s++) {
      float x = hsum(v[r][s]);
      C[r * ldc + s] = acc ? C[r * ldc + s] + x : x;
    }
}

/* all M x N dot products: blocks of 4 x 2, then 4 x 1, then 1 x 1 */
INLINE AVX2 void nt(int M, int N, int K, int nimg, int nrow, const float *A, ptrdiff_t aimg, ptrdiff_t arow,
                    ptrdiff_t lda, const float *B, ptrdiff_t bimg, ptrdiff_t brow, const ptrdiff_t *koff, ptrdiff_t ldb,
                    float *C, ptrdiff_t ldc, bool acc) {
#define NT(R, S, i, j) nt_block(R, S, K, nimg, nrow, A + (i) * lda, aimg, arow, lda, koff ? B : B + (j) * ldb, bimg, \
                               brow, koff ? koff + (j) : NULL, ldb, C + (i) * ldc + (j), ldc, acc)
  int i = 0;
  for (; i + 4 <= M; i += 4) {
    int j = 0;
    for (; j + 2 <= N; j += 2) NT(4, 2, i, j);
    for (; j < N; j++) NT(4, 1, i, j);
  }
  for (; i < M; i++)
    for (int j = 0; j < N; j++) NT(1, 1, i, j);
#undef NT
}

AVX2 void mg_sgemm_nt(int M, int N, int K, int nimg, const float *A, ptrdiff_t aimg, ptrdiff_t lda, const float *B,
                      ptrdiff_t bimg, ptrdiff_t ldb, float *C, ptrdiff_t ldc, bool acc) {
  nt(M, N, K, nimg, 1, A, aimg, 0, lda, B, bimg, 0, NULL, ldb, C, ldc, acc);
}

AVX2 void mg_sconv_gw(int M, int K, int nimg, const float *g, ptrdiff_t gimg, const float *x, ptrdiff_t ximg,
                      const ptrdiff_t *koff, ptrdiff_t W, int OH, int OW, float *gw, bool acc) {
  if (!koff) __builtin_unreachable();
  /* rows of one to four vectors (LeNet's layers have 24 and 8) get copies with the row
  ** length fixed, so the loop over a row unrolls and its tests go */
#define GW(OWc) nt(M, K, OWc, nimg, OH, g, gimg, OWc, (ptrdiff_t)OH * (OWc), x, ximg, W, koff, 0, gw, K, acc)
  switch (OW) {
  case 8: GW(8); break;
  case 16: GW(16); break;
  case 24: GW(24); break;
  case 32: GW(32); break;
  default: GW(OW);
  }
#undef GW
}

#else  /* not x86-64 with GCC or Clang: mg_sgemm_ok() is false, so nothing calls the kernels */

bool mg_sgemm_ok(void) { return false; }
void mg_sgemm_nn(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, ptrdiff_t ldb,
                 float *C, ptrdiff_t ldc, const float *bias) {
  (void)M; (void)N; (void)K; (void)A; (void)ars; (void)acs; (void)B; (void)ldb; (void)C; (void)ldc; (void)bias;
  abort();
}
void mg_sgemm_nt(int M, int N, int K, int nimg, const float *A, ptrdiff_t aimg, ptrdiff_t lda, const float *B,
                 ptrdiff_t bimg, ptrdiff_t ldb, float *C, ptrdiff_t ldc, bool acc) {
  (void)M; (void)N; (void)K; (void)nimg; (void)A; (void)aimg; (void)lda; (void)B; (void)bimg; (void)ldb; (void)C;
  (void)ldc; (void)acc;
  abort();
}
void mg_sconv_fw(int M, int K, const float *w, const ptrdiff_t *koff, const float *x, ptrdiff_t W, int OH, int OW,
                 float *y, const float *bias) {
  (void)M; (void)K; (void)w; (void)koff; (void)x; (void)W; (void)OH; (void)OW; (void)y; (void)bias;
  abort();
}
void mg_sconv_gx(int M, int K, const float *wt, const ptrdiff_t *koff, const float *g, ptrdiff_t W, int OH, int OW,
                 float *gx) {
  (void)M; (void)K; (void)wt; (void)koff; (void)g; (void)W; (void)OH; (void)OW; (void)gx;
  abort();
}
void mg_sconv_gw(int M, int K, int nimg, const float *g, ptrdiff_t gimg, const float *x, ptrdiff_t ximg,
                 const ptrdiff_t *koff, ptrdiff_t W, int OH, int OW, float *gw, bool acc) {
  (void)M; (void)K; (void)nimg; (void)g; (void)gimg; (void)x; (void)ximg; (void)koff; (void)W; (void)OH; (void)OW;
  (void)gw; (void)acc;
  abort();
}
#endif
