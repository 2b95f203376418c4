/*
** log_cosh.c — the log-cosh regression loss, a complete third-party moongrad loss plugin:
**   loss = log(cosh(x - y)) * scale     gradient = tanh(x - y) * scale
** computed stably as |d| + log1p(exp(-2|d|)) - log 2. Quadratic near 0, linear far
** away, smooth everywhere. The runtime applies `reduction` (mean, sum, none) and
** turns it into one autodiff node.
**
** Build:  cc -std=c11 -O2 -Wall -Wextra -fPIC -shared -Iinclude -o log_cosh.so examples/plugins/log_cosh.c
** Use:    local crit = mg.loss("log_cosh", {scale = 1, reduction = "mean"})
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { SCALE };
static const mgp_hparam hparams[] = {
  [SCALE] = {"scale", MGP_NUM, 1.0, 0.0, HUGE_VAL, MGP_HP_MIN_OPEN, "multiplies the loss"},
};

static const mgp_host *H;

/* forward(): one loss value per element and, when io->grad is set, d loss / d input */
static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double d = mgp_get(x, dt, k) - mgp_get(y, dt, k), a = fabs(d);
    mgp_set(l, dt, k, hp[SCALE] * (a + log1p(exp(-2 * a)) - log(2.0)));
    if (g) mgp_set(g, dt, k, hp[SCALE] * tanh(d));
  }
  return 0;
}

static const mgp_loss_desc log_cosh = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "log_cosh", "1.0.0", "log(cosh(x - y)) (example plugin)"),
  .hparams = hparams,
  .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE,    /* one loss value per element */
  .target = MGP_TARGET_SAME,   /* target shaped like the prediction */
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &log_cosh);
}
