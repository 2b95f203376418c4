/*
** cross_entropy.c — PyTorch's cross_entropy on logits x of shape {C}, {N,C} or {N,C,d1,...}.
** With p = log_softmax(x) over the class dim and, per sample, coefficients
**   labels y:        a_c = (1 - ls) w_y [c == y] + ls / C * w_c
**   probabilities t: a_c = w_c ((1 - ls) t_c + ls / C)
** the loss is -sum_c a_c p_c and its gradient (sum_c a_c) softmax_c - a_c
** (w: the `weight` option, else 1; ls: label_smoothing). 'mean' divides by the
** sum of w_y over the samples for labels (PyTorch's weighted mean), by the number
** of samples for probabilities. Samples labelled `ignore_index` (default -100, as
** PyTorch's) contribute nothing, to the loss, the gradient or the mean's divisor.
*/
#include <math.h>
#include "moongrad_plugin.h"

enum { LABEL_SMOOTHING, WEIGHT, IGNORE_INDEX };
static const mgp_hparam hparams[] = {
  [LABEL_SMOOTHING] = {"label_smoothing", MGP_NUM, 0.0, 0.0, 1.0, 0, "mix the target with a uniform distribution"},
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
  double ls = hp[LABEL_SMOOTHING], wsum = 0, kept = 0;
  double *a = H->alloc(ctx, (size_t)(2 * C) * sizeof(double));
  if (!a) return -1;
  double *lp = a + C;
  for (int64_t o = 0; o < io->outer; o++)
    for (int64_t i = 0; i < I; i++) {
      int64_t base = o * C * I + i, s = o * I + i;
      double mx = -HUGE_VAL, se = 0;
      for (int64_t c = 0; c < C; c++) mx = fmax(mx, mgp_get(x, dt, base + c * I));
      for (int64_t c = 0; c < C; c++) se += exp(mgp_get(x, dt, base + c * I) - mx);
      double lse = mx + log(se);
      for (int64_t c = 0; c < C; c++) lp[c] = mgp_get(x, dt, base + c * I) - lse;
      if (io->target_is_labels && mgp_get(y, dt, s) == hp[IGNORE_INDEX]) {
        mgp_set(l, dt, s, 0);
        if (g)
          for (int64_t c = 0; c < C; c++) mgp_set(g, dt, base + c * I, 0);
        continue;
      }
      kept++;
      if (io->target_is_labels) {
        int64_t yc = (int64_t)mgp_get(y, dt, s) - 1;
        double wy = w ? mgp_get(w, dt, yc) : 1;
        wsum += wy;
        for (int64_t c = 0; c < C; c++) a[c] = ls / C * (w ? mgp_get(w, dt, c) : 1);
        a[yc] += (1 - ls) * wy;
      } else {
        for (int64_t c = 0; c < C; c++)
          a[c] = (w ? mgp_get(w, dt, c) : 1) * ((1 - ls) * mgp_get(y, dt, base + c * I) + ls / C);
      }
      double loss = 0, asum = 0;
      for (int64_t c = 0; c < C; c++) { loss -= a[c] * lp[c]; asum += a[c]; }
      mgp_set(l, dt, s, loss);
      if (g)
        for (int64_t c = 0; c < C; c++) mgp_set(g, dt, base + c * I, asum * exp(lp[c]) - a[c]);
    }
  if (io->target_is_labels) io->mean_divisor = w ? wsum : kept;
  H->free(ctx, a);
  return 0;
}

static const mgp_loss_desc desc = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "cross_entropy", "1.0.0",
                   "log-softmax + NLL on logits; 1-based labels or class probabilities"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .shape = MGP_PER_CLASS_SAMPLE, .target = MGP_TARGET_LABELS_OR_SAME,
  .forward = forward,
};

MGP_ENTRY(host, ctx) {
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
  return host->register_plugin(ctx, &desc);
}
