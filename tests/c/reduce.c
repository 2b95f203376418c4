/* Reductions and linear algebra through the C API: 0-based dims and indices,
** dim < 0 for whole-tensor reductions, keepdim shapes, dtype promotion,
** gradients, error messages, and no leaked tensor memory after backward.
** Expected values are hand-computed from the small inputs written here. */
#include <stdlib.h>
#include "mg_core.h"
#include "tap.h"

static double at(mg_tensor *t, int64_t i) { return mg_get_flat(t, i); }
static mg_tensor *mk(mg_rt *rt, mg_dtype dt, int nd, const int64_t *shape, const double *v) {
  return mg_from_data(rt, dt, nd, shape, v);
}

int main(void) {
  mg_rt *rt = mg_rt_new();
  size_t base = rt->live_bytes;
  /* x = [[1, 5, 2], [7, 0, 7]] */
  double xv[] = {1, 5, 2, 7, 0, 7};
  mg_tensor *x = mk(rt, MG_F32, 2, (int64_t[]){2, 3}, xv);

  mg_tensor *s = mg_sum(x, -1, false);
  ok(s && s->ndim == 0, "sum(dim -1): whole tensor, 0-dim");
  is_num(at(s, 0), 22, 0, "sum = 22");
  mg_tensor *s0 = mg_sum(x, 0, false);
  ok(s0->ndim == 1 && s0->shape[0] == 3, "sum over dim 0 -> {3}");
  is_num(at(s0, 0) + 10 * at(s0, 1) + 100 * at(s0, 2), 8 + 50 + 900, 0, "column sums 8, 5, 9");
  mg_tensor *k = mg_mean(x, 1, true);
  ok(k->ndim == 2 && k->shape[0] == 2 && k->shape[1] == 1, "mean over dim 1 with keepdim -> {2,1}");
  is_num(at(k, 1), 14.0 / 3, 1e-6, "row mean 14/3");
  mg_tensor *v = mg_var(x, 1, false, true), *vb = mg_var(x, 1, false, false);
  is_num(at(v, 0), 13.0 / 3, 1e-6, "unbiased var of {1,5,2} = 13/3");
  is_num(at(vb, 0), 26.0 / 9, 1e-6, "biased var of {1,5,2} = 26/9");
  mg_tensor *sd = mg_std(x, -1, false, true);
  is_num(at(sd, 0), sqrt(142.0 / 15), 1e-6, "std of all six = sqrt((142/3) / 5)");

  /* max/min: 0-based indices in the input's dtype; ties pick the first */
  mg_tensor *mv, *mi;
  ok(mg_maxmin(x, 1, false, true, &mv, &mi) == 0, "maxmin over dim 1");
  ok(mi->dtype == MG_F32 && mi->ndim == 1, "indices are float32 like the input");
  is_num(at(mv, 0), 5, 0, "row 0 max 5");
  is_num(at(mi, 0), 1, 0, "row 0 argmax 1 (0-based)");
  is_num(at(mi, 1), 0, 0, "row 1 argmax 0: first of the tied 7s");
  mg_tensor *mn;
  ok(mg_maxmin(x, -1, false, false, &mn, NULL) == 0 && mn->ndim == 0 && at(mn, 0) == 0, "whole-tensor min, no indices");
  mg_tensor *am = mg_argmaxmin(x, -1, false, true);
  is_num(at(am, 0), 3, 0, "argmax over the whole tensor: flat index 3");
  mg_tensor *am0 = mg_argmaxmin(x, 0, true, false);
  ok(am0->ndim == 2 && am0->shape[0] == 1, "argmin over dim 0 with keepdim -> {1,3}");
  is_num(at(am0, 1), 1, 0, "argmin of column 1 is row 1");

  /* errors */
  ok(mg_sum(x, 2, false) == NULL, "sum over dim 2 of a 2-D tensor fails");
  is_str(mg_errmsg(rt), "sum: dim 3 out of range for a tensor of shape {2,3}", "message counts dims from 1");
  mg_tensor *e = mg_full(rt, MG_F32, 2, (int64_t[]){0, 3}, 0), *ev = NULL, *ei = NULL;
  ok(mg_maxmin(e, -1, false, true, &ev, &ei) == -1 && !ev, "max of an empty tensor fails");
  is_str(mg_errmsg(rt), "max: cannot reduce an empty tensor of shape {0,3} (no elements)", "empty max message");
  mg_tensor *es = mg_prod(e, -1, false);
  is_num(at(es, 0), 1, 0, "prod of an empty tensor is 1");

  /* float32 accumulation: 2^24 + 3 ones would stall a float accumulator at 2^24 */
  int64_t big = (1 << 24) + 3;
  mg_tensor *ones = mg_full(rt, MG_F32, 1, &big, 1.0);
  mg_tensor *os = mg_sum(ones, -1, false);
  is_num(at(os, 0), (double)(float)big, 0, "float32 sum of 2^24 + 3 ones is exact to float precision");

  /* matmul, 0-based shapes, transposed operand, promotion */
  double av[] = {1, 2, 3, 4, 5, 6};
  mg_tensor *a = mk(rt, MG_F64, 2, (int64_t[]){2, 3}, av);
  mg_tensor *at_ = mg_transpose(x, 0, 1);  /* {3,2} float32, strided */
  mg_tensor *p = mg_matmul(a, at_);
  ok(p && p->dtype == MG_F64 && p->shape[0] == 2 && p->shape[1] == 2, "float64 @ float32 -> float64 {2,2}");
  /* a @ x^T = [[1+10+6, 7+0+21], [4+25+12, 28+0+42]] */
  is_num(at(p, 0), 17, 1e-12, "(0,0)");
  is_num(at(p, 1), 28, 1e-12, "(0,1)");
  is_num(at(p, 2), 41, 1e-12, "(1,0)");
  is_num(at(p, 3), 70, 1e-12, "(1,1)");
  mg_tensor *bad = mg_matmul(a, a);
  ok(!bad, "{2,3} @ {2,3} fails");
  is_str(mg_errmsg(rt), "matmul: shapes {2,3} and {2,3} do not match (3 ~= 2)", "matmul message");

  /* linear with gradients: y = x w^T + b, L = sum(y) */
  double wv[] = {1, 0, -1, 2, 1, 0}, bv[] = {0.5, -0.5};
  mg_tensor *xl = mk(rt, MG_F64, 2, (int64_t[]){2, 3}, av), *w = mk(rt, MG_F64, 2, (int64_t[]){2, 3}, wv);
  mg_tensor *b = mk(rt, MG_F64, 1, (int64_t[]){2}, bv);
  xl->requires_grad = w->requires_grad = b->requires_grad = true;
  mg_tensor *y = mg_linear(xl, w, b);
  /* rows of x: (1,2,3), (4,5,6); y = [[1-3+.5, 2+2-.5], [4-6+.5, 8+5-.5]] */
  is_num(at(y, 0), -1.5, 1e-12, "linear y(0,0)");
  is_num(at(y, 3), 12.5, 1e-12, "linear y(1,1)");
  mg_tensor *L = mg_sum(y, -1, false);
  ok(mg_backward(L, NULL, false) == 0, "backward through sum and linear");
  /* dL/dx = ones{2,2} @ w = column sums of w, per row; dL/dw = ones^T @ x = column sums of x; dL/db = 2 */
  is_num(at(xl->grad, 0) + at(xl->grad, 1) + at(xl->grad, 2), 3 + 1 - 1, 1e-12, "grad x row 0 = (3, 1, -1)");
  is_num(at(xl->grad, 0), 3, 1e-12, "grad x(0,0) = 3");
  is_num(at(w->grad, 0), 5, 1e-12, "grad w(0,0) = 1 + 4");
  is_num(at(w->grad, 5), 9, 1e-12, "grad w(1,2) = 3 + 6");
  is_num(at(b->grad, 0), 2, 1e-12, "grad b = 2");

  /* norm over a dim (mg_norm_dim); expected values from PyTorch 1.13: X.norm(p, dim) with
  ** X = torch.tensor([((i*7) % 11 - 5) / 2 for i in range(24)], float64).view(2,3,4) */
  double Xv[24];
  for (int i = 0; i < 24; i++) Xv[i] = ((i * 7) % 11 - 5) / 2.0;
  mg_tensor *X = mk(rt, MG_F64, 3, (int64_t[]){2, 3, 4}, Xv);
  X->requires_grad = true;
  mg_tensor *n2 = mg_norm_dim(X, 2, 2, false), *ninf = mg_norm_dim(X, INFINITY, 0, false);
  mg_tensor *n3 = mg_norm_dim(X, 3, 1, true), *nh = mg_norm_dim(X, 0.5, 2, false);
  ok(n2->ndim == 2 && n2->shape[0] == 2 && n2->shape[1] == 3, "norm(2) over dim 2 -> {2,3}");
  is_num(at(n2, 0), 3.8078865529319543, 1e-12, "norm(2, dim 2) (0,0)");
  is_num(at(n2, 5), 3.122498999199199, 1e-12, "norm(2, dim 2) (1,2)");
  is_num(at(ninf, 0) + at(ninf, 1) + at(ninf, 4), 2.5 + 1.0 + 1.5, 1e-12, "norm(inf, dim 0)");
  ok(n3->ndim == 3 && n3->shape[1] == 1, "norm(3) over dim 1 with keepdim -> {2,1,4}");
  is_num(at(n3, 3), 3.1498026247371826, 1e-12, "norm(3, dim 1) (0,0,3)");
  is_num(at(nh, 1), 11.19615242270663, 1e-10, "norm(0.5, dim 2) (0,1)");
  /* gradient of sum(norm(3, dim 1)) against central differences */
  mg_tensor *n3s = mg_sum(n3, -1, false);
  ok(mg_backward(n3s, NULL, false) == 0, "backward through norm over a dim");
  double worst = 0;
  for (int i = 0; i < 24; i++) {
    double keep = Xv[i], f[2];
    for (int sgn = 0; sgn < 2; sgn++) {
      Xv[i] = keep + (sgn ? -1e-6 : 1e-6);
      mg_tensor *Xp = mk(rt, MG_F64, 3, (int64_t[]){2, 3, 4}, Xv), *np = mg_norm_dim(Xp, 3, 1, true);
      mg_tensor *sp = mg_sum(np, -1, false);
      f[sgn] = at(sp, 0);
      mg_release(Xp); mg_release(np); mg_release(sp);
    }
    Xv[i] = keep;
    double num = (f[0] - f[1]) / 2e-6, d = fabs(num - at(X->grad, i));
    if (d > worst) worst = d;
  }
  ok(worst < 1e-6, "norm(3, dim 1) gradient matches finite differences (max error %.2g)", worst);
  /* PyTorch: a zero row has gradient 0; the max norm shares the gradient among ties */
  double zr[] = {0, 0, 3, 4}, tr[] = {1, -3, 3, 2, 0, -2};
  mg_tensor *Z = mk(rt, MG_F64, 2, (int64_t[]){2, 2}, zr), *Tt = mk(rt, MG_F64, 2, (int64_t[]){2, 3}, tr);
  Z->requires_grad = Tt->requires_grad = true;
  mg_tensor *zn = mg_norm_dim(Z, 2, 1, false), *zs = mg_sum(zn, -1, false);
  mg_tensor *tn = mg_norm_dim(Tt, INFINITY, 1, false), *ts = mg_sum(tn, -1, false);
  ok(mg_backward(zs, NULL, false) == 0 && mg_backward(ts, NULL, false) == 0, "backward of row norms");
  ok(at(Z->grad, 0) == 0 && at(Z->grad, 1) == 0 && fabs(at(Z->grad, 2) - 0.6) < 1e-12 && fabs(at(Z->grad, 3) - 0.8) < 1e-12,
     "norm(2) over rows: a zero row gets 0, (3,4) gets (0.6, 0.8)");
  double want[] = {0, -0.5, 0.5, 0.5, 0, -0.5}, off = 0;
  for (int i = 0; i < 6; i++) off += fabs(at(Tt->grad, i) - want[i]);
  ok(off < 1e-12, "norm(inf) over rows shares the gradient among ties (as PyTorch)");
  mg_tensor *more[] = {X, n2, ninf, n3, nh, n3s, Z, Tt, zn, zs, tn, ts};
  for (size_t i = 0; i < sizeof more / sizeof *more; i++) mg_release(more[i]);

  /* release everything: no tensor memory left */
  mg_tensor *all[] = {s, s0, k, v, vb, sd, mv, mi, mn, am, am0, e, es, ones, os, a, at_, p, y, L, xl, w, b, x};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_release(all[i]);
  is_num((double)rt->live_bytes, (double)base, 0, "no tensor memory leaked");
  mg_rt_free(rt);
  return done_testing();
}
