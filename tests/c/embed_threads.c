/* embed_threads.c — two threads, each with its own runtime, training at the
** same time; each must get exactly the result of the same run done alone. And a
** process forked after the worker pool started still runs threaded kernels. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tap.h"
#include "moongrad.h"

static const char TRAIN[] =
    "local mg = require('moongrad')\n"
    "function train(x, y, steps)\n"
    "  local model = mg.nn.Sequential{mg.nn.Linear(4, 32), mg.nn.Tanh(), mg.nn.Linear(32, 1)}\n"
    "  local opt = mg.optim('sgd', model:parameters(), {lr = 0.05, momentum = 0.9})\n"
    "  local crit = mg.loss('mse')\n"
    "  local first, last\n"
    "  for i = 1, steps:item() do\n"
    "    opt:zero_grad()\n"
    "    local loss = crit(model(x), y)\n"
    "    loss:backward()\n"
    "    opt:step()\n"
    "    first = first or loss:item()\n"
    "    last = loss:item()\n"
    "  end\n"
    "  return first, last\n"
    "end\n";

typedef struct {
  uint64_t seed;
  int steps;
  double first, last;
  int status;
  char err[512];
} job;

static void *run(void *arg) {
  job *j = arg;
  mg_runtime *R = mg_open(NULL, j->err, sizeof j->err);
  if (!R) { j->status = -1; return NULL; }
  /* each thread's data lives in its own host buffers, borrowed */
  enum { N = 256 };
  float *x = malloc(N * 4 * sizeof *x), *y = malloc(N * sizeof *y);
  uint64_t s = j->seed;
  for (int i = 0; i < N; i++) {
    double acc = 0;
    for (int k = 0; k < 4; k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      x[i * 4 + k] = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
      acc += (k + 1) * x[i * 4 + k];
    }
    y[i] = (float)(acc > 0 ? acc : 0.5 * acc);
  }
  mg_value *in[3] = {0}, *out[2] = {0};
  mg_seed(R, j->seed);
  j->status = mg_run_string(R, TRAIN);
  if (!j->status) j->status = mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){N, 4}, x, MG_BORROW, NULL, NULL, &in[0]);
  if (!j->status) j->status = mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){N, 1}, y, MG_BORROW, NULL, NULL, &in[1]);
  if (!j->status) j->status = mg_tensor_zeros(R, MG_FLOAT64, 0, NULL, &in[2]);
  if (!j->status) j->status = mg_tensor_write(in[2], MG_FLOAT64, (double[]){j->steps}, 1);
  if (!j->status) j->status = mg_call(R, "train", 3, in, 2, out);
  if (!j->status) {
    mg_tensor_read(out[0], MG_FLOAT64, &j->first, 1);
    mg_tensor_read(out[1], MG_FLOAT64, &j->last, 1);
  } else snprintf(j->err, sizeof j->err, "%s", mg_last_error(R));
  mg_tensor_detach(in[0]);
  mg_tensor_detach(in[1]);
  mg_close(R);  /* frees the values still open */
  free(x);
  free(y);
  return NULL;
}

int main(void) {
  enum { STEPS = 150 };
  job alone[2] = {{.seed = 1, .steps = STEPS}, {.seed = 2, .steps = STEPS}};
  job both[2] = {{.seed = 1, .steps = STEPS}, {.seed = 2, .steps = STEPS}};
  for (int i = 0; i < 2; i++) {
    run(&alone[i]);
    ok(alone[i].status == 0, "job %d alone trains", i + 1);
    if (alone[i].status) diag("%s", alone[i].err);
    ok(alone[i].last < alone[i].first * 0.2, "job %d alone: loss %.4g -> %.4g", i + 1, alone[i].first, alone[i].last);
  }
  ok(alone[0].last != alone[1].last, "the two jobs differ (different seeds and data)");
  for (int round = 0; round < 3; round++) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
      both[i].status = -1;
      both[i].first = both[i].last = -1;
      pthread_create(&th[i], NULL, run, &both[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
      ok(both[i].status == 0, "round %d: job %d trains in its thread", round + 1, i + 1);
      if (both[i].status) diag("%s", both[i].err);
      ok(both[i].first == alone[i].first && both[i].last == alone[i].last,
         "round %d: job %d concurrent result equals its result alone (%.10g)", round + 1, i + 1, both[i].last);
    }
  }
  /* fork after the pool's workers started: the child has none of them and must start its
  ** own rather than wait for the parent's. (Not under ThreadSanitizer, which cannot start
  ** threads in a child of a threaded process.) */
#ifndef __SANITIZE_THREAD__
  mg_config cfg;
  mg_config_init(&cfg);
  cfg.threads = 2;
  mg_runtime *R = mg_open(&cfg, NULL, 0);
  static const char PROD[] = "local mg = require('moongrad')\n"
                             "local p = mg.ones(256, 512):matmul(mg.ones(512, 256))\n"
                             "assert(p:sum():item() == 256 * 256 * 512, 'wrong product')\n";
  ok(R && mg_run_string(R, PROD) == 0, "a 2-thread product in the parent");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(30);  /* a child waiting for workers it does not have dies instead of hanging */
    _exit(mg_run_string(R, PROD) == 0 ? 0 : 1);
  }
  int st = -1;
  waitpid(pid, &st, 0);
  ok(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the same product in a forked child (wait status %d)", st);
  mg_close(R);
#endif
  return done_testing();
}
