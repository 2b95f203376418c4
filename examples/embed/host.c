/*
** host.c — a complete host program embedding moongrad.
**
** The "application" owns a data set in its own buffers (a sensor calibration
** problem: predict a reading from three raw channels). It opens a runtime,
** registers its own optimizer (compiled into this program, no dlopen), wraps
** its buffers as tensors without copying, defines a Lua training function,
** trains, and reads the predictions back into its own memory.
**
** Build against an installed moongrad (see docs/embedding.md):
**   cc -std=c11 -O2 -o host host.c $(pkg-config --cflags --libs moongrad) -lm \
**      -Wl,-rpath,$(pkg-config --variable=libdir moongrad)
** Run:  ./host        (exit status 0 when the model has learned the data)
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "moongrad.h"
#include "moongrad_plugin.h"

/* ---- the host's own optimizer: SGD with a learning-rate decay per step ---- */

static const mgp_host *H;  /* set from mg_plugin_host_table() before registering */

enum { LR, DECAY };
static const mgp_hparam host_sgd_hparams[] = {
  [LR] = {"lr", MGP_NUM, 0.1, 0.0, HUGE_VAL, MGP_HP_MIN_OPEN, "learning rate"},
  [DECAY] = {"decay", MGP_NUM, 0.0, 0.0, 1.0, MGP_HP_MAX_OPEN, "lr is multiplied by (1 - decay) after each step"},
};

static int host_sgd_step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  double t = H->state_get(ctx, -1, "t", 0);  /* steps taken so far: optimizer state */
  double lr = hp[LR] * pow(1 - hp[DECAY], t);
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i);
    void *pd = H->data(p);
    const void *gd = H->data(g);
    int dt = H->dtype(p);
    for (int64_t k = 0, m = H->numel(p); k < m; k++)
      mgp_set(pd, dt, k, mgp_get(pd, dt, k) - lr * mgp_get(gd, dt, k));
  }
  return H->state_put(ctx, -1, "t", t + 1);
}

static const mgp_optim_desc host_sgd = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "host_sgd", "1.0.0", "SGD with per-step lr decay (from the host program)"),
  .hparams = host_sgd_hparams,
  .nhparams = MGP_COUNTOF(host_sgd_hparams),
  .state_version = 1,
  .step = host_sgd_step,
};

/* ---- the training code, defined by the host ---- */

static const char MODEL[] =
    "local mg = require('moongrad')\n"
    "model = mg.nn.Sequential{mg.nn.Linear(3, 16), mg.nn.Tanh(), mg.nn.Linear(16, 1)}\n"
    "-- x: N x 3 inputs, y: N x 1 targets (host memory); returns the last epoch's loss\n"
    "function train(x, y)\n"
    "  local opt = mg.optim('host_sgd', model:parameters(), {lr = lr, decay = 2e-4})\n"
    "  local loss\n"
    "  for epoch = 1, epochs do\n"
    "    opt:zero_grad()\n"
    "    loss = ((model(x) - y)^2):mean()\n"
    "    loss:backward()\n"
    "    opt:step()\n"
    "  end\n"
    "  return loss:item()\n"
    "end\n"
    "-- writes the predictions for x into out (host memory, N x 1)\n"
    "function predict(x, out)\n"
    "  mg.no_grad(function() out:copy_(model(x)) end)\n"
    "end\n";

/* ---- the application's data ---- */

enum { N = 200 };

static double truth(const float *x) { return 0.8 * x[0] - 0.5 * x[1] + 0.3 * sin(3 * x[2]) + 0.1; }

static void make_data(float *x, float *y) {
  uint32_t s = 12345;
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < 3; k++) {
      s = s * 1664525u + 1013904223u;
      x[i * 3 + k] = (float)(s >> 8) / (float)(1 << 24) * 2 - 1;
    }
    y[i] = (float)truth(&x[i * 3]);
  }
}

/* the target buffer is handed over: the runtime frees it through this callback */
static void free_targets(void *data, void *ud) {
  (void)ud;
  free(data);
}

