/* The core C API without Lua: storage sharing, views, broadcasting, autodiff,
** version checks, allocator accounting and errors. */
#include <stdlib.h>
#include "mg_core.h"
#include "tap.h"

static double at(mg_tensor *t, int64_t i) { return mg_get_flat(t, i); }

int main(void) {
  mg_rt *rt = mg_rt_new();
  ok(rt != NULL, "runtime opens");

  int64_t s23[] = {2, 3};
  double v[] = {1, 2, 3, 4, 5, 6};
  mg_tensor *a = mg_from_data(rt, MG_F32, 2, s23, v);
  ok(a && a->numel == 6 && mg_is_contiguous(a), "from_data: 2x3 contiguous");
  mg_tensor *tr = mg_transpose(a, 0, 1);
  ok(tr->st == a->st && a->st->refcount == 2, "a transpose shares storage");
  ok(!mg_is_contiguous(tr) && tr->shape[0] == 3 && tr->stride[0] == 1, "transpose swaps shape and strides");
  is_num(at(tr, 1), 4, 0, "transpose element (0,1) is a(1,0)");
  mg_tensor *c = mg_contiguous(tr);
  is_num(at(c, 1), 4, 0, "contiguous copy keeps values");
  ok(c->st != a->st, "contiguous copy has its own storage");

  /* broadcasting */
  double rowv[] = {10, 20, 30};
  mg_tensor *row = mg_from_data(rt, MG_F32, 1, (int64_t[]){3}, rowv);
  mg_tensor *sum = mg_binary(MG_ADD, a, row);
  ok(sum && sum->ndim == 2 && sum->shape[1] == 3, "add broadcasts {2,3} + {3}");
  is_num(at(sum, 5), 36, 0, "broadcast value");
  mg_tensor *two = mg_from_data(rt, MG_F32, 1, (int64_t[]){2}, v);
  mg_tensor *bad = mg_binary(MG_ADD, a, two);
  ok(bad == NULL, "incompatible shapes fail");
  like(mg_errmsg(rt), "add: shapes {2,3} and {2} cannot be broadcast", "error message names op and shapes");

  /* autodiff: d/dx sum((x*w)) via sum_to */
  double xv[] = {1, 2, 3};
  mg_tensor *x = mg_from_data(rt, MG_F64, 1, (int64_t[]){3}, xv);
  x->requires_grad = true;
  mg_tensor *y = mg_binary(MG_MUL, x, x);
  ok(y->grad_fn != NULL && y->requires_grad, "op output records a node");
  mg_tensor *g = mg_full(rt, MG_F64, 1, (int64_t[]){3}, 1.0);
  ok(mg_backward(y, g, false) == 0, "backward runs");
  ok(x->grad != NULL, "leaf gets a gradient");
  is_num(at(x->grad, 2), 6, 0, "d(x^2)/dx = 2x");
  ok(mg_backward(y, g, false) != 0, "second backward through a freed graph fails");
  like(mg_errmsg(rt), "second time", "and says why");

  /* version counter */
  mg_tensor *w = mg_from_data(rt, MG_F64, 1, (int64_t[]){3}, xv);
  mg_tensor *z = mg_binary(MG_MUL, x, w);
  mg_fill_(w, 0);
  ok(mg_backward(z, g, false) != 0, "modifying a saved tensor in place is caught");
  like(mg_errmsg(rt), "modified by an in-place operation", "with a clear message");

  /* no grad mode */
  rt->grad_enabled = false;
  mg_tensor *ng = mg_binary(MG_MUL, x, x);
  ok(ng->grad_fn == NULL && !ng->requires_grad, "no node when recording is off");
  rt->grad_enabled = true;

  /* sum_to */
  mg_tensor *big = mg_full(rt, MG_F32, 3, (int64_t[]){4, 2, 3}, 1.0);
  mg_tensor *red = mg_sum_to(big, 2, (int64_t[]){1, 3});
  ok(red && red->shape[0] == 1 && red->shape[1] == 3, "sum_to shape");
  is_num(at(red, 0), 8, 0, "sum_to sums over broadcast dims");

  /* allocator accounting */
  size_t live = rt->live_bytes;
  mg_tensor *m = mg_empty(rt, MG_F32, 1, (int64_t[]){1 << 20});
  ok(rt->live_bytes >= live + (4u << 20), "allocations are counted");
  mg_release(m);
  ok(rt->live_bytes == live, "and uncounted when freed");
  rt->mem_limit = rt->live_bytes + (1 << 20);
  mg_tensor *over = mg_empty(rt, MG_F32, 1, (int64_t[]){1 << 20});
  ok(over == NULL, "memory limit refuses an allocation");
  like(mg_errmsg(rt), "out of memory", "with an out-of-memory message");
  rt->mem_limit = 0;

  /* wrapped host memory */
  float host[4] = {1, 2, 3, 4};
  mg_tensor *hw = mg_wrap(rt, MG_F32, 1, (int64_t[]){4}, host, MG_ST_BORROW, NULL, NULL);
  host[2] = 30;
  is_num(at(hw, 2), 30, 0, "a wrapped buffer shares memory with the host");
  hw->st->detached = true;
  ok(mg_unary(MG_EXP, hw, 0, 0) == NULL, "a detached buffer cannot be used");
  like(mg_errmsg(rt), "detached", "and the error says so");

  mg_tensor *all[] = {two, a, tr, c, row, sum, x, y, g, w, z, ng, big, red, hw};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) mg_release(all[i]);
  mg_rt_free(rt);
  return done_testing();
}
