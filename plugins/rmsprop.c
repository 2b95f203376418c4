/*
** rmsprop.c — RMSprop, PyTorch's torch.optim.RMSprop (1.13, single-tensor path):
**   g = g + weight_decay * p
**   v = alpha * v + (1 - alpha) * g * g
**   centered: ga = alpha * ga + (1 - alpha) * g;  avg = sqrt(v - ga * ga) + eps
**   else:     avg = sqrt(v) + eps
**   momentum > 0: buf = momentum * buf + g / avg;  p = p - lr * buf
**   else:         p = p - lr * g / avg
** Per-parameter state: step, square_avg, momentum_buffer (momentum > 0), grad_avg (centered).
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LR, ALPHA, EPS, WEIGHT_DECAY, MOMENTUM, CENTERED };
static const mgp_hparam hparams[] = {
  [LR] = {"lr", MGP_NUM, 1e-2, 0.0, HUGE_VAL, 0, "learning rate"},
  [ALPHA] = {"alpha", MGP_NUM, 0.99, 0.0, HUGE_VAL, 0, "smoothing constant"},
  [EPS] = {"eps", MGP_NUM, 1e-8, 0.0, HUGE_VAL, 0, "added to the denominator"},
  [WEIGHT_DECAY] = {"weight_decay", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "L2 penalty"},
  [MOMENTUM] = {"momentum", MGP_NUM, 0.0, 0.0, HUGE_VAL, 0, "momentum factor"},
  [CENTERED] = {"centered", MGP_BOOL, 0, 0, 1, 0, "normalise by the estimated variance of the gradient"},
};

static const mgp_host *H;

#define UPDATE(T)                                                                           \
  static void update_##T(T *p, const T *g, T *v, T *ga, T *buf, int64_t n, const double *hp) { \
    double lr = hp[LR], a = hp[ALPHA], eps = hp[EPS], wd = hp[WEIGHT_DECAY], mom = hp[MOMENTUM]; \
    for (int64_t k = 0; k < n; k++) {                                                       \
      double gk = g[k], avg;                                                                \
      if (wd != 0) gk = (T)(gk + wd * p[k]);                                                \
      v[k] = (T)(v[k] * a + (1 - a) * gk * gk);                                             \
      if (ga) {                                                                             \
        ga[k] = (T)(ga[k] * a + (1 - a) * gk);                                              \
        avg = (T)sqrt((T)(v[k] - (double)ga[k] * ga[k]));                                   \
      } else                                                                                \
        avg = (T)sqrt(v[k]);                                                                \
      avg = (T)(avg + eps);                                                                 \
      if (buf) {                                                                            \
        buf[k] = (T)(buf[k] * mom + gk / avg);                                              \
        p[k] = (T)(p[k] - lr * buf[k]);                                                     \
      } else                                                                                \
        p[k] = (T)(p[k] - lr * (gk / avg));                                                 \
    }                                                                                       \
  }
UPDATE(float)
UPDATE(double)

static int step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  for (int i = 0, n = H->nparams(ctx); i < n; i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i), *v, *ga = NULL, *buf = NULL;
    if (!(v = H->state_tensor(ctx, i, "square_avg"))) return -1;
    if (hp[MOMENTUM] > 0 && !(buf = H->state_tensor(ctx, i, "momentum_buffer"))) return -1;
    if (hp[CENTERED] != 0 && !(ga = H->state_tensor(ctx, i, "grad_avg"))) return -1;
    if (H->state_put(ctx, i, "step", H->state_get(ctx, i, "step", 0) + 1)) return -1;
#define D(t) ((t) ? H->data(t) : NULL)
    if (H->dtype(p) == MGP_F64)
      update_double(H->data(p), H->data(g), H->data(v), D(ga), D(buf), H->numel(p), hp);
    else
      update_float(H->data(p), H->data(g), H->data(v), D(ga), D(buf), H->numel(p), hp);
  }
  return 0;
}

static const mgp_optim_desc rmsprop = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, "rmsprop", "1.0.0", "RMSprop with momentum and centering (PyTorch rule)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .state_version = 1,
  .step = step,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &rmsprop);
}
