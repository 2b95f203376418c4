/*
** bce_with_logits.c — PyTorch's binary_cross_entropy_with_logits on logits x, stable form:
**   lw = 1 + (pos_weight - 1) y
**   loss = w ((1 - y) x + lw (log1p(exp(-|x|)) + max(-x, 0)))
**   grad = w (lw sigmoid(x) - pos_weight y)
** (w, pos_weight: options broadcast to the input's shape, else 1).
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { WEIGHT, POS_WEIGHT };
static const mgp_hparam hparams[] = {
  [WEIGHT] = {"weight", MGP_TENSOR, 0, 0, 0, MGP_HP_BCAST, "rescaling weight, broadcast to the input"},
  [POS_WEIGHT] = {"pos_weight", MGP_TENSOR, 0, 0, 0, MGP_HP_BCAST, "weight of positive examples, broadcast to the input"},
};

static const mgp_host *H;

static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  (void)ctx; (void)hp;
  int dt = H->dtype(io->input);
  const void *x = H->data(io->input), *y = H->data(io->target);
  const void *w = io->tensors[WEIGHT] ? H->data(io->tensors[WEIGHT]) : NULL;
  const void *pw = io->tensors[POS_WEIGHT] ? H->data(io->tensors[POS_WEIGHT]) : NULL;
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  for (int64_t k = 0, n = H->numel(io->input); k < n; k++) {
    double xk = mgp_get(x, dt, k), yk = mgp_get(y, dt, k), wk = w ? mgp_get(w, dt, k) : 1;
    double pwk = pw ? mgp_get(pw, dt, k) : 1, lw = 1 + (pwk - 1) * yk;
    double loss = (1 - yk) * xk + lw * (log1p(exp(-fabs(xk))) + fmax(-xk, 0));
    mgp_set(l, dt, k, wk * loss);
    if (g) mgp_set(g, dt, k, wk * (lw / (1 + exp(-xk)) - pwk * yk));
  }
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "bce_with_logits", "1.0.0", "sigmoid + binary cross-entropy on logits"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_ELEMENTWISE, .target = MGP_TARGET_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
