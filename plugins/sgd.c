/*
** sgd.c — stochastic gradient descent, PyTorch's torch.optim.SGD (1.13):
**   d = g + weight_decay * p
**   if momentum != 0:
**     buf = d                                   on the first step
**     buf = momentum * buf + (1 - dampening) * d  afterwards
**     d = nesterov ? d + momentum * buf : buf
**   p = p - lr * d
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LR, MOMENTUM, DAMPENING, WEIGHT_DECAY, NESTEROV };
static const mgp_hparam hparams[] = {
  [LR] = {"lr", MGP_NUM, 0.0, 0.0, HUGE_VAL, MGP_HP_REQUIRED, "learning rate (required, as in PyTorch)"},
  [MOMENTUM] = {"momentum", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "momentum factor"},
  [DAMPENING] = {"dampening", MGP_NUM, 0.0, -HUGE_VAL, HUGE_VAL, 0, "dampening for momentum"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "L2 penalty"},
  [NESTEROV] = {"nesterov", MGP_BOOL, 0, 0, 1, 0, "Nesterov momentum"},
};

static const mgp_host *H;

static int validate(mgp_ctx *ctx, const double *hp) {
  if (hp[NESTEROV] != 0 && (hp[MOMENTUM] <= 0 || hp[DAMPENING] != 0))
    return H->error(ctx, "nesterov momentum requires a momentum > 0 and zero dampening (momentum=%g, dampening=%g)",
                    hp[MOMENTUM], hp[DAMPENING]);
  return 0;
}

/* One pass per case, branches hoisted out of the loops so they vectorise;
** arithmetic in the parameter's own type, as PyTorch does. */
#define UPDATE(T)                                                                          \
  static void update_##T(T *p, const T *g, T *buf, int fresh, int64_t n, const double *hp) { \
    const T lr = (T)hp[LR], mom = (T)hp[MOMENTUM], damp1 = (T)(1 - hp[DAMPENING]);          \
    const T wd = (T)hp[WEIGHT_DECAY];                                                      \
    const int nesterov = hp[NESTEROV] != 0;                                                \
    if (!buf) {                                                                            \
      if (wd == 0) for (int64_t k = 0; k < n; k++) p[k] -= lr * g[k];                      \
      else for (int64_t k = 0; k < n; k++) p[k] -= lr * (g[k] + wd * p[k]);               \
    } else if (fresh) {                                                                    \
      for (int64_t k = 0; k < n; k++) {                                                    \
        T dk = wd == 0 ? g[k] : g[k] + wd * p[k];                                          \
        buf[k] = dk;                                                                       \
        p[k] -= lr * (nesterov ? dk + mom * dk : dk);                                      \
      }                                                                                    \
    } else if (wd == 0 && !nesterov) {                                                     \
      for (int64_t k = 0; k < n; k++) {                                                    \
        T b = mom * buf[k] + damp1 * g[k];                                                 \
        buf[k] = b;                                                                        \
        p[k] -= lr * b;                                                                    \
      }                                                                                    \
    } else {                                                                               \
      for (int64_t k = 0; k < n; k++) {                                                    \
        T dk = wd == 0 ? g[k] : g[k] + wd * p[k];                                          \
        T b = mom * buf[k] + damp1 * dk;                                                   \
        buf[k] = b;                                                                        \
        p[k] -= lr * (nesterov ? dk + mom * b : b);                                        \
      }                                                                                    \
    }                                                                                      \
  }
UPDATE(float)
UPDATE(double)

static int step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i), *buf = NULL;
    int fresh = 0;
    if (hp[MOMENTUM] != 0) {
      fresh = !H->state_has(ctx, i, "momentum_buffer");
      if (!(buf = H->state_tensor(ctx, i, "momentum_buffer"))) return -1;
    }
    if (H->dtype(p) == MGP_F64)
      update_double(H->data(p), H->data(g), buf ? H->data(buf) : NULL, fresh, H->numel(p), hp);
    else
      update_float(H->data(p), H->data(g), buf ? H->data(buf) : NULL, fresh, H->numel(p), hp);
  }
  return 0;
}

static const mgp_optim_desc sgd = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "sgd", "1.0.0", "SGD with momentum, dampening, Nesterov, weight decay (PyTorch rule)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .state_version = 1,
  .validate = validate,
  .step = step,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &sgd);
}
