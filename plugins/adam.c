/*
** adam.c — Adam and AdamW, PyTorch's torch.optim.Adam and AdamW (1.13, single-tensor
** path). The two differ only in how weight decay enters:
**   t += 1
**   adam:  g = g + weight_decay * p          (L2 penalty in the gradient)
**   adamw: p = p * (1 - lr * weight_decay)   (decoupled; default weight_decay 1e-2)
**   m = beta1 * m + (1 - beta1) * g
**   v = beta2 * v + (1 - beta2) * g * g
**   amsgrad: vmax = max(vmax, v), use vmax for v below
**   denom = sqrt(v) / sqrt(1 - beta2^t) + eps
**   p = p - lr / (1 - beta1^t) * m / denom
** Per-parameter state: step, exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad).
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LR, BETA1, BETA2, EPS, WEIGHT_DECAY, AMSGRAD };
static const mgp_hparam adam_hp[] = {
  [LR] = {"lr", MGP_NUM, 1e-3, 0.0, HUGE_VAL, 0, "learning rate"},
  [BETA1] = {"beta1", MGP_NUM, 0.9, 0.0, 1.0, MGP_HP_MAX_OPEN, "decay of the first moment"},
  [BETA2] = {"beta2", MGP_NUM, 0.999, 0.0, 1.0, MGP_HP_MAX_OPEN, "decay of the second moment"},
  [EPS] = {"eps", MGP_NUM, 1e-8, 0.0, HUGE_VAL, 0, "added to the denominator"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "L2 penalty added to the gradient"},
  [AMSGRAD] = {"amsgrad", MGP_BOOL, 0, 0, 1, 0, "use the maximum of past second moments"},
};

/* Adam's names; decoupled weight decay with PyTorch's default 1e-2 */
static const mgp_hparam adamw_hp[] = {
  [LR] = {"lr", MGP_NUM, 1e-3, 0.0, HUGE_VAL, 0, "learning rate"},
  [BETA1] = {"beta1", MGP_NUM, 0.9, 0.0, 1.0, MGP_HP_MAX_OPEN, "decay of the first moment"},
  [BETA2] = {"beta2", MGP_NUM, 0.999, 0.0, 1.0, MGP_HP_MAX_OPEN, "decay of the second moment"},
  [EPS] = {"eps", MGP_NUM, 1e-8, 0.0, HUGE_VAL, 0, "added to the denominator"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 1e-2, 0.0, HUGE_VAL, 0, "decoupled weight decay"},
  [AMSGRAD] = {"amsgrad", MGP_BOOL, 0, 0, 1, 0, "use the maximum of past second moments"},
};

static const mgp_host *H;

#define UPDATE(T)                                                                          \
  static void update_##T(T *p, const T *g, T *m, T *v, T *vmax, int64_t n, const double *hp, \
                         double t, int decoupled) {                                        \
    double lr = hp[LR], b1 = hp[BETA1], b2 = hp[BETA2], eps = hp[EPS], wd = hp[WEIGHT_DECAY]; \
    double step_size = lr / (1 - pow(b1, t)), bc2_sqrt = sqrt(1 - pow(b2, t));             \
    for (int64_t k = 0; k < n; k++) {                                                      \
      double gk = g[k];                                                                    \
      if (decoupled) p[k] = (T)(p[k] * (1 - lr * wd));                                     \
      else if (wd != 0) gk = (T)(gk + wd * p[k]);                                          \
      m[k] = (T)(m[k] * b1 + (1 - b1) * gk);                                               \
      v[k] = (T)(v[k] * b2 + (1 - b2) * gk * gk);                                          \
      double vk = v[k];                                                                    \
      if (vmax) { if (vmax[k] < v[k]) vmax[k] = v[k]; vk = vmax[k]; }                      \
      double denom = (T)((T)(sqrt(vk) / bc2_sqrt) + eps);                                  \
      p[k] = (T)(p[k] - step_size * m[k] / denom);                                         \
    }                                                                                      \
  }
UPDATE(float)
UPDATE(double)

static int update_all(mgp_ctx *ctx, const double *hp, int decoupled) {
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i);
    mgp_tensor *m = H->state_tensor(ctx, i, "exp_avg");
    mgp_tensor *v = m ? H->state_tensor(ctx, i, "exp_avg_sq") : NULL;
    mgp_tensor *vmax = NULL;
    if (!v) return -1;
    if (hp[AMSGRAD] != 0 && !(vmax = H->state_tensor(ctx, i, "max_exp_avg_sq"))) return -1;
    double t = H->state_get(ctx, i, "step", 0) + 1;
    if (H->state_put(ctx, i, "step", t)) return -1;
    if (H->dtype(p) == MGP_F64)
      update_double(H->data(p), H->data(g), H->data(m), H->data(v), vmax ? H->data(vmax) : NULL,
                    H->numel(p), hp, t, decoupled);
    else
      update_float(H->data(p), H->data(g), H->data(m), H->data(v), vmax ? H->data(vmax) : NULL,
                   H->numel(p), hp, t, decoupled);
  }
  return 0;
}

static int step_adam(mgp_ctx *ctx, const double *hp, void *user) { (void)user; return update_all(ctx, hp, 0); }
static int step_adamw(mgp_ctx *ctx, const double *hp, void *user) { (void)user; return update_all(ctx, hp, 1); }

static const mgp_optim_desc adam = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "adam", "1.0.0", "Adam with L2 weight decay and AMSGrad (PyTorch rule)"),
  .hparams = adam_hp, .nhparams = MGP_COUNTOF(adam_hp),
  .state_version = 1,
  .step = step_adam,
};

static const mgp_optim_desc adamw = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "adamw", "1.0.0", "AdamW: Adam with decoupled weight decay (PyTorch rule)"),
  .hparams = adamw_hp, .nhparams = MGP_COUNTOF(adamw_hp),
  .state_version = 1,
  .step = step_adamw,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &adam) ? -1 : host->register_plugin(ctx, &adamw);
}
