/*
** adagrad.c — Adagrad, PyTorch's torch.optim.Adagrad (1.13, single-tensor path):
**   t += 1
**   g = g + weight_decay * p
**   clr = lr / (1 + (t - 1) * lr_decay)
**   sum = sum + g * g          (sum starts at initial_accumulator_value)
**   p = p - clr * g / (sqrt(sum) + eps)
** Per-parameter state: step, sum.
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LR, LR_DECAY, WEIGHT_DECAY, INITIAL_ACC, EPS };
static const mgp_hparam hparams[] = {
  [LR] = {"lr", MGP_NUM, 1e-2, 0.0, HUGE_VAL, 0, "learning rate"},
  [LR_DECAY] = {"lr_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "learning rate decay"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "L2 penalty"},
  [INITIAL_ACC] = {"initial_accumulator_value", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "start value of the sum of squares"},
  [EPS] = {"eps", MGP_NUM, 1e-10, 0.0, HUGE_VAL, 0, "added to the denominator"},
};

static const mgp_host *H;

#define UPDATE(T)                                                                           \
  static void update_##T(T *p, const T *g, T *sum, int fresh, int64_t n, const double *hp, double t) { \
    double clr = hp[LR] / (1 + (t - 1) * hp[LR_DECAY]), wd = hp[WEIGHT_DECAY], eps = hp[EPS]; \
    for (int64_t k = 0; k < n; k++) {                                                       \
      double gk = g[k];                                                                     \
      if (fresh) sum[k] = (T)hp[INITIAL_ACC];                                               \
      if (wd != 0) gk = (T)(gk + wd * p[k]);                                                \
      sum[k] = (T)(sum[k] + gk * gk);                                                       \
      double std = (T)((T)sqrt(sum[k]) + eps);                                              \
      p[k] = (T)(p[k] - clr * (gk / std));                                                  \
    }                                                                                       \
  }
UPDATE(float)
UPDATE(double)

static int step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i), *sum;
    int fresh = !H->state_has(ctx, i, "sum");
    if (!(sum = H->state_tensor(ctx, i, "sum"))) return -1;
    double t = H->state_get(ctx, i, "step", 0) + 1;
    if (H->state_put(ctx, i, "step", t)) return -1;
    if (H->dtype(p) == MGP_F64)
      update_double(H->data(p), H->data(g), H->data(sum), fresh, H->numel(p), hp, t);
    else
      update_float(H->data(p), H->data(g), H->data(sum), fresh, H->numel(p), hp, t);
  }
  return 0;
}

static const mgp_optim_desc adagrad = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "adagrad", "1.0.0", "Adagrad with learning-rate decay (PyTorch rule)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .state_version = 1,
  .step = step,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &adagrad);
}
