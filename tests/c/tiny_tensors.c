/* Small tensors share one block for header, storage and data, and autodiff
** nodes are recycled: the lifetimes that this must keep right (a view outliving
** its base and the reverse, header reuse, nodes of many inputs), run under ASan
** by make check-asan. */
#include <stdlib.h>
#include "mg_core.h"
#include "tap.h"

int main(void) {
  mg_rt *rt = mg_rt_new();
  size_t live0 = rt->live_bytes;

  /* 8 floats = 32 bytes: data in the header block, not counted as storage */
  double v8[] = {1, 2, 3, 4, 5, 6, 7, 8};
  mg_tensor *a = mg_from_data(rt, MG_F32, 1, (int64_t[]){8}, v8);
  ok(a && rt->live_bytes == live0, "a 32-byte tensor allocates no storage block");
  double v9[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  mg_tensor *b = mg_from_data(rt, MG_F32, 1, (int64_t[]){9}, v9);
  ok(b && rt->live_bytes > live0, "a 36-byte tensor has its own storage block");
  mg_release(b);
  ok(rt->live_bytes == live0, "and gives it back");

  /* a view outlives its base: the base's block stays until the view dies */
  mg_tensor *v = mg_narrow(a, 0, 2, 3);
  ok(v && v->st == a->st && a->st->refcount == 2, "a view shares the small storage");
  mg_release(a);
  for (int i = 0; i < 100; i++) {  /* recycle headers: the base block must not be reused */
    mg_tensor *t = mg_scalar(rt, MG_F64, -1);
    mg_release(t);
  }
  is_num(mg_get_flat(v, 0), 3, 0, "the view reads its data after the base is released");
  is_num(mg_get_flat(v, 2), 5, 0, "all of it");
  mg_tensor *w = mg_binary(MG_MUL, v, v);
  is_num(mg_get_flat(w, 1), 16, 0, "and computes with it");
  mg_release(v);
  mg_release(w);

  /* the base outlives its view */
  mg_tensor *c = mg_full(rt, MG_F64, 1, (int64_t[]){4}, 2.5);
  mg_tensor *cv = mg_select(c, 0, 1);
  mg_release(cv);
  is_num(mg_get_flat(c, 3), 2.5, 0, "the base is intact after its view is released");
  mg_release(c);
  ok(rt->live_bytes == live0, "no storage bytes leaked");

  /* one-element and same-shape fast paths, and a broadcast that is not one */
  mg_tensor *x = mg_from_data(rt, MG_F32, 1, (int64_t[]){1}, (double[]){3});
  mg_tensor *y = mg_from_data(rt, MG_F32, 2, (int64_t[]){2, 2}, (double[]){1, 2, 3, 4});
  mg_tensor *xy = mg_binary(MG_SUB, x, y);
  ok(xy && xy->ndim == 2 && xy->shape[0] == 2, "{1} - {2,2} has shape {2,2}");
  is_num(mg_get_flat(xy, 3), -1, 0, "3 - 4");
  mg_tensor *yx = mg_binary(MG_POW, y, x);
  is_num(mg_get_flat(yx, 1), 8, 0, "2 ^ 3");
  mg_tensor *s = mg_scalar(rt, MG_F32, 2);
  mg_tensor *y2 = mg_binary(MG_DIV, y, s);
  ok(y2 && y2->ndim == 2, "{2,2} / 0-dim keeps {2,2}");
  is_num(mg_get_flat(y2, 2), 1.5, 0, "3 / 2");
  mg_tensor *sx = mg_binary(MG_ADD, s, x);
  ok(sx && sx->ndim == 1, "0-dim + {1} has shape {1}");
  mg_release(xy); mg_release(yx); mg_release(y2); mg_release(sx); mg_release(s); mg_release(y);

  /* autodiff through nodes of 2 and of 5 inputs (recycled and not), twice */
  for (int round = 0; round < 2; round++) {
    mg_tensor *p = mg_from_data(rt, MG_F64, 1, (int64_t[]){2}, (double[]){1, 2});
    p->requires_grad = true;
    mg_tensor *parts[5] = {p, p, p, p, p};
    mg_tensor *cat = mg_cat(5, parts, 0);
    mg_tensor *sq = mg_binary(MG_MUL, cat, cat);
    mg_tensor *tot = mg_sum(sq, -1, false);
    ok(tot && mg_backward(tot, NULL, false) == 0, "backward through cat of 5 (round %d)", round + 1);
    is_num(p->grad ? mg_get_flat(p->grad, 1) : -1, 5 * 2 * 2, 1e-12, "d/dp of sum(cat(p x5)^2) is 10p");
    mg_release(tot); mg_release(sq); mg_release(cat); mg_release(p);
  }
  mg_release(x);
  ok(rt->live_bytes == live0, "everything released");
  mg_rt_free(rt);
  return done_testing();
}
