/* embed_limits.c — the memory limit (Lua heap and tensors together) and the
** per-call instruction budget: each returns an error and leaves the runtime usable. */
#include "tap.h"
#include "moongrad.h"

#define MB ((size_t)1 << 20)

int main(void) {
  char err[256];
  mg_config cfg;
  mg_config_init(&cfg);
  cfg.mem_limit = 32 * MB;
  mg_runtime *R = mg_open(&cfg, err, sizeof err);
  ok(R != NULL, "open with a 32 MiB limit");
  if (!R) { diag("%s", err); return done_testing(); }
  size_t lua0, ten0;
  mg_memory_used(R, &lua0, &ten0);
  ok(lua0 > 0 && lua0 < 8 * MB, "the Lua heap is counted (%zu bytes after opening)", lua0);

  /* tensors past the limit */
  ok(mg_run_string(R, "local mg = require('moongrad'); big = mg.zeros(16 * 1024 * 1024)") == MG_ERR_MEMORY,
     "a 64 MiB tensor under a 32 MiB limit: MG_ERR_MEMORY");
  like(mg_last_error(R), "out of memory", "message says out of memory");
  like(mg_last_error(R), "memory limit 33554432 bytes", "message gives the limit");
  ok(mg_run_string(R, "local mg = require('moongrad'); small = mg.ones(1000); assert(small:sum():item() == 1000)") == MG_OK,
     "usable after a tensor limit hit");

  /* many tensors kept alive: the sum passes the limit */
  ok(mg_run_string(R, "local mg = require('moongrad'); keep = {}; for i = 1, 100 do keep[i] = mg.zeros(1024 * 1024) end") ==
     MG_ERR_MEMORY, "100 live 4 MiB tensors: MG_ERR_MEMORY");
  ok(mg_run_string(R, "keep = nil") == MG_OK, "drop them");
  mg_collect(R);
  size_t lua1, ten1;
  mg_memory_used(R, &lua1, &ten1);
  ok(ten1 < MB, "tensor memory is back after the collection (%zu bytes)", ten1);

  /* garbage tensors are collected under pressure, no error */
  ok(mg_run_string(R, "local mg = require('moongrad'); for i = 1, 50 do local t = mg.zeros(1024 * 1024) end") == MG_OK,
     "50 short-lived 4 MiB tensors fit: garbage is collected when the limit is near");

  /* the Lua heap past the limit */
  ok(mg_run_string(R, "t = {}; for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end") == MG_ERR_MEMORY,
     "an endless Lua table: MG_ERR_MEMORY");
  like(mg_last_error(R), "not enough memory", "Lua's message");
  ok(mg_run_string(R, "t = nil; collectgarbage(); local s = 0; for i = 1, 1000 do s = s + i end; assert(s == 500500)") == MG_OK,
     "usable after a Lua heap limit hit");

  /* Lua memory and tensor memory share the one limit */
  ok(mg_run_string(R, "local mg = require('moongrad'); held = mg.zeros(6 * 1024 * 1024)") == MG_OK, "24 MiB of tensors");
  ok(mg_run_string(R, "t = {}; for i = 1, 1e6 do t[i] = ('y'):rep(40) .. i end") == MG_ERR_MEMORY,
     "then 10+ MiB of Lua strings: MG_ERR_MEMORY");
  size_t lua2, ten2;
  mg_memory_used(R, &lua2, &ten2);
  ok(lua2 + ten2 <= 32 * MB, "Lua + tensors stayed within the limit (%zu + %zu)", lua2, ten2);
  ok(mg_run_string(R, "t = nil; held = nil") == MG_OK, "release");

  /* the error inside pcall: the script may handle it itself */
  ok(mg_run_string(R, "local mg = require('moongrad'); local ok, e = pcall(mg.zeros, 64 * 1024 * 1024)\n"
                      "assert(not ok and e:find('out of memory'))") == MG_OK,
     "a script can catch the limit error with pcall");

  /* the limit can be changed */
  ok(mg_set_mem_limit(R, 0) == MG_OK, "lift the limit");
  ok(mg_run_string(R, "local mg = require('moongrad'); local big = mg.zeros(16 * 1024 * 1024)") == MG_OK,
     "64 MiB fits without a limit");
  mg_close(R);

  /* a limit too small to even open */
  cfg.mem_limit = 4096;
  ok(mg_open(&cfg, err, sizeof err) == NULL, "open with a 4 KiB limit fails");
  like(err, "mg_open", "with a message");

  /* instruction budget */
  mg_config_init(&cfg);
  cfg.instruction_budget = 100000;
  R = mg_open(&cfg, err, sizeof err);
  ok(R != NULL, "open with a budget of 100000 instructions");
  ok(mg_run_string(R, "while true do end") == MG_ERR_BUDGET, "an endless loop: MG_ERR_BUDGET");
  like(mg_last_error(R), "instruction budget exhausted", "message");
  ok(mg_run_string(R, "local s = 0; for i = 1, 1000 do s = s + i end; assert(s == 500500)") == MG_OK,
     "a short chunk runs afterwards: the budget is per call");
  ok(mg_run_string(R, "function spin(n) local s = 0; for i = 1, n do s = s + i end; return s end") == MG_OK,
     "define a function");
  mg_value *v = NULL;
  ok(mg_set_global_number(R, "N", 1e9) == MG_OK && mg_run_string(R, "r = spin(N)") == MG_ERR_BUDGET,
     "a long loop through a function: MG_ERR_BUDGET");
  ok(mg_run_string(R, "while true do pcall(function() while true do end end) end") == MG_ERR_BUDGET,
     "swallowing the budget error with pcall does not escape it");
  ok(mg_run_string(R, "local co = coroutine.wrap(function() while true do end end); co()") == MG_ERR_BUDGET,
     "an endless coroutine: MG_ERR_BUDGET");
  ok(mg_call(R, "spin", 0, NULL, 1, &v) == MG_ERR_RUN, "spin(nil) is an ordinary error");
  ok(mg_run_string(R, "function loop() while true do end end") == MG_OK, "define an endless function");
  ok(mg_call(R, "loop", 0, NULL, 1, &v) == MG_ERR_BUDGET && v == NULL, "mg_call: MG_ERR_BUDGET");
  ok(mg_set_budget(R, 0) == MG_OK, "remove the budget");
  ok(mg_set_global_number(R, "N", 3e6) == MG_OK && mg_run_string(R, "r = spin(N)") == MG_OK,
     "3e6 iterations run without a budget");
  ok(mg_set_budget(R, 50) == MG_OK && mg_run_string(R, "for i = 1, 100 do end") == MG_ERR_BUDGET,
     "a budget of 50 instructions stops a 100-step loop");
  mg_close(R);
  return done_testing();
}
