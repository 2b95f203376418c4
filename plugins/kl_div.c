/*
** kl_div.c — PyTorch's kl_div with input x = log-probabilities:
**   loss = t log t - t x  (0 where t = 0),  grad = -t
**   log_target: loss = exp(t) (t - x),        grad = -exp(t)
** Reductions: none, mean (over all elements: PyTorch's default), sum,
** batchmean (sum divided by the size of the first dim, the batch).
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LOG_TARGET };
static const mgp_hparam hparams[] = {
  [LOG_TARGET] = {"log_target", MGP_BOOL, 0, 0, 1, 0, "the target is given as log-probabilities"},
};

static const mgp_host *H;

static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double xk = mgp_get(x, dt, k), tk = mgp_get(y, dt, k), loss, grad;
    if (hp[LOG_TARGET] != 0) { loss = exp(tk) * (tk - xk); grad = -exp(tk); }
    else { loss = (tk == 0 ? 0 : tk * log(tk)) - tk * xk; grad = -tk; }
    mgp_set(l, dt, k, loss);
    if (g) mgp_set(g, dt, k, grad);
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "kl_div", "1.0.0", "Kullback-Leibler divergence; input log-probabilities"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .reductions = MGP_RED_NONE | MGP_RED_MEAN | MGP_RED_SUM | MGP_RED_BATCHMEAN,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
