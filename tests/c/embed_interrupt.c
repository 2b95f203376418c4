/* embed_interrupt.c — mg_interrupt: from another thread it stops an endless
** script with MG_ERR_INTERRUPTED (mg_run_*, mg_call, with or without a budget);
** a script may catch it; the runtime stays usable; an interrupt while nothing
** runs is dropped. The runner: SIGINT exits with status 130, a second one kills. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include "moongrad.h"
#include "tap.h"

/* the global tensor `ready` borrows this: a script sets it (ready:fill_(1)) where
** the interrupt is to land, when that matters */
static volatile float ready[1];
static bool wait_ready;
static atomic_bool call_over;  /* the script ended anyway: give up */

/* the interrupter: once the script is ready (if waited for), calls mg_interrupt
** until it lands (a script is running) */
static void *interrupter(void *ud) {
  mg_runtime *R = ud;
  struct timespec ms = {0, 1000000};
  while (wait_ready && ready[0] != 1 && !atomic_load(&call_over)) nanosleep(&ms, NULL);
  while (!atomic_load(&call_over) && !mg_interrupt(R)) nanosleep(&ms, NULL);
  return NULL;
}

/* run code while another thread interrupts it, when ready if `when_ready` */
static mg_status run_interrupted(mg_runtime *R, const char *code, bool when_ready) {
  pthread_t th;
  ready[0] = 0;
  wait_ready = when_ready;
  atomic_store(&call_over, false);
  if (pthread_create(&th, NULL, interrupter, R)) return MG_ERR_ARG;
  mg_status st = mg_run_string(R, code);
  atomic_store(&call_over, true);
  pthread_join(th, NULL);
  return st;
}

static double num(mg_runtime *R, const char *name) {
  double v = -1;
  mg_get_global_number(R, name, &v);
  return v;
}

static void api(void) {
  mg_runtime *R = mg_open(NULL, NULL, 0);
  ok(R != NULL, "runtime");
  ok(!mg_interrupt(NULL), "mg_interrupt(NULL) is a no-op");
  mg_value *flag = NULL;
  ok(mg_tensor_wrap(R, MG_FLOAT32, 1, (int64_t[]){1}, (void *)ready, MG_BORROW, NULL, NULL, &flag) == MG_OK &&
     mg_set_global_tensor(R, "ready", flag) == MG_OK, "the ready flag");

  ok(!mg_interrupt(R), "no script running: mg_interrupt returns false");
  ok(mg_run_string(R, "n = 0; for i = 1, 1000 do n = n + i end") == MG_OK && num(R, "n") == 500500,
     "the next call runs to the end (an interrupt between calls is dropped)");

  ok(run_interrupted(R, "while true do end", false) == MG_ERR_INTERRUPTED, "an endless loop: MG_ERR_INTERRUPTED");
  like(mg_last_error(R), "interrupted", "message");
  ok(mg_run_string(R, "x = 1 + 1") == MG_OK && num(R, "x") == 2, "the runtime is usable afterwards");
  is_str(mg_last_error(R), "", "no message after a success");

  ok(run_interrupted(R, "local mg = require('moongrad'); local a = mg.randn(64, 64)\n"
                        "while true do a = (a:matmul(a) / 64):tanh() end", false) == MG_ERR_INTERRUPTED,
     "a loop of tensor kernels: MG_ERR_INTERRUPTED");

  ok(run_interrupted(R, "ok, err = pcall(function() ready:fill_(1); while true do end end); after = 1", true) == MG_OK,
     "a script that catches the interrupt ends normally");
  ok(mg_run_string(R, "assert(ok == false and err == 'interrupted' and after == 1)") == MG_OK,
     "pcall got false, 'interrupted', and the script went on");

  ok(mg_run_string(R, "function spin() while true do end end") == MG_OK, "define spin");
  pthread_t th;
  mg_value *v = (mg_value *)1;
  wait_ready = false;
  atomic_store(&call_over, false);
  pthread_create(&th, NULL, interrupter, R);
  ok(mg_call(R, "spin", 0, NULL, 1, &v) == MG_ERR_INTERRUPTED && v == NULL, "mg_call: MG_ERR_INTERRUPTED");
  atomic_store(&call_over, true);
  pthread_join(th, NULL);

  /* with an instruction budget: both work, each with its own status */
  ok(mg_set_budget(R, (uint64_t)1 << 50) == MG_OK, "a large budget");
  ok(run_interrupted(R, "while true do end", false) == MG_ERR_INTERRUPTED, "interrupted under a budget");
  ok(mg_run_string(R, "local s = 0; for i = 1, 100000 do s = s + i end; y = s") == MG_OK && num(R, "y") == 5000050000.0,
     "the budget's hook is back: a long loop still runs");
  /* enough for the interrupter to land first (under valgrind too), little enough to end soon after */
  ok(mg_set_budget(R, 20000000) == MG_OK, "a budget of 2e7 instructions");
  ok(run_interrupted(R, "ok, err = pcall(function() ready:fill_(1); while true do end end); while true do end", true) == MG_ERR_BUDGET,
     "a caught interrupt, then an endless loop: MG_ERR_BUDGET");
  like(mg_last_error(R), "instruction budget exhausted", "budget message");
  ok(mg_run_string(R, "assert(err == 'interrupted')") == MG_OK, "the pcall had caught the interrupt");
  ok(mg_run_string(R, "local co = coroutine.wrap(function() while true do pcall(function() while true do end end) end end)\n"
                      "co()") == MG_ERR_BUDGET, "a pcall loop in a coroutine still cannot outlast the budget");
  ok(mg_run_string(R, "z = 3") == MG_OK && num(R, "z") == 3, "usable after both");
  mg_tensor_detach(flag);
  mg_value_free(flag);
  mg_close(R);
}

/* the runner, on scripts that send SIGINT to it themselves (deterministic: the
** signal is delivered before the kill command's pclose returns) */
static int runner(const char *build, const char *code, char *out, size_t outlen, int *sig) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "exec %s/moongrad -e \"%s\" 2>&1 </dev/null", build, code);
  int st = tap_capture(cmd, out, outlen);
  if (st == -1) return -1;
  *sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* \$PPID: escaped from the shell that starts the runner, expanded by the one the script starts */
#define CTRL_C "io.popen('kill -INT \\$PPID'):close()"
/* an endless loop, but one that gives up after a minute rather than hang the suite */
#define SPIN "local t = os.time(); while os.time() - t < 60 do end; error('not interrupted')"

static void run_runner(void) {
  const char *build = getenv("MG_BUILD");
  if (!build) build = "build";
  char out[4096];
  int sig;
  ok(runner(build, "print('before'); " CTRL_C "; " SPIN, out, sizeof out, &sig) == 130 && !sig,
     "runner: SIGINT during an endless loop exits with status 130");
  like(out, "moongrad: interrupted", "and says so");
  ok(!strstr(out, "stack traceback"), "without a traceback");
  ok(runner(build, "print(pcall(function() " CTRL_C "; " SPIN " end)); io.stdout:flush(); "
                   CTRL_C "; " SPIN, out, sizeof out, &sig) == -1 && sig == SIGINT,
     "runner: a second SIGINT kills it (default action)");
  like(out, "false\tinterrupted", "the first one reached the script as an error");
  ok(runner(build, "print(pcall(function() " CTRL_C "; " SPIN " end))", out, sizeof out, &sig) == 0,
     "runner: a script that catches the interrupt exits 0");
}

int main(void) {
  api();
  run_runner();
  return done_testing();
}