static int check(mg_runtime *R, mg_status st, const char *what) {
  if (st == MG_OK) return 0;
  fprintf(stderr, "host: %s failed (status %d):\n%s\n", what, (int)st, mg_last_error(R));
  return 1;
}

int main(void) {
  static float inputs[N * 3], predictions[N];
  float *targets = malloc(N * sizeof *targets);
  if (!targets) return 1;
  make_data(inputs, targets);

  mg_config cfg;
  mg_config_init(&cfg);
  cfg.sandbox = true;                   /* the scripts get no io/os/package */
  cfg.mem_limit = (size_t)256 << 20;    /* Lua heap + tensors */
  cfg.instruction_budget = 50000000;    /* per call */
  char err[256];
  mg_runtime *R = mg_open(&cfg, err, sizeof err);
  if (!R) { fprintf(stderr, "host: %s\n", err); free(targets); return 1; }

  int bad = 0;
  H = mg_plugin_host_table();
  bad |= check(R, mg_register_plugin(R, &host_sgd, "host.c"), "registering host_sgd");
  bad |= check(R, mg_seed(R, 7), "seeding");
  bad |= check(R, mg_run_string(R, MODEL), "loading the model code");
  bad |= check(R, mg_set_global_number(R, "lr", 0.3), "setting lr");
  bad |= check(R, mg_set_global_number(R, "epochs", 1000), "setting epochs");

  /* the host's buffers as tensors: inputs borrowed, targets handed over, predictions borrowed */
  mg_value *x = NULL, *y = NULL, *out = NULL, *loss = NULL;
  if (!bad) bad |= check(R, mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){N, 3}, inputs, MG_BORROW, NULL, NULL, &x), "wrapping inputs");
  if (!bad) bad |= check(R, mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){N, 1}, targets, MG_CALLBACK, free_targets, NULL, &y), "wrapping targets");
  else free(targets);  /* never handed over */
  if (!bad) bad |= check(R, mg_tensor_wrap(R, MG_FLOAT32, 2, (int64_t[]){N, 1}, predictions, MG_BORROW, NULL, NULL, &out), "wrapping predictions");

  if (!bad) bad |= check(R, mg_call(R, "train", 2, (mg_value *[]){x, y}, 1, &loss), "train");
  double final_loss = NAN;
  if (!bad) bad |= check(R, mg_tensor_read(loss, MG_FLOAT64, &final_loss, 1), "reading the loss");
  if (!bad) bad |= check(R, mg_call(R, "predict", 2, (mg_value *[]){x, out}, 0, NULL), "predict");

  if (!bad) {
    /* the predictions are in the host's own array now */
    double mse = 0;
    for (int i = 0; i < N; i++) mse += (predictions[i] - truth(&inputs[i * 3])) * (predictions[i] - truth(&inputs[i * 3]));
    mse /= N;
    printf("plugins:");
    for (int i = 0, n = mg_plugin_list_count(R); i < n; i++) {
      mg_plugin_entry p;
      if (mg_plugin_list_get(R, i, &p) == MG_OK && p.file && !strcmp(p.file, "host.c")) printf(" %s (%s, from %s)", p.name, p.kind, p.file);
    }
    printf("\ntraining loss %.5f, prediction error (MSE) %.5f\n", final_loss, mse);
    for (int i = 0; i < 4; i++) printf("  sample %d: predicted %+.3f, true %+.3f\n", i, predictions[i], truth(&inputs[i * 3]));
    if (!(mse < 0.01)) { fprintf(stderr, "host: the model did not learn (MSE %.4f)\n", mse); bad = 1; }
  }

  /* the borrowed buffers are the host's: take them back before they go away */
  if (x) mg_tensor_detach(x);
  if (out) mg_tensor_detach(out);
  mg_value_free(loss);
  mg_value_free(out);
  mg_value_free(y);
  mg_value_free(x);
  mg_close(R);  /* runs free_targets (Lua may still have held y until here) */
  return bad;
}
