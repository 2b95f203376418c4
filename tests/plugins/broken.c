/*
** broken.c — test plugins, one per -D flag, built by tests/c/plugin_loader.c with the
** documented plugin command. Each breaks one rule the loader must enforce, except
** GOOD (a valid optimizer with optimizer-level state, save/load hooks and a
** state_version) and STEP_ERROR (valid, but its step reports an error).
*/
#include <math.h>
#include <string.h>
#include "moongrad_plugin.h"

static const mgp_host *H;

static const mgp_hparam hparams[] = {
  {"lr", MGP_NUM, 0.1, 0.0, HUGE_VAL, 0, "learning rate"},
  {"every", MGP_INT, 1, 1, 1000, 0, "an integer option (unused)"},
#ifdef BAD_HPARAM
  {"decay", MGP_NUM, 2.0, 0.0, 1.0, 0, "default outside its range"},
#endif
};

/* p -= lr * sign(g); counts steps in optimizer-level state "t" */
static int step(mgp_ctx *ctx, const double *hp, void *user) {
  (void)user;
  double t = H->state_get(ctx, -1, "t", 0) + 1;
#ifdef STEP_ERROR
  if (t >= 2) return H->error(ctx, "gradient exploded at step %g", t);
#endif
  if (H->state_put(ctx, -1, "t", t)) return -1;
  for (int i = 0; i < H->nparams(ctx); i++) {
    const mgp_tensor *g = H->grad(ctx, i);
    if (!g) continue;
    mgp_tensor *p = H->param(ctx, i);
    int dt = H->dtype(p);
    for (int64_t k = 0; k < H->numel(p); k++) {
      double gk = mgp_get(H->data(g), dt, k);
      mgp_set(H->data(p), dt, k, mgp_get(H->data(p), dt, k) - hp[0] * (gk > 0 ? 1 : gk < 0 ? -1 : 0));
    }
  }
  return 0;
}

/* private data: counts save() calls; logs on creation */
typedef struct { int saves; } priv;
static int create(mgp_ctx *ctx, const double *hp, void **user) {
  priv *p = H->alloc(ctx, sizeof *p);
  if (!p) return -1;
  *user = p;
  H->log(ctx, MGP_LOG_INFO, "created with lr %g", hp[0]);
  return 0;
}
static void destroy(mgp_ctx *ctx, void *user) { H->free(ctx, user); }
static int save(mgp_ctx *ctx, const double *hp, void *user) {
  (void)hp;
  priv *p = user;
  return H->state_put(ctx, -1, "saves", ++p->saves);
}

/* state_version 2 keeps "t"; version-1 checkpoints called it "count" */
static int load(mgp_ctx *ctx, const double *hp, void *user, int saved_version) {
  (void)hp; (void)user;
  if (saved_version == 1) return H->state_put(ctx, -1, "t", H->state_get(ctx, -1, "count", 0));
  if (saved_version != 2) return H->error(ctx, "cannot read state_version %d", saved_version);
  return 0;
}

#if defined(DUP_NAME)
#define NAME "sgd"
#elif defined(STEP_ERROR)
#define NAME "failstep"
#else
#define NAME "signsgd"
#endif

static mgp_optim_desc desc = {
  .head = MGP_HEAD(MGP_OPTIM, mgp_optim_desc, NAME, "0.3.1", "sign SGD (test plugin)"),
  .hparams = hparams, .nhparams = MGP_COUNTOF(hparams),
  .state_version = 2,
  .step = step,
  .load = load,
  .create = create,
  .destroy = destroy,
  .save = save,
};

/* NO_FORWARD: a loss without its required callback */
static const mgp_loss_desc loss = {
  .head = MGP_HEAD(MGP_LOSS, mgp_loss_desc, "brokenloss", "0.1", NULL),
  .shape = MGP_ELEMENTWISE,
};

#ifdef NO_ENTRY
MGP_EXPORT int plugin_init(const mgp_host *host, mgp_ctx *ctx);
MGP_EXPORT int plugin_init(const mgp_host *host, mgp_ctx *ctx) {
#else
MGP_ENTRY(host, ctx) {
#endif
  if (!mgp_host_ok(host)) return -1;
  if (H != host) H = host;  /* the same table every time: written once, so no race */
#ifdef BAD_MAJOR
  desc.head.abi_major = MGP_ABI_MAJOR + 1;
#endif
#ifdef NEWER_MINOR
  desc.head.abi_minor = MGP_ABI_MINOR + 1;
#endif
#ifdef BAD_FINGERPRINT
  desc.head.fingerprint ^= 0x1;
#endif
#ifdef SMALL_DESC
  desc.head.size = sizeof(mgp_head) + 8;
#endif
#ifdef NO_STEP
  desc.step = NULL;
#endif
#ifdef INIT_FAIL
  return host->error(ctx, "this plugin needs a GPU");
#endif
#ifdef NO_REGISTER
  return 0;
#endif
#ifdef NO_FORWARD
  return host->register_plugin(ctx, &loss);
#endif
  (void)loss;
  return host->register_plugin(ctx, &desc);
}
