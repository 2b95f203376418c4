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

  /* release everything: no tensor memory left */
  mg_tensor *all[] = {s, s0, k, v, vb, sd, mv, mi, mn, am, am0, e, es, ones, os, a, at_, p, y, L, xl, w, b, x};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_release(all[i]);
  is_num((double)rt->live_bytes, (double)base, 0, "no tensor memory leaked");
  mg_rt_free(rt);
  return done_testing();
}
