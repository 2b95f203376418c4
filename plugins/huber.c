/*
** huber.c — PyTorch's huber_loss: z = |x - y|; 0.5 z^2 if z < delta, else delta (z - 0.5 delta).
** Gradient: x - y inside, delta sign(x - y) outside.
*/
#include <math.h>
#include "moongrad_plugin.h"

static const mgp_host *H;
enum { DELTA };
static const mgp_hparam hparams[] = {
  [DELTA] = {"delta", MGP_NUM, 1.0, 0.0, HUGE_VAL, MGP_HP_MIN_OPEN, "where the loss turns from quadratic to linear"},
};
static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx; (void)hp;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double d = mgp_get(x, dt, k) - mgp_get(y, dt, k), loss, grad;
    double z = fabs(d), delta = hp[DELTA];
    if (z < delta) { loss = 0.5 * z * z; grad = d; }
    else { loss = delta * (z - 0.5 * delta); grad = d > 0 ? delta : d < 0 ? -delta : 0; }
    mgp_set(l, dt, k, loss);
    if (g) mgp_set(g, dt, k, grad);
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "huber", "1.0.0", "Huber loss (delta)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
