/*
** l1.c — absolute error, PyTorch's l1_loss: |x - y|, gradient sign(x - y) (0 at 0).
*/
#include <math.h>
#include "moongrad_plugin.h"

static const mgp_host *H;

static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx; (void)hp;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double d = mgp_get(x, dt, k) - mgp_get(y, dt, k), loss, grad;
    loss = fabs(d);
    grad = d > 0 ? 1 : d < 0 ? -1 : 0;
    mgp_set(l, dt, k, loss);
    if (g) mgp_set(g, dt, k, grad);
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "l1", "1.0.0", "absolute error |x - y|"),
  
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
