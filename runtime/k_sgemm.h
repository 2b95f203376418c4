/*
** k_sgemm.h — float32 products with few rows, for conv2d (k_conv.c).
** OpenBLAS packs both operands of every call, which costs more than the
** arithmetic when one side has only 8 or 16 rows (a layer's output channels),
** and a convolution through it first copies the input into columns. These
** kernels keep a block of the result in AVX2 registers and read the operands
** where they are: the convolution ones read the image itself, a tap k of the
** kernel (input channel, row, column) at offset koff[k] from the output
** position. Call them only when mg_sgemm_ok() says this CPU has AVX2/FMA;
** otherwise use BLAS.
*/
#ifndef K_SGEMM_H
#define K_SGEMM_H
#include <stdbool.h>
#include <stddef.h>

/* true when the kernels below run on this CPU */
bool mg_sgemm_ok(void);

/* C[i][j] = bias[i] (0 if bias is NULL) + sum_k A(i,k) B[k][j]
**   A(i,k) at A[i*ars + k*acs]; row k of B at B + k*ldb; row i of C at C + i*ldc */
void mg_sgemm_nn(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B, ptrdiff_t ldb,
                 float *C, ptrdiff_t ldc, const float *bias);

/* C[i][j] (+)= sum over images n < nimg and k < K of A_n[i][k] B_n[j][k]:
**   row i of A_n at A + n*aimg + i*lda; row j of B_n at B + n*bimg + j*ldb (k contiguous in both);
**   C row i at C + i*ldc, overwritten, or added to when acc */
void mg_sgemm_nt(int M, int N, int K, int nimg, const float *A, ptrdiff_t aimg, ptrdiff_t lda, const float *B,
                 ptrdiff_t bimg, ptrdiff_t ldb, float *C, ptrdiff_t ldc, bool acc);

/* Stride-1 unpadded convolution of one image x (rows W apart) with M filters of K taps:
**   y[i][oh*OW + ow] = bias[i] (0 if NULL) + sum_k w[i*K + k] x[koff[k] + oh*W + ow] */
void mg_sconv_fw(int M, int K, const float *w, const ptrdiff_t *koff, const float *x, ptrdiff_t W, int OH, int OW,
                 float *y, const float *bias);

/* Its input gradient, added to gx (rows W apart) from g (M x OH*OW), with the
** weight given transposed (wt[k*M + i], tap k of filter i):
**   gx[koff[k] + oh*W + ow] += sum_i wt[k*M + i] g[i][oh*OW + ow] */
void mg_sconv_gx(int M, int K, const float *wt, const ptrdiff_t *koff, const float *g, ptrdiff_t W, int OH, int OW,
                 float *gx);

/* Its weight gradient over nimg images (image n at g + n*gimg and x + n*ximg):
**   gw[i*K + k] (+)= sum over n, oh, ow of g_n[i][oh*OW + ow] x_n[koff[k] + oh*W + ow]
**   (overwritten, or added to when acc) */
void mg_sconv_gw(int M, int K, int nimg, const float *g, ptrdiff_t gimg, const float *x, ptrdiff_t ximg,
                 const ptrdiff_t *koff, ptrdiff_t W, int OH, int OW, float *gw, bool acc);

#endif
