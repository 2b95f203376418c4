/*
** lion.c — the Lion optimizer (Chen et al. 2023, "Symbolic Discovery of Optimization
** Algorithms"), a complete third-party moongrad plugin in one file:
**   c = beta1 * m + (1 - beta1) * g
**   p = p * (1 - lr * weight_decay) - lr * sign(c)
**   m = beta2 * m + (1 - beta2) * g
** Per-parameter state: exp_avg (m).
**
** Build (from the moongrad source tree, or use -I$(pkg-config --variable=includedir moongrad)):
**   cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -o lion.so examples/plugins/lion.c
** Use:
**   mg.load_plugin("./lion.so")          -- or put lion.so in $MOONGRAD_PLUGIN_PATH
**   local opt = mg.optim("lion", model:parameters(), {lr = 1e-4, weight_decay = 0.01})
*/
#include <math.h>
#include "moongrad_plugin.h"

/* 1. Hyperparameters: name, type, default, range. The runtime validates the
**    script's options against this table before the plugin sees them, and hands
**    the values to step() as hp[] in this order. */
enum { LR, BETA1, BETA2, WEIGHT_DECAY };
static const mgp_hparam hparams[] = {
  [LR] = {"lr", MGP_NUM, 1e-4, 0.0, HUGE_VAL, 0, "learning rate"},
  [BETA1] = {"beta1", MGP_NUM, 0.9, 0.0, 1.0, 0, "interpolation for the update direction"},
  [BETA2] = {"beta2", MGP_NUM, 0.99, 0.0, 1.0, 0, "decay of the momentum"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "decoupled weight decay"},
};

/* 2. The host table: every runtime service the plugin may use. Kept from the entry point. */
static const mgp_host *H;

/* 3. The update, for one parameter of either dtype. */
#define UPDATE(T)                                                                       \
  static void update_##T(T *p, const T *g, T *m, int64_t n, const double *hp) {        \
    double lr = hp[LR], b1 = hp[BETA1], b2 = hp[BETA2], wd = hp[WEIGHT_DECAY];          \
    for (int64_t k = 0; k < n; k++) {                                                   \
      double c = b1 * m[k] + (1 - b1) * g[k];                                           \
      double s = c > 0 ? 1 : c < 0 ? -1 : 0;                                            \
      p[k] = (T)(p[k] * (1 - lr * wd) - lr * s);                                        \
      m[k] = (T)(b2 * m[k] + (1 - b2) * g[k]);                                          \
    }                                                                                   \
  }
UPDATE(float)
UPDATE(double)

/* 4. step(): walk the parameters, skip those without a gradient, update in place.
**    State buffers live in the runtime (so checkpoints include them): state_tensor()
**    returns a zero-filled buffer shaped like the parameter on first use. */
static int step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i);
    mgp_tensor *m = H->state_tensor(ctx, i, "exp_avg");
    if (!m) return -1;  /* the host has set the error */
    if (H->dtype(p) == MGP_F64)
      update_double(H->data(p), H->data(g), H->data(m), H->numel(p), hp);
    else
      update_float(H->data(p), H->data(g), H->data(m), H->numel(p), hp);
  }
  return 0;
}

/* 5. The descriptor: what the runtime registers under the name "lion". */
static const mgp_optim_desc lion = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "lion", "1.0.0", "Lion: sign of an interpolated momentum (example plugin)"),
  .hparams = hparams,
  .nhparams = MGP_COUNTOF(hparams),
  .state_version = 1,
  .step = step,
};

/* 6. The entry point: check the host, keep it, register. */
MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &lion);
}
