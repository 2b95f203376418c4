/*
** bce.c — PyTorch's binary_cross_entropy on probabilities x in [0, 1]:
**   loss = -w (y max(log x, -100) + (1 - y) max(log(1 - x), -100))
**   grad = w (x - y) / max(x (1 - x), 1e-12)
** (w: the `weight` option broadcast to the input's shape, else 1).
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { WEIGHT };
static const mgp_hparam hparams[] = {
  [WEIGHT] = {"weight", MGP_TENSOR, 0, 0, 0, MGP_HP_BCAST, "rescaling weight, broadcast to the input"},
};

static const mgp_host *H;

static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)hp;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  const void *w = io->tensors[WEIGHT] ? H->data(io->tensors[WEIGHT]) : NULL;
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double xk = mgp_get(x, dt, k), yk = mgp_get(y, dt, k), wk = w ? mgp_get(w, dt, k) : 1;
    if (!(xk >= 0 && xk <= 1))
      return H->error(ctx, "input values must be probabilities in [0, 1], element %lld is %g (use bce_with_logits for logits)",
                      (long long)k + 1, xk);
    double loss = -wk * (yk * fmax(log(xk), -100) + (1 - yk) * fmax(log1p(-xk), -100));
    mgp_set(l, dt, k, loss);
    if (g) mgp_set(g, dt, k, wk * (xk - yk) / fmax(xk * (1 - xk), 1e-12));
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "bce", "1.0.0", "binary cross-entropy on probabilities"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
