/*
** smooth_l1.c — PyTorch's smooth_l1_loss: z = |x - y|; 0.5 z^2 / beta if z < beta, else z - 0.5 beta.
** beta = 0 is the L1 loss. Gradient: (x - y) / beta inside, sign(x - y) outside
** (with PyTorch's convention at the kink: -1 where x - y <= -beta).
*/
#include <math.h>
#include "moongrad_plugin.h"

static const mgp_host *H;
enum { BETA };
static const mgp_hparam hparams[] = {
  [BETA] = {"beta", MGP_NUM, 1.0, 0.0, HUGE_VAL, 0, "where the loss turns from quadratic to linear"},
};
static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx; (void)hp;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double d = mgp_get(x, dt, k) - mgp_get(y, dt, k), loss, grad;
    double z = fabs(d), beta = hp[BETA];
    loss = z < beta ? 0.5 * z * z / beta : z - 0.5 * beta;
    grad = d <= -beta ? -1 : d >= beta ? 1 : d / beta;  /* PyTorch's: -1 at d = 0 when beta = 0 */
    mgp_set(l, dt, k, loss);
    if (g) mgp_set(g, dt, k, grad);
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "smooth_l1", "1.0.0", "smooth L1 (beta)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
