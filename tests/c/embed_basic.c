/* embed_basic.c — the embedding API: running code, calls with tensors in and
** out, globals, statuses and messages, two runtimes in one process. */
#include <stdlib.h>
#include <unistd.h>
#include "tap.h"
#include "moongrad.h"

static double num_of(mg_value *v) {
  double x = NAN;
  if (v && mg_tensor_read(v, MG_FLOAT64, &x, 1) != MG_OK) return NAN;
  return x;
}

int main(void) {
  char err[256];
  mg_runtime *R = mg_open(NULL, err, sizeof err);
  ok(R != NULL, "mg_open with the default config");
  if (!R) { diag("%s", err); return done_testing(); }
  is_str(mg_version(), MOONGRAD_VERSION, "mg_version matches the header");

  /* run a string that defines functions and globals */
  ok(mg_run_string(R,
       "local mg = require('moongrad')\n"
       "function affine(x, w, b) return x * w + b end\n"
       "function two(x) return x:sum(), x:mean(), nil end\n"
       "function bad() local t = {} return t.x.y end\n"
       "function boolean() return true end\n"
       "function tbl() return {} end\n"
       "g = mg.tensor({{1, 2}, {3, 4}})\n"
       "n = 7.5\n") == MG_OK, "mg_run_string defines functions and globals");
  is_str(mg_last_error(R), "", "no message after success");

  /* call with tensors in and out */
  float xs[4] = {1, 2, 3, 4};
  mg_value *x = NULL, *w = NULL, *b = NULL, *y = NULL;
  ok(mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){2, 2}, xs, MG_COPY, NULL, NULL, &x) == MG_OK, "wrap (copy) x");
  ok(mg_tensor_zeros(R, MG_FLOAT32, 1, (int64_t[]){2}, &w) == MG_OK, "zeros w");
  ok(mg_tensor_write(w, MG_FLOAT64, (double[]){10, 100}, 2) == MG_OK, "write w");
  ok(mg_tensor_zeros(R, MG_FLOAT64, 0, NULL, &b) == MG_OK, "0-dim b");
  ok(mg_tensor_write(b, MG_FLOAT64, (double[]){0.5}, 1) == MG_OK, "write b");
  ok(mg_call(R, "affine", 3, (mg_value *[]){x, w, b}, 1, &y) == MG_OK, "mg_call affine");
  if (y) {
    ok(mg_tensor_ndim(y) == 2 && mg_tensor_dim(y, 0) == 2 && mg_tensor_dim(y, 1) == 2, "result shape {2,2}");
    ok(mg_tensor_type(y) == MG_FLOAT64, "float32 * float32 + float64 is float64");
    double out[4];
    ok(mg_tensor_read(y, MG_FLOAT64, out, 4) == MG_OK, "read result");
    is_num(out[0], 10.5, 1e-12, "y[0][0] = 1*10 + .5");
    is_num(out[1], 200.5, 1e-12, "y[0][1] = 2*100 + .5");
    is_num(out[3], 400.5, 1e-12, "y[1][1] = 4*100 + .5");
    float small[2];
    ok(mg_tensor_read(y, MG_FLOAT32, small, 2) == MG_ERR_ARG, "read into too small a buffer: MG_ERR_ARG");
    like(mg_last_error(R), "room for 2", "message says why");
  }
  mg_value_free(y);

  /* several results, numbers become 0-dim tensors, nil becomes NULL */
  mg_value *r[4] = {0};
  ok(mg_call(R, "two", 1, &x, 4, r) == MG_OK, "mg_call with 4 results");
  is_num(num_of(r[0]), 10, 1e-6, "sum");
  is_num(num_of(r[1]), 2.5, 1e-6, "mean");
  ok(r[2] == NULL && r[3] == NULL, "nil and missing results are NULL");
  for (int i = 0; i < 4; i++) mg_value_free(r[i]);
  ok(mg_call(R, "boolean", 0, NULL, 1, r) == MG_OK && num_of(r[0]) == 1, "true becomes 1");
  mg_value_free(r[0]);
  r[0] = (mg_value *)1;
  ok(mg_call(R, "tbl", 0, NULL, 1, r) == MG_ERR_RUN && r[0] == NULL, "a table result is an error, out set to NULL");
  like(mg_last_error(R), "result #1 is a table", "message names the result");

  /* script errors: message and traceback, runtime usable afterwards */
  ok(mg_call(R, "bad", 0, NULL, 0, NULL) == MG_ERR_RUN, "a Lua error returns MG_ERR_RUN");
  like(mg_last_error(R), "attempt to index a nil value", "message has the Lua error");
  like(mg_last_error(R), "stack traceback:", "message has a traceback");
  like(mg_last_error(R), "in function 'bad'", "traceback names the function");
  ok(mg_call(R, "nosuch", 0, NULL, 0, NULL) == MG_ERR_ARG, "unknown function: MG_ERR_ARG");
  like(mg_last_error(R), "global 'nosuch' is nil", "message names the global");
  ok(mg_run_string(R, "x = = 1") == MG_ERR_SYNTAX, "syntax error: MG_ERR_SYNTAX");
  like(mg_last_error(R), "unexpected symbol", "syntax message");
  ok(mg_run_string(R, "error('plain')") == MG_ERR_RUN, "error(): MG_ERR_RUN");
  ok(mg_run_string(R, "error(setmetatable({}, {__tostring = function() return 'custom obj' end}))") == MG_ERR_RUN,
     "error with a table");
  like(mg_last_error(R), "custom obj", "__tostring of an error object is used");
  ok(mg_run_string(R, "return 1") == MG_OK, "usable after errors");
  is_str(mg_last_error(R), "", "message cleared by the next call");
  ok(mg_run_file(R, "/nonexistent/x.lua", 0, NULL) == MG_ERR_FILE, "missing file: MG_ERR_FILE");
  like(mg_last_error(R), "cannot open", "message says so");
  ok(mg_run_string(R, "local mg = require('moongrad'); local a = mg.zeros(2, 3); local b = mg.zeros(4, 5); return mg.matmul(a, b)") == MG_ERR_RUN,
     "a tensor misuse is an error");
  like(mg_last_error(R), "matmul", "message names the op");

  /* run a file with arguments */
  char path[] = "/tmp/mg_embed_basicXXXXXX";
  int fd = mkstemp(path);
  const char src[] = "local a, b = ...\nfile_args = a .. '+' .. b\nfile_n = select('#', ...)\n";
  ok(fd >= 0 && write(fd, src, sizeof src - 1) == (ssize_t)(sizeof src - 1), "temp script written");
  close(fd);
  ok(mg_run_file(R, path, 2, (const char *[]){"one", "two"}) == MG_OK, "mg_run_file with args");
  unlink(path);
  ok(mg_run_string(R, "assert(file_args == 'one+two' and file_n == 2)") == MG_OK, "script saw its arguments");

  /* globals */
  mg_value *g = NULL;
  ok(mg_get_global_tensor(R, "g", &g) == MG_OK, "get global tensor");
  if (g) {
    double gv[4];
    mg_tensor_read(g, MG_FLOAT64, gv, 4);
    is_num(gv[2], 3, 0, "g[2][1] = 3");
  }
  ok(mg_get_global_tensor(R, "n", &y) == MG_ERR_ARG && y == NULL, "a number is not a tensor global");
  like(mg_last_error(R), "not a tensor", "message");
  double n = 0;
  ok(mg_get_global_number(R, "n", &n) == MG_OK && n == 7.5, "get global number");
  ok(mg_set_global_number(R, "n", 2) == MG_OK, "set global number");
  ok(mg_set_global_tensor(R, "h", g) == MG_OK, "set global tensor");
  ok(mg_run_string(R, "h2 = h * n") == MG_OK, "Lua uses both");
  ok(mg_get_global_number(R, "missing", &n) == MG_ERR_ARG, "missing number: MG_ERR_ARG");
  mg_value *h2 = NULL;
  ok(mg_get_global_tensor(R, "h2", &h2) == MG_OK, "read back h2");
  if (h2) {
    double hv[4];
    mg_tensor_read(h2, MG_FLOAT64, hv, 4);
    is_num(hv[3], 8, 0, "h2 = g * 2");
  }
  ok(mg_set_global_strings(R, "list", 2, (const char *[]){"a", "b"}, 0) == MG_OK, "set global strings");
  ok(mg_set_global_string(R, "s", "hello") == MG_OK, "set global string");
  ok(mg_run_string(R, "assert(list[0] == 'a' and list[1] == 'b' and s == 'hello')") == MG_OK, "strings seen from Lua");
  ok(mg_set_global_tensor(R, "h", NULL) == MG_OK && mg_run_string(R, "assert(h == nil)") == MG_OK, "set nil");

  /* two runtimes in one process are independent */
  mg_runtime *R2 = mg_open(NULL, err, sizeof err);
  ok(R2 != NULL, "a second runtime");
  ok(mg_run_string(R2, "assert(g == nil and affine == nil)") == MG_OK, "the second runtime has its own globals");
  ok(mg_call(R2, "affine", 0, NULL, 0, NULL) == MG_ERR_ARG, "functions of the first are not in the second");
  ok(mg_set_global_tensor(R2, "g", g) == MG_ERR_ARG, "a value of one runtime is refused by another");
  like(mg_last_error(R2), "another runtime", "message");
  is_str(mg_last_error(R), "", "the first runtime's message is untouched");
  mg_seed(R, 42);
  mg_seed(R2, 42);
  const char *draw = "local mg = require('moongrad'); r = mg.rand(5)";
  mg_run_string(R, draw);
  mg_run_string(R2, "local mg = require('moongrad'); mg.rand(100)");  /* advance R2 only */
  mg_seed(R2, 42);
  mg_run_string(R2, draw);
  mg_value *r1 = NULL, *r2 = NULL;
  mg_get_global_tensor(R, "r", &r1);
  mg_get_global_tensor(R2, "r", &r2);
  float a1[5] = {0}, a2[5] = {1};
  if (r1 && r2) { mg_tensor_read(r1, MG_FLOAT32, a1, 5); mg_tensor_read(r2, MG_FLOAT32, a2, 5); }
  ok(!memcmp(a1, a2, sizeof a1), "each runtime has its own random stream (same seed, same numbers)");
  mg_close(R2);  /* frees r2 */
  ok(mg_run_string(R, "assert(r:numel() == 5)") == MG_OK, "the first runtime lives on after the second closed");

  /* host argument errors */
  ok(mg_run_string(NULL, "x") == MG_ERR_ARG, "NULL runtime: MG_ERR_ARG");
  ok(mg_call(R, NULL, 0, NULL, 0, NULL) == MG_ERR_ARG, "NULL function name");
  ok(mg_tensor_zeros(R, MG_FLOAT32, 9, (int64_t[9]){1}, &y) == MG_ERR_ARG, "9 dims refused");
  ok(mg_tensor_zeros(R, MG_FLOAT32, 1, (int64_t[]){-1}, &y) == MG_ERR_ARG, "negative size refused");
  mg_config cfg;
  mg_config_init(&cfg);
  cfg.threads = -3;
  ok(mg_open(&cfg, err, sizeof err) == NULL, "bad config refused");
  like(err, "threads", "message names the field");
  cfg.threads = 0;
  cfg.size = 3;
  ok(mg_open(&cfg, err, sizeof err) == NULL, "config without mg_config_init refused");

  /* values left open are freed by mg_close (valgrind checks this in check-valgrind) */
  mg_value_free(x);
  mg_close(R);
  return done_testing();
}
