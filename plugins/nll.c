/*
** nll.c — PyTorch's nll_loss on log-probabilities x of shape {C}, {N,C} or {N,C,d1,...}
** with 1-based labels y: loss = -w_y x_y, gradient -w_y at the label, 0 elsewhere.
** 'mean' divides by the sum of w_y over the samples (w: the `weight` option, else 1).
** Samples labelled `ignore_index` (default -100, as PyTorch's) are left out.
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { WEIGHT, IGNORE_INDEX };
static const mgp_hparam hparams[] = {
  [WEIGHT] = {"weight", MGP_TENSOR, 0, 0, 0, 0, "a weight per class, shape {C}"},
  [IGNORE_INDEX] = {"ignore_index", MGP_INT, -100, -HUGE_VAL, HUGE_VAL, 0, "a label whose samples are ignored"},
};

static const mgp_host *H;

static int forward(mgp_ctx *ctx, const double *hp, mgp_loss_io *io) {
  int dt = H->dtype(io->input);
  int64_t C = io->classes, I = io->inner;
  const mgp_tensor *wt = io->tensors[WEIGHT];
  if (wt && (H->ndim(wt) != 1 || H->dim(wt, 0) != C))
    return H->error(ctx, "weight must be a 1-D tensor with one value per class (%lld), got %lld values",
                    (long long)C, (long long)H->numel(wt));
  const void *x = H->data(io->input), *y = H->data(io->target), *w = wt ? H->data(wt) : NULL;
  void *l = H->data(io->loss), *g = io->grad ? H->data(io->grad) : NULL;
  double wsum = 0, kept = 0;
  if (g)
    for (int64_t k = 0, n = H->numel(io->input); k < n; k++) mgp_set(g, dt, k, 0);
  for (int64_t o = 0; o < io->outer; o++)
    for (int64_t i = 0; i < I; i++) {
      int64_t s = o * I + i;
      if (mgp_get(y, dt, s) == hp[IGNORE_INDEX]) { mgp_set(l, dt, s, 0); continue; }
      int64_t yc = (int64_t)mgp_get(y, dt, s) - 1, k = o * C * I + yc * I + i;
      double wy = w ? mgp_get(w, dt, yc) : 1;
      kept++;
      wsum += wy;
      mgp_set(l, dt, s, -wy * mgp_get(x, dt, k));
      if (g) mgp_set(g, dt, k, -wy);
    }
  io->mean_divisor = w ? wsum : kept;
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "nll", "1.0.0", "negative log-likelihood on log-probabilities; 1-based labels"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_PER_CLASS_SAMPLE, .target = MGP_TARGET_LABELS,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
