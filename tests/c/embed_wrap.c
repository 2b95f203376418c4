/* embed_wrap.c — host buffers as tensors: zero-copy sharing in both
** directions, the three ownership modes, release callbacks exactly once on
** every path, detached borrowed memory. */
#include <stdlib.h>
#include "tap.h"
#include "moongrad.h"

typedef struct { int calls; void *seen; } counter;
static void release(void *data, void *ud) {
  counter *c = ud;
  c->calls++;
  c->seen = data;
  free(data);
}

int main(void) {
  char err[256];
  mg_runtime *R = mg_open(NULL, err, sizeof err);
  ok(R != NULL, "open");
  if (!R) return done_testing();
  ok(mg_run_string(R, "mg = require('moongrad')") == MG_OK, "mg global");

  /* ---- MG_BORROW: the same memory on both sides ---- */
  float host[6] = {1, 2, 3, 4, 5, 6};
  mg_value *b = NULL;
  ok(mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){2, 3}, host, MG_BORROW, NULL, NULL, &b) == MG_OK, "borrow a 2x3 buffer");
  ok(mg_tensor_data(b) == (void *)host, "the tensor's data pointer is the host buffer");
  ok(mg_set_global_tensor(R, "b", b) == MG_OK, "hand it to Lua");
  host[4] = 50;  /* host writes ... */
  double v = 0;
  ok(mg_run_string(R, "v = b:get(2, 2)") == MG_OK && mg_get_global_number(R, "v", &v) == MG_OK, "read from Lua");
  is_num(v, 50, 0, "a host write is seen from Lua");
  ok(mg_run_string(R, "b:set(1, 3, -7); b:narrow(1, 2, 1):mul_(10)") == MG_OK, "Lua writes, also through a view");
  is_num(host[2], -7, 0, "a Lua write is seen by the host");
  is_num(host[3], 40, 0, "a write through a Lua view is seen by the host (row 2 times 10)");
  is_num(host[5], 60, 0, "... every element of it");
  ok(mg_run_string(R, "bview = b:select(1, 1)") == MG_OK, "Lua keeps a view of the borrowed tensor");

  /* detach: from now on Lua must not touch the memory */
  ok(mg_tensor_detach(b) == MG_OK, "detach the borrowed buffer");
  ok(mg_tensor_data(b) == NULL, "no data pointer after detaching");
  host[0] = 1234;
  ok(mg_run_string(R, "return b + 1") == MG_ERR_RUN, "arithmetic on a detached tensor is an error");
  like(mg_last_error(R), "detached", "message says the memory was detached");
  ok(mg_run_string(R, "return bview:sum()") == MG_ERR_RUN, "a view of it errors too");
  ok(mg_run_string(R, "return b:item()") == MG_ERR_RUN, "item errors");
  ok(mg_run_string(R, "b:fill_(0)") == MG_ERR_RUN, "an in-place write errors");
  is_num(host[0], 1234, 0, "and did not write");
  ok(mg_run_string(R, "return b:get(1, 1)") == MG_ERR_RUN, "get errors");
  ok(mg_run_string(R, "return tostring(b)") == MG_OK, "tostring does not crash");
  double out[6];
  ok(mg_tensor_read(b, MG_FLOAT64, out, 6) == MG_ERR_ARG, "mg_tensor_read of a detached tensor: MG_ERR_ARG");
  ok(mg_run_string(R, "return mg.ones(2):sum()") == MG_OK, "the runtime is fine");
  mg_value_free(b);
  ok(mg_run_string(R, "b = nil; bview = nil; collectgarbage()") == MG_OK, "Lua drops it");

  /* ---- MG_COPY: independent ---- */
  double src[3] = {1, 2, 3};
  mg_value *c = NULL;
  ok(mg_tensor_wrap(R, MG_FLOAT64, 1, (int64_t[]){3}, src, MG_COPY, NULL, NULL, &c) == MG_OK, "copy a buffer");
  ok(mg_tensor_data(c) != (void *)src, "a copy has its own memory");
  src[0] = 100;
  mg_set_global_tensor(R, "c", c);
  ok(mg_run_string(R, "v = c:sum():item()") == MG_OK && mg_get_global_number(R, "v", &v) == MG_OK, "sum in Lua");
  is_num(v, 6, 0, "a host write after copying is not seen");
  ok(mg_tensor_detach(c) == MG_ERR_ARG, "a copy cannot be detached");
  mg_value_free(c);

  /* ---- MG_CALLBACK ---- */
  counter k1 = {0}, k2 = {0}, k3 = {0}, k4 = {0}, k5 = {0}, k6 = {0};
  /* 1: the host holds the only reference */
  float *p1 = malloc(4 * sizeof *p1);
  mg_value *w1 = NULL;
  ok(mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){4}, p1, MG_CALLBACK, release, &k1, &w1) == MG_OK, "callback wrap");
  ok(mg_tensor_data(w1) == (void *)p1, "callback memory is used in place");
  ok(k1.calls == 0, "not released while held");
  mg_value_free(w1);
  ok(k1.calls == 1 && k1.seen == p1, "released once when the host drops the only reference");

  /* 2: Lua holds it after the host let go */
  float *p2 = malloc(4 * sizeof *p2);
  mg_value *w2 = NULL;
  mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){4}, p2, MG_CALLBACK, release, &k2, &w2);
  mg_tensor_write(w2, MG_FLOAT64, (double[]){1, 2, 3, 4}, 4);
  mg_set_global_tensor(R, "w2", w2);
  ok(mg_run_string(R, "w2v = w2:view(2, 2)") == MG_OK, "Lua holds the tensor and a view");
  mg_value_free(w2);
  ok(k2.calls == 0, "not released while Lua holds it");
  ok(mg_run_string(R, "assert(w2v:sum():item() == 10)") == MG_OK, "Lua still reads it");
  ok(mg_run_string(R, "w2 = nil; collectgarbage()") == MG_OK && k2.calls == 0, "not released while a view lives");
  ok(mg_run_string(R, "w2v = nil; collectgarbage(); collectgarbage()") == MG_OK, "drop the view");
  ok(k2.calls == 1 && k2.seen == p2, "released once when the last Lua reference is collected");
  mg_collect(R);
  ok(k2.calls == 1, "not again");

  /* 3: failure paths release exactly once */
  float *p3 = malloc(4);
  mg_value *w3 = (mg_value *)1;
  ok(mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){-2}, p3, MG_CALLBACK, release, &k3, &w3) == MG_ERR_ARG,
     "a bad shape fails");
  ok(k3.calls == 1 && k3.seen == p3 && w3 == NULL, "released once on failure, out is NULL");
  float *p4 = malloc(4);
  ok(mg_tensor_wrap(NULL, MG_FLOAT32, 1, (int64_t[]){1}, p4, MG_CALLBACK, release, &k4, &w3) == MG_ERR_ARG,
     "a NULL runtime fails");
  ok(k4.calls == 1 && k4.seen == p4, "released once on that failure too");
  float *p5 = malloc(4);
  ok(mg_tensor_wrap(R, (mg_type)7, 1, (int64_t[]){1}, p5, MG_CALLBACK, release, &k5, &w3) == MG_ERR_ARG,
     "an unknown type fails");
  ok(k5.calls == 1, "released once");
  ok(mg_tensor_wrap(R, MG_FLOAT32, 9, (int64_t[9]){1}, malloc(4), MG_CALLBACK, release, &k5, &w3) == MG_ERR_ARG &&
     k5.calls == 2, "too many dims: released once");
  ok(mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){1}, malloc(4), MG_CALLBACK, release, &k5, NULL) == MG_ERR_ARG &&
     k5.calls == 3, "NULL out: released once");
  char *odd = malloc(16);
  ok(mg_tensor_wrap(R, MG_FLOAT64, 1, (int64_t[]){1}, odd + 4, MG_BORROW, NULL, NULL, &w3) == MG_ERR_ARG,
     "misaligned data is refused");
  like(mg_last_error(R), "not aligned", "message");
  free(odd);
  ok(mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){1}, p5, MG_CALLBACK, NULL, NULL, &w3) == MG_ERR_ARG,
     "MG_CALLBACK without a release function is refused");

  /* 4: mg_close releases what is left, held by the host or by Lua */
  float *p6 = malloc(8 * sizeof *p6), *p7 = malloc(8 * sizeof *p7);
  mg_value *w6 = NULL, *w7 = NULL;
  mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){8}, p6, MG_CALLBACK, release, &k6, &w6);
  mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){8}, p7, MG_CALLBACK, release, &k6, &w7);
  mg_set_global_tensor(R, "w7", w7);
  mg_value_free(w7);
  ok(k6.calls == 0, "two live callback tensors (one held by the host, one by Lua)");
  mg_close(R);
  ok(k6.calls == 2, "mg_close released both, once each");

  /* 5: the same buffer shared by two runtimes, borrowed */
  mg_runtime *A = mg_open(NULL, err, sizeof err), *B = mg_open(NULL, err, sizeof err);
  double shared[2] = {1, 2};
  mg_value *sa = NULL, *sb = NULL;
  mg_tensor_wrap(A, MG_FLOAT64, 1, (int64_t[]){2}, shared, MG_BORROW, NULL, NULL, &sa);
  mg_tensor_wrap(B, MG_FLOAT64, 1, (int64_t[]){2}, shared, MG_BORROW, NULL, NULL, &sb);
  mg_set_global_tensor(A, "s", sa);
  mg_set_global_tensor(B, "s", sb);
  mg_run_string(A, "s:mul_(3)");
  mg_run_string(B, "v = s:sum():item()");
  ok(mg_get_global_number(B, "v", &v) == MG_OK, "read in B");
  is_num(v, 9, 0, "runtime B sees runtime A's write to the shared host buffer");
  mg_close(A);
  mg_close(B);
  is_num(shared[1], 6, 0, "closing never frees borrowed memory (it is still readable)");
  return done_testing();
}
